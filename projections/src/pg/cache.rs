//! The PostgreSQL store's in-process cache of what most requests read: users by id, their
//! memberships, the users holding a userName (what Entra ID and Okta look up before every
//! create), and sources by slug. It answers exactly what the tables would answer at the moment
//! the request arrived; it is never a stale copy.
//!
//! How it stays exact, with several processes sharing one database:
//! - **The log says what changed.** Every entry a process's projector hands to
//!   [`crate::ProjectionStore::apply`] (its own writes and, through its reads of the log, every
//!   other process's) is *marked* before it is folded: the cache drops what the entry's events
//!   change and leaves a tombstone with the entry's position. Per partition, `marked` is the
//!   position up to which that has been done.
//! - **PostgreSQL says how far the views are.** A read first learns the positions the tables
//!   reflected after the request arrived ([`Seen`], from [`super::freshness`]: a shared probe,
//!   or with one process folding, what it committed). The cache answers only when it has marked
//!   at least that far; otherwise the read goes to PostgreSQL. So a write acknowledged by any
//!   process before the request arrived is either already marked (and the old value gone) or
//!   forces the read to the tables.
//! - **A value read from the tables is kept only if nothing marked could be newer than it.**
//!   A value read after a probe saw position `p` reflects every entry below `p`; it is refused
//!   if a tombstone for its key (or its directory's memberships, names or the sources) is at
//!   `p` or beyond. A tombstone set later removes it.
//! - A swap to another generation (`roster rebuild`) empties the cache.

use crate::views::{SourceView, UserView};
use roster_events::{fold_case, Event, MemberType, ResourceId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::freshness::{Freshness, Seen};
use super::StoreError;
use crate::store::{CacheCounts, LogEntry};

use super::freshness::Folders;

/// How many tombstones are kept before they are folded into a floor (see [`State::floor`]).
const TOMBSTONES: usize = 65_536;

/// A group membership as the tables hold it, before a source's visibility is applied.
#[derive(Clone, Debug)]
pub(super) struct Membership {
    pub(super) group: ResourceId,
    pub(super) display: String,
    pub(super) direct: bool,
    pub(super) owner: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    User(Box<str>, ResourceId),
    Memberships(Box<str>, ResourceId),
    /// The users whose folded userName is this.
    Holders(Box<str>, Box<str>),
    Source(Box<str>),
}

impl Key {
    fn directory(&self) -> Option<&str> {
        match self {
            Key::User(d, _) | Key::Memberships(d, _) | Key::Holders(d, _) => Some(d),
            Key::Source(_) => None,
        }
    }
}

#[derive(Clone)]
enum Value {
    User(Arc<UserView>),
    Memberships {
        epoch: u64,
        groups: Arc<[Membership]>,
    },
    Holders {
        epoch: u64,
        ids: Arc<[ResourceId]>,
    },
    Source {
        epoch: u64,
        view: Option<Arc<SourceView>>,
    },
}

/// About what each kept value costs in memory, in bytes.
#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<Key, Value> for Weight {
    fn weight(&self, _: &Key, v: &Value) -> u64 {
        let bytes = match v {
            Value::User(u) => 320 + u.resource.as_str().len(),
            Value::Memberships { groups, .. } => {
                96 + groups.iter().map(|m| 64 + m.display.len()).sum::<usize>()
            }
            Value::Holders { ids, .. } => 96 + 16 * ids.len(),
            Value::Source { .. } => 1024,
        };
        bytes as u64
    }
}

/// What the cache knows of one directory.
#[derive(Default)]
struct DirState {
    /// The log partition its entries were marked in.
    partition: Option<usize>,
    /// Bumped when a change could touch any member's memberships (a group renamed, deleted,
    /// adopted, or a group added to or removed from a group); with the position of the last.
    memberships_epoch: u64,
    memberships_changed: Option<u64>,
    /// Bumped when a userName could have changed unseen (a document that could not be read).
    names_epoch: u64,
    names_changed: Option<u64>,
}

struct State {
    gen: Option<i32>,
    /// Per partition: every entry below this was marked.
    marked: Vec<u64>,
    values: quick_cache::unsync::Cache<Key, Value, Weight, Hasher>,
    /// Per key: the partition and position of the last change marked.
    tombstones: HashMap<Key, (usize, u64), Hasher>,
    /// Per partition: tombstones below this were dropped (to bound their number), so a value
    /// read before it is refused.
    floor: Vec<u64>,
    dirs: HashMap<Box<str>, DirState, Hasher>,
    sources_epoch: u64,
    /// Per partition: the position of the last change to a source or token marked.
    sources_changed: Vec<Option<u64>>,
}

/// As the memory store's indexes: seeded per process.
type Hasher = foldhash::fast::RandomState;

fn at(v: &[u64], p: usize) -> u64 {
    v.get(p).copied().unwrap_or(0)
}

impl State {
    fn new(bytes: u64) -> State {
        State {
            gen: None,
            marked: Vec::new(),
            values: quick_cache::unsync::Cache::with(
                (bytes / 8192).max(16) as usize,
                bytes,
                Weight,
                Hasher::default(),
                Default::default(),
            ),
            tombstones: HashMap::default(),
            floor: Vec::new(),
            dirs: HashMap::default(),
            sources_epoch: 0,
            sources_changed: Vec::new(),
        }
    }

    /// Follows the probe's generation (they only grow): values of an older one are dropped.
    /// False when the probe saw an older generation than the cache holds.
    fn follow(&mut self, seen: &Seen) -> bool {
        match self.gen {
            Some(g) if g == seen.gen => true,
            Some(g) if g > seen.gen => false,
            _ => {
                self.values.clear();
                self.tombstones.clear();
                self.floor = self.marked.clone();
                self.gen = Some(seen.gen);
                true
            }
        }
    }

    /// The partitions `key` may live in: its directory's, or every one while it is unknown.
    fn partitions(&self, key: &Key, seen: &Seen) -> std::ops::Range<usize> {
        let known = key
            .directory()
            .and_then(|d| self.dirs.get(d))
            .and_then(|d| d.partition);
        match known {
            Some(p) => p..p + 1,
            None => 0..self.marked.len().max(seen.next.len()).max(1),
        }
    }

    /// Whether everything the probe saw was marked in the partitions `key` may live in.
    fn caught_up(&self, key: &Key, seen: &Seen) -> bool {
        self.partitions(key, seen)
            .all(|p| at(&self.marked, p) >= seen.next(p))
    }

    fn lookup(&mut self, key: &Key, seen: &Seen) -> Option<Value> {
        if !self.follow(seen) || !self.caught_up(key, seen) {
            return None;
        }
        let value = self.values.get(key)?.clone();
        let current = match (&value, key.directory().and_then(|d| self.dirs.get(d))) {
            (Value::Memberships { epoch, .. }, dir) => {
                *epoch == dir.map_or(0, |d| d.memberships_epoch)
            }
            (Value::Holders { epoch, .. }, dir) => *epoch == dir.map_or(0, |d| d.names_epoch),
            (Value::Source { epoch, .. }, _) => *epoch == self.sources_epoch,
            (Value::User(_), _) => true,
        };
        current.then_some(value)
    }

    /// Keeps `value` read from the tables after `seen`, unless a change marked at or beyond
    /// what `seen` reflects could make it stale.
    fn keep(&mut self, key: Key, value: Value, seen: &Seen) {
        if !self.follow(seen) {
            return;
        }
        if self
            .partitions(&key, seen)
            .any(|p| seen.next(p) < at(&self.floor, p))
        {
            return;
        }
        if let Some(&(p, pos)) = self.tombstones.get(&key) {
            if pos >= seen.next(p) {
                return;
            }
        }
        let dir = key.directory().and_then(|d| self.dirs.get(d));
        let changed_since = |changed: Option<u64>| {
            let p = dir.and_then(|d| d.partition).unwrap_or(0);
            changed.is_some_and(|c| c >= seen.next(p))
        };
        let value = match value {
            Value::Memberships { groups, .. } => {
                if changed_since(dir.and_then(|d| d.memberships_changed)) {
                    return;
                }
                Value::Memberships {
                    epoch: dir.map_or(0, |d| d.memberships_epoch),
                    groups,
                }
            }
            Value::Holders { ids, .. } => {
                if changed_since(dir.and_then(|d| d.names_changed)) {
                    return;
                }
                Value::Holders {
                    epoch: dir.map_or(0, |d| d.names_epoch),
                    ids,
                }
            }
            Value::Source { view, .. } => {
                let changed = self
                    .sources_changed
                    .iter()
                    .enumerate()
                    .any(|(p, c)| c.is_some_and(|c| c >= seen.next(p)));
                if changed {
                    return;
                }
                Value::Source {
                    epoch: self.sources_epoch,
                    view,
                }
            }
            user @ Value::User(_) => user,
        };
        self.values.insert(key, value);
    }

    fn holders(&mut self, dir: &str, folded: &str, seen: &Seen) -> Option<Vec<Arc<UserView>>> {
        let Value::Holders { ids, .. } =
            self.lookup(&Key::Holders(dir.into(), folded.into()), seen)?
        else {
            return None;
        };
        let mut users = Vec::with_capacity(ids.len());
        for id in ids.iter() {
            match self.lookup(&Key::User(dir.into(), *id), seen)? {
                // A holder renamed since: its tombstone went to its new name.
                Value::User(u) if fold_case(u.user_name()) != folded => {}
                Value::User(u) => users.push(u),
                _ => return None,
            }
        }
        Some(users)
    }

    fn tombstone(&mut self, key: Key, partition: usize, position: u64) {
        self.values.remove(&key);
        if self.tombstones.len() >= TOMBSTONES {
            self.tombstones.clear();
            self.floor = self.marked.clone();
        }
        self.tombstones.insert(key, (partition, position));
    }

    fn dir(&mut self, name: &str, partition: usize) -> &mut DirState {
        let d = self.dirs.entry(name.into()).or_default();
        d.partition = Some(partition);
        d
    }

    /// Drops what the entry's events change.
    fn mark(&mut self, entry: &LogEntry) {
        let p = entry.partition as usize;
        if self.marked.len() <= p {
            self.marked.resize(p + 1, 0);
            self.floor.resize(p + 1, 0);
            self.sources_changed.resize(p + 1, None);
        }
        if entry.position < self.marked[p] {
            return;
        }
        let pos = entry.position;
        if pos > self.marked[p] {
            // Entries were skipped (another process folded them before this one's projector
            // started, or the log has a gap): what they changed is unknown, so nothing kept
            // before them is trusted.
            self.values.clear();
            self.tombstones.clear();
            self.floor[p] = self.floor[p].max(pos);
        }
        let dir: Box<str> = entry.record.directory.as_str().into();
        self.dir(&dir, p);
        for env in &entry.record.events {
            let id = env.resource_id;
            let user = |dir: &str| Key::User(dir.into(), id);
            match &env.event {
                Event::UserCreated(e) => {
                    self.tombstone(user(&dir), p, pos);
                    self.user_name_taken(&dir, e.resource.value(), p, pos);
                }
                Event::UserReplaced(e) => {
                    self.tombstone(user(&dir), p, pos);
                    self.user_name_taken(&dir, e.resource.value(), p, pos);
                }
                Event::UserDeleted | Event::UserErased(_) => {
                    self.tombstone(user(&dir), p, pos);
                    self.tombstone(Key::Memberships(dir.clone(), id), p, pos);
                }
                Event::UserAdopted(_) | Event::UserPasswordSet(_) => {
                    self.tombstone(user(&dir), p, pos);
                }
                // A new group has no members yet: nobody's memberships change.
                Event::GroupCreated(_) => {}
                Event::GroupMembersAdded(roster_events::GroupMembersAdded { members })
                | Event::GroupMembersRemoved(roster_events::GroupMembersRemoved { members }) => {
                    if members.iter().all(|m| m.kind == MemberType::User) {
                        for m in members {
                            self.tombstone(Key::Memberships(dir.clone(), m.value), p, pos);
                        }
                    } else {
                        self.memberships_changed(&dir, p, pos);
                    }
                }
                Event::GroupReplaced(_) | Event::GroupDeleted | Event::GroupAdopted(_) => {
                    self.memberships_changed(&dir, p, pos);
                }
                Event::DirectoryCreated(_)
                | Event::DirectoryDeleted
                | Event::AdminTokenIssued(_)
                | Event::AdminTokenRevoked(_)
                | Event::SourceCreated(_)
                | Event::SourceTokenIssued(_)
                | Event::SourceTokenRevoked(_)
                | Event::SourceSchemaDeclared(_)
                | Event::SourceDeleted
                | Event::MappingCreated(_)
                | Event::MappingUpdated(_)
                | Event::MappingDeleted
                | Event::SourceMappingsSet(_) => {
                    self.sources_epoch += 1;
                    self.sources_changed[p] = Some(pos);
                }
                Event::ProviderCreated(_)
                | Event::ProviderUpdated(_)
                | Event::ProviderDeleted
                | Event::ProviderSyncRequested
                | Event::ProviderRetryRequested
                | Event::ProviderReplayRequested(_)
                | Event::AccessRefused(_)
                | Event::AuditRead(_) => {}
            }
        }
        self.marked[p] = pos + 1;
    }

    /// Keeps what the log alone says of values at the end of folded entries: `next` per
    /// partition is the first position after them.
    fn known(&mut self, key: Key, value: Value, next: &[(usize, u64)]) {
        let Some(gen) = self.gen else { return };
        let mut seen = Seen {
            gen,
            next: self.marked.clone(),
        };
        for &(p, n) in next {
            if seen.next.len() <= p {
                seen.next.resize(p + 1, 0);
            }
            seen.next[p] = n;
        }
        self.keep(key, value, &seen);
    }

    /// A user now holds the userName of `doc`: the lookup of that name changes.
    fn user_name_taken(
        &mut self,
        dir: &str,
        doc: Option<&roster_events::Document>,
        p: usize,
        pos: u64,
    ) {
        match doc.and_then(|d| crate::views::Keys::of(d).user_name) {
            Some(name) => self.tombstone(Key::Holders(dir.into(), fold_case(&name).into()), p, pos),
            None => {
                let d = self.dir(dir, p);
                d.names_epoch += 1;
                d.names_changed = Some(pos);
            }
        }
    }

    fn memberships_changed(&mut self, dir: &str, p: usize, pos: u64) {
        let d = self.dir(dir, p);
        d.memberships_epoch += 1;
        d.memberships_changed = Some(pos);
    }
}

/// The users `entries` create that no group names after them within `entries`, by directory:
/// they are in no group at the end of the entries (a member must exist when it is added, and a
/// user's deletion first removes it from its groups).
pub(super) fn created_alone(entries: &[LogEntry]) -> Vec<(Box<str>, ResourceId)> {
    let mut created: Vec<(Box<str>, ResourceId)> = Vec::new();
    for e in entries {
        let dir = e.record.directory.as_str();
        for env in &e.record.events {
            match &env.event {
                Event::UserCreated(_) => created.push((dir.into(), env.resource_id)),
                Event::GroupMembersAdded(added) => created
                    .retain(|(d, id)| &**d != dir || !added.members.iter().any(|m| m.value == *id)),
                _ => {}
            }
        }
    }
    created
}

/// The cache, and what says how far PostgreSQL's views are.
pub(super) struct ViewCache {
    state: Mutex<State>,
    freshness: Freshness,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ViewCache {
    /// A cache of about `bytes` whose freshness is read with `pool`, starting from the positions
    /// the tables reflect now: no value is kept yet, and every value kept from now on is read
    /// after them, so only changes from there on need marking (the projector resumes from the
    /// store's position, or earlier).
    ///
    /// Fails when the database cannot be reached.
    pub(super) async fn start(
        bytes: u64,
        folders: Folders,
        pool: deadpool_postgres::Pool,
    ) -> Result<ViewCache, StoreError> {
        let (freshness, seen) = Freshness::start(folders, pool).await?;
        let mut state = State::new(bytes);
        state.gen = Some(seen.gen);
        state.marked = seen.next.clone();
        state.floor = seen.next.clone();
        state.sources_changed = vec![None; state.marked.len()];
        Ok(ViewCache {
            state: Mutex::new(state),
            freshness,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// After entries were folded: the tables now reflect every entry before `next` (per
    /// partition).
    pub(super) fn committed(&self, next: &[(usize, u64)]) {
        self.freshness.committed(next);
    }

    /// How far the tables were after the current request arrived (see [`Freshness::seen`]).
    pub(super) async fn seen(&self) -> Option<Arc<Seen>> {
        self.freshness.seen().await
    }

    pub(super) fn counts(&self) -> CacheCounts {
        CacheCounts {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Counts whether a lookup answered.
    fn counted<T>(&self, found: Option<T>) -> Option<T> {
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every step under the lock leaves the state whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks entries about to be folded (see the module's comment).
    pub(super) fn mark(&self, entries: &[LogEntry]) {
        let mut state = self.state();
        for e in entries {
            state.mark(e);
        }
    }

    /// After entries were folded (`next` per partition is the first position after them),
    /// keeps what the tables now hold and the fold knows without reading: `users`, each user the
    /// fold wrote (by directory), and empty memberships for `created` (see [`created_alone`]).
    /// A client that creates a user and then reads it, or reads the answer to its create
    /// (which names the user's groups), reads nothing from the tables.
    pub(super) fn folded(
        &self,
        next: &[(usize, u64)],
        users: Vec<(String, Arc<UserView>)>,
        created: Vec<(Box<str>, ResourceId)>,
    ) {
        let mut state = self.state();
        for (dir, user) in users {
            state.known(Key::User(dir.into(), user.id), Value::User(user), next);
        }
        for (dir, id) in created {
            let none = Value::Memberships {
                epoch: 0,
                groups: Arc::new([]),
            };
            state.known(Key::Memberships(dir, id), none, next);
        }
    }

    pub(super) fn user(&self, dir: &str, id: ResourceId, seen: &Seen) -> Option<Arc<UserView>> {
        let found = self.state().lookup(&Key::User(dir.into(), id), seen);
        self.counted(match found {
            Some(Value::User(u)) => Some(u),
            _ => None,
        })
    }

    pub(super) fn keep_user(&self, dir: &str, user: Arc<UserView>, seen: &Seen) {
        self.state()
            .keep(Key::User(dir.into(), user.id), Value::User(user), seen);
    }

    pub(super) fn memberships(
        &self,
        dir: &str,
        id: ResourceId,
        seen: &Seen,
    ) -> Option<Arc<[Membership]>> {
        let found = self.state().lookup(&Key::Memberships(dir.into(), id), seen);
        self.counted(match found {
            Some(Value::Memberships { groups, .. }) => Some(groups),
            _ => None,
        })
    }

    pub(super) fn keep_memberships(
        &self,
        dir: &str,
        id: ResourceId,
        groups: Arc<[Membership]>,
        seen: &Seen,
    ) {
        self.state().keep(
            Key::Memberships(dir.into(), id),
            Value::Memberships { epoch: 0, groups },
            seen,
        );
    }

    /// The users whose folded userName is `folded`, when every one of them is cached too.
    pub(super) fn holders(
        &self,
        dir: &str,
        folded: &str,
        seen: &Seen,
    ) -> Option<Vec<Arc<UserView>>> {
        let found = self.state().holders(dir, folded, seen);
        self.counted(found)
    }

    /// Keeps every user holding `folded` (read from the tables after `seen`) and the list.
    pub(super) fn keep_holders(
        &self,
        dir: &str,
        folded: &str,
        users: &[Arc<UserView>],
        seen: &Seen,
    ) {
        let mut state = self.state();
        for u in users {
            state.keep(Key::User(dir.into(), u.id), Value::User(u.clone()), seen);
        }
        let ids = users.iter().map(|u| u.id).collect();
        state.keep(
            Key::Holders(dir.into(), folded.into()),
            Value::Holders { epoch: 0, ids },
            seen,
        );
    }

    pub(super) fn source(&self, slug: &str, seen: &Seen) -> Option<Option<Arc<SourceView>>> {
        let found = self.state().lookup(&Key::Source(slug.into()), seen);
        self.counted(match found {
            Some(Value::Source { view, .. }) => Some(view),
            _ => None,
        })
    }

    /// Keeps a source read from the tables. An unknown slug is not kept: anyone can ask for
    /// any number of them, and they would push out what serves.
    pub(super) fn keep_source(&self, slug: &str, view: Arc<SourceView>, seen: &Seen) {
        self.state().keep(
            Key::Source(slug.into()),
            Value::Source {
                epoch: 0,
                view: Some(view),
            },
            seen,
        );
    }
}

#[cfg(test)]
mod tests {
    //! The cache's rules without a database: values, tombstones and probes as the store uses
    //! them, checked against the state a log position gives.
    use super::*;

    fn seen(gen: i32, next: &[u64]) -> Seen {
        Seen {
            gen,
            next: next.to_vec(),
        }
    }

    fn key(n: u128) -> Key {
        Key::Holders("d".into(), format!("user-{n}").into())
    }

    fn holders() -> Value {
        Value::Holders {
            epoch: 0,
            ids: Arc::new([]),
        }
    }

    #[test]
    fn a_value_read_before_a_marked_change_is_refused_and_one_read_after_it_is_kept() {
        let mut s = State::new(1 << 20);
        s.gen = Some(1);
        let k = key(1);
        // Marked at position 5 (about to be folded), probe still says 5 (not committed).
        s.marked = vec![5];
        s.floor = vec![0];
        s.sources_changed = vec![None];
        s.dirs.entry("d".into()).or_default().partition = Some(0);
        s.tombstone(k.clone(), 0, 5);
        s.marked = vec![6];
        s.keep(k.clone(), holders(), &seen(1, &[5]));
        assert!(
            s.lookup(&k, &seen(1, &[5])).is_none(),
            "read before the change"
        );
        s.keep(k.clone(), holders(), &seen(1, &[6]));
        assert!(
            s.lookup(&k, &seen(1, &[6])).is_some(),
            "read after the change"
        );
        // Another process is further along than what this one marked: no answer from here.
        assert!(s.lookup(&k, &seen(1, &[7])).is_none());
        // A probe of an older generation gets nothing; a newer generation empties the cache.
        assert!(s.lookup(&k, &seen(0, &[6])).is_none());
        assert!(s.lookup(&k, &seen(1, &[6])).is_some());
        assert!(s.lookup(&k, &seen(2, &[6])).is_none());
        assert!(s.lookup(&k, &seen(1, &[6])).is_none());
    }

    #[test]
    fn dropped_tombstones_leave_a_floor_that_refuses_older_reads() {
        let mut s = State::new(1 << 20);
        s.gen = Some(1);
        s.marked = vec![0];
        s.floor = vec![0];
        s.sources_changed = vec![None];
        for i in 0..=TOMBSTONES as u64 {
            s.tombstone(key(i as u128), 0, i);
            s.marked = vec![i + 1];
        }
        assert!(s.tombstones.len() < TOMBSTONES);
        let v = holders();
        // Key 3's tombstone was dropped; a read that saw position 3 must still be refused.
        s.keep(key(3), v.clone(), &seen(1, &[3]));
        assert!(s.lookup(&key(3), &seen(1, &[3])).is_none());
        s.keep(key(3), v, &seen(1, &[TOMBSTONES as u64 + 1]));
        assert!(s
            .lookup(&key(3), &seen(1, &[TOMBSTONES as u64 + 1]))
            .is_some());
    }
}
