//! What an operator runs when the file log refuses to start: `check` reports what each
//! segment holds and the first damage; `repair` cuts the log at that damage. Nothing is
//! deleted: the rest of the damaged segment and every later segment move into a folder
//! beside the log (`cut-<time>/`), from which they can be examined or restored. A repair
//! needs the log's lock, so it never runs beside a server.

use super::scan::{list_segments, scan, segment_path, Damage};
use super::{io, lock, sync_dir, unused_path, INDEX_EVERY};
use crate::log::LogError;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// One segment as a check found it.
#[derive(Debug)]
pub struct SegmentReport {
    pub path: PathBuf,
    /// The position of its first record.
    pub first: u64,
    /// Whole records before any damage.
    pub records: u64,
    pub bytes: u64,
    pub damage: Option<Damage>,
}

/// What `check` found.
#[derive(Debug)]
pub struct CheckReport {
    pub segments: Vec<SegmentReport>,
    /// A server holds the log: a damaged end may be a write in progress.
    pub in_use: bool,
}

impl CheckReport {
    /// The first damaged segment.
    pub fn first_damage(&self) -> Option<&SegmentReport> {
        self.segments.iter().find(|s| s.damage.is_some())
    }

    /// Whole records before the first damage.
    pub fn records(&self) -> u64 {
        self.segments
            .iter()
            .take_while(|s| s.damage.is_none())
            .map(|s| s.records)
            .sum::<u64>()
            + self.first_damage().map_or(0, |s| s.records)
    }
}

/// Reads every segment of the log in `dir` and reports what it holds, changing nothing.
///
/// Fails when the folder or a segment cannot be read.
pub fn check(dir: &Path) -> Result<CheckReport, LogError> {
    let in_use = lock(dir).is_err();
    let mut segments = Vec::new();
    for base in list_segments(dir).map_err(|e| io("listing the log directory", e))? {
        let path = segment_path(dir, base);
        let s = scan(&path, base, INDEX_EVERY).map_err(|e| io("reading a segment", e))?;
        segments.push(SegmentReport {
            path,
            first: base,
            records: s.records,
            bytes: s.len,
            damage: s.damage,
        });
    }
    Ok(CheckReport { segments, in_use })
}

/// A cut made (or, without `apply`, planned) at the first damage.
#[derive(Debug)]
pub struct Repair {
    /// The damaged segment and the byte it is cut at.
    pub segment: PathBuf,
    pub offset: u64,
    /// Records the log keeps: positions below this.
    pub kept: u64,
    /// Whole records found after the cut (in the damaged segment and the later ones).
    pub set_aside: u64,
    /// Later segments moved out whole.
    pub later_segments: usize,
    /// Where the cut bytes and segments go.
    pub cut_dir: PathBuf,
}

/// Cuts the log in `dir` at its first damage when `apply` is true; otherwise says what the
/// cut would be. Returns None when nothing is damaged.
///
/// Fails when a server holds the log, or a file cannot be read, moved or truncated.
pub fn repair(dir: &Path, apply: bool) -> Result<Option<Repair>, LogError> {
    let _lock = lock(dir)?;
    let report = check(dir)?;
    let Some(damaged) = report.first_damage() else {
        return Ok(None);
    };
    let Some(damage) = &damaged.damage else {
        return Ok(None);
    };
    let later: Vec<&SegmentReport> = report
        .segments
        .iter()
        .filter(|s| s.first > damaged.first)
        .collect();
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let plan = Repair {
        segment: damaged.path.clone(),
        offset: damage.offset,
        kept: damaged.first + damaged.records,
        set_aside: damage.whole_after
            + later.iter().map(|s| s.records).sum::<u64>()
            + later
                .iter()
                .filter_map(|s| s.damage.as_ref())
                .map(|d| d.whole_after)
                .sum::<u64>(),
        later_segments: later.len(),
        cut_dir: unused_path(dir, &format!("cut-{stamp}")),
    };
    if !apply {
        return Ok(Some(plan));
    }
    crate::datadir::create_dir(&plan.cut_dir).map_err(|e| io("creating the cut folder", e))?;
    // The damaged segment's tail first, then the later segments: a crash in between leaves
    // the cut bytes saved and the segments still in place, and a second repair redoes it.
    let name = damaged
        .path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut tail = Vec::new();
    let mut f = std::fs::File::open(&damaged.path).map_err(|e| io("reading the segment", e))?;
    f.seek(SeekFrom::Start(damage.offset))
        .and_then(|_| f.read_to_end(&mut tail))
        .map_err(|e| io("reading the segment", e))?;
    let mut out = crate::datadir::file_options()
        .write(true)
        .create_new(true)
        .open(plan.cut_dir.join(format!("{name}.from-{}", damage.offset)))
        .map_err(|e| io("saving the cut bytes", e))?;
    out.write_all(&tail)
        .and_then(|_| out.sync_all())
        .and_then(|_| sync_dir(&plan.cut_dir))
        .map_err(|e| io("saving the cut bytes", e))?;
    for s in &later {
        let to = plan.cut_dir.join(s.path.file_name().unwrap_or_default());
        std::fs::rename(&s.path, to).map_err(|e| io("moving a later segment", e))?;
    }
    let f = OpenOptions::new()
        .write(true)
        .open(&damaged.path)
        .map_err(|e| io("opening the segment", e))?;
    f.set_len(damage.offset)
        .and_then(|_| f.sync_all())
        .and_then(|_| sync_dir(&plan.cut_dir))
        .and_then(|_| sync_dir(dir))
        .map_err(|e| io("cutting the segment", e))?;
    tracing::warn!(
        segment = %plan.segment.display(), offset = plan.offset, kept = plan.kept,
        set_aside = plan.set_aside, cut_dir = %plan.cut_dir.display(),
        "cut the log at its first damage, as the operator asked"
    );
    Ok(Some(plan))
}
