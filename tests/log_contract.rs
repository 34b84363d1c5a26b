//! The event-log contract: every `EventLog` implementation must pass these. Run here against
//! the embedded file log, against Kafka through librdkafka's in-process mock cluster, and
//! against tansu, a separate Kafka-compatible broker that `scripts/test.sh` starts on loopback.

mod common;

use common::{kafka_log, mock_cluster, record, tansu_brokers, unique_topic};
use roster::log::{EventLog, FileLog, FileLogOptions, KafkaLog, KafkaOptions};
use roster_events::partition_of;
use std::sync::Arc;
use std::time::Duration;

/// Reads `partition` from `from` until `n` entries arrived (a networked log may hand them
/// over in several batches).
async fn read_n(
    log: &dyn EventLog,
    partition: u32,
    from: u64,
    n: usize,
) -> Vec<roster_projections::LogEntry> {
    gather(from, n, |at, max| log.read(partition, at, max)).await
}

/// Calls `read(at, max)` from `from` on until `n` items arrived.
async fn gather<T, Fut>(from: u64, n: usize, read: impl Fn(u64, usize) -> Fut) -> Vec<T>
where
    Fut: std::future::Future<Output = Result<Vec<T>, roster::log::LogError>>,
{
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while out.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} items arrived",
            out.len()
        );
        out.extend(read(from + out.len() as u64, n - out.len()).await.unwrap());
    }
    out
}

async fn appends_get_dense_positions_in_order(log: &dyn EventLog) {
    let p = log.partition("d");
    let start = *log.end(p).borrow();
    let a = log
        .append(vec![record("d", 0, "a", 1), record("d", 1, "b", 2)])
        .await
        .unwrap();
    let b = log.append(vec![record("d", 2, "c", 1)]).await.unwrap();
    assert_eq!(a, vec![start, start + 1]);
    assert_eq!(b, vec![start + 2]);
    assert_eq!(*log.end(p).borrow(), start + 3);
    let read = read_n(log, p, start, 3).await;
    let tags: Vec<_> = read
        .iter()
        .map(|e| e.record.events[0].correlation_id.clone().unwrap())
        .collect();
    assert_eq!(tags, ["a", "b", "c"]);
    assert_eq!(read[1].record.events.len(), 2);
    assert!(read
        .iter()
        .enumerate()
        .all(|(i, e)| e.position == start + i as u64 && e.partition == p));
}

async fn reads_start_anywhere_and_respect_max(log: &dyn EventLog) {
    let p = log.partition("d");
    let start = *log.end(p).borrow();
    let recs: Vec<_> = (0..50)
        .map(|i| record("d", i, &format!("r{i}"), 1))
        .collect();
    log.append(recs.clone()).await.unwrap();
    for from in [start, start + 7, start + 49] {
        let want = (50 - (from - start) as usize).min(5);
        let got = read_n(log, p, from, want).await;
        assert_eq!(got.len(), want);
        assert_eq!(*got[0].record, recs[(from - start) as usize]);
        assert!(log.read(p, from, 5).await.unwrap().len() <= 5);
    }
    assert!(log.read(p, start + 50, 5).await.unwrap().is_empty());
    assert!(log.read(p, start + 1000, 5).await.unwrap().is_empty());
    // After a read past the end, reading where the records are works again.
    assert_eq!(read_n(log, p, start + 10, 1).await[0].position, start + 10);
}

/// Headers read without the events are the records' own, with the same digests, for
/// sealed records (the writer's shape) and records as `append` encodes them.
async fn headers_are_the_records_headers_with_their_digests(log: &dyn EventLog) {
    let p = log.partition("h");
    let start = *log.end(p).borrow();
    let key = roster_events::chain::ChainKey::derive(b"a key for the header contract");
    let mut sealed = record("h", 1, "sealed", 2);
    sealed.prev_digest = Some("0f".repeat(32));
    log.append(vec![record("h", 0, "plain", 1)]).await.unwrap();
    log.append_encoded(vec![key.seal(sealed)]).await.unwrap();
    let full = read_n(log, p, start, 2).await;
    let headers = gather(start, 2, |at, max| log.read_headers(p, at, max)).await;
    for (e, h) in full.iter().zip(&headers) {
        assert_eq!(h.position, e.position);
        assert_eq!(h.header, e.record.header());
        assert_eq!(h.digest, e.digest);
    }
    assert!(headers[1].header.mac.is_some());
}

/// Records read without their digests are the records `read` gives, at the same positions.
async fn records_read_without_digests_are_the_records(log: &dyn EventLog) {
    let p = log.partition("r");
    let start = *log.end(p).borrow();
    let recs: Vec<_> = (0..20)
        .map(|i| record("r", i, &format!("w{i}"), 1 + (i % 3) as usize))
        .collect();
    log.append(recs.clone()).await.unwrap();
    let full = read_n(log, p, start, 20).await;
    let records = gather(start, 20, |at, max| log.read_records(p, at, max)).await;
    for ((e, r), want) in full.iter().zip(&records).zip(&recs) {
        assert_eq!((r.partition, r.position), (e.partition, e.position));
        assert_eq!(*r.record, *want);
    }
    assert!(log.read_records(p, start + 20, 5).await.unwrap().is_empty());
}

async fn followers_wake_when_records_arrive(log: Arc<dyn EventLog>) {
    let p = log.partition("d");
    let mut end = log.end(p);
    let at = *end.borrow_and_update();
    let writer = log.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        writer
            .append(vec![record("d", 0, "late", 1)])
            .await
            .unwrap();
    });
    tokio::time::timeout(Duration::from_secs(10), end.wait_for(|&e| e > at))
        .await
        .unwrap()
        .unwrap();
    let got = read_n(log.as_ref(), p, at, 1).await;
    assert_eq!(
        got[0].record.events[0].correlation_id.as_deref(),
        Some("late")
    );
}

async fn concurrent_appends_all_land_once(log: Arc<dyn EventLog>) {
    let p = log.partition("d");
    let start = *log.end(p).borrow();
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
    let read = read_n(log.as_ref(), p, start, 320).await;
    assert_eq!(read.len(), 320);
    let mut tags: Vec<_> = read
        .iter()
        .map(|e| e.record.events[0].correlation_id.clone().unwrap())
        .collect();
    tags.sort();
    tags.dedup();
    assert_eq!(tags.len(), 320);
}

async fn directories_live_in_the_partition_of_their_hash(log: &dyn EventLog) {
    let n = log.partitions();
    for i in 0..8 {
        let dir = format!("dir-{i}");
        let p = log.partition(&dir);
        assert_eq!(p, partition_of(&dir, n));
        let start = *log.end(p).borrow();
        let at = log.append(vec![record(&dir, 0, &dir, 1)]).await.unwrap();
        assert_eq!(at, vec![start]);
        let got = read_n(log, p, start, 1).await;
        assert_eq!(got[0].record.directory, dir);
    }
}

async fn run_contract(log: Arc<dyn EventLog>) {
    appends_get_dense_positions_in_order(log.as_ref()).await;
    reads_start_anywhere_and_respect_max(log.as_ref()).await;
    headers_are_the_records_headers_with_their_digests(log.as_ref()).await;
    records_read_without_digests_are_the_records(log.as_ref()).await;
    followers_wake_when_records_arrive(log.clone()).await;
    concurrent_appends_all_land_once(log.clone()).await;
    directories_live_in_the_partition_of_their_hash(log.as_ref()).await;
    log.close().await;
    assert!(log.append(vec![record("d", 0, "closed", 1)]).await.is_err());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_log_passes_the_log_contract_on_the_mock_cluster() {
    let (mock, topic) = mock_cluster(3);
    let log = kafka_log(&mock.bootstrap_servers(), &topic, 3).await;
    run_contract(Arc::new(log)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_log_passes_the_log_contract_on_tansu() {
    let topic = unique_topic();
    // Roster creates the topic itself here: tansu does not create topics on demand.
    let log = kafka_log(&tansu_brokers(), &topic, 3).await;
    run_contract(Arc::new(log)).await;
}

/// A second process opening the topic sees what the first wrote, and knows when it has it all.
async fn a_second_reader_replays_everything_and_knows_it_is_caught_up(brokers: &str, topic: &str) {
    let first = kafka_log(brokers, topic, 3).await;
    let p = first.partition("d");
    let recs: Vec<_> = (0..30)
        .map(|i| record("d", i, &format!("x{i}"), 1))
        .collect();
    first.append(recs.clone()).await.unwrap();
    let second = kafka_log(brokers, topic, 3).await;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "never caught up");
        let next = got.len() as u64;
        let batch = second.read(p, next, 1000).await.unwrap();
        if batch.is_empty() && second.caught_up(p, next).await.unwrap() {
            break;
        }
        got.extend(batch);
    }
    assert_eq!(got.len(), 30);
    assert!(got.iter().zip(&recs).all(|(e, r)| *e.record == *r));
    for other in (0..3).filter(|&q| q != p) {
        assert!(second.read(other, 0, 10).await.unwrap().is_empty());
    }
    first.close().await;
    second.close().await;
}

/// A second process reads from any position, including one in the middle of the brokers'
/// record batches (the producer sends an append's records as one batch) and the last record of
/// the topic: what a start from a view snapshot or from a stored position does. The first
/// answer that holds anything begins exactly there, and headers read one at a time are found.
async fn a_second_reader_starts_anywhere_inside_a_batch(brokers: &str, topic: &str) {
    let first = kafka_log(brokers, topic, 3).await;
    let p = first.partition("d");
    let recs: Vec<_> = (0..60)
        .map(|i| record("d", i, &format!("y{i}"), 1))
        .collect();
    first.append(recs[..30].to_vec()).await.unwrap();
    first.append(recs[30..].to_vec()).await.unwrap();
    for from in [7u64, 29, 45, 59] {
        // A fresh process each time, so that every read positions its consumer anew.
        let second = kafka_log(brokers, topic, 3).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let got = loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nothing read at position {from}"
            );
            let got = second.read(p, from, 5).await.unwrap();
            if !got.is_empty() {
                break got;
            }
        };
        assert_eq!(got[0].position, from, "a read at {from} began elsewhere");
        assert_eq!(*got[0].record, recs[from as usize]);
        second.close().await;
        let third = kafka_log(brokers, topic, 3).await;
        let headers = third.read_headers(p, from, 1).await.unwrap();
        assert_eq!(
            headers.iter().map(|h| h.position).collect::<Vec<_>>(),
            vec![from],
            "the header at {from} on the first read"
        );
        third.close().await;
    }
    first.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_kafka_reader_starts_inside_a_batch_on_the_mock_cluster() {
    let (mock, topic) = mock_cluster(3);
    a_second_reader_starts_anywhere_inside_a_batch(&mock.bootstrap_servers(), &topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_kafka_reader_starts_inside_a_batch_on_tansu() {
    a_second_reader_starts_anywhere_inside_a_batch(&tansu_brokers(), &unique_topic()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_kafka_reader_catches_up_on_the_mock_cluster() {
    let (mock, topic) = mock_cluster(3);
    a_second_reader_replays_everything_and_knows_it_is_caught_up(&mock.bootstrap_servers(), &topic)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_kafka_reader_catches_up_on_tansu() {
    a_second_reader_replays_everything_and_knows_it_is_caught_up(&tansu_brokers(), &unique_topic())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_topic_with_another_partition_count_is_refused() {
    let (mock, topic) = mock_cluster(2);
    let opened = KafkaLog::open(KafkaOptions {
        brokers: mock.bootstrap_servers(),
        topic,
        partitions: 3,
        ..KafkaOptions::default()
    })
    .await;
    let err = opened
        .err()
        .expect("a partition mismatch must be refused")
        .to_string();
    assert!(err.contains("has 2 partitions"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_that_roster_may_not_create_is_a_clear_error() {
    let topic = unique_topic();
    let opened = KafkaLog::open(KafkaOptions {
        create_topic: false,
        ..common::kafka_options(&tansu_brokers(), &topic, 3)
    })
    .await;
    let err = opened
        .err()
        .expect("a missing topic must be refused")
        .to_string();
    assert!(
        err.contains(&topic) && err.contains("does not exist") && err.contains("3 partitions"),
        "{err}"
    );
}

#[tokio::test]
async fn file_log_reads_every_position_between_its_index_marks_before_and_after_reopen() {
    // One segment, several hundred records: a read starts at the index mark below its first
    // position and passes over the frames in between (marks made while appending, then
    // marks made by the start-up scan).
    let dir = tempfile::tempdir().unwrap();
    let recs: Vec<_> = (0..300)
        .map(|i| record("d", i, &format!("r{i}"), 1))
        .collect();
    let check = |log: FileLog| {
        let recs = recs.clone();
        async move {
            for from in 0..300u64 {
                let got = log.read(0, from, 3).await.unwrap();
                assert_eq!(got[0].position, from);
                assert_eq!(*got[0].record, recs[from as usize], "from {from}");
                assert_eq!(got.len(), 3.min(300 - from as usize));
            }
            log.close().await;
        }
    };
    let log = FileLog::open(dir.path(), FileLogOptions::default()).unwrap();
    for chunk in recs.chunks(7) {
        log.append(chunk.to_vec()).await.unwrap();
    }
    check(log).await;
    check(FileLog::open(dir.path(), FileLogOptions::default()).unwrap()).await;
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
    assert_eq!(*log.end(0).borrow(), 3000);
    for from in [0u64, 1023, 1024, 1025, 2047, 2999] {
        let got = log.read(0, from, 3).await.unwrap();
        assert_eq!(*got[0].record, recs[from as usize], "from {from}");
        assert_eq!(got[0].position, from);
    }
    let all = log.read(0, 0, 10_000).await.unwrap();
    assert_eq!(all.len(), 3000);
    assert!(all.iter().zip(&recs).all(|(e, r)| *e.record == *r));
    // Decoded from the files (this process appended none of them), without digests.
    let records = log.read_records(0, 0, 10_000).await.unwrap();
    assert_eq!(records.len(), 3000);
    assert!(records
        .iter()
        .zip(&recs)
        .enumerate()
        .all(|(i, (e, r))| e.position == i as u64 && *e.record == *r));
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
    assert_eq!(*reopened.end(0).borrow(), 1);
}
