//! `roster backup`: a consistent copy of an embedded data directory, taken while the server
//! serves (or not), without stopping writes and without the log's lock.
//!
//! What makes the copy consistent is the order of the copies, each file of which is
//! append-only or replaced whole by a rename (so an open handle reads one whole version):
//! 1. the snapshots of the views and of the audit index (caches: their positions are at most
//!    the log's durable end now);
//! 2. the log's segments in order, each up to its length when it is opened, the last one cut
//!    back to its last whole frame: every record acknowledged before the backup began is in
//!    the copy, and so is every record the snapshots reflect;
//! 3. the data-key files (a record's key is durable before the record is appended, so every
//!    copied record's key is in them);
//! 4. the secret key, unless the settings hold it.
//!
//! The copy is written into `<target>.partial`, every file and folder synced, a manifest
//! written last, then renamed to `<target>`: a backup killed half-way leaves no `<target>`.
//! Starting Roster on `<target>` serves the copy (data directory layout unchanged).

use crate::datadir;
use serde::Serialize;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// What a backup copied.
#[derive(Debug, Serialize)]
pub struct Manifest {
    pub written_at: chrono::DateTime<chrono::Utc>,
    pub release: String,
    /// Records in the copied log (positions 0 to this, exclusive).
    pub records: u64,
    pub segments: usize,
    pub log_bytes: u64,
    /// Whether a view snapshot was copied.
    pub snapshot: bool,
    /// Whether a snapshot of the audit index was copied.
    pub audit_snapshot: bool,
    pub key_files: usize,
    /// Whether the secret key file was copied (false: the settings hold the key; keep it
    /// with the backup by other means).
    pub secret_key: bool,
}

/// Why a backup could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} already exists: choose a new folder for the backup")]
    Exists(PathBuf),
    #[error("{0} holds no event log: is it a data directory?")]
    NoLog(PathBuf),
    #[error("{what}: {error}")]
    Io { what: String, error: io::Error },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> BackupError {
    let what = what.into();
    move |error| BackupError::Io { what, error }
}

/// Copies the data directory `data_dir` into `target` (which must not exist).
///
/// Fails when `target` exists, `data_dir` holds no log, or a file cannot be read or written
/// (then `<target>.partial` is left for inspection; a later backup to `target` replaces it).
pub fn backup(data_dir: &Path, target: &Path) -> Result<Manifest, BackupError> {
    if target.exists() {
        return Err(BackupError::Exists(target.to_owned()));
    }
    let log_dir = data_dir.join("log");
    if !log_dir.is_dir() {
        return Err(BackupError::NoLog(data_dir.to_owned()));
    }
    let partial = target.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .map_err(io_err(format!("removing {}", partial.display())))?;
    }
    datadir::create_dir(&partial).map_err(io_err(format!("creating {}", partial.display())))?;

    // 1. The snapshots, before the log they must not run ahead of.
    let snapshots = data_dir.join("snapshots");
    let copied_snapshot =
        copy_if_present(&snapshots.join("views.snap"), &partial.join("snapshots"))?;
    let copied_audit = copy_if_present(&snapshots.join("audit.snap"), &partial.join("snapshots"))?;

    // 2. The log, segment by segment, the last cut to whole frames.
    let to_log = partial.join("log");
    datadir::create_dir(&to_log).map_err(io_err(format!("creating {}", to_log.display())))?;
    let segments =
        crate::log::segments(&log_dir).map_err(io_err(format!("listing {}", log_dir.display())))?;
    let (mut records, mut log_bytes) = (0, 0);
    for (i, (base, path)) in segments.iter().enumerate() {
        let to = to_log.join(path.file_name().unwrap_or_default());
        let copied = copy_whole_frames(path, &to)?;
        log_bytes += copied.bytes;
        records = base + copied.frames;
        let last = i + 1 == segments.len();
        if copied.torn && !last {
            // An older segment ends in damage: the copy keeps it as it is, and start-up on
            // the copy reports it as it would on the original.
            tracing::warn!(segment = %path.display(), "a segment before the last ends in damage");
        }
    }
    sync_dir(&to_log)?;

    // 3. The data keys, then 4. the secret key.
    let mut key_files = 0;
    let keys = data_dir.join("keys");
    if keys.is_dir() {
        let to_keys = partial.join("keys");
        datadir::create_dir(&to_keys).map_err(io_err(format!("creating {}", to_keys.display())))?;
        for entry in
            std::fs::read_dir(&keys).map_err(io_err(format!("listing {}", keys.display())))?
        {
            let entry = entry.map_err(io_err(format!("listing {}", keys.display())))?;
            let path = entry.path();
            // Key files only: a replacement in progress is a temporary beside them.
            if path.is_file() && path.to_string_lossy().ends_with(".keys") {
                copy_file(&path, &to_keys.join(entry.file_name()))?;
                key_files += 1;
            }
        }
        sync_dir(&to_keys)?;
    }
    let secret_key = copy_if_present(&data_dir.join("secret.key"), &partial)?;

    let manifest = Manifest {
        written_at: chrono::Utc::now(),
        release: env!("CARGO_PKG_VERSION").to_owned(),
        records,
        segments: segments.len(),
        log_bytes,
        snapshot: copied_snapshot,
        audit_snapshot: copied_audit,
        key_files,
        secret_key,
    };
    let text = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    write_synced(&partial.join("BACKUP.json"), &text)?;
    sync_dir(&partial)?;
    std::fs::rename(&partial, target).map_err(io_err(format!(
        "renaming {} to {}",
        partial.display(),
        target.display()
    )))?;
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(manifest)
}

struct Copied {
    bytes: u64,
    frames: u64,
    /// The copy stopped before the end of what was read: a torn or damaged frame.
    torn: bool,
}

/// Copies the whole frames of segment `from` (as long as it is now) to `to`, synced.
fn copy_whole_frames(from: &Path, to: &Path) -> Result<Copied, BackupError> {
    let file = File::open(from).map_err(io_err(format!("opening {}", from.display())))?;
    let len = file
        .metadata()
        .map_err(io_err(format!("reading {}", from.display())))?
        .len();
    let mut input = BufReader::with_capacity(1 << 20, file.take(len));
    let mut out = datadir::file_options()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(io_err(format!("creating {}", to.display())))?;
    let mut out_buf = io::BufWriter::with_capacity(1 << 20, &mut out);
    let (mut bytes, mut frames, mut torn) = (0u64, 0u64, false);
    let mut payload = Vec::new();
    let mut framed = Vec::new();
    loop {
        match crate::log::read_frame(&mut input, &mut payload) {
            Ok(Some(_)) => {
                framed.clear();
                crate::log::frame(&payload, &mut framed);
                out_buf
                    .write_all(&framed)
                    .map_err(io_err(format!("writing {}", to.display())))?;
                bytes += framed.len() as u64;
                frames += 1;
            }
            Ok(None) => break,
            Err(_) => {
                torn = true;
                break;
            }
        }
    }
    out_buf
        .flush()
        .map_err(io_err(format!("writing {}", to.display())))?;
    drop(out_buf);
    out.sync_all()
        .map_err(io_err(format!("syncing {}", to.display())))?;
    Ok(Copied {
        bytes,
        frames,
        torn,
    })
}

/// Copies `from` into the folder `to_dir` (created) if it exists; whether it did.
fn copy_if_present(from: &Path, to_dir: &Path) -> Result<bool, BackupError> {
    if !from.exists() {
        return Ok(false);
    }
    datadir::create_dir(to_dir).map_err(io_err(format!("creating {}", to_dir.display())))?;
    copy_file(from, &to_dir.join(from.file_name().unwrap_or_default()))?;
    sync_dir(to_dir)?;
    Ok(true)
}

/// Copies one file (through one open handle: a file replaced by a rename meanwhile is read
/// whole, in one of its versions), owner-only and synced.
fn copy_file(from: &Path, to: &Path) -> Result<(), BackupError> {
    let mut input = File::open(from).map_err(io_err(format!("opening {}", from.display())))?;
    let mut out = datadir::file_options()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(io_err(format!("creating {}", to.display())))?;
    io::copy(&mut input, &mut out).map_err(io_err(format!("copying {}", from.display())))?;
    out.sync_all()
        .map_err(io_err(format!("syncing {}", to.display())))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let mut out = datadir::file_options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err(format!("creating {}", path.display())))?;
    out.write_all(bytes)
        .and_then(|()| out.sync_all())
        .map_err(io_err(format!("writing {}", path.display())))
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("syncing {}", dir.display())))
}
