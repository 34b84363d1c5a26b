//! Random command sessions for property tests: a generator of SCIM-like commands over two
//! sources and the code that runs them, concurrently, through a directory's writer.

use proptest::prelude::*;
use roster::domain::{Command, Context, MemberRef, NewToken, Outcome};
use roster::pipeline::Writer;
use roster_events::{Actor, ResourceId};
use serde_json::json;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub enum Op {
    CreateUser {
        source: usize,
        name: usize,
    },
    ReplaceUser {
        source: usize,
        pick: usize,
        name: usize,
        title: u8,
    },
    DeleteUser {
        source: usize,
        pick: usize,
    },
    CreateGroup {
        source: usize,
        name: usize,
        members: Vec<usize>,
    },
    ReplaceGroup {
        source: usize,
        pick: usize,
        name: usize,
        members: Vec<usize>,
    },
    DeleteGroup {
        source: usize,
        pick: usize,
    },
    PatchUser {
        source: usize,
        pick: usize,
        title: u8,
        active: bool,
    },
    PatchGroupMembers {
        source: usize,
        pick: usize,
        add: Vec<usize>,
        remove: Vec<usize>,
    },
    /// An admin creates, changes, asks something of, or deletes an outbound provider.
    Provider {
        pick: usize,
        action: u8,
    },
}

pub fn op() -> impl Strategy<Value = Op> {
    let s = 0usize..2;
    let n = 0usize..12;
    let p = any::<usize>();
    prop_oneof![
        4 => (s.clone(), n.clone()).prop_map(|(source, name)| Op::CreateUser { source, name }),
        2 => (s.clone(), p, n.clone(), any::<u8>()).prop_map(|(source, pick, name, title)| Op::ReplaceUser { source, pick, name, title }),
        1 => (s.clone(), p).prop_map(|(source, pick)| Op::DeleteUser { source, pick }),
        2 => (s.clone(), n.clone(), prop::collection::vec(any::<usize>(), 0..4)).prop_map(|(source, name, members)| Op::CreateGroup { source, name, members }),
        2 => (s.clone(), p, n.clone(), prop::collection::vec(any::<usize>(), 0..4)).prop_map(|(source, pick, name, members)| Op::ReplaceGroup { source, pick, name, members }),
        1 => (s.clone(), p).prop_map(|(source, pick)| Op::DeleteGroup { source, pick }),
        2 => (s.clone(), p, any::<u8>(), any::<bool>()).prop_map(|(source, pick, title, active)| Op::PatchUser { source, pick, title, active }),
        2 => (s, p, prop::collection::vec(any::<usize>(), 0..3), prop::collection::vec(any::<usize>(), 0..3))
            .prop_map(|(source, pick, add, remove)| Op::PatchGroupMembers { source, pick, add, remove }),
        1 => (p, any::<u8>()).prop_map(|(pick, action)| Op::Provider { pick, action }),
    ]
}

const SOURCES: [&str; 2] = ["a", "b"];

fn ctx(source: usize) -> Context {
    Context {
        actor: Actor::Source(format!("source:{}", SOURCES[source])),
        source: Some(SOURCES[source].into()),
        correlation_id: None,
        client: None,
    }
}

fn pick(ids: &[ResourceId], i: usize) -> ResourceId {
    if ids.is_empty() {
        ResourceId::new()
    } else {
        ids[i % ids.len()]
    }
}

fn token() -> NewToken {
    NewToken {
        id: ResourceId::new(),
        hash: "0".repeat(64),
        prefix: "rst_test".into(),
    }
}

fn user_schemas() -> roster_projections::schema::ResourceSchemas<'static> {
    roster_projections::schema::ResourceSchemas::user(
        &[],
        roster_events::UndeclaredExtensions::Refuse,
    )
}

fn group_schemas() -> roster_projections::schema::ResourceSchemas<'static> {
    roster_projections::schema::ResourceSchemas::group(
        &[],
        roster_events::UndeclaredExtensions::Refuse,
    )
}

/// A user document as the edge checks it.
pub fn user_doc(v: serde_json::Value) -> roster_projections::schema::Checked {
    user_schemas()
        .check(v.as_object().unwrap().clone())
        .unwrap()
}

/// A group document as the edge checks it.
pub fn group_doc(v: serde_json::Value) -> roster_projections::schema::Checked {
    group_schemas()
        .check(v.as_object().unwrap().clone())
        .unwrap()
}

/// Bootstraps the `default` directory with sources `a` (owned) and `b` (adopt).
pub async fn bootstrap(w: &Writer) {
    let admin = Context {
        actor: Actor::System,
        source: None,
        correlation_id: None,
        client: None,
    };
    w.execute(
        Command::Bootstrap {
            admin: token(),
            source_slug: "a".into(),
            source_token: token(),
        },
        admin.clone(),
    )
    .await
    .unwrap();
    w.execute(
        Command::CreateSource {
            slug: "b".into(),
            token: token(),
            ownership: roster_events::Ownership::Adopt,
            undeclared_extensions: roster_events::UndeclaredExtensions::Refuse,
        },
        admin,
    )
    .await
    .unwrap();
}

/// Runs `ops` through `w`, `concurrency` at a time. Refusals (409, 404, ...) are part of the
/// session; any other failure panics.
pub async fn drive(w: &Writer, ops: Vec<Op>, concurrency: usize) {
    drive_then(w, ops, concurrency, || async {}).await
}

/// As [`drive`], calling `after` once each group of `concurrency` operations is answered.
pub async fn drive_then<F, Fut>(w: &Writer, ops: Vec<Op>, concurrency: usize, mut after: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let users = Arc::new(Mutex::new(Vec::<ResourceId>::new()));
    let groups = Arc::new(Mutex::new(Vec::<ResourceId>::new()));
    let providers = Arc::new(Mutex::new(Vec::<ResourceId>::new()));
    for chunk in ops.chunks(concurrency) {
        let mut tasks = Vec::new();
        for op in chunk {
            let op = op.clone();
            let (w, users, groups) = (w.clone(), users.clone(), groups.clone());
            let providers = providers.clone();
            tasks.push(tokio::spawn(async move {
                    let u = users.lock().unwrap().clone();
                    let g = groups.lock().unwrap().clone();
                    let refs = |m: &[usize]| -> Vec<MemberRef> {
                        m.iter().map(|&i| {
                            let all: Vec<_> = u.iter().chain(g.iter()).copied().collect();
                            MemberRef { value: pick(&all, i).to_string(), kind: None }
                        }).collect()
                    };
                    if let Op::Provider { pick: p, action } = &op {
                        let known = providers.lock().unwrap().clone();
                        let config = |dry_run: bool| roster_events::ProviderConfig {
                            name: format!("p{}", p % 3),
                            base_url: "http://127.0.0.1:9/scim/v2".into(),
                            auth: roster_events::ProviderAuth::Bearer { token: roster_events::Sealed("v1:c2VhbGVk".into()) },
                            mode: roster_events::ProviderMode::Default,
                            scope: roster_events::ProviderScope {
                                group_filter: g.iter().take(1).copied().collect(),
                                ..Default::default()
                            },
                            full_sync_interval_secs: 3600,
                            concurrency: 4,
                            deactivate: dry_run,
                            dry_run,
                            enabled: false,
                            tls: Default::default(),
                            mappings: Vec::new(),
                        };
                        let id = pick(&known, *p);
                        let cmd = match action % 5 {
                            0 => Command::CreateProvider { id: ResourceId::new(), config: config(false) },
                            1 => Command::UpdateProvider { id, config: config(action % 2 == 0) },
                            2 => Command::RequestProvider { id, request: roster::domain::ProviderRequest::Sync },
                            3 => Command::RequestProvider { id, request: roster::domain::ProviderRequest::Replay { from: *action as u64 } },
                            _ => Command::DeleteProvider { id },
                        };
                        let admin = Context { actor: Actor::Admin("admin".into()), source: None, correlation_id: None, client: None };
                        match w.execute(cmd, admin).await {
                            Ok(Outcome::Provider(id)) => providers.lock().unwrap().push(id),
                            Ok(_) => {}
                            Err(roster::pipeline::WriteError::Domain(_)) => {}
                            Err(e) => panic!("write path failed: {e}"),
                        }
                        return;
                    }
                    let (cmd, source) = match &op {
                        Op::CreateUser { source, name } => (Command::CreateUser {
                            resource: user_doc(json!({
                                "userName": format!("User{name}"),
                                "active": true,
                                "externalId": format!("X{name}"),
                                "displayName": format!("User {name}"),
                                "emails": [{"value": format!("user{name}@Example.com"), "type": "work", "primary": true}],
                            })),
                            // Hashes are made at the edge; any string exercises the event.
                            password_hash: (name % 3 == 0).then(|| format!("$argon2id$v=19$m=19456,t=2,p=1$fake{name}")),
                        }, *source),
                        Op::ReplaceUser { source, pick: p, name, title } => (Command::ReplaceUser {
                            id: pick(&u, *p),
                            resource: user_doc(json!({
                                "userName": format!("user{name}"),
                                "title": title.to_string(),
                                "emails": [{"value": format!("u{name}@corp.example"), "type": "work"}, {"value": format!("{title}@home.example"), "type": "home"}],
                            })),
                            password_hash: None,
                            if_match: None,
                        }, *source),
                        Op::DeleteUser { source, pick: p } => (Command::DeleteUser { id: pick(&u, *p), if_match: None }, *source),
                        Op::CreateGroup { source, name, members } => (Command::CreateGroup {
                            resource: group_doc(json!({"displayName": format!("G{name}")})),
                            members: refs(members),
                        }, *source),
                        Op::ReplaceGroup { source, pick: p, name, members } => (Command::ReplaceGroup {
                            id: pick(&g, *p),
                            resource: group_doc(json!({"displayName": format!("g{name}"), "externalId": format!("n{name}")})),
                            members: refs(members),
                            if_match: None,
                        }, *source),
                        Op::DeleteGroup { source, pick: p } => (Command::DeleteGroup { id: pick(&g, *p), if_match: None }, *source),
                        Op::PatchUser { source, pick: p, title, active } => {
                            let body = json!({"Operations": [
                                {"op": "Replace", "path": "title", "value": title.to_string()},
                                {"op": "replace", "value": {"active": if *active { "True" } else { "False" }}}
                            ]});
                            let ops = roster::patch::parse_request(body.as_object().unwrap(), &user_schemas()).unwrap();
                            let patch = roster::domain::UserPatch { ops, evaluated: None };
                            (Command::PatchUser { id: pick(&u, *p), patch, password_hash: (title % 5 == 0).then(|| format!("hash{title}")), if_match: None }, *source)
                        }
                        Op::PatchGroupMembers { source, pick: p, add, remove } => {
                            let all: Vec<_> = u.iter().chain(g.iter()).copied().collect();
                            let mut list = Vec::new();
                            if !add.is_empty() {
                                let vals: Vec<_> = add.iter().map(|&i| json!({"value": pick(&all, i).to_string()})).collect();
                                list.push(json!({"op": "Add", "path": "members", "value": vals}));
                            }
                            for &i in remove {
                                list.push(json!({"op": "remove", "path": format!("members[value eq \"{}\"]", pick(&all, i))}));
                            }
                            if list.is_empty() {
                                list.push(json!({"op": "replace", "path": "displayName", "value": "renamed"}));
                            }
                            let ops = roster::patch::parse_request(json!({"Operations": list}).as_object().unwrap(), &group_schemas()).unwrap();
                            let (ops, members) = roster::patch::split_members(ops).unwrap();
                            let patch = roster::domain::GroupPatch { ops, members, evaluated: None };
                            (Command::PatchGroup { id: pick(&g, *p), patch, if_match: None }, *source)
                        }
                        Op::Provider { .. } => unreachable!("handled above"),
                    };
                    match w.execute(cmd, ctx(source)).await {
                        Ok(Outcome::User(id)) => users.lock().unwrap().push(id),
                        Ok(Outcome::Group(id)) => groups.lock().unwrap().push(id),
                        Ok(_) => {}
                        Err(roster::pipeline::WriteError::Domain(_)) => {}
                        Err(e) => panic!("write path failed: {e}"),
                    }
                }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        after().await;
    }
}
