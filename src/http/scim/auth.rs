//! Who is calling a source's SCIM endpoints: the source named by the path's slug, proven by
//! one of its bearer tokens (compared by hash, in constant time, whether or not the source
//! exists), with what the source declares about its resources (extension schemas, what it
//! does with undeclared ones) and the base URL its clients reach it at.

use super::super::error::ScimError;
use super::super::AppState;
use crate::audit::access::Refusal;
use crate::auth;
use crate::domain::Context;
use axum::extract::{FromRequestParts, Path};
use axum::http::header;
use axum::http::request::Parts;
use roster_events::{Actor, Client, Interface, RefusalReason, ResourceId};
use roster_projections::schema::ResourceSchemas;
use roster_projections::{SourceView, Visibility};
use std::collections::HashMap;
use std::sync::Arc;

/// An authenticated source, extracted from the path's slug and the bearer token.
pub struct SourceAuth {
    pub(super) slug: String,
    pub(super) directory: String,
    base: String,
    request_id: Option<String>,
    client: Client,
    /// The source itself, as the views hold it.
    source: Arc<SourceView>,
}

impl SourceAuth {
    /// The source's SCIM base URL, as clients reach it.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The schemas of the source's users.
    pub(crate) fn users(&self) -> ResourceSchemas<'_> {
        self.source.schemas(true)
    }

    /// The schemas of the source's groups.
    pub(crate) fn groups(&self) -> ResourceSchemas<'_> {
        self.source.schemas(false)
    }

    pub(super) fn ctx(&self) -> Context {
        Context {
            actor: Actor::Source(format!("source:{}", self.slug)),
            source: Some(self.slug.clone()),
            correlation_id: self.request_id.clone(),
            client: Some(self.client.clone()),
        }
    }

    pub(super) fn vis(&self) -> Visibility<'_> {
        Visibility::Owner(&self.slug)
    }

    /// Whether the source owns a resource with this owner.
    pub(super) fn owns(&self, owner: &Option<String>) -> bool {
        owner.as_deref() == Some(self.slug.as_str())
    }
}

impl FromRequestParts<AppState> for SourceAuth {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ScimError> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, app)
            .await
            .map_err(|_| ScimError::not_found("no such source"))?;
        let slug = params.get("slug").cloned().unwrap_or_default();
        let token = super::super::bearer_token(&parts.headers);
        let source = app.store.source(&slug).await?;
        // Hash and compare even for an unknown source, so timing does not tell sources apart.
        let hashes = source
            .iter()
            .flat_map(|s| s.tokens.iter())
            .filter(|(_, t)| t.revoked.is_none())
            .map(|(id, t)| (*id, t.hash.as_str()));
        let token_id = auth::find(token, hashes).filter(|_| !token.is_empty());
        let valid = token_id.is_some();
        let source = match source {
            Some(source) if valid => source,
            other => {
                return Err(refuse(
                    app,
                    parts,
                    &slug,
                    token.is_empty(),
                    other.as_deref(),
                ))
            }
        };
        tracing::Span::current().record("source", slug.as_str());
        app.rates.admit(&slug)?;
        let root = match &app.settings.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => {
                let host = parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("localhost");
                format!("{}://{host}", app.settings.scheme())
            }
        };
        Ok(SourceAuth {
            base: format!("{root}/source/scim/{slug}/v2"),
            directory: source.directory.clone(),
            source: source.clone(),
            slug,
            request_id: super::super::request_id(&parts.headers),
            client: super::super::client(parts, token_id.map(|id| id.to_string())),
        })
    }
}

/// Refuses a request whose token does not open the source's URL: the client learns only
/// that (not whether the slug exists); the server's log and the audit trail say which check
/// failed.
fn refuse(
    app: &AppState,
    parts: &Parts,
    slug: &str,
    no_token: bool,
    source: Option<&SourceView>,
) -> ScimError {
    let (reason, why) = match (no_token, source) {
        (true, _) => (RefusalReason::NoToken, "no bearer token"),
        (false, None) => (RefusalReason::UnknownSource, "no source has this slug"),
        (false, Some(_)) => (
            RefusalReason::InvalidToken,
            "the token is not one of the source's valid tokens (revoked, or another source's)",
        ),
    };
    tracing::info!(slug = %slug, why, "SCIM request refused");
    app.access.refused(Refusal {
        interface: Interface::Scim,
        reason,
        status: 401,
        directory: source.map(|s| s.directory.clone()),
        source: source.map(|s| s.slug.clone()),
        actor: Actor::Anonymous,
        method: parts.method.to_string(),
        path: super::super::request_path(parts),
        detail: None,
        client: super::super::client(parts, None),
        request_id: super::super::request_id(&parts.headers),
    });
    unauthorized()
}

/// The 401 of a source's endpoints: what a SCIM client needs to get in, without saying
/// whether the slug exists.
fn unauthorized() -> ScimError {
    ScimError::new(
        axum::http::StatusCode::UNAUTHORIZED,
        None,
        "a valid bearer token of this source is required: a source's clients use its base URL, \
         /source/scim/<slug>/v2, with one of the tokens issued for that source",
    )
}

/// A resource id from the path; an id that is not a UUID names nothing (404).
pub(super) fn parse_id(id: &str, what: &str) -> Result<ResourceId, ScimError> {
    id.parse()
        .map_err(|_| ScimError::not_found(format!("{what} {id} not found")))
}
