//! A provider's configuration at the edges: shown by the admin API without its secrets, and
//! turned into a [`Remote`] (secrets opened only there). What the API takes in is
//! [`super::settings`].

use super::client::{Auth, Grant, Remote};
use super::compat::Mode;
use super::retry::Backoff;
use crate::sealing::SecretKey;
use reqwest::Url;
use roster_events::{
    ProviderAuth, ProviderConfig, ProviderGrant, ProviderMode, ProviderScope, Sealed,
};
use roster_projections::{MappingView, ProviderView};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa::ToSchema;

/// The full-sync schedule when none is given: hourly.
pub const DEFAULT_FULL_SYNC_SECS: u64 = 3600;
/// Objects carried at the same time when none is given.
pub const DEFAULT_CONCURRENCY: u32 = 8;

pub fn mode(m: ProviderMode) -> Mode {
    match m {
        ProviderMode::Default => Mode::Default,
        ProviderMode::Aws => Mode::Aws,
        ProviderMode::Slack => Mode::Slack,
        ProviderMode::Salesforce => Mode::Salesforce,
        ProviderMode::Webex => Mode::Webex,
    }
}

/// How hard a provider's client tries (from the server's settings).
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    /// Attempts per request, the first included.
    pub attempts: u32,
    pub backoff: Backoff,
    pub timeout: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            attempts: 4,
            backoff: Backoff::default(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// The client for a provider's remote, its secrets opened with `key`.
///
/// Fails when a secret does not open with this server's key or the URL is invalid.
pub fn remote(config: &ProviderConfig, key: &SecretKey, tuning: Tuning) -> Result<Remote, String> {
    let auth = open_auth(config, key)?;
    let base = Url::parse(&config.base_url).map_err(|e| format!("base_url: {e}"))?;
    let tls = super::tls::client_config(&config.tls, key)?;
    let builder = reqwest::Client::builder().use_preconfigured_tls((*tls).clone());
    let remote =
        Remote::with_builder(base, auth, mode(config.mode), tuning.timeout, builder)?.with_tls(tls);
    let sleeper: super::client::Sleeper = std::sync::Arc::new(|d| Box::pin(tokio::time::sleep(d)));
    Ok(remote.with_retries(tuning.attempts, tuning.backoff, sleeper))
}

/// The provider's authentication with its secrets opened by `key`.
///
/// Fails when a secret does not open with this key or the token URL is invalid.
pub fn open_auth(config: &ProviderConfig, key: &SecretKey) -> Result<Auth, String> {
    let open = |s: &Sealed| key.open(s).map_err(|e| e.to_string());
    Ok(match &config.auth {
        ProviderAuth::Bearer { token } => Auth::Bearer(open(token)?),
        ProviderAuth::Basic { username, password } => Auth::Basic {
            username: username.clone(),
            password: open(password)?,
        },
        ProviderAuth::Oauth2 {
            token_url,
            client_id,
            client_secret,
            grant,
            extra,
        } => Auth::OAuth2 {
            token_url: Url::parse(token_url).map_err(|e| format!("token_url: {e}"))?,
            client_id: client_id.clone(),
            client_secret: open(client_secret)?,
            grant: match grant {
                ProviderGrant::ClientCredentials => Grant::ClientCredentials,
                ProviderGrant::Password { username, password } => Grant::Password {
                    username: username.clone(),
                    password: open(password)?,
                },
            },
            extra: extra.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        },
    })
}

/// A base URL must be absolute http(s) without query or fragment: request paths are joined
/// below it.
pub(super) fn check_url(name: &str, text: &str) -> Result<String, String> {
    let url = Url::parse(text).map_err(|e| format!("{name} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{name} must be an http or https URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{name} must not have a query or fragment"));
    }
    // A URL is shown by the API and written to logs: credentials go in `auth`, sealed.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{name} must not carry a user name or password: put credentials in auth"
        ));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// A provider name follows the rule of source slugs (it appears in URLs).
pub fn valid_name(s: &str) -> bool {
    crate::domain::valid_slug(s)
}

/// A provider's authentication as the API shows it: everything but the secrets.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PublicAuth {
    Bearer,
    Basic {
        username: String,
    },
    Oauth2 {
        token_url: String,
        client_id: String,
        extra: BTreeMap<String, String>,
        /// `client_credentials` or `password`.
        grant: &'static str,
        /// The password grant's user.
        #[serde(skip_serializing_if = "Option::is_none")]
        username: Option<String>,
    },
}

impl PublicAuth {
    fn of(auth: &ProviderAuth) -> PublicAuth {
        match auth {
            ProviderAuth::Bearer { .. } => PublicAuth::Bearer,
            ProviderAuth::Basic { username, .. } => PublicAuth::Basic {
                username: username.clone(),
            },
            ProviderAuth::Oauth2 {
                token_url,
                client_id,
                grant,
                extra,
                ..
            } => {
                let (grant, username) = match grant {
                    ProviderGrant::ClientCredentials => ("client_credentials", None),
                    ProviderGrant::Password { username, .. } => {
                        ("password", Some(username.clone()))
                    }
                };
                PublicAuth::Oauth2 {
                    token_url: token_url.clone(),
                    client_id: client_id.clone(),
                    extra: extra.clone(),
                    grant,
                    username,
                }
            }
        }
    }
}

/// A provider's TLS settings as the API shows them: the certificates (public), and whether a
/// client key is set (never the key).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PublicTls {
    pub ca_bundle: Option<String>,
    pub client_cert: Option<String>,
    pub client_key_set: bool,
}

/// A provider's configuration as the API shows it, secrets left out.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PublicConfig {
    pub name: String,
    pub base_url: String,
    pub auth: PublicAuth,
    pub mode: ProviderMode,
    pub scope: ProviderScope,
    pub full_sync_interval_secs: u64,
    pub concurrency: u32,
    pub deactivate: bool,
    pub dry_run: bool,
    pub enabled: bool,
    pub tls: PublicTls,
    pub mappings: Vec<String>,
}

impl PublicConfig {
    pub fn of(c: &ProviderConfig) -> PublicConfig {
        PublicConfig {
            name: c.name.clone(),
            base_url: c.base_url.clone(),
            auth: PublicAuth::of(&c.auth),
            mode: c.mode,
            scope: c.scope.clone(),
            full_sync_interval_secs: c.full_sync_interval_secs,
            concurrency: c.concurrency,
            deactivate: c.deactivate,
            dry_run: c.dry_run,
            enabled: c.enabled,
            tls: PublicTls {
                ca_bundle: c.tls.ca_bundle.clone(),
                client_cert: c.tls.client_cert.clone(),
                client_key_set: c.tls.client_key.is_some(),
            },
            mappings: c.mappings.clone(),
        }
    }
}

/// What makes a change of configuration call for a full sync: the remote, the scope, what
/// deletes mean, whether anything is really sent, and the property mappings applied (their
/// expressions, in order).
pub fn sync_fingerprint(c: &ProviderConfig, mappings: &[MappingView]) -> String {
    let base = json!([c.base_url, c.mode, c.scope, c.deactivate, c.dry_run]);
    if mappings.is_empty() {
        // As before mappings existed: no full sync after an upgrade.
        return base.to_string();
    }
    let applied: Vec<Value> = mappings
        .iter()
        .map(|m| json!([m.mapping.name, m.mapping.expression]))
        .collect();
    json!([base, applied]).to_string()
}

/// The mappings provider `p` applies, in its order, from every directory's mappings (as
/// `ProjectionStore::mappings` gives them): those of its own directory it names. One that is
/// not there is left out; the provider then fails to start, naming it.
pub fn applied_mappings(p: &ProviderView, defined: &[(String, MappingView)]) -> Vec<MappingView> {
    p.config
        .mappings
        .iter()
        .filter_map(|name| {
            defined
                .iter()
                .find(|(d, m)| *d == p.directory && &m.mapping.name == name)
        })
        .map(|(_, m)| m.clone())
        .collect()
}

/// A compatibility mode as stored and shown (`default`, `aws`, ...).
pub fn mode_name(mode: ProviderMode) -> String {
    serde_json::to_value(mode)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
