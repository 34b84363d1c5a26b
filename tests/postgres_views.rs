//! Roster with its views in PostgreSQL, end to end over HTTP: two processes sharing one
//! database and one log, the blue/green rebuild while serving, and the same randomized SCIM
//! session against a memory-store server and a PostgreSQL one.

mod common;

use common::TestApp;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A row of the views that cannot be read is a fault for an operator, not an outage: the
/// client gets 500 without an invitation to retry (a 503 with `Retry-After` would have it try
/// forever), the other users are still served, and the projection goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_row_is_answered_as_a_fault_not_as_unavailable() {
    let url = common::fresh_database().await;
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(common::pg_settings(data.path(), &url), data).await;
    let token = app.scim_token.clone();
    let (s, bad) = app.create_user("default", &token, "mangled").await;
    assert_eq!(s, 201, "{bad}");
    let (s, good) = app.create_user("default", &token, "intact").await;
    assert_eq!(s, 201, "{good}");
    let id = bad["id"].as_str().unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let changed = client
        .execute(
            "UPDATE users SET resource = '[\"not a document\"]' WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(changed, 1);

    let users = format!("{}/Users", app.scim("default"));
    // Looked up by userName, which reads the row (a GET by id is answered from the cache,
    // which holds the user as the fold wrote it).
    let r = app
        .http
        .get(format!("{users}?filter=userName%20eq%20%22mangled%22"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert!(r.headers().get("retry-after").is_none());
    let (s, body) = common::parse(r).await;
    assert_eq!(s, 500);
    assert_eq!(body["status"], "500", "{body}");
    let (s, body) = app
        .get(&format!("{users}/{}", good["id"].as_str().unwrap()), &token)
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = app.create_user("default", &token, "later").await;
    assert_eq!(s, 201, "{body}");
}

/// An audit projection written before each row carried its partition's latest time
/// (migrations/V11) gains it on upgrade, taken from the rows in entry order even where writers'
/// clocks disagreed, in the active generation and in a rebuild's detached one, and the fold's
/// position keeps it; the first event at or after a time is then the first whose time reached
/// it (where an audit search's time range and each hour of the activity chart start). The
/// counts of users, which a process older than V10 did not keep, are counted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_gives_audit_rows_their_latest_time_and_counts_users_again() {
    let url = common::fresh_database().await;
    roster_projections::pg::PgStore::migrate_until(&common::pg_options(&url), 10)
        .await
        .unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute("SELECT roster_create_detached_generation(2)")
        .await
        .unwrap();
    // Out of order, as two writers whose clocks disagree append them.
    let times: [i64; 5] = [1_000, 3_000, 2_000, 5_000, 4_000];
    for (table, gen) in [("audit_events", 1i32), ("audit_events_g2", 2)] {
        for (entry, time) in times.iter().enumerate() {
            client
                .execute(
                    &format!(
                        "INSERT INTO {table} (gen, log_partition, entry, position, event, \
                         time_ms, type, resource_type, resource, version, actor_kind, directory, \
                         correlation, document) VALUES ($1, 0, $2, $2, 0, $3, 'user.created', \
                         'User', gen_random_uuid(), 1, 'source', 'default', 0, true)"
                    ),
                    &[&gen, &(entry as i64), time],
                )
                .await
                .unwrap();
        }
    }
    client
        .execute(
            "INSERT INTO positions (gen, log_partition, next_position, next_entry) \
             VALUES (1, 0, 5, 5)",
            &[],
        )
        .await
        .unwrap();
    // Users folded by a process older than V10 after V10 was applied: not counted.
    for owner in [Some("a"), Some("a"), None] {
        client
            .execute(
                "INSERT INTO users (gen, directory, id, owner, resource, version, created_ns, \
                 modified_ns, created_ms, modified_ms) \
                 VALUES (1, 'default', gen_random_uuid(), $1, '{}', 1, 0, 0, 0, 0)",
                &[&owner],
            )
            .await
            .unwrap();
    }
    client
        .execute(
            "INSERT INTO view_counts (gen, directory, kind, owner, n) \
             VALUES (1, 'default', 'user', 'a', 7)",
            &[],
        )
        .await
        .unwrap();

    let store = common::pg_store(&url).await;
    for table in ["audit_events_g1", "audit_events_g2"] {
        let latest: Vec<i64> = client
            .query(
                &format!("SELECT max_time_ms FROM {table} ORDER BY entry"),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(latest, [1_000, 3_000, 3_000, 5_000, 5_000], "{table}");
    }
    let kept: Option<i64> = client
        .query_one(
            "SELECT max_time_ms FROM positions WHERE gen = 1 AND log_partition = 0",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, Some(5_000));
    let counts: Vec<(String, i64)> = client
        .query(
            "SELECT owner, n FROM view_counts WHERE gen = 1 AND kind = 'user' ORDER BY owner",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        counts,
        [(String::new(), 1), ("a".to_owned(), 2)],
        "counted again"
    );
    for (since, first) in [
        (0, 0),
        (1_000, 0),
        (1_001, 1),
        (2_000, 1),
        (3_000, 1),
        (3_001, 3),
        (4_000, 3),
        (5_000, 3),
        (5_001, 5),
    ] {
        assert_eq!(
            store.audit_first_since(0, since).await.unwrap(),
            first,
            "the first event at or after {since}"
        );
    }
}

/// A write acknowledged by one process is visible to a GET on the other at once, both ways,
/// for creates, changes and deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_process_is_visible_on_the_other_immediately() {
    let url = common::fresh_database().await;
    let (brokers, topic) = (common::tansu_brokers(), common::unique_topic());
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let with_pg = |s: roster::config::Settings| roster::config::Settings {
        store: roster::config::StoreBackend::Postgres,
        postgres_url: Some(roster::auth::Secret::new(url.clone())),
        ..s
    };
    let a = TestApp::spawn_with(
        with_pg(common::kafka_settings(da.path(), &brokers, &topic)),
        da,
    )
    .await;
    let b = TestApp::spawn_joining(
        with_pg(common::kafka_settings(db.path(), &brokers, &topic)),
        &a,
    )
    .await;
    let token = a.scim_token.clone();
    for round in 0..20 {
        let (writer, reader) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let (status, created) = writer
            .create_user("default", &token, &format!("shared{round}"))
            .await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap();
        let at = format!("{}/Users/{id}", reader.scim("default"));
        let (status, seen) = reader.get(&at, &token).await;
        assert_eq!(
            status, 200,
            "round {round}: the other process does not see the create"
        );
        assert_eq!(seen["meta"]["version"], created["meta"]["version"]);

        let (status, replaced) = reader
            .put(
                &at,
                &token,
                json!({"userName": format!("shared{round}"), "title": "changed"}),
            )
            .await;
        assert_eq!(status, 200, "{replaced}");
        let (_, seen) = writer
            .get(&format!("{}/Users/{id}", writer.scim("default")), &token)
            .await;
        assert_eq!(seen["title"], "changed", "round {round}");
        assert_eq!(seen["meta"]["version"], replaced["meta"]["version"]);

        if round % 4 == 0 {
            assert_eq!(
                writer
                    .delete(&format!("{}/Users/{id}", writer.scim("default")), &token)
                    .await,
                204
            );
            assert_eq!(reader.get(&at, &token).await.0, 404, "round {round}");
        }
    }
    let list = |app: &TestApp| {
        let url = format!("{}/Users?count=1000", app.scim("default"));
        let token = token.clone();
        let http = app.http.clone();
        async move {
            let r = http.get(url).bearer_auth(token).send().await.unwrap();
            let mut v = common::parse(r).await.1;
            // Locations name the process that answered; everything else must be equal.
            for u in v["Resources"].as_array_mut().unwrap() {
                u["meta"].as_object_mut().unwrap().remove("location");
            }
            v
        }
    };
    assert_eq!(list(&a).await, list(&b).await);
    b.stop().await;
    a.stop().await;
}

/// Views that grow fast from nothing get the planner's statistics from Roster itself, well
/// before autovacuum would look: every table the fold reads by key, the audit projection
/// included (planned as empty, its lookup of each changed resource's last event walked the
/// whole table: a PATCH of users created a moment before took ten times as long).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_that_grow_fast_are_analyzed_by_roster() {
    let url = common::fresh_database().await;
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(common::pg_settings(data.path(), &url), data).await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let gen: i32 = client
        .query_one("SELECT active FROM roster_generation", &[])
        .await
        .unwrap()
        .get(0);
    let tables = [format!("users_g{gen}"), format!("audit_events_g{gen}")];
    // Only Roster's own analysis can give them statistics during the test.
    for table in &tables {
        client
            .batch_execute(&format!(
                "ALTER TABLE {table} SET (autovacuum_enabled = false)"
            ))
            .await
            .unwrap();
    }
    let operations: Vec<Value> = (0..1_000)
        .map(|i| {
            json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"),
                   "data": {"userName": format!("grown-{i}")}})
        })
        .collect();
    let (s, body) = app
        .post(
            &format!("{}/Bulk", app.scim("default")),
            &app.scim_token.clone(),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                   "Operations": operations}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let unanalyzed = loop {
        let mut unanalyzed = Vec::new();
        for table in &tables {
            let rows: f32 = client
                .query_one(
                    "SELECT reltuples FROM pg_class WHERE relname = $1",
                    &[table],
                )
                .await
                .unwrap()
                .get(0);
            if rows < 0.0 {
                unanalyzed.push(table.clone());
            }
        }
        if unanalyzed.is_empty() || std::time::Instant::now() > deadline {
            break unanalyzed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(unanalyzed.is_empty(), "never analyzed: {unanalyzed:?}");
}

/// A rebuild folds the log into a new generation while the server keeps answering reads
/// and writes, swaps, and leaves views equal to a fresh replay of the log, with every write
/// acknowledged during the rebuild in them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_while_serving_swaps_to_identical_views() {
    let url = common::fresh_database().await;
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(common::pg_settings(data.path(), &url), data).await;
    let token = app.scim_token.clone();
    let users = format!("{}/Users", app.scim("default"));
    let mut ids = Vec::new();
    for i in 0..300 {
        let (status, v) = app
            .create_user("default", &token, &format!("before{i}"))
            .await;
        assert_eq!(status, 201);
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    let (status, group) = app
        .post(
            &format!("{}/Groups", app.scim("default")),
            &token,
            json!({"displayName": "everyone", "members": ids.iter().take(50).map(|id| json!({"value": id})).collect::<Vec<_>>()}),
        )
        .await;
    assert_eq!(status, 201, "{group}");

    // Writes keep coming during the rebuild.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (http, users, token, stop) =
            (app.http.clone(), users.clone(), token.clone(), stop.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let r = http
                    .post(&users)
                    .bearer_auth(&token)
                    .header("content-type", "application/scim+json")
                    .body(json!({"userName": format!("during{i}")}).to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                let v: Value = r.json().await.unwrap();
                acked.push(v["id"].as_str().unwrap().to_owned());
            }
            acked
        })
    };
    let admin = app.admin_token.clone();
    let rebuild = format!("{}/admin/v1/rebuild", app.root);
    let (status, started) = app.post(&rebuild, &admin, json!({})).await;
    assert_eq!(status, 202, "{started}");
    let (status, again) = app.post(&rebuild, &admin, json!({})).await;
    assert!(status == 409 || again["state"] == "done", "{again}");
    let done = loop {
        let (_, s) = app.get(&rebuild, &admin).await;
        match s["state"].as_str().unwrap() {
            "running" => {
                // Reads keep being served by the old generation.
                let (status, _) = app.get(&format!("{users}/{}", ids[7]), &token).await;
                assert_eq!(status, 200);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            "done" => break s,
            other => panic!("rebuild {other}: {s}"),
        }
    };
    assert_eq!(done["generation"], 2, "{done}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let during = writer.await.unwrap();
    assert!(!during.is_empty());
    for id in ids.iter().chain(&during) {
        let (status, _) = app.get(&format!("{users}/{id}"), &token).await;
        assert_eq!(status, 200, "{id} missing after the swap");
    }
    let (status, g) = app
        .get(
            &format!(
                "{}/Groups/{}",
                app.scim("default"),
                group["id"].as_str().unwrap()
            ),
            &token,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(g["members"].as_array().unwrap().len(), 50);

    // A second rebuild works too (the first one's leftovers are gone).
    let (status, _) = app.post(&rebuild, &admin, json!({})).await;
    assert_eq!(status, 202);
    loop {
        let (_, s) = app.get(&rebuild, &admin).await;
        if s["state"] == "done" {
            assert_eq!(s["generation"], 3);
            break;
        }
        assert_eq!(s["state"], "running", "{s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let data = app.stop().await;
    common::assert_pg_views_equal_a_replay(data.path(), &url).await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename ~ '_g[12]$'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the old generations' tables are dropped");
    common::assert_generation_indexes(&url, 3).await;
}

#[test]
fn rebuild_is_refused_on_the_memory_store() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let app = TestApp::spawn().await;
        let (status, body) = app
            .post(
                &format!("{}/admin/v1/rebuild", app.root),
                &app.admin_token.clone(),
                json!({}),
            )
            .await;
        assert_eq!(status, 409, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("postgres"));
        app.stop().await;
    });
}

/// One step of a SCIM session. Indexes pick among the objects created so far.
#[derive(Clone, Debug)]
enum Step {
    CreateUser(u8),
    ReplaceUser(usize, u8),
    PatchUser(usize, u8),
    DeleteUser(usize),
    CreateGroup(u8, Vec<usize>),
    PatchMembers(usize, Vec<usize>, Vec<usize>),
    DeleteGroup(usize),
    GetUser(usize),
    GetGroup(usize),
    ListUsers(usize, usize, usize),
    ListGroups(usize, usize),
}

fn step() -> impl Strategy<Value = Step> {
    let i = any::<usize>();
    let ids = prop::collection::vec(any::<usize>(), 0..4);
    prop_oneof![
        4 => any::<u8>().prop_map(Step::CreateUser),
        2 => (i, any::<u8>()).prop_map(|(a, b)| Step::ReplaceUser(a, b)),
        2 => (i, any::<u8>()).prop_map(|(a, b)| Step::PatchUser(a, b)),
        1 => i.prop_map(Step::DeleteUser),
        2 => (any::<u8>(), ids.clone()).prop_map(|(a, b)| Step::CreateGroup(a, b)),
        2 => (i, ids.clone(), ids).prop_map(|(a, b, c)| Step::PatchMembers(a, b, c)),
        1 => i.prop_map(Step::DeleteGroup),
        2 => i.prop_map(Step::GetUser),
        1 => i.prop_map(Step::GetGroup),
        4 => (i, i, i).prop_map(|(a, b, c)| Step::ListUsers(a, b, c)),
        2 => (i, i).prop_map(|(a, b)| Step::ListGroups(a, b)),
    ]
}

const USER_FILTERS: &[&str] = &[
    "",
    r#"userName eq "user7""#,
    r#"userName sw "USER1""#,
    r#"emails.value co "@corp""#,
    r#"emails[type eq "work" and value ew ".example"]"#,
    r#"title pr"#,
    r#"not (title pr) and userName co "2""#,
    r#"externalId eq "E3""#,
    r#"displayName ne "x""#,
    r#"active eq true"#,
];
const SORTS: &[&str] = &["", "userName", "externalId", "title", "meta.created"];
const GROUP_FILTERS: &[&str] = &[
    "",
    r#"displayName sw "team""#,
    "members pr",
    r#"displayName eq "TEAM3""#,
];

/// One server of the pair: its ids in creation order, to name objects the same on both.
struct Side {
    app: TestApp,
    users: Vec<String>,
    groups: Vec<String>,
}

impl Side {
    fn pick(list: &[String], i: usize) -> String {
        if list.is_empty() {
            "00000000-0000-7000-8000-000000000000".into()
        } else {
            list[i % list.len()].clone()
        }
    }

    /// Runs one step; returns the status and the body with this server's ids, host and times
    /// replaced by names both servers share.
    async fn run(&mut self, step: &Step) -> (u16, Value) {
        let token = self.app.scim_token.clone();
        let base = self.app.scim("default");
        let user = |i| Self::pick(&self.users, i);
        let group = |i| Self::pick(&self.groups, i);
        let members = |is: &[usize]| -> Vec<Value> {
            is.iter()
                .map(|&i| json!({"value": Self::pick(&self.users, i)}))
                .collect()
        };
        let patch = |url: String, ops: Value| {
            let http = self.app.http.clone();
            let token = token.clone();
            async move {
                let r = http
                    .patch(url)
                    .bearer_auth(token)
                    .header("content-type", "application/scim+json")
                    .body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}).to_string())
                    .send()
                    .await
                    .unwrap();
                common::parse(r).await
            }
        };
        let (status, body) = match step {
            Step::CreateUser(n) => {
                let body = json!({
                    "userName": format!("user{n}"),
                    "externalId": format!("E{}", n % 5),
                    "displayName": format!("User {n}"),
                    "active": n % 3 != 0,
                    "emails": [{"value": format!("u{n}@corp.example"), "type": "work"}],
                });
                let r = self.app.post(&format!("{base}/Users"), &token, body).await;
                if r.0 == 201 {
                    self.users.push(r.1["id"].as_str().unwrap().to_owned());
                }
                r
            }
            Step::ReplaceUser(i, n) => {
                let body = json!({"userName": format!("user{n}"), "title": format!("t{n}"), "emails": [{"value": format!("{n}@home.example"), "type": "home"}]});
                self.app.put(&format!("{base}/Users/{}", user(*i)), &token, body).await
            }
            Step::PatchUser(i, n) => {
                patch(format!("{base}/Users/{}", user(*i)), json!([{"op": "replace", "path": "title", "value": format!("p{n}")}, {"op": "replace", "value": {"active": n % 2 == 0}}])).await
            }
            Step::DeleteUser(i) => {
                let id = user(*i);
                let s = self.app.delete(&format!("{base}/Users/{id}"), &token).await;
                (s, Value::Null)
            }
            Step::CreateGroup(n, m) => {
                let body = json!({"displayName": format!("team{n}"), "members": members(m)});
                let r = self.app.post(&format!("{base}/Groups"), &token, body).await;
                if r.0 == 201 {
                    self.groups.push(r.1["id"].as_str().unwrap().to_owned());
                }
                r
            }
            Step::PatchMembers(i, add, remove) => {
                let mut ops = vec![];
                if !add.is_empty() {
                    ops.push(json!({"op": "add", "path": "members", "value": members(add)}));
                }
                for &r in remove {
                    ops.push(json!({"op": "remove", "path": format!("members[value eq \"{}\"]", user(r))}));
                }
                if ops.is_empty() {
                    ops.push(json!({"op": "replace", "path": "displayName", "value": "renamed"}));
                }
                patch(format!("{base}/Groups/{}", group(*i)), Value::Array(ops)).await
            }
            Step::DeleteGroup(i) => {
                let s = self.app.delete(&format!("{base}/Groups/{}", group(*i)), &token).await;
                (s, Value::Null)
            }
            Step::GetUser(i) => self.app.get(&format!("{base}/Users/{}", user(*i)), &token).await,
            Step::GetGroup(i) => self.app.get(&format!("{base}/Groups/{}", group(*i)), &token).await,
            Step::ListUsers(f, s, p) => {
                let mut q = vec![format!("count={}", 1 + p % 7), format!("startIndex={}", 1 + p % 4)];
                let filter = USER_FILTERS[f % USER_FILTERS.len()];
                if !filter.is_empty() {
                    q.push(format!("filter={}", urlencode(filter)));
                }
                let sort = SORTS[s % SORTS.len()];
                if !sort.is_empty() {
                    q.push(format!("sortBy={sort}"));
                    if p % 2 == 0 {
                        q.push("sortOrder=descending".into());
                    }
                }
                if p % 3 == 0 {
                    q.push("attributes=userName,emails".into());
                }
                self.app.get(&format!("{base}/Users?{}", q.join("&")), &token).await
            }
            Step::ListGroups(f, p) => {
                let filter = GROUP_FILTERS[f % GROUP_FILTERS.len()];
                let mut q = vec![format!("count={}", 1 + p % 5)];
                if !filter.is_empty() {
                    q.push(format!("filter={}", urlencode(filter)));
                }
                if p % 2 == 0 {
                    q.push("excludedAttributes=members".into());
                }
                self.app.get(&format!("{base}/Groups?{}", q.join("&")), &token).await
            }
        };
        (status, self.normalize(body))
    }

    fn normalize(&self, v: Value) -> Value {
        let mut names: HashMap<&str, String> = HashMap::new();
        for (i, id) in self.users.iter().enumerate() {
            names.insert(id, format!("user#{i}"));
        }
        for (i, id) in self.groups.iter().enumerate() {
            names.insert(id, format!("group#{i}"));
        }
        fn walk(v: Value, root: &str, names: &HashMap<&str, String>) -> Value {
            match v {
                Value::String(s) => {
                    let mut s = s.replace(root, "ROOT");
                    for (id, name) in names {
                        if s.contains(id) {
                            s = s.replace(id, name);
                        }
                    }
                    Value::String(s)
                }
                Value::Array(a) => {
                    Value::Array(a.into_iter().map(|x| walk(x, root, names)).collect())
                }
                Value::Object(m) => Value::Object(
                    m.into_iter()
                        .map(|(k, x)| {
                            if k == "created" || k == "lastModified" {
                                (k, Value::String("TIME".into()))
                            } else {
                                (k, walk(x, root, names))
                            }
                        })
                        .collect(),
                ),
                v => v,
            }
        }
        walk(v, &self.app.root, &names)
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]
    #[test]
    fn the_same_scim_session_gets_the_same_answers_from_memory_and_postgres(
        steps in prop::collection::vec(step(), 20..80)
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let url = common::fresh_database().await;
            let dm = tempfile::tempdir().unwrap();
            let dp = tempfile::tempdir().unwrap();
            let mut mem = Side { app: TestApp::spawn_with(common::settings(dm.path()), dm).await, users: vec![], groups: vec![] };
            let mut pg = Side { app: TestApp::spawn_with(common::pg_settings(dp.path(), &url), dp).await, users: vec![], groups: vec![] };
            for (n, step) in steps.iter().enumerate() {
                let a = mem.run(step).await;
                let b = pg.run(step).await;
                assert_eq!(a, b, "step {n}: {step:?}");
            }
            mem.app.stop().await;
            pg.app.stop().await;
        });
    }
}
