//! The admin API (`/admin/v1`): sources and their tokens, admin tokens, directories and
//! rebuilds (providers are in `providers`). Authenticated with an admin bearer token (issued
//! at first start, or configured). Every change is an event with the admin as actor. Tokens
//! are returned once, at issue, and never again; only their prefixes are listed.

use super::body::json_object;
use super::error::ErrorDetail;
use super::error::ScimError;
use super::AppState;
use crate::audit::access::{Read, Refusal};
use crate::auth;
use crate::domain::{Command, Context, NewToken};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::Request;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use roster_events::{
    Actor, Client, Interface, Ownership, RefusalReason, ResourceId, UndeclaredExtensions,
    DEFAULT_DIRECTORY,
};
use roster_projections::SourceView;
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sources", get(list_sources).post(create_source))
        .route("/sources/{slug}/tokens", post(issue_token))
        .route("/sources/{slug}/schemas", post(declare_schema))
        .route("/sources/{slug}/tokens/{token_id}", delete(revoke_token))
        .route("/sources/{slug}", get(show_source).delete(delete_source))
        .route(
            "/admin-tokens",
            get(list_admin_tokens).post(issue_admin_token),
        )
        .route("/admin-tokens/{token_id}", delete(revoke_admin_token))
        .route("/directories", get(list_directories).post(create_directory))
        .route("/directories/{name}", delete(delete_directory))
        .route("/rebuild", get(rebuild_status).post(start_rebuild))
}

/// The directory a new provider or mapping goes into: the body's `directory`, `default` when
/// it names none.
///
/// Fails with 400 when `directory` is not a string, 404 when no such directory exists.
pub(super) async fn target_directory(
    app: &AppState,
    body: &serde_json::Map<String, Value>,
) -> Result<String, ScimError> {
    let directory = match body.get("directory") {
        None | Some(Value::Null) => DEFAULT_DIRECTORY.to_owned(),
        Some(Value::String(d)) => d.clone(),
        Some(_) => {
            return Err(ScimError::bad_request(
                "invalidValue",
                "directory must be a string",
            ))
        }
    };
    if !app.store.directories().await?.contains(&directory) {
        return Err(ScimError::not_found(format!(
            "directory {directory:?} not found"
        )));
    }
    Ok(directory)
}

/// Starts a blue/green rebuild of the PostgreSQL views (202), or says why not (409).
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

/// The SCIM base URL of the source `slug`, as its clients reach it.
pub(super) fn scim_base_url(app: &AppState, slug: &str) -> String {
    let root = app
        .settings
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{}://{}", app.settings.scheme(), app.settings.listen));
    format!("{}/source/scim/{slug}/v2", root.trim_end_matches('/'))
}

fn source_json(app: &AppState, s: &SourceView) -> Value {
    let tokens: Vec<Value> = s
        .tokens
        .values()
        .map(
            |t| json!({"id": t.id, "prefix": t.prefix, "created": t.created, "revoked": t.revoked}),
        )
        .collect();
    json!({
        "id": s.id,
        "slug": s.slug,
        "directory": s.directory,
        "ownership": s.ownership,
        "undeclared_extensions": s.undeclared_extensions,
        "service_account": s.service_account,
        "scim_base_url": scim_base_url(app, &s.slug),
        "created": s.created,
        "tokens": tokens,
        "schemas": s.all_declared().map(|(rt, d)| json!({"resource_type": rt, "id": d.id})).collect::<Vec<_>>(),
        "mappings": s.mappings,
    })
}

fn new_token(kind: &str) -> (auth::Secret, NewToken) {
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

async fn list_sources(
    State(app): State<AppState>,
    _admin: AdminAuth,
) -> Result<Response, ScimError> {
    let sources = app.store.sources().await?;
    let list: Vec<Value> = sources.iter().map(|s| source_json(&app, s)).collect();
    Ok(Json(json!({"sources": list})).into_response())
}

async fn show_source(
    State(app): State<AppState>,
    _admin: AdminAuth,
    Path(slug): Path<String>,
) -> Result<Response, ScimError> {
    let s = source_named(&app, &slug).await?;
    Ok(Json(source_json(&app, &s)).into_response())
}

/// The body of `POST /admin/v1/sources`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewSource {
    pub slug: String,
    #[serde(default = "default_directory")]
    pub directory: String,
    pub ownership: Option<Ownership>,
    pub undeclared_extensions: Option<UndeclaredExtensions>,
}

fn default_directory() -> String {
    DEFAULT_DIRECTORY.to_owned()
}

async fn create_source(
    State(app): State<AppState>,
    admin: AdminAuth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let body: NewSource = super::body::typed(json_object(&headers, body)?)?;
    let (s, token_id, secret) = create_source_as(&app, &admin, body).await?;
    let mut out = source_json(&app, &s);
    out["token"] = json!({"id": token_id, "token": secret.expose()});
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Creates a source on `admin`'s behalf: the source as the views hold it, and its first
/// token's id and secret (to show once).
///
/// Fails with 400 for a bad slug, 404 for a missing directory, 409 when the slug is taken.
pub(super) async fn create_source_as(
    app: &AppState,
    admin: &AdminAuth,
    body: NewSource,
) -> Result<(Arc<SourceView>, ResourceId, auth::Secret), ScimError> {
    let slug = body.slug;
    if !crate::domain::valid_slug(&slug) {
        return Err(ScimError::bad_request(
            "invalidValue",
            "slug must be 1-63 lower-case letters, digits or hyphens",
        ));
    }
    let directory = body.directory.as_str();
    if !app
        .store
        .directories()
        .await?
        .iter()
        .any(|d| d == directory)
    {
        return Err(ScimError::not_found(format!(
            "directory {directory:?} not found"
        )));
    }
    if app.store.source(&slug).await?.is_some() {
        return Err(ScimError::new(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!("source {slug:?} exists"),
        ));
    }
    let (secret, token) = new_token("rst_");
    let token_id = token.id;
    let cmd = Command::CreateSource {
        slug: slug.clone(),
        token,
        ownership: body.ownership.unwrap_or(Ownership::Owned),
        undeclared_extensions: body.undeclared_extensions.unwrap_or_default(),
    };
    admin.execute(app, directory, cmd).await?;
    let s = app.store.source(&slug).await?;
    let s = s.ok_or_else(|| ScimError::internal(&"created source not in views"))?;
    Ok((s, token_id, secret))
}

async fn issue_token(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(slug): Path<String>,
) -> Result<Response, ScimError> {
    let (id, secret) = issue_source_token(&app, &admin, &slug).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "token": secret.expose()})),
    )
        .into_response())
}

/// Issues another token of the source `slug` on `admin`'s behalf: its id and secret (to show
/// once).
///
/// Fails with 404 when there is no such source.
pub(super) async fn issue_source_token(
    app: &AppState,
    admin: &AdminAuth,
    slug: &str,
) -> Result<(ResourceId, auth::Secret), ScimError> {
    let s = source_named(app, slug).await?;
    let (secret, token) = new_token("rst_");
    let id = token.id;
    let cmd = Command::IssueSourceToken {
        slug: slug.to_owned(),
        token,
    };
    admin.execute(app, &s.directory, cmd).await?;
    Ok((id, secret))
}

async fn revoke_token(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path((slug, token_id)): Path<(String, String)>,
) -> Result<Response, ScimError> {
    revoke_source_token(&app, &admin, &slug, &token_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Revokes the token `token_id` of the source `slug` on `admin`'s behalf.
///
/// Fails with 404 when there is no such source or token.
pub(super) async fn revoke_source_token(
    app: &AppState,
    admin: &AdminAuth,
    slug: &str,
    token_id: &str,
) -> Result<(), ScimError> {
    let s = source_named(app, slug).await?;
    let token_id: ResourceId = token_id
        .parse()
        .map_err(|_| ScimError::not_found(format!("token {token_id} not found")))?;
    let cmd = Command::RevokeSourceToken {
        slug: slug.to_owned(),
        token_id,
    };
    admin.execute(app, &s.directory, cmd).await?;
    Ok(())
}

/// The source `slug`, or 404.
pub(super) async fn source_named(app: &AppState, slug: &str) -> Result<Arc<SourceView>, ScimError> {
    app.store
        .source(slug)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("source {slug:?} not found")))
}

/// Whether a body's member `name`, `User` (the default) or `Group`, names users.
pub(super) fn is_user(name: &str, given: Option<&str>) -> Result<bool, ScimError> {
    match given {
        None | Some("User") => Ok(true),
        Some("Group") => Ok(false),
        Some(other) => Err(ScimError::bad_request(
            "invalidValue",
            format!("{name} {other:?} is not User or Group"),
        )),
    }
}

/// Declares an extension schema (RFC 7643 §7 representation) for a source's users or groups.
async fn declare_schema(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(slug): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Declaration {
        resource_type: Option<String>,
        schema: roster_projections::schema::DeclaredSchema,
    }
    let body: Declaration = super::body::typed(json_object(&headers, body)?)?;
    let s = source_named(&app, &slug).await?;
    let resource_type = if is_user("resource_type", body.resource_type.as_deref())? {
        "User"
    } else {
        "Group"
    };
    let schema = body.schema;
    roster_projections::schema::validate_declared(&schema)
        .map_err(|e| ScimError::bad_request("invalidValue", e))?;
    let cmd = Command::DeclareSchema {
        slug: slug.clone(),
        resource_type: resource_type.to_owned(),
        schema,
    };
    admin.execute(&app, &s.directory, cmd).await?;
    let s = app.store.source(&slug).await?;
    let s = s.ok_or_else(|| ScimError::internal(&"source not in views"))?;
    Ok((StatusCode::CREATED, Json(source_json(&app, &s))).into_response())
}

/// Deletes a source: its tokens are refused from now on. The users and groups it wrote stay
/// in the directory, owned by its slug (no other source sees them; providers keep carrying
/// them); a source created again with the same slug gets them back.
async fn delete_source(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(slug): Path<String>,
) -> Result<Response, ScimError> {
    let s = source_named(&app, &slug).await?;
    let cmd = Command::DeleteSource { slug: slug.clone() };
    admin.execute(&app, &s.directory, cmd).await?;
    tracing::info!(admin = %admin.who, source = %slug, "source deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The issued admin tokens (prefixes only; `current` marks the one that asked), and whether a
/// configured one is accepted too.
async fn list_admin_tokens(
    State(app): State<AppState>,
    admin: AdminAuth,
) -> Result<Response, ScimError> {
    let mut tokens = app.store.admin_tokens().await?;
    tokens.sort_by_key(|t| t.created);
    let list: Vec<Value> = tokens
        .iter()
        .map(|t| {
            json!({"id": t.id, "prefix": t.prefix, "created": t.created, "revoked": t.revoked,
                   "current": t.id.to_string() == admin.who})
        })
        .collect();
    Ok(Json(json!({
        "admin_tokens": list,
        "configured_token": app.admin_token_hash.is_some(),
    }))
    .into_response())
}

/// Issues another admin token (shown once, in this answer).
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
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "prefix": prefix, "token": secret.expose()})),
    )
        .into_response())
}

/// Revokes an admin token; the last valid one only when a configured token remains.
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

async fn list_directories(
    State(app): State<AppState>,
    _admin: AdminAuth,
) -> Result<Response, ScimError> {
    let mut names = app.store.directories().await?;
    names.sort();
    Ok(Json(json!({"directories": names})).into_response())
}

/// Creates a directory: users, groups, sources and providers of its own.
async fn create_directory(
    State(app): State<AppState>,
    admin: AdminAuth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NewDirectory {
        name: String,
    }
    let body: NewDirectory = super::body::typed(json_object(&headers, body)?)?;
    let name = body.name;
    if !crate::domain::valid_slug(&name) {
        return Err(ScimError::bad_request(
            "invalidValue",
            "a directory name must be 1-63 lower-case letters, digits or hyphens",
        ));
    }
    admin.execute(&app, &name, Command::CreateDirectory).await?;
    tracing::info!(admin = %admin.who, directory = %name, "directory created");
    Ok((StatusCode::CREATED, Json(json!({"name": name}))).into_response())
}

/// Deletes an empty directory (no users, groups, sources or providers); never `default`.
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
