//! Roster's stored vocabulary: the event envelope, every event type with its schema version,
//! the upcasters that bring old stored events to the current shape, and the log record that
//! carries one command's events together with the directory-sequence chain.
//!
//! This crate owns the bytes that are written to the log and must keep decoding them forever.
//! It knows nothing of HTTP, storage engines or async runtimes.

mod access;
pub mod chain;
mod declared;
mod document;
mod envelope;
mod ids;
mod mapping;
pub mod personal;
mod provider;
mod record;
mod types;
mod upcast;

pub use access::{AccessRefused, AuditRead, Interface, RefusalReason};
pub use declared::{DeclaredAttribute, DeclaredSchema};
pub use document::Document;
pub use envelope::{Actor, Client, DecodeError, Envelope, ResourceType};
pub use ids::{fold_case, ResourceId};
pub use mapping::{
    Mapped, MappingCreated, MappingDef, MappingKind, MappingUpdated, SourceMappingsSet,
};
pub use personal::{KeyId, Personal};
pub use provider::{
    ProviderAuth, ProviderConfig, ProviderCreated, ProviderGrant, ProviderMode,
    ProviderReplayRequested, ProviderScope, ProviderTls, ProviderUpdated, Sealed,
};
pub use record::{partition_of, ChainHead, ChainState, Record, RecordHeader};
pub use types::{
    AdminTokenIssued, AdminTokenRevoked, Adopted, DirectoryCreated, Event, GroupCreated,
    GroupMembersAdded, GroupMembersRemoved, GroupReplaced, Member, MemberType, Ownership,
    SchemaDeclared, SourceCreated, SourceTokenIssued, SourceTokenRevoked, UndeclaredExtensions,
    UserCreated, UserErased, UserPasswordSet, UserReplaced, EVENT_TYPES,
};
pub use upcast::{current_schema_version, Upcaster, UPCASTERS};

/// The name of the directory that exists from the first start.
pub const DEFAULT_DIRECTORY: &str = "default";
