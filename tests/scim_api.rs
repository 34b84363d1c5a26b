//! The SCIM endpoints of a source, over HTTP against the real server.

mod common;

use common::TestApp;
use serde_json::{json, Value};

fn is_scim_error(body: &Value, status: &str) -> bool {
    body["schemas"][0] == "urn:ietf:params:scim:api:messages:2.0:Error" && body["status"] == status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_read_replace_delete_a_user() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let base = app.scim("default");
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "client-chosen", "meta": {"version": "x"}, "password": "s3cret!",
        "userName": "ada@example.com", "externalId": "e-1",
        "name": {"givenName": "Ada", "familyName": "Lovelace", "middleName": null}, "title": null,
    });
    let r = app
        .http
        .post(format!("{base}/Users"))
        .bearer_auth(&t)
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["content-type"], "application/scim+json");
    assert_eq!(
        r.headers()["etag"],
        "W/\"2\"",
        "created, then its password set"
    );
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let user: Value = r.json().await.unwrap();
    let id = user["id"].as_str().unwrap().to_owned();
    assert_ne!(id, "client-chosen");
    assert_eq!(location, format!("{base}/Users/{id}"));
    assert_eq!(user["meta"]["location"], location.as_str());
    assert_eq!(user["meta"]["resourceType"], "User");
    assert_eq!(user["meta"]["version"], "W/\"2\"");
    assert!(user.get("password").is_none(), "password is never returned");
    assert!(user.get("title").is_none(), "null means absent");
    assert_eq!(
        user["name"],
        json!({"givenName": "Ada", "familyName": "Lovelace"}),
        "at any depth"
    );

    let (status, got) = app.get(&location, &t).await;
    assert_eq!(status, 200);
    assert_eq!(got, user);

    let (status, replaced) = app
        .put(&location, &t, json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada@example.com", "active": false}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(replaced["meta"]["version"], "W/\"3\"");
    assert_eq!(replaced["active"], false);
    assert!(
        replaced.get("name").is_none(),
        "PUT replaces: omitted attributes are cleared"
    );
    assert_eq!(replaced["meta"]["created"], user["meta"]["created"]);

    assert_eq!(app.delete(&location, &t).await, 204);
    let (status, body) = app.get(&location, &t).await;
    assert_eq!(status, 404);
    assert!(is_scim_error(&body, "404"));
    assert_eq!(app.delete(&location, &t).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_creates_differing_only_in_case_give_one_201_and_one_409() {
    let app = TestApp::spawn().await;
    for round in 0..20 {
        let (na, nb) = (
            format!("Bob{round}@Example.com"),
            format!("bob{round}@example.COM"),
        );
        let a = app.create_user("default", &app.scim_token, &na);
        let b = app.create_user("default", &app.scim_token, &nb);
        let ((sa, ba), (sb, bb)) = tokio::join!(a, b);
        let mut statuses = [sa, sb];
        statuses.sort();
        assert_eq!(statuses, [201, 409], "round {round}: {ba} {bb}");
        let conflict = if sa == 409 { ba } else { bb };
        assert_eq!(conflict["scimType"], "uniqueness");
    }
    let (_, list) = app
        .get(
            &format!("{}/Users?count=0", app.scim("default")),
            &app.scim_token,
        )
        .await;
    assert_eq!(list["totalResults"], 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_cannot_see_or_change_another_sources_objects() {
    let app = TestApp::spawn().await;
    let a = app.scim_token.clone();
    let b = app.create_source("okta").await;
    let (_, user) = app.create_user("default", &a, "alice@example.com").await;
    let id = user["id"].as_str().unwrap();

    // B's token on A's URL, and A's token on B's URL: 401.
    assert_eq!(
        app.get(&format!("{}/Users/{id}", app.scim("default")), &b)
            .await
            .0,
        401
    );
    assert_eq!(
        app.get(&format!("{}/Users/{id}", app.scim("okta")), &a)
            .await
            .0,
        401
    );
    // B on its own URL cannot see, list, replace or delete A's user.
    let b_user = format!("{}/Users/{id}", app.scim("okta"));
    assert_eq!(app.get(&b_user, &b).await.0, 404);
    let (_, list) = app.get(&format!("{}/Users", app.scim("okta")), &b).await;
    assert_eq!(list["totalResults"], 0);
    let (_, list) = app
        .get(
            &format!(
                "{}/Users?filter=userName eq \"alice@example.com\"",
                app.scim("okta")
            ),
            &b,
        )
        .await;
    assert_eq!(list["totalResults"], 0);
    assert_eq!(
        app.put(&b_user, &b, json!({"userName": "mallory"})).await.0,
        404
    );
    assert_eq!(app.delete(&b_user, &b).await, 404);
    // Nor put A's user into its own group.
    let (status, body) = app
        .post(
            &format!("{}/Groups", app.scim("okta")),
            &b,
            json!({"displayName": "g", "members": [{"value": id}]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // A userName taken by another source is a conflict (safe by default: no adoption).
    assert_eq!(
        app.create_user("okta", &b, "ALICE@example.com").await.0,
        409
    );
    // A's user is untouched.
    let (status, got) = app
        .get(&format!("{}/Users/{id}", app.scim("default")), &a)
        .await;
    assert_eq!(status, 200);
    assert_eq!(got["meta"]["version"], "W/\"1\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_gets_401_and_other_tokens_keep_working() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let (status, issued) = app
        .post(
            &format!("{}/admin/v1/sources/default/tokens", app.root),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 201);
    let second = issued["token"].as_str().unwrap().to_owned();
    let users = format!("{}/Users", app.scim("default"));
    assert_eq!(app.get(&users, &second).await.0, 200);
    let token_id = issued["id"].as_str().unwrap();
    let url = format!("{}/admin/v1/sources/default/tokens/{token_id}", app.root);
    assert_eq!(app.delete(&url, &admin).await, 204);
    let r = app
        .http
        .get(&users)
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    assert_eq!(app.get(&users, &app.scim_token).await.0, 200);
    // No token, a malformed header, another scheme, an admin token on SCIM: all 401.
    assert_eq!(app.http.get(&users).send().await.unwrap().status(), 401);
    assert_eq!(
        app.http
            .get(&users)
            .header("authorization", "Bearer")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        app.http
            .get(&users)
            .basic_auth("a", Some("b"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(app.get(&users, &admin).await.0, 401);
    // The admin API refuses source tokens.
    assert_eq!(
        app.get(&format!("{}/admin/v1/sources", app.root), &app.scim_token)
            .await
            .0,
        401
    );
    // Listing sources never shows a token or its hash.
    let (_, sources) = app
        .get(&format!("{}/admin/v1/sources", app.root), &admin)
        .await;
    let text = sources.to_string();
    assert!(!text.contains(&second) && !text.contains(&roster::auth::hash(&second)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_track_members_and_deletes_remove_memberships() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let base = app.scim("default");
    let (_, u1) = app.create_user("default", &t, "u1").await;
    let (_, u2) = app.create_user("default", &t, "u2").await;
    let (u1, u2) = (
        u1["id"].as_str().unwrap().to_owned(),
        u2["id"].as_str().unwrap().to_owned(),
    );
    let (status, inner) = app
        .post(
            &format!("{base}/Groups"),
            &t,
            json!({"displayName": "Inner", "members": [{"value": u2, "type": "User"}]}),
        )
        .await;
    assert_eq!(status, 201);
    let inner_id = inner["id"].as_str().unwrap().to_owned();
    let (status, g) = app
        .post(
            &format!("{base}/Groups"),
            &t,
            json!({"displayName": "Eng", "members": [{"value": u1}, {"value": inner_id}]}),
        )
        .await;
    assert_eq!(status, 201, "{g}");
    let gid = g["id"].as_str().unwrap().to_owned();
    let members = g["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    assert!(members
        .iter()
        .any(|m| m["value"] == u1.as_str() && m["type"] == "User" && m["display"] == "u1"));
    assert!(members.iter().any(|m| m["value"] == inner_id.as_str()
        && m["type"] == "Group"
        && m["display"] == "Inner"));

    // Users list their groups (RFC 7643 §4.1.2): direct, and indirect through nesting.
    let (_, user2) = app.get(&format!("{base}/Users/{u2}"), &t).await;
    let mut groups: Vec<(String, String)> = user2["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["display"].as_str().unwrap().to_owned(),
                g["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        [
            ("Eng".to_owned(), "indirect".to_owned()),
            ("Inner".to_owned(), "direct".to_owned())
        ]
    );
    let (_, user1) = app.get(&format!("{base}/Users/{u1}"), &t).await;
    assert_eq!(user1["groups"][0]["value"], gid.as_str());
    assert_eq!(
        user1["groups"][0]["$ref"],
        format!("{base}/Groups/{gid}").as_str()
    );
    // A page shows each user's groups exactly as a GET of the user does.
    let (_, page) = app.get(&format!("{base}/Users?sortBy=userName"), &t).await;
    let listed = page["Resources"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["groups"], user1["groups"]);
    assert_eq!(listed[1]["groups"], user2["groups"]);
    for (query, shown) in [
        ("attributes=userName", false),
        ("attributes=groups", true),
        ("attributes=groups.display", true),
        ("excludedAttributes=groups", false),
        ("excludedAttributes=groups.type", true),
    ] {
        let (_, page) = app
            .get(&format!("{base}/Users?sortBy=userName&{query}"), &t)
            .await;
        let listed = page["Resources"].as_array().unwrap();
        assert_eq!(listed[1]["groups"].is_array(), shown, "{query}: {page}");
        let (_, one) = app.get(&format!("{base}/Users/{u2}?{query}"), &t).await;
        assert_eq!(one["groups"].is_array(), shown, "{query}: {one}");
        if shown {
            assert_eq!(listed[1]["groups"].as_array().unwrap().len(), 2, "{query}");
        }
    }
    // A page of groups shows each group's members as a GET of the group does.
    let (_, eng) = app.get(&format!("{base}/Groups/{gid}"), &t).await;
    let (_, inner) = app.get(&format!("{base}/Groups/{inner_id}"), &t).await;
    let (_, page) = app
        .get(&format!("{base}/Groups?sortBy=displayName"), &t)
        .await;
    let listed = page["Resources"].as_array().unwrap();
    assert_eq!(listed[0]["members"], eng["members"]);
    assert_eq!(listed[1]["members"], inner["members"]);
    let (_, page) = app
        .get(&format!("{base}/Groups?excludedAttributes=members"), &t)
        .await;
    assert!(page["Resources"][0].get("members").is_none(), "{page}");
    assert_eq!(page["totalResults"], 2);

    // displayName is unique per directory, case-insensitively.
    assert_eq!(
        app.post(&format!("{base}/Groups"), &t, json!({"displayName": "ENG"}))
            .await
            .0,
        409
    );
    // A member that does not exist, or is not a UUID, is invalidValue.
    let (status, body) = app
        .post(
            &format!("{base}/Groups"),
            &t,
            json!({"displayName": "X", "members": [{"value": "nope"}]}),
        )
        .await;
    assert_eq!(
        (status, body["scimType"].as_str()),
        (400, Some("invalidValue"))
    );

    // PUT with a new member list replaces the members.
    let (status, g2) = app
        .put(
            &format!("{base}/Groups/{gid}"),
            &t,
            json!({"displayName": "Engineering", "members": [{"value": u2}]}),
        )
        .await;
    assert_eq!(status, 200, "{g2}");
    assert_eq!(g2["members"].as_array().unwrap().len(), 1);
    assert_eq!(g2["displayName"], "Engineering");

    // Deleting a user removes it from every group.
    assert_eq!(app.delete(&format!("{base}/Users/{u2}"), &t).await, 204);
    let (_, g3) = app.get(&format!("{base}/Groups/{gid}"), &t).await;
    assert_eq!(g3["members"].as_array().unwrap().len(), 0);
    let (_, inner) = app.get(&format!("{base}/Groups/{inner_id}"), &t).await;
    assert_eq!(inner["members"].as_array().unwrap().len(), 0);

    let (_, list) = app
        .get(
            &format!("{base}/Groups?filter=displayName eq \"engineering\""),
            &t,
        )
        .await;
    assert_eq!(list["totalResults"], 1);
    assert_eq!(list["Resources"][0]["id"], gid.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_filter_and_paginate_in_a_stable_order() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let base = app.scim("default");
    let mut ids = Vec::new();
    for i in 0..25 {
        let body = json!({"userName": format!("user{i:02}"), "externalId": format!("x{}", i % 5)});
        let (s, u) = app.post(&format!("{base}/Users"), &t, body).await;
        assert_eq!(s, 201);
        ids.push(u["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    for start in [1, 11, 21] {
        let (_, page) = app
            .get(&format!("{base}/Users?startIndex={start}&count=10"), &t)
            .await;
        assert_eq!(page["totalResults"], 25);
        assert_eq!(page["startIndex"], start);
        assert_eq!(
            page["schemas"][0],
            "urn:ietf:params:scim:api:messages:2.0:ListResponse"
        );
        for r in page["Resources"].as_array().unwrap() {
            seen.push(r["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(seen, ids, "pages cover everything once, in creation order");
    let (_, page) = app.get(&format!("{base}/Users?count=0"), &t).await;
    assert_eq!(
        (page["totalResults"].as_u64(), page["itemsPerPage"].as_u64()),
        (Some(25), Some(0))
    );
    let (_, page) = app
        .get(&format!("{base}/Users?startIndex=-4&count=2"), &t)
        .await;
    assert_eq!(page["startIndex"], 1);
    assert_eq!(page["Resources"][0]["id"], ids[0].as_str());

    let q = |f: &str| {
        format!(
            "{base}/Users?filter={}",
            f.replace(' ', "%20").replace('"', "%22")
        )
    };
    let (_, r) = app.get(&q("userName eq \"USER07\""), &t).await;
    assert_eq!(r["totalResults"], 1);
    assert_eq!(r["Resources"][0]["id"], ids[7].as_str());
    let (_, r) = app.get(&q(&format!("id eq \"{}\"", ids[3])), &t).await;
    assert_eq!(r["totalResults"], 1);
    let (_, r) = app.get(&q("externalId eq \"x2\""), &t).await;
    assert_eq!(r["totalResults"], 5);
    let (_, r) = app.get(&q("externalId eq \"X2\""), &t).await;
    assert_eq!(r["totalResults"], 0, "externalId is case-exact");
    let (_, r) = app
        .get(&q("userName sw \"user1\" and externalId eq \"x1\""), &t)
        .await;
    assert_eq!(r["totalResults"], 2);
    let (status, r) = app.get(&q("userName eq"), &t).await;
    assert_eq!(
        (status, r["scimType"].as_str()),
        (400, Some("invalidFilter"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_give_optimistic_concurrency() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let (_, u) = app.create_user("default", &t, "carol").await;
    let url = u["meta"]["location"].as_str().unwrap().to_owned();
    let put = |etag: &'static str| {
        app.http
            .put(&url)
            .bearer_auth(&t)
            .header("content-type", "application/scim+json")
            .header("if-match", etag)
            .body(json!({"userName": "carol", "title": etag}).to_string())
            .send()
    };
    assert_eq!(put("W/\"1\"").await.unwrap().status(), 200);
    let stale = put("W/\"1\"").await.unwrap();
    assert_eq!(stale.status(), 412);
    assert_eq!(put("W/\"2\"").await.unwrap().status(), 200);
    let r = app
        .http
        .get(&url)
        .bearer_auth(&t)
        .header("if-none-match", "W/\"3\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = app
        .http
        .delete(&url)
        .bearer_auth(&t)
        .header("if-match", "W/\"2\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = app
        .http
        .delete(&url)
        .bearer_auth(&t)
        .header("if-match", "W/\"3\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_scim_error_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let users = format!("{}/Users", app.scim("default"));
    let send = |ct: &'static str, body: String| {
        app.http
            .post(&users)
            .bearer_auth(&t)
            .header("content-type", ct)
            .body(body)
            .send()
    };

    let cases: Vec<(&str, String, u16, Option<&str>)> = vec![
        (
            "application/scim+json",
            "{not json".into(),
            400,
            Some("invalidSyntax"),
        ),
        (
            "application/scim+json",
            "[1,2]".into(),
            400,
            Some("invalidSyntax"),
        ),
        (
            "application/scim+json",
            json!({"name": {"givenName": "x"}}).to_string(),
            400,
            Some("invalidValue"),
        ),
        (
            "application/scim+json",
            json!({"userName": 42}).to_string(),
            400,
            Some("invalidValue"),
        ),
        (
            "application/scim+json",
            json!({"userName": "   "}).to_string(),
            400,
            Some("invalidValue"),
        ),
        (
            "application/scim+json",
            json!({"userName": "x", "schemas": ["urn:nope"]}).to_string(),
            400,
            Some("invalidValue"),
        ),
        (
            "application/scim+json",
            json!({"userName": "x", "externalId": 5}).to_string(),
            400,
            Some("invalidValue"),
        ),
        (
            "text/plain",
            json!({"userName": "x"}).to_string(),
            415,
            None,
        ),
        (
            "application/scim+json",
            format!("{{\"userName\":\"{}\"}}", "a".repeat(4 << 20)),
            413,
            None,
        ),
        (
            "application/json",
            "\u{0}\u{1}".into(),
            400,
            Some("invalidSyntax"),
        ),
    ];
    for (ct, body, status, scim_type) in cases {
        let r = send(ct, body.clone()).await.unwrap();
        assert_eq!(
            r.status().as_u16(),
            status,
            "{ct} {}",
            &body[..body.len().min(60)]
        );
        assert_eq!(r.headers()["content-type"], "application/scim+json");
        let v: Value = r.json().await.unwrap();
        assert!(is_scim_error(&v, &status.to_string()), "{v}");
        assert_eq!(v["scimType"].as_str(), scim_type);
    }
    // Unknown endpoints, ids and methods.
    let (s, v) = app.get(&format!("{}/Nope", app.scim("default")), &t).await;
    assert!(s == 404 && is_scim_error(&v, "404"));
    let (s, _) = app.get(&format!("{users}/not-a-uuid"), &t).await;
    assert_eq!(s, 404);
    let r = app
        .http
        .post(format!("{users}/00000000-0000-0000-0000-000000000000"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let (s, _) = app.get(&format!("{users}?count=abc"), &t).await;
    assert_eq!(s, 400);
    // Nothing was created.
    let (_, list) = app.get(&format!("{users}?count=0"), &t).await;
    assert_eq!(list["totalResults"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_answer() {
    let app = TestApp::spawn().await;
    let r = app
        .http
        .get(format!("{}/healthz", app.root))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, v) = common::parse(
        app.http
            .get(format!("{}/readyz", app.root))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    assert!(v["position"].as_u64().unwrap() >= 1);

    assert_eq!(
        app.create_user("default", &app.scim_token, "m1").await.0,
        201
    );
    assert_eq!(
        app.create_user("default", &app.scim_token, "M1").await.0,
        409
    );
    let _ = app
        .get(
            &format!("{}/no/such/{}", app.root, "x".repeat(40)),
            &app.scim_token,
        )
        .await;
    let r = app
        .http
        .get(format!("{}/metrics", app.root))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let has = |needle: &str| text.lines().any(|l| l.contains(needle));
    assert!(
        has(
            r#"roster_http_requests_total{method="POST",route="/source/scim/{slug}/v2/Users",status="201"} 1"#
        ),
        "{text}"
    );
    assert!(has(r#"status="409"} 1"#));
    assert!(
        has(r#"route="unmatched""#),
        "unknown paths are one label value"
    );
    assert!(!text.contains("xxxxxxxx"));
    assert!(has(r#"roster_commands_total{outcome="ok"}"#));
    assert!(has(r#"roster_commands_total{outcome="conflict"} 1"#));
    assert!(has("roster_log_append_duration_seconds_count"));
    assert!(has("roster_projection_lag_records 0"));
    assert!(!text.contains(&app.scim_token) && !text.contains(&app.admin_token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_a_restart_unchanged() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let (_, u) = app.create_user("default", &t, "dave").await;
    let (_, g) = app
        .post(
            &format!("{}/Groups", app.scim("default")),
            &t,
            json!({"displayName": "G", "members": [{"value": u["id"]}]}),
        )
        .await;
    let data = app.stop().await;
    let path = data.path().to_path_buf();
    let app = roster::app::Application::build(common::settings(&path))
        .await
        .unwrap();
    assert!(app.first_start.is_none(), "no second bootstrap");
    let root = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    let fetch = |url: String| {
        let http = http.clone();
        let t = t.clone();
        async move {
            http.get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let u2 = fetch(format!(
        "{root}/source/scim/default/v2/Users/{}",
        u["id"].as_str().unwrap()
    ))
    .await;
    let g2 = fetch(format!(
        "{root}/source/scim/default/v2/Groups/{}",
        g["id"].as_str().unwrap()
    ))
    .await;
    for k in ["created", "lastModified", "version", "resourceType"] {
        assert_eq!(u2["meta"][k], u["meta"][k]);
    }
    assert_eq!(u2["id"], u["id"]);
    assert_eq!(u2["userName"], "dave");
    assert_eq!(g2["members"][0]["value"], u["id"]);
    assert_eq!(g2["meta"]["version"], g["meta"]["version"]);
    drop(data);
}

/// PostgreSQL text cannot hold U+0000: it is refused at the edge on every store, so that no
/// view could fail to hold what the log holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strings_with_nul_are_refused_in_bodies_and_filters() {
    let app = TestApp::spawn().await;
    let token = app.scim_token.clone();
    let users = format!("{}/Users", app.scim("default"));
    let (status, body) = app
        .post(&users, &token, json!({"userName": "a\u{0}b"}))
        .await;
    assert_eq!(
        (status, body["scimType"].as_str()),
        (400, Some("invalidValue")),
        "{body}"
    );
    let (status, body) = app
        .post(
            &users,
            &token,
            json!({"userName": "ok", "title": {"x\u{0}": 1}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app
        .get(
            &format!("{users}?filter=userName%20eq%20%22a%5Cu0000b%22"),
            &token,
        )
        .await;
    assert_eq!(
        (status, body["scimType"].as_str()),
        (400, Some("invalidFilter")),
        "{body}"
    );
    let (_, list) = app.get(&format!("{users}?count=0"), &token).await;
    assert_eq!(list["totalResults"], 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_url_or_token_is_told_the_shape_of_a_source_url_without_learning_which_slugs_exist()
{
    let app = TestApp::spawn().await;
    let other = app.create_source("other").await;
    let (s, body) = app
        .get(&format!("{}/Users", app.scim("nosuch")), &app.scim_token)
        .await;
    let (s2, body2) = app
        .get(&format!("{}/Users", app.scim("other")), &app.scim_token)
        .await;
    assert_eq!((s, s2), (401, 401));
    assert_eq!(
        body, body2,
        "an unknown slug and another source's token look alike"
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("/source/scim/<slug>/v2"), "{body}");
    let (s, _) = app
        .get(&format!("{}/Users", app.scim("other")), &other)
        .await;
    assert_eq!(s, 200);

    let (s, body) = app
        .get(
            &format!("{}/source/scim/default/Users", app.root),
            &app.scim_token,
        )
        .await;
    assert_eq!(s, 404);
    assert!(is_scim_error(&body, "404"), "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("lacks the /v2"),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_tokens_are_issued_and_revoked_sources_deleted_and_directories_created() {
    let app = TestApp::spawn().await;
    let admin = |path: &str| format!("{}/admin/v1{path}", app.root);
    let (s, issued) = app
        .post(&admin("/admin-tokens"), &app.admin_token, json!({}))
        .await;
    assert_eq!(s, 201, "{issued}");
    let second = issued["token"].as_str().unwrap().to_owned();
    let (s, list) = app.get(&admin("/admin-tokens"), &second).await;
    assert_eq!(s, 200, "the new token works: {list}");
    assert_eq!(list["admin_tokens"].as_array().unwrap().len(), 2, "{list}");
    assert!(!list.to_string().contains(&second), "never shown again");
    let first_id = list["admin_tokens"][0]["id"].as_str().unwrap().to_owned();
    let s = app
        .delete(&admin(&format!("/admin-tokens/{first_id}")), &second)
        .await;
    assert_eq!(s, 204);
    let (s, _) = app.get(&admin("/admin-tokens"), &app.admin_token).await;
    assert_eq!(s, 401, "a revoked admin token is refused");
    let id = issued["id"].as_str().unwrap();
    let s = app
        .delete(&admin(&format!("/admin-tokens/{id}")), &second)
        .await;
    assert_eq!(s, 409, "the last valid admin token stays");

    let (s, created) = app
        .post(&admin("/sources"), &second, json!({"slug": "leaving"}))
        .await;
    assert_eq!(s, 201, "{created}");
    let token = created["token"]["token"].as_str().unwrap().to_owned();
    let (s, user) = app.create_user("leaving", &token, "left@example.com").await;
    assert_eq!(s, 201);
    let s = app.delete(&admin("/sources/leaving"), &second).await;
    assert_eq!(s, 204);
    let (s, _) = app
        .get(&format!("{}/Users", app.scim("leaving")), &token)
        .await;
    assert_eq!(s, 401, "the deleted source's tokens are refused");
    let (s, _) = app.get(&admin("/sources/leaving"), &second).await;
    assert_eq!(s, 404);
    assert!(user["id"].is_string());

    let (s, body) = app
        .post(&admin("/directories"), &second, json!({"name": "hr"}))
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = app
        .post(
            &admin("/sources"),
            &second,
            json!({"slug": "workday", "directory": "hr"}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = app.get(&admin("/directories"), &second).await;
    assert_eq!((s, body), (200, json!({"directories": ["default", "hr"]})));
    let (s, _) = app
        .post(&admin("/directories"), &second, json!({"name": "hr"}))
        .await;
    assert_eq!(s, 409);

    // Only an empty directory other than `default` can be deleted.
    let s = app.delete(&admin("/directories/hr"), &second).await;
    assert_eq!(s, 409, "hr still holds the workday source");
    let r = app
        .http
        .delete(admin("/directories/hr"))
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    let (_, body) = common::parse(r).await;
    assert!(
        body["detail"].as_str().unwrap().contains("1 sources"),
        "{body}"
    );
    assert_eq!(app.delete(&admin("/sources/workday"), &second).await, 204);
    assert_eq!(app.delete(&admin("/directories/hr"), &second).await, 204);
    let (s, body) = app.get(&admin("/directories"), &second).await;
    assert_eq!((s, body), (200, json!({"directories": ["default"]})));
    let (s, _) = app
        .post(
            &admin("/sources"),
            &second,
            json!({"slug": "late", "directory": "hr"}),
        )
        .await;
    assert_eq!(s, 404, "no source in a deleted directory");
    assert_eq!(app.delete(&admin("/directories/hr"), &second).await, 404);
    assert_eq!(app.delete(&admin("/directories/nope"), &second).await, 404);
    assert_eq!(
        app.delete(&admin("/directories/default"), &second).await,
        409
    );
    let (s, _) = app
        .post(&admin("/directories"), &second, json!({"name": "hr"}))
        .await;
    assert_eq!(s, 201, "a deleted directory's name can be used again");

    // A restart replays all of it to the same directories.
    let tokens = app.tokens();
    let app = TestApp::restart(app.stop().await, tokens).await;
    let (s, body) = app.get(&admin_root(&app, "/directories"), &second).await;
    assert_eq!((s, body), (200, json!({"directories": ["default", "hr"]})));
    app.stop().await;
}

fn admin_root(app: &TestApp, path: &str) -> String {
    format!("{}/admin/v1{path}", app.root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_configured_admin_token_is_refused_at_start() {
    let data = tempfile::tempdir().unwrap();
    let settings = roster::config::Settings {
        admin_token: Some(roster::auth::Secret::new(String::from("x"))),
        ..common::settings(data.path())
    };
    let err = match roster::app::Application::build(settings).await {
        Ok(_) => panic!("a one-character admin token was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("is 1 characters: use at least 24"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_ascii_names_with_stray_spaces_are_kept_and_compared_without_them() {
    let app = TestApp::spawn().await;
    let users = format!("{}/Users", app.scim("default"));
    // A trailing space after a non-ASCII letter once panicked the name check.
    let (s, body) = app.create_user("default", &app.scim_token, "Zoë ").await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["userName"], "Zoë ");
    let (s, body) = app
        .post(&users, &app.scim_token, json!({"userName": "  zoë"}))
        .await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["scimType"], "uniqueness");
    let groups = format!("{}/Groups", app.scim("default"));
    let (s, body) = app
        .post(
            &groups,
            &app.scim_token,
            json!({"displayName": "Équipe  Ops "}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, _) = app
        .post(
            &groups,
            &app.scim_token,
            json!({"displayName": "équipe ops"}),
        )
        .await;
    assert_eq!(s, 409);
    app.stop().await;
}
