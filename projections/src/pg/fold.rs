//! The incremental fold: a batch of log entries to one transaction (lock, skip what is
//! already reflected, load what the batch touches, fold it with the memory store's code,
//! write back what changed with the new chain heads and positions).

use super::audit::Reached;
use super::changes::{DirBatch, Touched, Writes};
use super::generation::Target;
use super::heads::{HeadColumns, UPSERT as UPSERT_HEADS};
use super::rows::{
    corrupt, group_from, json, pick, user_from, GROUP_COLUMNS, MEMBERS_JOIN, USER_COLUMNS,
    USER_COPY,
};
use super::PgStore;
use crate::directory::Directory;
use crate::store::{LogEntry, StoreError};
use crate::views::{AdminTokenView, DirectoryMeta, ProviderView, SourceView};
use roster_events::{Event, ResourceId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

impl PgStore {
    /// Loads what a batch touches in one directory into a partial directory.
    pub(super) async fn load(
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
    pub(super) async fn delete_keys(
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
    pub(super) async fn write(
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
                 created_ns, modified_ns, created_ms, modified_ms, data_key) \
                 SELECT $1, * FROM UNNEST($2::text[], $3::uuid[], $4::text[], $5::text[], \
                 $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
                 $12::int8[], $13::int8[], $14::int8[], $15::int8[], $16::int8[], \
                 $17::uuid[]) \
                 ON CONFLICT (gen, directory, id) DO UPDATE SET owner = EXCLUDED.owner, \
                 user_name = EXCLUDED.user_name, user_name_ci = EXCLUDED.user_name_ci, \
                 display_name = EXCLUDED.display_name, \
                 display_name_ci = EXCLUDED.display_name_ci, \
                 external_id = EXCLUDED.external_id, resource = EXCLUDED.resource, \
                 password_hash = EXCLUDED.password_hash, version = EXCLUDED.version, \
                 created_ns = EXCLUDED.created_ns, modified_ns = EXCLUDED.modified_ns, \
                 created_ms = EXCLUDED.created_ms, modified_ms = EXCLUDED.modified_ms, \
                 data_key = EXCLUDED.data_key",
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
                    &pick(&u.data_key, &old),
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
                let row: [&(dyn ToSql + Sync); 17] = [
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
                    &u.data_key[k],
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
        if !w.retired.0.is_empty() {
            self.query(
                tx,
                "INSERT INTO retired (gen, directory, id) \
                 SELECT $1, * FROM UNNEST($2::text[], $3::uuid[]) ON CONFLICT DO NOTHING",
                &[&gen, &w.retired.0, &w.retired.1],
            )
            .await?;
        }
        let counts: Vec<_> = w.counts.iter().filter(|(_, n)| **n != 0).collect();
        if !counts.is_empty() {
            let dirs: Vec<&str> = counts.iter().map(|((d, _, _), _)| d.as_str()).collect();
            let kinds: Vec<&str> = counts.iter().map(|((_, k, _), _)| *k).collect();
            let owners: Vec<&str> = counts.iter().map(|((_, _, o), _)| o.as_str()).collect();
            let deltas: Vec<i64> = counts.iter().map(|(_, n)| **n).collect();
            self.query(
                tx,
                "INSERT INTO view_counts (gen, directory, kind, owner, n) \
                 SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::int8[]) \
                 ON CONFLICT (gen, directory, kind, owner) DO UPDATE \
                 SET n = view_counts.n + EXCLUDED.n",
                &[&gen, &dirs, &kinds, &owners, &deltas],
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
    pub(super) async fn fold_generation(
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

    pub(super) async fn apply_batch(&self, entries: Vec<LogEntry>) -> Result<(), StoreError> {
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
                "SELECT log_partition, next_position, next_entry, max_time_ms FROM positions \
                 WHERE gen = $1 AND log_partition = ANY($2) FOR UPDATE",
                &[&gen, &partitions],
            )
            .await?;
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
            return self.track(tx.commit().await);
        }
        // Chain heads of the directories in the batch.
        let names: Vec<String> = entries
            .iter()
            .map(|e| e.record.directory.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut heads = self.load_heads(&tx, gen, &names).await?;
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
        let mut writes = Writes::default();
        for (name, records) in valid {
            let mut touched = Touched::default();
            for r in &records {
                for env in &r.events {
                    let id = env.resource_id.0;
                    match &env.event {
                        Event::DirectoryCreated(_)
                        | Event::DirectoryDeleted
                        | Event::MappingCreated(_)
                        | Event::MappingUpdated(_)
                        | Event::MappingDeleted => touched.meta = true,
                        Event::AdminTokenIssued(_) | Event::AdminTokenRevoked(_) => {
                            touched.admin_tokens.insert(id);
                        }
                        Event::SourceCreated(_)
                        | Event::SourceDeleted
                        | Event::SourceTokenIssued(_)
                        | Event::SourceTokenRevoked(_)
                        | Event::SourceSchemaDeclared(_)
                        | Event::SourceMappingsSet(_) => {
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
                        | Event::UserErased(_)
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
                        // In the log for the audit trail; no view holds them.
                        Event::AccessRefused(_) | Event::AuditRead(_) => {}
                    }
                }
            }
            let before = self.load(&tx, gen, &name, &touched).await?;
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
            writes.collect(&DirBatch {
                touched,
                before,
                after,
                retired,
            });
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
        self.track(tx.commit().await)
    }
}
