//! The admin API's sources (`/admin/v1/sources`): create (with a first token), list, show,
//! delete; issue and revoke a source's tokens; declare its extension schemas. Tokens are shown
//! once, at issue; only their prefixes are listed. Every change is an event with the admin as
//! actor.

use super::admin::{new_token, AdminAuth};
use super::body::Typed;
use super::error::{ErrorBody, ScimError};
use super::AppState;
use crate::auth;
use crate::domain::Command;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use roster_events::{Ownership, ResourceId, UndeclaredExtensions, DEFAULT_DIRECTORY};
use roster_projections::{SourceView, TokenView};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sources, create_source))
        .routes(routes!(issue_token))
        .routes(routes!(declare_schema))
        .routes(routes!(revoke_token))
        .routes(routes!(show_source, delete_source))
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

/// A source as the admin API shows it: never a token's secret, only its prefix.
#[derive(Serialize, ToSchema)]
pub(super) struct SourceOut {
    id: ResourceId,
    slug: String,
    directory: String,
    ownership: Ownership,
    undeclared_extensions: UndeclaredExtensions,
    /// The userType that marks a service account for the source's providers' scopes.
    service_account: String,
    /// The SCIM base URL its clients are given.
    scim_base_url: String,
    created: DateTime<Utc>,
    tokens: Vec<TokenOut>,
    /// The extension schemas it declared.
    schemas: Vec<DeclaredRef>,
    /// The source mappings it runs on what it writes, in order.
    mappings: Vec<String>,
}

/// A token as listed: its id and prefix, never its secret.
#[derive(Serialize, ToSchema)]
pub(super) struct TokenOut {
    pub id: ResourceId,
    /// The token's first characters, to tell tokens apart.
    pub prefix: String,
    pub created: DateTime<Utc>,
    pub revoked: Option<DateTime<Utc>>,
}

impl TokenOut {
    pub(super) fn of(t: &TokenView) -> TokenOut {
        TokenOut {
            id: t.id,
            prefix: t.prefix.clone(),
            created: t.created,
            revoked: t.revoked,
        }
    }
}

/// A declared extension schema: the resource type it extends and its id (URN).
#[derive(Serialize, ToSchema)]
struct DeclaredRef {
    /// `User` or `Group`.
    resource_type: &'static str,
    id: String,
}

impl SourceOut {
    fn of(app: &AppState, s: &SourceView) -> SourceOut {
        SourceOut {
            id: s.id,
            slug: s.slug.clone(),
            directory: s.directory.clone(),
            ownership: s.ownership,
            undeclared_extensions: s.undeclared_extensions,
            service_account: s.service_account.clone(),
            scim_base_url: scim_base_url(app, &s.slug),
            created: s.created,
            tokens: s.tokens.values().map(TokenOut::of).collect(),
            schemas: s
                .all_declared()
                .map(|(resource_type, d)| DeclaredRef {
                    resource_type,
                    id: d.id.clone(),
                })
                .collect(),
            mappings: s.mappings.clone(),
        }
    }
}

/// Every source.
#[derive(Serialize, ToSchema)]
struct SourceList {
    sources: Vec<SourceOut>,
}

/// A source just made, with its first token: the secret is shown here and never again.
#[derive(Serialize, ToSchema)]
struct CreatedSource {
    #[serde(flatten)]
    source: SourceOut,
    token: IssuedToken,
}

/// A token just issued: the secret is shown here and never again.
#[derive(Serialize, ToSchema)]
struct IssuedToken {
    id: ResourceId,
    /// The bearer token itself.
    token: String,
}

/// Every source.
#[utoipa::path(get, path = "/sources", tag = "sources",
    responses((status = 200, description = "The sources", body = SourceList)))]
async fn list_sources(
    State(app): State<AppState>,
    _admin: AdminAuth,
) -> Result<Json<SourceList>, ScimError> {
    let sources = app.store.sources().await?;
    let sources = sources.iter().map(|s| SourceOut::of(&app, s)).collect();
    Ok(Json(SourceList { sources }))
}

/// One source.
#[utoipa::path(get, path = "/sources/{slug}", tag = "sources",
    params(("slug" = String, Path, description = "The source's slug")),
    responses(
        (status = 200, description = "The source", body = SourceOut),
        (status = 404, description = "No such source", body = ErrorBody),
    ))]
async fn show_source(
    State(app): State<AppState>,
    _admin: AdminAuth,
    Path(slug): Path<String>,
) -> Result<Json<SourceOut>, ScimError> {
    let s = source_named(&app, &slug).await?;
    Ok(Json(SourceOut::of(&app, &s)))
}

/// The body of `POST /admin/v1/sources`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewSource {
    /// 1-63 lower-case letters, digits or hyphens: the source's SCIM base URL ends with it.
    pub slug: String,
    /// The directory it writes into.
    #[serde(default = "default_directory")]
    #[schema(default = "default")]
    pub directory: String,
    /// `owned` when left out.
    pub ownership: Option<Ownership>,
    /// `refuse` when left out.
    pub undeclared_extensions: Option<UndeclaredExtensions>,
}

fn default_directory() -> String {
    DEFAULT_DIRECTORY.to_owned()
}

/// Creates a source with its first token.
#[utoipa::path(post, path = "/sources", tag = "sources", request_body = NewSource,
    responses(
        (status = 201, description = "The source, with its first token (shown once)", body = CreatedSource),
        (status = 400, description = "A bad slug or body", body = ErrorBody),
        (status = 404, description = "No such directory", body = ErrorBody),
        (status = 409, description = "The slug is taken", body = ErrorBody),
    ))]
async fn create_source(
    State(app): State<AppState>,
    admin: AdminAuth,
    Typed(body): Typed<NewSource>,
) -> Result<Response, ScimError> {
    let (s, token_id, secret) = create_source_as(&app, &admin, body).await?;
    let created = CreatedSource {
        source: SourceOut::of(&app, &s),
        token: IssuedToken {
            id: token_id,
            token: secret.expose().to_owned(),
        },
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
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

/// Issues another token of a source.
#[utoipa::path(post, path = "/sources/{slug}/tokens", tag = "sources",
    params(("slug" = String, Path, description = "The source's slug")),
    responses(
        (status = 201, description = "The token (shown once)", body = IssuedToken),
        (status = 404, description = "No such source", body = ErrorBody),
    ))]
async fn issue_token(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(slug): Path<String>,
) -> Result<Response, ScimError> {
    let (id, secret) = issue_source_token(&app, &admin, &slug).await?;
    let token = secret.expose().to_owned();
    Ok((StatusCode::CREATED, Json(IssuedToken { id, token })).into_response())
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

/// Revokes a token of a source: it is refused from now on.
#[utoipa::path(delete, path = "/sources/{slug}/tokens/{token_id}", tag = "sources",
    params(
        ("slug" = String, Path, description = "The source's slug"),
        ("token_id" = String, Path, description = "The token's id"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such source or token", body = ErrorBody),
    ))]
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

/// The body of `POST /admin/v1/sources/{slug}/schemas`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Declaration {
    /// `User` (when left out) or `Group`.
    resource_type: Option<String>,
    /// The extension schema in its RFC 7643 §7 representation (`id`, `name`, `attributes`).
    #[schema(value_type = Object)]
    schema: roster_projections::schema::DeclaredSchema,
}

/// Declares an extension schema (RFC 7643 §7 representation) for a source's users or groups.
#[utoipa::path(post, path = "/sources/{slug}/schemas", tag = "sources", request_body = Declaration,
    params(("slug" = String, Path, description = "The source's slug")),
    responses(
        (status = 201, description = "The source, with the schema declared", body = SourceOut),
        (status = 400, description = "An invalid schema", body = ErrorBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 409, description = "The schema is declared already, or clashes", body = ErrorBody),
    ))]
async fn declare_schema(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(slug): Path<String>,
    Typed(body): Typed<Declaration>,
) -> Result<Response, ScimError> {
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
    Ok((StatusCode::CREATED, Json(SourceOut::of(&app, &s))).into_response())
}

/// Deletes a source: its tokens are refused from now on. The users and groups it wrote stay
/// in the directory, owned by its slug (no other source sees them; providers keep carrying
/// them); a source created again with the same slug gets them back.
#[utoipa::path(delete, path = "/sources/{slug}", tag = "sources",
    params(("slug" = String, Path, description = "The source's slug")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such source", body = ErrorBody),
    ))]
async fn delete_source(
    State(app): State<AppState>,
    admin: AdminAuth,
    Path(slug): Path<String>,
) -> Result<Response, ScimError> {
    let s = source_named(&app, &slug).await?;
    let cmd = Command::DeleteSource { slug: slug.clone() };
    admin.execute(&app, &s.directory, cmd).await?;
    tracing::info!(admin = %admin.who(), source = %slug, "source deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
