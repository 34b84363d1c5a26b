//! Providers against remotes that take less than RFC 7644, and what a provider learns from
//! them: django-scim2 (tests/django_scim_remote: group POST and PUT ignore members, filtered
//! member removal answers 501, users lose an email's type, deleting a user drops it from its
//! groups) and scim2-server (deleting a user leaves it in its groups). Also: a full sync asked
//! for on a directory where nothing else happens starts at once, and a full sync removes the
//! objects Roster left on a remote without a link, and nothing it cannot prove its own.

mod common;

use common::remote::{
    create_group, create_provider, eventually, patch, settled, spawn, status, Remote,
};
use common::TestApp;
use serde_json::{json, Value};
use std::collections::BTreeSet;

async fn user(app: &TestApp, name: &str) -> String {
    let (s, u) = app
        .post(
            &format!("{}/Users", app.scim("default")),
            &app.scim_token,
            json!({
                "userName": name,
                "name": {"givenName": "Given", "familyName": name},
                "emails": [{"value": name, "type": "work", "primary": true},
                           {"value": format!("home.{name}"), "type": "home"}],
                "active": true,
            }),
        )
        .await;
    assert_eq!(s, 201, "{u}");
    u["id"].as_str().unwrap().to_owned()
}

fn names(set: &BTreeSet<String>) -> Vec<&str> {
    set.iter().map(String::as_str).collect()
}

/// Requests the provider sent, as `METHOD /path`, from its status.
async fn sent(app: &TestApp, provider: &str) -> Vec<String> {
    status(app, provider).await["recent_requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect()
}

/// Asks for a full sync and waits for one that started after `after` to finish.
async fn full_sync(app: &TestApp, provider: &str) -> Value {
    let before = status(app, provider).await["last_full_sync"]["started"].clone();
    let (s, _) = app
        .post(
            &format!("{}/admin/v1/providers/{provider}/sync", app.root),
            &app.admin_token,
            json!({}),
        )
        .await;
    assert_eq!(s, 202);
    eventually(
        10,
        || async { status(app, provider).await["last_full_sync"].clone() },
        |r| r["started"] != before && !r["finished"].is_null(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_asked_for_on_a_quiet_directory_runs_at_once() {
    let remote = Remote::start().await;
    let app = spawn().await;
    user(&app, "quiet@example.com").await;
    create_provider(&app, "quiet", &remote, json!({})).await;
    eventually(
        30,
        || async { status(&app, "quiet").await["last_full_sync"]["finished"].clone() },
        |f| !f.is_null(),
    )
    .await;
    // Nothing else is written: only the request's own record reaches the log.
    let report = full_sync(&app, "quiet").await;
    assert_eq!(report["compared"], 1, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_reach_a_remote_that_ignores_members_on_create_and_refuses_filtered_removals() {
    let remote = Remote::django().await;
    let app = spawn().await;
    create_provider(&app, "django", &remote, json!({})).await;
    let (a, b, c) = (
        user(&app, "alice@example.com").await,
        user(&app, "bob@example.com").await,
        user(&app, "carol@example.com").await,
    );
    let team = create_group(&app, "Team", &[&a, &b]).await;
    let tid = team["id"].as_str().unwrap().to_owned();
    let groups = eventually(
        30,
        || remote.groups(),
        |g| g.get("Team").is_some_and(|(_, m)| m.len() == 2),
    )
    .await;
    assert_eq!(
        names(&groups["Team"].1),
        ["alice@example.com", "bob@example.com"],
        "members the POST ignored were added by PATCH"
    );

    // A member removal: the filtered form is refused (501), the value-list form is learned.
    patch(
        &app,
        &format!("Groups/{tid}"),
        json!([{"op": "remove", "path": format!("members[value eq \"{b}\"]")}]),
    )
    .await;
    let groups = eventually(
        30,
        || remote.groups(),
        |g| g.get("Team").is_some_and(|(_, m)| m.len() == 1),
    )
    .await;
    assert_eq!(names(&groups["Team"].1), ["alice@example.com"]);
    // The remote has the change before the runner has recorded how it went.
    let st = settled(&app, "django").await;
    assert_eq!(st["learned"]["member_removal"], "value_list", "{st}");
    assert_eq!(st["parked"], json!([]), "{st}");

    // A rename with a member change goes as a PUT, which ignores members again: settled.
    let (s, _) = app
        .put(
            &format!("{}/Groups/{tid}", app.scim("default")),
            &app.scim_token,
            json!({"displayName": "Core", "members": [{"value": a}, {"value": c}]}),
        )
        .await;
    assert_eq!(s, 200);
    let groups = eventually(
        30,
        || remote.groups(),
        |g| g.get("Core").is_some_and(|(_, m)| m.len() == 2),
    )
    .await;
    assert_eq!(
        names(&groups["Core"].1),
        ["alice@example.com", "carol@example.com"]
    );
    // The next removal goes straight to the learned form: no second 501.
    patch(
        &app,
        &format!("Groups/{tid}"),
        json!([{"op": "remove", "path": format!("members[value eq \"{c}\"]")}]),
    )
    .await;
    eventually(
        30,
        || remote.groups(),
        |g| g.get("Core").is_some_and(|(_, m)| m.len() == 1),
    )
    .await;
    let st = settled(&app, "django").await;
    let refused = st["recent_requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == 501)
        .count();
    assert_eq!(refused, 1, "the refused form is tried once: {st}");
    assert_eq!(st["pending"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_leaves_alone_what_a_normalising_remote_made_of_its_users() {
    let remote = Remote::django().await;
    let app = spawn().await;
    create_provider(&app, "django", &remote, json!({})).await;
    for n in ["u1@example.com", "u2@example.com", "u3@example.com"] {
        user(&app, n).await;
    }
    eventually(30, || remote.users(), |u| u.len() == 3).await;
    let users = remote.users().await;
    assert!(
        users["u1@example.com"]["emails"][0].get("type").is_none(),
        "the remote drops what it does not keep: {users:?}"
    );
    let report = full_sync(&app, "django").await;
    assert_eq!(report["updated"], 0, "{report}");
    assert_eq!(report["unchanged"], 3, "{report}");
    // What changes behind Roster's back is still repaired.
    let (id, _) = users
        .iter()
        .find(|(n, _)| *n == "u2@example.com")
        .map(|(_, u)| (u["id"].as_str().unwrap().to_owned(), ()))
        .unwrap();
    let r = reqwest::Client::new()
        .put(format!("{}/Users/{id}", remote.base))
        .bearer_auth(common::remote::REMOTE_TOKEN)
        .header("content-type", "application/scim+json")
        .body(json!({"userName": "u2@example.com", "name": {"givenName": "Changed", "familyName": "x"}, "active": true}).to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let report = full_sync(&app, "django").await;
    assert_eq!(
        (report["updated"].as_u64(), report["unchanged"].as_u64()),
        (Some(1), Some(2)),
        "{report}"
    );
    eventually(
        30,
        || remote.users(),
        |u| u["u2@example.com"]["name"]["givenName"] == "Given",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_user_leaves_its_groups_where_the_remote_keeps_it_and_costs_nothing_where_not() {
    for django in [false, true] {
        let remote = if django {
            Remote::django().await
        } else {
            Remote::start().await
        };
        let app = spawn().await;
        create_provider(&app, "p", &remote, json!({})).await;
        let (a, b) = (
            user(&app, "stays@example.com").await,
            user(&app, "goes@example.com").await,
        );
        create_group(&app, "One", &[&a, &b]).await;
        create_group(&app, "Two", &[&b]).await;
        eventually(
            30,
            || remote.groups(),
            |g| {
                g.get("One").is_some_and(|(_, m)| m.len() == 2)
                    && g.get("Two").is_some_and(|(_, m)| m.len() == 1)
            },
        )
        .await;
        let before = sent(&app, "p").await.len();
        assert_eq!(
            app.delete(
                &format!("{}/Users/{b}", app.scim("default")),
                &app.scim_token
            )
            .await,
            204
        );
        let groups = eventually(
            30,
            || remote.groups(),
            |g| {
                g.get("One").is_some_and(|(_, m)| m.len() == 1)
                    && g.get("Two").is_some_and(|(_, m)| m.is_empty())
            },
        )
        .await;
        assert_eq!(names(&groups["One"].1), ["stays@example.com"]);
        let st = eventually(
            30,
            || status(&app, "p"),
            |s| s["pending"] == 0 && s["in_flight"] == 0,
        )
        .await;
        assert_eq!(st["learned"]["drops_deleted_members"], django, "{st}");
        let after: Vec<String> = sent(&app, "p").await.split_off(before);
        let patches = after
            .iter()
            .filter(|r| r.starts_with("PATCH ") && r.contains("/Groups/"))
            .count();
        if django {
            assert_eq!(
                patches, 0,
                "the remote dropped the memberships itself: {after:?}"
            );
        } else {
            assert_eq!(patches, 2, "one removal per group: {after:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_removes_roster_s_orphans_from_the_remote_and_leaves_other_clients_objects() {
    let remote = Remote::start().await;
    let app = spawn().await;
    let keep = user(&app, "keep@example.com").await;
    let gone = user(&app, "gone@example.com").await;
    let leaving = create_group(&app, "Leaving", &[&keep]).await;
    let leaving = leaving["id"].as_str().unwrap().to_owned();
    create_group(&app, "Staying", &[&keep]).await;
    let dir = app.scim("default");
    assert_eq!(
        app.delete(&format!("{dir}/Users/{gone}"), &app.scim_token)
            .await,
        204
    );
    assert_eq!(
        app.delete(&format!("{dir}/Groups/{leaving}"), &app.scim_token)
            .await,
        204
    );

    // What a provider leaves on a remote when it crashes after a create and before it records
    // the link, or what an earlier provider of this directory left: objects carrying the ids of
    // a user and a group deleted since as their externalId.
    let user_schema = "urn:ietf:params:scim:schemas:core:2.0:User";
    let group_schema = "urn:ietf:params:scim:schemas:core:2.0:Group";
    remote
        .create(
            "Users",
            json!({"schemas": [user_schema], "userName": "gone@example.com",
                                "externalId": gone}),
        )
        .await;
    remote
        .create(
            "Groups",
            json!({"schemas": [group_schema], "displayName": "Leaving",
                                 "externalId": leaving}),
        )
        .await;
    // Another client's objects on the same remote: a UUID externalId Roster never issued, and
    // an id of another scheme.
    let foreign = uuid::Uuid::new_v4().to_string();
    remote
        .create(
            "Users",
            json!({"schemas": [user_schema], "userName": "foreign@example.com",
                                "externalId": foreign}),
        )
        .await;
    remote
        .create(
            "Users",
            json!({"schemas": [user_schema], "userName": "other@example.com",
                                "externalId": "emp-0001"}),
        )
        .await;
    remote
        .create(
            "Groups",
            json!({"schemas": [group_schema], "displayName": "Foreign",
                                 "externalId": foreign}),
        )
        .await;

    // The provider's first full sync finds the orphans by their externalId and removes them.
    create_provider(&app, "p", &remote, json!({})).await;
    let report = eventually(
        30,
        || async { status(&app, "p").await["last_full_sync"].clone() },
        |r| !r["finished"].is_null(),
    )
    .await;
    assert_eq!(report["deleted"], 2, "{report}");
    settled(&app, "p").await;
    let users: Vec<String> = remote.users().await.into_keys().collect();
    assert_eq!(
        users,
        [
            "foreign@example.com",
            "keep@example.com",
            "other@example.com"
        ]
    );
    let groups: Vec<String> = remote.groups().await.into_keys().collect();
    assert_eq!(groups, ["Foreign", "Staying"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_deleted_from_8_threads_leave_the_remote_groups_once_nothing_is_pending() {
    let remote = Remote::start().await;
    let app = spawn().await;
    create_provider(&app, "p", &remote, json!({})).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(user(&app, &format!("u{i:02}@example.com")).await);
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    create_group(&app, "All", &refs).await;
    create_group(
        &app,
        "Even",
        &refs.iter().step_by(2).copied().collect::<Vec<_>>(),
    )
    .await;
    create_group(&app, "Low", &refs[..20]).await;
    eventually(
        30,
        || remote.groups(),
        |g| g.get("All").is_some_and(|(_, m)| m.len() == 40),
    )
    .await;

    // 20 users deleted by 8 clients at once.
    let doomed: Vec<String> = ids.iter().skip(1).step_by(2).cloned().collect();
    assert_eq!(doomed.len(), 20);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (http, scim, token) = (
            app.http.clone(),
            app.scim("default"),
            app.scim_token.clone(),
        );
        let mine: Vec<String> = doomed.iter().skip(w).step_by(8).cloned().collect();
        tasks.push(tokio::spawn(async move {
            for id in mine {
                let r = http
                    .delete(format!("{scim}/Users/{id}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 204);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    // Once nothing is pending, in flight or unread, the remote groups are the local ones.
    eventually(
        30,
        || status(&app, "p"),
        |s| s["pending"] == 0 && s["in_flight"] == 0 && s["lag"] == 0,
    )
    .await;
    let (s, local) = app
        .get(&format!("{}/Groups", app.scim("default")), &app.scim_token)
        .await;
    assert_eq!(s, 200);
    let want: std::collections::BTreeMap<String, BTreeSet<String>> = local["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let members = g["members"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| m["display"].as_str().unwrap().to_owned())
                .collect();
            (g["displayName"].as_str().unwrap().to_owned(), members)
        })
        .collect();
    assert_eq!(want["All"].len(), 20);
    let have: std::collections::BTreeMap<String, BTreeSet<String>> = remote
        .groups()
        .await
        .into_iter()
        .map(|(k, (_, m))| (k, m))
        .collect();
    assert_eq!(have, want);
    assert_eq!(remote.users().await.len(), 20);
}
