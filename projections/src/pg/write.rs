//! A fold's writes: what one batch changed ([`Writes`]) into the tables, in the fold's
//! transaction. Each table's statements go in order (the deletes before the rows that replace
//! them), the tables side by side, pipelined on the connection; a few new rows go in one INSERT
//! with the rest, many (a replay's, a rebuild's catch-up) with COPY.

use super::changes::Writes;
use super::table_row::{GroupRow, TableRow, UserRow};
use super::PgStore;
use crate::store::StoreError;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

/// How many new rows of one table a fold writes with COPY rather than INSERT.
const COPY_AT: usize = 256;

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
        w: &Writes<'_>,
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
            let groups: Vec<&GroupRow> = w.groups.iter().collect();
            self.upsert(tx, gen, &groups).await
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
        users: &[(UserRow<'_>, bool)],
    ) -> Result<(), StoreError> {
        let (copy, upsert): (Vec<_>, Vec<_>) =
            if users.iter().filter(|(_, new)| *new).count() >= COPY_AT {
                users.iter().partition(|(_, new)| *new)
            } else {
                (Vec::new(), users.iter().collect())
            };
        let upsert: Vec<&UserRow> = upsert.into_iter().map(|(row, _)| row).collect();
        self.upsert(tx, gen, &upsert).await?;
        if copy.is_empty() {
            return Ok(());
        }
        let stmt = self.track(tx.prepare_cached(&UserRow::copy_into(UserRow::TABLE)).await)?;
        let sink = self.track(tx.copy_in(&stmt).await)?;
        let writer = BinaryCopyInWriter::new(sink, &UserRow::copy_types());
        let mut writer = std::pin::pin!(writer);
        for (row, _) in copy {
            self.track(writer.as_mut().write(&row.values(&gen)).await)?;
        }
        self.track(writer.finish().await)?;
        Ok(())
    }

    /// Inserts `rows` or replaces those with their keys, in one statement (none if `rows` is
    /// empty).
    async fn upsert<R: TableRow>(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        gen: i32,
        rows: &[&R],
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let arrays = R::arrays(rows);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&gen];
        params.extend(arrays.iter().map(|a| &**a as &(dyn ToSql + Sync)));
        self.query(tx, R::upsert(), &params).await?;
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
