//! What a batch changed, as rows: the resources one directory's share of a batch touches, its
//! state before and after the fold, and per table the rows to write or delete (gathered by
//! [`Writes::collect`], written by the fold in one transaction), with the changes to each
//! directory's counts of users and groups.

use super::rows::{email_values, member_type_code, to_json};
use super::table_row::{GroupRow, UserRow};
use crate::directory::Directory;
use crate::views::{AdminTokenView, GroupView, UserView};
use roster_events::{Event, ResourceId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use uuid::Uuid;

/// Which resources a batch of one directory touches, by kind.
#[derive(Default)]
pub(super) struct Touched {
    pub(super) meta: bool,
    pub(super) users: BTreeSet<Uuid>,
    pub(super) groups: BTreeSet<Uuid>,
    pub(super) sources: BTreeSet<Uuid>,
    pub(super) admin_tokens: BTreeSet<Uuid>,
    pub(super) providers: BTreeSet<Uuid>,
}

impl Touched {
    /// Which resources `records` of one directory touch, by kind.
    pub(super) fn of<'a>(records: impl IntoIterator<Item = &'a roster_events::Record>) -> Touched {
        let mut touched = Touched::default();
        for env in records.into_iter().flat_map(|r| &r.events) {
            let id = env.resource_id.0;
            match &env.event {
                Event::DirectoryCreated(_)
                | Event::DirectoryDeleted
                | Event::MappingCreated(_)
                | Event::MappingUpdated(_)
                | Event::MappingDeleted => touched.meta = true,
                Event::AdminTokenIssued(_) | Event::AdminTokenRevoked(_) => {
                    touched.admin_tokens.insert(id);
                }
                Event::SourceCreated(_)
                | Event::SourceDeleted
                | Event::SourceTokenIssued(_)
                | Event::SourceTokenRevoked(_)
                | Event::SourceSchemaDeclared(_)
                | Event::SourceMappingsSet(_) => {
                    touched.sources.insert(id);
                }
                Event::ProviderCreated(_)
                | Event::ProviderUpdated(_)
                | Event::ProviderDeleted
                | Event::ProviderSyncRequested
                | Event::ProviderRetryRequested
                | Event::ProviderReplayRequested(_) => {
                    touched.providers.insert(id);
                }
                Event::UserCreated(_)
                | Event::UserReplaced(_)
                | Event::UserDeleted
                | Event::UserErased(_)
                | Event::UserAdopted(_)
                | Event::UserPasswordSet(_) => {
                    touched.users.insert(id);
                }
                Event::GroupCreated(_)
                | Event::GroupReplaced(_)
                | Event::GroupMembersAdded(_)
                | Event::GroupMembersRemoved(_)
                | Event::GroupDeleted
                | Event::GroupAdopted(_) => {
                    touched.groups.insert(id);
                }
                // In the log for the audit trail; no view holds them.
                Event::AccessRefused(_) | Event::AuditRead(_) => {}
            }
        }
        touched
    }
}

/// One directory's share of a batch: the state loaded before folding, the fold after, and the
/// users and groups the fold deleted.
pub(super) struct DirBatch {
    pub(super) touched: Touched,
    pub(super) before: Directory,
    pub(super) after: Directory,
    pub(super) retired: Vec<Uuid>,
}

/// Rows to write: the users' and groups' as row types (borrowed from the batches), the
/// others' one vector per column, for the `UNNEST` statements.
#[derive(Default)]
pub(super) struct Writes<'a> {
    pub(super) user_del: (Vec<String>, Vec<Uuid>),
    /// Each user row, with whether it is new (COPY) or replaces one (upsert).
    pub(super) users: Vec<(UserRow<'a>, bool)>,
    pub(super) email_del: (Vec<String>, Vec<Uuid>),
    pub(super) emails: (Vec<String>, Vec<Uuid>, Vec<String>),
    pub(super) group_del: (Vec<String>, Vec<Uuid>),
    pub(super) groups: Vec<GroupRow<'a>>,
    pub(super) member_del: (Vec<String>, Vec<Uuid>, Vec<Uuid>, Vec<i16>),
    pub(super) member_group_del: (Vec<String>, Vec<Uuid>),
    pub(super) members: (Vec<String>, Vec<Uuid>, Vec<Uuid>, Vec<i16>),
    pub(super) sources: (Vec<String>, Vec<Uuid>, Vec<String>, Vec<String>),
    pub(super) source_del: (Vec<String>, Vec<Uuid>),
    pub(super) admin_tokens: (Vec<String>, Vec<Uuid>, Vec<String>),
    pub(super) admin_token_del: (Vec<String>, Vec<Uuid>),
    pub(super) providers: (Vec<String>, Vec<Uuid>, Vec<String>),
    pub(super) provider_del: (Vec<String>, Vec<Uuid>),
    pub(super) meta: (Vec<String>, Vec<Option<String>>),
    pub(super) retired: (Vec<String>, Vec<Uuid>),
    /// Changes to `view_counts`: by directory, kind and owner ('' for none).
    pub(super) counts: BTreeMap<(String, &'static str, String), i64>,
}

impl<'a> Writes<'a> {
    /// Counts a resource of `kind` out of `before`'s owner and into `after`'s.
    fn count(
        &mut self,
        dir: &str,
        kind: &'static str,
        before: Option<&Option<String>>,
        after: Option<&Option<String>>,
    ) {
        if before == after {
            return;
        }
        for (owner, delta) in [(before, -1), (after, 1)] {
            if let Some(owner) = owner {
                let key = (dir.to_owned(), kind, owner.clone().unwrap_or_default());
                *self.counts.entry(key).or_default() += delta;
            }
        }
    }

    fn user(
        &mut self,
        dir: &'a str,
        before: Option<&Arc<UserView>>,
        after: Option<&'a Arc<UserView>>,
    ) {
        let id = match (before, after) {
            (_, Some(a)) => a.id.0,
            (Some(b), None) => b.id.0,
            (None, None) => return,
        };
        if let (Some(b), Some(a)) = (before, after) {
            if Arc::ptr_eq(a, b) {
                return;
            }
        }
        self.count(
            dir,
            "user",
            before.map(|b| &b.owner),
            after.map(|a| &a.owner),
        );
        let old_emails = before.map(|b| email_values(b)).unwrap_or_default();
        let new_emails = after.map(|a| email_values(a)).unwrap_or_default();
        if old_emails != new_emails {
            if before.is_some() {
                self.email_del.0.push(dir.to_owned());
                self.email_del.1.push(id);
            }
            for e in new_emails {
                self.emails.0.push(dir.to_owned());
                self.emails.1.push(id);
                self.emails.2.push(e);
            }
        }
        let Some(u) = after else {
            self.user_del.0.push(dir.to_owned());
            self.user_del.1.push(id);
            return;
        };
        self.users.push((UserRow::of(dir, u), before.is_none()));
    }

    fn group(
        &mut self,
        dir: &'a str,
        before: Option<&Arc<GroupView>>,
        after: Option<&'a Arc<GroupView>>,
    ) {
        let id = match (before, after) {
            (_, Some(a)) => a.id.0,
            (Some(b), None) => b.id.0,
            (None, None) => return,
        };
        if let (Some(b), Some(a)) = (before, after) {
            if Arc::ptr_eq(a, b) {
                return;
            }
        }
        self.count(
            dir,
            "group",
            before.map(|b| &b.owner),
            after.map(|a| &a.owner),
        );
        let Some(g) = after else {
            self.group_del.0.push(dir.to_owned());
            self.group_del.1.push(id);
            self.member_group_del.0.push(dir.to_owned());
            self.member_group_del.1.push(id);
            return;
        };
        let empty = BTreeSet::new();
        let old = before.map_or(&empty, |b| &b.members);
        for m in old.difference(&g.members) {
            self.member_del.0.push(dir.to_owned());
            self.member_del.1.push(id);
            self.member_del.2.push(m.value.0);
            self.member_del.3.push(member_type_code(m.kind));
        }
        for m in g.members.difference(old) {
            self.members.0.push(dir.to_owned());
            self.members.1.push(id);
            self.members.2.push(m.value.0);
            self.members.3.push(member_type_code(m.kind));
        }
        self.groups.push(GroupRow::of(dir, g));
    }

    /// Gathers the rows of one directory's share of a batch.
    pub(super) fn collect(&mut self, b: &'a DirBatch) {
        let dir = b.after.name();
        for id in &b.touched.users {
            let rid = ResourceId(*id);
            self.user(dir, b.before.user(rid), b.after.user(rid));
        }
        for id in &b.touched.groups {
            let rid = ResourceId(*id);
            self.group(dir, b.before.group(rid), b.after.group(rid));
        }
        for id in &b.touched.sources {
            let rid = ResourceId(*id);
            match b.after.source(rid) {
                Some(s) => {
                    self.sources.0.push(dir.to_owned());
                    self.sources.1.push(*id);
                    self.sources.2.push(s.slug.clone());
                    self.sources.3.push(to_json(s.as_ref()));
                }
                None => {
                    self.source_del.0.push(dir.to_owned());
                    self.source_del.1.push(*id);
                }
            }
        }
        let tokens: HashMap<&ResourceId, &AdminTokenView> = b.after.admin_tokens_by_key().collect();
        for id in &b.touched.admin_tokens {
            match tokens.get(&ResourceId(*id)) {
                Some(t) => {
                    self.admin_tokens.0.push(dir.to_owned());
                    self.admin_tokens.1.push(*id);
                    self.admin_tokens.2.push(to_json(*t));
                }
                None => {
                    self.admin_token_del.0.push(dir.to_owned());
                    self.admin_token_del.1.push(*id);
                }
            }
        }
        for id in &b.touched.providers {
            match b.after.provider(ResourceId(*id)) {
                Some(p) => {
                    self.providers.0.push(dir.to_owned());
                    self.providers.1.push(*id);
                    self.providers.2.push(to_json(p.as_ref()));
                }
                None => {
                    self.provider_del.0.push(dir.to_owned());
                    self.provider_del.1.push(*id);
                }
            }
        }
        for id in &b.retired {
            self.retired.0.push(dir.to_owned());
            self.retired.1.push(*id);
        }
        if b.touched.meta {
            // A deleted directory keeps its row (and its chain head) with no meta.
            self.meta.0.push(dir.to_owned());
            self.meta.1.push(b.after.meta().map(to_json));
        }
    }
}
