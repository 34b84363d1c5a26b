//! The PostgreSQL projection store (`PgStore`, feature `postgres`): the same views as the
//! memory store, in tables several Roster processes and other tools can share.
//!
//! Folding (`fold`): a batch of log entries is applied in one transaction. It locks the generation row
//! (shared) and the positions of its partitions (exclusive), skips entries below the stored
//! position, applies the directory-sequence rule with the stored chain heads, loads the
//! resources the events touch into a partial [`Directory`], folds the events with the same pure
//! code as the memory store, and writes back what changed (multi-row `UNNEST` upserts and
//! deletes) together with the new chain heads and positions. So a redelivered entry changes
//! nothing, and a crash anywhere leaves the views at a batch boundary.
//!
//! Reading (`read`): queries filter, sort and paginate in SQL where that gives exactly the memory
//! store's answer ([`sql`]), and evaluate the rest of a filter in memory on the rows SQL
//! selected. Multi-statement reads run in one repeatable-read transaction.
//!
//! Generations (`generation`): every table is partitioned by generation. [`PgStore::open`]
//! serves and folds into the active one; [`PgStore::building`] folds a new one for `roster
//! rebuild` (loaded by `bulk`), which [`Swap::commit`] makes active once it has caught up (see
//! migrations/V1__views.sql). `rows` converts between views and table rows; `table_row` gives
//! the users and groups tables the row type the fold and a rebuild write, which owns the column
//! list.
//!
//! Caching (`cache`): the serving store keeps users, their memberships, the holders of each
//! userName and sources in process, exact as of each request's arrival: the log says what
//! changed, a shared probe of the stored positions says how far the tables are.
//!
//! Statistics (`statistics`): the serving store analyzes its tables when the fold has grown them
//! by a tenth, sooner than autovacuum looks, so that a first provisioning is not planned as if
//! the tables were empty.
//!
//! This module owns the connection pool, migrations, health, and the `ProjectionStore`
//! interface over the parts above.
//!
//! What it does not own: the log, and the decision state of writers (built from
//! [`ProjectionStore::snapshot`]).

pub mod audit;
mod bulk;
mod cache;
mod changes;
mod fold;
mod freshness;
mod generation;
mod heads;
mod provider_state;
mod read;
mod rows;
pub mod sql;
mod statistics;
mod table_row;

pub use bulk::LoadCounts;
pub use freshness::{reads_as_of, Folders};
pub use generation::{RebuildLock, Swap};
pub use provider_state::{EchoRow, LinkRow, ProviderCheckpoint, ProviderLock, SavedProvider};

use crate::query::{self, ListQuery, Page, Visibility};
use crate::store::{CacheCounts, DirectorySnapshot, LogEntry, ProjectionStore, StoreError};
use crate::views::{
    AdminTokenView, DirectoryMeta, GroupView, MappingView, ProviderView, SourceView, UserView,
};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use generation::Target;
use roster_events::{ChainHead, Member, ResourceId, ResourceType};
use rows::{group_from, json, param_ref, typed_params, user_from, GROUP_COLUMNS, MEMBERS_JOIN};
use sql::{Kind, Param};
use std::collections::HashSet;
use std::ops::DerefMut;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

mod tls;
mod write;

pub use tls::{PgSslMode, PgTls};

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
    /// TLS to the server.
    pub tls: PgTls,
    /// About how many bytes of users, memberships and sources a serving store keeps in
    /// process (`cache`); 0 keeps none.
    pub cache_bytes: u64,
    /// Whether this process alone folds the log into these tables (the embedded file log) or
    /// several may (Kafka): what the cache must ask before it answers.
    pub folders: Folders,
}

/// Views in PostgreSQL.
pub struct PgStore {
    pool: Pool,
    target: Target,
    /// Shared with the probe task, which ends when the store is dropped.
    healthy: Arc<AtomicBool>,
    fold_errors: AtomicU64,
    /// The generation the last fold wrote into (-1 before the first): the next fold reads
    /// there without asking first.
    fold_gen: AtomicI32,
    /// What most requests read, kept exact by the log (the active generation's store only).
    cache: Option<cache::ViewCache>,
    /// When to analyze the tables as the fold fills them (the active generation's store only).
    statistics: Option<Arc<statistics::Statistics>>,
}

/// Statements a connection caches before filter-shaped queries stop being prepared.
const STATEMENT_CACHE_LIMIT: usize = 256;

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

/// Beyond a connection error, a statement's failure that the same statement may not meet
/// again: a serialization failure or deadlock (class 40), a cancelled statement (57014), a
/// lock not available (55P03).
fn is_transient(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|code| {
        code.code().starts_with("40") || ["57014", "55P03"].contains(&code.code())
    })
}

impl PgStore {
    /// Connects, applies the migrations (one process at a time), and serves the active
    /// generation.
    ///
    /// Fails when the URL is invalid, the database cannot be reached within the timeout, or a
    /// migration fails.
    pub async fn open(opts: &PgOptions) -> Result<PgStore, StoreError> {
        let mut store = PgStore::connect(opts, Target::Active)?;
        store.migrate(refinery::Target::Latest).await?;
        store.spawn_probe();
        let client = store.client().await?;
        let rows = store.track(statistics::user_rows(&client).await)?;
        drop(client);
        store.statistics = Some(Arc::new(statistics::Statistics::new(rows)));
        if opts.cache_bytes > 0 {
            store.cache = Some(
                cache::ViewCache::start(opts.cache_bytes, opts.folders, store.pool.clone()).await?,
            );
        }
        Ok(store)
    }

    /// Applies the migrations up to and including `version` only: a database as an older
    /// Roster left it, for a test to fill and then upgrade with [`PgStore::open`].
    ///
    /// Fails as [`PgStore::open`] does.
    #[doc(hidden)]
    pub async fn migrate_until(opts: &PgOptions, version: u32) -> Result<(), StoreError> {
        let store = PgStore::connect(opts, Target::Active)?;
        store.migrate(refinery::Target::Version(version)).await
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
                 sources_g{g}, admin_tokens_g{g}, providers_g{g}, directories_g{g}, \
                 retired_g{g}, audit_events_g{g}"
            ),
            Target::Active => {
                "ANALYZE users, user_emails, groups, group_members, sources, admin_tokens, \
                 providers, directories, retired, audit_events"
                    .to_owned()
            }
        };
        self.track(client.batch_execute(&sql).await)
    }

    fn connect(opts: &PgOptions, target: Target) -> Result<PgStore, StoreError> {
        let mut config: tokio_postgres::Config = opts
            .url
            .parse()
            .map_err(|e| StoreError::Settings(format!("invalid PostgreSQL URL: {e}")))?;
        config.connect_timeout(opts.timeout);
        if config.get_application_name().is_none() {
            config.application_name("roster");
        }
        let (mode, tls) = tls::connector(&opts.tls, config.get_ssl_mode())?;
        config.ssl_mode(mode);
        let manager = Manager::from_config(
            config,
            tls,
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
            .map_err(|e| StoreError::Settings(format!("PostgreSQL pool: {e}")))?;
        Ok(PgStore {
            pool,
            target,
            healthy: Arc::new(AtomicBool::new(true)),
            fold_errors: AtomicU64::new(0),
            fold_gen: AtomicI32::new(-1),
            cache: None,
            statistics: None,
        })
    }

    async fn migrate(&self, until: refinery::Target) -> Result<(), StoreError> {
        // At start the cause is named (a refused certificate, a wrong password): the
        // operator reads it, where a request's error says only that the views are unavailable.
        let mut client = self.pool.get().await.map_err(|e| {
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why = format!("{why}: {s}");
                source = s.source();
            }
            StoreError::Unavailable(format!("connecting to PostgreSQL: {why}"))
        })?;
        let client: &mut tokio_postgres::Client = client.deref_mut().deref_mut();
        self.track(
            client
                .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
                .await,
        )?;
        let report = embedded::migrations::runner()
            .set_target(until)
            .run_async(client)
            .await;
        let _ = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await;
        let report = report.map_err(|e| {
            tracing::error!(error = %e, "PostgreSQL migration failed");
            StoreError::Refused(format!("PostgreSQL migration failed: {e}"))
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
                } else if is_transient(&e) {
                    tracing::warn!(error = %e, "PostgreSQL could not finish a statement now");
                    Err(StoreError::Unavailable(
                        "PostgreSQL could not finish the statement now".into(),
                    ))
                } else {
                    tracing::error!(error = ?e, "PostgreSQL refused a statement");
                    Err(StoreError::Refused(
                        "PostgreSQL refused a statement of the views".into(),
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
}

#[async_trait]
impl ProjectionStore for PgStore {
    fn cache_counts(&self) -> Option<CacheCounts> {
        self.cache.as_ref().map(cache::ViewCache::counts)
    }

    /// Whether the last use of the database succeeded.
    fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    async fn apply(&self, entries: Vec<LogEntry>) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        if let Some(cache) = &self.cache {
            cache.mark(&entries);
        }
        let mut next: Vec<(usize, u64)> = Vec::new();
        for e in &entries {
            match next.iter_mut().find(|(p, _)| *p == e.partition as usize) {
                Some((_, n)) => *n = (*n).max(e.position + 1),
                None => next.push((e.partition as usize, e.position + 1)),
            }
        }
        let changes = entries
            .iter()
            .flat_map(|e| &e.record.events)
            .filter(|env| matches!(env.resource_type, ResourceType::User | ResourceType::Group))
            .count() as u64;
        let created = self.cache.as_ref().map(|_| cache::created_alone(&entries));
        let users = self.apply_batch(entries).await?;
        if let (Some(cache), Some(created)) = (&self.cache, created) {
            cache.committed(&next);
            cache.folded(&next, users, created);
        }
        if let Some(stats) = &self.statistics {
            statistics::folded(stats, &self.pool, changes);
        }
        Ok(())
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
            "SELECT name FROM directories WHERE gen = {} AND meta IS NOT NULL ORDER BY name",
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
        self.directory_snapshot(directory, partition).await
    }

    async fn chain_head(&self, directory: &str) -> Result<ChainHead, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT seq, record_id, digest FROM chain_heads WHERE gen = {} AND directory = $1",
            self.gen_sql()
        );
        let rows = self.query(&client, &sql, &[&directory]).await?;
        Ok(rows
            .first()
            .map_or_else(ChainHead::default, heads::head_from))
    }

    async fn user(&self, dir: &str, id: ResourceId) -> Result<Option<Arc<UserView>>, StoreError> {
        Ok(self.users_cached(dir, &[id]).await?.pop().flatten())
    }

    async fn users(
        &self,
        dir: &str,
        ids: &[ResourceId],
    ) -> Result<Vec<Option<Arc<UserView>>>, StoreError> {
        self.users_cached(dir, ids).await
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
        if let Some(page) = self.list_by_user_name(dir, vis, q).await? {
            return Ok(page);
        }
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

    async fn users_after(
        &self,
        dir: &str,
        vis: Visibility<'_>,
        after: Option<ResourceId>,
        count: usize,
    ) -> Result<Vec<Arc<UserView>>, StoreError> {
        self.list_after(Kind::User, dir, vis, after, count, user_from)
            .await
    }

    async fn groups_after(
        &self,
        dir: &str,
        vis: Visibility<'_>,
        after: Option<ResourceId>,
        count: usize,
    ) -> Result<Vec<Arc<GroupView>>, StoreError> {
        self.list_after(Kind::Group, dir, vis, after, count, group_from)
            .await
    }

    async fn member_displays(
        &self,
        dir: &str,
        members: &[Member],
        vis: Visibility<'_>,
    ) -> Result<Vec<Option<String>>, StoreError> {
        self.displays(dir, members, vis).await
    }

    async fn groups_of(
        &self,
        dir: &str,
        member: ResourceId,
        vis: Visibility<'_>,
    ) -> Result<Vec<(ResourceId, String, bool)>, StoreError> {
        Ok(self
            .memberships_each(dir, &[member], vis)
            .await?
            .pop()
            .unwrap_or_default())
    }

    async fn groups_of_each(
        &self,
        dir: &str,
        members: &[ResourceId],
        vis: Visibility<'_>,
    ) -> Result<Vec<Vec<(ResourceId, String, bool)>>, StoreError> {
        self.memberships_each(dir, members, vis).await
    }

    async fn source(&self, slug: &str) -> Result<Option<Arc<SourceView>>, StoreError> {
        self.source_cached(slug).await
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

    async fn mappings(&self) -> Result<Vec<(String, MappingView)>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT name, meta FROM directories WHERE gen = {} AND meta IS NOT NULL \
             ORDER BY name",
            self.gen_sql()
        );
        let rows = self.query(&client, &sql, &[]).await?;
        let mut out = Vec::new();
        for r in &rows {
            let name: String = r.get(0);
            let meta = json::<DirectoryMeta>(r.get(1))?;
            out.extend(meta.mappings.into_values().map(|m| (name.clone(), m)));
        }
        Ok(out)
    }

    async fn retired(
        &self,
        dir: &str,
        ids: &[ResourceId],
    ) -> Result<HashSet<ResourceId>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT id FROM retired WHERE gen = {} AND directory = $1 AND id = ANY($2)",
            self.gen_sql()
        );
        let ids: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
        let rows = self.query(&client, &sql, &[&dir, &ids]).await?;
        Ok(rows.iter().map(|r| ResourceId(r.get(0))).collect())
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
