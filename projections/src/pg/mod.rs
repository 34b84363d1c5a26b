//! The PostgreSQL projection store (`PgStore`, feature `postgres`): the same views as the
//! memory store, in tables several Roster processes and other tools can share.
//!
//! Folding: a batch of log entries is applied in one transaction. It locks the generation row
//! (shared) and the positions of its partitions (exclusive), skips entries below the stored
//! position, applies the directory-sequence rule with the stored chain heads, loads the
//! resources the events touch into a partial [`Directory`], folds the events with the same pure
//! code as the memory store, and writes back what changed (multi-row `UNNEST` upserts and
//! deletes) together with the new chain heads and positions. So a redelivered entry changes
//! nothing, and a crash anywhere leaves the views at a batch boundary.
//!
//! Reading: queries filter, sort and paginate in SQL where that gives exactly the memory
//! store's answer ([`sql`]), and evaluate the rest of a filter in memory on the rows SQL
//! selected. Multi-statement reads run in one repeatable-read transaction.
//!
//! Generations: every table is partitioned by generation. [`PgStore::open`] serves and folds
//! into the active one; [`PgStore::building`] folds a new one for `roster rebuild`, which
//! [`PgStore::swap`] makes active once it has caught up (see migrations/V1__views.sql).
//!
//! What it does not own: the log, and the decision state of writers (built from
//! [`ProjectionStore::snapshot`]).

mod bulk;
mod provider_state;
pub mod sql;
pub use provider_state::{EchoRow, LinkRow, ProviderCheckpoint, ProviderLock, SavedProvider};

pub use bulk::LoadCounts;

use crate::directory::Directory;
use crate::query::{self, ListQuery, Page, Visibility};
use crate::store::{DirectorySnapshot, LogEntry, ProjectionStore, StoreError};
use crate::views::{
    AdminTokenView, DirectoryMeta, GroupView, Keys, ProviderView, SourceView, UserView,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use roster_events::{fold_case, ChainHead, Document, Event, Member, MemberType, ResourceId};
use sql::{Kind, Param, Translator};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::DerefMut;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Arbitrary constants naming Roster's advisory locks.
const MIGRATION_LOCK: i64 = 0x526f_7374_6572_0001;
const REBUILD_LOCK: i64 = 0x526f_7374_6572_0002;

/// How to reach the database.
#[derive(Clone)]
pub struct PgOptions {
    /// A libpq-style URL or key=value string. It may hold a password: never log it.
    pub url: String,
    pub pool_size: usize,
    /// How long a connection attempt or a wait for a pooled connection may take.
    pub timeout: Duration,
}

/// Held by a rebuild: the session advisory lock (released when dropped) and the generations.
pub struct RebuildLock {
    client: Option<deadpool_postgres::Object>,
    pub generation: i32,
    pub previous: i32,
}

impl Drop for RebuildLock {
    fn drop(&mut self) {
        // The lock belongs to the session: close the connection rather than pool it.
        if let Some(c) = self.client.take() {
            drop(deadpool_postgres::Object::take(c));
        }
    }
}

/// A swap in progress: live folding into the active generation waits on it.
pub struct Swap {
    /// In an open transaction: never goes back to the pool (dropping it closes it, which
    /// rolls back).
    client: Option<deadpool_postgres::Object>,
    active: i32,
    /// Per partition, the position the active generation reflects.
    pub targets: HashMap<u32, u64>,
}

impl Swap {
    /// Makes `store`'s generation the active one, if it reflects at least the positions of
    /// the active generation (so that no reader sees the views go back), then drops the old
    /// generation's tables. Live folding then goes on in the new generation, skipping what it
    /// already reflects.
    ///
    /// Fails (changing nothing) when the new generation is behind or the database fails.
    pub async fn commit(mut self, store: &PgStore) -> Result<i32, StoreError> {
        let Some(generation) = store.generation() else {
            return Err(StoreError::Unavailable("not a rebuild's store".into()));
        };
        let Some(client) = self.client.as_ref() else {
            return Err(StoreError::Unavailable("swap already ended".into()));
        };
        let rows = store.track(
            client
                .query(
                    "SELECT log_partition, next_position FROM positions WHERE gen = $1",
                    &[&generation],
                )
                .await,
        )?;
        let built: HashMap<u32, u64> = rows
            .iter()
            .map(|r| (r.get::<_, i32>(0) as u32, r.get::<_, i64>(1) as u64))
            .collect();
        let behind = self
            .targets
            .iter()
            .any(|(p, n)| built.get(p).copied().unwrap_or(0) < *n);
        if behind {
            let wanted = &self.targets;
            return Err(StoreError::Unavailable(format!(
                "the rebuilt views are at {built:?}, the active ones at {wanted:?}"
            )));
        }
        store.track(
            client
                .execute(
                    "UPDATE roster_generation SET active = $1, building = NULL",
                    &[&generation],
                )
                .await,
        )?;
        store.track(client.batch_execute("COMMIT").await)?;
        // Committed: the connection is clean again and may go back to the pool.
        let client = self.client.take();
        if let Some(client) = &client {
            if let Err(e) = client
                .execute("SELECT roster_drop_generation($1)", &[&self.active])
                .await
            {
                tracing::warn!(error = %e, generation = self.active, "could not drop the old generation");
            }
        }
        Ok(generation)
    }
}

impl Drop for Swap {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            drop(deadpool_postgres::Object::take(c));
        }
    }
}

/// Which generation a store reads and folds into.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// The active generation, whichever it is at the time of each statement.
    Active,
    /// One fixed generation (a rebuild's).
    Fixed(i32),
}

/// Views in PostgreSQL.
pub struct PgStore {
    pool: Pool,
    target: Target,
    /// Shared with the probe task, which ends when the store is dropped.
    healthy: Arc<AtomicBool>,
    fold_errors: AtomicU64,
}

fn member_type_code(t: MemberType) -> i16 {
    match t {
        MemberType::User => 0,
        MemberType::Group => 1,
    }
}

fn member_type(code: i16) -> MemberType {
    if code == 1 {
        MemberType::Group
    } else {
        MemberType::User
    }
}

fn nanos(t: &DateTime<Utc>) -> i64 {
    // Representable until the year 2262.
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// The stored time columns of a view: created and modified, in nanoseconds (exact round
/// trip) and in milliseconds (what `meta` shows, for filters and sort).
struct Stamps {
    created_ns: i64,
    modified_ns: i64,
    created_ms: i64,
    modified_ms: i64,
}

fn stamps(created: &DateTime<Utc>, modified: &DateTime<Utc>) -> Stamps {
    Stamps {
        created_ns: nanos(created),
        modified_ns: nanos(modified),
        created_ms: created.timestamp_millis(),
        modified_ms: modified.timestamp_millis(),
    }
}

fn time(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

fn document(text: String) -> Result<Document, StoreError> {
    serde_json::from_str(&text).map_err(|e| corrupt(format!("stored document: {e}")))
}

fn corrupt(why: String) -> StoreError {
    tracing::error!(%why, "unreadable row in the PostgreSQL views");
    StoreError::Unavailable("the views hold an unreadable row".into())
}

const USER_COLUMNS: &str = "u.id, u.owner, u.user_name, u.display_name, u.external_id, \
     u.resource, u.password_hash, u.version, u.created_ns, u.modified_ns";

const GROUP_COLUMNS: &str = "u.id, u.owner, u.display_name, u.external_id, u.resource, \
     u.version, u.created_ns, u.modified_ns, mem.ids, mem.types";

/// The members of `u` as two aligned arrays; read in the same statement as the group, so the
/// two are one snapshot.
const MEMBERS_JOIN: &str = "LEFT JOIN LATERAL (SELECT \
     array_agg(m.member_id ORDER BY m.member_id, m.member_type) AS ids, \
     array_agg(m.member_type ORDER BY m.member_id, m.member_type) AS types \
     FROM group_members m WHERE m.gen = u.gen AND m.directory = u.directory \
     AND m.group_id = u.id) mem ON TRUE";

fn user_from(row: &Row) -> Result<UserView, StoreError> {
    let resource = document(row.get(5))?;
    Ok(UserView {
        id: ResourceId(row.get::<_, Uuid>(0)),
        owner: row.get(1),
        keys: Keys {
            user_name: row.get(2),
            display_name: row.get(3),
            external_id: row.get(4),
        },
        resource,
        password_hash: row.get(6),
        version: row.get::<_, i64>(7) as u64,
        created: time(row.get(8)),
        last_modified: time(row.get(9)),
    })
}

fn group_from(row: &Row) -> Result<GroupView, StoreError> {
    let resource = document(row.get(4))?;
    let ids: Option<Vec<Uuid>> = row.get(8);
    let types: Option<Vec<i16>> = row.get(9);
    let members = ids
        .unwrap_or_default()
        .into_iter()
        .zip(types.unwrap_or_default())
        .map(|(id, t)| Member {
            value: ResourceId(id),
            kind: member_type(t),
        })
        .collect();
    Ok(GroupView {
        id: ResourceId(row.get::<_, Uuid>(0)),
        owner: row.get(1),
        keys: Keys {
            user_name: None,
            display_name: row.get(2),
            external_id: row.get(3),
        },
        resource,
        members,
        version: row.get::<_, i64>(5) as u64,
        created: time(row.get(6)),
        last_modified: time(row.get(7)),
    })
}

fn json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("stored view: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Views are plain data with string keys: serialization cannot fail.
    serde_json::to_string(v).expect("views serialize")
}

/// The elements of `v` at `idx`.
fn pick<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
    idx.iter().map(|&i| v[i].clone()).collect()
}

/// The columns a COPY of users writes, and their types.
const USER_COPY: (&str, [Type; 16]) = (
    "(gen, directory, id, owner, user_name, user_name_ci, display_name, display_name_ci, \
     external_id, resource, password_hash, version, created_ns, modified_ns, created_ms, \
     modified_ms)",
    [
        Type::INT4,
        Type::TEXT,
        Type::UUID,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
    ],
);

/// The columns a COPY of groups writes, and their types.
const GROUP_COPY: (&str, [Type; 13]) = (
    "(gen, directory, id, owner, display_name, display_name_ci, external_id, resource, \
     version, created_ns, modified_ns, created_ms, modified_ms)",
    [
        Type::INT4,
        Type::TEXT,
        Type::UUID,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
    ],
);

/// Statements a connection caches before filter-shaped queries stop being prepared.
const STATEMENT_CACHE_LIMIT: usize = 256;

fn param_ref(p: &Param) -> &(dyn ToSql + Sync) {
    match p {
        Param::Text(s) => s,
        Param::Uuid(u) => u,
        Param::Int(i) => i,
    }
}

fn typed_params(params: &[Param]) -> Vec<(&(dyn ToSql + Sync), Type)> {
    params
        .iter()
        .map(|p| {
            let t = match p {
                Param::Text(_) => Type::TEXT,
                Param::Uuid(_) => Type::UUID,
                Param::Int(_) => Type::INT8,
            };
            (param_ref(p), t)
        })
        .collect()
}

/// Whether an error means the database is unreachable (as opposed to a refused statement).
fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // No SQLSTATE: an I/O or protocol failure.
        None => true,
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || c.starts_with("57P") || c.starts_with("53")
        }
    }
}

/// Which resources a batch of one directory touches, by kind.
#[derive(Default)]
struct Touched {
    meta: bool,
    users: BTreeSet<Uuid>,
    groups: BTreeSet<Uuid>,
    sources: BTreeSet<Uuid>,
    admin_tokens: BTreeSet<Uuid>,
    providers: BTreeSet<Uuid>,
}

/// One directory's share of a batch: the state loaded before folding and the fold after.
struct DirBatch {
    touched: Touched,
    before: Directory,
    after: Directory,
}

/// Rows to write, one vector per column, for the `UNNEST` statements.
#[derive(Default)]
struct Writes {
    user_del: (Vec<String>, Vec<Uuid>),
    users: UserRows,
    email_del: (Vec<String>, Vec<Uuid>),
    emails: (Vec<String>, Vec<Uuid>, Vec<String>),
    group_del: (Vec<String>, Vec<Uuid>),
    groups: GroupRows,
    member_del: (Vec<String>, Vec<Uuid>, Vec<Uuid>, Vec<i16>),
    member_group_del: (Vec<String>, Vec<Uuid>),
    members: (Vec<String>, Vec<Uuid>, Vec<Uuid>, Vec<i16>),
    sources: (Vec<String>, Vec<Uuid>, Vec<String>, Vec<String>),
    source_del: (Vec<String>, Vec<Uuid>),
    admin_tokens: (Vec<String>, Vec<Uuid>, Vec<String>),
    admin_token_del: (Vec<String>, Vec<Uuid>),
    providers: (Vec<String>, Vec<Uuid>, Vec<String>),
    provider_del: (Vec<String>, Vec<Uuid>),
    meta: (Vec<String>, Vec<String>),
}

#[derive(Default)]
struct UserRows {
    /// Whether the row is new (COPY) or replaces one (upsert).
    new: Vec<bool>,
    dir: Vec<String>,
    id: Vec<Uuid>,
    owner: Vec<Option<String>>,
    user_name: Vec<Option<String>>,
    user_name_ci: Vec<Option<String>>,
    display_name: Vec<Option<String>>,
    display_name_ci: Vec<Option<String>>,
    external_id: Vec<Option<String>>,
    resource: Vec<String>,
    password_hash: Vec<Option<String>>,
    version: Vec<i64>,
    created_ns: Vec<i64>,
    modified_ns: Vec<i64>,
    created_ms: Vec<i64>,
    modified_ms: Vec<i64>,
}

#[derive(Default)]
struct GroupRows {
    new: Vec<bool>,
    dir: Vec<String>,
    id: Vec<Uuid>,
    owner: Vec<Option<String>>,
    display_name: Vec<Option<String>>,
    display_name_ci: Vec<Option<String>>,
    external_id: Vec<Option<String>>,
    resource: Vec<String>,
    version: Vec<i64>,
    created_ns: Vec<i64>,
    modified_ns: Vec<i64>,
    created_ms: Vec<i64>,
    modified_ms: Vec<i64>,
}

/// The folded `emails.value`s of a user, as the in-memory filter sees them.
fn email_values(view: &UserView) -> BTreeSet<String> {
    use crate::filter::Attributes;
    let attrs = view.attributes();
    let mut out = BTreeSet::new();
    if let Some(top) = attrs.attribute(None, "emails") {
        let mut vals = Vec::new();
        crate::filter::values_at(&top, Some("value"), &mut vals);
        for v in vals {
            if let serde_json::Value::String(s) = v {
                out.insert(fold_case(s));
            }
        }
    }
    out
}

impl Writes {
    fn user(&mut self, dir: &str, before: Option<&Arc<UserView>>, after: Option<&Arc<UserView>>) {
        let id = match (before, after) {
            (_, Some(a)) => a.id.0,
            (Some(b), None) => b.id.0,
            (None, None) => return,
        };
        if let (Some(b), Some(a)) = (before, after) {
            if Arc::ptr_eq(a, b) {
                return;
            }
        }
        let old_emails = before.map(|b| email_values(b)).unwrap_or_default();
        let new_emails = after.map(|a| email_values(a)).unwrap_or_default();
        if old_emails != new_emails {
            if before.is_some() {
                self.email_del.0.push(dir.to_owned());
                self.email_del.1.push(id);
            }
            for e in new_emails {
                self.emails.0.push(dir.to_owned());
                self.emails.1.push(id);
                self.emails.2.push(e);
            }
        }
        let Some(u) = after else {
            self.user_del.0.push(dir.to_owned());
            self.user_del.1.push(id);
            return;
        };
        let r = &mut self.users;
        r.new.push(before.is_none());
        r.dir.push(dir.to_owned());
        r.id.push(id);
        r.owner.push(u.owner.clone());
        r.user_name.push(u.keys.user_name.clone());
        r.user_name_ci
            .push(u.keys.user_name.as_deref().map(fold_case));
        r.display_name.push(u.keys.display_name.clone());
        r.display_name_ci
            .push(u.keys.display_name.as_deref().map(fold_case));
        r.external_id.push(u.keys.external_id.clone());
        r.resource.push(u.resource.as_str().to_owned());
        r.password_hash.push(u.password_hash.clone());
        r.version.push(u.version as i64);
        let t = stamps(&u.created, &u.last_modified);
        r.created_ns.push(t.created_ns);
        r.modified_ns.push(t.modified_ns);
        r.created_ms.push(t.created_ms);
        r.modified_ms.push(t.modified_ms);
    }

    fn group(
        &mut self,
        dir: &str,
        before: Option<&Arc<GroupView>>,
        after: Option<&Arc<GroupView>>,
    ) {
        let id = match (before, after) {
            (_, Some(a)) => a.id.0,
            (Some(b), None) => b.id.0,
            (None, None) => return,
        };
        if let (Some(b), Some(a)) = (before, after) {
            if Arc::ptr_eq(a, b) {
                return;
            }
        }
        let Some(g) = after else {
            self.group_del.0.push(dir.to_owned());
            self.group_del.1.push(id);
            self.member_group_del.0.push(dir.to_owned());
            self.member_group_del.1.push(id);
            return;
        };
        let empty = BTreeSet::new();
        let old = before.map_or(&empty, |b| &b.members);
        for m in old.difference(&g.members) {
            self.member_del.0.push(dir.to_owned());
            self.member_del.1.push(id);
            self.member_del.2.push(m.value.0);
            self.member_del.3.push(member_type_code(m.kind));
        }
        for m in g.members.difference(old) {
            self.members.0.push(dir.to_owned());
            self.members.1.push(id);
            self.members.2.push(m.value.0);
            self.members.3.push(member_type_code(m.kind));
        }
        let r = &mut self.groups;
        r.new.push(before.is_none());
        r.dir.push(dir.to_owned());
        r.id.push(id);
        r.owner.push(g.owner.clone());
        r.display_name.push(g.keys.display_name.clone());
        r.display_name_ci
            .push(g.keys.display_name.as_deref().map(fold_case));
        r.external_id.push(g.keys.external_id.clone());
        r.resource.push(g.resource.as_str().to_owned());
        r.version.push(g.version as i64);
        let t = stamps(&g.created, &g.last_modified);
        r.created_ns.push(t.created_ns);
        r.modified_ns.push(t.modified_ns);
        r.created_ms.push(t.created_ms);
        r.modified_ms.push(t.modified_ms);
    }

    fn collect(&mut self, b: &DirBatch) {
        let dir = b.after.name();
        for id in &b.touched.users {
            let rid = ResourceId(*id);
            self.user(dir, b.before.user(rid), b.after.user(rid));
        }
        for id in &b.touched.groups {
            let rid = ResourceId(*id);
            self.group(dir, b.before.group(rid), b.after.group(rid));
        }
        for id in &b.touched.sources {
            let rid = ResourceId(*id);
            match b.after.source(rid) {
                Some(s) => {
                    self.sources.0.push(dir.to_owned());
                    self.sources.1.push(*id);
                    self.sources.2.push(s.slug.clone());
                    self.sources.3.push(to_json(s.as_ref()));
                }
                None => {
                    self.source_del.0.push(dir.to_owned());
                    self.source_del.1.push(*id);
                }
            }
        }
        let tokens: HashMap<&ResourceId, &AdminTokenView> = b.after.admin_tokens_by_key().collect();
        for id in &b.touched.admin_tokens {
            match tokens.get(&ResourceId(*id)) {
                Some(t) => {
                    self.admin_tokens.0.push(dir.to_owned());
                    self.admin_tokens.1.push(*id);
                    self.admin_tokens.2.push(to_json(*t));
                }
                None => {
                    self.admin_token_del.0.push(dir.to_owned());
                    self.admin_token_del.1.push(*id);
                }
            }
        }
        for id in &b.touched.providers {
            match b.after.provider(ResourceId(*id)) {
                Some(p) => {
                    self.providers.0.push(dir.to_owned());
                    self.providers.1.push(*id);
                    self.providers.2.push(to_json(p.as_ref()));
                }
                None => {
                    self.provider_del.0.push(dir.to_owned());
                    self.provider_del.1.push(*id);
                }
            }
        }
        if b.touched.meta {
            if let Some(m) = b.after.meta() {
                self.meta.0.push(dir.to_owned());
                self.meta.1.push(to_json(m));
            }
        }
    }
}

impl PgStore {
    /// Connects, applies the migrations (one process at a time), and serves the active
    /// generation.
    ///
    /// Fails when the URL is invalid, the database cannot be reached within the timeout, or a
    /// migration fails.
    pub async fn open(opts: &PgOptions) -> Result<PgStore, StoreError> {
        let store = PgStore::connect(opts, Target::Active)?;
        store.migrate().await?;
        store.spawn_probe();
        Ok(store)
    }

    /// While the store is unhealthy, tries the database every second, so that health comes
    /// back by itself even when nothing else uses the store.
    fn spawn_probe(&self) {
        let healthy = Arc::downgrade(&self.healthy);
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(flag) = healthy.upgrade() else {
                    return;
                };
                if flag.load(Ordering::Relaxed) {
                    continue;
                }
                if let Ok(client) = pool.get().await {
                    if client.simple_query("SELECT 1").await.is_ok() {
                        tracing::info!("PostgreSQL is reachable again");
                        flag.store(true, Ordering::Relaxed);
                    }
                }
            }
        });
    }

    /// A store that folds into a new generation, for a rebuild: takes the rebuild lock (one
    /// rebuild at a time, across processes), drops what a crashed rebuild left, and creates
    /// the new generation's tables, empty and not yet attached: [`PgStore::load_folded`]
    /// fills and attaches them, and only then does the store fold and read. The active
    /// generation keeps serving meanwhile.
    ///
    /// Fails when the database cannot be reached or another rebuild holds the lock.
    pub async fn building(opts: &PgOptions) -> Result<(PgStore, RebuildLock), StoreError> {
        let setup = PgStore::connect(opts, Target::Active)?;
        setup.migrate().await?;
        let lock = setup.client().await?;
        let got: bool = setup
            .track(
                lock.query_one("SELECT pg_try_advisory_lock($1)", &[&REBUILD_LOCK])
                    .await,
            )?
            .get(0);
        if !got {
            return Err(StoreError::Unavailable("another rebuild is running".into()));
        }
        let mut client = setup.client().await?;
        let tx = setup.track(client.transaction().await)?;
        let row = setup.track(
            tx.query_one(
                "SELECT active, building FROM roster_generation FOR UPDATE",
                &[],
            )
            .await,
        )?;
        let (active, stale): (i32, Option<i32>) = (row.get(0), row.get(1));
        if let Some(g) = stale {
            tracing::info!(generation = g, "dropping what an interrupted rebuild left");
            setup.track(tx.execute("SELECT roster_drop_generation($1)", &[&g]).await)?;
        }
        let generation = active.max(stale.unwrap_or(0)) + 1;
        setup.track(
            tx.execute(
                "SELECT roster_create_detached_generation($1)",
                &[&generation],
            )
            .await,
        )?;
        setup.track(
            tx.execute("UPDATE roster_generation SET building = $1", &[&generation])
                .await,
        )?;
        setup.track(tx.commit().await)?;
        drop(client);
        let store = PgStore {
            target: Target::Fixed(generation),
            ..setup
        };
        Ok((
            store,
            RebuildLock {
                client: Some(lock),
                generation,
                previous: active,
            },
        ))
    }

    /// Stops live folding into the active generation (until [`Swap::commit`] or drop) and
    /// says where it got to: the positions this store's generation must reach before the swap.
    ///
    /// Fails when the database cannot be reached.
    pub async fn begin_swap(&self) -> Result<Swap, StoreError> {
        let client = self.client().await?;
        self.track(client.batch_execute("BEGIN").await)?;
        let row = self.track(
            client
                .query_one("SELECT active FROM roster_generation FOR UPDATE", &[])
                .await,
        )?;
        let active: i32 = row.get(0);
        let rows = self.track(
            client
                .query(
                    "SELECT log_partition, next_position FROM positions WHERE gen = $1",
                    &[&active],
                )
                .await,
        )?;
        let targets = rows
            .iter()
            .map(|r| (r.get::<_, i32>(0) as u32, r.get::<_, i64>(1) as u64))
            .collect();
        Ok(Swap {
            client: Some(client),
            active,
            targets,
        })
    }

    /// Refreshes the planner's statistics of this store's generation (after a bulk fold, so
    /// that the first queries on it get good plans).
    ///
    /// Fails when the database cannot be reached.
    pub async fn analyze(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let sql = match self.target {
            // Our own integer, never a request's value.
            Target::Fixed(g) => format!(
                "ANALYZE users_g{g}, user_emails_g{g}, groups_g{g}, group_members_g{g}, \
                 sources_g{g}, admin_tokens_g{g}, providers_g{g}, directories_g{g}"
            ),
            Target::Active => {
                "ANALYZE users, user_emails, groups, group_members, sources, admin_tokens, \
                 providers, directories"
                    .to_owned()
            }
        };
        self.track(client.batch_execute(&sql).await)
    }

    /// The generation this store folds into and reads.
    pub fn generation(&self) -> Option<i32> {
        match self.target {
            Target::Fixed(g) => Some(g),
            Target::Active => None,
        }
    }

    fn connect(opts: &PgOptions, target: Target) -> Result<PgStore, StoreError> {
        let mut config: tokio_postgres::Config = opts
            .url
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?;
        config.connect_timeout(opts.timeout);
        if config.get_application_name().is_none() {
            config.application_name("roster");
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size.max(2))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(opts.timeout))
            .create_timeout(Some(opts.timeout))
            .recycle_timeout(Some(opts.timeout))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("PostgreSQL pool: {e}")))?;
        Ok(PgStore {
            pool,
            target,
            healthy: Arc::new(AtomicBool::new(true)),
            fold_errors: AtomicU64::new(0),
        })
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let client: &mut tokio_postgres::Client = client.deref_mut().deref_mut();
        self.track(
            client
                .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
                .await,
        )?;
        let report = embedded::migrations::runner().run_async(client).await;
        let _ = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await;
        let report = report.map_err(|e| {
            tracing::error!(error = %e, "PostgreSQL migration failed");
            StoreError::Unavailable(format!("PostgreSQL migration failed: {e}"))
        })?;
        for m in report.applied_migrations() {
            tracing::info!(migration = %m, "applied a PostgreSQL migration");
        }
        Ok(())
    }

    /// How many events the fold has skipped because they did not fit.
    pub fn fold_errors(&self) -> u64 {
        self.fold_errors.load(Ordering::Relaxed)
    }

    fn track<T>(&self, r: Result<T, tokio_postgres::Error>) -> Result<T, StoreError> {
        match r {
            Ok(v) => {
                self.healthy.store(true, Ordering::Relaxed);
                Ok(v)
            }
            Err(e) => {
                if is_connection_error(&e) {
                    self.healthy.store(false, Ordering::Relaxed);
                    tracing::warn!(error = %e, "PostgreSQL unavailable");
                    Err(StoreError::Unavailable("PostgreSQL is unavailable".into()))
                } else {
                    tracing::error!(error = ?e, "PostgreSQL refused a statement");
                    Err(StoreError::Unavailable(
                        "the views could not be read".into(),
                    ))
                }
            }
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| {
            self.healthy.store(false, Ordering::Relaxed);
            tracing::warn!(error = %e, "no PostgreSQL connection");
            StoreError::Unavailable("PostgreSQL is unavailable".into())
        })
    }

    /// The SQL for the generation this store reads.
    fn gen_sql(&self) -> String {
        match self.target {
            Target::Active => "(SELECT active FROM roster_generation)".into(),
            Target::Fixed(g) => g.to_string(),
        }
    }

    async fn query(
        &self,
        client: &impl GenericClient,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let r = match client.prepare_cached(sql).await {
            Ok(stmt) => client.query(&stmt, params).await,
            Err(e) => Err(e),
        };
        self.track(r)
    }

    /// Runs a query whose text depends on the request (a filter) outside a transaction:
    /// prepared and cached while the connection's cache is small (the shapes real clients
    /// send are few), typed without preparing beyond that, so that no cache grows without
    /// bound with the variety of filters.
    async fn query_params(
        &self,
        client: &deadpool_postgres::Object,
        sql: &str,
        params: &[Param],
    ) -> Result<Vec<Row>, StoreError> {
        if client.statement_cache.size() >= STATEMENT_CACHE_LIMIT {
            let typed = typed_params(params);
            return self.track(client.query_typed(sql, &typed).await);
        }
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(param_ref).collect();
        let r = match client.prepare_cached(sql).await {
            Ok(stmt) => client.query(&stmt, &refs).await,
            Err(e) => Err(e),
        };
        self.track(r)
    }

    /// Runs a query whose text depends on the request (a filter), typed without preparing so
    /// that no statement cache grows with the variety of filters.
    async fn query_dynamic(
        &self,
        client: &tokio_postgres::Transaction<'_>,
        sql: &str,
        params: &[Param],
    ) -> Result<Vec<Row>, StoreError> {
        let typed = typed_params(params);
        self.track(client.query_typed(sql, &typed).await)
    }

    /// Runs a one-parameter query and hands each row to `f` as it arrives.
    async fn stream(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        sql: &str,
        param: &str,
        mut f: impl FnMut(&Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        use futures_util::TryStreamExt;
        let stmt = self.track(tx.prepare(sql).await)?;
        let rows = self.track(tx.query_raw(&stmt, [param]).await)?;
        let mut rows = std::pin::pin!(rows);
        while let Some(row) = self.track(rows.try_next().await)? {
            f(&row)?;
        }
        Ok(())
    }

    /// Loads what a batch touches in one directory into a partial directory.
    async fn load(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        gen: i32,
        name: &str,
        touched: &Touched,
    ) -> Result<Directory, StoreError> {
        let mut dir = Directory::new(name);
        if touched.meta {
            let rows = self
                .query(
                    tx,
                    "SELECT meta FROM directories WHERE gen = $1 AND name = $2",
                    &[&gen, &name],
                )
                .await?;
            if let Some(meta) = rows.first().and_then(|r| r.get::<_, Option<String>>(0)) {
                dir.restore_meta(json::<DirectoryMeta>(&meta)?);
            }
        }
        if !touched.users.is_empty() {
            let ids: Vec<Uuid> = touched.users.iter().copied().collect();
            let sql = format!(
                "SELECT {USER_COLUMNS} FROM users u WHERE u.gen = $1 AND u.directory = $2 \
                 AND u.id = ANY($3)"
            );
            for row in self.query(tx, &sql, &[&gen, &name, &ids]).await? {
                dir.restore_user(Arc::new(user_from(&row)?));
            }
        }
        if !touched.groups.is_empty() {
            let ids: Vec<Uuid> = touched.groups.iter().copied().collect();
            let sql = format!(
                "SELECT {GROUP_COLUMNS} FROM groups u {MEMBERS_JOIN} WHERE u.gen = $1 \
                 AND u.directory = $2 AND u.id = ANY($3)"
            );
            for row in self.query(tx, &sql, &[&gen, &name, &ids]).await? {
                dir.restore_group(Arc::new(group_from(&row)?));
            }
        }
        if !touched.sources.is_empty() {
            let ids: Vec<Uuid> = touched.sources.iter().copied().collect();
            let rows = self
                .query(
                    tx,
                    "SELECT view FROM sources WHERE gen = $1 AND directory = $2 AND id = ANY($3)",
                    &[&gen, &name, &ids],
                )
                .await?;
            for row in rows {
                dir.restore_source(Arc::new(json::<SourceView>(row.get(0))?));
            }
        }
        if !touched.admin_tokens.is_empty() {
            let ids: Vec<Uuid> = touched.admin_tokens.iter().copied().collect();
            let rows = self
                .query(
                    tx,
                    "SELECT id, view FROM admin_tokens WHERE gen = $1 AND directory = $2 \
                     AND id = ANY($3)",
                    &[&gen, &name, &ids],
                )
                .await?;
            for row in rows {
                let key = ResourceId(row.get::<_, Uuid>(0));
                dir.restore_admin_token(key, json::<AdminTokenView>(row.get(1))?);
            }
        }
        if !touched.providers.is_empty() {
            let ids: Vec<Uuid> = touched.providers.iter().copied().collect();
            let rows = self
                .query(
                    tx,
                    "SELECT view FROM providers WHERE gen = $1 AND directory = $2 AND id = ANY($3)",
                    &[&gen, &name, &ids],
                )
                .await?;
            for row in rows {
                dir.restore_provider(Arc::new(json::<ProviderView>(row.get(0))?));
            }
        }
        Ok(dir)
    }

    /// Deletes the rows of `table` whose `(directory, key)` is in `keys`. `table` and `key`
    /// are Roster's own names, never a request's.
    async fn delete_keys(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        gen: i32,
        table: &str,
        key: &str,
        keys: &(Vec<String>, Vec<Uuid>),
    ) -> Result<(), StoreError> {
        if keys.0.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "DELETE FROM {table} WHERE gen = $1 AND (directory, {key}) IN \
             (SELECT * FROM UNNEST($2::text[], $3::uuid[]))"
        );
        self.query(tx, &sql, &[&gen, &keys.0, &keys.1]).await?;
        Ok(())
    }

    /// Writes a batch's changes.
    async fn write(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        gen: i32,
        w: &Writes,
    ) -> Result<(), StoreError> {
        self.delete_keys(tx, gen, "users", "id", &w.user_del)
            .await?;
        self.delete_keys(tx, gen, "user_emails", "user_id", &w.email_del)
            .await?;
        let u = &w.users;
        let old: Vec<usize> = (0..u.id.len()).filter(|&i| !u.new[i]).collect();
        if !old.is_empty() {
            self.query(
                tx,
                "INSERT INTO users (gen, directory, id, owner, user_name, user_name_ci, \
                 display_name, display_name_ci, external_id, resource, password_hash, version, \
                 created_ns, modified_ns, created_ms, modified_ms) \
                 SELECT $1, * FROM UNNEST($2::text[], $3::uuid[], $4::text[], $5::text[], \
                 $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
                 $12::int8[], $13::int8[], $14::int8[], $15::int8[], $16::int8[]) \
                 ON CONFLICT (gen, directory, id) DO UPDATE SET owner = EXCLUDED.owner, \
                 user_name = EXCLUDED.user_name, user_name_ci = EXCLUDED.user_name_ci, \
                 display_name = EXCLUDED.display_name, \
                 display_name_ci = EXCLUDED.display_name_ci, \
                 external_id = EXCLUDED.external_id, resource = EXCLUDED.resource, \
                 password_hash = EXCLUDED.password_hash, version = EXCLUDED.version, \
                 created_ns = EXCLUDED.created_ns, modified_ns = EXCLUDED.modified_ns, \
                 created_ms = EXCLUDED.created_ms, modified_ms = EXCLUDED.modified_ms",
                &[
                    &gen,
                    &pick(&u.dir, &old),
                    &pick(&u.id, &old),
                    &pick(&u.owner, &old),
                    &pick(&u.user_name, &old),
                    &pick(&u.user_name_ci, &old),
                    &pick(&u.display_name, &old),
                    &pick(&u.display_name_ci, &old),
                    &pick(&u.external_id, &old),
                    &pick(&u.resource, &old),
                    &pick(&u.password_hash, &old),
                    &pick(&u.version, &old),
                    &pick(&u.created_ns, &old),
                    &pick(&u.modified_ns, &old),
                    &pick(&u.created_ms, &old),
                    &pick(&u.modified_ms, &old),
                ],
            )
            .await?;
        }
        if u.new.iter().any(|n| *n) {
            // New rows (the bulk of a rebuild) go in with COPY, several times faster than
            // INSERT; they cannot conflict (the batch's load showed they do not exist).
            let sql = format!("COPY users {} FROM STDIN BINARY", USER_COPY.0);
            let sink = self.track(tx.copy_in(&sql).await)?;
            let types = USER_COPY.1;
            let writer = BinaryCopyInWriter::new(sink, &types);
            let mut writer = std::pin::pin!(writer);
            for k in (0..u.id.len()).filter(|&k| u.new[k]) {
                let row: [&(dyn ToSql + Sync); 16] = [
                    &gen,
                    &u.dir[k],
                    &u.id[k],
                    &u.owner[k],
                    &u.user_name[k],
                    &u.user_name_ci[k],
                    &u.display_name[k],
                    &u.display_name_ci[k],
                    &u.external_id[k],
                    &u.resource[k],
                    &u.password_hash[k],
                    &u.version[k],
                    &u.created_ns[k],
                    &u.modified_ns[k],
                    &u.created_ms[k],
                    &u.modified_ms[k],
                ];
                self.track(writer.as_mut().write(&row).await)?;
            }
            self.track(writer.finish().await)?;
        }
        if !w.emails.0.is_empty() {
            // A user's emails are written whole after the old ones are deleted: all new.
            let sink = self.track(
                tx.copy_in(
                    "COPY user_emails (gen, directory, user_id, value_ci) FROM STDIN BINARY",
                )
                .await,
            )?;
            let types = [Type::INT4, Type::TEXT, Type::UUID, Type::TEXT];
            let writer = BinaryCopyInWriter::new(sink, &types);
            let mut writer = std::pin::pin!(writer);
            for k in 0..w.emails.0.len() {
                let row: [&(dyn ToSql + Sync); 4] =
                    [&gen, &w.emails.0[k], &w.emails.1[k], &w.emails.2[k]];
                self.track(writer.as_mut().write(&row).await)?;
            }
            self.track(writer.finish().await)?;
        }
        self.delete_keys(tx, gen, "groups", "id", &w.group_del)
            .await?;
        self.delete_keys(tx, gen, "group_members", "group_id", &w.member_group_del)
            .await?;
        if !w.member_del.0.is_empty() {
            let d = &w.member_del;
            self.query(
                tx,
                "DELETE FROM group_members WHERE gen = $1 AND \
                 (directory, group_id, member_id, member_type) IN \
                 (SELECT * FROM UNNEST($2::text[], $3::uuid[], $4::uuid[], $5::int2[]))",
                &[&gen, &d.0, &d.1, &d.2, &d.3],
            )
            .await?;
        }
        let g = &w.groups;
        if !g.id.is_empty() {
            self.query(
                tx,
                "INSERT INTO groups (gen, directory, id, owner, display_name, display_name_ci, \
                 external_id, resource, version, created_ns, modified_ns, created_ms, modified_ms) \
                 SELECT $1, * FROM UNNEST($2::text[], $3::uuid[], $4::text[], $5::text[], \
                 $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[], $11::int8[], \
                 $12::int8[], $13::int8[]) \
                 ON CONFLICT (gen, directory, id) DO UPDATE SET owner = EXCLUDED.owner, \
                 display_name = EXCLUDED.display_name, \
                 display_name_ci = EXCLUDED.display_name_ci, \
                 external_id = EXCLUDED.external_id, resource = EXCLUDED.resource, \
                 version = EXCLUDED.version, created_ns = EXCLUDED.created_ns, \
                 modified_ns = EXCLUDED.modified_ns, created_ms = EXCLUDED.created_ms, \
                 modified_ms = EXCLUDED.modified_ms",
                &[
                    &gen,
                    &g.dir,
                    &g.id,
                    &g.owner,
                    &g.display_name,
                    &g.display_name_ci,
                    &g.external_id,
                    &g.resource,
                    &g.version,
                    &g.created_ns,
                    &g.modified_ns,
                    &g.created_ms,
                    &g.modified_ms,
                ],
            )
            .await?;
        }
        if !w.members.0.is_empty() {
            let m = &w.members;
            self.query(
                tx,
                "INSERT INTO group_members (gen, directory, group_id, member_id, member_type) \
                 SELECT $1, * FROM UNNEST($2::text[], $3::uuid[], $4::uuid[], $5::int2[]) \
                 ON CONFLICT DO NOTHING",
                &[&gen, &m.0, &m.1, &m.2, &m.3],
            )
            .await?;
        }
        self.delete_keys(tx, gen, "sources", "id", &w.source_del)
            .await?;
        if !w.sources.0.is_empty() {
            let s = &w.sources;
            self.query(
                tx,
                "INSERT INTO sources (gen, directory, id, slug, view) \
                 SELECT $1, * FROM UNNEST($2::text[], $3::uuid[], $4::text[], $5::text[]) \
                 ON CONFLICT (gen, directory, id) DO UPDATE SET slug = EXCLUDED.slug, \
                 view = EXCLUDED.view",
                &[&gen, &s.0, &s.1, &s.2, &s.3],
            )
            .await?;
        }
        self.delete_keys(tx, gen, "admin_tokens", "id", &w.admin_token_del)
            .await?;
        if !w.admin_tokens.0.is_empty() {
            let t = &w.admin_tokens;
            self.query(
                tx,
                "INSERT INTO admin_tokens (gen, directory, id, view) \
                 SELECT $1, * FROM UNNEST($2::text[], $3::uuid[], $4::text[]) \
                 ON CONFLICT (gen, directory, id) DO UPDATE SET view = EXCLUDED.view",
                &[&gen, &t.0, &t.1, &t.2],
            )
            .await?;
        }
        self.delete_keys(tx, gen, "providers", "id", &w.provider_del)
            .await?;
        if !w.providers.0.is_empty() {
            let p = &w.providers;
            self.query(
                tx,
                "INSERT INTO providers (gen, directory, id, view) \
                 SELECT $1, * FROM UNNEST($2::text[], $3::uuid[], $4::text[]) \
                 ON CONFLICT (gen, directory, id) DO UPDATE SET view = EXCLUDED.view",
                &[&gen, &p.0, &p.1, &p.2],
            )
            .await?;
        }
        if !w.meta.0.is_empty() {
            self.query(
                tx,
                "INSERT INTO directories (gen, name, meta) \
                 SELECT $1, * FROM UNNEST($2::text[], $3::text[]) \
                 ON CONFLICT (gen, name) DO UPDATE SET meta = EXCLUDED.meta",
                &[&gen, &w.meta.0, &w.meta.1],
            )
            .await?;
        }
        Ok(())
    }

    /// The generation a fold writes into, locked against a swap until the transaction ends.
    async fn fold_generation(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
    ) -> Result<i32, StoreError> {
        match self.target {
            Target::Fixed(g) => Ok(g),
            Target::Active => {
                let rows = self
                    .query(tx, "SELECT active FROM roster_generation FOR SHARE", &[])
                    .await?;
                rows.first()
                    .map(|r| r.get(0))
                    .ok_or_else(|| corrupt("roster_generation is empty".into()))
            }
        }
    }

    async fn apply_batch(&self, entries: Vec<LogEntry>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = self.track(client.transaction().await)?;
        // The log is what makes a write durable; the views can always be folded again from
        // it. A commit PostgreSQL loses in a crash takes its positions with it (same
        // transaction), so the projector folds those entries again: no need to wait for the
        // commit's WAL flush.
        self.track(tx.batch_execute("SET LOCAL synchronous_commit = off").await)?;
        let gen = self.fold_generation(&tx).await?;
        let partitions: Vec<i32> = entries
            .iter()
            .map(|e| e.partition as i32)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.query(
            &tx,
            "INSERT INTO positions (gen, log_partition, next_position) \
             SELECT $1, p, 0 FROM UNNEST($2::int4[]) p ON CONFLICT DO NOTHING",
            &[&gen, &partitions],
        )
        .await?;
        let rows = self
            .query(
                &tx,
                "SELECT log_partition, next_position FROM positions \
                 WHERE gen = $1 AND log_partition = ANY($2) FOR UPDATE",
                &[&gen, &partitions],
            )
            .await?;
        let mut next: HashMap<u32, u64> = rows
            .iter()
            .map(|r| (r.get::<_, i32>(0) as u32, r.get::<_, i64>(1) as u64))
            .collect();
        let entries: Vec<LogEntry> = entries
            .into_iter()
            .filter(|e| {
                let n = next.entry(e.partition).or_insert(0);
                if e.position < *n {
                    return false;
                }
                *n = e.position + 1;
                true
            })
            .collect();
        if entries.is_empty() {
            return self.track(tx.commit().await);
        }
        // Chain heads of the directories in the batch.
        let names: Vec<String> = entries
            .iter()
            .map(|e| e.record.directory.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let rows = self
            .query(
                &tx,
                "SELECT directory, seq, record_id FROM chain_heads \
                 WHERE gen = $1 AND directory = ANY($2)",
                &[&gen, &names],
            )
            .await?;
        let mut heads: BTreeMap<String, ChainHead> = names
            .iter()
            .map(|n| (n.clone(), ChainHead::default()))
            .collect();
        for r in rows {
            heads.insert(
                r.get(0),
                ChainHead {
                    seq: r.get::<_, i64>(1) as u64,
                    record_id: r.get(2),
                },
            );
        }
        // The valid records, per directory, in order.
        let mut valid: BTreeMap<String, Vec<Arc<roster_events::Record>>> = BTreeMap::new();
        for e in &entries {
            let head = heads.entry(e.record.directory.clone()).or_default();
            if head.admit(&e.record) {
                valid
                    .entry(e.record.directory.clone())
                    .or_default()
                    .push(e.record.clone());
            }
        }
        let advanced: BTreeSet<String> = valid.keys().cloned().collect();
        let mut writes = Writes::default();
        for (name, records) in valid {
            let mut touched = Touched::default();
            for r in &records {
                for env in &r.events {
                    let id = env.resource_id.0;
                    match &env.event {
                        Event::DirectoryCreated(_) => touched.meta = true,
                        Event::AdminTokenIssued(_) => {
                            touched.admin_tokens.insert(id);
                        }
                        Event::SourceCreated(_)
                        | Event::SourceTokenIssued(_)
                        | Event::SourceTokenRevoked(_)
                        | Event::SourceSchemaDeclared(_) => {
                            touched.sources.insert(id);
                        }
                        Event::ProviderCreated(_)
                        | Event::ProviderUpdated(_)
                        | Event::ProviderDeleted
                        | Event::ProviderSyncRequested
                        | Event::ProviderRetryRequested
                        | Event::ProviderReplayRequested(_) => {
                            touched.providers.insert(id);
                        }
                        Event::UserCreated(_)
                        | Event::UserReplaced(_)
                        | Event::UserDeleted
                        | Event::UserAdopted(_)
                        | Event::UserPasswordSet(_) => {
                            touched.users.insert(id);
                        }
                        Event::GroupCreated(_)
                        | Event::GroupReplaced(_)
                        | Event::GroupMembersAdded(_)
                        | Event::GroupMembersRemoved(_)
                        | Event::GroupDeleted
                        | Event::GroupAdopted(_) => {
                            touched.groups.insert(id);
                        }
                    }
                }
            }
            let before = self.load(&tx, gen, &name, &touched).await?;
            let mut after = before.clone();
            for r in records {
                let r = Arc::try_unwrap(r).unwrap_or_else(|shared| (*shared).clone());
                for env in r.events {
                    if let Err(e) = after.apply(env) {
                        self.fold_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "event skipped by the fold");
                    }
                }
            }
            writes.collect(&DirBatch {
                touched,
                before,
                after,
            });
        }
        self.write(&tx, gen, &writes).await?;
        let (dirs, seqs, ids): (Vec<String>, Vec<i64>, Vec<Option<Uuid>>) = heads
            .into_iter()
            .filter(|(d, _)| advanced.contains(d))
            .map(|(d, h)| (d, h.seq as i64, h.record_id))
            .fold((vec![], vec![], vec![]), |mut acc, (d, s, i)| {
                acc.0.push(d);
                acc.1.push(s);
                acc.2.push(i);
                acc
            });
        self.query(
            &tx,
            "INSERT INTO chain_heads (gen, directory, seq, record_id) \
             SELECT $1, * FROM UNNEST($2::text[], $3::int8[], $4::uuid[]) \
             ON CONFLICT (gen, directory) DO UPDATE SET seq = EXCLUDED.seq, \
             record_id = EXCLUDED.record_id",
            &[&gen, &dirs, &seqs, &ids],
        )
        .await?;
        let (parts, positions): (Vec<i32>, Vec<i64>) =
            next.into_iter().map(|(p, n)| (p as i32, n as i64)).unzip();
        self.query(
            &tx,
            "UPDATE positions SET next_position = v.n FROM UNNEST($2::int4[], $3::int8[]) \
             AS v(p, n) WHERE gen = $1 AND log_partition = v.p",
            &[&gen, &parts, &positions],
        )
        .await?;
        self.track(tx.commit().await)
    }

    /// The groups of each of `members` (see [`ProjectionStore::groups_of`]), in one statement:
    /// with `= $2` for one member (its plan is the same for every member) and `= ANY($2)` for
    /// a page.
    async fn memberships(
        &self,
        dir: &str,
        members: &[ResourceId],
        vis: Visibility<'_>,
    ) -> Result<HashMap<Uuid, Vec<(ResourceId, String, bool)>>, StoreError> {
        if members.is_empty() {
            return Ok(HashMap::new());
        }
        let client = self.client().await?;
        let ids: Vec<Uuid> = members.iter().map(|m| m.0).collect();
        let member = if ids.len() == 1 { "= $2" } else { "= ANY($2)" };
        // RFC 7643 §4.1.2: direct groups, then the groups those are members of, and so on,
        // for every member at once; UNION (not UNION ALL) makes cycles harmless: a group
        // appears at most twice per member, once reached directly and once through another.
        // The planner cannot estimate the recursion's (small) size and would hash-join every
        // group of the directory: `OFFSET 0` keeps the lookup of each group a primary-key
        // probe (7.8 ms against 0.13 ms at 10,000 groups).
        let sql = format!(
            "WITH RECURSIVE up(member, group_id, direct) AS ( \
               SELECT member_id, group_id, true FROM group_members WHERE gen = {gen} \
                 AND directory = $1 AND member_id {member} \
               UNION \
               SELECT up.member, m.group_id, false FROM group_members m \
                 JOIN up ON m.member_id = up.group_id WHERE m.gen = {gen} AND m.directory = $1) \
             SELECT up.member, g.id, g.display_name, g.owner, bool_or(up.direct) \
             FROM up CROSS JOIN LATERAL (SELECT id, display_name, owner FROM groups \
               WHERE gen = {gen} AND directory = $1 AND id = up.group_id OFFSET 0) g \
             GROUP BY up.member, g.id, g.display_name, g.owner ORDER BY up.member, g.id",
            gen = self.gen_sql()
        );
        let rows = if let [one] = ids[..] {
            self.query(&client, &sql, &[&dir, &one]).await?
        } else {
            self.query(&client, &sql, &[&dir, &ids]).await?
        };
        let mut by_member: HashMap<Uuid, Vec<(ResourceId, String, bool)>> = HashMap::new();
        for r in rows
            .iter()
            .filter(|r| vis.admits(&r.get::<_, Option<String>>(3)))
        {
            let name: Option<String> = r.get(2);
            by_member.entry(r.get(0)).or_default().push((
                ResourceId(r.get::<_, Uuid>(1)),
                name.unwrap_or_default(),
                r.get(4),
            ));
        }
        Ok(by_member)
    }

    async fn read_tx<'a>(
        &self,
        client: &'a mut deadpool_postgres::Object,
    ) -> Result<deadpool_postgres::Transaction<'a>, StoreError> {
        let r = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await;
        self.track(r)
    }

    /// A list query over users or groups; `decode` turns a row into a view.
    async fn list<T: query::HasId + Send + Sync>(
        &self,
        kind: Kind,
        dir: &str,
        vis: Visibility<'_>,
        q: &ListQuery,
        decode: fn(&Row) -> Result<T, StoreError>,
        select: fn(&T, &ListQuery) -> Option<query::SortKey>,
    ) -> Result<Page<T>, StoreError> {
        let (table, columns, join) = match kind {
            Kind::User => ("users", USER_COLUMNS, ""),
            Kind::Group => ("groups", GROUP_COLUMNS, MEMBERS_JOIN),
        };
        let t = Translator {
            kind,
            alias: "u",
            declared: &q.declared,
        };
        let mut params = vec![Param::Text(dir.to_owned())];
        let mut wh = format!("u.gen = {} AND u.directory = $1::text", self.gen_sql());
        if let Visibility::Owner(o) = vis {
            params.push(Param::Text(o.to_owned()));
            wh.push_str(&format!(" AND u.owner = ${}::text", params.len()));
        }
        let cond = q.filter.as_ref().map(|f| t.condition(f));
        let exact = cond.as_ref().is_none_or(|c| c.exact);
        if let Some(c) = cond.filter(|c| c.narrows) {
            wh.push_str(" AND ");
            c.sql.render(&mut wh, &mut params);
        }
        let order = match &q.sort {
            None => Some("u.id ASC".to_owned()),
            Some(s) => t.order_by(s),
        };
        let mut client = self.client().await?;
        let skip = q.start_index.max(1) - 1;
        let decode_all = |rows: Vec<Row>| {
            rows.iter()
                .map(|r| decode(r).map(Arc::new))
                .collect::<Result<Vec<_>, _>>()
        };
        if let (true, Some(order)) = (exact, order) {
            let mut page_params = params.clone();
            page_params.push(Param::Int(q.count.min(i64::MAX as usize) as i64));
            page_params.push(Param::Int(skip as i64));
            let n = page_params.len();
            let page_sql = format!(
                "SELECT {columns} FROM {table} u {join} WHERE {wh} ORDER BY {order} \
                 LIMIT ${}::int8 OFFSET ${n}::int8",
                n - 1
            );
            if skip == 0 && q.count > 0 {
                // A first page that is not full holds every match: one statement answers
                // (the common lookups: `userName eq`, `externalId eq`, members of a group).
                let rows = self.query_params(&client, &page_sql, &page_params).await?;
                if rows.len() < q.count {
                    let items = decode_all(rows)?;
                    return Ok(Page {
                        total: items.len(),
                        items,
                    });
                }
            }
            // SQL answers the whole query: count and page in one snapshot.
            let count_sql = format!("SELECT count(*) FROM {table} u WHERE {wh}");
            let tx = self.read_tx(&mut client).await?;
            let (total, rows) = tokio::join!(
                self.query_dynamic(&tx, &count_sql, &params),
                self.query_dynamic(&tx, &page_sql, &page_params)
            );
            let total: i64 = total?.first().map_or(0, |r| r.get(0));
            let items = decode_all(rows?)?;
            self.track(tx.commit().await)?;
            return Ok(Page {
                total: total as usize,
                items,
            });
        }
        let tx = self.read_tx(&mut client).await?;
        // Part of the filter or the sort is evaluated here, on the rows SQL narrowed to.
        let sql = format!("SELECT {columns} FROM {table} u {join} WHERE {wh} ORDER BY u.id ASC");
        let rows = self.query_dynamic(&tx, &sql, &params).await?;
        self.track(tx.commit().await)?;
        let candidates = decode_all(rows)?;
        Ok(query::page(candidates.into_iter(), |v| select(v, q), q))
    }
}

#[async_trait]
impl ProjectionStore for PgStore {
    /// Whether the last use of the database succeeded.
    fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    async fn apply(&self, entries: Vec<LogEntry>) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.apply_batch(entries).await
    }

    async fn next_position(&self, partition: u32) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT next_position FROM positions WHERE gen = {} AND log_partition = $1",
            self.gen_sql()
        );
        let rows = self.query(&client, &sql, &[&(partition as i32)]).await?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    async fn directories(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT directory FROM chain_heads WHERE gen = {} ORDER BY directory",
            self.gen_sql()
        );
        let rows = self.query(&client, &sql, &[]).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn snapshot(
        &self,
        directory: &str,
        partition: u32,
    ) -> Result<DirectorySnapshot, StoreError> {
        let mut client = self.client().await?;
        let tx = self.read_tx(&mut client).await?;
        let gen = self.gen_sql();
        let pos = self
            .query(
                &tx,
                &format!(
                    "SELECT next_position FROM positions WHERE gen = {gen} AND log_partition = $1"
                ),
                &[&(partition as i32)],
            )
            .await?;
        let head = self
            .query(
                &tx,
                &format!(
                    "SELECT seq, record_id FROM chain_heads WHERE gen = {gen} AND directory = $1"
                ),
                &[&directory],
            )
            .await?;
        let mut state = Directory::new(directory);
        let meta = self
            .query(
                &tx,
                &format!("SELECT meta FROM directories WHERE gen = {gen} AND name = $1"),
                &[&directory],
            )
            .await?;
        if let Some(m) = meta.first().and_then(|r| r.get::<_, Option<String>>(0)) {
            state.restore_meta(json(&m)?);
        }
        // Streamed: a directory may hold millions of users.
        let users =
            format!("SELECT {USER_COLUMNS} FROM users u WHERE u.gen = {gen} AND u.directory = $1");
        self.stream(&tx, &users, directory, |r| {
            state.restore_user(Arc::new(user_from(r)?));
            Ok(())
        })
        .await?;
        let groups = format!(
            "SELECT {GROUP_COLUMNS} FROM groups u {MEMBERS_JOIN} WHERE u.gen = {gen} \
             AND u.directory = $1"
        );
        self.stream(&tx, &groups, directory, |r| {
            state.restore_group(Arc::new(group_from(r)?));
            Ok(())
        })
        .await?;
        let sources = self
            .query(
                &tx,
                &format!("SELECT view FROM sources WHERE gen = {gen} AND directory = $1"),
                &[&directory],
            )
            .await?;
        for r in &sources {
            state.restore_source(Arc::new(json::<SourceView>(r.get(0))?));
        }
        let tokens = self
            .query(
                &tx,
                &format!("SELECT id, view FROM admin_tokens WHERE gen = {gen} AND directory = $1"),
                &[&directory],
            )
            .await?;
        for r in &tokens {
            state.restore_admin_token(ResourceId(r.get::<_, Uuid>(0)), json(r.get(1))?);
        }
        let providers = self
            .query(
                &tx,
                &format!("SELECT view FROM providers WHERE gen = {gen} AND directory = $1"),
                &[&directory],
            )
            .await?;
        for r in &providers {
            state.restore_provider(Arc::new(json::<ProviderView>(r.get(0))?));
        }
        self.track(tx.commit().await)?;
        Ok(DirectorySnapshot {
            state,
            head: head.first().map_or_else(ChainHead::default, |r| ChainHead {
                seq: r.get::<_, i64>(0) as u64,
                record_id: r.get(1),
            }),
            next_position: pos.first().map_or(0, |r| r.get::<_, i64>(0) as u64),
        })
    }

    async fn chain_head(&self, directory: &str) -> Result<ChainHead, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT seq, record_id FROM chain_heads WHERE gen = {} AND directory = $1",
            self.gen_sql()
        );
        let rows = self.query(&client, &sql, &[&directory]).await?;
        Ok(rows.first().map_or_else(ChainHead::default, |r| ChainHead {
            seq: r.get::<_, i64>(0) as u64,
            record_id: r.get(1),
        }))
    }

    async fn user(&self, dir: &str, id: ResourceId) -> Result<Option<Arc<UserView>>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.gen = {} AND u.directory = $1 \
             AND u.id = $2",
            self.gen_sql()
        );
        let rows = self.query(&client, &sql, &[&dir, &id.0]).await?;
        rows.first().map(|r| user_from(r).map(Arc::new)).transpose()
    }

    async fn group(&self, dir: &str, id: ResourceId) -> Result<Option<Arc<GroupView>>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {GROUP_COLUMNS} FROM groups u {MEMBERS_JOIN} WHERE u.gen = {} \
             AND u.directory = $1 AND u.id = $2",
            self.gen_sql()
        );
        let rows = self.query(&client, &sql, &[&dir, &id.0]).await?;
        rows.first()
            .map(|r| group_from(r).map(Arc::new))
            .transpose()
    }

    async fn list_users(
        &self,
        dir: &str,
        vis: Visibility<'_>,
        q: &ListQuery,
    ) -> Result<Page<UserView>, StoreError> {
        self.list(Kind::User, dir, vis, q, user_from, |u, q| {
            query::select(&u.attributes(), q)
        })
        .await
    }

    async fn list_groups(
        &self,
        dir: &str,
        vis: Visibility<'_>,
        q: &ListQuery,
    ) -> Result<Page<GroupView>, StoreError> {
        self.list(Kind::Group, dir, vis, q, group_from, |g, q| {
            query::select(&g.attributes(), q)
        })
        .await
    }

    async fn member_displays(
        &self,
        dir: &str,
        members: &[Member],
        vis: Visibility<'_>,
    ) -> Result<Vec<Option<String>>, StoreError> {
        let users: Vec<Uuid> = members
            .iter()
            .filter(|m| m.kind == MemberType::User)
            .map(|m| m.value.0)
            .collect();
        let groups: Vec<Uuid> = members
            .iter()
            .filter(|m| m.kind == MemberType::Group)
            .map(|m| m.value.0)
            .collect();
        let client = self.client().await?;
        let gen = self.gen_sql();
        let owner: Option<&str> = match vis {
            Visibility::All => None,
            Visibility::Owner(o) => Some(o),
        };
        let sql = format!(
            "SELECT 0::int2, id, user_name FROM users WHERE gen = {gen} AND directory = $1 \
             AND id = ANY($2) AND ($4::text IS NULL OR owner = $4) UNION ALL \
             SELECT 1::int2, id, display_name FROM groups WHERE gen = {gen} AND directory = $1 \
             AND id = ANY($3) AND ($4::text IS NULL OR owner = $4)"
        );
        let rows = self
            .query(&client, &sql, &[&dir, &users, &groups, &owner])
            .await?;
        let found: HashMap<(i16, Uuid), String> = rows
            .iter()
            .map(|r| {
                let name: Option<String> = r.get(2);
                ((r.get(0), r.get(1)), name.unwrap_or_default())
            })
            .collect();
        Ok(members
            .iter()
            .map(|m| found.get(&(member_type_code(m.kind), m.value.0)).cloned())
            .collect())
    }

    async fn groups_of(
        &self,
        dir: &str,
        member: ResourceId,
        vis: Visibility<'_>,
    ) -> Result<Vec<(ResourceId, String, bool)>, StoreError> {
        let mut by_member = self.memberships(dir, &[member], vis).await?;
        Ok(by_member.remove(&member.0).unwrap_or_default())
    }

    async fn groups_of_each(
        &self,
        dir: &str,
        members: &[ResourceId],
        vis: Visibility<'_>,
    ) -> Result<Vec<Vec<(ResourceId, String, bool)>>, StoreError> {
        let by_member = self.memberships(dir, members, vis).await?;
        Ok(members
            .iter()
            .map(|id| by_member.get(&id.0).cloned().unwrap_or_default())
            .collect())
    }

    async fn source(&self, slug: &str) -> Result<Option<Arc<SourceView>>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT view FROM sources WHERE gen = {} AND slug = $1",
            self.gen_sql()
        );
        let rows = self.query(&client, &sql, &[&slug]).await?;
        rows.first()
            .map(|r| json::<SourceView>(r.get(0)).map(Arc::new))
            .transpose()
    }

    async fn sources(&self) -> Result<Vec<Arc<SourceView>>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT view FROM sources WHERE gen = {} ORDER BY directory, id",
            self.gen_sql()
        );
        let rows = self.query(&client, &sql, &[]).await?;
        rows.iter()
            .map(|r| json::<SourceView>(r.get(0)).map(Arc::new))
            .collect()
    }

    async fn providers(&self) -> Result<Vec<Arc<ProviderView>>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT view FROM providers WHERE gen = {} ORDER BY directory, id",
            self.gen_sql()
        );
        let rows = self.query(&client, &sql, &[]).await?;
        rows.iter()
            .map(|r| json::<ProviderView>(r.get(0)).map(Arc::new))
            .collect()
    }

    async fn admin_tokens(&self) -> Result<Vec<AdminTokenView>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT view FROM admin_tokens WHERE gen = {} ORDER BY directory, id",
            self.gen_sql()
        );
        let rows = self.query(&client, &sql, &[]).await?;
        rows.iter().map(|r| json(r.get(0))).collect()
    }
}
