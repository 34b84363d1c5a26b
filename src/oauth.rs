//! One OAuth 2.0 token request (RFC 6749 §4.3 and §4.4): the client authenticated with HTTP
//! Basic, the grant's parameters in a form body, the access token and its lifetime read from
//! the JSON answer. Used by providers (tokens for remote SCIM servers) and by the Kafka log
//! (OAUTHBEARER tokens for the brokers). Secrets never appear in errors.

use crate::auth::Secret;
use reqwest::{header, Url};
use serde_json::Value;
use std::time::Duration;

/// The lifetime assumed when the endpoint announces none (`expires_in` is optional).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// What to ask a token endpoint for.
pub struct TokenRequest<'a> {
    pub url: &'a Url,
    pub client_id: &'a str,
    pub client_secret: &'a str,
    /// The grant's parameters (`grant_type`, ...) and any extra ones (`scope`, `audience`).
    pub form: Vec<(&'a str, &'a str)>,
}

/// An access token and how long the endpoint said it lasts.
pub struct Token {
    pub value: Secret,
    pub lifetime: Duration,
}

/// Why no token was had: the endpoint's status and RFC 6749 §5.2 `error` code, or the
/// transport failure. Never the secret, never the rest of the body.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(String);

impl From<String> for TokenError {
    fn from(why: String) -> TokenError {
        TokenError(why)
    }
}

/// Asks the endpoint for a token.
pub async fn request(http: &reqwest::Client, req: TokenRequest<'_>) -> Result<Token, TokenError> {
    let body = Url::parse_with_params("form:", &req.form)
        .ok()
        .and_then(|u| u.query().map(str::to_owned))
        .unwrap_or_default();
    let answer = http
        .post(req.url.clone())
        .basic_auth(req.client_id, Some(req.client_secret))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| TokenError(e.without_url().to_string()))?;
    let status = answer.status();
    let text = answer
        .text()
        .await
        .map_err(|e| TokenError(e.without_url().to_string()))?;
    if !status.is_success() {
        // RFC 6749 §5.2: `error` and maybe `error_description`; never echo anything else.
        let why = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        return Err(TokenError(format!("{status} {why}")));
    }
    let v: Value = serde_json::from_str(&text)
        .map_err(|_| TokenError("the token endpoint answered invalid JSON".into()))?;
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| TokenError("no access_token in the answer".into()))?;
    let lifetime = v
        .get("expires_in")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_LIFETIME, Duration::from_secs);
    Ok(Token {
        value: Secret::new(token),
        lifetime,
    })
}
