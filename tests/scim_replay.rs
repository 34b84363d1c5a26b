//! A long randomized session of mixed SCIM requests (POST, PUT, PATCH, DELETE, Bulk, over
//! users and groups), then a restart: the views rebuilt from the log answer exactly as before.

mod common;

use common::TestApp;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

async fn everything(app_root: &str, token: &str, http: &reqwest::Client) -> (Value, Value) {
    let base = format!("{app_root}/source/scim/default/v2");
    let get = |url: String| {
        let http = http.clone();
        let token = token.to_owned();
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    (
        get(format!("{base}/Users?count=1000")).await,
        get(format!("{base}/Groups?count=1000")).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_randomized_session_replays_to_identical_views() {
    let app = TestApp::spawn().await;
    let t = app.scim_token.clone();
    let base = app.scim("default");
    let mut rng = StdRng::seed_from_u64(0x5c1a);
    let mut users: Vec<String> = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for step in 0..400 {
        let pick = |rng: &mut StdRng, v: &Vec<String>| -> String {
            if v.is_empty() || rng.random_bool(0.05) {
                "00000000-0000-7000-8000-000000000000".into()
            } else {
                v[rng.random_range(0..v.len())].clone()
            }
        };
        let (status, body) = match rng.random_range(0..9) {
            0 | 1 => {
                let name = format!("user{}", rng.random_range(0..60));
                app.post(&format!("{base}/Users"), &t, json!({"userName": name, "active": rng.random_bool(0.5),
                    "emails": [{"value": format!("{name}@x.example"), "type": "work", "primary": true}]})).await
            }
            2 => {
                let id = pick(&mut rng, &users);
                app.put(&format!("{base}/Users/{id}"), &t, json!({"userName": format!("user{}", rng.random_range(0..60)), "title": format!("t{step}")})).await
            }
            3 => {
                let id = pick(&mut rng, &users);
                let r = app.http.patch(format!("{base}/Users/{id}")).bearer_auth(&t).header("content-type", "application/scim+json")
                    .body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                        {"op": "Replace", "path": "active", "value": if rng.random_bool(0.5) { "True" } else { "False" }},
                        {"op": "Add", "path": "emails[type eq \"home\"].value", "value": format!("h{step}@x.example")},
                        {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": format!("d{}", step % 3)}
                    ]}).to_string()).send().await.unwrap();
                common::parse(r).await
            }
            4 => (
                app.delete(&format!("{base}/Users/{}", pick(&mut rng, &users)), &t)
                    .await,
                Value::Null,
            ),
            5 => {
                let members: Vec<Value> = (0..rng.random_range(0..4))
                    .map(|_| json!({"value": pick(&mut rng, &users)}))
                    .collect();
                app.post(&format!("{base}/Groups"), &t, json!({"displayName": format!("group{}", rng.random_range(0..20)), "members": members})).await
            }
            6 => {
                let id = pick(&mut rng, &groups);
                let (a, b) = (pick(&mut rng, &users), pick(&mut rng, &groups));
                let r = app.http.patch(format!("{base}/Groups/{id}")).bearer_auth(&t).header("content-type", "application/scim+json")
                    .body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                        {"op": "Add", "path": "members", "value": [{"value": a}]},
                        {"op": "remove", "path": format!("members[value eq \"{b}\"]")}
                    ]}).to_string()).send().await.unwrap();
                common::parse(r).await
            }
            7 => (
                app.delete(&format!("{base}/Groups/{}", pick(&mut rng, &groups)), &t)
                    .await,
                Value::Null,
            ),
            _ => {
                let n = rng.random_range(0..1000);
                app.post(&format!("{base}/Bulk"), &t, json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
                    {"method": "POST", "path": "/Users", "bulkId": "u", "data": {"userName": format!("bulk{n}")}},
                    {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"displayName": format!("bulkgroup{n}"), "members": [{"value": "bulkId:u"}]}}
                ]})).await
            }
        };
        *statuses.entry(status).or_default() += 1;
        assert!(status < 500, "step {step}: {status} {body}");
        if status == 201 {
            let id = body["id"].as_str().unwrap().to_owned();
            if body["meta"]["resourceType"] == "User" {
                users.push(id)
            } else {
                groups.push(id)
            }
        }
    }
    // The session exercised successes and refusals alike.
    assert!(
        statuses.contains_key(&201) && statuses.contains_key(&409) && statuses.contains_key(&404),
        "{statuses:?}"
    );

    let http = app.http.clone();
    let before = everything(&app.root, &t, &http).await;
    assert!(before.0["totalResults"].as_u64().unwrap() > 10);
    let data = app.stop().await;
    let restarted = roster::app::Application::build(common::settings(data.path()))
        .await
        .unwrap();
    let root = format!("http://{}", restarted.local_addr());
    tokio::spawn(restarted.run_until_stopped());
    let after = everything(&root, &t, &http).await;
    // Locations carry the port, which changed with the restart.
    let old_port = app_port(&before);
    let strip = |v: &Value| {
        v.to_string()
            .replace(&old_port, "PORT")
            .replace(&app_port(&after), "PORT")
    };
    assert_eq!(strip(&before.0), strip(&after.0));
    assert_eq!(strip(&before.1), strip(&after.1));
    drop(data);
}

fn app_port(v: &(Value, Value)) -> String {
    let text = v.0.to_string();
    let start = text.find("127.0.0.1:").map(|i| i + 10).unwrap_or(0);
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect()
}
