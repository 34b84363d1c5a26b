//! PATCH over HTTP with the literal request bodies of Microsoft's "Develop a SCIM endpoint"
//! guide (Entra ID) and Okta's SCIM 2.0 guide, ids substituted.

mod common;

use common::TestApp;
use serde_json::{json, Value};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

async fn patch(app: &TestApp, url: &str, body: Value) -> (u16, Value) {
    let r = app
        .http
        .patch(url)
        .bearer_auth(&app.scim_token)
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    common::parse(r).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_user_requests() {
    let app = TestApp::spawn().await;
    let users = format!("{}/Users", app.scim("default"));
    let (status, user) = app
        .post(&users, &app.scim_token.clone(), json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
            "active": true,
            "emails": [{"primary": true, "type": "work",
                        "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
            "roles": []
        }))
        .await;
    assert_eq!(status, 201, "{user}");
    let url = user["meta"]["location"].as_str().unwrap().to_owned();

    // Entra matches by a filter on userName first.
    let (_, found) = app
        .get(
            &format!(
                "{users}?filter=userName+eq+%22Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1%22"
            ),
            &app.scim_token,
        )
        .await;
    assert_eq!(found["totalResults"], 1);

    let (status, patched) = patch(&app, &url, json!({
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}
        ]
    }))
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        patched["emails"],
        json!([{"primary": true, "type": "work", "value": "updatedEmail@microsoft.com"}])
    );
    assert_eq!(patched["name"]["familyName"], "updatedFamilyName");
    assert_eq!(patched["name"]["givenName"], "givenName");
    assert_eq!(patched["meta"]["version"], "W/\"2\"");

    // Attribute updates as the provisioning service sends them: string booleans, an Add that
    // targets a work email, the manager as a bare id.
    let (status, patched) = patch(&app, &url, json!({
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "Replace", "path": "title", "value": "tester"},
            {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "second@microsoft.com"},
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "0e8b5b83-0d4a-4b5b-9c44-2c6b3b0a1c11"},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Finance"}
        ]
    }))
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["title"], "tester");
    assert_eq!(patched["active"], false);
    assert_eq!(patched["emails"][0]["value"], "second@microsoft.com");
    let ext = &patched["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
    assert_eq!(
        ext["manager"],
        json!({"value": "0e8b5b83-0d4a-4b5b-9c44-2c6b3b0a1c11"})
    );
    assert_eq!(ext["department"], "Finance");

    // Disable user, exactly as documented (a real boolean).
    let (status, patched) = patch(
        &app,
        &url,
        json!({
            "Operations": [{"op": "Replace", "path": "active", "value": false}],
            "schemas": [PATCH_OP]
        }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        patched["meta"]["version"], "W/\"3\"",
        "a PATCH that changes nothing records nothing"
    );

    // The change is what a later GET and a restart see.
    let (_, got) = app.get(&url, &app.scim_token).await;
    assert_eq!(got, patched);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_group_requests() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let base = app.scim("default");
    let (_, u1) = app.create_user("default", &t, "member-one").await;
    let (_, u2) = app.create_user("default", &t, "member-two").await;
    let (u1, u2) = (
        u1["id"].as_str().unwrap().to_owned(),
        u2["id"].as_str().unwrap().to_owned(),
    );
    let (status, group) = app
        .post(&format!("{base}/Groups"), &t, json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
                        "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "displayName",
            "meta": {"resourceType": "Group"}
        }))
        .await;
    assert_eq!(status, 201, "{group}");
    let url = group["meta"]["location"].as_str().unwrap().to_owned();

    let (status, g) = patch(&app, &url, json!({
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Add", "path": "members", "value": [{"$ref": null, "value": u1}, {"$ref": null, "value": u2}]}]
    }))
    .await;
    assert_eq!(status, 200, "{g}");
    assert_eq!(g["members"].as_array().unwrap().len(), 2);

    let (status, g) = patch(&app, &url, json!({
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": u1}]}]
    }))
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        g["members"],
        json!([{"value": u2, "type": "User", "display": "member-two", "$ref": format!("{base}/Users/{u2}")}])
    );

    let (status, g) = patch(&app, &url, json!({
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Replace", "path": "displayName", "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}]
    }))
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        g["displayName"],
        "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    );
    assert_eq!(
        g["members"].as_array().unwrap().len(),
        1,
        "a rename keeps the members"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_user_and_group_requests() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let base = app.scim("default");
    let (status, user) = app
        .post(
            &format!("{base}/Users"),
            &t,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "test.user@okta.local",
                "name": {"givenName": "Test", "familyName": "User"},
                "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
                "displayName": "Test User",
                "locale": "en-US",
                "externalId": "00ujl29u0le5T6Aj10h7",
                "groups": [],
                "password": "1mz050nq",
                "active": true
            }),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    assert!(user.get("password").is_none() && user.get("groups").is_none());
    let uid = user["id"].as_str().unwrap().to_owned();
    let url = user["meta"]["location"].as_str().unwrap().to_owned();

    // Okta looks users up with startIndex and count.
    let (_, found) = app
        .get(&format!("{base}/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100"), &t)
        .await;
    assert_eq!(found["totalResults"], 1);

    // Deactivation.
    let (status, u) = patch(
        &app,
        &url,
        json!({
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "value": {"active": false}}]
        }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(u["active"], false);

    // Group push: create, add a member, rename (Okta echoes the id), remove by filter.
    let (status, group) = app
        .post(
            &format!("{base}/Groups"),
            &t,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Test SCIMv2",
                "members": []
            }),
        )
        .await;
    assert_eq!(status, 201);
    let gid = group["id"].as_str().unwrap().to_owned();
    let gurl = group["meta"]["location"].as_str().unwrap().to_owned();
    let (status, g) = patch(&app, &gurl, json!({
        "schemas": [PATCH_OP],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": uid, "display": "test.user@okta.local"}]}]
    }))
    .await;
    assert_eq!(status, 200, "{g}");
    assert_eq!(g["members"][0]["value"], uid.as_str());
    let (status, g) = patch(&app, &gurl, json!({
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "value": {"id": gid, "displayName": "Test SCIMv2 renamed"}}]
    }))
    .await;
    assert_eq!(status, 200, "{g}");
    assert_eq!(g["displayName"], "Test SCIMv2 renamed");
    let (status, g) = patch(
        &app,
        &gurl,
        json!({
            "schemas": [PATCH_OP],
            "Operations": [{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}]
        }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(g["members"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_patch_changes_nothing_and_says_why() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let base = app.scim("default");
    let (_, other) = app.create_user("default", &t, "taken").await;
    let (_, user) = app.create_user("default", &t, "mine").await;
    let url = user["meta"]["location"].as_str().unwrap().to_owned();
    let cases = [
        // The first operation is fine, the second fails: neither applies.
        (
            json!([{"op": "replace", "path": "title", "value": "x"}, {"op": "replace", "path": "id", "value": "y"}]),
            400,
            Some("mutability"),
        ),
        (
            json!([{"op": "replace", "path": "title", "value": "x"}, {"op": "remove", "path": "userName"}]),
            400,
            Some("invalidValue"),
        ),
        (
            json!([{"op": "replace", "path": "userName", "value": "TAKEN"}]),
            409,
            Some("uniqueness"),
        ),
        (
            json!([{"op": "replace", "path": "emails[type eq"}]),
            400,
            Some("invalidPath"),
        ),
        (
            json!([{"op": "frobnicate", "path": "title", "value": 1}]),
            400,
            Some("invalidSyntax"),
        ),
        (json!([{"op": "remove"}]), 400, Some("noTarget")),
    ];
    for (ops, status, scim_type) in cases {
        let (s, body) = patch(
            &app,
            &url,
            json!({"schemas": [PATCH_OP], "Operations": ops}),
        )
        .await;
        assert_eq!(s, status, "{ops} -> {body}");
        assert_eq!(body["scimType"].as_str(), scim_type, "{ops}");
    }
    let (_, now) = app.get(&url, &t).await;
    assert_eq!(now["meta"]["version"], "W/\"1\"");
    assert!(now.get("title").is_none());
    // A stale If-Match is 412, a current one applies.
    let send = |etag: &'static str| {
        app.http.patch(&url).bearer_auth(&t).header("content-type", "application/scim+json").header("if-match", etag)
            .body(json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "nickName", "value": etag}]}).to_string())
            .send()
    };
    assert_eq!(send("W/\"9\"").await.unwrap().status(), 412);
    assert_eq!(send("W/\"1\"").await.unwrap().status(), 200);
    // Members that are not users or groups of this source are invalidValue.
    let (_, g) = app
        .post(&format!("{base}/Groups"), &t, json!({"displayName": "G"}))
        .await;
    let gurl = g["meta"]["location"].as_str().unwrap().to_owned();
    let (s, body) = patch(&app, &gurl, json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": "not-a-user"}]}]})).await;
    assert_eq!((s, body["scimType"].as_str()), (400, Some("invalidValue")));
    let okta = app.create_source("okta").await;
    let r = app.http.patch(format!("{}/Users/{}", app.scim("okta"), other["id"].as_str().unwrap())).bearer_auth(&okta)
        .header("content-type", "application/scim+json")
        .body(json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "pwned"}]}).to_string())
        .send().await.unwrap();
    assert_eq!(r.status(), 404, "another source's user cannot be patched");
}
