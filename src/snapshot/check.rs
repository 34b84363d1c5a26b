//! A snapshot checked against the log: the log must still hold, at the position before the
//! snapshot's in each partition, the very record the snapshot was taken after (same digest).
//! A log that ends before it lost acknowledged records; another record there means another
//! log. Either stops start-up with [`SnapshotError`], rather than serve silently.

use crate::log::{EventLog, HeaderEntry, LogError};
use roster_events::chain::Digest;
use std::path::{Path, PathBuf};

/// Why start-up cannot use the log with the snapshot it has.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "the snapshot {path} reflects partition {partition} up to position {position}, \
         but the log ends at {end}: the log lost records that were acknowledged. Restore the \
         log from a backup; to start from the log as it is instead, move the snapshots in {} \
         away (they are caches of the log)", dir_of(.path)
    )]
    LogBehind {
        path: PathBuf,
        partition: u32,
        position: u64,
        end: u64,
    },
    #[error(
        "the snapshot {path} was taken after another record at position {position} of \
         partition {partition} than the log holds there: the log was replaced or changed since. \
         Point Roster at the log the snapshot was taken of; to start from this log instead, \
         move the snapshots in {} away (they are caches of the log)", dir_of(.path)
    )]
    LogDiffers {
        path: PathBuf,
        partition: u32,
        position: u64,
    },
    #[error(
        "the snapshot {path} lists {snapshot} partitions; this log has only {log}. Point \
         Roster at the log the snapshot was taken of; to start from this log \
         instead, move the snapshots in {} away (they are caches of the log)", dir_of(.path)
    )]
    Partitions {
        path: PathBuf,
        snapshot: usize,
        log: u32,
    },
    #[error("reading the log to check a snapshot: {0}")]
    Log(#[from] LogError),
}

/// The directory a snapshot file is in.
fn dir_of(path: &Path) -> std::path::Display<'_> {
    path.parent().unwrap_or(path).display()
}

/// The log must hold, before each partition's `next_positions`, the record whose digest is
/// the snapshot's tail there.
///
/// Fails when it ends before or holds another record: see [`SnapshotError`].
pub(super) async fn check_against(
    log: &dyn EventLog,
    path: &Path,
    next_positions: &[u64],
    tails: &[Option<Digest>],
) -> Result<(), SnapshotError> {
    // Partitions after the last one the subject ever saw a record of are not listed.
    if next_positions.len() > log.partitions() as usize {
        return Err(SnapshotError::Partitions {
            path: path.to_owned(),
            snapshot: next_positions.len(),
            log: log.partitions(),
        });
    }
    for (p, (&next, tail)) in next_positions.iter().zip(tails).enumerate() {
        let Some(before) = next.checked_sub(1) else {
            continue;
        };
        let partition = p as u32;
        let found = header_at(log, partition, before).await?;
        match found.first() {
            None => {
                return Err(SnapshotError::LogBehind {
                    path: path.to_owned(),
                    partition,
                    position: next,
                    end: log_end(log, partition, before).await?,
                });
            }
            Some(e) if e.position != before || Some(e.digest) != *tail => {
                return Err(SnapshotError::LogDiffers {
                    path: path.to_owned(),
                    partition,
                    position: before,
                })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// How many times an empty answer for the record a snapshot was taken after is asked again.
const HEADER_TRIES: usize = 3;

/// The header at `position` of `partition`, if the log has it. A read of a networked log may
/// come back empty before the brokers answered: an empty answer is asked again before the log
/// is taken to end there.
async fn header_at(
    log: &dyn EventLog,
    partition: u32,
    position: u64,
) -> Result<Vec<HeaderEntry>, LogError> {
    let mut found = Vec::new();
    for _ in 0..HEADER_TRIES {
        found = log.read_headers(partition, position, 1).await?;
        if !found.is_empty() {
            break;
        }
    }
    Ok(found)
}

/// The position after the last record of `partition`, knowing there is none at `missing`.
async fn log_end(log: &dyn EventLog, partition: u32, missing: u64) -> Result<u64, LogError> {
    // Binary search for the first position with no record (records are dense from 0).
    let (mut lo, mut hi) = (0u64, missing);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if log.read_headers(partition, mid, 1).await?.is_empty() {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}
