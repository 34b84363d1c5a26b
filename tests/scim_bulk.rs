//! Bulk (RFC 7644 §3.7) over HTTP.

mod common;

use common::TestApp;
use serde_json::{json, Value};

const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

async fn bulk(app: &TestApp, body: Value) -> (u16, Value) {
    app.post(
        &format!("{}/Bulk", app.scim("default")),
        &app.scim_token.clone(),
        body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_runs_operations_in_order_and_resolves_bulk_ids() {
    let app = TestApp::spawn().await;
    let (s, r) = bulk(&app, json!({
        "schemas": [BULK],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "qwerty",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "Alice"}},
            {"method": "POST", "path": "/Groups", "bulkId": "ytrewq",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Tour Guides",
                      "members": [{"type": "User", "value": "bulkId:qwerty"}]}},
            {"method": "PATCH", "path": "/Users/bulkId:qwerty", "version": "W/\"1\"",
             "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "replace", "path": "title", "value": "Guide"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "temp", "data": {"userName": "Temp"}},
            {"method": "DELETE", "path": "/Users/bulkId:temp"}
        ]
    }))
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        r["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
    );
    let ops = r["Operations"].as_array().unwrap();
    let statuses: Vec<&str> = ops.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["201", "201", "200", "201", "204"]);
    assert_eq!(ops[0]["bulkId"], "qwerty");
    assert_eq!(ops[2]["version"], "W/\"2\"");
    let user_url = ops[0]["location"].as_str().unwrap();
    let user_id = user_url.rsplit('/').next().unwrap();
    let (_, group) = app
        .get(ops[1]["location"].as_str().unwrap(), &app.scim_token)
        .await;
    assert_eq!(group["members"][0]["value"], user_id);
    let (_, user) = app.get(user_url, &app.scim_token).await;
    assert_eq!(user["title"], "Guide");
    assert_eq!(
        app.get(ops[3]["location"].as_str().unwrap(), &app.scim_token)
            .await
            .0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_errors_are_reported_per_operation_and_fail_on_errors_stops() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.create_user("default", &app.scim_token.clone(), "taken")
            .await
            .0,
        201
    );
    let ops = json!([
        {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"userName": "TAKEN"}},
        {"method": "POST", "path": "/Groups", "bulkId": "b", "data": {"displayName": "g", "members": [{"value": "bulkId:nope"}]}},
        {"method": "POST", "path": "/Users", "data": {"userName": "no-bulk-id"}},
        {"method": "GET", "path": "/Users"},
        {"method": "POST", "path": "/Users", "bulkId": "c", "data": {"userName": "fine"}}
    ]);
    let (s, r) = bulk(&app, json!({"schemas": [BULK], "Operations": ops})).await;
    assert_eq!(s, 200);
    let got: Vec<(&str, Option<&str>)> = r["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["status"].as_str().unwrap(),
                o["response"]["scimType"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("409", Some("uniqueness")),
            ("409", Some("invalidValue")),
            ("400", Some("invalidValue")),
            ("405", None),
            ("201", None)
        ]
    );
    assert_eq!(
        r["Operations"][0]["response"]["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );

    let (s, r) = bulk(&app, json!({"schemas": [BULK], "failOnErrors": 1, "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "x", "data": {"userName": "taken"}},
        {"method": "POST", "path": "/Users", "bulkId": "y", "data": {"userName": "never-created"}}
    ]})).await;
    assert_eq!(s, 200);
    assert_eq!(
        r["Operations"].as_array().unwrap().len(),
        1,
        "processing stops at failOnErrors"
    );
    let (_, list) = app
        .get(
            &format!(
                "{}/Users?filter=userName%20eq%20%22never-created%22",
                app.scim("default")
            ),
            &app.scim_token,
        )
        .await;
    assert_eq!(list["totalResults"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_limits_are_enforced() {
    let app = TestApp::spawn().await;
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"method": "DELETE", "path": format!("/Users/{i}")}))
        .collect();
    let (s, r) = bulk(&app, json!({"schemas": [BULK], "Operations": many})).await;
    assert_eq!((s, r["status"].as_str()), (413, Some("413")));
    let big = "x".repeat(2 << 20);
    let (s, _) = bulk(&app, json!({"schemas": [BULK], "Operations": [{"method": "POST", "path": "/Users", "bulkId": "a", "data": {"userName": big}}]})).await;
    assert_eq!(s, 413);
    let (s, r) = bulk(&app, json!({"schemas": ["urn:nope"], "Operations": []})).await;
    assert_eq!((s, r["scimType"].as_str()), (400, Some("invalidSyntax")));
}
