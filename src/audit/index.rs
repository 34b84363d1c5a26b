//! The audit index in memory: one compact entry per event of every valid record, in log order,
//! with lists by resource, actor, token and request id. It holds what a query filters on and
//! where each event lies in the log; the events themselves are read back from the log when
//! they are shown.
//!
//! Validity is the log's own rule ([`ChainState::admit`]): an event of a record that lost its
//! directory's race never happened, and is not in the audit trail.

use super::chunked::Chunked;
use roster_events::chain::Digest;
use roster_events::{ChainState, ResourceType, EVENT_TYPES};
pub use roster_projections::audit::{correlation_key, ActorKind};
use roster_projections::audit::{Facts, Lineage};
use roster_projections::LogEntry;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// An interned string; [`NONE`] stands for absent.
pub type Sym = u32;
pub const NONE: Sym = 0;
/// No entry (an entry's `previous` when its resource had no document before).
pub const NO_ENTRY: u32 = u32::MAX;

/// One event of a valid record, as the index keeps it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// The record's position in its partition.
    pub position: u64,
    /// Milliseconds since the Unix epoch (the event's `time`).
    pub time_ms: i64,
    /// The resource's version after the event (its ETag).
    pub version: u32,
    pub resource: Uuid,
    /// The event's place in its record.
    pub event: u16,
    /// Index into [`EVENT_TYPES`].
    pub kind: u8,
    pub resource_type: ResourceType,
    pub actor_kind: ActorKind,
    pub directory: Sym,
    pub actor: Sym,
    pub source: Sym,
    pub token: Sym,
    pub ip: Sym,
    pub user_agent: Sym,
    /// A 64-bit hash of the request id ([`correlation_key`]): request ids are unique per
    /// request, so keeping each as a string would cost more than the rest of the entry.
    pub correlation: u64,
    /// The resource's name at the event (after it; before it, for a delete).
    pub name: Sym,
    /// The entry of the event that set the resource's document before this one.
    pub previous: u32,
}

impl Entry {
    pub fn event_type(&self) -> &'static str {
        EVENT_TYPES[usize::from(self.kind)]
    }

    /// This entry with its strings interned in `to` instead of `from`.
    pub fn reinterned(&self, from: &Interner, to: &mut Interner) -> Entry {
        let mut move_ = |sym: Sym| to.intern(from.get(sym));
        Entry {
            directory: move_(self.directory),
            actor: move_(self.actor),
            source: move_(self.source),
            token: move_(self.token),
            ip: move_(self.ip),
            user_agent: move_(self.user_agent),
            name: move_(self.name),
            ..self.clone()
        }
    }

    /// Whether this event sets its resource's whole document (users, groups, providers).
    pub fn sets_document(&self) -> bool {
        roster_projections::audit::sets_document(self.event_type())
    }
}

/// Strings seen in events, each stored once.
#[derive(Default)]
pub struct Interner {
    ids: HashMap<Arc<str>, Sym>,
    strings: Vec<Arc<str>>,
}

impl Interner {
    pub fn intern(&mut self, s: Option<&str>) -> Sym {
        let Some(s) = s else { return NONE };
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let s: Arc<str> = Arc::from(s);
        self.strings.push(s.clone());
        // Sym 0 is NONE: the first string is 1.
        let id = self.strings.len() as Sym;
        self.ids.insert(s, id);
        id
    }

    /// The symbol of `s`, if any event carried it.
    pub fn find(&self, s: &str) -> Option<Sym> {
        self.ids.get(s).copied()
    }

    /// How many strings it holds (the last symbol).
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }

    /// The strings of symbols `from..from + n` (`from` at least 1), each as `keep` decides:
    /// `None` for one it does not keep.
    pub fn slice(&self, from: Sym, n: usize, keep: impl Fn(Sym) -> bool) -> Vec<Option<&str>> {
        let start = (from as usize).saturating_sub(1).min(self.strings.len());
        let end = (start + n).min(self.strings.len());
        (start..end)
            .map(|i| {
                let sym = i as Sym + 1;
                keep(sym).then(|| &*self.strings[i])
            })
            .collect()
    }

    /// An interner holding `strings` as symbols 1, 2, ... (as [`Interner::slice`] gave them):
    /// an absent one keeps its symbol but cannot be found or interned again as that symbol.
    pub fn restored(strings: Vec<Option<String>>) -> Interner {
        let mut interner = Interner {
            ids: HashMap::with_capacity(strings.len()),
            strings: Vec::with_capacity(strings.len()),
        };
        for s in strings {
            let kept = s.is_some();
            let s: Arc<str> = Arc::from(s.unwrap_or_default());
            interner.strings.push(s.clone());
            if kept {
                interner.ids.insert(s, interner.strings.len() as Sym);
            }
        }
        interner
    }

    pub fn get(&self, sym: Sym) -> Option<&str> {
        if sym == NONE {
            return None;
        }
        self.strings.get(sym as usize - 1).map(|s| &**s)
    }
}

/// One resource as the index knows it.
#[derive(Debug, Default, PartialEq)]
pub struct Resource {
    /// Its entries, in log order.
    pub entries: Vec<u32>,
    /// Its current name and last document entry.
    lineage: Lineage<Sym, u32>,
}

/// The index of one log partition.
#[derive(Debug, Default, PartialEq)]
pub struct PartitionIndex {
    pub entries: Chunked<Entry>,
    /// `max_time[i]` is the latest time among entries `0..=i`: the first entry at or after a
    /// time is found by binary search even when clocks of several writers disagree.
    max_time: Chunked<i64>,
    pub by_resource: HashMap<Uuid, Resource>,
    pub by_actor: HashMap<Sym, Vec<u32>>,
    pub by_token: HashMap<Sym, Vec<u32>>,
    chain: ChainState,
    /// The first position not yet folded.
    pub next: u64,
    /// The digest of the record at `next - 1`.
    pub tail: Option<Digest>,
    /// How many user.erased events were folded.
    pub erasures: u64,
}

/// What an index restored from a stored copy holds besides its entries (see
/// [`PartitionIndex::restored`]).
pub struct Folded {
    pub next: u64,
    pub tail: Option<Digest>,
    pub erasures: u64,
    pub chain: ChainState,
}

impl PartitionIndex {
    /// The first entry whose time is at or after `since_ms`; every entry before it is earlier.
    pub fn first_at_or_after(&self, since_ms: i64) -> usize {
        self.max_time.partition_point(|&t| t < since_ms)
    }

    /// The index a fold that got to `folded` with `entries` made: the lists by resource, actor
    /// and token and the running latest time are derived from the entries as [`Self::apply`]
    /// derives them.
    pub fn restored(folded: Folded, entries: Chunked<Entry>) -> PartitionIndex {
        let mut index = PartitionIndex {
            next: folded.next,
            tail: folded.tail,
            erasures: folded.erasures,
            chain: folded.chain,
            ..PartitionIndex::default()
        };
        let mut latest = i64::MIN;
        for (i, e) in entries.iter().enumerate() {
            let this = i as u32;
            let known = index.by_resource.entry(e.resource).or_default();
            known.entries.push(this);
            // An entry's name is the one its resource had after it (none once erased).
            known.lineage.name = (e.name != NONE).then_some(e.name);
            if e.sets_document() {
                known.lineage.document = Some(this);
            }
            for (list, key) in [
                (&mut index.by_actor, e.actor),
                (&mut index.by_token, e.token),
            ] {
                if key != NONE {
                    list.entry(key).or_default().push(this);
                }
            }
            latest = latest.max(e.time_ms);
            index.max_time.push(latest);
        }
        index.entries = entries;
        index
    }

    /// The chain heads of the directories seen, for a stored copy.
    pub fn chain(&self) -> &ChainState {
        &self.chain
    }

    /// Takes an erased person's name off every entry of theirs (docs/adr/0014). The text
    /// stays interned until the process restarts; after that no record opens to it.
    fn forget_name(&mut self, resource: Uuid) {
        let Some(known) = self.by_resource.get_mut(&resource) else {
            return;
        };
        known.lineage.name = None;
        for &i in &known.entries {
            self.entries[i as usize].name = NONE;
        }
    }

    /// Folds `entries` (consecutive, from `self.next` on) into the index.
    pub fn apply(&mut self, strings: &mut Interner, entries: &[LogEntry]) {
        for entry in entries {
            if entry.position < self.next {
                continue;
            }
            self.next = entry.position + 1;
            self.tail = Some(entry.digest);
            if !self.chain.admit(&entry.record, entry.digest) {
                continue;
            }
            for (i, env) in entry.record.events.iter().enumerate() {
                let resource = env.resource_id.0;
                let this = self.entries.len() as u32;
                let known = self.by_resource.entry(resource).or_default();
                let f = Facts::of(env);
                let named = f.name.as_deref().map(|n| strings.intern(Some(n)));
                let (name, previous) = known.lineage.step(this, named, f.sets_document);
                let e = Entry {
                    position: entry.position,
                    time_ms: f.time_ms,
                    version: f.version,
                    resource,
                    event: i as u16,
                    kind: f.kind,
                    resource_type: env.resource_type,
                    actor_kind: f.actor_kind,
                    directory: strings.intern(Some(f.directory)),
                    actor: strings.intern(f.actor),
                    source: strings.intern(f.source),
                    token: strings.intern(f.token),
                    ip: strings.intern(f.ip.as_deref()),
                    user_agent: strings.intern(f.user_agent),
                    correlation: f.correlation,
                    name: name.unwrap_or(NONE),
                    previous: previous.unwrap_or(NO_ENTRY),
                };
                known.entries.push(this);
                for (list, key) in [(&mut self.by_actor, e.actor), (&mut self.by_token, e.token)] {
                    if key != NONE {
                        list.entry(key).or_default().push(this);
                    }
                }
                let latest = self.max_time.last().copied().unwrap_or(i64::MIN);
                self.max_time.push(latest.max(e.time_ms));
                self.entries.push(e);
                if matches!(env.event, roster_events::Event::UserErased(_)) {
                    self.erasures += 1;
                    self.forget_name(resource);
                }
            }
        }
    }
}

/// Log entries for the tests of the index and what reads it.
#[cfg(test)]
pub(crate) mod testing {
    use chrono::{TimeZone, Utc};
    use roster_events::{
        Actor, Document, Envelope, Event, Personal, Record, ResourceId, ResourceType, UserCreated,
    };
    use roster_projections::LogEntry;
    use std::sync::Arc;
    use uuid::Uuid;

    /// A user document with `userName` `name`.
    pub fn user(name: &str) -> Personal<Document> {
        let doc = serde_json::json!({"userName": name});
        Personal::Plain(Document::from_map(doc.as_object().unwrap()))
    }

    pub fn user_created(name: &str) -> Event {
        Event::UserCreated(UserCreated {
            owner: None,
            resource: user(name),
            mapped: None,
        })
    }

    /// An event of a user in directory `dir`, by source `actor`, at `time_ms`.
    pub fn envelope(
        dir: &str,
        id: ResourceId,
        version: u64,
        time_ms: i64,
        actor: &str,
        event: Event,
    ) -> Envelope {
        Envelope {
            event_id: Uuid::now_v7(),
            directory: dir.into(),
            resource_type: ResourceType::User,
            resource_id: id,
            resource_version: version,
            time: Utc.timestamp_millis_opt(time_ms).unwrap(),
            actor: Actor::Source(actor.into()),
            source: None,
            correlation_id: None,
            client: None,
            event,
        }
    }

    /// One valid record per envelope of partition `p`, each following the one before, from
    /// position 0 on; the record at position `i` has the digest `[i + 1; 32]`.
    pub fn chained(p: u32, envelopes: Vec<Envelope>) -> Vec<LogEntry> {
        let mut prev = None;
        envelopes
            .into_iter()
            .enumerate()
            .map(|(i, env)| {
                let record = Record {
                    record_id: Uuid::now_v7(),
                    directory: env.directory.clone(),
                    follows: i as u64,
                    prev,
                    events: vec![env],
                    prev_digest: None,
                    mac: None,
                };
                prev = Some(record.record_id);
                LogEntry {
                    partition: p,
                    position: i as u64,
                    record: Arc::new(record),
                    digest: [i as u8 + 1; 32],
                }
            })
            .collect()
    }
}
