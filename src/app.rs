//! Start-up and shutdown: opens the log, replays it into the views, starts the projector and
//! the writers, bootstraps the `default` directory on first start, binds the listener, and
//! serves until SIGTERM or ctrl-c, draining in-flight requests (and so in-flight writes).

use crate::audit::Audit;
use crate::auth::{self, Secret};
use crate::config::{LogBackend, Settings, StoreBackend};
use crate::domain::{Command, Context, DomainError, NewToken};
use crate::http::{self, AppState};
use crate::keys::file::FileKeys;
use crate::keys::kafka::KafkaKeys;
use crate::keys::opening::OpeningLog;
use crate::keys::seal::RecordSealer;
use crate::keys::{KeyStore, Keyring};
use crate::log::{EventLog, FileLog, FileLogOptions, KafkaLog};
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, PipelineStop, WriteError, Writers};
use crate::provider::config::Tuning;
use crate::provider::manager::Providers;
use crate::provider::retry::Backoff;
use crate::provider::runner::Deps;
use crate::provider::state::{FileStateStore, PgStateStore, StateStore};
use crate::sealing::SecretKey;
use crate::snapshot::{Opened, Snapshots};
use anyhow::Context as _;
use roster_events::{Actor, ResourceId, DEFAULT_DIRECTORY};
use roster_projections::pg::PgStore;
use roster_projections::{MemoryStore, ProjectionStore};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// What first start created; the tokens are shown once and never again.
pub struct FirstStart {
    pub admin_token: Secret,
    pub source_token: Secret,
    pub scim_base_url: String,
}

/// A built, not yet serving, Roster.
pub struct Application {
    listener: TcpListener,
    tls: Option<crate::http::tls::Tls>,
    state: AppState,
    log: Arc<dyn EventLog>,
    keys: Arc<Keyring>,
    pipeline: PipelineStop,
    providers: (
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ),
    /// Records the counts of refused requests and audit reads when their windows end.
    access: tokio::task::JoinHandle<()>,
    /// Views in memory: their snapshots.
    snapshots: Option<crate::snapshot::Running>,
    pub first_start: Option<FirstStart>,
    /// How many log records start-up replayed (after the view snapshot, if one was loaded).
    pub replayed: u64,
}

/// The shortest configured admin token accepted: guessable tokens are refused at start.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 24;

impl Application {
    /// Builds everything and binds the listener (port 0 picks a free port).
    ///
    /// Fails when the data directory cannot be opened or locked, the log is damaged beyond its
    /// torn tail, or the address cannot be bound.
    pub async fn build(mut settings: Settings) -> anyhow::Result<Application> {
        if let Some(t) = &settings.admin_token {
            let n = t.expose().chars().count();
            anyhow::ensure!(
                n >= MIN_ADMIN_TOKEN_CHARS,
                "admin_token (ROSTER_ADMIN_TOKEN, --admin-token) is {n} characters: use at least \
                 {MIN_ADMIN_TOKEN_CHARS} random ones, e.g. `openssl rand -base64 32`"
            );
        }
        // A certificate that does not load stops start-up before anything else is opened.
        let tls = match settings.tls_files()? {
            Some(files) => Some(crate::http::tls::Tls::load(
                files,
                settings.tls_admin_client_ca.as_deref(),
            )?),
            None => None,
        };
        crate::datadir::create_dir(&settings.data_dir)
            .with_context(|| format!("creating {}", settings.data_dir.display()))?;
        let secret_key = SecretKey::load(settings.secret_key.as_ref(), &settings.data_dir)
            .context("loading the secret key")?;
        let raw_log = open_log(&settings).await?;
        let metrics = Metrics::new();
        let started = Instant::now();
        // The data keys and the views are loaded side by side: neither needs the other (a
        // view snapshot's check reads record headers, which are never sealed).
        let (keys, views) = tokio::join!(
            open_keys(&settings, &secret_key),
            open_views(&settings, &secret_key, &raw_log, &metrics)
        );
        let (keys, (store, pg, memory)) = (keys?, views?);
        let log = OpeningLog::wrap(raw_log, keys.clone());
        let sealer = RecordSealer::new(secret_key.chain_key(), keys.clone());
        let mut pipeline =
            Pipeline::start(log.clone(), store.clone(), Some(metrics.clone()), sealer)
                .await
                .context("replaying the event log")?;
        tracing::info!(
            entries = pipeline.replayed,
            partitions = log.partitions(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "replayed the event log"
        );
        let (providers_stop, providers_stopped) = tokio::sync::watch::channel(false);
        let (snapshots, audit_snapshots) = match memory {
            Some(m) => {
                let running = crate::snapshot::Running::start(
                    m.snapshots,
                    m.store,
                    providers_stop.subscribe(),
                );
                let audit = AuditSnapshot {
                    adder: running.adder(),
                    snapshots: m.audit,
                    opened: m.audit_opened,
                };
                (Some(running), Some(audit))
            }
            None => (None, None),
        };
        let replayed = pipeline.replayed;
        let stopper = pipeline.stopper();
        // With the views in PostgreSQL, their fold writes the audit projection; in memory,
        // the audit index takes what the projectors read.
        let taps = pg.is_none().then(|| pipeline.taps());
        let writers = pipeline.writers;
        let projected = pipeline.projected;
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        let addr = listener.local_addr()?;
        if tls.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "serving plain HTTP on an address other machines reach: bearer tokens cross the \
                 network in clear; set tls_cert and tls_key, or put a TLS proxy in front"
            );
        }
        // The address really bound (a port 0 asks for any), for the URLs Roster shows.
        settings.listen = addr;
        let directories = store.directories().await?;
        let first_start = if directories.is_empty() {
            bootstrap(&writers, &settings, addr).await?
        } else {
            None
        };
        // Each writer starts from a copy of its directory's views and indexes (1.3-1.8 s per
        // million users on the benchmark machine): pay that at start-up, not in some client's
        // first write.
        let writers_started = Instant::now();
        for dir in &directories {
            writers.get(dir).await?;
        }
        tracing::info!(
            directories = directories.len(),
            elapsed_ms = writers_started.elapsed().as_millis() as u64,
            "started the writers"
        );
        let deps = provider_deps(
            &settings,
            &log,
            &store,
            &pg,
            &projected,
            &metrics,
            secret_key.clone(),
        );
        let providers = Providers::new(deps, pg.clone(), settings.run_providers);
        let providers_task = providers.start(providers_stopped);
        let audit = match (&pg, taps) {
            (Some(pg), _) => Audit::on_postgres(log.clone(), pg.clone(), projected.clone()),
            (None, taps) => {
                let audit = Audit::new(log.clone());
                let (taps, stop) = (taps.unwrap_or_default(), providers_stop.subscribe());
                match audit_snapshots {
                    Some(snapshots) => follow_from_snapshot(&audit, snapshots, taps, stop),
                    None => audit.follow_projectors(taps, stop),
                }
                audit
            }
        };
        audit.set_scan_limit(settings.audit_scan_limit);
        if let Some(pg) = &pg {
            for (partition, first) in pg.audit_gaps().await? {
                tracing::warn!(
                    partition,
                    first,
                    "the audit trail in PostgreSQL starts at this position: the views were \
                     folded before it existed; run `roster rebuild` to fold the history before it"
                );
            }
        }
        let access = crate::audit::access::AccessLog::new(
            writers.clone(),
            Duration::from_millis(settings.audit_count_window_ms),
        );
        let access_task = access.start(providers_stop.subscribe());
        let state = AppState::new(crate::http::Shared {
            passwords: settings.password_hasher(),
            rates: crate::http::SourceRates::new(
                settings.source_rate_per_second,
                settings.source_rate_burst,
            ),
            store,
            providers,
            secret_key,
            writers,
            admin_token_hash: settings
                .admin_token
                .as_ref()
                .map(|t| auth::hash(t.expose())),
            settings: Arc::new(settings),
            projected,
            log: log.clone(),
            metrics,
            rebuilds: Default::default(),
            audit: audit.clone(),
            access,
            keys: keys.clone(),
            sessions: Default::default(),
        });
        Ok(Application {
            listener,
            tls,
            state,
            log,
            keys,
            pipeline: stopper,
            providers: (providers_stop, providers_task),
            access: access_task,
            snapshots,
            first_start,
            replayed,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has an address.
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until SIGTERM or ctrl-c, then drains in-flight requests.
    ///
    /// Fails if the server itself fails (not on a request error).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then drains in-flight requests.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let limits = self.state.settings.connection_limits();
        let reload_every = Duration::from_millis(self.state.settings.tls_reload_ms.max(100));
        let router = http::router(self.state);
        let (tls_stop, tls_stopped) = tokio::sync::watch::channel(false);
        if let Some(tls) = &self.tls {
            tls.watch(reload_every, tls_stopped);
        }
        let acceptor = self.tls.map(|t| t.acceptor);
        http::serve::serve(self.listener, router, limits, acceptor, stop).await?;
        let _ = tls_stop.send(true);
        // In-flight requests are done: the providers save their checkpoints and stop; running
        // batches finish, then the projectors stop following the log, so that the log is
        // closed (and its lock released) when this returns.
        let _ = self.providers.0.send(true);
        let _ = self.providers.1.await;
        // The counts of windows still open are recorded before the log closes.
        let _ = self.access.await;
        self.pipeline.stop().await;
        // The views are final: a last snapshot makes the next start replay nothing.
        if let Some(snapshots) = self.snapshots {
            snapshots.finish().await;
        }
        // Some connection tasks may still hold the router (and so the log) for a moment:
        // close the log explicitly rather than wait for the last reference to go.
        self.log.close().await;
        self.keys.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// In the background: reads the audit index's snapshot (if start-up found a usable one),
/// installs it, then starts the index's followers from where it leaves off and writes the
/// index's snapshots from then on. Audit queries answer 503 until the index has caught up.
fn follow_from_snapshot(
    audit: &Arc<Audit>,
    from: AuditSnapshot,
    taps: Vec<crate::pipeline::Tap>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let audit = audit.clone();
    tokio::spawn(async move {
        if let Some(opened) = from.opened {
            if let Some(restored) = from.snapshots.read(opened).await {
                if !audit.install(restored) {
                    tracing::warn!("the audit index had folded records before its snapshot was read; the snapshot was not used");
                }
            }
        }
        audit.follow_projectors(taps, stop);
        from.adder.add(from.snapshots, audit);
    });
}

/// Opens the configured event log.
///
/// Fails when the file log's directory cannot be opened or locked or is damaged beyond its
/// torn tail, or when the Kafka topic is missing and cannot be created.
async fn open_log(settings: &Settings) -> anyhow::Result<Arc<dyn EventLog>> {
    Ok(match settings.log {
        LogBackend::File => {
            let log_dir = settings.data_dir.join("log");
            let options = FileLogOptions {
                segment_bytes: settings.segment_bytes,
            };
            Arc::new(
                FileLog::open(&log_dir, options)
                    .with_context(|| format!("opening the event log in {}", log_dir.display()))?,
            )
        }
        LogBackend::Kafka => Arc::new(
            KafkaLog::open(settings.kafka_options())
                .await
                .with_context(|| format!("opening the Kafka log at {}", settings.kafka_brokers))?,
        ),
    })
}

/// Opens the data keys beside the configured log: files in the data directory beside the
/// file log, a compacted topic beside the Kafka topic.
///
/// Fails when the key store cannot be read, is damaged, or holds keys another secret key
/// wrapped.
async fn open_keys(settings: &Settings, secret: &SecretKey) -> anyhow::Result<Arc<Keyring>> {
    let store: Arc<dyn KeyStore> = match settings.log {
        LogBackend::File => Arc::new(FileKeys::new(&settings.data_dir)),
        LogBackend::Kafka => Arc::new(
            KafkaKeys::open(&settings.kafka_options())
                .await
                .context("opening the data-key topic")?,
        ),
    };
    Ok(Arc::new(
        Keyring::open(store, secret.clone())
            .await
            .context("loading the data keys")?,
    ))
}

/// The views to serve: in PostgreSQL, or in memory from the data directory's snapshot (with
/// the snapshots to keep writing).
///
/// Fails as [`open_store`] and [`load_snapshots`] do.
async fn open_views(
    settings: &Settings,
    secret_key: &SecretKey,
    log: &Arc<dyn EventLog>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Views> {
    Ok(match settings.store {
        StoreBackend::Memory => {
            let memory = load_snapshots(settings, secret_key, log, metrics).await?;
            (
                memory.store.clone() as Arc<dyn ProjectionStore>,
                None,
                Some(memory),
            )
        }
        StoreBackend::Postgres => {
            let (store, pg) = open_store(settings).await?;
            (store, pg, None)
        }
    })
}

/// The store views are served from, the PostgreSQL store when it is one, and the memory
/// store with its snapshots when it is that.
type Views = (
    Arc<dyn ProjectionStore>,
    Option<Arc<PgStore>>,
    Option<InMemory>,
);

/// Views and the audit index in memory, and their snapshots.
struct InMemory {
    snapshots: Arc<Snapshots<MemoryStore>>,
    store: Arc<MemoryStore>,
    audit: Arc<Snapshots<Audit>>,
    /// The audit index's snapshot, checked against the log; its body is read after start.
    audit_opened: Option<Opened>,
}

/// What the audit index in memory starts from: its snapshot (checked, its body not read
/// yet), the snapshots to write, and the task to add them to.
struct AuditSnapshot {
    adder: crate::snapshot::Adder,
    snapshots: Arc<Snapshots<Audit>>,
    opened: Option<Opened>,
}

/// The views in memory as the data directory's snapshot holds them (checked against the
/// log), or empty when there is none; the audit index's snapshot, checked against the log;
/// and the snapshots to keep writing.
///
/// Fails when the log ends before a snapshot or is another log (see
/// [`crate::snapshot::SnapshotError`]).
async fn load_snapshots(
    settings: &Settings,
    secret_key: &SecretKey,
    log: &Arc<dyn EventLog>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<InMemory> {
    let policy = crate::snapshot::Policy {
        every_records: settings.snapshot_every_records,
        min_interval: Duration::from_millis(settings.snapshot_min_interval_ms),
    };
    let log_name = match settings.log {
        LogBackend::File => "file".to_owned(),
        LogBackend::Kafka => format!("kafka:{}", settings.kafka_topic),
    };
    let key = secret_key.snapshot_cipher();
    let snapshots = Snapshots::new(&settings.data_dir, &log_name, key.clone(), policy)
        .with_metrics(metrics.view_snapshots.clone());
    let loaded = snapshots
        .load(log.as_ref())
        .await
        .context("loading the view snapshot")?;
    let store = loaded.unwrap_or_else(MemoryStore::new);
    let audit = Snapshots::new(&settings.data_dir, &log_name, key, policy)
        .with_metrics(metrics.audit_snapshots.clone());
    let audit_opened = audit
        .open(log.as_ref())
        .await
        .context("checking the audit index's snapshot")?;
    Ok(InMemory {
        snapshots: Arc::new(snapshots),
        store: Arc::new(store),
        audit: Arc::new(audit),
        audit_opened,
    })
}

/// Opens the configured projection store.
///
/// Fails when PostgreSQL is configured without a URL, cannot be reached, or a migration fails.
pub async fn open_store(
    settings: &Settings,
) -> anyhow::Result<(Arc<dyn ProjectionStore>, Option<Arc<PgStore>>)> {
    Ok(match settings.store {
        StoreBackend::Memory => (Arc::new(MemoryStore::new()), None),
        StoreBackend::Postgres => {
            let options = settings.postgres_options()?;
            let pg = Arc::new(
                PgStore::open(&options)
                    .await
                    .context("opening the PostgreSQL views")?,
            );
            (pg.clone(), Some(pg))
        }
    })
}

/// The provider consumers' dependencies: their state in PostgreSQL when the views are there,
/// in the data directory otherwise.
fn provider_deps(
    settings: &Settings,
    log: &Arc<dyn EventLog>,
    store: &Arc<dyn ProjectionStore>,
    pg: &Option<Arc<PgStore>>,
    projected: &[tokio::sync::watch::Receiver<u64>],
    metrics: &Arc<Metrics>,
    key: SecretKey,
) -> Arc<Deps> {
    let states: Arc<dyn StateStore> = match pg {
        Some(pg) => Arc::new(PgStateStore(pg.clone())),
        None => Arc::new(Arc::new(FileStateStore::new(&settings.data_dir))),
    };
    let ms = std::time::Duration::from_millis;
    Arc::new(Deps {
        log: log.clone(),
        store: store.clone(),
        states,
        projected: projected.to_vec(),
        key,
        tuning: Tuning {
            attempts: settings.provider_request_attempts,
            backoff: Backoff {
                base: ms(settings.provider_retry_base_ms.min(500)),
                cap: ms(settings.provider_retry_cap_ms.min(30_000)),
            },
            timeout: ms(settings.provider_request_timeout_ms),
        },
        max_attempts: settings.provider_max_attempts,
        retry: Backoff {
            base: ms(settings.provider_retry_base_ms),
            cap: ms(settings.provider_retry_cap_ms),
        },
        metrics: Some(metrics.clone()),
        settle: ms(settings.provider_settle_ms),
    })
}

/// Creates the `default` directory and source on an empty log. Returns None when another
/// process sharing the log (Kafka) created it first.
async fn bootstrap(
    writers: &Writers,
    settings: &Settings,
    addr: SocketAddr,
) -> anyhow::Result<Option<FirstStart>> {
    let admin = auth::generate("rsa_");
    let source = auth::generate("rst_");
    let cmd = Command::Bootstrap {
        admin: NewToken {
            id: ResourceId::new(),
            hash: admin.hash,
            prefix: admin.prefix,
        },
        source_slug: "default".into(),
        source_token: NewToken {
            id: ResourceId::new(),
            hash: source.hash,
            prefix: source.prefix,
        },
    };
    let ctx = Context {
        actor: Actor::System,
        source: None,
        correlation_id: Some("first-start".into()),
        client: None,
    };
    let created = writers
        .get(DEFAULT_DIRECTORY)
        .await?
        .execute(cmd, ctx)
        .await;
    match created {
        Ok(_) => {}
        Err(WriteError::Domain(DomainError::Conflict(_))) => {
            tracing::info!("another Roster process initialised the log first");
            return Ok(None);
        }
        Err(e) => return Err(e).context("creating the default directory"),
    }
    let root = settings
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{}://{addr}", settings.scheme()));
    Ok(Some(FirstStart {
        admin_token: admin.token,
        source_token: source.token,
        scim_base_url: format!("{}/source/scim/default/v2", root.trim_end_matches('/')),
    }))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}
