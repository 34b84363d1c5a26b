//! A fast SCIM target for the provider benchmarks: users and groups in memory behind one
//! lock, the RFC 7644 operations a provider sends (POST, PUT, PATCH of members and `active`,
//! DELETE, paged lists, `eq` filters on userName / displayName / externalId, Bulk), and the
//! time each user was created, by userName, for propagation latencies. Not a SCIM server for
//! anything else: no validation beyond what the benchmark needs. Served alone
//! (`roster-load ceiling`) it is the ceiling for Roster's HTTP figures: the same requests
//! answered by a minimal axum server, without authentication, durability or checks.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Default)]
pub struct Store {
    next: u64,
    users: BTreeMap<String, Value>,
    groups: BTreeMap<String, Value>,
    user_names: HashMap<String, String>,
    /// userName -> when it was created here.
    pub arrivals: HashMap<String, Instant>,
    pub requests: u64,
}

pub type Shared = Arc<Mutex<Store>>;

fn collection<'a>(s: &'a mut Store, kind: &str) -> &'a mut BTreeMap<String, Value> {
    if kind == "Users" {
        &mut s.users
    } else {
        &mut s.groups
    }
}

/// One operation, as a plain call or inside Bulk: status and body.
fn apply(s: &mut Store, method: &str, kind: &str, id: Option<&str>, body: Value) -> (u16, Value) {
    s.requests += 1;
    match (method, id) {
        ("POST", None) => {
            if kind == "Users" {
                let name = body["userName"].as_str().unwrap_or("").to_lowercase();
                if s.user_names.contains_key(&name) {
                    return (409, json!({"status": "409", "scimType": "uniqueness"}));
                }
                s.next += 1;
                let id = format!("u{}", s.next);
                s.user_names.insert(name.clone(), id.clone());
                s.arrivals.insert(name, Instant::now());
                let mut body = body;
                body["id"] = json!(id);
                s.users.insert(id, body.clone());
                (201, body)
            } else {
                s.next += 1;
                let id = format!("g{}", s.next);
                let mut body = body;
                body["id"] = json!(id);
                s.groups.insert(id, body.clone());
                (201, body)
            }
        }
        ("PUT", Some(id)) => {
            let c = collection(s, kind);
            if !c.contains_key(id) {
                return (404, json!({"status": "404"}));
            }
            let mut body = body;
            body["id"] = json!(id);
            c.insert(id.to_owned(), body.clone());
            (200, body)
        }
        ("PATCH", Some(id)) => {
            let c = collection(s, kind);
            let Some(doc) = c.get_mut(id) else {
                return (404, json!({"status": "404"}));
            };
            for op in body["Operations"].as_array().into_iter().flatten() {
                let path = op["path"].as_str().unwrap_or("");
                match op["op"].as_str().unwrap_or("").to_lowercase().as_str() {
                    "add" if path == "members" => {
                        let members = doc["members"].as_array().cloned().unwrap_or_default();
                        let mut members: Vec<Value> = members;
                        for m in op["value"].as_array().into_iter().flatten() {
                            if !members.iter().any(|x| x["value"] == m["value"]) {
                                members.push(m.clone());
                            }
                        }
                        doc["members"] = Value::Array(members);
                    }
                    "remove" if path.starts_with("members[value eq ") => {
                        let v: String = serde_json::from_str(
                            path.trim_start_matches("members[value eq ")
                                .trim_end_matches(']'),
                        )
                        .unwrap_or_default();
                        if let Some(ms) = doc["members"].as_array_mut() {
                            ms.retain(|m| m["value"] != v.as_str());
                        }
                    }
                    "replace" => {
                        if !path.is_empty() {
                            doc[path] = op["value"].clone();
                        }
                    }
                    _ => return (400, json!({"status": "400", "scimType": "invalidPath"})),
                }
            }
            (204, Value::Null)
        }
        ("DELETE", Some(id)) => {
            let removed = collection(s, kind).remove(id);
            match removed {
                Some(doc) => {
                    if let Some(n) = doc["userName"].as_str() {
                        s.user_names.remove(&n.to_lowercase());
                    }
                    (204, Value::Null)
                }
                None => (404, json!({"status": "404"})),
            }
        }
        _ => (405, json!({"status": "405"})),
    }
}

fn answer((status, body): (u16, Value)) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if body.is_null() {
        code.into_response()
    } else {
        (code, Json(body)).into_response()
    }
}

async fn config() -> Json<Value> {
    Json(json!({
        "patch": {"supported": true},
        "bulk": {"supported": true, "maxOperations": 1000, "maxPayloadSize": 10485760},
        "filter": {"supported": true, "maxResults": 1000},
    }))
}

async fn list(
    State(s): State<Shared>,
    Path(kind): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let mut s = s.lock().unwrap();
    s.requests += 1;
    let start: usize = q
        .get("startIndex")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let count: usize = q.get("count").and_then(|v| v.parse().ok()).unwrap_or(100);
    let filter = q.get("filter").map(|f| {
        let (attr, value) = f.split_once(" eq ").unwrap_or(("", ""));
        let value: String = serde_json::from_str(value).unwrap_or_default();
        (attr, value)
    });
    if let (Some(("userName", name)), "Users") = (&filter, kind.as_str()) {
        let id = s.user_names.get(&name.to_lowercase()).cloned();
        let found: Vec<&Value> = id.and_then(|id| s.users.get(&id)).into_iter().collect();
        return Json(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": found.len(), "startIndex": 1, "itemsPerPage": found.len(),
            "Resources": found,
        }));
    }
    let c = collection(&mut s, &kind);
    let all: Vec<&Value> = match filter {
        Some((attr, value)) => c
            .values()
            .filter(|d| {
                d[attr]
                    .as_str()
                    .is_some_and(|v| v.eq_ignore_ascii_case(&value))
            })
            .collect(),
        None => c.values().collect(),
    };
    let page: Vec<&Value> = all
        .iter()
        .skip(start.saturating_sub(1))
        .take(count)
        .copied()
        .collect();
    Json(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": all.len(), "startIndex": start, "itemsPerPage": page.len(),
        "Resources": page,
    }))
}

async fn create(State(s): State<Shared>, Path(kind): Path<String>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    answer(apply(&mut s.lock().unwrap(), "POST", &kind, None, body))
}

async fn one(
    State(s): State<Shared>,
    Path((kind, id)): Path<(String, String)>,
    method: axum::http::Method,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = s.lock().unwrap();
    if method == axum::http::Method::GET {
        s.requests += 1;
        return match collection(&mut s, &kind).get(&id) {
            Some(d) => Json(d.clone()).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
    }
    answer(apply(&mut s, method.as_str(), &kind, Some(&id), body))
}

async fn bulk(State(s): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
    let mut s = s.lock().unwrap();
    let mut out = Vec::new();
    for op in body["Operations"].as_array().into_iter().flatten() {
        let method = op["method"].as_str().unwrap_or("");
        let path = op["path"].as_str().unwrap_or("").trim_start_matches('/');
        let (kind, id) = match path.split_once('/') {
            Some((k, i)) => (k, Some(i)),
            None => (path, None),
        };
        let (status, resp) = apply(&mut s, method, kind, id, op["data"].clone());
        let location = resp["id"]
            .as_str()
            .map(|i| format!("/{kind}/{i}"))
            .or_else(|| id.map(|i| format!("/{kind}/{i}")));
        let mut r = json!({"method": method, "status": status.to_string(), "location": location});
        if let Some(b) = op.get("bulkId") {
            r["bulkId"] = b.clone();
        }
        if status >= 400 {
            r["response"] = resp;
        }
        out.push(r);
    }
    Json(
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkResponse"], "Operations": out}),
    )
}

/// Serves the target on a free loopback port; returns its base URL and its store.
pub async fn start() -> anyhow::Result<(String, Shared)> {
    start_on("127.0.0.1:0").await
}

/// Serves the target on `addr`; returns its base URL and its store.
pub async fn start_on(addr: &str) -> anyhow::Result<(String, Shared)> {
    let shared: Shared = Arc::default();
    let app = Router::new()
        .route("/ServiceProviderConfig", get(config))
        .route("/Bulk", post(bulk))
        .route("/{kind}", get(list).post(create))
        .route("/{kind}/{id}", get(one).put(one).patch(one).delete(one))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((base, shared))
}
