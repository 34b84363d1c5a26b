use super::*;
use roster_events::Actor;
use serde_json::json;

fn ctx(source: &str) -> Context {
    Context {
        actor: Actor::Source(format!("source:{source}")),
        source: Some(source.into()),
        correlation_id: None,
        client: None,
    }
}

fn udoc(v: Value) -> Checked {
    ResourceSchemas::user(&[], UndeclaredExtensions::Refuse)
        .check(v.as_object().unwrap().clone())
        .unwrap()
}

fn gdoc(v: Value) -> Checked {
    ResourceSchemas::group(&[], UndeclaredExtensions::Refuse)
        .check(v.as_object().unwrap().clone())
        .unwrap()
}

/// Runs commands through decide + apply, as the writer does, returning the state.
fn given(cmds: &[(Command, Context)]) -> (Directory, Vec<Outcome>) {
    let mut state = Directory::new("default");
    let mut outcomes = Vec::new();
    for (cmd, ctx) in cmds {
        let (events, outcome) = decide(&state, cmd, ctx, Utc::now()).unwrap();
        for e in &events {
            state.apply(e.clone()).unwrap();
        }
        outcomes.push(outcome);
    }
    (state, outcomes)
}

fn user(name: &str) -> Command {
    Command::CreateUser {
        resource: udoc(json!({"userName": name})),
        password_hash: None,
    }
}

fn id(o: &Outcome) -> ResourceId {
    match o {
        Outcome::User(id)
        | Outcome::Group(id)
        | Outcome::Source(id)
        | Outcome::Provider(id)
        | Outcome::Mapping(id) => *id,
        Outcome::Done => panic!("no id"),
    }
}

#[test]
fn a_user_name_taken_in_any_case_is_a_conflict() {
    let (state, _) = given(&[(user("alice@x.com"), ctx("a"))]);
    let r = decide(&state, &user("ALICE@X.COM"), &ctx("a"), Utc::now());
    assert!(matches!(r, Err(DomainError::Conflict(_))));
    let r = decide(&state, &user("Alice@x.com"), &ctx("b"), Utc::now());
    assert!(
        matches!(r, Err(DomainError::Conflict(_))),
        "other sources' names are taken too"
    );
}

#[test]
fn a_stale_if_match_fails_and_a_current_one_bumps_the_version() {
    let (state, o) = given(&[(user("bob"), ctx("a"))]);
    let uid = id(&o[0]);
    let replace = |v| Command::ReplaceUser {
        id: uid,
        resource: udoc(json!({"userName": "bob", "title": "x"})),
        password_hash: None,
        if_match: Some(v),
    };
    let r = decide(&state, &replace(7), &ctx("a"), Utc::now());
    assert_eq!(
        r.unwrap_err(),
        DomainError::PreconditionFailed {
            current: 1,
            expected: 7
        }
    );
    let (events, _) = decide(&state, &replace(1), &ctx("a"), Utc::now()).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].resource_version, 2);
    assert_eq!(events[0].event.event_type(), "user.replaced");
}

#[test]
fn replacing_with_the_same_document_records_nothing() {
    let (state, o) = given(&[(user("carol"), ctx("a"))]);
    let cmd = Command::ReplaceUser {
        id: id(&o[0]),
        resource: udoc(json!({"userName": "carol"})),
        password_hash: None,
        if_match: None,
    };
    let (events, outcome) = decide(&state, &cmd, &ctx("a"), Utc::now()).unwrap();
    assert!(events.is_empty());
    assert_eq!(outcome, Outcome::User(id(&o[0])));
}

#[test]
fn another_sources_objects_are_not_found() {
    let (state, o) = given(&[(user("dave"), ctx("a"))]);
    let cmd = Command::DeleteUser {
        id: id(&o[0]),
        if_match: None,
    };
    assert!(matches!(
        decide(&state, &cmd, &ctx("b"), Utc::now()),
        Err(DomainError::NotFound(_))
    ));
    let group = Command::CreateGroup {
        resource: gdoc(json!({"displayName": "g"})),
        members: vec![MemberRef {
            value: id(&o[0]).to_string(),
            kind: None,
        }],
    };
    assert!(matches!(
        decide(&state, &group, &ctx("b"), Utc::now()),
        Err(DomainError::Invalid(_))
    ));
}

#[test]
fn deleting_a_member_records_its_removal_from_every_group_first() {
    let (state, o) = given(&[(user("erin"), ctx("a"))]);
    let uid = id(&o[0]);
    let member = vec![MemberRef {
        value: uid.to_string(),
        kind: Some("User".into()),
    }];
    let mk = |n: &str| Command::CreateGroup {
        resource: gdoc(json!({"displayName": n})),
        members: member.clone(),
    };
    let mut state = state;
    let mut gids = Vec::new();
    for n in ["g1", "g2"] {
        let (events, out) = decide(&state, &mk(n), &ctx("a"), Utc::now()).unwrap();
        assert_eq!(events.len(), 2, "created, then members added");
        assert_eq!(events[1].resource_version, 2);
        for e in &events {
            state.apply(e.clone()).unwrap();
        }
        gids.push(id(&out));
    }
    let (events, _) = decide(
        &state,
        &Command::DeleteUser {
            id: uid,
            if_match: None,
        },
        &ctx("a"),
        Utc::now(),
    )
    .unwrap();
    let types: Vec<_> = events.iter().map(|e| e.event.event_type()).collect();
    assert_eq!(
        types,
        [
            "group.members_removed",
            "group.members_removed",
            "user.deleted"
        ]
    );
    assert!(events[..2]
        .iter()
        .all(|e| gids.contains(&e.resource_id) && e.resource_version == 3));
    for e in &events {
        state.apply(e.clone()).unwrap();
    }
    assert!(gids
        .iter()
        .all(|g| state.group(*g).unwrap().members.is_empty()));
    assert_eq!(state.groups_of(uid).count(), 0);
}

#[test]
fn replacing_a_group_records_only_the_membership_difference() {
    let (state, o) = given(&[
        (user("u1"), ctx("a")),
        (user("u2"), ctx("a")),
        (user("u3"), ctx("a")),
    ]);
    let r = |i: usize| MemberRef {
        value: id(&o[i]).to_string(),
        kind: None,
    };
    let create = Command::CreateGroup {
        resource: gdoc(json!({"displayName": "g"})),
        members: vec![r(0), r(1)],
    };
    let mut state = state;
    let (events, out) = decide(&state, &create, &ctx("a"), Utc::now()).unwrap();
    events.iter().for_each(|e| state.apply(e.clone()).unwrap());
    let gid = id(&out);
    let replace = Command::ReplaceGroup {
        id: gid,
        resource: gdoc(json!({"displayName": "g"})),
        members: vec![r(1), r(2)],
        if_match: None,
    };
    let (events, _) = decide(&state, &replace, &ctx("a"), Utc::now()).unwrap();
    assert_eq!(events.len(), 2);
    match (&events[0].event, &events[1].event) {
        (Event::GroupMembersRemoved(rm), Event::GroupMembersAdded(add)) => {
            assert_eq!(
                rm.members.iter().map(|m| m.value).collect::<Vec<_>>(),
                vec![id(&o[0])]
            );
            assert_eq!(
                add.members.iter().map(|m| m.value).collect::<Vec<_>>(),
                vec![id(&o[2])]
            );
        }
        other => panic!("unexpected events {other:?}"),
    }
    assert_eq!(
        (events[0].resource_version, events[1].resource_version),
        (3, 4)
    );
    let selfref = Command::ReplaceGroup {
        id: gid,
        resource: gdoc(json!({"displayName": "g"})),
        members: vec![MemberRef {
            value: gid.to_string(),
            kind: None,
        }],
        if_match: None,
    };
    assert!(matches!(
        decide(&state, &selfref, &ctx("a"), Utc::now()),
        Err(DomainError::Invalid(_))
    ));
}

#[test]
fn bootstrap_happens_once() {
    let t = || NewToken {
        id: ResourceId::new(),
        hash: "h".into(),
        prefix: "p".into(),
    };
    let boot = Command::Bootstrap {
        admin: t(),
        source_slug: "default".into(),
        source_token: t(),
    };
    let sys = Context {
        actor: Actor::System,
        source: None,
        correlation_id: None,
        client: None,
    };
    let (state, _) = given(&[(boot.clone(), sys.clone())]);
    assert!(state.source_by_slug("default").is_some());
    assert_eq!(state.admin_tokens().count(), 1);
    assert!(matches!(
        decide(&state, &boot, &sys, Utc::now()),
        Err(DomainError::Conflict(_))
    ));
}
