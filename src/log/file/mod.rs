//! The embedded log: append-only segment files in a data directory.
//!
//! Each segment is named after the position of its first record (`00000000000000000000.log`).
//! A record is framed as `[length: u32 LE][crc32: u32 LE][JSON payload]`. One writer thread
//! owns the active segment: it takes every append waiting at that moment, writes them with one
//! `write`, makes them durable with one `fdatasync` (group commit), and only then acknowledges
//! them. On open, every segment is scanned (`scan`): damage at the end of the last segment with
//! no whole record after it (a torn write, never acknowledged) is cut back to the last whole
//! record, the cut bytes kept beside it; any other damage stops start-up with a message that
//! says where, and the operator decides (`repair`). An exclusive lock on the directory keeps a
//! second process out. Everything here is readable by its owner only.

mod known;
mod reader;
mod repair;
mod scan;

pub use repair::{check, repair, CheckReport, Repair, SegmentReport};
pub use scan::{frame, read_frame, segments, Damage, MAX_RECORD_BYTES};

use super::{EventLog, HeaderEntry, LogError, RecordEntry};
use async_trait::async_trait;
use fs2::FileExt;
use known::KnownRecords;
use reader::{read_blocking, read_headers_blocking, Decoded};
use roster_events::chain::Encoded;
use roster_projections::LogEntry;
use scan::{list_segments, scan, segment_path, HEADER};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::{oneshot, watch};

/// How many records apart the in-memory sparse index keeps entry points: a read passes over
/// at most this many frames before its first (24 bytes of index per 64 records).
const INDEX_EVERY: u64 = 64;
/// The read buffer of one read of the log.
const READ_BUFFER: usize = 256 << 10;

/// Tuning for the file log.
#[derive(Clone, Debug)]
pub struct FileLogOptions {
    /// A segment is closed and a new one started once it reaches this size.
    pub segment_bytes: u64,
}

impl Default for FileLogOptions {
    fn default() -> Self {
        FileLogOptions {
            segment_bytes: 128 << 20,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Mark {
    position: u64,
    segment: u64,
    offset: u64,
}

struct Shared {
    dir: PathBuf,
    /// Base positions of every segment, ascending.
    segments: Vec<u64>,
    /// Entry points for reads: segment starts and every INDEX_EVERY records.
    marks: Vec<Mark>,
}

struct AppendRequest {
    payloads: Vec<Arc<[u8]>>,
    reply: oneshot::Sender<Result<u64, LogError>>,
}

/// The embedded, durable, segment-file log.
pub struct FileLog {
    shared: Arc<Mutex<Shared>>,
    /// Set by the writer thread when an fsync failed.
    poisoned: Arc<std::sync::atomic::AtomicBool>,
    tx: Mutex<Option<mpsc::Sender<AppendRequest>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    end: watch::Receiver<u64>,
    /// Held open for the exclusive lock on the directory; dropped by `close`.
    lock: Mutex<Option<File>>,
    /// The records appended lately, with their digests.
    known: Arc<Mutex<KnownRecords>>,
}

/// Takes the exclusive lock on the log folder, which keeps a second process out.
///
/// Fails when the lock file cannot be created or another process holds the lock.
fn lock(dir: &Path) -> Result<File, LogError> {
    let lock = crate::datadir::file_options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("LOCK"))
        .map_err(|e| io("creating LOCK", e))?;
    lock.try_lock_exclusive().map_err(|_| {
        LogError::Unavailable(format!("{} is in use by another process", dir.display()))
    })?;
    Ok(lock)
}

/// Why start-up refuses a damaged segment, where, and what the operator can do.
fn refusal(dir: &Path, path: &Path, d: &Damage, position: u64, last: bool) -> String {
    let data_dir = dir.parent().unwrap_or(dir).display();
    let what = match (d.next_whole, last) {
        (Some(at), _) => format!(
            "{} whole records follow it from byte {at}, so it is not a torn last write",
            d.whole_after
        ),
        (None, false) => "later segments follow it".to_owned(),
        (None, true) => "nothing follows it".to_owned(),
    };
    format!(
        "{} is damaged at byte {} (record {position}: {}); {what}. Roster will not cut \
         acknowledged records on its own. Restore the data directory from a backup, or run \
         `roster log repair --data-dir {data_dir}` to see, and with --yes to make, the cut at \
         byte {} (everything from there on is kept in a folder beside the log, and records from \
         {position} on are gone from the views).",
        path.display(),
        d.offset,
        d.why,
        d.offset
    )
}

/// `name` in `dir`, or `name-<n>` with the first `n` from 2 not taken: bytes set aside by a
/// second cut at the same place and time (a repair redone after a crash, the same damage
/// again at once) go beside the first one's, never over them. Cuts hold the log's lock, so
/// nothing else takes the name in between.
pub(super) fn unused_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    (2..=1000u32)
        .map(|n| dir.join(format!("{name}-{n}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// Cuts a torn last write off the active segment, keeping the cut bytes beside it.
///
/// Fails when the bytes cannot be saved or the segment cannot be truncated.
fn cut_torn_tail(dir: &Path, path: &Path, d: &Damage, len: u64) -> Result<(), LogError> {
    let mut torn = Vec::new();
    let mut f = File::open(path).map_err(|e| io("reading a torn tail", e))?;
    f.seek(SeekFrom::Start(d.offset))
        .and_then(|_| f.read_to_end(&mut torn))
        .map_err(|e| io("reading a torn tail", e))?;
    let name = format!(
        "{}.torn-{}-{}",
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        d.offset,
        chrono::Utc::now().timestamp_millis()
    );
    let side = unused_path(dir, &name);
    let mut out = crate::datadir::file_options()
        .write(true)
        .create_new(true)
        .open(&side)
        .map_err(|e| io("saving a torn tail", e))?;
    out.write_all(&torn)
        .and_then(|_| out.sync_all())
        .and_then(|_| sync_dir(dir))
        .map_err(|e| io("saving a torn tail", e))?;
    tracing::warn!(
        segment = %path.display(), offset = d.offset, bytes = len - d.offset, why = %d.why,
        kept_in = %side.display(),
        "cut a torn last write (no whole record after it) back to the last whole record"
    );
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io("opening a segment to truncate", e))?;
    f.set_len(d.offset)
        .map_err(|e| io("truncating a segment", e))?;
    f.sync_all().map_err(|e| io("syncing a segment", e))
}

fn io(context: &str, e: std::io::Error) -> LogError {
    LogError::Unavailable(format!("{context}: {e}"))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl FileLog {
    /// Opens (or creates) the log in `dir`, recovering from a torn last write: damage in the
    /// last segment with no whole record after it is cut off, and the cut bytes are kept
    /// beside the segment (`<segment>.torn-<offset>`). The folder and its files are made
    /// readable by their owner only.
    ///
    /// Fails when the directory cannot be created or locked (another process has it), or with
    /// `Corrupt`, changing nothing, when a segment is damaged anywhere else: in a segment
    /// other than the last, or with whole records after the damage. The message says where
    /// and what the operator can do (restore a backup, or `roster log repair`).
    pub fn open(dir: impl AsRef<Path>, options: FileLogOptions) -> Result<FileLog, LogError> {
        let dir = dir.as_ref().to_path_buf();
        crate::datadir::create_dir(&dir).map_err(|e| io("creating the log directory", e))?;
        let lock = lock(&dir)?;

        let mut segments = list_segments(&dir).map_err(|e| io("listing the log directory", e))?;
        if segments.is_empty() {
            crate::datadir::file_options()
                .write(true)
                .create_new(true)
                .open(segment_path(&dir, 0))
                .map_err(|e| io("creating a segment", e))?;
            sync_dir(&dir).map_err(|e| io("syncing the log directory", e))?;
            segments.push(0);
        }

        let mut marks = Vec::new();
        let mut position = segments[0];
        let last = segments.len() - 1;
        let mut tail_len = 0;
        let mut scans = scan_all(&dir, &segments).into_iter();
        for (i, &base) in segments.iter().enumerate() {
            let path = segment_path(&dir, base);
            if base != position {
                return Err(LogError::Corrupt(format!(
                    "segment {} starts at {base}, expected {position}",
                    path.display()
                )));
            }
            crate::datadir::tighten(&path).map_err(|e| io("securing a segment", e))?;
            let scan = scans
                .next()
                .expect("a scan per segment")
                .map_err(|e| io("reading a segment", e))?;
            marks.push(Mark {
                position,
                segment: base,
                offset: 0,
            });
            marks.extend(scan.marks.iter().map(|&(position, offset)| Mark {
                position,
                segment: base,
                offset,
            }));
            position += scan.records;
            if let Some(damage) = &scan.damage {
                if i != last || damage.next_whole.is_some() {
                    return Err(LogError::Corrupt(refusal(
                        &dir,
                        &path,
                        damage,
                        position,
                        i == last,
                    )));
                }
                cut_torn_tail(&dir, &path, damage, scan.len)?;
            }
            if i == last {
                tail_len = scan.valid_len;
            }
        }

        let active_base = segments[last];
        let active = OpenOptions::new()
            .append(true)
            .open(segment_path(&dir, active_base))
            .map_err(|e| io("opening the active segment", e))?;
        let shared = Arc::new(Mutex::new(Shared {
            dir: dir.clone(),
            segments,
            marks,
        }));
        let (end_tx, end) = watch::channel(position);
        let poisoned = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<AppendRequest>();
        let writer = Writer {
            shared: shared.clone(),
            dir,
            file: active,
            base: active_base,
            len: tail_len,
            next: position,
            end: end_tx,
            options,
            poisoned: poisoned.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("roster-filelog".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| io("starting the log writer", e))?;
        Ok(FileLog {
            shared,
            poisoned,
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            end,
            lock: Mutex::new(Some(lock)),
            known: Arc::default(),
        })
    }
}

#[async_trait]
impl EventLog for FileLog {
    async fn append_encoded(&self, records: Vec<Encoded>) -> Result<Vec<u64>, LogError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        if records.iter().any(|r| r.bytes.len() > MAX_RECORD_BYTES) {
            return Err(LogError::Unavailable("record too large".into()));
        }
        let payloads: Vec<Arc<[u8]>> = records.iter().map(|r| r.bytes.clone()).collect();
        let n = payloads.len() as u64;
        let (reply, rx) = oneshot::channel();
        {
            let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
            let tx = tx
                .as_ref()
                .ok_or_else(|| LogError::Unavailable("log closed".into()))?;
            tx.send(AppendRequest { payloads, reply })
                .map_err(|_| LogError::Unavailable("log writer stopped".into()))?;
        }
        let first = rx
            .await
            .map_err(|_| LogError::Unavailable("log writer stopped".into()))??;
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remember(first, records.iter().map(|r| (r.record.clone(), r.digest)));
        Ok((first..first + n).collect())
    }

    async fn read(&self, partition: u32, from: u64, max: usize) -> Result<Vec<LogEntry>, LogError> {
        if partition != 0 {
            return Ok(Vec::new());
        }
        self.read_from_files(from, max, true).await
    }

    async fn read_records(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordEntry>, LogError> {
        if partition != 0 {
            return Ok(Vec::new());
        }
        self.read_from_files(from, max, true).await
    }

    async fn read_headers(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<HeaderEntry>, LogError> {
        if partition != 0 {
            return Ok(Vec::new());
        }
        let end = *self.end.borrow();
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || read_headers_blocking(&shared, from, max, end))
            .await
            .map_err(|e| LogError::Unavailable(format!("log reader failed: {e}")))?
    }

    async fn read_as_stored(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<LogEntry>, LogError> {
        if partition != 0 {
            return Ok(Vec::new());
        }
        self.read_from_files(from, max, false).await
    }

    async fn caught_up(&self, _partition: u32, next: u64) -> Result<bool, LogError> {
        Ok(next >= *self.end.borrow())
    }

    fn end(&self, _partition: u32) -> watch::Receiver<u64> {
        self.end.clone()
    }

    /// Each read opens the segments itself and decodes on its own thread.
    fn concurrent_reads(&self) -> usize {
        4
    }

    fn healthy(&self) -> bool {
        !self.poisoned.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn close(&self) {
        // Closing the channel lets the writer thread finish what it has, then exit.
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
        // Closing the lock file releases the directory for the next process.
        self.lock.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

impl FileLog {
    /// Reads from the segment files (off the async workers: it blocks), taking the records
    /// this process appended (and their digests) from memory when `known_records`.
    ///
    /// Fails as [`EventLog::read`] does.
    async fn read_from_files<T: Decoded + 'static>(
        &self,
        from: u64,
        max: usize,
        known_records: bool,
    ) -> Result<Vec<T>, LogError> {
        let end = *self.end.borrow();
        let shared = self.shared.clone();
        let known = known_records.then(|| self.known.clone());
        tokio::task::spawn_blocking(move || {
            read_blocking(&shared, from, max, end, known.as_deref())
        })
        .await
        .map_err(|e| LogError::Unavailable(format!("log reader failed: {e}")))?
    }
}

impl Drop for FileLog {
    fn drop(&mut self) {
        // Closing the channel stops the writer thread after it finishes what it has.
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

struct Writer {
    shared: Arc<Mutex<Shared>>,
    dir: PathBuf,
    file: File,
    base: u64,
    len: u64,
    next: u64,
    end: watch::Sender<u64>,
    options: FileLogOptions,
    /// Set when an fsync failed: what reached the disk is then unknown, so no later append
    /// may be acknowledged on top of it until a restart has recovered the tail.
    poisoned: Arc<std::sync::atomic::AtomicBool>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<AppendRequest>) {
        let mut buf = Vec::with_capacity(1 << 20);
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while let Ok(more) = rx.try_recv() {
                batch.push(more);
            }
            let result = self.write_batch(&batch, &mut buf);
            for (req, first) in batch.into_iter().zip(result) {
                let _ = req.reply.send(first);
            }
        }
    }

    /// Writes every request of the batch and syncs once. Returns each request's first position.
    fn write_batch(
        &mut self,
        batch: &[AppendRequest],
        buf: &mut Vec<u8>,
    ) -> Vec<Result<u64, LogError>> {
        let fail = |e: LogError| {
            batch
                .iter()
                .map(|_| Err(LogError::Unavailable(e.to_string())))
                .collect()
        };
        if self.len >= self.options.segment_bytes {
            if let Err(e) = self.roll() {
                return fail(e);
            }
        }
        buf.clear();
        let mut firsts = Vec::with_capacity(batch.len());
        let mut next = self.next;
        let mut marks = Vec::new();
        let mut offset = self.len;
        for req in batch {
            firsts.push(next);
            for p in &req.payloads {
                frame(p, buf);
                next += 1;
                offset += (HEADER + p.len()) as u64;
                if next.is_multiple_of(INDEX_EVERY) {
                    marks.push(Mark {
                        position: next,
                        segment: self.base,
                        offset,
                    });
                }
            }
        }
        if self.poisoned.load(std::sync::atomic::Ordering::SeqCst) {
            return fail(LogError::Unavailable(
                "an earlier fsync failed; the log refuses writes until Roster restarts".into(),
            ));
        }
        if let Err(e) = self.file.write_all(buf) {
            // Nothing was synced: cut what reached the file so the next append starts from a
            // whole record, as recovery would.
            let _ = self.file.set_len(self.len);
            return fail(io("appending to the log", e));
        }
        if let Err(e) = self.file.sync_data() {
            // After a failed fsync the kernel may have dropped dirty pages and cleared the
            // error: retrying could acknowledge data that never reached the disk. Refuse
            // every later append; a restart re-reads and recovers the tail.
            self.poisoned
                .store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::error!(error = %e, "fsync of the event log failed; refusing further writes until restart");
            return fail(io("syncing the log", e));
        }
        self.len = offset;
        self.next = next;
        self.shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .marks
            .extend(marks);
        self.end.send_replace(next);
        firsts.into_iter().map(Ok).collect()
    }

    fn roll(&mut self) -> Result<(), LogError> {
        let path = segment_path(&self.dir, self.next);
        let file = crate::datadir::file_options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io("creating a segment", e))?;
        sync_dir(&self.dir).map_err(|e| io("syncing the log directory", e))?;
        self.file = file;
        self.base = self.next;
        self.len = 0;
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        shared.segments.push(self.base);
        shared.marks.push(Mark {
            position: self.base,
            segment: self.base,
            offset: 0,
        });
        Ok(())
    }
}

/// Scans every segment (each from the position its name gives), on as many threads as
/// there are cores: start-up reads the whole log once, and the segments are independent.
fn scan_all(dir: &Path, segments: &[u64]) -> Vec<std::io::Result<scan::Scan>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(segments.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, std::io::Result<scan::Scan>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&base) = segments.get(i) else {
                            return out;
                        };
                        out.push((i, scan(&segment_path(dir, base), base, INDEX_EVERY)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a segment scan does not panic"))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, scan)| scan).collect()
}

#[cfg(test)]
mod tests {
    use super::unused_path;

    #[test]
    fn a_taken_name_gets_the_next_free_number() {
        let dir = tempfile::tempdir().unwrap();
        let name = "00000000000000000000.log.torn-40-1764000000000";
        assert_eq!(unused_path(dir.path(), name), dir.path().join(name));
        std::fs::write(dir.path().join(name), b"a").unwrap();
        let second = unused_path(dir.path(), name);
        assert_eq!(second, dir.path().join(format!("{name}-2")));
        std::fs::create_dir(&second).unwrap();
        assert_eq!(
            unused_path(dir.path(), name),
            dir.path().join(format!("{name}-3"))
        );
    }
}
