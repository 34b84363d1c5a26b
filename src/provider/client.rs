//! The HTTP side of a provider: authentication (static bearer token, HTTP basic, OAuth2
//! client credentials or password grant, the token cached until it expires), the remote's
//! capabilities (its ServiceProviderConfig, cached for an hour), and sending a request with
//! retries. Credentials never appear in logs or `Debug` output.

use super::compat::{Capabilities, Mode};
use super::plan::Request;
use super::retry::{retryable, wait_after, Backoff};
use crate::auth::Secret;
use reqwest::{header, StatusCode, Url};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// How long a fetched ServiceProviderConfig is trusted.
pub const CAPABILITIES_TTL: Duration = Duration::from_secs(3600);

/// A token is renewed this long before the expiry its endpoint announced.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);

/// How the provider proves who it is to the remote.
#[derive(Clone, Debug)]
pub enum Auth {
    Bearer(Secret),
    Basic {
        username: String,
        password: Secret,
    },
    OAuth2 {
        token_url: Url,
        client_id: String,
        client_secret: Secret,
        grant: Grant,
        /// Sent with every token request besides the grant's own parameters (a `scope`, an
        /// `audience`, a `resource`...).
        extra: Vec<(String, String)>,
    },
}

/// The OAuth2 grant a provider uses (RFC 6749 §4.4 and §4.3).
#[derive(Clone, Debug)]
pub enum Grant {
    ClientCredentials,
    Password { username: String, password: Secret },
}

/// Why a request did not succeed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum RemoteError {
    /// The remote answered with an error; `detail` is its SCIM error detail (or the start of
    /// the body).
    #[error("{status}: {detail}")]
    Status { status: StatusCode, detail: String },
    /// No answer: connection refused, reset, timed out; the request and the cause.
    #[error("no answer: {0}")]
    Transport(String),
    /// The token endpoint refused or failed.
    #[error("token request: {0}")]
    Token(String),
}

impl RemoteError {
    /// A 400 with scimType `noTarget` (RFC 7644 §3.12): the path matched nothing, e.g. a
    /// member removal the remote had already done.
    pub fn is_no_target(&self) -> bool {
        matches!(self, RemoteError::Status { status, detail }
            if *status == StatusCode::BAD_REQUEST
                && (detail.ends_with("(scimType noTarget)") || detail == "scimType noTarget"))
    }

    /// Whether trying again later may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            RemoteError::Status { status, .. } => retryable(*status),
            RemoteError::Transport(_) | RemoteError::Token(_) => true,
        }
    }
}

/// A request that got no answer, named with its URL (without its query) and the innermost
/// cause, such as "GET http://10.0.0.5/scim/v2/Users: Connection refused (os error 111)", and
/// what a handshake of Roster's own found, if one was made.
fn no_answer(
    method: &reqwest::Method,
    url: &Url,
    e: &reqwest::Error,
    found: Option<String>,
) -> RemoteError {
    let mut at = url.clone();
    at.set_query(None);
    let cause = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        let mut cause: &dyn std::error::Error = e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        cause.to_string()
    };
    match found {
        Some(found) => RemoteError::Transport(format!(
            "{method} {at}: {cause}; a TLS handshake of Roster's own: {found}"
        )),
        None => RemoteError::Transport(format!("{method} {at}: {cause}")),
    }
}

/// Whether rustls gave the cause of `e` (a certificate refused, an alert received).
fn tls_caused(e: &reqwest::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        let inner = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|e| e as &(dyn std::error::Error + 'static));
        if c.is::<rustls::Error>() || inner.is_some_and(|i| i.is::<rustls::Error>()) {
            return true;
        }
        cause = c.source();
    }
    false
}

/// A successful answer.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: StatusCode,
    pub body: Option<Value>,
}

/// One request as sent, for the provider's recent-requests log.
#[derive(Clone, Debug, PartialEq)]
pub struct Sent {
    pub method: String,
    pub path: String,
    /// None when no answer came.
    pub status: Option<u16>,
    pub duration: Duration,
}

/// Waits between attempts; the real one sleeps, tests record instead.
pub type Sleeper = Arc<
    dyn Fn(Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// A remote SCIM server as one provider talks to it.
pub struct Remote {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    mode: Mode,
    backoff: Backoff,
    /// Attempts per request, the first included.
    attempts: u32,
    sleeper: Sleeper,
    token: tokio::sync::Mutex<Option<(Secret, Instant)>>,
    capabilities: Mutex<Option<(Capabilities, Instant)>>,
    recent: Mutex<std::collections::VecDeque<Sent>>,
    /// The HTTP client's TLS configuration, when it was named ([`Remote::with_tls`]).
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// How many sent requests [`Remote::recent`] keeps.
const RECENT: usize = 100;

/// The remote's SCIM error `detail`, with its `scimType` (RFC 7644 §3.12) when it gives one,
/// or the start of the body.
fn detail(status: StatusCode, text: &str) -> String {
    let scim = serde_json::from_str::<Value>(text).ok();
    let field = |name: &str| {
        scim.as_ref()
            .and_then(|v| v.get(name).and_then(Value::as_str).map(str::to_owned))
    };
    match (field("detail"), field("scimType")) {
        (Some(d), Some(t)) => format!("{d} (scimType {t})"),
        (Some(d), None) => d,
        (None, Some(t)) => format!("scimType {t}"),
        (None, None) => {
            let t: String = text.chars().take(200).collect();
            if t.is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                t
            }
        }
    }
}

impl Remote {
    /// A remote at `base` (its SCIM base URL). `timeout` bounds each attempt.
    ///
    /// Fails only if the HTTP client cannot be built (no TLS backend).
    pub fn new(base: Url, auth: Auth, mode: Mode, timeout: Duration) -> Result<Remote, String> {
        Self::with_builder(base, auth, mode, timeout, reqwest::Client::builder())
    }

    /// As [`Remote::new`], its HTTP client made from `builder` (which carries the provider's
    /// own TLS configuration, `super::tls::client_config`).
    pub fn with_builder(
        base: Url,
        auth: Auth,
        mode: Mode,
        timeout: Duration,
        builder: reqwest::ClientBuilder,
    ) -> Result<Remote, String> {
        let http = builder
            .timeout(timeout)
            .user_agent(concat!("roster/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Remote {
            http,
            base,
            auth,
            mode,
            backoff: Backoff::default(),
            attempts: 5,
            sleeper: Arc::new(|d| Box::pin(tokio::time::sleep(d))),
            token: tokio::sync::Mutex::new(None),
            capabilities: Mutex::new(None),
            recent: Mutex::new(std::collections::VecDeque::new()),
            tls: None,
        })
    }

    /// Names the TLS configuration the HTTP client was given, for [`super::tls::diagnose`] to
    /// make its own handshake with when a connection to an `https` remote closes unexplained.
    pub fn with_tls(mut self, tls: Arc<rustls::ClientConfig>) -> Remote {
        self.tls = Some(tls);
        self
    }

    /// Replaces how attempts are spaced and waited for (tests).
    pub fn with_retries(mut self, attempts: u32, backoff: Backoff, sleeper: Sleeper) -> Remote {
        self.attempts = attempts.max(1);
        self.backoff = backoff;
        self.sleeper = sleeper;
        self
    }

    /// The requests sent lately, oldest first.
    pub fn recent(&self) -> Vec<Sent> {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn record(&self, sent: Sent) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(sent);
    }

    /// Forgets the cached capabilities and token (the provider's configuration changed).
    pub async fn invalidate(&self) {
        *self.capabilities.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.token.lock().await = None;
    }

    /// What the remote supports, as the compatibility mode sees it: its ServiceProviderConfig
    /// fetched at most once an hour. A remote whose configuration cannot be read is assumed
    /// to support nothing optional (and asked again next time).
    pub async fn capabilities(&self) -> Capabilities {
        if let Some((c, at)) = *self.capabilities.lock().unwrap_or_else(|p| p.into_inner()) {
            if at.elapsed() < CAPABILITIES_TTL {
                return c;
            }
        }
        match self.send(&self.config_request()).await {
            Ok(Response {
                body: Some(config), ..
            }) => {
                let c = self
                    .mode
                    .effective(Capabilities::from_service_provider_config(&config));
                *self.capabilities.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((c, Instant::now()));
                c
            }
            Ok(_) | Err(_) => {
                tracing::warn!(base = %self.base, "the remote's ServiceProviderConfig is unreadable; assuming no optional features");
                self.mode.effective(Capabilities::default())
            }
        }
    }

    /// Asks once, with the provider's credentials, for the remote's ServiceProviderConfig:
    /// whether the remote answers as a SCIM server, for a check when a provider is created
    /// or changed.
    ///
    /// Fails with why not: no answer (with the URL and the cause), a refused credential, an
    /// error status, or an answer that is not a SCIM configuration.
    pub async fn check(&self) -> Result<(), RemoteError> {
        let (answer, _) = self.send_once(&self.config_request()).await;
        match answer?.body {
            Some(Value::Object(o)) if o.contains_key("schemas") || o.contains_key("patch") => {
                Ok(())
            }
            _ => Err(RemoteError::Status {
                status: StatusCode::BAD_GATEWAY,
                detail: format!(
                    "{} did not answer with a ServiceProviderConfig: is base_url the SCIM base \
                     URL (ending in /v2 or /scim/v2 for most applications)?",
                    self.base
                        .join(self.config_request().path[0].as_str())
                        .map_or_else(|_| self.base.to_string(), |u| u.to_string())
                ),
            }),
        }
    }

    fn config_request(&self) -> Request {
        let path = self
            .mode
            .service_provider_config_path()
            .trim_start_matches('/');
        Request {
            method: reqwest::Method::GET,
            path: vec![path.to_owned()],
            query: Vec::new(),
            body: None,
        }
    }

    /// Sends `request`, retrying what is worth retrying (honouring `Retry-After` on 429 and
    /// 503), up to the configured number of attempts.
    ///
    /// Fails with the last error when every attempt failed or the remote refused the request.
    pub async fn send(&self, request: &Request) -> Result<Response, RemoteError> {
        let mut attempt = 1;
        loop {
            let span = tracing::info_span!(
                "remote_request",
                otel.kind = "client",
                method = %request.method,
                attempt,
                status = tracing::field::Empty,
            );
            let (result, retry_after) = self.send_once(request).instrument(span).await;
            let err = match result {
                Ok(r) => return Ok(r),
                Err(e) => e,
            };
            if !err.retryable() || attempt >= self.attempts {
                return Err(err);
            }
            let wait = match &err {
                RemoteError::Status { status, .. } => wait_after(
                    *status,
                    retry_after.as_deref(),
                    attempt,
                    &self.backoff,
                    chrono::Utc::now(),
                    &mut rand::rng(),
                ),
                _ => self.backoff.delay(attempt, &mut rand::rng()),
            };
            tracing::info!(error = %err, attempt, wait_ms = wait.as_millis() as u64, "remote request failed; retrying");
            (self.sleeper)(wait).await;
            attempt += 1;
        }
    }

    /// What a handshake of Roster's own says of an `https` remote that left a request without
    /// an answer and without a TLS error of its own ([`super::tls::diagnose`]).
    async fn why_closed(&self, url: &Url, e: &reqwest::Error) -> Option<String> {
        let tls = self.tls.as_ref()?;
        if url.scheme() != "https" || e.is_timeout() || tls_caused(e) {
            return None;
        }
        super::tls::diagnose(url, tls.clone()).await
    }

    /// One attempt; also returns the `Retry-After` header of an error answer.
    async fn send_once(
        &self,
        request: &Request,
    ) -> (Result<Response, RemoteError>, Option<String>) {
        let started = Instant::now();
        let url = request.url(&self.base);
        let mut renewed = false;
        loop {
            let mut builder = self
                .http
                .request(request.method.clone(), url.clone())
                .header(header::ACCEPT, "application/scim+json, application/json");
            if let Some(body) = &request.body {
                builder = builder
                    .header(header::CONTENT_TYPE, "application/scim+json")
                    .body(body.to_string());
            }
            builder = match self.authorize(builder).await {
                Ok(b) => b,
                Err(e) => return (Err(e), None),
            };
            // The remote's own traces continue this request's (W3C trace context).
            let traced = crate::telemetry::trace_headers(&tracing::Span::current());
            let answer = builder.headers(traced).send().await;
            let sent = |status: Option<u16>| Sent {
                method: request.method.to_string(),
                path: url.path().to_owned(),
                status,
                duration: started.elapsed(),
            };
            let response = match answer {
                Ok(r) => r,
                Err(e) => {
                    self.record(sent(None));
                    let found = self.why_closed(&url, &e).await;
                    return (Err(no_answer(&request.method, &url, &e, found)), None);
                }
            };
            let status = response.status();
            tracing::Span::current().record("status", status.as_u16());
            self.record(sent(Some(status.as_u16())));
            // An OAuth2 token the remote no longer accepts: renew it once.
            if status == StatusCode::UNAUTHORIZED
                && matches!(self.auth, Auth::OAuth2 { .. })
                && !renewed
            {
                *self.token.lock().await = None;
                renewed = true;
                continue;
            }
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let text = match response.text().await {
                Ok(t) => t,
                Err(e) => return (Err(no_answer(&request.method, &url, &e, None)), None),
            };
            if !status.is_success() {
                let detail = detail(status, &text);
                return (Err(RemoteError::Status { status, detail }), retry_after);
            }
            let body = if text.trim().is_empty() {
                None
            } else {
                match serde_json::from_str(&text) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        return (
                            Err(RemoteError::Status {
                                status: StatusCode::BAD_GATEWAY,
                                detail: format!(
                                    "the remote answered {status} with invalid JSON: {e}"
                                ),
                            }),
                            None,
                        )
                    }
                }
            };
            return (Ok(Response { status, body }), None);
        }
    }

    async fn authorize(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, RemoteError> {
        Ok(match &self.auth {
            Auth::Bearer(token) => builder.bearer_auth(token.expose()),
            Auth::Basic { username, password } => {
                builder.basic_auth(username, Some(password.expose()))
            }
            Auth::OAuth2 { .. } => builder.bearer_auth(self.oauth_token().await?.expose()),
        })
    }

    /// The cached OAuth2 access token, or a new one from the token endpoint.
    async fn oauth_token(&self) -> Result<Secret, RemoteError> {
        let Auth::OAuth2 {
            token_url,
            client_id,
            client_secret,
            grant,
            extra,
        } = &self.auth
        else {
            return Err(RemoteError::Token("not an OAuth2 provider".into()));
        };
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let mut form: Vec<(&str, &str)> = Vec::new();
        match grant {
            Grant::ClientCredentials => form.push(("grant_type", "client_credentials")),
            Grant::Password { username, password } => {
                form.push(("grant_type", "password"));
                form.push(("username", username));
                form.push(("password", password.expose()));
            }
        }
        form.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let request = crate::oauth::TokenRequest {
            url: token_url,
            client_id,
            client_secret: client_secret.expose(),
            form,
        };
        let crate::oauth::Token {
            value: token,
            lifetime,
        } = crate::oauth::request(&self.http, request)
            .await
            .map_err(|e| RemoteError::Token(e.to_string()))?;
        let until = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN);
        *cached = Some((token.clone(), until));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_detail_carries_the_scim_type_and_no_target_is_recognised() {
        let text = r#"{"status": "400", "scimType": "noTarget", "detail": "no member matches"}"#;
        let d = detail(StatusCode::BAD_REQUEST, text);
        assert_eq!(d, "no member matches (scimType noTarget)");
        let e = RemoteError::Status {
            status: StatusCode::BAD_REQUEST,
            detail: d,
        };
        assert!(e.is_no_target());
        let other = RemoteError::Status {
            status: StatusCode::BAD_REQUEST,
            detail: detail(StatusCode::BAD_REQUEST, r#"{"scimType": "invalidValue"}"#),
        };
        assert!(!other.is_no_target());
        assert_eq!(detail(StatusCode::BAD_GATEWAY, ""), "Bad Gateway");
        assert_eq!(detail(StatusCode::BAD_REQUEST, "plain text"), "plain text");
    }
}
