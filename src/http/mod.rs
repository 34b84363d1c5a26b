//! The HTTP surface: SCIM sources under `/source/scim/<slug>/v2`, the admin API under
//! `/admin/v1`, the web console under `/console/`, and `/healthz` and `/readyz`. Building the router does no I/O, so handlers can
//! be driven with `oneshot` in tests.

mod admin;
mod audit;
pub mod body;
mod console;
mod discovery;
mod erasure;
pub mod error;
mod guard;
mod linger;
mod mappings;
mod openapi;
mod peer;
mod providers;
mod rates;
mod scim;
mod select;
pub mod serve;
mod source_mappings;
mod sources;
pub mod tls;

pub use console::Sessions;
pub use rates::SourceRates;

use crate::config::Settings;
use crate::metrics::{Metrics, RequestLabels, RouteLabels};
use crate::pipeline::Writers;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use error::ScimError;
use peer::client;
pub use peer::{Peer, TrustedProxies};
use roster_projections::ProjectionStore;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// What every handler can reach. Cloned for every extractor and middleware of every request,
/// so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The state behind [`AppState`].
pub struct Shared {
    pub store: Arc<dyn ProjectionStore>,
    pub writers: Writers,
    pub settings: Arc<Settings>,
    /// SHA-256 of the configured admin token, if one is configured.
    pub admin_token_hash: Option<String>,
    /// Per log partition, the position the views reflect.
    pub projected: Vec<watch::Receiver<u64>>,
    /// The log itself, for readiness.
    pub log: Arc<dyn crate::log::EventLog>,
    pub metrics: Arc<Metrics>,
    /// This process's view rebuild, if one was started.
    pub rebuilds: crate::rebuild::Rebuilds,
    /// The outbound providers this process runs.
    pub providers: Arc<crate::provider::manager::Providers>,
    /// Seals providers' credentials.
    pub secret_key: crate::sealing::SecretKey,
    /// Hashes user passwords, a bounded number at a time.
    pub passwords: crate::passwords::PasswordHasher,
    /// Each source's request rate.
    pub rates: SourceRates,
    /// The audit trail's index.
    pub audit: Arc<crate::audit::Audit>,
    /// Records refused requests and reads of the audit trail.
    pub access: Arc<crate::audit::access::AccessLog>,
    /// The data keys personal data is sealed with; erasure destroys one.
    pub keys: Arc<crate::keys::Keyring>,
    /// The web console's signed-in sessions.
    pub sessions: Sessions,
}

impl Shared {
    /// The positions the views reflect, summed over partitions, and how far behind the end
    /// of the log (as this process knows it) they are.
    pub fn progress(&self) -> (u64, u64) {
        let mut position = 0;
        let mut lag = 0;
        for (p, projected) in self.projected.iter().enumerate() {
            let at = *projected.borrow();
            position += at;
            lag += self.log.end(p as u32).borrow().saturating_sub(at);
        }
        (position, lag)
    }

    /// Why writes cannot be served now (the log refuses them, the views do not answer, or
    /// writes wait on the log for long); None when they can.
    pub fn unready(&self) -> Option<String> {
        if !self.log.healthy() {
            Some("event log unavailable: it refuses writes".to_owned())
        } else if !self.store.healthy() {
            Some("views unavailable: PostgreSQL does not answer".to_owned())
        } else {
            self.writers
                .health()
                .stalled()
                .map(|why| format!("writes cannot be served: {why}"))
        }
    }
}

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The bearer token of the request's `Authorization` header, or "" when there is none.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> &str {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::bearer)
        .unwrap_or("")
}

/// The request id, recorded as the correlation id of the request's events. A client may send
/// its own `X-Request-Id`; one longer than 128 characters or with characters outside visible
/// ASCII is not recorded.
pub fn request_id(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
}

/// The path the client asked for (a nested router sees only the rest of it), without the
/// query.
pub fn request_path(parts: &axum::http::request::Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or(parts.uri.path(), |o| o.0.path())
        .to_owned()
}

/// Builds the whole router.
pub fn router(state: AppState) -> Router {
    let max_body = state.settings.max_body_bytes;
    let trusted = TrustedProxies(Arc::new(state.settings.trusted_proxies.clone()));
    let tracked = state.clone();
    Router::new()
        .nest(
            "/source/scim/{slug}/v2",
            scim::routes().merge(discovery::routes()),
        )
        .nest(
            openapi::BASE,
            openapi::admin_routes()
                .0
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    admin::record_refused,
                )),
        )
        .merge(console::routes().layer(middleware::from_fn_with_state(
            state.clone(),
            admin::record_refused,
        )))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::Extension(trusted))
        .layer(middleware::from_fn_with_state(state, guard::edge))
        .layer(middleware::from_fn_with_state(tracked, track))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let route = req
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or(req.uri().path(), |m| m.as_str())
                        .to_owned();
                    let request_id = req
                        .headers()
                        .get(&REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let span = tracing::info_span!(
                        "request",
                        otel.name = format!("{} {route}", req.method()),
                        otel.kind = "server",
                        method = %req.method(),
                        route,
                        request_id,
                        source = tracing::field::Empty,
                        status = tracing::field::Empty,
                    );
                    crate::telemetry::continue_trace(&span, req.headers());
                    span
                })
                .on_response(|res: &Response, latency: Duration, span: &tracing::Span| {
                    span.record("status", res.status().as_u16());
                    tracing::debug!(latency_ms = latency.as_millis() as u64, "answered");
                }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

/// Ready while writes can be served (the log takes them, the views answer, and nothing waits
/// on the log for long); reports how far the views are behind the log.
async fn readyz(State(app): State<AppState>) -> Response {
    let (position, lag) = app.progress();
    let (code, status) = match app.unready() {
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
        None => (StatusCode::OK, "ready".to_owned()),
    };
    let body = serde_json::json!({"status": status, "position": position, "lag": lag});
    (code, Json(body)).into_response()
}

/// Counts and times every request by method, route template and status (paths that match no
/// route are counted as `unmatched`, so clients cannot grow the label set), and notes when it
/// arrived for the reads it makes.
async fn track(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().to_string();
    let started = Instant::now();
    // The PostgreSQL store's cached reads need views no older than the request.
    let resp = roster_projections::pg::reads_as_of(started, next.run(req)).await;
    let labels = RouteLabels { method, route };
    app.metrics
        .request_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    let labels = RequestLabels {
        method: labels.method,
        route: labels.route,
        status: resp.status().as_u16(),
    };
    app.metrics.requests.get_or_create(&labels).inc();
    resp
}

/// Prometheus text exposition.
async fn metrics(State(app): State<AppState>) -> Response {
    let (position, lag) = app.progress();
    let body = app
        .metrics
        .render(position, position + lag, app.store.cache_counts());
    let ct = "text/plain; version=0.0.4; charset=utf-8";
    ([(axum::http::header::CONTENT_TYPE, ct)], body).into_response()
}

/// A 404 that says what the URLs look like, and what is missing from a source's URL that
/// lacks its `/v2`.
async fn not_found(uri: axum::http::Uri) -> ScimError {
    let path = uri.path();
    let detail = match path.strip_prefix("/source/scim/") {
        Some(rest) if rest.split('/').nth(1).is_none_or(|v| v != "v2") => format!(
            "no such endpoint: a source's SCIM base URL is /source/scim/<slug>/v2, and {path} \
             lacks the /v2"
        ),
        _ => "no such endpoint: SCIM clients use /source/scim/<slug>/v2/..., the admin API is \
              /admin/v1/..."
            .to_owned(),
    };
    ScimError::not_found(detail)
}

async fn method_not_allowed() -> ScimError {
    ScimError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "method not allowed on this endpoint",
    )
}
