//! The audit trail: the log made answerable. A follower per partition folds every valid record
//! into an index in memory ([`index`]); a search ([`query`]) runs over the index and the events
//! it finds are read back from the log and rendered for a person ([`render`]): who did what,
//! when, through which source and client, and what changed, old and new values side by side.
//! A resource's state at any moment is folded from its own events. [`verify`] checks the
//! seals and links that make tampering with the log evident. [`access`] records refused
//! requests and reads of the trail.

pub mod access;
pub mod activity;
mod chunked;
mod follow;
pub mod image;
pub mod index;
mod pg;
pub mod query;
pub mod render;
mod tally;
pub mod verify;

use crate::log::{EventLog, LogError, RecordEntry};
use futures_util::StreamExt;
use index::{Entry, Interner, PartitionIndex, NO_ENTRY};
use query::{Found, Search};
use render::{Rendered, Stored};
use roster_events::{Event, KeyId, Member, Personal, ResourceType};
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

/// How long a search waits for the index to reach the end of the log as it was when the
/// search came in (so that a change just acknowledged is found).
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);

/// Why the audit trail could not answer.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Log(#[from] LogError),
    /// The index is still folding the log (at start-up, after a long history).
    #[error("the audit index is catching up with the log ({done} of {total} records); try again shortly")]
    CatchingUp { done: u64, total: u64 },
    /// The index names a record the log no longer returns.
    #[error("record {position} of partition {partition} is missing from the log")]
    Missing { partition: u32, position: u64 },
    /// The audit projection in PostgreSQL could not be read.
    #[error(transparent)]
    Store(#[from] roster_projections::StoreError),
    /// A search of the index in memory failed on the thread it ran on (a defect).
    #[error("an audit search failed on its thread: {0}")]
    Thread(String),
}

struct State {
    partitions: Vec<PartitionIndex>,
    strings: Interner,
}

/// The audit trail of one process: its index (in memory, or the audit projection in
/// PostgreSQL) and the log it reads events back from.
pub struct Audit {
    log: Arc<dyn EventLog>,
    /// The index in memory (empty when the audit projection in PostgreSQL answers).
    state: RwLock<State>,
    pg: Option<pg::PgIndex>,
    /// Bumped after every folded batch: searches that wait for new events wake on it.
    grown: watch::Sender<u64>,
    /// How many events that do not match one page of a search passes over at most
    /// ([`query::SCAN_LIMIT`] unless set).
    scan_limit: AtomicUsize,
}

/// A page of rendered events.
pub struct Page {
    pub events: Vec<Rendered>,
    pub found: Found,
}

/// A resource as it was at some moment.
pub enum AsOf {
    /// It existed: its document (with `id` and `meta`) as it was.
    Existed(Value),
    /// It was deleted before that moment, at this time.
    Deleted { at: String },
    /// It is a user whose personal data was erased (at this time): what it looked like can no
    /// longer be read.
    Erased { at: String },
    /// It did not exist yet, or never did.
    Unknown,
}

/// What the audit trail says of a resource, for erasing it (see [`Audit::person`]).
#[derive(Clone, Debug)]
pub struct Person {
    /// Whether the resource is a user.
    pub user: bool,
    pub directory: String,
    /// Its version after its last event.
    pub version: u64,
    /// The data key its personal data is sealed under, if any was.
    pub key: Option<KeyId>,
    /// How many of its events hold personal data in clear.
    pub in_clear: u64,
    /// When its personal data was erased, if it was.
    pub erased_at: Option<String>,
    /// Whether it was deleted.
    pub deleted: bool,
}

impl Audit {
    /// An empty index over `log` (read through a follower handle of its own);
    /// [`Audit::follow`] fills it.
    pub fn new(log: Arc<dyn EventLog>) -> Arc<Audit> {
        let log = log.follower().unwrap_or(log);
        let partitions = (0..log.partitions())
            .map(|_| PartitionIndex::default())
            .collect();
        Arc::new(Audit {
            log,
            state: RwLock::new(State {
                partitions,
                strings: Interner::default(),
            }),
            pg: None,
            grown: watch::channel(0).0,
            scan_limit: AtomicUsize::new(query::SCAN_LIMIT),
        })
    }

    /// Sets how many events that do not match one page of a search passes over at most (at
    /// least one; see [`query::SCAN_LIMIT`]).
    pub fn set_scan_limit(&self, events: usize) {
        self.scan_limit.store(events.max(1), Ordering::Relaxed);
    }

    pub(super) fn scan_limit(&self) -> usize {
        self.scan_limit.load(Ordering::Relaxed)
    }

    /// Installs an index read back from a snapshot ([`image::read`]) if nothing was folded
    /// yet: true if it was. The followers then fold the log after it.
    pub fn install(&self, restored: image::Restored) -> bool {
        let mut restored = restored.0;
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let fresh = state.partitions.iter().all(|p| p.next == 0);
        if !fresh || restored.partitions.len() > state.partitions.len() {
            return false;
        }
        restored
            .partitions
            .resize_with(state.partitions.len(), PartitionIndex::default);
        *state = restored;
        drop(state);
        self.grown.send_modify(|n| *n += 1);
        true
    }

    /// Per partition, the first position the index in memory has not folded.
    pub fn next_positions(&self) -> Vec<u64> {
        self.read().partitions.iter().map(|p| p.next).collect()
    }

    /// How many user.erased events the index in memory folded.
    pub fn erasures(&self) -> u64 {
        self.read().partitions.iter().map(|p| p.erasures).sum()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while folding leaves the index as it was before that batch: keep serving it.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the index holds every record the log held when this was called.
    ///
    /// Fails with `CatchingUp` when that takes longer than a few seconds.
    async fn caught_up(&self) -> Result<(), AuditError> {
        if let Some(pg) = &self.pg {
            return self.pg_caught_up(pg).await;
        }
        let ends: Vec<u64> = (0..self.log.partitions())
            .map(|p| *self.log.end(p).borrow())
            .collect();
        let behind = |audit: &Audit| {
            let state = audit.read();
            let done: u64 = state.partitions.iter().map(|p| p.next).sum();
            let lagging = state
                .partitions
                .iter()
                .zip(&ends)
                .any(|(p, &end)| p.next < end);
            lagging.then(|| AuditError::CatchingUp {
                done,
                total: ends.iter().sum(),
            })
        };
        let mut grown = self.grown.subscribe();
        let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
        loop {
            let Some(why) = behind(self) else {
                return Ok(());
            };
            if tokio::time::timeout_at(deadline, grown.changed())
                .await
                .is_err()
            {
                return Err(why);
            }
        }
    }

    /// Runs a search and renders the page it finds. With `wait`, an empty page waits up to
    /// that long for a matching event to be appended (following the log).
    ///
    /// Fails when the index is behind the log or an event cannot be read back.
    pub async fn search(
        self: &Arc<Self>,
        search: &Search,
        wait: Option<Duration>,
    ) -> Result<Page, AuditError> {
        self.caught_up().await?;
        let deadline = wait.map(|w| tokio::time::Instant::now() + w);
        let mut grown = self.grown.subscribe();
        loop {
            let (found, picked) = self.find(search).await?;
            // A page the scan limit cut short goes back at once: its cursor goes on.
            let waiting = found.hits.is_empty()
                && found.next.is_none()
                && deadline.is_some_and(|d| tokio::time::Instant::now() < d);
            if !waiting {
                let events = self.render(picked).await?;
                return Ok(Page { events, found });
            }
            let deadline = deadline.expect("waiting implies a deadline");
            if tokio::time::timeout_at(deadline, grown.changed())
                .await
                .is_err()
            {
                // One last look: the page is empty, but its cursor is where to go on.
                continue;
            }
        }
    }

    /// The hits of one page of `search`, with what reading them back needs. The index in
    /// memory is searched on a blocking thread: a page may pass over up to the scan limit of
    /// events (a tenth of a second or more), which must not hold up the requests queued on a
    /// worker.
    ///
    /// Fails when the projection in PostgreSQL cannot be read.
    async fn find(self: &Arc<Self>, search: &Search) -> Result<(Found, Picked), AuditError> {
        if let Some(pg) = &self.pg {
            return self.pg_run(pg, search).await;
        }
        let (audit, search) = (self.clone(), search.clone());
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            let state = audit.read();
            let parts: Vec<&PartitionIndex> = state.partitions.iter().collect();
            let found = query::run(&search, &parts, &state.strings, audit.scan_limit());
            let picked = Picked::from_memory(&state, &found.hits);
            (found, picked)
        })
        .await
        .map_err(|e| AuditError::Thread(e.to_string()))
    }

    /// Reads the picked events (and the documents they replaced) back from the log, ready
    /// to be rendered.
    async fn render(&self, picked: Picked) -> Result<Vec<Rendered>, AuditError> {
        let Picked { strings, items } = picked;
        let strings = Arc::new(strings);
        let mut records = Records::default();
        // Each run of consecutive positions in one read, in log order (a Kafka consumer
        // reading forward keeps its place).
        let mut positions: Vec<(u32, u64)> = items
            .iter()
            .flat_map(|(p, e, b)| {
                std::iter::once((*p, e.position)).chain(b.iter().map(|b| (*p, b.position)))
            })
            .collect();
        positions.sort_unstable();
        positions.dedup();
        // As many reads at once as the log serves without slowing each other (one for a log
        // read through one cursor): the documents a page's events replaced lie far apart.
        let runs: Vec<(u32, u64, usize)> = positions
            .chunk_by(|a, b| a.0 == b.0 && a.1 + 1 == b.1)
            .map(|run| (run[0].0, run[0].1, run.len()))
            .collect();
        let mut reads = futures_util::stream::iter(runs)
            .map(|(partition, from, n)| read_back(self, partition, from, n))
            .buffered(self.log.concurrent_reads().max(1));
        while let Some(read) = reads.next().await {
            records.keep(read?);
        }
        let mut out = Vec::with_capacity(items.len());
        for (partition, e, before) in items {
            let event = records.event(self, partition, &e).await?;
            let before = match &before {
                Some(b) => Some(records.event(self, partition, b).await?),
                None => None,
            };
            out.push(Rendered::new(e, partition, strings.clone(), event, before));
        }
        Ok(out)
    }

    /// How many events the index in memory holds.
    pub fn events(&self) -> usize {
        self.read().partitions.iter().map(|p| p.entries.len()).sum()
    }

    /// How many log partitions the index covers.
    pub fn partitions(&self) -> usize {
        self.log.partitions() as usize
    }

    /// Whether no event of the log names `id`.
    ///
    /// Fails when the audit projection cannot be read.
    pub async fn unknown(&self, id: Uuid) -> Result<bool, AuditError> {
        if let Some(pg) = &self.pg {
            return Ok(pg.store.audit_resource(id).await?.is_empty());
        }
        let state = self.read();
        Ok(!state
            .partitions
            .iter()
            .any(|p| p.by_resource.contains_key(&id)))
    }

    /// The partition of `id`'s events and every one of them, in log order.
    async fn resource(&self, id: Uuid) -> Result<Option<(u32, Vec<Entry>)>, AuditError> {
        if let Some(pg) = &self.pg {
            return self.pg_resource(pg, id).await;
        }
        let state = self.read();
        Ok(state.partitions.iter().enumerate().find_map(|(p, idx)| {
            idx.by_resource.get(&id).map(|r| {
                let events = r.entries.iter().map(|&n| idx.entries[n as usize].clone());
                (p as u32, events.collect())
            })
        }))
    }

    /// What erasing `id` needs to know of it, from its events: None when no event names it.
    ///
    /// Fails when the index is behind or an event cannot be read back.
    pub async fn person(&self, id: Uuid) -> Result<Option<Person>, AuditError> {
        self.caught_up().await?;
        let Some((partition, events)) = self.resource(id).await? else {
            return Ok(None);
        };
        let mut records = Records::default();
        let mut person = Person {
            user: events.first().map(|e| e.resource_type) == Some(ResourceType::User),
            directory: String::new(),
            version: 0,
            key: None,
            in_clear: 0,
            erased_at: None,
            deleted: false,
        };
        for e in &events {
            let stored = records.event(self, partition, e).await?;
            let env = stored.envelope();
            person.directory.clone_from(&env.directory);
            person.version = env.resource_version;
            person.key = env.event.data_key().or(person.key);
            let clear = match &env.event {
                Event::UserCreated(c) => matches!(c.resource, Personal::Plain(_)),
                Event::UserReplaced(r) => matches!(r.resource, Personal::Plain(_)),
                Event::UserPasswordSet(p) => matches!(p.hash, Personal::Plain(_)),
                _ => false,
            };
            person.in_clear += u64::from(clear);
            match &env.event {
                Event::UserErased(erased) => {
                    person.key = erased.key.or(person.key);
                    person.erased_at = Some(query::rfc3339(e.time_ms));
                }
                Event::UserDeleted => person.deleted = true,
                _ => {}
            }
        }
        Ok(Some(person))
    }

    /// `id` as it was at `at_ms` (a time) or after the record at `position` of its partition.
    ///
    /// Fails when the index is behind or an event cannot be read back.
    pub async fn as_of(
        &self,
        id: Uuid,
        at_ms: Option<i64>,
        position: Option<u64>,
    ) -> Result<AsOf, AuditError> {
        self.caught_up().await?;
        // The resource's events up to the moment, in order.
        let Some((partition, mut events)) = self.resource(id).await? else {
            return Ok(AsOf::Unknown);
        };
        // Once erased, a person reads as erased at every moment, before the erasure too.
        if let Some(erased) = events.iter().find(|e| e.event_type() == "user.erased") {
            return Ok(AsOf::Erased {
                at: query::rfc3339(erased.time_ms),
            });
        }
        let upto = events
            .iter()
            .take_while(|e| {
                at_ms.is_none_or(|t| e.time_ms <= t) && position.is_none_or(|p| e.position <= p)
            })
            .count();
        events.truncate(upto);
        let Some(last) = events.last() else {
            return Ok(AsOf::Unknown);
        };
        if matches!(last.event_type(), "user.deleted" | "group.deleted") {
            return Ok(AsOf::Deleted {
                at: query::rfc3339(last.time_ms),
            });
        }
        let mut records = Records::default();
        let mut document = Map::new();
        let mut members: BTreeSet<Member> = BTreeSet::new();
        for e in &events {
            let stored = records.event(self, partition, e).await?;
            match &stored.envelope().event {
                Event::UserCreated(c) => document = personal_map(&c.resource),
                Event::UserReplaced(c) => document = personal_map(&c.resource),
                Event::GroupCreated(c) => document = c.resource.to_map(),
                Event::GroupReplaced(c) => document = c.resource.to_map(),
                Event::GroupMembersAdded(m) => members.extend(m.members.iter().copied()),
                Event::GroupMembersRemoved(m) => {
                    for member in &m.members {
                        members.remove(member);
                    }
                }
                _ => {}
            }
        }
        let first = &events[0];
        let resource_type = match first.resource_type {
            ResourceType::User => "User",
            ResourceType::Group => "Group",
            _ => return Ok(AsOf::Unknown),
        };
        document.insert("id".into(), json!(id));
        if first.resource_type == ResourceType::Group {
            let members: Vec<Value> = members
                .iter()
                .map(|m| json!({"value": m.value, "type": m.kind}))
                .collect();
            document.insert("members".into(), json!(members));
        }
        document.insert(
            "meta".into(),
            json!({
                "resourceType": resource_type,
                "created": query::rfc3339(first.time_ms),
                "lastModified": query::rfc3339(last.time_ms),
                "version": format!("W/\"{}\"", last.version),
            }),
        );
        Ok(AsOf::Existed(Value::Object(document)))
    }
}

/// The most events an export renders at once; its memory is bounded by this, whatever the
/// size of the range.
const EXPORT_PAGE: usize = 2000;

impl Audit {
    /// Every event `search` matches, oldest first, as NDJSON (one rendered event a line),
    /// produced a page at a time so that memory stays constant for any range. Three pages are
    /// under way at once: one is written out while the next is read back from the log and the
    /// one after is found (in PostgreSQL, its query goes out meanwhile). The stream ends at the
    /// last match the log holds when it gets there; an error ends it early (the consumer sees
    /// the body cut short). Dropping the stream stops the reading.
    pub fn export(
        self: Arc<Self>,
        mut search: Search,
    ) -> impl futures_util::Stream<Item = Result<bytes::Bytes, AuditError>> + Send {
        search.descending = false;
        search.limit = EXPORT_PAGE;
        // One page waits while one is written out and the next is read.
        let (pages, rx) = tokio::sync::mpsc::channel::<Result<Page, AuditError>>(1);
        let reader = async move {
            let find = |search: Search| {
                let audit = self.clone();
                async move {
                    audit.caught_up().await?;
                    audit.find(&search).await
                }
            };
            let mut found = find(search.clone()).await;
            // Bounded by the log: every page moves the cursor on, and the last has none.
            loop {
                let (hits, picked) = match found {
                    Ok(found) => found,
                    Err(e) => {
                        let _ = pages.send(Err(e)).await;
                        return;
                    }
                };
                let next = hits.next.clone().map(|after| Search {
                    after: Some(after),
                    ..search.clone()
                });
                let (events, following) = tokio::join!(self.render(picked), async {
                    match next {
                        Some(next) => Some(find(next).await),
                        None => None,
                    }
                });
                let page = events.map(|events| Page {
                    events,
                    found: hits,
                });
                let failed = page.is_err();
                if pages.send(page).await.is_err() || failed {
                    return; // The consumer went away, or the export ends at the error.
                }
                match following {
                    Some(next) => found = next,
                    None => return,
                }
            }
        };
        tokio::spawn(reader.instrument(tracing::info_span!("audit.export")));
        futures_util::stream::unfold(rx, |mut rx| async move {
            let page = rx.recv().await?;
            Some((page.map(|p| ndjson(&p.events)), rx))
        })
    }
}

/// Events as NDJSON, one a line.
fn ndjson(events: &[Rendered]) -> bytes::Bytes {
    let mut out = Vec::with_capacity(events.len() * 1024);
    for event in events {
        // A rendered event is plain JSON: it always serializes.
        serde_json::to_writer(&mut out, event).expect("rendered events serialize");
        out.push(b'\n');
    }
    bytes::Bytes::from(out)
}

/// The events a page shows, each with the event whose document it replaced, and the strings
/// they name (theirs only: the page is rendered without holding the index).
struct Picked {
    strings: Interner,
    items: Vec<(u32, Entry, Option<Entry>)>,
}

impl Picked {
    fn from_memory(state: &State, hits: &[query::Hit]) -> Picked {
        let mut strings = Interner::default();
        let items = hits
            .iter()
            .map(|h| {
                let index = &state.partitions[h.partition as usize];
                let e = &index.entries[h.entry as usize];
                let before = (e.previous != NO_ENTRY).then(|| {
                    index.entries[e.previous as usize].reinterned(&state.strings, &mut strings)
                });
                (
                    h.partition,
                    e.reinterned(&state.strings, &mut strings),
                    before,
                )
            })
            .collect();
        Picked { strings, items }
    }
}

/// How long reading back a record the index names may find nothing before it is missing.
const READ_BACK_WAIT: Duration = Duration::from_secs(2);
/// How long to pause between such reads.
const READ_BACK_PAUSE: Duration = Duration::from_millis(10);

/// Records read back from the log for one answer, each read once.
#[derive(Default)]
struct Records(HashMap<(u32, u64), Arc<roster_events::Record>>);

impl Records {
    /// Keeps records read back.
    fn keep(&mut self, entries: Vec<RecordEntry>) {
        for entry in entries {
            self.0
                .insert((entry.partition, entry.position), entry.record);
        }
    }

    /// One event, reading its record unless it was fetched already.
    async fn event(
        &mut self,
        audit: &Audit,
        partition: u32,
        e: &Entry,
    ) -> Result<Stored, AuditError> {
        let key = (partition, e.position);
        if !self.0.contains_key(&key) {
            self.keep(read_back(audit, partition, e.position, 1).await?);
        }
        Stored::new(self.0[&key].clone(), usize::from(e.event)).ok_or(AuditError::Missing {
            partition,
            position: e.position,
        })
    }
}

/// Reads the `n` records of `partition` from `from` on, which the index names: a networked
/// log that answers with nothing while its fetch is under way is asked again for a while.
///
/// Fails when the log cannot be read or does not hold them.
async fn read_back(
    audit: &Audit,
    partition: u32,
    from: u64,
    n: usize,
) -> Result<Vec<RecordEntry>, AuditError> {
    let mut next = from;
    let mut read = Vec::with_capacity(n);
    let mut deadline = tokio::time::Instant::now() + READ_BACK_WAIT;
    // Bounded: every round reads at least one record, or waits, until the deadline.
    while next < from + n as u64 {
        let entries = audit
            .log
            .read_records(partition, next, (from + n as u64 - next) as usize)
            .await?;
        match entries.first() {
            Some(first) if first.position == next => {
                deadline = tokio::time::Instant::now() + READ_BACK_WAIT;
            }
            None if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(READ_BACK_PAUSE).await;
                continue;
            }
            _ => {
                return Err(AuditError::Missing {
                    partition,
                    position: next,
                })
            }
        }
        next = entries.last().map_or(next, |e| e.position + 1);
        read.extend(entries);
    }
    Ok(read)
}

/// A user's document as a map; empty where it was erased.
fn personal_map(p: &Personal<roster_events::Document>) -> Map<String, Value> {
    p.value().map(|d| d.to_map()).unwrap_or_default()
}
