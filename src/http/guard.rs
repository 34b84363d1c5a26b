//! What every request passes before a handler sees it, and every error answer after: a URI
//! or header section over its limit is 414 or 431, a declared body over the limit is 413
//! before a byte of it is read (these refusals, and every 413, close their connection), and
//! any error answered by a layer that does not speak SCIM (the router's own rejections, body
//! limits, timeouts) is rewritten into the RFC 7644 §3.12 error body, so that clients always
//! get `application/scim+json` (the console's error pages are left as they are).

use super::error::ScimError;
use super::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The longest request target (path and query) accepted, in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The most header bytes (names and values) a request may carry.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// The most header fields a request may carry.
pub const MAX_HEADERS: usize = 100;

/// Refuses requests over the URI, header and declared body limits; rewrites the error
/// answers of layers that do not speak SCIM.
pub async fn edge(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(refused) = over_limits(&req, app.settings.max_body_bytes) {
        return closing(refused);
    }
    let resp = scim_errors(next.run(req).await).await;
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return closing(resp);
    }
    resp
}

/// `resp` with `Connection: close`: the request's body may be unread, so its connection
/// cannot carry another request, and the client must not keep it for one (a request sent on
/// it would be lost to the close that follows).
fn closing(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// The answer for a request over the URI, header or declared body limits, if it is.
fn over_limits(req: &Request, max_body: usize) -> Option<Response> {
    let uri = req.uri();
    let target = uri.path().len() + uri.query().map_or(0, |q| q.len() + 1);
    if target > MAX_URI_BYTES {
        return Some(
            ScimError::new(
                StatusCode::URI_TOO_LONG,
                None,
                format!("the request target is longer than {MAX_URI_BYTES} bytes"),
            )
            .into_response(),
        );
    }
    let headers = req.headers();
    let bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Some(
            ScimError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                None,
                format!(
                    "at most {MAX_HEADERS} header fields and {MAX_HEADER_BYTES} bytes of \
                     headers are accepted"
                ),
            )
            .into_response(),
        );
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    declared
        .is_some_and(|n| n > max_body as u64)
        .then(|| too_large(max_body))
}

/// 413 for a body over `max` bytes.
pub fn too_large(max: usize) -> Response {
    ScimError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
        format!("the request body is larger than {max} bytes"),
    )
    .into_response()
}

/// The most of a non-SCIM error body kept as the SCIM error's detail.
const MAX_DETAIL: usize = 512;

/// Rewrites an error answer that is not JSON into a SCIM error body with the same status.
async fn scim_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    // SCIM and admin errors are JSON already; the console's are pages.
    let spoken = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json") || ct.starts_with("text/html"));
    if spoken {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_DETAIL * 4)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let detail = if text.is_empty() || status.is_server_error() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text.chars().take(MAX_DETAIL).collect()
    };
    let mut out = ScimError::new(status, None, detail).into_response();
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().entry(k.clone()).or_insert(v.clone());
        }
    }
    out
}
