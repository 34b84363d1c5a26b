//! The PostgreSQL store's in-process cache (users, memberships, userName lookups, sources):
//! at every step of a session its answers equal a memory replay of the log, on the process that
//! folds the writes and on a second process sharing the database that reads the log only every
//! other step (so it must never answer from what another process's write made stale).

mod common;

use common::session::{op, Op};
use proptest::prelude::*;
use roster::log::EventLog;
use roster::pipeline::Pipeline;
use roster_events::ResourceId;
use roster_projections::filter::parse;
use roster_projections::pg::{Folders, PgStore};
use roster_projections::{ListQuery, MemoryStore, ProjectionStore, Visibility};
use std::collections::BTreeSet;
use std::sync::Arc;

const DIR: &str = "default";

/// Folds into `store` what the log holds from `*next` on (a process's projector).
async fn follow(log: &dyn EventLog, store: &dyn ProjectionStore, next: &mut u64) {
    loop {
        let batch = log.read(0, *next, 500).await.unwrap();
        let Some(last) = batch.last() else { return };
        *next = last.position + 1;
        store.apply(batch).await.unwrap();
    }
}

fn user_name_eq(name: &str) -> ListQuery {
    ListQuery {
        filter: Some(parse(&format!("userName eq {}", serde_json::json!(name))).unwrap()),
        sort: None,
        declared: Vec::new(),
        start_index: 1,
        count: 100,
        count_up_to: None,
    }
}

/// Everything the cache answers, asked of `pg` and of the memory replay, twice (the second
/// time from the cache where it kept the first answer).
async fn same_answers(
    mem: &MemoryStore,
    pg: &PgStore,
    ids: &BTreeSet<ResourceId>,
    names: &BTreeSet<String>,
    what: &str,
) {
    let visibilities = [
        Visibility::All,
        Visibility::Owner("a"),
        Visibility::Owner("b"),
    ];
    for round in 0..2 {
        let what = format!("{what}, round {round}");
        for id in ids {
            assert_eq!(
                pg.user(DIR, *id).await.unwrap(),
                mem.user(DIR, *id).await.unwrap(),
                "user {id}, {what}"
            );
            for vis in visibilities {
                assert_eq!(
                    pg.groups_of(DIR, *id, vis).await.unwrap(),
                    mem.groups_of(DIR, *id, vis).await.unwrap(),
                    "groups of {id} as {vis:?}, {what}"
                );
            }
            let each: Vec<ResourceId> = ids.iter().copied().take(5).collect();
            assert_eq!(
                pg.groups_of_each(DIR, &each, Visibility::All)
                    .await
                    .unwrap(),
                mem.groups_of_each(DIR, &each, Visibility::All)
                    .await
                    .unwrap(),
                "groups of a page, {what}"
            );
        }
        for name in names {
            // userName compares case-insensitively: ask in another case than it was written.
            let q = user_name_eq(&name.to_uppercase());
            for vis in visibilities {
                let (a, b) = (
                    mem.list_users(DIR, vis, &q).await.unwrap(),
                    pg.list_users(DIR, vis, &q).await.unwrap(),
                );
                assert_eq!(
                    (a.total, &a.items),
                    (b.total, &b.items),
                    "{name} {vis:?}, {what}"
                );
            }
        }
        for slug in ["a", "b", "nobody"] {
            assert_eq!(
                pg.source(slug).await.unwrap(),
                mem.source(slug).await.unwrap(),
                "source {slug}, {what}"
            );
        }
    }
}

/// The two processes, the replay they are held to, and what was seen so far.
struct Session {
    log: Arc<dyn EventLog>,
    mem: MemoryStore,
    /// The process that writes (its projector folds and marks every entry; alone in folding,
    /// as with the file log, it knows how far the tables are).
    writer: Arc<PgStore>,
    /// One that only reads, and reads the log every other step (as a replica on Kafka: it
    /// asks PostgreSQL how far the tables are before it answers).
    reader: Arc<PgStore>,
    seen: tokio::sync::Mutex<Seen>,
}

/// Ids and names of every step so far (deleted, renamed), and how far each follower got.
#[derive(Default)]
struct Seen {
    ids: BTreeSet<ResourceId>,
    names: BTreeSet<String>,
    mem_next: u64,
    reader_next: u64,
    steps: u64,
}

impl Session {
    /// After a step of the session: both processes answer as the replay.
    async fn check(&self) {
        let mut seen = self.seen.lock().await;
        let seen = &mut *seen;
        follow(self.log.as_ref(), &self.mem, &mut seen.mem_next).await;
        let all = ListQuery {
            filter: None,
            ..user_name_eq("")
        };
        let users = self
            .mem
            .list_users(DIR, Visibility::All, &all)
            .await
            .unwrap();
        let groups = self
            .mem
            .list_groups(DIR, Visibility::All, &all)
            .await
            .unwrap();
        seen.ids.extend(users.items.iter().map(|u| u.id));
        seen.ids.extend(groups.items.iter().map(|g| g.id));
        seen.names
            .extend(users.items.iter().map(|u| u.user_name().to_owned()));
        let step = seen.steps;
        seen.steps += 1;
        let (mem, ids, names) = (&self.mem, &seen.ids, &seen.names);
        same_answers(
            mem,
            &self.writer,
            ids,
            names,
            &format!("writer, step {step}"),
        )
        .await;
        same_answers(
            mem,
            &self.reader,
            ids,
            names,
            &format!("reader, step {step}"),
        )
        .await;
        if step % 2 == 0 {
            follow(
                self.log.as_ref(),
                self.reader.as_ref(),
                &mut seen.reader_next,
            )
            .await;
            same_answers(mem, &self.reader, ids, names, "reader caught up").await;
        }
    }
}

fn run(ops: Vec<Op>, concurrency: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let url = common::fresh_database().await;
        let session = Arc::new(Session {
            log: common::segment_log(dir.path()),
            mem: MemoryStore::new(),
            writer: common::pg_store(&url).await,
            reader: Arc::new(
                PgStore::open(&roster_projections::pg::PgOptions {
                    folders: Folders::Several,
                    ..common::pg_options(&url)
                })
                .await
                .unwrap(),
            ),
            seen: Default::default(),
        });
        let mut pipeline = Pipeline::start(
            session.log.clone(),
            session.writer.clone(),
            None,
            common::test_key(),
        )
        .await
        .unwrap();
        let stopper = pipeline.stopper();
        let w = pipeline.writers.get(DIR).await.unwrap();
        common::session::bootstrap(&w).await;
        let step = {
            let session = session.clone();
            move || {
                let session = session.clone();
                async move { session.check().await }
            }
        };
        common::session::drive_then(&w, ops, concurrency, step).await;
        drop(w);
        stopper.stop().await;
        let writer = session.writer.cache_counts().unwrap();
        let reader = session.reader.cache_counts().unwrap();
        assert!(writer.hits > 0, "{writer:?}");
        assert!(reader.misses > 0, "{reader:?}");
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]
    #[test]
    fn cached_answers_equal_a_replay_on_the_writing_process_and_on_one_behind_it(
        ops in prop::collection::vec(op(), 1..40),
        concurrency in 1usize..4,
    ) {
        run(ops, concurrency);
    }
}

/// A user renamed, moved between groups and deleted by one process, while another process
/// that has not read those changes from the log yet keeps being asked about it.
#[test]
fn a_process_that_has_not_read_a_change_yet_never_answers_from_before_it() {
    let ops = vec![
        Op::CreateUser { source: 0, name: 1 },
        Op::CreateUser { source: 0, name: 2 },
        Op::CreateGroup {
            source: 0,
            name: 1,
            members: vec![0],
        },
        Op::CreateGroup {
            source: 1,
            name: 2,
            members: vec![2],
        },
        Op::PatchGroupMembers {
            source: 0,
            pick: 0,
            add: vec![1],
            remove: vec![0],
        },
        Op::ReplaceUser {
            source: 0,
            pick: 0,
            name: 3,
            title: 7,
        },
        Op::ReplaceUser {
            source: 0,
            pick: 1,
            name: 1,
            title: 8,
        },
        Op::ReplaceGroup {
            source: 0,
            pick: 0,
            name: 4,
            members: vec![1, 3],
        },
        Op::DeleteGroup { source: 1, pick: 1 },
        Op::DeleteUser { source: 0, pick: 0 },
        Op::CreateUser { source: 1, name: 3 },
    ];
    run(ops, 1);
}

/// Users created and then put in a group within one batch of the reading process's fold (it
/// folds two steps at a time): the memberships it keeps for a user its fold saw created are the
/// none a create leaves only when no group named the user in the same batch.
#[test]
fn a_user_created_and_put_in_a_group_in_one_batch_shows_the_group() {
    let ops = vec![
        Op::CreateUser { source: 0, name: 1 },
        Op::CreateUser { source: 0, name: 2 },
        // Members index users, then groups: the user of the step before.
        Op::CreateGroup {
            source: 0,
            name: 1,
            members: vec![1],
        },
        Op::CreateUser { source: 0, name: 3 },
        Op::PatchGroupMembers {
            source: 0,
            pick: 0,
            add: vec![2],
            remove: vec![],
        },
    ];
    run(ops, 1);
}

/// A server on PostgreSQL answers a second read of a user from its cache, and says so on
/// `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_counts_its_cache_hits_and_misses_on_metrics() {
    let url = common::fresh_database().await;
    let data = tempfile::tempdir().unwrap();
    let app = common::TestApp::spawn_with(common::pg_settings(data.path(), &url), data).await;
    let token = app.scim_token.clone();
    let (s, user) = app.create_user("default", &token, "cached").await;
    assert_eq!(s, 201, "{user}");
    let url = format!(
        "{}/Users/{}",
        app.scim("default"),
        user["id"].as_str().unwrap()
    );
    for _ in 0..2 {
        let (s, got) = app.get(&url, &token).await;
        assert_eq!((s, &got["userName"]), (200, &serde_json::json!("cached")));
    }
    let metrics = app.metrics().await;
    let count = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing from {metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(count("roster_pg_cache_hits_total") >= 1, "{metrics}");
    assert!(count("roster_pg_cache_misses_total") >= 1, "{metrics}");
}
