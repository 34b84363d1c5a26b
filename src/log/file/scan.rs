//! Segment files read frame by frame: the framing itself, and the scan that start-up recovery
//! and the operator's `roster log check` / `roster log repair` share. A scan says where a
//! segment's whole records end and, when it finds damage, whether any whole record follows
//! it: damage with nothing whole after it is a torn last write; damage with whole records
//! after it is not, and is never cut without an operator.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// Bytes before each payload: its length and its CRC-32, both little-endian u32.
pub(super) const HEADER: usize = 8;
/// A frame longer than this is treated as corruption rather than allocated.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// Frames one payload.
pub fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The name of the segment whose first record is at `base`.
pub(super) fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// The bases of the segments in `dir`, ascending.
///
/// Fails when the folder cannot be listed.
pub(super) fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut segments: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse::<u64>().ok()
        })
        .collect();
    segments.sort_unstable();
    Ok(segments)
}

/// The segments of the log in `dir`, in order: each one's first position and its file.
///
/// Fails when the folder cannot be listed.
pub fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    Ok(list_segments(dir)?
        .into_iter()
        .map(|base| (base, segment_path(dir, base)))
        .collect())
}

/// Reads one frame into `buf`; Ok(None) at a clean end, Err on a torn or corrupt frame.
pub fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> Result<Option<usize>, String> {
    let Some((len, crc)) = read_header(r)? else {
        return Ok(None);
    };
    buf.resize(len, 0);
    r.read_exact(buf).map_err(|_| "torn payload".to_string())?;
    if crc32fast::hash(buf) != crc {
        return Err("checksum mismatch".into());
    }
    Ok(Some(HEADER + len))
}

/// A frame's header: its payload's length (checked to be plausible) and checksum. Ok(None)
/// at a clean end, Err on a torn header or an implausible length.
fn read_header(r: &mut impl Read) -> Result<Option<(usize, u32)>, String> {
    let mut header = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err("torn header".into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    frame_header(&header).map(Some)
}

/// The payload length (checked to be plausible) and checksum in a frame's `HEADER` bytes.
pub(super) fn frame_header(h: &[u8]) -> Result<(usize, u32), String> {
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    if len == 0 || len > MAX_RECORD_BYTES {
        return Err(format!("implausible frame length {len}"));
    }
    Ok((len, crc))
}

/// Damage found in a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Where the first frame that does not read whole starts.
    pub offset: u64,
    /// What is wrong with it.
    pub why: String,
    /// Where the first whole record after the damage starts, if there is one: then the damage
    /// is not a torn last write.
    pub next_whole: Option<u64>,
    /// How many whole records follow, one after another, from `next_whole`.
    pub whole_after: u64,
}

/// What a scan of one segment found.
#[derive(Debug)]
pub(super) struct Scan {
    /// Whole records before any damage.
    pub records: u64,
    /// Bytes up to the end of the last whole record before any damage.
    pub valid_len: u64,
    /// The file's length.
    pub len: u64,
    /// `(position, offset)` after every record whose position + 1 is a multiple of
    /// `index_every`: entry points for reads.
    pub marks: Vec<(u64, u64)>,
    pub damage: Option<Damage>,
}

/// Scans the segment at `path`, whose first record is at `first`.
///
/// Fails when the file cannot be opened or read.
pub(super) fn scan(path: &Path, first: u64, index_every: u64) -> io::Result<Scan> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::new();
    let mut position = first;
    let mut offset = 0u64;
    let mut marks = Vec::new();
    let damage = loop {
        match read_frame(&mut r, &mut buf) {
            Ok(Some(n)) => {
                position += 1;
                offset += n as u64;
                if position.is_multiple_of(index_every) {
                    marks.push((position, offset));
                }
            }
            Ok(None) => break None,
            Err(why) => break Some(why),
        }
    };
    let damage = match damage {
        None => None,
        Some(why) => {
            drop(r);
            let (next_whole, whole_after) = whole_records_after(path, offset)?;
            Some(Damage {
                offset,
                why,
                next_whole,
                whole_after,
            })
        }
    };
    Ok(Scan {
        records: position - first,
        valid_len: offset,
        len,
        marks,
        damage,
    })
}

/// Looks for a whole frame starting anywhere after the damaged frame at `damaged`, and counts
/// the whole frames that follow it one after another. A frame is whole when its length is
/// plausible, it fits in the file, and its checksum matches; inside a record's JSON text the
/// four length bytes are printable characters, which make an implausible length, so the
/// search costs about one pass over the bytes.
///
/// Fails when the file cannot be read.
fn whole_records_after(path: &Path, damaged: u64) -> io::Result<(Option<u64>, u64)> {
    let mut bytes = Vec::new();
    let mut f = File::open(path)?;
    io::Seek::seek(&mut f, io::SeekFrom::Start(damaged))?;
    f.read_to_end(&mut bytes)?;
    let whole_at = |i: usize| -> Option<usize> {
        let h = bytes.get(i..i + HEADER)?;
        let (len, crc) = frame_header(h).ok()?;
        let payload = bytes.get(i + HEADER..i + HEADER + len)?;
        (crc32fast::hash(payload) == crc).then_some(HEADER + len)
    };
    let Some(start) = (1..bytes.len()).find(|&i| whole_at(i).is_some()) else {
        return Ok((None, 0));
    };
    let mut at = start;
    let mut count = 0;
    while let Some(n) = whole_at(at) {
        count += 1;
        at += n;
    }
    Ok((Some(damaged + start as u64), count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn segment(frames: &[&[u8]]) -> (tempfile::TempDir, PathBuf, Vec<u64>) {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 0);
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for f in frames {
            starts.push(bytes.len() as u64);
            frame(f, &mut bytes);
        }
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&bytes)
            .unwrap();
        (dir, path, starts)
    }

    fn flip(path: &Path, at: u64) {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[at as usize] ^= 0x5a;
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_whole_segment_has_no_damage() {
        let (_d, path, _) = segment(&[b"{\"a\":1}", b"{\"b\":2}"]);
        let s = scan(&path, 0, 1).unwrap();
        assert_eq!((s.records, s.valid_len, s.len), (2, 30, 30));
        assert_eq!(s.marks, [(1, 15), (2, 30)]);
        assert!(s.damage.is_none());
    }

    #[test]
    fn damage_in_the_last_frame_has_nothing_whole_after_it() {
        let (_d, path, starts) = segment(&[b"{\"a\":1}", b"{\"b\":2}", b"{\"c\":3}"]);
        flip(&path, starts[2] + 10);
        let s = scan(&path, 0, 1024).unwrap();
        assert_eq!(s.records, 2);
        let d = s.damage.unwrap();
        assert_eq!(
            (d.offset, d.next_whole, d.whole_after),
            (starts[2], None, 0)
        );
    }

    #[test]
    fn damage_in_the_middle_names_the_whole_records_after_it() {
        let frames: Vec<Vec<u8>> = (0..6)
            .map(|i| format!("{{\"record\":{i},\"pad\":\"{}\"}}", "x".repeat(i * 7)).into_bytes())
            .collect();
        let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        let (_d, path, starts) = segment(&refs);
        // The length field of record 2: the reader loses its footing there.
        flip(&path, starts[2] + 1);
        let s = scan(&path, 0, 1024).unwrap();
        assert_eq!(s.records, 2);
        let d = s.damage.unwrap();
        assert_eq!(d.offset, starts[2]);
        assert_eq!((d.next_whole, d.whole_after), (Some(starts[3]), 3));
    }

    #[test]
    fn zeros_after_the_last_record_are_a_torn_write() {
        let (_d, path, _) = segment(&[b"{\"a\":1}"]);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&[0u8; 4096]).unwrap();
        let d = scan(&path, 0, 1024).unwrap().damage.unwrap();
        assert_eq!((d.offset, d.next_whole), (15, None));
    }
}
