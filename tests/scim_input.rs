//! Every body is checked against the source's schemas at the edge, single or inside Bulk:
//! wrong types, single values for multi-valued attributes, unknown attributes and undeclared
//! extensions are refused and change nothing; the tolerances real clients need stay; PATCH
//! paths name attributes of the schemas (a whole extension by its URN included); names are
//! compared by their PRECIS key; filters and sorts name and compare attributes by their types.

mod common;

use common::TestApp;
use serde_json::{json, Value};

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn ops(list: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list})
}

async fn count_users(app: &TestApp) -> u64 {
    let (_, list) = app
        .get(
            &format!("{}/Users?count=0", app.scim("default")),
            &app.scim_token.clone(),
        )
        .await;
    list["totalResults"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_of_the_wrong_type_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let users = format!("{}/Users", app.scim("default"));
    let (s, e) = app
        .post(
            &users,
            &t,
            json!({"userName": "x", "active": "yes", "emails": "a@b.c", "name": "Ada",
                   "addresses": 5, "displayName": {"a": 1}}),
        )
        .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (400, Some("invalidValue")),
        "{e}"
    );
    assert_eq!(
        e["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    for body in [
        json!({"userName": "x", "emails": "a@b.c"}),
        json!({"userName": "x", "name": "Ada"}),
        json!({"userName": "x", "nosuch": 1}),
        json!({"userName": "x", ENT: {"employeeNumber": 7}}),
        json!({"userName": "x", "urn:acme:custom:2.0:User": {"badge": "1"}}),
    ] {
        let (s, e) = app.post(&users, &t, body.clone()).await;
        assert_eq!(
            (s, e["scimType"].as_str()),
            (400, Some("invalidValue")),
            "{body}: {e}"
        );
    }
    assert_eq!(count_users(&app).await, 0, "nothing was stored");
    // The same body inside Bulk gets the same answer.
    let (s, bulk) = app
        .post(
            &format!("{}/Bulk", app.scim("default")),
            &t,
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"userName": "y", "active": "yes"}}
            ]}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(bulk["Operations"][0]["status"], "400");
    assert_eq!(
        bulk["Operations"][0]["response"]["scimType"],
        "invalidValue"
    );
    assert_eq!(count_users(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_entra_and_okta_send_is_accepted_and_stored_in_one_shape() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let base = app.scim("default");
    let (s, u) = app
        .post(
            &format!("{base}/Users"),
            &t,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
                   "UserName": "ada@example.com", "Active": "True",
                   "Name": {"GivenName": "Ada", "familyName": "Lovelace"},
                   "emails": [{"Value": "ada@example.com", "type": "work", "primary": "true"}],
                   ENT: {"Department": "R&D", "manager": "boss-1"}}),
        )
        .await;
    assert_eq!(s, 201, "{u}");
    assert_eq!(u["active"], true);
    assert_eq!(u["name"]["givenName"], "Ada");
    assert_eq!(u["emails"][0]["primary"], true);
    assert_eq!(
        u[ENT],
        json!({"department": "R&D", "manager": {"value": "boss-1"}})
    );
    // Entra's group create names its own schema with nothing under it.
    let (s, g) = app
        .post(
            &format!("{base}/Groups"),
            &t,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
                               "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                   "displayName": "Sales", "externalId": "e-1", "members": []}),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    assert_eq!(
        g["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:Group"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeclared_extensions_are_refused_or_kept_as_the_source_says() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let (s, keeper) = app
        .post(
            &format!("{}/admin/v1/sources", app.root),
            &admin,
            json!({"slug": "okta", "undeclared_extensions": "keep"}),
        )
        .await;
    assert_eq!(s, 201, "{keeper}");
    assert_eq!(keeper["undeclared_extensions"], "keep");
    let okta = keeper["token"]["token"].as_str().unwrap().to_owned();
    let custom = "urn:okta:custom:2.0:User";
    let body = json!({"userName": "u1", custom: {"badge": "7", "nothing": null}});
    let (s, u) = app
        .post(&format!("{}/Users", app.scim("okta")), &okta, body.clone())
        .await;
    assert_eq!(s, 201, "{u}");
    assert_eq!(u[custom], json!({"badge": "7"}));
    assert!(u["schemas"].as_array().unwrap().iter().any(|s| s == custom));
    let (s, e) = app
        .post(
            &format!("{}/Users", app.scim("default")),
            &app.scim_token.clone(),
            body,
        )
        .await;
    assert_eq!(s, 400);
    assert!(e["detail"].as_str().unwrap().contains(custom), "{e}");
    // Discovery says which, for each source.
    let (_, rt) = app
        .get(&format!("{}/ResourceTypes/User", app.scim("okta")), &okta)
        .await;
    assert!(rt["description"]
        .as_str()
        .unwrap()
        .contains("stored and returned as sent"));
    let (_, rt) = app
        .get(
            &format!("{}/ResourceTypes/User", app.scim("default")),
            &app.scim_token.clone(),
        )
        .await;
    assert!(rt["description"].as_str().unwrap().contains("refused"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_extension_is_patched_by_its_urn() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let (_, u) = app.create_user("default", &t, "ext@example.com").await;
    let url = format!(
        "{}/Users/{}",
        app.scim("default"),
        u["id"].as_str().unwrap()
    );
    let (s, out) = app
        .patch(
            &url,
            &t,
            ops(json!([{"op": "add", "path": ENT, "value": {"employeeNumber": "7"}}])),
        )
        .await;
    assert_eq!(s, 200, "{out}");
    assert_eq!(out[ENT], json!({"employeeNumber": "7"}));
    assert_eq!(
        out["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENT])
    );
    let (_, out) = app
        .patch(
            &url,
            &t,
            ops(json!([{"op": "replace", "path": ENT, "value": {"costCenter": "9"}}])),
        )
        .await;
    assert_eq!(out[ENT], json!({"employeeNumber": "7", "costCenter": "9"}));
    let (s, out) = app
        .patch(&url, &t, ops(json!([{"op": "remove", "path": ENT}])))
        .await;
    assert_eq!(s, 200);
    assert!(out.get(ENT).is_none(), "{out}");
    assert_eq!(
        out["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:User"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_naming_no_attribute_fails_whole_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let (_, u) = app.create_user("default", &t, "p@example.com").await;
    let url = format!(
        "{}/Users/{}",
        app.scim("default"),
        u["id"].as_str().unwrap()
    );
    for list in [
        json!([{"op": "replace", "path": "nosuch", "value": "x"}]),
        json!([{"op": "replace", "path": "title", "value": "x"}, {"op": "replace", "path": "nosuch", "value": "x"}]),
        json!([{"op": "replace", "path": "name.nosuch", "value": "x"}]),
    ] {
        let (s, e) = app.patch(&url, &t, ops(list.clone())).await;
        assert_eq!(
            (s, e["scimType"].as_str()),
            (400, Some("invalidPath")),
            "{list}: {e}"
        );
    }
    let (s, e) = app
        .patch(
            &url,
            &t,
            ops(json!([{"op": "replace", "path": "active", "value": "yes"}])),
        )
        .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (400, Some("invalidValue")),
        "{e}"
    );
    let (_, now) = app.get(&url, &t).await;
    assert_eq!(
        now["meta"]["version"], "W/\"1\"",
        "no operation took effect"
    );
    assert!(now.get("title").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_sets_and_clears_a_manager_in_its_own_forms() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let (_, boss) = app.create_user("default", &t, "boss@example.com").await;
    let boss = boss["id"].as_str().unwrap().to_owned();
    let (_, u) = app.create_user("default", &t, "report@example.com").await;
    let url = format!(
        "{}/Users/{}",
        app.scim("default"),
        u["id"].as_str().unwrap()
    );
    let (s, out) = app
        .patch(
            &url,
            &t,
            ops(
                json!([{"op": "Add", "path": "manager", "value": [{"$ref": null, "value": boss}]}]),
            ),
        )
        .await;
    assert_eq!(s, 200, "{out}");
    assert_eq!(out[ENT]["manager"]["value"], boss.as_str());
    let (_, out) = app
        .patch(
            &url,
            &t,
            ops(json!([{"op": "Replace", "path": "manager", "value": "someone"}])),
        )
        .await;
    assert_eq!(out[ENT]["manager"]["value"], "someone");
    let (s, out) = app
        .patch(
            &url,
            &t,
            ops(json!([{"op": "remove", "path": "manager[value eq \"someone\"]"}])),
        )
        .await;
    assert_eq!(s, 200);
    assert!(out.get(ENT).is_none(), "the manager is cleared: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alike_names_are_one_name_and_unusable_ones_are_refused() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let (s, _) = app.create_user("default", &t, "carol").await;
    assert_eq!(s, 201);
    for variant in ["carol ", "CAROL", "ｃａｒｏｌ", " Carol"] {
        let (s, e) = app.create_user("default", &t, variant).await;
        assert_eq!(
            (s, e["scimType"].as_str()),
            (409, Some("uniqueness")),
            "{variant:?}"
        );
    }
    for bad in ["carol\u{200b}", "\u{feff}carol"] {
        let (s, e) = app.create_user("default", &t, bad).await;
        assert_eq!(
            (s, e["scimType"].as_str()),
            (400, Some("invalidValue")),
            "{bad:?}: {e}"
        );
    }
    let (s, e) = app.create_user("default", &t, &"n".repeat(1_000)).await;
    assert_eq!(s, 400);
    assert!(
        e["detail"].as_str().unwrap().len() < 200,
        "the name is not echoed: {e}"
    );
    // The name is kept as sent, and found by a filter that matches it case-insensitively.
    let (_, list) = app
        .get(
            &format!(
                "{}/Users?filter=userName%20eq%20%22CAROL%22",
                app.scim("default")
            ),
            &t,
        )
        .await;
    assert_eq!(list["Resources"][0]["userName"], "carol");
    // Group names too.
    let groups = format!("{}/Groups", app.scim("default"));
    assert_eq!(
        app.post(&groups, &t, json!({"displayName": "Ops  Team"}))
            .await
            .0,
        201
    );
    let (s, _) = app
        .post(&groups, &t, json!({"displayName": "ops team"}))
        .await;
    assert_eq!(s, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_sorts_name_and_compare_attributes_by_their_types() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let users = format!("{}/Users", app.scim("default"));
    app.post(
        &users,
        &t,
        json!({"userName": "w", "emails": [{"type": "work", "value": "a@x"}, {"type": "home", "value": "b@x"}]}),
    )
    .await;
    let get = |q: &str| {
        let url = format!("{users}?{q}");
        let t = t.clone();
        let app = &app;
        async move { app.get(&url, &t).await }
    };
    let (s, list) = get("filter=emails%5Btype%20eq%20%22work%22%5D.value%20eq%20%22a%40x%22").await;
    assert_eq!((s, list["totalResults"].as_u64()), (200, Some(1)), "{list}");
    let (s, list) = get("filter=emails%5Btype%20eq%20%22home%22%5D.value%20eq%20%22a%40x%22").await;
    assert_eq!((s, list["totalResults"].as_u64()), (200, Some(0)));
    let (s, e) = get("filter=meta.created%20gt%20%22not-a-date%22").await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (400, Some("invalidFilter")),
        "{e}"
    );
    let (s, e) = get("filter=active%20eq%20%22yes%22").await;
    assert_eq!((s, e["scimType"].as_str()), (400, Some("invalidFilter")));
    let (s, e) = get("sortBy=nosuch").await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (400, Some("invalidValue")),
        "{e}"
    );
    let (s, _) = get("sortBy=name.familyName").await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_bodies_are_typed_and_paths_that_do_not_decode_get_scim_errors() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let sources = format!("{}/admin/v1/sources", app.root);
    for body in [
        json!({"slug": "x", "ownership": 5}),
        json!({"slug": "x", "ownerhsip": "adopt"}),
        json!({"slug": "x", "undeclared_extensions": "maybe"}),
        json!({"slug": 7}),
    ] {
        let (s, e) = app.post(&sources, &admin, body.clone()).await;
        assert_eq!(
            (s, e["scimType"].as_str()),
            (400, Some("invalidValue")),
            "{body}: {e}"
        );
    }
    let r = app
        .http
        .get(format!("{}/admin/v1/sources/%ff", app.root))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    assert_eq!(r.headers()["content-type"], "application/scim+json");
    let r = app
        .http
        .get(format!("{}/Users/%ff", app.scim("default")))
        .bearer_auth(app.scim_token.clone())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    assert_eq!(r.headers()["content-type"], "application/scim+json");
}
