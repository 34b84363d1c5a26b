//! One provider's consumer of the log: it reads its directory's partition from its own
//! position (never past what the views reflect), turns each change into work for the object
//! it touches, carries the work to the remote through the per-object queue, and saves its
//! position, progress and links together at each checkpoint. It also runs the full syncs:
//! the first one bootstraps a new provider from a cut of the views (views plus the position
//! they reflect), later ones run on schedule or on request (`full_sync`); `changes` turns
//! the log's changes into work; `status` is what it shows the status API.
//!
//! Delivery is at least once and idempotent: after a crash the changes since the last
//! checkpoint are read again and carried again; a create that may have reached the remote
//! before the crash first looks the object up by externalId.

use super::carry::{self, Outcome, TaskContext};
use super::chain::Chain;
use super::client::Remote;
use super::config::{self, Tuning};
use super::fullsync::REPORT_ERRORS;
use super::mapping::{DefaultMapping, Mapping};
use super::plan::Kind;
use super::queue::ObjectQueue;
use super::retry::Backoff;
use super::state::{Checkpoint, FullSyncReport, Key, Progress, StateStore, Work};
use super::sync::{Echo, MemoryLinks};
use crate::log::EventLog;
use crate::metrics::{Metrics, ProviderLabels, ProviderOutcomeLabels};
use crate::sealing::SecretKey;
use chrono::Utc;
use roster_events::{Member, MemberType, ResourceId};
use roster_projections::{MappingView, ProjectionStore, ProviderView};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

/// Entries read from the log per batch.
const READ_BATCH: usize = 500;
/// Reading stops while this much work is queued (the log keeps the rest).
const MAX_QUEUED: usize = 20_000;
/// Checkpoints are at most this frequent while work completes.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// ... and at most one in this many parts of the consumer's time: a checkpoint saves every
/// queued object (a million during a full sync of a million users), so that its cost grows
/// with the queue.
const CHECKPOINT_SHARE: u32 = 10;
/// Users per Bulk request at most (within the remote's maxOperations).
const BULK_OPERATIONS: usize = 100;
/// Dry-run requests kept for the status API.
const PLANNED_KEPT: usize = 200;

/// What every provider's consumer needs from the server.
pub struct Deps {
    pub log: Arc<dyn EventLog>,
    pub store: Arc<dyn ProjectionStore>,
    pub states: Arc<dyn StateStore>,
    /// Per partition, the position the views reflect.
    pub projected: Vec<watch::Receiver<u64>>,
    pub key: SecretKey,
    pub tuning: Tuning,
    /// An object is parked after this many failed attempts.
    pub max_attempts: u32,
    /// Spacing of an object's attempts.
    pub retry: Backoff,
    pub metrics: Option<Arc<Metrics>>,
    /// After a restart with work the previous run may have had in flight: how long to wait
    /// before carrying anything. A request the previous process sent can still reach the
    /// remote after it died (from the remote's backlog); a lookup by externalId made before
    /// it lands would miss what it creates, and the object would be left behind or created
    /// twice.
    pub settle: Duration,
}

impl Deps {
    /// Dependencies with the default tuning, no metrics, and state in `data_dir`.
    pub fn with_defaults(
        log: Arc<dyn EventLog>,
        store: Arc<dyn ProjectionStore>,
        projected: Vec<watch::Receiver<u64>>,
        data_dir: &std::path::Path,
        key: SecretKey,
    ) -> Deps {
        Deps {
            log,
            store,
            states: Arc::new(Arc::new(super::state::FileStateStore::new(data_dir))),
            projected,
            key,
            tuning: Tuning::default(),
            max_attempts: 8,
            retry: Backoff::default(),
            metrics: None,
            settle: Duration::from_secs(5),
        }
    }
}

mod changes;
mod full_sync;
mod status;

use status::planned;
pub use status::{FailingObject, FullSyncProgress, ParkedObject, Planned, Status};

/// A running consumer.
pub struct Handle {
    pub status: Arc<Mutex<Status>>,
    pub remote: Arc<Mutex<Option<Arc<Remote>>>>,
    /// The configuration it runs with.
    pub view: Arc<ProviderView>,
    /// The property mappings it applies, as they were when it started.
    pub mappings: Vec<MappingView>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// Stops the consumer after its checkpoint and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Starts the consumer of `view`.
pub fn spawn(view: Arc<ProviderView>, mappings: Vec<MappingView>, deps: Arc<Deps>) -> Handle {
    let status = Arc::new(Mutex::new(Status {
        state: "starting",
        ..Status::default()
    }));
    let remote = Arc::new(Mutex::new(None));
    let (stop, stopped) = watch::channel(false);
    let span = tracing::info_span!(
        target: crate::telemetry::TASK,
        "provider",
        provider = %view.config.name,
        id = %view.id
    );
    let task = tokio::spawn(
        supervise(
            view.clone(),
            mappings.clone(),
            deps,
            status.clone(),
            remote.clone(),
            stopped,
        )
        .instrument(span),
    );
    Handle {
        status,
        remote,
        view,
        mappings,
        stop,
        task,
    }
}

/// Runs the consumer, starting it again (after a pause) when it fails.
async fn supervise(
    view: Arc<ProviderView>,
    mappings: Vec<MappingView>,
    deps: Arc<Deps>,
    status: Arc<Mutex<Status>>,
    remote_slot: Arc<Mutex<Option<Arc<Remote>>>>,
    mut stopped: watch::Receiver<bool>,
) {
    let set = |state: &'static str, error: Option<String>| {
        let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
        s.state = state;
        s.error = error;
    };
    let mapping: Arc<dyn Mapping> = if view.config.mappings.is_empty() {
        Arc::new(DefaultMapping)
    } else {
        match Chain::resolve(&view.config, &mappings) {
            Ok(chain) => Arc::new(chain),
            Err(e) => return halted(&set, e, &mut stopped).await,
        }
    };
    let fingerprint = config::sync_fingerprint(&view.config, &mappings);
    loop {
        let remote = match config::remote(&view.config, &deps.key, deps.tuning) {
            Ok(r) => Arc::new(r),
            Err(e) => return halted(&set, e, &mut stopped).await,
        };
        *remote_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(remote.clone());
        let runner = Runner::new(
            view.clone(),
            deps.clone(),
            status.clone(),
            remote,
            (mapping.clone(), fingerprint.clone()),
        );
        match runner.run(&mut stopped).await {
            Ok(()) => {
                set("stopped", None);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "provider stopped on an error; starting again in 5 s");
                set("failed", Some(e));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = stopped.wait_for(|s| *s) => {
                        set("stopped", None);
                        return;
                    }
                }
            }
        }
    }
}

/// A consumer that cannot start says why and waits to be stopped: nothing changes until the
/// configuration or one of its mappings does, and a new consumer starts then.
async fn halted(
    set: &impl Fn(&'static str, Option<String>),
    error: String,
    stopped: &mut watch::Receiver<bool>,
) {
    tracing::error!(%error, "provider cannot start");
    set("failed", Some(error));
    let _ = stopped.wait_for(|s| *s).await;
    set("stopped", None);
}

/// Full-sync work still being carried, to finish its report.
struct FullSyncRun {
    report: FullSyncReport,
    /// The objects whose fix is not carried yet, and which fix each is.
    keys: HashMap<Key, crate::provider::fullsync::Fix>,
    /// How many objects the run fixes in all.
    objects: usize,
}

struct Runner {
    view: Arc<ProviderView>,
    deps: Arc<Deps>,
    /// The log, read with this consumer's own cursor ([`EventLog::follower`]).
    log: Arc<dyn EventLog>,
    status: Arc<Mutex<Status>>,
    cx: Arc<TaskContext>,
    partition: u32,
    position: u64,
    progress: Progress,
    links: MemoryLinks,
    changed: Vec<(Kind, ResourceId, Option<String>)>,
    /// What the remote last answered for each object, for full syncs.
    echoes: std::collections::HashMap<Key, Echo>,
    echoes_changed: Vec<(Kind, ResourceId, Option<Echo>)>,
    queue: ObjectQueue<Key, Work>,
    tasks: JoinSet<Vec<(Outcome, Option<i64>)>>,
    dirty: bool,
    last_save: Instant,
    /// How long the last checkpoint took.
    save_cost: Duration,
    /// Changes below this position may have been carried before a crash.
    uncertain_until: u64,
    full_sync: Option<FullSyncRun>,
    next_full_sync: Option<Instant>,
    labels: ProviderLabels,
    /// Nothing is carried before this (see [`Deps::settle`]).
    settle_until: Option<tokio::time::Instant>,
    /// What calls for a full sync when it changes.
    fingerprint: String,
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Runner {
    /// `mapping`: what the remote receives, and the fingerprint of what calls for a full sync
    /// when it changes ([`config::sync_fingerprint`]).
    fn new(
        view: Arc<ProviderView>,
        deps: Arc<Deps>,
        status: Arc<Mutex<Status>>,
        remote: Arc<Remote>,
        (mapping, fingerprint): (Arc<dyn Mapping>, String),
    ) -> Runner {
        let c = &view.config;
        let cx = Arc::new(TaskContext {
            remote,
            store: deps.store.clone(),
            directory: view.directory.clone(),
            mode: config::mode(c.mode),
            mapping,
            scope: c.scope.clone(),
            deactivate: c.deactivate,
            dry_run: c.dry_run,
            learned: Arc::default(),
        });
        Runner {
            partition: deps.log.partition(&view.directory),
            log: deps.log.follower().unwrap_or_else(|| deps.log.clone()),
            queue: ObjectQueue::new(c.concurrency as usize, deps.max_attempts),
            labels: ProviderLabels {
                provider: c.name.clone(),
            },
            view,
            deps,
            status,
            cx,
            position: 0,
            progress: Progress::default(),
            links: MemoryLinks::default(),
            changed: Vec::new(),
            echoes: Default::default(),
            echoes_changed: Vec::new(),
            tasks: JoinSet::new(),
            dirty: false,
            last_save: Instant::now(),
            save_cost: Duration::ZERO,
            uncertain_until: 0,
            full_sync: None,
            next_full_sync: None,
            settle_until: None,
            fingerprint,
        }
    }

    fn views_position(&self) -> u64 {
        self.deps
            .projected
            .get(self.partition as usize)
            .map_or(0, |w| *w.borrow())
    }

    async fn run(mut self, stopped: &mut watch::Receiver<bool>) -> Result<(), String> {
        let id = self.view.id;
        let fingerprint = self.fingerprint.clone();
        match self.deps.states.load(id).await.map_err(text)? {
            Some(saved) => {
                self.position = saved.next_position;
                self.progress = saved.progress;
                self.links = saved.links;
                self.echoes = saved.echoes;
                self.uncertain_until = self.views_position();
                // Work pending at the checkpoint, or records read after it, may have been in
                // flight when the previous run ended.
                if !self.progress.pending.is_empty() || self.position < self.uncertain_until {
                    self.settle_until = Some(tokio::time::Instant::now() + self.deps.settle);
                }
                *self.cx.learned.lock().unwrap_or_else(|p| p.into_inner()) = self.progress.learned;
            }
            None => self.progress = Progress::default(),
        }
        let mut pending = std::mem::take(&mut self.progress.pending);
        // Saved work may have been in flight when the previous run ended: its object is looked
        // up on the remote before anything is sent (and never goes in a Bulk request, whose
        // deletes of unlinked users assume they were never created).
        for saved in &mut pending {
            for work in &mut saved.changes {
                work.verify = true;
            }
        }
        self.queue.import(pending);
        let interrupted = self
            .progress
            .last_full_sync
            .as_ref()
            .is_some_and(|r| r.finished.is_none());
        let changed = self.progress.fingerprint.as_deref() != Some(fingerprint.as_str());
        if changed && self.progress.fingerprint.is_some() {
            // Possibly another remote: what was learned about the old one may not hold.
            self.progress.learned = Default::default();
            *self.cx.learned.lock().unwrap_or_else(|p| p.into_inner()) = Default::default();
        }
        if !self.progress.bootstrapped || interrupted || changed {
            self.progress.full_sync_requested = true;
        }
        self.progress.fingerprint = Some(fingerprint);
        self.schedule_full_sync();
        tracing::info!(
            position = self.position,
            links = self.links.0.len(),
            pending = self.queue.len(),
            "provider consumer started"
        );
        let mut end = self.deps.log.end(self.partition);
        let mut projected = self
            .deps
            .projected
            .get(self.partition as usize)
            .cloned()
            .ok_or("no such partition")?;
        loop {
            if *stopped.borrow() {
                self.tasks.abort_all();
                while self.tasks.join_next().await.is_some() {}
                self.dirty = true;
                self.checkpoint().await?;
                return Ok(());
            }
            let settling = self
                .settle_until
                .is_some_and(|t| tokio::time::Instant::now() < t);
            if !settling {
                self.settle_until = None;
                // Before reading: the bootstrap sets the position past the history it covers.
                self.full_sync_if_due().await?;
            }
            self.read().await?;
            if !settling {
                // And after: the record that asks for one may be the last there is, and
                // nothing would wake this loop after it.
                self.full_sync_if_due().await?;
                self.start_tasks().await;
            }
            if self.dirty
                && (self.last_save.elapsed() >= self.checkpoint_every() || self.tasks.is_empty())
            {
                self.checkpoint().await?;
            }
            self.publish();

            let behind = self.position < self.views_position();
            let wake = self.queue.next_wake();
            let save_at = self.dirty.then(|| self.last_save + self.checkpoint_every());
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    match done {
                        Ok(outcomes) => {
                            for o in outcomes {
                                self.finished(o);
                            }
                        }
                        Err(e) if e.is_cancelled() => {}
                        Err(e) => return Err(format!("a provider task failed: {e}")),
                    }
                }
                _ = projected.changed() => {}
                _ = end.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)), if behind && self.queue.len() < MAX_QUEUED => {}
                _ = tokio::time::sleep_until(wake.map(Instant::from_std).unwrap_or(far)), if wake.is_some() => {}
                _ = tokio::time::sleep_until(self.next_full_sync.unwrap_or(far)), if self.next_full_sync.is_some() => {}
                _ = tokio::time::sleep_until(save_at.unwrap_or(far)), if save_at.is_some() => {}
                _ = tokio::time::sleep_until(self.settle_until.unwrap_or(far)), if self.settle_until.is_some() => {}
                _ = stopped.changed() => {}
            }
        }
    }

    async fn start_tasks(&mut self) {
        let now = std::time::Instant::now();
        // Users go in Bulk requests where the remote takes them (never in a dry run: its
        // requests are listed one by one).
        let bulk = if self.cx.dry_run || self.queue.is_empty() {
            None
        } else {
            self.cx
                .remote
                .capabilities()
                .await
                .bulk
                .filter(|b| b.max_operations > 1)
        };
        let bulkable = |k: &Key, w: &Work| k.0 == Kind::User && !w.verify && w.left.is_empty();
        while let Some((key, work)) = self.queue.take(now) {
            if let Some(limits) = bulk.filter(|_| bulkable(&key, &work)) {
                let mut batch = vec![(key, work)];
                let max = limits.max_operations.min(BULK_OPERATIONS);
                while batch.len() < max {
                    match self.queue.take_more(bulkable) {
                        Some(more) => batch.push(more),
                        None => break,
                    }
                }
                if batch.len() > 1 {
                    let mut links = MemoryLinks::default();
                    for (k, w) in &batch {
                        links.0.extend(carry::links_for(*k, w, None, &self.links).0);
                    }
                    let since: Vec<Option<i64>> = batch.iter().map(|(_, w)| w.since_ms).collect();
                    let span = tracing::info_span!("sync_bulk", objects = batch.len());
                    let cx = self.cx.clone();
                    self.tasks.spawn(
                        async move {
                            let outcomes = carry::carry_users_bulk(cx, batch, limits, links).await;
                            outcomes.into_iter().zip(since).collect()
                        }
                        .instrument(span),
                    );
                    continue;
                }
                let (key, work) = batch.remove(0);
                self.spawn_one(key, work).await;
                continue;
            }
            self.spawn_one(key, work).await;
        }
    }

    async fn spawn_one(&mut self, key: Key, work: Work) {
        let group = match key.0 {
            Kind::Group => match self.deps.store.group(&self.view.directory, key.1).await {
                Ok(g) => g,
                Err(e) => {
                    self.fail(key, e.into());
                    return;
                }
            },
            Kind::User => None,
        };
        let links = carry::links_for(key, &work, group.as_deref(), &self.links);
        let span = tracing::info_span!("sync", kind = ?key.0, object = %key.1);
        let since = work.since_ms;
        let task = carry::carry(self.cx.clone(), key, work, group, links).instrument(span);
        self.tasks.spawn(async move { vec![(task.await, since)] });
    }

    fn fail(&mut self, key: Key, failure: carry::Failure) {
        let error = failure.message;
        let attempt = self.queue.attempts(&key) + 1;
        let delay = self.deps.retry.delay(attempt, &mut rand::rng());
        let retry_at = (!failure.permanent).then(|| std::time::Instant::now() + delay);
        self.queue.failed(&key, error.clone(), retry_at);
        let parked = self.queue.is_parked(&key);
        let outcome = if parked { "parked" } else { "failed" };
        if parked {
            tracing::warn!(kind = ?key.0, object = %key.1, attempts = attempt, error = %error, "object parked");
        } else {
            tracing::info!(kind = ?key.0, object = %key.1, attempt, error = %error, retry_in_ms = delay.as_millis() as u64, "object failed; will retry");
        }
        if let Some(m) = &self.deps.metrics {
            m.provider_objects
                .get_or_create(&ProviderOutcomeLabels {
                    provider: self.labels.provider.clone(),
                    outcome,
                })
                .inc();
        }
        if parked {
            if let Some(run) = &mut self.full_sync {
                if let Some(fix) = run.keys.remove(&key) {
                    // Counted as failed instead of as the fix it was planned as.
                    let planned = match fix {
                        crate::provider::fullsync::Fix::Create => &mut run.report.created,
                        crate::provider::fullsync::Fix::Update => &mut run.report.updated,
                        crate::provider::fullsync::Fix::Delete => &mut run.report.deleted,
                    };
                    *planned = planned.saturating_sub(1);
                    run.report.failed += 1;
                    if run.report.errors.len() < REPORT_ERRORS {
                        run.report
                            .errors
                            .push(format!("{:?} {}: {error}", key.0, key.1));
                    }
                }
            }
            self.finish_full_sync_if_done();
        }
    }

    fn finished(&mut self, (outcome, since_ms): (Outcome, Option<i64>)) {
        self.dirty = true;
        let key = outcome.key;
        for (kind, local, remote) in outcome.links {
            match &remote {
                Some(r) => self.links.0.insert((kind, local), r.clone()),
                None => self.links.0.remove(&(kind, local)),
            };
            if remote.is_none() && self.echoes.remove(&(kind, local)).is_some() {
                self.echoes_changed.push((kind, local, None));
            }
            if remote.is_some() {
                if let Some(groups) = self.progress.waiting.remove(&local) {
                    let kind = match kind {
                        Kind::User => MemberType::User,
                        Kind::Group => MemberType::Group,
                    };
                    for g in groups {
                        let work = Work {
                            added: [Member { value: local, kind }].into(),
                            ..Work::default()
                        };
                        self.queue.push_merged((Kind::Group, g), work, Work::merge);
                    }
                }
            }
            if !self.cx.dry_run {
                self.changed.push((kind, local, remote));
            }
        }
        for g in &outcome.whole {
            self.queue
                .push_merged((Kind::Group, *g), Work::whole(), Work::merge);
        }
        if !self.cx.dry_run {
            for (kind, local, echo) in outcome.echoes {
                if self.echoes.insert((kind, local), echo) != Some(echo) {
                    self.echoes_changed.push((kind, local, Some(echo)));
                }
            }
        }
        for m in outcome.waiting {
            if self
                .links
                .0
                .contains_key(&(carry::member_kind(m.kind), m.value))
            {
                // Linked while this task ran: add it now.
                let work = Work {
                    added: [m].into(),
                    ..Work::default()
                };
                self.queue.push_merged(key, work, Work::merge);
            } else {
                self.progress
                    .waiting
                    .entry(m.value)
                    .or_default()
                    .insert(key.1);
            }
        }
        if !outcome.planned.is_empty() {
            let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
            for r in outcome.planned {
                tracing::info!(method = %r.method, path = %r.path.join("/"), "dry run: not sent");
                if s.dry_run_requests.len() == PLANNED_KEPT {
                    s.dry_run_requests.pop_front();
                }
                s.dry_run_requests.push_back(planned(r));
            }
        }
        match outcome.result {
            Ok(()) => {
                self.queue.succeeded(&key);
                if let Some(m) = &self.deps.metrics {
                    m.provider_objects
                        .get_or_create(&ProviderOutcomeLabels {
                            provider: self.labels.provider.clone(),
                            outcome: "ok",
                        })
                        .inc();
                    if let Some(since) = since_ms {
                        let secs = (Utc::now().timestamp_millis() - since).max(0) as f64 / 1000.0;
                        m.provider_propagation
                            .get_or_create(&self.labels)
                            .observe(secs);
                    }
                }
                if let Some(run) = &mut self.full_sync {
                    run.keys.remove(&key);
                }
                self.finish_full_sync_if_done();
            }
            Err(e) => self.fail(key, e),
        }
    }

    /// How long after the last checkpoint the next falls due while work is in flight.
    fn checkpoint_every(&self) -> Duration {
        checkpoint_every(self.save_cost)
    }

    async fn checkpoint(&mut self) -> Result<(), String> {
        let learned = *self.cx.learned.lock().unwrap_or_else(|p| p.into_inner());
        if learned != self.progress.learned {
            self.progress.learned = learned;
            self.dirty = true;
        }
        if !self.dirty {
            return Ok(());
        }
        let started = Instant::now();
        self.progress.pending = self.queue.export();
        let result = self
            .deps
            .states
            .save(
                self.view.id,
                Checkpoint {
                    directory: &self.view.directory,
                    partition: self.partition,
                    next_position: self.position,
                    progress: &self.progress,
                    changed: &self.changed,
                    links: &self.links,
                    echoes_changed: &self.echoes_changed,
                    echoes: &self.echoes,
                },
            )
            .await;
        self.progress.pending.clear();
        result.map_err(text)?;
        self.changed.clear();
        self.echoes_changed.clear();
        self.dirty = false;
        self.last_save = Instant::now();
        self.save_cost = started.elapsed();
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_checkpoint = Some(Utc::now());
        Ok(())
    }
}

/// The interval between checkpoints while work is in flight, after one that took `cost`: at
/// least [`CHECKPOINT_EVERY`], and long enough that checkpoints take at most one part in
/// [`CHECKPOINT_SHARE`] of the time. Work done since a checkpoint is carried again after a
/// crash (the remote's answers make that safe), and a full sync that was under way runs again.
fn checkpoint_every(cost: Duration) -> Duration {
    CHECKPOINT_EVERY.max(cost * CHECKPOINT_SHARE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_take_at_most_a_tenth_of_the_time() {
        assert_eq!(checkpoint_every(Duration::ZERO), CHECKPOINT_EVERY);
        assert_eq!(checkpoint_every(Duration::from_millis(5)), CHECKPOINT_EVERY);
        assert_eq!(
            checkpoint_every(Duration::from_millis(1500)),
            Duration::from_secs(15)
        );
    }
}
