//! Audit-only events: requests Roster refused and reads of the audit trail. They change no
//! view and reach no provider; they are in the log so that the audit trail answers "who tried
//! and failed" and "who looked". Each record may stand for many requests: refusals and reads
//! are counted per client over a window (`count`, `first`, `last`), so that a flood of bad
//! tokens cannot grow the log without bound.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The interface a refused request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interface {
    /// A source's SCIM endpoints (`/source/scim/<slug>/v2`).
    Scim,
    /// The admin API (`/admin/v1`).
    Admin,
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The request carried no bearer token.
    NoToken,
    /// The URL names a source that does not exist.
    UnknownSource,
    /// The bearer token opens nothing here: unknown, revoked, or another source's.
    InvalidToken,
    /// An authenticated admin asked for something Roster refused (`detail` says why).
    ActionRefused,
    /// The admin API requires a client certificate (`tls_admin_client_ca`) and the connection
    /// presented none.
    NoClientCertificate,
}

/// Requests that were refused, counted over a window: the first of a window gets a record of
/// its own at once (`count` 1); the others of the window are one record at its end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRefused {
    pub interface: Interface,
    pub reason: RefusalReason,
    /// The HTTP status the client was answered with.
    pub status: u16,
    /// The method of the first request counted.
    pub method: String,
    /// The path of the first request counted, without its query (cut to 512 bytes).
    pub path: String,
    /// What the client was told, for a refused action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// How many requests this record stands for (at least 1).
    pub count: u64,
    /// When the first and the last of them came.
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

/// Reads of the audit trail by one admin token from one address, of one path, counted over a
/// window as refusals are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRead {
    /// The audit API path read (`/admin/v1/audit/events`, a resource's history, ...).
    pub path: String,
    /// The query of the first read counted (cut to 2,048 bytes), if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// How many reads this record stands for (at least 1).
    pub count: u64,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}
