//! Passwords: stored only as Argon2id hashes (never in the log, never returned), or refused by
//! configuration.

mod common;

use common::TestApp;
use roster::config::PasswordPolicy;
use serde_json::json;

/// Everything the log holds, as text.
fn log_text(app: &TestApp) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(app.data.path().join("log")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "log") {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(p).unwrap()));
        }
    }
    out
}

/// The PHC strings of every password hash in the log, in order, opened with the data keys
/// they are sealed under (ADR 0014).
async fn hashes(app: &TestApp) -> Vec<String> {
    common::opened_records(app.data.path())
        .await
        .iter()
        .flat_map(|r| &r.events)
        .filter_map(|e| match &e.event {
            roster_events::Event::UserPasswordSet(p) => p.hash.value().cloned(),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_stored_only_as_argon2id_hashes_and_never_returned() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let users = format!("{}/Users", app.scim("default"));
    let (s, u) = app
        .post(
            &users,
            &t,
            json!({"userName": "okta.user", "password": "1mz050nq", "active": true}),
        )
        .await;
    assert_eq!(s, 201);
    assert!(u.get("password").is_none());
    let url = u["meta"]["location"].as_str().unwrap().to_owned();
    assert_eq!(
        u["meta"]["version"], "W/\"2\"",
        "created, then its password set"
    );

    let patch = |ops: serde_json::Value| {
        app.http.patch(&url).bearer_auth(&t).header("content-type", "application/scim+json")
            .body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}).to_string())
            .send()
    };
    let r = patch(json!([{"op": "replace", "path": "password", "value": "n3w-secret"}]))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r =
        patch(json!([{"op": "replace", "value": {"password": "th1rd-secret", "active": false}}]))
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["active"], false);
    assert!(body.get("password").is_none());
    let (s, _) = app
        .put(
            &url,
            &t,
            json!({"userName": "okta.user", "password": "f0urth"}),
        )
        .await;
    assert_eq!(s, 200);

    let text = log_text(&app);
    for plain in ["1mz050nq", "n3w-secret", "th1rd-secret", "f0urth"] {
        assert!(!text.contains(plain), "{plain} reached the log");
    }
    assert!(!text.contains("$argon2id$"), "the hashes are sealed too");
    let hashes = hashes(&app).await;
    assert_eq!(hashes.len(), 4);
    assert!(roster::auth::verify_password("1mz050nq", &hashes[0]));
    assert!(roster::auth::verify_password("n3w-secret", &hashes[1]));
    assert!(roster::auth::verify_password("th1rd-secret", &hashes[2]));
    assert!(roster::auth::verify_password("f0urth", &hashes[3]));
    let (_, got) = app.get(&url, &t).await;
    assert!(got.get("password").is_none());
    let (s, _) = app
        .post(&users, &t, json!({"userName": "x", "password": 42}))
        .await;
    assert_eq!(s, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refuse_policy_rejects_passwords_and_writes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let settings = roster::config::Settings {
        password_policy: PasswordPolicy::Refuse,
        ..common::settings(data.path())
    };
    let app = TestApp::spawn_with(settings, data).await;
    let t = app.scim_token.clone();
    let users = format!("{}/Users", app.scim("default"));
    let (s, body) = app
        .post(&users, &t, json!({"userName": "p", "password": "secret"}))
        .await;
    assert_eq!((s, body["scimType"].as_str()), (400, Some("invalidValue")));
    let (s, u) = app.post(&users, &t, json!({"userName": "p"})).await;
    assert_eq!(s, 201);
    let r = app.http.patch(u["meta"]["location"].as_str().unwrap()).bearer_auth(&t).header("content-type", "application/scim+json")
        .body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "password", "value": "secret"}]}).to_string())
        .send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(!log_text(&app).contains("secret"));
}
