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
mod check;
mod file;
mod running;
pub mod sealed;
pub mod views;

pub use check::SnapshotError;
pub use file::Opened;
pub use running::{Adder, Running};

use crate::log::EventLog;
use crate::metrics::SnapshotMetrics;
use chacha20poly1305::XChaCha20Poly1305;
use file::{open_file, read_body, write_file};
use roster_events::chain::Digest;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
        check::check_against(log, &path, &header.next_positions, &header.tails).await?;
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
