//! The embedded log never trades acknowledged data for a clean start: damage in the middle of
//! the active segment stops start-up with a message that says where and what to do, `roster
//! log check` and `roster log repair` (the real binary) report and make the cut only when the
//! operator asks, a torn last write is cut with its bytes kept beside the log, and every file
//! of the data directory is readable by its owner only.

mod common;

use common::TestApp;
use roster::app::Application;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn active_segment(data: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(data.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A stopped server's data directory holding `n` acknowledged users (and the first start),
/// with its tokens.
async fn data_with_users(n: usize) -> (tempfile::TempDir, (String, String)) {
    let app = TestApp::spawn().await;
    let token = app.scim_token.clone();
    for i in 0..n {
        let (s, body) = app
            .create_user("default", &token, &format!("user{i}"))
            .await;
        assert_eq!(s, 201, "{body}");
    }
    let tokens = app.tokens();
    (app.stop().await, tokens)
}

fn roster(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(args)
        .env("ROSTER_LOG", "warn")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_mid_segment_refuses_to_start_until_the_operator_repairs() {
    let (data, tokens) = data_with_users(40).await;
    let segment = active_segment(data.path());
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&segment, &bytes).unwrap();

    let refused = Application::build(common::settings(data.path())).await;
    let why = format!("{:#}", refused.err().expect("a damaged log must not start"));
    assert!(why.contains(&segment.display().to_string()), "{why}");
    assert!(why.contains("not a torn last write"), "{why}");
    assert!(why.contains("roster log repair"), "{why}");
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        bytes,
        "refusing changes nothing"
    );

    let dir = data.path().display().to_string();
    let (ok, report) = roster(&["log", "check", "--data-dir", &dir]);
    assert!(!ok, "check fails on a damaged log: {report}");
    assert!(report.contains("DAMAGED at byte"), "{report}");

    let (ok, plan) = roster(&["log", "repair", "--data-dir", &dir]);
    assert!(ok, "{plan}");
    assert!(plan.contains("would cut"), "{plan}");
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        bytes,
        "a plan cuts nothing"
    );

    let (ok, done) = roster(&["log", "repair", "--data-dir", &dir, "--yes"]);
    assert!(ok, "{done}");
    // The view snapshot the last stop wrote reflects records past the cut: it is set aside.
    assert!(done.contains("moved the view snapshot"), "{done}");
    assert!(done.contains("moved the audit index's snapshot"), "{done}");
    let snapshots = data.path().join("snapshots");
    assert!(!snapshots.join("views.snap").exists());
    assert!(!snapshots.join("audit.snap").exists());
    assert!(std::fs::read_dir(&snapshots).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("views.snap.cut-")));
    let cut_dir = std::fs::read_dir(data.path().join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("cut-"))
        .expect("the cut bytes are kept");
    let kept: usize = std::fs::read_dir(&cut_dir)
        .unwrap()
        .map(|e| std::fs::metadata(e.unwrap().path()).unwrap().len() as usize)
        .sum();
    let now = std::fs::metadata(&segment).unwrap().len() as usize;
    assert_eq!(now + kept, bytes.len(), "nothing deleted, only moved aside");

    let (ok, report) = roster(&["log", "check", "--data-dir", &dir]);
    assert!(ok, "{report}");
    let app = TestApp::restart(data, tokens.clone()).await;
    let (s, _) = app
        .get(&format!("{}/readyz", app.root), &app.admin_token.clone())
        .await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_write_is_cut_and_its_bytes_kept_beside_the_log() {
    let (data, tokens) = data_with_users(5).await;
    let segment = active_segment(data.path());
    let before = std::fs::read(&segment).unwrap();
    // Half of a frame: a write that never finished, so never acknowledged.
    let mut frame = Vec::new();
    roster::log::frame(br#"{"torn":"write"}"#, &mut frame);
    let torn = &frame[..frame.len() / 2];
    let mut damaged = before.clone();
    damaged.extend_from_slice(torn);
    std::fs::write(&segment, &damaged).unwrap();

    let app = TestApp::restart(data, tokens.clone()).await;
    let token = app.scim_token.clone();
    let (s, list) = app
        .get(&format!("{}/Users?count=0", app.scim("default")), &token)
        .await;
    assert_eq!((s, list["totalResults"].as_u64()), (200, Some(5)));
    let data = app.stop().await;
    let side: Vec<PathBuf> = std::fs::read_dir(data.path().join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".torn-"))
        .collect();
    assert_eq!(side.len(), 1, "{side:?}");
    assert_eq!(std::fs::read(&side[0]).unwrap(), torn);
    assert_eq!(mode(&side[0]), 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_readable_by_its_owner_only() {
    let (data, tokens) = data_with_users(1).await;
    let p = data.path();
    assert_eq!(mode(p), 0o700);
    assert_eq!(mode(&p.join("log")), 0o700);
    assert_eq!(mode(&active_segment(p)), 0o600);
    assert_eq!(mode(&p.join("log/LOCK")), 0o600);
    assert_eq!(mode(&p.join("secret.key")), 0o600);

    // What an older release left readable by others is tightened at the next start.
    let loose = std::fs::Permissions::from_mode(0o644);
    std::fs::set_permissions(active_segment(p), loose.clone()).unwrap();
    std::fs::set_permissions(p.join("secret.key"), loose).unwrap();
    std::fs::set_permissions(p.join("log"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let app = TestApp::restart(data, tokens.clone()).await;
    let data = app.stop().await;
    let p = data.path();
    assert_eq!(mode(&active_segment(p)), 0o600);
    assert_eq!(mode(&p.join("secret.key")), 0o600);
    assert_eq!(mode(&p.join("log")), 0o700);
}
