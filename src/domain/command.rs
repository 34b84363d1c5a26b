//! What can be asked of a directory (`Command`), on whose behalf (`Context`), and what comes
//! back: the outcome of a command that was decided, or why it was refused (`DomainError`).

use crate::patch::{MemberOp, MemberRef, PatchError, PatchOp};
use roster_events::{
    Actor, Client, MappingDef, Ownership, ProviderConfig, ResourceId, UndeclaredExtensions,
};
use roster_projections::schema::Checked;

/// A hashed token ready to be recorded.
#[derive(Clone, Debug)]
pub struct NewToken {
    pub id: ResourceId,
    pub hash: String,
    pub prefix: String,
}

/// A PATCH's document computed at the edge, off the writer, against one version of the
/// resource. The writer uses it when the resource is still at that version, and otherwise
/// applies the operations again to what is there now.
#[derive(Clone, Debug)]
pub struct Evaluated {
    pub version: u64,
    pub document: Checked,
}

/// A user PATCH: its checked operations and, if the edge could compute it, their result.
#[derive(Clone, Debug)]
pub struct UserPatch {
    pub ops: Vec<PatchOp>,
    pub evaluated: Option<Evaluated>,
}

/// A group PATCH: the operations on its document (with their result, as for users) and those
/// on its members, which the writer applies as set operations.
#[derive(Clone, Debug)]
pub struct GroupPatch {
    pub ops: Vec<PatchOp>,
    pub members: Vec<MemberOp>,
    pub evaluated: Option<Evaluated>,
}

/// What a caller asks a directory to do.
#[derive(Clone, Debug)]
pub enum Command {
    /// First start: the directory itself, an admin token, and a source with its token, all
    /// in one record so that a crash never leaves a half-initialised directory.
    Bootstrap {
        admin: NewToken,
        source_slug: String,
        source_token: NewToken,
    },
    /// A directory of its own (users, groups, sources and providers apart from the others).
    CreateDirectory,
    /// Requests that were refused, for the audit trail only.
    RecordRefusal(roster_events::AccessRefused),
    /// Reads of the audit trail, for the audit trail only.
    RecordRead(roster_events::AuditRead),
    /// An empty directory (no users, groups, sources or providers) is deleted; `default`,
    /// which holds the admin tokens, never is.
    DeleteDirectory,
    /// Another admin token, kept in the `default` directory like the first.
    IssueAdminToken {
        token: NewToken,
    },
    RevokeAdminToken {
        token_id: ResourceId,
        /// Whether a configured `admin_token` would still let admins in: without one, the
        /// last valid issued token cannot be revoked.
        configured: bool,
    },
    /// A source is deleted: its tokens are refused from then on; what it wrote stays.
    DeleteSource {
        slug: String,
    },
    CreateSource {
        slug: String,
        token: NewToken,
        ownership: Ownership,
        undeclared_extensions: UndeclaredExtensions,
    },
    IssueSourceToken {
        slug: String,
        token: NewToken,
    },
    /// A source declares an extension schema for its users or groups.
    DeclareSchema {
        slug: String,
        resource_type: String,
        schema: roster_events::DeclaredSchema,
    },
    RevokeSourceToken {
        slug: String,
        token_id: ResourceId,
    },
    CreateUser {
        resource: Checked,
        /// An Argon2id hash of the password the client sent, made at the edge.
        password_hash: Option<String>,
    },
    ReplaceUser {
        id: ResourceId,
        resource: Checked,
        password_hash: Option<String>,
        if_match: Option<u64>,
    },
    DeleteUser {
        id: ResourceId,
        if_match: Option<u64>,
    },
    /// A person's personal data is erased (docs/adr/0014): a user still in the directory
    /// leaves it as with a delete; one deleted before is erased all the same. What the
    /// directory no longer knows of a deleted user comes from the audit trail: its last
    /// `version` and its data `key`. Admins only.
    EraseUser {
        id: ResourceId,
        version: u64,
        key: Option<roster_events::KeyId>,
        /// How many of the user's events hold personal data in clear.
        in_clear: u64,
        /// The request the erasure answers (a ticket number), for auditors.
        reference: Option<String>,
    },
    CreateGroup {
        resource: Checked,
        members: Vec<MemberRef>,
    },
    ReplaceGroup {
        id: ResourceId,
        resource: Checked,
        members: Vec<MemberRef>,
        if_match: Option<u64>,
    },
    DeleteGroup {
        id: ResourceId,
        if_match: Option<u64>,
    },
    /// RFC 7644 §3.5.2: the outcome is recorded as a replacement (and, for a group, as the
    /// members removed and added).
    PatchUser {
        id: ResourceId,
        patch: UserPatch,
        password_hash: Option<String>,
        if_match: Option<u64>,
    },
    PatchGroup {
        id: ResourceId,
        patch: GroupPatch,
        if_match: Option<u64>,
    },
    /// An outbound provider; its secrets are already sealed.
    CreateProvider {
        id: ResourceId,
        config: ProviderConfig,
    },
    UpdateProvider {
        id: ResourceId,
        config: ProviderConfig,
    },
    DeleteProvider {
        id: ResourceId,
    },
    /// A request to a provider's consumer, recorded for it (and the audit trail) in the log.
    RequestProvider {
        id: ResourceId,
        request: ProviderRequest,
    },
    /// A property mapping whose expression was compiled and tried at the edge.
    CreateMapping {
        id: ResourceId,
        mapping: MappingDef,
    },
    /// A mapping's new definition; its name and kind stay.
    UpdateMapping {
        id: ResourceId,
        mapping: MappingDef,
    },
    DeleteMapping {
        id: ResourceId,
    },
    /// The source mappings a source runs on what it writes, in order.
    SetSourceMappings {
        slug: String,
        mappings: Vec<String>,
    },
    /// A source's current mappings run again on one object it owns, as stored (an operator's
    /// re-map after the mappings changed).
    Remap {
        slug: String,
        user: bool,
        id: ResourceId,
    },
}

/// What an operator can ask of a running provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderRequest {
    /// A full sync now.
    Sync,
    /// Try the parked objects again now.
    Retry,
    /// Carry every change again from this position of the directory's partition.
    Replay { from: u64 },
}

/// Who is asking, and on behalf of which request.
#[derive(Clone, Debug)]
pub struct Context {
    pub actor: Actor,
    /// The source the request came through; with the `owned` policy it sees only its own.
    pub source: Option<String>,
    pub correlation_id: Option<String>,
    /// The client the request came from (token, address, user agent); `None` for Roster's own.
    pub client: Option<Client>,
}

/// Why a command was refused. Nothing was written.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DomainError {
    /// A uniqueness rule would be broken (RFC 7644 scimType `uniqueness`).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// If-Match named a version that is no longer current.
    #[error("resource version is {current}, not {expected}")]
    PreconditionFailed { current: u64, expected: u64 },
    /// A value is not acceptable (RFC 7644 scimType `invalidValue`).
    #[error("{0}")]
    Invalid(String),
    /// A PATCH request cannot be applied; carries its scimType.
    #[error(transparent)]
    Patch(PatchError),
}

/// What a successful command produced, for the response.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Done,
    User(ResourceId),
    Group(ResourceId),
    Source(ResourceId),
    Provider(ResourceId),
    Mapping(ResourceId),
}
