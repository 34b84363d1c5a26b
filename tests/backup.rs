//! `roster backup` of the embedded data directory: taken while clients write (and view
//! snapshots are written), the copy starts and serves every change acknowledged before the
//! backup began; a backup killed half-way leaves no target that looks whole; a target that
//! exists, or a folder that is no data directory, is refused.

mod common;

use common::setups::{audit, q};
use common::{settings, TestApp};
use roster::app::Application;
use roster::config::Settings;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WRITERS: usize = 4;
const PER_WRITER: usize = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_clients_write_serves_everything_acknowledged_before_it() {
    let data = tempfile::tempdir().unwrap();
    // Snapshots written all along, so one is copied mid-stream too.
    let s = Settings {
        snapshot_every_records: 40,
        snapshot_min_interval_ms: 0,
        ..settings(data.path())
    };
    let app = Arc::new(TestApp::spawn_with(s, data).await);
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (app, acknowledged) = (app.clone(), acknowledged.clone());
            tokio::spawn(async move {
                for i in 0..PER_WRITER {
                    let name = format!("w{w}-{i}");
                    let (s, body) = app.create_user("default", &app.scim_token, &name).await;
                    assert_eq!(s, 201, "{body}");
                    acknowledged.lock().unwrap().push(name);
                }
            })
        })
        .collect();
    // Let some writes land, then back up while the rest go on.
    while acknowledged.lock().unwrap().len() < 150 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before: BTreeSet<String> = acknowledged.lock().unwrap().iter().cloned().collect();
    let holder = tempfile::tempdir().unwrap();
    let target = holder.path().join("backup");
    let (from, to) = (app.data.path().to_owned(), target.clone());
    let manifest = tokio::task::spawn_blocking(move || roster::backup::backup(&from, &to))
        .await
        .unwrap()
        .unwrap();
    let during = acknowledged.lock().unwrap().len();
    for w in writers {
        w.await.unwrap();
    }
    assert!(
        during < WRITERS * PER_WRITER,
        "the backup ran while clients wrote"
    );
    assert!(manifest.records > 150 && manifest.secret_key && manifest.key_files > 0);
    assert!(target.join("BACKUP.json").exists());
    assert!(!holder.path().join("backup.partial").exists());
    let tokens = app.tokens();
    let app = Arc::try_unwrap(app).ok().unwrap();
    app.stop().await;

    // The copy is a data directory: it starts, and serves everything acknowledged before the
    // backup began (and possibly some of what followed).
    let restored = Application::build(settings(&target)).await.unwrap();
    assert!(restored.first_start.is_none());
    if manifest.snapshot {
        assert!(
            restored.replayed < manifest.records,
            "the copied snapshot was used"
        );
    }
    let restored = TestApp::serve(restored, holder, tokens);
    let names: BTreeSet<String> = restored.user_names().await.into_iter().collect();
    let missing: Vec<_> = before.difference(&names).collect();
    assert!(missing.is_empty(), "lost by the backup: {missing:?}");
    assert!(names.len() >= before.len());
    // The audit trail of the copy (from its copied snapshot, if there was one, and the log
    // after it) holds every create too.
    let filter = q("type eq \"user.created\"");
    let (found, _) = audit(&restored, &format!("/events?filter={filter}&limit=1000")).await;
    let audited: BTreeSet<String> = found["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"]["name"].as_str().unwrap().to_owned())
        .collect();
    let unaudited: Vec<_> = before.difference(&audited).collect();
    assert!(
        unaudited.is_empty(),
        "not in the copy's audit trail: {unaudited:?}"
    );
    restored.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_killed_half_way_leaves_no_target_and_the_next_one_succeeds() {
    let app = TestApp::spawn().await;
    for i in 0..100 {
        let (s, _) = app
            .create_user("default", &app.scim_token, &format!("u{i}"))
            .await;
        assert_eq!(s, 201);
    }
    let holder = tempfile::tempdir().unwrap();
    let target = holder.path().join("b");
    let data = app.data.path().to_str().unwrap().to_owned();
    // Killed at increasing moments: whatever is left is either nothing called `b`, or a
    // whole backup.
    for wait_ms in [0u64, 2, 5, 10, 20] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(["backup", "--data-dir", &data, target.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(wait_ms));
        let _ = child.kill();
        let _ = child.wait();
        if target.exists() {
            assert!(
                target.join("BACKUP.json").exists(),
                "a target without its manifest"
            );
            std::fs::remove_dir_all(&target).unwrap();
        }
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["backup", "--data-dir", &data, target.to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("backed up") && said.contains("the secret key"),
        "{said}"
    );
    assert!(!holder.path().join("b.partial").exists());

    // A second backup into the same folder, and a folder that holds no log, are refused.
    let again = roster::backup::backup(app.data.path(), &target);
    assert!(matches!(again, Err(roster::backup::BackupError::Exists(_))));
    let empty = tempfile::tempdir().unwrap();
    let none = roster::backup::backup(empty.path(), &holder.path().join("c"));
    assert!(matches!(none, Err(roster::backup::BackupError::NoLog(_))));
    app.stop().await;
}
