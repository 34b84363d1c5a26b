//! The stored state of outbound providers' consumers (migrations V4, V5): per provider its log
//! position and progress document, its map of local id to remote id, and what the remote last
//! answered per object (echoes), written together in one transaction per checkpoint. This is not a view: rebuilds leave it alone. The server's
//! provider module decides what the progress document holds; here it is opaque text.

use super::PgStore;
use crate::store::StoreError;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// One link row: kind (0 user, 1 group), local id, remote id.
pub type LinkRow = (i16, Uuid, String);

/// One echo row: kind, local id, and the fingerprints of what was sent and answered.
pub type EchoRow = (i16, Uuid, i64, i64);

/// A provider's saved state.
#[derive(Debug, Default)]
pub struct SavedProvider {
    pub next_position: u64,
    pub progress: String,
    pub links: Vec<LinkRow>,
    pub echoes: Vec<EchoRow>,
}

/// What one checkpoint writes.
pub struct ProviderCheckpoint<'a> {
    pub provider: Uuid,
    pub directory: &'a str,
    pub partition: u32,
    pub next_position: u64,
    pub progress: &'a str,
    pub linked: &'a [LinkRow],
    pub unlinked: &'a [(i16, Uuid)],
    /// Replace every link with `linked` (a compaction or a fresh start), not only add.
    pub replace_links: bool,
    pub echoed: &'a [EchoRow],
    pub unechoed: &'a [(i16, Uuid)],
}

/// The advisory-lock namespace for provider consumers (an arbitrary constant of Roster's).
const LOCK_SPACE: i32 = 0x526f_7374;

impl PgStore {
    /// The saved state of `provider`, None if it has none.
    ///
    /// Fails when the database cannot be reached.
    pub async fn load_provider(&self, provider: Uuid) -> Result<Option<SavedProvider>, StoreError> {
        let client = self.client().await?;
        let rows = self
            .query(
                &client,
                "SELECT next_position, state FROM provider_state WHERE provider = $1",
                &[&provider],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let links = self
            .query(
                &client,
                "SELECT kind, local_id, remote_id FROM provider_links WHERE provider = $1",
                &[&provider],
            )
            .await?;
        let echoes = self
            .query(
                &client,
                "SELECT kind, local_id, sent, answered FROM provider_echoes WHERE provider = $1",
                &[&provider],
            )
            .await?;
        Ok(Some(SavedProvider {
            next_position: row.get::<_, i64>(0) as u64,
            progress: row.get(1),
            links: links
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect(),
            echoes: echoes
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect(),
        }))
    }

    /// Writes one checkpoint atomically.
    ///
    /// Fails, writing nothing, when the database cannot be reached or the transaction fails.
    pub async fn save_provider(&self, c: ProviderCheckpoint<'_>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = self.track(client.transaction().await)?;
        let position = c.next_position as i64;
        let partition = c.partition as i32;
        let params: [&(dyn ToSql + Sync); 5] = [
            &c.provider,
            &c.directory,
            &partition,
            &position,
            &c.progress,
        ];
        self.query(
            &tx,
            "INSERT INTO provider_state (provider, directory, log_partition, next_position, state) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (provider) DO UPDATE SET \
             directory = EXCLUDED.directory, log_partition = EXCLUDED.log_partition, \
             next_position = EXCLUDED.next_position, state = EXCLUDED.state",
            &params,
        )
        .await?;
        if c.replace_links {
            self.query(
                &tx,
                "DELETE FROM provider_links WHERE provider = $1",
                &[&c.provider],
            )
            .await?;
        }
        if !c.unlinked.is_empty() {
            let kinds: Vec<i16> = c.unlinked.iter().map(|u| u.0).collect();
            let ids: Vec<Uuid> = c.unlinked.iter().map(|u| u.1).collect();
            self.query(
                &tx,
                "DELETE FROM provider_links l USING UNNEST($2::int2[], $3::uuid[]) AS u(kind, id) \
                 WHERE l.provider = $1 AND l.kind = u.kind AND l.local_id = u.id",
                &[&c.provider, &kinds, &ids],
            )
            .await?;
        }
        if !c.linked.is_empty() {
            let kinds: Vec<i16> = c.linked.iter().map(|l| l.0).collect();
            let ids: Vec<Uuid> = c.linked.iter().map(|l| l.1).collect();
            let remotes: Vec<&str> = c.linked.iter().map(|l| l.2.as_str()).collect();
            self.query(
                &tx,
                "INSERT INTO provider_links (provider, kind, local_id, remote_id) \
                 SELECT $1, * FROM UNNEST($2::int2[], $3::uuid[], $4::text[]) \
                 ON CONFLICT (provider, kind, local_id) DO UPDATE SET remote_id = EXCLUDED.remote_id",
                &[&c.provider, &kinds, &ids, &remotes],
            )
            .await?;
        }
        if !c.unechoed.is_empty() {
            let kinds: Vec<i16> = c.unechoed.iter().map(|u| u.0).collect();
            let ids: Vec<Uuid> = c.unechoed.iter().map(|u| u.1).collect();
            self.query(
                &tx,
                "DELETE FROM provider_echoes e USING UNNEST($2::int2[], $3::uuid[]) AS u(kind, id) \
                 WHERE e.provider = $1 AND e.kind = u.kind AND e.local_id = u.id",
                &[&c.provider, &kinds, &ids],
            )
            .await?;
        }
        if !c.echoed.is_empty() {
            let kinds: Vec<i16> = c.echoed.iter().map(|e| e.0).collect();
            let ids: Vec<Uuid> = c.echoed.iter().map(|e| e.1).collect();
            let sent: Vec<i64> = c.echoed.iter().map(|e| e.2).collect();
            let answered: Vec<i64> = c.echoed.iter().map(|e| e.3).collect();
            self.query(
                &tx,
                "INSERT INTO provider_echoes (provider, kind, local_id, sent, answered) \
                 SELECT $1, * FROM UNNEST($2::int2[], $3::uuid[], $4::int8[], $5::int8[]) \
                 ON CONFLICT (provider, kind, local_id) DO UPDATE SET \
                 sent = EXCLUDED.sent, answered = EXCLUDED.answered",
                &[&c.provider, &kinds, &ids, &sent, &answered],
            )
            .await?;
        }
        self.track(tx.commit().await)
    }

    /// Deletes a provider's state (the provider was deleted).
    ///
    /// Fails when the database cannot be reached.
    pub async fn forget_provider(&self, provider: Uuid) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = self.track(client.transaction().await)?;
        self.query(
            &tx,
            "DELETE FROM provider_links WHERE provider = $1",
            &[&provider],
        )
        .await?;
        self.query(
            &tx,
            "DELETE FROM provider_echoes WHERE provider = $1",
            &[&provider],
        )
        .await?;
        self.query(
            &tx,
            "DELETE FROM provider_state WHERE provider = $1",
            &[&provider],
        )
        .await?;
        self.track(tx.commit().await)
    }

    /// Takes the session advisory lock that makes this process the one running `provider`
    /// among every process sharing the database, on a connection held for as long as the
    /// returned guard lives. None when another process holds it.
    ///
    /// Fails when the database cannot be reached.
    pub async fn lock_provider(&self, provider: Uuid) -> Result<Option<ProviderLock>, StoreError> {
        let client = self.client().await?;
        let key = i32::from_be_bytes(provider.as_bytes()[..4].try_into().unwrap_or_default())
            ^ i32::from_be_bytes(provider.as_bytes()[12..].try_into().unwrap_or_default());
        let rows = self
            .query(
                &client,
                "SELECT pg_try_advisory_lock($1, $2)",
                &[&LOCK_SPACE, &key],
            )
            .await?;
        let held: bool = rows.first().map(|r| r.get(0)).unwrap_or(false);
        Ok(held.then(|| ProviderLock {
            client: Some(client),
        }))
    }
}

/// Holds a provider's advisory lock; dropping it releases the lock (the connection is
/// closed rather than returned to the pool, so the session lock cannot linger).
pub struct ProviderLock {
    client: Option<deadpool_postgres::Object>,
}

impl ProviderLock {
    /// Whether the lock's connection still answers (a lost connection lost the lock).
    pub async fn alive(&self) -> bool {
        match &self.client {
            Some(c) => c.simple_query("SELECT 1").await.is_ok(),
            None => false,
        }
    }
}

impl Drop for ProviderLock {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            // Detached from the pool: closing it ends the session and its locks.
            drop(deadpool_postgres::Object::take(c));
        }
    }
}
