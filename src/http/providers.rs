//! The admin API's outbound providers (`/admin/v1/providers`): create, list, show, change,
//! delete; ask for a full sync, a retry of parked objects or a replay from a log position;
//! and the status of a provider's consumer. Every change and request is an event with the
//! admin as actor. Credentials are sealed on the way in and never shown.

use super::admin::{target_directory, AdminAuth};
use super::body::Typed;
use super::error::{ErrorBody, ScimError};
use super::AppState;
use crate::domain::{Command, ProviderRequest};
use crate::provider::config::{self, PublicConfig};
use crate::provider::lag::LagHour;
use crate::provider::runner::Status;
use crate::provider::settings::ProviderSettings;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use roster_events::ResourceId;
use roster_projections::ProviderView;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(status))
        .routes(routes!(sync))
        .routes(routes!(retry))
        .routes(routes!(replay))
        .routes(routes!(preview))
}

/// A provider as the admin API shows it: its configuration without secrets.
#[derive(Serialize, ToSchema)]
pub(super) struct ProviderOut {
    #[serde(flatten)]
    pub config: PublicConfig,
    pub id: ResourceId,
    pub directory: String,
    pub version: u64,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
}

impl ProviderOut {
    pub(super) fn of(p: &ProviderView) -> ProviderOut {
        ProviderOut {
            config: PublicConfig::of(&p.config),
            id: p.id,
            directory: p.directory.clone(),
            version: p.version,
            created: p.created,
            last_modified: p.last_modified,
        }
    }
}

/// A provider just created or changed, with what a check of its remote warned of.
#[derive(Serialize, ToSchema)]
pub(super) struct CheckedProvider {
    #[serde(flatten)]
    pub provider: ProviderOut,
    /// Why the remote did not pass the check (the provider is saved either way).
    pub warnings: Vec<String>,
}

/// A provider in the list, with a summary of its status.
#[derive(Serialize, ToSchema)]
pub(super) struct ListedProvider {
    #[serde(flatten)]
    pub provider: ProviderOut,
    pub status: StatusSummary,
}

/// A summary of a provider's status, as the list shows it.
#[derive(Serialize, ToSchema)]
pub(super) struct StatusSummary {
    /// Its consumer runs in this process.
    pub running_here: bool,
    /// As in the status; `unknown` when the status cannot be read.
    pub state: &'static str,
    /// Records of its directory's partition (up to the views) not carried yet.
    pub lag: u64,
    /// The lag in each hour of the last day that was sampled, oldest first.
    pub lag_history: Vec<LagHour>,
    pub pending: usize,
    pub failing: usize,
    pub parked: usize,
    pub error: Option<String>,
}

/// Every provider.
#[derive(Serialize, ToSchema)]
struct ProviderList {
    providers: Vec<ListedProvider>,
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
async fn checked(app: &AppState, p: &ProviderView) -> CheckedProvider {
    CheckedProvider {
        provider: ProviderOut::of(p),
        warnings: check_remote(app, p).await,
    }
}

fn invalid(detail: String) -> ScimError {
    ScimError::bad_request("invalidValue", detail)
}

/// Every provider's configuration with a summary of its status.
#[utoipa::path(get, path = "/providers", operation_id = "list_providers", tag = "providers",
    responses((status = 200, description = "The providers", body = ProviderList)))]
async fn list(
    State(app): State<AppState>,
    _admin: AdminAuth,
) -> Result<Json<ProviderList>, ScimError> {
    let providers = listed(&app).await?;
    Ok(Json(ProviderList { providers }))
}

/// Every provider as the admin API lists it, each with a summary of its status.
///
/// Fails (503) when the views cannot be read.
pub(super) async fn listed(app: &AppState) -> Result<Vec<ListedProvider>, ScimError> {
    let providers = app.store.providers().await?;
    let mut list = Vec::with_capacity(providers.len());
    for p in &providers {
        let lag_history = app.providers.lag_last_day(p.id);
        let status = match app.providers.report(p).await {
            Ok(r) => {
                let s = &r.status;
                let (_, lag) = s.lag(app.providers.views_now(p));
                StatusSummary {
                    running_here: r.here,
                    state: s.state,
                    lag,
                    lag_history,
                    pending: s.pending,
                    failing: s.failing.len(),
                    parked: s.parked.len(),
                    error: s.error.clone(),
                }
            }
            Err(e) => StatusSummary {
                running_here: false,
                state: "unknown",
                lag: 0,
                lag_history,
                pending: 0,
                failing: 0,
                parked: 0,
                error: Some(e),
            },
        };
        list.push(ListedProvider {
            provider: ProviderOut::of(p),
            status,
        });
    }
    Ok(list)
}

/// One provider's configuration.
#[utoipa::path(get, path = "/providers/{name}", operation_id = "show_provider", tag = "providers",
    params(("name" = String, Path, description = "The provider's name")),
    responses(
        (status = 200, description = "The provider", body = ProviderOut),
        (status = 404, description = "No such provider", body = ErrorBody),
    ))]
async fn show(
    State(app): State<AppState>,
    _admin: AdminAuth,
    Path(name): Path<String>,
) -> Result<Json<ProviderOut>, ScimError> {
    let p = by_name(&app, &name).await?;
    Ok(Json(ProviderOut::of(&p)))
}

/// Creates a provider (its secrets sealed) and checks its remote once.
#[utoipa::path(post, path = "/providers", operation_id = "create_provider", tag = "providers", request_body = ProviderSettings,
    responses(
        (status = 201, description = "The provider, with the warnings of a check of its remote", body = CheckedProvider),
        (status = 400, description = "An invalid setting", body = ErrorBody),
        (status = 404, description = "No such directory", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
    ))]
async fn create(
    State(app): State<AppState>,
    admin: AdminAuth,
    Typed(body): Typed<ProviderSettings>,
) -> Result<Response, ScimError> {
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
    body: ProviderSettings,
) -> Result<CheckedProvider, ScimError> {
    let config = body.apply(None, &app.secret_key).map_err(invalid)?;
    let directory = target_directory(app, body.directory.as_deref()).await?;
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
    Ok(checked(app, &p).await)
}

/// Changes a provider: the settings given replace theirs, the others keep their value (a
/// secret left out or empty is kept); its remote is checked once.
#[utoipa::path(patch, path = "/providers/{name}", operation_id = "update_provider", tag = "providers", request_body = ProviderSettings,
    params(("name" = String, Path, description = "The provider's name")),
    responses(
        (status = 200, description = "The provider, with the warnings of a check of its remote", body = CheckedProvider),
        (status = 400, description = "An invalid change (the name and the directory cannot change)", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
    ))]
async fn update(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(name): Path<String>,
    Typed(body): Typed<ProviderSettings>,
) -> Result<Json<CheckedProvider>, ScimError> {
    Ok(Json(update_as(&app, &admin, &name, body).await?))
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
    body: ProviderSettings,
) -> Result<CheckedProvider, ScimError> {
    if body.directory.is_some() {
        return Err(invalid("a provider's directory cannot change".into()));
    }
    let p = by_name(app, name).await?;
    let config = body
        .apply(Some(&p.config), &app.secret_key)
        .map_err(invalid)?;
    admin
        .execute(
            app,
            &p.directory,
            Command::UpdateProvider { id: p.id, config },
        )
        .await?;
    tracing::info!(admin = %admin.who(), provider = %name, "provider changed");
    let p = by_name(app, name).await?;
    Ok(checked(app, &p).await)
}

/// Deletes a provider: its consumer stops and its state is dropped; nothing is deleted on the
/// remote.
#[utoipa::path(delete, path = "/providers/{name}", operation_id = "delete_provider", tag = "providers",
    params(("name" = String, Path, description = "The provider's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such provider", body = ErrorBody),
    ))]
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

/// The body of `POST /admin/v1/providers/{name}/preview`: a stored user or group, by id.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PreviewTarget {
    user: Option<ResourceId>,
    group: Option<ResourceId>,
}

/// What a provider would do with an object.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum ProviderOutcome {
    /// It would send `document`.
    Send,
    /// A mapping skips the object: nothing would be sent.
    Skip,
    /// A mapping fails: `error` says how.
    Error,
}

/// The answer of `POST /admin/v1/providers/{name}/preview`.
#[derive(Serialize, ToSchema)]
struct ProviderPreview {
    provider: String,
    outcome: ProviderOutcome,
    /// The document it would send.
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// What the provider would send for a stored user (`{"user": id}`) or group (`{"group":
/// id}`): the built-in document shaped by the provider's mappings, `skip`, or the error of
/// the mapping that fails. A group's members are shown by Roster's ids (the remote's are
/// known to the provider's consumer only).
#[utoipa::path(post, path = "/providers/{name}/preview", operation_id = "preview_provider", tag = "providers", request_body = PreviewTarget,
    params(("name" = String, Path, description = "The provider's name")),
    responses(
        (status = 200, description = "What it would send", body = ProviderPreview),
        (status = 400, description = "Neither or both of user and group", body = ErrorBody),
        (status = 404, description = "No such provider, user or group", body = ErrorBody),
        (status = 409, description = "A mapping it names does not exist", body = ErrorBody),
    ))]
async fn preview(
    State(app): State<AppState>,
    _admin: AdminAuth,
    Path(name): Path<String>,
    Typed(body): Typed<PreviewTarget>,
) -> Result<Json<ProviderPreview>, ScimError> {
    use crate::provider::mapping::{DefaultMapping, Mapping};
    let p = by_name(&app, &name).await?;
    let applied = config::applied_mappings(&p, &app.store.mappings().await?);
    let mapping: Box<dyn Mapping> = if p.config.mappings.is_empty() {
        Box::new(DefaultMapping)
    } else {
        let chain = crate::provider::chain::Chain::resolve(&p.config, &applied)
            .map_err(|e| ScimError::new(StatusCode::CONFLICT, None, e))?;
        Box::new(chain)
    };
    let result = match (body.user, body.group) {
        (Some(id), None) => {
            let user = app.store.user(&p.directory, id).await?;
            let user = user.ok_or_else(|| ScimError::not_found(format!("user {id} not found")))?;
            mapping.user(&user)
        }
        (None, Some(id)) => {
            let group = app.store.group(&p.directory, id).await?;
            let group =
                group.ok_or_else(|| ScimError::not_found(format!("group {id} not found")))?;
            let members = group
                .members
                .iter()
                .map(|m| serde_json::json!({"value": m.value.to_string(), "type": m.kind}))
                .collect();
            mapping.group(&group, members)
        }
        _ => return Err(invalid("give \"user\" or \"group\" with its id".into())),
    };
    let (outcome, document, error) = match result {
        Ok(Some(document)) => (ProviderOutcome::Send, Some(Value::Object(document)), None),
        Ok(None) => (ProviderOutcome::Skip, None, None),
        Err(e) => (ProviderOutcome::Error, None, Some(e.to_string())),
    };
    Ok(Json(ProviderPreview {
        provider: name,
        outcome,
        document,
        error,
    }))
}

/// A provider request just recorded.
#[derive(Serialize, ToSchema)]
struct Requested {
    /// `Sync`, `Retry` or `Replay { from: N }`.
    requested: String,
    /// The position of its record in the directory's partition: the status's
    /// `requests_below` passes it once the consumer has taken it.
    position: Option<u64>,
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
    let requested = Requested {
        requested: format!("{request:?}"),
        position,
    };
    Ok((StatusCode::ACCEPTED, Json(requested)).into_response())
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
#[utoipa::path(post, path = "/providers/{name}/sync", operation_id = "sync_provider", tag = "providers",
    params(("name" = String, Path, description = "The provider's name")),
    responses(
        (status = 202, description = "Recorded", body = Requested),
        (status = 404, description = "No such provider", body = ErrorBody),
    ))]
async fn sync(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(name): Path<String>,
) -> Result<Response, ScimError> {
    request(&app, &admin, &name, ProviderRequest::Sync).await
}

/// Asks for the parked objects to be tried again now.
#[utoipa::path(post, path = "/providers/{name}/retry", operation_id = "retry_provider", tag = "providers",
    params(("name" = String, Path, description = "The provider's name")),
    responses(
        (status = 202, description = "Recorded", body = Requested),
        (status = 404, description = "No such provider", body = ErrorBody),
    ))]
async fn retry(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(name): Path<String>,
) -> Result<Response, ScimError> {
    request(&app, &admin, &name, ProviderRequest::Retry).await
}

/// The body of `POST /admin/v1/providers/{name}/replay`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Replay {
    /// A position of the directory's partition, not past the end of the log.
    from: u64,
}

/// Asks for every change from `from` (a position of the directory's partition) to be carried
/// again.
#[utoipa::path(post, path = "/providers/{name}/replay", operation_id = "replay_provider", tag = "providers", request_body = Replay,
    params(("name" = String, Path, description = "The provider's name")),
    responses(
        (status = 202, description = "Recorded", body = Requested),
        (status = 400, description = "Not a position, or past the end of the log", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
    ))]
async fn replay(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(name): Path<String>,
    Typed(body): Typed<Replay>,
) -> Result<Response, ScimError> {
    let from = body.from;
    request(&app, &admin, &name, ProviderRequest::Replay { from }).await
}

/// A request sent to a provider's remote, with its answer.
#[derive(Serialize, ToSchema)]
pub(super) struct RecentRequest {
    pub method: String,
    pub path: String,
    /// None when no answer came.
    pub status: Option<u16>,
    pub duration_ms: f64,
}

/// A provider's consumer as the status API shows it: its [`Status`], with the views position
/// and lag as they are now.
#[derive(Serialize, ToSchema)]
pub(super) struct ProviderStatus {
    pub provider: String,
    /// Its consumer runs in this process (else the status comes from its saved state).
    pub running_here: bool,
    pub enabled: bool,
    pub dry_run: bool,
    /// Records up to the views not carried yet.
    pub lag: u64,
    /// The lag in each hour of the last day that was sampled, oldest first.
    pub lag_history: Vec<LagHour>,
    /// The last requests sent to the remote.
    pub recent_requests: Vec<RecentRequest>,
    #[serde(flatten)]
    pub status: Status,
}

/// The status of a provider's consumer.
#[utoipa::path(get, path = "/providers/{name}/status", operation_id = "provider_status", tag = "providers",
    params(("name" = String, Path, description = "The provider's name")),
    responses(
        (status = 200, description = "Its status", body = ProviderStatus),
        (status = 404, description = "No such provider", body = ErrorBody),
    ))]
async fn status(
    State(app): State<AppState>,
    _admin: AdminAuth,
    Path(name): Path<String>,
) -> Result<Json<ProviderStatus>, ScimError> {
    Ok(Json(provider_status(&app, &name).await?))
}

/// The status of the provider `name`'s consumer, as the admin API shows it.
///
/// Fails with 404 when there is no such provider, 503 when its status cannot be read.
pub(super) async fn provider_status(
    app: &AppState,
    name: &str,
) -> Result<ProviderStatus, ScimError> {
    let p = by_name(app, name).await?;
    let report = app
        .providers
        .report(&p)
        .await
        .map_err(|e| ScimError::unavailable(&e))?;
    let (views_position, lag) = report.status.lag(app.providers.views_now(&p));
    let recent_requests = report
        .recent
        .iter()
        .map(|r| RecentRequest {
            method: r.method.clone(),
            path: r.path.clone(),
            status: r.status,
            duration_ms: r.duration.as_secs_f64() * 1000.0,
        })
        .collect();
    let mut status = report.status;
    status.views_position = views_position;
    Ok(ProviderStatus {
        provider: p.config.name.clone(),
        running_here: report.here,
        enabled: p.config.enabled,
        dry_run: p.config.dry_run,
        lag,
        lag_history: app.providers.lag_last_day(p.id),
        recent_requests,
        status,
    })
}
