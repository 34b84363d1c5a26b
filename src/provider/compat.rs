//! What a remote SCIM server can do: what its ServiceProviderConfig says (RFC 7643 §5), and
//! what a compatibility mode says instead for vendors whose servers differ from what they
//! advertise or from the RFC.

use roster_events::MemberType;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A vendor's deviations from RFC 7644. Each mode is a small set of overrides here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// RFC 7644 as the remote's ServiceProviderConfig describes it.
    #[default]
    Default,
    /// AWS IAM Identity Center: no PATCH; groups are replaced (PUT) with their full member
    /// list.
    Aws,
    /// Slack: filtering works although the ServiceProviderConfig does not say so.
    Slack,
    /// Salesforce: the configuration is at `/ServiceProviderConfigs` (plural).
    Salesforce,
    /// Webex: every member value carries `"type": "user"`.
    Webex,
}

/// How a remote takes the removal of group members, from the most precise form to the
/// bluntest. Servers built for Entra ID's dialect often refuse the first.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MemberRemoval {
    /// One `remove` per member, addressed by a value filter (`members[value eq "..."]`,
    /// RFC 7644 §3.5.2.2).
    #[default]
    Filter,
    /// `remove` of `members` with the values to remove (what Entra ID sends).
    ValueList,
    /// The whole group replaced (PUT) with its member list.
    Replace,
}

impl MemberRemoval {
    /// The next form to try when the remote refuses this one.
    pub fn next(self) -> Option<MemberRemoval> {
        match self {
            MemberRemoval::Filter => Some(MemberRemoval::ValueList),
            MemberRemoval::ValueList => Some(MemberRemoval::Replace),
            MemberRemoval::Replace => None,
        }
    }
}

/// What a remote turned out to do, learned by talking to it and kept with the provider's
/// progress, so that it is asked once, not at every change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Learned {
    /// The member-removal form the remote takes.
    #[serde(default)]
    pub member_removal: MemberRemoval,
    /// Whether deleting a user takes it out of the remote's groups (None until seen).
    #[serde(default)]
    pub drops_deleted_members: Option<bool>,
}

/// Bulk limits (RFC 7643 §5: `bulk.maxOperations`, `bulk.maxPayloadSize`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BulkLimits {
    pub max_operations: usize,
    pub max_payload_bytes: usize,
}

/// The operations a remote supports, as Roster will use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub patch: bool,
    pub filter: bool,
    /// How many results a filtered query may return, when the remote says.
    pub filter_max_results: Option<usize>,
    pub bulk: Option<BulkLimits>,
}

impl Default for Capabilities {
    /// What a remote whose ServiceProviderConfig cannot be read is assumed to do: nothing
    /// optional (RFC 7644 requires none of PATCH, filtering and bulk).
    fn default() -> Self {
        Capabilities {
            patch: false,
            filter: false,
            filter_max_results: None,
            bulk: None,
        }
    }
}

fn supported(config: &Value, feature: &str) -> bool {
    config
        .get(feature)
        .and_then(|f| f.get("supported"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn positive(v: Option<&Value>) -> Option<usize> {
    v.and_then(Value::as_u64)
        .filter(|n| *n > 0)
        .and_then(|n| usize::try_from(n).ok())
}

impl Capabilities {
    /// Reads a ServiceProviderConfig document. Missing or malformed parts count as not
    /// supported; a bulk section that supports nothing usable (no positive maxOperations)
    /// counts as no bulk.
    pub fn from_service_provider_config(config: &Value) -> Capabilities {
        let bulk = if supported(config, "bulk") {
            let b = &config["bulk"];
            positive(b.get("maxOperations")).map(|max_operations| BulkLimits {
                max_operations,
                max_payload_bytes: positive(b.get("maxPayloadSize")).unwrap_or(1 << 20),
            })
        } else {
            None
        };
        Capabilities {
            patch: supported(config, "patch"),
            filter: supported(config, "filter"),
            filter_max_results: if supported(config, "filter") {
                positive(config["filter"].get("maxResults"))
            } else {
                None
            },
            bulk,
        }
    }
}

impl Mode {
    /// Where the remote's configuration is, relative to its base URL.
    pub fn service_provider_config_path(self) -> &'static str {
        match self {
            Mode::Salesforce => "/ServiceProviderConfigs",
            _ => "/ServiceProviderConfig",
        }
    }

    /// The capabilities to use, given what the remote advertised.
    pub fn effective(self, advertised: Capabilities) -> Capabilities {
        match self {
            Mode::Aws => Capabilities {
                patch: false,
                bulk: None,
                ..advertised
            },
            Mode::Slack => Capabilities {
                filter: true,
                ..advertised
            },
            Mode::Default | Mode::Salesforce | Mode::Webex => advertised,
        }
    }

    /// A group member as the remote expects it in `members`.
    pub fn member(self, remote_id: &str, kind: MemberType) -> Value {
        match self {
            // Webex wants a type on every member, lower-case, and has only user members.
            Mode::Webex => json!({"value": remote_id, "type": "user"}),
            _ => match kind {
                MemberType::User => json!({"value": remote_id, "type": "User"}),
                MemberType::Group => json!({"value": remote_id, "type": "Group"}),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_config() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": true},
            "bulk": {"supported": true, "maxOperations": 50, "maxPayloadSize": 1048576},
            "filter": {"supported": true, "maxResults": 200},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": false},
            "authenticationSchemes": []
        })
    }

    #[test]
    fn a_service_provider_config_gives_the_capabilities() {
        let c = Capabilities::from_service_provider_config(&full_config());
        assert_eq!(
            c,
            Capabilities {
                patch: true,
                filter: true,
                filter_max_results: Some(200),
                bulk: Some(BulkLimits {
                    max_operations: 50,
                    max_payload_bytes: 1_048_576
                }),
            }
        );
        // Nothing readable: nothing optional.
        for bad in [json!({}), json!([]), json!({"patch": {"supported": "yes"}})] {
            assert_eq!(
                Capabilities::from_service_provider_config(&bad),
                Capabilities::default()
            );
        }
        // Bulk without a usable maxOperations is no bulk.
        let c = Capabilities::from_service_provider_config(
            &json!({"bulk": {"supported": true, "maxOperations": 0}}),
        );
        assert_eq!(c.bulk, None);
    }

    #[test]
    fn each_mode_overrides_what_its_vendor_needs() {
        let all = Capabilities::from_service_provider_config(&full_config());
        let none = Capabilities::default();
        assert_eq!(Mode::Default.effective(all), all);
        let aws = Mode::Aws.effective(all);
        assert!(!aws.patch && aws.bulk.is_none() && aws.filter);
        assert!(Mode::Slack.effective(none).filter);
        assert_eq!(Mode::Salesforce.effective(all), all);
        assert_eq!(
            Mode::Salesforce.service_provider_config_path(),
            "/ServiceProviderConfigs"
        );
        assert_eq!(
            Mode::Default.service_provider_config_path(),
            "/ServiceProviderConfig"
        );
        assert_eq!(
            Mode::Webex.member("r1", MemberType::User),
            json!({"value": "r1", "type": "user"})
        );
        assert_eq!(
            Mode::Default.member("g1", MemberType::Group),
            json!({"value": "g1", "type": "Group"})
        );
    }

    #[test]
    fn modes_have_stable_names() {
        for (mode, name) in [
            (Mode::Default, "\"default\""),
            (Mode::Aws, "\"aws\""),
            (Mode::Slack, "\"slack\""),
            (Mode::Salesforce, "\"salesforce\""),
            (Mode::Webex, "\"webex\""),
        ] {
            assert_eq!(serde_json::to_string(&mode).unwrap(), name);
            assert_eq!(serde_json::from_str::<Mode>(name).unwrap(), mode);
        }
    }
}
