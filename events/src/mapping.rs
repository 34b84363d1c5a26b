//! Property mappings as stored: a named CEL expression of one kind (which objects it shapes,
//! on the way in from a source or out to a provider) and the events that create, replace and
//! delete one. The expression is stored as written; it was compiled and tried on sample
//! objects before the event was appended. Also: the list of mappings a source runs, and the
//! record of what a source sent when its mappings changed it.

use serde::{Deserialize, Serialize};

/// Which objects a mapping shapes, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MappingKind {
    /// Users a source writes, before the write is decided.
    SourceUser,
    /// Groups a source writes, before the write is decided.
    SourceGroup,
    /// Users a provider sends.
    ProviderUser,
    /// Groups a provider sends.
    ProviderGroup,
}

impl MappingKind {
    pub const ALL: [MappingKind; 4] = [
        MappingKind::SourceUser,
        MappingKind::SourceGroup,
        MappingKind::ProviderUser,
        MappingKind::ProviderGroup,
    ];

    /// Its stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MappingKind::SourceUser => "source_user",
            MappingKind::SourceGroup => "source_group",
            MappingKind::ProviderUser => "provider_user",
            MappingKind::ProviderGroup => "provider_group",
        }
    }

    /// Whether it shapes users (else groups).
    pub fn users(self) -> bool {
        matches!(self, MappingKind::SourceUser | MappingKind::ProviderUser)
    }
}

/// A mapping's definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingDef {
    /// Unique in its directory; 1-63 lower-case letters, digits, hyphens.
    pub name: String,
    pub kind: MappingKind,
    /// The CEL expression, as written.
    pub expression: String,
    #[serde(default)]
    pub description: String,
}

/// A mapping was created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingCreated {
    pub mapping: MappingDef,
}

/// A mapping's definition was replaced as a whole (its name and kind stay).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingUpdated {
    pub mapping: MappingDef,
}

/// The source mappings a source runs on what it writes, in order (users' and groups' in one
/// list, each applied to its kind); replaces the list it had. An empty list runs none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceMappingsSet {
    pub mappings: Vec<String>,
}

/// What a source sent, when its mappings changed it (carried by the event that stores the
/// result: `user.created`, `user.replaced`, `group.created`, `group.replaced`): the JSON merge
/// patch (RFC 7386) that turns the stored document into the one the source sent (a user's
/// without its password; a PATCH's as its operations left it), and the mappings that ran.
/// A user's is personal data, sealed under the user's key as the document is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapped<T> {
    pub sent_patch: T,
    pub mappings: Vec<String>,
}
