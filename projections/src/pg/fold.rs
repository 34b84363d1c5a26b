//! The incremental fold: a batch of log entries to one transaction (lock, skip what is
//! already reflected, load what the batch touches, fold it with the memory store's code,
//! write back what changed with the new chain heads and positions).

use super::audit::Reached;
use super::changes::{DirBatch, Touched, Writes};
use super::generation::Target;
use super::heads::{HeadColumns, LOAD as LOAD_HEADS, UPSERT as UPSERT_HEADS};
use super::rows::{
    corrupt, group_from, json, user_from, GROUP_COLUMNS, MEMBERS_JOIN, USER_COLUMNS,
};
use super::PgStore;
use crate::directory::Directory;
use crate::store::{LogEntry, StoreError};
use crate::views::{AdminTokenView, DirectoryMeta, ProviderView, SourceView, UserView};
use roster_events::ResourceId;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// The statements that load what a batch touches (`$1` the generation, `$2` the directory,
/// `$3` the ids). Prepared before a fold's reads are pipelined (see [`PgStore::prepare`]).
const LOAD_META: &str = "SELECT meta FROM directories WHERE gen = $1 AND name = $2";
static LOAD_USERS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.gen = $1 AND u.directory = $2 \
         AND u.id = ANY($3)"
    )
});
static LOAD_GROUPS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {GROUP_COLUMNS} FROM groups u {MEMBERS_JOIN} WHERE u.gen = $1 \
         AND u.directory = $2 AND u.id = ANY($3)"
    )
});
const LOAD_SOURCES: &str =
    "SELECT view FROM sources WHERE gen = $1 AND directory = $2 AND id = ANY($3)";
const LOAD_ADMIN_TOKENS: &str =
    "SELECT id, view FROM admin_tokens WHERE gen = $1 AND directory = $2 AND id = ANY($3)";
const LOAD_PROVIDERS: &str =
    "SELECT view FROM providers WHERE gen = $1 AND directory = $2 AND id = ANY($3)";
/// The fold's first statements: the positions of the batch's partitions, created if need be
/// and locked (`$1` the generation, `$2` the partitions).
const ADD_POSITIONS: &str = "INSERT INTO positions (gen, log_partition, next_position) \
     SELECT $1, p, 0 FROM UNNEST($2::int4[]) p ON CONFLICT DO NOTHING";
const LOCK_POSITIONS: &str = "SELECT log_partition, next_position, next_entry, max_time_ms \
     FROM positions WHERE gen = $1 AND log_partition = ANY($2) FOR UPDATE";
const LOCK_GENERATION: &str = "SELECT active FROM roster_generation FOR SHARE";

impl PgStore {
    /// Prepares the statements of a fold's reads on `tx`'s connection (each once per
    /// connection), so that the reads then go out in the order they are polled: a statement
    /// not yet prepared would wait for its preparation and could reach the server after one
    /// polled later (the positions must be locked before the rows are read).
    async fn prepare(&self, tx: &deadpool_postgres::Transaction<'_>) -> Result<(), StoreError> {
        for sql in [
            LOCK_GENERATION,
            ADD_POSITIONS,
            LOCK_POSITIONS,
            LOAD_HEADS,
            LOAD_META,
            &LOAD_USERS,
            &LOAD_GROUPS,
            LOAD_SOURCES,
            LOAD_ADMIN_TOKENS,
            LOAD_PROVIDERS,
        ] {
            self.track(tx.prepare_cached(sql).await)?;
        }
        Ok(())
    }

    /// Reads `sql` with the generation, directory and ids when there are ids.
    async fn load_ids(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        sql: &str,
        gen: i32,
        name: &str,
        ids: &BTreeSet<Uuid>,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = ids.iter().copied().collect();
        self.query(tx, sql, &[&gen, &name, &ids]).await
    }

    /// Loads what a batch touches in one directory into a partial directory, in one round trip
    /// (the reads are pipelined).
    pub(super) async fn load(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        gen: i32,
        name: &str,
        touched: &Touched,
    ) -> Result<Directory, StoreError> {
        let meta = async {
            match touched.meta {
                true => self.query(tx, LOAD_META, &[&gen, &name]).await,
                false => Ok(Vec::new()),
            }
        };
        let (meta, users, groups, sources, tokens, providers) = tokio::try_join!(
            meta,
            self.load_ids(tx, &LOAD_USERS, gen, name, &touched.users),
            self.load_ids(tx, &LOAD_GROUPS, gen, name, &touched.groups),
            self.load_ids(tx, LOAD_SOURCES, gen, name, &touched.sources),
            self.load_ids(tx, LOAD_ADMIN_TOKENS, gen, name, &touched.admin_tokens),
            self.load_ids(tx, LOAD_PROVIDERS, gen, name, &touched.providers),
        )?;
        let mut dir = Directory::new(name);
        if let Some(meta) = meta.first().and_then(|r| r.get::<_, Option<String>>(0)) {
            dir.restore_meta(json::<DirectoryMeta>(&meta)?);
        }
        for row in &users {
            dir.restore_user(Arc::new(user_from(row)?));
        }
        for row in &groups {
            dir.restore_group(Arc::new(group_from(row)?));
        }
        for row in &sources {
            dir.restore_source(Arc::new(json::<SourceView>(row.get(0))?));
        }
        for row in &tokens {
            let key = ResourceId(row.get::<_, Uuid>(0));
            dir.restore_admin_token(key, json::<AdminTokenView>(row.get(1))?);
        }
        for row in &providers {
            dir.restore_provider(Arc::new(json::<ProviderView>(row.get(0))?));
        }
        Ok(dir)
    }

    /// The generation a fold writes into, locked against a swap until the transaction ends
    /// (the fixed generation of a rebuild's store needs no lock).
    async fn lock_generation(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
    ) -> Result<i32, StoreError> {
        match self.target {
            Target::Fixed(g) => Ok(g),
            Target::Active => {
                let rows = self.query(tx, LOCK_GENERATION, &[]).await?;
                rows.first()
                    .map(|r| r.get(0))
                    .ok_or_else(|| corrupt("roster_generation is empty".into()))
            }
        }
    }

    /// Folds `entries` into the views in one transaction. Its reads go out together in one
    /// round trip (positions locked first, then the chain heads and the rows the entries
    /// touch, in the generation the last fold wrote), and so do its writes; when a swap made
    /// another generation active since, the transaction is rolled back and read again there.
    /// Returns each user the fold wrote, as the tables now hold it (by directory).
    pub(super) async fn apply_batch(
        &self,
        entries: Vec<LogEntry>,
    ) -> Result<Vec<(String, Arc<UserView>)>, StoreError> {
        // What every entry could touch, per directory, loaded before the fold knows which
        // entries it folds (another process may have folded some, some records may not be
        // valid): a few rows more are read, and only what the folded records touch is written.
        let mut by_dir: BTreeMap<&str, Vec<&roster_events::Record>> = BTreeMap::new();
        for e in &entries {
            by_dir
                .entry(&e.record.directory)
                .or_default()
                .push(&e.record);
        }
        let touched: BTreeMap<String, Touched> = by_dir
            .into_iter()
            .map(|(d, records)| (d.to_owned(), Touched::of(records)))
            .collect();
        let names: Vec<String> = touched.keys().cloned().collect();
        let partitions: Vec<i32> = entries
            .iter()
            .map(|e| e.partition as i32)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut client = self.client().await?;
        let (tx, gen, rows, mut heads, mut loaded) = loop {
            let tx = self.track(client.transaction().await)?;
            self.prepare(&tx).await?;
            let gen = match self.fold_gen.load(Ordering::Relaxed) {
                g if g >= 0 => g,
                _ => self.lock_generation(&tx).await?,
            };
            let loads = futures_util::future::try_join_all(
                touched
                    .iter()
                    .map(|(name, touched)| self.load(&tx, gen, name, touched)),
            );
            let positions: [&(dyn ToSql + Sync); 2] = [&gen, &partitions];
            let (_, active, _, rows, heads, loaded) = tokio::try_join!(
                // The log is what makes a write durable; the views can always be folded again
                // from it. A commit PostgreSQL loses in a crash takes its positions with it
                // (same transaction), so the projector folds those entries again: no need to
                // wait for the commit's WAL flush.
                async { self.track(tx.batch_execute("SET LOCAL synchronous_commit = off").await) },
                self.lock_generation(&tx),
                self.query(&tx, ADD_POSITIONS, &positions),
                self.query(&tx, LOCK_POSITIONS, &positions),
                self.load_heads(&tx, gen, &names),
                loads,
            )?;
            self.fold_gen.store(active, Ordering::Relaxed);
            if active == gen {
                break (tx, gen, rows, heads, loaded);
            }
            // Rolled back as `tx` is dropped.
        };
        let mut next: HashMap<u32, u64> = rows
            .iter()
            .map(|r| (r.get::<_, i32>(0) as u32, r.get::<_, i64>(1) as u64))
            .collect();
        // Where the audit projection goes on from, per partition.
        let mut reached: HashMap<u32, Reached> = rows
            .iter()
            .map(|r| (r.get::<_, i32>(0) as u32, Reached::of(r.get(2), r.get(3))))
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
            self.track(tx.commit().await)?;
            return Ok(Vec::new());
        }
        // The valid records, per directory, in order.
        let mut valid: BTreeMap<String, Vec<Arc<roster_events::Record>>> = BTreeMap::new();
        // The same, with their places in the log, for the audit projection.
        let mut admitted: Vec<(u32, u64, Arc<roster_events::Record>)> = Vec::new();
        for e in &entries {
            let head = heads.entry(e.record.directory.clone()).or_default();
            if head.admit(&e.record, e.digest) {
                admitted.push((e.partition, e.position, e.record.clone()));
                valid
                    .entry(e.record.directory.clone())
                    .or_default()
                    .push(e.record.clone());
            }
        }
        let advanced: BTreeSet<String> = valid.keys().cloned().collect();
        let mut batches = Vec::new();
        let mut users = Vec::new();
        let mut loaded: BTreeMap<String, Directory> =
            touched.into_keys().zip(loaded.drain(..)).collect();
        for (name, records) in valid {
            let Some(before) = loaded.remove(&name) else {
                continue;
            };
            let touched = Touched::of(records.iter().map(|r| &**r));
            let mut after = before.clone();
            let mut retired = Vec::new();
            for r in records {
                let r = Arc::try_unwrap(r).unwrap_or_else(|shared| (*shared).clone());
                for env in r.events {
                    let retires = env.event.retires().then_some(env.resource_id.0);
                    match after.apply(env) {
                        Ok(_) => retired.extend(retires),
                        Err(e) => {
                            self.fold_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(error = %e, "event skipped by the fold");
                        }
                    }
                }
            }
            let batch = DirBatch {
                touched,
                before,
                after,
                retired,
            };
            for id in &batch.touched.users {
                let id = ResourceId(*id);
                if let Some(u) = batch.after.user(id) {
                    if !batch.before.user(id).is_some_and(|b| Arc::ptr_eq(b, u)) {
                        users.push((name.clone(), u.clone()));
                    }
                }
            }
            batches.push(batch);
        }
        let mut writes = Writes::default();
        for batch in &batches {
            writes.collect(batch);
        }
        let admitted: Vec<(u32, u64, &roster_events::Record)> =
            admitted.iter().map(|(p, n, r)| (*p, *n, &**r)).collect();
        // The audit rows go on from where the partitions' rows reached.
        let audit_from = reached.clone();
        for (p, _, r) in &admitted {
            reached.entry(*p).or_default().past(r);
        }
        let heads = HeadColumns::of(heads.iter().filter(|(d, _)| advanced.contains(*d)));
        let (mut parts, mut positions, mut entries, mut times) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (p, n) in next {
            let r = reached.get(&p).copied().unwrap_or_default();
            parts.push(p as i32);
            positions.push(n as i64);
            entries.push(r.next_entry);
            times.push(r.max_time());
        }
        let head_params: [&(dyn ToSql + Sync); 5] =
            [&gen, &heads.dirs, &heads.seqs, &heads.ids, &heads.digests];
        let position_params: [&(dyn ToSql + Sync); 5] =
            [&gen, &parts, &positions, &entries, &times];
        // Independent statements of the one transaction, sent without waiting for each
        // other's answers (tokio-postgres pipelines them on the connection).
        tokio::try_join!(
            self.write(&tx, gen, &writes),
            self.fold_audit(&tx, gen, &admitted, audit_from),
            self.query(&tx, UPSERT_HEADS, &head_params),
            self.query(
                &tx,
                "UPDATE positions SET next_position = v.n, next_entry = v.e, max_time_ms = v.t \
                 FROM UNNEST($2::int4[], $3::int8[], $4::int8[], $5::int8[]) AS v(p, n, e, t) \
                 WHERE gen = $1 AND log_partition = v.p",
                &position_params,
            ),
        )?;
        self.track(tx.commit().await)?;
        Ok(users)
    }
}
