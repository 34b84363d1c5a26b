//! The projectors, one per log partition: each folds the log into the store from the store's
//! position on, hands each directory's entries to its writer (the feed), and publishes the
//! position reached; start-up replay is the same fold until the log says it is caught up.

use super::{Feeds, WriteHealth};
use crate::log::{EventLog, LogError};
use crate::pipeline::WriteError;
use roster_projections::{ProjectionStore, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

/// The most entries the projector folds at once.
const PROJECT_BATCH: usize = 4096;
/// The longest start-up replay waits between attempts while the log or the store is away.
const REPLAY_RETRY_MAX: Duration = Duration::from_secs(5);

/// Why folding the log into the store stopped.
#[derive(Debug, thiserror::Error)]
pub(super) enum FoldError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("log reader failed: {0}")]
    Reader(String),
}

impl FoldError {
    /// Whether trying again later can succeed: everything but data the log cannot decode and
    /// views that cannot be read or written for a reason other than unavailability.
    fn transient(&self) -> bool {
        match self {
            FoldError::Log(e) => e.transient(),
            FoldError::Store(e) => e.transient(),
            FoldError::Reader(_) => true,
        }
    }
}

impl From<FoldError> for WriteError {
    fn from(e: FoldError) -> Self {
        match e {
            FoldError::Log(e) => e.into(),
            FoldError::Store(e) => e.into(),
            FoldError::Reader(e) => WriteError::Unavailable(format!("log reader failed: {e}")),
        }
    }
}

/// The projector of one partition: folds the log into the store from the store's position
/// on, hands each directory's entries to its writer, and publishes the position reached on
/// `projected`, and how it did on `health`, until `stop` fires or the log closes.
pub(super) async fn run_projector(
    log: Arc<dyn EventLog>,
    store: Arc<dyn ProjectionStore>,
    partition: u32,
    feeds: Arc<Feeds>,
    projected: watch::Sender<u64>,
    health: Arc<WriteHealth>,
    mut stop: watch::Receiver<bool>,
) {
    let mut end = log.end(partition);
    let mut next = *projected.borrow();
    loop {
        if *stop.borrow() {
            return;
        }
        next = match catch_up(
            &log,
            store.as_ref(),
            partition,
            &feeds,
            &projected,
            Some(next),
        )
        .await
        {
            Ok(next) => {
                health.projected(partition, Ok(()));
                next
            }
            Err(e) => {
                tracing::error!(partition, error = %e, "projection failed; retrying");
                health.projected(partition, Err(e.to_string()));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = stop.changed() => return,
                }
                continue;
            }
        };
        tokio::select! {
            open = crate::log::wait_past(log.as_ref(), &mut end, next) => if !open { return },
            _ = stop.changed() => return,
        }
    }
}

/// Folds what the log holds now of `partition` into the store. Returns the next position.
/// Reading (and decoding) the next batch overlaps with folding the current one.
///
/// It reads from `read_from` (where this projector got to), or from the store's position if
/// that is lower. A store shared with other processes may be further along: the entries in
/// between are read anyway (the store skips them), because this process's writers learn the
/// outcome of their appends from them. A store that went back (restored from a backup, or a
/// rebuild) is followed back.
///
/// Fails when the log cannot be read or the store cannot be written.
async fn catch_up(
    log: &Arc<dyn EventLog>,
    store: &dyn ProjectionStore,
    partition: u32,
    feeds: &Feeds,
    projected: &watch::Sender<u64>,
    read_from: Option<u64>,
) -> Result<u64, FoldError> {
    let read = |from: u64| {
        let log = log.clone();
        tokio::spawn(async move { log.read(partition, from, PROJECT_BATCH).await })
    };
    // The read from where this projector got to goes out while the store says where it is
    // (almost always no further back).
    let ahead = read_from.map(|r| (r, read(r)));
    let stored = store.next_position(partition).await?;
    let mut next = read_from.map_or(stored, |r| r.min(stored));
    let mut pending = match ahead {
        Some((r, pending)) if r == next => pending,
        Some((_, stale)) => {
            stale.abort();
            read(next)
        }
        None => read(next),
    };
    loop {
        let entries = pending
            .await
            .map_err(|e| FoldError::Reader(e.to_string()))??;
        let Some(last) = entries.last() else { break };
        let (from, to) = (next, last.position);
        next = to + 1;
        pending = read(next);
        let span = tracing::debug_span!("projection_batch", partition, from, to);
        feeds.hand_over(partition, &entries);
        let wanted = feeds.wanted(&entries);
        store.apply(entries).instrument(span).await?;
        feeds.dispatch(wanted);
        publish(projected, next);
    }
    publish(projected, next);
    Ok(next)
}

/// Publishes the position the views reflect; followers are woken only when it moved.
fn publish(projected: &watch::Sender<u64>, next: u64) {
    projected.send_if_modified(|at| {
        let moved = *at != next;
        *at = next;
        moved
    });
}

/// Start-up replay: folds every partition until the log says each is caught up, so the views
/// reflect everything appended before Roster started. A log or store that goes away during
/// replay (a broker restarting, PostgreSQL failing over) is waited for, as it is at connect.
///
/// Fails when the log holds data that does not decode.
pub(super) async fn replay(
    log: &Arc<dyn EventLog>,
    store: &dyn ProjectionStore,
    feeds: &Feeds,
    projected: &[watch::Sender<u64>],
) -> Result<u64, WriteError> {
    let mut total = 0;
    for (partition, tx) in (0..log.partitions()).zip(projected) {
        let mut retry = Duration::from_millis(250);
        // Where the store started (past a view snapshot, if one was loaded).
        let mut start = None;
        loop {
            if start.is_none() {
                start = store.next_position(partition).await.ok();
            }
            let caught_up = match catch_up(log, store, partition, feeds, tx, None).await {
                Ok(next) => log
                    .caught_up(partition, next)
                    .await
                    .map(|done| done.then_some(next))
                    .map_err(FoldError::from),
                Err(e) => Err(e),
            };
            match caught_up {
                Ok(Some(next)) => {
                    total += next - start.unwrap_or(0).min(next);
                    break;
                }
                // Nothing there yet, but the log says there may be more: let it fetch.
                Ok(None) => tokio::time::sleep(Duration::from_millis(2)).await,
                Err(e) if e.transient() => {
                    tracing::warn!(
                        partition,
                        error = %e,
                        retry_in_ms = retry.as_millis() as u64,
                        "start-up replay cannot go on; retrying"
                    );
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(REPLAY_RETRY_MAX);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(total)
}
