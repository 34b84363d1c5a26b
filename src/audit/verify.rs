//! `roster audit verify`: reads the log from its start and checks every directory's records
//! against their seals and links (docs/adr/0012). It names, per directory, the first record
//! that was changed (its seal does not match), forged (no seal where the directory's records
//! are sealed), or removed or moved (a record names a predecessor that is not the last valid
//! record before it). It ends with each directory's head (sequence number and digest), which
//! an operator can keep elsewhere to make the end of the log evident too.

use crate::log::{EventLog, HeaderEntry, LogError};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, StreamExt};
use roster_events::chain::{hex, unhex32, ChainKey, Seal};
use roster_events::ChainHead;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How many records one read of verification asks for.
const VERIFY_BATCH: usize = 4096;

/// What kind of break a record shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// The record does not match its seal: changed after it was written, or sealed with
    /// another key.
    Changed,
    /// No seal where the directory's records are sealed: written by something other than
    /// Roster, or its seal was cut off.
    Unsealed,
    /// The record does not follow the last valid record before it: records were removed or
    /// moved (or, on Kafka only, an append whose outcome stayed unknown never landed).
    RemovedOrReordered,
}

/// The first record of a directory that breaks its chain.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Break {
    pub kind: BreakKind,
    pub partition: u32,
    pub position: u64,
    /// The sequence number the record claims.
    pub seq: u64,
    pub record_id: uuid::Uuid,
    pub why: String,
}

/// One directory's chain as verification found it.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct DirectoryReport {
    /// Valid records (by the directory-sequence rule).
    pub valid: u64,
    /// Records with a valid seal.
    pub sealed: u64,
    /// Valid records without a seal written before the first sealed one (by a release before
    /// seals existed).
    pub unsealed_before_chain: u64,
    /// The last valid record's sequence number and digest: keep them elsewhere to make a
    /// later cut at the end of the log evident.
    pub head_seq: u64,
    pub head_digest: Option<String>,
    pub first_break: Option<Break>,
}

/// What verification found.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub ok: bool,
    pub records: u64,
    pub directories: BTreeMap<String, DirectoryReport>,
}

#[derive(Default)]
struct Walk {
    head: ChainHead,
    /// Whether the last valid record was sealed (then the next must be, and must link).
    sealed: bool,
    /// Whether any record of the directory was sealed.
    chain_began: bool,
    report: DirectoryReport,
}

impl Walk {
    fn broke(&mut self, b: Break) {
        if self.report.first_break.is_none() {
            self.report.first_break = Some(b);
        }
    }
}

/// Reads every partition of `log` to its end and checks the chains of every directory (or of
/// `only` that one).
///
/// Fails when the log cannot be read.
pub async fn verify(
    log: &dyn EventLog,
    key: &ChainKey,
    only: Option<&str>,
) -> Result<Report, LogError> {
    let mut walks: BTreeMap<String, Walk> = BTreeMap::new();
    let mut records = 0;
    for partition in 0..log.partitions() {
        let mut reads = ReadAhead::new(log, partition);
        let mut entries = reads.next().await?;
        // Bounded by the log's end: every round checks at least one record or ends.
        loop {
            let Some(last) = entries.last() else {
                if log.caught_up(partition, reads.at).await? {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                reads.restart(reads.at);
                entries = reads.next().await?;
                continue;
            };
            let span = tracing::debug_span!("audit_verify_batch", partition, to = last.position);
            // The reads go on (off this task) while these records are checked.
            let check = async {
                let _enter = span.enter();
                for e in &entries {
                    if only.is_some_and(|d| d != e.header.directory) {
                        continue;
                    }
                    records += 1;
                    check_one(&mut walks, e, partition, key);
                }
            };
            let (read, ()) = tokio::join!(reads.next(), check);
            entries = read?;
        }
    }
    let directories: BTreeMap<String, DirectoryReport> = walks
        .into_iter()
        .map(|(name, w)| {
            let mut report = w.report;
            report.head_seq = w.head.seq;
            report.head_digest = w.head.digest.map(|d| hex(&d));
            (name, report)
        })
        .collect();
    Ok(Report {
        ok: directories.values().all(|d| d.first_break.is_none()),
        records,
        directories,
    })
}

type Read<'a> = BoxFuture<'a, (u64, Result<Vec<HeaderEntry>, LogError>)>;

/// One partition's headers, read ahead of the check: a read is mostly hashing, which takes a
/// thread per read, so as many run at once as the log can serve without slowing each other
/// ([`EventLog::concurrent_reads`]). The first read in flight starts where the records handed
/// out end; each one after it where the one before would end if it came back full. A log may
/// answer with fewer records than asked or have gaps in its positions, so records a read shares
/// with the one before are dropped, and a read that would leave a gap is thrown away with the
/// ones after it and the reads start again from where the records end.
struct ReadAhead<'a> {
    log: &'a dyn EventLog,
    partition: u32,
    reads: FuturesOrdered<Read<'a>>,
    /// How many reads are kept in flight.
    depth: usize,
    /// Where the next read to be started starts.
    ahead: u64,
    /// The position after the last record handed out.
    at: u64,
}

impl<'a> ReadAhead<'a> {
    fn new(log: &'a dyn EventLog, partition: u32) -> Self {
        let mut reads = ReadAhead {
            log,
            partition,
            reads: FuturesOrdered::new(),
            depth: log.concurrent_reads().max(1),
            ahead: 0,
            at: 0,
        };
        reads.restart(0);
        reads
    }

    /// Drops the reads in flight and starts again from `from`.
    fn restart(&mut self, from: u64) {
        self.reads = FuturesOrdered::new();
        self.at = from;
        self.ahead = from;
        for _ in 0..self.depth {
            self.start_one();
        }
    }

    fn start_one(&mut self) {
        if self.reads.is_empty() {
            self.ahead = self.at;
        }
        let (log, partition, from) = (self.log, self.partition, self.ahead);
        self.ahead += VERIFY_BATCH as u64;
        self.reads.push_back(Box::pin(async move {
            (from, log.read_headers(partition, from, VERIFY_BATCH).await)
        }));
    }

    /// The next records, in order; none when the partition has none (yet) after them.
    ///
    /// Fails when the log cannot be read.
    async fn next(&mut self) -> Result<Vec<HeaderEntry>, LogError> {
        // Bounded: each round returns, or takes one read off the queue (a restart's first read
        // starts where the records end, so it is never a gap).
        loop {
            let Some((from, read)) = self.reads.next().await else {
                self.restart(self.at);
                continue;
            };
            if from > self.at {
                self.restart(self.at);
                continue;
            }
            let mut entries = read?;
            let nothing_there = entries.is_empty();
            entries.retain(|e| e.position >= self.at);
            match entries.last() {
                Some(last) => {
                    self.at = last.position + 1;
                    self.start_one();
                    return Ok(entries);
                }
                None if nothing_there => return Ok(entries),
                None => self.start_one(),
            }
        }
    }
}

/// Checks one record against its directory's walk so far: its seal, its place in the chain,
/// its link to the record before it.
fn check_one(walks: &mut BTreeMap<String, Walk>, e: &HeaderEntry, partition: u32, key: &ChainKey) {
    let r = &e.header;
    if !walks.contains_key(&r.directory) {
        walks.insert(r.directory.clone(), Walk::default());
    }
    let Some(walk) = walks.get_mut(&r.directory) else {
        return;
    };
    let here = Break {
        kind: BreakKind::Changed,
        partition,
        position: e.position,
        seq: r.seq(),
        record_id: r.record_id,
        why: String::new(),
    };
    // Named only when something is wrong: most records are not.
    let at = || {
        format!(
            "record {} (partition {partition}, position {}, sequence {})",
            r.record_id,
            e.position,
            r.seq()
        )
    };
    let seal = key.check(r.mac.as_deref(), &e.digest);
    match seal {
        Seal::Valid => {
            walk.report.sealed += 1;
            walk.chain_began = true;
        }
        Seal::Broken => walk.broke(Break {
            kind: BreakKind::Changed,
            why: format!(
                "{at} does not match its seal: it was changed after it was \
                         written, or sealed with another key",
                at = at(),
            ),
            ..here.clone()
        }),
        Seal::Missing if walk.chain_began => walk.broke(Break {
            kind: BreakKind::Unsealed,
            why: format!(
                "{at} has no seal though earlier records of the directory do: \
                         it was not written by Roster, or its seal was cut off",
                at = at(),
            ),
            ..here.clone()
        }),
        Seal::Missing => {}
    }
    let before = walk.head;
    if r.follows > before.seq {
        walk.broke(Break {
            kind: BreakKind::RemovedOrReordered,
            why: format!(
                "{at} follows sequence {} but the last valid record before it \
                         is sequence {}: records were removed or moved",
                r.follows,
                before.seq,
                at = at(),
            ),
            ..here.clone()
        });
    }
    if !walk.head.admit_header(r, e.digest) {
        return;
    }
    walk.report.valid += 1;
    let link = r.prev_digest.as_deref();
    let linked = match (link, &before.digest) {
        (Some(l), Some(x)) => unhex32(l.as_bytes()).as_ref() == Some(x),
        // A directory's first record, or one after records of an older release.
        (None, _) => !walk.sealed || before.seq == 0,
        (Some(_), None) => false,
    };
    if !linked {
        let expected = before.digest.map(|d| hex(&d));
        walk.broke(Break {
            kind: BreakKind::RemovedOrReordered,
            why: format!(
                "{at} commits to a previous record with digest {} but the \
                         last valid record before it has digest {}: that record was \
                         changed, or records were removed or moved",
                link.unwrap_or("(none)"),
                expected.as_deref().unwrap_or("(none)"),
                at = at(),
            ),
            ..here.clone()
        });
    }
    walk.sealed = seal == Seal::Valid;
    if seal == Seal::Missing && !walk.chain_began {
        walk.report.unsealed_before_chain += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{FileLog, FileLogOptions};
    use async_trait::async_trait;
    use roster_events::chain::Encoded;
    use roster_events::Record;
    use roster_projections::LogEntry;
    use tokio::sync::watch;

    /// A log whose records sit three positions apart and whose reads answer at most 1,000
    /// records, read three at a time: what Kafka may do (gaps, short answers) with the
    /// read-ahead of the file log.
    struct Sparse(FileLog);

    const SPREAD: u64 = 3;

    #[async_trait]
    impl EventLog for Sparse {
        async fn append_encoded(&self, records: Vec<Encoded>) -> Result<Vec<u64>, LogError> {
            self.0.append_encoded(records).await
        }
        async fn read(&self, _: u32, _: u64, _: usize) -> Result<Vec<LogEntry>, LogError> {
            unreachable!("verification reads headers")
        }
        async fn read_headers(
            &self,
            partition: u32,
            from: u64,
            max: usize,
        ) -> Result<Vec<HeaderEntry>, LogError> {
            let inner = from.div_ceil(SPREAD);
            let mut read = self.0.read_headers(partition, inner, max.min(1000)).await?;
            for e in &mut read {
                e.position *= SPREAD;
            }
            Ok(read)
        }
        async fn caught_up(&self, partition: u32, next: u64) -> Result<bool, LogError> {
            self.0.caught_up(partition, next.div_ceil(SPREAD)).await
        }
        fn end(&self, partition: u32) -> watch::Receiver<u64> {
            self.0.end(partition)
        }
        fn concurrent_reads(&self) -> usize {
            3
        }
        async fn close(&self) {
            self.0.close().await
        }
    }

    #[tokio::test]
    async fn records_read_ahead_with_gaps_and_short_answers_are_each_checked_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = Sparse(FileLog::open(dir.path(), FileLogOptions::default()).unwrap());
        let key = ChainKey::derive(b"a test key");
        let mut head = ChainHead::default();
        let n = 10_000;
        let mut batch = Vec::new();
        for _ in 0..n {
            let record = Record {
                record_id: uuid::Uuid::now_v7(),
                directory: "default".into(),
                follows: head.seq,
                prev: head.record_id,
                events: vec![],
                prev_digest: head.digest.map(|d| hex(&d)),
                mac: None,
            };
            let sealed = key.seal(record);
            assert!(head.admit(&sealed.record, sealed.digest));
            batch.push(sealed);
        }
        for chunk in batch.chunks(2_500) {
            log.append_encoded(chunk.to_vec()).await.unwrap();
        }
        let report = verify(&log, &key, None).await.unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!(report.records, n);
        let d = &report.directories["default"];
        assert_eq!((d.valid, d.sealed, d.head_seq), (n, n, n));
        assert_eq!(d.head_digest, head.digest.map(|d| hex(&d)));
    }
}
