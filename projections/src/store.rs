//! The projection-store seam and the in-memory store.
//!
//! A store folds log entries into views and answers the queries the SCIM and admin endpoints
//! make. Every store applies the directory-sequence rule ([`ChainState`]) itself, so a stale
//! or duplicate record never reaches a view, and remembers the log position it reflects, so a
//! redelivered entry changes nothing.

use crate::directory::Directory;
use crate::query::{ListQuery, Page, Visibility, WALK_CHUNK};
use crate::views::{AdminTokenView, GroupView, MappingView, ProviderView, SourceView, UserView};
use async_trait::async_trait;
use roster_events::{ChainHead, ChainState, Member, MemberType, Record, ResourceId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// One record read from the log, at its position in its partition.
#[derive(Clone, Debug)]
pub struct LogEntry {
    /// The log partition (always 0 for the file log); a directory lives in exactly one.
    pub partition: u32,
    /// The record's offset within its partition.
    pub position: u64,
    pub record: Arc<Record>,
    /// The digest of the record's body as the log stores it
    /// ([`roster_events::chain::body_digest`]).
    pub digest: roster_events::chain::Digest,
}

/// One directory's state as of a log position, taken atomically: what a writer starts from.
#[derive(Clone, Debug)]
pub struct DirectorySnapshot {
    pub state: Directory,
    /// The head of the directory's chain that `state` reflects.
    pub head: ChainHead,
    /// The first position (in the directory's partition) that `state` does not reflect.
    pub next_position: u64,
}

/// Why a store could not answer. Only [`StoreError::Unavailable`] is worth trying again as
/// it is; the others need an operator (a client gets 500 for them, not 503 and a retry).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or is failing for now (connection lost, no connection
    /// free, a serialization failure or deadlock, a statement cancelled): nothing changed.
    #[error("projection store unavailable: {0}")]
    Unavailable(String),
    /// The views hold data this release cannot read (a stored row that does not parse). Not
    /// transient: the views must be rebuilt from the log (`roster rebuild`).
    #[error("the views hold unreadable data ({0}); rebuild them from the log (roster rebuild)")]
    Corrupt(String),
    /// The backend refused an operation for a reason trying again does not change (a
    /// statement or schema it rejects, a failed migration, a worker that died).
    #[error("the projection store refused an operation: {0}")]
    Refused(String),
    /// The store cannot be set up with these settings (an invalid URL, unreadable or
    /// mismatched TLS files).
    #[error("projection store settings: {0}")]
    Settings(String),
    /// The operation does not fit the store's state (another rebuild holds the lock, a
    /// rebuild's step asked of the live store, a swap whose views are behind).
    #[error("{0}")]
    Conflict(String),
}

impl StoreError {
    /// Whether the same operation may succeed later without anyone acting.
    pub fn transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// How often a store's cache answered a read, and how often the read went to the backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheCounts {
    pub hits: u64,
    pub misses: u64,
}

/// The views of every directory and the queries over them.
#[async_trait]
pub trait ProjectionStore: Send + Sync + 'static {
    /// Folds `entries` (in position order within each partition) into the views. Entries
    /// below the store's position in their partition are skipped; records that break their
    /// directory's chain are ignored.
    async fn apply(&self, entries: Vec<LogEntry>) -> Result<(), StoreError>;
    /// The position of the first entry of `partition` the views do not reflect yet.
    async fn next_position(&self, partition: u32) -> Result<u64, StoreError>;
    /// Names of every directory that exists (created and not deleted since), in byte order.
    async fn directories(&self) -> Result<Vec<String>, StoreError>;
    /// A copy of one directory's full state with the chain head and the position of
    /// `partition` it reflects, taken atomically, to seed the write path's decision state.
    /// A directory with no records yet gives an empty state at the partition's position.
    async fn snapshot(
        &self,
        directory: &str,
        partition: u32,
    ) -> Result<DirectorySnapshot, StoreError>;
    /// The head of `directory`'s chain the views reflect. A writer whose own head is behind
    /// it waits for its feed before deciding: another process sharing the store wrote first.
    async fn chain_head(&self, directory: &str) -> Result<ChainHead, StoreError>;
    async fn user(&self, dir: &str, id: ResourceId) -> Result<Option<Arc<UserView>>, StoreError>;
    /// [`ProjectionStore::user`] of each of `ids`, in the same order: a provider's Bulk request
    /// of users in one round trip where the store has round trips.
    async fn users(
        &self,
        dir: &str,
        ids: &[ResourceId],
    ) -> Result<Vec<Option<Arc<UserView>>>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.user(dir, *id).await?);
        }
        Ok(out)
    }
    async fn group(&self, dir: &str, id: ResourceId) -> Result<Option<Arc<GroupView>>, StoreError>;
    async fn list_users(
        &self,
        dir: &str,
        vis: Visibility<'_>,
        q: &ListQuery,
    ) -> Result<Page<UserView>, StoreError>;
    async fn list_groups(
        &self,
        dir: &str,
        vis: Visibility<'_>,
        q: &ListQuery,
    ) -> Result<Page<GroupView>, StoreError>;
    /// Up to `count` users `vis` admits, in id order, after `after` (from the first when
    /// None): every user a page at a time, each page found by key, so that a scan of a
    /// million costs the same per page at its end as at its start (full syncs, re-maps).
    async fn users_after(
        &self,
        dir: &str,
        vis: Visibility<'_>,
        after: Option<ResourceId>,
        count: usize,
    ) -> Result<Vec<Arc<UserView>>, StoreError>;
    /// As [`ProjectionStore::users_after`], for groups.
    async fn groups_after(
        &self,
        dir: &str,
        vis: Visibility<'_>,
        after: Option<ResourceId>,
        count: usize,
    ) -> Result<Vec<Arc<GroupView>>, StoreError>;
    /// The display value of each member (userName or displayName), None if it is gone or
    /// `vis` does not admit it (a member another source adopted since it was added).
    async fn member_displays(
        &self,
        dir: &str,
        members: &[Member],
        vis: Visibility<'_>,
    ) -> Result<Vec<Option<String>>, StoreError>;
    /// The groups `member` belongs to: directly, and through nested groups (RFC 7643 §4.1.2),
    /// each with its displayName and whether the membership is direct.
    async fn groups_of(
        &self,
        dir: &str,
        member: ResourceId,
        vis: Visibility<'_>,
    ) -> Result<Vec<(ResourceId, String, bool)>, StoreError>;
    /// [`ProjectionStore::groups_of`] of each of `members`, in the same order: a page of
    /// users in one round trip where the store has round trips.
    async fn groups_of_each(
        &self,
        dir: &str,
        members: &[ResourceId],
        vis: Visibility<'_>,
    ) -> Result<Vec<Vec<(ResourceId, String, bool)>>, StoreError> {
        let mut out = Vec::with_capacity(members.len());
        for m in members {
            out.push(self.groups_of(dir, *m, vis).await?);
        }
        Ok(out)
    }
    /// The source with this slug, in whichever directory it lives.
    async fn source(&self, slug: &str) -> Result<Option<Arc<SourceView>>, StoreError>;
    async fn sources(&self) -> Result<Vec<Arc<SourceView>>, StoreError>;
    async fn admin_tokens(&self) -> Result<Vec<AdminTokenView>, StoreError>;
    /// Every outbound provider of every directory, by directory and id.
    async fn providers(&self) -> Result<Vec<Arc<ProviderView>>, StoreError>;
    /// Every property mapping of every directory with its directory's name, by directory and
    /// id.
    async fn mappings(&self) -> Result<Vec<(String, MappingView)>, StoreError>;
    /// Which of `ids` are users or groups deleted from `dir` (ids are never reused, so such an
    /// id is certainly the directory's own).
    async fn retired(
        &self,
        dir: &str,
        ids: &[ResourceId],
    ) -> Result<HashSet<ResourceId>, StoreError>;
    /// How often the store's in-process cache answered a read, and how often the read went to
    /// its backend; None for a store without one.
    fn cache_counts(&self) -> Option<CacheCounts> {
        None
    }
    /// Whether the store answers now. Writes are refused while it does not (their outcome
    /// could not be confirmed), and `/readyz` says so. Always true for the memory store.
    fn healthy(&self) -> bool {
        true
    }
}

#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) dirs: BTreeMap<String, Directory>,
    pub(crate) chain: ChainState,
    /// Per partition: the first position not yet reflected.
    pub(crate) next_positions: Vec<u64>,
    /// Per partition: the digest of the record just before its next position.
    pub(crate) tails: Vec<Option<roster_events::chain::Digest>>,
    pub(crate) source_dir: HashMap<String, String>,
    /// Per directory, the users and groups deleted from it.
    pub(crate) retired: HashMap<String, HashSet<ResourceId>>,
    /// How many `user.erased` events were folded.
    pub(crate) erasures: u64,
    pub(crate) fold_errors: u64,
    /// Directories are folded without their indexes ([`Directory::unindexed`]).
    pub(crate) unindexed: bool,
}

impl Inner {
    fn position(&self, partition: u32) -> u64 {
        self.next_positions
            .get(partition as usize)
            .copied()
            .unwrap_or(0)
    }
}

/// The whole state of a memory store: every directory, its chain head, and per partition the
/// first position not reflected.
#[derive(Debug, Default)]
pub struct Folded {
    pub dirs: BTreeMap<String, Directory>,
    pub heads: Vec<(String, ChainHead)>,
    pub next_positions: Vec<u64>,
    /// Per directory, the users and groups deleted from it.
    pub retired: HashMap<String, HashSet<ResourceId>>,
    pub fold_errors: u64,
}

/// Views held in memory, rebuilt from the log at start.
#[derive(Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that only folds, for a fold that is written out and never queried (a
    /// rebuild's bulk load): its directories keep no user and group indexes, so its queries
    /// must not be used.
    pub fn fold_only() -> Self {
        let store = Self::default();
        store.write().unindexed = true;
        store
    }

    pub(crate) fn from_inner(inner: Inner) -> Self {
        MemoryStore {
            inner: RwLock::new(inner),
        }
    }

    pub(crate) fn read_inner(&self) -> RwLockReadGuard<'_, Inner> {
        self.read()
    }

    /// How many `user.erased` events the views reflect.
    pub fn erasures(&self) -> u64 {
        self.read().erasures
    }

    /// Per partition, the first position the views do not reflect.
    pub fn next_positions(&self) -> Vec<u64> {
        self.read().next_positions.clone()
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A poisoned lock means a fold panicked; the views are still structurally sound
        // (every fold step is all-or-nothing), so keep serving.
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Folds entries synchronously (the async trait method delegates here).
    pub fn apply_sync(&self, entries: Vec<LogEntry>) {
        let mut inner = self.write();
        let inner = &mut *inner;
        for entry in entries {
            let p = entry.partition as usize;
            if inner.next_positions.len() <= p {
                inner.next_positions.resize(p + 1, 0);
                inner.tails.resize(p + 1, None);
            }
            if entry.position < inner.next_positions[p] {
                continue;
            }
            inner.next_positions[p] = entry.position + 1;
            inner.tails[p] = Some(entry.digest);
            if !inner.chain.admit(&entry.record, entry.digest) {
                continue;
            }
            // Usually the only reference: take the record and move its values into the views.
            let record = Arc::try_unwrap(entry.record).unwrap_or_else(|shared| (*shared).clone());
            if !inner.dirs.contains_key(&record.directory) {
                let name = record.directory.clone();
                let dir = if inner.unindexed {
                    Directory::unindexed(&name)
                } else {
                    Directory::new(&name)
                };
                inner.dirs.insert(name.clone(), dir);
            }
            let Some(dir) = inner.dirs.get_mut(&record.directory) else {
                continue;
            };
            for env in record.events {
                let slug = match &env.event {
                    roster_events::Event::SourceCreated(s) => Some(s.slug.clone()),
                    _ => None,
                };
                let retires = env.event.retires().then_some(env.resource_id);
                // Counted whether or not the fold takes it: a snapshot written before it may
                // hold the person's data either way.
                if matches!(env.event, roster_events::Event::UserErased(_)) {
                    inner.erasures += 1;
                }
                if let Err(e) = dir.apply(env) {
                    inner.fold_errors += 1;
                    tracing::warn!(position = entry.position, error = %e, "event skipped by the fold");
                    continue;
                }
                if let Some(slug) = slug {
                    inner.source_dir.insert(slug, record.directory.clone());
                }
                if let Some(id) = retires {
                    inner
                        .retired
                        .entry(record.directory.clone())
                        .or_default()
                        .insert(id);
                }
            }
        }
    }

    /// The canonical JSON of every directory, for byte-for-byte comparison of views.
    pub fn canonical_json(&self) -> Vec<u8> {
        let inner = self.read();
        let mut out = Vec::new();
        for (name, dir) in &inner.dirs {
            out.extend_from_slice(name.as_bytes());
            out.push(b'\n');
            out.extend_from_slice(&dir.canonical_json());
            out.push(b'\n');
        }
        out
    }

    /// How many events the fold has skipped because they did not fit (always 0 for a log
    /// written by Roster).
    pub fn fold_errors(&self) -> u64 {
        self.read().fold_errors
    }

    /// Everything the store folded, taken whole (a rebuild folds in memory, then loads the
    /// result into PostgreSQL in bulk).
    pub fn into_folded(self) -> Folded {
        let inner = self.inner.into_inner().unwrap_or_else(|p| p.into_inner());
        let heads = inner
            .dirs
            .keys()
            .map(|name| (name.clone(), inner.chain.head(name)))
            .collect();
        Folded {
            dirs: inner.dirs,
            heads,
            next_positions: inner.next_positions,
            retired: inner.retired,
            fold_errors: inner.fold_errors,
        }
    }

    fn with_dir<T>(&self, dir: &str, f: impl FnOnce(&Directory) -> T) -> Option<T> {
        self.read().dirs.get(dir).map(f)
    }
}

#[async_trait]
impl ProjectionStore for MemoryStore {
    async fn apply(&self, entries: Vec<LogEntry>) -> Result<(), StoreError> {
        self.apply_sync(entries);
        Ok(())
    }

    async fn next_position(&self, partition: u32) -> Result<u64, StoreError> {
        Ok(self.read().position(partition))
    }

    async fn directories(&self) -> Result<Vec<String>, StoreError> {
        let inner = self.read();
        let dirs = inner.dirs.iter().filter(|(_, d)| d.meta().is_some());
        Ok(dirs.map(|(name, _)| name.clone()).collect())
    }

    async fn snapshot(
        &self,
        directory: &str,
        partition: u32,
    ) -> Result<DirectorySnapshot, StoreError> {
        let inner = self.read();
        Ok(DirectorySnapshot {
            state: inner
                .dirs
                .get(directory)
                .map(Directory::decision_copy)
                .unwrap_or_else(|| Directory::new(directory)),
            head: inner.chain.head(directory),
            next_position: inner.position(partition),
        })
    }

    async fn chain_head(&self, directory: &str) -> Result<ChainHead, StoreError> {
        Ok(self.read().chain.head(directory))
    }

    async fn user(&self, dir: &str, id: ResourceId) -> Result<Option<Arc<UserView>>, StoreError> {
        Ok(self.with_dir(dir, |d| d.user(id).cloned()).flatten())
    }

    async fn group(&self, dir: &str, id: ResourceId) -> Result<Option<Arc<GroupView>>, StoreError> {
        Ok(self.with_dir(dir, |d| d.group(id).cloned()).flatten())
    }

    async fn list_users(
        &self,
        dir: &str,
        vis: Visibility<'_>,
        q: &ListQuery,
    ) -> Result<Page<UserView>, StoreError> {
        // The resources to walk are taken out under the lock (a chunk at a time) and walked
        // after it.
        Ok(match self.with_dir(dir, |d| d.users_listing(vis, q)) {
            Some(listing) => listing.finish(q, |after| {
                self.with_dir(dir, |d| d.users_after(vis, after, WALK_CHUNK))
                    .unwrap_or_default()
            }),
            None => Page {
                total: 0,
                items: vec![],
            },
        })
    }

    async fn list_groups(
        &self,
        dir: &str,
        vis: Visibility<'_>,
        q: &ListQuery,
    ) -> Result<Page<GroupView>, StoreError> {
        Ok(match self.with_dir(dir, |d| d.groups_listing(vis, q)) {
            Some(listing) => listing.finish(q, |after| {
                self.with_dir(dir, |d| d.groups_after(vis, after, WALK_CHUNK))
                    .unwrap_or_default()
            }),
            None => Page {
                total: 0,
                items: vec![],
            },
        })
    }

    async fn users_after(
        &self,
        dir: &str,
        vis: Visibility<'_>,
        after: Option<ResourceId>,
        count: usize,
    ) -> Result<Vec<Arc<UserView>>, StoreError> {
        Ok(self
            .with_dir(dir, |d| d.users_after(vis, after, count))
            .unwrap_or_default())
    }

    async fn groups_after(
        &self,
        dir: &str,
        vis: Visibility<'_>,
        after: Option<ResourceId>,
        count: usize,
    ) -> Result<Vec<Arc<GroupView>>, StoreError> {
        Ok(self
            .with_dir(dir, |d| d.groups_after(vis, after, count))
            .unwrap_or_default())
    }

    async fn member_displays(
        &self,
        dir: &str,
        members: &[Member],
        vis: Visibility<'_>,
    ) -> Result<Vec<Option<String>>, StoreError> {
        Ok(self
            .with_dir(dir, |d| {
                members
                    .iter()
                    .map(|m| match m.kind {
                        MemberType::User => d
                            .user(m.value)
                            .filter(|u| vis.admits(&u.owner))
                            .map(|u| u.user_name().to_owned()),
                        MemberType::Group => d
                            .group(m.value)
                            .filter(|g| vis.admits(&g.owner))
                            .map(|g| g.display_name().to_owned()),
                    })
                    .collect()
            })
            .unwrap_or_else(|| vec![None; members.len()]))
    }

    async fn groups_of(
        &self,
        dir: &str,
        member: ResourceId,
        vis: Visibility<'_>,
    ) -> Result<Vec<(ResourceId, String, bool)>, StoreError> {
        Ok(self
            .with_dir(dir, |d| d.memberships(member, vis))
            .unwrap_or_default())
    }

    async fn retired(
        &self,
        dir: &str,
        ids: &[ResourceId],
    ) -> Result<HashSet<ResourceId>, StoreError> {
        let inner = self.read();
        let Some(retired) = inner.retired.get(dir) else {
            return Ok(HashSet::new());
        };
        Ok(ids
            .iter()
            .filter(|id| retired.contains(id))
            .copied()
            .collect())
    }

    async fn source(&self, slug: &str) -> Result<Option<Arc<SourceView>>, StoreError> {
        let inner = self.read();
        Ok(inner
            .source_dir
            .get(slug)
            .and_then(|dir| inner.dirs.get(dir))
            .and_then(|d| d.source_by_slug(slug).cloned()))
    }

    async fn sources(&self) -> Result<Vec<Arc<SourceView>>, StoreError> {
        let inner = self.read();
        Ok(inner
            .dirs
            .values()
            .flat_map(|d| d.sources().cloned())
            .collect())
    }

    async fn admin_tokens(&self) -> Result<Vec<AdminTokenView>, StoreError> {
        let inner = self.read();
        Ok(inner
            .dirs
            .values()
            .flat_map(|d| d.admin_tokens().cloned())
            .collect())
    }

    async fn providers(&self) -> Result<Vec<Arc<ProviderView>>, StoreError> {
        let inner = self.read();
        Ok(inner
            .dirs
            .values()
            .flat_map(|d| d.providers().cloned())
            .collect())
    }

    async fn mappings(&self) -> Result<Vec<(String, MappingView)>, StoreError> {
        let inner = self.read();
        Ok(inner
            .dirs
            .iter()
            .flat_map(|(name, d)| d.mappings().map(|m| (name.clone(), m.clone())))
            .collect())
    }
}
