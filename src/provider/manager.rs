//! The providers this process runs: one consumer per enabled provider, started, restarted
//! with its new configuration, or stopped as the provider views change. Where several
//! processes share PostgreSQL, each provider runs in exactly one of them: the one holding the
//! provider's advisory lock; the others take over when that process goes away.

use super::client::Sent;
use super::lag::LagHistory;
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
    /// Why each provider that does not run here does not, as the status shows it.
    not_here: std::sync::Mutex<HashMap<ResourceId, NotHere>>,
    /// Each provider's lag over the last day, sampled here whether it runs here or not.
    lags: std::sync::Mutex<HashMap<ResourceId, LagHistory>>,
}

/// Why a provider does not run in this process.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
enum NotHere {
    #[error("providers do not run in this process (run_providers = false)")]
    NotInThisProcess,
    #[error("disabled (`enabled: false`)")]
    Disabled,
    #[error(
        "this server's secret key does not open the provider's credentials ({0}): start it \
         with the `secret.key` file or `secret_key` setting the provider was created with, or \
         give the credentials again with `roster provider update`"
    )]
    Sealed(String),
    #[error("another process sharing the database runs it")]
    OtherProcess,
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
            not_here: std::sync::Mutex::new(HashMap::new()),
            lags: std::sync::Mutex::new(HashMap::new()),
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
        let defined = self
            .deps
            .store
            .mappings()
            .await
            .map_err(|e| e.to_string())?;
        let applied = |v: &ProviderView| super::config::applied_mappings(v, &defined);
        let exists: std::collections::HashSet<ResourceId> = views.iter().map(|v| v.id).collect();
        self.sample_lags(&views).await;
        let mut reasons = HashMap::new();
        for v in &views {
            if !self.run {
                reasons.insert(v.id, NotHere::NotInThisProcess);
            } else if !v.config.enabled {
                reasons.insert(v.id, NotHere::Disabled);
            }
        }
        let wanted: HashMap<ResourceId, Arc<ProviderView>> = views
            .into_iter()
            .filter(|v| self.run && v.config.enabled)
            .map(|v| (v.id, v))
            .collect();
        let mut running = self.running.lock().await;
        let ids: Vec<ResourceId> = running.keys().copied().collect();
        for id in ids {
            let keep = match (running.get(&id), wanted.get(&id)) {
                // A changed mapping restarts the consumer, which then runs a full sync.
                (Some(r), Some(v)) => {
                    r.handle.view.config == v.config && r.handle.mappings == applied(v)
                }
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
                reasons.insert(id, NotHere::Sealed(e));
                continue;
            }
            let lock = match &self.pg {
                Some(pg) => match pg.lock_provider(id.0).await {
                    Ok(Some(lock)) => Some(lock),
                    Ok(None) => {
                        reasons.insert(id, NotHere::OtherProcess);
                        continue;
                    }
                    Err(e) => return Err(e.to_string()),
                },
                None => None,
            };
            tracing::info!(provider = %view.config.name, "starting the provider consumer");
            let mappings = applied(&view);
            let handle = runner::spawn(view, mappings, self.deps.clone());
            running.insert(id, Running { handle, lock });
        }
        self.note_reasons(reasons);
        Ok(())
    }

    /// Takes a sample of the lag of each provider in `views` whose sample is due, and forgets
    /// the lag of providers deleted since.
    async fn sample_lags(&self, views: &[Arc<ProviderView>]) {
        let now = std::time::Instant::now();
        let due: Vec<&Arc<ProviderView>> = {
            let mut lags = self.lags.lock().unwrap_or_else(|p| p.into_inner());
            lags.retain(|id, _| views.iter().any(|v| v.id == *id));
            views
                .iter()
                .filter(|v| lags.get(&v.id).is_none_or(|h| h.due(now)))
                .collect()
        };
        for view in due {
            let lag = match self.report(view).await {
                Ok(r) => r.status.lag(self.views_now(view)).1,
                Err(e) => {
                    tracing::debug!(provider = %view.config.name, error = %e, "cannot sample the provider's lag");
                    continue;
                }
            };
            self.lags
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(view.id)
                .or_default()
                .record(chrono::Utc::now(), lag, now);
        }
    }

    /// Provider `id`'s lag in each hour of the last day that was sampled, oldest first.
    pub fn lag_last_day(&self, id: ResourceId) -> Vec<super::lag::LagHour> {
        self.lags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .map(|h| h.last_day(chrono::Utc::now()))
            .unwrap_or_default()
    }

    /// The position the views of `view`'s partition reflect now.
    pub fn views_now(&self, view: &ProviderView) -> u64 {
        self.deps
            .projected
            .get(self.deps.log.partition(&view.directory) as usize)
            .map_or(0, |p| *p.borrow())
    }

    /// Keeps why providers do not run here, logging each reason once, when it first holds
    /// (not at every look, four times a second).
    fn note_reasons(&self, reasons: HashMap<ResourceId, NotHere>) {
        let mut known = self.not_here.lock().unwrap_or_else(|p| p.into_inner());
        for (id, why) in &reasons {
            if known.get(id) == Some(why) {
                continue;
            }
            match why {
                NotHere::Sealed(_) => {
                    tracing::warn!(provider = %id, reason = %why, "provider cannot run here")
                }
                _ => tracing::info!(provider = %id, reason = %why, "provider not running here"),
            }
        }
        *known = reasons;
    }

    /// The status of provider `id`: live if it runs here, else from its saved state.
    ///
    /// Fails when the saved state cannot be read.
    pub async fn report(&self, view: &ProviderView) -> Result<Report, String> {
        let id = view.id;
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
                error: self
                    .not_here
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&id)
                    .map(ToString::to_string),
                position,
                views_position: self.views_now(view),
                pending: progress.pending.iter().filter(|p| !p.parked).count(),
                parked,
                last_full_sync: progress.last_full_sync,
                requests_below: progress.requests_below,
                ..Status::default()
            },
            recent: Vec::new(),
        })
    }
}
