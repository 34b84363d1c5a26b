//! SCIM Bulk (RFC 7644 §3.7): many operations in one request, each run exactly as its own
//! request would be (same parsing, same commands, same rules), in order. `bulkId` references
//! let later operations name resources created by earlier ones (a group whose members are
//! users created in the same request). Operations are not atomic together, as the RFC says;
//! each one is.

use super::super::body::{json_object, parse_etag};
use super::super::error::ScimError;
use super::super::AppState;
use super::auth::{parse_id, SourceAuth};
use super::resources::{write, Groups, Resource, Users};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use roster_projections::filter::get_ci;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
/// The most operations one Bulk request may carry (advertised in /ServiceProviderConfig).
pub const MAX_OPERATIONS: usize = 1000;

/// Replaces every string `bulkId:<id>` in `v` by the id it was resolved to.
///
/// Fails naming the first reference that no earlier operation created.
fn resolve(v: &mut Value, ids: &HashMap<String, String>) -> Result<(), String> {
    match v {
        Value::String(s) => {
            if let Some(key) = s.strip_prefix("bulkId:") {
                *s = ids.get(key).cloned().ok_or_else(|| {
                    format!("bulkId {key:?} is not defined by an earlier operation")
                })?;
            }
            Ok(())
        }
        Value::Array(items) => items.iter_mut().try_for_each(|i| resolve(i, ids)),
        Value::Object(m) => m.values_mut().try_for_each(|i| resolve(i, ids)),
        _ => Ok(()),
    }
}

/// Resolves a `bulkId:<id>` segment of an operation's path (`/Users/bulkId:qwerty`).
fn resolve_path(path: &str, ids: &HashMap<String, String>) -> Result<String, String> {
    path.split('/')
        .map(|seg| {
            let mut v = Value::String(seg.to_owned());
            resolve(&mut v, ids)?;
            Ok(v.as_str().unwrap_or_default().to_owned())
        })
        .collect::<Result<Vec<_>, String>>()
        .map(|segs| segs.join("/"))
}

struct Done {
    status: StatusCode,
    location: Option<String>,
    version: Option<u64>,
    created: Option<String>,
}

/// One operation, run exactly as its own request would be: the same parsing into a checked
/// command, the same writer, the same answer (the resource as this operation left it).
async fn run_one(
    app: &AppState,
    auth: &SourceAuth,
    method: &str,
    path: &str,
    data: Option<Value>,
    version: Option<u64>,
) -> Result<Done, ScimError> {
    let mut parts = path.trim_matches('/').splitn(2, '/');
    let kind = parts.next().unwrap_or("");
    let id = parts.next();
    let op = Op {
        method: method.to_ascii_uppercase(),
        path,
        id,
        data,
        version,
    };
    if kind.eq_ignore_ascii_case("Users") {
        op.run::<Users>(app, auth).await
    } else if kind.eq_ignore_ascii_case("Groups") {
        op.run::<Groups>(app, auth).await
    } else {
        Err(ScimError::bad_request(
            "invalidPath",
            format!("path {path:?} is not /Users or /Groups"),
        ))
    }
}

/// One operation, its path split.
struct Op<'a> {
    method: String,
    path: &'a str,
    id: Option<&'a str>,
    data: Option<Value>,
    version: Option<u64>,
}

impl Op<'_> {
    async fn run<R: Resource>(self, app: &AppState, auth: &SourceAuth) -> Result<Done, ScimError> {
        let data = || -> Result<Map<String, Value>, ScimError> {
            match self.data.clone() {
                Some(Value::Object(m)) => Ok(m),
                _ => Err(ScimError::bad_request(
                    "invalidSyntax",
                    "data must be an object",
                )),
            }
        };
        let id = self.id.map(|id| parse_id(id, R::NAME)).transpose()?;
        let cmd = match (self.method.as_str(), id) {
            ("POST", None) => R::create(app, auth, data()?).await?,
            ("PUT", Some(id)) => R::replace(app, auth, id, data()?, self.version).await?,
            ("PATCH", Some(id)) => R::patch(app, auth, id, data()?, self.version).await?,
            ("DELETE", Some(id)) => {
                app.writers
                    .get(&auth.directory)
                    .await?
                    .execute(R::delete(id, self.version), auth.ctx())
                    .await?;
                return Ok(Done {
                    status: StatusCode::NO_CONTENT,
                    location: None,
                    version: None,
                    created: None,
                });
            }
            _ => {
                return Err(ScimError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    None,
                    format!("{} {} is not a bulk operation", self.method, self.path),
                ))
            }
        };
        let created = self.method == "POST";
        let view = write::<R>(app, auth, cmd).await?;
        Ok(Done {
            status: if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            location: Some(R::location(auth.base(), &view)),
            version: Some(R::version(&view)),
            created: created.then(|| R::id(&view).to_string()),
        })
    }
}

// RFC 7644 §3.7
pub async fn bulk(
    State(app): State<AppState>,
    auth: SourceAuth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ScimError> {
    let body = json_object(&headers, body)?;
    super::super::body::message_schema(&body, BULK_REQUEST, "invalidSyntax")?;
    let Some(Value::Array(ops)) = get_ci(&body, "Operations") else {
        return Err(ScimError::bad_request(
            "invalidSyntax",
            "Operations must be an array",
        ));
    };
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!(
                "{} operations exceed maxOperations {MAX_OPERATIONS}",
                ops.len()
            ),
        ));
    }
    let fail_on_errors = match get_ci(&body, "failOnErrors") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => n.as_u64(),
        Some(_) => {
            return Err(ScimError::bad_request(
                "invalidValue",
                "failOnErrors must be a positive integer",
            ))
        }
    };
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut results = Vec::with_capacity(ops.len());
    let mut errors = 0u64;
    for op in ops {
        if fail_on_errors.is_some_and(|limit| errors >= limit) {
            break;
        }
        let o = op.as_object().cloned().unwrap_or_default();
        let method = get_ci(&o, "method")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let bulk_id = get_ci(&o, "bulkId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let path = get_ci(&o, "path")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let mut data = get_ci(&o, "data").cloned();
        let version = get_ci(&o, "version")
            .and_then(Value::as_str)
            .and_then(parse_etag);
        let outcome = async {
            if method.eq_ignore_ascii_case("POST") && bulk_id.is_none() {
                return Err(ScimError::bad_request(
                    "invalidValue",
                    "a POST in a bulk request needs a bulkId",
                ));
            }
            let path = resolve_path(&path, &ids)
                .map_err(|d| ScimError::new(StatusCode::CONFLICT, Some("invalidValue"), d))?;
            if let Some(d) = data.as_mut() {
                resolve(d, &ids)
                    .map_err(|d| ScimError::new(StatusCode::CONFLICT, Some("invalidValue"), d))?;
            }
            run_one(&app, &auth, &method, &path, data, version).await
        }
        .await;
        let mut r = json!({"method": method});
        if let Some(b) = &bulk_id {
            r["bulkId"] = b.clone().into();
        }
        match outcome {
            Ok(done) => {
                if let (Some(b), Some(id)) = (&bulk_id, &done.created) {
                    ids.insert(b.clone(), id.clone());
                }
                if let Some(l) = done.location {
                    r["location"] = l.into();
                }
                if let Some(v) = done.version {
                    r["version"] = super::super::body::etag(v).into();
                }
                r["status"] = done.status.as_str().into();
            }
            Err(e) => {
                errors += 1;
                r["status"] = e.status.as_str().into();
                r["response"] = json!(e.body());
            }
        }
        results.push(r);
    }
    let body = json!({"schemas": [BULK_RESPONSE], "Operations": results});
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            super::super::error::SCIM_JSON,
        )],
        body.to_string(),
    )
        .into_response())
}
