//! PostgreSQL restarted under a serving Roster: reads and writes fail cleanly with 503 while it
//! is down, Roster recovers by itself when it is back, and the views end equal to a fresh
//! replay of the log (no event skipped, none applied twice).
//!
//! It stops and starts the test command's PostgreSQL cluster, so it is the only test in this
//! binary (test binaries run one after another).

mod common;

use common::TestApp;
use serde_json::{json, Value};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn pg_ctl(args: &[&str]) {
    let bin = std::env::var("ROSTER_TEST_PG_BIN").expect("ROSTER_TEST_PG_BIN: run scripts/test.sh");
    let data = std::env::var("ROSTER_TEST_PG_DATA").unwrap();
    let runas = std::env::var("ROSTER_TEST_PG_RUNAS").unwrap_or_default();
    let pg_ctl = format!("{bin}/pg_ctl");
    let mut cmd = if runas.is_empty() {
        Command::new(&pg_ctl)
    } else {
        let mut c = Command::new("runuser");
        c.args(["-u", &runas, "--", &pg_ctl]);
        c
    };
    let log = std::path::Path::new(&data)
        .parent()
        .unwrap()
        .join("postgres.log");
    let status = cmd
        .args(["-D", &data, "-w", "-t", "60", "-l", log.to_str().unwrap()])
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "pg_ctl {args:?} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_while_serving_fails_cleanly_and_recovers_by_itself() {
    let url = common::fresh_database().await;
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(common::pg_settings(data.path(), &url), data).await;
    let token = app.scim_token.clone();
    let users = format!("{}/Users", app.scim("default"));
    let mut ids = Vec::new();
    for i in 0..20 {
        let (status, v) = app.create_user("default", &token, &format!("pre{i}")).await;
        assert_eq!(status, 201);
        ids.push(v["id"].as_str().unwrap().to_owned());
    }

    // A client keeps writing through the outage; it keeps what was acknowledged.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (http, users, token, acked, stop) = (
            app.http.clone(),
            users.clone(),
            token.clone(),
            acked.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut statuses = std::collections::BTreeSet::new();
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let r = http
                    .post(&users)
                    .bearer_auth(&token)
                    .header("content-type", "application/scim+json")
                    .body(json!({"userName": format!("during{i}")}).to_string())
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                statuses.insert(status);
                let v: Value = r.json().await.unwrap();
                if status == 201 {
                    acked
                        .lock()
                        .unwrap()
                        .push(v["id"].as_str().unwrap().to_owned());
                } else {
                    assert_eq!(status, 503, "{v}");
                    assert_eq!(v["status"], "503");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            statuses
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    pg_ctl(&["-m", "fast", "stop"]);
    // A user this process wrote is answered from its cache, exact without the tables: with the
    // file log nothing else folds into them, and nothing can while they are down.
    let (status, body) = app.get(&format!("{users}/{}", ids[0]), &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["userName"], "pre0");
    // What the cache does not hold needs the tables: 503, never a 404 or a 500.
    let unknown = uuid::Uuid::new_v4();
    let (status, body) = app.get(&format!("{users}/{unknown}"), &token).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "503");
    let (status, body) = app
        .get(
            &format!("{users}?filter=userName%20eq%20%22pre1%22"),
            &token,
        )
        .await;
    assert_eq!(status, 503, "{body}");
    let ready = app
        .http
        .get(format!("{}/readyz", app.root))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let started = Instant::now();
    let (status, _) = app.create_user("default", &token, "while-down").await;
    assert_eq!(status, 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a write while PostgreSQL is down fails fast"
    );
    assert_eq!(
        app.http
            .get(format!("{}/healthz", app.root))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    pg_ctl(&["start"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = app
            .http
            .get(format!("{}/readyz", app.root))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Roster did not become ready again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Writes go through again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().is_empty() || {
        let n = acked.lock().unwrap().len();
        tokio::time::sleep(Duration::from_millis(300)).await;
        acked.lock().unwrap().len() == n
    } {
        assert!(Instant::now() < deadline, "writes did not resume");
    }
    stop.store(true, Ordering::Relaxed);
    let statuses = writer.await.unwrap();
    assert!(statuses.contains(&201), "{statuses:?}");

    let acked = acked.lock().unwrap().clone();
    for id in ids.iter().chain(&acked) {
        let (status, _) = app.get(&format!("{users}/{id}"), &token).await;
        assert_eq!(status, 200, "acknowledged user {id} missing");
    }
    let data = app.stop().await;

    common::assert_pg_views_equal_a_replay(data.path(), &url).await;
}
