//! Outbound SCIM providers (issue 6), being built. What is here turns changes into requests
//! to a remote RFC 7644 server, with the vendors' quirks:
//!
//! - [`compat`]: the remote's capabilities and the compatibility modes;
//! - [`plan`]: the requests themselves;
//! - [`retry`]: when to try again;
//! - [`mapping`]: the default mapping of users and groups to remote documents, and the seam
//!   for configurable mappings;
//! - [`client`]: the HTTP side (authentication with cached OAuth2 tokens, the cached
//!   ServiceProviderConfig, retries, a log of recent requests);
//! - [`sync`]: one object's change carried to the remote, with the link between local and
//!   remote ids, the 409 and 404 recoveries, deactivation and dry runs;
//! - [`queue`]: a provider's work object by object (order per object, a concurrency limit,
//!   backoff that holds up only the failing object, parking).
//!
//! The provider configuration, the per-provider consumers of the log and their stored state,
//! full resync, bootstrap and the admin API come next; nothing uses this module yet.

pub mod carry;
pub mod client;
pub mod compat;
pub mod config;
pub mod fullsync;
pub mod manager;
pub mod mapping;
pub mod plan;
pub mod queue;
pub mod retry;
pub mod runner;
pub mod scope;
pub mod state;
pub mod sync;
