//! A log that fails appends: the write answers Unavailable, nothing is half-applied, the
//! writer's decision state is undone (the same command succeeds once the log is back), and
//! the HTTP layer turns it into 503 with Retry-After.

mod common;

use async_trait::async_trait;
use roster::domain::{Command, Context, NewToken, Outcome};
use roster::log::{EventLog, FileLog, FileLogOptions, LogError};
use roster::pipeline::{Feeds, Pipeline, WriteError, Writers};
use roster_events::chain::Encoded;
use roster_events::{Actor, ResourceId};
use roster_projections::{ListQuery, LogEntry, MemoryStore, ProjectionStore, Visibility};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

/// The file log, with switches that make appends fail as a full disk would (`down`) and that
/// make the log report itself unhealthy, as an unreachable broker does (`unhealthy`).
struct FlakyLog {
    inner: FileLog,
    down: AtomicBool,
    unhealthy: AtomicBool,
    /// How many more appends are written but answered `Unknown`, as a produce whose answer
    /// was lost after the broker stored it.
    answers_lost: AtomicUsize,
}

#[async_trait]
impl EventLog for FlakyLog {
    async fn append_encoded(&self, records: Vec<Encoded>) -> Result<Vec<u64>, LogError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(LogError::Unavailable("injected failure".into()));
        }
        let lost = self
            .answers_lost
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let positions = self.inner.append_encoded(records).await?;
        if lost {
            return Err(LogError::Unknown("injected lost answer".into()));
        }
        Ok(positions)
    }
    async fn read(&self, partition: u32, from: u64, max: usize) -> Result<Vec<LogEntry>, LogError> {
        self.inner.read(partition, from, max).await
    }
    async fn caught_up(&self, partition: u32, next: u64) -> Result<bool, LogError> {
        self.inner.caught_up(partition, next).await
    }
    fn end(&self, partition: u32) -> watch::Receiver<u64> {
        self.inner.end(partition)
    }
    fn healthy(&self) -> bool {
        !self.unhealthy.load(Ordering::SeqCst)
    }
    async fn close(&self) {
        self.inner.close().await
    }
}

fn create(name: &str) -> Command {
    Command::CreateUser {
        resource: roster_projections::schema::ResourceSchemas::user(&[], Default::default())
            .check(json!({"userName": name}).as_object().unwrap().clone())
            .unwrap(),
        password_hash: None,
    }
}

/// First start of the `default` directory, as the server does it.
async fn bootstrap(w: &roster::pipeline::Writer) -> Result<Outcome, WriteError> {
    let t = || NewToken {
        id: ResourceId::new(),
        hash: "0".repeat(64),
        prefix: "rst_x".into(),
    };
    let sys = Context {
        actor: Actor::System,
        source: None,
        correlation_id: None,
        client: None,
    };
    let cmd = Command::Bootstrap {
        admin: t(),
        source_slug: "default".into(),
        source_token: t(),
    };
    w.execute(cmd, sys).await
}

fn ctx() -> Context {
    Context {
        actor: Actor::Source("source:default".into()),
        source: Some("default".into()),
        correlation_id: None,
        client: None,
    }
}

/// The first ten resources, unfiltered.
fn first_page() -> ListQuery {
    ListQuery {
        filter: None,
        sort: None,
        declared: Vec::new(),
        start_index: 1,
        count: 10,
        count_up_to: None,
    }
}

/// A bootstrapped `default` directory on a `FlakyLog`, with its writer.
struct Rig {
    _dir: tempfile::TempDir,
    flaky: Arc<FlakyLog>,
    log: Arc<dyn EventLog>,
    store: Arc<MemoryStore>,
    w: roster::pipeline::Writer,
    /// Kept: dropping the pipeline stops its projectors.
    _pipeline: Pipeline,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Arc::new(FlakyLog {
        inner: FileLog::open(dir.path(), FileLogOptions::default()).unwrap(),
        down: AtomicBool::new(false),
        unhealthy: AtomicBool::new(false),
        answers_lost: AtomicUsize::new(0),
    });
    let log: Arc<dyn EventLog> = common::opening(flaky.clone());
    let store = Arc::new(MemoryStore::new());
    let pipeline = Pipeline::start(log.clone(), store.clone(), None, test_key())
        .await
        .unwrap();
    let w = pipeline.writers.get("default").await.unwrap();
    bootstrap(&w).await.unwrap();
    Rig {
        _dir: dir,
        flaky,
        log,
        store,
        w,
        _pipeline: pipeline,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_append_is_answered_unavailable_and_leaves_no_trace() {
    let rig = rig().await;
    let (flaky, log, store, w) = (&rig.flaky, &rig.log, &rig.store, &rig.w);
    let end_before = *log.end(0).borrow();

    flaky.down.store(true, Ordering::SeqCst);
    // Two creates that would conflict, in flight together: both fail, neither is a 409.
    let (a, b) = tokio::join!(
        w.execute(create("alice"), ctx()),
        w.execute(create("ALICE"), ctx())
    );
    assert!(matches!(a, Err(WriteError::Unavailable(_))), "{a:?}");
    assert!(matches!(b, Err(WriteError::Unavailable(_))), "{b:?}");
    assert_eq!(*log.end(0).borrow(), end_before, "nothing reached the log");
    let q = first_page();
    assert_eq!(
        store
            .list_users("default", Visibility::All, &q)
            .await
            .unwrap()
            .total,
        0
    );

    flaky.down.store(false, Ordering::SeqCst);
    // The decision state was undone: alice is free again, and then taken.
    assert!(matches!(
        w.execute(create("alice"), ctx()).await,
        Ok(Outcome::User(_))
    ));
    assert!(matches!(
        w.execute(create("Alice"), ctx()).await,
        Err(WriteError::Domain(_))
    ));
    assert_eq!(
        store
            .list_users("default", Visibility::All, &q)
            .await
            .unwrap()
            .total,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_log_is_not_even_tried_and_writes_resume_when_it_recovers() {
    let rig = rig().await;
    let (flaky, log, w) = (&rig.flaky, &rig.log, &rig.w);
    let end_before = *log.end(0).borrow();

    flaky.unhealthy.store(true, Ordering::SeqCst);
    let r = w.execute(create("carol"), ctx()).await;
    assert!(matches!(r, Err(WriteError::Unavailable(_))), "{r:?}");
    assert_eq!(*log.end(0).borrow(), end_before, "nothing was appended");

    flaky.unhealthy.store(false, Ordering::SeqCst);
    assert!(matches!(
        w.execute(create("carol"), ctx()).await,
        Ok(Outcome::User(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_answer_was_lost_is_sent_again_and_takes_effect_exactly_once() {
    let rig = rig().await;
    let (flaky, log, store, w) = (&rig.flaky, &rig.log, &rig.store, &rig.w);
    let end_before = *log.end(0).borrow();
    // The first two appends reach the log, but the writer is told their outcome is unknown.
    flaky.answers_lost.store(2, Ordering::SeqCst);
    let r = w.execute(create("dave"), ctx()).await;
    assert!(matches!(r, Ok(Outcome::User(_))), "{r:?}");
    // Three copies of the same record are in the log...
    let entries = log.read(0, end_before, 100).await.unwrap();
    assert_eq!(entries.len(), 3);
    assert!(entries
        .iter()
        .all(|e| e.record.record_id == entries[0].record.record_id));
    // ...and dave exists once, at version 1, in the views and in a fresh replay.
    let q = first_page();
    for views in [store.clone(), {
        let fresh = Arc::new(MemoryStore::new());
        let _replayed = Pipeline::start(log.clone(), fresh.clone(), None, test_key())
            .await
            .unwrap();
        fresh
    }] {
        let page = views
            .list_users("default", Visibility::All, &q)
            .await
            .unwrap();
        assert_eq!(page.total, 1);
        assert_eq!(page.items[0].version, 1);
    }
    // The chain goes on from the copy that counted.
    assert!(matches!(
        w.execute(create("erin"), ctx()).await,
        Ok(Outcome::User(_))
    ));
}

#[test]
fn unavailable_becomes_503_with_retry_after_and_says_nothing_internal() {
    use axum::response::IntoResponse;
    let e = roster::http::error::ScimError::from(WriteError::Unavailable(
        "disk on fire at /var/x".into(),
    ));
    let resp = e.into_response();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(resp.headers()["content-type"], "application/scim+json");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let body = rt
        .block_on(axum::body::to_bytes(resp.into_body(), 1 << 16))
        .unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(!text.contains("disk on fire"), "{text}");
    assert!(text.contains("\"status\":\"503\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_reached_the_log_stay_chained_even_when_their_answer_fails() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = common::opening(Arc::new(
        FileLog::open(dir.path(), FileLogOptions::default()).unwrap(),
    ));
    let store = Arc::new(MemoryStore::new());
    // No projector, and the writers' feeds closed: the outcome of every write is never
    // learnt, so every write is durable but unanswerable.
    let feeds = Arc::new(Feeds::default());
    let writers = Writers::new(log.clone(), store.clone(), feeds.clone(), test_key());
    let w = writers.get("default").await.unwrap();
    feeds.close();
    let boot = bootstrap(&w).await;
    assert!(matches!(boot, Err(WriteError::Unavailable(_))));
    for name in ["alice", "bob"] {
        assert!(matches!(
            w.execute(create(name), ctx()).await,
            Err(WriteError::Unavailable(_))
        ));
    }
    // Every record is in the log and valid: a replay finds both users.
    let fresh = Arc::new(MemoryStore::new());
    Pipeline::start(log.clone(), fresh.clone(), None, test_key())
        .await
        .unwrap();
    let q = first_page();
    assert_eq!(
        fresh
            .list_users("default", Visibility::All, &q)
            .await
            .unwrap()
            .total,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Arc::new(FlakyLog {
        inner: FileLog::open(dir.path(), FileLogOptions::default()).unwrap(),
        down: AtomicBool::new(false),
        unhealthy: AtomicBool::new(false),
        answers_lost: AtomicUsize::new(0),
    });
    let log: Arc<dyn EventLog> = flaky.clone();
    let store = Arc::new(MemoryStore::new());
    let (_ptx, prx) = watch::channel(0);
    let settings = roster::config::Settings::default();
    let key = roster::sealing::SecretKey::load(None, dir.path()).unwrap();
    let deps = roster::provider::runner::Deps::with_defaults(
        log.clone(),
        store.clone(),
        vec![prx.clone()],
        dir.path(),
        key.clone(),
    );
    let writers = Writers::new(log.clone(), store.clone(), Arc::default(), test_key());
    let state = roster::http::AppState::new(roster::http::Shared {
        passwords: settings.password_hasher(),
        rates: roster::http::SourceRates::new(0, 0),
        providers: roster::provider::manager::Providers::new(Arc::new(deps), None, false),
        secret_key: key,
        store: store.clone(),
        writers: writers.clone(),
        access: roster::audit::access::AccessLog::new(writers, std::time::Duration::from_secs(60)),
        settings: Arc::new(settings),
        admin_token_hash: None,
        projected: vec![prx],
        log: log.clone(),
        metrics: roster::metrics::Metrics::new(),
        rebuilds: Default::default(),
        audit: roster::audit::Audit::new(log.clone()),
        keys: common::test_keys(),
        sessions: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/readyz", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, roster::http::router(state))
            .await
            .unwrap()
    });
    let http = reqwest::Client::new();
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    flaky.unhealthy.store(true, Ordering::SeqCst);
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("refuses writes"));
}

/// How records are sealed (these pipelines run without a server).
fn test_key() -> roster::keys::seal::RecordSealer {
    common::test_key()
}
