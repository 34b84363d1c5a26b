//! The outbound SCIM client against a recording server: authentication headers, OAuth2
//! tokens cached and renewed, retries honouring Retry-After (on a recording sleeper instead
//! of the clock), errors that are not retried, and the cached ServiceProviderConfig.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use roster::auth::Secret;
use roster::provider::client::{Auth, Grant, Remote, RemoteError, Sleeper};
use roster::provider::compat::Mode;
use roster::provider::plan::{self, Kind};
use roster::provider::retry::Backoff;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: Option<String>,
    authorization: Option<String>,
    content_type: Option<String>,
    body: String,
}

/// A scripted answer: status, headers, body.
type Scripted = (u16, Vec<(&'static str, String)>, String);

/// Answers scripted responses in order (then 200 `{}`), and the token endpoint `/token`.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Scripted>>>,
    tokens: Arc<Mutex<u32>>,
}

/// No groups left with a delete.
static NO_GROUPS: std::collections::BTreeSet<roster_events::ResourceId> =
    std::collections::BTreeSet::new();

async fn handle(
    State(r): State<Recorder>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    r.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        authorization: h("authorization"),
        content_type: h("content-type"),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    if uri.path() == "/token" {
        let mut n = r.tokens.lock().unwrap();
        *n += 1;
        return axum::Json(
            json!({"access_token": format!("t{n}"), "token_type": "Bearer", "expires_in": 3600}),
        )
        .into_response();
    }
    let next = r.script.lock().unwrap().pop_front();
    let (status, headers, body) = next.unwrap_or((200, vec![], "{}".into()));
    let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
    for (k, v) in headers {
        response.headers_mut().insert(k, v.parse().unwrap());
    }
    response
}

async fn recorder() -> (Recorder, String) {
    let r = Recorder::default();
    let app = axum::Router::new().fallback(handle).with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, format!("http://{addr}"))
}

fn recording_sleeper() -> (Sleeper, Arc<Mutex<Vec<Duration>>>) {
    let waits = Arc::new(Mutex::new(Vec::new()));
    let w = waits.clone();
    let sleeper: Sleeper = Arc::new(move |d| {
        w.lock().unwrap().push(d);
        Box::pin(async {})
    });
    (sleeper, waits)
}

fn remote(base: &str, auth: Auth, mode: Mode) -> (Remote, Arc<Mutex<Vec<Duration>>>) {
    let (sleeper, waits) = recording_sleeper();
    let backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(1),
    };
    let r = Remote::new(
        format!("{base}/scim/v2").parse().unwrap(),
        auth,
        mode,
        Duration::from_secs(10),
    )
    .unwrap()
    .with_retries(4, backoff, sleeper);
    (r, waits)
}

#[tokio::test]
async fn requests_carry_their_authentication_and_body() {
    let (rec, base) = recorder().await;
    let (bearer, _) = remote(&base, Auth::Bearer(Secret::new("s3cret")), Mode::Default);
    let doc = json!({"userName": "alice"});
    bearer
        .send(&plan::create(Kind::User, doc.clone()))
        .await
        .unwrap();
    let (basic, _) = remote(
        &base,
        Auth::Basic {
            username: "roster".into(),
            password: Secret::new("pw"),
        },
        Mode::Default,
    );
    basic.send(&plan::delete(Kind::Group, "g 1")).await.unwrap();
    let seen = rec.seen.lock().unwrap().clone();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/scim/v2/Users");
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer s3cret"));
    assert_eq!(
        seen[0].content_type.as_deref(),
        Some("application/scim+json")
    );
    assert_eq!(serde_json::from_str::<Value>(&seen[0].body).unwrap(), doc);
    assert_eq!(seen[1].method, "DELETE");
    assert_eq!(seen[1].path, "/scim/v2/Groups/g%201");
    // base64("roster:pw")
    assert_eq!(seen[1].authorization.as_deref(), Some("Basic cm9zdGVyOnB3"));
    let recent = basic.recent();
    assert_eq!(recent.len(), 1);
    assert_eq!(
        (
            recent[0].method.as_str(),
            recent[0].path.as_str(),
            recent[0].status
        ),
        ("DELETE", "/scim/v2/Groups/g%201", Some(200))
    );
    // No secret in Debug output.
    let debug = format!(
        "{:?} {:?}",
        Auth::Bearer(Secret::new("s3cret")),
        Auth::Basic {
            username: "roster".into(),
            password: Secret::new("pw")
        }
    );
    assert!(
        !debug.contains("s3cret") && !debug.contains("\"pw\""),
        "{debug}"
    );
}

#[tokio::test]
async fn retry_after_is_honoured_and_refusals_are_not_retried() {
    let (rec, base) = recorder().await;
    let (r, waits) = remote(&base, Auth::Bearer(Secret::new("t")), Mode::Default);
    rec.script.lock().unwrap().extend([
        (429, vec![("retry-after", "7".to_owned())], String::new()),
        (503, vec![], String::new()),
        (201, vec![], r#"{"id":"r1"}"#.to_owned()),
    ]);
    let ok = r
        .send(&plan::create(Kind::User, json!({"userName": "a"})))
        .await
        .unwrap();
    assert_eq!(ok.status.as_u16(), 201);
    assert_eq!(ok.body.unwrap()["id"], "r1");
    let w = waits.lock().unwrap().clone();
    assert_eq!(w.len(), 2);
    assert_eq!(w[0], Duration::from_secs(7), "Retry-After on 429");
    assert!(
        w[1] <= Duration::from_millis(200),
        "backoff for attempt 2: {:?}",
        w[1]
    );
    assert_eq!(rec.seen.lock().unwrap().len(), 3);

    // A refusal is final, with the remote's SCIM detail.
    rec.script.lock().unwrap().push_back((
        400,
        vec![],
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400", "scimType": "invalidValue", "detail": "userName is required"}).to_string(),
    ));
    let err = r
        .send(&plan::create(Kind::User, json!({})))
        .await
        .unwrap_err();
    match &err {
        RemoteError::Status { status, detail } => {
            assert_eq!(status.as_u16(), 400);
            assert_eq!(detail, "userName is required (scimType invalidValue)");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.retryable());
    assert_eq!(waits.lock().unwrap().len(), 2, "no retry after a 400");

    // Attempts run out: the last error, after attempts - 1 waits.
    rec.script
        .lock()
        .unwrap()
        .extend((0..4).map(|_| (502, vec![], "bad gateway".to_owned())));
    let err = r.send(&plan::delete(Kind::User, "x")).await.unwrap_err();
    assert!(matches!(err, RemoteError::Status { status, .. } if status.as_u16() == 502));
    assert_eq!(waits.lock().unwrap().len(), 5);
}

#[tokio::test]
async fn oauth2_tokens_are_cached_and_renewed_when_refused() {
    let (rec, base) = recorder().await;
    let auth = Auth::OAuth2 {
        token_url: format!("{base}/token").parse().unwrap(),
        client_id: "client".into(),
        client_secret: Secret::new("csecret"),
        grant: Grant::Password {
            username: "svc".into(),
            password: Secret::new("p&w"),
        },
        extra: vec![("audience".into(), "https://remote.example".into())],
    };
    let (r, _) = remote(&base, auth, Mode::Default);
    for _ in 0..3 {
        r.send(&plan::find(Kind::User, "a")).await.unwrap();
    }
    assert_eq!(
        *rec.tokens.lock().unwrap(),
        1,
        "one token for three requests"
    );
    // The remote stops accepting the token: a new one, and the request again.
    rec.script
        .lock()
        .unwrap()
        .push_back((401, vec![], String::new()));
    r.send(&plan::find(Kind::User, "b")).await.unwrap();
    assert_eq!(*rec.tokens.lock().unwrap(), 2);
    let seen = rec.seen.lock().unwrap().clone();
    let token_requests: Vec<&Seen> = seen.iter().filter(|s| s.path == "/token").collect();
    let form: Vec<(String, String)> =
        reqwest::Url::parse(&format!("x:?{}", token_requests[0].body))
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
    assert_eq!(
        form,
        [
            ("grant_type".to_owned(), "password".to_owned()),
            ("username".to_owned(), "svc".to_owned()),
            ("password".to_owned(), "p&w".to_owned()),
            ("audience".to_owned(), "https://remote.example".to_owned()),
        ]
    );
    // base64("client:csecret")
    assert_eq!(
        token_requests[0].authorization.as_deref(),
        Some("Basic Y2xpZW50OmNzZWNyZXQ=")
    );
    let scim: Vec<&Seen> = seen.iter().filter(|s| s.path != "/token").collect();
    assert_eq!(scim[0].authorization.as_deref(), Some("Bearer t1"));
    assert_eq!(
        scim.last().unwrap().authorization.as_deref(),
        Some("Bearer t2")
    );
    assert_eq!(scim[0].query.as_deref(), Some("filter=userName+eq+%22a%22"));
}

#[tokio::test]
async fn the_service_provider_config_is_fetched_once_and_refetched_after_a_change() {
    let (rec, base) = recorder().await;
    let config = json!({
        "patch": {"supported": true},
        "filter": {"supported": true, "maxResults": 100},
        "bulk": {"supported": true, "maxOperations": 10, "maxPayloadSize": 1000}
    })
    .to_string();
    rec.script
        .lock()
        .unwrap()
        .push_back((200, vec![], config.clone()));
    let (sf, _) = remote(&base, Auth::Bearer(Secret::new("t")), Mode::Salesforce);
    let c = sf.capabilities().await;
    assert!(c.patch && c.filter && c.bulk.is_some());
    assert_eq!(sf.capabilities().await, c);
    {
        let seen = rec.seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "cached");
        assert_eq!(seen[0].path, "/scim/v2/ServiceProviderConfigs");
    }
    sf.invalidate().await;
    rec.script.lock().unwrap().push_back((200, vec![], config));
    sf.capabilities().await;
    assert_eq!(
        rec.seen.lock().unwrap().len(),
        2,
        "fetched again after a change"
    );

    // AWS: whatever the remote says, no PATCH and no bulk.
    rec.script.lock().unwrap().push_back((
        200,
        vec![],
        json!({"patch": {"supported": true}, "bulk": {"supported": true, "maxOperations": 5}})
            .to_string(),
    ));
    let (aws, _) = remote(&base, Auth::Bearer(Secret::new("t")), Mode::Aws);
    let c = aws.capabilities().await;
    assert!(!c.patch && c.bulk.is_none());
    assert_eq!(
        rec.seen.lock().unwrap()[2].path,
        "/scim/v2/ServiceProviderConfig"
    );

    // Unreadable: nothing optional, and asked again next time.
    rec.script
        .lock()
        .unwrap()
        .push_back((404, vec![], String::new()));
    let (plain, _) = remote(&base, Auth::Bearer(Secret::new("t")), Mode::Default);
    assert!(!plain.capabilities().await.patch);
    plain.capabilities().await;
    assert_eq!(rec.seen.lock().unwrap().len(), 5);
}

// ---- One change at a time: the exact requests, and the recoveries (409, 404). ----

use roster::provider::mapping::DefaultMapping;
use roster::provider::sync::{Links, MemoryLinks, Syncer};
use roster_events::{Document, Member, MemberType, ResourceId};
use roster_projections::{GroupView, Keys, UserView};

fn user(id: ResourceId, name: &str, title: &str) -> UserView {
    UserView {
        id,
        owner: Some("entra".into()),
        keys: Keys {
            user_name: Some(name.into()),
            ..Keys::default()
        },
        resource: Document::from_map(
            json!({"userName": name, "title": title, "active": true})
                .as_object()
                .unwrap(),
        ),
        password_hash: None,
        data_key: None,
        version: 1,
        created: chrono::Utc::now(),
        last_modified: chrono::Utc::now(),
    }
}

fn group(id: ResourceId, name: &str, members: &[ResourceId]) -> GroupView {
    GroupView {
        id,
        owner: Some("entra".into()),
        keys: Keys {
            display_name: Some(name.into()),
            ..Keys::default()
        },
        resource: Document::from_map(json!({"displayName": name}).as_object().unwrap()),
        members: members
            .iter()
            .map(|m| Member {
                value: *m,
                kind: MemberType::User,
            })
            .collect(),
        version: 1,
        created: chrono::Utc::now(),
        last_modified: chrono::Utc::now(),
    }
}

fn calls(rec: &Recorder) -> Vec<(String, String)> {
    rec.seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| {
            let path = match &s.query {
                Some(q) => format!("{}?{q}", s.path),
                None => s.path.clone(),
            };
            (s.method.clone(), path)
        })
        .collect()
}

fn body(rec: &Recorder, i: usize) -> Value {
    serde_json::from_str(&rec.seen.lock().unwrap()[i].body).unwrap()
}

fn script(rec: &Recorder, answers: &[(u16, Value)]) {
    rec.script
        .lock()
        .unwrap()
        .extend(answers.iter().map(|(s, b)| {
            (
                *s,
                vec![],
                if b.is_null() {
                    String::new()
                } else {
                    b.to_string()
                },
            )
        }));
}

#[tokio::test]
async fn each_change_becomes_the_expected_requests_and_conflicts_and_gone_objects_recover() {
    let (rec, base) = recorder().await;
    let (remote, _) = remote(&base, Auth::Bearer(Secret::new("t")), Mode::Default);
    let mut links = MemoryLinks::default();
    let learned = std::sync::Mutex::default();
    let mut s = Syncer {
        remote: &remote,
        mode: Mode::Default,
        mapping: &DefaultMapping,
        deactivate: false,
        learned: &learned,
        dry_run: None,
    };
    let (u1, u2, g) = (ResourceId::new(), ResourceId::new(), ResourceId::new());
    script(
        &rec,
        &[
            (201, json!({"id": "r-u1"})),                  // create alice
            (200, json!({"id": "r-u1"})),                  // update alice
            (409, json!({"detail": "userName exists"})),   // create bob
            (200, json!({"Resources": [{"id": "r-u2"}]})), // find bob
            (200, json!({"id": "r-u2"})),                  // replace bob
            (201, json!({"id": "r-g"})),                   // create group
            (200, json!({"patch": {"supported": true}})),  // ServiceProviderConfig
            (200, json!({})),                              // add bob
            (200, json!({})),                              // remove alice
            (200, json!({})),                              // rename
            (404, json!({"detail": "no such user"})),      // update alice: gone
            (201, json!({"id": "r-u1b"})),                 // create alice again
            (204, Value::Null),                            // delete bob
            (204, Value::Null),                            // delete group
        ],
    );
    s.user(&user(u1, "alice", "a"), &mut links).await.unwrap();
    s.user(&user(u1, "alice", "b"), &mut links).await.unwrap();
    s.user(&user(u2, "bob\"s", "c"), &mut links).await.unwrap();
    let g0 = group(g, "Eng", &[u1]);
    s.group(None, &g0, &mut links).await.unwrap();
    let g1 = group(g, "Eng", &[u1, u2]);
    s.group(Some(&g0), &g1, &mut links).await.unwrap();
    let g2 = group(g, "Eng", &[u2]);
    s.group(Some(&g1), &g2, &mut links).await.unwrap();
    let g3 = group(g, "Engineering", &[u2]);
    s.group(Some(&g2), &g3, &mut links).await.unwrap();
    s.user(&user(u1, "alice", "d"), &mut links).await.unwrap();
    s.delete_user(u2, Some(&user(u2, "bob\"s", "c")), &NO_GROUPS, &mut links)
        .await
        .unwrap();
    s.delete_group(g, &mut links).await.unwrap();

    let p = |m: &str, path: &str| (m.to_owned(), format!("/scim/v2/{path}"));
    assert_eq!(
        calls(&rec),
        [
            p("POST", "Users"),
            p("PUT", "Users/r-u1"),
            p("POST", "Users"),
            p("GET", "Users?filter=userName+eq+%22bob%5C%22s%22"),
            p("PUT", "Users/r-u2"),
            p("POST", "Groups"),
            p("GET", "ServiceProviderConfig"),
            p("PATCH", "Groups/r-g"),
            p("PATCH", "Groups/r-g"),
            p("PUT", "Groups/r-g"),
            p("PUT", "Users/r-u1"),
            p("POST", "Users"),
            p("DELETE", "Users/r-u2"),
            p("DELETE", "Groups/r-g"),
        ]
    );
    assert_eq!(
        body(&rec, 0),
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "alice",
               "title": "a", "active": true, "externalId": u1.to_string()})
    );
    assert_eq!(body(&rec, 1)["title"], "b");
    assert_eq!(
        body(&rec, 5)["members"],
        json!([{"value": "r-u1", "type": "User"}])
    );
    assert_eq!(
        body(&rec, 7)["Operations"],
        json!([{"op": "add", "path": "members", "value": [{"value": "r-u2", "type": "User"}]}])
    );
    assert_eq!(
        body(&rec, 8)["Operations"],
        json!([{"op": "remove", "path": "members[value eq \"r-u1\"]"}])
    );
    assert_eq!(body(&rec, 9)["displayName"], "Engineering");
    assert_eq!(
        body(&rec, 9)["members"],
        json!([{"value": "r-u2", "type": "User"}])
    );
    assert_eq!(links.remote(Kind::User, u1).as_deref(), Some("r-u1b"));
    assert_eq!(links.remote(Kind::User, u2), None);
    assert_eq!(links.remote(Kind::Group, g), None);
}

#[tokio::test]
async fn aws_replaces_groups_and_deactivation_without_patch_is_a_put() {
    let (rec, base) = recorder().await;
    let (remote, _) = remote(&base, Auth::Bearer(Secret::new("t")), Mode::Aws);
    let mut links = MemoryLinks::default();
    let (u1, u2, g) = (ResourceId::new(), ResourceId::new(), ResourceId::new());
    links.link(Kind::User, u1, "r-u1".into());
    links.link(Kind::User, u2, "r-u2".into());
    links.link(Kind::Group, g, "r-g".into());
    let learned = std::sync::Mutex::default();
    let mut s = Syncer {
        remote: &remote,
        mode: Mode::Aws,
        mapping: &DefaultMapping,
        deactivate: true,
        learned: &learned,
        dry_run: None,
    };
    // The remote claims PATCH; AWS mode does not use it.
    script(&rec, &[(200, json!({"patch": {"supported": true}}))]);
    let g0 = group(g, "Eng", &[u1]);
    s.group(Some(&g0), &group(g, "Eng", &[u1, u2]), &mut links)
        .await
        .unwrap();
    s.delete_user(u2, Some(&user(u2, "bob", "x")), &NO_GROUPS, &mut links)
        .await
        .unwrap();
    let p = |m: &str, path: &str| (m.to_owned(), format!("/scim/v2/{path}"));
    assert_eq!(
        calls(&rec),
        [
            p("GET", "ServiceProviderConfig"),
            p("PUT", "Groups/r-g"),
            p("PUT", "Users/r-u2"),
        ]
    );
    // The full member list, both members (in the order of their local ids).
    let mut members: Vec<Value> = body(&rec, 1)["members"].as_array().unwrap().clone();
    members.sort_by_key(|m| m["value"].as_str().unwrap().to_owned());
    assert_eq!(
        members,
        [
            json!({"value": "r-u1", "type": "User"}),
            json!({"value": "r-u2", "type": "User"})
        ]
    );
    assert_eq!(body(&rec, 2)["active"], false);
    assert_eq!(body(&rec, 2)["userName"], "bob");
    // Deactivated, still linked.
    assert_eq!(links.remote(Kind::User, u2).as_deref(), Some("r-u2"));
}

#[tokio::test]
async fn a_dry_run_sends_nothing_and_lists_what_it_would_send() {
    let (rec, base) = recorder().await;
    let (remote, _) = remote(&base, Auth::Bearer(Secret::new("t")), Mode::Default);
    let mut links = MemoryLinks::default();
    let learned = std::sync::Mutex::default();
    let mut s = Syncer {
        remote: &remote,
        mode: Mode::Default,
        mapping: &DefaultMapping,
        deactivate: false,
        learned: &learned,
        dry_run: Some(Vec::new()),
    };
    let u = ResourceId::new();
    s.user(&user(u, "alice", "a"), &mut links).await.unwrap();
    s.delete_user(u, Some(&user(u, "alice", "a")), &NO_GROUPS, &mut links)
        .await
        .unwrap();
    let planned = s.dry_run.take().unwrap();
    assert_eq!(planned.len(), 2);
    assert_eq!(planned[0].method, reqwest::Method::POST);
    assert_eq!(planned[1].method, reqwest::Method::DELETE);
    assert!(rec.seen.lock().unwrap().is_empty(), "nothing sent");
}

#[tokio::test]
async fn slack_looks_up_a_conflicting_user_by_filter_even_when_the_config_does_not_say_filter() {
    let (rec, base) = recorder().await;
    let (remote, _) = remote(&base, Auth::Bearer(Secret::new("t")), Mode::Slack);
    let mut links = MemoryLinks::default();
    let learned = std::sync::Mutex::default();
    let mut s = Syncer {
        remote: &remote,
        mode: Mode::Slack,
        mapping: &DefaultMapping,
        deactivate: true,
        learned: &learned,
        dry_run: None,
    };
    let u = ResourceId::new();
    script(
        &rec,
        // No filter advertised; PATCH is.
        &[
            (
                200,
                json!({"patch": {"supported": true}, "filter": {"supported": false}}),
            ),
            (200, json!({"totalResults": 0, "Resources": []})),
        ],
    );
    // A create that may have been sent before: Slack mode searches by externalId first.
    assert!(!s.find_own(Kind::User, u, &mut links).await.unwrap());
    script(&rec, &[(201, json!({"id": "S1"}))]);
    s.user(&user(u, "sam", "a"), &mut links).await.unwrap();
    // A deleted user is deactivated with a PATCH.
    s.delete_user(u, None, &NO_GROUPS, &mut links)
        .await
        .unwrap();
    let p = |m: &str, path: &str| (m.to_owned(), format!("/scim/v2/{path}"));
    let filter = format!("Users?filter=externalId+eq+%22{u}%22");
    assert_eq!(
        calls(&rec),
        [
            p("GET", "ServiceProviderConfig"),
            p("GET", &filter),
            p("POST", "Users"),
            p("PATCH", "Users/S1"),
        ]
    );
    assert_eq!(
        body(&rec, 3)["Operations"],
        json!([{"op": "replace", "path": "active", "value": false}])
    );
}

#[tokio::test]
async fn salesforce_reads_its_configuration_at_the_plural_path() {
    let (rec, base) = recorder().await;
    let (remote, _) = remote(&base, Auth::Bearer(Secret::new("t")), Mode::Salesforce);
    let mut links = MemoryLinks::default();
    let (u1, g) = (ResourceId::new(), ResourceId::new());
    links.link(Kind::User, u1, "005A".into());
    let learned = std::sync::Mutex::default();
    let mut s = Syncer {
        remote: &remote,
        mode: Mode::Salesforce,
        mapping: &DefaultMapping,
        deactivate: false,
        learned: &learned,
        dry_run: None,
    };
    script(
        &rec,
        &[
            (201, json!({"id": "00G1"})),
            (200, json!({"patch": {"supported": true}})),
            (204, Value::Null),
        ],
    );
    s.group(None, &group(g, "Sales", &[]), &mut links)
        .await
        .unwrap();
    s.group(
        Some(&group(g, "Sales", &[])),
        &group(g, "Sales", &[u1]),
        &mut links,
    )
    .await
    .unwrap();
    let p = |m: &str, path: &str| (m.to_owned(), format!("/scim/v2/{path}"));
    assert_eq!(
        calls(&rec),
        [
            p("POST", "Groups"),
            p("GET", "ServiceProviderConfigs"),
            p("PATCH", "Groups/00G1"),
        ]
    );
    assert_eq!(
        body(&rec, 2)["Operations"],
        json!([{"op": "add", "path": "members", "value": [{"value": "005A", "type": "User"}]}])
    );
}

#[tokio::test]
async fn webex_members_carry_a_lower_case_user_type_in_creates_and_patches() {
    let (rec, base) = recorder().await;
    let (remote, _) = remote(&base, Auth::Bearer(Secret::new("t")), Mode::Webex);
    let mut links = MemoryLinks::default();
    let (u1, u2, g) = (ResourceId::new(), ResourceId::new(), ResourceId::new());
    links.link(Kind::User, u1, "w1".into());
    links.link(Kind::User, u2, "w2".into());
    let learned = std::sync::Mutex::default();
    let mut s = Syncer {
        remote: &remote,
        mode: Mode::Webex,
        mapping: &DefaultMapping,
        deactivate: false,
        learned: &learned,
        dry_run: None,
    };
    script(
        &rec,
        &[
            (201, json!({"id": "wg"})),
            (200, json!({"patch": {"supported": true}})),
            (204, Value::Null),
        ],
    );
    s.group(None, &group(g, "Ops", &[u1]), &mut links)
        .await
        .unwrap();
    s.group(
        Some(&group(g, "Ops", &[u1])),
        &group(g, "Ops", &[u2]),
        &mut links,
    )
    .await
    .unwrap();
    assert_eq!(
        body(&rec, 0)["members"],
        json!([{"value": "w1", "type": "user"}])
    );
    assert_eq!(
        body(&rec, 2)["Operations"],
        json!([
            {"op": "add", "path": "members", "value": [{"value": "w2", "type": "user"}]},
            {"op": "remove", "path": "members[value eq \"w1\"]"}
        ])
    );
}
