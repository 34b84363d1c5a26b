//! The command line: `roster serve` and the `roster source ...` commands, which talk to a
//! running server's admin API.

use crate::config::{LogBackend, LogFormat, Settings};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "roster",
    version,
    about = "Event-sourced SCIM 2.0 identity store"
)]
pub struct Cli {
    /// A TOML settings file (see docs/operations.md).
    #[arg(long, env = "ROSTER_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Manage inbound SCIM sources (through a running server's admin API).
    Source {
        #[command(subcommand)]
        command: SourceCmd,
    },
    /// Manage outbound SCIM providers (through a running server's admin API).
    Provider {
        #[command(subcommand)]
        command: ProviderCmd,
    },
    /// Rebuild the PostgreSQL views from the log into fresh tables while the old ones serve,
    /// then swap (through a running server's admin API); waits until it is done.
    Rebuild {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Inspect or repair the embedded event log (with the server stopped).
    Log {
        #[command(subcommand)]
        command: LogCmd,
    },
}

#[derive(Subcommand, Debug)]
pub enum LogCmd {
    /// Read every segment and report how many whole records it holds and the first damage;
    /// changes nothing. Exits with status 1 when the log is damaged.
    Check {
        /// The data directory [default: from the settings, ./roster-data].
        #[arg(long, env = "ROSTER_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Cut the log at its first damage when start-up refuses it. Without --yes, only says
    /// what the cut would be. The cut bytes and every later segment are moved, not deleted,
    /// into a `cut-<time>` folder beside the log; records after the cut are gone from the
    /// views. Restoring a backup loses less: prefer it when you have one.
    Repair {
        /// The data directory [default: from the settings, ./roster-data].
        #[arg(long, env = "ROSTER_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Make the cut.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "ROSTER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory for the embedded log [default: ./roster-data].
    #[arg(long, env = "ROSTER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The URL clients reach Roster at (for Location headers).
    #[arg(long, env = "ROSTER_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Log line format.
    #[arg(long, env = "ROSTER_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// An admin token accepted besides the issued ones.
    #[arg(long, env = "ROSTER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Largest request body, in bytes [default: 1048576].
    #[arg(long, env = "ROSTER_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Connections served at once [default: 4096].
    #[arg(long, env = "ROSTER_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// How long request headers may take, and a keep-alive connection may idle, in ms
    /// [default: 30000].
    #[arg(long, env = "ROSTER_HEADER_TIMEOUT_MS")]
    pub header_timeout_ms: Option<u64>,
    /// Requests a second one source may send on average; 0 for no limit [default: 1000].
    #[arg(long, env = "ROSTER_SOURCE_RATE_PER_SECOND")]
    pub source_rate_per_second: Option<u32>,
    /// Requests one source may send in a burst [default: 2000].
    #[arg(long, env = "ROSTER_SOURCE_RATE_BURST")]
    pub source_rate_burst: Option<u32>,
    /// Password hashes computed at once [default: the CPU count].
    #[arg(long, env = "ROSTER_PASSWORD_HASH_CONCURRENCY")]
    pub password_hash_concurrency: Option<usize>,
    /// Page size when a list request gives no count [default: 100].
    #[arg(long, env = "ROSTER_DEFAULT_PAGE_SIZE")]
    pub default_page_size: Option<usize>,
    /// Largest page a list request gets [default: 1000].
    #[arg(long, env = "ROSTER_MAX_PAGE_SIZE")]
    pub max_page_size: Option<usize>,
    /// What to do with user passwords clients send [default: hash].
    #[arg(long, env = "ROSTER_PASSWORD_POLICY", value_enum)]
    pub password_policy: Option<crate::config::PasswordPolicy>,
    /// Segment size of the embedded log, in bytes [default: 134217728].
    #[arg(long, env = "ROSTER_SEGMENT_BYTES")]
    pub segment_bytes: Option<u64>,
    /// The event log: `file` (embedded, in the data directory) or `kafka` [default: file].
    #[arg(long = "log", env = "ROSTER_LOG_BACKEND", value_enum)]
    pub log_backend: Option<LogBackend>,
    /// Kafka bootstrap servers, host:port[,host:port...] [default: 127.0.0.1:9092].
    #[arg(long, env = "ROSTER_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// The Kafka topic holding the log [default: roster-events].
    #[arg(long, env = "ROSTER_KAFKA_TOPIC")]
    pub kafka_topic: Option<String>,
    /// The topic's partition count, fixed for its life [default: 3].
    #[arg(long, env = "ROSTER_KAFKA_PARTITIONS")]
    pub kafka_partitions: Option<u32>,
    /// Replication factor when Roster creates the topic [default: 1].
    #[arg(long, env = "ROSTER_KAFKA_REPLICATION")]
    pub kafka_replication: Option<i32>,
    /// How long one append may take before its outcome is unknown, in ms [default: 10000].
    #[arg(long, env = "ROSTER_KAFKA_MESSAGE_TIMEOUT_MS")]
    pub kafka_message_timeout_ms: Option<u64>,
    /// Create the topic at start if it is missing [default: true].
    #[arg(long, env = "ROSTER_KAFKA_CREATE_TOPIC")]
    pub kafka_create_topic: Option<bool>,
    /// Where the views live: `memory` or `postgres` [default: memory].
    #[arg(long, env = "ROSTER_STORE", value_enum)]
    pub store: Option<crate::config::StoreBackend>,
    /// PostgreSQL URL, postgres://user:password@host:port/database (never logged).
    #[arg(long, env = "ROSTER_POSTGRES_URL", hide_env_values = true)]
    pub postgres_url: Option<String>,
    /// Most PostgreSQL connections per process [default: 16].
    #[arg(long, env = "ROSTER_POSTGRES_POOL_SIZE")]
    pub postgres_pool_size: Option<usize>,
    /// 32 bytes in base64 that seal providers' credentials (never logged) [default: a key
    /// generated into <data_dir>/secret.key].
    #[arg(long, env = "ROSTER_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Whether this process runs the outbound providers [default: true].
    #[arg(long, env = "ROSTER_RUN_PROVIDERS")]
    pub run_providers: Option<bool>,
}

#[derive(Args, Debug)]
pub struct ClientArgs {
    /// The server's base URL [default: http://<listen address from settings>].
    #[arg(long, env = "ROSTER_SERVER")]
    pub server: Option<String>,
    /// An admin token (printed at first start).
    #[arg(long, env = "ROSTER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
}

#[derive(Subcommand, Debug)]
pub enum SourceCmd {
    /// Create a source and print its SCIM base URL and first token (shown once).
    Create {
        slug: String,
        /// The directory the source writes into.
        #[arg(long, default_value = "default")]
        directory: String,
        /// `owned` (the source sees only what it created; a taken userName is 409) or
        /// `adopt` (creating an existing userName/displayName adopts that object).
        #[arg(long, default_value = "owned", value_parser = ["owned", "adopt"])]
        ownership: String,
        /// What writes may carry under extension schemas the source has not declared:
        /// `refuse` (400 naming the schema) or `keep` (stored and returned as sent, unchecked).
        #[arg(long, default_value = "refuse", value_parser = ["refuse", "keep"])]
        undeclared_extensions: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Issue another token for a source (shown once); earlier tokens stay valid until revoked.
    Token {
        slug: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Declare an extension schema (RFC 7643 §7 JSON in a file) for a source's users or groups.
    Schema {
        slug: String,
        /// The file holding the schema definition.
        #[arg(long)]
        file: PathBuf,
        /// The resource type the schema extends.
        #[arg(long, default_value = "User", value_parser = ["User", "Group"])]
        resource_type: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke one of a source's tokens.
    Revoke {
        slug: String,
        token_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List sources and their tokens (prefixes only).
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum ProviderCmd {
    /// Create a provider from a JSON file (`-` for standard input) holding the admin API's
    /// body: name, directory, base_url, auth, mode, scope, full_sync_interval_secs,
    /// concurrency, deactivate, dry_run, enabled. Secrets go in the file, never on the
    /// command line.
    Create {
        #[arg(long)]
        file: PathBuf,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change a provider: the file holds only the settings to change (an `auth` of the same
    /// type without its secret keeps the secret).
    Update {
        name: String,
        #[arg(long)]
        file: PathBuf,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a provider (what it synced stays on the remote).
    Delete {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List providers.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a provider's configuration (without secrets).
    Show {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Position and lag, pending and parked objects, the last full sync, recent requests and
    /// dry-run requests.
    Status {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run a full sync now.
    Sync {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Try the parked objects again now.
    Retry {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Carry every change again from a position of the directory's log partition.
    Replay {
        name: String,
        #[arg(long)]
        from: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
}

impl Cli {
    /// Settings from defaults, then the file, then environment and flags.
    ///
    /// Fails when the file cannot be read or parsed.
    pub fn settings(&self, serve: Option<&ServeArgs>) -> anyhow::Result<Settings> {
        let mut s = match &self.config {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        if let Some(a) = serve {
            if let Some(v) = a.listen {
                s.listen = v;
            }
            if let Some(v) = &a.data_dir {
                s.data_dir = v.clone();
            }
            if let Some(v) = &a.public_url {
                s.public_url = Some(v.clone());
            }
            if let Some(v) = a.log_format {
                s.log_format = v;
            }
            if let Some(v) = &a.admin_token {
                s.admin_token = Some(crate::auth::Secret::new(v.clone()));
            }
            if let Some(v) = a.max_body_bytes {
                s.max_body_bytes = v;
            }
            if let Some(v) = a.max_connections {
                s.max_connections = v;
            }
            if let Some(v) = a.header_timeout_ms {
                s.header_timeout_ms = v;
            }
            if let Some(v) = a.source_rate_per_second {
                s.source_rate_per_second = v;
            }
            if let Some(v) = a.source_rate_burst {
                s.source_rate_burst = v;
            }
            if let Some(v) = a.password_hash_concurrency {
                s.password_hash_concurrency = Some(v);
            }
            if let Some(v) = a.default_page_size {
                s.default_page_size = v;
            }
            if let Some(v) = a.max_page_size {
                s.max_page_size = v;
            }
            if let Some(v) = a.segment_bytes {
                s.segment_bytes = v;
            }
            if let Some(v) = a.password_policy {
                s.password_policy = v;
            }
            if let Some(v) = a.log_backend {
                s.log = v;
            }
            if let Some(v) = &a.kafka_brokers {
                s.kafka_brokers = v.clone();
            }
            if let Some(v) = &a.kafka_topic {
                s.kafka_topic = v.clone();
            }
            if let Some(v) = a.kafka_partitions {
                s.kafka_partitions = v;
            }
            if let Some(v) = a.kafka_replication {
                s.kafka_replication = v;
            }
            if let Some(v) = a.kafka_message_timeout_ms {
                s.kafka_message_timeout_ms = v;
            }
            if let Some(v) = a.kafka_create_topic {
                s.kafka_create_topic = v;
            }
            if let Some(v) = a.store {
                s.store = v;
            }
            if let Some(v) = &a.postgres_url {
                s.postgres_url = Some(crate::auth::Secret::new(v.clone()));
            }
            if let Some(v) = a.postgres_pool_size {
                s.postgres_pool_size = v;
            }
            if let Some(v) = &a.secret_key {
                s.secret_key = Some(crate::auth::Secret::new(v.clone()));
            }
            if let Some(v) = a.run_providers {
                s.run_providers = v;
            }
        }
        Ok(s)
    }
}

/// Runs `roster log check` or `roster log repair` on the data directory and prints what it
/// found or did.
///
/// Fails when the log cannot be read, a server holds it (repair), or it is damaged (check,
/// so that scripts can tell).
pub fn run_log(cmd: &LogCmd, settings: &Settings) -> anyhow::Result<()> {
    let (LogCmd::Check { data_dir } | LogCmd::Repair { data_dir, .. }) = cmd;
    let dir = data_dir.as_ref().unwrap_or(&settings.data_dir).join("log");
    match cmd {
        LogCmd::Check { .. } => {
            let report = crate::log::check(&dir)?;
            for s in &report.segments {
                let state = match &s.damage {
                    None => "whole".to_owned(),
                    Some(d) => format!("DAMAGED at byte {} ({})", d.offset, d.why),
                };
                println!(
                    "{}  from position {}  {} records  {} bytes  {state}",
                    s.path.display(),
                    s.first,
                    s.records,
                    s.bytes
                );
            }
            if report.in_use {
                println!("(a server holds this log: a damaged end may be a write in progress)");
            }
            match report
                .first_damage()
                .and_then(|s| s.damage.as_ref().map(|d| (s, d)))
            {
                None => {
                    println!("{} records, no damage", report.records());
                    Ok(())
                }
                Some((s, d)) => {
                    if let Some(at) = d.next_whole {
                        println!(
                            "{} whole records follow the damage from byte {at}: \
                             not a torn last write",
                            d.whole_after
                        );
                    }
                    anyhow::bail!(
                        "{} is damaged at byte {}: restore a backup, or see \
                         `roster log repair --data-dir {}`",
                        s.path.display(),
                        d.offset,
                        dir.parent().unwrap_or(&dir).display()
                    )
                }
            }
        }
        LogCmd::Repair { yes, .. } => {
            let Some(r) = crate::log::repair(&dir, *yes)? else {
                println!("no damage: nothing to repair");
                return Ok(());
            };
            let verb = if *yes { "cut" } else { "would cut" };
            println!(
                "{verb} {} at byte {}: the log keeps records 0..{} and sets aside {} whole \
                 records found after the damage ({} later segments) in {}",
                r.segment.display(),
                r.offset,
                r.kept,
                r.set_aside,
                r.later_segments,
                r.cut_dir.display()
            );
            if !yes {
                println!("run again with --yes to make the cut");
            }
            Ok(())
        }
    }
}

/// Starts a rebuild on the server and follows it until it ends.
///
/// Fails when the server cannot be reached, refuses the rebuild, or the rebuild fails.
pub async fn run_rebuild(client: &ClientArgs, settings: &Settings) -> anyhow::Result<()> {
    let server = client
        .server
        .clone()
        .unwrap_or_else(|| format!("http://{}", settings.listen));
    let url = format!("{}/admin/v1/rebuild", server.trim_end_matches('/'));
    let http = reqwest::Client::new();
    let resp = http
        .post(&url)
        .bearer_auth(&client.admin_token)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {server}: {e}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let detail = body.get("detail").and_then(Value::as_str).unwrap_or("");
        anyhow::bail!("{status}: {detail}");
    }
    println!("rebuild started");
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let body: Value = http
            .get(&url)
            .bearer_auth(&client.admin_token)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach {server}: {e}"))?
            .json()
            .await?;
        let entries = body["entries"].as_u64().unwrap_or(0);
        match body["state"].as_str().unwrap_or("") {
            "running" => println!("  {entries} entries folded"),
            "done" => {
                println!(
                    "done: generation {} serves; {entries} entries at {:.0} entries/s",
                    body["generation"],
                    body["entries_per_second"].as_f64().unwrap_or(0.0)
                );
                return Ok(());
            }
            other => anyhow::bail!(
                "rebuild {other}: {}",
                body["error"].as_str().unwrap_or("no detail")
            ),
        }
    }
}

/// Sends an admin API request with the client's token; the answer's JSON (null for 204).
///
/// Fails when the server cannot be reached or answers with an error (its SCIM `detail`).
async fn send_admin(
    req: reqwest::RequestBuilder,
    client: &ClientArgs,
    server: &str,
) -> anyhow::Result<Value> {
    let resp = req
        .bearer_auth(&client.admin_token)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {server}: {e}"))?;
    let status = resp.status();
    let body: Value = if status == reqwest::StatusCode::NO_CONTENT {
        Value::Null
    } else {
        resp.json().await.unwrap_or(Value::Null)
    };
    if !status.is_success() {
        let detail = body.get("detail").and_then(Value::as_str).unwrap_or("");
        anyhow::bail!("{status}: {detail}");
    }
    Ok(body)
}

/// Runs one `roster source ...` command against the admin API and prints the result.
///
/// Fails when the server cannot be reached or answers with an error.
pub async fn run_source(cmd: &SourceCmd, settings: &Settings) -> anyhow::Result<()> {
    let client = match cmd {
        SourceCmd::Create { client, .. }
        | SourceCmd::Schema { client, .. }
        | SourceCmd::Token { client, .. }
        | SourceCmd::Revoke { client, .. }
        | SourceCmd::List { client } => client,
    };
    let server = client
        .server
        .clone()
        .unwrap_or_else(|| format!("http://{}", settings.listen));
    let base = format!("{}/admin/v1", server.trim_end_matches('/'));
    let http = reqwest::Client::new();
    let req = match cmd {
        SourceCmd::Create {
            slug,
            directory,
            ownership,
            undeclared_extensions,
            ..
        } => http
            .post(format!("{base}/sources"))
            .json(&serde_json::json!({
                "slug": slug,
                "directory": directory,
                "ownership": ownership,
                "undeclared_extensions": undeclared_extensions,
            })),
        SourceCmd::Token { slug, .. } => http.post(format!("{base}/sources/{slug}/tokens")),
        SourceCmd::Schema {
            slug,
            file,
            resource_type,
            ..
        } => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            let schema: Value = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            http.post(format!("{base}/sources/{slug}/schemas"))
                .json(&serde_json::json!({"resource_type": resource_type, "schema": schema}))
        }
        SourceCmd::Revoke { slug, token_id, .. } => {
            http.delete(format!("{base}/sources/{slug}/tokens/{token_id}"))
        }
        SourceCmd::List { .. } => http.get(format!("{base}/sources")),
    };
    let body = send_admin(req, client, &server).await?;
    match cmd {
        SourceCmd::Create { .. } => {
            println!("source:        {}", body["slug"].as_str().unwrap_or(""));
            println!(
                "SCIM base URL: {}",
                body["scim_base_url"].as_str().unwrap_or("")
            );
            println!(
                "token id:      {}",
                body["token"]["id"].as_str().unwrap_or("")
            );
            println!(
                "token:         {}",
                body["token"]["token"].as_str().unwrap_or("")
            );
            println!("(the token is shown only now; Roster keeps only its hash)");
        }
        SourceCmd::Token { .. } => {
            println!("token id: {}", body["id"].as_str().unwrap_or(""));
            println!("token:    {}", body["token"].as_str().unwrap_or(""));
            println!("(the token is shown only now; Roster keeps only its hash)");
        }
        SourceCmd::Revoke { token_id, .. } => println!("revoked {token_id}"),
        SourceCmd::Schema { resource_type, .. } => {
            for d in body["schemas"].as_array().into_iter().flatten() {
                if d["resource_type"] == resource_type.as_str() {
                    println!(
                        "{}  extends {resource_type}",
                        d["id"].as_str().unwrap_or("")
                    );
                }
            }
        }
        SourceCmd::List { .. } => {
            for s in body["sources"].as_array().into_iter().flatten() {
                println!(
                    "{}  directory={}  ownership={}  {}",
                    s["slug"].as_str().unwrap_or(""),
                    s["directory"].as_str().unwrap_or(""),
                    s["ownership"].as_str().unwrap_or(""),
                    s["scim_base_url"].as_str().unwrap_or("")
                );
                for t in s["tokens"].as_array().into_iter().flatten() {
                    let state = if t["revoked"].is_null() {
                        "active"
                    } else {
                        "revoked"
                    };
                    println!(
                        "    token {}  {}…  {state}",
                        t["id"].as_str().unwrap_or(""),
                        t["prefix"].as_str().unwrap_or("")
                    );
                }
            }
        }
    }
    Ok(())
}

fn read_json_file(file: &std::path::Path) -> anyhow::Result<Value> {
    let text = if file == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?
    };
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

/// Runs one `roster provider ...` command against the admin API and prints the answer.
///
/// Fails when a file cannot be read, the server cannot be reached or answers with an error.
pub async fn run_provider(cmd: &ProviderCmd, settings: &Settings) -> anyhow::Result<()> {
    use ProviderCmd as P;
    let client = match cmd {
        P::Create { client, .. }
        | P::Update { client, .. }
        | P::Delete { client, .. }
        | P::List { client }
        | P::Show { client, .. }
        | P::Status { client, .. }
        | P::Sync { client, .. }
        | P::Retry { client, .. }
        | P::Replay { client, .. } => client,
    };
    let server = client
        .server
        .clone()
        .unwrap_or_else(|| format!("http://{}", settings.listen));
    let base = format!("{}/admin/v1/providers", server.trim_end_matches('/'));
    let http = reqwest::Client::new();
    let req = match cmd {
        P::Create { file, .. } => http.post(&base).json(&read_json_file(file)?),
        P::Update { name, file, .. } => http
            .patch(format!("{base}/{name}"))
            .json(&read_json_file(file)?),
        P::Delete { name, .. } => http.delete(format!("{base}/{name}")),
        P::List { .. } => http.get(&base),
        P::Show { name, .. } => http.get(format!("{base}/{name}")),
        P::Status { name, .. } => http.get(format!("{base}/{name}/status")),
        P::Sync { name, .. } => http
            .post(format!("{base}/{name}/sync"))
            .json(&serde_json::json!({})),
        P::Retry { name, .. } => http
            .post(format!("{base}/{name}/retry"))
            .json(&serde_json::json!({})),
        P::Replay { name, from, .. } => http
            .post(format!("{base}/{name}/replay"))
            .json(&serde_json::json!({"from": from})),
    };
    let body = send_admin(req, client, &server).await?;
    match cmd {
        P::Delete { name, .. } => println!("deleted {name}"),
        P::List { .. } => {
            for p in body["providers"].as_array().into_iter().flatten() {
                println!(
                    "{}  directory={}  mode={}  enabled={}  dry_run={}  {}",
                    p["name"].as_str().unwrap_or(""),
                    p["directory"].as_str().unwrap_or(""),
                    p["mode"].as_str().unwrap_or(""),
                    p["enabled"],
                    p["dry_run"],
                    p["base_url"].as_str().unwrap_or("")
                );
            }
        }
        P::Sync { name, .. } => println!("full sync of {name} requested"),
        P::Retry { name, .. } => println!("retry of {name}'s parked objects requested"),
        P::Replay { name, from, .. } => println!("replay of {name} from position {from} requested"),
        _ => println!("{}", serde_json::to_string_pretty(&body)?),
    }
    Ok(())
}
