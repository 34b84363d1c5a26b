//! The audit index in memory: one compact entry per event of every valid record, in log order,
//! with lists by resource, actor, token and request id. It holds what a query filters on and
//! where each event lies in the log; the events themselves are read back from the log when
//! they are shown.
//!
//! Validity is the log's own rule ([`ChainState::admit`]): an event of a record that lost its
//! directory's race never happened, and is not in the audit trail.

use roster_events::{Actor, ChainState, Event, ResourceType, EVENT_TYPES};
use roster_projections::LogEntry;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// An interned string; [`NONE`] stands for absent.
pub type Sym = u32;
pub const NONE: Sym = 0;
/// No entry (an entry's `previous` when its resource had no document before).
pub const NO_ENTRY: u32 = u32::MAX;

/// What a source's, an admin's or Roster's own action looks like in an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActorKind {
    Source,
    Admin,
    System,
    Anonymous,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Source => "source",
            ActorKind::Admin => "admin",
            ActorKind::System => "system",
            ActorKind::Anonymous => "anonymous",
        }
    }
}

/// One event of a valid record, as the index keeps it.
#[derive(Clone, Debug)]
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

    /// Whether this event sets its resource's whole document (users, groups, providers).
    pub fn sets_document(&self) -> bool {
        matches!(
            self.event_type(),
            "user.created"
                | "user.replaced"
                | "group.created"
                | "group.replaced"
                | "provider.created"
                | "provider.updated"
        )
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

    pub fn get(&self, sym: Sym) -> Option<&str> {
        if sym == NONE {
            return None;
        }
        self.strings.get(sym as usize - 1).map(|s| &**s)
    }
}

/// One resource as the index knows it.
#[derive(Default)]
pub struct Resource {
    /// Its entries, in log order.
    pub entries: Vec<u32>,
    /// Its last document entry ([`NO_ENTRY`] before the first).
    document: u32,
    /// Its current name.
    name: Sym,
}

/// The key a request id is found by: a 64-bit hash of it (0 for none).
pub fn correlation_key(id: Option<&str>) -> u64 {
    use std::hash::{Hash, Hasher};
    let Some(id) = id else { return 0 };
    // SipHash with fixed keys: the same in every process and release.
    let mut h = std::hash::DefaultHasher::new();
    id.hash(&mut h);
    h.finish().max(1)
}

/// The index of one log partition.
#[derive(Default)]
pub struct PartitionIndex {
    pub entries: Vec<Entry>,
    /// `max_time[i]` is the latest time among entries `0..=i`: the first entry at or after a
    /// time is found by binary search even when clocks of several writers disagree.
    max_time: Vec<i64>,
    pub by_resource: HashMap<Uuid, Resource>,
    pub by_actor: HashMap<Sym, Vec<u32>>,
    pub by_token: HashMap<Sym, Vec<u32>>,
    chain: ChainState,
    /// The first position not yet folded.
    pub next: u64,
}

impl PartitionIndex {
    /// The first entry whose time is at or after `since_ms`; every entry before it is earlier.
    pub fn first_at_or_after(&self, since_ms: i64) -> usize {
        self.max_time.partition_point(|&t| t < since_ms)
    }

    /// Folds `entries` (consecutive, from `self.next` on) into the index.
    pub fn apply(&mut self, strings: &mut Interner, entries: &[LogEntry]) {
        for entry in entries {
            if entry.position < self.next {
                continue;
            }
            self.next = entry.position + 1;
            if !self.chain.admit(&entry.record, entry.digest) {
                continue;
            }
            for (i, env) in entry.record.events.iter().enumerate() {
                let resource = env.resource_id.0;
                let this = self.entries.len() as u32;
                let known = self.by_resource.entry(resource).or_insert(Resource {
                    entries: Vec::new(),
                    document: NO_ENTRY,
                    name: NONE,
                });
                let (previous, mut name) = (known.document, known.name);
                let (actor_kind, actor) = match &env.actor {
                    Actor::Source(a) => (ActorKind::Source, strings.intern(Some(a))),
                    Actor::Admin(a) => (ActorKind::Admin, strings.intern(Some(a))),
                    Actor::System => (ActorKind::System, NONE),
                    Actor::Anonymous => (ActorKind::Anonymous, NONE),
                };
                let client = env.client.as_ref();
                let ip = client.and_then(|c| c.ip).map(|ip| ip.to_string());
                if let Some(n) = name_of(&env.event) {
                    name = strings.intern(Some(&n));
                }
                let kind = EVENT_TYPES
                    .iter()
                    .position(|t| *t == env.event.event_type())
                    .unwrap_or_default() as u8;
                let e = Entry {
                    position: entry.position,
                    time_ms: env.time.timestamp_millis(),
                    version: u32::try_from(env.resource_version).unwrap_or(u32::MAX),
                    resource,
                    event: i as u16,
                    kind,
                    resource_type: env.resource_type,
                    actor_kind,
                    directory: strings.intern(Some(&env.directory)),
                    actor,
                    source: strings.intern(env.source.as_deref()),
                    token: strings.intern(client.and_then(|c| c.token_id.as_deref())),
                    ip: strings.intern(ip.as_deref()),
                    user_agent: strings.intern(client.and_then(|c| c.user_agent.as_deref())),
                    correlation: correlation_key(env.correlation_id.as_deref()),
                    name,
                    previous,
                };
                if e.sets_document() {
                    known.document = this;
                }
                known.name = name;
                known.entries.push(this);
                for (list, key) in [(&mut self.by_actor, e.actor), (&mut self.by_token, e.token)] {
                    if key != NONE {
                        list.entry(key).or_default().push(this);
                    }
                }
                let latest = self.max_time.last().copied().unwrap_or(i64::MIN);
                self.max_time.push(latest.max(e.time_ms));
                self.entries.push(e);
            }
        }
    }
}

/// The name a resource takes from `event`, if the event names it: a user's userName, a
/// group's displayName, a source's slug, a provider's or a directory's name, an admin token's
/// prefix, the request of an audit-only event.
fn name_of(event: &Event) -> Option<String> {
    /// The naming attributes of a stored document; the rest is not decoded.
    #[derive(serde::Deserialize)]
    struct Names {
        #[serde(rename = "userName")]
        user_name: Option<String>,
        #[serde(rename = "displayName")]
        display_name: Option<String>,
    }
    let names = |doc: &roster_events::Document| doc.fields::<Names>().ok();
    match event {
        Event::UserCreated(e) => names(&e.resource)?.user_name,
        Event::UserReplaced(e) => names(&e.resource)?.user_name,
        Event::GroupCreated(e) => names(&e.resource)?.display_name,
        Event::GroupReplaced(e) => names(&e.resource)?.display_name,
        Event::SourceCreated(e) => Some(e.slug.clone()),
        Event::ProviderCreated(e) => Some(e.config.name.clone()),
        Event::ProviderUpdated(e) => Some(e.config.name.clone()),
        Event::DirectoryCreated(e) => Some(e.name.clone()),
        Event::AdminTokenIssued(e) => Some(format!("{}…", e.prefix)),
        Event::AccessRefused(e) => Some(format!("{} {}", e.method, e.path)),
        Event::AuditRead(e) => Some(e.path.clone()),
        _ => None,
    }
}
