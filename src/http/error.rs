//! The one HTTP error type: renders the RFC 7644 §3.12 error body with
//! `application/scim+json`. 5xx bodies say nothing internal; the cause is logged once here.

use crate::domain::DomainError;
use crate::pipeline::WriteError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use roster_projections::StoreError;

pub const SCIM_JSON: &str = "application/scim+json";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// An error answered to a client.
#[derive(Debug)]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
    /// Seconds for `Retry-After` (429 and 503 always carry one; 1 unless set).
    pub retry_after: Option<u64>,
}

impl ScimError {
    pub fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 429: the caller sends faster than it may; it can try again after `seconds`.
    pub fn too_many_requests(detail: impl Into<String>, seconds: u64) -> Self {
        ScimError {
            retry_after: Some(seconds.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, None, detail)
        }
    }

    /// 503 that says why (no internal detail): too busy right now, try again later.
    pub fn busy(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, None, detail)
    }

    pub fn bad_request(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            None,
            "a valid bearer token is required",
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }

    pub fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "answering 503");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "temporarily unavailable; retry later",
        )
    }

    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "answering 500");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error")
    }
}

/// An error answer's body (RFC 7644 §3.12).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// `urn:ietf:params:scim:api:messages:2.0:Error`
    pub schemas: [&'static str; 1],
    /// The HTTP status, as a string.
    #[schema(example = "400")]
    pub status: &'a str,
    /// The SCIM error type of a 400 or 409 (`invalidValue`, `invalidSyntax`, `uniqueness`,
    /// ...).
    #[serde(rename = "scimType", skip_serializing_if = "Option::is_none")]
    pub scim_type: Option<&'static str>,
    /// What went wrong, for a person.
    pub detail: &'a str,
}

impl ScimError {
    /// The RFC 7644 §3.12 error body.
    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            schemas: [ERROR_SCHEMA],
            status: self.status.as_str(),
            scim_type: self.scim_type,
            detail: &self.detail,
        }
    }
}

/// The `detail` of an error answer, kept in the response's extensions for the middleware that
/// records refused admin actions.
#[derive(Clone, Debug)]
pub struct ErrorDetail(pub String);

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let body = serde_json::to_string(&self.body()).unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        resp.extensions_mut().insert(ErrorDetail(self.detail));
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
        match self.status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"roster\""),
                );
            }
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                let secs = self.retry_after.unwrap_or(1);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            _ => {}
        }
        resp
    }
}

impl From<WriteError> for ScimError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Domain(d) => d.into(),
            WriteError::Store(e) => e.into(),
            e if e.transient() => ScimError::unavailable(&e),
            e => ScimError::internal(&e),
        }
    }
}

impl From<DomainError> for ScimError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Conflict(d) => Self::new(StatusCode::CONFLICT, Some("uniqueness"), d),
            DomainError::NotFound(d) => Self::not_found(d),
            DomainError::PreconditionFailed { .. } => {
                Self::new(StatusCode::PRECONDITION_FAILED, None, e.to_string())
            }
            DomainError::Invalid(d) => Self::bad_request("invalidValue", d),
            DomainError::Patch(p) => Self::bad_request(p.scim_type, p.detail),
        }
    }
}

impl From<crate::passwords::HashError> for ScimError {
    fn from(e: crate::passwords::HashError) -> Self {
        use crate::passwords::HashError;
        match e {
            HashError::Busy => ScimError::busy(e.to_string()),
            HashError::TooLong => ScimError::bad_request("invalidValue", e.to_string()),
            HashError::Failed(_) => ScimError::internal(&e),
        }
    }
}

/// Unavailable views answer 503 (retry later); a rebuild's step that does not fit 409; views
/// that cannot be read, a refused statement or unusable settings 500, for an operator to see
/// in the log.
impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ScimError::unavailable(&e),
            StoreError::Conflict(why) => Self::new(StatusCode::CONFLICT, None, why),
            StoreError::Corrupt(_) | StoreError::Refused(_) | StoreError::Settings(_) => {
                ScimError::internal(&e)
            }
        }
    }
}
