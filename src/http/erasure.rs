//! `POST /admin/v1/erasures`: erase one person's personal data (docs/adr/0014). The body names
//! the user and, optionally, the request it answers (`{"user": "<id>", "reference":
//! "DSAR-118"}`); the answer says what was done. Admin tokens only; the erasure is itself an
//! event of the audit trail.

use super::admin::AdminAuth;
use super::body::Typed;
use super::error::{ErrorBody, ScimError};
use super::AppState;
use crate::erasure::{erase, EraseError};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create))
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

/// The body of `POST /admin/v1/erasures`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ErasureRequest {
    /// The user whose personal data is erased.
    user: uuid::Uuid,
    /// The request it answers (a data subject request's number), kept with the erasure.
    reference: Option<String>,
}

/// Erases one person's personal data: their data key is destroyed, so every sealed value of
/// theirs in the log no longer opens; the erasure is itself recorded.
#[utoipa::path(post, path = "/erasures", operation_id = "erase_user", tag = "audit", request_body = ErasureRequest,
    responses(
        (status = 200, description = "What was done", body = crate::erasure::Erased),
        (status = 400, description = "Not a user, or the reference is too long", body = ErrorBody),
        (status = 404, description = "No such user in the audit trail", body = ErrorBody),
    ))]
async fn create(
    State(app): State<AppState>,
    admin: AdminAuth,
    Typed(body): Typed<ErasureRequest>,
) -> Result<Response, ScimError> {
    let done = erase(&app, admin.ctx(), body.user, body.reference).await?;
    tracing::info!(admin = %admin.who(), user = %done.user, "erasure requested");
    Ok(Json(done).into_response())
}
