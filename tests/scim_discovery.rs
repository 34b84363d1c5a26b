//! Discovery endpoints (RFC 7644 §4) and schema-driven handling of attribute names.

mod common;

use common::TestApp;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_endpoints_describe_what_is_supported() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let base = app.scim("default");

    let (s, spc) = app.get(&format!("{base}/ServiceProviderConfig"), &t).await;
    assert_eq!(s, 200);
    assert_eq!(
        spc["schemas"][0],
        "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
    );
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["etag"]["supported"], true);
    assert_eq!(spc["filter"]["supported"], true);
    assert_eq!(spc["filter"]["maxResults"], 1000);
    assert_eq!(spc["bulk"]["supported"], true);
    assert_eq!(spc["bulk"]["maxOperations"], 1000);
    assert_eq!(spc["bulk"]["maxPayloadSize"], 1 << 20);
    assert_eq!(spc["sort"]["supported"], true);
    assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");

    let (s, types) = app.get(&format!("{base}/ResourceTypes"), &t).await;
    assert_eq!(s, 200);
    assert_eq!(types["totalResults"], 2);
    let (s, user_type) = app.get(&format!("{base}/ResourceTypes/User"), &t).await;
    assert_eq!(s, 200);
    assert_eq!(user_type["endpoint"], "/Users");
    assert_eq!(
        user_type["schemaExtensions"][0]["schema"],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    );
    assert_eq!(
        app.get(&format!("{base}/ResourceTypes/Widget"), &t).await.0,
        404
    );

    let (s, schemas) = app.get(&format!("{base}/Schemas"), &t).await;
    assert_eq!(s, 200);
    assert_eq!(schemas["totalResults"], 3);
    let (s, user) = app
        .get(
            &format!("{base}/Schemas/urn:ietf:params:scim:schemas:core:2.0:User"),
            &t,
        )
        .await;
    assert_eq!(s, 200);
    let user_name = user["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "userName")
        .unwrap();
    assert_eq!(
        (
            user_name["required"].as_bool(),
            user_name["uniqueness"].as_str()
        ),
        (Some(true), Some("server"))
    );
    let emails = user["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "emails")
        .unwrap();
    assert_eq!(emails["multiValued"], true);
    assert_eq!(
        app.get(&format!("{base}/Schemas/urn:nope"), &t).await.0,
        404
    );

    // Writes to discovery endpoints, /Me, and no token.
    let r = app
        .http
        .post(format!("{base}/ServiceProviderConfig"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["content-type"], "application/scim+json");
    let r = app
        .http
        .delete(format!("{base}/Schemas"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let (s, body) = app.get(&format!("{base}/Me"), &t).await;
    assert_eq!((s, body["status"].as_str()), (501, Some("501")));
    assert_eq!(
        app.http
            .get(format!("{base}/Schemas"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_names_in_any_case_are_stored_as_the_schema_spells_them() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let base = app.scim("default");
    let (s, u) = app
        .post(&format!("{base}/Users"), &t, json!({
            "SCHEMAS": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "USERNAME": "Casey@Example.com",
            "Name": {"GivenName": "Casey"},
            "Emails": [{"VALUE": "Casey@Example.com", "Type": "work", "Primary": "True"}],
            "Active": "false",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {"Department": "Ops", "Manager": "m-1"}
        }))
        .await;
    assert_eq!(s, 201, "{u}");
    assert_eq!(u["userName"], "Casey@Example.com");
    assert_eq!(u["name"], json!({"givenName": "Casey"}));
    assert_eq!(
        u["emails"],
        json!([{"value": "Casey@Example.com", "type": "work", "primary": true}])
    );
    assert_eq!(u["active"], false);
    let ext = &u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
    assert_eq!(ext["department"], "Ops");
    assert_eq!(ext["manager"], json!({"value": "m-1"}));
    assert!(u.get("USERNAME").is_none());

    // Filters compare as the schema says: emails.value is not case-exact, externalId is.
    let q = |f: &str| {
        format!(
            "{base}/Users?filter={}",
            f.replace(' ', "%20").replace('"', "%22")
        )
    };
    let (_, r) = app
        .get(&q("emails.value eq \"casey@example.COM\""), &t)
        .await;
    assert_eq!(r["totalResults"], 1);
    let (_, r) = app
        .get(&q("emails[type eq \"WORK\" and primary eq true]"), &t)
        .await;
    assert_eq!(r["totalResults"], 1);
    let (_, r) = app
        .get(
            &q("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"ops\""),
            &t,
        )
        .await;
    assert_eq!(r["totalResults"], 1);
}
