//! Shared helpers for the integration tests.
#![allow(dead_code)]

pub mod broker;
pub mod certs;
pub mod remote;
pub mod session;
pub mod setups;
pub mod stunnel;

use chrono::Utc;
use roster_events::{Actor, Envelope, Event, Record, ResourceId, ResourceType, UserCreated};
use serde_json::json;
use uuid::Uuid;

/// A record with `n` user.created events, distinguishable by `tag`.
pub fn record(directory: &str, follows: u64, tag: &str, n: usize) -> Record {
    let events = (0..n)
        .map(|i| Envelope {
            event_id: Uuid::now_v7(),
            directory: directory.into(),
            resource_type: ResourceType::User,
            resource_id: ResourceId::new(),
            resource_version: 1,
            time: Utc::now(),
            actor: Actor::System,
            source: None,
            correlation_id: Some(tag.into()),
            client: None,
            event: Event::UserCreated(UserCreated {
                owner: None,
                resource: roster_events::Personal::Plain(roster_events::Document::from_map(
                    json!({"userName": format!("{tag}-{i}")})
                        .as_object()
                        .unwrap(),
                )),
                mapped: None,
            }),
        })
        .collect();
    Record {
        record_id: Uuid::now_v7(),
        directory: directory.into(),
        follows,
        prev: None,
        events,
        prev_digest: None,
        mac: None,
    }
}

/// A key to seal records with, for pipelines a test starts without a server.
pub fn test_key() -> roster::keys::seal::RecordSealer {
    roster::keys::seal::RecordSealer::new(
        roster_events::chain::ChainKey::derive(b"a key for tests only"),
        test_keys(),
    )
}

/// The data keys of this test process (in memory, shared by every log a test opens).
pub fn test_keys() -> std::sync::Arc<roster::keys::Keyring> {
    static KEYS: std::sync::OnceLock<std::sync::Arc<roster::keys::Keyring>> =
        std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let secret =
            roster::sealing::SecretKey::from_base64("dGVzdCBrZXlzIGZvciBwZXJzb25hbCBkYXRhISEhISE=")
                .unwrap();
        std::sync::Arc::new(roster::keys::Keyring::in_memory(secret))
    })
    .clone()
}

/// The data keys of a server's data directory (its key files, its secret.key), read while the
/// server runs or after it stopped.
pub async fn data_dir_keys(data_dir: &std::path::Path) -> std::sync::Arc<roster::keys::Keyring> {
    let secret = roster::sealing::SecretKey::load(None, data_dir).unwrap();
    let store = std::sync::Arc::new(roster::keys::file::FileKeys::new(data_dir));
    std::sync::Arc::new(roster::keys::Keyring::open(store, secret).await.unwrap())
}

/// The data keys of the test processes on a Kafka topic (its `-keys` topic), wrapped under
/// `secret` ([`REPLICA_KEY`] when None).
pub async fn topic_keys(
    brokers: &str,
    topic: &str,
    secret: Option<roster::sealing::SecretKey>,
) -> std::sync::Arc<roster::keys::Keyring> {
    let secret =
        secret.unwrap_or_else(|| roster::sealing::SecretKey::from_base64(REPLICA_KEY).unwrap());
    let options = kafka_options(brokers, topic, 3);
    let store = std::sync::Arc::new(
        roster::keys::kafka::KafkaKeys::open(&options)
            .await
            .unwrap(),
    );
    std::sync::Arc::new(roster::keys::Keyring::open(store, secret).await.unwrap())
}

/// Every record of a server's file log, read from its segments (while it runs, too), with
/// personal data opened with the data directory's keys.
pub async fn opened_records(data_dir: &std::path::Path) -> Vec<Record> {
    let keys = data_dir_keys(data_dir).await;
    let mut segments: Vec<_> = std::fs::read_dir(data_dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    let mut out = Vec::new();
    for segment in segments {
        let bytes = std::fs::read(segment).unwrap();
        let mut at = 0;
        while at + 8 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let record: Record = serde_json::from_slice(&bytes[at + 8..at + 8 + len]).unwrap();
            let opened = record.open_personal(&|id| keys.state(id)).unwrap();
            out.push(opened.unwrap_or(record));
            at += 8 + len;
        }
    }
    out
}

/// `log` with personal data opened with [`test_keys`], as the server reads it.
pub fn opening(
    log: std::sync::Arc<dyn roster::log::EventLog>,
) -> std::sync::Arc<dyn roster::log::EventLog> {
    roster::keys::opening::OpeningLog::wrap(log, test_keys())
}

use roster::app::Application;
use roster::config::Settings;
use serde_json::Value;

/// A Roster running in-process on a free port, with its first-start tokens.
pub struct TestApp {
    pub root: String,
    pub scim_token: String,
    pub admin_token: String,
    pub http: reqwest::Client,
    pub data: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

pub fn settings(data: &std::path::Path) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.to_path_buf(),
        ..Settings::default()
    }
}

/// Settings for a server on a Kafka topic, with a short produce timeout.
pub fn kafka_settings(data: &std::path::Path, brokers: &str, topic: &str) -> Settings {
    Settings {
        // Every process on one log shares the secret key (docs/operations.md).
        secret_key: Some(roster::auth::Secret::new(REPLICA_KEY)),
        log: roster::config::LogBackend::Kafka,
        kafka_brokers: brokers.to_owned(),
        kafka_topic: topic.to_owned(),
        kafka_message_timeout_ms: 2_000,
        ..settings(data)
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let data = tempfile::tempdir().unwrap();
        Self::spawn_with(settings(data.path()), data).await
    }

    pub async fn spawn_with(s: Settings, data: tempfile::TempDir) -> TestApp {
        let app = Application::build(s).await.unwrap();
        let first = app
            .first_start
            .as_ref()
            .expect("a fresh data dir starts first");
        let tokens = (
            first.source_token.expose().to_owned(),
            first.admin_token.expose().to_owned(),
        );
        Self::serve(app, data, tokens)
    }

    /// A second server on a log another one initialised: it uses that one's tokens.
    pub async fn spawn_joining(s: Settings, other: &TestApp) -> TestApp {
        let app = Application::build(s).await.unwrap();
        assert!(
            app.first_start.is_none(),
            "a log with a directory is not a first start"
        );
        let tokens = (other.scim_token.clone(), other.admin_token.clone());
        Self::serve(app, tempfile::tempdir().unwrap(), tokens)
    }

    /// A server started again on the data directory a stopped one gave back, with that one's
    /// tokens (`tokens()` before it stopped).
    pub async fn restart(data: tempfile::TempDir, tokens: (String, String)) -> TestApp {
        let app = Application::build(settings(data.path())).await.unwrap();
        assert!(app.first_start.is_none(), "a restart is not a first start");
        Self::serve(app, data, tokens)
    }

    /// A server started again with `settings` on the data directory a stopped one gave
    /// back, with that one's tokens.
    pub async fn restart_with(
        settings: Settings,
        data: tempfile::TempDir,
        tokens: (String, String),
    ) -> TestApp {
        let app = Application::build(settings).await.unwrap();
        assert!(app.first_start.is_none(), "a restart is not a first start");
        Self::serve(app, data, tokens)
    }

    /// The SCIM and admin tokens.
    pub fn tokens(&self) -> (String, String) {
        (self.scim_token.clone(), self.admin_token.clone())
    }

    /// Serves an application built by the test, on `data`, with `tokens`.
    pub fn serve(app: Application, data: tempfile::TempDir, tokens: (String, String)) -> TestApp {
        let (scim_token, admin_token) = tokens;
        let root = format!("http://{}", app.local_addr());
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            app.run_until(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        TestApp {
            root,
            scim_token,
            admin_token,
            http: reqwest::Client::new(),
            data,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// Stops the server gracefully and gives back its data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        let _ = self.stop.take().unwrap().send(());
        self.handle.take().unwrap().await.unwrap();
        self.data
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.root))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn scim(&self, slug: &str) -> String {
        format!("{}/source/scim/{slug}/v2", self.root)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        token: &str,
        body: Value,
    ) -> (u16, Value) {
        let r = self
            .http
            .request(method, url)
            .bearer_auth(token)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        parse(r).await
    }

    pub async fn post(&self, url: &str, token: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, url, token, body).await
    }

    pub async fn put(&self, url: &str, token: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, url, token, body).await
    }

    pub async fn patch(&self, url: &str, token: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, url, token, body).await
    }

    pub async fn get(&self, url: &str, token: &str) -> (u16, Value) {
        parse(self.http.get(url).bearer_auth(token).send().await.unwrap()).await
    }

    pub async fn delete(&self, url: &str, token: &str) -> u16 {
        self.http
            .delete(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The userNames of the `default` source's users (up to 1,000), sorted.
    pub async fn user_names(&self) -> Vec<String> {
        let url = format!("{}/Users?count=1000", self.scim("default"));
        let (s, body) = self.get(&url, &self.scim_token).await;
        assert_eq!(s, 200, "{body}");
        let mut names: Vec<String> = body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["userName"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }

    pub async fn create_user(&self, slug: &str, token: &str, user_name: &str) -> (u16, Value) {
        let body = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
            "active": true,
        });
        self.post(&format!("{}/Users", self.scim(slug)), token, body)
            .await
    }

    /// Creates a source through the admin API and returns its token.
    pub async fn create_source(&self, slug: &str) -> String {
        let (status, body) = self
            .post(
                &format!("{}/admin/v1/sources", self.root),
                &self.admin_token.clone(),
                serde_json::json!({"slug": slug}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["token"]["token"].as_str().unwrap().to_owned()
    }
}

pub async fn parse(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The tansu broker that `scripts/test.sh` starts. Tests that need it fail loudly without it.
pub fn tansu_brokers() -> String {
    std::env::var("ROSTER_TEST_KAFKA_BROKERS").expect(
        "ROSTER_TEST_KAFKA_BROKERS is not set: run the tests with `bash scripts/test.sh`, \
         which starts a tansu broker on loopback",
    )
}

/// A topic name no other test uses.
pub fn unique_topic() -> String {
    format!("roster-test-{}", Uuid::new_v4().simple())
}

/// librdkafka's in-process mock cluster (one broker) with a fresh topic of `partitions`.
pub fn mock_cluster(
    partitions: i32,
) -> (
    rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    String,
) {
    let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
    let topic = unique_topic();
    mock.create_topic(&topic, partitions, 1).unwrap();
    // The mock has no admin API: the data-key topic beside it is made here (ADR 0014).
    mock.create_topic(&format!("{topic}-keys"), 1, 1).unwrap();
    (mock, topic)
}

/// Kafka options for tests: short timeouts so failures show quickly.
pub fn kafka_options(brokers: &str, topic: &str, partitions: u32) -> roster::log::KafkaOptions {
    roster::log::KafkaOptions {
        brokers: brokers.to_owned(),
        topic: topic.to_owned(),
        partitions,
        message_timeout: std::time::Duration::from_secs(3),
        ..roster::log::KafkaOptions::default()
    }
}

pub async fn kafka_log(brokers: &str, topic: &str, partitions: u32) -> roster::log::KafkaLog {
    roster::log::KafkaLog::open(kafka_options(brokers, topic, partitions))
        .await
        .unwrap()
}

/// The URL of the PostgreSQL cluster the test command started (its `postgres` database).
pub fn pg_admin_url() -> String {
    std::env::var("ROSTER_TEST_PG_URL").expect(
        "ROSTER_TEST_PG_URL is not set: run the tests with scripts/test.sh, which starts PostgreSQL",
    )
}

/// Creates an empty database for one test and returns its URL.
pub async fn fresh_database() -> String {
    let admin = pg_admin_url();
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("the test PostgreSQL answers");
    tokio::spawn(conn);
    let name = format!("roster_test_{}", Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let base = admin.rsplit_once('/').unwrap().0;
    format!("{base}/{name}")
}

/// A file log in `dir` with 1 MiB segments, opening what it seals with the test keys.
pub fn segment_log(dir: &std::path::Path) -> std::sync::Arc<dyn roster::log::EventLog> {
    opening(std::sync::Arc::new(
        roster::log::FileLog::open(
            dir,
            roster::log::FileLogOptions {
                segment_bytes: 1 << 20,
            },
        )
        .unwrap(),
    ))
}

/// How a test reaches the database at `url`.
pub fn pg_options(url: &str) -> roster_projections::pg::PgOptions {
    roster_projections::pg::PgOptions {
        url: url.to_owned(),
        pool_size: 8,
        timeout: std::time::Duration::from_secs(5),
        tls: Default::default(),
        // On, as a server runs: every test through PostgreSQL reads through the cache.
        cache_bytes: 64 << 20,
        folders: Default::default(),
    }
}

/// A PostgreSQL store on a fresh database.
pub async fn pg_store(url: &str) -> std::sync::Arc<roster_projections::pg::PgStore> {
    std::sync::Arc::new(
        roster_projections::pg::PgStore::open(&pg_options(url))
            .await
            .unwrap(),
    )
}

/// Settings for a server whose views live in PostgreSQL at `url`.
pub fn pg_settings(data: &std::path::Path, url: &str) -> Settings {
    Settings {
        store: roster::config::StoreBackend::Postgres,
        postgres_url: Some(roster::auth::Secret::new(url.to_owned())),
        postgres_pool_size: 8,
        ..settings(data)
    }
}

/// Kafka settings with a secret key every process of a test shares, as replicas must.
pub fn replica_settings(data: &std::path::Path, brokers: &str, topic: &str) -> Settings {
    kafka_settings(data, brokers, topic)
}

/// The secret key every test process on one Kafka topic shares.
pub const REPLICA_KEY: &str = "c2hhcmVkIGJ5IGV2ZXJ5IHJlcGxpY2Egb2YgbG9nISE=";

/// Every directory's views in canonical JSON, through the store trait.
pub async fn canonical(store: &dyn roster_projections::ProjectionStore) -> Vec<u8> {
    let mut out = Vec::new();
    for name in store.directories().await.unwrap() {
        let snap = store.snapshot(&name, 0).await.unwrap();
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&snap.state.canonical_json());
        out.push(b'\n');
        // The totals of lists without a filter, for everyone and for each source (PostgreSQL
        // keeps them as counts beside the rows).
        let everyone = roster_projections::ListQuery {
            filter: None,
            sort: None,
            declared: Vec::new(),
            start_index: 1,
            count: 0,
            count_up_to: None,
        };
        let slugs: Vec<String> = snap.state.sources().map(|s| s.slug.clone()).collect();
        let mut seen = vec![roster_projections::Visibility::All];
        seen.extend(
            slugs
                .iter()
                .map(|s| roster_projections::Visibility::Owner(s)),
        );
        for vis in seen {
            let users = store.list_users(&name, vis, &everyone).await.unwrap().total;
            let groups = store
                .list_groups(&name, vis, &everyone)
                .await
                .unwrap()
                .total;
            out.extend_from_slice(format!("{vis:?}: {users} users, {groups} groups\n").as_bytes());
        }
    }
    out
}

/// Asserts that the PostgreSQL views at `url` equal, byte for byte, a fresh memory replay of
/// the file log in `data_dir` (nothing skipped, nothing applied twice), and that the fold
/// skipped no event.
pub async fn assert_pg_views_equal_a_replay(data_dir: &std::path::Path, url: &str) {
    let log: std::sync::Arc<dyn roster::log::EventLog> = std::sync::Arc::new(
        roster::log::FileLog::open(data_dir.join("log"), Default::default()).unwrap(),
    );
    let log = roster::keys::opening::OpeningLog::wrap(log, data_dir_keys(data_dir).await);
    let replay = std::sync::Arc::new(roster_projections::MemoryStore::new());
    roster::pipeline::Pipeline::start(log, replay.clone(), None, test_key())
        .await
        .unwrap();
    let pg = pg_store(url).await;
    assert_eq!(pg.fold_errors(), 0);
    assert!(
        canonical(pg.as_ref()).await == canonical(replay.as_ref()).await,
        "the PostgreSQL views differ from a fresh replay of the log"
    );
}

/// Asserts that each partition of generation `gen` has exactly its parent table's indexes, every
/// one attached to the parent's (none missing, none built twice), and that no other
/// generation's tables are left.
pub async fn assert_generation_indexes(url: &str, gen: i32) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows = client
        .query(
            "SELECT c.relname::text, \
             (SELECT count(*) FROM pg_index WHERE indrelid = p.oid), \
             (SELECT count(*) FROM pg_index WHERE indrelid = c.oid), \
             (SELECT count(*) FROM pg_index i JOIN pg_inherits x ON x.inhrelid = i.indexrelid \
              WHERE i.indrelid = c.oid) \
             FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid \
             JOIN pg_class p ON p.oid = h.inhparent WHERE c.relkind = 'r'",
            &[],
        )
        .await
        .unwrap();
    let suffix = format!("_g{gen}");
    let mut partitions = 0;
    for r in &rows {
        let name: String = r.get(0);
        assert!(
            name.ends_with(&suffix),
            "{name} is left from another generation"
        );
        let (parent, own, attached): (i64, i64, i64) = (r.get(1), r.get(2), r.get(3));
        assert!(parent > 0, "{name}'s parent has no index");
        assert_eq!(
            (own, attached),
            (parent, parent),
            "{name}: indexes own/attached/parent"
        );
        partitions += 1;
    }
    let tables: i32 = client
        .query_one("SELECT cardinality(roster_view_tables())", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(partitions, tables, "one partition per view table: {rows:?}");
    let detached: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname ~ '_g[0-9]+$' \
             AND NOT relispartition",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(detached, 0, "tables of an unfinished rebuild are left");
}

/// Copies the folder `from` (and everything under it) to `to`.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
