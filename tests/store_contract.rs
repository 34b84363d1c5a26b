//! The projection-store contract, run against the memory store and PgStore.
//!
//! A random session of commands runs through the live write path (writers, log, projector)
//! with PgStore as its store. Then:
//! - PgStore's views equal, byte for byte, a memory store's fresh replay of the same log;
//! - every query (lookups, lists with filters, sorts and pages, as an admin and as each source,
//!   memberships, member names, sources, tokens) answers the same on both;
//! - redelivering the whole log, in batches that straddle what was applied, changes nothing;
//! - hostile filter values through every operator and attribute path give the same answers
//!   as memory and leave the schema untouched.

mod common;

use common::session::{op, Op};
use proptest::prelude::*;
use roster::log::EventLog;
use roster::pipeline::Pipeline;
use roster_projections::filter::{parse, parse_attr_path};
use roster_projections::{ListQuery, LogEntry, MemoryStore, ProjectionStore, SortBy, Visibility};
use std::sync::Arc;

const USER_PATHS: &[&str] = &[
    "userName",
    "displayName",
    "externalId",
    "id",
    "emails",
    "emails.value",
    "emails.type",
    "meta.created",
    "meta.lastModified",
    "meta.version",
    "title",
    "name.givenName",
    "urn:ietf:params:scim:schemas:core:2.0:User:userName",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
];

const GROUP_PATHS: &[&str] = &[
    "displayName",
    "externalId",
    "id",
    "members",
    "members.value",
    "members.type",
    "meta.lastModified",
    "n",
];

const OPS: &[&str] = &["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"];

/// Values that would break a query spliced into SQL text, and LIKE wildcards.
const HOSTILE: &[&str] = &[
    "x' OR '1'='1",
    "'; DROP TABLE users; --",
    "%",
    "_",
    "\\",
    "user%",
    "ünïcødé",
    "$1",
    "2026-01-01T00:00:00Z",
];

/// Filters over what the random session creates.
fn user_filters(ids: &[String], times: &[String]) -> Vec<String> {
    let mut f: Vec<String> = [
        r#"userName eq "User3""#,
        r#"userName eq "user3""#,
        r#"USERNAME Eq "USER3""#,
        r#"userName sw "us""#,
        r#"userName sw "ser""#,
        r#"userName ew "user""#,
        r#"emails.value sw "example""#,
        r#"emails.value sw "U1""#,
        r#"displayName sw "1""#,
        r#"externalId ew "X""#,
        r#"userName co "ER1""#,
        r#"userName ew "3""#,
        r#"userName gt "User5""#,
        r#"userName le "user2""#,
        r#"userName ne "User1""#,
        r#"externalId eq "X3""#,
        r#"externalId eq "x3""#,
        r#"externalId sw "X""#,
        r#"displayName eq "user 3""#,
        r#"displayName co " 1""#,
        r#"emails.value eq "user3@example.com""#,
        r#"emails[value eq "U3@CORP.EXAMPLE"]"#,
        r#"emails co "home""#,
        r#"emails.value ew ".example""#,
        r#"emails[type eq "work"]"#,
        r#"emails[type eq "work" and value co "corp"]"#,
        r#"title eq "3""#,
        "title pr",
        "not (title pr)",
        "active eq true",
        r#"userName eq "User1" or userName eq "User2""#,
        r#"userName sw "User" and not (title pr)"#,
        r#"(userName eq "x" or title co "1") and emails pr"#,
        r#"not (userName eq "User1")"#,
        r#"userName eq 3"#,
        r#"meta.lastModified gt "2000-01-01T00:00:00Z""#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for id in ids.iter().take(3) {
        f.push(format!(r#"id eq "{id}""#));
        f.push(format!(r#"id eq "{}""#, id.to_uppercase()));
        f.push(format!(r#"id ne "{id}""#));
        f.push(format!(r#"id gt "{id}""#));
    }
    for t in times.iter().take(3) {
        f.push(format!(r#"meta.lastModified ge "{t}""#));
        f.push(format!(r#"meta.created lt "{t}""#));
        f.push(format!(r#"meta.lastModified eq "{t}""#));
    }
    f
}

fn group_filters(member_ids: &[String]) -> Vec<String> {
    let mut f: Vec<String> = [
        r#"displayName eq "G1""#,
        r#"displayName eq "g1""#,
        r#"displayName sw "g""#,
        r#"displayName sw "1""#,
        r#"displayName ew "1""#,
        r#"displayName co "1""#,
        r#"displayName ne "G2""#,
        "externalId pr",
        r#"members[type eq "User"]"#,
        "members pr",
        r#"n eq 3"#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for id in member_ids.iter().take(4) {
        f.push(format!(r#"members[value eq "{id}"]"#));
        f.push(format!(r#"members eq "{id}""#));
        f.push(format!(r#"members.value eq "{}""#, id.to_uppercase()));
        f.push(format!(r#"members.value ne "{id}""#));
        f.push(format!(
            r#"displayName sw "G" and members[value eq "{id}"]"#
        ));
    }
    f
}

fn hostile_filters(paths: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for path in paths {
        for op in OPS {
            for v in HOSTILE {
                out.push(format!("{path} {op} {}", serde_json::to_string(v).unwrap()));
            }
        }
    }
    out
}

/// Every filter in `filters` (and, with `pages`, its first match alone), every sort.
fn queries(filters: &[String], sorts: &[&str], pages: bool) -> Vec<ListQuery> {
    let mut out = Vec::new();
    let base = ListQuery {
        filter: None,
        sort: None,
        declared: Vec::new(),
        start_index: 1,
        count: 1000,
        count_up_to: None,
    };
    out.push(base.clone());
    out.push(ListQuery {
        start_index: 3,
        count: 2,
        ..base.clone()
    });
    out.push(ListQuery {
        count: 0,
        ..base.clone()
    });
    for f in filters {
        let filter = parse(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        out.push(ListQuery {
            filter: Some(filter.clone()),
            ..base.clone()
        });
        // The first match alone: a count bounded at one may stop the walk at the second.
        if pages {
            out.push(ListQuery {
                filter: Some(filter),
                count: 1,
                ..base.clone()
            });
        }
    }
    for s in sorts {
        for descending in [false, true] {
            for (start_index, count) in [(1, 1000), (2, 3)] {
                out.push(ListQuery {
                    sort: Some(SortBy {
                        path: parse_attr_path(s).unwrap(),
                        descending,
                    }),
                    start_index,
                    count,
                    ..base.clone()
                });
            }
        }
        out.push(ListQuery {
            filter: Some(parse(r#"userName sw "u" or displayName sw "g""#).unwrap()),
            sort: Some(SortBy {
                path: parse_attr_path(s).unwrap(),
                descending: true,
            }),
            ..base.clone()
        });
    }
    out
}

/// Asserts that both stores answer every query the same.
async fn same_answers(mem: &dyn ProjectionStore, pg: &dyn ProjectionStore, hostile: bool) {
    let dir = "default";
    let snap = mem.snapshot(dir, 0).await.unwrap();
    let all = ListQuery {
        filter: None,
        sort: None,
        declared: Vec::new(),
        start_index: 1,
        count: 100_000,
        count_up_to: None,
    };
    let users = mem.list_users(dir, Visibility::All, &all).await.unwrap();
    let groups = mem.list_groups(dir, Visibility::All, &all).await.unwrap();
    let user_ids: Vec<String> = users.items.iter().map(|u| u.id.to_string()).collect();
    let times: Vec<String> = users
        .items
        .iter()
        .map(|u| {
            u.last_modified
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        })
        .collect();
    let mut member_ids: Vec<String> = groups
        .items
        .iter()
        .flat_map(|g| g.members.iter().map(|m| m.value.to_string()))
        .collect();
    member_ids.sort();
    member_ids.dedup();

    let mut user_f = user_filters(&user_ids, &times);
    let mut group_f = group_filters(&member_ids);
    if hostile {
        user_f.extend(hostile_filters(USER_PATHS));
        group_f.extend(hostile_filters(GROUP_PATHS));
    }
    let user_sorts = [
        "userName",
        "externalId",
        "id",
        "meta.created",
        "meta.lastModified",
        "title",
        "emails",
        "displayName",
    ];
    let group_sorts = ["displayName", "externalId", "id", "meta.lastModified", "n"];
    for vis in [
        Visibility::All,
        Visibility::Owner("a"),
        Visibility::Owner("b"),
    ] {
        for q in queries(&user_f, &user_sorts, !hostile) {
            let a = mem.list_users(dir, vis, &q).await.unwrap();
            let b = pg.list_users(dir, vis, &q).await.unwrap();
            let what = format!(
                "users {vis:?} {:?} {:?}",
                q.filter.as_ref().map(|f| f.to_string()),
                q.sort
            );
            assert_eq!(a.total, b.total, "{what}");
            assert_eq!(a.items, b.items, "{what}");
            if !hostile {
                // Counted up to one: a total of two says "more than one"; the page is the same.
                let bounded = ListQuery {
                    count_up_to: Some(1),
                    ..q
                };
                for page in [
                    mem.list_users(dir, vis, &bounded).await.unwrap(),
                    pg.list_users(dir, vis, &bounded).await.unwrap(),
                ] {
                    assert_eq!(page.total, a.total.min(2), "{what}, counted up to one");
                    assert_eq!(page.items, a.items, "{what}, counted up to one");
                }
            }
        }
        for q in queries(&group_f, &group_sorts, !hostile) {
            let a = mem.list_groups(dir, vis, &q).await.unwrap();
            let b = pg.list_groups(dir, vis, &q).await.unwrap();
            let what = format!(
                "groups {vis:?} {:?} {:?}",
                q.filter.as_ref().map(|f| f.to_string()),
                q.sort
            );
            assert_eq!(a.total, b.total, "{what}");
            assert_eq!(a.items, b.items, "{what}");
            if !hostile {
                // Counted up to one: a total of two says "more than one"; the page is the same.
                let bounded = ListQuery {
                    count_up_to: Some(1),
                    ..q
                };
                for page in [
                    mem.list_groups(dir, vis, &bounded).await.unwrap(),
                    pg.list_groups(dir, vis, &bounded).await.unwrap(),
                ] {
                    assert_eq!(page.total, a.total.min(2), "{what}, counted up to one");
                    assert_eq!(page.items, a.items, "{what}, counted up to one");
                }
            }
        }
        // A scan by key, a few at a time, gives every object the list gives, in its order.
        let listed = mem.list_users(dir, vis, &all).await.unwrap().items;
        for store in [mem, pg] {
            let (mut scanned, mut after) = (Vec::new(), None);
            loop {
                let page = store.users_after(dir, vis, after, 3).await.unwrap();
                after = page.last().map(|u| u.id);
                let done = page.len() < 3;
                scanned.extend(page);
                if done {
                    break;
                }
            }
            assert_eq!(scanned, listed, "users scanned by key, {vis:?}");
        }
        let listed = mem.list_groups(dir, vis, &all).await.unwrap().items;
        for store in [mem, pg] {
            let (mut scanned, mut after) = (Vec::new(), None);
            loop {
                let page = store.groups_after(dir, vis, after, 3).await.unwrap();
                after = page.last().map(|g| g.id);
                let done = page.len() < 3;
                scanned.extend(page);
                if done {
                    break;
                }
            }
            assert_eq!(scanned, listed, "groups scanned by key, {vis:?}");
        }
        for u in &users.items {
            assert_eq!(
                mem.groups_of(dir, u.id, vis).await.unwrap(),
                pg.groups_of(dir, u.id, vis).await.unwrap()
            );
        }
        for g in &groups.items {
            assert_eq!(
                mem.groups_of(dir, g.id, vis).await.unwrap(),
                pg.groups_of(dir, g.id, vis).await.unwrap()
            );
        }
        // Every member's memberships at once (a page), with an unknown id among them.
        let mut everyone: Vec<_> = users.items.iter().map(|u| u.id).collect();
        everyone.extend(groups.items.iter().map(|g| g.id));
        everyone.insert(everyone.len() / 2, roster_events::ResourceId::new());
        let each = pg.groups_of_each(dir, &everyone, vis).await.unwrap();
        assert_eq!(each.len(), everyone.len());
        for (id, got) in everyone.iter().zip(each) {
            assert_eq!(mem.groups_of(dir, *id, vis).await.unwrap(), got, "{id}");
        }
    }
    for u in &users.items {
        assert_eq!(
            mem.user(dir, u.id).await.unwrap(),
            pg.user(dir, u.id).await.unwrap()
        );
    }
    for g in &groups.items {
        assert_eq!(
            mem.group(dir, g.id).await.unwrap(),
            pg.group(dir, g.id).await.unwrap()
        );
        let members: Vec<_> = g.members.iter().copied().collect();
        assert_eq!(
            mem.member_displays(dir, &members, Visibility::All)
                .await
                .unwrap(),
            pg.member_displays(dir, &members, Visibility::All)
                .await
                .unwrap()
        );
    }
    let ghost = roster_events::ResourceId::new();
    assert_eq!(pg.user(dir, ghost).await.unwrap(), None);
    assert_eq!(pg.user("nowhere", ghost).await.unwrap(), None);
    assert_eq!(mem.sources().await.unwrap(), pg.sources().await.unwrap());
    assert_eq!(
        mem.providers().await.unwrap(),
        pg.providers().await.unwrap()
    );
    for slug in ["a", "b", "zz"] {
        assert_eq!(
            mem.source(slug).await.unwrap(),
            pg.source(slug).await.unwrap()
        );
    }
    assert_eq!(
        mem.admin_tokens().await.unwrap(),
        pg.admin_tokens().await.unwrap()
    );
    assert_eq!(
        mem.directories().await.unwrap(),
        pg.directories().await.unwrap()
    );
    assert_eq!(
        mem.next_position(0).await.unwrap(),
        pg.next_position(0).await.unwrap()
    );
    let pg_snap = pg.snapshot(dir, 0).await.unwrap();
    assert_eq!(snap.head, pg_snap.head);
    assert_eq!(snap.next_position, pg_snap.next_position);
}

/// Asserts that both stores name the same users and groups as deleted, exactly those the log
/// deletes (every record of a one-writer session is valid); returns them.
async fn same_retired(
    mem: &dyn ProjectionStore,
    pg: &dyn ProjectionStore,
    entries: &[LogEntry],
) -> std::collections::HashSet<roster_events::ResourceId> {
    let events = || entries.iter().flat_map(|e| e.record.events.iter());
    let ids: Vec<_> = events().map(|e| e.resource_id).collect();
    let deleted: std::collections::HashSet<_> = events()
        .filter(|e| e.event.retires())
        .map(|e| e.resource_id)
        .collect();
    let from_mem = mem.retired("default", &ids).await.unwrap();
    assert_eq!(from_mem, deleted);
    assert_eq!(pg.retired("default", &ids).await.unwrap(), from_mem);
    from_mem
}

async fn all_entries(log: &dyn EventLog) -> Vec<LogEntry> {
    let mut out = Vec::new();
    loop {
        let batch = log.read(0, out.len() as u64, 1000).await.unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

async fn tables(url: &str) -> Vec<String> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn run(ops: Vec<Op>, concurrency: usize, hostile: bool) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let log = common::segment_log(dir.path());
        let url = common::fresh_database().await;
        let pg = common::pg_store(&url).await;
        let mut pipeline = Pipeline::start(log.clone(), pg.clone(), None, common::test_key())
            .await
            .unwrap();
        let stopper = pipeline.stopper();
        let w = pipeline.writers.get("default").await.unwrap();
        common::session::bootstrap(&w).await;
        common::session::drive(&w, ops, concurrency).await;
        drop(w);
        // A directory created and deleted, one deleted and created again, one kept.
        let admin = roster::domain::Context {
            actor: roster_events::Actor::System,
            source: None,
            correlation_id: None,
            client: None,
        };
        for (name, steps) in [("gone", 2), ("back", 3), ("kept", 1)] {
            let w = pipeline.writers.get(name).await.unwrap();
            for step in 0..steps {
                let cmd = if step % 2 == 0 {
                    roster::domain::Command::CreateDirectory
                } else {
                    roster::domain::Command::DeleteDirectory
                };
                w.execute(cmd, admin.clone()).await.unwrap();
            }
        }
        assert_eq!(
            pg.directories().await.unwrap(),
            ["back", "default", "kept"],
            "a deleted directory is not listed"
        );
        stopper.stop().await;

        let mem = Arc::new(MemoryStore::new());
        Pipeline::start(log.clone(), mem.clone(), None, common::test_key())
            .await
            .unwrap();
        assert_eq!(pg.fold_errors(), 0);
        let expected = common::canonical(mem.as_ref()).await;
        assert!(
            common::canonical(pg.as_ref()).await == expected,
            "PostgreSQL views differ from a memory replay"
        );
        let schema = tables(&url).await;
        same_answers(mem.as_ref(), pg.as_ref(), hostile).await;
        assert_eq!(tables(&url).await, schema, "the schema changed");

        // Redelivery: everything again, in batches that start inside what was applied.
        let entries = all_entries(log.as_ref()).await;
        let retired = same_retired(mem.as_ref(), pg.as_ref(), &entries).await;
        for chunk in entries.chunks(7) {
            pg.apply(chunk.to_vec()).await.unwrap();
        }
        pg.apply(entries.clone()).await.unwrap();
        assert!(
            common::canonical(pg.as_ref()).await == expected,
            "redelivery changed the views"
        );

        // A fresh PostgreSQL replay of the same log, in other batch sizes, is identical too.
        let fresh = common::pg_store(&common::fresh_database().await).await;
        for chunk in entries.chunks(5) {
            fresh.apply(chunk.to_vec()).await.unwrap();
        }
        assert!(common::canonical(fresh.as_ref()).await == expected);

        // A rebuild (fold in memory, bulk load, swap) after an interrupted one: the same
        // views, the same answers, the indexes in place and nothing left over.
        let options = roster_projections::pg::PgOptions {
            url: url.clone(),
            pool_size: 4,
            timeout: std::time::Duration::from_secs(5),
            tls: Default::default(),
            cache_bytes: 0,
            folders: Default::default(),
        };
        let interrupted = roster_projections::pg::PgStore::building(&options)
            .await
            .unwrap();
        drop(interrupted);
        let progress = roster::rebuild::Rebuilds::default();
        // The interrupted rebuild's lock goes with its session, which PostgreSQL ends once it
        // sees the dropped connection close: until then a rebuild is refused as a conflict.
        let mut tries = 0;
        let generation = loop {
            match roster::rebuild::rebuild(log.clone(), &options, &progress).await {
                Ok(g) => break g,
                Err(e)
                    if tries < 50
                        && matches!(
                            e.downcast_ref::<roster_projections::StoreError>(),
                            Some(roster_projections::StoreError::Conflict(_))
                        ) =>
                {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{e:#}"),
            }
        };
        assert_eq!(generation, 3);
        assert!(
            common::canonical(pg.as_ref()).await == expected,
            "a bulk-loaded rebuild differs from a memory replay"
        );
        same_answers(mem.as_ref(), pg.as_ref(), hostile).await;
        assert_eq!(
            same_retired(mem.as_ref(), pg.as_ref(), &entries).await,
            retired
        );
        common::assert_generation_indexes(&url, 3).await;
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]
    #[test]
    fn postgres_views_and_answers_equal_the_memory_store(
        ops in prop::collection::vec(op(), 1..60),
        concurrency in 1usize..8,
    ) {
        run(ops, concurrency, false);
    }
}

#[test]
fn hostile_filters_through_every_operator_and_path_answer_as_memory_and_leave_the_schema() {
    let ops: Vec<Op> = (0..12)
        .map(|name| Op::CreateUser {
            source: name % 2,
            name,
        })
        .chain((0..4).map(|name| Op::CreateGroup {
            source: 0,
            name,
            members: vec![name, name + 1],
        }))
        .collect();
    run(ops, 3, true);
}
