//! The read side of Roster: the pure fold from events to views ([`Directory::apply`]), the
//! SCIM filter tree and its in-memory evaluation, list queries, and the projection-store seam
//! with its in-memory implementation.
//!
//! Everything here is deterministic: folding the same records always gives the same views,
//! byte for byte. Nothing here knows HTTP; the PostgreSQL store (feature `postgres`, module
//! [`pg`]) is the one place that knows a database client.

pub mod audit;
mod directory;
pub mod filter;
mod image;
mod indexes;
mod name_index;
pub mod names;
#[cfg(feature = "postgres")]
pub mod pg;
mod prefix_index;
mod query;
pub mod schema;
mod store;
#[cfg(test)]
mod testing;
mod views;

pub use directory::{Directory, FoldError, Undo};
pub use image::{Image, ImageError, ImageInfo, IMAGE_FORMAT};
pub use query::{sort_key, ListQuery, Page, SortBy, SortKey, Visibility};
pub use store::{
    CacheCounts, DirectorySnapshot, Folded, LogEntry, MemoryStore, ProjectionStore, StoreError,
};
pub use views::{
    AdminTokenView, DirectoryMeta, GroupView, Keys, MappingView, ProviderView, SourceView,
    TokenView, UserView,
};
