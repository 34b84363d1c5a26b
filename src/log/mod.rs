//! The event log seam: the source of truth and the audit trail.
//!
//! One trait, [`EventLog`], with the embedded segment-file log ([`FileLog`]) as the default
//! implementation. Every implementation passes the same contract suite (`tests/log_contract.rs`).
//! Positions are dense and start at 0; a record appended and acknowledged is never lost.

mod file;

pub use file::{frame, FileLog, FileLogOptions};

use async_trait::async_trait;
use roster_events::Record;
use roster_projections::LogEntry;
use tokio::sync::watch;

/// Why the log could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log is down, slow or refused the write; nothing was acknowledged. Try again later.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// Stored data cannot be read back: an operator must look.
    #[error("event log corrupt: {0}")]
    Corrupt(String),
}

/// An append-only, durable sequence of records.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends `records` in order and returns their positions once they are durable.
    ///
    /// Fails with `Unavailable` when the records could not be made durable; then none of them
    /// was acknowledged (some may still appear in the log, which the directory-sequence rule
    /// and the caller's re-validation make harmless).
    async fn append(&self, records: Vec<Record>) -> Result<Vec<u64>, LogError>;

    /// Reads up to `max` entries starting at `from`, stopping at the end of the log.
    ///
    /// Fails when the log cannot be read (`Unavailable`) or holds undecodable data (`Corrupt`).
    async fn read(&self, from: u64, max: usize) -> Result<Vec<LogEntry>, LogError>;

    /// The position after the last durable record, updated as records are appended: readers
    /// wait on it to follow the log.
    fn end(&self) -> watch::Receiver<u64>;

    /// False once the log refuses writes until a restart (the file log after a failed fsync).
    /// Readiness checks report it.
    fn healthy(&self) -> bool {
        true
    }

    /// Finishes the appends already handed over, then closes the log and releases what it
    /// holds (the file log's directory lock). Appends after this fail with `Unavailable`.
    async fn close(&self);
}
