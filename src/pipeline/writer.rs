//! One writer task per directory: it takes every command waiting at that moment, decides each
//! against its decision state (a private copy of the directory, which already includes the
//! earlier commands of the batch), and appends the resulting records with one log append. It
//! answers only once the log has told it the outcome: the projector folds the records into
//! the views, then hands every record of the directory (this process's and any other's) to
//! the writer through its *feed*. The writer applies the directory-sequence rule to the feed
//! itself, so it knows which of its records won. Records of other processes are folded into
//! its decision state. Each of its own records is kept with what it changed until the log
//! confirms it: when another writer's record gets in first, the writer takes its own back out
//! of its state, folds the winner in, and decides the commands that lost again on that state
//! (they may now be a 409), without reloading anything. If the append fails, the batch is
//! undone and every command in it answers `Unavailable`: nothing is half-applied. If the
//! outcome of an append is unknown, the same records are sent again until the log takes them;
//! the rule keeps only the first copy, so the command takes effect exactly once and is
//! answered accordingly.

use super::handle::{Job, Receipt, WriteError, Writer, Written};
use super::{Feeds, WriteHealth};
use crate::domain::{decide, DomainError};
use crate::keys::seal::{assign, RecordSealer};
use crate::log::{EventLog, LogError};
use crate::metrics::{Metrics, OutcomeLabels};
use chrono::Utc;
use roster_events::chain::{self, Digest, Encoded};
use roster_events::{ChainHead, KeyId, Record};
use roster_projections::{Directory, LogEntry, ProjectionStore, Undo};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::Instrument;
use uuid::Uuid;

/// The most commands one batch takes.
pub(super) const MAX_BATCH: usize = 1024;
/// How many times a command that lost a race to another writer is decided again.
const MAX_ROUNDS: usize = 16;
/// How long a writer waits for its feed to reach what shared views already show.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a writer waits for the views to reflect its records.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a writer that has just beaten another one to the directory holds its next append
/// back, unless the other's retry shows up sooner (see `give_way`).
const GIVE_WAY: Duration = Duration::from_millis(250);

/// Every directory's writer, created on demand.
#[derive(Clone)]
pub struct Writers {
    log: Arc<dyn EventLog>,
    store: Arc<dyn ProjectionStore>,
    feeds: Arc<Feeds>,
    map: Arc<RwLock<HashMap<String, Writer>>>,
    /// Serialises writer creation, so one directory never gets two feeds.
    creating: Arc<tokio::sync::Mutex<()>>,
    metrics: Option<Arc<Metrics>>,
    health: Arc<WriteHealth>,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    sealer: RecordSealer,
}

impl Writers {
    /// Writers that encode their records with `sealer`.
    pub fn new(
        log: Arc<dyn EventLog>,
        store: Arc<dyn ProjectionStore>,
        feeds: Arc<Feeds>,
        sealer: RecordSealer,
    ) -> Self {
        Writers {
            sealer,
            health: Arc::new(WriteHealth::new(log.partitions())),
            log,
            store,
            feeds,
            map: Arc::default(),
            creating: Arc::default(),
            metrics: None,
            tasks: Arc::default(),
        }
    }

    /// The write path's health, which the projectors report to and `/readyz` reads.
    pub fn health(&self) -> Arc<WriteHealth> {
        self.health.clone()
    }

    /// Records batch sizes, append latency and command outcomes in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn existing(&self, directory: &str) -> Option<Writer> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(directory)
            .cloned()
    }

    /// The writer of `directory`, started (from the views' current state) if need be.
    ///
    /// Fails when the views cannot give the directory's state.
    pub async fn get(&self, directory: &str) -> Result<Writer, WriteError> {
        if let Some(w) = self.existing(directory) {
            return Ok(w);
        }
        let _creating = self.creating.lock().await;
        if let Some(w) = self.existing(directory) {
            return Ok(w);
        }
        // Subscribe before the snapshot: whatever the projector folds after the snapshot
        // reaches the feed, and what the snapshot already holds is recognised by position.
        let feed = self.feeds.subscribe(directory);
        let partition = self.log.partition(directory);
        let snap = self.store.snapshot(directory, partition).await?;
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let task = DirectoryWriter {
            directory: directory.to_owned(),
            state: snap.state,
            head: snap.head,
            next: snap.next_position,
            pending: VecDeque::new(),
            won: Vec::new(),
            lost: false,
            lost_ids: Default::default(),
            contended: false,
            feed,
            sealer: self.sealer.clone(),
            fresh: Vec::new(),
            log: self.log.clone(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            health: self.health.clone(),
        };
        let span =
            tracing::info_span!(target: crate::telemetry::TASK, "writer", directory, partition);
        let handle = tokio::spawn(task.run(rx).instrument(span));
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(handle);
        let w = Writer {
            tx,
            shares: Arc::default(),
        };
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(directory.to_owned(), w.clone());
        Ok(w)
    }

    /// Stops accepting commands and waits for running batches to finish.
    pub async fn close(&self) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).clear();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
        self.feeds.close();
    }
}

struct DirectoryWriter {
    directory: String,
    /// The fold of every valid record of the directory below `next`, then of `pending`, then
    /// (during a batch, before its append) of the batch, which the undo list can take back.
    state: Directory,
    /// The head of the directory's chain as the log has shown it (below `next`).
    head: ChainHead,
    /// The first position of the directory's partition not yet absorbed from the feed.
    next: u64,
    /// Records this writer appended that the feed has not yet shown, in order, each with what
    /// it changed in `state`. `state` includes them and new records chain on the last of them.
    pending: VecDeque<Pending>,
    /// Pending records the feed showed valid during the current batch.
    won: Vec<(Uuid, u64)>,
    /// Set when the log showed that pending records lost to another writer (they have been
    /// taken back out of `state`).
    lost: bool,
    /// Our records that lost and that the feed has not shown yet (so that they are not taken
    /// for another writer's).
    lost_ids: std::collections::HashSet<Uuid>,
    /// Set when the feed showed another writer's record that lost (to one of ours).
    contended: bool,
    feed: mpsc::UnboundedReceiver<LogEntry>,
    /// Seals every record this writer decides, and its personal data.
    sealer: RecordSealer,
    /// Fresh data keys taken from the keyring and not given to a user yet.
    fresh: Vec<KeyId>,
    log: Arc<dyn EventLog>,
    store: Arc<dyn ProjectionStore>,
    metrics: Option<Arc<Metrics>>,
    health: Arc<WriteHealth>,
}

/// The metrics label of a command's result.
fn outcome_label(r: &Result<Written, WriteError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(WriteError::Domain(DomainError::Conflict(_))) => "conflict",
        Err(WriteError::Domain(DomainError::NotFound(_))) => "not_found",
        Err(WriteError::Domain(DomainError::PreconditionFailed { .. })) => "precondition_failed",
        Err(WriteError::Domain(DomainError::Invalid(_) | DomainError::Patch(_))) => "invalid",
        Err(e) if e.transient() => "unavailable",
        Err(_) => "failed",
    }
}

/// A record appended and not yet confirmed, with how to take it back out of the state.
struct Pending {
    id: Uuid,
    undo: Undo,
    /// The record's body digest, which the next record commits to.
    digest: Digest,
}

/// One round of a batch: the records decided, with how to take each back out of the state,
/// and for each job its result and the index of its record (None for a refusal or a command
/// that changes nothing).
struct Round {
    undos: Vec<Undo>,
    /// The records, sealed and encoded.
    records: Vec<Encoded>,
    results: Vec<Result<Written, WriteError>>,
    record_of: Vec<Option<usize>>,
}

/// What the log said about a batch's records.
enum Confirmed {
    /// Every record is valid: their positions.
    AllWon(Vec<u64>),
    /// Another writer got in first: the positions of ours that are valid.
    Raced(Vec<Option<u64>>),
    /// Nothing was written (the batch is undone), or the outcome could not be learnt in time
    /// (the records stay pending).
    Failed(String),
}

impl DirectoryWriter {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut jobs = Vec::with_capacity(MAX_BATCH);
        loop {
            tokio::select! {
                biased;
                n = rx.recv_many(&mut jobs, MAX_BATCH) => {
                    if n == 0 {
                        return;
                    }
                    self.batch(std::mem::take(&mut jobs), &mut rx).await;
                }
                // Records of other processes, folded while idle so the next batch starts fresh.
                Some(entry) = self.feed.recv() => self.absorb(&entry),
            }
        }
    }

    /// Applies the directory-sequence rule to one fed entry and follows it: a pending record
    /// of ours is confirmed, another writer's valid record is folded in, and a record that
    /// takes the place of our next pending one means our pending records lost.
    fn absorb(&mut self, entry: &LogEntry) {
        if entry.position < self.next {
            return;
        }
        self.next = entry.position + 1;
        let id = entry.record.record_id;
        let ours = self.pending.front().is_some_and(|p| p.id == id);
        if !self.head.admit(&entry.record, entry.digest) {
            if ours {
                self.lose_pending();
            } else if !self.lost_ids.remove(&id) {
                self.contended = true;
            }
            return;
        }
        if ours {
            self.pending.pop_front();
            self.won.push((id, entry.position));
            return;
        }
        self.lose_pending();
        for env in &entry.record.events {
            if let Err(e) = self.state.apply(env.clone()) {
                tracing::warn!(position = entry.position, error = %e, "event skipped by the fold");
            }
        }
    }

    /// Takes every pending record back out of the state, newest first: another writer's
    /// record got in first, so none of them is valid.
    fn lose_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        tracing::debug!(lost = self.pending.len(), "another writer got in first");
        if self.lost_ids.len() > MAX_BATCH * MAX_ROUNDS {
            // Records that never reached the log (an append whose outcome stayed unknown and
            // was then given up): forget them rather than grow.
            self.lost_ids.clear();
        }
        while let Some(p) = self.pending.pop_back() {
            self.state.revert(p.undo);
            self.lost_ids.insert(p.id);
        }
        self.lost = true;
    }

    /// After beating another writer to the directory, lets it go first: holds the next append
    /// back until the other's retry is in the log (a valid record that is not ours), or for
    /// `GIVE_WAY` at most. A writer learns of its own records sooner than of others' (its log
    /// tells it at once, the other's must be fetched), so without this the writer that won
    /// goes on winning and the other's commands starve.
    async fn give_way(&mut self) {
        if !std::mem::take(&mut self.contended) || !self.pending.is_empty() {
            return;
        }
        if let Some(m) = &self.metrics {
            m.give_ways.inc();
        }
        let seq = self.head.seq;
        let deadline = tokio::time::Instant::now() + GIVE_WAY;
        while self.head.seq == seq {
            match tokio::time::timeout_at(deadline, self.feed.recv()).await {
                Ok(Some(entry)) => self.absorb(&entry),
                Ok(None) | Err(_) => break,
            }
        }
        self.contended = false;
    }

    /// Takes a round's records back out of the state, newest first.
    fn revert_round(&mut self, undos: Vec<Undo>) {
        for undo in undos.into_iter().rev() {
            self.state.revert(undo);
        }
    }

    fn drain_feed(&mut self) {
        while let Ok(entry) = self.feed.try_recv() {
            self.absorb(&entry);
        }
    }

    /// Waits until the feed has shown every valid record the views hold for this directory.
    /// With views shared by several processes (PostgreSQL), another process may have written
    /// since this writer last heard from the log: a decision on the older state could refuse
    /// what exists (404) or miss a conflict it would then lose a race over. A log this process
    /// alone appends to (no `poll_interval`) holds nothing the writer has not decided itself or
    /// found in its snapshot, so there is nothing to ask the views.
    async fn catch_up_with_store(&mut self) -> Result<(), WriteError> {
        if self.log.poll_interval().is_none() {
            return Ok(());
        }
        let head = self.store.chain_head(&self.directory).await?;
        let deadline = tokio::time::Instant::now() + CATCH_UP_TIMEOUT;
        while self.head.seq < head.seq {
            match tokio::time::timeout_at(deadline, self.feed.recv()).await {
                Ok(Some(entry)) => self.absorb(&entry),
                Ok(None) => return Err(WriteError::Unavailable("projector stopped".into())),
                Err(_) => {
                    return Err(WriteError::Unavailable(
                        "this process has not read the log as far as the views; try again".into(),
                    ))
                }
            }
        }
        Ok(())
    }

    /// The sequence number, id and digest the next record follows: the last pending record's,
    /// or the head of the chain's.
    fn tip(&self) -> (u64, Option<Uuid>, Option<Digest>) {
        let seq = self.head.seq + self.pending.len() as u64;
        match self.pending.back() {
            Some(p) => (seq, Some(p.id), Some(p.digest)),
            None => (seq, self.head.record_id, self.head.digest),
        }
    }

    /// Makes sure a fresh data key is at hand for each of `n` commands (each creates at most
    /// one user).
    async fn take_fresh_keys(&mut self, n: usize) -> Result<(), crate::keys::KeyError> {
        if self.fresh.len() < n {
            let more = self.sealer.keys().take(n - self.fresh.len()).await?;
            self.fresh.extend(more);
        }
        Ok(())
    }

    /// Decides every job against the decision state, folding the events in with undo.
    fn decide_round(&mut self, jobs: &[Job]) -> Result<Round, &'static str> {
        let now = Utc::now();
        let (seq, mut prev, mut prev_digest) = self.tip();
        let mut round = Round {
            undos: Vec::new(),
            records: Vec::new(),
            results: Vec::with_capacity(jobs.len()),
            record_of: Vec::with_capacity(jobs.len()),
        };
        for job in jobs {
            // A part of the request's trace, which follows from the batch deciding it.
            let span =
                tracing::info_span!(parent: &job.span, "command", directory = self.state.name());
            span.follows_from(tracing::Span::current());
            let decided = span.in_scope(|| decide(&self.state, &job.cmd, &job.ctx, now));
            match decided {
                Ok((mut events, outcome)) if !events.is_empty() => {
                    let state = &self.state;
                    let key_of = |id| state.user(id).and_then(|u| u.data_key);
                    if let Err(why) = assign(&mut events, key_of, &mut self.fresh) {
                        tracing::error!(why, "personal data left without a data key");
                        self.revert_round(round.undos);
                        return Err("internal error while deciding");
                    }
                    let mut undo = Undo::default();
                    for e in &events {
                        if let Err(err) = self.state.apply_with_undo(e.clone(), &mut undo) {
                            // decide() only emits events that fit; this is a bug. Refuse the
                            // whole batch rather than append something unfoldable.
                            tracing::error!(error = %err, "decided event does not fold");
                            self.state.revert(undo);
                            self.revert_round(round.undos);
                            return Err("internal error while deciding");
                        }
                    }
                    round.undos.push(undo);
                    let record_id = Uuid::now_v7();
                    round.record_of.push(Some(round.records.len()));
                    let record = Record {
                        record_id,
                        directory: self.directory.clone(),
                        follows: seq + round.records.len() as u64,
                        prev,
                        events,
                        prev_digest: prev_digest.map(|d| chain::hex(&d)),
                        mac: None,
                    };
                    let sealed = match self.sealer.seal(record) {
                        Ok(sealed) => sealed,
                        Err(e) => {
                            tracing::warn!(error = %e, "a record could not be sealed");
                            self.revert_round(round.undos);
                            return Err("a data key is not available yet; try again");
                        }
                    };
                    prev = Some(record_id);
                    prev_digest = Some(sealed.digest);
                    round.records.push(sealed);
                    round.results.push(Ok(Written::of(outcome, &self.state)));
                }
                Ok((_, outcome)) => {
                    round.record_of.push(None);
                    round.results.push(Ok(Written::of(outcome, &self.state)));
                }
                Err(e) => {
                    round.record_of.push(None);
                    round.results.push(Err(e.into()));
                }
            }
        }
        Ok(round)
    }

    async fn batch(&mut self, mut jobs: Vec<Job>, rx: &mut mpsc::Receiver<Job>) {
        let span = tracing::info_span!(
            "command_batch",
            commands = jobs.len(),
            records = tracing::field::Empty,
            rounds = tracing::field::Empty
        );
        // The batch is a trace of its own, linked to each request it serves.
        for job in &jobs {
            span.follows_from(&job.span);
        }
        // Readiness counts how long the batch waits on the log and the views.
        let health = self.health.clone();
        let _waiting = health.waiting(&self.directory);
        for round_no in 1..=MAX_ROUNDS {
            span.record("rounds", round_no);
            self.give_way().instrument(span.clone()).await;
            if let Err(e) = self.catch_up_with_store().instrument(span.clone()).await {
                return self.fail_all(jobs, &e.to_string());
            }
            self.drain_feed();
            if let Err(e) = self.take_fresh_keys(jobs.len()).await {
                return self.fail_all(jobs, &e.to_string());
            }
            let round = match span.in_scope(|| self.decide_round(&jobs)) {
                Ok(round) => round,
                Err(why) => return self.fail_all(jobs, why),
            };
            span.record("records", round.records.len());
            if round.records.is_empty() {
                let nowhere = vec![None; jobs.len()];
                return self.answer(jobs, round.results, nowhere);
            }
            let won = match self
                .append_and_confirm(round.records, round.undos, rx)
                .instrument(span.clone())
                .await
            {
                Confirmed::AllWon(positions) => {
                    let at = round.record_of.iter().map(|r| r.map(|i| positions[i]));
                    return self.answer(jobs, round.results, at.collect());
                }
                Confirmed::Raced(won) => {
                    if let Some(m) = &self.metrics {
                        m.lost_races.inc();
                    }
                    won
                }
                Confirmed::Failed(why) => return self.fail_all(jobs, &why),
            };
            // Keep the commands whose records won; decide the rest again on the state the
            // winners left (a refusal may rest on a record that lost, so refusals are decided again
            // too).
            let mut retry = Vec::new();
            let mut done_jobs = Vec::new();
            let mut done_results = Vec::new();
            let mut done_at = Vec::new();
            for ((job, result), record) in jobs.into_iter().zip(round.results).zip(round.record_of)
            {
                match record.and_then(|i| won[i]) {
                    Some(at) => {
                        done_jobs.push(job);
                        done_results.push(result);
                        done_at.push(Some(at));
                    }
                    None => retry.push(job),
                }
            }
            self.answer(done_jobs, done_results, done_at);
            if retry.is_empty() {
                return;
            }
            tracing::debug!(retried = retry.len(), "lost a race; deciding again");
            jobs = retry;
        }
        self.fail_all(
            jobs,
            "too many concurrent writers to this directory; try again",
        );
    }

    /// Appends the round's records and waits until the feed has told the outcome of each.
    async fn append_and_confirm(
        &mut self,
        records: Vec<Encoded>,
        undos: Vec<Undo>,
        rx: &mut mpsc::Receiver<Job>,
    ) -> Confirmed {
        if !self.log.healthy() {
            self.revert_round(undos);
            return Confirmed::Failed("event log unavailable".into());
        }
        if !self.store.healthy() {
            self.revert_round(undos);
            return Confirmed::Failed("views unavailable".into());
        }
        let ids: Vec<Uuid> = records.iter().map(|r| r.record.record_id).collect();
        let digests: Vec<Digest> = records.iter().map(|r| r.digest).collect();
        let started = std::time::Instant::now();
        let appended = self.log.append_encoded(records.clone()).await;
        if let Some(m) = &self.metrics {
            m.append_duration.observe(started.elapsed().as_secs_f64());
        }
        match appended {
            Ok(_) => {}
            Err(LogError::Unknown(why)) => {
                tracing::warn!(%why, "append outcome unknown; sending the same records again");
                self.resend(&records, rx).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "append failed; batch undone");
                self.revert_round(undos);
                return Confirmed::Failed(e.to_string());
            }
        }
        // The records are in the log: from here on the decision state keeps them until the
        // log shows otherwise.
        self.pending.extend(
            ids.iter()
                .zip(undos)
                .zip(digests)
                .map(|((&id, undo), digest)| Pending { id, undo, digest }),
        );
        self.won.clear();
        self.lost = false;
        // Pending records are confirmed in order: the batch is through when its last is.
        let last = ids.last().copied();
        let store = self.store.clone();
        let wait = async {
            // The views confirm the outcome; if they stop answering, say so now rather than
            // at the timeout (the records are durable and stay pending either way).
            let mut health = tokio::time::interval(Duration::from_millis(250));
            while !self.lost && self.won.last().map(|w| w.0) != last {
                tokio::select! {
                    entry = self.feed.recv() => {
                        let Some(entry) = entry else {
                            return Err("projector stopped".to_string());
                        };
                        self.absorb(&entry);
                    }
                    _ = health.tick() => {
                        if !store.healthy() {
                            return Err("views unavailable".to_string());
                        }
                    }
                }
            }
            Ok(())
        };
        let why = match tokio::time::timeout(CONFIRM_TIMEOUT, wait).await {
            Ok(Ok(())) => None,
            Ok(Err(why)) => Some(why),
            Err(_) => Some("views did not catch up in time".to_string()),
        };
        if let Some(why) = why {
            // Durable but not yet confirmed: the records stay pending, the next records chain
            // on them, and the feed settles them later.
            tracing::warn!(%why, "appended, but the outcome was not confirmed");
            return Confirmed::Failed(why);
        }
        let won: HashMap<Uuid, u64> = self.won.drain(..).collect();
        let positions = ids.iter().map(|id| won.get(id).copied());
        if self.lost {
            Confirmed::Raced(positions.collect())
        } else {
            Confirmed::AllWon(positions.flatten().collect())
        }
    }

    /// Sends the same records again until the log takes them, answering commands that arrive
    /// meanwhile `Unavailable` (they were never decided). A copy that lands after the first
    /// is invalid under the directory-sequence rule, so the command takes effect once.
    async fn resend(&mut self, records: &[Encoded], rx: &mut mpsc::Receiver<Job>) {
        let mut delay = Duration::from_millis(100);
        loop {
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    job = rx.recv() => match job {
                        Some(job) => self.fail_all(vec![job], "event log unavailable"),
                        // Shutting down: still resolve the batch in flight.
                        None => (&mut sleep).await,
                    },
                }
            }
            match self.log.append_encoded(records.to_vec()).await {
                Ok(_) => return,
                Err(e) => tracing::warn!(error = %e, "sending again failed; will retry"),
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Answers each job with its result and its record's position.
    fn answer(
        &self,
        jobs: Vec<Job>,
        results: Vec<Result<Written, WriteError>>,
        positions: Vec<Option<u64>>,
    ) {
        self.record(&results);
        for ((job, result), position) in jobs.into_iter().zip(results).zip(positions) {
            let receipt = result.map(|written| Receipt { written, position });
            let _ = job.reply.send(receipt);
        }
    }

    fn fail_all(&self, jobs: Vec<Job>, why: &str) {
        let results = jobs
            .iter()
            .map(|_| Err(WriteError::Unavailable(why.to_owned())))
            .collect();
        let nowhere = vec![None; jobs.len()];
        self.answer(jobs, results, nowhere);
    }

    fn record(&self, results: &[Result<Written, WriteError>]) {
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
