//! Outbound SCIM providers (issue 6), being built. What is here is the pure part of turning
//! changes into requests to a remote RFC 7644 server, with the vendors' quirks: the remote's
//! capabilities and the compatibility modes ([`compat`]), the requests themselves ([`plan`]),
//! when to try again ([`retry`]), the default mapping of users and groups to remote documents ([`mapping`], with the
//! seam for configurable mappings), and the HTTP side ([`client`]: authentication with cached
//! OAuth2 tokens, the cached ServiceProviderConfig, retries, a log of recent requests). The
//! per-provider consumers, their state, full resync and the admin API come next; nothing uses
//! this module yet.

pub mod client;
pub mod compat;
pub mod mapping;
pub mod plan;
pub mod retry;
