//! `roster serve`'s arguments, and the settings they layer over the defaults and the file.

use super::Cli;
use crate::config::{LogBackend, LogFormat, Settings};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// Export spans to this OpenTelemetry collector (OTLP/HTTP base URL, such as
    /// http://127.0.0.1:4318) [default: OTEL_EXPORTER_OTLP_ENDPOINT, else none].
    #[arg(long, env = "ROSTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
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
    /// Views in memory: write a snapshot once this many records were folded since the last
    /// (0: never) [default: 100000].
    #[arg(long, env = "ROSTER_SNAPSHOT_EVERY_RECORDS")]
    pub snapshot_every_records: Option<u64>,
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
    #[command(flatten)]
    pub kafka_security: super::kafka_security::KafkaSecurityArgs,
    /// Where the views live: `memory` or `postgres` [default: memory].
    #[arg(long, env = "ROSTER_STORE", value_enum)]
    pub store: Option<crate::config::StoreBackend>,
    /// PostgreSQL URL, postgres://user:password@host:port/database (never logged).
    #[arg(long, env = "ROSTER_POSTGRES_URL", hide_env_values = true)]
    pub postgres_url: Option<String>,
    /// TLS to PostgreSQL, as libpq's sslmode [default: the URL's sslmode, else prefer].
    #[arg(long, env = "ROSTER_POSTGRES_SSL_MODE", value_enum)]
    pub postgres_ssl_mode: Option<crate::config::PostgresSslMode>,
    /// PEM file of the CA certificates PostgreSQL's certificate must lead to.
    #[arg(long, env = "ROSTER_POSTGRES_SSL_ROOT_CERT")]
    pub postgres_ssl_root_cert: Option<PathBuf>,
    /// PEM client certificate for PostgreSQL (with --postgres-ssl-key).
    #[arg(long, env = "ROSTER_POSTGRES_SSL_CERT")]
    pub postgres_ssl_cert: Option<PathBuf>,
    /// PEM private key of --postgres-ssl-cert.
    #[arg(long, env = "ROSTER_POSTGRES_SSL_KEY")]
    pub postgres_ssl_key: Option<PathBuf>,
    /// Most PostgreSQL connections per process [default: 16].
    #[arg(long, env = "ROSTER_POSTGRES_POOL_SIZE")]
    pub postgres_pool_size: Option<usize>,
    /// MiB of users, memberships and sources kept in process so that reads need no round trip
    /// to PostgreSQL; 0 keeps none [default: 256].
    #[arg(long, env = "ROSTER_POSTGRES_CACHE_MB")]
    pub postgres_cache_mb: Option<u64>,
    /// 32 bytes in base64 that seal providers' credentials (never logged) [default: a key
    /// generated into <data_dir>/secret.key].
    #[arg(long, env = "ROSTER_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Whether this process runs the outbound providers [default: true].
    #[arg(long, env = "ROSTER_RUN_PROVIDERS")]
    pub run_providers: Option<bool>,
    /// PEM certificate chain to serve HTTPS with (with --tls-key); checked for renewals.
    #[arg(long, env = "ROSTER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "ROSTER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle admin clients' certificates must lead to; the admin API then requires
    /// one (with --tls-cert).
    #[arg(long, env = "ROSTER_TLS_ADMIN_CLIENT_CA")]
    pub tls_admin_client_ca: Option<PathBuf>,
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
            if let Some(v) = &a.otlp_endpoint {
                s.otlp_endpoint = Some(v.clone());
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
            if let Some(v) = a.snapshot_every_records {
                s.snapshot_every_records = v;
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
            a.kafka_security.apply(&mut s);
            if let Some(v) = a.store {
                s.store = v;
            }
            if let Some(v) = &a.postgres_url {
                s.postgres_url = Some(crate::auth::Secret::new(v.clone()));
            }
            if let Some(v) = a.postgres_ssl_mode {
                s.postgres_ssl_mode = Some(v);
            }
            if let Some(v) = &a.postgres_ssl_root_cert {
                s.postgres_ssl_root_cert = Some(v.clone());
            }
            if let Some(v) = &a.postgres_ssl_cert {
                s.postgres_ssl_cert = Some(v.clone());
            }
            if let Some(v) = &a.postgres_ssl_key {
                s.postgres_ssl_key = Some(v.clone());
            }
            if let Some(v) = a.postgres_pool_size {
                s.postgres_pool_size = v;
            }
            if let Some(v) = a.postgres_cache_mb {
                s.postgres_cache_mb = v;
            }
            if let Some(v) = &a.secret_key {
                s.secret_key = Some(crate::auth::Secret::new(v.clone()));
            }
            if let Some(v) = a.run_providers {
                s.run_providers = v;
            }
            if let Some(v) = &a.tls_cert {
                s.tls_cert = Some(v.clone());
            }
            if let Some(v) = &a.tls_key {
                s.tls_key = Some(v.clone());
            }
            if let Some(v) = &a.tls_admin_client_ca {
                s.tls_admin_client_ca = Some(v.clone());
            }
        }
        Ok(s)
    }
}
