//! The providers this process runs: one consumer per enabled provider, started, restarted
//! with its new configuration, or stopped as the provider views change. Where several
//! processes share PostgreSQL, each provider runs in exactly one of them: the one holding the
//! provider's advisory lock; the others take over when that process goes away.

use super::client::Sent;
use super::runner::{self, Deps, Handle, Status};
use super::state::Progress;
use roster_events::ResourceId;
use roster_projections::pg::{PgStore, ProviderLock};
use roster_projections::ProviderView;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Mutex};

/// How often the provider views are looked at for changes.
const RECONCILE_EVERY: Duration = Duration::from_millis(250);

struct Running {
    handle: Handle,
    /// Held for as long as the consumer runs (PostgreSQL only).
    lock: Option<ProviderLock>,
}

/// Every provider consumer of this process.
pub struct Providers {
    deps: Arc<Deps>,
    /// Set when the views are in PostgreSQL: providers are locked there.
    pg: Option<Arc<PgStore>>,
    /// False when this process must not run providers (settings).
    run: bool,
    running: Mutex<HashMap<ResourceId, Running>>,
}

/// What the status API shows of a provider.
pub struct Report {
    /// Running in this process.
    pub here: bool,
    pub status: Status,
    pub recent: Vec<Sent>,
}

impl Providers {
    pub fn new(deps: Arc<Deps>, pg: Option<Arc<PgStore>>, run: bool) -> Arc<Providers> {
        Arc::new(Providers {
            deps,
            pg,
            run,
            running: Mutex::new(HashMap::new()),
        })
    }

    /// Follows the provider views until `stop` turns true, then stops every consumer (each
    /// saves a checkpoint first).
    pub fn start(self: &Arc<Self>, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = me.reconcile().await {
                    tracing::warn!(error = %e, "cannot read the providers; trying again");
                }
                tokio::select! {
                    _ = tokio::time::sleep(RECONCILE_EVERY) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
            let running: Vec<Running> = me.running.lock().await.drain().map(|(_, r)| r).collect();
            for r in running {
                r.handle.stop().await;
            }
        })
    }

    /// Starts, restarts and stops consumers to match the provider views.
    async fn reconcile(&self) -> Result<(), String> {
        let views = self
            .deps
            .store
            .providers()
            .await
            .map_err(|e| e.to_string())?;
        let exists: std::collections::HashSet<ResourceId> = views.iter().map(|v| v.id).collect();
        let wanted: HashMap<ResourceId, Arc<ProviderView>> = views
            .into_iter()
            .filter(|v| self.run && v.config.enabled)
            .map(|v| (v.id, v))
            .collect();
        let mut running = self.running.lock().await;
        let ids: Vec<ResourceId> = running.keys().copied().collect();
        for id in ids {
            let keep = match (running.get(&id), wanted.get(&id)) {
                (Some(r), Some(v)) => r.handle.view.config == v.config,
                _ => false,
            };
            let lock_lost = match running.get(&id).and_then(|r| r.lock.as_ref()) {
                Some(lock) => !lock.alive().await,
                None => false,
            };
            if !keep || lock_lost {
                if let Some(r) = running.remove(&id) {
                    tracing::info!(provider = %r.handle.view.config.name, "stopping the provider consumer");
                    r.handle.stop().await;
                }
                if !exists.contains(&id) {
                    // Deleted: its consumer saved its last checkpoint; drop the state.
                    if let Err(e) = self.deps.states.forget(id).await {
                        tracing::warn!(error = %e, "cannot delete a deleted provider's state");
                    }
                }
            }
        }
        for (id, view) in wanted {
            if running.contains_key(&id) {
                continue;
            }
            // A replica whose key does not open the credentials leaves the provider to one
            // whose key does (they must share `secret_key`): it neither locks nor runs it.
            if let Err(e) = super::config::open_auth(&view.config, &self.deps.key) {
                tracing::warn!(provider = %view.config.name, error = %e, "cannot run this provider here");
                continue;
            }
            let lock = match &self.pg {
                Some(pg) => match pg.lock_provider(id.0).await {
                    Ok(Some(lock)) => Some(lock),
                    // Another process runs it.
                    Ok(None) => continue,
                    Err(e) => return Err(e.to_string()),
                },
                None => None,
            };
            tracing::info!(provider = %view.config.name, "starting the provider consumer");
            let handle = runner::spawn(view, self.deps.clone());
            running.insert(id, Running { handle, lock });
        }
        Ok(())
    }

    /// The status of provider `id`: live if it runs here, else from its saved state.
    ///
    /// Fails when the saved state cannot be read.
    pub async fn report(&self, id: ResourceId) -> Result<Report, String> {
        if let Some(r) = self.running.lock().await.get(&id) {
            let recent = r
                .handle
                .remote
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|remote| remote.recent())
                .unwrap_or_default();
            return Ok(Report {
                here: true,
                status: r.handle.status(),
                recent,
            });
        }
        let saved = self.deps.states.load(id).await.map_err(|e| e.to_string())?;
        let (position, progress) = match saved {
            Some(s) => (s.next_position, s.progress),
            None => (0, Progress::default()),
        };
        let parked = progress
            .pending
            .iter()
            .filter(|p| p.parked)
            .map(|p| runner::ParkedObject {
                kind: p.key.0,
                id: p.key.1,
                attempts: p.attempts,
                error: p.last_error.clone().unwrap_or_default(),
            })
            .collect();
        Ok(Report {
            here: false,
            status: Status {
                state: "not running here",
                position,
                pending: progress.pending.iter().map(|p| p.changes.len()).sum(),
                parked,
                last_full_sync: progress.last_full_sync,
                ..Status::default()
            },
            recent: Vec::new(),
        })
    }
}
