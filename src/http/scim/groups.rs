//! `/Groups` (RFC 7644 §3.3 to §3.6): create, read, list and search, replace, patch and
//! delete a source's groups. A write answers with the group exactly as that write left it.

use super::super::body::{if_match, json_object};
use super::super::error::ScimError;
use super::super::select::{Search, Selection};
use super::super::AppState;
use super::auth::{parse_id, SourceAuth};
use super::input;
use super::render::{self, scim_response};
use crate::domain::Command;
use crate::writer::Written;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use roster_projections::GroupView;
use std::sync::Arc;

/// Runs a group command and gives back the group as it left it.
///
/// Fails with the writer's refusal, or 500 if the command left no group (a bug).
pub(super) async fn write(
    app: &AppState,
    auth: &SourceAuth,
    cmd: Command,
) -> Result<Arc<GroupView>, ScimError> {
    let writer = app.writers.get(&auth.directory).await?;
    match writer.write(cmd, auth.ctx()).await? {
        Written::Group(g) => Ok(g),
        other => Err(ScimError::internal(&format!(
            "a group command left {:?}",
            other.outcome()
        ))),
    }
}

/// The answer to a write: the group with its ETag (and, for a create, 201 and Location).
async fn answer(
    app: &AppState,
    auth: &SourceAuth,
    group: &GroupView,
    sel: &Selection,
    created: bool,
) -> Result<Response, ScimError> {
    let body = render::group(app, auth, group, sel).await?;
    let (status, location) = if created {
        (
            StatusCode::CREATED,
            Some(render::group_location(auth.base(), group)),
        )
    } else {
        (StatusCode::OK, None)
    };
    Ok(scim_response(
        status,
        body,
        Some(group.version),
        location.as_deref(),
    ))
}

// RFC 7644 §3.3
pub(super) async fn create(
    State(app): State<AppState>,
    auth: SourceAuth,
    sel: Selection,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let cmd = input::create_group(&auth, json_object(&headers, body)?)?;
    let group = write(&app, &auth, cmd).await?;
    answer(&app, &auth, &group, &sel, true).await
}

// RFC 7644 §3.4.1
pub(super) async fn get(
    State(app): State<AppState>,
    auth: SourceAuth,
    sel: Selection,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let id = parse_id(&id, "group")?;
    let group = app.store.group(&auth.directory, id).await?;
    let group = group
        .filter(|g| auth.owns(&g.owner))
        .ok_or_else(|| ScimError::not_found(format!("group {id} not found")))?;
    if let Some(resp) = render::not_modified(&headers, group.version) {
        return Ok(resp);
    }
    answer(&app, &auth, &group, &sel, false).await
}

// RFC 7644 §3.4.2
pub(super) async fn list(
    State(app): State<AppState>,
    auth: SourceAuth,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ScimError> {
    search(&app, &auth, Search::from_query(&params)?).await
}

// RFC 7644 §3.4.3
pub(super) async fn search_post(
    State(app): State<AppState>,
    auth: SourceAuth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let body = json_object(&headers, body)?;
    search(&app, &auth, Search::from_body(&body)?).await
}

async fn search(app: &AppState, auth: &SourceAuth, search: Search) -> Result<Response, ScimError> {
    let schemas = auth.groups();
    let mut q = search.to_query(app, &[schemas])?;
    q.declared = schemas.declared.to_vec();
    let page = app
        .store
        .list_groups(&auth.directory, auth.vis(), &q)
        .await?;
    let resources = render::groups(app, auth, &page.items, &search.selection).await?;
    Ok(render::list_response(page.total, q.start_index, resources))
}

// RFC 7644 §3.5.1
pub(super) async fn replace(
    State(app): State<AppState>,
    auth: SourceAuth,
    sel: Selection,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let id = parse_id(&id, "group")?;
    let body = json_object(&headers, body)?;
    let cmd = input::replace_group(&auth, id, body, if_match(&headers)?)?;
    let group = write(&app, &auth, cmd).await?;
    answer(&app, &auth, &group, &sel, false).await
}

// RFC 7644 §3.5.2
pub(super) async fn patch(
    State(app): State<AppState>,
    auth: SourceAuth,
    sel: Selection,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let id = parse_id(&id, "group")?;
    let body = json_object(&headers, body)?;
    let cmd = input::patch_group(&app, &auth, id, body, if_match(&headers)?).await?;
    let group = write(&app, &auth, cmd).await?;
    answer(&app, &auth, &group, &sel, false).await
}

// RFC 7644 §3.6
pub(super) async fn delete(
    State(app): State<AppState>,
    auth: SourceAuth,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let cmd = Command::DeleteGroup {
        id: parse_id(&id, "group")?,
        if_match: if_match(&headers)?,
    };
    app.writers
        .get(&auth.directory)
        .await?
        .execute(cmd, auth.ctx())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
