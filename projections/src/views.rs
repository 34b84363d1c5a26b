//! The view types: what one user, group, source or admin token looks like after folding.

use chrono::{DateTime, Utc};
use roster_events::{Document, KeyId, Member, Ownership, ResourceId, UndeclaredExtensions};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The attributes the indexes need, read once from a document when it is folded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Keys {
    #[serde(rename = "userName", default, deserialize_with = "lenient")]
    pub user_name: Option<String>,
    #[serde(rename = "displayName", default, deserialize_with = "lenient")]
    pub display_name: Option<String>,
    #[serde(rename = "externalId", default, deserialize_with = "lenient")]
    pub external_id: Option<String>,
}

/// A key that is not a string is no key (the write path only stores strings there).
fn lenient<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    })
}

impl Keys {
    /// Reads the keys of a document.
    pub fn of(doc: &Document) -> Keys {
        doc.fields().unwrap_or_default()
    }
}

/// A user as the SCIM endpoints serve it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UserView {
    pub id: ResourceId,
    pub owner: Option<String>,
    /// The stored SCIM document, without `id` and `meta`.
    pub resource: Document,
    /// Copied out of the document for the indexes.
    #[serde(skip)]
    pub keys: Keys,
    /// Argon2id hash (PHC string) of the password, if one was set. Never rendered.
    pub password_hash: Option<String>,
    /// The key the user's personal data is sealed under in the log (docs/adr/0014); None for
    /// a user whose data was only ever stored in clear.
    #[serde(skip)]
    pub data_key: Option<KeyId>,
    pub version: u64,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
}

impl UserView {
    /// The userName (always present: the write path refuses a user without one).
    pub fn user_name(&self) -> &str {
        self.keys.user_name.as_deref().unwrap_or("")
    }

    pub fn external_id(&self) -> Option<&str> {
        self.keys.external_id.as_deref()
    }
}

/// A group as the SCIM endpoints serve it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupView {
    pub id: ResourceId,
    pub owner: Option<String>,
    /// The stored SCIM document, without `id`, `meta` and `members`.
    pub resource: Document,
    /// Copied out of the document for the indexes.
    #[serde(skip)]
    pub keys: Keys,
    pub members: BTreeSet<Member>,
    pub version: u64,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
}

impl GroupView {
    pub fn display_name(&self) -> &str {
        self.keys.display_name.as_deref().unwrap_or("")
    }

    pub fn external_id(&self) -> Option<&str> {
        self.keys.external_id.as_deref()
    }
}

/// A bearer token of a source: only its hash is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenView {
    pub id: ResourceId,
    pub hash: String,
    pub prefix: String,
    pub created: DateTime<Utc>,
    pub revoked: Option<DateTime<Utc>>,
}

/// An outbound provider: its configuration (secrets sealed) and when operators last asked
/// it for a full sync, a retry of its parked objects or a replay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderView {
    pub id: ResourceId,
    pub directory: String,
    pub config: roster_events::ProviderConfig,
    pub version: u64,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
}

/// An inbound SCIM source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceView {
    pub id: ResourceId,
    pub slug: String,
    pub directory: String,
    pub service_account: String,
    pub ownership: Ownership,
    /// Rows stored before the field existed hold sources created before it: `keep`.
    #[serde(default = "keep")]
    pub undeclared_extensions: UndeclaredExtensions,
    pub tokens: BTreeMap<ResourceId, TokenView>,
    /// Extension schemas the source declared for its users.
    pub user_schemas: Vec<roster_events::DeclaredSchema>,
    /// Extension schemas the source declared for its groups.
    pub group_schemas: Vec<roster_events::DeclaredSchema>,
    /// The source mappings it runs on what it writes, in order (rows stored before the
    /// field existed hold sources without any).
    #[serde(default)]
    pub mappings: Vec<String>,
    pub version: u64,
    pub created: DateTime<Utc>,
}

fn keep() -> UndeclaredExtensions {
    UndeclaredExtensions::Keep
}

impl SourceView {
    /// Every declared schema, with the resource type it extends.
    pub fn all_declared(
        &self,
    ) -> impl Iterator<Item = (&'static str, &roster_events::DeclaredSchema)> {
        let users = self.user_schemas.iter().map(|d| ("User", d));
        users.chain(self.group_schemas.iter().map(|d| ("Group", d)))
    }

    /// The schemas the source's users (`user`) or groups are checked against: the core
    /// schema, its declared extensions, and what it does with undeclared ones.
    pub fn schemas(&self, user: bool) -> crate::schema::ResourceSchemas<'_> {
        use crate::schema::ResourceSchemas;
        if user {
            ResourceSchemas::user(&self.user_schemas, self.undeclared_extensions)
        } else {
            ResourceSchemas::group(&self.group_schemas, self.undeclared_extensions)
        }
    }
}

/// An admin bearer token: only its hash is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminTokenView {
    pub id: ResourceId,
    pub hash: String,
    pub prefix: String,
    pub created: DateTime<Utc>,
    /// When it was revoked; it is refused from then on.
    #[serde(default)]
    pub revoked: Option<DateTime<Utc>>,
}

/// A directory's own record, with the settings that belong to the directory as a whole: its
/// property mappings (few and small, so kept with it rather than in a table of their own).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DirectoryMeta {
    pub id: ResourceId,
    pub name: String,
    pub created: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mappings: BTreeMap<ResourceId, MappingView>,
}

/// A property mapping as it stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MappingView {
    pub id: ResourceId,
    pub mapping: roster_events::MappingDef,
    pub version: u64,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
}
