//! The stored configuration of an outbound provider and the events that carry it. Secrets
//! (tokens, passwords, client secrets) are stored sealed: [`Sealed`] holds ciphertext that
//! only the server's secret key opens, so neither the log nor the views hold them in clear.

use crate::ids::ResourceId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A secret encrypted with the server's key (`v1:` then base64 of nonce and ciphertext).
/// Its `Debug` form never shows the ciphertext either.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(pub String);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(..)")
    }
}

/// A vendor's deviations from RFC 7644 (see the server's `provider::compat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ProviderMode {
    #[default]
    Default,
    Aws,
    Slack,
    Salesforce,
    Webex,
}

impl ProviderMode {
    /// Every mode.
    pub const ALL: [ProviderMode; 5] = [
        ProviderMode::Default,
        ProviderMode::Aws,
        ProviderMode::Slack,
        ProviderMode::Salesforce,
        ProviderMode::Webex,
    ];

    /// The mode as the admin API and the settings name it.
    pub fn name(self) -> &'static str {
        match self {
            ProviderMode::Default => "default",
            ProviderMode::Aws => "aws",
            ProviderMode::Slack => "slack",
            ProviderMode::Salesforce => "salesforce",
            ProviderMode::Webex => "webex",
        }
    }
}

/// The OAuth2 grant a provider uses to get its access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProviderGrant {
    ClientCredentials,
    Password { username: String, password: Sealed },
}

/// How a provider authenticates to its remote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProviderAuth {
    /// A static bearer token.
    Bearer { token: Sealed },
    /// HTTP basic authentication.
    Basic { username: String, password: Sealed },
    /// An OAuth2 access token from `token_url`; `extra` is sent with every token request.
    Oauth2 {
        token_url: String,
        client_id: String,
        client_secret: Sealed,
        grant: ProviderGrant,
        extra: BTreeMap<String, String>,
    },
}

/// Which users and groups a provider carries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderScope {
    /// Users whose `userType` says they are service accounts are not synced.
    pub exclude_service_accounts: bool,
    /// When not empty, only these groups are synced (users are not affected). Taking a group
    /// out of the filter leaves what was synced in place.
    pub group_filter: Vec<ResourceId>,
    /// When not empty, only users that are members of one of these groups (directly or
    /// through nested groups) are synced.
    pub access_groups: Vec<ResourceId>,
}

/// How a provider's client checks its remote's certificate and proves itself over TLS, for
/// remotes behind a private CA or requiring client certificates. Absent from records written
/// before it existed, which read as the default (the web PKI roots, no client certificate).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderTls {
    /// PEM CA certificates the remote's certificate may lead to, besides the web PKI roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// PEM client certificate chain (leaf first) for mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    /// The client certificate's PEM private key, sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<Sealed>,
}

impl ProviderTls {
    pub fn is_default(&self) -> bool {
        *self == ProviderTls::default()
    }
}

/// A provider's whole configuration, as set by its last `provider.created` or
/// `provider.updated` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub name: String,
    /// The remote's SCIM base URL (`.../scim/v2`).
    pub base_url: String,
    pub auth: ProviderAuth,
    pub mode: ProviderMode,
    pub scope: ProviderScope,
    /// Seconds between scheduled full syncs; 0 turns the schedule off.
    pub full_sync_interval_secs: u64,
    /// How many objects are carried to the remote at the same time.
    pub concurrency: u32,
    /// Deleted (or out-of-scope) users are deactivated (`active: false`) instead of deleted.
    pub deactivate: bool,
    /// Requests are logged and collected, never sent.
    pub dry_run: bool,
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "ProviderTls::is_default")]
    pub tls: ProviderTls,
    /// The names of the property mappings applied after the built-in mapping, in order
    /// (`provider_user` ones to users, `provider_group` ones to groups). Empty: the built-in
    /// mapping alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mappings: Vec<String>,
}

/// A provider was created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderCreated {
    pub config: ProviderConfig,
}

/// A provider's configuration was replaced as a whole.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderUpdated {
    pub config: ProviderConfig,
}

/// An operator asked for a provider to re-drive every change from log position `from` of
/// the directory's partition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderReplayRequested {
    pub from: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_are_optional_and_left_out_when_default() {
        let config = ProviderConfig {
            name: "slack".into(),
            base_url: "https://api.slack.com/scim/v2".into(),
            auth: ProviderAuth::Bearer {
                token: Sealed("v1:x".into()),
            },
            mode: ProviderMode::Slack,
            scope: ProviderScope::default(),
            full_sync_interval_secs: 3600,
            concurrency: 8,
            deactivate: false,
            dry_run: false,
            enabled: true,
            tls: ProviderTls::default(),
            mappings: Vec::new(),
        };
        // Records written before the field existed read as the default, and still look the same.
        let json = serde_json::to_value(&config).unwrap();
        assert!(json.get("tls").is_none(), "{json}");
        assert_eq!(
            serde_json::from_value::<ProviderConfig>(json).unwrap(),
            config
        );
        let with = ProviderConfig {
            tls: ProviderTls {
                ca_bundle: Some("-----BEGIN CERTIFICATE-----".into()),
                client_cert: None,
                client_key: Some(Sealed("v1:k".into())),
            },
            ..config
        };
        let json = serde_json::to_value(&with).unwrap();
        assert_eq!(json["tls"]["client_key"], "v1:k");
        assert_eq!(
            serde_json::from_value::<ProviderConfig>(json).unwrap(),
            with
        );
    }

    #[test]
    fn each_mode_is_named_as_it_is_serialized() {
        for mode in ProviderMode::ALL {
            assert_eq!(serde_json::to_value(mode).unwrap(), mode.name());
            assert_eq!(
                serde_json::from_value::<ProviderMode>(mode.name().into()).unwrap(),
                mode
            );
        }
    }
}
