//! The pure decision step: `decide(state, command) -> events` (the commands themselves are
//! in `command`).
//!
//! A command is validated against one directory's current state (uniqueness of userName and
//! group displayName, resource versions, ownership, membership references) and turned into the
//! events that record its outcome. No I/O happens here; the writer (`crate::pipeline`) feeds the
//! state and appends what comes out.

mod command;
mod mappings;
mod members;
mod providers;

use crate::patch::{self, PatchOp};
use chrono::{DateTime, Utc};
use mappings::Reshaped;
use members::{member_changes, resolve_members};
use roster_events::{
    AdminTokenIssued, Adopted, DirectoryCreated, Document, Envelope, Event, GroupCreated,
    GroupMembersAdded, GroupMembersRemoved, GroupReplaced, Member, MemberType, Ownership, Personal,
    ResourceId, ResourceType, SourceCreated, SourceTokenIssued, SourceTokenRevoked,
    UndeclaredExtensions, UserCreated, UserErased, UserPasswordSet, UserReplaced,
};
use roster_projections::schema::{Checked, ResourceSchemas};
use roster_projections::{Directory, GroupView, UserView};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

pub use crate::patch::MemberRef;
pub use command::{
    Command, Context, DomainError, Evaluated, GroupPatch, NewToken, Outcome, ProviderRequest,
    UserPatch,
};

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
            client: self.ctx.client.clone(),
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

fn string_attr<'a>(resource: &'a Checked, name: &str) -> Result<&'a str, DomainError> {
    match resource.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Value::String(_)) | None => Err(DomainError::Invalid(format!("{name} is required"))),
        Some(_) => Err(DomainError::Invalid(format!("{name} must be a string"))),
    }
}

/// The schemas the caller's source gives users (`user`) or groups: its declared extensions
/// and what it does with undeclared ones.
fn source_schemas<'a>(state: &'a Directory, ctx: &Context, user: bool) -> ResourceSchemas<'a> {
    schemas_of(state, ctx.source.as_deref(), user)
}

/// The schemas the source `slug` gives users (`user`) or groups.
/// Without a source (an admin's write), extensions are kept as they come.
fn schemas_of<'a>(state: &'a Directory, slug: Option<&str>, user: bool) -> ResourceSchemas<'a> {
    match slug.and_then(|s| state.source_by_slug(s)) {
        Some(s) => s.schemas(user),
        None if user => ResourceSchemas::user(&[], UndeclaredExtensions::Keep),
        None => ResourceSchemas::group(&[], UndeclaredExtensions::Keep),
    }
}

/// A PATCH's resulting document, None if it has no operations on the document: the one
/// computed at the edge if the resource is still at that version, otherwise the operations
/// applied to the current document.
fn patched(
    state: &Directory,
    ctx: &Context,
    (version, current): (u64, &Document),
    ops: &[PatchOp],
    evaluated: Option<&Evaluated>,
    user: bool,
) -> Result<Option<Checked>, DomainError> {
    if ops.is_empty() {
        return Ok(None);
    }
    if let Some(e) = evaluated.filter(|e| e.version == version) {
        return Ok(Some(e.document.clone()));
    }
    let schemas = source_schemas(state, ctx, user);
    patch::apply(current.to_map(), ops, &schemas)
        .map(Some)
        .map_err(DomainError::Patch)
}

/// Records `state`'s directory coming into being, unless it exists.
fn create_directory(b: &mut Builder<'_>, state: &Directory) -> Result<(), DomainError> {
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
    Ok(())
}

/// Records the deletion of `state`'s directory if it exists, is empty and is not `default`.
fn delete_directory(b: &mut Builder<'_>, state: &Directory) -> Result<(), DomainError> {
    let name = state.name();
    let meta = state
        .meta()
        .ok_or_else(|| DomainError::NotFound(format!("directory {name:?} not found")))?;
    if name == roster_events::DEFAULT_DIRECTORY {
        return Err(DomainError::Conflict(
            "the default directory holds the admin tokens and cannot be deleted".into(),
        ));
    }
    let held = [
        (state.user_count(), "users"),
        (state.group_count(), "groups"),
        (state.sources().count(), "sources"),
        (state.providers().count(), "providers"),
    ];
    let held: Vec<String> = held
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    if !held.is_empty() {
        return Err(DomainError::Conflict(format!(
            "directory {name:?} still holds {}: delete them first",
            held.join(", ")
        )));
    }
    b.push(ResourceType::Directory, meta.id, 1, Event::DirectoryDeleted);
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
            create_directory(&mut b, state)?;
            let event = Event::AdminTokenIssued(AdminTokenIssued {
                token_id: admin.id,
                token_hash: admin.hash.clone(),
                prefix: admin.prefix.clone(),
            });
            b.push(ResourceType::AdminToken, admin.id, 0, event);
            create_source(
                &mut b,
                source_slug,
                source_token,
                Ownership::Owned,
                UndeclaredExtensions::Refuse,
            )
        }
        Command::RecordRefusal(r) => {
            let event = Event::AccessRefused(r.clone());
            b.push(ResourceType::Request, ResourceId(Uuid::now_v7()), 0, event);
            Outcome::Done
        }
        Command::RecordRead(r) => {
            let event = Event::AuditRead(r.clone());
            b.push(ResourceType::Request, ResourceId(Uuid::now_v7()), 0, event);
            Outcome::Done
        }
        Command::CreateDirectory => {
            create_directory(&mut b, state)?;
            Outcome::Done
        }
        Command::DeleteDirectory => {
            delete_directory(&mut b, state)?;
            Outcome::Done
        }
        Command::IssueAdminToken { token } => {
            let event = Event::AdminTokenIssued(AdminTokenIssued {
                token_id: token.id,
                token_hash: token.hash.clone(),
                prefix: token.prefix.clone(),
            });
            b.push(ResourceType::AdminToken, token.id, 0, event);
            Outcome::Done
        }
        Command::RevokeAdminToken {
            token_id,
            configured,
        } => {
            let valid: Vec<&roster_projections::AdminTokenView> = state
                .admin_tokens()
                .filter(|t| t.revoked.is_none())
                .collect();
            match state.admin_tokens().find(|t| t.id == *token_id) {
                None => {
                    return Err(DomainError::NotFound(format!(
                        "admin token {token_id} not found"
                    )))
                }
                Some(t) if t.revoked.is_some() => {}
                Some(_) => {
                    if valid.len() == 1 && !configured {
                        return Err(DomainError::Conflict(
                            "this is the last valid admin token: issue another first, or \
                             configure admin_token, so that admins are not locked out"
                                .into(),
                        ));
                    }
                    let event = Event::AdminTokenRevoked(roster_events::AdminTokenRevoked {
                        token_id: *token_id,
                    });
                    b.push(ResourceType::AdminToken, *token_id, 1, event);
                }
            }
            Outcome::Done
        }
        Command::DeleteSource { slug } => {
            let source = source_by_slug(state, slug)?;
            b.push(
                ResourceType::Source,
                source.id,
                source.version,
                Event::SourceDeleted,
            );
            Outcome::Source(source.id)
        }
        Command::CreateSource {
            slug,
            token,
            ownership,
            undeclared_extensions,
        } => {
            if state.source_by_slug(slug).is_some() {
                return Err(DomainError::Conflict(format!("source {slug:?} exists")));
            }
            create_source(&mut b, slug, token, *ownership, *undeclared_extensions)
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
        Command::CreateProvider { id, config } => providers::create(state, &mut b, *id, config)?,
        Command::UpdateProvider { id, config } => providers::update(state, &mut b, *id, config)?,
        Command::DeleteProvider { id } => providers::delete(state, &mut b, *id)?,
        Command::RequestProvider { id, request } => {
            providers::request(state, &mut b, *id, *request)?
        }
        Command::CreateMapping { id, mapping } => mappings::create(state, &mut b, *id, mapping)?,
        Command::UpdateMapping { id, mapping } => mappings::update(state, &mut b, *id, mapping)?,
        Command::DeleteMapping { id } => mappings::delete(state, &mut b, *id)?,
        Command::SetSourceMappings { slug, mappings } => {
            mappings::set_for_source(state, &mut b, slug, mappings)?
        }
        Command::Remap { slug, user, id } => mappings::remap(state, &mut b, ctx, slug, *user, *id)?,
        Command::CreateUser {
            resource,
            password_hash,
        } => {
            let reshaped = mappings::reshape_user(state, ctx, resource, None)?;
            let resource = reshaped.as_ref().map_or(resource, |r| &r.resource);
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
                let out = replace_user(state, &mut b, existing, resource, reshaped.as_ref())?;
                set_password(&mut b, existing.id, existing.version, password_hash);
                return Ok((b.events, out));
            }
            let id = ResourceId::new();
            let event = Event::UserCreated(UserCreated {
                owner: ctx.source.clone(),
                resource: Personal::Plain(Document::from_map(resource.as_map())),
                mapped: reshaped.as_ref().map(Reshaped::for_user),
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
            let reshaped = mappings::reshape_user(state, ctx, resource, Some(user))?;
            let resource = reshaped.as_ref().map_or(resource, |r| &r.resource);
            let out = replace_user(state, &mut b, user, resource, reshaped.as_ref())?;
            set_password(&mut b, user.id, user.version, password_hash);
            out
        }
        Command::PatchUser {
            id,
            patch,
            password_hash,
            if_match,
        } => {
            let user = visible_user(state, ctx, *id, *if_match)?;
            let current = (user.version, &user.resource);
            let e = patch.evaluated.as_ref();
            let doc = patched(state, ctx, current, &patch.ops, e, true)?;
            let out = match &doc {
                Some(doc) => {
                    let reshaped = mappings::reshape_user(state, ctx, doc, Some(user))?;
                    let doc = reshaped.as_ref().map_or(doc, |r| &r.resource);
                    replace_user(state, &mut b, user, doc, reshaped.as_ref())?
                }
                None => Outcome::User(user.id),
            };
            set_password(&mut b, user.id, user.version, password_hash);
            out
        }
        Command::DeleteUser { id, if_match } => {
            let user = visible_user(state, ctx, *id, *if_match)?;
            remove_user_from_groups(state, &mut b, *id);
            b.push(ResourceType::User, *id, user.version, Event::UserDeleted);
            Outcome::Done
        }
        Command::EraseUser {
            id,
            version,
            key,
            in_clear,
            reference,
        } => {
            if ctx.source.is_some() {
                return Err(DomainError::NotFound(format!("user {id} not found")));
            }
            let live = state.user(*id);
            if live.is_some() {
                remove_user_from_groups(state, &mut b, *id);
            }
            let event = Event::UserErased(UserErased {
                key: live.and_then(|u| u.data_key).or(*key),
                in_clear: *in_clear,
                reference: reference.clone(),
            });
            let current = live.map_or(*version, |u| u.version);
            b.push(ResourceType::User, *id, current, event);
            Outcome::Done
        }
        Command::CreateGroup { resource, members } => {
            let reshaped = mappings::reshape_group(state, ctx, resource, None)?;
            let resource = reshaped.as_ref().map_or(resource, |r| &r.resource);
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
                let doc = (resource, reshaped.as_ref());
                return replace_group(state, &mut b, ctx, existing, doc, members)
                    .map(|o| (b.events, o));
            }
            let members = resolve_members(state, ctx, None, members)?;
            let id = ResourceId::new();
            let event = Event::GroupCreated(GroupCreated {
                owner: ctx.source.clone(),
                resource: Document::from_map(resource.as_map()),
                mapped: reshaped.as_ref().map(Reshaped::for_group),
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
            let reshaped = mappings::reshape_group(state, ctx, resource, Some(group))?;
            let resource = reshaped.as_ref().map_or(resource, |r| &r.resource);
            replace_group(
                state,
                &mut b,
                ctx,
                group,
                (resource, reshaped.as_ref()),
                members,
            )?
        }
        Command::PatchGroup {
            id,
            patch,
            if_match,
        } => {
            let group = visible_group(state, ctx, *id, *if_match)?;
            let current = (group.version, &group.resource);
            let e = patch.evaluated.as_ref();
            let doc = patched(state, ctx, current, &patch.ops, e, false)?;
            let reshaped = match &doc {
                Some(doc) => mappings::reshape_group(state, ctx, doc, Some(group))?,
                None => None,
            };
            let doc = match (&reshaped, &doc) {
                (Some(r), _) => Some(&r.resource),
                (None, doc) => doc.as_ref(),
            };
            let (removed, added) = member_changes(state, ctx, group, &patch.members)?;
            let doc = doc.map(|d| (d, reshaped.as_ref()));
            write_group(state, &mut b, group, doc, removed, added)?
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
        let event = Event::UserPasswordSet(UserPasswordSet {
            hash: Personal::Plain(hash.clone()),
        });
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
    resource: &Checked,
    reshaped: Option<&Reshaped>,
) -> Result<Outcome, DomainError> {
    let name = string_attr(resource, "userName")?;
    if state.users_named(name).any(|other| other.id != user.id) {
        return Err(DomainError::Conflict(format!(
            "userName {name:?} is already taken"
        )));
    }
    let resource = Document::from_map(resource.as_map());
    if user.resource != resource {
        let event = Event::UserReplaced(UserReplaced {
            resource: Personal::Plain(resource),
            mapped: reshaped.map(Reshaped::for_user),
        });
        b.push(ResourceType::User, user.id, user.version, event);
    }
    Ok(Outcome::User(user.id))
}

/// Records a group's new document and member list (a PUT, or an adopting create): the
/// document if it changed, then the members removed and added. Members the group has are kept
/// even if the caller no longer sees them; new ones must be users or groups it sees.
fn replace_group(
    state: &Directory,
    b: &mut Builder<'_>,
    ctx: &Context,
    group: &GroupView,
    resource: (&Checked, Option<&Reshaped>),
    members: &[MemberRef],
) -> Result<Outcome, DomainError> {
    let members = resolve_members(state, ctx, Some(group), members)?;
    let removed: Vec<Member> = group.members.difference(&members).copied().collect();
    let added: Vec<Member> = members.difference(&group.members).copied().collect();
    write_group(state, b, group, Some(resource), removed, added)
}

/// Records a group's changes: its document (if given and different, with what its source sent
/// when mappings reshaped it), then the members removed and added.
fn write_group(
    state: &Directory,
    b: &mut Builder<'_>,
    group: &GroupView,
    resource: Option<(&Checked, Option<&Reshaped>)>,
    removed: Vec<Member>,
    added: Vec<Member>,
) -> Result<Outcome, DomainError> {
    let id = group.id;
    if let Some((resource, reshaped)) = resource {
        let name = string_attr(resource, "displayName")?;
        if state.groups_named(name).any(|other| other.id != id) {
            return Err(DomainError::Conflict(format!(
                "displayName {name:?} is already taken"
            )));
        }
        let resource = Document::from_map(resource.as_map());
        if group.resource != resource {
            let event = Event::GroupReplaced(GroupReplaced {
                resource,
                mapped: reshaped.map(Reshaped::for_group),
            });
            b.push(ResourceType::Group, id, group.version, event);
        }
    }
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

fn create_source(
    b: &mut Builder<'_>,
    slug: &str,
    token: &NewToken,
    ownership: Ownership,
    undeclared_extensions: UndeclaredExtensions,
) -> Outcome {
    let id = ResourceId::new();
    let created = Event::SourceCreated(SourceCreated {
        slug: slug.to_owned(),
        service_account: format!("source:{slug}"),
        ownership,
        undeclared_extensions,
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
/// Records that user `id` leaves every group it is in (it is deleted or erased).
fn remove_user_from_groups(state: &Directory, b: &mut Builder<'_>, id: ResourceId) {
    let member = Member {
        value: id,
        kind: MemberType::User,
    };
    remove_from_groups(state, b, member);
}

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
mod tests;
