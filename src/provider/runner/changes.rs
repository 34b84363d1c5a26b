//! The runner's reading of the log: each change its directory's partition holds, up to what
//! the views reflect, becomes work for the objects it touches (a user, a group, the members a
//! scope group gains or loses), and an operator's request (full sync, retry, replay) is taken
//! from it once.

use super::{text, Runner, MAX_QUEUED, READ_BATCH};
use crate::provider::plan::Kind;
use crate::provider::scope;
use crate::provider::state::{Key, Work};
use chrono::{DateTime, Utc};
use roster_events::{Event, Member, MemberType, ResourceId};
use roster_projections::LogEntry;

impl Runner {
    /// Reads and turns into work what the views reflect beyond the position.
    pub(super) async fn read(&mut self) -> Result<(), String> {
        loop {
            let views = self.views_position();
            if self.position >= views || self.queue.len() >= MAX_QUEUED {
                return Ok(());
            }
            let entries = self
                .log
                .read(self.partition, self.position, READ_BATCH)
                .await
                .map_err(text)?;
            if entries.is_empty() {
                return Ok(());
            }
            for entry in entries {
                if entry.position >= views {
                    break;
                }
                if entry.position < self.position {
                    continue;
                }
                let rewound = self.entry(&entry).await.map_err(text)?;
                self.dirty = true;
                if rewound {
                    break;
                }
                self.position = entry.position + 1;
            }
        }
    }

    pub(super) fn push(&mut self, key: Key, mut work: Work, position: u64, time: DateTime<Utc>) {
        work.verify |= position < self.uncertain_until;
        work.since_ms = Some(time.timestamp_millis());
        self.queue.push_merged(key, work, Work::merge);
    }

    /// Turns one entry into work. True when it rewound the position (a replay request).
    async fn entry(&mut self, entry: &LogEntry) -> Result<bool, roster_projections::StoreError> {
        let record = &entry.record;
        if record.directory != self.view.directory {
            return Ok(false);
        }
        let scope = self.view.config.scope.clone();
        // The groups each member left in this record: a deleted user's memberships end in the
        // same record as the user.
        let mut left: std::collections::HashMap<
            ResourceId,
            std::collections::BTreeSet<ResourceId>,
        > = Default::default();
        for env in &record.events {
            if let Event::GroupMembersRemoved(r) = &env.event {
                for m in &r.members {
                    left.entry(m.value).or_default().insert(env.resource_id);
                }
            }
        }
        for env in &record.events {
            let id = env.resource_id;
            let at = env.time;
            match &env.event {
                // An erased user leaves the remote as a deleted one does.
                Event::UserDeleted | Event::UserErased(_) => {
                    let work = Work {
                        left: left.remove(&id).unwrap_or_default(),
                        ..Work::whole()
                    };
                    self.push((Kind::User, id), work, entry.position, at);
                }
                Event::UserCreated(_) | Event::UserReplaced(_) | Event::UserAdopted(_) => {
                    self.push((Kind::User, id), Work::whole(), entry.position, at);
                }
                Event::GroupCreated(_)
                | Event::GroupReplaced(_)
                | Event::GroupDeleted
                | Event::GroupAdopted(_) => {
                    if matches!(env.event, Event::GroupDeleted) && scope.access_groups.contains(&id)
                    {
                        // Its members leave the scope; the view no longer says who they were.
                        self.progress.full_sync_requested = true;
                    }
                    self.push((Kind::Group, id), Work::whole(), entry.position, at);
                }
                Event::GroupMembersAdded(roster_events::GroupMembersAdded { members })
                | Event::GroupMembersRemoved(roster_events::GroupMembersRemoved { members }) => {
                    let changed = members.iter().copied().collect();
                    let work = if matches!(env.event, Event::GroupMembersAdded(_)) {
                        Work {
                            added: changed,
                            ..Work::default()
                        }
                    } else {
                        Work {
                            removed: changed,
                            ..Work::default()
                        }
                    };
                    self.push((Kind::Group, id), work, entry.position, at);
                    self.access_changed(&scope, id, members, entry.position, at)
                        .await?;
                }
                Event::ProviderSyncRequested
                | Event::ProviderRetryRequested
                | Event::ProviderReplayRequested(_)
                    if id == self.view.id && entry.position >= self.progress.requests_below =>
                {
                    self.progress.requests_below = entry.position + 1;
                    match &env.event {
                        Event::ProviderSyncRequested => self.progress.full_sync_requested = true,
                        Event::ProviderRetryRequested => {
                            let n = self.queue.retry_all();
                            tracing::info!(objects = n, "parked objects retried on request");
                        }
                        Event::ProviderReplayRequested(r) if r.from <= entry.position => {
                            tracing::info!(from = r.from, "replaying on request");
                            self.position = r.from;
                            return Ok(true);
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        Ok(false)
    }

    /// Members of an access group (or of a group nested in one) changed: those users move in
    /// or out of scope.
    async fn access_changed(
        &mut self,
        scope: &roster_events::ProviderScope,
        group: ResourceId,
        members: &[Member],
        position: u64,
        at: DateTime<Utc>,
    ) -> Result<(), roster_projections::StoreError> {
        let store = self.deps.store.clone();
        let dir = self.view.directory.clone();
        if !scope::grants_access(store.as_ref(), &dir, scope, group).await? {
            return Ok(());
        }
        for m in members {
            match m.kind {
                MemberType::User => self.push((Kind::User, m.value), Work::whole(), position, at),
                MemberType::Group => {
                    if let Some(g) = store.group(&dir, m.value).await? {
                        for u in scope::users_under(store.as_ref(), &dir, &g).await? {
                            self.push((Kind::User, u), Work::whole(), position, at);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
