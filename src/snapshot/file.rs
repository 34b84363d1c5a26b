//! A snapshot's file: written to `<FILE>.partial`, synced, renamed into place; opened with
//! its clear header read first (what it is of and reflects), its sealed body after.

use super::{sealed, Mark, Picture, Subject};
use chacha20poly1305::XChaCha20Poly1305;
use roster_events::chain::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The clear header of a snapshot file: what it is of and what it reflects.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Header {
    pub(super) format: u32,
    /// [`Subject::OF`] (absent in view snapshots of releases before the audit index had any).
    #[serde(default = "views_of")]
    pub(super) of: String,
    /// Which log it was taken of ([`super::Snapshots::new`]'s `log`).
    pub(super) log: String,
    pub(super) release: String,
    pub(super) written_at: chrono::DateTime<chrono::Utc>,
    pub(super) next_positions: Vec<u64>,
    pub(super) tails: Vec<Option<Digest>>,
    pub(super) erasures: u64,
    #[serde(flatten)]
    pub(super) counts: BTreeMap<String, u64>,
}

fn views_of() -> String {
    super::views::OF.to_owned()
}

/// A snapshot on disk whose header was checked against the log; its body is not read yet.
pub struct Opened {
    pub(super) path: PathBuf,
    pub(super) header: Header,
    pub(super) header_line: Vec<u8>,
    pub(super) prefix: [u8; sealed::PREFIX],
    pub(super) input: BufReader<File>,
}

/// Opens the snapshot at `path` and reads its clear header: `None` when there is none.
pub(super) fn open_file(path: &Path) -> anyhow::Result<Option<Opened>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut input = BufReader::with_capacity(1 << 20, file);
    let (header_line, prefix) = sealed::read_header(&mut input)?;
    let header: Header = serde_json::from_slice(&header_line)?;
    Ok(Some(Opened {
        path: path.to_owned(),
        header,
        header_line,
        prefix,
        input,
    }))
}

/// Opens and reads the body of `opened`, which must agree with its header.
pub(super) fn read_body<S: Subject>(
    opened: Opened,
    key: XChaCha20Poly1305,
) -> anyhow::Result<(Header, S::Loaded)> {
    let Opened {
        header,
        header_line,
        prefix,
        input,
        ..
    } = opened;
    let body = sealed::SealedReader::new(input, key, &header_line, prefix);
    let (loaded, reflects) = S::read_body(BufReader::with_capacity(1 << 20, body))?;
    anyhow::ensure!(
        reflects.next_positions == header.next_positions
            && reflects.tails == header.tails
            && reflects.erasures == header.erasures,
        "the snapshot's header and body disagree"
    );
    Ok((header, loaded))
}

/// Writes `picture` sealed into `dir`, synced, then renamed over the previous snapshot.
/// `None` when `subject` folded an erasure the picture predates while it was written (the
/// file is dropped).
pub(super) fn write_file<S: Subject>(
    dir: &Path,
    log: &str,
    key: XChaCha20Poly1305,
    picture: &S::Picture,
    subject: &S,
) -> std::io::Result<Option<Mark>> {
    crate::datadir::create_dir(dir)?;
    let partial = dir.join(format!("{}.partial", S::FILE));
    let file = crate::datadir::file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&partial)?;
    let reflects = picture.reflects();
    let header = Header {
        format: S::FORMAT,
        of: S::OF.to_owned(),
        log: log.to_owned(),
        release: env!("CARGO_PKG_VERSION").to_owned(),
        written_at: chrono::Utc::now(),
        next_positions: reflects.next_positions.clone(),
        tails: reflects.tails,
        erasures: reflects.erasures,
        counts: reflects.counts,
    };
    let header_line = serde_json::to_vec(&header)?;
    let out = BufWriter::with_capacity(1 << 20, file);
    let mut sealer = sealed::SealedWriter::new(out, key, &header_line)?;
    {
        let mut body = BufWriter::with_capacity(64 << 10, &mut sealer);
        picture.write_body(&mut body)?;
        body.flush()?;
    }
    let file = sealer.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    if subject.erasures() > header.erasures {
        std::fs::remove_file(&partial)?;
        return Ok(None);
    }
    std::fs::rename(&partial, dir.join(S::FILE))?;
    File::open(dir)?.sync_all()?;
    Ok(Some(Mark {
        positions: header.next_positions,
        erasures: header.erasures,
        written: Instant::now(),
    }))
}
