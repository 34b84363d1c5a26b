//! View snapshots (memory store, docs/adr/0020) through the real server: a restart loads the
//! snapshot and replays only the log after it, serving the same views as a full replay; a
//! damaged snapshot is set aside and the whole log replayed; a log that ends before the
//! snapshot, or is another log, stops start-up with the reason; an erasure replaces a
//! snapshot that held the person; snapshot files are readable by their owner only. On Kafka
//! (tansu, three partitions) as on the file log; a snapshot of another log is not used. The
//! audit trail's index starts from its own snapshot and answers as a whole fold does.

mod common;

use common::setups::{audit, q};
use common::{copy_dir, kafka_settings, settings, tansu_brokers, unique_topic, TestApp};
use roster::app::Application;
use roster::config::Settings;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn snapshot_file(data: &Path) -> PathBuf {
    data.join("snapshots").join("views.snap")
}

fn audit_file(data: &Path) -> PathBuf {
    data.join("snapshots").join("audit.snap")
}

/// The clear header line of the view snapshot.
fn header(data: &Path) -> Value {
    header_of(&snapshot_file(data))
}

/// The clear header line of a snapshot file.
fn header_of(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap();
    let magic = b"ROSTER VIEW SNAPSHOT\n".len() + 19;
    let end = bytes[magic..].iter().position(|&b| b == b'\n').unwrap();
    serde_json::from_slice(&bytes[magic..magic + end]).unwrap()
}

/// Snapshots at every stop, and none in between.
fn at_stop_only(data: &Path) -> Settings {
    Settings {
        snapshot_every_records: 1_000_000,
        ..settings(data)
    }
}

async fn create(app: &TestApp, names: &[&str]) {
    for n in names {
        let (s, body) = app.create_user("default", &app.scim_token, n).await;
        assert_eq!(s, 201, "{body}");
    }
}

/// Builds a server on `data` and serves it; also gives how many records start-up replayed.
async fn start(s: Settings, data: tempfile::TempDir, tokens: (String, String)) -> (TestApp, u64) {
    let app = Application::build(s).await.unwrap();
    assert!(app.first_start.is_none());
    let replayed = app.replayed;
    (TestApp::serve(app, data, tokens), replayed)
}

#[tokio::test]
async fn a_restart_replays_only_the_log_after_the_snapshot_and_serves_what_a_full_replay_does() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(at_stop_only(data.path()), data).await;
    create(&app, &["ada", "grace", "edsger"]).await;
    let tokens = app.tokens();
    let data = app.stop().await;
    let first = header(data.path());
    let at_first: u64 = first["next_positions"][0].as_u64().unwrap();
    assert!(at_first > 3, "{first}");
    assert_eq!(first["users"], 3);

    // A stop with nothing new since writes nothing new; a start replays nothing.
    let (app, replayed) = start(at_stop_only(data.path()), data, tokens.clone()).await;
    assert_eq!(replayed, 0);
    assert_eq!(app.user_names().await, ["ada", "edsger", "grace"]);
    // More changes, and a process that never writes snapshots: the next start finds the
    // first snapshot and the log after it.
    let data = app.stop().await;
    let never = |d: &Path| Settings {
        snapshot_every_records: 0,
        ..settings(d)
    };
    let (app, _) = start(never(data.path()), data, tokens.clone()).await;
    create(&app, &["barbara", "donald"]).await;
    let data = app.stop().await;
    assert_eq!(
        header(data.path())["next_positions"][0],
        at_first,
        "0 never writes"
    );

    let (app, replayed) = start(at_stop_only(data.path()), data, tokens.clone()).await;
    assert!(replayed >= 2, "the creates after the snapshot are replayed");
    let names = app.user_names().await;
    assert_eq!(names, ["ada", "barbara", "donald", "edsger", "grace"]);
    let data = app.stop().await;
    let second = header(data.path());
    assert_eq!(
        second["next_positions"][0].as_u64().unwrap(),
        at_first + replayed,
        "the stop wrote a snapshot at the end of the log"
    );

    // A full replay (the snapshot moved away) serves the same.
    std::fs::rename(snapshot_file(data.path()), data.path().join("aside")).unwrap();
    let (app, full) = start(at_stop_only(data.path()), data, tokens).await;
    assert_eq!(full, at_first + replayed);
    assert_eq!(app.user_names().await, names);
    app.stop().await;
}

#[tokio::test]
async fn snapshots_fall_due_by_records_folded_and_are_private_to_the_owner() {
    let data = tempfile::tempdir().unwrap();
    let s = Settings {
        snapshot_every_records: 3,
        snapshot_min_interval_ms: 0,
        ..settings(data.path())
    };
    let app = TestApp::spawn_with(s, data).await;
    // Names that the ciphertext does not hold by chance: two given bytes ("a1") turn up about
    // once in 65,536 positions of random bytes, and did in a CI run.
    create(
        &app,
        &[
            "sealed-name-1",
            "sealed-name-2",
            "sealed-name-3",
            "sealed-name-4",
        ],
    )
    .await;
    let path = snapshot_file(app.data.path());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(path.exists() && header(app.data.path())["users"] == 4) {
        assert!(Instant::now() < deadline, "no snapshot with the 4 users");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let (s, metrics) = {
        let r = app
            .http
            .get(format!("{}/metrics", app.root))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(s, 200);
    assert!(
        metrics.contains("roster_snapshots_written_total"),
        "{metrics}"
    );
    // The body is sealed: no name is readable in the file.
    let bytes = std::fs::read(&path).unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains("sealed-name-"));
    app.stop().await;
}

#[tokio::test]
async fn a_damaged_snapshot_is_set_aside_and_the_whole_log_replayed() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(at_stop_only(data.path()), data).await;
    create(&app, &["ada", "grace"]).await;
    let tokens = app.tokens();
    let data = app.stop().await;
    let path = snapshot_file(data.path());
    let total = header(data.path())["next_positions"][0].as_u64().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 40;
    bytes[at] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let (app, replayed) = start(at_stop_only(data.path()), data, tokens.clone()).await;
    assert_eq!(replayed, total, "the whole log is replayed");
    assert_eq!(app.user_names().await, ["ada", "grace"]);
    let data = app.stop().await;
    // The stop replaced it with a good one.
    let (app, replayed) = start(at_stop_only(data.path()), data, tokens).await;
    assert_eq!(replayed, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_log_that_ends_before_the_snapshot_or_is_another_log_stops_start_up() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(at_stop_only(data.path()), data).await;
    create(&app, &["ada"]).await;
    let tokens = app.tokens();
    let data = app.stop().await;
    // A copy of the log as it is now: an old backup.
    let old_log = tempfile::tempdir().unwrap();
    copy_dir(&data.path().join("log"), old_log.path());
    let (app, _) = start(at_stop_only(data.path()), data, tokens).await;
    create(&app, &["grace"]).await;
    let data = app.stop().await;
    let snapshot = header(data.path())["next_positions"][0].as_u64().unwrap();

    // The old log put back under the newer snapshot: it lost acknowledged records.
    std::fs::remove_dir_all(data.path().join("log")).unwrap();
    copy_dir(old_log.path(), &data.path().join("log"));
    let refused = Application::build(at_stop_only(data.path())).await;
    let e = format!("{:#}", refused.err().expect("start-up refuses"));
    assert!(
        e.contains("the log ends at") && e.contains("lost records"),
        "{e}"
    );
    assert!(e.contains(&format!("up to position {snapshot}")), "{e}");
    // The audit index's snapshot says so too, without the view snapshot.
    let views_aside = data.path().join("views-aside");
    std::fs::rename(snapshot_file(data.path()), &views_aside).unwrap();
    let refused = Application::build(at_stop_only(data.path())).await;
    let e = format!("{:#}", refused.err().expect("start-up refuses"));
    assert!(
        e.contains("audit.snap") && e.contains("lost records"),
        "{e}"
    );
    std::fs::rename(&views_aside, snapshot_file(data.path())).unwrap();

    // Another server's log (same secret key), longer than the snapshot: another log.
    let other = tempfile::tempdir().unwrap();
    let key = std::fs::read_to_string(data.path().join("secret.key")).unwrap();
    let with_key = |d: &Path| Settings {
        secret_key: Some(roster::auth::Secret::new(key.trim())),
        ..at_stop_only(d)
    };
    let app = TestApp::spawn_with(with_key(other.path()), other).await;
    create(&app, &["x1", "x2", "x3", "x4"]).await;
    let other = app.stop().await;
    for part in ["log", "keys"] {
        std::fs::remove_dir_all(data.path().join(part)).unwrap();
        copy_dir(&other.path().join(part), &data.path().join(part));
    }
    let refused = Application::build(with_key(data.path())).await;
    let e = format!("{:#}", refused.err().expect("start-up refuses"));
    assert!(
        e.contains("another record") && e.contains("move the snapshots in"),
        "{e}"
    );
    // Moved away, the log is served as it is.
    std::fs::rename(data.path().join("snapshots"), data.path().join("aside")).unwrap();
    let app = Application::build(with_key(data.path())).await.unwrap();
    assert!(app.replayed > 4);
    drop(app);
}

#[tokio::test]
async fn an_erasure_replaces_the_snapshot_that_held_the_person() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(at_stop_only(data.path()), data).await;
    create(&app, &["ada.lovelace", "grace"]).await;
    let tokens = app.tokens();
    let data = app.stop().await;
    assert_eq!(header(data.path())["erasures"], 0);
    let (app, _) = start(at_stop_only(data.path()), data, tokens.clone()).await;
    let (_, found) = app
        .get(
            &format!(
                "{}/Users?filter=userName eq \"ada.lovelace\"",
                app.scim("default")
            ),
            &app.scim_token,
        )
        .await;
    let id = found["Resources"][0]["id"].as_str().unwrap().to_owned();
    let (s, body) = app
        .post(
            &format!("{}/admin/v1/erasures", app.root),
            &app.admin_token,
            json!({"user": id, "reference": "DSAR-1"}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    // Within seconds the snapshots on disk are ones taken after the erasure.
    let deadline = Instant::now() + Duration::from_secs(10);
    for path in [snapshot_file(app.data.path()), audit_file(app.data.path())] {
        loop {
            if path.exists() && header_of(&path)["erasures"] == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "the old {path:?} is still there");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(header(app.data.path())["users"], 1);
    let data = app.stop().await;
    let (app, replayed) = start(at_stop_only(data.path()), data, tokens).await;
    assert_eq!(replayed, 0);
    assert_eq!(app.user_names().await, ["grace"]);
    // The audit index from its snapshot: ada's events are there, her name is not.
    let events = user_events(&app).await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(!serde_json::to_string(&events)
        .unwrap()
        .contains("ada.lovelace"));
    assert!(metric(&app, "roster_audit_snapshot_position").await > 0.0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_kafka_a_restart_replays_only_the_topic_after_the_snapshot() {
    let (brokers, topic) = (tansu_brokers(), unique_topic());
    let data = tempfile::tempdir().unwrap();
    let on_kafka = |d: &Path| Settings {
        snapshot_every_records: 1_000_000,
        ..kafka_settings(d, &brokers, &topic)
    };
    let app = TestApp::spawn_with(on_kafka(data.path()), data).await;
    create(&app, &["ada", "grace"]).await;
    let tokens = app.tokens();
    let data = app.stop().await;
    let first = header(data.path());
    let listed = first["next_positions"].as_array().unwrap().len();
    assert!((1..=3).contains(&listed), "{first}");
    assert_eq!(first["log"], format!("kafka:{topic}"));

    let (app, replayed) = start(on_kafka(data.path()), data, tokens.clone()).await;
    assert_eq!(replayed, 0);
    assert_eq!(app.user_names().await, ["ada", "grace"]);
    create(&app, &["edsger"]).await;
    // Stopped without a snapshot at stop: the next start replays the create.
    let data = app.stop().await;
    let (app, replayed) = start(
        Settings {
            snapshot_every_records: 0,
            ..on_kafka(data.path())
        },
        data,
        tokens.clone(),
    )
    .await;
    assert_eq!(
        replayed, 0,
        "the stop before wrote a snapshot with the create"
    );
    let data = app.stop().await;

    // The same data directory on another topic: its snapshot is not used, the topic is
    // replayed whole.
    let other = unique_topic();
    let s = Settings {
        snapshot_every_records: 1_000_000,
        ..kafka_settings(data.path(), &brokers, &other)
    };
    let app = Application::build(s).await.unwrap();
    assert!(app.first_start.is_some(), "a new topic starts first");
    drop(app);
}

/// The audit trail's events about users, oldest first, as the admin API renders them.
async fn user_events(app: &TestApp) -> Vec<Value> {
    let filter = q("resource.type eq \"user\"");
    let (body, _) = audit(app, &format!("/events?filter={filter}&limit=1000")).await;
    body["events"].as_array().unwrap().clone()
}

/// The value of a metric without labels.
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_audit_index_starts_from_its_snapshot_and_answers_as_a_whole_fold_does() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(at_stop_only(data.path()), data).await;
    create(&app, &["ada"]).await;
    let (s, grace) = app.create_user("default", &app.scim_token, "grace").await;
    assert_eq!(s, 201, "{grace}");
    let url = format!(
        "{}/Users/{}",
        app.scim("default"),
        grace["id"].as_str().unwrap()
    );
    assert_eq!(app.delete(&url, &app.scim_token).await, 204);
    let folded = user_events(&app).await;
    assert_eq!(folded.len(), 3, "{folded:?}");
    let tokens = app.tokens();
    let data = app.stop().await;
    let first = header_of(&audit_file(data.path()));
    assert_eq!(first["of"], "audit", "{first}");
    assert!(first["entries"].as_u64().unwrap() >= 3, "{first}");
    let mode = std::fs::metadata(audit_file(data.path()))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // From the snapshot: the same events, names and changes (grace's delete included).
    let (app, _) = start(at_stop_only(data.path()), data, tokens.clone()).await;
    assert_eq!(user_events(&app).await, folded);
    let loaded = metric(&app, "roster_audit_snapshot_position").await;
    assert_eq!(
        loaded,
        first["next_positions"][0].as_f64().unwrap(),
        "the index was loaded from the snapshot"
    );
    // It goes on from there.
    create(&app, &["edsger"]).await;
    let grown = user_events(&app).await;
    assert_eq!(grown.len(), 4);
    assert_eq!(grown[..3], folded[..]);
    let data = app.stop().await;

    let (app, _) = start(at_stop_only(data.path()), data, tokens.clone()).await;
    assert_eq!(user_events(&app).await, grown);
    let data = app.stop().await;
    // Without the snapshot, the whole log folded gives the same.
    std::fs::rename(audit_file(data.path()), data.path().join("aside")).unwrap();
    let (app, _) = start(at_stop_only(data.path()), data, tokens.clone()).await;
    assert_eq!(user_events(&app).await, grown);
    assert_eq!(metric(&app, "roster_audit_snapshot_position").await, 0.0);
    let data = app.stop().await;
    // A damaged one is set aside: the whole log again.
    let path = audit_file(data.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 20;
    bytes[at] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let (app, _) = start(at_stop_only(data.path()), data, tokens).await;
    assert_eq!(user_events(&app).await, grown);
    assert_eq!(metric(&app, "roster_audit_snapshot_position").await, 0.0);
    app.stop().await;
}
