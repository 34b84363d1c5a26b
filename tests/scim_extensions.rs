//! Extension schemas a source declares (RFC 7643 §3.3, §7): served in discovery, used for
//! attribute names and for case rules in filters.

mod common;

use common::TestApp;
use serde_json::{json, Value};

const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:custom:2.0:User";

fn custom_schema() -> Value {
    json!({
        "id": CUSTOM,
        "name": "CustomUser",
        "description": "Directory extension attributes",
        "attributes": [
            {"name": "employeeNumber", "type": "string"},
            {"name": "worksiteId", "type": "string", "caseExact": true},
            {"name": "badge", "type": "complex", "subAttributes": [{"name": "code", "type": "string"}]}
        ]
    })
}

async fn declare(app: &TestApp, slug: &str, body: Value) -> (u16, Value) {
    app.post(
        &format!("{}/admin/v1/sources/{slug}/schemas", app.root),
        &app.admin_token.clone(),
        body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_extension_is_served_stored_and_filtered_by_its_rules() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let base = app.scim("default");
    let (s, src) = declare(
        &app,
        "default",
        json!({"resource_type": "User", "schema": custom_schema()}),
    )
    .await;
    assert_eq!(s, 201, "{src}");
    assert_eq!(
        src["schemas"],
        json!([{"resource_type": "User", "id": CUSTOM}])
    );

    let (_, schemas) = app.get(&format!("{base}/Schemas"), &t).await;
    assert_eq!(schemas["totalResults"], 4);
    let (s, one) = app.get(&format!("{base}/Schemas/{CUSTOM}"), &t).await;
    assert_eq!(s, 200);
    assert_eq!(one["attributes"][1]["caseExact"], true);
    assert_eq!(
        one["attributes"][0]["mutability"], "readWrite",
        "RFC defaults filled in"
    );
    let (_, rt) = app.get(&format!("{base}/ResourceTypes/User"), &t).await;
    assert_eq!(rt["schemaExtensions"][1]["schema"], CUSTOM);

    // Entra sends custom extension attributes; names in any case are stored as declared.
    let (s, u) = app
        .post(&format!("{base}/Users"), &t, json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", CUSTOM],
            "userName": "worker",
            "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:CUSTOM:2.0:USER": {"EMPLOYEENUMBER": "99887766", "worksiteid": "Site-180", "Badge": {"CODE": "x"}}
        }))
        .await;
    assert_eq!(s, 201, "{u}");
    assert_eq!(
        u[CUSTOM],
        json!({"employeeNumber": "99887766", "worksiteId": "Site-180", "badge": {"code": "x"}})
    );

    let q = |f: String| {
        format!(
            "{base}/Users?filter={}",
            f.replace(' ', "%20").replace('"', "%22")
        )
    };
    let (_, r) = app
        .get(&q(format!("{CUSTOM}:worksiteId eq \"Site-180\"")), &t)
        .await;
    assert_eq!(r["totalResults"], 1);
    let (_, r) = app
        .get(&q(format!("{CUSTOM}:worksiteId eq \"site-180\"")), &t)
        .await;
    assert_eq!(r["totalResults"], 0, "declared caseExact is honoured");
    let (_, r) = app
        .get(&q(format!("{CUSTOM}:employeeNumber eq \"99887766\"")), &t)
        .await;
    assert_eq!(r["totalResults"], 1);

    // Another source sees only the built-in schemas.
    let other = app.create_source("okta").await;
    let (_, schemas) = app
        .get(&format!("{}/Schemas", app.scim("okta")), &other)
        .await;
    assert_eq!(schemas["totalResults"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_declarations_are_refused() {
    let app = TestApp::spawn().await;
    let mut not_urn = custom_schema();
    not_urn["id"] = "custom".into();
    let mut builtin = custom_schema();
    builtin["id"] = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".into();
    let mut bad_type = custom_schema();
    bad_type["attributes"][0]["type"] = "text".into();
    let mut nested = custom_schema();
    nested["attributes"][2]["subAttributes"][0] =
        json!({"name": "deep", "type": "complex", "subAttributes": [{"name": "x"}]});
    for schema in [
        not_urn,
        builtin,
        bad_type,
        nested,
        json!({"id": "urn:x:y", "attributes": []}),
        json!("nope"),
    ] {
        let (s, body) = declare(&app, "default", json!({"schema": schema})).await;
        assert_eq!(
            (s, body["scimType"].as_str()),
            (400, Some("invalidValue")),
            "{schema}"
        );
    }
    assert_eq!(
        declare(
            &app,
            "default",
            json!({"resource_type": "Widget", "schema": custom_schema()})
        )
        .await
        .0,
        400
    );
    assert_eq!(
        declare(&app, "default", json!({"schema": custom_schema()}))
            .await
            .0,
        201
    );
    assert_eq!(
        declare(&app, "default", json!({"schema": custom_schema()}))
            .await
            .0,
        409
    );
    assert_eq!(
        declare(&app, "nope", json!({"schema": custom_schema()}))
            .await
            .0,
        404
    );
}
