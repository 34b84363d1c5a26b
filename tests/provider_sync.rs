//! Outbound providers end to end, against an independent SCIM server: `scim2-server` from
//! PyPI, installed and found by `scripts/test.sh` (ROSTER_TEST_SCIM2_SERVER). Identities are
//! provisioned into Roster through its SCIM source and must appear on the remote with the
//! same attributes and memberships; deletes propagate; a remote that goes away gets
//! everything once it is back; a provider created after 10,000 changes bootstraps from a cut
//! of the views.

mod common;

use common::remote::{
    create_group, create_provider, eventually, fast_settings, free_port, patch, refusing_remote,
    spawn, status, Remote, REMOTE_TOKEN,
};
use common::TestApp;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_groups_provisioned_into_roster_arrive_on_the_remote_with_their_memberships() {
    let remote = Remote::start().await;
    let app = spawn().await;
    let provider = create_provider(&app, "scim2", &remote, json!({})).await;
    assert!(
        !provider.to_string().contains(REMOTE_TOKEN),
        "the API never shows the credentials: {provider}"
    );

    let users = app.scim("default") + "/Users";
    let (s, alice) = app
        .post(
            &users,
            &app.scim_token,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "userName": "alice@example.com",
                "name": {"givenName": "Alice", "familyName": "Liddell"},
                "displayName": "Alice Liddell",
                "emails": [{"value": "alice@example.com", "type": "work", "primary": true}],
                "active": true,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Wonderland"},
            }),
        )
        .await;
    assert_eq!(s, 201, "{alice}");
    let (_, bob) = app
        .create_user("default", &app.scim_token, "bob@example.com")
        .await;
    let (_, carol) = app
        .create_user("default", &app.scim_token, "carol@example.com")
        .await;
    let aid = alice["id"].as_str().unwrap();
    let bid = bob["id"].as_str().unwrap();
    let cid = carol["id"].as_str().unwrap();
    let team = create_group(&app, "Team", &[aid, bid]).await;
    let tid = team["id"].as_str().unwrap();
    let _outer = create_group(&app, "Everyone", &[tid, cid]).await;

    let groups = eventually(
        30,
        || remote.groups(),
        |g| {
            g.get("Team").is_some_and(|(_, m)| m.len() == 2)
                && g.get("Everyone").is_some_and(|(_, m)| m.len() == 2)
        },
    )
    .await;
    assert_eq!(
        groups["Team"].1,
        BTreeSet::from([
            "alice@example.com".to_string(),
            "bob@example.com".to_string()
        ])
    );
    assert_eq!(
        groups["Everyone"].1,
        BTreeSet::from(["Team".to_string(), "carol@example.com".to_string()])
    );
    assert_eq!(groups["Team"].0["externalId"], json!(tid));
    let remote_users = remote.users().await;
    assert_eq!(remote_users.len(), 3);
    let a = &remote_users["alice@example.com"];
    assert_eq!(a["externalId"], json!(aid), "externalId is Roster's id");
    assert_eq!(a["name"]["givenName"], "Alice");
    assert_eq!(a["name"]["familyName"], "Liddell");
    assert_eq!(a["displayName"], "Alice Liddell");
    assert_eq!(a["emails"][0]["value"], "alice@example.com");
    assert_eq!(
        a["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
        "Wonderland"
    );

    // A change, a member removed, a group renamed.
    patch(
        &app,
        &format!("Users/{aid}"),
        json!([{"op": "replace", "path": "displayName", "value": "Alice L."}]),
    )
    .await;
    patch(
        &app,
        &format!("Groups/{tid}"),
        json!([{"op": "remove", "path": format!("members[value eq \"{bid}\"]")}]),
    )
    .await;
    patch(
        &app,
        &format!("Groups/{tid}"),
        json!([{"op": "replace", "path": "displayName", "value": "Core team"}]),
    )
    .await;
    let groups = eventually(
        30,
        || remote.groups(),
        |g| g.get("Core team").is_some_and(|(_, m)| m.len() == 1),
    )
    .await;
    assert_eq!(
        groups["Core team"].1,
        BTreeSet::from(["alice@example.com".to_string()])
    );
    assert!(!groups.contains_key("Team"));
    eventually(
        30,
        || remote.users(),
        |u| u["alice@example.com"]["displayName"] == "Alice L.",
    )
    .await;

    // Deletes propagate.
    assert_eq!(
        app.delete(&format!("{users}/{bid}"), &app.scim_token).await,
        204
    );
    assert_eq!(
        app.delete(
            &format!("{}/Groups/{tid}", app.scim("default")),
            &app.scim_token
        )
        .await,
        204
    );
    let groups = eventually(
        30,
        || remote.groups(),
        |g| !g.contains_key("Core team") && g.get("Everyone").is_some_and(|(_, m)| m.len() == 1),
    )
    .await;
    assert_eq!(
        groups["Everyone"].1,
        BTreeSet::from(["carol@example.com".to_string()])
    );
    let users = eventually(30, || remote.users(), |u| u.len() == 2).await;
    assert!(!users.contains_key("bob@example.com"));

    let st = status(&app, "scim2").await;
    assert_eq!(st["state"], "running", "{st}");
    assert_eq!(st["lag"], 0, "{st}");
    assert_eq!(st["parked"], json!([]), "{st}");
    assert!(
        st["recent_requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["method"] == "PATCH" && (r["status"] == 200 || r["status"] == 204)),
        "{st}"
    );
    assert!(st["last_full_sync"]["finished"].is_string(), "{st}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_sends_no_write_and_lists_what_it_would_send() {
    let remote = Remote::start().await;
    let app = spawn().await;
    create_provider(&app, "dry", &remote, json!({"dry_run": true})).await;
    app.create_user("default", &app.scim_token, "dora@example.com")
        .await;
    let st = eventually(
        30,
        || status(&app, "dry"),
        |s| {
            s["dry_run_requests"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["method"] == "POST"))
        },
    )
    .await;
    let post = st["dry_run_requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method"] == "POST")
        .unwrap()
        .clone();
    assert_eq!(post["path"], "/Users");
    assert_eq!(post["body"]["userName"], "dora@example.com");
    assert!(remote.users().await.is_empty(), "nothing was written");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_while_the_remote_is_down_arrive_when_it_is_back() {
    let mut remote = Remote::start().await;
    let port = remote.port;
    let app = spawn().await;
    create_provider(&app, "flaky", &remote, json!({})).await;
    for i in 0..20 {
        app.create_user(
            "default",
            &app.scim_token,
            &format!("before{i}@example.com"),
        )
        .await;
    }
    eventually(30, || remote.users(), |u| u.len() == 20).await;

    // The remote goes away mid-sync: these changes cannot be carried now.
    remote.stop();
    for i in 0..20 {
        app.create_user(
            "default",
            &app.scim_token,
            &format!("during{i}@example.com"),
        )
        .await;
    }
    let st = eventually(
        30,
        || status(&app, "flaky"),
        |s| s["pending"].as_u64().unwrap_or(0) > 0,
    )
    .await;
    assert_eq!(st["state"], "running", "{st}");

    // It comes back (scim2-server keeps nothing across a restart: it is empty).
    let remote = Remote::start_on(port).await;
    let users = eventually(
        60,
        || remote.users(),
        |u| (0..20).all(|i| u.contains_key(&format!("during{i}@example.com"))),
    )
    .await;
    assert_eq!(users.len(), 20, "only what changed while it was away");

    // A full sync restores what the restart lost, and sends nothing twice.
    let (s, _) = app
        .post(
            &format!("{}/admin/v1/providers/flaky/sync", app.root),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(s, 202);
    let users = eventually(60, || remote.users(), |u| u.len() == 40).await;
    assert!((0..20).all(|i| users.contains_key(&format!("before{i}@example.com"))));
    let st = eventually(
        30,
        || status(&app, "flaky"),
        |s| s["pending"] == 0 && s["last_full_sync"]["finished"].is_string(),
    )
    .await;
    assert_eq!(st["last_full_sync"]["created"], 20, "{st}");
    assert_eq!(st["last_full_sync"]["unchanged"], 20, "{st}");
    assert_eq!(remote.all("Users").await.len(), 40, "no duplicates");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_object_is_parked_without_holding_up_the_others_and_retried_on_demand() {
    let (base, remote) = refusing_remote().await;
    let app = spawn_with_attempts(3).await;
    let (s, body) = app
        .post(
            &format!("{}/admin/v1/providers", app.root),
            &app.admin_token,
            json!({"name": "strict", "base_url": base, "auth": {"type": "bearer", "token": "t"}}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, bad) = app
        .create_user("default", &app.scim_token, "bad@example.com")
        .await;
    assert_eq!(s, 201, "{bad}");
    for i in 0..5 {
        app.create_user("default", &app.scim_token, &format!("good{i}@example.com"))
            .await;
    }
    let count = || {
        let remote = remote.clone();
        async move { remote.lock().unwrap().len() }
    };
    eventually(30, count, |n| *n == 5).await;
    let st = eventually(
        30,
        || status(&app, "strict"),
        |s| s["parked"].as_array().is_some_and(|p| p.len() == 1),
    )
    .await;
    assert_eq!(st["parked"][0]["id"], bad["id"], "{st}");
    assert_eq!(st["parked"][0]["attempts"], 3, "{st}");
    assert!(
        st["parked"][0]["error"]
            .as_str()
            .unwrap()
            .contains("refused by policy"),
        "{st}"
    );

    // Fixed at the source, retried on demand: it goes.
    let (s, _) = app
        .put(
            &format!(
                "{}/Users/{}",
                app.scim("default"),
                bad["id"].as_str().unwrap()
            ),
            &app.scim_token,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                   "userName": "fixed@example.com"}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = app
        .post(
            &format!("{}/admin/v1/providers/strict/retry", app.root),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(s, 202);
    eventually(30, count, |n| *n == 6).await;
    let st = eventually(
        30,
        || status(&app, "strict"),
        |s| s["parked"] == json!([]) && s["pending"] == 0,
    )
    .await;
    assert_eq!(
        st["last_full_sync"]["failed"], 1,
        "the bootstrap reported it: {st}"
    );
    app.stop().await;
}

async fn spawn_with_attempts(attempts: u32) -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let s = roster::config::Settings {
        provider_max_attempts: attempts,
        ..fast_settings(data.path())
    };
    TestApp::spawn_with(s, data).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_added_after_10000_changes_bootstraps_from_the_cut_and_matches_the_views() {
    let app = spawn().await;
    let bulk = app.scim("default") + "/Bulk";
    // 4,000 users created, 4,000 changed, 2,000 deleted: 10,000 changes, 2,000 users left.
    let mut ids = Vec::new();
    for chunk in 0..40 {
        let ops: Vec<Value> = (0..100)
            .map(|i| {
                let n = chunk * 100 + i;
                json!({"method": "POST", "path": "/Users", "bulkId": format!("u{n}"),
                       "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                "userName": format!("user{n}@example.com"), "title": "v1"}})
            })
            .collect();
        let (s, r) = app
            .post(
                &bulk,
                &app.scim_token,
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops}),
            )
            .await;
        assert_eq!(s, 200, "{r}");
        for op in r["Operations"].as_array().unwrap() {
            assert_eq!(op["status"], "201", "{op}");
            ids.push(
                op["location"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    for (chunk, part) in ids.chunks(100).enumerate() {
        let ops: Vec<Value> = part
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let n = chunk * 100 + i;
                json!({"method": "PUT", "path": format!("/Users/{id}"),
                       "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                "userName": format!("user{n}@example.com"), "title": "v2"}})
            })
            .collect();
        let (s, r) = app
            .post(
                &bulk,
                &app.scim_token,
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops}),
            )
            .await;
        assert_eq!(s, 200, "{r}");
    }
    for part in ids[..2000].chunks(100) {
        let ops: Vec<Value> = part
            .iter()
            .map(|id| json!({"method": "DELETE", "path": format!("/Users/{id}")}))
            .collect();
        let (s, r) = app
            .post(
                &bulk,
                &app.scim_token,
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops}),
            )
            .await;
        assert_eq!(s, 200, "{r}");
    }

    let remote = Remote::start().await;
    create_provider(&app, "late", &remote, json!({})).await;
    let users = eventually(120, || remote.users(), |u| u.len() == 2000).await;
    let st = eventually(
        60,
        || status(&app, "late"),
        |s| s["pending"] == 0 && s["last_full_sync"]["finished"].is_string(),
    )
    .await;
    // The bootstrap compared today's 2,000 users and created them; the history before the
    // cut (8,000 earlier changes and 2,000 deletes) was never read.
    assert_eq!(st["last_full_sync"]["created"], 2000, "{st}");
    assert_eq!(st["last_full_sync"]["deleted"], 0, "{st}");
    // scim2-server takes Bulk requests: users went 100 to a request, not one by one.
    let recent = st["recent_requests"].as_array().unwrap();
    let bulks = recent.iter().filter(|r| r["path"] == "/v2/Bulk").count();
    assert!(bulks >= 20, "{recent:?}");
    assert!(!recent
        .iter()
        .any(|r| r["method"] == "POST" && r["path"] == "/v2/Users"));
    let metrics = app.metrics().await;
    let carried: f64 = metrics
        .lines()
        .find(|l| l.starts_with("roster_provider_objects_total{") && l.contains("outcome=\"ok\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert_eq!(carried, 2000.0, "one task per live user, none for history");
    // Identical to the views.
    for (i, id) in ids.iter().enumerate().skip(2000) {
        let u = &users[&format!("user{i}@example.com")];
        assert_eq!(u["externalId"], json!(id));
        assert_eq!(u["title"], "v2");
    }
    app.stop().await;
}

/// `roster serve` as a child process (to be killed with SIGKILL), with a configured admin
/// token and fast provider retries.
/// A `roster serve` child process, killed when dropped: a failing assertion must not leave
/// it running (and loading the machine for the tests after it).
struct Server(Child);

impl Server {
    /// `kill -9`, as a crash.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn start_roster(data: &std::path::Path, port: u16) -> Server {
    let config = data.join("roster-test.toml");
    std::fs::write(
        &config,
        "provider_retry_base_ms = 100\nprovider_retry_cap_ms = 1000\nprovider_max_attempts = 50\n\
         provider_request_attempts = 2\n",
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["--config", config.to_str().unwrap()])
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--data-dir", data.to_str().unwrap()])
        .args(["--admin-token", "admin-test-token-0123456789abcdef"])
        .env("ROSTER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map(Server)
        .unwrap()
}

async fn wait_up(http: &reqwest::Client, root: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(format!("{root}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "roster did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_killed_mid_sync_restarts_with_nothing_lost_and_nothing_duplicated_on_the_remote() {
    let remote = Remote::start().await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let root = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut child = start_roster(data.path(), port);
    wait_up(&http, &root).await;
    let admin = |req: reqwest::RequestBuilder| req.bearer_auth("admin-test-token-0123456789abcdef");
    let r = admin(http.post(format!("{root}/admin/v1/sources")))
        .json(&json!({"slug": "hr"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let token = r.json::<Value>().await.unwrap()["token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = admin(http.post(format!("{root}/admin/v1/providers")))
        .json(&json!({"name": "crash", "base_url": remote.base,
                      "auth": {"type": "bearer", "token": REMOTE_TOKEN}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // Users and groups of them, written by 8 clients; Roster is killed in the middle.
    let scim = format!("{root}/source/scim/hr/v2");
    let burst = |from: usize, to: usize| {
        let (http, scim, token) = (http.clone(), scim.clone(), token.clone());
        async move {
            let mut tasks = Vec::new();
            for w in 0..8 {
                let (http, scim, token) = (http.clone(), scim.clone(), token.clone());
                tasks.push(tokio::spawn(async move {
                    for i in (from..to).filter(|i| i % 8 == w) {
                        let u = http
                            .post(format!("{scim}/Users"))
                            .bearer_auth(&token)
                            .json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                          "userName": format!("crash{i}@example.com")}))
                            .send()
                            .await;
                        let Ok(u) = u else { return };
                        let Ok(u) = u.json::<Value>().await else { return };
                        let Some(id) = u["id"].as_str() else { continue };
                        if i % 5 == 0 {
                            let g = http
                                .post(format!("{scim}/Groups"))
                                .bearer_auth(&token)
                                .json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                              "displayName": format!("Team {i}"),
                                              "members": [{"value": id}]}))
                                .send()
                                .await;
                            // Some groups go again at once: created and deleted around
                            // the kill, they must not stay on the remote.
                            let g = match g { Ok(g) => g.json::<Value>().await.ok(), Err(_) => None };
                            if let Some(gid) = g.as_ref().and_then(|g| g["id"].as_str()).filter(|_| i % 10 == 0) {
                                let _ = http.delete(format!("{scim}/Groups/{gid}")).bearer_auth(&token).send().await;
                            }
                        }
                        // A third of the users go again, leaving their groups.
                        if i % 3 == 0 {
                            let _ = http.delete(format!("{scim}/Users/{id}")).bearer_auth(&token).send().await;
                        }
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        }
    };
    let first = tokio::spawn(burst(0, 400));
    // Kill once the provider is busy carrying the burst.
    eventually(60, || remote.all("Users"), |u| u.len() >= 40).await;
    child.kill();
    first.await.unwrap();

    let child = start_roster(data.path(), port);
    wait_up(&http, &root).await;
    burst(400, 480).await;

    let local = |collection: &'static str| {
        let (http, scim, token) = (http.clone(), scim.clone(), token.clone());
        async move {
            let r: Value = http
                .get(format!("{scim}/{collection}?count=1000"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["Resources"].as_array().cloned().unwrap_or_default()
        }
    };
    let users = local("Users").await;
    let groups = local("Groups").await;
    assert!(users.len() >= 50, "{} users", users.len());
    let want_users: BTreeSet<String> = users
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_owned())
        .collect();
    let want_groups: BTreeMap<String, BTreeSet<String>> = groups
        .iter()
        .map(|g| {
            let members = g["members"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| m["display"].as_str().unwrap_or_default().to_owned())
                .collect();
            (g["displayName"].as_str().unwrap().to_owned(), members)
        })
        .collect();
    let status = || {
        let http = http.clone();
        let root = root.clone();
        async move {
            admin(http.get(format!("{root}/admin/v1/providers/crash/status")))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    // Once the provider has nothing pending, in flight or unread, the remote equals the views
    // (no scheduled full sync needed): deleted users out of their groups, no orphan left.
    let st = eventually(120, status, |s| {
        s["pending"] == 0 && s["lag"] == 0 && s["in_flight"] == 0
    })
    .await;
    assert_eq!(st["parked"], json!([]), "{st}");
    let seen_users: BTreeSet<String> = remote.users().await.into_keys().collect();
    assert_eq!(seen_users, want_users);
    let seen: BTreeMap<String, BTreeSet<String>> = remote
        .groups()
        .await
        .into_iter()
        .map(|(k, (_, m))| (k, m))
        .collect();
    assert_eq!(seen, want_groups);
    // Nothing twice: every remote group is one local group (displayNames are not unique on
    // scim2-server, so a repeated create would show here).
    assert_eq!(remote.all("Groups").await.len(), groups.len());
    assert_eq!(remote.all("Users").await.len(), users.len());
    drop(child);
}

/// Two processes sharing Kafka and PostgreSQL (and the secret key): the provider runs in
/// exactly one of them, keeps its state in PostgreSQL, and the other takes over when that one
/// stops, from the saved position, sending nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_one_process_runs_a_provider_and_another_takes_over_when_it_stops() {
    let url = common::fresh_database().await;
    let (brokers, topic) = (common::tansu_brokers(), common::unique_topic());
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    let settings = |data: &std::path::Path| roster::config::Settings {
        store: roster::config::StoreBackend::Postgres,
        postgres_url: Some(roster::auth::Secret::new(url.clone())),
        secret_key: Some(roster::auth::Secret::new(key)),
        log: roster::config::LogBackend::Kafka,
        kafka_brokers: brokers.clone(),
        kafka_topic: topic.clone(),
        kafka_message_timeout_ms: 2_000,
        ..fast_settings(data)
    };
    let a = TestApp::spawn_with(settings(da.path()), da).await;
    let b = TestApp::spawn_joining(settings(db.path()), &a).await;
    let remote = Remote::start().await;
    create_provider(&a, "shared", &remote, json!({})).await;

    let mut ids = Vec::new();
    for i in 0..10 {
        let app = if i % 2 == 0 { &a } else { &b };
        let (s, u) = app
            .create_user("default", &a.scim_token, &format!("ha{i}@example.com"))
            .await;
        assert_eq!(s, 201, "{u}");
        ids.push(u["id"].as_str().unwrap().to_owned());
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    create_group(&a, "Replicated", &refs[..5]).await;
    eventually(60, || remote.users(), |u| u.len() == 10).await;
    eventually(
        60,
        || remote.groups(),
        |g| g.get("Replicated").is_some_and(|(_, m)| m.len() == 5),
    )
    .await;
    let (sa, sb) = (status(&a, "shared").await, status(&b, "shared").await);
    assert_ne!(
        sa["running_here"], sb["running_here"],
        "exactly one process runs it: {sa} {sb}"
    );
    let (runner, other) = if sa["running_here"] == true {
        (a, b)
    } else {
        (b, a)
    };
    // The other one reads the state the runner saved in PostgreSQL.
    let st = eventually(
        30,
        || status(&other, "shared"),
        |s| s["position"].as_u64().unwrap_or(0) > 0,
    )
    .await;
    assert_eq!(st["state"], "not running here", "{st}");

    runner.stop().await;
    for i in 10..15 {
        let (s, _) = other
            .create_user("default", &other.scim_token, &format!("ha{i}@example.com"))
            .await;
        assert_eq!(s, 201);
    }
    eventually(60, || remote.users(), |u| u.len() == 15).await;
    let st = eventually(
        60,
        || status(&other, "shared"),
        |s| s["running_here"] == true && s["pending"] == 0,
    )
    .await;
    assert_eq!(st["parked"], json!([]), "{st}");
    assert_eq!(remote.all("Groups").await.len(), 1, "nothing sent twice");
    assert_eq!(remote.all("Users").await.len(), 15);
    other.stop().await;
}

fn cli(app: &TestApp, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_roster"))
        .arg("provider")
        .args(args)
        .args(["--server", &app.root, "--admin-token", &app.admin_token])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_lists_shows_syncs_and_deletes_providers_without_showing_secrets() {
    let remote = Remote::start().await;
    let app = spawn().await;
    let file = app.data.path().join("provider.json");
    std::fs::write(
        &file,
        json!({"name": "cli", "base_url": remote.base, "mode": "slack",
               "auth": {"type": "bearer", "token": REMOTE_TOKEN}})
        .to_string(),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let (ok, out) = cli(&app, &["create", "--file", file]);
    assert!(ok, "{out}");
    assert!(!out.contains(REMOTE_TOKEN), "{out}");
    let (ok, out) = cli(&app, &["list"]);
    assert!(
        ok && out
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("cli   default    slack")),
        "{out}"
    );
    app.create_user("default", &app.scim_token, "cli@example.com")
        .await;
    eventually(30, || remote.users(), |u| u.len() == 1).await;
    let (ok, out) = cli(&app, &["status", "cli"]);
    assert!(ok && out.contains("state            running"), "{out}");
    let (ok, out) = cli(&app, &["sync", "cli"]);
    assert!(ok && out.contains("full sync of cli requested"), "{out}");
    let (ok, out) = cli(&app, &["replay", "cli", "--from", "999999"]);
    assert!(!ok && out.contains("past the end of the log"), "{out}");
    std::fs::write(app.data.path().join("change.json"), r#"{"dry_run": true}"#).unwrap();
    let change = app.data.path().join("change.json");
    let (ok, out) = cli(&app, &["update", "cli", "--file", change.to_str().unwrap()]);
    assert!(ok && out.contains("dry run        true"), "{out}");
    let (ok, out) = cli(&app, &["show", "cli"]);
    assert!(
        ok && !out.contains(REMOTE_TOKEN) && !out.contains("v1:"),
        "{out}"
    );
    let (ok, out) = cli(&app, &["delete", "cli"]);
    assert!(ok && out.contains("deleted provider cli"), "{out}");
    let (ok, out) = cli(&app, &["show", "cli"]);
    assert!(!ok && out.contains("404"), "{out}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_full_sync_repairs_what_changed_on_the_remote_behind_roster_s_back() {
    let remote = Remote::start().await;
    let app = spawn().await;
    create_provider(
        &app,
        "drift",
        &remote,
        json!({"full_sync_interval_secs": 1}),
    )
    .await;
    for i in 0..3 {
        let (s, _) = app
            .post(
                &(app.scim("default") + "/Users"),
                &app.scim_token,
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                       "userName": format!("drift{i}@example.com"), "displayName": format!("Drift {i}")}),
            )
            .await;
        assert_eq!(s, 201);
    }
    let users = eventually(30, || remote.users(), |u| u.len() == 3).await;
    // Someone deletes one user and renames another directly on the remote.
    let gone = users["drift0@example.com"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = reqwest::Client::new()
        .delete(format!("{}/Users/{gone}", remote.base))
        .bearer_auth(REMOTE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let mut changed = users["drift1@example.com"].clone();
    changed["displayName"] = json!("Changed remotely");
    changed.as_object_mut().unwrap().remove("meta");
    let id = changed["id"].as_str().unwrap().to_owned();
    let r = reqwest::Client::new()
        .put(format!("{}/Users/{id}", remote.base))
        .bearer_auth(REMOTE_TOKEN)
        .json(&changed)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // No change in Roster: the schedule alone brings the remote back to the views.
    let users = eventually(
        30,
        || remote.users(),
        |u| {
            u.len() == 3
                && u.get("drift1@example.com")
                    .is_some_and(|x| x["displayName"] == "Drift 1")
        },
    )
    .await;
    assert!(users.contains_key("drift0@example.com"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scope_keeps_service_accounts_out_and_follows_access_groups_and_the_group_filter() {
    let remote = Remote::start().await;
    let app = spawn().await;
    let users = app.scim("default") + "/Users";
    let mut id = BTreeMap::new();
    for (name, user_type) in [
        ("in", "Employee"),
        ("out", "Employee"),
        ("svc", "Service Account"),
    ] {
        let (s, u) = app
            .post(
                &users,
                &app.scim_token,
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                       "userName": format!("{name}@example.com"), "userType": user_type}),
            )
            .await;
        assert_eq!(s, 201, "{u}");
        id.insert(name, u["id"].as_str().unwrap().to_owned());
    }
    let access = create_group(&app, "Access", &[&id["in"], &id["svc"]]).await;
    let aid = access["id"].as_str().unwrap().to_owned();
    create_group(&app, "Not synced", &[&id["in"]]).await;
    create_provider(
        &app,
        "scoped",
        &remote,
        json!({"scope": {"exclude_service_accounts": true, "access_groups": [aid], "group_filter": [aid]}}),
    )
    .await;
    let groups = eventually(
        30,
        || remote.groups(),
        |g| g.get("Access").is_some_and(|(_, m)| m.len() == 1),
    )
    .await;
    assert_eq!(groups.len(), 1, "only the filtered group: {groups:?}");
    assert_eq!(
        groups["Access"].1,
        BTreeSet::from(["in@example.com".to_string()])
    );
    let seen = remote.users().await;
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        ["in@example.com"],
        "neither the service account nor a user outside the access group"
    );

    // Joining the access group brings a user in; leaving it takes one out.
    patch(
        &app,
        &format!("Groups/{aid}"),
        json!([{"op": "add", "path": "members", "value": [{"value": id["out"]}]},
               {"op": "remove", "path": format!("members[value eq \"{}\"]", id["in"])}]),
    )
    .await;
    let seen = eventually(
        30,
        || remote.users(),
        |u| u.len() == 1 && u.contains_key("out@example.com"),
    )
    .await;
    assert!(!seen.contains_key("in@example.com"));
    let groups = eventually(
        30,
        || remote.groups(),
        |g| {
            g.get("Access")
                .is_some_and(|(_, m)| m.contains("out@example.com"))
        },
    )
    .await;
    assert_eq!(
        groups["Access"].1,
        BTreeSet::from(["out@example.com".to_string()])
    );
    app.stop().await;
}
