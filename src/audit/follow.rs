//! How the audit index keeps up with the log. In the server it takes the entries this
//! process's projectors have just read and decoded ([`Tap`]), so that no record is read and
//! decoded twice; it reads the log itself only for what the projectors did not hand over (the
//! history before it started, or a batch dropped while the index was busy). Without
//! projectors (the load tool's index benchmark) it follows the log alone.

use super::Audit;
use crate::pipeline::Tap;
use roster_projections::LogEntry;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How often a follower without projectors looks for records nobody in this process has
/// read (another process's, on Kafka).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// The most records a follower reads from the log at once.
const FOLLOW_BATCH: usize = 4096;

impl Audit {
    /// Starts one follower per partition, folding the log from its start until `stop` fires.
    pub fn follow(self: &Arc<Self>, stop: watch::Receiver<bool>) {
        for partition in 0..self.log.partitions() {
            let audit = self.clone();
            let stop = stop.clone();
            tokio::spawn(async move { audit.run_follower(partition, stop).await });
        }
    }

    /// Starts one follower per partition that folds what the partition's projector hands
    /// over (`taps`, one per partition), and reads the log only for what it did not.
    pub fn follow_projectors(self: &Arc<Self>, taps: Vec<Tap>, stop: watch::Receiver<bool>) {
        for (partition, tap) in (0..self.log.partitions()).zip(taps) {
            let audit = self.clone();
            let stop = stop.clone();
            tokio::spawn(async move { audit.run_tapped(partition, tap, stop).await });
        }
    }

    fn next(&self, partition: u32) -> u64 {
        self.read().partitions[partition as usize].next
    }

    /// Folds consecutive `entries` (those before the index's next position are passed over)
    /// on a blocking thread: a batch holds the index's lock, and growing the index's tables
    /// now and then takes long enough (a hash table of a million resources rehashed) that a
    /// worker thread must not wait for it.
    async fn fold(self: &Arc<Self>, partition: u32, entries: Vec<LogEntry>) {
        let audit = self.clone();
        let span = tracing::Span::current();
        let folded = tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            audit.fold_now(partition, &entries)
        })
        .await;
        if let Err(e) = folded {
            tracing::error!(partition, error = %e, "folding a batch into the audit index failed");
        }
    }

    fn fold_now(&self, partition: u32, entries: &[LogEntry]) {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return;
        };
        let span = tracing::debug_span!(
            "audit_batch",
            partition,
            from = first.position,
            to = last.position
        );
        let _enter = span.enter();
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let super::State {
            partitions,
            strings,
        } = &mut *state;
        partitions[partition as usize].apply(strings, entries);
        drop(state);
        self.grown.send_modify(|n| *n += 1);
    }

    /// Reads the log from the index's next position and folds one batch: `Ok(true)` if it
    /// found any record before `below` (or at all, without a bound).
    ///
    /// Fails when the log cannot be read.
    async fn fold_from_log(
        self: &Arc<Self>,
        partition: u32,
        below: Option<u64>,
    ) -> Result<bool, crate::log::LogError> {
        let next = self.next(partition);
        let max = below.map_or(FOLLOW_BATCH, |b| {
            (b.saturating_sub(next) as usize).min(FOLLOW_BATCH)
        });
        if max == 0 {
            return Ok(false);
        }
        let entries = self.log.read(partition, next, max).await?;
        let found = !entries.is_empty();
        self.fold(partition, entries).await;
        Ok(found)
    }

    async fn run_follower(self: &Arc<Self>, partition: u32, mut stop: watch::Receiver<bool>) {
        let mut end = self.log.end(partition);
        loop {
            let next = self.next(partition);
            match self.fold_from_log(partition, None).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    if !unreadable(partition, &e, &mut stop).await {
                        return;
                    }
                    continue;
                }
            }
            tokio::select! {
                // The end moves with this process's appends: the index follows them at once.
                // Records of other processes are looked for now and then only, so that the
                // index does not poll the brokers as often as projectors do.
                r = end.wait_for(|&e| e > next) => if r.is_err() { return },
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn run_tapped(
        self: &Arc<Self>,
        partition: u32,
        mut tap: Tap,
        mut stop: watch::Receiver<bool>,
    ) {
        // A batch handed over after a gap, waiting for the log to fill the gap.
        let mut held: Option<Vec<LogEntry>> = None;
        loop {
            // Where the index must get to from the log before it folds on: the held batch's
            // start, or else where the views are. Every batch handed over is in the channel
            // before the views reach it, so with nothing waiting there, a position the views
            // reflect that the index lacks was not handed over.
            let gap_end = match &held {
                Some(batch) => batch.first().map_or(0, |e| e.position),
                None => match tap.entries.try_recv() {
                    Ok(batch) => {
                        held = Some(batch);
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                    Err(mpsc::error::TryRecvError::Empty) => *tap.projected.borrow_and_update(),
                },
            };
            if self.next(partition) < gap_end {
                let go_on = match self.fold_from_log(partition, Some(gap_end)).await {
                    Ok(true) => true,
                    // Not fetched yet (Kafka): a moment later.
                    Ok(false) => pause(&mut stop, Duration::from_millis(5)).await,
                    Err(e) => unreadable(partition, &e, &mut stop).await,
                };
                if !go_on {
                    return;
                }
                continue;
            }
            if let Some(batch) = held.take() {
                self.fold(partition, batch).await;
                continue;
            }
            tokio::select! {
                batch = tap.entries.recv() => match batch {
                    Some(batch) => held = Some(batch),
                    None => return,
                },
                r = tap.projected.changed() => if r.is_err() { return },
                _ = stop.changed() => return,
            }
        }
    }
}

/// Waits `d`; false if `stop` fired meanwhile.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.changed() => false,
    }
}

/// Says the log could not be read and waits a second before the next try; false if `stop`
/// fired meanwhile.
async fn unreadable(
    partition: u32,
    e: &crate::log::LogError,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    tracing::warn!(partition, error = %e, "audit index cannot read the log; retrying");
    pause(stop, Duration::from_secs(1)).await
}
