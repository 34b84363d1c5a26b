//! View snapshots of the memory store (docs/adr/0020): start-up loads the latest snapshot and
//! replays only the log after it, so a restart does not depend on the length of history.
//!
//! A snapshot is the store's image ([`roster_projections::Image`]) sealed under a key derived
//! from the secret key ([`sealed`]), in `<data_dir>/snapshots/views.snap`. It is a cache of
//! the log, never a source of truth:
//! - **Written in the background** when enough records were folded since the last one (and
//!   not more often than a minimum interval), and at a clean stop: the image is listed under
//!   the store's read lock, then written, synced and renamed into place by a blocking task.
//! - **Checked against the log before use:** the log must still hold, at the position before
//!   the snapshot's, the record the snapshot was taken after (same digest). A log that ends
//!   before it lost records the snapshot holds, and a log whose record there differs is
//!   another log: start-up refuses, naming both, rather than serve either silently.
//! - **Never trusted blindly:** a snapshot that is missing, of another format, sealed with
//!   another key, or damaged in any byte is set aside with a warning, and the whole log is
//!   replayed.
//! - **Erasure:** a snapshot holds personal data in the clear once opened; one that reflects
//!   fewer `user.erased` events than the views is deleted within a second of the views
//!   folding the erasure, and a new one is written without the person.

pub mod sealed;

use crate::log::{EventLog, HeaderEntry, LogError};
use crate::metrics::Metrics;
use chacha20poly1305::XChaCha20Poly1305;
use roster_events::chain::Digest;
use roster_projections::{Image, ImageInfo, MemoryStore, IMAGE_FORMAT};
use serde::{Deserialize, Serialize};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the background task looks at the views.
const TICK: Duration = Duration::from_secs(1);
const FILE: &str = "views.snap";
const PARTIAL: &str = "views.snap.partial";

/// When snapshots are written.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Records folded since the last snapshot that make the next one due (0: never write).
    pub every_records: u64,
    /// The least time between two snapshots.
    pub min_interval: Duration,
}

/// Why start-up cannot use the log with the snapshot it has.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "the view snapshot {path} reflects partition {partition} up to position {position}, \
         but the log ends at {end}: the log lost records that were acknowledged. Restore the \
         log from a backup; to start from the log as it is instead, move the snapshot away"
    )]
    LogBehind {
        path: PathBuf,
        partition: u32,
        position: u64,
        end: u64,
    },
    #[error(
        "the view snapshot {path} was taken after another record at position {position} of \
         partition {partition} than the log holds there: the log was replaced or changed since. \
         Point Roster at the log the snapshot was taken of; to start from this log instead, \
         move the snapshot away"
    )]
    LogDiffers {
        path: PathBuf,
        partition: u32,
        position: u64,
    },
    #[error(
        "the view snapshot {path} lists {snapshot} partitions; this log has only {log}. Point \
         Roster at the log the snapshot was taken of; to start from this log \
         instead, move the snapshot away"
    )]
    Partitions {
        path: PathBuf,
        snapshot: usize,
        log: u32,
    },
    #[error("reading the log to check the view snapshot: {0}")]
    Log(#[from] LogError),
}

/// The clear header of a snapshot file: what it reflects.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: u32,
    /// Which log it was taken of ([`Snapshots::new`]'s `log`).
    log: String,
    release: String,
    written_at: chrono::DateTime<chrono::Utc>,
    next_positions: Vec<u64>,
    tails: Vec<Option<Digest>>,
    erasures: u64,
    users: u64,
    groups: u64,
}

/// What the snapshot on disk reflects.
#[derive(Clone, Debug)]
struct Mark {
    positions: Vec<u64>,
    erasures: u64,
    written: Instant,
}

impl Mark {
    fn records(&self) -> u64 {
        self.positions.iter().sum()
    }
}

/// A store loaded from a snapshot.
pub struct Loaded {
    pub store: MemoryStore,
    pub info: ImageInfo,
}

/// The snapshots of one data directory.
pub struct Snapshots {
    dir: PathBuf,
    log: String,
    key: XChaCha20Poly1305,
    policy: Policy,
    metrics: Option<Arc<Metrics>>,
    /// What the file on disk reflects (`None`: there is none).
    mark: Mutex<Option<Mark>>,
}

impl Snapshots {
    /// The snapshots in `data_dir` of the log named `log` (`file`, or `kafka:<topic>`): a
    /// snapshot of another log is not used (the data directory served another log before).
    pub fn new(data_dir: &Path, log: &str, key: XChaCha20Poly1305, policy: Policy) -> Snapshots {
        Snapshots {
            dir: data_dir.join("snapshots"),
            log: log.to_owned(),
            key,
            policy,
            metrics: None,
            mark: Mutex::new(None),
        }
    }

    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The file the latest snapshot is kept in.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    fn set_mark(&self, mark: Option<Mark>) {
        if let Some(m) = &self.metrics {
            m.snapshot_position
                .set(mark.as_ref().map_or(0, |k| k.records()) as i64);
        }
        *self.mark.lock().unwrap_or_else(|p| p.into_inner()) = mark;
    }

    fn mark(&self) -> Option<Mark> {
        self.mark.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The views as the latest snapshot holds them, checked against `log`: `None` when there
    /// is no snapshot or it cannot be used (said in a warning; start-up then replays the
    /// whole log).
    ///
    /// Fails when the log ends before the snapshot or holds another record where the snapshot
    /// was taken: see [`SnapshotError`].
    pub async fn load(&self, log: &dyn EventLog) -> Result<Option<Loaded>, SnapshotError> {
        let path = self.path();
        let started = Instant::now();
        let read = {
            let (path, key) = (path.clone(), self.key.clone());
            tokio::task::spawn_blocking(move || read_file(&path, key)).await
        };
        let (header, loaded) = match read {
            Ok(Ok(Some(read))) => read,
            Ok(Ok(None)) => return Ok(None),
            Ok(Err(e)) => {
                tracing::warn!(
                    path = %path.display(), error = %e,
                    "the view snapshot cannot be used; replaying the whole log"
                );
                return Ok(None);
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the view snapshot failed; replaying the whole log");
                return Ok(None);
            }
        };
        if header.log != self.log {
            tracing::warn!(
                path = %path.display(), snapshot = %header.log, log = %self.log,
                "the view snapshot was taken of another log; replaying the whole log"
            );
            return Ok(None);
        }
        // Partitions after the last one the views ever saw a record of are not listed.
        if header.next_positions.len() > log.partitions() as usize {
            return Err(SnapshotError::Partitions {
                path,
                snapshot: header.next_positions.len(),
                log: log.partitions(),
            });
        }
        for (p, (&next, tail)) in header.next_positions.iter().zip(&header.tails).enumerate() {
            let Some(before) = next.checked_sub(1) else {
                continue;
            };
            let partition = p as u32;
            let found = header_at(log, partition, before).await?;
            match found.first() {
                None => {
                    return Err(SnapshotError::LogBehind {
                        path,
                        partition,
                        position: next,
                        end: log_end(log, partition, before).await?,
                    });
                }
                Some(e) if e.position != before || Some(e.digest) != *tail => {
                    return Err(SnapshotError::LogDiffers {
                        path,
                        partition,
                        position: before,
                    })
                }
                Some(_) => {}
            }
        }
        tracing::info!(
            path = %path.display(),
            users = loaded.info.users,
            groups = loaded.info.groups,
            records = loaded.info.next_positions.iter().sum::<u64>(),
            written_at = %header.written_at,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded the view snapshot"
        );
        self.set_mark(Some(Mark {
            positions: header.next_positions,
            erasures: header.erasures,
            written: Instant::now(),
        }));
        Ok(Some(loaded))
    }

    /// Writes a snapshot of `store` now if anything was folded since the last one (or there
    /// is none), waiting for it.
    pub async fn write_now(&self, store: &Arc<MemoryStore>) {
        let positions = store.next_positions();
        let current = self.mark();
        let changed = current.is_none_or(|m| m.positions != positions);
        if changed && positions.iter().any(|&p| p > 0) {
            self.write(store).await;
        }
    }

    /// Writes a snapshot of `store` as it is now; a failure is logged and counted.
    async fn write(&self, store: &Arc<MemoryStore>) {
        let started = Instant::now();
        let (dir, key, store2) = (self.dir.clone(), self.key.clone(), store.clone());
        let log = self.log.clone();
        let span = tracing::info_span!("snapshot_write");
        let written = tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            // The views take no new record while they are listed (the store's read lock).
            let listing = Instant::now();
            let image = store2.image();
            let listed = listing.elapsed();
            write_file(&dir, &log, key, &image, &store2).map(|m| m.map(|m| (m, listed)))
        })
        .await;
        match written {
            Ok(Ok(Some((mark, listed)))) => {
                tracing::info!(
                    records = mark.records(),
                    listed_ms = listed.as_millis() as u64,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "wrote a view snapshot"
                );
                if let Some(m) = &self.metrics {
                    m.snapshots_written.inc();
                }
                self.set_mark(Some(mark));
            }
            Ok(Ok(None)) => {
                tracing::info!(
                    "a view snapshot was dropped: the views folded an erasure while it was written"
                );
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "writing a view snapshot failed");
                if let Some(m) = &self.metrics {
                    m.snapshot_failures.inc();
                }
            }
            Err(e) => tracing::warn!(error = %e, "writing a view snapshot failed"),
        }
    }

    /// Deletes the snapshot on disk (it reflects fewer erasures than the views).
    fn forget(&self) {
        match std::fs::remove_file(self.path()) {
            Ok(()) => tracing::info!("deleted the view snapshot: it predates an erasure"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(error = %e, "deleting the view snapshot that predates an erasure failed")
            }
        }
        self.set_mark(None);
    }

    /// One look at the views: deletes a snapshot an erasure made stale, writes one when due.
    async fn tick(&self, store: &Arc<MemoryStore>) {
        let mark = self.mark();
        if let Some(m) = &mark {
            if store.erasures() > m.erasures {
                self.forget();
                // Without a snapshot, the next start would replay everything: write one now
                // (unless snapshots are off).
                if self.policy.every_records > 0 {
                    self.write(store).await;
                }
                return;
            }
        }
        if self.policy.every_records == 0 {
            return;
        }
        let folded: u64 = store.next_positions().iter().sum();
        let (since, waited) = match &mark {
            Some(m) => (folded.saturating_sub(m.records()), m.written.elapsed()),
            None => (folded, Duration::MAX),
        };
        if since >= self.policy.every_records && waited >= self.policy.min_interval {
            self.write(store).await;
        }
    }

    /// Looks at `store` every second until `stop` fires, writing snapshots as they fall due.
    pub fn start(
        self: &Arc<Self>,
        store: Arc<MemoryStore>,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                this.tick(&store).await;
            }
        })
    }
}

/// How many times an empty answer for the record a snapshot was taken after is asked again.
const HEADER_TRIES: usize = 3;

/// The header at `position` of `partition`, if the log has it. A read of a networked log may
/// come back empty before the brokers answered: an empty answer is asked again before the log
/// is taken to end there.
async fn header_at(
    log: &dyn EventLog,
    partition: u32,
    position: u64,
) -> Result<Vec<HeaderEntry>, LogError> {
    let mut found = Vec::new();
    for _ in 0..HEADER_TRIES {
        found = log.read_headers(partition, position, 1).await?;
        if !found.is_empty() {
            break;
        }
    }
    Ok(found)
}

/// The position after the last record of `partition`, knowing there is none at `missing`.
async fn log_end(log: &dyn EventLog, partition: u32, missing: u64) -> Result<u64, LogError> {
    // Binary search for the first position with no record (records are dense from 0).
    let (mut lo, mut hi) = (0u64, missing);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if log.read_headers(partition, mid, 1).await?.is_empty() {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// Reads and opens the snapshot at `path`: `None` when there is none.
fn read_file(path: &Path, key: XChaCha20Poly1305) -> anyhow::Result<Option<(Header, Loaded)>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut input = BufReader::with_capacity(1 << 20, file);
    let (header_line, prefix) = sealed::read_header(&mut input)?;
    let header: Header = serde_json::from_slice(&header_line)?;
    anyhow::ensure!(
        header.format == IMAGE_FORMAT,
        "the snapshot is in format {}; this release reads format {IMAGE_FORMAT}",
        header.format
    );
    let body = sealed::SealedReader::new(input, key, &header_line, prefix);
    let (store, info) = MemoryStore::read_image(BufReader::with_capacity(1 << 20, body))?;
    anyhow::ensure!(
        info.next_positions == header.next_positions
            && info.tails == header.tails
            && info.erasures == header.erasures,
        "the snapshot's header and body disagree"
    );
    Ok(Some((header, Loaded { store, info })))
}

/// Writes `image` sealed into `dir`, synced, then renamed over the previous snapshot. `None`
/// when `store` folded an erasure the image predates while it was written (the file is
/// dropped).
fn write_file(
    dir: &Path,
    log: &str,
    key: XChaCha20Poly1305,
    image: &Image,
    store: &MemoryStore,
) -> std::io::Result<Option<Mark>> {
    crate::datadir::create_dir(dir)?;
    let partial = dir.join(PARTIAL);
    let file = crate::datadir::file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&partial)?;
    let (users, groups) = image.counts();
    let header = Header {
        format: IMAGE_FORMAT,
        log: log.to_owned(),
        release: env!("CARGO_PKG_VERSION").to_owned(),
        written_at: chrono::Utc::now(),
        next_positions: image.next_positions.clone(),
        tails: image.tails.clone(),
        erasures: image.erasures,
        users,
        groups,
    };
    let header_line = serde_json::to_vec(&header)?;
    let out = BufWriter::with_capacity(1 << 20, file);
    let mut sealer = sealed::SealedWriter::new(out, key, &header_line)?;
    image.write_to(BufWriter::with_capacity(64 << 10, &mut sealer))?;
    let file = sealer.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    if store.erasures() > image.erasures {
        std::fs::remove_file(&partial)?;
        return Ok(None);
    }
    std::fs::rename(&partial, dir.join(FILE))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(Some(Mark {
        positions: image.next_positions.clone(),
        erasures: image.erasures,
        written: Instant::now(),
    }))
}

/// The snapshots of a serving process: the background task, and the last snapshot at stop.
pub struct Running {
    snapshots: Arc<Snapshots>,
    store: Arc<MemoryStore>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts writing snapshots of `store` until `stop` fires.
    pub fn start(
        snapshots: Arc<Snapshots>,
        store: Arc<MemoryStore>,
        stop: watch::Receiver<bool>,
    ) -> Running {
        let task = snapshots.start(store.clone(), stop);
        Running {
            snapshots,
            store,
            task,
        }
    }

    /// After the stop signal and the projectors' stop: waits for the task, then writes a
    /// last snapshot if the views moved since the last one, so the next start replays
    /// nothing.
    pub async fn finish(self) {
        let _ = self.task.await;
        if self.snapshots.policy.every_records > 0 {
            self.snapshots.write_now(&self.store).await;
        }
    }
}
