//! Refused requests and reads of the audit trail are in the audit trail too: bad tokens on a
//! source's URL and on the admin API, admin actions Roster refused, and every read of the
//! trail, each counted per client over a window so that a flood costs a bounded number of
//! records.

mod common;

use common::TestApp;
use serde_json::Value;
use std::time::Duration;

/// The window refusals and reads are counted over in these tests.
const WINDOW_MS: u64 = 1_500;

async fn spawn() -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let settings = roster::config::Settings {
        audit_count_window_ms: WINDOW_MS,
        ..common::settings(data.path())
    };
    TestApp::spawn_with(settings, data).await
}

fn q(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Every event matching `filter`, oldest first (one page of up to 1,000).
async fn search(app: &TestApp, filter: &str) -> Vec<Value> {
    let url = format!(
        "{}/admin/v1/audit/events?limit=1000&filter={}",
        app.root,
        q(filter)
    );
    let (s, body) = app.get(&url, &app.admin_token).await;
    assert_eq!(s, 200, "{body}");
    body["events"].as_array().unwrap().clone()
}

/// The sum of `details.count` over `events`.
fn counted(events: &[Value]) -> u64 {
    events
        .iter()
        .map(|e| e["details"]["count"].as_u64().unwrap())
        .sum()
}

/// Whether `event`'s details hold every `(field, value)` of `want`.
fn has(event: &Value, want: &[(&str, &str)]) -> bool {
    want.iter()
        .all(|(k, v)| event["details"][*k].as_str() == Some(*v))
}

/// The refusals whose details hold `want`, searched until their counts add up to `count` (the
/// last window's aggregate is recorded when the window ends); bounded by 20 s.
async fn refusals(app: &TestApp, want: &[(&str, &str)], count: u64) -> Vec<Value> {
    let mut found = Vec::new();
    for _ in 0..80 {
        found = search(app, "type eq \"access.refused\"").await;
        found.retain(|e| has(e, want));
        if counted(&found) >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "{want:?}: counted {} of {count}: {found:#?}",
        counted(&found)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_tokens_is_recorded_as_counts_not_a_record_each() {
    let app = spawn().await;
    let users = format!("{}/Users", app.scim("default"));
    let http = reqwest::Client::new();
    let secret = "rst_NotARealTokenButNeverToBeLogged";
    for _ in 0..60 {
        let r = http
            .get(&users)
            .bearer_auth(secret)
            .header("user-agent", "flood/1.0")
            // No proxy is trusted: the client's own word about its address is not taken.
            .header("x-forwarded-for", "198.51.100.7")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    for _ in 0..3 {
        let r = http.get(&users).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    for _ in 0..5 {
        let (s, _) = app
            .get(&format!("{}/Users", app.scim("nosuch")), secret)
            .await;
        assert_eq!(s, 401);
    }
    for _ in 0..7 {
        let (s, _) = app
            .get(&format!("{}/admin/v1/sources", app.root), &app.scim_token)
            .await;
        assert_eq!(s, 401, "a source token does not open the admin API");
    }

    let invalid = refusals(
        &app,
        &[("interface", "scim"), ("reason", "invalid_token")],
        60,
    )
    .await;
    assert_eq!(counted(&invalid), 60);
    // The first at once, the other 59 as one record when the window ended (or, on a slow
    // machine, a few windows' worth): never a record per request.
    assert!(invalid.len() >= 2 && invalid.len() <= 6, "{invalid:#?}");
    let first = &invalid[0];
    assert_eq!(first["details"]["count"], 1);
    assert_eq!(first["outcome"], "failure");
    assert_eq!(first["displayName"], "Refuse request");
    assert_eq!(first["actor"]["kind"], "anonymous");
    assert_eq!(first["client"]["ip"], "127.0.0.1");
    assert_eq!(first["client"]["userAgent"], "flood/1.0");
    assert_eq!(first["details"]["status"], 401);
    assert_eq!(first["details"]["method"], "GET");
    assert_eq!(first["details"]["path"], "/source/scim/default/v2/Users");
    let message = first["message"].as_str().unwrap();
    assert!(
        message.contains("GET /source/scim/default/v2/Users refused (401: invalid token)")
            && message.contains("127.0.0.1"),
        "{message}"
    );
    let later = &invalid[1];
    assert!(
        later["details"]["count"].as_u64().unwrap() > 1,
        "{later:#?}"
    );
    assert!(
        later["message"].as_str().unwrap().contains("times)"),
        "{later:#?}"
    );

    let none = refusals(&app, &[("reason", "no_token")], 3).await;
    assert_eq!(counted(&none), 3);
    let unknown = refusals(&app, &[("reason", "unknown_source")], 5).await;
    assert_eq!(counted(&unknown), 5);
    assert_eq!(
        unknown[0]["details"]["path"],
        "/source/scim/nosuch/v2/Users"
    );
    assert!(
        unknown[0]["source"].is_null(),
        "no such source: {:#?}",
        unknown[0]
    );
    let admin = refusals(
        &app,
        &[("interface", "admin"), ("reason", "invalid_token")],
        7,
    )
    .await;
    assert_eq!(counted(&admin), 7);

    // The token that was tried is nowhere in the log.
    let data = app.stop().await;
    for entry in std::fs::read_dir(data.path().join("log")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a refused token reached the log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_roster_refused_are_recorded_with_the_admin_and_the_answer() {
    let app = spawn().await;
    let status = app
        .delete(
            &format!("{}/admin/v1/directories/default", app.root),
            &app.admin_token,
        )
        .await;
    assert_eq!(status, 409);
    let (s, _) = app
        .post(
            &format!("{}/admin/v1/sources", app.root),
            &app.admin_token,
            serde_json::json!({"slug": "Not A Slug!"}),
        )
        .await;
    assert_eq!(s, 400);

    let refused = refusals(&app, &[("reason", "action_refused")], 2).await;
    assert_eq!(refused.len(), 2, "{refused:#?}");
    let delete = &refused[0];
    assert_eq!(delete["actor"]["kind"], "admin");
    assert_eq!(delete["outcome"], "failure");
    assert_eq!(delete["details"]["status"], 409);
    assert_eq!(delete["details"]["method"], "DELETE");
    assert_eq!(delete["details"]["path"], "/admin/v1/directories/default");
    let detail = delete["details"]["detail"].as_str().unwrap();
    assert!(detail.contains("cannot be deleted"), "{detail}");
    assert!(delete["client"]["tokenId"].is_string(), "{delete:#?}");
    assert_eq!(refused[1]["details"]["status"], 400);
    assert_eq!(refused[1]["details"]["path"], "/admin/v1/sources");

    // A refused action changed nothing: the directory is there.
    let (s, dirs) = app
        .get(
            &format!("{}/admin/v1/directories", app.root),
            &app.admin_token,
        )
        .await;
    assert_eq!(s, 200);
    assert!(dirs.to_string().contains("default"), "{dirs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_of_the_audit_trail_is_recorded_before_it_is_answered() {
    let app = spawn().await;
    let (s, alice) = app
        .create_user("default", &app.scim_token, "alice@example.com")
        .await;
    assert_eq!(s, 201);
    let id = alice["id"].as_str().unwrap();

    // A read finds itself: it was recorded before it was answered.
    let reads = search(&app, "type eq \"audit.read\"").await;
    assert_eq!(reads.len(), 1, "{reads:#?}");
    let own = &reads[0];
    assert_eq!(own["displayName"], "Read audit trail");
    assert_eq!(own["actor"]["kind"], "admin");
    assert_eq!(own["details"]["path"], "/admin/v1/audit/events");
    let query = own["details"]["query"].as_str().unwrap();
    assert!(query.contains("audit.read"), "{query}");
    assert!(own["client"]["tokenId"].is_string());

    // Reading one person's history is recorded with that person's id in the path.
    let history = format!("{}/admin/v1/audit/resources/{id}/history", app.root);
    for _ in 0..4 {
        let (s, _) = app.get(&history, &app.admin_token).await;
        assert_eq!(s, 200);
    }
    let path = format!("/admin/v1/audit/resources/{id}/history");
    let mut found = Vec::new();
    for _ in 0..80 {
        found = search(&app, "type eq \"audit.read\"").await;
        found.retain(|e| has(e, &[("path", &path)]));
        if counted(&found) >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(counted(&found), 4, "{found:#?}");
    assert_eq!(found[0]["details"]["count"], 1);
    assert!(found[0]["message"].as_str().unwrap().contains(&path));

    // A source token reads nothing, and its attempt is a refusal on record.
    let (s, _) = app
        .get(
            &format!("{}/admin/v1/audit/events", app.root),
            &app.scim_token,
        )
        .await;
    assert_eq!(s, 401);
    refusals(
        &app,
        &[
            ("path", "/admin/v1/audit/events"),
            ("reason", "invalid_token"),
        ],
        1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_client_address_is_the_one_the_proxy_names() {
    let data = tempfile::tempdir().unwrap();
    let settings = roster::config::Settings {
        audit_count_window_ms: WINDOW_MS,
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..common::settings(data.path())
    };
    let app = TestApp::spawn_with(settings, data).await;
    let http = reqwest::Client::new();
    // The client wrote a first entry of its own; the proxy appended the address it saw.
    let forwarded = "6.6.6.6, 198.51.100.7";
    let r = http
        .get(format!("{}/Users", app.scim("default")))
        .bearer_auth("rst_wrong")
        .header("x-forwarded-for", forwarded)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let refused = refusals(&app, &[("reason", "invalid_token")], 1).await;
    assert_eq!(
        refused[0]["client"]["ip"], "198.51.100.7",
        "{:#?}",
        refused[0]
    );

    let r = http
        .post(format!("{}/Users", app.scim("default")))
        .bearer_auth(&app.scim_token)
        .header("x-forwarded-for", forwarded)
        .header("content-type", "application/scim+json")
        .body(
            serde_json::json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "proxied@example.com"
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created = search(&app, "type eq \"user.created\"").await;
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0]["client"]["ip"], "198.51.100.7",
        "{:#?}",
        created[0]
    );
}
