//! Bulk loading of a rebuilt generation. A rebuild folds the whole log in memory (the memory
//! store's fold, hundreds of thousands of events a second), then writes the result here:
//! COPY into plain tables with no index, the indexes built afterwards on two connections, and
//! the tables attached as the generation's partitions in one transaction together with the
//! positions and chain heads the fold reflects. Maintaining eight b-trees row by row is what
//! limits the incremental fold; building each once from sorted input is several times faster.

use super::generation::Target;
use super::rows::{email_values, member_type_code, to_json};
use super::table_row::{GroupRow, TableRow, UserRow};
use super::PgStore;
use crate::store::{Folded, StoreError};
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

/// The tables of a generation, in the order they are attached.
const TABLES: [&str; 10] = [
    "directories",
    "users",
    "user_emails",
    "groups",
    "group_members",
    "sources",
    "admin_tokens",
    "providers",
    "retired",
    "audit_events",
];

/// One index of a generation's partition, built after the bulk load.
struct Index {
    table: &'static str,
    /// The primary key (built as a unique index, made the key when attached).
    primary: bool,
    columns: &'static str,
}

/// The primary keys and indexes of a generation's partitions, largest first. Each must match
/// its parent's in migrations/ (V3: columns, collations, uniqueness) so that ATTACH PARTITION
/// adopts it instead of building another one; tests/postgres_views.rs checks that every index
/// of a rebuilt partition belongs to a parent index and none is missing.
const INDEXES: &[Index] = &[
    Index {
        table: "users",
        primary: true,
        columns: "(gen, directory, id)",
    },
    Index {
        table: "users",
        primary: false,
        columns: "(user_name_ci COLLATE \"C\", directory)",
    },
    Index {
        table: "users",
        primary: false,
        columns: "(external_id COLLATE \"C\", directory)",
    },
    Index {
        table: "users",
        primary: false,
        columns: "(display_name_ci COLLATE \"C\", directory)",
    },
    Index {
        table: "users",
        primary: false,
        columns: "(owner, directory, id)",
    },
    Index {
        table: "users",
        primary: false,
        columns: "(modified_ms, directory)",
    },
    Index {
        table: "user_emails",
        primary: true,
        columns: "(gen, directory, user_id, value_ci)",
    },
    Index {
        table: "user_emails",
        primary: false,
        columns: "(value_ci COLLATE \"C\", directory)",
    },
    Index {
        table: "group_members",
        primary: true,
        columns: "(gen, directory, group_id, member_id, member_type)",
    },
    Index {
        table: "group_members",
        primary: false,
        columns: "(member_id, directory)",
    },
    Index {
        table: "groups",
        primary: true,
        columns: "(gen, directory, id)",
    },
    Index {
        table: "groups",
        primary: false,
        columns: "(display_name_ci COLLATE \"C\", directory)",
    },
    Index {
        table: "groups",
        primary: false,
        columns: "(external_id COLLATE \"C\", directory)",
    },
    Index {
        table: "groups",
        primary: false,
        columns: "(owner, directory, id)",
    },
    Index {
        table: "sources",
        primary: true,
        columns: "(gen, directory, id)",
    },
    Index {
        table: "sources",
        primary: false,
        columns: "(slug)",
    },
    Index {
        table: "admin_tokens",
        primary: true,
        columns: "(gen, directory, id)",
    },
    Index {
        table: "providers",
        primary: true,
        columns: "(gen, directory, id)",
    },
    Index {
        table: "directories",
        primary: true,
        columns: "(gen, name)",
    },
    Index {
        table: "retired",
        primary: true,
        columns: "(gen, directory, id)",
    },
    // Filled while the rebuild folds (`AuditLoader`), before the rest is copied.
    Index {
        table: "audit_events",
        primary: true,
        columns: "(gen, log_partition, entry)",
    },
    Index {
        table: "audit_events",
        primary: false,
        columns: "(resource, log_partition, entry)",
    },
    Index {
        table: "audit_events",
        primary: false,
        columns: "(actor, log_partition, entry)",
    },
    Index {
        table: "audit_events",
        primary: false,
        columns: "(token, log_partition, entry)",
    },
    Index {
        table: "audit_events",
        primary: false,
        columns: "(correlation, log_partition, entry)",
    },
    Index {
        table: "audit_events",
        primary: false,
        columns: "(log_partition, max_time_ms, entry)",
    },
];

/// Which worker copies a table: the users alone are about as much as the rest.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Users,
    Rest,
}

impl Side {
    fn of(table: &str) -> Side {
        if table == "users" {
            Side::Users
        } else {
            Side::Rest
        }
    }

    fn other(self) -> Side {
        match self {
            Side::Users => Side::Rest,
            Side::Rest => Side::Users,
        }
    }
}

/// The indexes not yet built, per side: a cursor into [`INDEXES`] each.
#[derive(Default)]
struct Queues {
    users: AtomicUsize,
    rest: AtomicUsize,
}

impl Queues {
    /// The next index of `side` nobody has taken yet.
    fn take(&self, side: Side) -> Option<&'static Index> {
        let cursor = match side {
            Side::Users => &self.users,
            Side::Rest => &self.rest,
        };
        let mine: Vec<&'static Index> = INDEXES
            .iter()
            .filter(|i| Side::of(i.table) == side)
            .collect();
        mine.get(cursor.fetch_add(1, Ordering::Relaxed)).copied()
    }
}

/// How many rows a bulk load wrote, per kind.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadCounts {
    pub users: u64,
    pub emails: u64,
    pub groups: u64,
    pub members: u64,
}

/// One COPY ... FROM STDIN BINARY in progress.
struct CopyIn<'a> {
    store: &'a PgStore,
    writer: Pin<Box<BinaryCopyInWriter>>,
}

impl<'a> CopyIn<'a> {
    async fn start(
        store: &'a PgStore,
        client: &deadpool_postgres::Object,
        sql: &str,
        types: &[Type],
    ) -> Result<CopyIn<'a>, StoreError> {
        let sink = store.track(client.copy_in(sql).await)?;
        Ok(CopyIn {
            store,
            writer: Box::pin(BinaryCopyInWriter::new(sink, types)),
        })
    }

    async fn row(&mut self, values: &[&(dyn ToSql + Sync)]) -> Result<(), StoreError> {
        self.store.track(self.writer.as_mut().write(values).await)
    }

    async fn finish(mut self) -> Result<u64, StoreError> {
        self.store.track(self.writer.as_mut().finish().await)
    }
}

impl PgStore {
    /// Loads `folded` (the log folded in memory from position 0) into this rebuild store's
    /// generation, whose tables [`PgStore::building`] created empty and detached; afterwards
    /// the generation is attached and folds like any other, from the positions `folded`
    /// reflects.
    ///
    /// Two workers, each on its own connection: one copies the users, the other everything
    /// else; then each builds the indexes of the tables it copied, and helps with the other's
    /// once they are loaded.
    ///
    /// Fails when the database fails or this is not a rebuild's store; the generation's
    /// tables are then left for the next rebuild to drop.
    pub async fn load_folded(&self, folded: Arc<Folded>) -> Result<LoadCounts, StoreError> {
        let Target::Fixed(gen) = self.target else {
            return Err(StoreError::Conflict("not a rebuild's store".into()));
        };
        let started = Instant::now();
        let queues = Arc::new(Queues::default());
        let (users_done, users_loaded) = watch::channel(false);
        let (rest_done, rest_loaded) = watch::channel(false);
        let users = {
            let (store, folded, queues) = (self.handle(), folded.clone(), queues.clone());
            tokio::spawn(async move {
                let users = store.copy_users(gen, &folded).await?;
                tracing::debug!(seconds = started.elapsed().as_secs_f64(), "users copied");
                let _ = users_done.send(true);
                let counts = LoadCounts {
                    users,
                    ..LoadCounts::default()
                };
                store
                    .index_worker(gen, &queues, Side::Users, rest_loaded)
                    .await?;
                Ok::<_, StoreError>(counts)
            })
        };
        let rest = {
            let (store, folded, queues) = (self.handle(), folded.clone(), queues.clone());
            tokio::spawn(async move {
                let counts = store.copy_rest(gen, &folded).await?;
                tracing::debug!(seconds = started.elapsed().as_secs_f64(), "the rest copied");
                let _ = rest_done.send(true);
                store
                    .index_worker(gen, &queues, Side::Rest, users_loaded)
                    .await?;
                Ok::<_, StoreError>(counts)
            })
        };
        let joined = |r: Result<Result<LoadCounts, StoreError>, tokio::task::JoinError>| {
            r.map_err(|e| StoreError::Refused(format!("bulk load worker: {e}")))?
        };
        let (users, rest) = tokio::join!(users, rest);
        let (users, rest) = (joined(users)?, joined(rest)?);
        let counts = LoadCounts {
            users: users.users,
            ..rest
        };
        let loaded = started.elapsed().as_secs_f64();
        self.attach(gen, &folded).await?;
        // Freeing a million views takes a while: not on an async worker.
        tokio::task::spawn_blocking(move || drop(folded));
        tracing::info!(
            copy_and_index_seconds = loaded,
            attach_seconds = started.elapsed().as_secs_f64() - loaded,
            "bulk load done"
        );
        Ok(counts)
    }

    /// A second handle on the same pool, for a worker task.
    pub(super) fn handle(&self) -> PgStore {
        PgStore {
            pool: self.pool.clone(),
            target: self.target,
            healthy: self.healthy.clone(),
            fold_errors: Default::default(),
            fold_gen: AtomicI32::new(-1),
            cache: None,
            statistics: None,
        }
    }

    async fn copy_users(&self, gen: i32, folded: &Folded) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let sql = UserRow::copy_into(&format!("users_g{gen}"));
        let mut copy = CopyIn::start(self, &client, &sql, &UserRow::copy_types()).await?;
        for (name, dir) in &folded.dirs {
            for u in dir.users.values() {
                copy.row(&UserRow::of(name, u).values(&gen)).await?;
            }
        }
        copy.finish().await
    }

    /// Everything but the users' own rows, on a second connection.
    async fn copy_rest(&self, gen: i32, folded: &Folded) -> Result<LoadCounts, StoreError> {
        let client = self.client().await?;
        let mut counts = LoadCounts::default();
        let (t, u) = (Type::TEXT, Type::UUID);

        let sql = format!(
            "COPY user_emails_g{gen} (gen, directory, user_id, value_ci) FROM STDIN BINARY"
        );
        let types = [Type::INT4, t.clone(), u.clone(), t.clone()];
        let mut copy = CopyIn::start(self, &client, &sql, &types).await?;
        for (name, dir) in &folded.dirs {
            for user in dir.users.values() {
                for value in email_values(user) {
                    copy.row(&[&gen, name, &user.id.0, &value]).await?;
                }
            }
        }
        counts.emails = copy.finish().await?;

        let sql = GroupRow::copy_into(&format!("groups_g{gen}"));
        let mut copy = CopyIn::start(self, &client, &sql, &GroupRow::copy_types()).await?;
        for (name, dir) in &folded.dirs {
            for g in dir.groups.values() {
                copy.row(&GroupRow::of(name, g).values(&gen)).await?;
            }
        }
        counts.groups = copy.finish().await?;

        let sql = format!(
            "COPY group_members_g{gen} (gen, directory, group_id, member_id, member_type) \
             FROM STDIN BINARY"
        );
        let types = [Type::INT4, t.clone(), u.clone(), u.clone(), Type::INT2];
        let mut copy = CopyIn::start(self, &client, &sql, &types).await?;
        for (name, dir) in &folded.dirs {
            for g in dir.groups.values() {
                for m in &g.members {
                    let kind = member_type_code(m.kind);
                    copy.row(&[&gen, name, &g.id.0, &m.value.0, &kind]).await?;
                }
            }
        }
        counts.members = copy.finish().await?;

        let sql = format!("COPY sources_g{gen} (gen, directory, id, slug, view) FROM STDIN BINARY");
        let types = [Type::INT4, t.clone(), u.clone(), t.clone(), t.clone()];
        let mut copy = CopyIn::start(self, &client, &sql, &types).await?;
        for (name, dir) in &folded.dirs {
            for s in dir.sources.values() {
                copy.row(&[&gen, name, &s.id.0, &s.slug, &to_json(s.as_ref())])
                    .await?;
            }
        }
        copy.finish().await?;

        let sql = format!("COPY admin_tokens_g{gen} (gen, directory, id, view) FROM STDIN BINARY");
        let types = [Type::INT4, t.clone(), u.clone(), t.clone()];
        let mut copy = CopyIn::start(self, &client, &sql, &types).await?;
        for (name, dir) in &folded.dirs {
            for (key, token) in dir.admin_tokens_by_key() {
                copy.row(&[&gen, name, &key.0, &to_json(token)]).await?;
            }
        }
        copy.finish().await?;

        let sql = format!("COPY providers_g{gen} (gen, directory, id, view) FROM STDIN BINARY");
        let types = [Type::INT4, t.clone(), u, t.clone()];
        let mut copy = CopyIn::start(self, &client, &sql, &types).await?;
        for (name, dir) in &folded.dirs {
            for p in dir.providers() {
                copy.row(&[&gen, name, &p.id.0, &to_json(p.as_ref())])
                    .await?;
            }
        }
        copy.finish().await?;

        let sql = format!("COPY retired_g{gen} (gen, directory, id) FROM STDIN BINARY");
        let types = [Type::INT4, t.clone(), Type::UUID];
        let mut copy = CopyIn::start(self, &client, &sql, &types).await?;
        for (name, ids) in &folded.retired {
            for id in ids {
                copy.row(&[&gen, name, &id.0]).await?;
            }
        }
        copy.finish().await?;

        let sql = format!("COPY directories_g{gen} (gen, name, meta) FROM STDIN BINARY");
        let types = [Type::INT4, t.clone(), t];
        let mut copy = CopyIn::start(self, &client, &sql, &types).await?;
        for (name, dir) in &folded.dirs {
            let meta = dir.meta().map(to_json);
            copy.row(&[&gen, name, &meta]).await?;
        }
        copy.finish().await?;
        Ok(counts)
    }

    /// Builds the indexes of `side`'s tables, then those of the other side's once its tables
    /// are loaded, until none is left; one of these runs on each side.
    async fn index_worker(
        &self,
        gen: i32,
        queues: &Queues,
        side: Side,
        mut other_loaded: watch::Receiver<bool>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        // Sorting in memory rather than in temporary files; a session setting, reset when
        // the connection goes back to the pool.
        self.track(
            client
                .batch_execute("SET maintenance_work_mem = '256MB'")
                .await,
        )?;
        let result = async {
            for s in [side, side.other()] {
                if s != side && other_loaded.wait_for(|done| *done).await.is_err() {
                    // The other side failed before loading; it reports why.
                    return Ok(());
                }
                while let Some(ix) = queues.take(s) {
                    let (table, unique) = (ix.table, if ix.primary { "UNIQUE " } else { "" });
                    let name = if ix.primary {
                        format!("{table}_g{gen}_pkey")
                    } else {
                        String::new()
                    };
                    // Our own names and integer, never a request's.
                    let sql = format!(
                        "CREATE {unique}INDEX {name} ON {table}_g{gen} {}",
                        ix.columns
                    );
                    let started = Instant::now();
                    self.track(client.batch_execute(&sql).await)?;
                    tracing::debug!(
                        table,
                        columns = ix.columns,
                        seconds = started.elapsed().as_secs_f64(),
                        "index built"
                    );
                }
            }
            Ok(())
        }
        .await;
        self.track(client.batch_execute("RESET maintenance_work_mem").await)?;
        result
    }

    /// Attaches the loaded tables as the generation's partitions and records the positions
    /// and chain heads they reflect, and how many users and groups they hold, in one
    /// transaction.
    async fn attach(&self, gen: i32, folded: &Folded) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = self.track(client.transaction().await)?;
        for table in TABLES {
            // Our own names and integer, never a request's.
            let sql = format!(
                "ALTER TABLE {table}_g{gen} ADD CONSTRAINT {table}_g{gen}_pkey \
                 PRIMARY KEY USING INDEX {table}_g{gen}_pkey; \
                 ALTER TABLE {table} ATTACH PARTITION {table}_g{gen} FOR VALUES IN ({gen})"
            );
            self.track(tx.batch_execute(&sql).await)?;
        }
        let (parts, positions): (Vec<i32>, Vec<i64>) = folded
            .next_positions
            .iter()
            .enumerate()
            .map(|(p, n)| (p as i32, *n as i64))
            .unzip();
        self.track(
            tx.execute(
                // Our own integer in the table's name, never a request's.
                &format!(
                    "INSERT INTO positions \
                       (gen, log_partition, next_position, next_entry, max_time_ms) \
                     SELECT $1, v.p, v.n, \
                       coalesce((SELECT max(entry) + 1 FROM audit_events_g{gen} \
                                 WHERE log_partition = v.p), 0), \
                       (SELECT max(max_time_ms) FROM audit_events_g{gen} \
                        WHERE log_partition = v.p) \
                     FROM UNNEST($2::int4[], $3::int8[]) AS v(p, n)"
                ),
                &[&gen, &parts, &positions],
            )
            .await,
        )?;
        // Our own integer in the tables' names, never a request's.
        let counts = format!(
            "INSERT INTO view_counts (gen, directory, kind, owner, n) \
             SELECT $1::int4, directory, 'user', coalesce(owner, ''), count(*) FROM users_g{gen} \
             GROUP BY directory, coalesce(owner, '') \
             UNION ALL \
             SELECT $1::int4, directory, 'group', coalesce(owner, ''), count(*) FROM groups_g{gen} \
             GROUP BY directory, coalesce(owner, '') \
             ON CONFLICT (gen, directory, kind, owner) DO UPDATE SET n = EXCLUDED.n"
        );
        self.track(tx.execute(&counts, &[&gen]).await)?;
        let heads = super::heads::HeadColumns::of(folded.heads.iter().map(|(d, h)| (d, h)));
        self.track(
            tx.execute(
                super::heads::UPSERT,
                &[&gen, &heads.dirs, &heads.seqs, &heads.ids, &heads.digests],
            )
            .await,
        )?;
        self.track(tx.commit().await)
    }
}
