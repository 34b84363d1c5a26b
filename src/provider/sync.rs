//! One object's change carried to a remote: the requests it takes, the link between the
//! local id and the remote id, and the recoveries RFC 7644 servers need in practice. A create
//! that meets a 409 looks the object up (`userName` / `displayName`) and links it; an update
//! that meets a 404 creates the object again; a delete of something already gone is done.
//! In a dry run nothing is sent: the requests that would be are collected instead.

use super::client::{Remote, RemoteError, Response};
use super::compat::Mode;
use super::mapping::Mapping;
use super::plan::{self, Kind, RemoteMember, Request};
use reqwest::StatusCode;
use roster_events::{Member, ResourceId};
use roster_projections::{GroupView, UserView};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};

/// Which remote object each local object is (the provider's id map).
pub trait Links: Send + Sync {
    fn remote(&self, kind: Kind, local: ResourceId) -> Option<String>;
    fn link(&mut self, kind: Kind, local: ResourceId, remote: String);
    fn unlink(&mut self, kind: Kind, local: ResourceId);
}

/// An id map in memory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemoryLinks(pub HashMap<(Kind, ResourceId), String>);

impl Links for MemoryLinks {
    fn remote(&self, kind: Kind, local: ResourceId) -> Option<String> {
        self.0.get(&(kind, local)).cloned()
    }
    fn link(&mut self, kind: Kind, local: ResourceId, remote: String) {
        self.0.insert((kind, local), remote);
    }
    fn unlink(&mut self, kind: Kind, local: ResourceId) {
        self.0.remove(&(kind, local));
    }
}

/// Links a task starts from (a copy of the provider's, for the objects it touches), with the
/// changes it made, to be applied to the provider's map when it ends.
#[derive(Debug, Default)]
pub struct TaskLinks {
    pub base: MemoryLinks,
    /// In order: a link set (Some) or removed (None).
    pub changes: Vec<(Kind, ResourceId, Option<String>)>,
}

impl Links for TaskLinks {
    fn remote(&self, kind: Kind, local: ResourceId) -> Option<String> {
        self.base.remote(kind, local)
    }
    fn link(&mut self, kind: Kind, local: ResourceId, remote: String) {
        self.base.link(kind, local, remote.clone());
        self.changes.push((kind, local, Some(remote)));
    }
    fn unlink(&mut self, kind: Kind, local: ResourceId) {
        self.base.unlink(kind, local);
        self.changes.push((kind, local, None));
    }
}

/// Why a change did not reach the remote.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The remote says the object exists but cannot find it, or answered without an id.
    #[error("{0}")]
    Unmatched(String),
}

/// Carries changes to one remote.
pub struct Syncer<'a> {
    pub remote: &'a Remote,
    pub mode: Mode,
    pub mapping: &'a dyn Mapping,
    /// Deleted users are deactivated (`active: false`) instead of deleted.
    pub deactivate: bool,
    /// When set, nothing is sent: every request that would be is appended here. The links
    /// change as in a real run (a created object is linked to the id `dry-run`), so that
    /// later changes plan as they would: give a dry run a copy of the provider's links.
    pub dry_run: Option<Vec<Request>>,
}

/// A remote resource as a document to send back: without what the server owns.
fn remote_document(body: Option<Value>) -> Map<String, Value> {
    let mut doc = match body {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    doc.remove("meta");
    doc.remove("id");
    doc
}

/// The `id` of a remote resource.
fn id_of(resource: &Value) -> Option<String> {
    resource
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn status_is(e: &SyncError, status: StatusCode) -> bool {
    matches!(e, SyncError::Remote(RemoteError::Status { status: s, .. }) if *s == status)
}

impl Syncer<'_> {
    async fn send(&mut self, request: Request) -> Result<Response, SyncError> {
        if let Some(planned) = &mut self.dry_run {
            planned.push(request);
            // What a remote would answer, so that a dry run goes on as a real one would.
            return Ok(Response {
                status: StatusCode::OK,
                body: Some(serde_json::json!({"id": "dry-run"})),
            });
        }
        Ok(self.remote.send(&request).await?)
    }

    /// Creates `document`, linking the remote object; on 409 finds it by `name` and links
    /// it, then replaces it with `document`.
    async fn create(
        &mut self,
        kind: Kind,
        local: ResourceId,
        name: Option<&str>,
        document: Value,
        links: &mut dyn Links,
    ) -> Result<(), SyncError> {
        match self.send(plan::create(kind, document.clone())).await {
            Ok(r) => {
                let id = r.body.as_ref().and_then(id_of).ok_or_else(|| {
                    SyncError::Unmatched("the remote created the object but gave no id".into())
                })?;
                links.link(kind, local, id);
                Ok(())
            }
            Err(e) if status_is(&e, StatusCode::CONFLICT) => {
                let name = name.ok_or(e)?;
                let found = self.send(plan::find(kind, name)).await?;
                let resources = found
                    .body
                    .as_ref()
                    .and_then(|b| b.get("Resources"))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let [only] = &resources[..] else {
                    return Err(SyncError::Unmatched(format!(
                        "the remote has {name:?} (409) but finds {} objects by it",
                        resources.len()
                    )));
                };
                let id = id_of(only)
                    .ok_or_else(|| SyncError::Unmatched("a found object has no id".into()))?;
                links.link(kind, local, id.clone());
                self.send(plan::replace(kind, &id, document)).await?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Replaces the linked object with `document`, or creates it (not linked yet, or gone
    /// from the remote: 404).
    async fn upsert(
        &mut self,
        kind: Kind,
        local: ResourceId,
        name: Option<&str>,
        document: Value,
        links: &mut dyn Links,
    ) -> Result<(), SyncError> {
        if let Some(id) = links.remote(kind, local) {
            match self.send(plan::replace(kind, &id, document.clone())).await {
                Err(e) if status_is(&e, StatusCode::NOT_FOUND) => links.unlink(kind, local),
                other => return other.map(drop),
            }
        }
        self.create(kind, local, name, document, links).await
    }

    /// A user created or changed.
    pub async fn user(&mut self, user: &UserView, links: &mut dyn Links) -> Result<(), SyncError> {
        let Some(document) = self.mapping.user(user) else {
            return Ok(());
        };
        let name = user.keys.user_name.clone();
        self.upsert(
            Kind::User,
            user.id,
            name.as_deref(),
            Value::Object(document),
            links,
        )
        .await
    }

    /// A user deleted (or out of scope): deleted on the remote, or deactivated. `last` is
    /// its last view if there is one; a deactivation by PUT without it reads the remote
    /// object and sends it back with `active: false`.
    pub async fn delete_user(
        &mut self,
        local: ResourceId,
        last: Option<&UserView>,
        links: &mut dyn Links,
    ) -> Result<(), SyncError> {
        let Some(id) = links.remote(Kind::User, local) else {
            return Ok(());
        };
        let request = if self.deactivate {
            let caps = self.remote.capabilities().await;
            let document = match last.and_then(|u| self.mapping.user(u)) {
                Some(d) => d,
                None if caps.patch => Map::new(),
                None => match self.send(plan::get(Kind::User, &id)).await {
                    Ok(r) => remote_document(r.body),
                    Err(e) if status_is(&e, StatusCode::NOT_FOUND) => return Ok(()),
                    Err(e) => return Err(e),
                },
            };
            plan::deactivate(caps, &id, &document)
        } else {
            plan::delete(Kind::User, &id)
        };
        match self.send(request).await {
            Err(e) if !status_is(&e, StatusCode::NOT_FOUND) => return Err(e),
            _ => {}
        }
        if !self.deactivate {
            links.unlink(Kind::User, local);
        }
        Ok(())
    }

    /// Links `local` to the remote object whose externalId is its id, if the remote can
    /// filter and has one: before a create whose earlier attempt may have reached the remote.
    /// True if it is linked now.
    pub async fn find_own(
        &mut self,
        kind: Kind,
        local: ResourceId,
        links: &mut dyn Links,
    ) -> Result<bool, SyncError> {
        if links.remote(kind, local).is_some() {
            return Ok(true);
        }
        if !self.remote.capabilities().await.filter {
            return Ok(false);
        }
        let found = self
            .send(plan::find_by_external_id(kind, &local.to_string()))
            .await?;
        let resources = found
            .body
            .as_ref()
            .and_then(|b| b.get("Resources"))
            .and_then(Value::as_array);
        match resources.map(|r| &r[..]) {
            Some([only]) => match id_of(only) {
                Some(id) if id != "dry-run" => {
                    links.link(kind, local, id);
                    Ok(true)
                }
                _ => Ok(false),
            },
            _ => Ok(false),
        }
    }

    fn remote_members(&self, members: &BTreeSet<Member>, links: &dyn Links) -> Vec<RemoteMember> {
        members
            .iter()
            .filter_map(|m| {
                let kind = match m.kind {
                    roster_events::MemberType::User => Kind::User,
                    roster_events::MemberType::Group => Kind::Group,
                };
                links.remote(kind, m.value).map(|id| (id, m.kind))
            })
            .collect()
    }

    fn group_document(&self, group: &GroupView, links: &dyn Links) -> Option<Map<String, Value>> {
        let members = self
            .remote_members(&group.members, links)
            .iter()
            .map(|(id, kind)| self.mode.member(id, *kind))
            .collect();
        self.mapping.group(group, members)
    }

    /// A group created or changed; `before` is its previous view (None for a new group).
    /// Only the members changed: PATCH add/remove where the remote supports it (PUT of the
    /// whole group otherwise); anything else changed: PUT of the whole group.
    pub async fn group(
        &mut self,
        before: Option<&GroupView>,
        group: &GroupView,
        links: &mut dyn Links,
    ) -> Result<(), SyncError> {
        let Some(document) = self.group_document(group, links) else {
            return Ok(());
        };
        let name = group.keys.display_name.clone();
        let linked = links.remote(Kind::Group, group.id);
        let members_only = before.filter(|b| b.resource == group.resource);
        let (Some(before), Some(remote)) = (members_only, linked) else {
            // New, not linked yet, or more than the members changed: the whole group.
            let document = Value::Object(document);
            return self
                .upsert(Kind::Group, group.id, name.as_deref(), document, links)
                .await;
        };
        let added: BTreeSet<Member> = group.members.difference(&before.members).copied().collect();
        let removed: BTreeSet<Member> =
            before.members.difference(&group.members).copied().collect();
        let add = self.remote_members(&added, links);
        let remove = self.remote_members(&removed, links);
        let caps = self.remote.capabilities().await;
        let full = Value::Object(document.clone());
        for request in plan::change_members(self.mode, caps, &remote, &add, &remove, || full) {
            match self.send(request).await {
                Err(e) if status_is(&e, StatusCode::NOT_FOUND) => {
                    links.unlink(Kind::Group, group.id);
                    return self
                        .create(
                            Kind::Group,
                            group.id,
                            name.as_deref(),
                            Value::Object(document),
                            links,
                        )
                        .await;
                }
                other => {
                    other?;
                }
            }
        }
        Ok(())
    }

    /// A group deleted.
    pub async fn delete_group(
        &mut self,
        local: ResourceId,
        links: &mut dyn Links,
    ) -> Result<(), SyncError> {
        let Some(id) = links.remote(Kind::Group, local) else {
            return Ok(());
        };
        match self.send(plan::delete(Kind::Group, &id)).await {
            Err(e) if !status_is(&e, StatusCode::NOT_FOUND) => return Err(e),
            _ => {}
        }
        links.unlink(Kind::Group, local);
        Ok(())
    }
}
