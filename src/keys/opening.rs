//! The read side of personal data (docs/adr/0014): a log whose records come out with their
//! personal data opened with the data keys, or marked erased where a key was destroyed.
//! Every reader (projections, the audit trail, providers, rebuilds) reads through it, so none
//! of them handles ciphertext.

use super::{KeyError, Keyring};
use crate::log::{EventLog, HeaderEntry, LogError};
use async_trait::async_trait;
use roster_events::chain::Encoded;
use roster_events::personal::{KeyState, PersonalError};
use roster_projections::LogEntry;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// `inner`, with personal data opened on the way out.
pub struct OpeningLog {
    inner: Arc<dyn EventLog>,
    keys: Arc<Keyring>,
}

impl OpeningLog {
    /// `inner`, read through keys.
    pub fn wrap(inner: Arc<dyn EventLog>, keys: Arc<Keyring>) -> Arc<dyn EventLog> {
        Arc::new(OpeningLog { inner, keys })
    }

    async fn open(&self, mut entries: Vec<LogEntry>) -> Result<Vec<LogEntry>, LogError> {
        for e in &mut entries {
            loop {
                let keys = |id| self.keys.state(id);
                if !e.record.to_open(&keys) {
                    break;
                }
                // Opened where it is when this read holds the only handle on it (a record
                // just decoded), in a copy otherwise (one this process kept in memory).
                match Arc::make_mut(&mut e.record).open_personal_in_place(&keys) {
                    Ok(()) => break,
                    Err(PersonalError::UnknownKey(id)) => {
                        // A key another process created arrives through a shared store.
                        match self.keys.state_waiting(id).await {
                            Ok(KeyState::Unknown) => return Err(missing(e, id)),
                            Ok(_) => continue,
                            Err(KeyError::Unavailable(why)) => {
                                return Err(LogError::Unavailable(why))
                            }
                            Err(KeyError::Damaged(why)) => return Err(LogError::Corrupt(why)),
                        }
                    }
                    Err(why) => {
                        return Err(LogError::Corrupt(format!(
                            "record at position {} of partition {}: {why}",
                            e.position, e.partition
                        )))
                    }
                }
            }
        }
        Ok(entries)
    }
}

fn missing(e: &LogEntry, id: roster_events::KeyId) -> LogError {
    LogError::Corrupt(format!(
        "record at position {} of partition {} is sealed with data key {id}, which the key \
         store does not hold: restore the key store from a backup",
        e.position, e.partition
    ))
}

#[async_trait]
impl EventLog for OpeningLog {
    fn partitions(&self) -> u32 {
        self.inner.partitions()
    }

    async fn append_encoded(&self, records: Vec<Encoded>) -> Result<Vec<u64>, LogError> {
        self.inner.append_encoded(records).await
    }

    async fn read(&self, partition: u32, from: u64, max: usize) -> Result<Vec<LogEntry>, LogError> {
        let entries = self.inner.read(partition, from, max).await?;
        self.open(entries).await
    }

    /// As stored: verification checks bytes and seals, never personal data.
    async fn read_as_stored(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<LogEntry>, LogError> {
        self.inner.read_as_stored(partition, from, max).await
    }

    async fn read_headers(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<HeaderEntry>, LogError> {
        self.inner.read_headers(partition, from, max).await
    }

    async fn caught_up(&self, partition: u32, next: u64) -> Result<bool, LogError> {
        self.inner.caught_up(partition, next).await
    }

    fn end(&self, partition: u32) -> watch::Receiver<u64> {
        self.inner.end(partition)
    }

    fn poll_interval(&self) -> Option<Duration> {
        self.inner.poll_interval()
    }

    fn follower(&self) -> Option<Arc<dyn EventLog>> {
        let inner = self.inner.follower()?;
        Some(OpeningLog::wrap(inner, self.keys.clone()))
    }

    fn healthy(&self) -> bool {
        self.inner.healthy()
    }

    async fn close(&self) {
        self.inner.close().await
    }
}
