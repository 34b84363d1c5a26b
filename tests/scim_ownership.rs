//! Ownership policies: `owned` (the default: a taken name is 409) and `adopt` (a create that
//! names an existing user or group adopts it).

mod common;

use common::TestApp;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopt_source_links_existing_objects_instead_of_conflicting() {
    let app = TestApp::spawn().await;
    let entra = app.scim_token.clone();
    let (s, created) = app
        .post(
            &format!("{}/admin/v1/sources", app.root),
            &app.admin_token.clone(),
            json!({"slug": "okta", "ownership": "adopt"}),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(created["ownership"], "adopt");
    let okta = created["token"]["token"].as_str().unwrap().to_owned();

    let (_, original) = app
        .post(
            &format!("{}/Users", app.scim("default")),
            &entra,
            json!({"userName": "shared@example.com", "title": "old"}),
        )
        .await;
    let id = original["id"].as_str().unwrap().to_owned();
    let (s, adopted) = app
        .post(
            &format!("{}/Users", app.scim("okta")),
            &okta,
            json!({"userName": "SHARED@example.com", "title": "new"}),
        )
        .await;
    assert_eq!(s, 201, "{adopted}");
    assert_eq!(
        adopted["id"],
        id.as_str(),
        "the existing user, not a new one"
    );
    assert_eq!(adopted["title"], "new");
    assert_eq!(
        adopted["meta"]["version"], "W/\"3\"",
        "adopted, then replaced"
    );
    assert_eq!(adopted["meta"]["created"], original["meta"]["created"]);
    // It moved: the old owner no longer sees it, the adopter does.
    assert_eq!(
        app.get(&format!("{}/Users/{id}", app.scim("default")), &entra)
            .await
            .0,
        404
    );
    assert_eq!(
        app.get(&format!("{}/Users/{id}", app.scim("okta")), &okta)
            .await
            .0,
        200
    );
    // An owned source still cannot take a name: 409.
    let (s, body) = app
        .post(
            &format!("{}/Users", app.scim("default")),
            &entra,
            json!({"userName": "shared@example.com"}),
        )
        .await;
    assert_eq!((s, body["scimType"].as_str()), (409, Some("uniqueness")));

    // Groups by displayName, with members the adopter can see.
    let (_, g) = app
        .post(
            &format!("{}/Groups", app.scim("default")),
            &entra,
            json!({"displayName": "Staff"}),
        )
        .await;
    let (s, g2) = app
        .post(
            &format!("{}/Groups", app.scim("okta")),
            &okta,
            json!({"displayName": "staff", "members": [{"value": id}]}),
        )
        .await;
    assert_eq!(s, 201, "{g2}");
    assert_eq!(g2["id"], g["id"]);
    assert_eq!(g2["displayName"], "staff");
    assert_eq!(g2["members"][0]["value"], id.as_str());
    assert_eq!(
        app.get(
            &format!(
                "{}/Groups/{}",
                app.scim("default"),
                g["id"].as_str().unwrap()
            ),
            &entra
        )
        .await
        .0,
        404
    );

    let (s, body) = app
        .post(
            &format!("{}/admin/v1/sources", app.root),
            &app.admin_token.clone(),
            json!({"slug": "x", "ownership": "share"}),
        )
        .await;
    assert_eq!((s, body["scimType"].as_str()), (400, Some("invalidValue")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adoption_leaves_the_previous_owners_groups_consistent_and_editable() {
    let app = TestApp::spawn().await;
    let default = app.scim_token.clone();
    let (_, created) = app
        .post(
            &format!("{}/admin/v1/sources", app.root),
            &app.admin_token.clone(),
            json!({"slug": "adopter", "ownership": "adopt"}),
        )
        .await;
    let adopter = created["token"]["token"].as_str().unwrap().to_owned();
    let base = app.scim("default");
    let (_, carol) = app.create_user("default", &default, "carol@x.com").await;
    let (_, dan) = app.create_user("default", &default, "dan@x.com").await;
    let (carol, dan) = (
        carol["id"].as_str().unwrap().to_owned(),
        dan["id"].as_str().unwrap().to_owned(),
    );
    let (s, staff) = app
        .post(
            &format!("{base}/Groups"),
            &default,
            json!({"displayName": "staff", "members": [{"value": carol}, {"value": dan}]}),
        )
        .await;
    assert_eq!(s, 201);
    let staff_url = format!("{base}/Groups/{}", staff["id"].as_str().unwrap());

    // The adopter takes carol and renames her.
    let (s, adopted) = app
        .post(
            &format!("{}/Users", app.scim("adopter")),
            &adopter,
            json!({"userName": "carol@x.com"}),
        )
        .await;
    assert_eq!((s, adopted["id"].as_str()), (201, Some(carol.as_str())));
    let (s, _) = app
        .patch(
            &format!("{}/Users/{carol}", app.scim("adopter")),
            &adopter,
            json!({"Operations": [{"op": "replace", "path": "userName", "value": "caroline@x.com"}]}),
        )
        .await;
    assert_eq!(s, 200);

    // The previous owner's group keeps her as a member it can no longer look at: value and
    // type only, never the adopter's later changes.
    let (_, seen) = app.get(&staff_url, &default).await;
    let members = seen["members"].as_array().unwrap();
    let her = members
        .iter()
        .find(|m| m["value"] == carol.as_str())
        .unwrap();
    assert_eq!(her, &json!({"value": carol, "type": "User"}), "{seen}");
    assert!(!seen.to_string().contains("caroline"));
    let him = members.iter().find(|m| m["value"] == dan.as_str()).unwrap();
    assert_eq!(him["display"], "dan@x.com");

    // And it stays editable: removing dan, a PUT that repeats the members, removing carol.
    let (s, e) = app
        .patch(
            &staff_url,
            &default,
            json!({"Operations": [{"op": "remove", "path": format!("members[value eq \"{dan}\"]")}]}),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    let (s, e) = app
        .put(
            &staff_url,
            &default,
            json!({"displayName": "staff", "members": [{"value": carol}]}),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    // Adding a user it does not see is still refused.
    let (_, other) = app
        .post(
            &format!("{}/Users", app.scim("adopter")),
            &adopter,
            json!({"userName": "eve@x.com"}),
        )
        .await;
    let (s, _) = app
        .patch(
            &staff_url,
            &default,
            json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": other["id"]}]}]}),
        )
        .await;
    assert_eq!(s, 400);
    let (s, out) = app
        .patch(
            &staff_url,
            &default,
            json!({"Operations": [{"op": "remove", "path": "members", "value": [{"value": carol}]}]}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(out["members"], json!([]));
}
