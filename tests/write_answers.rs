//! A write's answer is the resource as that write left it (RFC 7644 §3.3, §3.5.1; ADR 0005),
//! never a later write's state read back from the views: checked against the log, with the
//! racing writes of issue 20 (a PUT against a DELETE of the same user, a group created with a
//! member that is being deleted).

mod common;

use common::TestApp;
use roster::log::{EventLog, FileLog, FileLogOptions};
use roster_events::Event;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The versions of the events `is` picks, by resource id, in log order.
async fn logged(data: &std::path::Path, is: fn(&Event) -> bool) -> HashMap<String, Vec<u64>> {
    let log = FileLog::open(data.join("log"), FileLogOptions::default()).unwrap();
    let mut out: HashMap<String, Vec<u64>> = HashMap::new();
    for entry in log.read(0, 0, usize::MAX).await.unwrap() {
        for e in &entry.record.events {
            if is(&e.event) {
                out.entry(e.resource_id.to_string())
                    .or_default()
                    .push(e.resource_version);
            }
        }
    }
    out
}

fn version(body: &Value) -> u64 {
    let v = body["meta"]["version"].as_str().unwrap();
    v.trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .unwrap_or_else(|_| panic!("version {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_racing_a_delete_answers_what_it_wrote() {
    let app = TestApp::spawn().await;
    let users = format!("{}/Users", app.scim("default"));
    let t = app.scim_token.clone();
    let mut answers = Vec::new();
    for i in 0..300 {
        let (s, u) = app.create_user("default", &t, &format!("race{i}")).await;
        assert_eq!(s, 201, "{u}");
        let url = format!("{users}/{}", u["id"].as_str().unwrap());
        let body = json!({"userName": format!("race{i}"), "displayName": format!("put {i}")});
        let ((put, answer), deleted) = tokio::join!(app.put(&url, &t, body), app.delete(&url, &t));
        assert_eq!(deleted, 204, "the DELETE of race{i}");
        answers.push((i, u["id"].as_str().unwrap().to_owned(), put, answer));
    }
    let data = app.stop().await;
    let replaced = logged(data.path(), |e| matches!(e, Event::UserReplaced(_))).await;
    let (mut won, mut lost) = (0, 0);
    for (i, id, put, answer) in answers {
        match (put, replaced.get(&id)) {
            (200, Some(versions)) => {
                won += 1;
                assert_eq!(answer["id"], id.as_str());
                assert_eq!(answer["displayName"], format!("put {i}"), "{answer}");
                assert_eq!(versions, &vec![version(&answer)], "race{i}: {answer}");
            }
            (404, None) => lost += 1,
            (s, logged) => panic!("race{i}: PUT answered {s}, the log's replacements: {logged:?}"),
        }
    }
    assert_eq!(won + lost, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_created_with_a_member_being_deleted_answers_its_own_members() {
    let app = TestApp::spawn().await;
    let base = app.scim("default");
    let t = app.scim_token.clone();
    let mut answers = Vec::new();
    for i in 0..150 {
        let (_, a) = app.create_user("default", &t, &format!("a{i}")).await;
        let (_, b) = app.create_user("default", &t, &format!("b{i}")).await;
        let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
        let group = json!({
            "displayName": format!("g{i}"),
            "members": [{"value": a}, {"value": b}],
        });
        let (groups, user_b) = (format!("{base}/Groups"), format!("{base}/Users/{b}"));
        let ((created, answer), deleted) =
            tokio::join!(app.post(&groups, &t, group), app.delete(&user_b, &t));
        assert_eq!(deleted, 204);
        if created == 201 {
            let mut members: Vec<&str> = answer["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["value"].as_str().unwrap())
                .collect();
            members.sort_unstable();
            let mut want = vec![a, b];
            want.sort_unstable();
            assert_eq!(members, want, "g{i}: {answer}");
            answers.push((answer["id"].as_str().unwrap().to_owned(), version(&answer)));
        } else {
            assert_eq!(created, 400, "g{i}: {answer}");
        }
    }
    let data = app.stop().await;
    let added = logged(data.path(), |e| matches!(e, Event::GroupMembersAdded(_))).await;
    for (id, v) in answers {
        assert_eq!(added[&id].first(), Some(&v), "group {id}");
    }
}
