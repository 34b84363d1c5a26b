//! Data keys (docs/adr/0014): one per person, sealing their personal data in the log, so that
//! erasing the person is destroying one key. The keys live beside the log, never in it: the
//! log is immutable, a key must be destroyable. With the file log they are files in the data
//! directory ([`file::FileKeys`]); with Kafka, a compacted topic every replica reads
//! ([`kafka::KafkaKeys`]). Each key is stored wrapped under the server's secret key.
//!
//! [`Keyring`] is what the rest of the server uses: the keys this process knows (each
//! unwrapped on first use) for the write path to seal with and for readers to open records with; and a pool of fresh
//! keys made durable ahead of need, so that creating a user never waits for the key store.

pub mod file;
pub mod kafka;
pub mod opening;
pub mod seal;

use crate::sealing::SecretKey;
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use roster_events::personal::{DataKey, KeyState};
use roster_events::{KeyId, Sealed};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

/// How many fresh keys are made durable at once.
const POOL_BATCH: usize = 4096;
/// How long a reader waits for a key that a shared store has not handed over yet.
const KEY_WAIT: Duration = Duration::from_secs(15);

/// Why the key store could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyError {
    /// The store is down or refused the write; nothing changed. Try again later.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
    /// The store holds something unreadable, or a key that does not open with this server's
    /// secret key: an operator must look (restore the key store, or configure the right key).
    #[error("key store damaged: {0}")]
    Damaged(String),
}

/// Where data keys are kept.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Hands every key the store holds, and each it destroyed, to `known`. A store that other
    /// processes write too goes on handing over what they create and destroy until it is
    /// closed. Returns once everything stored before the call has been handed over.
    ///
    /// Fails when the store cannot be read, or holds unreadable data.
    async fn start(&self, known: Arc<Known>) -> Result<(), KeyError>;

    /// Stores fresh keys; returns once they are durable.
    ///
    /// Fails (`Unavailable`) when they could not be made durable.
    async fn create(&self, keys: &[(KeyId, Sealed)]) -> Result<(), KeyError>;

    /// Destroys a key: from the moment this returns, the store answers it as destroyed, and
    /// where the medium allows it its bytes are gone (see each store).
    ///
    /// Fails when the store could not record it; the key then still exists.
    async fn destroy(&self, id: KeyId) -> Result<(), KeyError>;

    /// Whether other processes write this store too: then a key unknown here may yet arrive.
    fn shared(&self) -> bool;

    /// Stops handing over changes.
    async fn close(&self) {}
}

/// A key as this process holds it. Keys are unwrapped when first used, not when loaded, so
/// that start-up does not pay for every person's key (about 3 µs each).
enum Held {
    Wrapped(Sealed),
    Open(DataKey),
    Destroyed,
}

/// The data keys this process knows: wrapped, unwrapped, or destroyed.
pub struct Known {
    secret: SecretKey,
    keys: RwLock<HashMap<KeyId, Held>>,
    /// Whether a key has been seen to open with `secret` (the first one learnt is opened at
    /// once, so that a store wrapped under another secret key is refused at start).
    checked: AtomicBool,
    learnt: Notify,
}

impl Known {
    fn new(secret: SecretKey) -> Known {
        Known {
            secret,
            keys: RwLock::default(),
            checked: AtomicBool::new(false),
            learnt: Notify::new(),
        }
    }

    /// Takes in a key as its store holds it (`None`: destroyed). A destroyed key stays
    /// destroyed whatever arrives later.
    ///
    /// Fails when the first key learnt does not open with this server's secret key.
    pub fn learn(&self, id: KeyId, wrapped: Option<&Sealed>) -> Result<(), KeyError> {
        let held = match wrapped {
            None => Held::Destroyed,
            Some(w) if !self.checked.load(Ordering::Acquire) => {
                let key = unwrap(&self.secret, id, w)?;
                self.checked.store(true, Ordering::Release);
                Held::Open(key)
            }
            Some(w) => Held::Wrapped(w.clone()),
        };
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if !matches!(keys.get(&id), Some(Held::Destroyed)) {
            keys.insert(id, held);
        }
        drop(keys);
        self.learnt.notify_waiters();
        Ok(())
    }

    fn state(&self, id: KeyId) -> KeyState {
        let wrapped = match self.keys.read().unwrap_or_else(|p| p.into_inner()).get(&id) {
            Some(Held::Open(k)) => return KeyState::Key(k.clone()),
            Some(Held::Destroyed) => return KeyState::Erased,
            None => return KeyState::Unknown,
            Some(Held::Wrapped(w)) => w.clone(),
        };
        match unwrap(&self.secret, id, &wrapped) {
            Ok(key) => {
                let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
                if matches!(keys.get(&id), Some(Held::Wrapped(_))) {
                    keys.insert(id, Held::Open(key.clone()));
                }
                KeyState::Key(key)
            }
            Err(e) => {
                // Readers then name the record whose key the store does not hold.
                tracing::error!(error = %e, "a data key in the key store is damaged");
                KeyState::Unknown
            }
        }
    }

    fn set(&self, id: KeyId, held: Held) {
        self.keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, held);
    }

    fn count(&self) -> (usize, usize) {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let destroyed = keys
            .values()
            .filter(|k| matches!(k, Held::Destroyed))
            .count();
        (keys.len() - destroyed, destroyed)
    }
}

fn wrap(secret: &SecretKey, key: &DataKey) -> Sealed {
    secret.seal(&STANDARD.encode(key.as_bytes()))
}

fn unwrap(secret: &SecretKey, id: KeyId, wrapped: &Sealed) -> Result<DataKey, KeyError> {
    let damaged = |why: &str| KeyError::Damaged(format!("data key {id} {why}"));
    let text = secret.open(wrapped).map_err(|_| {
        damaged(
            "does not open with this server's secret key: the keys were wrapped by a \
                 server with another one (every process on one log must share secret_key, and \
                 a restored data directory needs its secret.key)",
        )
    })?;
    let bytes = STANDARD
        .decode(text.expose())
        .map_err(|_| damaged("is malformed"))?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| damaged("is not 32 bytes"))?;
    Ok(DataKey::from_bytes(bytes))
}

/// The keys of this process and the store they are kept in.
pub struct Keyring {
    store: Arc<dyn KeyStore>,
    known: Arc<Known>,
    /// Fresh keys, durable in the store and given to no one yet.
    pool: Mutex<Vec<KeyId>>,
    /// Held while a batch of fresh keys is made durable.
    refill: tokio::sync::Mutex<()>,
    /// Whether a background refill is under way.
    refilling: AtomicBool,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(..)")
    }
}

impl Keyring {
    /// The keyring over `store`, with every key the store holds.
    ///
    /// Fails when the store cannot be read, or holds a key that does not open with `secret`.
    pub async fn open(store: Arc<dyn KeyStore>, secret: SecretKey) -> Result<Keyring, KeyError> {
        let known = Arc::new(Known::new(secret));
        store.start(known.clone()).await?;
        let (live, destroyed) = known.count();
        tracing::info!(keys = live, destroyed, "data keys loaded");
        Ok(Keyring {
            store,
            known,
            pool: Mutex::default(),
            refill: tokio::sync::Mutex::new(()),
            refilling: AtomicBool::new(false),
        })
    }

    /// What this process knows of `id` now.
    pub fn state(&self, id: KeyId) -> KeyState {
        self.known.state(id)
    }

    /// What the store says of `id`, waiting a while for a shared store to hand over a key
    /// another process created (it was durable before any record sealed with it was written,
    /// so it arrives).
    ///
    /// Fails when the key does not arrive in time: the store lags or lost it.
    pub async fn state_waiting(&self, id: KeyId) -> Result<KeyState, KeyError> {
        let deadline = tokio::time::Instant::now() + KEY_WAIT;
        loop {
            let learnt = self.known.learnt.notified();
            match self.known.state(id) {
                KeyState::Unknown if self.store.shared() => {}
                state => return Ok(state),
            }
            if tokio::time::timeout_at(deadline, learnt).await.is_err() {
                return Err(KeyError::Unavailable(format!(
                    "data key {id} has not arrived from the key store"
                )));
            }
        }
    }

    /// `n` fresh keys, each for one new person. The pool is refilled in the background once
    /// it is half empty, so a writer waits for the store only when it takes keys faster than
    /// a batch is made durable (and once, for the first batch).
    ///
    /// Fails when the store cannot take new keys.
    pub async fn take(self: &Arc<Self>, n: usize) -> Result<Vec<KeyId>, KeyError> {
        loop {
            {
                let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
                if pool.len() >= n {
                    let at = pool.len() - n;
                    let taken = pool.split_off(at);
                    if pool.len() < POOL_BATCH / 2 {
                        self.refill_in_background();
                    }
                    return Ok(taken);
                }
            }
            self.refill(n).await?;
        }
    }

    fn refill_in_background(self: &Arc<Self>) {
        if self.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let ring = self.clone();
        tokio::spawn(async move {
            if let Err(e) = ring.refill(POOL_BATCH / 2).await {
                // The next writer that runs short tries again, and answers 503 if it fails.
                tracing::warn!(error = %e, "could not make fresh data keys durable");
            }
            ring.refilling.store(false, Ordering::Release);
        });
    }

    /// Makes a batch of fresh keys durable unless the pool holds `at_least` already.
    async fn refill(&self, at_least: usize) -> Result<(), KeyError> {
        let _one = self.refill.lock().await;
        if self.pool.lock().unwrap_or_else(|p| p.into_inner()).len() >= at_least {
            return Ok(());
        }
        let fresh: Vec<(KeyId, DataKey)> = (0..POOL_BATCH.max(at_least))
            .map(|_| (KeyId::new(), DataKey::generate()))
            .collect();
        let wrapped: Vec<(KeyId, Sealed)> = fresh
            .iter()
            .map(|(id, k)| (*id, wrap(&self.known.secret, k)))
            .collect();
        self.store.create(&wrapped).await?;
        {
            let mut keys = self.known.keys.write().unwrap_or_else(|p| p.into_inner());
            for (id, k) in &fresh {
                keys.insert(*id, Held::Open(k.clone()));
            }
        }
        // Fresh keys go under the ones left, which are taken first.
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let left = std::mem::take(&mut *pool);
        pool.extend(fresh.into_iter().map(|(id, _)| id));
        pool.extend(left);
        Ok(())
    }

    /// Destroys `id` in the store and in this process.
    ///
    /// Fails when the store could not record it.
    pub async fn destroy(&self, id: KeyId) -> Result<(), KeyError> {
        self.store.destroy(id).await?;
        self.known.set(id, Held::Destroyed);
        Ok(())
    }

    pub async fn close(&self) {
        self.store.close().await;
    }
}

/// Keys kept in this process's memory only: for tests and tools whose log lives no longer
/// than the process.
struct InMemory;

#[async_trait]
impl KeyStore for InMemory {
    async fn start(&self, _: Arc<Known>) -> Result<(), KeyError> {
        Ok(())
    }
    async fn create(&self, _: &[(KeyId, Sealed)]) -> Result<(), KeyError> {
        Ok(())
    }
    async fn destroy(&self, _: KeyId) -> Result<(), KeyError> {
        Ok(())
    }
    fn shared(&self) -> bool {
        false
    }
}

impl Keyring {
    /// A keyring whose keys live in this process's memory only (for tests and tools).
    pub fn in_memory(secret: SecretKey) -> Keyring {
        Keyring {
            store: Arc::new(InMemory),
            known: Arc::new(Known::new(secret)),
            pool: Mutex::default(),
            refill: tokio::sync::Mutex::new(()),
            refilling: AtomicBool::new(false),
        }
    }
}
