//! Commands and the pure decision step: `decide(state, command) -> events`.
//!
//! A command is validated against one directory's current state (uniqueness of userName and
//! group displayName, resource versions, ownership, membership references) and turned into the
//! events that record its outcome. No I/O happens here; the writer (`crate::writer`) feeds the
//! state and appends what comes out.

use crate::patch::{self, PatchError, PatchOp};
use chrono::{DateTime, Utc};
use roster_events::{
    Actor, AdminTokenIssued, Adopted, DirectoryCreated, Document, Envelope, Event, GroupCreated,
    GroupMembersAdded, GroupMembersRemoved, GroupReplaced, Member, MemberType, Ownership,
    ProviderConfig, ProviderCreated, ProviderReplayRequested, ProviderUpdated, ResourceId,
    ResourceType, SourceCreated, SourceTokenIssued, SourceTokenRevoked, UserCreated,
    UserPasswordSet, UserReplaced,
};
use roster_projections::{Directory, GroupView, UserView};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use uuid::Uuid;

/// A hashed token ready to be recorded.
#[derive(Clone, Debug)]
pub struct NewToken {
    pub id: ResourceId,
    pub hash: String,
    pub prefix: String,
}

/// A member as a client referred to it.
#[derive(Clone, Debug)]
pub struct MemberRef {
    pub value: String,
    /// `User` or `Group` if the client said.
    pub kind: Option<String>,
}

/// What a caller asks a directory to do.
#[derive(Clone, Debug)]
pub enum Command {
    /// First start: the directory itself, an admin token, and a source with its token, all
    /// in one record so that a crash never leaves a half-initialised directory.
    Bootstrap {
        admin: NewToken,
        source_slug: String,
        source_token: NewToken,
    },
    CreateSource {
        slug: String,
        token: NewToken,
        ownership: Ownership,
    },
    IssueSourceToken {
        slug: String,
        token: NewToken,
    },
    /// A source declares an extension schema for its users or groups.
    DeclareSchema {
        slug: String,
        resource_type: String,
        schema: roster_events::DeclaredSchema,
    },
    RevokeSourceToken {
        slug: String,
        token_id: ResourceId,
    },
    CreateUser {
        resource: Map<String, Value>,
        /// An Argon2id hash of the password the client sent, made at the edge.
        password_hash: Option<String>,
    },
    ReplaceUser {
        id: ResourceId,
        resource: Map<String, Value>,
        password_hash: Option<String>,
        if_match: Option<u64>,
    },
    DeleteUser {
        id: ResourceId,
        if_match: Option<u64>,
    },
    CreateGroup {
        resource: Map<String, Value>,
        members: Vec<MemberRef>,
    },
    ReplaceGroup {
        id: ResourceId,
        resource: Map<String, Value>,
        members: Vec<MemberRef>,
        if_match: Option<u64>,
    },
    DeleteGroup {
        id: ResourceId,
        if_match: Option<u64>,
    },
    /// RFC 7644 §3.5.2: the operations are evaluated here, against the current document, and
    /// the outcome recorded as a replacement.
    PatchUser {
        id: ResourceId,
        ops: Vec<PatchOp>,
        password_hash: Option<String>,
        if_match: Option<u64>,
    },
    PatchGroup {
        id: ResourceId,
        ops: Vec<PatchOp>,
        if_match: Option<u64>,
    },
    /// An outbound provider; its secrets are already sealed.
    CreateProvider {
        id: ResourceId,
        config: ProviderConfig,
    },
    UpdateProvider {
        id: ResourceId,
        config: ProviderConfig,
    },
    DeleteProvider {
        id: ResourceId,
    },
    /// A request to a provider's consumer, recorded for it (and the audit trail) in the log.
    RequestProvider {
        id: ResourceId,
        request: ProviderRequest,
    },
}

/// What an operator can ask of a running provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderRequest {
    /// A full sync now.
    Sync,
    /// Try the parked objects again now.
    Retry,
    /// Carry every change again from this position of the directory's partition.
    Replay { from: u64 },
}

/// Who is asking, and on behalf of which request.
#[derive(Clone, Debug)]
pub struct Context {
    pub actor: Actor,
    /// The source the request came through; with the `owned` policy it sees only its own.
    pub source: Option<String>,
    pub correlation_id: Option<String>,
}

/// Why a command was refused. Nothing was written.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DomainError {
    /// A uniqueness rule would be broken (RFC 7644 scimType `uniqueness`).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// If-Match named a version that is no longer current.
    #[error("resource version is {current}, not {expected}")]
    PreconditionFailed { current: u64, expected: u64 },
    /// A value is not acceptable (RFC 7644 scimType `invalidValue`).
    #[error("{0}")]
    Invalid(String),
    /// A PATCH request cannot be applied; carries its scimType.
    #[error(transparent)]
    Patch(PatchError),
}

/// What a successful command produced, for the response.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Done,
    User(ResourceId),
    Group(ResourceId),
    Source(ResourceId),
    Provider(ResourceId),
}

struct Builder<'a> {
    dir: &'a str,
    ctx: &'a Context,
    now: DateTime<Utc>,
    versions: HashMap<ResourceId, u64>,
    events: Vec<Envelope>,
}

impl Builder<'_> {
    fn push(&mut self, rt: ResourceType, id: ResourceId, current: u64, event: Event) {
        let v = self.versions.entry(id).or_insert(current);
        *v += 1;
        self.events.push(Envelope {
            event_id: Uuid::now_v7(),
            directory: self.dir.to_owned(),
            resource_type: rt,
            resource_id: id,
            resource_version: *v,
            time: self.now,
            actor: self.ctx.actor.clone(),
            source: self.ctx.source.clone(),
            correlation_id: self.ctx.correlation_id.clone(),
            event,
        });
    }
}

fn visible(owner: &Option<String>, ctx: &Context) -> bool {
    match &ctx.source {
        None => true,
        Some(s) => owner.as_deref() == Some(s),
    }
}

fn check_version(current: u64, if_match: Option<u64>) -> Result<(), DomainError> {
    match if_match {
        Some(expected) if expected != current => {
            Err(DomainError::PreconditionFailed { current, expected })
        }
        _ => Ok(()),
    }
}

fn string_attr<'a>(resource: &'a Map<String, Value>, name: &str) -> Result<&'a str, DomainError> {
    match resource.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Value::String(_)) | None => Err(DomainError::Invalid(format!("{name} is required"))),
        Some(_) => Err(DomainError::Invalid(format!("{name} must be a string"))),
    }
}

fn resolve_members(
    state: &Directory,
    ctx: &Context,
    group: Option<ResourceId>,
    refs: &[MemberRef],
) -> Result<BTreeSet<Member>, DomainError> {
    let mut out = BTreeSet::new();
    for r in refs {
        let invalid = || {
            DomainError::Invalid(format!(
                "member {:?} is not a user or group of this directory",
                r.value
            ))
        };
        let id: ResourceId = r.value.trim().parse().map_err(|_| invalid())?;
        let kind = match (state.user(id), state.group(id)) {
            (Some(u), _) if visible(&u.owner, ctx) => MemberType::User,
            (_, Some(g)) if visible(&g.owner, ctx) => MemberType::Group,
            _ => return Err(invalid()),
        };
        if let Some(k) = &r.kind {
            let said = if k.eq_ignore_ascii_case("user") {
                MemberType::User
            } else if k.eq_ignore_ascii_case("group") {
                MemberType::Group
            } else {
                return Err(DomainError::Invalid(format!(
                    "member type {k:?} is not User or Group"
                )));
            };
            if said != kind {
                return Err(DomainError::Invalid(format!(
                    "member {} is a {kind:?}, not a {said:?}",
                    r.value
                )));
            }
        }
        if Some(id) == group {
            return Err(DomainError::Invalid(
                "a group cannot be a member of itself".into(),
            ));
        }
        out.insert(Member { value: id, kind });
    }
    Ok(out)
}

fn provider(
    state: &Directory,
    id: ResourceId,
) -> Result<&Arc<roster_projections::ProviderView>, DomainError> {
    state
        .provider(id)
        .ok_or_else(|| DomainError::NotFound(format!("provider {id} not found")))
}

/// A provider's name is unique in its directory and its scope names groups that exist.
fn check_provider(
    state: &Directory,
    id: ResourceId,
    config: &ProviderConfig,
) -> Result<(), DomainError> {
    if state
        .provider_by_name(&config.name)
        .is_some_and(|p| p.id != id)
    {
        return Err(DomainError::Conflict(format!(
            "provider {:?} exists",
            config.name
        )));
    }
    let scope = &config.scope;
    for g in scope.group_filter.iter().chain(&scope.access_groups) {
        if state.group(*g).is_none() {
            return Err(DomainError::Invalid(format!(
                "the scope names group {g}, which is not in directory {:?}",
                state.name()
            )));
        }
    }
    Ok(())
}

fn source_by_slug<'a>(
    state: &'a Directory,
    slug: &str,
) -> Result<&'a std::sync::Arc<roster_projections::SourceView>, DomainError> {
    state
        .source_by_slug(slug)
        .ok_or_else(|| DomainError::NotFound(format!("source {slug:?} not found")))
}

/// A slug (of a source, or a provider's name) is 1 to 63 lower-case letters, digits and
/// hyphens, starting with a letter or digit: it appears in URLs as is.
pub fn valid_slug(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Decides what `cmd` does to `state`: the events to append (possibly none) and the outcome.
///
/// Fails, producing no event, when the command breaks a rule: a taken userName or
/// displayName (`Conflict`), a resource that is absent or not visible to the caller
/// (`NotFound`), a stale If-Match (`PreconditionFailed`), or an unacceptable value (`Invalid`).
pub fn decide(
    state: &Directory,
    cmd: &Command,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<(Vec<Envelope>, Outcome), DomainError> {
    let mut b = Builder {
        dir: state.name(),
        ctx,
        now,
        versions: HashMap::new(),
        events: Vec::new(),
    };
    let outcome = match cmd {
        Command::Bootstrap {
            admin,
            source_slug,
            source_token,
        } => {
            if state.meta().is_some() {
                return Err(DomainError::Conflict(format!(
                    "directory {:?} exists",
                    state.name()
                )));
            }
            let event = Event::DirectoryCreated(DirectoryCreated {
                name: state.name().to_owned(),
            });
            b.push(ResourceType::Directory, ResourceId::new(), 0, event);
            let event = Event::AdminTokenIssued(AdminTokenIssued {
                token_id: admin.id,
                token_hash: admin.hash.clone(),
                prefix: admin.prefix.clone(),
            });
            b.push(ResourceType::AdminToken, admin.id, 0, event);
            create_source(&mut b, source_slug, source_token, Ownership::Owned)
        }
        Command::CreateSource {
            slug,
            token,
            ownership,
        } => {
            if state.source_by_slug(slug).is_some() {
                return Err(DomainError::Conflict(format!("source {slug:?} exists")));
            }
            create_source(&mut b, slug, token, *ownership)
        }
        Command::IssueSourceToken { slug, token } => {
            let source = source_by_slug(state, slug)?;
            let issued = Event::SourceTokenIssued(SourceTokenIssued {
                token_id: token.id,
                token_hash: token.hash.clone(),
                prefix: token.prefix.clone(),
            });
            b.push(ResourceType::Source, source.id, source.version, issued);
            Outcome::Source(source.id)
        }
        Command::DeclareSchema {
            slug,
            resource_type,
            schema,
        } => {
            let source = source_by_slug(state, slug)?;
            if source
                .all_declared()
                .any(|(_, d)| d.id.eq_ignore_ascii_case(&schema.id))
            {
                return Err(DomainError::Conflict(format!(
                    "{} is already declared",
                    schema.id
                )));
            }
            let event = Event::SourceSchemaDeclared(roster_events::SchemaDeclared {
                resource_type: resource_type.clone(),
                schema: schema.clone(),
            });
            b.push(ResourceType::Source, source.id, source.version, event);
            Outcome::Source(source.id)
        }
        Command::RevokeSourceToken { slug, token_id } => {
            let source = source_by_slug(state, slug)?;
            match source.tokens.get(token_id) {
                None => return Err(DomainError::NotFound(format!("token {token_id} not found"))),
                Some(t) if t.revoked.is_some() => {}
                Some(_) => {
                    let event = Event::SourceTokenRevoked(SourceTokenRevoked {
                        token_id: *token_id,
                    });
                    b.push(ResourceType::Source, source.id, source.version, event);
                }
            }
            Outcome::Source(source.id)
        }
        Command::CreateProvider { id, config } => {
            if state.provider(*id).is_some() {
                return Err(DomainError::Conflict(format!("provider {id} exists")));
            }
            check_provider(state, *id, config)?;
            let event = Event::ProviderCreated(ProviderCreated {
                config: config.clone(),
            });
            b.push(ResourceType::Provider, *id, 0, event);
            Outcome::Provider(*id)
        }
        Command::UpdateProvider { id, config } => {
            let p = provider(state, *id)?;
            check_provider(state, *id, config)?;
            if p.config != *config {
                let event = Event::ProviderUpdated(ProviderUpdated {
                    config: config.clone(),
                });
                b.push(ResourceType::Provider, *id, p.version, event);
            }
            Outcome::Provider(*id)
        }
        Command::DeleteProvider { id } => {
            let p = provider(state, *id)?;
            b.push(
                ResourceType::Provider,
                *id,
                p.version,
                Event::ProviderDeleted,
            );
            Outcome::Done
        }
        Command::RequestProvider { id, request } => {
            let p = provider(state, *id)?;
            let event = match request {
                ProviderRequest::Sync => Event::ProviderSyncRequested,
                ProviderRequest::Retry => Event::ProviderRetryRequested,
                ProviderRequest::Replay { from } => {
                    Event::ProviderReplayRequested(ProviderReplayRequested { from: *from })
                }
            };
            b.push(ResourceType::Provider, *id, p.version, event);
            Outcome::Provider(*id)
        }
        Command::CreateUser {
            resource,
            password_hash,
        } => {
            let name = string_attr(resource, "userName")?;
            if let Some(existing) = state.user_by_name(name) {
                if !adopts(state, ctx) {
                    return Err(DomainError::Conflict(format!(
                        "userName {name:?} is already taken"
                    )));
                }
                adopt(
                    &mut b,
                    ctx,
                    ResourceType::User,
                    existing.id,
                    existing.version,
                    &existing.owner,
                );
                let out = replace_user(state, &mut b, existing, resource)?;
                set_password(&mut b, existing.id, existing.version, password_hash);
                return Ok((b.events, out));
            }
            let id = ResourceId::new();
            let event = Event::UserCreated(UserCreated {
                owner: ctx.source.clone(),
                resource: Document::from_map(resource),
            });
            b.push(ResourceType::User, id, 0, event);
            set_password(&mut b, id, 0, password_hash);
            Outcome::User(id)
        }
        Command::ReplaceUser {
            id,
            resource,
            password_hash,
            if_match,
        } => {
            let user = visible_user(state, ctx, *id, *if_match)?;
            let out = replace_user(state, &mut b, user, resource)?;
            set_password(&mut b, user.id, user.version, password_hash);
            out
        }
        Command::PatchUser {
            id,
            ops,
            password_hash,
            if_match,
        } => {
            let user = visible_user(state, ctx, *id, *if_match)?;
            let mut doc = user.resource.to_map();
            patch::apply(&mut doc, ops, patch::Kind::User).map_err(DomainError::Patch)?;
            patch::normalize_user(&mut doc);
            let out = replace_user(state, &mut b, user, &doc)?;
            set_password(&mut b, user.id, user.version, password_hash);
            out
        }
        Command::DeleteUser { id, if_match } => {
            let user = visible_user(state, ctx, *id, *if_match)?;
            remove_from_groups(
                state,
                &mut b,
                Member {
                    value: *id,
                    kind: MemberType::User,
                },
            );
            b.push(ResourceType::User, *id, user.version, Event::UserDeleted);
            Outcome::Done
        }
        Command::CreateGroup { resource, members } => {
            let name = string_attr(resource, "displayName")?;
            if let Some(existing) = state.group_by_name(name) {
                if !adopts(state, ctx) {
                    return Err(DomainError::Conflict(format!(
                        "displayName {name:?} is already taken"
                    )));
                }
                adopt(
                    &mut b,
                    ctx,
                    ResourceType::Group,
                    existing.id,
                    existing.version,
                    &existing.owner,
                );
                return replace_group(state, &mut b, ctx, existing, resource, members)
                    .map(|o| (b.events, o));
            }
            let members = resolve_members(state, ctx, None, members)?;
            let id = ResourceId::new();
            let event = Event::GroupCreated(GroupCreated {
                owner: ctx.source.clone(),
                resource: Document::from_map(resource),
            });
            b.push(ResourceType::Group, id, 0, event);
            if !members.is_empty() {
                let added = Event::GroupMembersAdded(GroupMembersAdded {
                    members: members.into_iter().collect(),
                });
                b.push(ResourceType::Group, id, 0, added);
            }
            Outcome::Group(id)
        }
        Command::ReplaceGroup {
            id,
            resource,
            members,
            if_match,
        } => {
            let group = visible_group(state, ctx, *id, *if_match)?;
            replace_group(state, &mut b, ctx, group, resource, members)?
        }
        Command::PatchGroup { id, ops, if_match } => {
            let group = visible_group(state, ctx, *id, *if_match)?;
            let mut doc = group.resource.to_map();
            let current: Vec<Value> = group
                .members
                .iter()
                .map(|m| serde_json::json!({"value": m.value.to_string(), "type": format!("{:?}", m.kind)}))
                .collect();
            doc.insert("members".into(), Value::Array(current));
            patch::apply(&mut doc, ops, patch::Kind::Group).map_err(DomainError::Patch)?;
            let members = take_members(&mut doc)?;
            replace_group(state, &mut b, ctx, group, &doc, &members)?
        }
        Command::DeleteGroup { id, if_match } => {
            let group = visible_group(state, ctx, *id, *if_match)?;
            remove_from_groups(
                state,
                &mut b,
                Member {
                    value: *id,
                    kind: MemberType::Group,
                },
            );
            b.push(ResourceType::Group, *id, group.version, Event::GroupDeleted);
            Outcome::Done
        }
    };
    Ok((b.events, outcome))
}

/// Records a new password hash for a user, if the command carries one.
fn set_password(b: &mut Builder<'_>, id: ResourceId, version: u64, hash: &Option<String>) {
    if let Some(hash) = hash {
        let event = Event::UserPasswordSet(UserPasswordSet { hash: hash.clone() });
        b.push(ResourceType::User, id, version, event);
    }
}

/// True if the caller is a source with the `adopt` policy.
fn adopts(state: &Directory, ctx: &Context) -> bool {
    ctx.source
        .as_deref()
        .and_then(|slug| state.source_by_slug(slug))
        .is_some_and(|s| s.ownership == Ownership::Adopt)
}

/// Records that the caller's source adopts a resource (if it does not own it already).
fn adopt(
    b: &mut Builder<'_>,
    ctx: &Context,
    rt: ResourceType,
    id: ResourceId,
    version: u64,
    previous_owner: &Option<String>,
) {
    let Some(owner) = ctx.source.clone() else {
        return;
    };
    if previous_owner.as_deref() == Some(owner.as_str()) {
        return;
    }
    let adopted = Adopted {
        previous_owner: previous_owner.clone(),
        owner,
    };
    let event = match rt {
        ResourceType::Group => Event::GroupAdopted(adopted),
        _ => Event::UserAdopted(adopted),
    };
    b.push(rt, id, version, event);
}

fn visible_user<'a>(
    state: &'a Directory,
    ctx: &Context,
    id: ResourceId,
    if_match: Option<u64>,
) -> Result<&'a Arc<UserView>, DomainError> {
    let user = state.user(id).filter(|u| visible(&u.owner, ctx));
    let user = user.ok_or_else(|| DomainError::NotFound(format!("user {id} not found")))?;
    check_version(user.version, if_match)?;
    Ok(user)
}

fn visible_group<'a>(
    state: &'a Directory,
    ctx: &Context,
    id: ResourceId,
    if_match: Option<u64>,
) -> Result<&'a Arc<GroupView>, DomainError> {
    let group = state.group(id).filter(|g| visible(&g.owner, ctx));
    let group = group.ok_or_else(|| DomainError::NotFound(format!("group {id} not found")))?;
    check_version(group.version, if_match)?;
    Ok(group)
}

/// Records a user's new document (PUT, or the result of a PATCH), if it changed.
fn replace_user(
    state: &Directory,
    b: &mut Builder<'_>,
    user: &UserView,
    resource: &Map<String, Value>,
) -> Result<Outcome, DomainError> {
    let name = string_attr(resource, "userName")?;
    if state
        .user_by_name(name)
        .is_some_and(|other| other.id != user.id)
    {
        return Err(DomainError::Conflict(format!(
            "userName {name:?} is already taken"
        )));
    }
    let resource = Document::from_map(resource);
    if user.resource != resource {
        let event = Event::UserReplaced(UserReplaced { resource });
        b.push(ResourceType::User, user.id, user.version, event);
    }
    Ok(Outcome::User(user.id))
}

/// Records a group's new document and member list (PUT, or the result of a PATCH): the
/// document if it changed, then the members removed and added.
fn replace_group(
    state: &Directory,
    b: &mut Builder<'_>,
    ctx: &Context,
    group: &GroupView,
    resource: &Map<String, Value>,
    members: &[MemberRef],
) -> Result<Outcome, DomainError> {
    let id = group.id;
    let name = string_attr(resource, "displayName")?;
    if state
        .group_by_name(name)
        .is_some_and(|other| other.id != id)
    {
        return Err(DomainError::Conflict(format!(
            "displayName {name:?} is already taken"
        )));
    }
    let members = resolve_members(state, ctx, Some(id), members)?;
    let resource = Document::from_map(resource);
    if group.resource != resource {
        let event = Event::GroupReplaced(GroupReplaced { resource });
        b.push(ResourceType::Group, id, group.version, event);
    }
    let removed: Vec<Member> = group.members.difference(&members).copied().collect();
    let added: Vec<Member> = members.difference(&group.members).copied().collect();
    if !removed.is_empty() {
        let event = Event::GroupMembersRemoved(GroupMembersRemoved { members: removed });
        b.push(ResourceType::Group, id, group.version, event);
    }
    if !added.is_empty() {
        let event = Event::GroupMembersAdded(GroupMembersAdded { members: added });
        b.push(ResourceType::Group, id, group.version, event);
    }
    Ok(Outcome::Group(id))
}

/// Takes the `members` array out of a patched group document.
fn take_members(doc: &mut Map<String, Value>) -> Result<Vec<MemberRef>, DomainError> {
    let key = doc
        .keys()
        .find(|k| k.eq_ignore_ascii_case("members"))
        .cloned();
    let Some(list) = key.and_then(|k| doc.remove(&k)) else {
        return Ok(vec![]);
    };
    let Value::Array(items) = list else {
        return Err(DomainError::Invalid("members must be an array".into()));
    };
    items
        .iter()
        .map(|m| {
            let value = m.get("value").and_then(Value::as_str);
            let value = value
                .ok_or_else(|| DomainError::Invalid("every member needs a string value".into()))?;
            Ok(MemberRef {
                value: value.to_owned(),
                kind: m.get("type").and_then(Value::as_str).map(str::to_owned),
            })
        })
        .collect()
}

fn create_source(
    b: &mut Builder<'_>,
    slug: &str,
    token: &NewToken,
    ownership: Ownership,
) -> Outcome {
    let id = ResourceId::new();
    let created = Event::SourceCreated(SourceCreated {
        slug: slug.to_owned(),
        service_account: format!("source:{slug}"),
        ownership,
    });
    b.push(ResourceType::Source, id, 0, created);
    let issued = Event::SourceTokenIssued(SourceTokenIssued {
        token_id: token.id,
        token_hash: token.hash.clone(),
        prefix: token.prefix.clone(),
    });
    b.push(ResourceType::Source, id, 0, issued);
    Outcome::Source(id)
}

/// Records the removal of `member` from every group that has it, so that memberships never
/// point at a deleted resource and every affected group's history shows the change.
fn remove_from_groups(state: &Directory, b: &mut Builder<'_>, member: Member) {
    let parents: Vec<ResourceId> = state.groups_of(member.value).collect();
    for gid in parents {
        if let Some(g) = state.group(gid) {
            let event = Event::GroupMembersRemoved(GroupMembersRemoved {
                members: vec![member],
            });
            b.push(ResourceType::Group, gid, g.version, event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(source: &str) -> Context {
        Context {
            actor: Actor::Source(format!("source:{source}")),
            source: Some(source.into()),
            correlation_id: None,
        }
    }

    fn doc(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    /// Runs commands through decide + apply, as the writer does, returning the state.
    fn given(cmds: &[(Command, Context)]) -> (Directory, Vec<Outcome>) {
        let mut state = Directory::new("default");
        let mut outcomes = Vec::new();
        for (cmd, ctx) in cmds {
            let (events, outcome) = decide(&state, cmd, ctx, Utc::now()).unwrap();
            for e in &events {
                state.apply(e.clone()).unwrap();
            }
            outcomes.push(outcome);
        }
        (state, outcomes)
    }

    fn user(name: &str) -> Command {
        Command::CreateUser {
            resource: doc(json!({"userName": name})),
            password_hash: None,
        }
    }

    fn id(o: &Outcome) -> ResourceId {
        match o {
            Outcome::User(id)
            | Outcome::Group(id)
            | Outcome::Source(id)
            | Outcome::Provider(id) => *id,
            Outcome::Done => panic!("no id"),
        }
    }

    #[test]
    fn a_user_name_taken_in_any_case_is_a_conflict() {
        let (state, _) = given(&[(user("alice@x.com"), ctx("a"))]);
        let r = decide(&state, &user("ALICE@X.COM"), &ctx("a"), Utc::now());
        assert!(matches!(r, Err(DomainError::Conflict(_))));
        let r = decide(&state, &user("Alice@x.com"), &ctx("b"), Utc::now());
        assert!(
            matches!(r, Err(DomainError::Conflict(_))),
            "other sources' names are taken too"
        );
    }

    #[test]
    fn a_stale_if_match_fails_and_a_current_one_bumps_the_version() {
        let (state, o) = given(&[(user("bob"), ctx("a"))]);
        let uid = id(&o[0]);
        let replace = |v| Command::ReplaceUser {
            id: uid,
            resource: doc(json!({"userName": "bob", "title": "x"})),
            password_hash: None,
            if_match: Some(v),
        };
        let r = decide(&state, &replace(7), &ctx("a"), Utc::now());
        assert_eq!(
            r.unwrap_err(),
            DomainError::PreconditionFailed {
                current: 1,
                expected: 7
            }
        );
        let (events, _) = decide(&state, &replace(1), &ctx("a"), Utc::now()).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].resource_version, 2);
        assert_eq!(events[0].event.event_type(), "user.replaced");
    }

    #[test]
    fn replacing_with_the_same_document_records_nothing() {
        let (state, o) = given(&[(user("carol"), ctx("a"))]);
        let cmd = Command::ReplaceUser {
            id: id(&o[0]),
            resource: doc(json!({"userName": "carol"})),
            password_hash: None,
            if_match: None,
        };
        let (events, outcome) = decide(&state, &cmd, &ctx("a"), Utc::now()).unwrap();
        assert!(events.is_empty());
        assert_eq!(outcome, Outcome::User(id(&o[0])));
    }

    #[test]
    fn another_sources_objects_are_not_found() {
        let (state, o) = given(&[(user("dave"), ctx("a"))]);
        let cmd = Command::DeleteUser {
            id: id(&o[0]),
            if_match: None,
        };
        assert!(matches!(
            decide(&state, &cmd, &ctx("b"), Utc::now()),
            Err(DomainError::NotFound(_))
        ));
        let group = Command::CreateGroup {
            resource: doc(json!({"displayName": "g"})),
            members: vec![MemberRef {
                value: id(&o[0]).to_string(),
                kind: None,
            }],
        };
        assert!(matches!(
            decide(&state, &group, &ctx("b"), Utc::now()),
            Err(DomainError::Invalid(_))
        ));
    }

    #[test]
    fn deleting_a_member_records_its_removal_from_every_group_first() {
        let (state, o) = given(&[(user("erin"), ctx("a"))]);
        let uid = id(&o[0]);
        let member = vec![MemberRef {
            value: uid.to_string(),
            kind: Some("User".into()),
        }];
        let mk = |n: &str| Command::CreateGroup {
            resource: doc(json!({"displayName": n})),
            members: member.clone(),
        };
        let mut state = state;
        let mut gids = Vec::new();
        for n in ["g1", "g2"] {
            let (events, out) = decide(&state, &mk(n), &ctx("a"), Utc::now()).unwrap();
            assert_eq!(events.len(), 2, "created, then members added");
            assert_eq!(events[1].resource_version, 2);
            for e in &events {
                state.apply(e.clone()).unwrap();
            }
            gids.push(id(&out));
        }
        let (events, _) = decide(
            &state,
            &Command::DeleteUser {
                id: uid,
                if_match: None,
            },
            &ctx("a"),
            Utc::now(),
        )
        .unwrap();
        let types: Vec<_> = events.iter().map(|e| e.event.event_type()).collect();
        assert_eq!(
            types,
            [
                "group.members_removed",
                "group.members_removed",
                "user.deleted"
            ]
        );
        assert!(events[..2]
            .iter()
            .all(|e| gids.contains(&e.resource_id) && e.resource_version == 3));
        for e in &events {
            state.apply(e.clone()).unwrap();
        }
        assert!(gids
            .iter()
            .all(|g| state.group(*g).unwrap().members.is_empty()));
        assert_eq!(state.groups_of(uid).count(), 0);
    }

    #[test]
    fn replacing_a_group_records_only_the_membership_difference() {
        let (state, o) = given(&[
            (user("u1"), ctx("a")),
            (user("u2"), ctx("a")),
            (user("u3"), ctx("a")),
        ]);
        let r = |i: usize| MemberRef {
            value: id(&o[i]).to_string(),
            kind: None,
        };
        let create = Command::CreateGroup {
            resource: doc(json!({"displayName": "g"})),
            members: vec![r(0), r(1)],
        };
        let mut state = state;
        let (events, out) = decide(&state, &create, &ctx("a"), Utc::now()).unwrap();
        events.iter().for_each(|e| state.apply(e.clone()).unwrap());
        let gid = id(&out);
        let replace = Command::ReplaceGroup {
            id: gid,
            resource: doc(json!({"displayName": "g"})),
            members: vec![r(1), r(2)],
            if_match: None,
        };
        let (events, _) = decide(&state, &replace, &ctx("a"), Utc::now()).unwrap();
        assert_eq!(events.len(), 2);
        match (&events[0].event, &events[1].event) {
            (Event::GroupMembersRemoved(rm), Event::GroupMembersAdded(add)) => {
                assert_eq!(
                    rm.members.iter().map(|m| m.value).collect::<Vec<_>>(),
                    vec![id(&o[0])]
                );
                assert_eq!(
                    add.members.iter().map(|m| m.value).collect::<Vec<_>>(),
                    vec![id(&o[2])]
                );
            }
            other => panic!("unexpected events {other:?}"),
        }
        assert_eq!(
            (events[0].resource_version, events[1].resource_version),
            (3, 4)
        );
        let selfref = Command::ReplaceGroup {
            id: gid,
            resource: doc(json!({"displayName": "g"})),
            members: vec![MemberRef {
                value: gid.to_string(),
                kind: None,
            }],
            if_match: None,
        };
        assert!(matches!(
            decide(&state, &selfref, &ctx("a"), Utc::now()),
            Err(DomainError::Invalid(_))
        ));
    }

    #[test]
    fn bootstrap_happens_once() {
        let t = || NewToken {
            id: ResourceId::new(),
            hash: "h".into(),
            prefix: "p".into(),
        };
        let boot = Command::Bootstrap {
            admin: t(),
            source_slug: "default".into(),
            source_token: t(),
        };
        let sys = Context {
            actor: Actor::System,
            source: None,
            correlation_id: None,
        };
        let (state, _) = given(&[(boot.clone(), sys.clone())]);
        assert!(state.source_by_slug("default").is_some());
        assert_eq!(state.admin_tokens().count(), 1);
        assert!(matches!(
            decide(&state, &boot, &sys, Utc::now()),
            Err(DomainError::Conflict(_))
        ));
    }
}
