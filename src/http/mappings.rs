//! The admin API's property mappings (`/admin/v1/mappings`): create, list, show, change,
//! delete, and preview what one produces for a stored user or group (or a resource given in
//! the request). A mapping is compiled and tried on sample objects before it is saved: an
//! expression with an error is a 400 that says where. Every change is an event with the admin
//! as actor.

use super::admin::{target_directory, AdminAuth};
use super::body::Typed;
use super::error::{ErrorBody, ScimError};
use super::AppState;
use crate::domain::Command;
use crate::mappings::{self, MappingSettings, Outcome, Variables};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use roster_events::{MappingKind, ResourceId};
use roster_projections::MappingView;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(preview))
        .routes(routes!(templates))
}

/// A property mapping as the admin API shows it.
#[derive(Serialize, ToSchema)]
struct MappingOut<'a> {
    id: ResourceId,
    directory: &'a str,
    name: &'a str,
    /// `source_user`, `source_group`, `provider_user` or `provider_group`.
    kind: &'static str,
    /// The CEL expression.
    expression: &'a str,
    description: &'a str,
    version: u64,
    created: DateTime<Utc>,
    last_modified: DateTime<Utc>,
}

impl<'a> MappingOut<'a> {
    fn of(directory: &'a str, m: &'a MappingView) -> MappingOut<'a> {
        MappingOut {
            id: m.id,
            directory,
            name: &m.mapping.name,
            kind: m.mapping.kind.as_str(),
            expression: &m.mapping.expression,
            description: &m.mapping.description,
            version: m.version,
            created: m.created,
            last_modified: m.last_modified,
        }
    }
}

/// Every mapping.
#[derive(Serialize, ToSchema)]
struct MappingList<'a> {
    mappings: Vec<MappingOut<'a>>,
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

/// Every property mapping.
#[utoipa::path(get, path = "/mappings", operation_id = "list_mappings", tag = "mappings",
    responses((status = 200, description = "The mappings", body = MappingList)))]
async fn list(State(app): State<AppState>, _admin: AdminAuth) -> Result<Response, ScimError> {
    let all = app.store.mappings().await?;
    let mappings = all.iter().map(|(d, m)| MappingOut::of(d, m)).collect();
    Ok(Json(MappingList { mappings }).into_response())
}

/// The ready-made mappings a mapping can be created from (`"template": NAME`).
#[utoipa::path(get, path = "/mapping-templates", operation_id = "list_mapping_templates", tag = "mappings",
    responses((status = 200, description = "The templates", body = mappings::templates::TemplateList)))]
async fn templates(_admin: AdminAuth) -> Json<mappings::templates::TemplateList> {
    Json(mappings::templates::list())
}

/// One mapping.
#[utoipa::path(get, path = "/mappings/{name}", operation_id = "show_mapping", tag = "mappings",
    params(("name" = String, Path, description = "The mapping's name")),
    responses(
        (status = 200, description = "The mapping", body = MappingOut),
        (status = 404, description = "No such mapping", body = ErrorBody),
    ))]
async fn show(
    State(app): State<AppState>,
    _admin: AdminAuth,
    Path(name): Path<String>,
) -> Result<Response, ScimError> {
    let (directory, m) = by_name(&app, &name).await?;
    Ok(Json(MappingOut::of(&directory, &m)).into_response())
}

/// Creates a mapping (written, or from a template), after compiling it and trying it on
/// sample objects.
#[utoipa::path(post, path = "/mappings", operation_id = "create_mapping", tag = "mappings", request_body = MappingSettings,
    responses(
        (status = 201, description = "The mapping", body = MappingOut),
        (status = 400, description = "An invalid mapping: its expression's error says where", body = ErrorBody),
        (status = 404, description = "No such directory", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
    ))]
async fn create(
    State(app): State<AppState>,
    admin: AdminAuth,
    Typed(body): Typed<MappingSettings>,
) -> Result<Response, ScimError> {
    let (directory, m) = create_as(&app, &admin, body).await?;
    Ok((StatusCode::CREATED, Json(MappingOut::of(&directory, &m))).into_response())
}

/// Creates the mapping `body` describes (from a template when it names one) on `admin`'s
/// behalf: the mapping as the views hold it, with its directory.
///
/// Fails with 400 when the mapping is invalid (its expression says where), 404 for a missing
/// directory, 409 when the name is taken.
pub(super) async fn create_as(
    app: &AppState,
    admin: &AdminAuth,
    mut body: MappingSettings,
) -> Result<(String, MappingView), ScimError> {
    mappings::templates::expand(&mut body).map_err(|e| invalid(e.to_string()))?;
    let checked = mappings::parse(&body, None).map_err(|e| invalid(e.to_string()))?;
    let directory = target_directory(app, body.directory.as_deref()).await?;
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

/// Changes a mapping's expression or description (its name, kind and directory stay).
#[utoipa::path(patch, path = "/mappings/{name}", operation_id = "update_mapping", tag = "mappings", request_body = MappingSettings,
    params(("name" = String, Path, description = "The mapping's name")),
    responses(
        (status = 200, description = "The mapping", body = MappingOut),
        (status = 400, description = "An invalid change", body = ErrorBody),
        (status = 404, description = "No such mapping", body = ErrorBody),
    ))]
async fn update(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(name): Path<String>,
    Typed(body): Typed<MappingSettings>,
) -> Result<Response, ScimError> {
    let (directory, m) = update_as(&app, &admin, &name, body).await?;
    Ok(Json(MappingOut::of(&directory, &m)).into_response())
}

/// Changes the mapping `name` as `body` says, on `admin`'s behalf: the mapping as the views
/// hold it now, with its directory.
///
/// Fails with 400 when the change is invalid, 404 when there is no such mapping.
pub(super) async fn update_as(
    app: &AppState,
    admin: &AdminAuth,
    name: &str,
    body: MappingSettings,
) -> Result<(String, MappingView), ScimError> {
    if body.directory.is_some() {
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

/// Deletes a mapping (refused while a source or provider applies it).
#[utoipa::path(delete, path = "/mappings/{name}", operation_id = "delete_mapping", tag = "mappings",
    params(("name" = String, Path, description = "The mapping's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such mapping", body = ErrorBody),
        (status = 409, description = "A source or provider applies it", body = ErrorBody),
    ))]
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
/// The body of `POST /admin/v1/mappings/{name}/preview`: a stored object by id, or a
/// resource given here; and who sees it.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MappingPreviewRequest {
    /// A stored user or group of the mapping's kind.
    pub id: Option<ResourceId>,
    /// Or a user or group given here.
    pub resource: Option<Map<String, Value>>,
    /// For a source's mapping: the slug of the source writing.
    pub source: Option<String>,
    /// For a provider's mapping: the provider sending.
    pub provider: Option<String>,
}

/// What a mapping made of an object.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum MappingOutcome {
    /// The expression set `attributes`.
    Attributes,
    /// The object would not be written or sent.
    Skip,
    /// The expression failed: `error` says how.
    Error,
}

/// The answer of `POST /admin/v1/mappings/{name}/preview`.
#[derive(Serialize, ToSchema)]
pub(super) struct MappingPreview {
    pub mapping: String,
    /// The object as the expression saw it.
    pub object: Value,
    pub outcome: MappingOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the mapping makes of a stored user or group, or of one given: the attributes it
/// sets, `skip`, or its error. Nothing is written.
#[utoipa::path(post, path = "/mappings/{name}/preview", operation_id = "preview_mapping", tag = "mappings", request_body = MappingPreviewRequest,
    params(("name" = String, Path, description = "The mapping's name")),
    responses(
        (status = 200, description = "What the mapping makes of it", body = MappingPreview),
        (status = 400, description = "Neither or both of id and resource", body = ErrorBody),
        (status = 404, description = "No such mapping, object or provider", body = ErrorBody),
    ))]
async fn preview(
    State(app): State<AppState>,
    _admin: AdminAuth,
    Path(name): Path<String>,
    Typed(body): Typed<MappingPreviewRequest>,
) -> Result<Json<MappingPreview>, ScimError> {
    Ok(Json(preview_as(&app, &name, None, &body).await?))
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
    body: &MappingPreviewRequest,
) -> Result<MappingPreview, ScimError> {
    let (directory, m) = by_name(app, name).await?;
    let kind = m.mapping.kind;
    let object = match (body.id, &body.resource) {
        (Some(id), None) => stored(app, &directory, kind, id).await?,
        (None, Some(resource)) => Value::Object(resource.clone()),
        _ => {
            return Err(invalid(
                "give the id of a stored user or group (\"id\"), or a resource (\"resource\")"
                    .into(),
            ))
        }
    };
    let provider = match &body.provider {
        Some(p) => Some(provider_mode(app, p).await?),
        None => None,
    };
    let answer = |outcome, attributes, error| MappingPreview {
        mapping: name.to_owned(),
        object: object.clone(),
        outcome,
        attributes,
        error,
    };
    let expression = match (
        edited,
        mappings::Expression::compile(edited.unwrap_or(&m.mapping.expression)),
    ) {
        (_, Ok(e)) => e,
        (Some(_), Err(e)) => return Ok(answer(MappingOutcome::Error, None, Some(e.to_string()))),
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
        source: body.source.as_deref(),
        provider: provider.as_ref().map(|(n, m)| (n.as_str(), m.as_str())),
    };
    Ok(match expression.evaluate_with(&vars) {
        Ok(Outcome::Attributes(a)) => answer(MappingOutcome::Attributes, Some(a), None),
        Ok(Outcome::Skip) => answer(MappingOutcome::Skip, None, None),
        Err(e) => answer(MappingOutcome::Error, None, Some(e.to_string())),
    })
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
