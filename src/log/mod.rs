//! The event log seam: the source of truth and the audit trail.
//!
//! One trait, [`EventLog`], with two implementations: the embedded segment-file log
//! ([`FileLog`], the default) and Apache Kafka ([`KafkaLog`]). Every implementation passes the
//! same contract suite (`tests/log_contract.rs`). A log has one or more partitions; a directory
//! lives in exactly one ([`roster_events::partition_of`]); positions are dense offsets within a
//! partition, starting at 0. A record appended and acknowledged is never lost.

mod file;
mod kafka;

pub use file::{
    check, frame, read_frame, repair, segments, CheckReport, Damage, FileLog, FileLogOptions,
    Repair, SegmentReport,
};
pub(crate) use kafka::{client_configs, ensure_topic, oauth_tokens, KafkaContext, TopicSpec};
pub use kafka::{
    KafkaLog, KafkaOptions, KafkaProtocol, KafkaSecurity, OAuthClient, SaslMechanism, SecurityError,
};

use async_trait::async_trait;
use roster_events::chain::Encoded;
use roster_events::Record;
use roster_projections::LogEntry;
use std::time::Duration;
use tokio::sync::watch;

/// Why the log could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log is down, slow or refused the write, and nothing was written. Try again later.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// The append may or may not have reached the log (a produce timed out after it was
    /// sent). The caller must find out from the log before it answers anyone.
    #[error("event log write outcome unknown: {0}")]
    Unknown(String),
    /// Stored data cannot be read back: an operator must look.
    #[error("event log corrupt: {0}")]
    Corrupt(String),
}

impl LogError {
    /// Whether trying again later can succeed without anyone acting: all but corrupt data.
    pub fn transient(&self) -> bool {
        !matches!(self, LogError::Corrupt(_))
    }
}

/// An append-only, durable, partitioned sequence of records.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// How many partitions the log has. Fixed for the life of the log: directories are placed
    /// by it.
    fn partitions(&self) -> u32 {
        1
    }

    /// The partition `directory` lives in.
    fn partition(&self, directory: &str) -> u32 {
        roster_events::partition_of(directory, self.partitions())
    }

    /// Appends `records`, which all belong to one partition, in order, and returns their
    /// positions in that partition once they are durable.
    ///
    /// Fails with `Unavailable` when nothing was written, or `Unknown` when the records may
    /// have been written (some may still appear in the log; the directory-sequence rule makes a
    /// second copy harmless, and the writer resolves the outcome by reading back).
    async fn append(&self, records: Vec<Record>) -> Result<Vec<u64>, LogError> {
        self.append_encoded(records.into_iter().map(Encoded::plain).collect())
            .await
    }

    /// Appends records already encoded (sealed by a writer: [`roster_events::chain::ChainKey::seal`]),
    /// as `append` does. The bytes are stored as they are.
    ///
    /// Fails as `append` does.
    async fn append_encoded(&self, records: Vec<Encoded>) -> Result<Vec<u64>, LogError>;

    /// Reads up to `max` entries of `partition` starting at `from`. Returns what is there now
    /// (an empty batch at the end); a networked log may wait briefly for the first entry.
    ///
    /// Fails when the log cannot be read (`Unavailable`) or holds undecodable data (`Corrupt`).
    async fn read(&self, partition: u32, from: u64, max: usize) -> Result<Vec<LogEntry>, LogError>;

    /// Like `read`, with every digest computed from the bytes as stored, never taken from
    /// what this process appended: for verification, which must see a record changed behind
    /// the server's back.
    ///
    /// Fails as `read` does.
    async fn read_as_stored(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<LogEntry>, LogError> {
        self.read(partition, from, max).await
    }

    /// Like `read`, without the digests of the records' bodies: for readers that follow no
    /// chain (the audit trail reading events back, export). A log that can skip computing
    /// them does.
    ///
    /// Fails as `read` does.
    async fn read_records(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordEntry>, LogError> {
        let entries = self.read(partition, from, max).await?;
        Ok(entries.into_iter().map(RecordEntry::from).collect())
    }

    /// Like `read_as_stored`, without the records' events: what verification needs (the
    /// header the chain rule reads, and the digest of the stored body). A log that can pass
    /// over the events without decoding them does.
    ///
    /// Fails as `read` does.
    async fn read_headers(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<HeaderEntry>, LogError> {
        let entries = self.read_as_stored(partition, from, max).await?;
        Ok(entries
            .into_iter()
            .map(|e| HeaderEntry {
                position: e.position,
                header: e.record.header(),
                digest: e.digest,
            })
            .collect())
    }

    /// True when `next` is the end of `partition` as far as this process knows: every record
    /// appended before the log was opened, and every record this process appended, is below
    /// it. Start-up replays until every partition is caught up.
    ///
    /// Fails when the end cannot be learnt (`Unavailable`).
    async fn caught_up(&self, partition: u32, next: u64) -> Result<bool, LogError>;

    /// The position after the last record of `partition` known to this process, updated as
    /// records are appended or read: followers wait on it.
    fn end(&self, partition: u32) -> watch::Receiver<u64>;

    /// How many reads of one partition can be in flight at once without slowing each other
    /// down: 1 for a log that reads a partition through one cursor (each read at another
    /// position moves it), more for one whose reads are independent.
    fn concurrent_reads(&self) -> usize {
        1
    }

    /// How long a follower waits, at most, before reading again: `None` when `end` announces
    /// every record (one process owns the log), a duration when other processes append too.
    fn poll_interval(&self) -> Option<Duration> {
        None
    }

    /// A handle on the same log that reads with cursors of its own, for a follower that reads
    /// at other positions than the projectors (the audit index, a provider): on Kafka a read
    /// at a position its consumer is not at re-positions the consumer and waits for a fresh
    /// fetch, so followers that shared one would keep undoing each other's. `None` when reads
    /// are stateless (the file log): read through this log itself.
    fn follower(&self) -> Option<std::sync::Arc<dyn EventLog>> {
        None
    }

    /// False while the log refuses or cannot take writes (the file log after a failed fsync, a
    /// broker that is unreachable). Writers answer 503 at once instead of trying; readiness
    /// checks report it.
    fn healthy(&self) -> bool {
        true
    }

    /// Finishes the appends already handed over, then closes the log and releases what it
    /// holds (the file log's directory lock). Appends after this fail with `Unavailable`.
    async fn close(&self);
}

/// A record at its position, without its digest: see [`EventLog::read_records`].
#[derive(Clone, Debug)]
pub struct RecordEntry {
    pub partition: u32,
    pub position: u64,
    pub record: std::sync::Arc<Record>,
}

impl From<LogEntry> for RecordEntry {
    fn from(e: LogEntry) -> RecordEntry {
        RecordEntry {
            partition: e.partition,
            position: e.position,
            record: e.record,
        }
    }
}

/// A record's header as stored, at its position: see [`EventLog::read_headers`].
#[derive(Clone, Debug)]
pub struct HeaderEntry {
    pub position: u64,
    pub header: roster_events::RecordHeader,
    /// The digest of the record's body as stored.
    pub digest: roster_events::chain::Digest,
}

/// Waits until `end` (the log's [`EventLog::end`] of a partition) moves past `next`, or, on a
/// log other processes append to, for its poll interval. False when the log closed.
pub async fn wait_past(log: &dyn EventLog, end: &mut watch::Receiver<u64>, next: u64) -> bool {
    let poll = log.poll_interval();
    let poll_wait = async {
        match poll {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = end.wait_for(|&e| e > next) => r.is_ok(),
        _ = poll_wait => true,
    }
}
