//! A provider's configuration at the edges: parsed from the admin API's JSON (secrets sealed
//! on the way in), shown back without its secrets, and turned into a [`Remote`] (secrets
//! opened only there).

use super::client::{Auth, Grant, Remote};
use super::compat::Mode;
use super::retry::Backoff;
use crate::sealing::SecretKey;
use reqwest::Url;
use roster_events::{
    ProviderAuth, ProviderConfig, ProviderGrant, ProviderMode, ProviderScope, ProviderTls,
    ResourceId, Sealed,
};
use roster_projections::{MappingView, ProviderView};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

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
    let builder = super::tls::apply(reqwest::Client::builder(), &config.tls, key)?;
    let remote = Remote::with_builder(base, auth, mode(config.mode), tuning.timeout, builder)?;
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

fn str_field<'a>(body: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{name} must be a string")),
    }
}

fn bool_field(body: &Map<String, Value>, name: &str) -> Result<Option<bool>, String> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(format!("{name} must be true or false")),
    }
}

fn u64_field(body: &Map<String, Value>, name: &str) -> Result<Option<u64>, String> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{name} must be a non-negative integer")),
    }
}

/// A base URL must be absolute http(s) without query or fragment: request paths are joined
/// below it.
fn check_url(name: &str, text: &str) -> Result<String, String> {
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

/// A secret from the body, sealed; or the old one when the body leaves it out and the old
/// authentication had one under the same name.
fn secret(
    body: &Map<String, Value>,
    name: &str,
    old: Option<&Sealed>,
    key: &SecretKey,
) -> Result<Sealed, String> {
    match str_field(body, name)? {
        Some(s) if !s.is_empty() => Ok(key.seal(s)),
        _ => old
            .cloned()
            .ok_or_else(|| format!("auth.{name} is required")),
    }
}

fn parse_auth(
    v: &Value,
    old: Option<&ProviderAuth>,
    key: &SecretKey,
) -> Result<ProviderAuth, String> {
    let body = v
        .as_object()
        .ok_or_else(|| String::from("auth must be an object"))?;
    let kind = str_field(body, "type")?.ok_or_else(|| String::from("auth.type is required"))?;
    let required = |name: &str| -> Result<String, String> {
        str_field(body, name)?
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("auth.{name} is required"))
    };
    Ok(match kind {
        "bearer" => {
            let old = match old {
                Some(ProviderAuth::Bearer { token }) => Some(token),
                _ => None,
            };
            ProviderAuth::Bearer {
                token: secret(body, "token", old, key)?,
            }
        }
        "basic" => {
            let old = match old {
                Some(ProviderAuth::Basic { password, .. }) => Some(password),
                _ => None,
            };
            ProviderAuth::Basic {
                username: required("username")?,
                password: secret(body, "password", old, key)?,
            }
        }
        "oauth2" => {
            let (old_secret, old_password) = match old {
                Some(ProviderAuth::Oauth2 {
                    client_secret,
                    grant,
                    ..
                }) => (
                    Some(client_secret),
                    match grant {
                        ProviderGrant::Password { password, .. } => Some(password),
                        ProviderGrant::ClientCredentials => None,
                    },
                ),
                _ => (None, None),
            };
            let grant = match str_field(body, "grant")?.unwrap_or("client_credentials") {
                "client_credentials" => ProviderGrant::ClientCredentials,
                "password" => ProviderGrant::Password {
                    username: required("username")?,
                    password: secret(body, "password", old_password, key)?,
                },
                other => {
                    return Err(format!(
                        "auth.grant {other:?} is not client_credentials or password"
                    ))
                }
            };
            let mut extra = BTreeMap::new();
            match body.get("extra") {
                None | Some(Value::Null) => {}
                Some(Value::Object(m)) => {
                    for (k, v) in m {
                        let v = v
                            .as_str()
                            .ok_or_else(|| format!("auth.extra.{k} must be a string"))?;
                        extra.insert(k.clone(), v.to_owned());
                    }
                }
                Some(_) => return Err(String::from("auth.extra must be an object of strings")),
            }
            ProviderAuth::Oauth2 {
                token_url: check_url("auth.token_url", &required("token_url")?)?,
                client_id: required("client_id")?,
                client_secret: secret(body, "client_secret", old_secret, key)?,
                grant,
                extra,
            }
        }
        other => {
            return Err(format!(
                "auth.type {other:?} is not bearer, basic or oauth2"
            ))
        }
    })
}

fn parse_ids(v: &Value, name: &str) -> Result<Vec<ResourceId>, String> {
    let list = v
        .as_array()
        .ok_or_else(|| format!("scope.{name} must be a list of group ids"))?;
    let mut out = Vec::new();
    for item in list {
        let id = item
            .as_str()
            .and_then(|s| s.parse::<uuid::Uuid>().ok())
            .ok_or_else(|| format!("scope.{name} holds {item}, not a group id"))?;
        if !out.contains(&ResourceId(id)) {
            out.push(ResourceId(id));
        }
    }
    Ok(out)
}

fn parse_scope(v: &Value, old: &ProviderScope) -> Result<ProviderScope, String> {
    let body = v
        .as_object()
        .ok_or_else(|| String::from("scope must be an object"))?;
    for k in body.keys() {
        if !matches!(
            k.as_str(),
            "exclude_service_accounts" | "group_filter" | "access_groups"
        ) {
            return Err(format!("scope.{k} is not a scope setting"));
        }
    }
    Ok(ProviderScope {
        exclude_service_accounts: bool_field(body, "exclude_service_accounts")?
            .unwrap_or(old.exclude_service_accounts),
        group_filter: match body.get("group_filter") {
            Some(v) => parse_ids(v, "group_filter")?,
            None => old.group_filter.clone(),
        },
        access_groups: match body.get("access_groups") {
            Some(v) => parse_ids(v, "access_groups")?,
            None => old.access_groups.clone(),
        },
    })
}

const FIELDS: &[&str] = &[
    "name",
    "directory",
    "base_url",
    "auth",
    "mode",
    "scope",
    "full_sync_interval_secs",
    "concurrency",
    "deactivate",
    "dry_run",
    "enabled",
    "tls",
    "mappings",
];

/// A configuration from an admin request: a new provider's (`old` None, every required
/// field present) or a change to `old` (absent fields keep their value; an `auth` of the
/// same type without its secret keeps the secret).
///
/// Fails with a message for the operator when a field is missing, unknown or invalid.
pub fn parse(
    body: &Map<String, Value>,
    old: Option<&ProviderConfig>,
    key: &SecretKey,
) -> Result<ProviderConfig, String> {
    for k in body.keys() {
        if !FIELDS.contains(&k.as_str()) {
            return Err(format!("{k} is not a provider setting"));
        }
    }
    let name = match (str_field(body, "name")?, old) {
        (Some(n), Some(o)) if n != o.name => {
            return Err(String::from("a provider's name cannot change"))
        }
        (_, Some(o)) => o.name.clone(),
        (Some(n), None) => n.to_owned(),
        (None, None) => return Err(String::from("name is required")),
    };
    if !valid_name(&name) {
        return Err("name must be 1-63 lower-case letters, digits or hyphens".to_owned());
    }
    let base_url = match (str_field(body, "base_url")?, old) {
        (Some(u), _) => check_url("base_url", u)?,
        (None, Some(o)) => o.base_url.clone(),
        (None, None) => return Err(String::from("base_url is required")),
    };
    let auth = match (body.get("auth"), old) {
        (Some(v), old) => parse_auth(v, old.map(|o| &o.auth), key)?,
        (None, Some(o)) => o.auth.clone(),
        (None, None) => return Err(String::from("auth is required")),
    };
    let mode = match body.get("mode") {
        None | Some(Value::Null) => old.map(|o| o.mode).unwrap_or_default(),
        Some(v) => serde_json::from_value::<ProviderMode>(v.clone())
            .map_err(|_| format!("mode {v} is not default, aws, slack, salesforce or webex"))?,
    };
    let old_scope = old.map(|o| o.scope.clone()).unwrap_or_default();
    let scope = match body.get("scope") {
        None | Some(Value::Null) => old_scope,
        Some(v) => parse_scope(v, &old_scope)?,
    };
    let concurrency = match u64_field(body, "concurrency")? {
        Some(c) if (1..=64).contains(&c) => c as u32,
        Some(_) => return Err(String::from("concurrency must be between 1 and 64")),
        None => old.map_or(DEFAULT_CONCURRENCY, |o| o.concurrency),
    };
    let old_tls = old.map(|o| o.tls.clone()).unwrap_or_default();
    let tls = match body.get("tls") {
        None => old_tls,
        Some(Value::Null) => ProviderTls::default(),
        Some(v) => super::tls::parse(v, &old_tls, key)?,
    };
    let mappings = match body.get("mappings") {
        None => old.map(|o| o.mappings.clone()).unwrap_or_default(),
        Some(Value::Null) => Vec::new(),
        Some(v) => parse_mappings(v)?,
    };
    Ok(ProviderConfig {
        mappings,
        name,
        base_url,
        auth,
        mode,
        scope,
        full_sync_interval_secs: u64_field(body, "full_sync_interval_secs")?
            .unwrap_or(old.map_or(DEFAULT_FULL_SYNC_SECS, |o| o.full_sync_interval_secs)),
        concurrency,
        deactivate: bool_field(body, "deactivate")?.unwrap_or(old.is_some_and(|o| o.deactivate)),
        dry_run: bool_field(body, "dry_run")?.unwrap_or(old.is_some_and(|o| o.dry_run)),
        enabled: bool_field(body, "enabled")?.unwrap_or(old.is_none_or(|o| o.enabled)),
        tls,
    })
}

/// The authentication as the API shows it: everything but the secrets.
fn auth_json(auth: &ProviderAuth) -> Value {
    match auth {
        ProviderAuth::Bearer { .. } => json!({"type": "bearer"}),
        ProviderAuth::Basic { username, .. } => json!({"type": "basic", "username": username}),
        ProviderAuth::Oauth2 {
            token_url,
            client_id,
            grant,
            extra,
            ..
        } => {
            let mut v = json!({
                "type": "oauth2",
                "token_url": token_url,
                "client_id": client_id,
                "extra": extra,
            });
            match grant {
                ProviderGrant::ClientCredentials => v["grant"] = json!("client_credentials"),
                ProviderGrant::Password { username, .. } => {
                    v["grant"] = json!("password");
                    v["username"] = json!(username);
                }
            }
            v
        }
    }
}

/// A provider's configuration as the API shows it, secrets left out.
pub fn public_json(c: &ProviderConfig) -> Value {
    json!({
        "name": c.name,
        "base_url": c.base_url,
        "auth": auth_json(&c.auth),
        "mode": c.mode,
        "scope": c.scope,
        "full_sync_interval_secs": c.full_sync_interval_secs,
        "concurrency": c.concurrency,
        "deactivate": c.deactivate,
        "dry_run": c.dry_run,
        "enabled": c.enabled,
        "tls": super::tls::public_json(&c.tls),
        "mappings": c.mappings,
    })
}

/// The property mappings a provider applies: an array of distinct mapping names, in order.
fn parse_mappings(v: &Value) -> Result<Vec<String>, String> {
    let refused = || String::from("mappings must be an array of mapping names");
    let mut names: Vec<String> = Vec::new();
    for name in v.as_array().ok_or_else(refused)? {
        let name = name.as_str().ok_or_else(refused)?;
        if names.iter().any(|n| n == name) {
            return Err(format!("mapping {name:?} is named twice"));
        }
        names.push(name.to_owned());
    }
    Ok(names)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap()
    }

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_new_provider_seals_its_secrets_and_shows_none_of_them() {
        let k = key();
        let c = parse(
            &body(json!({
                "name": "slack",
                "base_url": "https://api.slack.example/scim/v2/",
                "auth": {"type": "oauth2", "token_url": "https://login.example/token",
                         "client_id": "roster", "client_secret": "cs-123",
                         "grant": "password", "username": "svc", "password": "pw-456",
                         "extra": {"scope": "scim"}},
                "mode": "slack"
            })),
            None,
            &k,
        )
        .unwrap();
        assert_eq!(c.base_url, "https://api.slack.example/scim/v2");
        assert_eq!(c.full_sync_interval_secs, 3600);
        assert!(c.enabled && !c.dry_run && !c.deactivate);
        let stored = serde_json::to_string(&c).unwrap();
        assert!(!stored.contains("cs-123") && !stored.contains("pw-456"));
        let shown = public_json(&c).to_string();
        assert!(!shown.contains("cs-123") && !shown.contains("pw-456") && !shown.contains("v1:"));
        assert!(shown.contains("\"username\":\"svc\""));
        let ProviderAuth::Oauth2 { client_secret, .. } = &c.auth else {
            panic!("oauth2")
        };
        assert_eq!(k.open(client_secret).unwrap().expose(), "cs-123");
    }

    #[test]
    fn an_update_keeps_what_it_leaves_out_and_refuses_what_is_wrong() {
        let k = key();
        let old = parse(
            &body(
                json!({"name": "aws", "base_url": "http://127.0.0.1:9/scim/v2",
                         "auth": {"type": "bearer", "token": "t-1"}}),
            ),
            None,
            &k,
        )
        .unwrap();
        let new = parse(
            &body(json!({"auth": {"type": "bearer"}, "dry_run": true, "mode": "aws"})),
            Some(&old),
            &k,
        )
        .unwrap();
        assert_eq!(new.auth, old.auth, "the secret is kept");
        assert!(new.dry_run);
        assert_eq!(new.mode, ProviderMode::Aws);
        for (bad, why) in [
            (json!({"name": "other"}), "name"),
            (json!({"base_url": "ftp://x"}), "base_url"),
            (
                json!({"auth": {"type": "basic", "password": "p"}}),
                "username",
            ),
            (json!({"auth": {"type": "digest"}}), "auth.type"),
            (json!({"mode": "azure"}), "mode"),
            (json!({"scope": {"group_filter": ["nope"]}}), "group_filter"),
            (json!({"colour": "red"}), "colour"),
            (json!({"concurrency": 0}), "concurrency"),
            (json!({"concurrency": 4_294_967_297u64}), "concurrency"),
            (
                json!({"base_url": "https://user:secret@remote.example/scim/v2"}),
                "user name or password",
            ),
        ] {
            let e = parse(&body(bad.clone()), Some(&old), &k).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(parse(&body(json!({"name": "x"})), None, &k)
            .unwrap_err()
            .contains("base_url"));
    }
}
