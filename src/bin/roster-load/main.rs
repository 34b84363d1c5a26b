//! `roster-load`: the load generator behind docs/benchmarks.md. It drives a running server
//! over HTTP on loopback (creates, reads by id, filtered reads), or the library directly
//! (embedded log appends, seeding a large log, start-up replay and its memory). Every run is
//! bounded in count; it prints throughput and latency percentiles.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod audit;
mod ids;
mod patches;
mod provider;
mod replicas;
mod seed;
mod target;

use clap::{Parser, Subcommand};
use roster::keys::file::FileKeys;
use roster::keys::KeyStore;
use roster::log::{EventLog, FileLog, FileLogOptions};
use roster::pipeline::Pipeline;
use roster_events::{Actor, Envelope, Event, Record, ResourceId, ResourceType, UserCreated};
use roster_projections::{MemoryStore, ProjectionStore};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "roster-load",
    about = "Load generator and benchmarks for Roster"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Outbound provider benchmarks against a fast in-process SCIM target: seeds users and
    /// groups through a source, creates a provider and times its bootstrap full sync
    /// (objects/s), then creates users one by one at a steady rate and measures the time
    /// from each 201 to the user's arrival on the target (p50/p99).
    Provider {
        /// The server's root URL, e.g. http://127.0.0.1:8080
        #[arg(long)]
        server: String,
        #[arg(long, env = "ROSTER_ADMIN_TOKEN")]
        admin_token: String,
        /// A token of the `default` source.
        #[arg(long, env = "ROSTER_SCIM_TOKEN")]
        token: String,
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        #[arg(long, default_value_t = 1_000)]
        groups: usize,
        /// Members per group.
        #[arg(long, default_value_t = 10)]
        members: usize,
        /// Users created one by one for the propagation latency.
        #[arg(long, default_value_t = 1_000)]
        latency_users: usize,
        /// Creates per second during the latency run.
        #[arg(long, default_value_t = 50)]
        rate: u64,
        #[arg(long, default_value = "pb")]
        prefix: String,
        /// Give the provider three property mappings (two for users, one for groups), as a
        /// deployment shaping its users for an app would.
        #[arg(long)]
        mappings: bool,
    },
    /// Serves the in-memory SCIM target alone at `<listen>/` until interrupted: the ceiling
    /// for the HTTP figures, measured in the same run (no authentication, durability or
    /// checks; `userName eq` filters answered from an index, like Roster's).
    Ceiling {
        /// A loopback address, e.g. 127.0.0.1:18600
        #[arg(long)]
        listen: String,
    },
    /// Durable appends to the embedded log (one record of one event each), from N concurrent
    /// writers.
    LogAppend {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 64)]
        writers: usize,
        #[arg(long, default_value_t = 100_000)]
        records: usize,
    },
    /// POST /Users with N concurrent clients.
    Creates {
        /// SCIM base URL of a source, e.g. http://127.0.0.1:8080/source/scim/default/v2
        #[arg(long)]
        url: String,
        #[arg(long, env = "ROSTER_SCIM_TOKEN")]
        token: String,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 20_000)]
        total: usize,
        /// userName prefix, so that runs do not collide.
        #[arg(long, default_value = "load")]
        prefix: String,
        /// PEM CA certificates to trust for an https URL (a private CA).
        #[arg(long, env = "ROSTER_CA_CERT")]
        ca_cert: Option<PathBuf>,
    },
    /// PATCH /Users/{id} replacing `displayName` (as Entra ID sends it) with N concurrent
    /// clients, spread over the first users the server lists.
    Patches {
        #[arg(long)]
        url: String,
        #[arg(long, env = "ROSTER_SCIM_TOKEN")]
        token: String,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 20_000)]
        total: usize,
        /// How many users to spread the PATCHes over (at most 50,000).
        #[arg(long)]
        users: usize,
    },
    /// Creates and PATCHes through several replicas of one deployment at once (the same
    /// source, directory and log), for a bounded time; per replica: acknowledged writes, 503
    /// answers and latency percentiles.
    Replicas {
        /// SCIM base URL of the same source on each replica (repeat the option).
        #[arg(long = "url", required = true)]
        urls: Vec<String>,
        #[arg(long, env = "ROSTER_SCIM_TOKEN")]
        token: String,
        /// Clients per replica.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        #[arg(long, default_value = "rep")]
        prefix: String,
    },
    /// The audit trail over a data directory (`seed-log` one first), in process: index build
    /// rate and memory per event, history / actor-page / as-of percentiles, export and verify
    /// rates.
    Audit {
        #[arg(long)]
        dir: PathBuf,
        /// How many users to time reads of.
        #[arg(long, default_value_t = 200)]
        samples: usize,
        /// Answer from the audit projection in this (empty) PostgreSQL database, loaded by a
        /// rebuild of the views, instead of the index in memory.
        #[arg(long)]
        postgres_url: Option<String>,
        /// Time one figure alone (`verify` or `export`): over the index in memory, or with
        /// `--postgres-url` over the audit projection an earlier run loaded into it.
        #[arg(long, value_enum)]
        only: Option<audit::Only>,
    },
    /// GET /Users/{id} or GET /Users?filter=userName eq "..." over users `<prefix>-<i>`.
    Reads {
        #[arg(long)]
        url: String,
        #[arg(long, env = "ROSTER_SCIM_TOKEN")]
        token: String,
        /// `get`: GET /Users/{id}; `filter`: `userName eq`; `members`: GET /Groups with
        /// `members[value eq "<user id>"]` (the groups a user is in).
        #[arg(long, value_parser = ["get", "filter", "members"])]
        mode: String,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 100_000)]
        requests: usize,
        #[arg(long, default_value = "seed")]
        prefix: String,
        /// How many users `<prefix>-0 .. <prefix>-(n-1)` exist.
        #[arg(long)]
        users: usize,
        /// PEM CA certificates to trust for an https URL (a private CA).
        #[arg(long, env = "ROSTER_CA_CERT")]
        ca_cert: Option<PathBuf>,
    },
    /// Writes a data directory whose log holds the first-start bootstrap and N user creations,
    /// through the real write path (decide, batch, append, project) without HTTP. With
    /// `--kafka-brokers`, the log and the data keys go to Kafka (the topic and its `-keys`
    /// topic, made with the server's defaults) and the directory keeps the secret key.
    SeedLog(seed::Seed),
    /// Replays a data directory's log into fresh views (in memory, or in PostgreSQL with
    /// `--postgres-url`); prints the time, the rate and the process's resident memory
    /// afterwards. In PostgreSQL it runs a rebuild (fold in memory, bulk load, swap), or with
    /// `--incremental` folds into the active views batch by batch, as a live projector does
    /// when it catches up.
    Replay {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        postgres_url: Option<String>,
        #[arg(long, requires = "postgres_url")]
        incremental: bool,
    },
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(what: &str, n: usize, errors: usize, elapsed: Duration, mut lat: Vec<Duration>) {
    lat.sort_unstable();
    println!(
        "{what}: {n} ok, {errors} errors in {:.2}s = {:.0}/s; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs `total` requests from `concurrency` workers; `f(i)` performs request i.
pub(crate) async fn drive<F, Fut>(what: &str, concurrency: usize, total: usize, f: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (f, next) = (f.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                if f(i).await {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::with_capacity(total);
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("worker panicked");
        lat.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    report(what, lat.len(), errors, elapsed, lat);
}

fn user_record(i: usize) -> Record {
    let event = Envelope {
        event_id: uuid::Uuid::now_v7(),
        directory: "bench".into(),
        resource_type: ResourceType::User,
        resource_id: ResourceId::new(),
        resource_version: 1,
        time: chrono::Utc::now(),
        actor: Actor::System,
        source: None,
        correlation_id: None,
        client: None,
        event: Event::UserCreated(UserCreated {
            owner: Some("bench".into()),
            resource: roster_events::Personal::Plain(roster_events::Document::from_map(
                json!({"userName": format!("user-{i}"), "active": true})
                    .as_object()
                    .expect("an object"),
            )),
            mapped: None,
        }),
    };
    Record {
        record_id: uuid::Uuid::now_v7(),
        directory: "bench".into(),
        follows: i as u64,
        prev: None,
        events: vec![event],
        prev_digest: None,
        mac: None,
    }
}

fn scim_user(prefix: &str, i: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": format!("{prefix}-{i}@example.com"),
        "externalId": format!("{prefix}-ext-{i}"),
        "active": true,
        "displayName": format!("User {i}"),
        "name": {"givenName": "User", "familyName": format!("Number{i}")},
        "emails": [{"value": format!("{prefix}-{i}@example.com"), "type": "work", "primary": true}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Engineering", "employeeNumber": i.to_string()},
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Quiet unless asked (`ROSTER_LOG=info` shows, for example, a rebuild's phases).
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROSTER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    match Cli::parse().cmd {
        Cmd::Provider {
            server,
            admin_token,
            token,
            users,
            groups,
            members,
            latency_users,
            rate,
            prefix,
            mappings,
        } => {
            provider::run(provider::ProviderBench {
                mappings,
                server,
                admin_token,
                token,
                users,
                groups,
                members,
                latency_users,
                rate,
                prefix,
            })
            .await?;
        }
        Cmd::LogAppend {
            dir,
            writers,
            records,
        } => {
            let log = Arc::new(FileLog::open(&dir, FileLogOptions::default())?);
            drive("log appends", writers, records, move |i| {
                let log = log.clone();
                async move { log.append(vec![user_record(i)]).await.is_ok() }
            })
            .await;
        }
        Cmd::Creates {
            url,
            token,
            concurrency,
            total,
            prefix,
            ca_cert,
        } => {
            let http = http_client(concurrency, ca_cert.as_deref())?;
            let users = format!("{}/Users", url.trim_end_matches('/'));
            drive(
                &format!("creates at {concurrency} clients"),
                concurrency,
                total,
                move |i| {
                    let (http, users, token) = (http.clone(), users.clone(), token.clone());
                    let body = scim_user(&prefix, i).to_string();
                    async move {
                        let r = http
                            .post(&users)
                            .bearer_auth(&token)
                            .header("content-type", "application/scim+json")
                            .body(body)
                            .send()
                            .await;
                        matches!(r, Ok(r) if r.status() == 201)
                    }
                },
            )
            .await;
        }
        Cmd::Patches {
            url,
            token,
            concurrency,
            total,
            users,
        } => {
            let http = http_client(concurrency, None)?;
            patches::run(http, &url, token, concurrency, total, users).await?;
        }
        Cmd::Replicas {
            urls,
            token,
            clients,
            seconds,
            prefix,
        } => replicas::run(urls, token, clients, seconds, prefix).await?,
        Cmd::Audit {
            dir,
            samples,
            postgres_url,
            only,
        } => audit::run(&dir, samples, postgres_url, only).await?,
        Cmd::Ceiling { listen } => {
            let (base, _store) = target::start_on(&listen).await?;
            println!("ceiling target at {base}");
            tokio::signal::ctrl_c().await?;
        }
        Cmd::Reads {
            url,
            token,
            mode,
            concurrency,
            requests,
            prefix,
            users,
            ca_cert,
        } => {
            let http = http_client(concurrency, ca_cert.as_deref())?;
            let base = format!("{}/Users", url.trim_end_matches('/'));
            let ids: Arc<Vec<String>> = if mode != "filter" {
                Arc::new(ids::users(&http, &base, &token, users).await?)
            } else {
                Arc::new(Vec::new())
            };
            let what = format!("{mode} reads at {concurrency} clients");
            let url = Arc::new(url);
            let mode = Arc::new(mode);
            drive(&what, concurrency, requests, move |i| {
                let (url, mode) = (url.clone(), mode.clone());
                let (http, token) = (http.clone(), token.clone());
                // A multiplicative hash spreads requests over all users.
                let k = i.wrapping_mul(2_654_435_761) % users.max(1);
                let url = match mode.as_str() {
                    "filter" => {
                        format!("{base}?filter=userName%20eq%20%22{prefix}-{k}%40example.com%22")
                    }
                    "members" => format!(
                        "{}/Groups?filter=members%5Bvalue%20eq%20%22{}%22%5D&excludedAttributes=members",
                        url.trim_end_matches('/'),
                        ids[k % ids.len()]
                    ),
                    _ => format!("{base}/{}", ids[k % ids.len()]),
                };
                let filter = mode.as_str() == "filter";
                async move {
                    let Ok(r) = http.get(&url).bearer_auth(&token).send().await else {
                        return false;
                    };
                    if r.status() != 200 {
                        return false;
                    }
                    let Ok(v) = r.json::<Value>().await else {
                        return false;
                    };
                    !filter || v["totalResults"] == 1
                }
            })
            .await;
        }
        Cmd::SeedLog(seed) => seed::run(seed).await?,
        Cmd::Replay {
            dir,
            postgres_url,
            incremental,
        } => {
            let before = rss_mib();
            let log: Arc<dyn EventLog> =
                Arc::new(FileLog::open(dir.join("log"), FileLogOptions::default())?);
            let options = postgres_url.map(pg_options);
            let started = Instant::now();
            // Kept until the memory is measured.
            let mut store: Option<Arc<dyn ProjectionStore>> = None;
            let entries = match options {
                Some(options) if !incremental => {
                    let progress = roster::rebuild::Rebuilds::default();
                    roster::rebuild::rebuild(log.clone(), &options, &progress).await?;
                    progress.status().entries
                }
                options => {
                    let s: Arc<dyn ProjectionStore> = match options {
                        None => Arc::new(MemoryStore::new()),
                        Some(options) => {
                            Arc::new(roster_projections::pg::PgStore::open(&options).await?)
                        }
                    };
                    store = Some(s.clone());
                    let (log, sealer) = sealed(&dir, log.clone()).await?;
                    Pipeline::start(log, s, None, sealer).await?.replayed
                }
            };
            let elapsed = started.elapsed();
            let events: usize = {
                let mut n = 0;
                let mut from = 0;
                loop {
                    let batch = log.read(0, from, 65_536).await?;
                    let Some(last) = batch.last() else { break };
                    from = last.position + 1;
                    n += batch.iter().map(|e| e.record.events.len()).sum::<usize>();
                }
                n
            };
            println!(
                "replayed {entries} records ({events} events) in {:.2}s = {:.0} events/s; RSS {:.0} MiB before, {:.0} MiB after",
                elapsed.as_secs_f64(),
                events as f64 / elapsed.as_secs_f64(),
                before,
                rss_mib()
            );
            drop(store);
        }
    }
    Ok(())
}

/// How a benchmark reaches PostgreSQL at `url`: a small pool, no cache.
fn pg_options(url: String) -> roster_projections::pg::PgOptions {
    roster_projections::pg::PgOptions {
        url,
        pool_size: 4,
        timeout: Duration::from_secs(10),
        tls: Default::default(),
        cache_bytes: 0,
        folders: Default::default(),
    }
}

/// `log` read with personal data opened, and how records are sealed: with the secret key and
/// the data keys of the data directory `dir`, as the server running on it does.
async fn sealed(
    dir: &std::path::Path,
    log: Arc<dyn EventLog>,
) -> anyhow::Result<(Arc<dyn EventLog>, roster::keys::seal::RecordSealer)> {
    sealed_with(dir, log, Arc::new(FileKeys::new(dir))).await
}

/// [`sealed`] with the data keys in `store`.
async fn sealed_with(
    dir: &std::path::Path,
    log: Arc<dyn EventLog>,
    store: Arc<dyn KeyStore>,
) -> anyhow::Result<(Arc<dyn EventLog>, roster::keys::seal::RecordSealer)> {
    let secret = roster::sealing::SecretKey::load(None, dir)?;
    let started = Instant::now();
    let keys = Arc::new(roster::keys::Keyring::open(store, secret.clone()).await?);
    eprintln!(
        "data keys loaded in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    let log = roster::keys::opening::OpeningLog::wrap(log, keys.clone());
    Ok((
        log,
        roster::keys::seal::RecordSealer::new(secret.chain_key(), keys),
    ))
}

/// A client keeping `concurrency` connections alive, trusting the CA certificates in
/// `ca_cert` besides the web PKI roots.
///
/// Fails when the file cannot be read or holds no certificate.
fn http_client(
    concurrency: usize,
    ca_cert: Option<&std::path::Path>,
) -> anyhow::Result<reqwest::Client> {
    let mut http = reqwest::Client::builder().pool_max_idle_per_host(concurrency);
    if let Some(path) = ca_cert {
        for cert in reqwest::Certificate::from_pem_bundle(&std::fs::read(path)?)? {
            http = http.add_root_certificate(cert);
        }
    }
    Ok(http.build()?)
}
