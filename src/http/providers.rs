//! The admin API's outbound providers (`/admin/v1/providers`): create, list, show, change,
//! delete; ask for a full sync, a retry of parked objects or a replay from a log position;
//! and the status of a provider's consumer. Every change and request is an event with the
//! admin as actor. Credentials are sealed on the way in and never shown.

use super::admin::{target_directory, AdminAuth};
use super::body::json_object;
use super::error::ScimError;
use super::AppState;
use crate::domain::{Command, ProviderRequest};
use crate::provider::config;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use roster_events::ResourceId;
use roster_projections::ProviderView;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/providers", get(list).post(create))
        .route("/providers/{name}", get(show).patch(update).delete(remove))
        .route("/providers/{name}/status", get(status))
        .route("/providers/{name}/sync", post(sync))
        .route("/providers/{name}/retry", post(retry))
        .route("/providers/{name}/replay", post(replay))
        .route("/providers/{name}/preview", post(preview))
}

pub(super) fn provider_json(p: &ProviderView) -> Value {
    let mut v = config::public_json(&p.config);
    v["id"] = json!(p.id);
    v["directory"] = json!(p.directory);
    v["version"] = json!(p.version);
    v["created"] = json!(p.created);
    v["last_modified"] = json!(p.last_modified);
    v
}

pub(super) async fn by_name(app: &AppState, name: &str) -> Result<Arc<ProviderView>, ScimError> {
    app.store
        .providers()
        .await?
        .into_iter()
        .find(|p| p.config.name == name)
        .ok_or_else(|| ScimError::not_found(format!("provider {name:?} not found")))
}

/// How long the check of a new or changed provider's remote may take.
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Asks the provider's remote for its ServiceProviderConfig once, with its credentials; what
/// to warn the operator of when that fails. The provider is saved either way: a remote that
/// is down now is carried to when it is back.
async fn check_remote(app: &AppState, p: &ProviderView) -> Vec<String> {
    let tuning = config::Tuning {
        attempts: 1,
        timeout: CHECK_TIMEOUT,
        ..config::Tuning::default()
    };
    let checked = match config::remote(&p.config, &app.secret_key, tuning) {
        Ok(remote) => remote.check().await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    match checked {
        Ok(()) => Vec::new(),
        Err(e) => {
            tracing::warn!(provider = %p.config.name, error = %e, "the provider's remote did not pass the check");
            vec![format!(
                "the remote did not answer as a SCIM server: {e}; the provider is saved and \
                 carries changes once the remote answers (see `roster provider status {}`)",
                p.config.name
            )]
        }
    }
}

/// A provider's configuration, with the warnings of the check of its remote.
async fn checked_json(app: &AppState, p: &ProviderView) -> Value {
    let mut v = provider_json(p);
    v["warnings"] = json!(check_remote(app, p).await);
    v
}

fn invalid(detail: String) -> ScimError {
    ScimError::bad_request("invalidValue", detail)
}

/// Every provider's configuration with a summary of its status.
async fn list(State(app): State<AppState>, _admin: AdminAuth) -> Result<Response, ScimError> {
    let list = list_json(&app).await?;
    Ok(Json(json!({"providers": list})).into_response())
}

/// Every provider as the admin API lists it, each with a summary of its status.
///
/// Fails (503) when the views cannot be read.
pub(super) async fn list_json(app: &AppState) -> Result<Vec<Value>, ScimError> {
    let providers = app.store.providers().await?;
    let mut list = Vec::with_capacity(providers.len());
    for p in &providers {
        let mut v = provider_json(p);
        v["status"] = match app.providers.report(p).await {
            Ok(r) => {
                let s = &r.status;
                let (_, lag) = s.lag(app.providers.views_now(p));
                json!({
                    "running_here": r.here,
                    "state": s.state,
                    "lag": lag,
                    "lag_history": app.providers.lag_last_day(p.id),
                    "pending": s.pending,
                    "failing": s.failing.len(),
                    "parked": s.parked.len(),
                    "error": s.error,
                })
            }
            Err(e) => json!({"state": "unknown", "error": e}),
        };
        list.push(v);
    }
    Ok(list)
}

async fn show(
    State(app): State<AppState>,
    _admin: AdminAuth,
    Path(name): Path<String>,
) -> Result<Response, ScimError> {
    let p = by_name(&app, &name).await?;
    Ok(Json(provider_json(&p)).into_response())
}

async fn create(
    State(app): State<AppState>,
    admin: AdminAuth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let body = json_object(&headers, body)?;
    let created = create_as(&app, &admin, body).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Creates the provider `body` describes on `admin`'s behalf (its secrets sealed): its
/// configuration as the API shows it, with the warnings of a check of its remote.
///
/// Fails with 400 for an invalid configuration, 404 for a missing directory, 409 when the
/// name is taken.
pub(super) async fn create_as(
    app: &AppState,
    admin: &AdminAuth,
    body: serde_json::Map<String, Value>,
) -> Result<Value, ScimError> {
    let config = config::parse(&body, None, &app.secret_key).map_err(invalid)?;
    let directory = target_directory(app, &body).await?;
    // Names address providers in this API: unique across directories.
    if by_name(app, &config.name).await.is_ok() {
        return Err(ScimError::new(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!("provider {:?} exists", config.name),
        ));
    }
    let id = ResourceId::new();
    let name = config.name.clone();
    admin
        .execute(app, &directory, Command::CreateProvider { id, config })
        .await?;
    tracing::info!(admin = %admin.who(), provider = %name, "provider created");
    let p = by_name(app, &name).await?;
    Ok(checked_json(app, &p).await)
}

async fn update(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let body = json_object(&headers, body)?;
    Ok(Json(update_as(&app, &admin, &name, body).await?).into_response())
}

/// Changes the provider `name` as `body` says, on `admin`'s behalf (a secret left out or
/// empty is kept): its configuration as the API shows it, with the warnings of a check of
/// its remote.
///
/// Fails with 400 for an invalid change, 404 when there is no such provider.
pub(super) async fn update_as(
    app: &AppState,
    admin: &AdminAuth,
    name: &str,
    body: serde_json::Map<String, Value>,
) -> Result<Value, ScimError> {
    if body.contains_key("directory") {
        return Err(invalid("a provider's directory cannot change".into()));
    }
    let p = by_name(app, name).await?;
    let config = config::parse(&body, Some(&p.config), &app.secret_key).map_err(invalid)?;
    admin
        .execute(
            app,
            &p.directory,
            Command::UpdateProvider { id: p.id, config },
        )
        .await?;
    tracing::info!(admin = %admin.who(), provider = %name, "provider changed");
    let p = by_name(app, name).await?;
    Ok(checked_json(app, &p).await)
}

async fn remove(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(name): Path<String>,
) -> Result<Response, ScimError> {
    remove_as(&app, &admin, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Deletes the provider `name` on `admin`'s behalf.
///
/// Fails with 404 when there is no such provider.
pub(super) async fn remove_as(
    app: &AppState,
    admin: &AdminAuth,
    name: &str,
) -> Result<(), ScimError> {
    let p = by_name(app, name).await?;
    admin
        .execute(app, &p.directory, Command::DeleteProvider { id: p.id })
        .await?;
    tracing::info!(admin = %admin.who(), provider = %name, "provider deleted");
    Ok(())
}

/// What the provider would send for a stored user (`{"user": id}`) or group (`{"group":
/// id}`): the built-in document shaped by the provider's mappings, `skip`, or the error of
/// the mapping that fails. A group's members are shown by Roster's ids (the remote's are
/// known to the provider's consumer only).
async fn preview(
    State(app): State<AppState>,
    _admin: AdminAuth,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    use crate::provider::mapping::{DefaultMapping, Mapping};
    let body = json_object(&headers, body)?;
    let p = by_name(&app, &name).await?;
    let applied = config::applied_mappings(&p, &app.store.mappings().await?);
    let mapping: Box<dyn Mapping> = if p.config.mappings.is_empty() {
        Box::new(DefaultMapping)
    } else {
        let chain = crate::provider::chain::Chain::resolve(&p.config, &applied)
            .map_err(|e| ScimError::new(StatusCode::CONFLICT, None, e))?;
        Box::new(chain)
    };
    let id = |v: &Value| -> Result<ResourceId, ScimError> {
        v.as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("{v} is not a resource id")))
    };
    let result = match (body.get("user"), body.get("group")) {
        (Some(u), None) => {
            let id = id(u)?;
            let user = app.store.user(&p.directory, id).await?;
            let user = user.ok_or_else(|| ScimError::not_found(format!("user {id} not found")))?;
            mapping.user(&user)
        }
        (None, Some(g)) => {
            let id = id(g)?;
            let group = app.store.group(&p.directory, id).await?;
            let group =
                group.ok_or_else(|| ScimError::not_found(format!("group {id} not found")))?;
            let members = group
                .members
                .iter()
                .map(|m| json!({"value": m.value.to_string(), "type": m.kind}))
                .collect();
            mapping.group(&group, members)
        }
        _ => return Err(invalid("give \"user\" or \"group\" with its id".into())),
    };
    let answer = match result {
        Ok(Some(document)) => json!({"provider": name, "outcome": "send", "document": document}),
        Ok(None) => json!({"provider": name, "outcome": "skip"}),
        Err(e) => json!({"provider": name, "outcome": "error", "error": e.to_string()}),
    };
    Ok(Json(answer).into_response())
}

async fn request(
    app: &AppState,
    admin: &AdminAuth,
    name: &str,
    request: ProviderRequest,
) -> Result<Response, ScimError> {
    let position = ask(app, admin, name, request).await?;
    // The request's record in the directory's partition: the status says when the consumer
    // has taken it (`requests_taken` past it) and what came of it.
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"requested": format!("{request:?}"), "position": position})),
    )
        .into_response())
}

/// Records `request` to the provider `name` on `admin`'s behalf: the position of its record.
///
/// Fails with 404 when there is no such provider, 400 when a replay starts past the end of
/// the directory's partition, or as the write fails.
pub(super) async fn ask(
    app: &AppState,
    admin: &AdminAuth,
    name: &str,
    request: ProviderRequest,
) -> Result<Option<u64>, ScimError> {
    let p = by_name(app, name).await?;
    if let ProviderRequest::Replay { from } = request {
        let end = *app.log.end(app.log.partition(&p.directory)).borrow();
        if from > end {
            return Err(invalid(format!(
                "from {from} is past the end of the log (position {end})"
            )));
        }
    }
    let (_, position) = admin
        .execute_at(
            app,
            &p.directory,
            Command::RequestProvider { id: p.id, request },
        )
        .await?;
    tracing::info!(admin = %admin.who(), provider = %name, ?request, ?position, "provider request recorded");
    Ok(position)
}

/// Asks for a full sync now (it runs when the consumer reaches the request in the log).
async fn sync(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(name): Path<String>,
) -> Result<Response, ScimError> {
    request(&app, &admin, &name, ProviderRequest::Sync).await
}

/// Asks for the parked objects to be tried again now.
async fn retry(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(name): Path<String>,
) -> Result<Response, ScimError> {
    request(&app, &admin, &name, ProviderRequest::Retry).await
}

/// Asks for every change from `from` (a position of the directory's partition) to be carried
/// again.
async fn replay(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let body = json_object(&headers, body)?;
    let from = body
        .get("from")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid("from must be a log position (a non-negative integer)".into()))?;
    request(&app, &admin, &name, ProviderRequest::Replay { from }).await
}

async fn status(
    State(app): State<AppState>,
    _admin: AdminAuth,
    Path(name): Path<String>,
) -> Result<Response, ScimError> {
    Ok(Json(status_json(&app, &name).await?).into_response())
}

/// The status of the provider `name`'s consumer, as the admin API shows it.
///
/// Fails with 404 when there is no such provider, 503 when its status cannot be read.
pub(super) async fn status_json(app: &AppState, name: &str) -> Result<Value, ScimError> {
    let p = by_name(app, name).await?;
    let report = app
        .providers
        .report(&p)
        .await
        .map_err(|e| ScimError::unavailable(&e))?;
    let s = &report.status;
    let (views_position, lag) = s.lag(app.providers.views_now(&p));
    let recent: Vec<Value> = report
        .recent
        .iter()
        .map(|r| {
            json!({
                "method": r.method,
                "path": r.path,
                "status": r.status,
                "duration_ms": r.duration.as_secs_f64() * 1000.0,
            })
        })
        .collect();
    Ok(json!({
        "provider": p.config.name,
        "running_here": report.here,
        "enabled": p.config.enabled,
        "dry_run": p.config.dry_run,
        "state": s.state,
        "error": s.error,
        "position": s.position,
        "requests_below": s.requests_below,
        "views_position": views_position,
        "lag": lag,
        "lag_history": app.providers.lag_last_day(p.id),
        "pending": s.pending,
        "in_flight": s.in_flight,
        "failing": s.failing,
        "parked": s.parked,
        "last_full_sync": s.last_full_sync,
        "full_sync": s.full_sync,
        "last_checkpoint": s.last_checkpoint,
        "recent_requests": recent,
        "dry_run_requests": s.dry_run_requests,
        "learned": s.learned,
    }))
}
