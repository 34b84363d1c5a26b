//! What a remote receives for a user or a group. [`DefaultMapping`] sends the core User with
//! the enterprise extension, and the core Group; [`Mapping`] is the seam where a provider's
//! property mappings plug in (`super::chain`).

use roster_projections::schema::{ENTERPRISE_USER, GROUP, USER};
use roster_projections::{GroupView, UserView};
use serde_json::{Map, Value};

/// Turns local views into remote documents. `None` skips the object (it is not sent).
pub trait Mapping: Send + Sync {
    fn user(&self, user: &UserView) -> Result<Option<Map<String, Value>>, MappingFailed>;
    /// `members` are the group's members as the remote expects them (remote ids), already
    /// shaped by the compatibility mode.
    fn group(
        &self,
        group: &GroupView,
        members: Vec<Value>,
    ) -> Result<Option<Map<String, Value>>, MappingFailed>;
}

/// A property mapping failed on an object: the object is not sent, and the failure is the
/// provider's error for it (parked with this message).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("mapping {mapping:?}: {message}")]
pub struct MappingFailed {
    pub mapping: String,
    pub message: String,
}

/// The built-in mapping.
///
/// - `externalId` on the remote is Roster's id (Roster is the remote's provisioning client,
///   RFC 7643 §3.1), which lets a full resync find objects it created.
/// - What the remote sets or must not receive is left out: `id`, `meta`, `groups`
///   (read-only, RFC 7643 §4.1.2), `password`, and extensions other than the enterprise one.
/// - `schemas` lists what the document holds.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultMapping;

fn strip(document: Map<String, Value>, keep_extension: Option<&str>) -> Map<String, Value> {
    document
        .into_iter()
        .filter(|(k, _)| {
            let lower = k.to_ascii_lowercase();
            let extension = lower.starts_with("urn:")
                && keep_extension.is_none_or(|e| !k.eq_ignore_ascii_case(e));
            !extension
                && !matches!(
                    lower.as_str(),
                    "schemas" | "id" | "meta" | "groups" | "password" | "externalid" | "members"
                )
        })
        .collect()
}

impl DefaultMapping {
    /// The built-in document of a user.
    pub fn user_document(&self, user: &UserView) -> Map<String, Value> {
        let mut out = strip(user.resource.to_map(), Some(ENTERPRISE_USER));
        let mut schemas = vec![Value::from(USER)];
        if out.keys().any(|k| k.eq_ignore_ascii_case(ENTERPRISE_USER)) {
            schemas.push(ENTERPRISE_USER.into());
        }
        out.insert("schemas".into(), Value::Array(schemas));
        out.insert("externalId".into(), user.id.to_string().into());
        out
    }

    /// The built-in document of a group with `members`.
    pub fn group_document(&self, group: &GroupView, members: Vec<Value>) -> Map<String, Value> {
        let mut out = strip(group.resource.to_map(), None);
        out.insert("schemas".into(), Value::Array(vec![GROUP.into()]));
        out.insert("externalId".into(), group.id.to_string().into());
        out.insert("members".into(), Value::Array(members));
        out
    }
}

impl Mapping for DefaultMapping {
    fn user(&self, user: &UserView) -> Result<Option<Map<String, Value>>, MappingFailed> {
        Ok(Some(self.user_document(user)))
    }

    fn group(
        &self,
        group: &GroupView,
        members: Vec<Value>,
    ) -> Result<Option<Map<String, Value>>, MappingFailed> {
        Ok(Some(self.group_document(group, members)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_events::{Document, ResourceId};
    use roster_projections::Keys;
    use serde_json::json;

    fn doc(v: Value) -> Document {
        Document::from_map(v.as_object().unwrap())
    }

    #[test]
    fn a_user_goes_out_as_core_and_enterprise_with_roster_s_id_as_external_id() {
        let id = ResourceId::new();
        let user = UserView {
            id,
            owner: Some("entra".into()),
            keys: Keys::default(),
            resource: doc(json!({
                "schemas": [USER, ENTERPRISE_USER, "urn:example:custom"],
                "userName": "alice@example.com",
                "externalId": "entra-object-id",
                "name": {"givenName": "Alice"},
                "emails": [{"value": "alice@example.com", "primary": true}],
                "active": true,
                "groups": [{"value": "x"}],
                ENTERPRISE_USER: {"department": "Eng"},
                "urn:example:custom": {"badge": 7},
            })),
            password_hash: Some("$argon2id$...".into()),
            data_key: None,
            version: 1,
            created: chrono::Utc::now(),
            last_modified: chrono::Utc::now(),
        };
        let out = DefaultMapping.user_document(&user);
        assert_eq!(
            Value::Object(out),
            json!({
                "schemas": [USER, ENTERPRISE_USER],
                "userName": "alice@example.com",
                "externalId": id.to_string(),
                "name": {"givenName": "Alice"},
                "emails": [{"value": "alice@example.com", "primary": true}],
                "active": true,
                ENTERPRISE_USER: {"department": "Eng"},
            })
        );
    }

    #[test]
    fn a_group_goes_out_with_the_members_it_is_given() {
        let id = ResourceId::new();
        let group = GroupView {
            id,
            owner: None,
            keys: Keys::default(),
            resource: doc(
                json!({"displayName": "Eng", "members": [{"value": "local"}], "urn:x:y": {}}),
            ),
            members: Default::default(),
            version: 1,
            created: chrono::Utc::now(),
            last_modified: chrono::Utc::now(),
        };
        let out = DefaultMapping
            .group_document(&group, vec![json!({"value": "remote-1", "type": "User"})]);
        assert_eq!(
            Value::Object(out),
            json!({
                "schemas": [GROUP],
                "displayName": "Eng",
                "externalId": id.to_string(),
                "members": [{"value": "remote-1", "type": "User"}],
            })
        );
    }
}
