//! The view types: what one user, group, source or admin token looks like after folding.

use chrono::{DateTime, Utc};
use roster_events::{Member, Ownership, ResourceId};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A user as the SCIM endpoints serve it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UserView {
    pub id: ResourceId,
    pub owner: Option<String>,
    /// The stored SCIM document, without `id` and `meta`.
    pub resource: Map<String, Value>,
    pub version: u64,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
}

impl UserView {
    /// The userName (always present: the write path refuses a user without one).
    pub fn user_name(&self) -> &str {
        self.resource
            .get("userName")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn external_id(&self) -> Option<&str> {
        self.resource.get("externalId").and_then(Value::as_str)
    }
}

/// A group as the SCIM endpoints serve it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupView {
    pub id: ResourceId,
    pub owner: Option<String>,
    /// The stored SCIM document, without `id`, `meta` and `members`.
    pub resource: Map<String, Value>,
    pub members: BTreeSet<Member>,
    pub version: u64,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
}

impl GroupView {
    pub fn display_name(&self) -> &str {
        self.resource
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn external_id(&self) -> Option<&str> {
        self.resource.get("externalId").and_then(Value::as_str)
    }
}

/// A bearer token of a source: only its hash is kept.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TokenView {
    pub id: ResourceId,
    pub hash: String,
    pub prefix: String,
    pub created: DateTime<Utc>,
    pub revoked: Option<DateTime<Utc>>,
}

/// An inbound SCIM source.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceView {
    pub id: ResourceId,
    pub slug: String,
    pub directory: String,
    pub service_account: String,
    pub ownership: Ownership,
    pub tokens: BTreeMap<ResourceId, TokenView>,
    pub version: u64,
    pub created: DateTime<Utc>,
}

/// An admin bearer token: only its hash is kept.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AdminTokenView {
    pub id: ResourceId,
    pub hash: String,
    pub prefix: String,
    pub created: DateTime<Utc>,
}

/// A directory's own record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DirectoryMeta {
    pub id: ResourceId,
    pub name: String,
    pub created: DateTime<Utc>,
}
