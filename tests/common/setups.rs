//! The setups a contract suite runs on (where the audit trail and the views are kept, which
//! log the server writes), and the audit API's helpers.

use super::TestApp;
use serde_json::Value;

/// Where the audit trail is kept and which log the server writes: the same searches give the
/// same answers on each (the contract suite of the audit stores).
#[derive(Clone, Copy, Debug)]
pub enum Setup {
    /// The embedded defaults: the file log, the index in memory.
    Memory,
    /// The file log, the audit projection in PostgreSQL.
    Postgres,
    /// A Kafka-protocol broker (tansu), the audit projection in PostgreSQL.
    KafkaPostgres,
    /// A Kafka-protocol broker (tansu), the views and the audit index in each process's
    /// memory (not part of [`on_every_setup`]).
    KafkaMemory,
}

/// Where the servers of one test keep their state: one database and one topic that every
/// server of the test shares.
pub struct Shared {
    pub setup: Setup,
    pub database: String,
    pub topic: String,
}

impl Shared {
    pub async fn new(setup: Setup) -> Shared {
        let database = match setup {
            Setup::Memory | Setup::KafkaMemory => String::new(),
            Setup::Postgres | Setup::KafkaPostgres => super::fresh_database().await,
        };
        Shared {
            setup,
            database,
            topic: super::unique_topic(),
        }
    }

    /// The settings of one server of the test, with its data in `data`.
    pub fn settings(&self, data: &std::path::Path) -> roster::config::Settings {
        match self.setup {
            Setup::Memory => super::settings(data),
            Setup::KafkaMemory => {
                super::replica_settings(data, &super::tansu_brokers(), &self.topic)
            }
            Setup::Postgres => super::pg_settings(data, &self.database),
            Setup::KafkaPostgres => {
                let pg = super::pg_settings(data, &self.database);
                roster::config::Settings {
                    store: pg.store,
                    postgres_url: pg.postgres_url,
                    postgres_pool_size: pg.postgres_pool_size,
                    ..super::replica_settings(data, &super::tansu_brokers(), &self.topic)
                }
            }
        }
    }
}

/// A server of `setup` with its own database and topic.
pub async fn spawn(setup: Setup) -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let settings = Shared::new(setup).await.settings(data.path());
    TestApp::spawn_with(settings, data).await
}

/// Each test of the list, once on every [`Setup`].
#[allow(unused_macros)]
macro_rules! on_every_setup {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                super::$test(super::Setup::Memory).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                super::$test(super::Setup::Postgres).await
            })*
        }
        mod kafka_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                super::$test(super::Setup::KafkaPostgres).await
            })*
        }
    };
}

/// `GET /admin/v1/audit{path}` with the admin token, expecting 200; the body and the `Link`
/// header.
pub async fn audit(app: &TestApp, path: &str) -> (Value, Option<String>) {
    let r = reqwest::Client::new()
        .get(format!("{}/admin/v1/audit{path}", app.root))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let link = r
        .headers()
        .get("link")
        .map(|l| l.to_str().unwrap().to_owned());
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    (body, link)
}

pub fn q(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The path under `/admin/v1/audit` a `Link: <...>; rel="next"` header names.
pub fn next_path(link: &str) -> String {
    assert!(link.ends_with(">; rel=\"next\""), "{link}");
    let url = &link[1..link.find('>').unwrap()];
    url.strip_prefix("/admin/v1/audit").unwrap().to_owned()
}

pub fn events_of(body: &Value) -> &Vec<Value> {
    body["events"].as_array().unwrap()
}

#[allow(unused_imports)]
pub(crate) use on_every_setup;

/// Runs `roster rebuild` through the admin API and waits (up to 30 s) until it is done;
/// returns the generation it swapped to.
pub async fn rebuild(app: &TestApp) -> u64 {
    let url = format!("{}/admin/v1/rebuild", app.root);
    let (s, started) = app
        .post(&url, &app.admin_token, serde_json::json!({}))
        .await;
    assert_eq!(s, 202, "{started}");
    for _ in 0..600 {
        let (_, state) = app.get(&url, &app.admin_token).await;
        match state["state"].as_str().unwrap() {
            "running" => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            "done" => return state["generation"].as_u64().unwrap(),
            other => panic!("rebuild {other}: {state}"),
        }
    }
    panic!("the rebuild did not end in 30 s");
}
