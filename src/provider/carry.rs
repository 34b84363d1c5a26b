//! One task of a provider: one object brought up to date on the remote. The task reads the
//! object's current view (the views are at or past every change the task was queued for),
//! works out what the remote should hold (scope, members that are linked), and sends what
//! makes it so through [`Syncer`]. It works on a copy of the links it needs and hands back
//! what it changed.

use super::client::{Remote, RemoteError};
use super::compat::{Learned, Mode};
use super::mapping::Mapping;
use super::plan::{Kind, Request};
use super::scope;
use super::state::{Key, Work};
use super::sync::{Echo, Links, MemoryLinks, SyncError, Syncer, TaskLinks};
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
    /// What the provider learned about the remote, shared by its tasks and saved with its
    /// progress.
    pub learned: Arc<std::sync::Mutex<Learned>>,
}

/// Why a task failed, and whether trying again can help.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub message: String,
    /// The remote said it will never do this (501 Not Implemented, 405): the object is parked
    /// at once instead of being tried again and again.
    pub permanent: bool,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure {
            message: e.to_string(),
            permanent: false,
        }
    }
}

/// A sync error as a task failure.
fn failure(e: SyncError) -> Failure {
    // A mapping fails the same way every time, until it is changed (which syncs again).
    let permanent = matches!(
        &e,
        SyncError::Remote(RemoteError::Status { status, .. })
            if *status == reqwest::StatusCode::NOT_IMPLEMENTED
                || *status == reqwest::StatusCode::METHOD_NOT_ALLOWED
    ) || matches!(e, SyncError::Mapping(_));
    Failure {
        message: e.to_string(),
        permanent,
    }
}

/// How a task ended.
pub struct Outcome {
    pub key: Key,
    pub result: Result<(), Failure>,
    /// Links set or removed, in order.
    pub links: Vec<(Kind, ResourceId, Option<String>)>,
    /// What the remote answered to what was sent.
    pub echoes: Vec<(Kind, ResourceId, Echo)>,
    /// Members in scope left out of this group because they have no remote id yet.
    pub waiting: Vec<Member>,
    /// The requests a dry run would have sent.
    pub planned: Vec<Request>,
    /// Groups to carry whole next (a deleted user left them, and the remote takes member
    /// removals only as a replacement of the group).
    pub whole: Vec<ResourceId>,
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
    for g in &work.left {
        copy(Kind::Group, *g);
    }
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
        ..TaskLinks::default()
    };
    let mut syncer = Syncer {
        remote: &cx.remote,
        mode: cx.mode,
        mapping: cx.mapping.as_ref(),
        deactivate: cx.deactivate,
        learned: &cx.learned,
        dry_run: cx.dry_run.then(Vec::new),
    };
    let mut waiting = Vec::new();
    let mut whole = Vec::new();
    let result = match key.0 {
        Kind::User => carry_user(&cx, key.1, &work, &mut syncer, &mut links, &mut whole).await,
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
        echoes: links.echoes,
        waiting,
        planned: syncer.dry_run.unwrap_or_default(),
        whole,
    }
}

async fn carry_user(
    cx: &TaskContext,
    id: ResourceId,
    work: &Work,
    syncer: &mut Syncer<'_>,
    links: &mut TaskLinks,
    whole: &mut Vec<ResourceId>,
) -> Result<(), Failure> {
    let view = cx.store.user(&cx.directory, id).await?;
    let Some(user) = view else {
        *whole = syncer
            .delete_user(id, None, &work.left, links)
            .await
            .map_err(failure)?;
        return Ok(());
    };
    let in_scope =
        scope::users_in_scope(cx.store.as_ref(), &cx.directory, &cx.scope, &[&user]).await?;
    if !in_scope[0] {
        syncer
            .delete_user(id, Some(&user), &BTreeSet::new(), links)
            .await
            .map_err(failure)?;
        return Ok(());
    }
    if work.verify {
        syncer
            .find_own(Kind::User, id, links)
            .await
            .map_err(failure)?;
    }
    syncer.user(&user, links).await.map_err(failure)
}

/// The members of `group` the remote should have: users in scope and groups in scope.
pub(crate) async fn members_in_scope(
    cx: &TaskContext,
    group: &GroupView,
) -> Result<BTreeSet<Member>, String> {
    let text = |e: roster_projections::StoreError| e.to_string();
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
) -> Result<(), Failure> {
    let Some(group) = group else {
        return syncer.delete_group(id, links).await.map_err(failure);
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
            .map_err(failure)?;
    }
    let linked = links.remote(Kind::Group, id).is_some();
    if work.whole || !linked {
        return syncer.group(None, &desired, links).await.map_err(failure);
    }
    // Only members changed: the group as the remote has it is the desired one without what
    // was added and with what was removed. A user that left by being deleted is taken out by
    // its own delete, where the remote needs that at all.
    let mut before = desired.clone();
    for m in &work.added {
        before.members.remove(m);
    }
    for m in &work.removed {
        let deleted =
            m.kind == MemberType::User && cx.store.user(&cx.directory, m.value).await?.is_none();
        if !desired.members.contains(m) && !deleted {
            before.members.insert(*m);
        }
    }
    match syncer.group(Some(&before), &desired, links).await {
        // A member removal the remote no longer has to do (it already happened).
        Err(SyncError::Remote(e)) if e.is_no_target() => Ok(()),
        other => other.map_err(failure),
    }
}

/// The status of one Bulk response operation: a string (`"201"`), a number, or (older
/// servers) an object with `code`.
fn bulk_status(op: &serde_json::Value) -> u16 {
    let s = &op["status"];
    s.as_str()
        .and_then(|t| t.parse().ok())
        .or_else(|| s.as_u64().map(|n| n as u16))
        .or_else(|| s["code"].as_u64().map(|n| n as u16))
        .unwrap_or(0)
}

/// The remote id a Bulk POST created: the response's `id`, or the last segment of its
/// `location`.
fn bulk_created_id(op: &serde_json::Value) -> Option<String> {
    op["response"]["id"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            op["location"]
                .as_str()
                .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        })
}

/// Carries several users' work in Bulk requests (RFC 7644 §3.7) within the remote's
/// limits: one operation per user (POST, PUT, DELETE, or a PATCH deactivation). A user that
/// needs more than one request (a 409 to look up, a 404 to create again, a deactivation by
/// PUT) is carried on its own, in this task, after the Bulk answer.
pub async fn carry_users_bulk(
    cx: Arc<TaskContext>,
    items: Vec<(Key, Work)>,
    limits: super::compat::BulkLimits,
    links: MemoryLinks,
) -> Vec<Outcome> {
    let caps = cx.remote.capabilities().await;
    let mut outcomes: Vec<Outcome> = items
        .iter()
        .map(|(key, _)| Outcome {
            key: *key,
            result: Ok(()),
            links: Vec::new(),
            echoes: Vec::new(),
            waiting: Vec::new(),
            planned: Vec::new(),
            whole: Vec::new(),
        })
        .collect();
    // Per item: the operation sent for it, or None when it is carried alone (or needs
    // nothing).
    let mut ops: Vec<(usize, super::plan::BulkOperation)> = Vec::new();
    let mut alone: Vec<usize> = Vec::new();
    // Every user's view and scope, read at once.
    let ids: Vec<ResourceId> = items.iter().map(|(key, _)| key.1).collect();
    let read = async {
        let views = cx.store.users(&cx.directory, &ids).await?;
        let present: Vec<&roster_projections::UserView> =
            views.iter().flatten().map(|u| &**u).collect();
        let mut in_scope =
            scope::users_in_scope(cx.store.as_ref(), &cx.directory, &cx.scope, &present)
                .await?
                .into_iter();
        let scoped: Vec<bool> = views
            .iter()
            .map(|v| v.is_some() && in_scope.next().unwrap_or(false))
            .collect();
        Ok::<_, roster_projections::StoreError>((views, scoped))
    };
    let (views, scoped) = match read.await {
        Ok(read) => read,
        Err(e) => {
            for o in &mut outcomes {
                o.result = Err(Failure::from(&e));
            }
            return outcomes;
        }
    };
    for (i, (view, in_scope)) in views.into_iter().zip(scoped).enumerate() {
        let id = ids[i];
        let linked = links.remote(Kind::User, id);
        let op = match (&view, in_scope, linked) {
            (Some(u), true, linked) => match cx.mapping.user(u) {
                Err(e) => {
                    outcomes[i].result = Err(failure(e.into()));
                    continue;
                }
                Ok(None) => continue,
                Ok(Some(doc)) => match linked {
                    Some(rid) => super::plan::BulkOperation {
                        bulk_id: None,
                        request: super::plan::replace(Kind::User, &rid, doc.into()),
                    },
                    None => super::plan::BulkOperation {
                        bulk_id: Some(id.to_string()),
                        request: super::plan::create(Kind::User, doc.into()),
                    },
                },
            },
            (_, _, None) => continue,
            (_, _, Some(rid)) if !cx.deactivate => super::plan::BulkOperation {
                bulk_id: None,
                request: super::plan::delete(Kind::User, &rid),
            },
            (_, _, Some(rid)) if caps.patch => super::plan::BulkOperation {
                bulk_id: None,
                request: super::plan::deactivate(caps, &rid, &serde_json::Map::new()),
            },
            (_, _, Some(_)) => {
                alone.push(i);
                continue;
            }
        };
        ops.push((i, op));
    }
    // Requests within maxOperations and (estimated) maxPayloadSize.
    let mut chunks: Vec<Vec<(usize, super::plan::BulkOperation)>> = Vec::new();
    let mut size = 0;
    for (i, op) in ops {
        let bytes = op
            .request
            .body
            .as_ref()
            .map_or(64, |b| b.to_string().len() + 64);
        let full = chunks.last().is_none_or(|c| {
            c.len() >= limits.max_operations || size + bytes > limits.max_payload_bytes * 9 / 10
        });
        if full {
            chunks.push(Vec::new());
            size = 0;
        }
        size += bytes;
        if let Some(c) = chunks.last_mut() {
            c.push((i, op));
        }
    }
    for chunk in chunks {
        let request = super::plan::bulk(&chunk.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>());
        let answer = cx.remote.send(&request).await;
        let results = match answer {
            Ok(r) => r
                .body
                .and_then(|b| b.get("Operations").and_then(|o| o.as_array()).cloned())
                .unwrap_or_default(),
            Err(e) => {
                for (i, _) in &chunk {
                    outcomes[*i].result = Err(failure(SyncError::Remote(e.clone())));
                }
                continue;
            }
        };
        for (n, (i, op)) in chunk.iter().enumerate() {
            let id = items[*i].0 .1;
            // Matched by bulkId where there is one, by position otherwise.
            let result = op
                .bulk_id
                .as_ref()
                .and_then(|b| results.iter().find(|r| r["bulkId"].as_str() == Some(b)))
                .or_else(|| results.get(n));
            let Some(result) = result else {
                outcomes[*i].result = Err("the Bulk response has no answer for it".into());
                continue;
            };
            let status = bulk_status(result);
            let method = &op.request.method;
            match status {
                200..=299 if *method == reqwest::Method::POST => match bulk_created_id(result) {
                    Some(rid) => outcomes[*i].links.push((Kind::User, id, Some(rid))),
                    None => {
                        outcomes[*i].result =
                            Err("the remote created the user but gave no id".into())
                    }
                },
                200..=299 | 404 if *method == reqwest::Method::DELETE => {
                    outcomes[*i].links.push((Kind::User, id, None));
                }
                200..=299 => {}
                // Needs a lookup (409) or a create (404): the single path does both.
                409 | 404 => alone.push(*i),
                _ => {
                    let detail = result["response"]["detail"]
                        .as_str()
                        .unwrap_or("refused in a Bulk request");
                    outcomes[*i].result = Err(Failure {
                        message: format!("{status}: {detail}"),
                        permanent: status == 501 || status == 405,
                    });
                }
            }
        }
    }
    for i in alone {
        let (key, work) = items[i].clone();
        let mut own = MemoryLinks::default();
        if let Some(r) = links.remote(Kind::User, key.1) {
            own.0.insert((Kind::User, key.1), r);
        }
        // What the Bulk answer already changed for it comes first.
        for (k, l, r) in &outcomes[i].links {
            match r {
                Some(r) => own.0.insert((*k, *l), r.clone()),
                None => own.0.remove(&(*k, *l)),
            };
        }
        let single = carry(cx.clone(), key, work, None, own).await;
        outcomes[i].links.extend(single.links);
        outcomes[i].echoes.extend(single.echoes);
        outcomes[i].whole.extend(single.whole);
        outcomes[i].result = single.result;
    }
    outcomes
}
