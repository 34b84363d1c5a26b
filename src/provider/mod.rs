//! Outbound SCIM providers (issue 6), being built. What is here turns changes into requests
//! to a remote RFC 7644 server, with the vendors' quirks:
//!
//! - [`compat`]: the remote's capabilities and the compatibility modes;
//! - [`plan`]: the requests themselves;
//! - [`retry`]: when to try again;
//! - [`mapping`]: the default mapping of users and groups to remote documents, and the seam
//!   for configurable mappings;
//! - [`client`]: the HTTP side (authentication with cached OAuth2 tokens, the cached
//!   ServiceProviderConfig, retries, a log of recent requests).
//!
//! The per-provider consumers, their state, full resync and the admin API come next; nothing
//! uses this module yet.

pub mod client;
pub mod compat;
pub mod mapping;
pub mod plan;
pub mod retry;
