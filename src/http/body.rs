//! Request parsing shared by the SCIM and admin handlers: media type, body size, JSON shape,
//! and the `If-Match` header.

use super::error::ScimError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderMap, StatusCode};
use serde_json::{Map, Value};

/// Parses a JSON object body, refusing other media types (415), oversized bodies (413) and
/// anything that is not a JSON object (400 invalidSyntax).
pub fn json_object(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Map<String, Value>, ScimError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if ct != "application/scim+json" && ct != "application/json" {
            return Err(ScimError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                "send application/scim+json or application/json",
            ));
        }
    }
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ScimError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                "request body too large",
            )
        } else {
            ScimError::bad_request("invalidSyntax", "the request body could not be read")
        }
    })?;
    match serde_json::from_slice::<Value>(&body) {
        // PostgreSQL text cannot hold U+0000, nor can many downstream applications: refuse it
        // at the edge rather than store what some views could not.
        Ok(Value::Object(m)) if m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)) => {
            Err(ScimError::bad_request(
                "invalidValue",
                "strings may not contain the NUL character (U+0000)",
            ))
        }
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ScimError::bad_request(
            "invalidSyntax",
            "the body must be a JSON object",
        )),
        Err(e) => Err(ScimError::bad_request(
            "invalidSyntax",
            format!("malformed JSON: {e}"),
        )),
    }
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// An admin API body: the request's JSON object (media type, size and shape checked by
/// [`json_object`]) read into `T` by [`typed`]. The last argument of a handler.
pub struct Typed<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Typed<T> {
    type Rejection = ScimError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ScimError> {
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state).await;
        Ok(Typed(typed(json_object(&headers, body)?)?))
    }
}

/// A JSON object read into `T` (an admin API body with its fields and types).
///
/// Fails with 400 `invalidValue` saying which field is unknown, missing or of the wrong type,
/// and where (`auth.type: unknown variant ...`).
pub fn typed<T: serde::de::DeserializeOwned>(body: Map<String, Value>) -> Result<T, ScimError> {
    read(Value::Object(body)).map_err(|e| ScimError::bad_request("invalidValue", e))
}

/// `value` read into `T`, or what is wrong with it and where.
pub fn read<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.into_inner().to_string()
        } else {
            format!("{path}: {}", e.into_inner())
        }
    })
}

/// The version an `If-Match` header demands: `None` when absent or `*`.
///
/// A value that names no version of ours can never match, so it fails the precondition.
pub fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ScimError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let v = v.to_str().unwrap_or("").trim();
    if v == "*" {
        return Ok(None);
    }
    parse_etag(v).map(Some).ok_or_else(|| {
        ScimError::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            "If-Match names no current version",
        )
    })
}

/// Parses `W/"3"` or `"3"` into 3.
pub fn parse_etag(v: &str) -> Option<u64> {
    let v = v.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    v.strip_prefix('"')?.strip_suffix('"')?.parse().ok()
}

/// The weak ETag of a resource version.
pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// Checks that a message body's `schemas`, when present, names `urn` (RFC 7644 §3.1: clients
/// name the message they send). Absent `schemas` is accepted, as real clients omit it.
///
/// Fails with 400 and `scim_type` otherwise.
pub fn message_schema(
    body: &Map<String, Value>,
    urn: &str,
    scim_type: &'static str,
) -> Result<(), ScimError> {
    let Some(s) = roster_projections::filter::get_ci(body, "schemas") else {
        return Ok(());
    };
    let named = s.as_array().is_some_and(|a| {
        a.iter()
            .any(|x| x.as_str().is_some_and(|x| x.eq_ignore_ascii_case(urn)))
    });
    if named {
        Ok(())
    } else {
        Err(ScimError::bad_request(
            scim_type,
            format!("schemas must contain {urn}"),
        ))
    }
}
