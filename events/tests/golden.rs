//! Golden fixtures: stored events of every released schema version must decode in every later
//! release. Never edit a fixture; add new ones when a schema version is released.

use roster_events::{Envelope, EVENT_TYPES};
use std::collections::BTreeSet;
use std::path::Path;

fn fixtures() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut out = Vec::new();
    for version in std::fs::read_dir(&root).unwrap() {
        let version = version.unwrap().path();
        for file in std::fs::read_dir(&version).unwrap() {
            let file = file.unwrap().path();
            let name = format!(
                "{}/{}",
                version.file_name().unwrap().to_string_lossy(),
                file.file_name().unwrap().to_string_lossy()
            );
            out.push((name, std::fs::read_to_string(&file).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn every_golden_fixture_decodes() {
    let all = fixtures();
    assert!(!all.is_empty());
    for (name, json) in &all {
        let env = Envelope::decode(json).unwrap_or_else(|e| panic!("{name}: {e}"));
        // `<type>.json`, or `<type>--<case>.json` for a further case of one type.
        let stem = name.rsplit('/').next().unwrap().trim_end_matches(".json");
        let stem = stem.split("--").next().unwrap();
        assert_eq!(env.event.event_type(), stem, "{name}");
    }
}

#[test]
fn every_event_type_has_a_version_1_fixture() {
    let names: BTreeSet<String> = fixtures()
        .into_iter()
        .filter(|(n, _)| n.starts_with("v1/"))
        .map(|(n, _)| {
            n.trim_start_matches("v1/")
                .trim_end_matches(".json")
                .to_owned()
        })
        .collect();
    for t in EVENT_TYPES {
        assert!(names.contains(*t), "no golden fixture for {t}");
    }
}

#[test]
fn every_type_at_a_later_version_has_a_fixture_of_it() {
    let names: BTreeSet<String> = fixtures().into_iter().map(|(n, _)| n).collect();
    for t in EVENT_TYPES {
        let v = roster_events::current_schema_version(t).unwrap();
        assert!(
            names.contains(&format!("v{v}/{t}.json")),
            "no golden fixture for {t} v{v}"
        );
    }
}

#[test]
fn an_extension_an_older_patch_split_off_its_urn_reads_repaired() {
    let (_, json) = fixtures()
        .into_iter()
        .find(|(n, _)| n == "v1/user.replaced--split-extension-urn.json")
        .unwrap();
    let env = Envelope::decode(&json).unwrap();
    let roster_events::Event::UserReplaced(r) = env.event else {
        panic!("not a replacement")
    };
    const EXT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let doc = r.resource.value().unwrap().to_map();
    assert_eq!(doc[EXT], serde_json::json!({"employeeNumber": "7"}));
    assert_eq!(
        doc["schemas"],
        serde_json::json!(["urn:ietf:params:scim:schemas:core:2.0:User", EXT])
    );
    assert!(!doc.contains_key("urn:ietf:params:scim:schemas:extension:enterprise:2.0"));
}

#[test]
fn current_version_fixtures_reencode_to_the_same_json() {
    for (name, json) in fixtures() {
        let stored: serde_json::Value = serde_json::from_str(&json).unwrap();
        let t = stored["event_type"].as_str().unwrap();
        if stored["schema_version"].as_u64()
            != roster_events::current_schema_version(t).map(u64::from)
        {
            continue;
        }
        let json = &json;
        let name = &name;
        let env = Envelope::decode(json).unwrap();
        let again = serde_json::to_value(&env).unwrap();
        let stored: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(again, stored, "{name}");
    }
}

#[test]
fn unknown_types_and_future_versions_are_refused() {
    let (_, json) = &fixtures()[0];
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["schema_version"] = 99.into();
    assert!(Envelope::decode(&v.to_string()).is_err());
    v["schema_version"] = 1.into();
    v["event_type"] = "nope.happened".into();
    assert!(Envelope::decode(&v.to_string()).is_err());
}

#[test]
fn field_order_does_not_matter() {
    // Roster writes event_type before payload and decodes the payload in place; any other
    // order (another writer, a hand-edited export) takes the raw path and decodes the same.
    for (name, json) in fixtures() {
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let obj = v.as_object().unwrap();
        let mut reordered = String::from("{");
        let mut keys: Vec<&String> = obj.keys().collect();
        keys.sort_by_key(|k| k.as_str() != "payload");
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                reordered.push(',');
            }
            reordered.push_str(&format!(
                "{}:{}",
                serde_json::to_string(k).unwrap(),
                obj[k.as_str()]
            ));
        }
        reordered.push('}');
        assert!(reordered.starts_with("{\"payload\""));
        // Compared as JSON values: the reordering above re-serializes the payload too.
        let a = serde_json::to_value(Envelope::decode(&reordered).unwrap()).unwrap();
        let b = serde_json::to_value(Envelope::decode(&json).unwrap()).unwrap();
        assert_eq!(a, b, "{name}");
    }
}

#[test]
fn the_client_of_a_request_is_read_back_and_older_events_have_none() {
    let all = fixtures();
    let find = |name: &str| {
        let (_, json) = all.iter().find(|(n, _)| n == name).unwrap();
        Envelope::decode(json).unwrap()
    };
    let client = find("v1/user.created--client.json").client.unwrap();
    assert_eq!(
        client.token_id.as_deref(),
        Some("019ab5c0-0000-7000-8000-0000000000a2")
    );
    assert_eq!(client.ip, Some("203.0.113.7".parse().unwrap()));
    assert_eq!(
        client.user_agent.as_deref(),
        Some("Azure Active Directory SCIM Client")
    );
    assert!(find("v1/user.created.json").client.is_none());
}

#[test]
fn sealed_personal_data_opens_with_its_data_key_and_reads_erased_without_it() {
    use roster_events::personal::{DataKey, KeyState};
    use roster_events::{Event, Personal};
    let key = DataKey::from_bytes([7; 32]);
    for name in [
        "v2/user.created.json",
        "v3/user.replaced.json",
        "v2/user.password_set.json",
    ] {
        let (_, json) = fixtures().into_iter().find(|(n, _)| n == name).unwrap();
        let env = Envelope::decode(&json).unwrap();
        let record = roster_events::Record {
            record_id: uuid::Uuid::now_v7(),
            directory: "default".into(),
            follows: 0,
            prev: None,
            events: vec![env],
            prev_digest: None,
            mac: None,
        };
        let opened = record
            .open_personal(&|_| KeyState::Key(key.clone()))
            .unwrap()
            .unwrap();
        let text = match &opened.events[0].event {
            Event::UserCreated(c) => c.resource.value().unwrap().as_str().to_owned(),
            Event::UserReplaced(r) => r.resource.value().unwrap().as_str().to_owned(),
            Event::UserPasswordSet(p) => p.hash.value().unwrap().clone(),
            other => panic!("{other:?}"),
        };
        assert!(
            text.contains("ada@example.com") || text.starts_with("$argon2id$"),
            "{name}: {text}"
        );
        let erased = record
            .open_personal(&|_| KeyState::Erased)
            .unwrap()
            .unwrap();
        match &erased.events[0].event {
            Event::UserCreated(c) => assert!(matches!(c.resource, Personal::Erased(_))),
            Event::UserReplaced(r) => assert!(matches!(r.resource, Personal::Erased(_))),
            Event::UserPasswordSet(p) => assert!(matches!(p.hash, Personal::Erased(_))),
            other => panic!("{other:?}"),
        }
    }
}
