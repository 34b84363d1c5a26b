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
