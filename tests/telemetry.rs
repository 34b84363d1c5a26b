//! Spans exported over OTLP/HTTP (issue 17). The `roster` binary runs with `--otlp-endpoint`
//! pointing at a collector in this test that decodes what it receives with the
//! OpenTelemetry project's own protobuf types (no collector binary can be installed here).
//! A SCIM request that carries a `traceparent` is continued: its request span, and the span
//! of the command it sent to the writer, are in the client's trace; the writer's batch links
//! to it. A provider's request to its remote (scim2-server from PyPI, behind a recording
//! proxy in this test) carries a `traceparent` naming the span Roster exported for it.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use common::remote::{free_port, Remote, REMOTE_TOKEN};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ADMIN: &str = "admin-test-token-0123456789abcdef";

/// What the collector received: each span with its resource's `service.name`.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, Span)>>>);

impl Received {
    fn spans(&self) -> Vec<(String, Span)> {
        self.0.lock().unwrap().clone()
    }
}

async fn traces(State(received): State<Received>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut all = received.0.lock().unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| a.value.as_ref()?.value.as_ref())
            .map(|v| match v {
                AnyValue::StringValue(s) => s.clone(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        for scope in resource.scope_spans {
            all.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
        }
    }
    StatusCode::OK
}

/// A collector's OTLP/HTTP receiver on a loopback port.
async fn collector() -> (String, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(traces))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, received)
}

/// A request the proxy forwarded: method, path and `traceparent`.
type Seen = (Method, String, Option<String>);

/// Forwards every request to the remote and records each one's `traceparent`.
#[derive(Clone)]
struct Proxy {
    target: String,
    http: reqwest::Client,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn forward(
    State(proxy): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, Bytes) {
    let traceparent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    proxy
        .seen
        .lock()
        .unwrap()
        .push((method.clone(), uri.path().to_owned(), traceparent));
    let mut sent = headers.clone();
    sent.remove("host");
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let answer = proxy
        .http
        .request(method, format!("{}{path}", proxy.target))
        .headers(sent)
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, mut headers) = (answer.status(), answer.headers().clone());
    headers.remove("content-length");
    headers.remove("transfer-encoding");
    (status, headers, answer.bytes().await.unwrap())
}

async fn proxy(remote: &Remote) -> (u16, Proxy) {
    let proxy = Proxy {
        target: format!("http://127.0.0.1:{}", remote.port),
        http: reqwest::Client::new(),
        seen: Arc::default(),
    };
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, proxy)
}

struct Roster(Child);

impl Drop for Roster {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Waits (bounded) until the collector holds a span `pick` finds.
async fn eventually<T>(received: &Received, what: &str, pick: impl Fn(&[Span]) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let spans: Vec<Span> = received.spans().into_iter().map(|(_, s)| s).collect();
        if let Some(found) = pick(&spans) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "the collector never received {what}; it has {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_collector_and_trace_context_crosses_every_hop() {
    let (collector, received) = collector().await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let root = format!("http://127.0.0.1:{port}");
    let _roster = Roster(
        Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--data-dir", data.path().to_str().unwrap()])
            .args(["--admin-token", ADMIN])
            .args(["--otlp-endpoint", &collector])
            // Export every 100 ms rather than every 5 s.
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("ROSTER_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(format!("{root}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "roster did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = http
        .post(format!("{root}/admin/v1/sources"))
        .bearer_auth(ADMIN)
        .json(&json!({"slug": "hr"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let token = r.json::<Value>().await.unwrap()["token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A SCIM client's request that is part of its own trace.
    let (trace_id, client_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let r = http
        .post(format!("{root}/source/scim/hr/v2/Users"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .json(
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                      "userName": "alice@example.com"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let request = eventually(&received, "the request's span", |spans| {
        spans
            .iter()
            .find(|s| hex(&s.trace_id) == trace_id && hex(&s.parent_span_id) == client_span)
            .cloned()
    })
    .await;
    // Named by its route, as OpenTelemetry's conventions ask (few distinct names).
    assert_eq!(request.name, "POST /source/scim/{slug}/v2/Users");
    assert_eq!(request.kind, SpanKind::Server as i32);
    let command = eventually(&received, "the command's span", |spans| {
        spans
            .iter()
            .find(|s| s.name == "command" && s.parent_span_id == request.span_id)
            .cloned()
    })
    .await;
    assert_eq!(hex(&command.trace_id), trace_id);
    // The writer's batch is a trace of its own that links to the request it served.
    let batch = eventually(&received, "the command batch", |spans| {
        spans
            .iter()
            .find(|s| {
                s.name == "command_batch" && s.links.iter().any(|l| l.span_id == request.span_id)
            })
            .cloned()
    })
    .await;
    assert!(batch.parent_span_id.is_empty(), "{batch:?}");
    assert_ne!(hex(&batch.trace_id), trace_id);
    eventually(&received, "a projection batch", |spans| {
        spans.iter().find(|s| s.name == "projection_batch").cloned()
    })
    .await;

    // A provider's request to its remote carries the context of the span Roster exports.
    let remote = Remote::start().await;
    let (proxy_port, proxy) = proxy(&remote).await;
    let base = remote
        .base
        .replace(&format!(":{}/", remote.port), &format!(":{proxy_port}/"));
    let r = http
        .post(format!("{root}/admin/v1/providers"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "traced", "base_url": base,
                      "auth": {"type": "bearer", "token": REMOTE_TOKEN}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let traceparent = loop {
        let created = proxy
            .seen
            .lock()
            .unwrap()
            .iter()
            .find(|(m, path, _)| m == Method::POST && path.ends_with("/Users"))
            .cloned();
        if let Some((_, _, traceparent)) = created {
            break traceparent.expect("the provider's request carries no traceparent");
        }
        assert!(
            Instant::now() < deadline,
            "the provider never created the user"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!((parts[0], parts[3]), ("00", "01"), "{traceparent}");
    let (remote_trace, remote_span) = (parts[1].to_owned(), parts[2].to_owned());
    let outbound = eventually(&received, "the provider's request span", |spans| {
        spans
            .iter()
            .find(|s| hex(&s.span_id) == remote_span)
            .cloned()
    })
    .await;
    assert_eq!(outbound.name, "remote_request");
    assert_eq!(outbound.kind, SpanKind::Client as i32);
    assert_eq!(hex(&outbound.trace_id), remote_trace);
    let sync = eventually(&received, "the sync step around it", |spans| {
        spans
            .iter()
            .find(|s| s.span_id == outbound.parent_span_id)
            .cloned()
    })
    .await;
    assert_eq!(sync.name, "sync");

    // Spans of long-lived tasks are logged but never exported; every span names Roster.
    let all = received.spans();
    for (service, span) in &all {
        assert_eq!(service, "roster");
        assert!(
            !["writer", "projector", "provider"].contains(&span.name.as_str()),
            "a task span was exported: {span:?}"
        );
    }
}
