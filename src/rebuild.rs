//! Blue/green rebuild of the PostgreSQL views: the whole log is folded from position 0 into a
//! fresh generation of tables while the active generation keeps serving (and keeps being
//! folded by the projectors). The fold runs in memory, with the memory store's code, and its
//! result is loaded in bulk (COPY into tables without indexes, indexes built afterwards, the
//! tables then attached as the generation's partitions); the audit projection's rows are
//! copied into the new generation as the log is read. The entries appended meanwhile are
//! folded like live ones; then live folding pauses for the last few entries, the new
//! generation is checked to reflect at least the positions of the active one, and it becomes
//! active in one transaction; the old tables are dropped.
//!
//! A rebuild runs inside a server (it needs the server's log: the embedded log belongs to one
//! process), started by `POST /admin/v1/rebuild` or `roster rebuild`. One runs at a time across
//! every process sharing the database.

use crate::log::EventLog;
use chrono::{DateTime, Utc};
use roster_projections::pg::audit::AuditLoader;
use roster_projections::pg::{PgOptions, PgStore};
use roster_projections::{LogEntry, MemoryStore, ProjectionStore};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::Instrument;

/// How many entries one batch folds into the new generation once it is loaded.
const BATCH: usize = 8192;

/// How many entries one read of the in-memory fold takes from the log.
const MEMORY_BATCH: usize = 65_536;

/// What a rebuild is doing, for the admin API.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct RebuildStatus {
    /// `idle`, `running`, `done` or `failed`.
    pub state: &'static str,
    /// While running: `folding` (the log, in memory), `loading` (the folded views, in bulk,
    /// and their indexes), `catching up` (with entries appended meanwhile) or `swapping`.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub phase: &'static str,
    pub generation: Option<i32>,
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    /// Log entries folded into the new generation so far.
    pub entries: u64,
    pub entries_per_second: Option<f64>,
    pub error: Option<String>,
}

/// The rebuild state of this process.
#[derive(Clone, Default)]
pub struct Rebuilds {
    status: Arc<Mutex<RebuildStatus>>,
}

impl Rebuilds {
    pub fn status(&self) -> RebuildStatus {
        let s = self
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if s.state.is_empty() {
            RebuildStatus { state: "idle", ..s }
        } else {
            s
        }
    }

    fn update(&self, f: impl FnOnce(&mut RebuildStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Starts a rebuild in the background, unless one is running in this process.
    ///
    /// Fails when one is already running here.
    pub fn start(&self, log: Arc<dyn EventLog>, options: PgOptions) -> Result<(), &'static str> {
        {
            let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
            if s.state == "running" {
                return Err("a rebuild is already running");
            }
            *s = RebuildStatus {
                state: "running",
                started: Some(Utc::now()),
                ..RebuildStatus::default()
            };
        }
        let this = self.clone();
        let span = tracing::info_span!("rebuild");
        tokio::spawn(
            async move {
                let started = Instant::now();
                match rebuild(log, &options, &this).await {
                    Ok(generation) => {
                        let secs = started.elapsed().as_secs_f64();
                        this.update(|s| {
                            s.state = "done";
                            s.phase = "";
                            s.generation = Some(generation);
                            s.finished = Some(Utc::now());
                            s.entries_per_second = Some(s.entries as f64 / secs.max(1e-9));
                        });
                        let s = this.status();
                        tracing::info!(
                            generation,
                            entries = s.entries,
                            seconds = secs,
                            "rebuild done: the new views serve"
                        );
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "rebuild failed; the old views keep serving");
                        this.update(|s| {
                            s.state = "failed";
                            s.phase = "";
                            s.finished = Some(Utc::now());
                            s.error = Some(e.to_string());
                        });
                    }
                }
            }
            .instrument(span),
        );
        Ok(())
    }
}

/// Folds `partition` into `store` from its position up to `until` (or the end of the log).
async fn fold(
    log: &Arc<dyn EventLog>,
    store: &PgStore,
    partition: u32,
    until: Option<u64>,
    progress: &Rebuilds,
) -> anyhow::Result<u64> {
    let mut next = store.next_position(partition).await?;
    loop {
        if until.is_some_and(|u| next >= u) {
            return Ok(next);
        }
        let max = until.map_or(BATCH, |u| BATCH.min((u - next) as usize));
        let mut entries = log.read(partition, next, max).await?;
        if let Some(u) = until {
            entries.retain(|e| e.position < u);
        }
        let Some(last) = entries.last() else {
            if until.is_none() && log.caught_up(partition, next).await? {
                return Ok(next);
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            continue;
        };
        let (from, to) = (next, last.position);
        next = to + 1;
        let n = entries.len() as u64;
        store
            .apply(entries)
            .instrument(tracing::debug_span!("rebuild_batch", partition, from, to))
            .await?;
        progress.update(|s| s.entries += n);
    }
}

/// Folds every partition of the log from position 0 into memory, up to its end. Reading (and
/// decoding) runs here while a blocking thread folds the previous batches, off the async
/// workers that serve requests.
async fn fold_in_memory(
    log: &Arc<dyn EventLog>,
    progress: &Rebuilds,
    mut audit: AuditLoader,
) -> anyhow::Result<roster_projections::Folded> {
    let (batches, mut received) = tokio::sync::mpsc::channel::<Vec<LogEntry>>(2);
    let counter = progress.clone();
    let folder = tokio::task::spawn_blocking(move || {
        // Written out, never queried: no indexes to keep.
        let memory = MemoryStore::fold_only();
        while let Some(entries) = received.blocking_recv() {
            let n = entries.len() as u64;
            memory.apply_sync(entries);
            counter.update(|s| s.entries += n);
        }
        memory.into_folded()
    });
    for partition in 0..log.partitions() {
        let mut next = 0;
        loop {
            let entries = log.read(partition, next, MEMORY_BATCH).await?;
            let Some(last) = entries.last() else {
                if log.caught_up(partition, next).await? {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                continue;
            };
            next = last.position + 1;
            // The audit rows go to PostgreSQL while the views fold in memory.
            audit.fold(&entries).await?;
            if batches.send(entries).await.is_err() {
                // The folding thread is gone: its panic is reported below.
                break;
            }
        }
    }
    drop(batches);
    let events = audit.finish().await?;
    tracing::info!(events, "rebuild: audit projection copied");
    Ok(folder.await?)
}

/// Rebuilds the views into a new generation and swaps it in. Returns the new generation.
///
/// The log is folded in memory first (the whole views are held in memory until they are
/// loaded), loaded into the new generation's tables in bulk, then the entries appended
/// meanwhile are folded like live ones, and the generation swaps in once it has caught up
/// with the active one.
///
/// Fails when the log or the database fails, or another rebuild holds the lock; the old
/// generation then keeps serving and the next rebuild drops what this one left.
pub async fn rebuild(
    log: Arc<dyn EventLog>,
    options: &PgOptions,
    progress: &Rebuilds,
) -> anyhow::Result<i32> {
    let (store, lock) = PgStore::building(options).await?;
    progress.update(|s| {
        s.generation = Some(lock.generation);
        s.phase = "folding";
    });
    tracing::info!(
        generation = lock.generation,
        previous = lock.previous,
        "rebuilding the views into a new generation"
    );
    let started = Instant::now();
    let audit = store.audit_loader().await?;
    let folded = fold_in_memory(&log, progress, audit)
        .instrument(tracing::info_span!("rebuild_fold"))
        .await?;
    let fold_seconds = started.elapsed().as_secs_f64();
    progress.update(|s| s.phase = "loading");
    let counts = store
        .load_folded(Arc::new(folded))
        .instrument(tracing::info_span!("rebuild_load"))
        .await?;
    let analyzing = Instant::now();
    store.analyze().await?;
    tracing::info!(
        seconds = analyzing.elapsed().as_secs_f64(),
        "rebuild: statistics gathered"
    );
    tracing::info!(
        users = counts.users,
        groups = counts.groups,
        members = counts.members,
        fold_seconds,
        load_seconds = started.elapsed().as_secs_f64() - fold_seconds,
        "rebuild: the views are loaded; catching up with the log"
    );
    progress.update(|s| s.phase = "catching up");
    for p in 0..log.partitions() {
        fold(&log, &store, p, None, progress).await?;
    }
    progress.update(|s| s.phase = "swapping");
    // Live folding into the active generation waits from here to the commit.
    let swap = store.begin_swap().await?;
    for p in 0..log.partitions() {
        let target = swap.targets.get(&p).copied().unwrap_or(0);
        fold(&log, &store, p, Some(target), progress).await?;
    }
    let generation = swap.commit(&store).await?;
    drop(lock);
    Ok(generation)
}
