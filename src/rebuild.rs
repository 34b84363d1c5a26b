//! Blue/green rebuild of the PostgreSQL views: the whole log is folded from position 0 into a
//! fresh generation of tables while the active generation keeps serving (and keeps being
//! folded by the projectors). When the new generation has caught up, live folding pauses for
//! the last few entries, the new generation is checked to reflect exactly the positions of the
//! active one, and it becomes active in one transaction; the old tables are dropped.
//!
//! A rebuild runs inside a server (it needs the server's log: the embedded log belongs to one
//! process), started by `POST /admin/v1/rebuild` or `roster rebuild`. One runs at a time across
//! every process sharing the database.

use crate::log::EventLog;
use chrono::{DateTime, Utc};
use roster_projections::pg::{PgOptions, PgStore};
use roster_projections::ProjectionStore;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::Instrument;

/// How many entries one rebuild batch folds.
const BATCH: usize = 8192;

/// What a rebuild is doing, for the admin API.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RebuildStatus {
    /// `idle`, `running`, `done` or `failed`.
    pub state: &'static str,
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

/// Rebuilds the views into a new generation and swaps it in. Returns the new generation.
///
/// Fails when the log or the database fails, or another rebuild holds the lock; the old
/// generation then keeps serving and the next rebuild drops what this one left.
async fn rebuild(
    log: Arc<dyn EventLog>,
    options: &PgOptions,
    progress: &Rebuilds,
) -> anyhow::Result<i32> {
    let (store, lock) = PgStore::building(options).await?;
    progress.update(|s| s.generation = Some(lock.generation));
    tracing::info!(
        generation = lock.generation,
        previous = lock.previous,
        "rebuilding the views into a new generation"
    );
    for p in 0..log.partitions() {
        fold(&log, &store, p, None, progress).await?;
    }
    store.analyze().await?;
    for attempt in 1.. {
        // Live folding into the active generation waits from here to the commit.
        let swap = store.begin_swap().await?;
        let mut ahead = false;
        for p in 0..log.partitions() {
            let target = swap.targets.get(&p).copied().unwrap_or(0);
            if store.next_position(p).await? > target {
                ahead = true;
                break;
            }
            fold(&log, &store, p, Some(target), progress).await?;
        }
        if !ahead {
            let generation = swap.commit(&store).await?;
            drop(lock);
            return Ok(generation);
        }
        // The new views read further than the live projectors have folded: let them catch
        // up (dropping the swap lets them go on) and try again.
        drop(swap);
        if attempt == 100 {
            anyhow::bail!("the live views do not catch up with the log; is a projector stuck?");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    unreachable!("the loop returns or fails")
}
