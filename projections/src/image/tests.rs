//! Unit tests of the image: a store written out and read back answers as before, and a body
//! that is cut short, padded, of another format or miscounted is refused.

use super::*;
use crate::store::LogEntry;
use crate::testing::env;
use roster_events::{
    Event, GroupCreated, GroupMembersAdded, MemberType, Personal, Record, ResourceType, UserCreated,
};
use serde_json::json;

fn doc(v: serde_json::Value) -> Document {
    Document::from_map(v.as_object().unwrap())
}

/// A store holding one user (with a password hash) in a group, at position 2.
fn store() -> (MemoryStore, ResourceId) {
    let (u, g) = (ResourceId::new(), ResourceId::new());
    let owner = Some("src".to_string());
    let events = [
        vec![env(
            ResourceType::User,
            u,
            1,
            Event::UserCreated(UserCreated {
                owner: owner.clone(),
                resource: Personal::Plain(doc(json!({"userName": "Zoë", "externalId": "x1"}))),
                mapped: None,
            }),
        )],
        vec![
            env(
                ResourceType::Group,
                g,
                1,
                Event::GroupCreated(GroupCreated {
                    owner,
                    resource: doc(json!({"displayName": "Staff"})),
                    mapped: None,
                }),
            ),
            env(
                ResourceType::Group,
                g,
                2,
                Event::GroupMembersAdded(GroupMembersAdded {
                    members: vec![Member {
                        value: u,
                        kind: MemberType::User,
                    }],
                }),
            ),
        ],
    ];
    let mut prev = None;
    let entries = events
        .into_iter()
        .enumerate()
        .map(|(i, events)| {
            let record = Record {
                record_id: Uuid::now_v7(),
                directory: "d".into(),
                follows: i as u64,
                prev,
                events,
                prev_digest: None,
                mac: None,
            };
            prev = Some(record.record_id);
            LogEntry {
                partition: 0,
                position: i as u64,
                record: Arc::new(record),
                digest: [i as u8 + 1; 32],
            }
        })
        .collect();
    let s = MemoryStore::new();
    s.apply_sync(entries);
    (s, u)
}

fn written(s: &MemoryStore) -> String {
    let mut out = Vec::new();
    s.image().write_to(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn a_store_read_back_holds_the_same_views_indexes_and_positions() {
    let (s, u) = store();
    let text = written(&s);
    let (back, info) = MemoryStore::read_image(text.as_bytes()).unwrap();
    assert_eq!(back.canonical_json(), s.canonical_json());
    assert_eq!(info.next_positions, vec![2]);
    assert_eq!(info.tails, vec![Some([2; 32])]);
    assert_eq!((info.users, info.groups), (1, 1));
    let inner = back.read_inner();
    assert_eq!(inner.chain.head("d"), s.read_inner().chain.head("d"));
    let d = &inner.dirs["d"];
    assert_eq!(d.user_by_name("ZOË").map(|v| v.id), Some(u));
    assert_eq!(d.groups_of(u).count(), 1);
    assert_eq!(d.group_by_name("staff").map(|g| g.members.len()), Some(1));
    // Written again, it is the same text.
    drop(inner);
    assert_eq!(written(&back), text);
}

#[test]
fn a_body_cut_short_padded_miscounted_or_of_another_format_is_refused() {
    let (s, _) = store();
    let text = written(&s);
    let lines: Vec<&str> = text.lines().collect();
    let without_end = lines[..lines.len() - 1].join("\n") + "\n";
    assert!(matches!(
        MemoryStore::read_image(without_end.as_bytes()),
        Err(ImageError::Shape(_))
    ));
    let padded = format!("{text}{}\n", lines[1]);
    assert!(matches!(
        MemoryStore::read_image(padded.as_bytes()),
        Err(ImageError::Shape(_))
    ));
    let miscounted = text.replace(r#"{"End":{"users":1"#, r#"{"End":{"users":2"#);
    assert_ne!(miscounted, text);
    assert!(matches!(
        MemoryStore::read_image(miscounted.as_bytes()),
        Err(ImageError::Shape(_))
    ));
    let other = text.replacen(r#"{"Header":{"format":1"#, r#"{"Header":{"format":9"#, 1);
    assert_ne!(other, text);
    assert!(matches!(
        MemoryStore::read_image(other.as_bytes()),
        Err(ImageError::Format(9))
    ));
    let garbled = text.replacen("Staff", "Staff\"", 1);
    assert!(matches!(
        MemoryStore::read_image(garbled.as_bytes()),
        Err(ImageError::Parse { .. })
    ));
    assert!(MemoryStore::read_image(&b""[..]).is_err());
}
