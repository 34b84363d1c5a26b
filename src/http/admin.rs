//! The admin API (`/admin/v1`): its authentication (`AdminAuth`, the record of refused
//! actions), admin tokens, directories and rebuilds (sources are in `sources`, providers in
//! `providers`). Authenticated with an admin bearer token (issued at first start, or
//! configured). Every change is an event with the admin as actor. Tokens are returned once,
//! at issue, and never again; only their prefixes are listed.

use super::body::Typed;
use super::error::ScimError;
use super::error::{ErrorBody, ErrorDetail};
use super::sources::TokenOut;
use super::AppState;
use crate::audit::access::{Read, Refusal};
use crate::auth;
use crate::domain::{Command, Context, NewToken};
use axum::extract::Request;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use roster_events::{Actor, Client, Interface, RefusalReason, ResourceId, DEFAULT_DIRECTORY};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_admin_tokens, issue_admin_token))
        .routes(routes!(revoke_admin_token))
        .routes(routes!(list_directories, create_directory))
        .routes(routes!(delete_directory))
        .routes(routes!(rebuild_status, start_rebuild))
}

/// The directory a new provider or mapping goes into: the one `given`, `default` when none is.
///
/// Fails with 404 when no such directory exists.
pub(super) async fn target_directory(
    app: &AppState,
    given: Option<&str>,
) -> Result<String, ScimError> {
    let directory = given.unwrap_or(DEFAULT_DIRECTORY).to_owned();
    if !app.store.directories().await?.contains(&directory) {
        return Err(ScimError::not_found(format!(
            "directory {directory:?} not found"
        )));
    }
    Ok(directory)
}

/// Starts a blue/green rebuild of the PostgreSQL views (202), or says why not (409).
#[utoipa::path(post, path = "/rebuild", tag = "admin",
    responses(
        (status = 202, description = "The rebuild started", body = crate::rebuild::RebuildStatus),
        (status = 409, description = "The views are in memory, or a rebuild runs already", body = ErrorBody),
    ))]
async fn start_rebuild(
    State(app): State<AppState>,
    admin: AdminAuth,
) -> Result<Response, ScimError> {
    let status = start_rebuild_as(&app, &admin)?;
    Ok((StatusCode::ACCEPTED, Json(status)).into_response())
}

/// Starts a blue/green rebuild of the PostgreSQL views on `admin`'s behalf: its status.
///
/// Fails with 409 when the views are in memory or a rebuild runs already.
pub(super) fn start_rebuild_as(
    app: &AppState,
    admin: &AdminAuth,
) -> Result<crate::rebuild::RebuildStatus, ScimError> {
    if app.settings.store != crate::config::StoreBackend::Postgres {
        return Err(ScimError::new(
            StatusCode::CONFLICT,
            None,
            "the memory store is rebuilt from the log at every start; rebuild needs store = postgres",
        ));
    }
    let options = app
        .settings
        .postgres_options()
        .map_err(|e| ScimError::internal(&e))?;
    app.rebuilds
        .start(app.log.clone(), options)
        .map_err(|why| ScimError::new(StatusCode::CONFLICT, None, why))?;
    tracing::info!(admin = %admin.who, "rebuild started");
    Ok(app.rebuilds.status())
}

/// What this process's rebuild of the PostgreSQL views is doing.
#[utoipa::path(get, path = "/rebuild", tag = "admin",
    responses((status = 200, description = "The rebuild's state and progress", body = crate::rebuild::RebuildStatus)))]
async fn rebuild_status(
    State(app): State<AppState>,
    _admin: AdminAuth,
) -> Json<crate::rebuild::RebuildStatus> {
    Json(app.rebuilds.status())
}

/// An authenticated admin.
#[derive(Clone)]
pub struct AdminAuth {
    /// The admin token's id, or `config` for the configured token.
    who: String,
    request_id: Option<String>,
    client: Client,
    /// The request's path, for the audit trail.
    path: String,
}

impl AdminAuth {
    /// The admin token's id, or `config` for the configured token.
    pub fn who(&self) -> &str {
        &self.who
    }

    pub fn ctx(&self) -> Context {
        Context {
            actor: Actor::Admin(self.who.clone()),
            source: None,
            correlation_id: self.request_id.clone(),
            client: Some(self.client.clone()),
        }
    }

    /// Has `directory`'s writer decide and record `cmd` on this admin's behalf.
    ///
    /// Fails with the SCIM error the refusal or the write failure maps to.
    pub(super) async fn execute(
        &self,
        app: &AppState,
        directory: &str,
        cmd: Command,
    ) -> Result<crate::domain::Outcome, ScimError> {
        Ok(self.execute_at(app, directory, cmd).await?.0)
    }

    /// Like [`Self::execute`], also answering with the position of the command's record in
    /// the directory's partition (`None` when it recorded nothing).
    ///
    /// Fails as `execute` does.
    pub(super) async fn execute_at(
        &self,
        app: &AppState,
        directory: &str,
        cmd: Command,
    ) -> Result<(crate::domain::Outcome, Option<u64>), ScimError> {
        let writer = app.writers.get(directory).await?;
        Ok(writer.execute_at(cmd, self.ctx()).await?)
    }

    /// Records a read of the audit trail (before it is answered).
    ///
    /// Fails (503) when the log cannot take the record: nobody reads the trail unrecorded.
    pub(super) async fn record_read(
        &self,
        app: &AppState,
        query: Option<&str>,
    ) -> Result<(), ScimError> {
        app.access
            .read(Read {
                admin: self.who.clone(),
                path: self.path.clone(),
                query: query.filter(|q| !q.is_empty()).map(str::to_owned),
                client: self.client.clone(),
                request_id: self.request_id.clone(),
            })
            .await
            .map_err(ScimError::from)
    }
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ScimError> {
        if !certified(app, parts) {
            return Err(refuse_uncertified(app, parts));
        }
        let token = super::bearer_token(&parts.headers);
        if token.is_empty() {
            return Err(refuse(app, parts, RefusalReason::NoToken));
        }
        let who = token_admin(app, token)
            .await?
            .ok_or_else(|| refuse(app, parts, RefusalReason::InvalidToken))?;
        Ok(AdminAuth::signed_in(parts, who))
    }
}

impl AdminAuth {
    /// The admin `who` (already authenticated: by a bearer token, or by the console session
    /// it opened), acting through the request `parts`.
    pub(super) fn signed_in(parts: &Parts, who: String) -> AdminAuth {
        let admin = AdminAuth {
            client: super::client(parts, Some(who.clone())),
            who,
            request_id: super::request_id(&parts.headers),
            path: super::request_path(parts),
        };
        if let Some(Acting(slot)) = parts.extensions.get::<Acting>() {
            let _ = slot.set(admin.clone());
        }
        admin
    }
}

/// Whether the request carries the client certificate the admin interfaces require (always,
/// when `tls_admin_client_ca` is not set).
pub(super) fn certified(app: &AppState, parts: &Parts) -> bool {
    app.settings.tls_admin_client_ca.is_none()
        || parts
            .extensions
            .get::<super::peer::ClientCertificate>()
            .is_some_and(|c| c.verified)
}

/// Refuses (403) and records a request to an admin interface without the client certificate
/// it requires.
pub(super) fn refuse_uncertified(app: &AppState, parts: &Parts) -> ScimError {
    refuse_with(
        app,
        parts,
        RefusalReason::NoClientCertificate,
        ScimError::new(
            StatusCode::FORBIDDEN,
            None,
            "the admin API requires a client certificate from tls_admin_client_ca",
        ),
    )
}

/// The admin `token` authenticates: the id of the issued admin token it is, `config` for the
/// configured one, None for any other.
///
/// Fails (503) when the views cannot be read.
pub(super) async fn token_admin(app: &AppState, token: &str) -> Result<Option<String>, ScimError> {
    let tokens = app.store.admin_tokens().await?;
    // The configured token first: an issued token with the same secret names itself.
    let configured = app
        .admin_token_hash
        .as_deref()
        .map(|h| ("config".to_owned(), h));
    let issued = tokens
        .iter()
        .filter(|t| t.revoked.is_none())
        .map(|t| (t.id.to_string(), t.hash.as_str()));
    Ok(auth::find(token, configured.into_iter().chain(issued)))
}

/// Whether the admin `who` (an admin token's id, or `config`) may still act: its token is
/// not revoked (or a token is still configured).
///
/// Fails (503) when the views cannot be read.
pub(super) async fn still_valid(app: &AppState, who: &str) -> Result<bool, ScimError> {
    if who == "config" {
        return Ok(app.admin_token_hash.is_some());
    }
    let tokens = app.store.admin_tokens().await?;
    Ok(tokens
        .iter()
        .any(|t| t.revoked.is_none() && t.id.to_string() == who))
}

/// Who a request to the admin API was authenticated as: set by [`AdminAuth`] for
/// [`record_refused`], which reads it once the answer is known.
#[derive(Clone, Default)]
struct Acting(Arc<OnceLock<AdminAuth>>);

/// Records, for the audit trail, every change an authenticated admin asked for and was refused
/// (a 4xx other than 401, which the token check records itself).
pub async fn record_refused(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let acting = Acting::default();
    req.extensions_mut().insert(acting.clone());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    let status = resp.status();
    if status.is_client_error() && status != StatusCode::UNAUTHORIZED {
        if let Some(admin) = acting.0.get() {
            let detail = resp.extensions().get::<ErrorDetail>().map(|d| d.0.clone());
            app.access.refused(Refusal {
                interface: Interface::Admin,
                reason: RefusalReason::ActionRefused,
                status: status.as_u16(),
                directory: None,
                source: None,
                actor: Actor::Admin(admin.who.clone()),
                method,
                path: admin.path.clone(),
                detail,
                client: admin.client.clone(),
                request_id: admin.request_id.clone(),
            });
        }
    }
    resp
}

/// Refuses a request to the admin API without a valid admin token (401), recording it for
/// the audit trail.
pub(super) fn refuse(app: &AppState, parts: &Parts, reason: RefusalReason) -> ScimError {
    refuse_with(app, parts, reason, ScimError::unauthorized())
}

/// Records a refused admin request and answers it with `error`.
fn refuse_with(
    app: &AppState,
    parts: &Parts,
    reason: RefusalReason,
    error: ScimError,
) -> ScimError {
    app.access.refused(Refusal {
        interface: Interface::Admin,
        reason,
        status: error.status.as_u16(),
        directory: None,
        source: None,
        actor: Actor::Anonymous,
        method: parts.method.to_string(),
        path: super::request_path(parts),
        detail: None,
        client: super::client(parts, None),
        request_id: super::request_id(&parts.headers),
    });
    error
}

pub(super) fn new_token(kind: &str) -> (auth::Secret, NewToken) {
    let t = auth::generate(kind);
    (
        t.token,
        NewToken {
            id: ResourceId::new(),
            hash: t.hash,
            prefix: t.prefix,
        },
    )
}

/// An issued admin token as listed: never its secret.
#[derive(Serialize, ToSchema)]
struct AdminTokenOut {
    #[serde(flatten)]
    token: TokenOut,
    /// The token that asked.
    current: bool,
}

/// The issued admin tokens, and whether a configured one is accepted too.
#[derive(Serialize, ToSchema)]
struct AdminTokenList {
    admin_tokens: Vec<AdminTokenOut>,
    configured_token: bool,
}

/// An admin token just issued: the secret is shown here and never again.
#[derive(Serialize, ToSchema)]
struct IssuedAdminToken {
    id: ResourceId,
    prefix: String,
    /// The bearer token itself.
    token: String,
}

/// The issued admin tokens (prefixes only; `current` marks the one that asked), and whether a
/// configured one is accepted too.
#[utoipa::path(get, path = "/admin-tokens", tag = "admin",
    responses((status = 200, description = "The admin tokens", body = AdminTokenList)))]
async fn list_admin_tokens(
    State(app): State<AppState>,
    admin: AdminAuth,
) -> Result<Json<AdminTokenList>, ScimError> {
    let mut tokens = app.store.admin_tokens().await?;
    tokens.sort_by_key(|t| t.created);
    let admin_tokens = tokens
        .iter()
        .map(|t| AdminTokenOut {
            token: TokenOut {
                id: t.id,
                prefix: t.prefix.clone(),
                created: t.created,
                revoked: t.revoked,
            },
            current: t.id.to_string() == admin.who,
        })
        .collect();
    Ok(Json(AdminTokenList {
        admin_tokens,
        configured_token: app.admin_token_hash.is_some(),
    }))
}

/// Issues another admin token (shown once, in this answer).
#[utoipa::path(post, path = "/admin-tokens", tag = "admin",
    responses((status = 201, description = "The admin token (shown once)", body = IssuedAdminToken)))]
async fn issue_admin_token(
    State(app): State<AppState>,
    admin: AdminAuth,
) -> Result<Response, ScimError> {
    let (secret, token) = new_token("rsa_");
    let id = token.id;
    let prefix = token.prefix.clone();
    admin
        .execute(&app, DEFAULT_DIRECTORY, Command::IssueAdminToken { token })
        .await?;
    tracing::info!(admin = %admin.who, token = %id, "admin token issued");
    let token = secret.expose().to_owned();
    let issued = IssuedAdminToken { id, prefix, token };
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

/// Revokes an admin token; the last valid one only when a configured token remains.
#[utoipa::path(delete, path = "/admin-tokens/{token_id}", tag = "admin",
    params(("token_id" = String, Path, description = "The admin token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such admin token", body = ErrorBody),
        (status = 409, description = "It is the last valid admin token and none is configured", body = ErrorBody),
    ))]
async fn revoke_admin_token(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(token_id): Path<String>,
) -> Result<Response, ScimError> {
    let token_id: ResourceId = token_id
        .parse()
        .map_err(|_| ScimError::not_found(format!("admin token {token_id} not found")))?;
    let cmd = Command::RevokeAdminToken {
        token_id,
        configured: app.admin_token_hash.is_some(),
    };
    admin.execute(&app, DEFAULT_DIRECTORY, cmd).await?;
    tracing::info!(admin = %admin.who, token = %token_id, "admin token revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The directories' names.
#[derive(Serialize, ToSchema)]
struct DirectoryList {
    directories: Vec<String>,
}

/// A directory: the body of `POST /admin/v1/directories` and its answer.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Directory {
    /// 1-63 lower-case letters, digits or hyphens.
    name: String,
}

/// The directories, by name.
#[utoipa::path(get, path = "/directories", tag = "admin",
    responses((status = 200, description = "The directories", body = DirectoryList)))]
async fn list_directories(
    State(app): State<AppState>,
    _admin: AdminAuth,
) -> Result<Json<DirectoryList>, ScimError> {
    let mut directories = app.store.directories().await?;
    directories.sort();
    Ok(Json(DirectoryList { directories }))
}

/// Creates a directory: users, groups, sources and providers of its own.
#[utoipa::path(post, path = "/directories", tag = "admin", request_body = Directory,
    responses(
        (status = 201, description = "Created", body = Directory),
        (status = 400, description = "A bad name", body = ErrorBody),
        (status = 409, description = "It exists", body = ErrorBody),
    ))]
async fn create_directory(
    State(app): State<AppState>,
    admin: AdminAuth,
    Typed(body): Typed<Directory>,
) -> Result<Response, ScimError> {
    let name = body.name;
    if !crate::domain::valid_slug(&name) {
        return Err(ScimError::bad_request(
            "invalidValue",
            "a directory name must be 1-63 lower-case letters, digits or hyphens",
        ));
    }
    admin.execute(&app, &name, Command::CreateDirectory).await?;
    tracing::info!(admin = %admin.who, directory = %name, "directory created");
    Ok((StatusCode::CREATED, Json(Directory { name })).into_response())
}

/// Deletes an empty directory (no users, groups, sources or providers); never `default`.
#[utoipa::path(delete, path = "/directories/{name}", tag = "admin",
    params(("name" = String, Path, description = "The directory's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such directory", body = ErrorBody),
        (status = 409, description = "It is not empty, or is `default`", body = ErrorBody),
    ))]
async fn delete_directory(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(name): Path<String>,
) -> Result<Response, ScimError> {
    // Only an existing directory gets a writer: a made-up name costs nothing.
    if !app.store.directories().await?.contains(&name) {
        return Err(ScimError::not_found(format!(
            "directory {name:?} not found"
        )));
    }
    admin.execute(&app, &name, Command::DeleteDirectory).await?;
    tracing::info!(admin = %admin.who, directory = %name, "directory deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
