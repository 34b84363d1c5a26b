//! Snapshots of what a server keeps in memory (docs/adr/0020): the memory store's views
//! ([`views`], `views.snap`) and the audit trail's index ([`audit`], `audit.snap`). Start-up
//! loads the latest snapshot of each and reads only the log after it, so a restart does not
//! depend on the length of history.
//!
//! A snapshot is a [`Subject`]'s picture sealed under a key derived from the secret key
//! ([`sealed`]), in `<data_dir>/snapshots/`. It is a cache of the log, never a source of
//! truth:
//! - **Written in the background** when enough records were folded since the last one (and
//!   not more often than a minimum interval), and at a clean stop: the picture is taken under
//!   the subject's lock, then written, synced and renamed into place by a blocking task.
//! - **Checked against the log before use:** the log must still hold, at the position before
//!   the snapshot's, the record the snapshot was taken after (same digest). A log that ends
//!   before it lost records the snapshot holds, and a log whose record there differs is
//!   another log: start-up refuses, naming both, rather than serve either silently.
//! - **Never trusted blindly:** a snapshot that is missing, of another format, sealed with
//!   another key, or damaged in any byte is set aside with a warning, and the log is read
//!   from its start.
//! - **Erasure:** a snapshot holds personal data in the clear once opened; one that reflects
//!   fewer `user.erased` events than its subject is deleted within a second of the subject
//!   folding the erasure, and a new one is written without the person.

pub mod audit;
pub mod sealed;
pub mod views;

use crate::log::{EventLog, HeaderEntry, LogError};
use crate::metrics::SnapshotMetrics;
use chacha20poly1305::XChaCha20Poly1305;
use roster_events::chain::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the background task looks at its subjects.
const TICK: Duration = Duration::from_secs(1);

/// What a snapshot is taken of.
pub trait Subject: Send + Sync + 'static {
    /// Its file in `<data_dir>/snapshots/` (written as `<FILE>.partial` first).
    const FILE: &'static str;
    /// What the header says the snapshot is of: a file of another subject is not used.
    const OF: &'static str;
    /// What messages call one of its snapshots.
    const WHAT: &'static str;
    /// The version of its body; a snapshot in another one is set aside.
    const FORMAT: u32;
    /// A still picture of it, written without holding it still.
    type Picture: Picture;
    /// What reading a snapshot back gives.
    type Loaded: Send + 'static;

    /// Per partition, the first position it does not reflect.
    fn next_positions(&self) -> Vec<u64>;
    /// How many user.erased events it reflects.
    fn erasures(&self) -> u64;
    /// Takes the picture to write (briefly holding the subject's lock).
    fn picture(self: &Arc<Self>) -> Self::Picture;
    /// Reads back a body [`Picture::write_body`] wrote.
    ///
    /// Fails when the body does not parse or does not add up.
    fn read_body(input: impl BufRead + Send) -> anyhow::Result<(Self::Loaded, Reflects)>;
}

/// A picture of a [`Subject`], ready to be written.
pub trait Picture: Send + 'static {
    fn reflects(&self) -> Reflects;
    /// Writes the body.
    ///
    /// Fails when `out` fails.
    fn write_body(&self, out: &mut dyn Write) -> std::io::Result<()>;
}

/// What a snapshot reflects: its clear header says so, and its body must agree.
#[derive(Clone, Debug, PartialEq)]
pub struct Reflects {
    /// Per partition, the first position not reflected.
    pub next_positions: Vec<u64>,
    /// Per partition, the digest of the record just before `next_positions`.
    pub tails: Vec<Option<Digest>>,
    /// How many user.erased events it reflects.
    pub erasures: u64,
    /// What it holds, for people (`users`, `groups`; `entries`).
    pub counts: BTreeMap<String, u64>,
}

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
        "the snapshot {path} reflects partition {partition} up to position {position}, \
         but the log ends at {end}: the log lost records that were acknowledged. Restore the \
         log from a backup; to start from the log as it is instead, move the snapshots in {} \
         away (they are caches of the log)", dir_of(.path)
    )]
    LogBehind {
        path: PathBuf,
        partition: u32,
        position: u64,
        end: u64,
    },
    #[error(
        "the snapshot {path} was taken after another record at position {position} of \
         partition {partition} than the log holds there: the log was replaced or changed since. \
         Point Roster at the log the snapshot was taken of; to start from this log instead, \
         move the snapshots in {} away (they are caches of the log)", dir_of(.path)
    )]
    LogDiffers {
        path: PathBuf,
        partition: u32,
        position: u64,
    },
    #[error(
        "the snapshot {path} lists {snapshot} partitions; this log has only {log}. Point \
         Roster at the log the snapshot was taken of; to start from this log \
         instead, move the snapshots in {} away (they are caches of the log)", dir_of(.path)
    )]
    Partitions {
        path: PathBuf,
        snapshot: usize,
        log: u32,
    },
    #[error("reading the log to check a snapshot: {0}")]
    Log(#[from] LogError),
}

/// The directory a snapshot file is in.
fn dir_of(path: &Path) -> std::path::Display<'_> {
    path.parent().unwrap_or(path).display()
}

/// The clear header of a snapshot file: what it is of and what it reflects.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: u32,
    /// [`Subject::OF`] (absent in view snapshots of releases before the audit index had any).
    #[serde(default = "views_of")]
    of: String,
    /// Which log it was taken of ([`Snapshots::new`]'s `log`).
    log: String,
    release: String,
    written_at: chrono::DateTime<chrono::Utc>,
    next_positions: Vec<u64>,
    tails: Vec<Option<Digest>>,
    erasures: u64,
    #[serde(flatten)]
    counts: BTreeMap<String, u64>,
}

fn views_of() -> String {
    views::OF.to_owned()
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

/// A snapshot on disk whose header was checked against the log; its body is not read yet.
pub struct Opened {
    path: PathBuf,
    header: Header,
    header_line: Vec<u8>,
    prefix: [u8; sealed::PREFIX],
    input: BufReader<File>,
}

/// The snapshots of one subject in one data directory.
pub struct Snapshots<S> {
    dir: PathBuf,
    log: String,
    key: XChaCha20Poly1305,
    policy: Policy,
    metrics: Option<SnapshotMetrics>,
    /// What the file on disk reflects (`None`: there is none).
    mark: Mutex<Option<Mark>>,
    subject: PhantomData<fn() -> S>,
}

impl<S: Subject> Snapshots<S> {
    /// The snapshots in `data_dir` of the log named `log` (`file`, or `kafka:<topic>`): a
    /// snapshot of another log is not used (the data directory served another log before).
    pub fn new(data_dir: &Path, log: &str, key: XChaCha20Poly1305, policy: Policy) -> Self {
        Snapshots {
            dir: data_dir.join("snapshots"),
            log: log.to_owned(),
            key,
            policy,
            metrics: None,
            mark: Mutex::new(None),
            subject: PhantomData,
        }
    }

    pub fn with_metrics(mut self, metrics: SnapshotMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The file the latest snapshot is kept in.
    pub fn path(&self) -> PathBuf {
        self.dir.join(S::FILE)
    }

    fn set_mark(&self, mark: Option<Mark>) {
        if let Some(m) = &self.metrics {
            m.position
                .set(mark.as_ref().map_or(0, |k| k.records()) as i64);
        }
        *self.mark.lock().unwrap_or_else(|p| p.into_inner()) = mark;
    }

    fn mark(&self) -> Option<Mark> {
        self.mark.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The subject as the latest snapshot holds it, checked against `log`: `None` when there
    /// is no snapshot or it cannot be used (said in a warning; the log is then read from its
    /// start).
    ///
    /// Fails as [`Snapshots::open`] does.
    pub async fn load(&self, log: &dyn EventLog) -> Result<Option<S::Loaded>, SnapshotError> {
        Ok(match self.open(log).await? {
            Some(opened) => self.read(opened).await,
            None => None,
        })
    }

    /// The snapshot on disk with its header checked against `log`, its body not read yet:
    /// `None` when there is none or it cannot be used (said in a warning).
    ///
    /// Fails when the log ends before the snapshot or holds another record where the snapshot
    /// was taken: see [`SnapshotError`].
    pub async fn open(&self, log: &dyn EventLog) -> Result<Option<Opened>, SnapshotError> {
        let path = self.path();
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || open_file(&path)).await
        };
        let opened = match opened {
            Ok(Ok(Some(opened))) => opened,
            Ok(Ok(None)) => return Ok(None),
            Ok(Err(e)) => {
                tracing::warn!(
                    path = %path.display(), error = %e,
                    "the {} cannot be used; reading the whole log", S::WHAT
                );
                return Ok(None);
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the {} failed; reading the whole log", S::WHAT);
                return Ok(None);
            }
        };
        let header = &opened.header;
        let unusable = if header.of != S::OF {
            Some(format!("it is a snapshot of {}", header.of))
        } else if header.format != S::FORMAT {
            Some(format!(
                "it is in format {}; this release reads format {}",
                header.format,
                S::FORMAT
            ))
        } else if header.log != self.log {
            Some(format!("it was taken of another log ({})", header.log))
        } else {
            None
        };
        if let Some(why) = unusable {
            tracing::warn!(
                path = %path.display(), why,
                "the {} cannot be used; reading the whole log", S::WHAT
            );
            return Ok(None);
        }
        check_against(log, &path, &header.next_positions, &header.tails).await?;
        Ok(Some(opened))
    }

    /// Reads the body of a snapshot [`Snapshots::open`] checked: `None` when it does not open
    /// or does not agree with its header (said in a warning).
    pub async fn read(&self, opened: Opened) -> Option<S::Loaded> {
        let started = Instant::now();
        let key = self.key.clone();
        let read = tokio::task::spawn_blocking(move || {
            let path = opened.path.clone();
            let read = read_body::<S>(opened, key);
            (path, read)
        })
        .await;
        let (path, (header, loaded)) = match read {
            Ok((path, Ok(read))) => (path, read),
            Ok((path, Err(e))) => {
                tracing::warn!(
                    path = %path.display(), error = %e,
                    "the {} cannot be used; reading the whole log", S::WHAT
                );
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the {} failed; reading the whole log", S::WHAT);
                return None;
            }
        };
        tracing::info!(
            path = %path.display(),
            counts = ?header.counts,
            records = header.next_positions.iter().sum::<u64>(),
            written_at = %header.written_at,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded the {}", S::WHAT
        );
        self.set_mark(Some(Mark {
            positions: header.next_positions,
            erasures: header.erasures,
            written: Instant::now(),
        }));
        Some(loaded)
    }

    /// Writes a snapshot of `subject` now if anything was folded since the last one (or there
    /// is none), waiting for it.
    pub async fn write_now(&self, subject: &Arc<S>) {
        let positions = subject.next_positions();
        let current = self.mark();
        let changed = current.is_none_or(|m| m.positions != positions);
        if changed && positions.iter().any(|&p| p > 0) {
            self.write(subject).await;
        }
    }

    /// Writes a snapshot of `subject` as it is now; a failure is logged and counted.
    async fn write(&self, subject: &Arc<S>) {
        let started = Instant::now();
        let (dir, key, subject) = (self.dir.clone(), self.key.clone(), subject.clone());
        let log = self.log.clone();
        let span = tracing::info_span!("snapshot_write", of = S::OF);
        let written = tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            let taking = Instant::now();
            let picture = subject.picture();
            let taken = taking.elapsed();
            write_file(&dir, &log, key, &picture, &*subject).map(|m| m.map(|m| (m, taken)))
        })
        .await;
        match written {
            Ok(Ok(Some((mark, taken)))) => {
                tracing::info!(
                    records = mark.records(),
                    listed_ms = taken.as_millis() as u64,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "wrote a {}",
                    S::WHAT
                );
                if let Some(m) = &self.metrics {
                    m.written.inc();
                }
                self.set_mark(Some(mark));
            }
            Ok(Ok(None)) => {
                tracing::info!(
                    "a {} was dropped: an erasure was folded while it was written",
                    S::WHAT
                );
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "writing a {} failed", S::WHAT);
                if let Some(m) = &self.metrics {
                    m.failures.inc();
                }
            }
            Err(e) => tracing::warn!(error = %e, "writing a {} failed", S::WHAT),
        }
    }

    /// Deletes the snapshot on disk (it reflects fewer erasures than its subject).
    fn forget(&self) {
        match std::fs::remove_file(self.path()) {
            Ok(()) => tracing::info!("deleted the {}: it predates an erasure", S::WHAT),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(error = %e, "deleting the {} that predates an erasure failed", S::WHAT)
            }
        }
        self.set_mark(None);
    }

    /// One look at `subject`: deletes a snapshot an erasure made stale, writes one when due.
    async fn tick(&self, subject: &Arc<S>) {
        let mark = self.mark();
        if let Some(m) = &mark {
            if subject.erasures() > m.erasures {
                self.forget();
                // Without a snapshot, the next start would read everything: write one now
                // (unless snapshots are off).
                if self.policy.every_records > 0 {
                    self.write(subject).await;
                }
                return;
            }
        }
        if self.policy.every_records == 0 {
            return;
        }
        let folded: u64 = subject.next_positions().iter().sum();
        let (since, waited) = match &mark {
            Some(m) => (folded.saturating_sub(m.records()), m.written.elapsed()),
            None => (folded, Duration::MAX),
        };
        if since >= self.policy.every_records && waited >= self.policy.min_interval {
            self.write(subject).await;
        }
    }
}

/// The log must hold, before each partition's `next_positions`, the record whose digest is
/// the snapshot's tail there.
///
/// Fails when it ends before or holds another record: see [`SnapshotError`].
async fn check_against(
    log: &dyn EventLog,
    path: &Path,
    next_positions: &[u64],
    tails: &[Option<Digest>],
) -> Result<(), SnapshotError> {
    // Partitions after the last one the subject ever saw a record of are not listed.
    if next_positions.len() > log.partitions() as usize {
        return Err(SnapshotError::Partitions {
            path: path.to_owned(),
            snapshot: next_positions.len(),
            log: log.partitions(),
        });
    }
    for (p, (&next, tail)) in next_positions.iter().zip(tails).enumerate() {
        let Some(before) = next.checked_sub(1) else {
            continue;
        };
        let partition = p as u32;
        let found = header_at(log, partition, before).await?;
        match found.first() {
            None => {
                return Err(SnapshotError::LogBehind {
                    path: path.to_owned(),
                    partition,
                    position: next,
                    end: log_end(log, partition, before).await?,
                });
            }
            Some(e) if e.position != before || Some(e.digest) != *tail => {
                return Err(SnapshotError::LogDiffers {
                    path: path.to_owned(),
                    partition,
                    position: before,
                })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// One subject and its snapshots, as the background task sees them.
#[async_trait::async_trait]
trait Due: Send + Sync {
    async fn tick(&self);
    async fn finish(&self);
}

struct Bound<S: Subject> {
    snapshots: Arc<Snapshots<S>>,
    subject: Arc<S>,
}

#[async_trait::async_trait]
impl<S: Subject> Due for Bound<S> {
    async fn tick(&self) {
        self.snapshots.tick(&self.subject).await;
    }

    async fn finish(&self) {
        if self.snapshots.policy.every_records > 0 {
            self.snapshots.write_now(&self.subject).await;
        }
    }
}

/// The snapshots of a serving process: one background task that looks at every subject in
/// turn (so that two snapshots are never written at once), and the last snapshots at stop.
pub struct Running {
    subjects: Arc<Mutex<Vec<Arc<dyn Due>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts writing snapshots of the views in `store` until `stop` fires.
    pub fn start(
        snapshots: Arc<Snapshots<roster_projections::MemoryStore>>,
        store: Arc<roster_projections::MemoryStore>,
        mut stop: watch::Receiver<bool>,
    ) -> Running {
        let first: Arc<dyn Due> = Arc::new(Bound {
            snapshots,
            subject: store,
        });
        let subjects = Arc::new(Mutex::new(vec![first]));
        let looked_at = subjects.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let now: Vec<_> = looked_at.lock().unwrap_or_else(|p| p.into_inner()).clone();
                for subject in now {
                    subject.tick().await;
                }
            }
        });
        Running { subjects, task }
    }

    /// A handle to add subjects by, for a task that outlives the caller's borrow.
    pub fn adder(&self) -> Adder {
        Adder(self.subjects.clone())
    }

    /// After the stop signal and the projectors' stop: waits for the task, then writes a
    /// last snapshot of every subject that moved since its last one, so the next start reads
    /// nothing more from the log.
    pub async fn finish(self) {
        let _ = self.task.await;
        let now: Vec<_> = self
            .subjects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for subject in now {
            subject.finish().await;
        }
    }
}

/// Adds subjects to a [`Running`] from another task.
#[derive(Clone)]
pub struct Adder(Arc<Mutex<Vec<Arc<dyn Due>>>>);

impl Adder {
    pub fn add<S: Subject>(&self, snapshots: Arc<Snapshots<S>>, subject: Arc<S>) {
        let due: Arc<dyn Due> = Arc::new(Bound { snapshots, subject });
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(due);
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

/// Opens the snapshot at `path` and reads its clear header: `None` when there is none.
fn open_file(path: &Path) -> anyhow::Result<Option<Opened>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut input = BufReader::with_capacity(1 << 20, file);
    let (header_line, prefix) = sealed::read_header(&mut input)?;
    let header: Header = serde_json::from_slice(&header_line)?;
    Ok(Some(Opened {
        path: path.to_owned(),
        header,
        header_line,
        prefix,
        input,
    }))
}

/// Opens and reads the body of `opened`, which must agree with its header.
fn read_body<S: Subject>(
    opened: Opened,
    key: XChaCha20Poly1305,
) -> anyhow::Result<(Header, S::Loaded)> {
    let Opened {
        header,
        header_line,
        prefix,
        input,
        ..
    } = opened;
    let body = sealed::SealedReader::new(input, key, &header_line, prefix);
    let (loaded, reflects) = S::read_body(BufReader::with_capacity(1 << 20, body))?;
    anyhow::ensure!(
        reflects.next_positions == header.next_positions
            && reflects.tails == header.tails
            && reflects.erasures == header.erasures,
        "the snapshot's header and body disagree"
    );
    Ok((header, loaded))
}

/// Writes `picture` sealed into `dir`, synced, then renamed over the previous snapshot.
/// `None` when `subject` folded an erasure the picture predates while it was written (the
/// file is dropped).
fn write_file<S: Subject>(
    dir: &Path,
    log: &str,
    key: XChaCha20Poly1305,
    picture: &S::Picture,
    subject: &S,
) -> std::io::Result<Option<Mark>> {
    crate::datadir::create_dir(dir)?;
    let partial = dir.join(format!("{}.partial", S::FILE));
    let file = crate::datadir::file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&partial)?;
    let reflects = picture.reflects();
    let header = Header {
        format: S::FORMAT,
        of: S::OF.to_owned(),
        log: log.to_owned(),
        release: env!("CARGO_PKG_VERSION").to_owned(),
        written_at: chrono::Utc::now(),
        next_positions: reflects.next_positions.clone(),
        tails: reflects.tails,
        erasures: reflects.erasures,
        counts: reflects.counts,
    };
    let header_line = serde_json::to_vec(&header)?;
    let out = BufWriter::with_capacity(1 << 20, file);
    let mut sealer = sealed::SealedWriter::new(out, key, &header_line)?;
    {
        let mut body = BufWriter::with_capacity(64 << 10, &mut sealer);
        picture.write_body(&mut body)?;
        body.flush()?;
    }
    let file = sealer.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    if subject.erasures() > header.erasures {
        std::fs::remove_file(&partial)?;
        return Ok(None);
    }
    std::fs::rename(&partial, dir.join(S::FILE))?;
    File::open(dir)?.sync_all()?;
    Ok(Some(Mark {
        positions: header.next_positions,
        erasures: header.erasures,
        written: Instant::now(),
    }))
}
