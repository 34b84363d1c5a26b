//! Every SCIM request body, single or inside Bulk, parsed once into a typed command checked
//! against the source's schemas: a user or group document becomes a `Checked` document
//! (types, sizes, names), group members a list of references, a PATCH a list of checked
//! operations whose result is computed here, off the directory's writer, against the current
//! version of the resource (the writer uses it if that version is still current). Passwords
//! are taken out of documents and operations and hashed last, with bounded concurrency, so a
//! request that fails any check costs no hashing.

use super::super::error::ScimError;
use super::super::AppState;
use super::auth::SourceAuth;
use crate::domain::{Command, Evaluated, GroupPatch, MemberRef, UserPatch};
use crate::patch::{self, members, OpKind, PatchError, PatchOp, PatchPath};
use axum::http::StatusCode;
use roster_events::{Document, ResourceId};
use roster_projections::filter::get_ci;
use roster_projections::schema::{self, Checked, ResourceSchemas};
use serde_json::{Map, Value};

/// A PATCH failure as a SCIM error.
pub(super) fn patch_error(e: PatchError) -> ScimError {
    ScimError::bad_request(e.scim_type, e.detail)
}

fn invalid(e: schema::Invalid) -> ScimError {
    ScimError::bad_request(e.scim_type, e.detail)
}

/// Takes the `password` out of a user document: a string, or nothing.
fn take_password(doc: &mut Map<String, Value>) -> Result<Option<String>, ScimError> {
    let key = doc
        .keys()
        .find(|k| k.eq_ignore_ascii_case("password"))
        .cloned();
    match key.and_then(|k| doc.remove(&k)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(p)) => Ok(Some(p)),
        Some(_) => Err(ScimError::bad_request(
            "invalidValue",
            "password must be a string",
        )),
    }
}

/// Hashes a password the client sent, unless the policy refuses passwords.
async fn hash_password(
    app: &AppState,
    password: Option<String>,
) -> Result<Option<String>, ScimError> {
    let Some(password) = password else {
        return Ok(None);
    };
    if app.settings.password_policy == crate::config::PasswordPolicy::Refuse {
        return Err(ScimError::bad_request(
            "invalidValue",
            "this server does not accept passwords",
        ));
    }
    app.passwords
        .hash(password)
        .await
        .map(Some)
        .map_err(Into::into)
}

/// A user document from a POST or PUT body, checked, and its password hashed.
async fn user_document(
    app: &AppState,
    auth: &SourceAuth,
    mut body: Map<String, Value>,
) -> Result<(Checked, Option<String>), ScimError> {
    let password = take_password(&mut body)?;
    let resource = auth.users().check(body).map_err(invalid)?;
    Ok((resource, hash_password(app, password).await?))
}

/// A group document and its member list from a POST or PUT body.
fn group_document(
    auth: &SourceAuth,
    mut body: Map<String, Value>,
) -> Result<(Checked, Vec<MemberRef>), ScimError> {
    let key = body
        .keys()
        .find(|k| k.eq_ignore_ascii_case("members"))
        .cloned();
    let members = match key.and_then(|k| body.remove(&k)) {
        Some(v) if !v.is_array() && !v.is_null() => {
            return Err(ScimError::bad_request(
                "invalidValue",
                "members must be an array",
            ))
        }
        Some(v) => members::refs(&v).map_err(patch_error)?,
        None => vec![],
    };
    Ok((auth.groups().check(body).map_err(invalid)?, members))
}

// RFC 7644 §3.3
pub(super) async fn create_user(
    app: &AppState,
    auth: &SourceAuth,
    body: Map<String, Value>,
) -> Result<Command, ScimError> {
    let (resource, password_hash) = user_document(app, auth, body).await?;
    Ok(Command::CreateUser {
        resource,
        password_hash,
    })
}

// RFC 7644 §3.5.1
pub(super) async fn replace_user(
    app: &AppState,
    auth: &SourceAuth,
    id: ResourceId,
    body: Map<String, Value>,
    if_match: Option<u64>,
) -> Result<Command, ScimError> {
    let (resource, password_hash) = user_document(app, auth, body).await?;
    Ok(Command::ReplaceUser {
        id,
        resource,
        password_hash,
        if_match,
    })
}

// RFC 7644 §3.3
pub(super) fn create_group(
    auth: &SourceAuth,
    body: Map<String, Value>,
) -> Result<Command, ScimError> {
    let (resource, members) = group_document(auth, body)?;
    Ok(Command::CreateGroup { resource, members })
}

// RFC 7644 §3.5.1
pub(super) fn replace_group(
    auth: &SourceAuth,
    id: ResourceId,
    body: Map<String, Value>,
    if_match: Option<u64>,
) -> Result<Command, ScimError> {
    let (resource, members) = group_document(auth, body)?;
    Ok(Command::ReplaceGroup {
        id,
        resource,
        members,
        if_match,
    })
}

/// The checked operations of a PatchOp body, at most [`patch::MAX_OPERATIONS`] of them.
fn patch_ops(
    body: &Map<String, Value>,
    schemas: &ResourceSchemas<'_>,
) -> Result<Vec<PatchOp>, ScimError> {
    if let Some(Value::Array(ops)) = get_ci(body, "Operations") {
        if ops.len() > patch::MAX_OPERATIONS {
            return Err(ScimError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                format!(
                    "{} operations exceed the {} one PATCH may carry",
                    ops.len(),
                    patch::MAX_OPERATIONS
                ),
            ));
        }
    }
    patch::parse_request(body, schemas).map_err(patch_error)
}

/// The operation's result computed against the resource as the views hold it now, if the
/// source sees it. A failure is the client's answer; a resource not found here is left for
/// the writer to refuse.
fn evaluate(
    ops: &[PatchOp],
    current: Option<(u64, &Document)>,
    schemas: &ResourceSchemas<'_>,
) -> Result<Option<Evaluated>, ScimError> {
    let Some((version, doc)) = current else {
        return Ok(None);
    };
    if ops.is_empty() {
        return Ok(None);
    }
    let document = patch::apply(doc.to_map(), ops, schemas).map_err(patch_error)?;
    Ok(Some(Evaluated { version, document }))
}

// RFC 7644 §3.5.2
pub(super) async fn patch_user(
    app: &AppState,
    auth: &SourceAuth,
    id: ResourceId,
    body: Map<String, Value>,
    if_match: Option<u64>,
) -> Result<Command, ScimError> {
    let schemas = auth.users();
    let mut ops = patch_ops(&body, &schemas)?;
    let password = take_patch_password(&mut ops)?;
    let current = app.store.user(&auth.directory, id).await?;
    let current = current.filter(|u| auth.owns(&u.owner));
    let evaluated = evaluate(
        &ops,
        current.as_ref().map(|u| (u.version, &u.resource)),
        &schemas,
    )?;
    let password_hash = hash_password(app, password).await?;
    Ok(Command::PatchUser {
        id,
        patch: UserPatch { ops, evaluated },
        password_hash,
        if_match,
    })
}

// RFC 7644 §3.5.2
pub(super) async fn patch_group(
    app: &AppState,
    auth: &SourceAuth,
    id: ResourceId,
    body: Map<String, Value>,
    if_match: Option<u64>,
) -> Result<Command, ScimError> {
    let schemas = auth.groups();
    let (ops, members) =
        members::split_members(patch_ops(&body, &schemas)?).map_err(patch_error)?;
    let current = if ops.is_empty() {
        None
    } else {
        app.store
            .group(&auth.directory, id)
            .await?
            .filter(|g| auth.owns(&g.owner))
    };
    let evaluated = evaluate(
        &ops,
        current.as_ref().map(|g| (g.version, &g.resource)),
        &schemas,
    )?;
    Ok(Command::PatchGroup {
        id,
        patch: GroupPatch {
            ops,
            members,
            evaluated,
        },
        if_match,
    })
}

/// Takes password changes out of PATCH operations (a path of `password`; path-less values
/// were split into one operation per attribute) and returns the last one set.
fn take_patch_password(ops: &mut Vec<PatchOp>) -> Result<Option<String>, ScimError> {
    let is_password = |p: &PatchPath| {
        p.attr.schema.is_none()
            && p.attr.sub.is_none()
            && p.filter.is_none()
            && p.attr.attr == "password"
    };
    let mut password = None;
    let mut kept = Vec::with_capacity(ops.len());
    for op in ops.drain(..) {
        if op.path.as_ref().is_some_and(is_password) {
            if op.op != OpKind::Remove {
                match op.value {
                    Some(Value::String(p)) => password = Some(p),
                    _ => {
                        return Err(ScimError::bad_request(
                            "invalidValue",
                            "password must be a string",
                        ))
                    }
                }
            }
            continue;
        }
        kept.push(op);
    }
    *ops = kept;
    Ok(password)
}
