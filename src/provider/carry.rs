//! One task of a provider: one object brought up to date on the remote. The task reads the
//! object's current view (the views are at or past every change the task was queued for),
//! works out what the remote should hold (scope, members that are linked), and sends what
//! makes it so through [`Syncer`]. It works on a copy of the links it needs and hands back
//! what it changed.

use super::client::Remote;
use super::compat::Mode;
use super::mapping::Mapping;
use super::plan::{Kind, Request};
use super::scope;
use super::state::{Key, Work};
use super::sync::{Links, MemoryLinks, SyncError, Syncer, TaskLinks};
use roster_events::{Member, MemberType, ProviderScope, ResourceId};
use roster_projections::{GroupView, ProjectionStore};
use std::collections::BTreeSet;
use std::sync::Arc;

/// What every task of one provider shares.
pub struct TaskContext {
    pub remote: Arc<Remote>,
    pub store: Arc<dyn ProjectionStore>,
    pub directory: String,
    pub mode: Mode,
    pub mapping: Arc<dyn Mapping>,
    pub scope: ProviderScope,
    pub deactivate: bool,
    pub dry_run: bool,
}

/// How a task ended.
pub struct Outcome {
    pub key: Key,
    pub result: Result<(), String>,
    /// Links set or removed, in order.
    pub links: Vec<(Kind, ResourceId, Option<String>)>,
    /// Members in scope left out of this group because they have no remote id yet.
    pub waiting: Vec<Member>,
    /// The requests a dry run would have sent.
    pub planned: Vec<Request>,
}

/// The links a task on `key` needs: its own, and for a group its members' (current and
/// removed).
pub fn links_for(
    key: Key,
    work: &Work,
    group: Option<&GroupView>,
    all: &MemoryLinks,
) -> MemoryLinks {
    let mut out = MemoryLinks::default();
    let mut copy = |kind: Kind, id: ResourceId| {
        if let Some(r) = all.remote(kind, id) {
            out.0.insert((kind, id), r);
        }
    };
    copy(key.0, key.1);
    let members = group
        .into_iter()
        .flat_map(|g| g.members.iter())
        .chain(&work.removed)
        .chain(&work.added);
    for m in members {
        copy(member_kind(m.kind), m.value);
    }
    out
}

pub fn member_kind(kind: MemberType) -> Kind {
    match kind {
        MemberType::User => Kind::User,
        MemberType::Group => Kind::Group,
    }
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Carries `work` for `key` to the remote.
pub async fn carry(
    cx: Arc<TaskContext>,
    key: Key,
    work: Work,
    group: Option<Arc<GroupView>>,
    links: MemoryLinks,
) -> Outcome {
    let mut links = TaskLinks {
        base: links,
        changes: Vec::new(),
    };
    let mut syncer = Syncer {
        remote: &cx.remote,
        mode: cx.mode,
        mapping: cx.mapping.as_ref(),
        deactivate: cx.deactivate,
        dry_run: cx.dry_run.then(Vec::new),
    };
    let mut waiting = Vec::new();
    let result = match key.0 {
        Kind::User => carry_user(&cx, key.1, &work, &mut syncer, &mut links).await,
        Kind::Group => {
            carry_group(
                &cx,
                key.1,
                &work,
                group,
                &mut syncer,
                &mut links,
                &mut waiting,
            )
            .await
        }
    };
    Outcome {
        key,
        result,
        links: links.changes,
        waiting,
        planned: syncer.dry_run.unwrap_or_default(),
    }
}

async fn carry_user(
    cx: &TaskContext,
    id: ResourceId,
    work: &Work,
    syncer: &mut Syncer<'_>,
    links: &mut TaskLinks,
) -> Result<(), String> {
    let view = cx.store.user(&cx.directory, id).await.map_err(text)?;
    let Some(user) = view else {
        return syncer.delete_user(id, None, links).await.map_err(text);
    };
    let in_scope = scope::users_in_scope(cx.store.as_ref(), &cx.directory, &cx.scope, &[&user])
        .await
        .map_err(text)?;
    if !in_scope[0] {
        return syncer
            .delete_user(id, Some(&user), links)
            .await
            .map_err(text);
    }
    if work.verify {
        syncer.find_own(Kind::User, id, links).await.map_err(text)?;
    }
    syncer.user(&user, links).await.map_err(text)
}

/// The members of `group` the remote should have: users in scope and groups in scope.
pub(crate) async fn members_in_scope(
    cx: &TaskContext,
    group: &GroupView,
) -> Result<BTreeSet<Member>, String> {
    let user_ids: Vec<ResourceId> = group
        .members
        .iter()
        .filter(|m| m.kind == MemberType::User)
        .map(|m| m.value)
        .collect();
    let mut keep = BTreeSet::new();
    let restricted = cx.scope.exclude_service_accounts || !cx.scope.access_groups.is_empty();
    if !restricted {
        // Memberships only ever name users that exist (a deleted user leaves its groups).
        keep.extend(group.members.iter().filter(|m| m.kind == MemberType::User));
    } else if !user_ids.is_empty() {
        let mut views = Vec::with_capacity(user_ids.len());
        for id in &user_ids {
            if let Some(u) = cx.store.user(&cx.directory, *id).await.map_err(text)? {
                views.push(u);
            }
        }
        let refs: Vec<&roster_projections::UserView> = views.iter().map(|u| u.as_ref()).collect();
        let in_scope = scope::users_in_scope(cx.store.as_ref(), &cx.directory, &cx.scope, &refs)
            .await
            .map_err(text)?;
        for (u, ok) in views.iter().zip(in_scope) {
            if ok {
                keep.insert(Member {
                    value: u.id,
                    kind: MemberType::User,
                });
            }
        }
    }
    for m in group.members.iter().filter(|m| m.kind == MemberType::Group) {
        if scope::group_in_scope(&cx.scope, m.value) {
            keep.insert(*m);
        }
    }
    Ok(keep)
}

#[allow(clippy::too_many_arguments)]
async fn carry_group(
    cx: &TaskContext,
    id: ResourceId,
    work: &Work,
    group: Option<Arc<GroupView>>,
    syncer: &mut Syncer<'_>,
    links: &mut TaskLinks,
    waiting: &mut Vec<Member>,
) -> Result<(), String> {
    let Some(group) = group else {
        return syncer.delete_group(id, links).await.map_err(text);
    };
    if !scope::group_in_scope(&cx.scope, id) {
        // Out of the filter: what was synced stays as it was.
        return Ok(());
    }
    let members = members_in_scope(cx, &group).await?;
    for m in &members {
        if links.remote(member_kind(m.kind), m.value).is_none() {
            waiting.push(*m);
        }
    }
    let mut desired = GroupView::clone(&group);
    desired.members = members;
    if work.verify {
        syncer
            .find_own(Kind::Group, id, links)
            .await
            .map_err(text)?;
    }
    let linked = links.remote(Kind::Group, id).is_some();
    if work.whole || !linked {
        return syncer.group(None, &desired, links).await.map_err(text);
    }
    // Only members changed: the group as the remote has it is the desired one without what
    // was added and with what was removed.
    let mut before = desired.clone();
    for m in &work.added {
        before.members.remove(m);
    }
    for m in &work.removed {
        if !desired.members.contains(m) {
            before.members.insert(*m);
        }
    }
    match syncer.group(Some(&before), &desired, links).await {
        // A member removal the remote no longer has to do (it already happened).
        Err(SyncError::Remote(super::client::RemoteError::Status { status, detail }))
            if status == reqwest::StatusCode::BAD_REQUEST
                && detail.to_ascii_lowercase().contains("notarget") =>
        {
            Ok(())
        }
        other => other.map_err(text),
    }
}
