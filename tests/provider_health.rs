//! A provider's health as an operator sees it, against real remotes (scim2-server, and a
//! small remote that refuses some users): the check of the remote when a provider is
//! created; errors that name the URL and the cause and are cleared once they no longer hold
//! (a remote that is down, then up, then down, then up); per-object errors and next attempts;
//! full-sync counts that add up; and a backup restored without, then with, `secret.key`.

mod common;

use common::remote::{
    create_provider, eventually, fast_settings, free_port, refusing_remote, spawn, status, Remote,
    REMOTE_TOKEN,
};
use common::{copy_dir, TestApp};
use serde_json::{json, Value};

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_down_then_up_then_down_is_reported_with_its_url_and_cause_and_cleared_when_back()
{
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let app = spawn().await;
    let at = format!("127.0.0.1:{port}");

    // Created while the remote is down: saved, with a warning that says where and why.
    let (s, created) = app
        .post(
            &format!("{}/admin/v1/providers", app.root),
            &app.admin_token,
            json!({"name": "flaky", "base_url": base,
                   "auth": {"type": "bearer", "token": REMOTE_TOKEN}}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let warning = text(&created["warnings"][0]);
    assert!(
        warning.contains(&at) && warning.to_lowercase().contains("connection refused"),
        "{created}"
    );
    let st = eventually(30, || status(&app, "flaky"), |s| !s["error"].is_null()).await;
    let error = text(&st["error"]);
    assert!(
        error.contains(&at) && error.to_lowercase().contains("connection refused"),
        "{st}"
    );

    // Up: the error goes once the bootstrap has run.
    let mut remote = Remote::start_on(port).await;
    app.create_user("default", &app.scim_token, "first@example.com")
        .await;
    eventually(60, || remote.users(), |u| u.len() == 1).await;
    let st = eventually(
        30,
        || status(&app, "flaky"),
        |s| s["state"] == "running" && s["error"].is_null() && s["pending"] == 0,
    )
    .await;
    assert_eq!(st["failing"], json!([]), "{st}");

    // Down again: the object that cannot go shows its error and next attempt, and so does
    // the provider.
    remote.stop();
    let (_, user) = app
        .create_user("default", &app.scim_token, "second@example.com")
        .await;
    let st = eventually(
        30,
        || status(&app, "flaky"),
        |s| s["failing"].as_array().is_some_and(|f| !f.is_empty()),
    )
    .await;
    let failing = &st["failing"][0];
    assert_eq!(failing["id"], user["id"], "{st}");
    assert!(failing["attempts"].as_u64().unwrap() >= 1, "{st}");
    assert!(text(&failing["error"]).contains(&at), "{st}");
    assert!(
        text(&st["error"]).contains("objects failing") && text(&st["error"]).contains(&at),
        "{st}"
    );
    let st = eventually(
        30,
        || status(&app, "flaky"),
        |s| s["failing"][0]["next_attempt"].is_string(),
    )
    .await;
    assert_eq!(st["parked"], json!([]), "{st}");

    // Up again (empty: scim2-server keeps nothing): the user arrives and the errors go.
    let remote = Remote::start_on(port).await;
    eventually(
        60,
        || remote.users(),
        |u| u.contains_key("second@example.com"),
    )
    .await;
    let st = eventually(
        30,
        || status(&app, "flaky"),
        |s| s["error"].is_null() && s["pending"] == 0 && s["in_flight"] == 0,
    )
    .await;
    assert_eq!(st["failing"], json!([]), "{st}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_report_adds_up_and_a_parked_object_is_not_also_pending() {
    let (base, _users) = refusing_remote().await;
    let data = tempfile::tempdir().unwrap();
    let settings = roster::config::Settings {
        provider_max_attempts: 3,
        ..fast_settings(data.path())
    };
    let app = TestApp::spawn_with(settings, data).await;
    for name in [
        "bad@example.com",
        "a@example.com",
        "b@example.com",
        "c@example.com",
    ] {
        let (s, _) = app.create_user("default", &app.scim_token, name).await;
        assert_eq!(s, 201);
    }
    // Created after the users: its bootstrap compares all four.
    let (s, created) = app
        .post(
            &format!("{}/admin/v1/providers", app.root),
            &app.admin_token,
            json!({"name": "strict", "base_url": base, "auth": {"type": "bearer", "token": "t"}}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(
        created["warnings"],
        json!([]),
        "the remote answers: {created}"
    );
    let st = eventually(
        30,
        || status(&app, "strict"),
        |s| s["last_full_sync"]["finished"].is_string() && s["in_flight"] == 0,
    )
    .await;
    let r = &st["last_full_sync"];
    assert_eq!(
        (
            &r["compared"],
            &r["created"],
            &r["unchanged"],
            &r["updated"],
            &r["failed"]
        ),
        (&json!(4), &json!(3), &json!(0), &json!(0), &json!(1)),
        "{st}"
    );
    assert_eq!(st["parked"].as_array().unwrap().len(), 1, "{st}");
    assert_eq!(
        st["pending"], 0,
        "a parked object is not also pending: {st}"
    );
    let error = text(&st["error"]);
    assert!(
        error.contains("1 objects parked") && error.contains("refused by policy"),
        "{st}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restored_with_its_secret_key_runs_its_providers_and_without_it_says_why_not() {
    let remote = Remote::start().await;
    let app = spawn().await;
    create_provider(&app, "restored", &remote, json!({})).await;
    app.create_user("default", &app.scim_token, "before@example.com")
        .await;
    eventually(60, || remote.users(), |u| u.len() == 1).await;
    let tokens = app.tokens();
    let data = app.stop().await;

    // The backup procedure of docs/operations.md: the log, the data keys and secret.key.
    let copy = |with_key: bool| {
        let fresh = tempfile::tempdir().unwrap();
        copy_dir(&data.path().join("log"), &fresh.path().join("log"));
        copy_dir(&data.path().join("keys"), &fresh.path().join("keys"));
        if with_key {
            std::fs::copy(
                data.path().join("secret.key"),
                fresh.path().join("secret.key"),
            )
            .unwrap();
        }
        fresh
    };

    // Without the key: the users' data keys do not open, and the server says why instead of
    // starting (the providers' credentials would not open either).
    let without = copy(false);
    let refused = roster::app::Application::build(common::settings(without.path()))
        .await
        .err()
        .expect("a restore without its secret key does not start");
    let why = format!("{refused:#}");
    assert!(
        why.contains("secret key") && why.contains("secret.key"),
        "{why}"
    );

    // With it: the provider runs and carries what changes next.
    let app = TestApp::restart(copy(true), tokens).await;
    app.create_user("default", &app.scim_token, "after@example.com")
        .await;
    eventually(60, || remote.users(), |u| u.len() == 2).await;
    let st = eventually(
        30,
        || status(&app, "restored"),
        |s| s["pending"] == 0 && s["in_flight"] == 0,
    )
    .await;
    assert_eq!(st["state"], "running", "{st}");
    assert!(st["error"].is_null(), "{st}");
    app.stop().await;
}
