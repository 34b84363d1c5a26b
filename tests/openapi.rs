//! The admin API's OpenAPI 3.1 document (`GET /admin/v1/openapi.json`): valid by an
//! independent validator (openapi-spec-validator from PyPI), describing exactly the routes
//! the admin API serves, and describing what they really answer.

mod common;

use common::TestApp;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Every route of the admin API, as its documentation promises it.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/sources"),
    ("POST", "/sources"),
    ("GET", "/sources/{slug}"),
    ("DELETE", "/sources/{slug}"),
    ("POST", "/sources/{slug}/tokens"),
    ("DELETE", "/sources/{slug}/tokens/{token_id}"),
    ("POST", "/sources/{slug}/schemas"),
    ("PUT", "/sources/{slug}/mappings"),
    ("POST", "/sources/{slug}/preview"),
    ("POST", "/sources/{slug}/remap"),
    ("GET", "/admin-tokens"),
    ("POST", "/admin-tokens"),
    ("DELETE", "/admin-tokens/{token_id}"),
    ("GET", "/directories"),
    ("POST", "/directories"),
    ("DELETE", "/directories/{name}"),
    ("GET", "/rebuild"),
    ("POST", "/rebuild"),
    ("GET", "/providers"),
    ("POST", "/providers"),
    ("GET", "/providers/{name}"),
    ("PATCH", "/providers/{name}"),
    ("DELETE", "/providers/{name}"),
    ("GET", "/providers/{name}/status"),
    ("POST", "/providers/{name}/sync"),
    ("POST", "/providers/{name}/retry"),
    ("POST", "/providers/{name}/replay"),
    ("POST", "/providers/{name}/preview"),
    ("GET", "/mappings"),
    ("POST", "/mappings"),
    ("GET", "/mappings/{name}"),
    ("PATCH", "/mappings/{name}"),
    ("DELETE", "/mappings/{name}"),
    ("POST", "/mappings/{name}/preview"),
    ("GET", "/mapping-templates"),
    ("GET", "/audit/events"),
    ("GET", "/audit/export"),
    ("GET", "/audit/verify"),
    ("GET", "/audit/resources/{id}/history"),
    ("GET", "/audit/resources/{id}/as-of"),
    ("POST", "/erasures"),
    ("GET", "/openapi.json"),
];

async fn document(app: &TestApp) -> Value {
    // Without a token: the document holds nothing secret.
    let resp = app
        .http
        .get(format!("{}/admin/v1/openapi.json", app.root))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.json().await.unwrap()
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_an_independent_validator_accepts_it() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], "/admin/v1");
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
    let validator = std::env::var("ROSTER_TEST_OPENAPI_VALIDATOR").expect(
        "ROSTER_TEST_OPENAPI_VALIDATOR is not set: run the tests with `bash scripts/test.sh`, \
         which installs openapi-spec-validator",
    );
    let file = app.data.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = std::process::Command::new(validator)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every operation has its own id, a summary and an error body for 401.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["operationId"].is_string(), "{method} {path}");
            assert!(op["summary"].is_string(), "{method} {path} has no summary");
            if path != "/openapi.json" {
                assert_eq!(
                    op["responses"]["401"]["content"]["application/scim+json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path}"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_route_is_described_and_every_described_route_is_served() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let described = operations(&doc);
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        described.difference(&routes).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "described but not in the list of routes"
    );
    assert_eq!(
        routes.difference(&described).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "routes missing from the document"
    );
    // Each one answers as a route (its own 404 for the made-up names, never the router's).
    let unknown = uuid::Uuid::new_v4().to_string();
    for (method, path) in &described {
        let url = format!(
            "{}/admin/v1{}",
            app.root,
            path.replace("{slug}", "nosuch")
                .replace("{name}", "nosuch")
                .replace("{token_id}", &unknown)
                .replace("{id}", &unknown)
        );
        let req = app
            .http
            .request(method.parse().unwrap(), &url)
            .bearer_auth(&app.admin_token);
        let req = if method == "GET" || method == "DELETE" {
            req
        } else {
            req.json(&json!({}))
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert!(
            !body.contains("no such endpoint"),
            "{method} {path} is not served: {status} {body}"
        );
        assert!(status < 500, "{method} {path}: {status} {body}");
    }
}

/// The schema `schema` refers to, with `allOf` parts merged: its properties and required
/// members.
fn shape(doc: &Value, schema: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return shape(doc, &doc["components"]["schemas"][name]);
    }
    let (mut props, mut required) = (BTreeSet::new(), BTreeSet::new());
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (p, r) = shape(doc, part);
        props.extend(p);
        required.extend(r);
    }
    if let Some(p) = schema["properties"].as_object() {
        props.extend(p.keys().cloned());
    }
    for r in schema["required"].as_array().into_iter().flatten() {
        required.insert(r.as_str().unwrap().to_owned());
    }
    (props, required)
}

#[tokio::test]
async fn what_the_admin_api_answers_has_the_members_its_schema_describes() {
    let app = TestApp::spawn().await;
    let admin = |path: &str| format!("{}/admin/v1{path}", app.root);
    let (s, source) = app
        .post(
            &admin("/sources"),
            &app.admin_token,
            json!({"slug": "entra"}),
        )
        .await;
    assert_eq!(s, 201, "{source}");
    let (s, provider) = app
        .post(
            &admin("/providers"),
            &app.admin_token,
            json!({"name": "slack", "base_url": "http://127.0.0.1:9/scim/v2",
                   "auth": {"type": "bearer", "token": "t"}, "scope": {"exclude_service_accounts": true}}),
        )
        .await;
    assert_eq!(s, 201, "{provider}");
    let (s, mapping) = app
        .post(
            &admin("/mappings"),
            &app.admin_token,
            json!({"name": "slack-names", "template": "slack-user"}),
        )
        .await;
    assert_eq!(s, 201, "{mapping}");
    let doc = document(&app).await;
    let answered =
        |path: &str, method: &str, status: &str| -> (BTreeSet<String>, BTreeSet<String>) {
            let schema = &doc["paths"][path][method]["responses"][status]["content"]
                ["application/json"]["schema"];
            assert!(!schema.is_null(), "{method} {path} {status} has no schema");
            shape(&doc, schema)
        };
    let check =
        |what: &str, value: &Value, (props, required): (BTreeSet<String>, BTreeSet<String>)| {
            let keys: BTreeSet<String> = value.as_object().unwrap().keys().cloned().collect();
            assert!(
                keys.is_subset(&props),
                "{what} answers members its schema lacks: {:?}",
                keys.difference(&props).collect::<Vec<_>>()
            );
            assert!(
                required.is_subset(&keys),
                "{what} lacks required members: {:?}",
                required.difference(&keys).collect::<Vec<_>>()
            );
        };
    check(
        "POST /sources",
        &source,
        answered("/sources", "post", "201"),
    );
    check(
        "POST /providers",
        &provider,
        answered("/providers", "post", "201"),
    );
    check(
        "POST /mappings",
        &mapping,
        answered("/mappings", "post", "201"),
    );
    for path in [
        "/sources",
        "/admin-tokens",
        "/directories",
        "/rebuild",
        "/providers",
        "/mappings",
        "/mapping-templates",
        "/audit/events",
        "/audit/verify",
        "/sources/{slug}",
        "/providers/{name}",
        "/providers/{name}/status",
        "/mappings/{name}",
    ] {
        let url = path.replace("{slug}", "entra").replace(
            "{name}",
            if path.starts_with("/mappings") {
                "slack-names"
            } else {
                "slack"
            },
        );
        let (s, body) = app.get(&admin(&url), &app.admin_token).await;
        assert_eq!(s, 200, "GET {url}: {body}");
        check(&format!("GET {url}"), &body, answered(path, "get", "200"));
    }
    // A list's items too.
    let (_, providers) = app.get(&admin("/providers"), &app.admin_token).await;
    check(
        "a listed provider",
        &providers["providers"][0],
        shape(
            &doc,
            &json!({"$ref": "#/components/schemas/ListedProvider"}),
        ),
    );
    let (_, events) = app.get(&admin("/audit/events"), &app.admin_token).await;
    check(
        "an audit event",
        &events["events"][0],
        shape(&doc, &json!({"$ref": "#/components/schemas/AuditEvent"})),
    );
    // Errors are SCIM error bodies.
    let (s, error) = app.get(&admin("/sources/nosuch"), &app.admin_token).await;
    assert_eq!(s, 404);
    check(
        "an error",
        &error,
        shape(&doc, &json!({"$ref": "#/components/schemas/ErrorBody"})),
    );
}
