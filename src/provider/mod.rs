//! Outbound SCIM providers (issue 6), being built. What is here is the pure part of turning
//! changes into requests to a remote RFC 7644 server, with the vendors' quirks: the remote's
//! capabilities and the compatibility modes ([`compat`]), the requests themselves ([`plan`]),
//! and when to try again ([`retry`]). The per-provider consumers, their state, the HTTP
//! client, full resync and the admin API come next; nothing uses this module yet.

pub mod compat;
pub mod plan;
pub mod retry;
