//! The audit trail as the log records it: every event a request causes names the client it
//! came from (the token's id, never its secret; the address that connected; the user agent),
//! besides the actor, the source and the request id.

mod common;

use common::setups::{audit, events_of, next_path, q, spawn, Setup, Shared};
use common::TestApp;
use roster::log::{EventLog, FileLog};
use roster_events::{Actor, Envelope};
use serde_json::{json, Value};

/// Every event in the stopped server's file log, in order.
async fn events(data: &std::path::Path) -> Vec<Envelope> {
    let log = FileLog::open(data.join("log"), Default::default()).unwrap();
    let mut out = Vec::new();
    let mut from = 0;
    // Bounded: a log of this test holds a few dozen records.
    for _ in 0..1000 {
        let entries = log.read(0, from, 100).await.unwrap();
        let Some(last) = entries.last() else {
            return out;
        };
        from = last.position + 1;
        out.extend(entries.into_iter().flat_map(|e| e.record.events.clone()));
    }
    panic!("the log did not end");
}

common::setups::on_every_setup!(
    the_audit_trail_says_who_deactivated_a_user_when_through_which_source_and_what_changed,
    audit_pages_follow_the_link_header_in_either_order_without_repeats,
    a_deleted_users_history_and_its_state_at_any_moment_stay_answerable,
    group_membership_changes_name_each_member,
    a_search_that_waits_returns_the_next_event_as_it_is_appended,
    bad_audit_searches_are_refused_with_a_scim_error_and_source_tokens_cannot_read,
    a_search_that_matches_rarely_goes_through_the_history_a_stretch_a_page,
);

/// The tests of the audit projection in PostgreSQL only.
mod rebuilt {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_the_file_log() {
        super::a_rebuild_folds_the_same_audit_trail_and_cursors_go_on_across_it(
            super::Setup::Postgres,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_kafka() {
        super::a_rebuild_folds_the_same_audit_trail_and_cursors_go_on_across_it(
            super::Setup::KafkaPostgres,
        )
        .await
    }
}

async fn get(app: &TestApp, path: &str) -> Value {
    let (s, body) = app
        .get(&format!("{}/admin/v1{path}", app.root), &app.admin_token)
        .await;
    assert_eq!(s, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_names_the_token_address_and_user_agent_of_its_request() {
    let app = TestApp::spawn().await;
    let source_token = get(&app, "/sources/default").await["tokens"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin_token = get(&app, "/admin-tokens").await["admin_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let http = reqwest::Client::new();
    let created = http
        .post(format!("{}/Users", app.scim("default")))
        .bearer_auth(&app.scim_token)
        .header("content-type", "application/scim+json")
        .header("user-agent", "Azure Active Directory SCIM Client")
        .header("x-request-id", "entra-req-1")
        .body(json!({"userName": "ada@example.com"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let long_agent = "a".repeat(1000);
    let source = http
        .post(format!("{}/admin/v1/sources", app.root))
        .bearer_auth(&app.admin_token)
        .header("content-type", "application/json")
        .header("user-agent", &long_agent)
        .body(json!({"slug": "okta"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(source.status(), 201, "{}", source.text().await.unwrap());
    let secrets = [app.scim_token.clone(), app.admin_token.clone()];
    let data = app.stop().await;

    let all = events(data.path()).await;
    let user = all
        .iter()
        .find(|e| e.event.event_type() == "user.created")
        .unwrap();
    assert_eq!(user.actor, Actor::Source("source:default".into()));
    assert_eq!(user.correlation_id.as_deref(), Some("entra-req-1"));
    let client = user.client.as_ref().expect("a SCIM write names its client");
    assert_eq!(client.token_id.as_deref(), Some(source_token.as_str()));
    assert_eq!(client.ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(
        client.user_agent.as_deref(),
        Some("Azure Active Directory SCIM Client")
    );

    let created = all
        .iter()
        .find(|e| e.event.event_type() == "source.created" && e.actor != Actor::System)
        .unwrap();
    assert_eq!(created.actor, Actor::Admin(admin_token.clone()));
    let client = created
        .client
        .as_ref()
        .expect("an admin action names its client");
    assert_eq!(client.token_id.as_deref(), Some(admin_token.as_str()));
    assert_eq!(client.ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(client.user_agent.as_deref(), Some(&long_agent[..256]));
    // The token that okta's source got is in the log as a hash, with no client secret.
    let token_event = all
        .iter()
        .rfind(|e| e.event.event_type() == "source.token_issued")
        .unwrap();
    assert_eq!(token_event.client, created.client);

    // Roster's own events (the first start) have no client; no event holds a secret.
    let first = all.first().unwrap();
    assert_eq!(first.actor, Actor::System);
    assert!(first.client.is_none());
    for e in &all {
        let text = serde_json::to_string(e).unwrap();
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{text}");
        }
    }
}

async fn the_audit_trail_says_who_deactivated_a_user_when_through_which_source_and_what_changed(
    setup: Setup,
) {
    let app = spawn(setup).await;
    let http = reqwest::Client::new();
    let (s, alice) = app
        .create_user("default", &app.scim_token, "alice@example.com")
        .await;
    assert_eq!(s, 201);
    let id = alice["id"].as_str().unwrap();
    let r = http
        .patch(format!("{}/Users/{id}", app.scim("default")))
        .bearer_auth(&app.scim_token)
        .header("content-type", "application/scim+json")
        .header("user-agent", "Okta SCIM Client 1.0.0")
        .header("x-request-id", "okta-req-7")
        .body(
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    {"op": "replace", "value": {"active": false}},
                    {"op": "add", "path": "title", "value": "Former CFO"}
                ]
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let filter = q(&format!("resource.id eq \"{id}\""));
    let (body, _) = audit(&app, &format!("/events?filter={filter}")).await;
    let events = events_of(&body);
    assert_eq!(events.len(), 2, "{body}");
    assert_eq!(events[0]["type"], "user.created");
    assert_eq!(events[0]["displayName"], "Add user");
    let change = &events[1];
    assert_eq!(change["type"], "user.replaced");
    assert_eq!(change["displayName"], "Update user");
    assert_eq!(
        change["message"],
        "user alice@example.com deactivated by source default"
    );
    assert_eq!(change["outcome"], "success");
    assert_eq!(
        change["actor"],
        json!({"kind": "source", "id": "source:default"})
    );
    assert_eq!(change["source"], "default");
    assert_eq!(change["correlationId"], "okta-req-7");
    assert_eq!(change["client"]["userAgent"], "Okta SCIM Client 1.0.0");
    assert_eq!(change["client"]["ip"], "127.0.0.1");
    assert_eq!(change["target"]["name"], "alice@example.com");
    assert_eq!(change["target"]["etag"], "W/\"2\"");
    assert_eq!(
        change["changes"],
        json!([
            {"path": "active", "old": true, "new": false},
            {"path": "title", "old": null, "new": "Former CFO"},
        ])
    );
    // Every event of one request, by its request id.
    let (body, _) = audit(
        &app,
        &format!("/events?filter={}", q("correlationId eq \"okta-req-7\"")),
    )
    .await;
    assert_eq!(events_of(&body).len(), 1, "{body}");
    assert_eq!(events_of(&body)[0]["correlationId"], "okta-req-7");
    // When: the event's time is the write's, and a time range around it finds it.
    let time = change["time"].as_str().unwrap();
    let (body, _) = audit(
        &app,
        &format!(
            "/events?filter={filter}&since={}&until={}",
            q(time),
            q(time)
        ),
    )
    .await;
    assert_eq!(events_of(&body).len(), 1, "{body}");
    assert_eq!(events_of(&body)[0]["type"], "user.replaced");
}

async fn audit_pages_follow_the_link_header_in_either_order_without_repeats(setup: Setup) {
    let app = spawn(setup).await;
    for i in 0..7 {
        let (s, _) = app
            .create_user("default", &app.scim_token, &format!("page{i}@example.com"))
            .await;
        assert_eq!(s, 201);
    }
    for order in ["ascending", "descending"] {
        let mut names = Vec::new();
        let mut next = format!(
            "/events?filter={}&limit=3&sortOrder={order}",
            q("type eq \"user.created\"")
        );
        for _ in 0..10 {
            let (body, link) = audit(&app, &next).await;
            names.extend(
                events_of(&body)
                    .iter()
                    .map(|e| e["target"]["name"].as_str().unwrap().to_owned()),
            );
            match link {
                Some(link) => {
                    next = next_path(&link);
                    assert_eq!(events_of(&body).len(), 3, "{body}");
                    assert!(body["next"].as_str().is_some());
                }
                None => {
                    assert!(body["next"].is_null());
                    break;
                }
            }
        }
        let mut want: Vec<String> = (0..7).map(|i| format!("page{i}@example.com")).collect();
        if order == "descending" {
            want.reverse();
        }
        assert_eq!(names, want, "{order}");
    }
}

async fn a_deleted_users_history_and_its_state_at_any_moment_stay_answerable(setup: Setup) {
    let app = spawn(setup).await;
    let (_, user) = app
        .create_user("default", &app.scim_token, "bob@example.com")
        .await;
    let id = user["id"].as_str().unwrap().to_owned();
    let url = format!("{}/Users/{id}", app.scim("default"));
    let (s, _) = app
        .put(
            &url,
            &app.scim_token,
            json!({"userName": "robert@example.com", "active": true, "displayName": "Robert"}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = app
        .patch(
            &url,
            &app.scim_token,
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "add", "path": "password", "value": "Tr0ub4dor&3-horse"}]}),
        )
        .await;
    assert_eq!(s, 200);
    let (renamed, _) = audit(&app, &format!("/resources/{id}/history")).await;
    let before_delete = events_of(&renamed).last().unwrap()["time"]
        .as_str()
        .unwrap()
        .to_owned();
    let position = events_of(&renamed)[0]["position"].as_u64().unwrap();
    assert_eq!(app.delete(&url, &app.scim_token).await, 204);

    let (body, _) = audit(&app, &format!("/resources/{id}/history")).await;
    let events = events_of(&body);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "user.created",
            "user.replaced",
            "user.password_set",
            "user.deleted"
        ],
        "{body}"
    );
    let etags: Vec<&str> = events
        .iter()
        .map(|e| e["target"]["etag"].as_str().unwrap())
        .collect();
    assert_eq!(etags, ["W/\"1\"", "W/\"2\"", "W/\"3\"", "W/\"4\""]);
    // Names as they were at each event: the rename shows the new name from then on.
    assert_eq!(events[0]["target"]["name"], "bob@example.com");
    assert_eq!(events[3]["target"]["name"], "robert@example.com");
    assert!(events[1]["changes"].as_array().unwrap().contains(
        &json!({"path": "userName", "old": "bob@example.com", "new": "robert@example.com"})
    ));
    assert_eq!(
        events[2]["changes"],
        json!([{"path": "password", "old": null, "new": null, "redacted": true}])
    );
    assert_eq!(
        events[2]["message"],
        "user robert@example.com had its password changed by source default"
    );
    let text = body.to_string();
    assert!(
        !text.contains("Tr0ub4dor") && !text.contains("argon2"),
        "{text}"
    );
    // The keyword search finds the user under the name it had then.
    let (found, _) = audit(&app, "/events?q=BOB%40example").await;
    assert_eq!(events_of(&found).len(), 1, "{found}");
    assert_eq!(events_of(&found)[0]["type"], "user.created");

    // As of the last change before the delete: the user as it was, though deleted since.
    let (s, then) = app
        .get(
            &format!(
                "{}/admin/v1/audit/resources/{id}/as-of?time={}",
                app.root,
                q(&before_delete)
            ),
            &app.admin_token,
        )
        .await;
    assert_eq!(s, 200, "{then}");
    assert_eq!(then["userName"], "robert@example.com");
    assert_eq!(then["displayName"], "Robert");
    assert_eq!(then["meta"]["version"], "W/\"3\"");
    assert!(then.get("password").is_none());
    // As of the position of its creation: the first version.
    let (s, first) = app
        .get(
            &format!(
                "{}/admin/v1/audit/resources/{id}/as-of?position={position}",
                app.root
            ),
            &app.admin_token,
        )
        .await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["userName"], "bob@example.com");
    // Now, and before it existed: 404 with the reason.
    let (s, now) = app
        .get(
            &format!(
                "{}/admin/v1/audit/resources/{id}/as-of?time=2999-01-01T00:00:00Z",
                app.root
            ),
            &app.admin_token,
        )
        .await;
    assert_eq!(s, 404);
    assert!(
        now["detail"].as_str().unwrap().contains("was deleted at"),
        "{now}"
    );
    let (s, _) = app
        .get(
            &format!(
                "{}/admin/v1/audit/resources/{id}/as-of?time=2000-01-01T00:00:00Z",
                app.root
            ),
            &app.admin_token,
        )
        .await;
    assert_eq!(s, 404);
}

async fn group_membership_changes_name_each_member(setup: Setup) {
    let app = spawn(setup).await;
    let (_, user) = app
        .create_user("default", &app.scim_token, "carol@example.com")
        .await;
    let uid = user["id"].as_str().unwrap();
    let (s, group) = app
        .post(
            &format!("{}/Groups", app.scim("default")),
            &app.scim_token,
            json!({"displayName": "Finance", "members": [{"value": uid}]}),
        )
        .await;
    assert_eq!(s, 201, "{group}");
    let gid = group["id"].as_str().unwrap();
    let (s, _) = app
        .patch(
            &format!("{}/Groups/{gid}", app.scim("default")),
            &app.scim_token,
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}]}),
        )
        .await;
    assert_eq!(s, 200);
    let (body, _) = audit(&app, &format!("/resources/{gid}/history")).await;
    let events = events_of(&body);
    let added = events
        .iter()
        .find(|e| e["type"] == "group.members_added")
        .unwrap();
    assert_eq!(added["displayName"], "Add member to group");
    assert_eq!(added["target"]["name"], "Finance");
    assert_eq!(
        added["changes"],
        json!([{"path": "members", "old": null, "new": {"value": uid, "type": "User"}}])
    );
    let removed = events.last().unwrap();
    assert_eq!(removed["type"], "group.members_removed");
    assert_eq!(
        removed["changes"],
        json!([{"path": "members", "old": {"value": uid, "type": "User"}, "new": null}])
    );
    // The group as of its creation had carol; now it has no one.
    let position = added["position"].as_u64().unwrap();
    let (_, then) = app
        .get(
            &format!(
                "{}/admin/v1/audit/resources/{gid}/as-of?position={position}",
                app.root
            ),
            &app.admin_token,
        )
        .await;
    assert_eq!(
        then["members"],
        json!([{"value": uid, "type": "User"}]),
        "{then}"
    );
}

async fn a_search_that_waits_returns_the_next_event_as_it_is_appended(setup: Setup) {
    let app = spawn(setup).await;
    let filter = q("type eq \"user.created\"");
    let (body, _) = audit(&app, &format!("/events?filter={filter}")).await;
    assert!(events_of(&body).is_empty());
    let resume = body["resume"].as_str().unwrap().to_owned();
    let follow = {
        let root = app.root.clone();
        let token = app.admin_token.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(format!(
                    "{root}/admin/v1/audit/events?filter={filter}&after={resume}&wait=30"
                ))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !follow.is_finished(),
        "the search waits for a matching event"
    );
    app.create_user("default", &app.scim_token, "dave@example.com")
        .await;
    let body = tokio::time::timeout(std::time::Duration::from_secs(20), follow)
        .await
        .expect("the waiting search answers once the event is there")
        .unwrap();
    assert_eq!(events_of(&body).len(), 1, "{body}");
    assert_eq!(events_of(&body)[0]["target"]["name"], "dave@example.com");
}

/// A filter that matches rarely and that no list narrows passes over at most
/// `audit_scan_limit` events a page: the pages come back short or empty, each with a cursor, and
/// following them finds the one match exactly once, in either order.
async fn a_search_that_matches_rarely_goes_through_the_history_a_stretch_a_page(setup: Setup) {
    let data = tempfile::tempdir().unwrap();
    let settings = roster::config::Settings {
        audit_scan_limit: 3,
        ..Shared::new(setup).await.settings(data.path())
    };
    let app = TestApp::spawn_with(settings, data).await;
    for name in (0..8)
        .map(|i| format!("hay{i}@example.com"))
        .chain(["needle@example.com".to_owned(), "hay8@example.com".into()])
    {
        let (s, _) = app.create_user("default", &app.scim_token, &name).await;
        assert_eq!(s, 201);
    }
    for order in ["ascending", "descending"] {
        let mut next = format!(
            "/events?filter={}&limit=5&sortOrder={order}",
            q("name eq \"needle@example.com\"")
        );
        let (mut found, mut pages) = (Vec::new(), 0);
        for _ in 0..100 {
            pages += 1;
            let (body, link) = audit(&app, &next).await;
            found.extend(
                events_of(&body)
                    .iter()
                    .map(|e| e["target"]["name"].as_str().unwrap().to_owned()),
            );
            match link {
                Some(link) => next = next_path(&link),
                None => {
                    assert!(body["next"].is_null());
                    break;
                }
            }
        }
        assert_eq!(found, ["needle@example.com"], "{order}");
        if order == "ascending" {
            // Eight creates and the start-up's events lie before the needle: three a page.
            assert!(pages >= 3, "{pages} pages");
        }
    }
}

async fn bad_audit_searches_are_refused_with_a_scim_error_and_source_tokens_cannot_read(
    setup: Setup,
) {
    let app = spawn(setup).await;
    let base = format!("{}/admin/v1/audit/events", app.root);
    for (query, scim_type) in [
        (
            format!("filter={}", q("userName eq \"x\"")),
            "invalidFilter",
        ),
        (format!("filter={}", q("type eq")), "invalidFilter"),
        (
            format!("filter={}", q("correlationId sw \"okta\"")),
            "invalidFilter",
        ),
        ("limit=0".to_owned(), "invalidValue"),
        ("limit=5000".to_owned(), "invalidValue"),
        ("sortOrder=sideways".to_owned(), "invalidValue"),
        ("since=yesterday".to_owned(), "invalidValue"),
        ("after=bm9wZQ".to_owned(), "invalidValue"),
        ("wait=3600".to_owned(), "invalidValue"),
    ] {
        let (s, body) = app.get(&format!("{base}?{query}"), &app.admin_token).await;
        assert_eq!(s, 400, "{query}: {body}");
        assert_eq!(body["scimType"], scim_type, "{query}: {body}");
    }
    let (s, _) = app.get(&base, &app.scim_token).await;
    assert_eq!(s, 401);
    let (s, _) = app
        .get(
            &format!("{}/admin/v1/audit/resources/not-a-uuid/history", app.root),
            &app.admin_token,
        )
        .await;
    assert_eq!(s, 404);
}

/// The frames of a segment file: each payload, in order (length and CRC-32 before each).
/// A PATCH that sets a user's displayName.
fn rename(name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
           "Operations": [{"op": "replace", "path": "displayName", "value": name}]})
}

/// The filter that picks the events of users and groups (not the reads of the audit trail
/// each search records).
fn identities() -> String {
    q(r#"resource.type eq "user" or resource.type eq "group""#)
}

/// A rebuild of the PostgreSQL views folds the audit projection again from the log: the
/// trail answers exactly as before the swap (entries, names, changes, histories), and a cursor
/// handed out before the swap goes on after it.
async fn a_rebuild_folds_the_same_audit_trail_and_cursors_go_on_across_it(setup: Setup) {
    let app = spawn(setup).await;
    let users = format!("{}/Users", app.scim("default"));
    let mut ids = Vec::new();
    for i in 0..6 {
        let (s, u) = app
            .create_user("default", &app.scim_token, &format!("r{i}@example.com"))
            .await;
        assert_eq!(s, 201, "{u}");
        ids.push(u["id"].as_str().unwrap().to_owned());
    }
    for (i, id) in ids.iter().enumerate().take(3) {
        let (s, b) = app
            .patch(
                &format!("{users}/{id}"),
                &app.scim_token,
                rename(&format!("R {i}")),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    let (s, g) = app
        .post(
            &format!("{}/Groups", app.scim("default")),
            &app.scim_token,
            json!({"displayName": "rebuilt", "members": [{"value": ids[0]}, {"value": ids[1]}]}),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    assert_eq!(
        app.delete(&format!("{users}/{}", ids[1]), &app.scim_token)
            .await,
        204
    );

    let all = format!("/events?filter={}&limit=1000", identities());
    let (before, _) = audit(&app, &all).await;
    let count = |t: &str| events_of(&before).iter().filter(|e| e["type"] == t).count();
    assert_eq!(
        [
            count("user.created"),
            count("user.replaced"),
            count("group.created"),
            count("user.deleted")
        ],
        [6, 3, 1, 1],
        "{before}"
    );
    let history = format!("/resources/{}/history", ids[1]);
    let (history_before, _) = audit(&app, &history).await;
    let (first_page, link) = audit(&app, &format!("/events?filter={}&limit=4", identities())).await;
    // A time range reads on from the first event at or after its start (migrations/V11): the
    // rebuild's rows answer as the fold's did.
    let replaced = events_of(&before)
        .iter()
        .find(|e| e["type"] == "user.replaced")
        .unwrap();
    let since = format!(
        "/events?filter={}&since={}&limit=1000",
        identities(),
        q(replaced["time"].as_str().unwrap())
    );
    let (since_before, _) = audit(&app, &since).await;
    let later = events_of(&since_before);
    assert!(later.contains(replaced), "{since_before}");
    assert!(
        later.len() >= 5,
        "three replaces, a group and a delete: {since_before}"
    );
    assert_eq!(
        later[..],
        events_of(&before)[events_of(&before).len() - later.len()..],
        "the events from the start of the range on"
    );

    assert_eq!(common::setups::rebuild(&app).await, 2);
    let (since_after, _) = audit(&app, &since).await;
    assert_eq!(since_after["events"], since_before["events"]);

    let (after, _) = audit(&app, &all).await;
    assert_eq!(after["events"], before["events"]);
    let (history_after, _) = audit(&app, &history).await;
    assert_eq!(history_after["events"], history_before["events"]);
    let mut paged = events_of(&first_page).clone();
    let mut next = link.map(|l| next_path(&l));
    for _ in 0..10 {
        let Some(path) = next.take() else { break };
        let (page, link) = audit(&app, &path).await;
        paged.extend(events_of(&page).iter().cloned());
        next = link.map(|l| next_path(&l));
    }
    assert!(next.is_none(), "pages of 4 end within 10 pages");
    assert_eq!(&paged, events_of(&before));

    // The new generation folds on from where the rebuild left it.
    let (s, b) = app
        .patch(
            &format!("{users}/{}", ids[2]),
            &app.scim_token,
            rename("after"),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (later, _) = audit(&app, &all).await;
    let events = events_of(&later);
    assert_eq!(&events[..events.len() - 1], &events_of(&before)[..]);
    let last = events.last().unwrap();
    assert_eq!(last["target"]["name"], "r2@example.com", "{last}");
    assert_eq!(
        last["changes"],
        json!([{"path": "displayName", "old": "R 2", "new": "after"}])
    );
}

/// Two processes on one Kafka topic and one PostgreSQL database write the same users at once,
/// so that some writes lose a race and are decided again: the audit projection both of them
/// fold holds each acknowledged write once, both answer every search and history alike, and
/// the chain verifies from either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_kafka_and_one_database_agree_on_the_audit_trail_and_the_chain() {
    let shared = Shared::new(Setup::KafkaPostgres).await;
    let data = tempfile::tempdir().unwrap();
    let a = TestApp::spawn_with(shared.settings(data.path()), data).await;
    let data = tempfile::tempdir().unwrap();
    let b = TestApp::spawn_joining(shared.settings(data.path()), &a).await;
    let mut pairs = Vec::new();
    for round in 0..8 {
        let (name_a, name_b) = (
            format!("a{round}@example.com"),
            format!("b{round}@example.com"),
        );
        let (ra, rb) = tokio::join!(
            a.create_user("default", &a.scim_token, &name_a),
            b.create_user("default", &b.scim_token, &name_b)
        );
        assert_eq!((ra.0, rb.0), (201, 201), "{} / {}", ra.1, rb.1);
        pairs.push((
            ra.1["id"].as_str().unwrap().to_owned(),
            rb.1["id"].as_str().unwrap().to_owned(),
        ));
    }
    // Each process renames the users the other created (once it has seen them), both at once.
    for (round, (of_a, of_b)) in pairs.iter().enumerate() {
        let (on_a, on_b) = (
            format!("{}/Users/{of_b}", a.scim("default")),
            format!("{}/Users/{of_a}", b.scim("default")),
        );
        common::remote::eventually(
            30,
            || async {
                (
                    a.get(&on_a, &a.scim_token).await.0,
                    b.get(&on_b, &b.scim_token).await.0,
                )
            },
            |seen| *seen == (200, 200),
        )
        .await;
        let (pa, pb) = tokio::join!(
            a.patch(&on_a, &a.scim_token, rename(&format!("by a {round}"))),
            b.patch(&on_b, &b.scim_token, rename(&format!("by b {round}")))
        );
        assert_eq!((pa.0, pb.0), (200, 200), "{} / {}", pa.1, pb.1);
    }
    let all = format!("/events?filter={}&limit=1000", identities());
    let (on_a, _) = common::remote::eventually(
        30,
        || async { (audit(&a, &all).await.0, audit(&b, &all).await.0) },
        |(x, y)| events_of(x).len() == 32 && x["events"] == y["events"],
    )
    .await;
    let types = |body: &Value, t: &str| events_of(body).iter().filter(|e| e["type"] == t).count();
    assert_eq!(
        (types(&on_a, "user.created"), types(&on_a, "user.replaced")),
        (16, 16),
        "{on_a}"
    );
    let (of_a, of_b) = &pairs[3];
    for (id, by) in [(of_a, "by b 3"), (of_b, "by a 3")] {
        let path = format!("/resources/{id}/history");
        let (ha, hb) = (audit(&a, &path).await.0, audit(&b, &path).await.0);
        assert_eq!(ha["events"], hb["events"]);
        let events = events_of(&ha);
        assert_eq!(events.len(), 2, "{ha}");
        assert!(
            events[1]["changes"]
                .as_array()
                .unwrap()
                .contains(&json!({"path": "displayName", "old": null, "new": by})),
            "{ha}"
        );
    }
    let (va, vb) = (audit(&a, "/verify").await.0, audit(&b, "/verify").await.0);
    assert_eq!(
        (va["ok"].clone(), vb["ok"].clone()),
        (json!(true), json!(true)),
        "{va} / {vb}"
    );
    a.stop().await;
    b.stop().await;
}

fn frames(segment: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= segment.len() {
        let len = u32::from_le_bytes(segment[at..at + 4].try_into().unwrap()) as usize;
        out.push(segment[at + 8..at + 8 + len].to_vec());
        at += 8 + len;
    }
    out
}

/// Writes `payloads` as a segment, each framed with a correct CRC: damage the file log's own
/// checks cannot see, as someone editing it on purpose would leave.
fn write_segment(path: &std::path::Path, payloads: &[Vec<u8>]) {
    let mut out = Vec::new();
    for p in payloads {
        roster::log::frame(p, &mut out);
    }
    std::fs::write(path, out).unwrap();
}

/// `payload` with one character of its request id changed: the same length, still a record
/// that decodes and folds, but no longer the bytes that were sealed.
fn changed_in_place(payload: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(payload.to_vec()).unwrap();
    let at = text.find("\"correlation_id\":\"").unwrap() + "\"correlation_id\":\"".len();
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    bytes
}

fn first_break(report: &Value) -> &Value {
    &report["directories"]["default"]["first_break"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_names_the_record_that_was_changed_removed_or_moved() {
    let app = TestApp::spawn().await;
    let mut ids = std::collections::HashMap::new();
    for name in [
        "a@example.com",
        "victim@example.com",
        "gone@example.com",
        "z@example.com",
    ] {
        let (s, user) = app.create_user("default", &app.scim_token, name).await;
        assert_eq!(s, 201);
        ids.insert(name, user["id"].as_str().unwrap().to_owned());
    }
    let (report, _) = audit(&app, "/verify").await;
    assert_eq!(report["ok"], true, "{report}");
    let dir = &report["directories"]["default"];
    assert_eq!(
        dir["valid"], dir["sealed"],
        "every record Roster wrote is sealed: {report}"
    );
    assert_eq!(dir["unsealed_before_chain"], 0);
    assert_eq!(dir["head_digest"].as_str().unwrap().len(), 64);
    let tokens = app.tokens();
    let data = app.stop().await;
    let segment = data.path().join("log").join(format!("{:020}.log", 0));
    let original = frames(&std::fs::read(&segment).unwrap());
    // The users' documents are sealed (ADR 0014): their records are found by the users' ids.
    let position_of = |name: &str| {
        original
            .iter()
            .position(|p| String::from_utf8_lossy(p).contains(&ids[name]))
            .unwrap()
    };

    // Writes `payloads` as the segment, restarts on it, and asks for a verification. The
    // view snapshot is moved away first, as an operator who inspects a damaged log does: a
    // log that lost a record the snapshot holds stops start-up (checked below).
    let verified = async |data: tempfile::TempDir, payloads: &[Vec<u8>]| {
        write_segment(&segment, payloads);
        let _ = std::fs::remove_dir_all(data.path().join("snapshots"));
        let app = TestApp::restart(data, tokens.clone()).await;
        let (report, _) = audit(&app, "/verify").await;
        (report, app.stop().await)
    };
    let broken = |report: &Value, kind: &str, position: usize| {
        assert_eq!(report["ok"], false, "{report}");
        assert_eq!(first_break(report)["kind"], kind, "{report}");
        assert_eq!(first_break(report)["position"], position as u64, "{report}");
    };

    // A value changed in place, CRC fixed up: the record's seal names it.
    let victim = position_of("victim@example.com");
    let mut changed = original.clone();
    changed[victim] = changed_in_place(&changed[victim]);
    let (report, data) = verified(data, &changed).await;
    broken(&report, "changed", victim);

    // A record taken out: the one after it no longer follows.
    let gone = position_of("gone@example.com");
    let mut removed = original.clone();
    removed.remove(gone);
    // With the snapshot the last server wrote at its stop, start-up refuses the shorter log.
    write_segment(&segment, &removed);
    let refused = roster::app::Application::build(common::settings(data.path())).await;
    let e = format!(
        "{:#}",
        refused
            .err()
            .expect("start-up refuses a log that lost a record")
    );
    assert!(e.contains("lost records"), "{e}");
    let (report, data) = verified(data, &removed).await;
    broken(&report, "removed_or_reordered", gone);

    // Two records swapped.
    let mut swapped = original.clone();
    swapped.swap(victim, gone);
    let (report, data) = verified(data, &swapped).await;
    broken(&report, "removed_or_reordered", victim);

    // Put back as it was: whole again.
    let (report, _) = verified(data, &original).await;
    assert_eq!(report["ok"], true, "{report}");
}

/// A record this very server appended, changed in its segment while the server runs: verify
/// hashes what is stored, not what the server remembers having written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_sees_a_record_changed_behind_the_running_servers_back() {
    let app = TestApp::spawn().await;
    let mut victim_id = String::new();
    for name in ["a@example.com", "victim@example.com", "z@example.com"] {
        let (s, user) = app.create_user("default", &app.scim_token, name).await;
        assert_eq!(s, 201);
        if name.starts_with("victim") {
            victim_id = user["id"].as_str().unwrap().to_owned();
        }
    }
    let segment = app.data.path().join("log").join(format!("{:020}.log", 0));
    let mut payloads = frames(&std::fs::read(&segment).unwrap());
    let victim = payloads
        .iter()
        .position(|p| String::from_utf8_lossy(p).contains(&victim_id))
        .unwrap();
    // The same length, so every record stays where the server's index says it is.
    payloads[victim] = changed_in_place(&payloads[victim]);
    write_segment(&segment, &payloads);
    let (report, _) = audit(&app, "/verify").await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(first_break(&report)["kind"], "changed", "{report}");
    assert_eq!(first_break(&report)["position"], victim as u64, "{report}");
    app.stop().await;
}

/// The index follows this process's projectors: the history from before it started, and the
/// batches it had no room for, it reads from the log itself; every record is in it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_holds_every_record_whether_the_projector_handed_it_over_or_not() {
    use roster::audit::query::{Search, SearchParams};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = common::opening(Arc::new(
        FileLog::open(dir.path(), Default::default()).unwrap(),
    ));
    let store = Arc::new(roster_projections::MemoryStore::new());
    let mut pipeline =
        roster::pipeline::Pipeline::start(log.clone(), store, None, common::test_key())
            .await
            .unwrap();
    let mut projected = pipeline.projected[0].clone();
    let mut follows = 0;
    // One record at a time, each folded before the next is appended (a batch of its own).
    let mut append = async |tag: &str, records: usize| {
        for _ in 0..records {
            let at = log
                .append(vec![common::record("default", follows, tag, 3)])
                .await
                .unwrap()[0];
            follows += 1;
            projected.wait_for(|&p| p > at).await.unwrap();
        }
    };
    append("before", 10).await;
    let taps = pipeline.taps();
    // Nobody takes from the taps yet: the projector hands over what fits and drops the rest.
    append("unread", 200).await;
    let audit = roster::audit::Audit::new(log.clone());
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    audit.follow_projectors(taps, stopped);
    append("after", 10).await;

    let params = SearchParams {
        limit: Some("1000".into()),
        filter: Some("type eq \"user.created\"".into()),
        ..SearchParams::default()
    };
    let search = Search::parse(&params, audit.partitions()).unwrap();
    let page = audit.search(&search, None).await.unwrap();
    assert_eq!(page.events.len(), 220 * 3);
    let events: Vec<serde_json::Value> = page
        .events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    let positions: Vec<u64> = events
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] <= w[1]), "in log order");
    let ids: std::collections::BTreeSet<&str> =
        events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 220 * 3, "each event once");
    let names: std::collections::BTreeSet<&str> = events
        .iter()
        .map(|e| e["target"]["name"].as_str().unwrap())
        .collect();
    for tag in ["before", "unread", "after"] {
        for i in 0..3 {
            assert!(names.contains(format!("{tag}-{i}").as_str()), "{tag}-{i}");
        }
    }
    pipeline.stopper().stop().await;
}
