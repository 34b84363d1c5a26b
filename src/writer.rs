//! The write path: one writer task per directory and the projector that keeps the views
//! caught up with the log.
//!
//! A writer takes every command waiting at that moment, decides each against its decision
//! state (a private copy of the directory's views, which already includes the earlier
//! commands of the batch), appends all resulting records with one log append, and answers
//! only when the records are durable and the projector has folded them into the views that
//! serve reads. If the append fails, the batch is undone and every command in it answers
//! `Unavailable`: nothing is half-applied.

use crate::domain::{decide, Command, Context, DomainError, Outcome};
use crate::log::{EventLog, LogError};
use crate::metrics::{Metrics, OutcomeLabels};
use chrono::Utc;
use roster_events::Record;
use roster_projections::{Directory, ProjectionStore, StoreError, Undo};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;
use uuid::Uuid;

/// The most commands one batch takes.
const MAX_BATCH: usize = 1024;
/// The most entries the projector folds at once.
const PROJECT_BATCH: usize = 4096;

/// Why a write was not done.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The log or the views are unavailable; nothing was acknowledged.
    #[error("{0}")]
    Unavailable(String),
}

impl From<LogError> for WriteError {
    fn from(e: LogError) -> Self {
        WriteError::Unavailable(e.to_string())
    }
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        WriteError::Unavailable(e.to_string())
    }
}

struct Job {
    cmd: Command,
    ctx: Context,
    reply: oneshot::Sender<Result<Outcome, WriteError>>,
}

/// A handle to one directory's writer.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Runs `cmd` and answers once its events are durable and visible to reads.
    ///
    /// Fails with the domain's refusal, or `Unavailable` when the log or views could not take
    /// the write (then nothing was acknowledged).
    pub async fn execute(&self, cmd: Command, ctx: Context) -> Result<Outcome, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { cmd, ctx, reply })
            .await
            .map_err(|_| WriteError::Unavailable("writer stopped".into()))?;
        rx.await
            .map_err(|_| WriteError::Unavailable("writer stopped".into()))?
    }
}

/// Every directory's writer, created on demand.
#[derive(Clone)]
pub struct Writers {
    log: Arc<dyn EventLog>,
    store: Arc<dyn ProjectionStore>,
    projected: watch::Receiver<u64>,
    map: Arc<RwLock<HashMap<String, Writer>>>,
    metrics: Option<Arc<Metrics>>,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Writers {
    pub fn new(
        log: Arc<dyn EventLog>,
        store: Arc<dyn ProjectionStore>,
        projected: watch::Receiver<u64>,
    ) -> Self {
        Writers {
            log,
            store,
            projected,
            map: Arc::default(),
            metrics: None,
            tasks: Arc::default(),
        }
    }

    /// Records batch sizes, append latency and command outcomes in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The writer of `directory`, started (from the views' current state) if need be.
    ///
    /// Fails when the views cannot give the directory's state.
    pub async fn get(&self, directory: &str) -> Result<Writer, WriteError> {
        if let Some(w) = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(directory)
        {
            return Ok(w.clone());
        }
        let state = self
            .store
            .snapshot(directory)
            .await?
            .unwrap_or_else(|| Directory::new(directory));
        let seq = self.store.directory_seq(directory).await?;
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = map.get(directory) {
            return Ok(w.clone());
        }
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let task = DirectoryWriter {
            state,
            seq,
            log: self.log.clone(),
            projected: self.projected.clone(),
            metrics: self.metrics.clone(),
        };
        let span = tracing::info_span!("writer", directory);
        let handle = tokio::spawn(task.run(rx).instrument(span));
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(handle);
        let w = Writer { tx };
        map.insert(directory.to_owned(), w.clone());
        Ok(w)
    }

    /// Stops accepting commands and waits for running batches to finish.
    pub async fn close(&self) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).clear();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }
}

struct DirectoryWriter {
    state: Directory,
    seq: u64,
    log: Arc<dyn EventLog>,
    projected: watch::Receiver<u64>,
    metrics: Option<Arc<Metrics>>,
}

/// The metrics label of a command's result.
fn outcome_label(r: &Result<Outcome, WriteError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(WriteError::Domain(DomainError::Conflict(_))) => "conflict",
        Err(WriteError::Domain(DomainError::NotFound(_))) => "not_found",
        Err(WriteError::Domain(DomainError::PreconditionFailed { .. })) => "precondition_failed",
        Err(WriteError::Domain(DomainError::Invalid(_) | DomainError::Patch(_))) => "invalid",
        Err(WriteError::Unavailable(_)) => "unavailable",
    }
}

impl DirectoryWriter {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut jobs = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
            self.batch(std::mem::take(&mut jobs)).await;
        }
    }

    async fn batch(&mut self, jobs: Vec<Job>) {
        let span = tracing::info_span!(
            "command_batch",
            commands = jobs.len(),
            records = tracing::field::Empty
        );
        let _enter = span.enter();
        let now = Utc::now();
        let mut undo = Undo::default();
        let mut records = Vec::new();
        let mut results: Vec<Result<Outcome, WriteError>> = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let decided = tracing::info_span!("command", directory = self.state.name())
                .in_scope(|| decide(&self.state, &job.cmd, &job.ctx, now));
            match decided {
                Ok((events, outcome)) => {
                    if !events.is_empty() {
                        for e in &events {
                            if let Err(err) = self.state.apply_with_undo(e.clone(), &mut undo) {
                                // decide() only emits events that fit; this is a bug. Refuse
                                // the whole batch rather than append something unfoldable.
                                tracing::error!(error = %err, "decided event does not fold");
                                self.state.revert(undo);
                                drop(_enter);
                                return self.fail_all(jobs, "internal error while deciding");
                            }
                        }
                        records.push(Record {
                            record_id: Uuid::now_v7(),
                            directory: self.state.name().to_owned(),
                            follows: self.seq + records.len() as u64,
                            events,
                        });
                    }
                    results.push(Ok(outcome));
                }
                Err(e) => results.push(Err(e.into())),
            }
        }
        span.record("records", records.len());
        drop(_enter);
        if !records.is_empty() {
            let n = records.len() as u64;
            let started = std::time::Instant::now();
            let appended = self.log.append(records).instrument(span.clone()).await;
            if let Some(m) = &self.metrics {
                m.append_duration.observe(started.elapsed().as_secs_f64());
            }
            let positions = match appended {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "append failed; batch undone");
                    self.state.revert(undo);
                    // Refusals decided in this batch may rest on writes that did not happen:
                    // every command of the batch is answered Unavailable and may be retried.
                    return self.fail_all(jobs, &e.to_string());
                }
            };
            // The records are in the log: from here on the decision state and the sequence
            // follow them, whatever happens to the answer.
            self.seq += n;
            let last = positions.last().copied().unwrap_or(0);
            if let Err(e) = self.wait_projected(last).instrument(span.clone()).await {
                // Durable but not yet visible: the outcome is unknown to the client, which
                // may retry (and then find its write, or a conflict with it).
                tracing::warn!(error = %e, "appended, but the views did not catch up");
                return self.fail_all(jobs, &e.to_string());
            }
        }
        self.record(&results);
        for (job, result) in jobs.into_iter().zip(results) {
            let _ = job.reply.send(result);
        }
    }

    /// Read-your-writes: returns once the views reflect the log up to `last`.
    async fn wait_projected(&mut self, last: u64) -> Result<(), WriteError> {
        let wait = self.projected.wait_for(|&p| p > last);
        match tokio::time::timeout(Duration::from_secs(30), wait).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(WriteError::Unavailable("projector stopped".into())),
            Err(_) => Err(WriteError::Unavailable(
                "views did not catch up in time".into(),
            )),
        }
    }
}

impl DirectoryWriter {
    fn fail_all(&self, jobs: Vec<Job>, why: &str) {
        let results: Vec<_> = jobs
            .iter()
            .map(|_| Err(WriteError::Unavailable(why.to_owned())))
            .collect();
        self.record(&results);
        for (job, result) in jobs.into_iter().zip(results) {
            let _ = job.reply.send(result);
        }
    }

    fn record(&self, results: &[Result<Outcome, WriteError>]) {
        if let Some(m) = &self.metrics {
            m.batch_commands.observe(results.len() as f64);
            for r in results {
                m.commands
                    .get_or_create(&OutcomeLabels {
                        outcome: outcome_label(r),
                    })
                    .inc();
            }
        }
    }
}

/// Folds the log into the store from the store's position on, publishing the position
/// reached on `projected`, until `stop` fires or the log closes.
pub async fn run_projector(
    log: Arc<dyn EventLog>,
    store: Arc<dyn ProjectionStore>,
    projected: watch::Sender<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut end = log.end();
    loop {
        if *stop.borrow() {
            return;
        }
        let next = match catch_up(&log, store.as_ref(), &projected).await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "projection failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        tokio::select! {
            r = end.wait_for(|&e| e > next) => if r.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

/// Folds everything up to the log's current end into the store. Returns the next position.
/// Reading (and decoding) the next batch overlaps with folding the current one.
///
/// Fails when the log cannot be read or the store cannot be written.
pub async fn catch_up(
    log: &Arc<dyn EventLog>,
    store: &dyn ProjectionStore,
    projected: &watch::Sender<u64>,
) -> Result<u64, WriteError> {
    let read = |from: u64| {
        let log = log.clone();
        tokio::spawn(async move { log.read(from, PROJECT_BATCH).await })
    };
    let mut next = store.next_position().await?;
    let mut pending = read(next);
    loop {
        let entries = pending
            .await
            .map_err(|e| WriteError::Unavailable(format!("log reader failed: {e}")))??;
        let Some(last) = entries.last() else { break };
        let (from, to) = (next, last.position);
        next = to + 1;
        pending = read(next);
        let span = tracing::debug_span!("projection_batch", from, to);
        store.apply(entries).instrument(span).await?;
        projected.send_replace(next);
    }
    projected.send_replace(next);
    Ok(next)
}
