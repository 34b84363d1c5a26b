//! Sorting, attribute selection and POST .search (RFC 7644 §3.4.2.3, §3.4.2.5, §3.4.3, §3.9).

mod common;

use common::TestApp;
use serde_json::{json, Value};

fn ids(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap_or("").to_owned())
        .collect()
}

async fn seeded() -> TestApp {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let users = format!("{}/Users", app.scim("default"));
    for (name, family, email) in [
        ("carol", Some("Zed"), "c@x"),
        ("Alice", Some("young"), "a@x"),
        ("bob", None, "b@x"),
        ("dave", Some("Adams"), "d@x"),
    ] {
        let mut body = json!({"userName": name, "emails": [{"value": "other@x"}, {"value": email, "primary": true}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Ops", "employeeNumber": name.len().to_string()}});
        if let Some(f) = family {
            body["name"] = json!({"givenName": name, "familyName": f});
        }
        assert_eq!(app.post(&users, &t, body).await.0, 201);
    }
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sort_by_any_attribute_in_either_order() {
    let app = seeded().await;
    let t = app.scim_token.clone();
    let users = format!("{}/Users", app.scim("default"));
    let (_, r) = app.get(&format!("{users}?sortBy=userName"), &t).await;
    assert_eq!(
        ids(&r),
        ["Alice", "bob", "carol", "dave"],
        "case-insensitive, ascending by default"
    );
    let (_, r) = app
        .get(&format!("{users}?sortBy=userName&sortOrder=descending"), &t)
        .await;
    assert_eq!(ids(&r), ["dave", "carol", "bob", "Alice"]);
    let (_, r) = app
        .get(&format!("{users}?sortBy=name.familyName"), &t)
        .await;
    assert_eq!(
        ids(&r),
        ["dave", "Alice", "carol", "bob"],
        "missing values last when ascending"
    );
    let (_, r) = app
        .get(
            &format!("{users}?sortBy=name.familyName&sortOrder=DESCENDING"),
            &t,
        )
        .await;
    assert_eq!(
        ids(&r),
        ["bob", "carol", "Alice", "dave"],
        "and first when descending"
    );
    let (_, r) = app.get(&format!("{users}?sortBy=emails"), &t).await;
    assert_eq!(
        ids(&r),
        ["Alice", "bob", "carol", "dave"],
        "a multi-valued attribute sorts by its primary value"
    );
    let (_, r) = app
        .get(
            &format!("{users}?sortBy=meta.created&sortOrder=descending&startIndex=2&count=2"),
            &t,
        )
        .await;
    assert_eq!(
        (r["totalResults"].as_u64(), ids(&r)),
        (Some(4), vec!["bob".to_owned(), "Alice".to_owned()])
    );
    let (_, r) = app
        .get(
            &format!("{users}?sortBy=userName&filter=userName%20ne%20%22bob%22"),
            &t,
        )
        .await;
    assert_eq!(ids(&r), ["Alice", "carol", "dave"]);
    let (s, r) = app
        .get(&format!("{users}?sortBy=userName&sortOrder=sideways"), &t)
        .await;
    assert_eq!((s, r["scimType"].as_str()), (400, Some("invalidValue")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_and_excluded_attributes_shape_every_response() {
    let app = seeded().await;
    let t = app.scim_token.clone();
    let users = format!("{}/Users", app.scim("default"));
    let (_, r) = app
        .get(
            &format!("{users}?attributes=userName&sortBy=userName&count=1"),
            &t,
        )
        .await;
    let u = &r["Resources"][0];
    let mut keys: Vec<&str> = u.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["id", "schemas", "userName"]);

    let (_, r) = app
        .get(
            &format!(
                "{users}?attributes=name.givenName,emails.value&filter=userName%20eq%20%22dave%22"
            ),
            &t,
        )
        .await;
    let u = &r["Resources"][0];
    assert_eq!(u["name"], json!({"givenName": "dave"}));
    assert_eq!(u["emails"], json!([{"value": "other@x"}, {"value": "d@x"}]));
    assert!(u.get("userName").is_none());

    let (_, r) = app.get(&format!("{users}?excludedAttributes=emails,name.familyName,meta,id&filter=userName%20eq%20%22dave%22"), &t).await;
    let u = &r["Resources"][0];
    assert!(u.get("emails").is_none() && u.get("meta").is_none());
    assert_eq!(u["name"], json!({"givenName": "dave"}));
    assert!(u.get("id").is_some(), "id is returned always");

    let ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let (_, r) = app
        .get(
            &format!("{users}?attributes={ext}:department&filter=userName%20eq%20%22dave%22"),
            &t,
        )
        .await;
    assert_eq!(r["Resources"][0][ext], json!({"department": "Ops"}));
    let (_, r) = app
        .get(
            &format!("{users}?excludedAttributes={ext}&filter=userName%20eq%20%22dave%22"),
            &t,
        )
        .await;
    assert!(r["Resources"][0].get(ext).is_none());

    // On a single GET and on a write response too.
    let id = r["Resources"][0]["id"].as_str().unwrap().to_owned();
    let (_, u) = app
        .get(&format!("{users}/{id}?attributes=userName"), &t)
        .await;
    assert_eq!(u.as_object().unwrap().len(), 3);
    let (s, u) = app
        .post(
            &format!("{users}?attributes=id"),
            &t,
            json!({"userName": "eve"}),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(u.as_object().unwrap().len(), 2, "{u}");
    let (s, _) = app.get(&format!("{users}?attributes=a.b.c"), &t).await;
    assert_eq!(s, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_search_on_a_resource_type_and_at_the_root() {
    let app = seeded().await;
    let t = app.scim_token.clone();
    let base = app.scim("default");
    let (_, u) = app
        .get(
            &format!("{base}/Users?filter=userName%20eq%20%22bob%22"),
            &t,
        )
        .await;
    let bob = u["Resources"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.post(
            &format!("{base}/Groups"),
            &t,
            json!({"displayName": "Bobs", "members": [{"value": bob}]})
        )
        .await
        .0,
        201
    );
    let search = |filter: &str| {
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": filter, "sortBy": "userName", "sortOrder": "descending",
            "attributes": ["userName", "displayName"], "startIndex": 1, "count": 10
        })
    };
    let (s, r) = app
        .post(
            &format!("{base}/Users/.search"),
            &t,
            search("userName sw \"b\" or userName sw \"c\""),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(ids(&r), ["carol", "bob"]);
    assert!(r["Resources"][0].get("emails").is_none());
    let (s, r) = app
        .post(
            &format!("{base}/Groups/.search"),
            &t,
            json!({"filter": format!("members.value eq \"{bob}\"")}),
        )
        .await;
    assert_eq!((s, r["totalResults"].as_u64()), (200, Some(1)));
    let (s, r) = app
        .post(
            &format!("{base}/.search"),
            &t,
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": "userName eq \"bob\" or displayName eq \"Bobs\""
            }),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["totalResults"], 2);
    let kinds: Vec<&str> = r["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["meta"]["resourceType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["User", "Group"]);
    let (s, r) = app
        .post(
            &format!("{base}/Users/.search"),
            &t,
            json!({"schemas": ["urn:nope"]}),
        )
        .await;
    assert_eq!((s, r["scimType"].as_str()), (400, Some("invalidValue")));
    let (s, r) = app
        .post(
            &format!("{base}/Users/.search"),
            &t,
            json!({"filter": "userName zz 1"}),
        )
        .await;
    assert_eq!((s, r["scimType"].as_str()), (400, Some("invalidFilter")));
    assert_eq!(app.get(&format!("{base}/Users/.search"), &t).await.0, 405);
}
