//! Property mappings through the admin API, on every setup: created, changed and deleted as
//! events (the audit trail names the admin and shows the expression's change), checked before
//! they are saved (a syntax error answers 400 with its line and column, an expression that
//! could run away or that fails on a sample user is refused), previewed on a stored user, and
//! still there after a restart.

mod common;

use common::setups::{audit, q, Setup, Shared};
use common::TestApp;
use serde_json::{json, Value};

common::setups::on_every_setup!(
    mappings_are_checked_saved_as_events_previewed_and_kept,
    refused_mappings_say_why_and_change_nothing,
);

fn url(app: &TestApp, path: &str) -> String {
    format!("{}/admin/v1{path}", app.root)
}

async fn spawn(shared: &Shared) -> (TestApp, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let keep = tempfile::tempdir().unwrap();
    let settings = shared.settings(data.path());
    (TestApp::spawn_with(settings, data).await, keep)
}

const DISPLAY_NAME: &str = r#"{
  "displayName": has(user.name) && has(user.name.givenName) && has(user.name.familyName)
      ? user.name.givenName + " " + user.name.familyName
      : user.userName,
  "userName": user.userName.lowerAscii()
}"#;

async fn mappings_are_checked_saved_as_events_previewed_and_kept(setup: Setup) {
    let shared = Shared::new(setup).await;
    let (app, _keep) = spawn(&shared).await;
    let admin = app.admin_token.clone();

    let body = json!({
        "name": "slack-names",
        "kind": "provider_user",
        "expression": DISPLAY_NAME,
        "description": "Slack wants a display name",
    });
    let (s, created) = app.post(&url(&app, "/mappings"), &admin, body).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["kind"], "provider_user");
    assert_eq!(created["directory"], "default");
    assert_eq!(created["version"], 1);
    assert_eq!(created["expression"], DISPLAY_NAME);

    let contractors = json!({
        "name": "no-contractors",
        "kind": "provider_user",
        "expression": r#"has(user.userType) && user.userType == "Contractor" ? skip : {}"#,
    });
    let (s, body) = app.post(&url(&app, "/mappings"), &admin, contractors).await;
    assert_eq!(s, 201, "{body}");

    // A second mapping of the name: 409, whatever its definition.
    let again = json!({"name": "slack-names", "kind": "provider_group", "expression": "{}"});
    let (s, body) = app.post(&url(&app, "/mappings"), &admin, again).await;
    assert_eq!(s, 409, "{body}");

    let (s, list) = app.get(&url(&app, "/mappings"), &admin).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = list["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{list}");
    assert!(names.contains(&"slack-names") && names.contains(&"no-contractors"));

    // The preview runs the stored expression on a stored user.
    let (s, user) = app
        .post(
            &format!("{}/Users", app.scim("default")),
            &app.scim_token,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "Grace.Hopper@Example.com",
                "name": {"givenName": "Grace", "familyName": "Hopper"},
                "userType": "Contractor",
            }),
        )
        .await;
    assert_eq!(s, 201, "{user}");
    let id = user["id"].as_str().unwrap();
    let (s, preview) = app
        .post(
            &url(&app, "/mappings/slack-names/preview"),
            &admin,
            json!({"id": id}),
        )
        .await;
    assert_eq!(s, 200, "{preview}");
    assert_eq!(preview["outcome"], "attributes", "{preview}");
    assert_eq!(
        preview["attributes"],
        json!({"displayName": "Grace Hopper", "userName": "grace.hopper@example.com"})
    );
    let (_, skipped) = app
        .post(
            &url(&app, "/mappings/no-contractors/preview"),
            &admin,
            json!({"id": id}),
        )
        .await;
    assert_eq!(skipped["outcome"], "skip", "{skipped}");
    let (s, body) = app
        .post(
            &url(&app, "/mappings/slack-names/preview"),
            &admin,
            json!({"id": "0190f0f0-0000-7000-8000-000000000000"}),
        )
        .await;
    assert_eq!(s, 404, "{body}");

    // A change keeps the name and kind; the version moves on.
    let changed = r#"{"displayName": user.userName}"#;
    let (s, body) = app
        .patch(
            &url(&app, "/mappings/slack-names"),
            &admin,
            json!({"expression": changed}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["version"], 2);
    assert_eq!(body["description"], "Slack wants a display name");
    let (s, body) = app
        .patch(
            &url(&app, "/mappings/slack-names"),
            &admin,
            json!({"kind": "provider_group"}),
        )
        .await;
    assert_eq!(s, 400, "{body}");

    // The audit trail: who changed the mapping, and the expression before and after.
    let (trail, _) = audit(
        &app,
        &format!("/events?filter={}", q("resource.type eq \"mapping\"")),
    )
    .await;
    let events = trail["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(
        types.contains(&"mapping.created") && types.contains(&"mapping.updated"),
        "{types:?}"
    );
    let update = events
        .iter()
        .find(|e| e["type"] == "mapping.updated")
        .unwrap();
    assert_eq!(update["actor"]["kind"], "admin", "{update}");
    let change = update["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "expression")
        .unwrap_or_else(|| panic!("no change of the expression: {update}"));
    assert_eq!(change["old"], DISPLAY_NAME);
    assert_eq!(change["new"], changed);

    let s = app
        .delete(&url(&app, "/mappings/no-contractors"), &admin)
        .await;
    assert_eq!(s, 204);
    let (s, _) = app
        .get(&url(&app, "/mappings/no-contractors"), &admin)
        .await;
    assert_eq!(s, 404);

    // After a restart (a replay of the log, or the views in PostgreSQL) the mappings are
    // as they were left.
    let tokens = app.tokens();
    let data = app.stop().await;
    let settings = shared.settings(data.path());
    let app = TestApp::restart_with(settings, data, tokens).await;
    let (s, list) = app.get(&url(&app, "/mappings"), &admin).await;
    assert_eq!(s, 200);
    let list = list["mappings"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["name"], "slack-names");
    assert_eq!(list[0]["expression"], changed);
    assert_eq!(list[0]["version"], 2);
}

/// Creates a mapping from `body`, expecting 400 `invalidValue`; the detail.
async fn refused(app: &TestApp, body: Value) -> String {
    let (s, answer) = app
        .post(&url(app, "/mappings"), &app.admin_token, body)
        .await;
    assert_eq!(s, 400, "{answer}");
    assert_eq!(answer["scimType"], "invalidValue", "{answer}");
    answer["detail"].as_str().unwrap().to_owned()
}

async fn refused_mappings_say_why_and_change_nothing(setup: Setup) {
    let shared = Shared::new(setup).await;
    let (app, _keep) = spawn(&shared).await;
    let admin = app.admin_token.clone();
    let create = |name: &str, expression: &str| json!({"name": name, "kind": "provider_user", "expression": expression});

    // A syntax error names its line and column.
    let detail = refused(
        &app,
        create("broken", "{\n  \"displayName\": user.name +\n}"),
    )
    .await;
    assert!(detail.contains("mapping \"broken\": 3:"), "{detail}");

    // What could run away is refused before it runs.
    let detail = refused(
        &app,
        create("amplify", r#"{"a": user.userName.replace("a", "aa")}"#),
    )
    .await;
    assert!(detail.contains("replace() is not a function"), "{detail}");
    let nested = r#"{"a": user.emails.map(x, user.emails.map(y, y.value))}"#;
    let detail = refused(&app, create("nested", nested)).await;
    assert!(detail.contains("inside another"), "{detail}");

    // An expression that fails on a sample user would fail on real ones.
    let detail = refused(
        &app,
        create("careless", r#"{"displayName": user.name.givenName}"#),
    )
    .await;
    assert!(
        detail.contains("the sample user with only a userName"),
        "{detail}"
    );
    let detail = refused(&app, create("text", r#""not a map""#)).await;
    assert!(detail.contains("not a map"), "{detail}");

    // Bad definitions.
    let detail = refused(
        &app,
        json!({"name": "Bad Name", "kind": "provider_user", "expression": "{}"}),
    )
    .await;
    assert!(detail.contains("lower-case"), "{detail}");
    let detail = refused(
        &app,
        json!({"name": "k", "kind": "inbound", "expression": "{}"}),
    )
    .await;
    assert!(detail.contains("source_user"), "{detail}");
    let detail = refused(&app, json!({"name": "k", "kind": "source_user"})).await;
    assert!(detail.contains("expression is required"), "{detail}");

    // Nothing of it was stored, and the log holds no mapping event.
    let (s, list) = app.get(&url(&app, "/mappings"), &admin).await;
    assert_eq!(s, 200);
    assert_eq!(list["mappings"], json!([]));
    let (trail, _) = audit(
        &app,
        &format!("/events?filter={}", q("resource.type eq \"mapping\"")),
    )
    .await;
    assert_eq!(trail["events"], json!([]), "{trail}");
}
