//! One directory's state and the fold that builds it from events.
//!
//! The fold is split in two: a pure per-resource step (old view + event -> new view) and
//! `set_*`, which installs a resource's new view and keeps every index in step with it. The
//! same code serves the read views and the write path's decision state; the write path records
//! an [`Undo`] while it folds a batch so that it can revert the batch if the append fails.

use crate::indexes::Indexes;
use crate::names::name_key;
use crate::views::{
    AdminTokenView, DirectoryMeta, GroupView, Keys, MappingView, ProviderView, SourceView,
    TokenView, UserView,
};
use foldhash::HashMap;
use roster_events::{Document, Envelope, Event, Member, Personal, ResourceId};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// An event that does not fit the state it is folded into. It cannot happen for records the
/// write path produced; the fold skips such an event (deterministically) and reports it.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FoldError {
    #[error("event {event_type} for {resource} which does not exist")]
    Missing {
        event_type: &'static str,
        resource: ResourceId,
    },
    #[error("event {event_type} for {resource} which already exists")]
    Exists {
        event_type: &'static str,
        resource: ResourceId,
    },
}

/// What a batch changed, to put it back.
#[derive(Default, Debug)]
pub struct Undo(Vec<Prior>);

#[derive(Debug)]
enum Prior {
    Meta(Option<DirectoryMeta>),
    User(ResourceId, Option<Arc<UserView>>),
    Group(ResourceId, Option<Arc<GroupView>>),
    Source(ResourceId, Option<Arc<SourceView>>),
    AdminToken(ResourceId, Option<AdminTokenView>),
    Provider(ResourceId, Option<Arc<ProviderView>>),
}

/// The users, groups, sources and admin tokens of one directory, with their indexes.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    pub(crate) name: String,
    pub(crate) meta: Option<DirectoryMeta>,
    pub(crate) users: BTreeMap<ResourceId, Arc<UserView>>,
    pub(crate) groups: BTreeMap<ResourceId, Arc<GroupView>>,
    pub(crate) sources: BTreeMap<ResourceId, Arc<SourceView>>,
    pub(crate) admin_tokens: BTreeMap<ResourceId, AdminTokenView>,
    pub(crate) providers: BTreeMap<ResourceId, Arc<ProviderView>>,
    // Indexes, all derived from the maps above by `set_*`.
    pub(crate) user_index: Indexes,
    pub(crate) group_index: Indexes,
    pub(crate) member_of: HashMap<ResourceId, BTreeSet<ResourceId>>,
    pub(crate) source_by_slug: HashMap<String, ResourceId>,
    /// The user and group indexes above are not kept: a fold whose result is only written
    /// out (a rebuild's bulk load) and never queried or decided on.
    pub(crate) unindexed: bool,
}

/// The canonical, ordered form of a directory's views, for byte-for-byte comparison.
#[derive(Serialize)]
struct Canonical<'a> {
    meta: &'a Option<DirectoryMeta>,
    users: Vec<&'a UserView>,
    groups: Vec<&'a GroupView>,
    sources: Vec<&'a SourceView>,
    admin_tokens: Vec<&'a AdminTokenView>,
    providers: Vec<&'a ProviderView>,
}

impl Directory {
    /// An empty directory called `name` (its `directory.created` event has yet to be folded).
    pub fn new(name: &str) -> Self {
        Directory {
            name: name.to_owned(),
            ..Default::default()
        }
    }

    /// An empty directory whose fold keeps the views but not the user and group indexes
    /// (userName, externalId, owner, membership): about a third less work and memory for a
    /// fold that is only written out. Lookups through those indexes find nothing in it.
    pub fn unindexed(name: &str) -> Self {
        Directory {
            unindexed: true,
            ..Directory::new(name)
        }
    }

    /// A copy for a writer's decisions: the views and the indexes decisions consult
    /// (userName, externalId, owner, membership), not the userName and displayName prefix
    /// indexes, which only `sw` filters use; the copy does not keep them as it folds.
    pub fn decision_copy(&self) -> Directory {
        Directory {
            name: self.name.clone(),
            meta: self.meta.clone(),
            users: self.users.clone(),
            groups: self.groups.clone(),
            sources: self.sources.clone(),
            admin_tokens: self.admin_tokens.clone(),
            providers: self.providers.clone(),
            user_index: self.user_index.without_prefixes(),
            group_index: self.group_index.without_prefixes(),
            member_of: self.member_of.clone(),
            source_by_slug: self.source_by_slug.clone(),
            unindexed: self.unindexed,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn meta(&self) -> Option<&DirectoryMeta> {
        self.meta.as_ref()
    }

    /// The directory's property mappings, by id.
    pub fn mappings(&self) -> impl Iterator<Item = &MappingView> {
        self.meta.iter().flat_map(|m| m.mappings.values())
    }

    /// The mapping called `name`.
    pub fn mapping_by_name(&self, name: &str) -> Option<&MappingView> {
        self.mappings().find(|m| m.mapping.name == name)
    }

    pub fn user(&self, id: ResourceId) -> Option<&Arc<UserView>> {
        self.users.get(&id)
    }

    pub fn group(&self, id: ResourceId) -> Option<&Arc<GroupView>> {
        self.groups.get(&id)
    }

    /// A user whose userName compares equal to `name` (same [`name_key`]; the first by id if
    /// older records hold several).
    pub fn user_by_name(&self, name: &str) -> Option<&Arc<UserView>> {
        self.users_named(name).next()
    }

    /// Every user whose userName compares equal to `name`, in id order.
    pub fn users_named(&self, name: &str) -> impl Iterator<Item = &Arc<UserView>> {
        self.user_index
            .by_name
            .get(&name_key(name))
            .filter_map(|id| self.users.get(&id))
    }

    /// A group whose displayName compares equal to `name`, as [`Self::user_by_name`].
    pub fn group_by_name(&self, name: &str) -> Option<&Arc<GroupView>> {
        self.groups_named(name).next()
    }

    /// Every group whose displayName compares equal to `name`, in id order.
    pub fn groups_named(&self, name: &str) -> impl Iterator<Item = &Arc<GroupView>> {
        self.group_index
            .by_name
            .get(&name_key(name))
            .filter_map(|id| self.groups.get(&id))
    }

    /// The groups that have `member` as a direct member.
    pub fn groups_of(&self, member: ResourceId) -> impl Iterator<Item = ResourceId> + '_ {
        self.member_of.get(&member).into_iter().flatten().copied()
    }

    /// Every group `member` belongs to, directly or through nested groups, in id order, with
    /// its displayName and whether the membership is direct. Cycles are harmless.
    pub fn memberships(
        &self,
        member: ResourceId,
        vis: crate::Visibility<'_>,
    ) -> Vec<(ResourceId, String, bool)> {
        let direct: BTreeSet<ResourceId> = self.groups_of(member).collect();
        let mut seen: BTreeSet<ResourceId> = direct.clone();
        let mut frontier: Vec<ResourceId> = direct.iter().copied().collect();
        while let Some(g) = frontier.pop() {
            for parent in self.groups_of(g) {
                if seen.insert(parent) {
                    frontier.push(parent);
                }
            }
        }
        seen.into_iter()
            .filter_map(|g| {
                self.groups
                    .get(&g)
                    .filter(|v| vis.admits(&v.owner))
                    .map(|v| (g, v.display_name().to_owned(), direct.contains(&g)))
            })
            .collect()
    }

    pub fn source(&self, id: ResourceId) -> Option<&Arc<SourceView>> {
        self.sources.get(&id)
    }

    pub fn source_by_slug(&self, slug: &str) -> Option<&Arc<SourceView>> {
        self.source_by_slug
            .get(slug)
            .and_then(|id| self.sources.get(id))
    }

    pub fn sources(&self) -> impl Iterator<Item = &Arc<SourceView>> {
        self.sources.values()
    }

    pub fn provider(&self, id: ResourceId) -> Option<&Arc<ProviderView>> {
        self.providers.get(&id)
    }

    pub fn providers(&self) -> impl Iterator<Item = &Arc<ProviderView>> {
        self.providers.values()
    }

    /// The provider called `name` (names are unique within a directory).
    pub fn provider_by_name(&self, name: &str) -> Option<&Arc<ProviderView>> {
        self.providers.values().find(|p| p.config.name == name)
    }

    pub fn admin_tokens(&self) -> impl Iterator<Item = &AdminTokenView> {
        self.admin_tokens.values()
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Installs views loaded from a store (the PostgreSQL store's snapshots and partial loads),
    /// keeping the indexes in step, as if they had been folded.
    pub fn restore_meta(&mut self, meta: DirectoryMeta) {
        self.meta = Some(meta);
    }

    pub fn restore_user(&mut self, view: Arc<UserView>) {
        self.set_user(view.id, Some(view));
    }

    pub fn restore_group(&mut self, view: Arc<GroupView>) {
        self.set_group(view.id, Some(view));
    }

    pub fn restore_source(&mut self, view: Arc<SourceView>) {
        self.set_source(view.id, Some(view));
    }

    pub fn restore_provider(&mut self, view: Arc<ProviderView>) {
        self.providers.insert(view.id, view);
    }

    /// Installs an admin token under the id of the event that issued it.
    pub fn restore_admin_token(&mut self, key: ResourceId, view: AdminTokenView) {
        self.admin_tokens.insert(key, view);
    }

    /// The admin tokens with the resource ids they are kept under.
    pub fn admin_tokens_by_key(&self) -> impl Iterator<Item = (&ResourceId, &AdminTokenView)> {
        self.admin_tokens.iter()
    }

    /// The views in canonical JSON: equal bytes mean equal views.
    pub fn canonical_json(&self) -> Vec<u8> {
        let c = Canonical {
            meta: &self.meta,
            users: self.users.values().map(|u| u.as_ref()).collect(),
            groups: self.groups.values().map(|g| g.as_ref()).collect(),
            sources: self.sources.values().map(|s| s.as_ref()).collect(),
            admin_tokens: self.admin_tokens.values().collect(),
            providers: self.providers.values().map(|p| p.as_ref()).collect(),
        };
        // Plain data with string keys: serialization cannot fail.
        serde_json::to_vec(&c).expect("views serialize")
    }

    /// Folds one event into the views.
    ///
    /// Fails, changing nothing, when the event does not fit the state (an update of a
    /// resource that does not exist, a second creation).
    pub fn apply(&mut self, env: Envelope) -> Result<(), FoldError> {
        self.apply_inner(env, None)
    }

    /// Folds one event and records how to revert it in `undo`.
    pub fn apply_with_undo(&mut self, env: Envelope, undo: &mut Undo) -> Result<(), FoldError> {
        self.apply_inner(env, Some(undo))
    }

    /// Reverts everything recorded in `undo`, newest first.
    pub fn revert(&mut self, undo: Undo) {
        for prior in undo.0.into_iter().rev() {
            match prior {
                Prior::Meta(m) => self.meta = m,
                Prior::User(id, v) => {
                    self.set_user(id, v);
                }
                Prior::Group(id, v) => {
                    self.set_group(id, v);
                }
                Prior::Source(id, v) => {
                    self.set_source(id, v);
                }
                Prior::AdminToken(id, v) => {
                    match v {
                        Some(v) => self.admin_tokens.insert(id, v),
                        None => self.admin_tokens.remove(&id),
                    };
                }
                Prior::Provider(id, v) => {
                    self.set_provider(id, v);
                }
            }
        }
    }

    fn apply_inner(&mut self, env: Envelope, undo: Option<&mut Undo>) -> Result<(), FoldError> {
        let id = env.resource_id;
        let event_type = env.event.event_type();
        let missing = || FoldError::Missing {
            event_type,
            resource: id,
        };
        let exists = || FoldError::Exists {
            event_type,
            resource: id,
        };
        // The event is owned: its values move into the views instead of being copied.
        let prior = match env.event {
            Event::DirectoryCreated(e) => {
                if self.meta.is_some() {
                    return Err(exists());
                }
                let prior = Prior::Meta(self.meta.take());
                self.meta = Some(DirectoryMeta {
                    id,
                    name: e.name,
                    created: env.time,
                    mappings: BTreeMap::new(),
                });
                prior
            }
            Event::DirectoryDeleted => {
                if self.meta.is_none() {
                    return Err(missing());
                }
                Prior::Meta(self.meta.take())
            }
            Event::AdminTokenIssued(e) => {
                if self.admin_tokens.contains_key(&id) {
                    return Err(exists());
                }
                let view = AdminTokenView {
                    id: e.token_id,
                    hash: e.token_hash,
                    prefix: e.prefix,
                    created: env.time,
                    revoked: None,
                };
                self.admin_tokens.insert(id, view);
                Prior::AdminToken(id, None)
            }
            Event::AdminTokenRevoked(_) => {
                let old = self.admin_tokens.get(&id).ok_or_else(missing)?.clone();
                let mut view = old.clone();
                view.revoked = Some(env.time);
                self.admin_tokens.insert(id, view);
                Prior::AdminToken(id, Some(old))
            }
            Event::SourceDeleted => {
                self.sources.get(&id).ok_or_else(missing)?;
                Prior::Source(id, self.set_source(id, None))
            }
            Event::SourceCreated(e) => {
                if self.sources.contains_key(&id) {
                    return Err(exists());
                }
                let view = SourceView {
                    id,
                    slug: e.slug,
                    directory: self.name.clone(),
                    service_account: e.service_account,
                    ownership: e.ownership,
                    undeclared_extensions: e.undeclared_extensions,
                    tokens: BTreeMap::new(),
                    user_schemas: Vec::new(),
                    group_schemas: Vec::new(),
                    mappings: Vec::new(),
                    version: env.resource_version,
                    created: env.time,
                };
                Prior::Source(id, self.set_source(id, Some(Arc::new(view))))
            }
            Event::SourceTokenIssued(e) => {
                let mut view = SourceView::clone(self.sources.get(&id).ok_or_else(missing)?);
                view.tokens.insert(
                    e.token_id,
                    TokenView {
                        id: e.token_id,
                        hash: e.token_hash,
                        prefix: e.prefix,
                        created: env.time,
                        revoked: None,
                    },
                );
                view.version = env.resource_version;
                Prior::Source(id, self.set_source(id, Some(Arc::new(view))))
            }
            Event::SourceTokenRevoked(e) => {
                let mut view = SourceView::clone(self.sources.get(&id).ok_or_else(missing)?);
                let token = view.tokens.get_mut(&e.token_id).ok_or_else(missing)?;
                token.revoked = Some(env.time);
                view.version = env.resource_version;
                Prior::Source(id, self.set_source(id, Some(Arc::new(view))))
            }
            Event::SourceSchemaDeclared(e) => {
                let mut view = SourceView::clone(self.sources.get(&id).ok_or_else(missing)?);
                if e.resource_type == "Group" {
                    view.group_schemas.push(e.schema);
                } else {
                    view.user_schemas.push(e.schema);
                }
                view.version = env.resource_version;
                Prior::Source(id, self.set_source(id, Some(Arc::new(view))))
            }
            Event::SourceMappingsSet(e) => {
                let mut view = SourceView::clone(self.sources.get(&id).ok_or_else(missing)?);
                view.mappings = e.mappings;
                view.version = env.resource_version;
                Prior::Source(id, self.set_source(id, Some(Arc::new(view))))
            }
            Event::UserCreated(e) => {
                if self.users.contains_key(&id) {
                    return Err(exists());
                }
                let data_key = e.resource.key();
                let resource = readable(e.resource, id);
                let view = UserView {
                    id,
                    owner: e.owner,
                    keys: Keys::of(&resource),
                    resource,
                    password_hash: None,
                    data_key,
                    version: env.resource_version,
                    created: env.time,
                    last_modified: env.time,
                };
                Prior::User(id, self.set_user(id, Some(Arc::new(view))))
            }
            Event::UserReplaced(e) => {
                let old = self.users.get(&id).ok_or_else(missing)?;
                let data_key = e.resource.key().or(old.data_key);
                let resource = readable(e.resource, id);
                let view = UserView {
                    id,
                    owner: old.owner.clone(),
                    keys: Keys::of(&resource),
                    resource,
                    password_hash: old.password_hash.clone(),
                    data_key,
                    version: env.resource_version,
                    created: old.created,
                    last_modified: env.time,
                };
                Prior::User(id, self.set_user(id, Some(Arc::new(view))))
            }
            Event::UserDeleted => {
                if !self.users.contains_key(&id) {
                    return Err(missing());
                }
                Prior::User(id, self.set_user(id, None))
            }
            // Erasure also reaches users deleted before: then there is nothing to remove.
            Event::UserErased(_) => Prior::User(id, self.set_user(id, None)),
            Event::GroupCreated(e) => {
                if self.groups.contains_key(&id) {
                    return Err(exists());
                }
                let view = GroupView {
                    id,
                    owner: e.owner,
                    keys: Keys::of(&e.resource),
                    resource: e.resource,
                    members: BTreeSet::new(),
                    version: env.resource_version,
                    created: env.time,
                    last_modified: env.time,
                };
                Prior::Group(id, self.set_group(id, Some(Arc::new(view))))
            }
            Event::GroupReplaced(e) => {
                let old = self.groups.get(&id).ok_or_else(missing)?;
                let view = GroupView {
                    id,
                    owner: old.owner.clone(),
                    keys: Keys::of(&e.resource),
                    resource: e.resource,
                    members: old.members.clone(),
                    version: env.resource_version,
                    created: old.created,
                    last_modified: env.time,
                };
                Prior::Group(id, self.set_group(id, Some(Arc::new(view))))
            }
            Event::GroupMembersAdded(e) => {
                let mut view = GroupView::clone(self.groups.get(&id).ok_or_else(missing)?);
                view.members.extend(e.members);
                view.version = env.resource_version;
                view.last_modified = env.time;
                Prior::Group(id, self.set_group(id, Some(Arc::new(view))))
            }
            Event::GroupMembersRemoved(e) => {
                let mut view = GroupView::clone(self.groups.get(&id).ok_or_else(missing)?);
                for m in &e.members {
                    view.members.remove(m);
                }
                view.version = env.resource_version;
                view.last_modified = env.time;
                Prior::Group(id, self.set_group(id, Some(Arc::new(view))))
            }
            Event::UserAdopted(e) => {
                let old = self.users.get(&id).ok_or_else(missing)?;
                let view = UserView {
                    owner: Some(e.owner),
                    version: env.resource_version,
                    last_modified: env.time,
                    ..UserView::clone(old)
                };
                Prior::User(id, self.set_user(id, Some(Arc::new(view))))
            }
            Event::UserPasswordSet(e) => {
                let old = self.users.get(&id).ok_or_else(missing)?;
                let view = UserView {
                    data_key: e.hash.key().or(old.data_key),
                    password_hash: e.hash.into_value(),
                    version: env.resource_version,
                    last_modified: env.time,
                    ..UserView::clone(old)
                };
                Prior::User(id, self.set_user(id, Some(Arc::new(view))))
            }
            Event::GroupAdopted(e) => {
                let old = self.groups.get(&id).ok_or_else(missing)?;
                let view = GroupView {
                    owner: Some(e.owner),
                    version: env.resource_version,
                    last_modified: env.time,
                    ..GroupView::clone(old)
                };
                Prior::Group(id, self.set_group(id, Some(Arc::new(view))))
            }
            Event::GroupDeleted => {
                if !self.groups.contains_key(&id) {
                    return Err(missing());
                }
                Prior::Group(id, self.set_group(id, None))
            }
            Event::ProviderCreated(e) => {
                if self.providers.contains_key(&id) {
                    return Err(exists());
                }
                let view = ProviderView {
                    id,
                    directory: self.name.clone(),
                    config: e.config,
                    version: env.resource_version,
                    created: env.time,
                    last_modified: env.time,
                };
                Prior::Provider(id, self.set_provider(id, Some(Arc::new(view))))
            }
            Event::ProviderUpdated(e) => {
                let old = self.providers.get(&id).ok_or_else(missing)?;
                let view = ProviderView {
                    config: e.config,
                    version: env.resource_version,
                    last_modified: env.time,
                    ..ProviderView::clone(old)
                };
                Prior::Provider(id, self.set_provider(id, Some(Arc::new(view))))
            }
            // Requests to the provider's consumer, which reads them from the log; the view
            // only counts them in its version.
            Event::ProviderSyncRequested
            | Event::ProviderRetryRequested
            | Event::ProviderReplayRequested(_) => {
                let old = self.providers.get(&id).ok_or_else(missing)?;
                let view = ProviderView {
                    version: env.resource_version,
                    ..ProviderView::clone(old)
                };
                Prior::Provider(id, self.set_provider(id, Some(Arc::new(view))))
            }
            Event::ProviderDeleted => {
                if !self.providers.contains_key(&id) {
                    return Err(missing());
                }
                Prior::Provider(id, self.set_provider(id, None))
            }
            Event::MappingCreated(e) => {
                let prior = Prior::Meta(self.meta.clone());
                let meta = self.meta.as_mut().ok_or_else(missing)?;
                if meta.mappings.contains_key(&id) {
                    return Err(exists());
                }
                let view = MappingView {
                    id,
                    mapping: e.mapping,
                    version: env.resource_version,
                    created: env.time,
                    last_modified: env.time,
                };
                meta.mappings.insert(id, view);
                prior
            }
            Event::MappingUpdated(e) => {
                let prior = Prior::Meta(self.meta.clone());
                let meta = self.meta.as_mut().ok_or_else(missing)?;
                let view = meta.mappings.get_mut(&id).ok_or_else(missing)?;
                view.mapping = e.mapping;
                view.version = env.resource_version;
                view.last_modified = env.time;
                prior
            }
            Event::MappingDeleted => {
                let prior = Prior::Meta(self.meta.clone());
                let meta = self.meta.as_mut().ok_or_else(missing)?;
                meta.mappings.remove(&id).ok_or_else(missing)?;
                prior
            }
            // A refused request or a read of the audit trail: in the log for the audit trail.
            Event::AccessRefused(_) | Event::AuditRead(_) => return Ok(()),
        };
        if let Some(undo) = undo {
            undo.0.push(prior);
        }
        Ok(())
    }

    /// Installs a user's new view (or removes it) and keeps the indexes in step.
    fn set_user(&mut self, id: ResourceId, new: Option<Arc<UserView>>) -> Option<Arc<UserView>> {
        let old = match &new {
            Some(v) => self.users.insert(id, v.clone()),
            None => self.users.remove(&id),
        };
        if self.unindexed {
            return old;
        }
        self.user_index.reindex(id, old.as_deref(), new.as_deref());
        old
    }

    /// Installs a group's new view (or removes it) and keeps the indexes, membership included,
    /// in step.
    fn set_group(&mut self, id: ResourceId, new: Option<Arc<GroupView>>) -> Option<Arc<GroupView>> {
        let old = match &new {
            Some(v) => self.groups.insert(id, v.clone()),
            None => self.groups.remove(&id),
        };
        if self.unindexed {
            return old;
        }
        let empty = BTreeSet::new();
        let old_members = old.as_ref().map_or(&empty, |o| &o.members);
        let new_members = new.as_ref().map_or(&empty, |n| &n.members);
        for m in old_members.difference(new_members) {
            self.unlink_member(m, id);
        }
        for m in new_members.difference(old_members) {
            self.member_of.entry(m.value).or_default().insert(id);
        }
        self.group_index.reindex(id, old.as_deref(), new.as_deref());
        old
    }

    fn unlink_member(&mut self, m: &Member, group: ResourceId) {
        if let Some(set) = self.member_of.get_mut(&m.value) {
            set.remove(&group);
            if set.is_empty() {
                self.member_of.remove(&m.value);
            }
        }
    }

    fn set_provider(
        &mut self,
        id: ResourceId,
        new: Option<Arc<ProviderView>>,
    ) -> Option<Arc<ProviderView>> {
        match new {
            Some(v) => self.providers.insert(id, v),
            None => self.providers.remove(&id),
        }
    }

    fn set_source(
        &mut self,
        id: ResourceId,
        new: Option<Arc<SourceView>>,
    ) -> Option<Arc<SourceView>> {
        let old = match &new {
            Some(v) => self.sources.insert(id, v.clone()),
            None => self.sources.remove(&id),
        };
        if let Some(o) = &old {
            self.source_by_slug.remove(&o.slug);
        }
        if let Some(n) = &new {
            self.source_by_slug.insert(n.slug.clone(), id);
        }
        old
    }
}

#[cfg(test)]
mod tests;

/// A user's document as the views keep it: what was stored, or for a person whose data key
/// was destroyed, a stand-in that names no one and collides with no one (the user leaves the
/// views at the `user.erased` event that follows in the log).
fn readable(resource: Personal<Document>, id: ResourceId) -> Document {
    resource
        .into_value()
        .unwrap_or_else(|| Document::erased(id))
}
