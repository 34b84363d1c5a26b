//! Property: random command sequences, run concurrently through the live write path (writer
//! batching, log append, projector), leave views that are byte-for-byte identical to a fresh
//! replay of the log; and so does a store read back from an image of the views taken halfway
//! (a view snapshot) once it has folded the rest of the log, indexes included.

mod common;

use common::session::{op, Op};
use proptest::prelude::*;
use roster::log::{EventLog, FileLog, FileLogOptions};
use roster::pipeline::Pipeline;
use roster_projections::{MemoryStore, ProjectionStore};
use std::sync::Arc;

fn run(ops: Vec<Op>, concurrency: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let log: Arc<dyn EventLog> = common::opening(Arc::new(
            FileLog::open(
                dir.path(),
                FileLogOptions {
                    segment_bytes: 4096,
                },
            )
            .unwrap(),
        ));
        let live = Arc::new(MemoryStore::new());
        let store: Arc<dyn ProjectionStore> = live.clone();
        let mut pipeline = Pipeline::start(log.clone(), store, None, common::test_key())
            .await
            .unwrap();
        let stopper = pipeline.stopper();
        let w = pipeline.writers.get("default").await.unwrap();
        common::session::bootstrap(&w).await;
        let mut ops = ops;
        let rest = ops.split_off(ops.len() / 2);
        common::session::drive(&w, ops, concurrency).await;
        let mut image = Vec::new();
        live.image().write_to(&mut image).unwrap();
        common::session::drive(&w, rest, concurrency).await;

        let fresh = Arc::new(MemoryStore::new());
        Pipeline::start(log.clone(), fresh.clone(), None, common::test_key())
            .await
            .unwrap();
        let (a, b) = (live.canonical_json(), fresh.canonical_json());
        assert_eq!(live.fold_errors(), 0);
        assert_eq!(fresh.fold_errors(), 0);
        assert!(a == b, "live views differ from a fresh replay");

        let (restored, info) = MemoryStore::read_image(&image[..]).unwrap();
        let restored = Arc::new(restored);
        assert_eq!(restored.next_positions(), info.next_positions);
        let from = info.next_positions[0];
        let tail = log.read(0, from, 1 << 20).await.unwrap();
        restored.apply(tail).await.unwrap();
        assert!(
            restored.canonical_json() == b,
            "an image plus the rest of the log differs from a fresh replay"
        );
        assert_eq!(
            restored.chain_head("default").await.unwrap(),
            fresh.chain_head("default").await.unwrap()
        );
        assert_eq!(restored.fold_errors(), 0);
        same_lookups(fresh.as_ref(), restored.as_ref()).await;
        drop(w);
        stopper.stop().await;
    });
}

/// Every user and group is found through the indexes of `b` as through those of `a`: by
/// userName, displayName and externalId (equality filters answer from the indexes), and every
/// user's groups through the membership index.
async fn same_lookups(a: &MemoryStore, b: &MemoryStore) {
    use roster_projections::filter::parse;
    use roster_projections::{ListQuery, Visibility};
    let query = |f: Option<String>| ListQuery {
        filter: f.map(|f| parse(&f).unwrap_or_else(|e| panic!("{f}: {e}"))),
        sort: None,
        declared: Vec::new(),
        start_index: 1,
        count: 1000,
        count_up_to: None,
    };
    let quote = |v: &str| serde_json::to_string(v).unwrap();
    let all = a
        .list_users("default", Visibility::All, &query(None))
        .await
        .unwrap();
    let mut filters = Vec::new();
    for u in &all.items {
        filters.push((true, format!("userName eq {}", quote(u.user_name()))));
        if let Some(x) = u.external_id() {
            filters.push((true, format!("externalId eq {}", quote(x))));
        }
        filters.push((false, format!(r#"members[value eq "{}"]"#, u.id.0)));
    }
    let groups = a
        .list_groups("default", Visibility::All, &query(None))
        .await
        .unwrap();
    for g in &groups.items {
        filters.push((false, format!("displayName eq {}", quote(g.display_name()))));
        if let Some(x) = g.external_id() {
            filters.push((false, format!("externalId eq {}", quote(x))));
        }
    }
    for (users, f) in filters {
        let q = query(Some(f.clone()));
        let (x, y): (Vec<_>, Vec<_>) = if users {
            let x = a.list_users("default", Visibility::All, &q).await.unwrap();
            let y = b.list_users("default", Visibility::All, &q).await.unwrap();
            (
                x.items.iter().map(|u| u.id).collect(),
                y.items.iter().map(|u| u.id).collect(),
            )
        } else {
            let x = a.list_groups("default", Visibility::All, &q).await.unwrap();
            let y = b.list_groups("default", Visibility::All, &q).await.unwrap();
            (
                x.items.iter().map(|g| g.id).collect(),
                y.items.iter().map(|g| g.id).collect(),
            )
        };
        assert_eq!(x, y, "{f}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn live_views_equal_a_fresh_replay_byte_for_byte(
        ops in prop::collection::vec(op(), 1..80),
        concurrency in 1usize..12,
    ) {
        run(ops, concurrency);
    }
}
