//! No client holds a resource without bound: connections that dribble or idle are closed,
//! connections beyond the limit wait, oversized heads and bodies are refused (with SCIM bodies,
//! the body before it is read), PATCH requests are bounded, password hashing is bounded, and a
//! source over its request rate gets 429 with `Retry-After` while the others go on.

mod common;

use common::TestApp;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn spawn(tune: impl FnOnce(&mut roster::config::Settings)) -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let mut s = common::settings(data.path());
    tune(&mut s);
    TestApp::spawn_with(s, data).await
}

fn addr(app: &TestApp) -> String {
    app.root.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection, within `limit`. Returns what it read.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .map(|_| out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dribbled_header_and_an_idle_keep_alive_are_disconnected() {
    let app = spawn(|s| s.header_timeout_ms = 300).await;
    // Half a request line, then nothing.
    let mut slow = TcpStream::connect(addr(&app)).await.unwrap();
    slow.write_all(b"GET /healthz HT").await.unwrap();
    assert!(
        read_until_closed(&mut slow, Duration::from_secs(10))
            .await
            .is_some(),
        "a partial header is not held open"
    );
    // A whole request, answered, then an idle keep-alive connection.
    let mut idle = TcpStream::connect(addr(&app)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let seen = read_until_closed(&mut idle, Duration::from_secs(10))
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_for_a_free_one() {
    let app = spawn(|s| {
        s.max_connections = 2;
        s.header_timeout_ms = 1_000;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(addr(&app)).await.unwrap();
        c.write_all(b"GET /healthz HT").await.unwrap();
        held.push(c);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let url = format!("{}/healthz", app.root);
    let third = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status().as_u16()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !third.is_finished(),
        "a third connection is not served while two are held"
    );
    // The held connections time out; the third is served.
    let status = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .expect("served once a connection is free")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_and_declared_bodies_get_scim_errors_before_the_body_is_read() {
    let app = TestApp::spawn().await;
    // A body declared larger than the limit and never sent: answered at once.
    let mut c = TcpStream::connect(addr(&app)).await.unwrap();
    let head = format!(
        "POST /source/scim/default/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: 50000000\r\n\r\n",
        app.scim_token
    );
    c.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("application/scim+json"), "{text}");

    let long = format!("{}/Users?filter={}", app.scim("default"), "a".repeat(9_000));
    let r = app
        .http
        .get(&long)
        .bearer_auth(&app.scim_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 414);
    assert_eq!(r.headers()["content-type"], "application/scim+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "414");

    let mut req = app.http.get(format!("{}/Users", app.scim("default")));
    for i in 0..120 {
        req = req.header(format!("x-pad-{i}"), "x");
    }
    let r = req.bearer_auth(&app.scim_token).send().await.unwrap();
    assert_eq!(r.status(), 431);
    assert_eq!(r.headers()["content-type"], "application/scim+json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_requests_are_bounded_in_operations_and_values() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let (_, u) = app.create_user("default", &t, "big@example.com").await;
    let url = format!(
        "{}/Users/{}",
        app.scim("default"),
        u["id"].as_str().unwrap()
    );
    let many: Vec<Value> = (0..10_000)
        .map(|i| json!({"op": "add", "path": "emails", "value": [{"value": format!("e{i}@x")}]}))
        .collect();
    let (s, e) = app.patch(&url, &t, json!({"Operations": many})).await;
    assert_eq!(s, 413, "{e}");
    let values: Vec<Value> = (0..150)
        .map(|i| json!({"value": format!("e{i}@x")}))
        .collect();
    let (s, e) = app
        .patch(
            &url,
            &t,
            json!({"Operations": [{"op": "add", "path": "emails", "value": values}]}),
        )
        .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (400, Some("invalidValue")),
        "{e}"
    );
    let (_, now) = app.get(&url, &t).await;
    assert!(now.get("emails").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_hashing_is_bounded_and_the_overflow_is_told_to_retry() {
    let app = spawn(|s| {
        s.password_hash_concurrency = Some(1);
        s.password_hash_queue = 2;
        s.password_hash_wait_ms = 20_000;
    })
    .await;
    let url = format!("{}/Users", app.scim("default"));
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (http, url, t) = (app.http.clone(), url.clone(), app.scim_token.clone());
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(t)
                .header("content-type", "application/scim+json")
                .body(
                    json!({"userName": format!("pw{i}"), "password": "correct horse"}).to_string(),
                )
                .send()
                .await
                .unwrap();
            let retry = r.headers().get("retry-after").is_some();
            (r.status().as_u16(), retry)
        }));
    }
    let mut created = 0;
    let mut busy = 0;
    for t in tasks {
        match t.await.unwrap() {
            (201, _) => created += 1,
            (503, true) => busy += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(created >= 1 && busy >= 1, "created {created}, busy {busy}");
    let (_, list) = app
        .get(&format!("{url}?count=0"), &app.scim_token.clone())
        .await;
    assert_eq!(
        list["totalResults"], created,
        "only the answered creates happened"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_over_its_rate_gets_429_and_the_others_go_on() {
    let app = spawn(|s| {
        s.source_rate_per_second = 2;
        s.source_rate_burst = 5;
    })
    .await;
    let other = app.create_source("other").await;
    let url = format!("{}/Users?count=0", app.scim("default"));
    let mut limited = None;
    for _ in 0..20 {
        let r = app
            .http
            .get(&url)
            .bearer_auth(&app.scim_token)
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("a burst beyond the rate is refused");
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&wait));
    assert_eq!(r.headers()["content-type"], "application/scim+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "429");
    let (s, _) = app
        .get(&format!("{}/Users?count=0", app.scim("other")), &other)
        .await;
    assert_eq!(s, 200, "another source is not held back");
}

/// POSTs `body` (too large) to `users` on `client` and asserts that it is answered 413.
async fn post_refused(
    client: &reqwest::Client,
    users: &str,
    token: &str,
    body: &str,
    attempt: usize,
) -> reqwest::Response {
    let r = client
        .post(users)
        .bearer_auth(token)
        .header("content-type", "application/scim+json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap_or_else(|e| panic!("attempt {attempt}: {e:?}"));
    assert_eq!(r.status(), 413, "attempt {attempt}");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_sending_an_oversized_body_reads_its_413() {
    // The 413 is answered before the body is read; a client still writing the rest must not
    // see its connection reset (and its answer discarded) when the server closes.
    let app = TestApp::spawn().await;
    let users = format!("{}/Users", app.scim("default"));
    let body = format!("{{\"userName\":\"{}\"}}", "a".repeat(8 << 20));
    for attempt in 0..5 {
        let client = reqwest::Client::new();
        let r = post_refused(&client, &users, &app.scim_token, &body, attempt).await;
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["status"], "413");
    }
    let (_, list) = app.get(&format!("{users}?count=0"), &app.scim_token).await;
    assert_eq!(list["totalResults"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_413_closes_its_connection_so_the_next_request_takes_a_fresh_one() {
    // The body of a request refused with 413 may be unread: the connection cannot carry
    // another request, and the answer says so (`Connection: close`). A client that pooled
    // the connection instead lost its next request to the close (a CI run of scim_bulk did).
    let app = TestApp::spawn().await;
    let users = format!("{}/Users", app.scim("default"));
    let big = format!("{{\"userName\":\"{}\"}}", "a".repeat(2 << 20));
    let client = reqwest::Client::new();
    for attempt in 0..10 {
        let r = post_refused(&client, &users, &app.scim_token, &big, attempt).await;
        let close = r
            .headers()
            .get("connection")
            .map(|v| v.to_str().unwrap_or(""));
        assert_eq!(close, Some("close"), "attempt {attempt}");
        r.bytes().await.unwrap();
        let next = client
            .get(format!("{users}?count=0"))
            .bearer_auth(&app.scim_token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("the request after attempt {attempt}: {e:?}"));
        assert_eq!(next.status(), 200, "attempt {attempt}");
    }
}
