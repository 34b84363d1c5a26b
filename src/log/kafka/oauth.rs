//! OAUTHBEARER tokens for every Kafka client of the process: fetched from the OpenID Connect
//! token endpoint by the client-credentials grant before the first client connects, renewed
//! in the background before they expire, and handed to librdkafka when it asks
//! (`ClientContext::generate_oauth_token`), which never waits on the network.

use super::security::OAuthGrant;
use crate::auth::Secret;
use crate::oauth::{self, TokenError, TokenRequest};
use rdkafka::client::OAuthToken;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long one token request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A renewal starts once this share of a token's lifetime has passed (librdkafka asks for a
/// new token at 80%).
const RENEW_AT: f64 = 0.75;

/// The shortest wait between two renewals, whatever lifetime the endpoint announces: short
/// enough that even a one-second token is renewed before it expires, long enough that an
/// endpoint announcing no lifetime at all is not asked in a busy loop.
const MIN_WAIT: Duration = Duration::from_millis(250);

/// The wait before a failed renewal is tried again, while the current token still holds.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The current token of the process and the grant that renews it.
pub(crate) struct OAuthTokens {
    grant: OAuthGrant,
    http: reqwest::Client,
    current: Mutex<Current>,
}

struct Current {
    token: Option<(Secret, SystemTime)>,
    /// Why the last request failed, until one succeeds.
    failure: Option<TokenError>,
}

impl OAuthTokens {
    /// Gets the first token and starts renewing it. Fails with the endpoint's answer when it
    /// gives none, so that a wrong secret stops the start instead of every connection.
    pub(crate) async fn start(grant: OAuthGrant) -> Result<Arc<OAuthTokens>, TokenError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| TokenError::from(format!("building the HTTP client: {e}")))?;
        let tokens = Arc::new(OAuthTokens {
            grant,
            http,
            current: Mutex::new(Current {
                token: None,
                failure: None,
            }),
        });
        let lifetime = tokens.renew().await?;
        tokio::spawn(renewing(Arc::downgrade(&tokens), lifetime));
        Ok(tokens)
    }

    /// Asks the endpoint for a token and keeps it; its lifetime.
    async fn renew(&self) -> Result<Duration, TokenError> {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &self.grant.scope {
            form.push(("scope", scope.as_str()));
        }
        let request = TokenRequest {
            url: &self.grant.token_url,
            client_id: &self.grant.client_id,
            client_secret: self.grant.client_secret.expose(),
            form,
        };
        let answer = oauth::request(&self.http, request).await;
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        match answer {
            Ok(token) => {
                let expires = SystemTime::now() + token.lifetime;
                current.token = Some((token.value, expires));
                current.failure = None;
                Ok(token.lifetime)
            }
            Err(e) => {
                current.failure = Some(e.clone());
                Err(e)
            }
        }
    }

    /// The current token for librdkafka, while it holds; otherwise why there is none.
    pub(crate) fn token(&self) -> Result<OAuthToken, TokenError> {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let (token, expires) = match &current.token {
            Some((token, expires)) if *expires > SystemTime::now() => (token, *expires),
            _ => {
                let why = current.failure.as_ref().map_or_else(
                    || "the last token expired".to_owned(),
                    |e| format!("the token endpoint gave none ({e})"),
                );
                return Err(TokenError::from(format!(
                    "no OAUTHBEARER token from kafka_oauth_token_url: {why}"
                )));
            }
        };
        let lifetime_ms = expires
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Ok(OAuthToken {
            token: token.expose().to_owned(),
            principal_name: self.grant.client_id.clone(),
            lifetime_ms,
        })
    }
}

/// The token source the security settings call for: none unless the mechanism is
/// OAUTHBEARER. Fails when the first token cannot be had.
pub(crate) async fn tokens(
    security: &super::KafkaSecurity,
) -> Result<Option<Arc<OAuthTokens>>, String> {
    let Some(grant) = security.oauth_grant().map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let url = grant.token_url.to_string();
    OAuthTokens::start(grant).await.map(Some).map_err(|e| {
        format!(
            "no OAUTHBEARER token could be had from kafka_oauth_token_url ({url}): {e}; check \
             kafka_oauth_client_id, kafka_oauth_client_secret and kafka_oauth_scope"
        )
    })
}

/// Renews the token before it expires, for as long as a client holds the source.
async fn renewing(tokens: Weak<OAuthTokens>, mut lifetime: Duration) {
    let mut wait = lifetime.mul_f64(RENEW_AT).max(MIN_WAIT);
    loop {
        tokio::time::sleep(wait).await;
        let Some(tokens) = tokens.upgrade() else {
            return;
        };
        match tokens.renew().await {
            Ok(next) => {
                lifetime = next;
                wait = lifetime.mul_f64(RENEW_AT).max(MIN_WAIT);
            }
            Err(e) => {
                tracing::warn!(error = %e, "renewing the Kafka OAUTHBEARER token failed; retrying");
                wait = RETRY_AFTER;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A token endpoint whose tokens last two seconds, numbered from 1, that refuses every
    /// request once `refusing` is set.
    async fn endpoint(refusing: Arc<std::sync::atomic::AtomicBool>) -> (url::Url, Arc<AtomicU32>) {
        let issued = Arc::new(AtomicU32::new(0));
        let count = issued.clone();
        let handler = move || {
            let (count, refusing) = (count.clone(), refusing.clone());
            async move {
                if refusing.load(Ordering::SeqCst) {
                    let body = serde_json::json!({"error": "invalid_client"});
                    return (axum::http::StatusCode::UNAUTHORIZED, axum::Json(body));
                }
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                let body = serde_json::json!({"access_token": format!("t{n}"), "expires_in": 2});
                (axum::http::StatusCode::OK, axum::Json(body))
            }
        };
        let app = axum::Router::new().route("/token", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url.parse().unwrap(), issued)
    }

    fn grant(token_url: url::Url) -> OAuthGrant {
        OAuthGrant {
            token_url,
            client_id: "roster".into(),
            client_secret: Secret::new("s3cret".to_owned()),
            scope: None,
        }
    }

    #[tokio::test]
    async fn a_token_is_renewed_before_it_expires_and_a_failed_renewal_is_told() {
        let refusing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (url, issued) = endpoint(refusing.clone()).await;
        let tokens = OAuthTokens::start(grant(url)).await.unwrap();
        let first = tokens.token().unwrap();
        assert_eq!(first.token, "t1");
        assert_eq!(first.principal_name, "roster");
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert!(first.lifetime_ms > now_ms && first.lifetime_ms <= now_ms + 2_000);

        // Renewed in the background: a later token, not the first one again.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while issued.load(Ordering::SeqCst) < 2 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            issued.load(Ordering::SeqCst) >= 2,
            "the token was not renewed"
        );
        assert_ne!(tokens.token().unwrap().token, "t1");

        // Once the endpoint refuses, the last token runs out and librdkafka is told why.
        refusing.store(true, Ordering::SeqCst);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let why = loop {
            match tokens.token() {
                Err(e) => break e.to_string(),
                Ok(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Ok(_) => panic!("a token outlived its lifetime"),
            }
        };
        assert!(
            why.contains("401") && why.contains("invalid_client"),
            "{why}"
        );
    }

    #[tokio::test]
    async fn a_refused_first_request_stops_the_start_with_the_endpoints_answer() {
        let refusing = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (url, _) = endpoint(refusing).await;
        let e = OAuthTokens::start(grant(url))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("401") && e.contains("invalid_client"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }
}
