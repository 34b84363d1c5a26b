//! The admin API's side of a source's mappings: which source mappings it runs on what it
//! writes, in order (`PUT /admin/v1/sources/{slug}/mappings`), what they would make of a
//! request (`POST /admin/v1/sources/{slug}/preview`), and running them again on every user
//! and group it owns after they changed (`POST /admin/v1/sources/{slug}/remap`). Each
//! re-mapped object is a command of its own, so it is decided on the state its neighbours
//! left and recorded with the admin as actor.

use super::admin::AdminAuth;
use super::body::Typed;
use super::error::{ErrorBody, ScimError};
use super::sources::{is_user, source_named};
use super::AppState;
use crate::domain::Command;
use crate::mappings::inbound::{self, Refusal};
use crate::mappings::{group_object, user_object};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use roster_events::{MappingKind, ResourceId};
use roster_projections::{MappingView, SourceView, Visibility};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(set))
        .routes(routes!(preview))
        .routes(routes!(remap))
}

/// Objects listed at a time by a re-map.
const PAGE: usize = 500;
/// Re-map commands in flight at once (the writer decides them in batches).
const IN_FLIGHT: usize = 32;
/// Failures a re-map's answer lists (it counts them all).
const LISTED: usize = 20;

/// The source mappings a source runs on what it writes, in order: the body of
/// `PUT /admin/v1/sources/{slug}/mappings` (without `slug`) and its answer.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SourceMappings {
    #[serde(default, skip_deserializing)]
    slug: String,
    /// Names of `source_user` and `source_group` mappings of the source's directory.
    mappings: Vec<String>,
}

/// Sets the source mappings the source runs, in order; `[]` runs none.
#[utoipa::path(put, path = "/sources/{slug}/mappings", operation_id = "set_source_mappings", tag = "sources", request_body = SourceMappings,
    params(("slug" = String, Path, description = "The source's slug")),
    responses(
        (status = 200, description = "The mappings the source runs now", body = SourceMappings),
        (status = 400, description = "A mapping that does not exist or is not a source mapping", body = ErrorBody),
        (status = 404, description = "No such source", body = ErrorBody),
    ))]
async fn set(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(slug): Path<String>,
    Typed(body): Typed<SourceMappings>,
) -> Result<Response, ScimError> {
    let s = source_named(&app, &slug).await?;
    let cmd = Command::SetSourceMappings {
        slug: slug.clone(),
        mappings: body.mappings,
    };
    admin.execute(&app, &s.directory, cmd).await?;
    tracing::info!(admin = %admin.who(), source = %slug, "source mappings set");
    let s = source_named(&app, &slug).await?;
    let set = SourceMappings {
        slug: s.slug.clone(),
        mappings: s.mappings.clone(),
    };
    Ok(Json(set).into_response())
}

/// The body of `POST /admin/v1/sources/{slug}/preview`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SourcePreviewRequest {
    /// The user or group as a request would carry it.
    resource: Map<String, Value>,
    /// `User` (when left out) or `Group`.
    #[serde(rename = "type", default)]
    resource_type: Option<String>,
    /// The stored object the request would replace, if any.
    id: Option<ResourceId>,
}

/// What a source's mappings make of a request.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum PreviewOutcome {
    /// The mappings leave the document as sent.
    Unchanged,
    /// The mappings change the document: `resource` is what would be stored.
    Changed,
    /// A mapping skips the object: the write would be refused.
    Refused,
    /// A mapping fails.
    Error,
    /// The mapped document is not a valid user or group.
    Invalid,
}

/// The answer of `POST /admin/v1/sources/{slug}/preview`.
#[derive(Serialize, ToSchema)]
struct SourcePreview<'a> {
    source: &'a str,
    outcome: PreviewOutcome,
    /// The mappings run, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    mappings: Option<Vec<&'a str>>,
    /// The document that would be stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<Map<String, Value>>,
    /// The document as sent, when the mappings changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    sent: Option<Map<String, Value>>,
    /// The mapping that refused or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    mapping: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// What the source's mappings would make of a request's user or group (`"resource"`; a group
/// with `"type": "Group"`), replacing the stored object `"id"` if given: the document that
/// would be stored, or why the write would be refused. Nothing is written.
#[utoipa::path(post, path = "/sources/{slug}/preview", operation_id = "preview_source_mappings", tag = "sources", request_body = SourcePreviewRequest,
    params(("slug" = String, Path, description = "The source's slug")),
    responses(
        (status = 200, description = "What the mappings make of it", body = SourcePreview),
        (status = 400, description = "The resource is not a valid user or group", body = ErrorBody),
        (status = 404, description = "No such source or stored object", body = ErrorBody),
    ))]
async fn preview(
    State(app): State<AppState>,
    _admin: AdminAuth,
    Path(slug): Path<String>,
    Typed(body): Typed<SourcePreviewRequest>,
) -> Result<Response, ScimError> {
    let s = source_named(&app, &slug).await?;
    let user = is_user("type", body.resource_type.as_deref())?;
    let kind = if user {
        MappingKind::SourceUser
    } else {
        MappingKind::SourceGroup
    };
    let schemas = s.schemas(user);
    // What a request's document is once parsed: no password, no members.
    let mut resource = body.resource;
    resource
        .retain(|k, _| !k.eq_ignore_ascii_case("password") && !k.eq_ignore_ascii_case("members"));
    let sent = schemas
        .check(resource)
        .map_err(|e| ScimError::bad_request(e.scim_type, e.detail))?;
    let existing = match body.id {
        None => None,
        Some(id) if user => app
            .store
            .user(&s.directory, id)
            .await?
            .map(|u| user_object(&u)),
        Some(id) => app
            .store
            .group(&s.directory, id)
            .await?
            .map(|g| group_object(&g)),
    };
    if body.id.is_some() && existing.is_none() {
        return Err(ScimError::not_found(format!("no object {:?}", body.id)));
    }
    let defined: Vec<MappingView> = app
        .store
        .mappings()
        .await?
        .into_iter()
        .filter(|(dir, _)| *dir == s.directory)
        .map(|(_, m)| m)
        .collect();
    let by_name = |name: &str| {
        defined
            .iter()
            .find(|m| m.mapping.name == name)
            .map(|m| &m.mapping)
    };
    let answer = SourcePreview {
        source: &slug,
        outcome: PreviewOutcome::Unchanged,
        mappings: None,
        resource: None,
        sent: None,
        mapping: None,
        detail: None,
    };
    let steps = match inbound::steps(&s.mappings, kind, by_name) {
        Ok(steps) => steps,
        Err(e) => {
            let failed = SourcePreview {
                outcome: PreviewOutcome::Error,
                mapping: Some(e.mapping.to_string()),
                detail: Some(e.message.to_string()),
                ..answer
            };
            return Ok(Json(failed).into_response());
        }
    };
    let names: Vec<&str> = steps.iter().map(|s| s.name).collect();
    let id = body.id.map(|id| id.to_string());
    let reshaped = inbound::reshape(
        kind,
        &steps,
        &slug,
        &sent,
        id.as_deref(),
        existing.as_ref(),
        &schemas,
    );
    let answer = SourcePreview {
        mappings: Some(names),
        ..answer
    };
    let answer = match reshaped {
        Ok(None) => SourcePreview {
            resource: Some(sent.as_map().clone()),
            ..answer
        },
        Ok(Some(stored)) => SourcePreview {
            outcome: PreviewOutcome::Changed,
            resource: Some(stored.as_map().clone()),
            sent: Some(sent.as_map().clone()),
            ..answer
        },
        Err(Refusal::Skipped(name)) => SourcePreview {
            outcome: PreviewOutcome::Refused,
            mapping: Some(name.to_string()),
            ..answer
        },
        Err(Refusal::Failed(e)) => SourcePreview {
            outcome: PreviewOutcome::Error,
            mapping: Some(e.mapping.to_string()),
            detail: Some(e.message.to_string()),
            ..answer
        },
        Err(Refusal::Invalid { detail, .. }) => SourcePreview {
            outcome: PreviewOutcome::Invalid,
            detail: Some(detail.to_string()),
            ..answer
        },
    };
    Ok(Json(answer).into_response())
}

/// What a re-map did to one kind of object.
#[derive(Default, Serialize, ToSchema)]
struct Tally {
    examined: u64,
    changed: u64,
    failed: u64,
}

/// An object a re-map could not change, and why.
#[derive(Serialize, ToSchema)]
struct RemapFailure {
    id: ResourceId,
    detail: String,
}

/// What a re-map did.
#[derive(Serialize, ToSchema)]
struct RemapReport {
    slug: String,
    /// The mappings run.
    mappings: Vec<String>,
    users: Tally,
    groups: Tally,
    /// The first failures (20 at most; `failed` counts them all).
    failures: Vec<RemapFailure>,
}

/// Runs the source's mappings again on every user and group it owns, as stored; answers with
/// how many were examined, changed and failed (the first failures with their reasons).
#[utoipa::path(post, path = "/sources/{slug}/remap", operation_id = "remap_source", tag = "sources",
    params(("slug" = String, Path, description = "The source's slug")),
    responses(
        (status = 200, description = "What the re-map did", body = RemapReport),
        (status = 404, description = "No such source", body = ErrorBody),
    ))]
async fn remap(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(slug): Path<String>,
) -> Result<Response, ScimError> {
    let s = source_named(&app, &slug).await?;
    let dir = s.directory.as_str();
    let mut failures: Vec<RemapFailure> = Vec::new();
    let mut tallies = Vec::new();
    for user in [true, false] {
        let mut tally = Tally::default();
        let mut after = None;
        loop {
            let ids = owned(&app, &s, user, after).await?;
            let Some(last) = ids.last() else { break };
            after = Some(*last);
            let answers: Vec<_> = futures_util::stream::iter(ids)
                .map(|id| {
                    let cmd = Command::Remap {
                        slug: slug.clone(),
                        user,
                        id,
                    };
                    let admin = &admin;
                    let app = &app;
                    async move { (id, admin.execute_at(app, dir, cmd).await) }
                })
                .buffer_unordered(IN_FLIGHT)
                .collect()
                .await;
            for (id, answer) in answers {
                tally.examined += 1;
                match answer {
                    Ok((_, Some(_))) => tally.changed += 1,
                    Ok((_, None)) => {}
                    // Deleted since it was listed.
                    Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => {
                        tally.examined -= 1;
                    }
                    Err(e) if e.status.is_client_error() => {
                        tally.failed += 1;
                        if failures.len() < LISTED {
                            failures.push(RemapFailure {
                                id,
                                detail: e.detail,
                            });
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        tallies.push(tally);
    }
    let groups = tallies.pop().unwrap_or_default();
    let users = tallies.pop().unwrap_or_default();
    tracing::info!(admin = %admin.who(), source = %slug, "source re-mapped");
    Ok(Json(RemapReport {
        slug: slug.clone(),
        mappings: s.mappings.clone(),
        users,
        groups,
        failures,
    })
    .into_response())
}

/// The ids of one page of the source's users (`user`) or groups, after `after`.
async fn owned(
    app: &AppState,
    s: &SourceView,
    user: bool,
    after: Option<ResourceId>,
) -> Result<Vec<ResourceId>, ScimError> {
    let vis = Visibility::Owner(&s.slug);
    let dir = s.directory.as_str();
    Ok(if user {
        let page = app.store.users_after(dir, vis, after, PAGE).await?;
        page.iter().map(|u| u.id).collect()
    } else {
        let page = app.store.groups_after(dir, vis, after, PAGE).await?;
        page.iter().map(|g| g.id).collect()
    })
}
