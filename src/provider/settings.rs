//! A provider's settings as the admin API takes them: typed, unknown fields refused, parsed
//! once at the edge ([`ProviderSettings`]); and their application to a configuration, a new
//! one (`name`, `base_url` and `auth` required) or a change to an old one (absent fields keep
//! their value, an `auth` of the same type without its secret keeps the secret). Secrets are
//! sealed here, on the way in.

use super::config::{check_url, valid_name, DEFAULT_CONCURRENCY, DEFAULT_FULL_SYNC_SECS};
use crate::sealing::SecretKey;
use roster_events::{
    ProviderAuth, ProviderConfig, ProviderGrant, ProviderMode, ProviderScope, ProviderTls,
    ResourceId, Sealed,
};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A field that may be given as null: absent is `None`, null is `Some(None)`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A provider's settings: all of them for a new provider, or the ones to change.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// 1-63 lower-case letters, digits or hyphens; required for a new provider, cannot change.
    pub name: Option<String>,
    /// The directory whose users and groups it carries (`default` when left out); cannot
    /// change.
    pub directory: Option<String>,
    /// The remote's SCIM base URL (`https://.../scim/v2`); required for a new provider.
    pub base_url: Option<String>,
    /// How it authenticates to the remote; required for a new provider.
    pub auth: Option<AuthSettings>,
    /// The remote's compatibility mode (`default` for a new provider).
    pub mode: Option<ProviderMode>,
    /// Which users and groups it carries; fields left out keep their value.
    pub scope: Option<ScopeSettings>,
    /// Seconds between scheduled full syncs (3600 for a new provider); 0 turns them off.
    pub full_sync_interval_secs: Option<u64>,
    /// Objects carried at the same time, 1 to 64 (8 for a new provider).
    #[schema(minimum = 1, maximum = 64)]
    pub concurrency: Option<u64>,
    /// Deleted (or out-of-scope) users are deactivated instead of deleted.
    pub deactivate: Option<bool>,
    /// Writes are planned and listed in the status, never sent.
    pub dry_run: Option<bool>,
    /// False stops its consumer (true for a new provider).
    pub enabled: Option<bool>,
    /// How its client checks the remote's certificate and proves itself; null takes every
    /// TLS setting back to its default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<TlsSettings>)]
    pub tls: Option<Option<TlsSettings>>,
    /// The provider mappings applied after the built-in mapping, in order; null or `[]`
    /// applies none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub mappings: Option<Option<Vec<String>>>,
}

/// How a provider authenticates to its remote. A secret left out (or empty) keeps the one
/// set before, when the type is the same.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthSettings {
    /// A static bearer token.
    Bearer {
        #[serde(default)]
        token: Option<String>,
    },
    /// HTTP basic authentication.
    Basic {
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
    },
    /// An OAuth 2.0 access token from `token_url` (client credentials, or the password
    /// grant with `username` and `password`); `extra` is sent with every token request.
    Oauth2 {
        #[serde(default)]
        token_url: Option<String>,
        #[serde(default)]
        client_id: Option<String>,
        #[serde(default)]
        client_secret: Option<String>,
        #[serde(default)]
        grant: Option<GrantKind>,
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
        #[serde(default)]
        extra: Option<BTreeMap<String, String>>,
    },
}

/// An OAuth 2.0 grant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    #[default]
    ClientCredentials,
    Password,
}

/// Which users and groups a provider carries.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeSettings {
    /// Users whose `userType` says they are service accounts are not carried.
    pub exclude_service_accounts: Option<bool>,
    /// When not empty, only these groups are carried.
    pub group_filter: Option<Vec<ResourceId>>,
    /// When not empty, only members (direct or nested) of one of these groups are carried.
    pub access_groups: Option<Vec<ResourceId>>,
}

/// A provider's TLS settings; a field left out keeps its value, null or "" clears it.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM CA certificates the remote's certificate may lead to, besides the web PKI roots.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub ca_bundle: Option<Option<String>>,
    /// PEM client certificate chain (leaf first) for mutual TLS.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub client_cert: Option<Option<String>>,
    /// Its PEM private key (sealed at rest, never shown); left out keeps the one set.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub client_key: Option<Option<String>>,
}

impl ProviderSettings {
    /// The configuration these settings make: a new provider's (`old` None, every required
    /// field present) or `old` changed by them. Secrets are sealed with `key`.
    ///
    /// Fails with a message for the operator when a field is missing or invalid.
    pub fn apply(
        &self,
        old: Option<&ProviderConfig>,
        key: &SecretKey,
    ) -> Result<ProviderConfig, String> {
        let name = match (&self.name, old) {
            (Some(n), Some(o)) if *n != o.name => {
                return Err(String::from("a provider's name cannot change"))
            }
            (_, Some(o)) => o.name.clone(),
            (Some(n), None) => n.clone(),
            (None, None) => return Err(String::from("name is required")),
        };
        if !valid_name(&name) {
            return Err("name must be 1-63 lower-case letters, digits or hyphens".to_owned());
        }
        let base_url = match (&self.base_url, old) {
            (Some(u), _) => check_url("base_url", u)?,
            (None, Some(o)) => o.base_url.clone(),
            (None, None) => return Err(String::from("base_url is required")),
        };
        let auth = match (&self.auth, old) {
            (Some(a), old) => a.apply(old.map(|o| &o.auth), key)?,
            (None, Some(o)) => o.auth.clone(),
            (None, None) => return Err(String::from("auth is required")),
        };
        let old_scope = old.map(|o| o.scope.clone()).unwrap_or_default();
        let scope = match &self.scope {
            None => old_scope,
            Some(s) => s.apply(&old_scope),
        };
        let concurrency = match self.concurrency {
            Some(c) if (1..=64).contains(&c) => c as u32,
            Some(_) => return Err(String::from("concurrency must be between 1 and 64")),
            None => old.map_or(DEFAULT_CONCURRENCY, |o| o.concurrency),
        };
        let old_tls = old.map(|o| o.tls.clone()).unwrap_or_default();
        let tls = match &self.tls {
            None => old_tls,
            Some(None) => ProviderTls::default(),
            Some(Some(t)) => super::tls::apply_settings(t, &old_tls, key)?,
        };
        let mappings = match &self.mappings {
            None => old.map(|o| o.mappings.clone()).unwrap_or_default(),
            Some(None) => Vec::new(),
            Some(Some(names)) => distinct(names)?,
        };
        Ok(ProviderConfig {
            mappings,
            name,
            base_url,
            auth,
            mode: self
                .mode
                .unwrap_or_else(|| old.map(|o| o.mode).unwrap_or_default()),
            scope,
            full_sync_interval_secs: self
                .full_sync_interval_secs
                .unwrap_or(old.map_or(DEFAULT_FULL_SYNC_SECS, |o| o.full_sync_interval_secs)),
            concurrency,
            deactivate: self.deactivate.unwrap_or(old.is_some_and(|o| o.deactivate)),
            dry_run: self.dry_run.unwrap_or(old.is_some_and(|o| o.dry_run)),
            enabled: self.enabled.unwrap_or(old.is_none_or(|o| o.enabled)),
            tls,
        })
    }
}

/// The property mappings a provider applies: distinct names, in order.
fn distinct(names: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if out.contains(name) {
            return Err(format!("mapping {name:?} is named twice"));
        }
        out.push(name.clone());
    }
    Ok(out)
}

/// A text given and not empty.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// `auth.{name}`, required.
fn required(v: &Option<String>, name: &str) -> Result<String, String> {
    given(v)
        .map(str::to_owned)
        .ok_or_else(|| format!("auth.{name} is required"))
}

/// A secret, sealed; or the old one when it is left out or empty and the old authentication
/// had one under the same name.
fn secret(
    v: &Option<String>,
    name: &str,
    old: Option<&Sealed>,
    key: &SecretKey,
) -> Result<Sealed, String> {
    match given(v) {
        Some(s) => Ok(key.seal(s)),
        None => old
            .cloned()
            .ok_or_else(|| format!("auth.{name} is required")),
    }
}

impl AuthSettings {
    fn apply(&self, old: Option<&ProviderAuth>, key: &SecretKey) -> Result<ProviderAuth, String> {
        Ok(match self {
            AuthSettings::Bearer { token } => {
                let old = match old {
                    Some(ProviderAuth::Bearer { token }) => Some(token),
                    _ => None,
                };
                ProviderAuth::Bearer {
                    token: secret(token, "token", old, key)?,
                }
            }
            AuthSettings::Basic { username, password } => {
                let old = match old {
                    Some(ProviderAuth::Basic { password, .. }) => Some(password),
                    _ => None,
                };
                ProviderAuth::Basic {
                    username: required(username, "username")?,
                    password: secret(password, "password", old, key)?,
                }
            }
            AuthSettings::Oauth2 {
                token_url,
                client_id,
                client_secret,
                grant,
                username,
                password,
                extra,
            } => {
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
                let grant = match grant.unwrap_or_default() {
                    GrantKind::ClientCredentials => ProviderGrant::ClientCredentials,
                    GrantKind::Password => ProviderGrant::Password {
                        username: required(username, "username")?,
                        password: secret(password, "password", old_password, key)?,
                    },
                };
                ProviderAuth::Oauth2 {
                    token_url: check_url("auth.token_url", &required(token_url, "token_url")?)?,
                    client_id: required(client_id, "client_id")?,
                    client_secret: secret(client_secret, "client_secret", old_secret, key)?,
                    grant,
                    extra: extra.clone().unwrap_or_default(),
                }
            }
        })
    }
}

impl ScopeSettings {
    fn apply(&self, old: &ProviderScope) -> ProviderScope {
        let dedup = |ids: &Vec<ResourceId>| {
            let mut out: Vec<ResourceId> = Vec::with_capacity(ids.len());
            for id in ids {
                if !out.contains(id) {
                    out.push(*id);
                }
            }
            out
        };
        ProviderScope {
            exclude_service_accounts: self
                .exclude_service_accounts
                .unwrap_or(old.exclude_service_accounts),
            group_filter: self
                .group_filter
                .as_ref()
                .map_or_else(|| old.group_filter.clone(), dedup),
            access_groups: self
                .access_groups
                .as_ref()
                .map_or_else(|| old.access_groups.clone(), dedup),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn key() -> SecretKey {
        SecretKey::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap()
    }

    /// Settings as the admin API reads them, applied.
    fn parse(
        v: Value,
        old: Option<&ProviderConfig>,
        k: &SecretKey,
    ) -> Result<ProviderConfig, String> {
        let settings: ProviderSettings = crate::http::body::read(v)?;
        settings.apply(old, k)
    }

    #[test]
    fn a_new_provider_seals_its_secrets_and_shows_none_of_them() {
        let k = key();
        let c = parse(
            json!({
                "name": "slack",
                "base_url": "https://api.slack.example/scim/v2/",
                "auth": {"type": "oauth2", "token_url": "https://login.example/token",
                         "client_id": "roster", "client_secret": "cs-123",
                         "grant": "password", "username": "svc", "password": "pw-456",
                         "extra": {"scope": "scim"}},
                "mode": "slack"
            }),
            None,
            &k,
        )
        .unwrap();
        assert_eq!(c.base_url, "https://api.slack.example/scim/v2");
        assert_eq!(c.full_sync_interval_secs, 3600);
        assert!(c.enabled && !c.dry_run && !c.deactivate);
        let stored = serde_json::to_string(&c).unwrap();
        assert!(!stored.contains("cs-123") && !stored.contains("pw-456"));
        let shown = serde_json::to_string(&super::super::config::PublicConfig::of(&c)).unwrap();
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
            json!({"name": "aws", "base_url": "http://127.0.0.1:9/scim/v2",
                     "auth": {"type": "bearer", "token": "t-1"}}),
            None,
            &k,
        )
        .unwrap();
        let new = parse(
            json!({"auth": {"type": "bearer"}, "dry_run": true, "mode": "aws"}),
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
            (
                json!({"auth": {"type": "digest"}}),
                "unknown variant `digest`",
            ),
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
            let e = parse(bad.clone(), Some(&old), &k).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(parse(json!({"name": "x"}), None, &k)
            .unwrap_err()
            .contains("base_url"));
    }
}
