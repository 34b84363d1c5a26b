//! The audit trail answered from the audit projection in PostgreSQL (`audit_events`, written by
//! the views' fold in the same transaction): a search walks each partition's rows in entry
//! order, a chunk at a time, starting from the narrowest list its filter names (a resource's,
//! an actor's, a token's, a request's or an event type's events, each an index), checks every
//! row with the same filter code as the memory index, and merges partitions by time. Pages,
//! cursors and orders are those of the memory index, entry for entry.

use super::index::{Entry, Interner, NO_ENTRY};
use super::query::{self, Cursor, Found, Hit, Next, Outcome, Round, Search};
use super::{Audit, AuditError, Picked, State, CATCH_UP_WAIT};
use crate::log::EventLog;
use roster_events::EVENT_TYPES;
use roster_projections::filter::{Filter, Op};
use roster_projections::pg::audit::{AuditRow, Narrow, Scan};
use roster_projections::pg::PgStore;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use tokio::sync::watch;
use uuid::Uuid;

/// The fewest rows one scan step reads.
const MIN_CHUNK: usize = 64;

/// The audit projection, and per log partition the position the views (and so the audit
/// rows, folded with them) reflect.
pub(super) struct PgIndex {
    pub store: Arc<PgStore>,
    projected: Vec<watch::Receiver<u64>>,
}

impl Audit {
    /// An audit trail answered from the audit projection of `store`, whose views reflect the
    /// positions `projected` says (one per partition of `log`).
    pub fn on_postgres(
        log: Arc<dyn EventLog>,
        store: Arc<PgStore>,
        projected: Vec<watch::Receiver<u64>>,
    ) -> Arc<Audit> {
        let log = log.follower().unwrap_or(log);
        let audit = Arc::new(Audit {
            log,
            state: RwLock::new(State {
                partitions: Vec::new(),
                strings: Interner::default(),
            }),
            pg: Some(PgIndex {
                store,
                projected: projected.clone(),
            }),
            grown: watch::channel(0).0,
            scan_limit: std::sync::atomic::AtomicUsize::new(super::query::SCAN_LIMIT),
        });
        // Searches that follow the log wake when the views move on.
        for mut views in projected {
            let audit = Arc::downgrade(&audit);
            tokio::spawn(async move {
                while views.changed().await.is_ok() {
                    let Some(audit) = audit.upgrade() else { return };
                    audit.grown.send_modify(|n| *n += 1);
                }
            });
        }
        audit
    }

    /// Waits until the views hold every record the log held when this was called.
    pub(super) async fn pg_caught_up(&self, pg: &PgIndex) -> Result<(), AuditError> {
        let ends: Vec<u64> = (0..self.log.partitions())
            .map(|p| *self.log.end(p).borrow())
            .collect();
        let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
        for (views, &end) in pg.projected.iter().zip(&ends) {
            let mut views = views.clone();
            let reached = tokio::time::timeout_at(deadline, views.wait_for(|&n| n >= end)).await;
            if !matches!(reached, Ok(Ok(_))) {
                return Err(AuditError::CatchingUp {
                    done: pg.projected.iter().map(|v| *v.borrow()).sum(),
                    total: ends.iter().sum(),
                });
            }
        }
        Ok(())
    }

    /// Runs `search` over the audit projection.
    pub(super) async fn pg_run(
        &self,
        pg: &PgIndex,
        search: &Search,
    ) -> Result<(Found, Picked), AuditError> {
        let narrow = search.filter.as_ref().and_then(narrow_of);
        let chunk = (search.limit + 1).max(MIN_CHUNK);
        let mut strings = Interner::default();
        let mut walks = Vec::new();
        for p in 0..self.log.partitions() {
            let first = match search.since_ms {
                Some(t) => pg.store.audit_first_since(p, t).await?,
                None => 0,
            };
            let resume = search.after.as_ref().map(|c| u64::from(c.next[p as usize]));
            // Where an ascending walk that finds nothing more goes on from: every row
            // appended later is at or after it.
            let end = pg.store.audit_end(p).await?;
            walks.push(Walk::new(
                p,
                first,
                resume,
                end,
                search.descending,
                narrow.clone(),
            ));
        }
        let mut hits = Vec::new();
        let mut items = Vec::new();
        let mut more = false;
        let mut left = self.scan_limit();
        loop {
            // The partition whose next match comes first in time (in the search's order).
            let mut round = Round::default();
            for (i, walk) in walks.iter_mut().enumerate() {
                let next = walk
                    .peek(pg, search, &mut strings, chunk, &mut left)
                    .await?;
                round.offer(search, i, next);
            }
            // As in memory (`query::run`).
            let i = match round.outcome() {
                Outcome::Show(i) => i,
                Outcome::Done => break,
                Outcome::Stopped => {
                    more = true;
                    break;
                }
            };
            if hits.len() == search.limit {
                more = true;
                break;
            }
            let (entry, e) = walks[i].take();
            hits.push(Hit {
                partition: i as u32,
                entry: entry as u32,
            });
            items.push((i as u32, e));
        }
        let resume = Cursor {
            descending: search.descending,
            next: walks.iter().map(|w| w.resume() as u32).collect(),
        };
        let items = self.with_previous(pg, items, &mut strings).await?;
        let found = Found {
            hits,
            next: more.then(|| resume.clone()),
            resume,
        };
        Ok((found, Picked { strings, items }))
    }

    /// Each event with the event whose document it replaced.
    async fn with_previous(
        &self,
        pg: &PgIndex,
        items: Vec<(u32, Entry)>,
        strings: &mut Interner,
    ) -> Result<Vec<(u32, Entry, Option<Entry>)>, AuditError> {
        let mut wanted: HashMap<u32, Vec<u64>> = HashMap::new();
        for (p, e) in &items {
            if e.previous != NO_ENTRY {
                wanted.entry(*p).or_default().push(u64::from(e.previous));
            }
        }
        let mut found: HashMap<(u32, u32), Entry> = HashMap::new();
        for (p, mut entries) in wanted {
            entries.sort_unstable();
            entries.dedup();
            for row in pg.store.audit_entries(p, &entries).await? {
                found.insert((p, row.entry as u32), entry_of(row, strings));
            }
        }
        Ok(items
            .into_iter()
            .map(|(p, e)| {
                let before = found.get(&(p, e.previous)).cloned();
                (p, e, before)
            })
            .collect())
    }

    /// The partition of `id`'s events and every one of them, in log order.
    pub(super) async fn pg_resource(
        &self,
        pg: &PgIndex,
        id: Uuid,
    ) -> Result<Option<(u32, Vec<Entry>)>, AuditError> {
        let rows = pg.store.audit_resource(id).await?;
        let Some(partition) = rows.first().map(|r| r.partition) else {
            return Ok(None);
        };
        let mut strings = Interner::default();
        let events = rows
            .into_iter()
            .filter(|r| r.partition == partition)
            .map(|r| entry_of(r, &mut strings))
            .collect();
        Ok(Some((partition, events)))
    }
}

/// An audit row as an index entry, its strings interned in `strings`.
fn entry_of(r: AuditRow, strings: &mut Interner) -> Entry {
    Entry {
        position: r.position,
        time_ms: r.time_ms,
        version: r.version,
        resource: r.resource,
        event: r.event,
        kind: r.kind,
        resource_type: r.resource_type,
        actor_kind: r.actor_kind,
        directory: strings.intern(Some(&r.directory)),
        actor: strings.intern(r.actor.as_deref()),
        source: strings.intern(r.source.as_deref()),
        token: strings.intern(r.token.as_deref()),
        ip: strings.intern(r.ip.as_deref()),
        user_agent: strings.intern(r.user_agent.as_deref()),
        correlation: r.correlation,
        name: strings.intern(r.name.as_deref()),
        previous: r.previous.map_or(NO_ENTRY, |p| p as u32),
    }
}

/// The list a filter lets a scan walk instead of every event, if it names one resource,
/// request, token, actor or event type with `eq` (alone or in an `and`); the most selective
/// one when it names several.
fn narrow_of(f: &Filter) -> Option<Narrow> {
    let rank = |n: &Narrow| match n {
        Narrow::Resource(_) => 0,
        Narrow::Correlation(_) => 1,
        Narrow::Token(_) => 2,
        Narrow::Actor(_) => 3,
        Narrow::Type(_) => 4,
    };
    match f {
        Filter::Compare {
            path,
            op: Op::Eq,
            value: Value::String(s),
        } => {
            let field = query::field_name(path);
            match field.as_str() {
                // Not an id: no event names it (the nil id is never a resource's).
                "resource.id" => Some(Narrow::Resource(s.parse().unwrap_or(Uuid::nil()))),
                "actor.id" => Some(Narrow::Actor(s.clone())),
                "token" | "client.tokenid" => Some(Narrow::Token(s.clone())),
                // The key the search's parse put in the request id's place.
                "correlationid" => u64::from_str_radix(s, 16).ok().map(Narrow::Correlation),
                // Event types compare case-insensitively; an unknown one matches nothing.
                "type" => Some(Narrow::Type(
                    EVENT_TYPES
                        .iter()
                        .find(|t| t.eq_ignore_ascii_case(s))
                        .copied()
                        .unwrap_or(""),
                )),
                _ => None,
            }
        }
        Filter::And(a, b) => match (narrow_of(a), narrow_of(b)) {
            (Some(x), Some(y)) => Some(if rank(&x) <= rank(&y) { x } else { y }),
            (x, y) => x.or(y),
        },
        _ => None,
    }
}

/// A search's walk through one partition's rows, in its order.
struct Walk {
    partition: u32,
    narrow: Option<Narrow>,
    descending: bool,
    /// Rows at or above this entry are still to be read (ascending), or are the lowest the
    /// walk may read (descending).
    low: u64,
    /// Rows below this entry are still to be read (descending).
    high: Option<u64>,
    /// Where an ascending walk goes on once it has read everything.
    end: u64,
    /// Matching rows read and not yet taken, in the walk's order.
    ready: VecDeque<(u64, Entry)>,
    exhausted: bool,
}

impl Walk {
    fn new(
        partition: u32,
        first: u64,
        resume: Option<u64>,
        end: u64,
        descending: bool,
        narrow: Option<Narrow>,
    ) -> Walk {
        let (low, high) = if descending {
            (first, resume)
        } else {
            (resume.map_or(first, |r| r.max(first)), None)
        };
        Walk {
            partition,
            narrow,
            descending,
            low,
            high,
            end,
            ready: VecDeque::new(),
            exhausted: false,
        }
    }

    /// The time of the next matching row, reading more rows as needed while fewer than
    /// `left` rows that do not match were passed over (counting them off).
    async fn peek(
        &mut self,
        pg: &PgIndex,
        search: &Search,
        strings: &mut Interner,
        chunk: usize,
        left: &mut usize,
    ) -> Result<Next<i64>, AuditError> {
        // Bounded: every round reads a chunk further or ends the walk.
        while self.ready.is_empty() && !self.exhausted {
            if *left == 0 {
                return Ok(Next::Stopped);
            }
            // No more rows than the scan limit lets the page pass over.
            let limit = chunk.min(*left);
            let scan = Scan {
                partition: self.partition,
                narrow: self.narrow.clone(),
                from: self.low,
                below: self.high,
                descending: self.descending,
                limit,
            };
            let rows = pg.store.audit_scan(&scan).await?;
            self.exhausted = rows.len() < limit;
            if let Some(last) = rows.last() {
                if self.descending {
                    self.high = Some(last.entry);
                } else {
                    self.low = last.entry + 1;
                }
            }
            for row in rows {
                let n = row.entry;
                let e = entry_of(row, strings);
                if query::matches(search, &e, strings, self.partition) {
                    self.ready.push_back((n, e));
                } else {
                    *left = left.saturating_sub(1);
                }
            }
            if self.exhausted && !self.descending {
                self.low = self.low.max(self.end);
            }
        }
        Ok(match self.ready.front() {
            Some((_, e)) => Next::Match(e.time_ms),
            None => Next::End,
        })
    }

    fn take(&mut self) -> (u64, Entry) {
        self.ready
            .pop_front()
            .expect("take follows a peek that found a row")
    }

    /// Where this walk goes on from, as an entry number (the cursor's).
    fn resume(&self) -> u64 {
        match (self.ready.front(), self.descending) {
            (Some((n, _)), false) => *n,
            (Some((n, _)), true) => n + 1,
            (None, false) => self.low,
            (None, true) if self.exhausted => self.low,
            (None, true) => self.high.unwrap_or(self.low),
        }
    }
}
