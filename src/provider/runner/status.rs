//! What a provider's consumer shows the status API: its state, positions, parked objects,
//! the last full sync, what it learned about the remote, and the requests a dry run would
//! have sent; and the runner's publishing of it (with the lag and parked metrics).

use super::Runner;
use crate::provider::compat::Learned;
use crate::provider::plan::{Kind, Request};
use crate::provider::state::FullSyncReport;
use chrono::{DateTime, Utc};
use roster_events::ResourceId;
use serde::Serialize;
use std::collections::VecDeque;

/// A parked object, as the status API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ParkedObject {
    pub kind: Kind,
    pub id: ResourceId,
    pub attempts: u32,
    pub error: String,
}

/// An object whose last attempt failed and that will be tried again.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct FailingObject {
    pub kind: Kind,
    pub id: ResourceId,
    pub attempts: u32,
    pub error: String,
    /// When it is tried next (None: in line or in flight now).
    pub next_attempt: Option<DateTime<Utc>>,
}

/// A request a dry run would have sent.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Planned {
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub body: Option<serde_json::Value>,
}

/// The full sync running now: the objects it queued, and how many of them are carried.
#[derive(Clone, Copy, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct FullSyncProgress {
    pub objects: usize,
    pub carried: usize,
}

/// A provider's consumer as the status API shows it.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// starting, settling (waiting after a restart before carrying anything:
    /// `provider_settle_ms`), bootstrapping, running, full sync, failed, stopped; `not running here` in
    /// the status of a process that does not run it.
    pub state: &'static str,
    /// What is wrong now, if anything: why the consumer failed or does not run here, else
    /// the objects failing or parked. Cleared when it no longer holds.
    pub error: Option<String>,
    /// The first position of the directory's partition not carried yet.
    pub position: u64,
    /// Provider requests (sync, retry, replay) below this position have been taken.
    pub requests_below: u64,
    /// The first position the views do not reflect yet.
    pub views_position: u64,
    /// Objects with changes still to carry, neither in flight nor parked.
    pub pending: usize,
    pub in_flight: usize,
    /// Objects whose last attempt failed, with their error and next attempt.
    pub failing: Vec<FailingObject>,
    pub parked: Vec<ParkedObject>,
    pub last_full_sync: Option<FullSyncReport>,
    pub full_sync: Option<FullSyncProgress>,
    pub last_checkpoint: Option<DateTime<Utc>>,
    /// While dry run is on: the requests planned instead of sent.
    #[schema(value_type = Vec<Planned>)]
    pub dry_run_requests: VecDeque<Planned>,
    /// What Roster learned about the remote by talking to it.
    pub learned: Learned,
}

impl Status {
    /// The views position and the lag (in log records) this status shows against views that
    /// reflect `views_now`: against the views as they are now, not as the consumer last
    /// published them, so that a consumer that has not started yet (or has stalled) shows
    /// everything it has not carried as lag, never 0.
    pub fn lag(&self, views_now: u64) -> (u64, u64) {
        let views = self.views_position.max(views_now);
        (views, views.saturating_sub(self.position))
    }
}

impl Runner {
    /// Publishes the consumer's state to the status API and the metrics.
    pub(super) fn publish(&self) {
        let views = self.views_position();
        let parked: Vec<ParkedObject> = self
            .queue
            .parked()
            .into_iter()
            .map(|p| ParkedObject {
                kind: p.key.0,
                id: p.key.1,
                attempts: p.attempts,
                error: p.error,
            })
            .collect();
        if let Some(m) = &self.deps.metrics {
            m.provider_lag
                .get_or_create(&self.labels)
                .set(views.saturating_sub(self.position) as i64);
            m.provider_parked
                .get_or_create(&self.labels)
                .set(parked.len() as i64);
        }
        let failing: Vec<FailingObject> = self
            .queue
            .failing()
            .into_iter()
            .map(|f| FailingObject {
                kind: f.key.0,
                id: f.key.1,
                attempts: f.attempts,
                error: f.error,
                next_attempt: f.next_attempt.map(|at| {
                    let wait = at.saturating_duration_since(std::time::Instant::now());
                    Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()
                }),
            })
            .collect();
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if self
            .settle_until
            .is_some_and(|t| tokio::time::Instant::now() < t)
        {
            s.state = "settling";
        } else if matches!(s.state, "starting" | "failed" | "settling") {
            s.state = "running";
        }
        s.error = objects_error(&failing, &parked);
        s.failing = failing;
        s.position = self.position;
        s.requests_below = self.progress.requests_below;
        s.views_position = views;
        s.pending = self.queue.waiting_objects();
        s.in_flight = self.queue.in_flight();
        s.parked = parked;
        s.last_full_sync = self.progress.last_full_sync.clone();
        s.full_sync = self.full_sync.as_ref().map(|run| FullSyncProgress {
            objects: run.objects,
            carried: run.objects - run.keys.len(),
        });
        s.learned = *self.cx.learned.lock().unwrap_or_else(|p| p.into_inner());
    }
}

/// What the status says is wrong while objects fail or are parked: how many, and the error
/// of the one tried most.
fn objects_error(failing: &[FailingObject], parked: &[ParkedObject]) -> Option<String> {
    if let Some(worst) = failing.iter().max_by_key(|f| f.attempts) {
        return Some(format!(
            "{} objects failing (retried with backoff); {} {} after {} attempts: {}",
            failing.len(),
            worst.kind.name(),
            worst.id,
            worst.attempts,
            worst.error
        ));
    }
    parked.first().map(|p| {
        format!(
            "{} objects parked (`roster provider retry` tries them again); {} {}: {}",
            parked.len(),
            p.kind.name(),
            p.id,
            p.error
        )
    })
}

/// A request a dry run would have sent, as the status API shows it.
pub(super) fn planned(r: Request) -> Planned {
    Planned {
        at: Utc::now(),
        method: r.method.to_string(),
        path: format!("/{}", r.path.join("/")),
        body: r.body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_that_has_not_started_shows_all_it_has_to_carry_as_lag() {
        // Before its first publish a consumer's status is all zeros.
        let starting = Status {
            state: "starting",
            ..Status::default()
        };
        assert_eq!(starting.lag(420), (420, 420));
        let running = Status {
            state: "running",
            position: 400,
            views_position: 420,
            ..Status::default()
        };
        assert_eq!(running.lag(410), (420, 20));
        assert_eq!(running.lag(430), (430, 30));
    }
}
