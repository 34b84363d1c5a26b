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
#[derive(Clone, Debug, Serialize)]
pub struct ParkedObject {
    pub kind: Kind,
    pub id: ResourceId,
    pub attempts: u32,
    pub error: String,
}

/// A request a dry run would have sent.
#[derive(Clone, Debug, Serialize)]
pub struct Planned {
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub body: Option<serde_json::Value>,
}

/// A provider's consumer as the status API shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    /// starting, bootstrapping, running, full sync, failed, stopped.
    pub state: &'static str,
    pub error: Option<String>,
    /// The first position of the directory's partition not carried yet.
    pub position: u64,
    /// The first position the views do not reflect yet.
    pub views_position: u64,
    /// Objects with changes still to carry, neither in flight nor parked.
    pub pending: usize,
    pub in_flight: usize,
    pub parked: Vec<ParkedObject>,
    pub last_full_sync: Option<FullSyncReport>,
    pub last_checkpoint: Option<DateTime<Utc>>,
    pub dry_run_requests: VecDeque<Planned>,
    /// What Roster learned about the remote by talking to it.
    pub learned: Learned,
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
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if s.state == "starting" || s.state == "failed" {
            s.state = "running";
            s.error = None;
        }
        s.position = self.position;
        s.views_position = views;
        s.pending = self.queue.waiting_objects();
        s.in_flight = self.queue.in_flight();
        s.parked = parked;
        s.last_full_sync = self.progress.last_full_sync.clone();
        s.learned = *self.cx.learned.lock().unwrap_or_else(|p| p.into_inner());
    }
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
