//! Settings: defaults that run embedded with no setup, overridden by a TOML file, then by
//! `ROSTER_*` environment variables and command-line flags (see `docs/operations.md`).

use crate::auth::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Pretty,
    /// One JSON object per line, for production log pipelines.
    Json,
}

/// What happens to a `password` a SCIM client sends for a user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PasswordPolicy {
    /// Store only an Argon2id hash (never the password; never returned).
    #[default]
    Hash,
    /// Refuse requests that carry a password (400 invalidValue).
    Refuse,
}

/// Which event log Roster writes to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogBackend {
    /// The embedded segment-file log in `data_dir` (the default).
    #[default]
    File,
    /// Apache Kafka (`kafka_brokers`, `kafka_topic`).
    Kafka,
}

/// Where the views live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// In memory, rebuilt from the log at every start (the default).
    #[default]
    Memory,
    /// PostgreSQL (`postgres_url`), shared by every Roster process that uses it.
    Postgres,
}

/// libpq's `sslmode` for the connections to PostgreSQL (docs/operations.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PostgresSslMode {
    /// Plain connections.
    Disable,
    /// TLS when the server offers it, the certificate not checked.
    Prefer,
    /// TLS, the certificate not checked (checked as with verify-ca when a root certificate
    /// is given).
    Require,
    /// TLS, the certificate's chain checked against the roots.
    VerifyCa,
    /// TLS, the chain checked and the host's name in the certificate.
    VerifyFull,
}

impl From<PostgresSslMode> for roster_projections::pg::PgSslMode {
    fn from(m: PostgresSslMode) -> Self {
        use roster_projections::pg::PgSslMode as M;
        match m {
            PostgresSslMode::Disable => M::Disable,
            PostgresSslMode::Prefer => M::Prefer,
            PostgresSslMode::Require => M::Require,
            PostgresSslMode::VerifyCa => M::VerifyCa,
            PostgresSslMode::VerifyFull => M::VerifyFull,
        }
    }
}

/// Everything Roster can be configured with.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Where the embedded log keeps its segments.
    pub data_dir: PathBuf,
    /// The URL clients reach Roster at, used in `Location` and `meta.location`. When unset,
    /// it is taken from each request's Host header.
    pub public_url: Option<String>,
    pub log_format: LogFormat,
    /// The base URL of an OpenTelemetry collector's OTLP/HTTP receiver (such as
    /// `http://127.0.0.1:4318`); spans are exported there. Unset: the standard
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` if it is set, else nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// An extra admin token accepted besides those issued in the log (for recovery and
    /// automation). Never logged.
    pub admin_token: Option<Secret>,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` is believed: a request that
    /// comes from one is recorded with the client address the proxies name (the nearest one
    /// that is not itself a trusted proxy). Empty: the address that connected is recorded.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long a request's headers may take to arrive, in ms; also how long a keep-alive
    /// connection may stay idle.
    pub header_timeout_ms: u64,
    /// How long reading a request's body may take, in ms.
    pub body_timeout_ms: u64,
    /// Requests a second one source may send on average (0: no limit); beyond it, 429.
    pub source_rate_per_second: u32,
    /// Requests one source may send in a burst above its rate.
    pub source_rate_burst: u32,
    /// Password hashes (Argon2id, 19 MiB each) computed at once [default: the CPU count].
    pub password_hash_concurrency: Option<usize>,
    /// Requests with a password that may wait for a hashing slot; beyond, 503.
    pub password_hash_queue: usize,
    /// How long such a request waits for a slot before it gets 503, in ms.
    pub password_hash_wait_ms: u64,
    /// The page size when a list request gives no `count`.
    pub default_page_size: usize,
    /// The largest page a list request gets, whatever `count` it asks for.
    pub max_page_size: usize,
    /// Size at which the embedded log starts a new segment file.
    pub segment_bytes: u64,
    /// What to do with passwords clients send.
    pub password_policy: PasswordPolicy,
    /// The event log: the embedded file log or Kafka.
    pub log: LogBackend,
    /// Kafka bootstrap servers, `host:port[,host:port...]`.
    pub kafka_brokers: String,
    /// The Kafka topic that holds the log.
    pub kafka_topic: String,
    /// The topic's partition count (fixed for the life of the topic).
    pub kafka_partitions: u32,
    /// Replication factor when Roster creates the topic.
    pub kafka_replication: i32,
    /// How long one append may take before its outcome is treated as unknown, in ms.
    pub kafka_message_timeout_ms: u64,
    /// Create the topic at start if it is missing.
    pub kafka_create_topic: bool,
    /// TLS and SASL to the brokers (docs/operations.md, "Managed Kafka").
    pub kafka_security_protocol: crate::log::KafkaProtocol,
    /// PEM file of the CA certificates the brokers' certificates must lead to. Unset: the
    /// system's CA bundle.
    pub kafka_ssl_ca: Option<PathBuf>,
    /// PEM files of a client certificate and its key, for mutual TLS.
    pub kafka_ssl_cert: Option<PathBuf>,
    pub kafka_ssl_key: Option<PathBuf>,
    /// The passphrase of an encrypted `kafka_ssl_key`.
    pub kafka_ssl_key_password: Option<Secret>,
    pub kafka_sasl_mechanism: Option<crate::log::SaslMechanism>,
    pub kafka_sasl_username: Option<String>,
    pub kafka_sasl_password: Option<Secret>,
    /// OAUTHBEARER (`kafka_sasl_mechanism = "oauthbearer"`): the OpenID Connect token
    /// endpoint, the client's id and secret, and the scopes to ask for.
    pub kafka_oauth_token_url: Option<String>,
    pub kafka_oauth_client_id: Option<String>,
    pub kafka_oauth_client_secret: Option<Secret>,
    pub kafka_oauth_scope: Option<String>,
    /// Extra librdkafka client properties (tuning, or security settings Roster has none of
    /// its own for). Values are never logged.
    pub kafka_properties: BTreeMap<String, Secret>,
    /// Where the views live: in memory or in PostgreSQL.
    pub store: StoreBackend,
    /// Views in memory: a snapshot of them is written to the data directory once this many
    /// records were folded since the last one (0: never), so that start-up replays only the
    /// log after it.
    pub snapshot_every_records: u64,
    /// The least time between two view snapshots, in ms.
    pub snapshot_min_interval_ms: u64,
    /// The PostgreSQL connection URL (`postgres://user:password@host:port/db`). It may hold a
    /// password, so it is never logged.
    pub postgres_url: Option<Secret>,
    /// The most PostgreSQL connections one process opens.
    pub postgres_pool_size: usize,
    /// MiB of users, memberships and sources kept in process to answer reads without
    /// PostgreSQL, exact as of the request's arrival (0: none).
    pub postgres_cache_mb: u64,
    /// How long connecting to PostgreSQL, or waiting for a pooled connection, may take, in ms.
    pub postgres_timeout_ms: u64,
    /// 32 bytes, base64: seals providers' credentials. Unset: generated into
    /// `<data_dir>/secret.key` on first start. Replicas sharing a log must share it.
    pub secret_key: Option<Secret>,
    /// Whether this process runs provider consumers.
    pub run_providers: bool,
    /// A failing object is parked after this many attempts.
    pub provider_max_attempts: u32,
    /// The first wait after an object fails; it doubles up to `provider_retry_cap_ms`.
    pub provider_retry_base_ms: u64,
    pub provider_retry_cap_ms: u64,
    /// Attempts per request to a remote (retryable statuses and transport errors).
    pub provider_request_attempts: u32,
    pub provider_request_timeout_ms: u64,
    /// After a restart with provider work possibly in flight, how long a provider waits
    /// before carrying anything (a request the old process sent may still land).
    pub provider_settle_ms: u64,
    /// Refused requests and reads of the audit trail are counted per client over this window:
    /// the first of a window is recorded at once, the rest as one record when it ends.
    pub audit_count_window_ms: u64,
    /// How many events that do not match one page of an audit search passes over at most: a
    /// page that gets there is shorter than asked (possibly empty) and has a `next` cursor.
    pub audit_scan_limit: usize,
    /// TLS to PostgreSQL (libpq's sslmode); unset keeps the URL's `sslmode`, else `prefer`.
    pub postgres_ssl_mode: Option<PostgresSslMode>,
    /// PEM file of the CA certificates PostgreSQL's certificate must lead to (verify-ca,
    /// verify-full; require with it checks as verify-ca). Unset: the bundled web PKI roots.
    pub postgres_ssl_root_cert: Option<PathBuf>,
    /// PEM files of a client certificate and its key, for PostgreSQL's `cert` authentication.
    pub postgres_ssl_cert: Option<PathBuf>,
    pub postgres_ssl_key: Option<PathBuf>,
    /// PEM file with the certificate chain Roster serves HTTPS with (leaf first); with
    /// `tls_key`, every connection is TLS. Unset: plain HTTP.
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// How often the certificate and key files are checked for a renewal, in ms.
    pub tls_reload_ms: u64,
    /// PEM file of the CA certificates admin clients' certificates must lead to: with it, the
    /// admin API answers only requests over a connection that presented such a certificate
    /// (besides an admin token). Needs `tls_cert` and `tls_key`.
    pub tls_admin_client_ca: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("roster-data"),
            public_url: None,
            log_format: LogFormat::Pretty,
            otlp_endpoint: None,
            admin_token: None,
            max_body_bytes: 1 << 20,
            max_connections: 4096,
            trusted_proxies: Vec::new(),
            header_timeout_ms: 30_000,
            body_timeout_ms: 30_000,
            source_rate_per_second: 1_000,
            source_rate_burst: 2_000,
            password_hash_concurrency: None,
            password_hash_queue: 64,
            password_hash_wait_ms: 10_000,
            default_page_size: 100,
            max_page_size: 1000,
            segment_bytes: 128 << 20,
            password_policy: PasswordPolicy::Hash,
            log: LogBackend::File,
            kafka_brokers: "127.0.0.1:9092".into(),
            kafka_topic: "roster-events".into(),
            kafka_partitions: 3,
            kafka_replication: 1,
            kafka_message_timeout_ms: 10_000,
            kafka_create_topic: true,
            kafka_security_protocol: crate::log::KafkaProtocol::Plaintext,
            kafka_ssl_ca: None,
            kafka_ssl_cert: None,
            kafka_ssl_key: None,
            kafka_ssl_key_password: None,
            kafka_sasl_mechanism: None,
            kafka_sasl_username: None,
            kafka_sasl_password: None,
            kafka_oauth_token_url: None,
            kafka_oauth_client_id: None,
            kafka_oauth_client_secret: None,
            kafka_oauth_scope: None,
            kafka_properties: BTreeMap::new(),
            store: StoreBackend::Memory,
            snapshot_every_records: 100_000,
            snapshot_min_interval_ms: 300_000,
            postgres_url: None,
            postgres_pool_size: 16,
            postgres_cache_mb: 256,
            postgres_timeout_ms: 5_000,
            secret_key: None,
            run_providers: true,
            provider_max_attempts: 8,
            provider_retry_base_ms: 1_000,
            provider_retry_cap_ms: 300_000,
            provider_request_attempts: 4,
            provider_request_timeout_ms: 30_000,
            provider_settle_ms: 5_000,
            audit_count_window_ms: 60_000,
            audit_scan_limit: crate::audit::query::SCAN_LIMIT,
            postgres_ssl_mode: None,
            postgres_ssl_root_cert: None,
            postgres_ssl_cert: None,
            postgres_ssl_key: None,
            tls_cert: None,
            tls_key: None,
            tls_reload_ms: 10_000,
            tls_admin_client_ca: None,
        }
    }
}

impl Settings {
    /// The Kafka log options these settings describe.
    pub fn kafka_options(&self) -> crate::log::KafkaOptions {
        crate::log::KafkaOptions {
            brokers: self.kafka_brokers.clone(),
            topic: self.kafka_topic.clone(),
            partitions: self.kafka_partitions,
            replication: self.kafka_replication,
            message_timeout: std::time::Duration::from_millis(self.kafka_message_timeout_ms),
            create_topic: self.kafka_create_topic,
            security: crate::log::KafkaSecurity {
                protocol: self.kafka_security_protocol,
                ca: self.kafka_ssl_ca.clone(),
                cert: self.kafka_ssl_cert.clone(),
                key: self.kafka_ssl_key.clone(),
                key_password: self
                    .kafka_ssl_key_password
                    .as_ref()
                    .map(|s| s.expose().to_owned()),
                sasl_mechanism: self.kafka_sasl_mechanism,
                sasl_username: self.kafka_sasl_username.clone(),
                sasl_password: self
                    .kafka_sasl_password
                    .as_ref()
                    .map(|s| s.expose().to_owned()),
                oauth: crate::log::OAuthClient {
                    token_url: self.kafka_oauth_token_url.clone(),
                    client_id: self.kafka_oauth_client_id.clone(),
                    client_secret: self
                        .kafka_oauth_client_secret
                        .as_ref()
                        .map(|s| s.expose().to_owned()),
                    scope: self.kafka_oauth_scope.clone(),
                },
            },
            properties: self
                .kafka_properties
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_owned()))
                .collect(),
        }
    }

    /// The certificate and key files to serve HTTPS with, if both are set.
    ///
    /// Fails when only one of them is.
    pub fn tls_files(&self) -> anyhow::Result<Option<crate::http::tls::TlsFiles>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(crate::http::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })),
            (None, None) if self.tls_admin_client_ca.is_some() => {
                anyhow::bail!("tls_admin_client_ca needs HTTPS: set tls_cert and tls_key as well")
            }
            (None, None) => Ok(None),
            _ => anyhow::bail!(
                "HTTPS needs both tls_cert and tls_key (ROSTER_TLS_CERT, ROSTER_TLS_KEY, \
                 --tls-cert, --tls-key); only one is set"
            ),
        }
    }

    /// The scheme clients reach this server with when no `public_url` says otherwise.
    pub fn scheme(&self) -> &'static str {
        match self.tls_files() {
            Ok(Some(_)) => "https",
            _ => "http",
        }
    }

    /// The HTTP connection limits these settings describe.
    pub fn connection_limits(&self) -> crate::http::serve::ConnectionLimits {
        let ms = std::time::Duration::from_millis;
        crate::http::serve::ConnectionLimits {
            max_connections: self.max_connections,
            header_timeout: ms(self.header_timeout_ms),
            body_timeout: ms(self.body_timeout_ms),
            drain_timeout: ms(30_000),
        }
    }

    /// The bounded password hasher these settings describe.
    pub fn password_hasher(&self) -> crate::passwords::PasswordHasher {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        crate::passwords::PasswordHasher::new(
            self.password_hash_concurrency.unwrap_or(cores),
            self.password_hash_queue,
            std::time::Duration::from_millis(self.password_hash_wait_ms),
        )
    }

    /// The PostgreSQL store options these settings describe.
    ///
    /// Fails when `postgres_url` is not set.
    pub fn postgres_options(&self) -> anyhow::Result<roster_projections::pg::PgOptions> {
        let url = self.postgres_url.as_ref().ok_or_else(|| {
            anyhow::anyhow!("store = postgres needs postgres_url (ROSTER_POSTGRES_URL)")
        })?;
        Ok(roster_projections::pg::PgOptions {
            url: url.expose().to_owned(),
            pool_size: self.postgres_pool_size,
            cache_bytes: self.postgres_cache_mb.saturating_mul(1 << 20),
            folders: match self.log {
                LogBackend::File => roster_projections::pg::Folders::One,
                LogBackend::Kafka => roster_projections::pg::Folders::Several,
            },
            timeout: std::time::Duration::from_millis(self.postgres_timeout_ms),
            tls: roster_projections::pg::PgTls {
                mode: self.postgres_ssl_mode.map(Into::into),
                root_cert: self.postgres_ssl_root_cert.clone(),
                client_cert: self.postgres_ssl_cert.clone(),
                client_key: self.postgres_ssl_key.clone(),
            },
        })
    }

    /// Reads settings from a TOML file; keys it does not set keep their defaults.
    ///
    /// Fails when the file cannot be read or has unknown keys or bad values.
    pub fn from_file(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_file_keeps_the_other_defaults_and_unknown_keys_are_refused() {
        let s: Settings =
            toml::from_str("listen = \"127.0.0.1:9000\"\nmax_page_size = 50").unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.max_page_size, 50);
        assert_eq!(s.data_dir, PathBuf::from("roster-data"));
        assert!(toml::from_str::<Settings>("lisen = \"x\"").is_err());
    }

    #[test]
    fn https_needs_both_files_and_sets_the_scheme() {
        let s: Settings = toml::from_str("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"").unwrap();
        let files = s.tls_files().unwrap().unwrap();
        assert_eq!((files.cert, files.key), ("c.pem".into(), "k.pem".into()));
        assert_eq!(s.scheme(), "https");
        let one: Settings = toml::from_str("tls_key = \"k.pem\"").unwrap();
        assert!(one.tls_files().is_err());
        assert_eq!(Settings::default().scheme(), "http");
        assert!(Settings::default().tls_files().unwrap().is_none());
        let ca_alone: Settings = toml::from_str("tls_admin_client_ca = \"admins.pem\"").unwrap();
        let e = ca_alone.tls_files().unwrap_err().to_string();
        assert!(e.contains("tls_admin_client_ca needs HTTPS"), "{e}");
    }

    #[test]
    fn kafka_settings_come_from_the_file_and_property_values_never_print() {
        let s: Settings = toml::from_str(
            "log = \"kafka\"\nkafka_brokers = \"k1:9092,k2:9092\"\nkafka_partitions = 12\n\
             [kafka_properties]\n\"sasl.password\" = \"hunter2\"",
        )
        .unwrap();
        assert_eq!(s.log, LogBackend::Kafka);
        let o = s.kafka_options();
        assert_eq!(o.brokers, "k1:9092,k2:9092");
        assert_eq!(o.partitions, 12);
        assert_eq!(o.properties["sasl.password"], "hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn kafka_security_settings_read_as_operators_write_them_and_secrets_never_print() {
        let s: Settings = toml::from_str(
            "kafka_security_protocol = \"sasl_ssl\"\nkafka_sasl_mechanism = \"scram-sha-512\"\n\
             kafka_sasl_username = \"roster\"\nkafka_sasl_password = \"hunter2\"",
        )
        .unwrap();
        let o = s.kafka_options();
        assert_eq!(o.security.protocol, crate::log::KafkaProtocol::SaslSsl);
        assert_eq!(
            o.security.sasl_mechanism,
            Some(crate::log::SaslMechanism::ScramSha512)
        );
        assert_eq!(o.security.sasl_password.as_deref(), Some("hunter2"));
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(toml::from_str::<Settings>("kafka_security_protocol = \"tls\"").is_err());
        let oauth: Settings = toml::from_str(
            "kafka_sasl_mechanism = \"oauthbearer\"\n\
             kafka_oauth_token_url = \"https://idp.example/token\"\n\
             kafka_oauth_client_id = \"roster\"\nkafka_oauth_client_secret = \"s3cret\"",
        )
        .unwrap();
        let o = oauth.kafka_options();
        assert_eq!(
            o.security.sasl_mechanism,
            Some(crate::log::SaslMechanism::OAuthBearer)
        );
        assert_eq!(o.security.oauth.client_secret.as_deref(), Some("s3cret"));
        assert!(!format!("{oauth:?}").contains("s3cret"));
    }
}
