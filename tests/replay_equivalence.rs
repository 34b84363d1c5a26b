//! Property: random command sequences, run concurrently through the live write path (writer
//! batching, log append, projector), leave views that are byte-for-byte identical to a fresh
//! replay of the log.

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
        common::session::drive(&w, ops, concurrency).await;

        let fresh = Arc::new(MemoryStore::new());
        Pipeline::start(log.clone(), fresh.clone(), None, common::test_key())
            .await
            .unwrap();
        let (a, b) = (live.canonical_json(), fresh.canonical_json());
        assert_eq!(live.fold_errors(), 0);
        assert_eq!(fresh.fold_errors(), 0);
        assert!(a == b, "live views differ from a fresh replay");
        drop(w);
        stopper.stop().await;
    });
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
