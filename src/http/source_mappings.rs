//! The admin API's side of a source's mappings: which source mappings it runs on what it
//! writes, in order (`PUT /admin/v1/sources/{slug}/mappings`), what they would make of a
//! request (`POST /admin/v1/sources/{slug}/preview`), and running them again on every user
//! and group it owns after they changed (`POST /admin/v1/sources/{slug}/remap`). Each
//! re-mapped object is a command of its own, so it is decided on the state its neighbours
//! left and recorded with the admin as actor.

use super::admin::{is_user, source_named, AdminAuth};
use super::body::{json_object, typed};
use super::error::ScimError;
use super::AppState;
use crate::domain::Command;
use crate::mappings::inbound::{self, Refusal};
use crate::mappings::{group_object, user_object};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use futures_util::StreamExt;
use roster_events::{MappingKind, ResourceId};
use roster_projections::{MappingView, SourceView, Visibility};
use serde_json::{json, Map, Value};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sources/{slug}/mappings", put(set))
        .route("/sources/{slug}/preview", post(preview))
        .route("/sources/{slug}/remap", post(remap))
}

/// Objects listed at a time by a re-map.
const PAGE: usize = 500;
/// Re-map commands in flight at once (the writer decides them in batches).
const IN_FLIGHT: usize = 32;
/// Failures a re-map's answer lists (it counts them all).
const LISTED: usize = 20;

/// Sets the source mappings the source runs, in order; `[]` runs none.
async fn set(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(slug): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        mappings: Vec<String>,
    }
    let body: Body = typed(json_object(&headers, body)?)?;
    let s = source_named(&app, &slug).await?;
    let cmd = Command::SetSourceMappings {
        slug: slug.clone(),
        mappings: body.mappings,
    };
    admin.execute(&app, &s.directory, cmd).await?;
    tracing::info!(admin = %admin.who(), source = %slug, "source mappings set");
    let s = source_named(&app, &slug).await?;
    Ok(Json(json!({"slug": s.slug, "mappings": s.mappings})).into_response())
}

/// What the source's mappings would make of a request's user or group (`"resource"`; a group
/// with `"type": "Group"`), replacing the stored object `"id"` if given: the document that
/// would be stored, or why the write would be refused. Nothing is written.
async fn preview(
    State(app): State<AppState>,
    _admin: AdminAuth,
    Path(slug): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        resource: Map<String, Value>,
        #[serde(rename = "type", default)]
        resource_type: Option<String>,
        id: Option<ResourceId>,
    }
    let body: Body = typed(json_object(&headers, body)?)?;
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
    let answer = |outcome: &str, extra: Value| {
        let mut out = json!({"source": slug, "outcome": outcome});
        if let (Value::Object(o), Value::Object(e)) = (&mut out, extra) {
            o.extend(e);
        }
        Json(out).into_response()
    };
    let steps = match inbound::steps(&s.mappings, kind, by_name) {
        Ok(steps) => steps,
        Err(e) => {
            return Ok(answer(
                "error",
                json!({"mapping": e.mapping, "detail": e.message}),
            ))
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
    Ok(match reshaped {
        Ok(None) => answer(
            "unchanged",
            json!({"mappings": names, "resource": sent.as_map()}),
        ),
        Ok(Some(stored)) => answer(
            "changed",
            json!({"mappings": names, "resource": stored.as_map(), "sent": sent.as_map()}),
        ),
        Err(Refusal::Skipped(name)) => {
            answer("refused", json!({"mappings": names, "mapping": name}))
        }
        Err(Refusal::Failed(e)) => answer(
            "error",
            json!({"mappings": names, "mapping": e.mapping, "detail": e.message}),
        ),
        Err(Refusal::Invalid { detail, .. }) => {
            answer("invalid", json!({"mappings": names, "detail": detail}))
        }
    })
}

/// What a re-map did to one kind of object.
#[derive(Default)]
struct Tally {
    examined: u64,
    changed: u64,
    failed: u64,
}

/// Runs the source's mappings again on every user and group it owns, as stored; answers with
/// how many were examined, changed and failed (the first failures with their reasons).
async fn remap(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(slug): Path<String>,
) -> Result<Response, ScimError> {
    let s = source_named(&app, &slug).await?;
    let dir = s.directory.as_str();
    let mut failures: Vec<Value> = Vec::new();
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
                            failures.push(json!({"id": id, "detail": e.detail}));
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        tallies.push(tally);
    }
    let [users, groups] = [&tallies[0], &tallies[1]]
        .map(|t| json!({"examined": t.examined, "changed": t.changed, "failed": t.failed}));
    tracing::info!(admin = %admin.who(), source = %slug, "source re-mapped");
    Ok(Json(json!({
        "slug": slug,
        "mappings": s.mappings,
        "users": users,
        "groups": groups,
        "failures": failures,
    }))
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
