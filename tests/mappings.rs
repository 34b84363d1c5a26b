//! Property mappings through the admin API, on every setup: created, changed and deleted as
//! events (the audit trail names the admin and shows the expression's change), checked before
//! they are saved (a syntax error answers 400 with its line and column, an expression that
//! could run away or that fails on a sample user is refused), previewed on a stored user, and
//! still there after a restart. A source's mappings: set on the source (source mappings only,
//! each once; one a source runs cannot be deleted), run on what it writes before the write is
//! decided (creates, PUT with the stored object as `existing`, PATCH on the operations'
//! result, groups), a `skip` refusing the write with the mapping's name, the request as sent
//! kept in the log with the event that stores the result, a re-map on request recorded as the admin's updates.

mod common;

use common::setups::{audit, q, Setup, Shared};
use common::TestApp;
use serde_json::{json, Value};

common::setups::on_every_setup!(
    mappings_are_checked_saved_as_events_previewed_and_kept,
    refused_mappings_say_why_and_change_nothing,
    a_sources_mappings_shape_what_it_writes_and_keep_what_it_sent,
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

/// The mail of the primary (or first) email as the userName, in lower case.
const MAIL_AS_USERNAME: &str = r#"{
  "userName": has(user.emails) && size(user.emails) > 0
      ? (user.emails.exists(e, has(e.primary) && e.primary)
          ? user.emails.filter(e, has(e.primary) && e.primary)[0].value
          : user.emails[0].value).lowerAscii()
      : user.userName.lowerAscii()
}"#;

/// A title the client leaves out stays as it was.
const KEEP_TITLE: &str = r#"existing != null && has(existing.title) && !has(user.title)
  ? {"title": existing.title}
  : {}"#;

const NO_CONTRACTORS: &str = r#"has(user.userType) && user.userType == "Contractor" ? skip : {}"#;

/// Groups get the source's prefix, once.
const PREFIX_GROUPS: &str = r#"{
  "displayName": group.displayName.startsWith(source.slug + "-")
      ? group.displayName
      : source.slug + "-" + group.displayName
}"#;

async fn create_mapping(app: &TestApp, name: &str, kind: &str, expression: &str) {
    let body = json!({"name": name, "kind": kind, "expression": expression});
    let (s, answer) = app
        .post(&url(app, "/mappings"), &app.admin_token, body)
        .await;
    assert_eq!(s, 201, "{answer}");
}

async fn set_mappings(app: &TestApp, slug: &str, names: &[&str]) -> (u16, Value) {
    app.put(
        &url(app, &format!("/sources/{slug}/mappings")),
        &app.admin_token,
        json!({ "mappings": names }),
    )
    .await
}

async fn a_sources_mappings_shape_what_it_writes_and_keep_what_it_sent(setup: Setup) {
    let shared = Shared::new(setup).await;
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(shared.settings(data.path()), data).await;
    let admin = app.admin_token.clone();
    let token = app.create_source("entra").await;
    let users = format!("{}/Users", app.scim("entra"));
    let groups = format!("{}/Groups", app.scim("entra"));

    // Written before the source had mappings: stored as sent.
    let (s, grace) = app
        .post(
            &users,
            &token,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "Grace.Hopper@Example.com",
            }),
        )
        .await;
    assert_eq!(s, 201, "{grace}");
    assert_eq!(grace["userName"], "Grace.Hopper@Example.com");

    create_mapping(&app, "mail-as-username", "source_user", MAIL_AS_USERNAME).await;
    create_mapping(&app, "keep-title", "source_user", KEEP_TITLE).await;
    create_mapping(&app, "no-contractors", "source_user", NO_CONTRACTORS).await;
    create_mapping(&app, "prefix-groups", "source_group", PREFIX_GROUPS).await;
    create_mapping(&app, "outbound", "provider_user", "{}").await;

    // Only source mappings, each named once, all defined.
    let (s, body) = set_mappings(&app, "entra", &["mail-as-username", "outbound"]).await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("provider_user"),
        "{body}"
    );
    let (s, body) = set_mappings(&app, "entra", &["nowhere"]).await;
    assert_eq!(s, 400, "{body}");
    let (s, body) = set_mappings(&app, "entra", &["keep-title", "keep-title"]).await;
    assert_eq!(s, 400, "{body}");
    let (s, body) = set_mappings(&app, "nobody", &["keep-title"]).await;
    assert_eq!(s, 404, "{body}");
    let names = [
        "mail-as-username",
        "keep-title",
        "no-contractors",
        "prefix-groups",
    ];
    let (s, body) = set_mappings(&app, "entra", &names).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["mappings"], json!(names));
    let (_, source) = app.get(&url(&app, "/sources/entra"), &admin).await;
    assert_eq!(source["mappings"], json!(names), "{source}");

    // A preview says what the mappings would make of a request, writing nothing.
    let preview = |body: Value| {
        let app = &app;
        async move {
            let (s, answer) = app
                .post(&url(app, "/sources/entra/preview"), &app.admin_token, body)
                .await;
            assert_eq!(s, 200, "{answer}");
            answer
        }
    };
    let p = preview(json!({"resource": {
        "userName": "Lin.Yu@contoso.onmicrosoft.com",
        "emails": [{"value": "Lin.Yu@Contoso.example", "primary": true}],
        "password": "never shown",
    }}))
    .await;
    assert_eq!(p["outcome"], "changed", "{p}");
    assert_eq!(p["resource"]["userName"], "lin.yu@contoso.example");
    assert_eq!(p["sent"]["userName"], "Lin.Yu@contoso.onmicrosoft.com");
    assert!(p["sent"].get("password").is_none(), "{p}");
    assert_eq!(
        p["mappings"],
        json!(["mail-as-username", "keep-title", "no-contractors"])
    );
    let p =
        preview(json!({"resource": {"userName": "c@x.example", "userType": "Contractor"}})).await;
    assert_eq!(p["outcome"], "refused", "{p}");
    assert_eq!(p["mapping"], "no-contractors");
    let p = preview(json!({"resource": {"userName": "plain@contoso.example"}})).await;
    assert_eq!(p["outcome"], "unchanged", "{p}");
    let p = preview(json!({"type": "Group", "resource": {"displayName": "Ops"}})).await;
    assert_eq!(p["resource"]["displayName"], "entra-Ops", "{p}");
    let filter = q(r#"userName eq "lin.yu@contoso.example""#);
    let (_, found) = app.get(&format!("{users}?filter={filter}"), &token).await;
    assert_eq!(found["totalResults"], 0, "{found}");

    // A create: what the mappings made of it is stored and answered.
    let sent = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "Adele.Vance@contoso.onmicrosoft.com",
        "emails": [
            {"value": "adele@home.example", "type": "home"},
            {"value": "Adele.Vance@Contoso.example", "type": "work", "primary": true}
        ],
        "title": "Retail Manager",
        "password": "correct horse battery staple",
    });
    let (s, adele) = app.post(&users, &token, sent).await;
    assert_eq!(s, 201, "{adele}");
    assert_eq!(adele["userName"], "adele.vance@contoso.example");
    let id = adele["id"].as_str().unwrap().to_owned();
    let filter = q(r#"userName eq "adele.vance@contoso.example""#);
    let (_, found) = app.get(&format!("{users}?filter={filter}"), &token).await;
    assert_eq!(found["totalResults"], 1, "{found}");

    // A replacement without the title keeps it (the mapping sees the stored user).
    let (s, put) = app
        .put(
            &format!("{users}/{id}"),
            &token,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "Adele.Vance@contoso.onmicrosoft.com",
                "emails": [{"value": "Adele.Vance@Contoso.example", "primary": true}],
                "displayName": "Adele",
            }),
        )
        .await;
    assert_eq!(s, 200, "{put}");
    assert_eq!(put["title"], "Retail Manager", "{put}");
    assert_eq!(put["displayName"], "Adele");
    assert_eq!(put["userName"], "adele.vance@contoso.example");

    // A PATCH: the mappings run on what its operations made.
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "replace", "path": "userName", "value": "ADELE@contoso.onmicrosoft.com"},
            {"op": "replace", "path": "emails", "value": [{"value": "Adele.V@Contoso.example", "primary": true}]}
        ]
    });
    let (s, patched) = app.patch(&format!("{users}/{id}"), &token, patch).await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["userName"], "adele.v@contoso.example", "{patched}");
    assert_eq!(patched["title"], "Retail Manager");

    // A skip refuses the write, naming the mapping; nothing is stored.
    let (s, body) = app
        .post(
            &users,
            &token,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "temp@contoso.example",
                "userType": "Contractor",
            }),
        )
        .await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(body["scimType"], "invalidValue", "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("no-contractors"),
        "{body}"
    );
    let filter = q(r#"userName eq "temp@contoso.example""#);
    let (_, found) = app.get(&format!("{users}?filter={filter}"), &token).await;
    assert_eq!(found["totalResults"], 0, "{found}");

    // Groups run the group mappings.
    let (s, group) = app
        .post(
            &groups,
            &token,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Sales",
                "members": [{"value": id}],
            }),
        )
        .await;
    assert_eq!(s, 201, "{group}");
    assert_eq!(group["displayName"], "entra-Sales");
    assert_eq!(group["members"].as_array().unwrap().len(), 1, "{group}");

    // The log keeps what the source sent (without its password) and which mappings ran, with
    // the event that stores what they made of it.
    let (trail, _) = audit(
        &app,
        &format!("/events?filter={}", q(&format!("resource.id eq \"{id}\""))),
    )
    .await;
    let events = trail["events"].as_array().unwrap();
    let mapped: Vec<&Value> = events
        .iter()
        .filter(|e| e["details"]["sent"].is_object())
        .collect();
    assert_eq!(mapped.len(), 3, "{trail}");
    let first = mapped
        .iter()
        .find(|e| e["details"]["sent"]["title"] == "Retail Manager")
        .unwrap_or_else(|| panic!("no record of the create as sent: {trail}"));
    assert_eq!(first["type"], "user.created");
    let sent = &first["details"]["sent"];
    assert_eq!(sent["userName"], "Adele.Vance@contoso.onmicrosoft.com");
    assert!(sent.get("password").is_none(), "{sent}");
    assert_eq!(
        first["details"]["mappings"],
        json!(["mail-as-username", "keep-title", "no-contractors"])
    );
    assert_eq!(first["source"], "entra");
    assert!(
        first["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["path"] == "userName" && c["new"] == "adele.vance@contoso.example"),
        "{first}"
    );

    // A mapping the source runs stays until the source stops running it.
    let s = app
        .delete(&url(&app, "/mappings/no-contractors"), &admin)
        .await;
    assert_eq!(s, 409);

    // A re-map runs the mappings on what the source wrote before: Grace gets her userName
    // in lower case; Adele and the group were shaped already.
    let (s, remap) = app
        .post(&url(&app, "/sources/entra/remap"), &admin, json!({}))
        .await;
    assert_eq!(s, 200, "{remap}");
    assert_eq!(
        remap["users"],
        json!({"examined": 2, "changed": 1, "failed": 0}),
        "{remap}"
    );
    assert_eq!(
        remap["groups"],
        json!({"examined": 1, "changed": 0, "failed": 0}),
        "{remap}"
    );
    let grace_id = grace["id"].as_str().unwrap();
    let (_, grace) = app.get(&format!("{users}/{grace_id}"), &token).await;
    assert_eq!(grace["userName"], "grace.hopper@example.com", "{grace}");
    let (trail, _) = audit(
        &app,
        &format!(
            "/events?filter={}",
            q(&format!("resource.id eq \"{grace_id}\""))
        ),
    )
    .await;
    let replaced = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "user.replaced")
        .unwrap_or_else(|| panic!("the re-map is not in the trail: {trail}"));
    assert_eq!(replaced["actor"]["kind"], "admin", "{replaced}");

    // A mapping whose result is not a valid user, or that sets what is Roster's, refuses the
    // write naming it; nothing is stored.
    create_mapping(
        &app,
        "mail-as-emails",
        "source_user",
        r#"{"emails": user.userName}"#,
    )
    .await;
    create_mapping(&app, "set-password", "source_user", r#"{"password": "x"}"#).await;
    for (name, why) in [
        ("mail-as-emails", "not valid"),
        ("set-password", "cannot set"),
    ] {
        let (s, _) = set_mappings(&app, "entra", &[name]).await;
        assert_eq!(s, 200);
        let (s, body) = app
            .create_user("entra", &token, "broken@contoso.example")
            .await;
        assert_eq!(s, 400, "{body}");
        assert_eq!(body["scimType"], "invalidValue", "{body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(name) && detail.contains(why), "{detail}");
    }
    let filter = q(r#"userName eq "broken@contoso.example""#);
    let (_, found) = app.get(&format!("{users}?filter={filter}"), &token).await;
    assert_eq!(found["totalResults"], 0, "{found}");

    // Taken out of the source, the mappings no longer run.
    let (s, _) = set_mappings(&app, "entra", &["prefix-groups"]).await;
    assert_eq!(s, 200);
    let (s, plain) = app
        .create_user("entra", &token, "Mixed.Case@Example.com")
        .await;
    assert_eq!(s, 201, "{plain}");
    assert_eq!(plain["userName"], "Mixed.Case@Example.com");

    // After a restart the source runs the mappings it ran.
    let tokens = app.tokens();
    let data = app.stop().await;
    let app = TestApp::restart_with(shared.settings(data.path()), data, tokens).await;
    let (_, source) = app.get(&url(&app, "/sources/entra"), &admin).await;
    assert_eq!(source["mappings"], json!(["prefix-groups"]), "{source}");
    let (s, group) = app
        .post(
            &format!("{}/Groups", app.scim("entra")),
            &token,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Finance",
            }),
        )
        .await;
    assert_eq!(s, 201, "{group}");
    assert_eq!(group["displayName"], "entra-Finance");
}
