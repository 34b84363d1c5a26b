//! The write pipeline: the writers (one task per directory, `writer`), the projectors (one
//! per log partition, `projector`), and the feeds between them, wired to a log and a store by
//! [`Pipeline`]. A command is decided and appended by its directory's writer, folded into the
//! views by the projector, and answered once the feed shows the writer which of its records
//! won (the directory-sequence rule).

mod handle;
mod health;
mod projector;
mod writer;

pub use handle::{WriteError, Writer, Written};
pub use health::WriteHealth;
pub use writer::Writers;

use crate::log::EventLog;
use crate::metrics::Metrics;
use roster_projections::{LogEntry, ProjectionStore};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

/// How many batches a tap holds before the projector drops the next (the tap's reader then
/// reads them from the log).
const TAP_BATCHES: usize = 64;

/// The projectors' hand-off to the writers: every folded entry of a directory that has a
/// writer in this process is sent to that writer, after the views reflect it. And to taps:
/// every batch a projector read, as it read it.
#[derive(Default)]
pub struct Feeds {
    /// Per directory with a writer in this process.
    map: RwLock<HashMap<String, mpsc::UnboundedSender<LogEntry>>>,
    /// Per partition, the tap a reader of every record (the audit index) takes batches from.
    taps: RwLock<HashMap<u32, mpsc::Sender<Vec<LogEntry>>>>,
}

/// One partition's projector as a reader of every record follows it: the batches of entries
/// it read, in log order (a batch the reader had no room for is dropped: the reader reads it
/// from the log), and the position the views reflect, which each handed-over batch is in the
/// channel before.
pub struct Tap {
    pub entries: mpsc::Receiver<Vec<LogEntry>>,
    pub projected: watch::Receiver<u64>,
}

impl Feeds {
    pub(super) fn subscribe(&self, directory: &str) -> mpsc::UnboundedReceiver<LogEntry> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(directory.to_owned(), tx);
        rx
    }

    /// Closes every feed: a writer waiting for an outcome then fails at once instead of
    /// waiting out its timeout. Used when the projectors stop.
    pub fn close(&self) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The entries some writer waits for (cheap: the records are shared, not copied).
    pub(super) fn wanted(&self, entries: &[LogEntry]) -> Vec<LogEntry> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        if map.is_empty() {
            return Vec::new();
        }
        entries
            .iter()
            .filter(|e| map.contains_key(&e.record.directory))
            .cloned()
            .collect()
    }

    /// Hands a batch a projector read to the partition's tap, if it has one and room for it
    /// (cheap: the records are shared, not copied).
    pub(super) fn hand_over(&self, partition: u32, entries: &[LogEntry]) {
        let taps = self.taps.read().unwrap_or_else(|p| p.into_inner());
        if let Some(tap) = taps.get(&partition) {
            if let Err(mpsc::error::TrySendError::Closed(_)) = tap.try_send(entries.to_vec()) {
                drop(taps);
                self.taps
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&partition);
            }
        }
    }

    pub(super) fn dispatch(&self, entries: Vec<LogEntry>) {
        if entries.is_empty() {
            return;
        }
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        for e in entries {
            if let Some(tx) = map.get(&e.record.directory) {
                let _ = tx.send(e);
            }
        }
    }
}

/// The write side wired to a log and a store: the views replayed, a projector running per
/// partition, and the writers. The one way the server, the load tool and the tests start it.
/// Dropping it (or its `PipelineStop`) stops the projectors.
pub struct Pipeline {
    pub writers: Writers,
    /// Per partition, the position the views reflect.
    pub projected: Vec<watch::Receiver<u64>>,
    /// How many entries start-up replayed (from the position the store started at).
    pub replayed: u64,
    feeds: Arc<Feeds>,
    stop: watch::Sender<bool>,
    projectors: Vec<tokio::task::JoinHandle<()>>,
}

impl Pipeline {
    /// Replays the log into `store`, then starts following it.
    ///
    /// Fails when the log cannot be read or the store written during replay.
    pub async fn start(
        log: Arc<dyn EventLog>,
        store: Arc<dyn ProjectionStore>,
        metrics: Option<Arc<Metrics>>,
        sealer: crate::keys::seal::RecordSealer,
    ) -> Result<Pipeline, WriteError> {
        let feeds = Arc::new(Feeds::default());
        let (senders, projected): (Vec<_>, Vec<_>) =
            (0..log.partitions()).map(|_| watch::channel(0)).unzip();
        let replayed = projector::replay(&log, store.as_ref(), &feeds, &senders).await?;
        let mut writers = Writers::new(log.clone(), store.clone(), feeds.clone(), sealer);
        if let Some(m) = metrics {
            writers = writers.with_metrics(m);
        }
        let (stop, stop_rx) = watch::channel(false);
        let projectors = senders
            .into_iter()
            .enumerate()
            .map(|(partition, tx)| {
                let span =
                    tracing::info_span!(target: crate::telemetry::TASK, "projector", partition);
                tokio::spawn(
                    projector::run_projector(
                        log.clone(),
                        store.clone(),
                        partition as u32,
                        feeds.clone(),
                        tx,
                        writers.health(),
                        stop_rx.clone(),
                    )
                    .instrument(span),
                )
            })
            .collect();
        Ok(Pipeline {
            writers,
            projected,
            replayed,
            feeds,
            stop,
            projectors,
        })
    }

    /// A tap per partition: every batch of entries its projector reads from now on.
    pub fn taps(&self) -> Vec<Tap> {
        let mut taps = self.feeds.taps.write().unwrap_or_else(|p| p.into_inner());
        self.projected
            .iter()
            .enumerate()
            .map(|(partition, projected)| {
                let (tx, rx) = mpsc::channel(TAP_BATCHES);
                taps.insert(partition as u32, tx);
                Tap {
                    entries: rx,
                    projected: projected.clone(),
                }
            })
            .collect()
    }

    /// A handle that stops the pipeline; the writers and positions stay usable until then.
    pub fn stopper(&mut self) -> PipelineStop {
        PipelineStop {
            writers: self.writers.clone(),
            stop: self.stop.clone(),
            projectors: std::mem::take(&mut self.projectors),
        }
    }
}

/// Stops a pipeline: lets running batches finish, then stops the projectors.
pub struct PipelineStop {
    writers: Writers,
    stop: watch::Sender<bool>,
    projectors: Vec<tokio::task::JoinHandle<()>>,
}

impl PipelineStop {
    pub async fn stop(self) {
        self.writers.close().await;
        self.stop.send_replace(true);
        for p in self.projectors {
            let _ = p.await;
        }
    }
}
