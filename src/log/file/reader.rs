//! Reading stored records back: finding where a position's frame starts (the sparse index),
//! reading the frames of a range into one buffer (each checked against its checksum), and
//! decoding them, split over two threads. Replay, the audit trail's read-back, export and
//! verification all read through here, so the buffer is kept by the reading thread and reused
//! rather than allocated, page by page, for every batch.

use super::scan::{frame_header, segment_path, HEADER};
use super::{io, KnownRecords, Mark, Shared, READ_BUFFER};
use crate::log::{HeaderEntry, LogError, RecordEntry};
use roster_events::chain::Digest;
use roster_events::Record;
use roster_projections::LogEntry;
use std::cell::RefCell;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A reading thread keeps a frame buffer up to this size between reads (a batch of 4,096
/// records of 1.6 KiB fits); a larger one is given back, so that idle reading threads hold
/// little memory.
const KEEP_BUFFER: usize = 8 << 20;

/// The payloads of a range of records, one after another in one buffer.
#[derive(Default)]
struct Frames {
    bytes: Vec<u8>,
    /// Each record's position and where its payload is in `bytes`.
    records: Vec<(u64, Range<usize>)>,
}

impl Frames {
    fn payload(&self, at: &Range<usize>) -> &[u8] {
        &self.bytes[at.clone()]
    }
}

thread_local! {
    /// The frame buffer of this thread's last read, kept for its next.
    static FRAMES: RefCell<Frames> = RefCell::default();
}

/// Reads the frames of up to `max` records from `from` (below `end`) into this thread's
/// buffer and hands them to `f`.
fn with_frames<T>(
    shared: &Mutex<Shared>,
    from: u64,
    max: usize,
    end: u64,
    f: impl FnOnce(&Frames) -> Result<T, LogError>,
) -> Result<T, LogError> {
    let mut frames = FRAMES.with_borrow_mut(std::mem::take);
    frames.bytes.clear();
    frames.records.clear();
    let out = read_frames(shared, from, max, end, &mut frames).and_then(|()| f(&frames));
    if frames.bytes.capacity() <= KEEP_BUFFER {
        FRAMES.with_borrow_mut(|kept| *kept = frames);
    }
    out
}

fn locate(shared: &Mutex<Shared>, from: u64) -> Option<(PathBuf, Mark, Vec<u64>)> {
    let shared = shared.lock().unwrap_or_else(|p| p.into_inner());
    let i = shared.marks.partition_point(|m| m.position <= from);
    let mark = *shared.marks.get(i.checked_sub(1)?)?;
    let later: Vec<u64> = shared
        .segments
        .iter()
        .copied()
        .filter(|&s| s > mark.segment)
        .collect();
    Some((shared.dir.clone(), mark, later))
}

/// Reads and decodes up to `max` records from `from`, taking the records in `known` (and
/// their digests) from there.
pub(super) fn read_blocking<T: Decoded>(
    shared: &Mutex<Shared>,
    from: u64,
    max: usize,
    end: u64,
    known: Option<&Mutex<KnownRecords>>,
) -> Result<Vec<T>, LogError> {
    with_frames(shared, from, max, end, |frames| {
        let known: Vec<Option<(Arc<Record>, Digest)>> = match known {
            Some(known) => {
                let known = known.lock().unwrap_or_else(|p| p.into_inner());
                frames.records.iter().map(|(p, _)| known.get(*p)).collect()
            }
            None => vec![None; frames.records.len()],
        };
        decode(frames, known)
    })
}

/// Reads up to `max` records from `from` and decodes their headers only, with the digests of
/// their bodies as stored (`RecordHeader::from_stored`: the events are not decoded). On this
/// thread alone: verification, its one caller, keeps several reads in flight
/// (`EventLog::concurrent_reads`).
pub(super) fn read_headers_blocking(
    shared: &Mutex<Shared>,
    from: u64,
    max: usize,
    end: u64,
) -> Result<Vec<HeaderEntry>, LogError> {
    with_frames(shared, from, max, end, |frames| {
        let mut entries = Vec::with_capacity(frames.records.len());
        for (position, at) in &frames.records {
            let bytes = frames.payload(at);
            let header = roster_events::RecordHeader::from_stored(bytes).map_err(|e| {
                LogError::Corrupt(format!("record {position} does not decode: {e}"))
            })?;
            entries.push(HeaderEntry {
                position: *position,
                header,
                digest: roster_events::chain::body_digest(bytes),
            });
        }
        Ok(entries)
    })
}

/// `one` over `items`, split over two threads when there are enough to be worth it: decoding
/// JSON is most of the cost of reading (and of replay at start-up).
fn in_two<I: Sync, T: Send>(
    items: &[I],
    one: impl Fn(&[I]) -> Result<Vec<T>, LogError> + Sync,
) -> Result<Vec<T>, LogError> {
    if items.len() < 512 {
        return one(items);
    }
    let (a, b) = items.split_at(items.len() / 2);
    let (first, second) = std::thread::scope(|s| {
        let second = s.spawn(|| one(b));
        (one(a), second.join())
    });
    let mut out = first?;
    out.extend(second.map_err(|_| LogError::Corrupt("decoder panicked".into()))??);
    Ok(out)
}

/// Reads the frames of up to `max` records from `from` (below `end`) into `frames`. The
/// segments' bytes are read straight into the buffer, `READ_BUFFER` at a time, and each
/// payload is checked against its checksum where it lies: nothing is copied twice. The frames
/// between the index mark and `from` are read and passed over, not checked (each is checked
/// when it is itself read).
fn read_frames(
    shared: &Mutex<Shared>,
    from: u64,
    max: usize,
    end: u64,
    frames: &mut Frames,
) -> Result<(), LogError> {
    if from >= end || max == 0 {
        return Ok(());
    }
    let Some((dir, mark, later)) = locate(shared, from) else {
        return Ok(());
    };
    let mut position = mark.position;
    let mut offset = mark.offset;
    for base in std::iter::once(mark.segment).chain(later) {
        let mut file =
            File::open(segment_path(&dir, base)).map_err(|e| io("opening a segment", e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io("seeking a segment", e))?;
        offset = 0;
        // Where the next frame starts in the buffer (bytes after it are read ahead).
        let mut at = frames.bytes.len();
        loop {
            if position >= end || frames.records.len() >= max {
                return Ok(());
            }
            let corrupt = |why: &str| LogError::Corrupt(format!("record {position}: {why}"));
            if !fill(&mut file, &mut frames.bytes, at + HEADER)? {
                if frames.bytes.len() == at {
                    break; // the segment's clean end
                }
                return Err(corrupt("torn header"));
            }
            let (len, crc) =
                frame_header(&frames.bytes[at..at + HEADER]).map_err(|w| corrupt(&w))?;
            let payload = at + HEADER..at + HEADER + len;
            if !fill(&mut file, &mut frames.bytes, payload.end)? {
                return Err(corrupt("torn payload"));
            }
            if position >= from {
                if crc32fast::hash(&frames.bytes[payload.clone()]) != crc {
                    return Err(corrupt("checksum mismatch"));
                }
                frames.records.push((position, payload.clone()));
            }
            at = payload.end;
            position += 1;
        }
    }
    Ok(())
}

/// Reads from `file` onto the end of `buf` until it holds `need` bytes; false if the file
/// ends first.
///
/// Fails when the file cannot be read.
fn fill(file: &mut File, buf: &mut Vec<u8>, need: usize) -> Result<bool, LogError> {
    while buf.len() < need {
        let want = (need - buf.len()).max(READ_BUFFER);
        buf.reserve(want);
        // Into the buffer's spare room, without zeroing it first.
        let n = file
            .take(want as u64)
            .read_to_end(buf)
            .map_err(|e| io("reading a segment", e))?;
        if n == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Decodes frames into entries (`known`: the records already known, in the same order).
/// Decoding JSON is most of the cost of reading (and of replay at start-up), so a large batch
/// is split over two threads.
fn decode<T: Decoded>(
    frames: &Frames,
    known: Vec<Option<(Arc<Record>, Digest)>>,
) -> Result<Vec<T>, LogError> {
    let items: Vec<_> = frames.records.iter().zip(known).collect();
    in_two(&items, |chunk| {
        chunk
            .iter()
            .map(|((position, at), known)| match known {
                Some((record, digest)) => Ok(T::known(*position, record, digest)),
                None => T::decode(*position, frames.payload(at)),
            })
            .collect()
    })
}

/// What a read makes of each record: a [`LogEntry`] with the digest of its body, or a
/// [`RecordEntry`] without (computing it is a tenth of a read's cost).
pub(super) trait Decoded: Sized + Send {
    /// From a record this process appended, kept in memory with its digest.
    fn known(position: u64, record: &Arc<Record>, digest: &Digest) -> Self;
    /// From the bytes stored at `position`.
    fn decode(position: u64, bytes: &[u8]) -> Result<Self, LogError>;
}

fn record_at(position: u64, bytes: &[u8]) -> Result<Arc<Record>, LogError> {
    serde_json::from_slice(bytes)
        .map(Arc::new)
        .map_err(|e| LogError::Corrupt(format!("record {position} does not decode: {e}")))
}

impl Decoded for LogEntry {
    fn known(position: u64, record: &Arc<Record>, digest: &Digest) -> Self {
        LogEntry {
            partition: 0,
            position,
            record: record.clone(),
            digest: *digest,
        }
    }

    fn decode(position: u64, bytes: &[u8]) -> Result<Self, LogError> {
        Ok(LogEntry {
            partition: 0,
            position,
            record: record_at(position, bytes)?,
            digest: roster_events::chain::body_digest(bytes),
        })
    }
}

impl Decoded for RecordEntry {
    fn known(position: u64, record: &Arc<Record>, _: &Digest) -> Self {
        RecordEntry {
            partition: 0,
            position,
            record: record.clone(),
        }
    }

    fn decode(position: u64, bytes: &[u8]) -> Result<Self, LogError> {
        Ok(RecordEntry {
            partition: 0,
            position,
            record: record_at(position, bytes)?,
        })
    }
}
