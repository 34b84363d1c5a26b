//! A provider's property mappings, end to end against an independent SCIM server
//! (`scim2-server` from PyPI): what arrives on the remote is the built-in document reshaped by
//! the provider's mappings in order; a mapping can keep an object away; one that fails parks
//! the object with the mapping's name; a changed mapping makes the provider sync again and
//! correct what it sent before; an attached mapping cannot be deleted, nor a source's mapping
//! attached. The first test runs on every setup (the file log or Kafka, memory or PostgreSQL
//! views).

mod common;

use common::remote::{create_group, create_provider, eventually, fast, spawn, status, Remote};
use common::setups::{Setup, Shared};
use common::TestApp;
use serde_json::{json, Value};

async fn mapping(app: &TestApp, name: &str, kind: &str, expression: &str) {
    let (s, body) = app
        .post(
            &format!("{}/admin/v1/mappings", app.root),
            &app.admin_token,
            json!({"name": name, "kind": kind, "expression": expression}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
}

async fn user(app: &TestApp, body: Value) -> Value {
    let mut body = body;
    body["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User"]);
    let (s, created) = app
        .post(
            &format!("{}/Users", app.scim("default")),
            &app.scim_token,
            body,
        )
        .await;
    assert_eq!(s, 201, "{created}");
    created
}

const NAMES: &str = r#"{
  "displayName": has(user.name) && has(user.name.givenName) && has(user.name.familyName)
      ? user.name.givenName + " " + user.name.familyName
      : user.userName,
  "nickName": null
}"#;

common::setups::on_every_setup!(
    a_providers_mappings_shape_what_it_sends_and_a_changed_mapping_is_synced_again,
);

async fn a_providers_mappings_shape_what_it_sends_and_a_changed_mapping_is_synced_again(
    setup: Setup,
) {
    let remote = Remote::start().await;
    let shared = Shared::new(setup).await;
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(fast(shared.settings(data.path())), data).await;
    mapping(&app, "names", "provider_user", NAMES).await;
    mapping(
        &app,
        "no-contractors",
        "provider_user",
        r#"has(user.userType) && user.userType == "Contractor" ? skip : {}"#,
    )
    .await;
    mapping(
        &app,
        "team-names",
        "provider_group",
        r#"{"displayName": "roster-" + group.displayName.lowerAscii()}"#,
    )
    .await;
    create_provider(
        &app,
        "shaped",
        &remote,
        json!({"mappings": ["names", "no-contractors", "team-names"]}),
    )
    .await;

    let ada = user(
        &app,
        json!({"userName": "ada@example.com", "nickName": "Countess",
               "name": {"givenName": "Ada", "familyName": "Lovelace"}}),
    )
    .await;
    user(
        &app,
        json!({"userName": "temp@example.com", "userType": "Contractor"}),
    )
    .await;
    user(&app, json!({"userName": "plain@example.com"})).await;
    create_group(&app, "Eng", &[ada["id"].as_str().unwrap()]).await;

    let users = eventually(30, || remote.users(), |u| u.len() == 2).await;
    let sent = &users["ada@example.com"];
    assert_eq!(sent["displayName"], "Ada Lovelace", "{sent}");
    assert!(sent.get("nickName").is_none(), "null removes: {sent}");
    assert_eq!(sent["externalId"], ada["id"], "{sent}");
    assert_eq!(
        users["plain@example.com"]["displayName"],
        "plain@example.com"
    );
    assert!(
        !users.contains_key("temp@example.com"),
        "skipped: {users:?}"
    );
    // The group may reach the remote before its member does (then the member is added by a
    // PATCH once it has): wait for the member.
    let groups = eventually(
        30,
        || remote.groups(),
        |g| g.get("roster-eng").is_some_and(|(_, m)| !m.is_empty()),
    )
    .await;
    assert_eq!(
        groups["roster-eng"].1,
        std::collections::BTreeSet::from(["ada@example.com".to_string()])
    );

    // The whole chain previewed for a stored user: what the provider sends.
    let (s, preview) = app
        .post(
            &format!("{}/admin/v1/providers/shaped/preview", app.root),
            &app.admin_token,
            json!({"user": ada["id"]}),
        )
        .await;
    assert_eq!(s, 200, "{preview}");
    assert_eq!(preview["outcome"], "send", "{preview}");
    assert_eq!(
        preview["document"]["displayName"], "Ada Lovelace",
        "{preview}"
    );

    // A changed mapping: the provider syncs again and corrects what it sent.
    let (s, body) = app
        .patch(
            &format!("{}/admin/v1/mappings/names", app.root),
            &app.admin_token,
            json!({"expression": r#"{"displayName": user.userName.upperAscii()}"#}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    eventually(
        30,
        || remote.users(),
        |u| {
            u.get("ada@example.com")
                .is_some_and(|a| a["displayName"] == "ADA@EXAMPLE.COM")
        },
    )
    .await;

    // Attached mappings stay until taken out; a source's mapping is not a provider's.
    let s = app
        .delete(
            &format!("{}/admin/v1/mappings/names", app.root),
            &app.admin_token,
        )
        .await;
    assert_eq!(s, 409);
    mapping(&app, "inbound", "source_user", "{}").await;
    let (s, body) = app
        .patch(
            &format!("{}/admin/v1/providers/shaped", app.root),
            &app.admin_token,
            json!({"mappings": ["inbound"]}),
        )
        .await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("source_user"),
        "{body}"
    );
    let (s, body) = app
        .patch(
            &format!("{}/admin/v1/providers/shaped", app.root),
            &app.admin_token,
            json!({"mappings": ["missing"]}),
        )
        .await;
    assert_eq!(s, 400, "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_a_mapping_fails_on_is_parked_with_the_mappings_name() {
    let remote = Remote::start().await;
    let app = spawn().await;
    // It passes on the samples, whose userNames are long, and fails on a short one.
    mapping(
        &app,
        "initials",
        "provider_user",
        r#"{"nickName": user.userName.substring(0, 3)}"#,
    )
    .await;
    create_provider(&app, "strict", &remote, json!({"mappings": ["initials"]})).await;
    let bad = user(&app, json!({"userName": "ab"})).await;
    user(&app, json!({"userName": "ok@example.com"})).await;

    let users = eventually(30, || remote.users(), |u| u.len() == 1).await;
    assert_eq!(users["ok@example.com"]["nickName"], "ok@");
    let st = eventually(
        30,
        || status(&app, "strict"),
        |s| s["parked"].as_array().is_some_and(|p| p.len() == 1),
    )
    .await;
    assert_eq!(st["parked"][0]["id"], bad["id"], "{st}");
    let error = st["parked"][0]["error"].as_str().unwrap();
    assert!(error.contains("mapping \"initials\""), "{error}");
    app.stop().await;
}
