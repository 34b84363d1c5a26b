//! Identifier newtypes and the case folding used for case-insensitive uniqueness.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// The id of a user, group, source, directory or admin token: a UUIDv7, so that ordering by
/// id is ordering by creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourceId(pub Uuid);

impl ResourceId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        ResourceId(Uuid::now_v7())
    }
}

impl Default for ResourceId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for ResourceId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(ResourceId)
    }
}

/// The key under which a case-insensitive attribute (userName, group displayName) is unique.
/// Unicode lower-casing, so `ALICE`, `Alice` and `alice` collide, as RFC 7643 §4.1.1 requires
/// for userName (caseExact=false).
pub fn fold_case(s: &str) -> String {
    if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        s.to_lowercase()
    }
}
