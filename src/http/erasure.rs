//! `POST /admin/v1/erasures`: erase one person's personal data (docs/adr/0014). The body names
//! the user and, optionally, the request it answers (`{"user": "<id>", "reference":
//! "DSAR-118"}`); the answer says what was done. Admin tokens only; the erasure is itself an
//! event of the audit trail.

use super::admin::AdminAuth;
use super::body::json_object;
use super::error::ScimError;
use super::AppState;
use crate::erasure::{erase, EraseError};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};

pub fn routes() -> Router<AppState> {
    Router::new().route("/erasures", post(create))
}

impl From<EraseError> for ScimError {
    fn from(e: EraseError) -> Self {
        match e {
            EraseError::NotFound(_) => ScimError::not_found(e.to_string()),
            EraseError::NotAUser(_) | EraseError::Reference => {
                ScimError::bad_request("invalidValue", e.to_string())
            }
            EraseError::Audit(a) => a.into(),
            EraseError::Write(w) => w.into(),
            EraseError::Key(_) => ScimError {
                retry_after: Some(1),
                ..ScimError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    e.to_string(),
                )
            },
        }
    }
}

async fn create(
    State(app): State<AppState>,
    admin: AdminAuth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Request {
        user: uuid::Uuid,
        reference: Option<String>,
    }
    let body: Request = super::body::typed(json_object(&headers, body)?)?;
    let done = erase(&app, admin.ctx(), body.user, body.reference).await?;
    tracing::info!(admin = %admin.who(), user = %done.user, "erasure requested");
    Ok(Json(done).into_response())
}
