//! The runner's full syncs: when one is due (on schedule, on request, the bootstrap first),
//! planning it from a cut of the views and the remote, queuing its work in place of what was
//! waiting, and finishing its report when the last of that work is carried.

use super::{FullSyncRun, Runner};
use crate::provider::fullsync;
use crate::provider::state::FullSyncReport;
use chrono::Utc;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

impl Runner {
    /// Runs a full sync if one was asked for or is due, and none is running or would mix with
    /// work in flight.
    pub(super) async fn full_sync_if_due(&mut self) -> Result<(), String> {
        let due = self.next_full_sync.is_some_and(|at| at <= Instant::now());
        if (self.progress.full_sync_requested || due)
            && self.full_sync.is_none()
            && self.tasks.is_empty()
        {
            self.full_sync_now().await?;
        }
        Ok(())
    }

    pub(super) fn schedule_full_sync(&mut self) {
        let every = self.view.config.full_sync_interval_secs;
        self.next_full_sync = (every > 0).then(|| Instant::now() + Duration::from_secs(every));
    }

    pub(super) fn finish_full_sync_if_done(&mut self) {
        let done = self
            .full_sync
            .as_ref()
            .is_some_and(|run| run.keys.keys().all(|k| !self.queue.contains(k)));
        if done {
            if let Some(mut run) = self.full_sync.take() {
                run.report.finished = Some(Utc::now());
                tracing::info!(
                    compared = run.report.compared,
                    created = run.report.created,
                    updated = run.report.updated,
                    deleted = run.report.deleted,
                    unchanged = run.report.unchanged,
                    failed = run.report.failed,
                    "full sync finished"
                );
                self.progress.last_full_sync = Some(run.report);
                self.dirty = true;
            }
        }
    }

    /// Plans a full sync and queues its work; the first one is the bootstrap from a cut.
    pub(super) async fn full_sync_now(&mut self) -> Result<(), String> {
        let bootstrap = !self.progress.bootstrapped;
        {
            let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
            s.state = if bootstrap {
                "bootstrapping"
            } else {
                "full sync"
            };
        }
        // The cut: the views as of this position, read from now on; what changes after it is
        // read from the log, and carrying it again is harmless.
        let cut = self.views_position();
        let span = tracing::info_span!("full_sync", bootstrap, cut);
        let planned = fullsync::plan(&self.cx, &mut self.links, &self.echoes)
            .instrument(span)
            .await;
        let mut plan = match planned {
            Ok(p) => p,
            Err(e) => {
                // Tried again at the next schedule or request; the log goes on meanwhile
                // unless this is the bootstrap, which must come first.
                tracing::warn!(error = %e, "full sync could not be planned");
                self.progress.last_full_sync = Some(FullSyncReport {
                    started: Some(Utc::now()),
                    finished: Some(Utc::now()),
                    failed: 1,
                    requests_below: self.progress.requests_below,
                    errors: vec![e.clone()],
                    ..FullSyncReport::default()
                });
                self.schedule_full_sync();
                if bootstrap {
                    return Err(format!("bootstrap: {e}"));
                }
                self.progress.full_sync_requested = false;
                self.dirty = true;
                return Ok(());
            }
        };
        if bootstrap {
            // The history below the cut is not read: the bootstrap answers the requests in it
            // (it is a full sync, and it tries every parked object again).
            self.position = self.position.max(cut);
            self.progress.requests_below = self.progress.requests_below.max(cut);
            self.progress.bootstrapped = true;
        }
        plan.report.requests_below = self.progress.requests_below;
        if !self.cx.dry_run {
            self.changed.extend(plan.links);
        }
        self.queue.retry_all();
        let mut keys = HashMap::new();
        for (key, work, fix) in plan.work {
            keys.insert(key, fix);
            // What the full sync computed from the views and the remote replaces what was
            // waiting for the object (an older failed change could conflict with it).
            self.queue.replace_waiting(key, work);
        }
        tracing::info!(
            compared = plan.report.compared,
            to_create = plan.report.created,
            to_update = plan.report.updated,
            to_delete = plan.report.deleted,
            unchanged = plan.report.unchanged,
            "full sync planned"
        );
        self.progress.last_full_sync = Some(plan.report.clone());
        self.full_sync = Some(FullSyncRun {
            report: plan.report,
            objects: keys.len(),
            keys,
        });
        self.progress.full_sync_requested = false;
        self.schedule_full_sync();
        self.dirty = true;
        self.finish_full_sync_if_done();
        self.checkpoint().await?;
        self.status.lock().unwrap_or_else(|p| p.into_inner()).state = "running";
        Ok(())
    }
}
