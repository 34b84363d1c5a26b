//! Outbound SCIM providers: each one a consumer of the log that pushes one directory's users
//! and groups to a remote RFC 7644 server, with the vendors' quirks (ADR 0007, ADR 0008).
//!
//! The requests:
//! - [`compat`]: the remote's capabilities and the compatibility modes;
//! - [`plan`]: the requests themselves, Bulk included;
//! - [`retry`]: when to try again;
//! - [`mapping`]: the default mapping of users and groups to remote documents, and the seam
//!   for configurable mappings;
//! - [`client`]: the HTTP side (authentication with cached OAuth2 tokens, the cached
//!   ServiceProviderConfig, retries, a log of recent requests);
//! - [`sync`]: one object's change carried to the remote, with the link between local and
//!   remote ids, the 409 and 404 recoveries, deactivation and dry runs.
//!
//! The consumer around them:
//! - [`settings`]: a provider's settings as the admin API takes them (secrets sealed);
//! - [`config`]: a provider's configuration as the admin API shows it, and its remote;
//! - [`scope`]: which users and groups a provider carries;
//! - [`queue`]: a provider's work object by object (order per object, a concurrency limit,
//!   backoff that holds up only the failing object, parking);
//! - [`carry`]: one task, one object (or a Bulk request of users) brought up to date;
//! - [`fullsync`]: a full sync's plan, from the views and the remote's listing;
//! - [`state`]: the checkpointed position, progress and links (file journal or PostgreSQL);
//! - [`runner`]: the consumer of the log itself;
//! - [`manager`]: the consumers this process runs;
//! - [`lag`]: each provider's lag over the last day, sampled by the manager.

pub mod carry;
pub mod chain;
pub mod client;
pub mod compat;
pub mod config;
pub mod fullsync;
pub mod lag;
pub mod manager;
pub mod mapping;
pub mod plan;
pub mod queue;
pub mod retry;
pub mod runner;
pub mod scope;
pub mod settings;
pub mod state;
pub mod sync;
pub mod tls;
