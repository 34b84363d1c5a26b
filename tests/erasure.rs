//! Erasure of a person's personal data (GDPR article 17, docs/adr/0014), on every setup: the
//! log never holds a user's document in clear; after `POST /admin/v1/erasures` the user is
//! gone from the views and its groups, its history still shows every event (when, by whom)
//! with the personal values shown as erased, its name is in no search and no export, the
//! chain still verifies, and all of it holds after a restart.

mod common;

use common::setups::{audit, events_of, q, Setup, Shared};
use common::TestApp;
use serde_json::{json, Value};

common::setups::on_every_setup!(
    an_erased_person_leaves_every_view_and_their_history_keeps_only_that_things_happened,
    a_user_deleted_before_is_erased_all_the_same_and_refusals_are_clear,
);

/// A server of `setup`, and how to start it again.
async fn start(setup: Setup) -> (TestApp, Shared) {
    let shared = Shared::new(setup).await;
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(shared.settings(data.path()), data).await;
    (app, shared)
}

async fn erase(app: &TestApp, body: Value) -> (u16, Value) {
    app.post(
        &format!("{}/admin/v1/erasures", app.root),
        &app.admin_token,
        body,
    )
    .await
}

/// Every byte of the file log's segments, as text (lossy).
fn segments(data: &std::path::Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(data.join("log")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    out
}

const PERSONAL: [&str; 5] = ["Lovelace", "lovelace", "ada@", "Analytical", "Countess"];

fn holds_personal_data(text: &str) -> Option<&'static str> {
    PERSONAL.into_iter().find(|p| text.contains(p))
}

async fn an_erased_person_leaves_every_view_and_their_history_keeps_only_that_things_happened(
    setup: Setup,
) {
    let (app, shared) = start(setup).await;
    let users = format!("{}/Users", app.scim("default"));
    let (s, ada) = app
        .post(
            &users,
            &app.scim_token,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "ada.lovelace@example.com",
                "name": {"givenName": "Ada", "familyName": "Lovelace"},
                "emails": [{"value": "ada@example.com", "primary": true}],
                "password": "Analytical-Engine-1843",
            }),
        )
        .await;
    assert_eq!(s, 201, "{ada}");
    let id = ada["id"].as_str().unwrap().to_owned();
    let (s, group) = app
        .post(
            &format!("{}/Groups", app.scim("default")),
            &app.scim_token,
            json!({"displayName": "Engine team", "members": [{"value": id}]}),
        )
        .await;
    assert_eq!(s, 201, "{group}");
    let gid = group["id"].as_str().unwrap().to_owned();
    let (s, _) = app
        .patch(
            &format!("{users}/{id}"),
            &app.scim_token,
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "path": "displayName",
                                   "value": "Countess Lovelace"}]}),
        )
        .await;
    assert_eq!(s, 200);
    // Before any erasure, the history reads in clear (to admins) ...
    let (before, _) = audit(&app, &format!("/resources/{id}/history")).await;
    assert!(before.to_string().contains("Countess Lovelace"), "{before}");
    // ... but the log holds the person's data sealed.
    if matches!(setup, Setup::Memory | Setup::Postgres) {
        let stored = segments(app.data.path());
        assert!(stored.contains("user.created"));
        assert_eq!(holds_personal_data(&stored), None, "in clear in the log");
    }

    let (s, done) = erase(&app, json!({"user": id, "reference": "DSAR-2026-118"})).await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["recorded"], true, "{done}");
    assert_eq!(done["directory"], "default");
    assert_eq!(done["inClear"], 0);
    let key = done["key"]
        .as_str()
        .expect("a data key was destroyed")
        .to_owned();

    check_erased(&app, &id, &gid).await;
    if matches!(setup, Setup::Postgres | Setup::KafkaPostgres) {
        // The views and the audit projection folded again from the log read the same.
        assert_eq!(common::setups::rebuild(&app).await, 2);
        check_erased(&app, &id, &gid).await;
    }

    // After a restart, the log is read back with the key gone: the same answers.
    let tokens = app.tokens();
    let data = app.stop().await;
    if matches!(setup, Setup::Memory | Setup::Postgres) {
        let keys = std::fs::read_dir(data.path().join("keys"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect::<String>();
        assert!(
            keys.contains(&format!("{key} -\n")),
            "destroyed in the key files"
        );
    }
    let again = TestApp::restart_with(shared.settings(data.path()), data, tokens).await;
    check_erased(&again, &id, &gid).await;
    // Erasing again records nothing more.
    let (s, twice) = erase(&again, json!({"user": id})).await;
    assert_eq!(s, 200, "{twice}");
    assert_eq!(twice["recorded"], false, "{twice}");
    let (history, _) = audit(&again, &format!("/resources/{id}/history")).await;
    assert_eq!(events_of(&history).len(), 4, "{history}");
}

/// What an erased person looks like through every reading the server offers.
async fn check_erased(app: &TestApp, id: &str, gid: &str) {
    let users = format!("{}/Users", app.scim("default"));
    let (s, _) = app.get(&format!("{users}/{id}"), &app.scim_token).await;
    assert_eq!(s, 404, "an erased user is not served");
    let (s, g) = app
        .get(
            &format!("{}/Groups/{gid}", app.scim("default")),
            &app.scim_token,
        )
        .await;
    assert_eq!(s, 200);
    assert!(g["members"].as_array().is_none_or(|m| m.is_empty()), "{g}");

    let (history, _) = audit(app, &format!("/resources/{id}/history")).await;
    assert_eq!(holds_personal_data(&history.to_string()), None, "{history}");
    let events = events_of(&history);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "user.created",
            "user.password_set",
            "user.replaced",
            "user.erased"
        ],
        "every event stays in the history: {history}"
    );
    for e in events {
        assert_eq!(e["target"]["name"], Value::Null, "{e}");
        assert!(e["time"].is_string() && e["actor"].is_object(), "{e}");
    }
    let erased = json!({"path": null, "old": null, "new": null, "erased": true});
    assert_eq!(events[0]["changes"], json!([erased]), "{history}");
    assert_eq!(
        events[1]["changes"],
        json!([{"path": "password", "old": null, "new": null, "redacted": true}]),
        "{history}"
    );
    assert_eq!(events[2]["changes"], json!([erased]), "{history}");
    assert_eq!(events[3]["changes"], json!([erased]), "{history}");
    assert_eq!(events[3]["details"]["in_clear"], 0, "{history}");
    assert_eq!(
        events[3]["details"]["reference"], "DSAR-2026-118",
        "{history}"
    );
    assert_eq!(events[0]["actor"]["kind"], "source");
    assert_eq!(events[3]["actor"]["kind"], "admin");
    assert_eq!(
        events[3]["message"],
        format!(
            "user {id} had its personal data erased by admin token {}",
            events[3]["actor"]["id"].as_str().unwrap()
        ),
        "{history}"
    );
    // No search finds the person by name, and an export holds nothing of them.
    for word in ["Lovelace", "ada.lovelace"] {
        let (found, _) = audit(app, &format!("/events?q={}", q(word))).await;
        assert!(events_of(&found).is_empty(), "{word}: {found}");
    }
    let export = reqwest::Client::new()
        .get(format!("{}/admin/v1/audit/export", app.root))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(export.contains("user.erased"), "{export}");
    // Reads of the audit trail keep the query an admin typed, the searches above included.
    let about_the_person: String = export
        .lines()
        .filter(|l| !l.contains("\"type\":\"audit.read\""))
        .collect();
    assert_eq!(holds_personal_data(&about_the_person), None, "{export}");
    // What the user looked like at any moment can no longer be read.
    let (s, body) = app
        .get(
            &format!(
                "{}/admin/v1/audit/resources/{id}/as-of?position=100000",
                app.root
            ),
            &app.admin_token,
        )
        .await;
    assert_eq!(s, 404);
    assert!(
        body["detail"].as_str().unwrap().contains("erased"),
        "{body}"
    );
    // The chain still checks out: erasure changed no stored byte.
    let (s, report) = app
        .get(
            &format!("{}/admin/v1/audit/verify", app.root),
            &app.admin_token,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(report["ok"], true, "{report}");
}

async fn a_user_deleted_before_is_erased_all_the_same_and_refusals_are_clear(setup: Setup) {
    let (app, _shared) = start(setup).await;
    let (s, bob) = app
        .create_user("default", &app.scim_token, "bob.lovelace@example.com")
        .await;
    assert_eq!(s, 201);
    let id = bob["id"].as_str().unwrap().to_owned();
    let url = format!("{}/Users/{id}", app.scim("default"));
    assert_eq!(app.delete(&url, &app.scim_token).await, 204);

    let (s, done) = erase(&app, json!({"user": id})).await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["recorded"], true);
    let (history, _) = audit(&app, &format!("/resources/{id}/history")).await;
    let types: Vec<&str> = events_of(&history)
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["user.created", "user.deleted", "user.erased"]);
    assert_eq!(holds_personal_data(&history.to_string()), None, "{history}");
    let versions: Vec<&str> = events_of(&history)
        .iter()
        .map(|e| e["target"]["etag"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["W/\"1\"", "W/\"2\"", "W/\"3\""]);

    // The userName is free again, for a new person with a new id and a new key.
    let (s, again) = app
        .create_user("default", &app.scim_token, "bob.lovelace@example.com")
        .await;
    assert_eq!(s, 201, "{again}");
    assert_ne!(again["id"], bob["id"]);

    // Refusals: an unknown id, a group, a bad body, a source token.
    let (s, body) = erase(&app, json!({"user": uuid::Uuid::now_v7()})).await;
    assert_eq!(s, 404, "{body}");
    let (s, group) = app
        .post(
            &format!("{}/Groups", app.scim("default")),
            &app.scim_token,
            json!({"displayName": "Not a person"}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, body) = erase(&app, json!({"user": group["id"]})).await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(body["scimType"], "invalidValue");
    let (s, body) = erase(&app, json!({"user": "not-an-id"})).await;
    assert_eq!(s, 400, "{body}");
    let (s, body) = erase(
        &app,
        json!({"user": again["id"], "reference": "x".repeat(201)}),
    )
    .await;
    assert_eq!(s, 400, "{body}");
    let (s, _) = app
        .post(
            &format!("{}/admin/v1/erasures", app.root),
            &app.scim_token,
            json!({"user": again["id"]}),
        )
        .await;
    assert_eq!(s, 401);
    let (s, _) = app
        .get(
            &format!(
                "{}/Users/{}",
                app.scim("default"),
                again["id"].as_str().unwrap()
            ),
            &app.scim_token,
        )
        .await;
    assert_eq!(s, 200, "nothing refused changed anything");
}

/// Providers carry an erasure downstream as a delete: the remote (scim2-server, an
/// independent SCIM server) loses the user and the group there loses the member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_user_is_deleted_on_the_remote_of_every_provider() {
    use common::remote::{create_group, create_provider, eventually, Remote};
    let remote = Remote::start().await;
    let app = common::remote::spawn().await;
    create_provider(&app, "downstream", &remote, json!({})).await;
    let (_, ada) = app
        .create_user("default", &app.scim_token, "ada.lovelace@example.com")
        .await;
    let (_, grace) = app
        .create_user("default", &app.scim_token, "grace.hopper@example.com")
        .await;
    let (ada, grace) = (ada["id"].as_str().unwrap(), grace["id"].as_str().unwrap());
    create_group(&app, "Engine team", &[ada, grace]).await;
    eventually(
        60,
        || remote.groups(),
        |g| {
            g.get("Engine team")
                .is_some_and(|(_, members)| members.len() == 2)
        },
    )
    .await;

    let (s, done) = erase(&app, json!({"user": ada})).await;
    assert_eq!(s, 200, "{done}");
    let users = eventually(60, || remote.users(), |u| u.len() == 1).await;
    assert!(users.contains_key("grace.hopper@example.com"), "{users:?}");
    let groups = eventually(
        60,
        || remote.groups(),
        |g| {
            g.get("Engine team")
                .is_some_and(|(_, members)| members.len() == 1)
        },
    )
    .await;
    assert_eq!(
        groups["Engine team"].1,
        ["grace.hopper@example.com".to_owned()].into(),
        "{groups:?}"
    );
}

/// Two processes on one Kafka topic (tansu), with their views in one PostgreSQL database or
/// each in memory: an erasure made through one is seen by the other, which reads the key's
/// destruction from the keys topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_through_one_replica_is_seen_by_the_other() {
    for setup in [Setup::KafkaPostgres, Setup::KafkaMemory] {
        let shared = Shared::new(setup).await;
        let data = tempfile::tempdir().unwrap();
        let a = TestApp::spawn_with(shared.settings(data.path()), data).await;
        let b_data = tempfile::tempdir().unwrap();
        let b = TestApp::spawn_joining(shared.settings(b_data.path()), &a).await;
        let (s, ada) = a
            .create_user("default", &a.scim_token, "ada.lovelace@example.com")
            .await;
        assert_eq!(s, 201);
        let id = ada["id"].as_str().unwrap().to_owned();
        // B learns the user (and its key) from the log.
        let history = format!("/resources/{id}/history");
        common::remote::eventually(
            30,
            || async { audit(&b, &history).await.0 },
            |h| h.to_string().contains("ada.lovelace"),
        )
        .await;

        let (s, done) = erase(&b, json!({"user": id})).await;
        assert_eq!(s, 200, "{setup:?}: {done}");
        common::remote::eventually(
            30,
            || async { audit(&a, &history).await.0 },
            |h| {
                events_of(h)
                    .last()
                    .is_some_and(|e| e["type"] == "user.erased")
                    && holds_personal_data(&h.to_string()).is_none()
            },
        )
        .await;
        let users = format!("{}/Users/{id}", a.scim("default"));
        common::remote::eventually(
            30,
            || async { a.get(&users, &a.scim_token).await.0 },
            |s| *s == 404,
        )
        .await;
        let (found, _) = audit(&a, &format!("/events?q={}", q("Lovelace"))).await;
        assert!(events_of(&found).is_empty(), "{setup:?}: {found}");
        drop((a, b));
    }
}
