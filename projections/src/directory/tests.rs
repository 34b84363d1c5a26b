//! Unit tests of the directory fold: a reverted batch restores views and indexes, an unindexed fold gives the same views, and events that do not fit change nothing.

use super::*;
use crate::testing::env;
use roster_events::{
    GroupCreated, GroupMembersAdded, MemberType, Personal, ResourceType, UserCreated, UserReplaced,
};
use serde_json::json;

fn user(name: &str) -> roster_events::Document {
    let doc = json!({"userName": name, "externalId": format!("x-{name}")});
    roster_events::Document::from_map(doc.as_object().unwrap())
}

#[test]
fn reverting_a_batch_restores_views_and_indexes_exactly() {
    let mut d = Directory::new("d");
    let (u1, u2, g) = (ResourceId::new(), ResourceId::new(), ResourceId::new());
    let owner = Some("s".to_string());
    d.apply(env(
        ResourceType::User,
        u1,
        1,
        Event::UserCreated(UserCreated {
            owner: owner.clone(),
            resource: Personal::Plain(user("a")),
            mapped: None,
        }),
    ))
    .unwrap();
    let before = d.canonical_json();

    let mut undo = Undo::default();
    let batch = [
        env(
            ResourceType::User,
            u2,
            1,
            Event::UserCreated(UserCreated {
                owner: owner.clone(),
                resource: Personal::Plain(user("b")),
                mapped: None,
            }),
        ),
        env(
            ResourceType::User,
            u1,
            2,
            Event::UserReplaced(UserReplaced {
                resource: Personal::Plain(user("a2")),
                mapped: None,
            }),
        ),
        env(
            ResourceType::Group,
            g,
            1,
            Event::GroupCreated(GroupCreated {
                owner,
                resource: roster_events::Document::from_map(
                    json!({"displayName": "G"}).as_object().unwrap(),
                ),
                mapped: None,
            }),
        ),
        env(
            ResourceType::Group,
            g,
            2,
            Event::GroupMembersAdded(GroupMembersAdded {
                members: vec![Member {
                    value: u1,
                    kind: MemberType::User,
                }],
            }),
        ),
        env(ResourceType::User, u2, 2, Event::UserDeleted),
    ];
    for e in &batch {
        d.apply_with_undo(e.clone(), &mut undo).unwrap();
    }
    assert!(d.user_by_name("A2").is_some());
    assert_eq!(d.groups_of(u1).count(), 1);
    d.revert(undo);
    assert_eq!(d.canonical_json(), before);
    assert!(
        d.user_by_name("a").is_some()
            && d.user_by_name("a2").is_none()
            && d.user_by_name("b").is_none()
    );
    assert!(d.group_by_name("g").is_none());
    assert_eq!(d.groups_of(u1).count(), 0);
    assert_eq!(d.user_index.by_external.len(), 1);
    assert_eq!(
        d.user_index
            .by_owner
            .values()
            .map(|s| s.len())
            .sum::<usize>(),
        1
    );
    assert!(d.group_index.by_owner.is_empty() && d.group_index.by_external.is_empty());
}

#[test]
fn an_unindexed_fold_gives_the_same_views_without_the_indexes() {
    let (u1, u2, g) = (ResourceId::new(), ResourceId::new(), ResourceId::new());
    let m = |v| Member {
        value: v,
        kind: MemberType::User,
    };
    let events = || {
        vec![
            env(
                ResourceType::User,
                u1,
                1,
                Event::UserCreated(UserCreated {
                    owner: Some("s".into()),
                    resource: Personal::Plain(user("a")),
                    mapped: None,
                }),
            ),
            env(
                ResourceType::User,
                u2,
                1,
                Event::UserCreated(UserCreated {
                    owner: None,
                    resource: Personal::Plain(user("b")),
                    mapped: None,
                }),
            ),
            env(
                ResourceType::Group,
                g,
                1,
                Event::GroupCreated(GroupCreated {
                    owner: None,
                    resource: roster_events::Document::from_map(
                        json!({"displayName": "G"}).as_object().unwrap(),
                    ),
                    mapped: None,
                }),
            ),
            env(
                ResourceType::Group,
                g,
                2,
                Event::GroupMembersAdded(GroupMembersAdded {
                    members: vec![m(u1), m(u2)],
                }),
            ),
            env(
                ResourceType::User,
                u1,
                2,
                Event::UserReplaced(UserReplaced {
                    resource: Personal::Plain(user("a2")),
                    mapped: None,
                }),
            ),
            env(ResourceType::User, u2, 2, Event::UserDeleted),
        ]
    };
    let events = events();
    let mut full = Directory::new("d");
    let mut bare = Directory::unindexed("d");
    for e in &events {
        full.apply(e.clone()).unwrap();
        bare.apply(e.clone()).unwrap();
    }
    assert_eq!(full.canonical_json(), bare.canonical_json());
    assert!(full.user_by_name("a2").is_some());
    assert!(bare.user_by_name("a2").is_none(), "no index kept");
    assert!(bare.member_of.is_empty() && bare.user_index.by_owner.is_empty());
}

#[test]
fn events_that_do_not_fit_change_nothing() {
    let mut d = Directory::new("d");
    let ghost = ResourceId::new();
    let before = d.canonical_json();
    assert!(d
        .apply(env(ResourceType::User, ghost, 2, Event::UserDeleted))
        .is_err());
    assert!(d
        .apply(env(
            ResourceType::User,
            ghost,
            2,
            Event::UserReplaced(UserReplaced {
                resource: Personal::Plain(user("z")),
                mapped: None,
            })
        ))
        .is_err());
    assert_eq!(d.canonical_json(), before);
}

#[test]
fn a_decision_copy_folds_the_same_views_without_the_prefix_indexes() {
    let create = |name: &str| {
        env(
            ResourceType::User,
            ResourceId::new(),
            1,
            Event::UserCreated(UserCreated {
                owner: None,
                resource: Personal::Plain(user(name)),
                mapped: None,
            }),
        )
    };
    let mut full = Directory::new("d");
    full.apply(create("alice")).unwrap();
    let mut copy = full.decision_copy();
    let bob = create("bob");
    full.apply(bob.clone()).unwrap();
    copy.apply(bob).unwrap();
    assert_eq!(full.canonical_json(), copy.canonical_json());
    assert!(copy.user_by_name("bob").is_some() && copy.user_by_name("alice").is_some());
    let sw = crate::filter::parse(r#"userName sw "b""#).unwrap();
    let exists = |_| true;
    let answered = full.user_index.narrowed::<UserView>(&sw, &exists).unwrap();
    assert_eq!(answered.ids.len(), 1);
    assert!(
        copy.user_index.narrowed::<UserView>(&sw, &exists).is_none(),
        "a prefix the copy does not keep is left to a full read"
    );
}
