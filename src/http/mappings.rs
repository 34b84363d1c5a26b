//! The admin API's property mappings (`/admin/v1/mappings`): create, list, show, change,
//! delete, and preview what one produces for a stored user or group (or a resource given in
//! the request). A mapping is compiled and tried on sample objects before it is saved: an
//! expression with an error is a 400 that says where. Every change is an event with the admin
//! as actor.

use super::admin::{target_directory, AdminAuth};
use super::body::json_object;
use super::error::ScimError;
use super::AppState;
use crate::domain::Command;
use crate::mappings::{self, Outcome, Variables};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use roster_events::{MappingKind, ResourceId};
use roster_projections::MappingView;
use serde_json::{json, Map, Value};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/mappings", get(list).post(create))
        .route("/mappings/{name}", get(show).patch(update).delete(remove))
        .route("/mappings/{name}/preview", post(preview))
        .route("/mapping-templates", get(templates))
}

pub(super) fn mapping_json(directory: &str, m: &MappingView) -> Value {
    json!({
        "id": m.id,
        "directory": directory,
        "name": m.mapping.name,
        "kind": m.mapping.kind.as_str(),
        "expression": m.mapping.expression,
        "description": m.mapping.description,
        "version": m.version,
        "created": m.created,
        "last_modified": m.last_modified,
    })
}

/// The mapping called `name` and its directory. Names address mappings in this API: unique
/// across directories.
pub(super) async fn by_name(
    app: &AppState,
    name: &str,
) -> Result<(String, MappingView), ScimError> {
    app.store
        .mappings()
        .await?
        .into_iter()
        .find(|(_, m)| m.mapping.name == name)
        .ok_or_else(|| ScimError::not_found(format!("mapping {name:?} not found")))
}

fn invalid(detail: String) -> ScimError {
    ScimError::bad_request("invalidValue", detail)
}

async fn list(State(app): State<AppState>, _admin: AdminAuth) -> Result<Response, ScimError> {
    let all = app.store.mappings().await?;
    let list: Vec<Value> = all.iter().map(|(d, m)| mapping_json(d, m)).collect();
    Ok(Json(json!({"mappings": list})).into_response())
}

/// The ready-made mappings a mapping can be created from (`"template": NAME`).
async fn templates(_admin: AdminAuth) -> Response {
    Json(mappings::templates::list()).into_response()
}

async fn show(
    State(app): State<AppState>,
    _admin: AdminAuth,
    Path(name): Path<String>,
) -> Result<Response, ScimError> {
    let (directory, m) = by_name(&app, &name).await?;
    Ok(Json(mapping_json(&directory, &m)).into_response())
}

async fn create(
    State(app): State<AppState>,
    admin: AdminAuth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let body = json_object(&headers, body)?;
    let (directory, m) = create_as(&app, &admin, body).await?;
    Ok((StatusCode::CREATED, Json(mapping_json(&directory, &m))).into_response())
}

/// Creates the mapping `body` describes (from a template when it names one) on `admin`'s
/// behalf: the mapping as the views hold it, with its directory.
///
/// Fails with 400 when the mapping is invalid (its expression says where), 404 for a missing
/// directory, 409 when the name is taken.
pub(super) async fn create_as(
    app: &AppState,
    admin: &AdminAuth,
    mut body: Map<String, Value>,
) -> Result<(String, MappingView), ScimError> {
    mappings::templates::expand(&mut body).map_err(|e| invalid(e.to_string()))?;
    let checked = mappings::parse(&body, None).map_err(|e| invalid(e.to_string()))?;
    let directory = target_directory(app, &body).await?;
    if by_name(app, &checked.def.name).await.is_ok() {
        return Err(ScimError::new(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!("mapping {:?} exists", checked.def.name),
        ));
    }
    let id = ResourceId::new();
    let name = checked.def.name.clone();
    let mapping = checked.def;
    admin
        .execute(app, &directory, Command::CreateMapping { id, mapping })
        .await?;
    tracing::info!(admin = %admin.who(), mapping = %name, "mapping created");
    by_name(app, &name).await
}

async fn update(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let body = json_object(&headers, body)?;
    let (directory, m) = update_as(&app, &admin, &name, body).await?;
    Ok(Json(mapping_json(&directory, &m)).into_response())
}

/// Changes the mapping `name` as `body` says, on `admin`'s behalf: the mapping as the views
/// hold it now, with its directory.
///
/// Fails with 400 when the change is invalid, 404 when there is no such mapping.
pub(super) async fn update_as(
    app: &AppState,
    admin: &AdminAuth,
    name: &str,
    body: Map<String, Value>,
) -> Result<(String, MappingView), ScimError> {
    if body.contains_key("directory") {
        return Err(invalid("a mapping's directory cannot change".into()));
    }
    let (directory, m) = by_name(app, name).await?;
    let checked = mappings::parse(&body, Some(&m.mapping)).map_err(|e| invalid(e.to_string()))?;
    let cmd = Command::UpdateMapping {
        id: m.id,
        mapping: checked.def,
    };
    admin.execute(app, &directory, cmd).await?;
    tracing::info!(admin = %admin.who(), mapping = %name, "mapping changed");
    by_name(app, name).await
}

async fn remove(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(name): Path<String>,
) -> Result<Response, ScimError> {
    remove_as(&app, &admin, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Deletes the mapping `name` on `admin`'s behalf.
///
/// Fails with 404 when there is no such mapping, 409 while a source or provider runs it.
pub(super) async fn remove_as(
    app: &AppState,
    admin: &AdminAuth,
    name: &str,
) -> Result<(), ScimError> {
    let (directory, m) = by_name(app, name).await?;
    admin
        .execute(app, &directory, Command::DeleteMapping { id: m.id })
        .await?;
    tracing::info!(admin = %admin.who(), mapping = %name, "mapping deleted");
    Ok(())
}

/// The object a preview runs on: `{"id": "..."}` for a stored user or group (by the
/// mapping's kind), or `{"resource": {...}}` for one given as it would be sent; `source` or
/// `provider` names what the expression sees as such.
async fn preview(
    State(app): State<AppState>,
    _admin: AdminAuth,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let body = json_object(&headers, body)?;
    Ok(Json(preview_as(&app, &name, None, &body).await?).into_response())
}

/// What the mapping `name` (or, given, the expression `edited` in its place: a change not
/// saved yet) makes of the object `body` names, as the preview endpoint answers it.
///
/// Fails with 400 when the body names no object, 404 when the mapping, object or provider
/// does not exist.
pub(super) async fn preview_as(
    app: &AppState,
    name: &str,
    edited: Option<&str>,
    body: &Map<String, Value>,
) -> Result<Value, ScimError> {
    let (directory, m) = by_name(app, name).await?;
    let kind = m.mapping.kind;
    let object = match (body.get("id"), body.get("resource")) {
        (Some(Value::String(id)), None) => {
            let id: ResourceId = id
                .parse()
                .map_err(|_| invalid(format!("id {id:?} is not a resource id")))?;
            stored(app, &directory, kind, id).await?
        }
        (None, Some(Value::Object(resource))) => Value::Object(resource.clone()),
        _ => {
            return Err(invalid(
                "give the id of a stored user or group (\"id\"), or a resource (\"resource\")"
                    .into(),
            ))
        }
    };
    let text = |key: &str| body.get(key).and_then(Value::as_str);
    let provider = match text("provider") {
        Some(p) => Some(provider_mode(app, p).await?),
        None => None,
    };
    let mut answer = Map::new();
    answer.insert("mapping".into(), json!(name));
    answer.insert("object".into(), object.clone());
    let expression = match (
        edited,
        mappings::Expression::compile(edited.unwrap_or(&m.mapping.expression)),
    ) {
        (_, Ok(e)) => e,
        (Some(_), Err(e)) => {
            answer.insert("outcome".into(), json!("error"));
            answer.insert("error".into(), json!(e.to_string()));
            return Ok(Value::Object(answer));
        }
        (None, Err(e)) => {
            return Err(ScimError::internal(&format!(
                "stored mapping {name:?}: {e}"
            )))
        }
    };
    let vars = Variables {
        kind,
        object: &object,
        existing: None,
        source: text("source"),
        provider: provider.as_ref().map(|(n, m)| (n.as_str(), m.as_str())),
    };
    match expression.evaluate_with(&vars) {
        Ok(Outcome::Attributes(a)) => {
            answer.insert("outcome".into(), json!("attributes"));
            answer.insert("attributes".into(), Value::Object(a));
        }
        Ok(Outcome::Skip) => {
            answer.insert("outcome".into(), json!("skip"));
        }
        Err(e) => {
            answer.insert("outcome".into(), json!("error"));
            answer.insert("error".into(), json!(e.to_string()));
        }
    }
    Ok(Value::Object(answer))
}

/// A stored user or group as the expression sees it ([`mappings::user_object`],
/// [`mappings::group_object`]).
async fn stored(
    app: &AppState,
    directory: &str,
    kind: MappingKind,
    id: ResourceId,
) -> Result<Value, ScimError> {
    if kind.users() {
        let u = app.store.user(directory, id).await?;
        let u = u.ok_or_else(|| ScimError::not_found(format!("user {id} not found")))?;
        Ok(mappings::user_object(&u))
    } else {
        let g = app.store.group(directory, id).await?;
        let g = g.ok_or_else(|| ScimError::not_found(format!("group {id} not found")))?;
        Ok(mappings::group_object(&g))
    }
}

/// A provider's name and compatibility mode, for a preview of a provider's mapping.
async fn provider_mode(app: &AppState, name: &str) -> Result<(String, String), ScimError> {
    let p = app
        .store
        .providers()
        .await?
        .into_iter()
        .find(|p| p.config.name == name)
        .ok_or_else(|| ScimError::not_found(format!("provider {name:?} not found")))?;
    Ok((
        p.config.name.clone(),
        crate::provider::config::mode_name(p.config.mode),
    ))
}
