//! The audit trail as the log records it: every event a request causes names the client it
//! came from (the token's id, never its secret; the address that connected; the user agent),
//! besides the actor, the source and the request id.

mod common;

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
