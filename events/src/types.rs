//! The event types, as they are stored. Each type has a stable name (`event_type`) and a
//! schema version; a shipped version is never edited (see `upcast` for how one evolves).
//! Events record outcomes: the values that were set, never the request that set them.

use crate::access::{AccessRefused, AuditRead};
use crate::document::Document;
use crate::ids::ResourceId;
use crate::mapping::{Mapped, MappingCreated, MappingUpdated};
use crate::personal::{KeyId, Personal};
use crate::provider::{ProviderCreated, ProviderReplayRequested, ProviderUpdated};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A directory came into being.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryCreated {
    pub name: String,
}

/// An admin bearer token was issued. Only the SHA-256 of the token is stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTokenIssued {
    pub token_id: ResourceId,
    /// Lower-case hex SHA-256 of the token.
    pub token_hash: String,
    /// The first characters of the token, for operators to tell tokens apart.
    pub prefix: String,
}

/// An admin token was revoked; it is refused from this event on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTokenRevoked {
    pub token_id: ResourceId,
}

/// How a source relates to objects it did not create.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Ownership {
    /// The source sees, lists, changes and deletes only the objects it created.
    Owned,
    /// Like `owned`, but creating a user or group whose userName or displayName already
    /// exists adopts that object (it moves to this source) instead of failing with 409.
    Adopt,
}

/// What a source's writes may carry under extension schemas the source has not declared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum UndeclaredExtensions {
    /// Refused with 400 `invalidValue` naming the schema (the default for new sources).
    #[default]
    Refuse,
    /// Stored and returned as sent, unchecked (what sources created before schema 2 of
    /// `source.created` did).
    Keep,
}

/// An inbound SCIM source was created. Schema 2 added `undeclared_extensions`; schema 1
/// records read as `keep`, what those sources did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceCreated {
    pub slug: String,
    /// The service account recorded as the actor of the source's events.
    pub service_account: String,
    pub ownership: Ownership,
    pub undeclared_extensions: UndeclaredExtensions,
}

/// A bearer token was issued to a source. Only the SHA-256 of the token is stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTokenIssued {
    pub token_id: ResourceId,
    pub token_hash: String,
    pub prefix: String,
}

/// A source token was revoked; it is refused from this event on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTokenRevoked {
    pub token_id: ResourceId,
}

/// A user was created. `resource` is the stored SCIM document without `id`, `meta` and
/// `password`; `userName` and `externalId` are inside it. Schema 2: the document may be sealed
/// under the user's data key ([`crate::personal`]); schema 1 records hold it in clear.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserCreated {
    /// The slug of the source that owns the user, if a source created it.
    pub owner: Option<String>,
    pub resource: Personal<Document>,
    /// Schema 3: what the source sent, when its mappings changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapped: Option<Mapped<Personal<Document>>>,
}

/// A user's stored document was replaced as a whole. Schema 2: an extension sits under its
/// own URN; schema 1 records of an older release's PATCH of a whole extension by its URN
/// (stored under the URN's first part, with the last part as an attribute) read repaired.
/// Schema 3: the document may be sealed under the user's data key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserReplaced {
    pub resource: Personal<Document>,
    /// Schema 4: what the source sent, when its mappings changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapped: Option<Mapped<Personal<Document>>>,
}

/// A user's personal data was erased (GDPR article 17): the user's data key was destroyed, so
/// every document and password hash sealed under it reads as erased from now on. A user that
/// was still in the directory leaves it, as with `user.deleted`; the id stays retired.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserErased {
    /// The data key destroyed; absent when none of the user's data was ever sealed.
    pub key: Option<KeyId>,
    /// How many of the user's events hold personal data in clear (written before it was
    /// sealed): erasure cannot take those out of the log.
    pub in_clear: u64,
    /// The request the erasure answers (a ticket number), as the operator gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// A group was created. `resource` holds everything but `id`, `meta` and `members`; the
/// initial members follow as a `GroupMembersAdded` event in the same record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupCreated {
    pub owner: Option<String>,
    pub resource: Document,
    /// Schema 2: what the source sent, when its mappings changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapped: Option<Mapped<Document>>,
}

/// A group's document (everything but members) was replaced. Schema 2 as `UserReplaced`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupReplaced {
    pub resource: Document,
    /// Schema 3: what the source sent, when its mappings changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapped: Option<Mapped<Document>>,
}

/// What kind of resource a group member is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MemberType {
    User,
    Group,
}

/// One member of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub value: ResourceId,
    #[serde(rename = "type")]
    pub kind: MemberType,
}

/// Members were added to a group (none of them was a member before).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMembersAdded {
    pub members: Vec<Member>,
}

/// Members were removed from a group (each of them was a member before).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMembersRemoved {
    pub members: Vec<Member>,
}

/// A user or group moved to another owning source (adoption by a source with the `adopt`
/// policy). The resource's document is unchanged by this event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adopted {
    /// The owner before (None if no source owned it).
    pub previous_owner: Option<String>,
    /// The adopting source's slug.
    pub owner: String,
}

/// A user's password was set. Only an Argon2id hash in PHC string format is recorded; the
/// password itself never reaches the log. Schema 2: the hash may be sealed under the user's
/// data key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPasswordSet {
    pub hash: Personal<String>,
}

/// A source declared an extension schema for its users or groups.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaDeclared {
    /// `User` or `Group`: the resource type the schema extends.
    pub resource_type: String,
    pub schema: crate::declared::DeclaredSchema,
}

/// Every event type at its current schema version.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    DirectoryCreated(DirectoryCreated),
    /// An empty directory was deleted; its name may be created again.
    DirectoryDeleted,
    AdminTokenIssued(AdminTokenIssued),
    AdminTokenRevoked(AdminTokenRevoked),
    SourceCreated(SourceCreated),
    SourceTokenIssued(SourceTokenIssued),
    SourceTokenRevoked(SourceTokenRevoked),
    SourceSchemaDeclared(SchemaDeclared),
    /// A source was deleted: its tokens are refused from this event on; the users and
    /// groups it wrote stay in the directory.
    SourceDeleted,
    UserCreated(UserCreated),
    UserReplaced(UserReplaced),
    UserDeleted,
    UserErased(UserErased),
    UserAdopted(Adopted),
    UserPasswordSet(UserPasswordSet),
    GroupCreated(GroupCreated),
    GroupReplaced(GroupReplaced),
    GroupMembersAdded(GroupMembersAdded),
    GroupMembersRemoved(GroupMembersRemoved),
    GroupDeleted,
    GroupAdopted(Adopted),
    ProviderCreated(ProviderCreated),
    ProviderUpdated(ProviderUpdated),
    ProviderDeleted,
    /// An operator asked for a full sync now.
    ProviderSyncRequested,
    /// An operator asked for the parked objects to be tried again now.
    ProviderRetryRequested,
    ProviderReplayRequested(ProviderReplayRequested),
    MappingCreated(MappingCreated),
    MappingUpdated(MappingUpdated),
    MappingDeleted,
    SourceMappingsSet(crate::SourceMappingsSet),
    /// Requests Roster refused (audit only: no view changes).
    AccessRefused(AccessRefused),
    /// Reads of the audit trail (audit only: no view changes).
    AuditRead(AuditRead),
}

/// Every stored event type name, in catalogue order.
pub const EVENT_TYPES: &[&str] = &[
    "directory.created",
    "admin.token_issued",
    "source.created",
    "source.token_issued",
    "source.token_revoked",
    "user.created",
    "user.replaced",
    "user.deleted",
    "group.created",
    "group.replaced",
    "group.members_added",
    "group.members_removed",
    "group.deleted",
    "user.adopted",
    "group.adopted",
    "user.password_set",
    "source.schema_declared",
    "provider.created",
    "provider.updated",
    "provider.deleted",
    "provider.sync_requested",
    "provider.retry_requested",
    "provider.replay_requested",
    "admin.token_revoked",
    "source.deleted",
    "directory.deleted",
    "access.refused",
    "audit.read",
    "user.erased",
    "mapping.created",
    "mapping.updated",
    "mapping.deleted",
    "source.mappings_set",
];

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

impl Event {
    /// The stored name of this event's type.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::DirectoryCreated(_) => "directory.created",
            Event::DirectoryDeleted => "directory.deleted",
            Event::AdminTokenIssued(_) => "admin.token_issued",
            Event::AdminTokenRevoked(_) => "admin.token_revoked",
            Event::SourceCreated(_) => "source.created",
            Event::SourceTokenIssued(_) => "source.token_issued",
            Event::SourceTokenRevoked(_) => "source.token_revoked",
            Event::UserCreated(_) => "user.created",
            Event::UserReplaced(_) => "user.replaced",
            Event::UserDeleted => "user.deleted",
            Event::UserErased(_) => "user.erased",
            Event::GroupCreated(_) => "group.created",
            Event::GroupReplaced(_) => "group.replaced",
            Event::GroupMembersAdded(_) => "group.members_added",
            Event::GroupMembersRemoved(_) => "group.members_removed",
            Event::GroupDeleted => "group.deleted",
            Event::UserAdopted(_) => "user.adopted",
            Event::GroupAdopted(_) => "group.adopted",
            Event::UserPasswordSet(_) => "user.password_set",
            Event::SourceSchemaDeclared(_) => "source.schema_declared",
            Event::SourceDeleted => "source.deleted",
            Event::ProviderCreated(_) => "provider.created",
            Event::ProviderUpdated(_) => "provider.updated",
            Event::ProviderDeleted => "provider.deleted",
            Event::ProviderSyncRequested => "provider.sync_requested",
            Event::ProviderRetryRequested => "provider.retry_requested",
            Event::ProviderReplayRequested(_) => "provider.replay_requested",
            Event::MappingCreated(_) => "mapping.created",
            Event::MappingUpdated(_) => "mapping.updated",
            Event::MappingDeleted => "mapping.deleted",
            Event::SourceMappingsSet(_) => "source.mappings_set",
            Event::AccessRefused(_) => "access.refused",
            Event::AuditRead(_) => "audit.read",
        }
    }

    /// Whether this event ends its resource's life (a user or group deleted, a user erased):
    /// its id stays retired in the directory for good.
    pub fn retires(&self) -> bool {
        matches!(
            self,
            Event::UserDeleted | Event::UserErased(_) | Event::GroupDeleted
        )
    }

    /// Whether this event is for the audit trail only (a refused request, a read of the
    /// trail): it changes no view and no provider sends anything for it.
    pub fn audit_only(&self) -> bool {
        matches!(self, Event::AccessRefused(_) | Event::AuditRead(_))
    }

    /// The payload as JSON.
    pub fn payload_json(&self) -> Value {
        let v = match self {
            Event::DirectoryCreated(p) => serde_json::to_value(p),
            Event::AdminTokenIssued(p) => serde_json::to_value(p),
            Event::AdminTokenRevoked(p) => serde_json::to_value(p),
            Event::SourceCreated(p) => serde_json::to_value(p),
            Event::SourceTokenIssued(p) => serde_json::to_value(p),
            Event::SourceTokenRevoked(p) => serde_json::to_value(p),
            Event::UserCreated(p) => serde_json::to_value(p),
            Event::UserReplaced(p) => serde_json::to_value(p),
            Event::GroupCreated(p) => serde_json::to_value(p),
            Event::GroupReplaced(p) => serde_json::to_value(p),
            Event::GroupMembersAdded(p) => serde_json::to_value(p),
            Event::GroupMembersRemoved(p) => serde_json::to_value(p),
            Event::UserAdopted(p) | Event::GroupAdopted(p) => serde_json::to_value(p),
            Event::UserPasswordSet(p) => serde_json::to_value(p),
            Event::UserErased(p) => serde_json::to_value(p),
            Event::SourceSchemaDeclared(p) => serde_json::to_value(p),
            Event::ProviderCreated(p) => serde_json::to_value(p),
            Event::ProviderUpdated(p) => serde_json::to_value(p),
            Event::ProviderReplayRequested(p) => serde_json::to_value(p),
            Event::MappingCreated(p) => serde_json::to_value(p),
            Event::MappingUpdated(p) => serde_json::to_value(p),
            Event::SourceMappingsSet(p) => serde_json::to_value(p),
            Event::AccessRefused(p) => serde_json::to_value(p),
            Event::AuditRead(p) => serde_json::to_value(p),
            Event::UserDeleted
            | Event::GroupDeleted
            | Event::SourceDeleted
            | Event::DirectoryDeleted
            | Event::ProviderDeleted
            | Event::ProviderSyncRequested
            | Event::ProviderRetryRequested
            | Event::MappingDeleted => serde_json::to_value(Empty {}),
        };
        // Serializing these plain structs to a Value cannot fail: no maps with non-string
        // keys, no custom serializers that error.
        v.expect("event payloads always serialize")
    }

    /// Decodes a payload that is already at the current schema version of `event_type`.
    pub fn from_payload(event_type: &str, payload: Value) -> Result<Event, serde_json::Error> {
        Self::deserialize_payload(event_type, payload)
    }

    /// Decodes a payload at the current schema version of `event_type` from any
    /// deserializer (the envelope decodes its payload in place with this).
    ///
    /// Fails on an unknown type or a payload that does not fit the type's schema.
    pub fn deserialize_payload<'de, D: serde::Deserializer<'de>>(
        event_type: &str,
        d: D,
    ) -> Result<Event, D::Error> {
        use serde::de::Error;
        use serde::Deserialize as De;
        Ok(match event_type {
            "directory.created" => Event::DirectoryCreated(De::deserialize(d)?),
            "admin.token_issued" => Event::AdminTokenIssued(De::deserialize(d)?),
            "admin.token_revoked" => Event::AdminTokenRevoked(De::deserialize(d)?),
            "source.deleted" => {
                Empty::deserialize(d)?;
                Event::SourceDeleted
            }
            "directory.deleted" => {
                Empty::deserialize(d)?;
                Event::DirectoryDeleted
            }
            "source.created" => Event::SourceCreated(De::deserialize(d)?),
            "source.token_issued" => Event::SourceTokenIssued(De::deserialize(d)?),
            "source.token_revoked" => Event::SourceTokenRevoked(De::deserialize(d)?),
            "user.created" => Event::UserCreated(De::deserialize(d)?),
            "user.replaced" => Event::UserReplaced(De::deserialize(d)?),
            "user.deleted" => {
                Empty::deserialize(d)?;
                Event::UserDeleted
            }
            "user.erased" => Event::UserErased(De::deserialize(d)?),
            "group.created" => Event::GroupCreated(De::deserialize(d)?),
            "group.replaced" => Event::GroupReplaced(De::deserialize(d)?),
            "group.members_added" => Event::GroupMembersAdded(De::deserialize(d)?),
            "group.members_removed" => Event::GroupMembersRemoved(De::deserialize(d)?),
            "user.adopted" => Event::UserAdopted(De::deserialize(d)?),
            "group.adopted" => Event::GroupAdopted(De::deserialize(d)?),
            "user.password_set" => Event::UserPasswordSet(De::deserialize(d)?),
            "source.schema_declared" => Event::SourceSchemaDeclared(De::deserialize(d)?),
            "group.deleted" => {
                Empty::deserialize(d)?;
                Event::GroupDeleted
            }
            "provider.created" => Event::ProviderCreated(De::deserialize(d)?),
            "provider.updated" => Event::ProviderUpdated(De::deserialize(d)?),
            "provider.replay_requested" => Event::ProviderReplayRequested(De::deserialize(d)?),
            "access.refused" => Event::AccessRefused(De::deserialize(d)?),
            "audit.read" => Event::AuditRead(De::deserialize(d)?),
            "provider.deleted" => {
                Empty::deserialize(d)?;
                Event::ProviderDeleted
            }
            "provider.sync_requested" => {
                Empty::deserialize(d)?;
                Event::ProviderSyncRequested
            }
            "provider.retry_requested" => {
                Empty::deserialize(d)?;
                Event::ProviderRetryRequested
            }
            "mapping.created" => Event::MappingCreated(De::deserialize(d)?),
            "mapping.updated" => Event::MappingUpdated(De::deserialize(d)?),
            "mapping.deleted" => {
                Empty::deserialize(d)?;
                Event::MappingDeleted
            }
            "source.mappings_set" => Event::SourceMappingsSet(De::deserialize(d)?),
            other => return Err(D::Error::custom(format!("unknown event type {other:?}"))),
        })
    }
}
