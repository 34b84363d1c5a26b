//! Generations and the blue/green swap: a rebuild folds a new generation under a session
//! advisory lock, and the swap makes it active once it has caught up with the active one.

use super::{PgOptions, PgStore, REBUILD_LOCK};
use crate::store::StoreError;
use std::collections::HashMap;

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
            return Err(StoreError::Conflict("not a rebuild's store".into()));
        };
        let Some(client) = self.client.as_ref() else {
            return Err(StoreError::Conflict("swap already ended".into()));
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
            return Err(StoreError::Conflict(format!(
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
pub(super) enum Target {
    /// The active generation, whichever it is at the time of each statement.
    Active,
    /// One fixed generation (a rebuild's).
    Fixed(i32),
}

impl PgStore {
    /// A store that folds into a new generation, for a rebuild: takes the rebuild lock (one
    /// rebuild at a time, across processes), drops what a crashed rebuild left, and creates
    /// the new generation's tables, empty and not yet attached: [`PgStore::load_folded`]
    /// fills and attaches them, and only then does the store fold and read. The active
    /// generation keeps serving meanwhile.
    ///
    /// Fails when the database cannot be reached or another rebuild holds the lock.
    pub async fn building(opts: &PgOptions) -> Result<(PgStore, RebuildLock), StoreError> {
        let setup = PgStore::connect(opts, Target::Active)?;
        setup.migrate(refinery::Target::Latest).await?;
        let lock = setup.client().await?;
        let got: bool = setup
            .track(
                lock.query_one("SELECT pg_try_advisory_lock($1)", &[&REBUILD_LOCK])
                    .await,
            )?
            .get(0);
        if !got {
            return Err(StoreError::Conflict("another rebuild is running".into()));
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

    /// The generation this store folds into and reads.
    pub fn generation(&self) -> Option<i32> {
        match self.target {
            Target::Fixed(g) => Some(g),
            Target::Active => None,
        }
    }
}
