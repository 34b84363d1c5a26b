//! The event-log contract: every `EventLog` implementation must pass these, run here against
//! the embedded file log.

mod common;

use common::record;
use roster::log::{EventLog, FileLog, FileLogOptions};
use std::sync::Arc;
use std::time::Duration;

async fn appends_get_dense_positions_in_order(log: &dyn EventLog) {
    let start = *log.end().borrow();
    let a = log
        .append(vec![record("d", 0, "a", 1), record("d", 1, "b", 2)])
        .await
        .unwrap();
    let b = log.append(vec![record("d", 2, "c", 1)]).await.unwrap();
    assert_eq!(a, vec![start, start + 1]);
    assert_eq!(b, vec![start + 2]);
    assert_eq!(*log.end().borrow(), start + 3);
    let read = log.read(start, 10).await.unwrap();
    let tags: Vec<_> = read
        .iter()
        .map(|e| e.record.events[0].correlation_id.clone().unwrap())
        .collect();
    assert_eq!(tags, ["a", "b", "c"]);
    assert_eq!(read[1].record.events.len(), 2);
    assert!(read
        .iter()
        .enumerate()
        .all(|(i, e)| e.position == start + i as u64));
}

async fn reads_start_anywhere_and_respect_max(log: &dyn EventLog) {
    let start = *log.end().borrow();
    let recs: Vec<_> = (0..50)
        .map(|i| record("d", i, &format!("r{i}"), 1))
        .collect();
    log.append(recs.clone()).await.unwrap();
    for from in [start, start + 7, start + 49] {
        let got = log.read(from, 5).await.unwrap();
        let want = (50 - (from - start) as usize).min(5);
        assert_eq!(got.len(), want);
        assert_eq!(*got[0].record, recs[(from - start) as usize]);
    }
    assert!(log.read(start + 50, 5).await.unwrap().is_empty());
    assert!(log.read(start + 1000, 5).await.unwrap().is_empty());
}

async fn followers_wake_when_records_arrive(log: Arc<dyn EventLog>) {
    let mut end = log.end();
    let at = *end.borrow_and_update();
    let writer = log.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        writer
            .append(vec![record("d", 0, "late", 1)])
            .await
            .unwrap();
    });
    tokio::time::timeout(Duration::from_secs(5), end.wait_for(|&e| e > at))
        .await
        .unwrap()
        .unwrap();
    let got = log.read(at, 10).await.unwrap();
    assert_eq!(
        got[0].record.events[0].correlation_id.as_deref(),
        Some("late")
    );
}

async fn concurrent_appends_all_land_once(log: Arc<dyn EventLog>) {
    let start = *log.end().borrow();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut positions = Vec::new();
            for i in 0..20 {
                positions.extend(
                    log.append(vec![record("d", 0, &format!("t{t}-{i}"), 1)])
                        .await
                        .unwrap(),
                );
            }
            positions
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (start..start + 320).collect::<Vec<_>>());
    let read = log.read(start, 1000).await.unwrap();
    assert_eq!(read.len(), 320);
    let mut tags: Vec<_> = read
        .iter()
        .map(|e| e.record.events[0].correlation_id.clone().unwrap())
        .collect();
    tags.sort();
    tags.dedup();
    assert_eq!(tags.len(), 320);
}

async fn run_contract(log: Arc<dyn EventLog>) {
    appends_get_dense_positions_in_order(log.as_ref()).await;
    reads_start_anywhere_and_respect_max(log.as_ref()).await;
    followers_wake_when_records_arrive(log.clone()).await;
    concurrent_appends_all_land_once(log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_log_passes_the_log_contract() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path(), FileLogOptions::default()).unwrap();
    run_contract(Arc::new(log)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_log_passes_the_log_contract_with_tiny_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path(), FileLogOptions { segment_bytes: 700 }).unwrap();
    run_contract(Arc::new(log)).await;
    let segments = std::fs::read_dir(dir.path()).unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".log")
    });
    assert!(
        segments.count() > 10,
        "tiny segments should have rolled many times"
    );
}

#[tokio::test]
async fn file_log_keeps_everything_across_reopen_and_reads_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let opts = FileLogOptions { segment_bytes: 500 };
    let recs: Vec<_> = (0..3000)
        .map(|i| record("d", i, &format!("r{i}"), 1))
        .collect();
    {
        let log = FileLog::open(dir.path(), opts.clone()).unwrap();
        for chunk in recs.chunks(100) {
            log.append(chunk.to_vec()).await.unwrap();
        }
    }
    let log = FileLog::open(dir.path(), opts).unwrap();
    assert_eq!(*log.end().borrow(), 3000);
    for from in [0u64, 1023, 1024, 1025, 2047, 2999] {
        let got = log.read(from, 3).await.unwrap();
        assert_eq!(*got[0].record, recs[from as usize], "from {from}");
        assert_eq!(got[0].position, from);
    }
    let all = log.read(0, 10_000).await.unwrap();
    assert_eq!(all.len(), 3000);
    assert!(all.iter().zip(&recs).all(|(e, r)| *e.record == *r));
}

#[tokio::test]
async fn a_second_process_cannot_open_a_log_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let _first = FileLog::open(dir.path(), FileLogOptions::default()).unwrap();
    let second = FileLog::open(dir.path(), FileLogOptions::default());
    assert!(second.is_err());
}

#[tokio::test]
async fn closing_releases_the_directory_even_while_references_remain() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(FileLog::open(dir.path(), FileLogOptions::default()).unwrap());
    log.append(vec![record("d", 0, "kept", 1)]).await.unwrap();
    let lingering = log.clone();
    log.close().await;
    assert!(lingering
        .append(vec![record("d", 1, "late", 1)])
        .await
        .is_err());
    let reopened = FileLog::open(dir.path(), FileLogOptions::default()).unwrap();
    assert_eq!(*reopened.end().borrow(), 1);
}
