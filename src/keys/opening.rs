//! The read side of personal data (docs/adr/0014): a log whose records come out with their
//! personal data opened with the data keys, or marked erased where a key was destroyed.
//! Every reader (projections, the audit trail, providers, rebuilds) reads through it, so none
//! of them handles ciphertext.

use super::{KeyError, Keyring};
use crate::log::{EventLog, HeaderEntry, LogError, RecordEntry};
use async_trait::async_trait;
use roster_events::chain::Encoded;
use roster_events::personal::{KeyState, PersonalError};
use roster_events::Record;
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

    async fn open<E: Entry>(&self, mut entries: Vec<E>) -> Result<Vec<E>, LogError> {
        if entries.len() >= IN_TWO_FROM {
            // A large batch (a replay at start-up) is opened off the async workers, on two
            // threads; what needs a key not known yet is left for the loop below.
            let keys = self.keys.clone();
            entries = tokio::task::spawn_blocking(move || {
                let half = entries.len() / 2;
                let (a, b) = entries.split_at_mut(half);
                std::thread::scope(|s| {
                    let second = s.spawn(|| open_known(b, &keys));
                    open_known(a, &keys)?;
                    second
                        .join()
                        .map_err(|_| LogError::Corrupt("opening panicked".into()))?
                })?;
                Ok::<_, LogError>(entries)
            })
            .await
            .map_err(|e| LogError::Unavailable(format!("opening records failed: {e}")))??;
        }
        for e in &mut entries {
            loop {
                let keys = |id| self.keys.state(id);
                if !e.record().to_open(&keys) {
                    break;
                }
                // Opened where it is when this read holds the only handle on it (a record
                // just decoded), in a copy otherwise (one this process kept in memory).
                match Arc::make_mut(e.record()).open_personal_in_place(&keys) {
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
                    Err(why) => return Err(corrupt(e, why)),
                }
            }
        }
        Ok(entries)
    }
}

/// From how many records a read is opened on two threads.
const IN_TWO_FROM: usize = 512;

/// Opens what the keys known now open; a record that needs a key not known yet is left as it
/// is (partly opened at most) for the caller to wait for it.
///
/// Fails when a value does not open with its key.
fn open_known<E: Entry>(entries: &mut [E], keys: &Keyring) -> Result<(), LogError> {
    let keys = |id| keys.state(id);
    for e in entries {
        if !e.record().to_open(&keys) {
            continue;
        }
        match Arc::make_mut(e.record()).open_personal_in_place(&keys) {
            Ok(()) | Err(PersonalError::UnknownKey(_)) => {}
            Err(why) => return Err(corrupt(e, why)),
        }
    }
    Ok(())
}

fn corrupt(e: &impl Entry, why: PersonalError) -> LogError {
    let (partition, position) = e.at();
    LogError::Corrupt(format!(
        "record at position {position} of partition {partition}: {why}"
    ))
}

fn missing(e: &impl Entry, id: roster_events::KeyId) -> LogError {
    let (partition, position) = e.at();
    LogError::Corrupt(format!(
        "record at position {position} of partition {partition} is sealed with data key {id}, \
         which the key store does not hold: restore the key store from a backup"
    ))
}

/// What opening needs of an entry read: its record, and where it lies (for what a failure
/// says).
trait Entry: Send + 'static {
    fn record(&mut self) -> &mut Arc<Record>;
    /// The partition and position.
    fn at(&self) -> (u32, u64);
}

impl Entry for LogEntry {
    fn record(&mut self) -> &mut Arc<Record> {
        &mut self.record
    }

    fn at(&self) -> (u32, u64) {
        (self.partition, self.position)
    }
}

impl Entry for RecordEntry {
    fn record(&mut self) -> &mut Arc<Record> {
        &mut self.record
    }

    fn at(&self) -> (u32, u64) {
        (self.partition, self.position)
    }
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

    async fn read_records(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordEntry>, LogError> {
        let entries = self.inner.read_records(partition, from, max).await?;
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

    fn concurrent_reads(&self) -> usize {
        self.inner.concurrent_reads()
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
