//! A fold's writes: what one batch changed ([`Writes`]) into the tables, in the fold's
//! transaction. Each table's statements go in order (the deletes before the rows that replace
//! them), the tables side by side, pipelined on the connection; a few new rows go in one INSERT
//! with the rest, many (a replay's, a rebuild's catch-up) with COPY.

use super::changes::Writes;
use super::rows::{pick, UserRows, USER_COPY};
use super::PgStore;
use crate::store::StoreError;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

/// How many new rows of one table a fold writes with COPY rather than INSERT.
const COPY_AT: usize = 256;

/// Inserts users or replaces them (`$1` the generation, then one array per column).
const USER_UPSERT: &str = "INSERT INTO users (gen, directory, id, owner, user_name, \
     user_name_ci, display_name, display_name_ci, external_id, resource, password_hash, version, \
     created_ns, modified_ns, created_ms, modified_ms, data_key) \
     SELECT $1, * FROM UNNEST($2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[], \
     $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int8[], $13::int8[], \
     $14::int8[], $15::int8[], $16::int8[], $17::uuid[]) \
     ON CONFLICT (gen, directory, id) DO UPDATE SET owner = EXCLUDED.owner, \
     user_name = EXCLUDED.user_name, user_name_ci = EXCLUDED.user_name_ci, \
     display_name = EXCLUDED.display_name, display_name_ci = EXCLUDED.display_name_ci, \
     external_id = EXCLUDED.external_id, resource = EXCLUDED.resource, \
     password_hash = EXCLUDED.password_hash, version = EXCLUDED.version, \
     created_ns = EXCLUDED.created_ns, modified_ns = EXCLUDED.modified_ns, \
     created_ms = EXCLUDED.created_ms, modified_ms = EXCLUDED.modified_ms, \
     data_key = EXCLUDED.data_key";

/// Inserts groups or replaces them (`$1` the generation, then one array per column).
const GROUP_UPSERT: &str = "INSERT INTO groups (gen, directory, id, owner, display_name, \
     display_name_ci, external_id, resource, version, created_ns, modified_ns, created_ms, \
     modified_ms) \
     SELECT $1, * FROM UNNEST($2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[], \
     $7::text[], $8::text[], $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::int8[]) \
     ON CONFLICT (gen, directory, id) DO UPDATE SET owner = EXCLUDED.owner, \
     display_name = EXCLUDED.display_name, display_name_ci = EXCLUDED.display_name_ci, \
     external_id = EXCLUDED.external_id, resource = EXCLUDED.resource, \
     version = EXCLUDED.version, created_ns = EXCLUDED.created_ns, \
     modified_ns = EXCLUDED.modified_ns, created_ms = EXCLUDED.created_ms, \
     modified_ms = EXCLUDED.modified_ms";

impl PgStore {
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

    /// Writes a batch's changes: each table's statements in order (the deletes before the
    /// rows that replace them), the tables side by side, pipelined on the transaction's
    /// connection.
    pub(super) async fn write(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        gen: i32,
        w: &Writes,
    ) -> Result<(), StoreError> {
        let users = async {
            self.delete_keys(tx, gen, "users", "id", &w.user_del)
                .await?;
            self.write_users(tx, gen, &w.users).await
        };
        let emails = async {
            self.delete_keys(tx, gen, "user_emails", "user_id", &w.email_del)
                .await?;
            self.write_emails(tx, gen, &w.emails).await
        };
        let groups = async {
            self.delete_keys(tx, gen, "groups", "id", &w.group_del)
                .await?;
            let g = &w.groups;
            self.run_if(
                tx,
                !g.id.is_empty(),
                GROUP_UPSERT,
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
            .await
        };
        let members = async {
            self.delete_keys(tx, gen, "group_members", "group_id", &w.member_group_del)
                .await?;
            let d = &w.member_del;
            self.run_if(
                tx,
                !d.0.is_empty(),
                "DELETE FROM group_members WHERE gen = $1 AND \
                 (directory, group_id, member_id, member_type) IN \
                 (SELECT * FROM UNNEST($2::text[], $3::uuid[], $4::uuid[], $5::int2[]))",
                &[&gen, &d.0, &d.1, &d.2, &d.3],
            )
            .await?;
            let m = &w.members;
            self.run_if(
                tx,
                !m.0.is_empty(),
                "INSERT INTO group_members (gen, directory, group_id, member_id, member_type) \
                 SELECT $1, * FROM UNNEST($2::text[], $3::uuid[], $4::uuid[], $5::int2[]) \
                 ON CONFLICT DO NOTHING",
                &[&gen, &m.0, &m.1, &m.2, &m.3],
            )
            .await
        };
        let sources = async {
            self.delete_keys(tx, gen, "sources", "id", &w.source_del)
                .await?;
            let s = &w.sources;
            self.run_if(
                tx,
                !s.0.is_empty(),
                "INSERT INTO sources (gen, directory, id, slug, view) \
                 SELECT $1, * FROM UNNEST($2::text[], $3::uuid[], $4::text[], $5::text[]) \
                 ON CONFLICT (gen, directory, id) DO UPDATE SET slug = EXCLUDED.slug, \
                 view = EXCLUDED.view",
                &[&gen, &s.0, &s.1, &s.2, &s.3],
            )
            .await
        };
        let admin_tokens =
            self.replace_views(tx, gen, "admin_tokens", &w.admin_token_del, &w.admin_tokens);
        let providers = self.replace_views(tx, gen, "providers", &w.provider_del, &w.providers);
        let retired = async {
            self.run_if(
                tx,
                !w.retired.0.is_empty(),
                "INSERT INTO retired (gen, directory, id) \
                 SELECT $1, * FROM UNNEST($2::text[], $3::uuid[]) ON CONFLICT DO NOTHING",
                &[&gen, &w.retired.0, &w.retired.1],
            )
            .await
        };
        let counts: Vec<_> = w.counts.iter().filter(|(_, n)| **n != 0).collect();
        let dirs: Vec<&str> = counts.iter().map(|((d, _, _), _)| d.as_str()).collect();
        let kinds: Vec<&str> = counts.iter().map(|((_, k, _), _)| *k).collect();
        let owners: Vec<&str> = counts.iter().map(|((_, _, o), _)| o.as_str()).collect();
        let deltas: Vec<i64> = counts.iter().map(|(_, n)| **n).collect();
        let counts = async {
            self.run_if(
                tx,
                !deltas.is_empty(),
                "INSERT INTO view_counts (gen, directory, kind, owner, n) \
                 SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::int8[]) \
                 ON CONFLICT (gen, directory, kind, owner) DO UPDATE \
                 SET n = view_counts.n + EXCLUDED.n",
                &[&gen, &dirs, &kinds, &owners, &deltas],
            )
            .await
        };
        let meta = async {
            self.run_if(
                tx,
                !w.meta.0.is_empty(),
                "INSERT INTO directories (gen, name, meta) \
                 SELECT $1, * FROM UNNEST($2::text[], $3::text[]) \
                 ON CONFLICT (gen, name) DO UPDATE SET meta = EXCLUDED.meta",
                &[&gen, &w.meta.0, &w.meta.1],
            )
            .await
        };
        tokio::try_join!(
            users,
            emails,
            groups,
            members,
            sources,
            admin_tokens,
            providers,
            retired,
            counts,
            meta
        )?;
        Ok(())
    }

    /// Deletes the rows of `table` (one JSON view per directory and id) that `deleted` names,
    /// then inserts or replaces those of `rows`.
    async fn replace_views(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        gen: i32,
        table: &str,
        deleted: &(Vec<String>, Vec<Uuid>),
        rows: &(Vec<String>, Vec<Uuid>, Vec<String>),
    ) -> Result<(), StoreError> {
        self.delete_keys(tx, gen, table, "id", deleted).await?;
        let sql = format!(
            "INSERT INTO {table} (gen, directory, id, view) \
             SELECT $1, * FROM UNNEST($2::text[], $3::uuid[], $4::text[]) \
             ON CONFLICT (gen, directory, id) DO UPDATE SET view = EXCLUDED.view"
        );
        self.run_if(
            tx,
            !rows.0.is_empty(),
            &sql,
            &[&gen, &rows.0, &rows.1, &rows.2],
        )
        .await
    }

    /// Runs `sql` when `needed`.
    async fn run_if(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        needed: bool,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<(), StoreError> {
        if needed {
            self.query(tx, sql, params).await?;
        }
        Ok(())
    }

    /// Writes users: a few in one statement, pipelined with the batch's others; new rows in
    /// number (a replay's, a rebuild's catch-up) with COPY, several times faster than INSERT,
    /// but two round trips of its own that hold up the statements behind it. New rows cannot
    /// conflict (the batch's load showed they do not exist).
    async fn write_users(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        gen: i32,
        u: &UserRows,
    ) -> Result<(), StoreError> {
        let all = 0..u.id.len();
        let (upsert, copy): (Vec<usize>, Vec<usize>) =
            if u.new.iter().filter(|n| **n).count() >= COPY_AT {
                all.partition(|&i| !u.new[i])
            } else {
                (all.collect(), Vec::new())
            };
        if !upsert.is_empty() {
            let at = &upsert;
            self.query(
                tx,
                USER_UPSERT,
                &[
                    &gen,
                    &pick(&u.dir, at),
                    &pick(&u.id, at),
                    &pick(&u.owner, at),
                    &pick(&u.user_name, at),
                    &pick(&u.user_name_ci, at),
                    &pick(&u.display_name, at),
                    &pick(&u.display_name_ci, at),
                    &pick(&u.external_id, at),
                    &pick(&u.resource, at),
                    &pick(&u.password_hash, at),
                    &pick(&u.version, at),
                    &pick(&u.created_ns, at),
                    &pick(&u.modified_ns, at),
                    &pick(&u.created_ms, at),
                    &pick(&u.modified_ms, at),
                    &pick(&u.data_key, at),
                ],
            )
            .await?;
        }
        if copy.is_empty() {
            return Ok(());
        }
        let sql = format!("COPY users {} FROM STDIN BINARY", USER_COPY.0);
        let stmt = self.track(tx.prepare_cached(&sql).await)?;
        let sink = self.track(tx.copy_in(&stmt).await)?;
        let writer = BinaryCopyInWriter::new(sink, &USER_COPY.1);
        let mut writer = std::pin::pin!(writer);
        for k in copy {
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
        Ok(())
    }

    /// Writes users' emails (each user's whole, after its old ones were deleted: all new), as
    /// [`PgStore::write_users`] writes new users.
    async fn write_emails(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        gen: i32,
        emails: &(Vec<String>, Vec<Uuid>, Vec<String>),
    ) -> Result<(), StoreError> {
        let (dirs, ids, values) = emails;
        if dirs.len() < COPY_AT {
            return self
                .run_if(
                    tx,
                    !dirs.is_empty(),
                    "INSERT INTO user_emails (gen, directory, user_id, value_ci) \
                     SELECT $1, * FROM UNNEST($2::text[], $3::uuid[], $4::text[])",
                    &[&gen, dirs, ids, values],
                )
                .await;
        }
        let stmt = self.track(
            tx.prepare_cached(
                "COPY user_emails (gen, directory, user_id, value_ci) FROM STDIN BINARY",
            )
            .await,
        )?;
        let sink = self.track(tx.copy_in(&stmt).await)?;
        let types = [Type::INT4, Type::TEXT, Type::UUID, Type::TEXT];
        let writer = BinaryCopyInWriter::new(sink, &types);
        let mut writer = std::pin::pin!(writer);
        for k in 0..dirs.len() {
            let row: [&(dyn ToSql + Sync); 4] = [&gen, &dirs[k], &ids[k], &values[k]];
            self.track(writer.as_mut().write(&row).await)?;
        }
        self.track(writer.finish().await)?;
        Ok(())
    }
}
