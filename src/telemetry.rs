//! Where spans and log lines go: log lines on standard error, and, when an OTLP endpoint is
//! configured, the same spans exported to an OpenTelemetry collector over OTLP/HTTP, with W3C
//! trace context (`traceparent`) taken from the requests Roster serves and given to the
//! remotes it calls.
//!
//! Spans of long-lived tasks (a directory's writer, a partition's projector, a provider's
//! consumer) carry the target [`TASK`]: they give log lines their context but are not
//! exported, so that each request, command batch, projection batch and sync step is a trace
//! of its own rather than one more child of a span that lasts as long as the process.

use crate::config::LogFormat;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HeaderExtractor, HeaderInjector, HttpError};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::io::IsTerminal;
use std::time::Duration;
use tracing::{Level, Metadata};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The target of spans that last as long as a task: logged, never exported.
pub const TASK: &str = "roster::task";

/// The environment variables of the OpenTelemetry specification that name a traces endpoint.
const OTEL_ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// How long one export to the collector may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The exporter, kept to flush what is buffered when Roster stops.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports what is still buffered, waiting at most the export timeout.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // The exporter's thread hands each request to this runtime; wait off its workers.
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = flushed {
            eprintln!("warning: traces still buffered were not exported: {e}");
        }
    }
}

/// The settings that decide where traces go.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(
        "otlp_endpoint must be the http:// or https:// URL of an OTLP/HTTP collector \
         (such as http://127.0.0.1:4318), not {0:?}"
    )]
    Endpoint(String),
    #[error("the OTLP exporter could not be built: {0}")]
    Exporter(String),
}

/// Installs the global subscriber: log lines filtered by `ROSTER_LOG` (default `info`) in
/// `format`, and an OTLP exporter when `endpoint` is set or the environment names one
/// (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_SDK_DISABLED=true`
/// turns it off). Call it once, inside the Tokio runtime.
///
/// Fails when the endpoint is not an http(s) URL.
pub fn init(format: LogFormat, endpoint: Option<&str>) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_from_env("ROSTER_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never into a file or a pipe.
        .with_ansi(std::io::stderr().is_terminal());
    let lines = match format {
        LogFormat::Json => lines.json().boxed(),
        LogFormat::Pretty => lines.boxed(),
    };
    let provider = match wanted(endpoint) {
        Some(endpoint) => Some(exporter(endpoint)?),
        None => None,
    };
    let export = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("roster"))
            .with_filter(tracing_subscriber::filter::filter_fn(exported))
    });
    tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(export)
        .init();
    Ok(Telemetry { provider })
}

/// Where to export to: `Some(Some(url))` for the setting, `Some(None)` for the environment's.
fn wanted(setting: Option<&str>) -> Option<Option<&str>> {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if disabled {
        return None;
    }
    match setting {
        Some(url) => Some(Some(url)),
        None => OTEL_ENDPOINT_VARS
            .iter()
            .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()))
            .then_some(None),
    }
}

/// The traces URL of a collector's base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` is read.
fn traces_url(base: &str) -> Result<String, TelemetryError> {
    let url = url::Url::parse(base).map_err(|_| TelemetryError::Endpoint(base.to_owned()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(TelemetryError::Endpoint(base.to_owned()));
    }
    let path = url.path().trim_end_matches('/');
    let mut url = url.clone();
    if !path.ends_with("/v1/traces") {
        url.set_path(&format!("{path}/v1/traces"));
    }
    Ok(url.to_string())
}

fn exporter(endpoint: Option<&str>) -> Result<SdkTracerProvider, TelemetryError> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?,
        runtime: tokio::runtime::Handle::current(),
    };
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_timeout(EXPORT_TIMEOUT);
    if let Some(base) = endpoint {
        builder = builder.with_endpoint(traces_url(base)?);
    }
    let exporter = builder
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("roster");
    }
    let resource = resource
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// What the exporter sees: Roster's spans at debug and above (but not task spans), and its
/// events at info and above, which become events on their span.
fn exported(meta: &Metadata<'_>) -> bool {
    let ours = meta.target().starts_with("roster") && meta.target() != TASK;
    let level = if meta.is_span() {
        Level::DEBUG
    } else {
        Level::INFO
    };
    ours && *meta.level() <= level
}

/// Makes `span` continue the trace a request's `traceparent` names, if it names one.
pub fn continue_trace(span: &tracing::Span, headers: &::http::HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    // Fails only when nothing exports spans; there is then no trace to continue.
    let _ = span.set_parent(parent);
}

/// The `traceparent` (and `tracestate`) headers that make a remote's work part of `span`'s
/// trace; empty when nothing exports spans.
pub fn trace_headers(span: &tracing::Span) -> ::http::HeaderMap {
    let mut headers = ::http::HeaderMap::new();
    TraceContextPropagator::new()
        .inject_context(&span.context(), &mut HeaderInjector(&mut headers));
    headers
}

/// The exporter's HTTP client: Roster's own reqwest (rustls, no second TLS stack), each
/// request run on the Tokio runtime while the exporter's thread waits for it.
#[derive(Debug)]
struct Client {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Client {
    async fn send_bytes(
        &self,
        request: ::http::Request<bytes::Bytes>,
    ) -> Result<::http::Response<bytes::Bytes>, HttpError> {
        let http = self.http.clone();
        let exchange = async move {
            let request = reqwest::Request::try_from(request)?;
            let response = http.execute(request).await?;
            let mut answer = ::http::Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                *headers = response.headers().clone();
            }
            let body = response.bytes().await?;
            Ok::<_, HttpError>(answer.body(body)?)
        };
        self.runtime.spawn(exchange).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_gets_the_traces_path_as_the_environment_variable_would() {
        let url = |s| traces_url(s).unwrap();
        assert_eq!(
            url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            url("https://otel.example/"),
            "https://otel.example/v1/traces"
        );
        assert_eq!(
            url("https://otel.example/tenant-a"),
            "https://otel.example/tenant-a/v1/traces"
        );
        assert_eq!(url("http://c:4318/v1/traces"), "http://c:4318/v1/traces");
        for bad in [
            "127.0.0.1:4318",
            "grpc://c:4317",
            "not a url",
            "file:///tmp/x",
        ] {
            assert!(
                matches!(traces_url(bad), Err(TelemetryError::Endpoint(_))),
                "{bad}"
            );
        }
    }
}
