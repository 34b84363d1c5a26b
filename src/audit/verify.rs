//! `roster audit verify`: reads the log from its start and checks every directory's records
//! against their seals and links (docs/adr/0012). It names, per directory, the first record
//! that was changed (its seal does not match), forged (no seal where the directory's records
//! are sealed), or removed or moved (a record names a predecessor that is not the last valid
//! record before it). It ends with each directory's head (sequence number and digest), which
//! an operator can keep elsewhere to make the end of the log evident too.

use crate::log::{EventLog, HeaderEntry, LogError};
use roster_events::chain::{hex, unhex32, ChainKey, Seal};
use roster_events::ChainHead;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How many records verification reads at once.
const VERIFY_BATCH: usize = 4096;

/// What kind of break a record shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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
#[derive(Clone, Debug, Serialize)]
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
#[derive(Clone, Debug, Default, Serialize)]
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
#[derive(Clone, Debug, Default, Serialize)]
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
        let mut next = 0;
        let mut entries = log.read_headers(partition, next, VERIFY_BATCH).await?;
        // Bounded by the log's end: every round reads at least one record or ends.
        loop {
            let Some(last) = entries.last() else {
                if log.caught_up(partition, next).await? {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                entries = log.read_headers(partition, next, VERIFY_BATCH).await?;
                continue;
            };
            next = last.position + 1;
            let span = tracing::debug_span!("audit_verify_batch", partition, to = last.position);
            // The next batch is read (off this task) while this one is checked.
            let ahead = log.read_headers(partition, next, VERIFY_BATCH);
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
            let (read, ()) = tokio::join!(ahead, check);
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
