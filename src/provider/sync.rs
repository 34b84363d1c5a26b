//! One object's change carried to a remote: the requests it takes, the link between the
//! local id and the remote id, and the recoveries RFC 7644 servers need in practice. A create
//! that meets a 409 looks the object up (`userName` / `displayName`) and links it; an update
//! that meets a 404 creates the object again; a delete of something already gone is done.
//! In a dry run nothing is sent: the requests that would be are collected instead.

use super::client::{Remote, RemoteError, Response};
use super::compat::{Learned, MemberRemoval, Mode};
use super::mapping::Mapping;
use super::plan::{self, Kind, RemoteMember, Request};
use reqwest::StatusCode;
use roster_events::{Member, ResourceId};
use roster_projections::{GroupView, UserView};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};

/// What was last sent for an object and what the remote answered, as fingerprints. A full
/// sync treats an object as unchanged while the remote still answers what it answered then,
/// so a remote that normalises what it stores (drops an email's `type`, keeps one email) is
/// not rewritten at every full sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Echo {
    pub sent: u64,
    pub answered: u64,
}

impl Echo {
    /// The echo of sending `sent` and getting `answered` back.
    pub fn of(sent: &Value, answered: &Value) -> Echo {
        Echo {
            sent: fingerprint(sent),
            answered: fingerprint(answered),
        }
    }
}

/// A stable fingerprint of a remote document, without what the server owns or computes
/// (`id`, `meta`, a user's `groups`) and without a group's `members`, which are compared
/// one by one: the first 8 bytes of the SHA-256 of its canonical JSON.
pub fn fingerprint(doc: &Value) -> u64 {
    use sha2::Digest;
    let mut doc = doc.clone();
    if let Value::Object(m) = &mut doc {
        m.retain(|k, _| {
            !["id", "meta", "groups", "members"]
                .iter()
                .any(|x| x.eq_ignore_ascii_case(k))
        });
    }
    // serde_json's map is ordered, so equal documents print the same.
    let digest = sha2::Sha256::digest(doc.to_string().as_bytes());
    u64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

/// Which remote object each local object is (the provider's id map).
pub trait Links: Send + Sync {
    fn remote(&self, kind: Kind, local: ResourceId) -> Option<String>;
    fn link(&mut self, kind: Kind, local: ResourceId, remote: String);
    fn unlink(&mut self, kind: Kind, local: ResourceId);
    /// Notes what the remote answered to what was sent for `local` (kept by tasks, for the
    /// next full sync's comparison).
    fn remember(&mut self, _kind: Kind, _local: ResourceId, _echo: Echo) {}
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
    /// What the remote answered to what the task sent.
    pub echoes: Vec<(Kind, ResourceId, Echo)>,
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
    fn remember(&mut self, kind: Kind, local: ResourceId, echo: Echo) {
        self.echoes.push((kind, local, echo));
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
    /// The change can only be made by replacing the group whole, which needs its document.
    #[error("the remote takes this member change only as a replacement of the whole group")]
    NeedsReplace,
    /// One of the provider's property mappings failed on the object.
    #[error(transparent)]
    Mapping(#[from] super::mapping::MappingFailed),
}

/// Carries changes to one remote.
pub struct Syncer<'a> {
    pub remote: &'a Remote,
    pub mode: Mode,
    pub mapping: &'a dyn Mapping,
    /// Deleted users are deactivated (`active: false`) instead of deleted.
    pub deactivate: bool,
    /// What the provider has learned about the remote; a refusal teaches it more.
    pub learned: &'a std::sync::Mutex<Learned>,
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

/// The values of the `members` a remote's group lists, if it lists them.
fn answered_members(group: &Value) -> Option<BTreeSet<String>> {
    let members = group.get("members")?.as_array()?;
    Some(
        members
            .iter()
            .filter_map(|m| match m.get("value")? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
    )
}

/// A refusal of the form a member removal was sent in: 501, or a 400 about the path, the
/// filter or the syntax (not one about the values).
fn refuses_removal(e: &SyncError) -> bool {
    match e {
        SyncError::Remote(RemoteError::Status { status, detail }) => {
            *status == StatusCode::NOT_IMPLEMENTED
                || (*status == StatusCode::BAD_REQUEST
                    && ["invalidPath", "invalidFilter", "invalidSyntax"]
                        .iter()
                        .any(|t| detail.contains(&format!("scimType {t}"))))
        }
        _ => false,
    }
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
    /// it, then replaces it with `document`. Returns the remote's answer to the last request.
    async fn create(
        &mut self,
        kind: Kind,
        local: ResourceId,
        name: Option<&str>,
        document: Value,
        links: &mut dyn Links,
    ) -> Result<Option<Value>, SyncError> {
        match self.send(plan::create(kind, document.clone())).await {
            Ok(r) => {
                let id = r.body.as_ref().and_then(id_of).ok_or_else(|| {
                    SyncError::Unmatched("the remote created the object but gave no id".into())
                })?;
                links.link(kind, local, id);
                Ok(r.body)
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
                Ok(self.send(plan::replace(kind, &id, document)).await?.body)
            }
            Err(e) => Err(e),
        }
    }

    /// Replaces the linked object with `document`, or creates it (not linked yet, or gone
    /// from the remote: 404). Returns the remote's answer to the last request.
    async fn upsert(
        &mut self,
        kind: Kind,
        local: ResourceId,
        name: Option<&str>,
        document: Value,
        links: &mut dyn Links,
    ) -> Result<Option<Value>, SyncError> {
        if let Some(id) = links.remote(kind, local) {
            match self.send(plan::replace(kind, &id, document.clone())).await {
                Err(e) if status_is(&e, StatusCode::NOT_FOUND) => links.unlink(kind, local),
                other => return other.map(|r| r.body),
            }
        }
        self.create(kind, local, name, document, links).await
    }

    /// A user created or changed.
    pub async fn user(&mut self, user: &UserView, links: &mut dyn Links) -> Result<(), SyncError> {
        let Some(document) = self.mapping.user(user)? else {
            return Ok(());
        };
        let name = user.keys.user_name.clone();
        let document = Value::Object(document);
        let answer = self
            .upsert(
                Kind::User,
                user.id,
                name.as_deref(),
                document.clone(),
                links,
            )
            .await?;
        if let Some(answer) = answer.filter(|a| a.is_object() && self.dry_run.is_none()) {
            links.remember(Kind::User, user.id, Echo::of(&document, &answer));
        }
        Ok(())
    }

    /// A user deleted (or out of scope): deleted on the remote, or deactivated. `last` is
    /// its last view if there is one; a deactivation by PUT without it reads the remote
    /// object and sends it back with `active: false`. A user that is not linked is looked up
    /// by externalId first (its create may have reached the remote before a crash).
    ///
    /// `left` are the groups a deleted user left with its deletion: it is removed from them
    /// on the remote too, unless the remote drops a deleted user from its groups itself
    /// (learned by looking at one group after the first such delete). Returns the groups
    /// whose members can only be set by replacing the group whole (the remote takes no
    /// member removal by PATCH): the caller carries them whole.
    pub async fn delete_user(
        &mut self,
        local: ResourceId,
        last: Option<&UserView>,
        left: &BTreeSet<ResourceId>,
        links: &mut dyn Links,
    ) -> Result<Vec<ResourceId>, SyncError> {
        if !self.find_own(Kind::User, local, links).await? {
            return Ok(Vec::new());
        }
        let Some(id) = links.remote(Kind::User, local) else {
            return Ok(Vec::new());
        };
        let groups: Vec<(ResourceId, String)> = left
            .iter()
            .filter_map(|g| links.remote(Kind::Group, *g).map(|r| (*g, r)))
            .collect();
        let drops = self
            .learned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drops_deleted_members;
        let mut whole = Vec::new();
        // A deactivated user stays on the remote, in its groups unless taken out.
        if self.deactivate || drops == Some(false) {
            whole = self.leave_groups(&id, &groups).await?;
        }
        let request = if self.deactivate {
            let caps = self.remote.capabilities().await;
            let mapped = match last {
                Some(u) => self.mapping.user(u)?,
                None => None,
            };
            let document = match mapped {
                Some(d) => d,
                None if caps.patch => Map::new(),
                None => match self.send(plan::get(Kind::User, &id)).await {
                    Ok(r) => remote_document(r.body),
                    Err(e) if status_is(&e, StatusCode::NOT_FOUND) => return Ok(whole),
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
        if !self.deactivate && drops.is_none() && self.dry_run.is_none() {
            if let Some((_, group)) = groups.first() {
                if let Some(kept) = self.still_member(group, &id).await? {
                    tracing::info!(
                        drops_deleted_members = !kept,
                        "learned whether the remote takes a deleted user out of its groups"
                    );
                    self.learned
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .drops_deleted_members = Some(!kept);
                    if kept {
                        whole = self.leave_groups(&id, &groups).await?;
                    }
                }
            }
        }
        if !self.deactivate {
            links.unlink(Kind::User, local);
        }
        Ok(whole)
    }

    /// Whether the remote's group `group` still lists `member`; None if the group is gone or
    /// its answer lists no members.
    async fn still_member(&mut self, group: &str, member: &str) -> Result<Option<bool>, SyncError> {
        match self.send(plan::get(Kind::Group, group)).await {
            Ok(r) => Ok(r
                .body
                .as_ref()
                .and_then(answered_members)
                .map(|m| m.contains(member))),
            Err(e) if status_is(&e, StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Takes `member` out of the remote `groups` by PATCH. Returns the groups that can only
    /// be fixed by replacing them whole.
    async fn leave_groups(
        &mut self,
        member: &str,
        groups: &[(ResourceId, String)],
    ) -> Result<Vec<ResourceId>, SyncError> {
        let mut whole = Vec::new();
        let leaving = [(member.to_owned(), roster_events::MemberType::User)];
        for (local, remote) in groups {
            match self.change_members(remote, &[], &leaving, None).await {
                Ok(_) => {}
                Err(SyncError::NeedsReplace) => whole.push(*local),
                Err(e) if status_is(&e, StatusCode::NOT_FOUND) => {}
                Err(SyncError::Remote(e)) if e.is_no_target() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(whole)
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

    fn group_document(
        &self,
        group: &GroupView,
        links: &dyn Links,
    ) -> Result<Option<Map<String, Value>>, SyncError> {
        let members = self
            .remote_members(&group.members, links)
            .iter()
            .map(|(id, kind)| self.mode.member(id, *kind))
            .collect();
        Ok(self.mapping.group(group, members)?)
    }

    /// A group created or changed; `before` is its previous view (None for a new group).
    /// Only the members changed: PATCH add/remove where the remote supports it (PUT of the
    /// whole group otherwise); anything else changed: PUT of the whole group. The remote's
    /// answer to a POST or PUT is checked: members it did not take are added, and members it
    /// kept that should have gone are removed, by PATCH.
    pub async fn group(
        &mut self,
        before: Option<&GroupView>,
        group: &GroupView,
        links: &mut dyn Links,
    ) -> Result<(), SyncError> {
        let Some(document) = self.group_document(group, links)? else {
            return Ok(());
        };
        let wanted = self.remote_members(&group.members, links);
        let name = group.keys.display_name.clone();
        let linked = links.remote(Kind::Group, group.id);
        let members_only = before.filter(|b| b.resource == group.resource);
        let (Some(before), Some(remote)) = (members_only, linked) else {
            // New, not linked yet, or more than the members changed: the whole group.
            let sent = Value::Object(document.clone());
            let answer = self
                .upsert(Kind::Group, group.id, name.as_deref(), sent.clone(), links)
                .await?;
            if let Some(a) = answer
                .as_ref()
                .filter(|a| a.is_object() && self.dry_run.is_none())
            {
                links.remember(Kind::Group, group.id, Echo::of(&sent, a));
            }
            return self
                .settle_members(group.id, &wanted, answer, &document, links)
                .await;
        };
        let added: BTreeSet<Member> = group.members.difference(&before.members).copied().collect();
        let removed: BTreeSet<Member> =
            before.members.difference(&group.members).copied().collect();
        let add = self.remote_members(&added, links);
        let remove = self.remote_members(&removed, links);
        match self
            .change_members(&remote, &add, &remove, Some(&document))
            .await
        {
            Err(e) if status_is(&e, StatusCode::NOT_FOUND) => {
                links.unlink(Kind::Group, group.id);
                let answer = self
                    .create(
                        Kind::Group,
                        group.id,
                        name.as_deref(),
                        Value::Object(document.clone()),
                        links,
                    )
                    .await?;
                self.settle_members(group.id, &wanted, answer, &document, links)
                    .await
            }
            other => other.map(drop),
        }
    }

    /// Sends a member change in the form the remote takes: when it refuses a form of removal
    /// (501, or 400 for the path, filter or syntax), the next form is learned and the change
    /// is sent again (adds are idempotent). Returns the answer to the last request.
    ///
    /// Fails with `NeedsReplace` when only a PUT can make the change and no `document` was
    /// given for it.
    async fn change_members(
        &mut self,
        remote: &str,
        add: &[RemoteMember],
        remove: &[RemoteMember],
        document: Option<&Map<String, Value>>,
    ) -> Result<Option<Value>, SyncError> {
        let caps = self.remote.capabilities().await;
        loop {
            let removal = self
                .learned
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .member_removal;
            let replaces = !caps.patch || (removal == MemberRemoval::Replace && !remove.is_empty());
            if replaces && document.is_none() {
                return Err(SyncError::NeedsReplace);
            }
            // Called only to replace, and then there is a document.
            let full = || Value::Object(document.cloned().unwrap_or_default());
            let requests =
                plan::change_members(self.mode, caps, removal, remote, add, remove, full);
            let mut answer = None;
            let mut refused = None;
            for request in requests {
                match self.send(request).await {
                    Ok(r) => answer = r.body,
                    Err(e) if !remove.is_empty() && refuses_removal(&e) => {
                        refused = Some(e);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            let Some(e) = refused else {
                return Ok(answer);
            };
            let Some(next) = removal.next() else {
                return Err(e);
            };
            tracing::warn!(
                remote,
                refused = ?removal,
                next = ?next,
                error = %e,
                "the remote refuses this form of member removal; using the next from now on"
            );
            let mut learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
            learned.member_removal = learned.member_removal.max(next);
        }
    }

    /// Makes the remote's members of a group sent whole (POST or PUT) what was sent: a remote
    /// that ignores `members` there (django-scim2, SaaS apps built for Entra ID's PATCH) gets
    /// the missing ones added and the extra ones removed by PATCH. An answer without
    /// `members` says nothing and is taken at its word.
    ///
    /// Fails when the remote still does not list what was sent.
    async fn settle_members(
        &mut self,
        local: ResourceId,
        wanted: &[RemoteMember],
        answer: Option<Value>,
        document: &Map<String, Value>,
        links: &mut dyn Links,
    ) -> Result<(), SyncError> {
        if self.dry_run.is_some() {
            return Ok(());
        }
        let Some(remote) = links.remote(Kind::Group, local) else {
            return Ok(());
        };
        let mut answer = answer;
        for round in 0..2 {
            let Some(have) = answer.as_ref().and_then(answered_members) else {
                return Ok(());
            };
            let missing: Vec<RemoteMember> = wanted
                .iter()
                .filter(|(id, _)| !have.contains(id))
                .cloned()
                .collect();
            let extra: Vec<RemoteMember> = have
                .iter()
                .filter(|id| !wanted.iter().any(|(w, _)| w == *id))
                .map(|id| (id.clone(), roster_events::MemberType::User))
                .collect();
            if missing.is_empty() && extra.is_empty() {
                return Ok(());
            }
            if round == 1 || !self.remote.capabilities().await.patch {
                return Err(SyncError::Unmatched(format!(
                    "the remote does not take the members it is sent: {} missing, {} extra",
                    missing.len(),
                    extra.len()
                )));
            }
            tracing::info!(
                group = %local,
                missing = missing.len(),
                extra = extra.len(),
                "the remote's answer does not list the members sent; changing them by PATCH"
            );
            answer = self
                .change_members(&remote, &missing, &extra, Some(document))
                .await?;
        }
        Ok(())
    }

    /// A group deleted. A group that is not linked is looked up by externalId first (its
    /// create may have reached the remote before a crash lost the link).
    pub async fn delete_group(
        &mut self,
        local: ResourceId,
        links: &mut dyn Links,
    ) -> Result<(), SyncError> {
        if !self.find_own(Kind::Group, local, links).await? {
            return Ok(());
        }
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
