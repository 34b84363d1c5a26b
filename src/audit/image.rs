//! The audit index written out and read back: the body of the audit snapshot (sealed beside
//! the view snapshot, [`crate::snapshot::audit`]); start-up loads it and the index folds only
//! the log after it.
//!
//! A [`Picture`] is taken in steps, so that the fold never waits long: under the index's read
//! lock only what it reflects (per partition the next position, the tail digest, the chain
//! heads, the erasures and how many entries; how many strings), then the entries and the
//! strings are copied out a chunk at a time, each chunk under the read lock for a moment.
//! That is one state because the index only ever appends; the one change to an entry (an
//! erasure taking a name off) counts an erasure, and a snapshot that reflects fewer erasures
//! than the index is dropped.
//!
//! The body is a sequence of frames, each a little-endian `u32` length and that many bytes of
//! postcard: the head, the entries of each partition in chunks, the strings in chunks (a
//! string no entry names any more, such as an erased person's name, is written as absent), and
//! an end frame with the counts again, so a body cut short is refused. What a fold derives
//! from the entries (the lists by resource, actor and token, the running latest time) is
//! derived again on reading ([`PartitionIndex::restored`]).

use super::chunked::Chunked;
use super::index::{Entry, Folded, Interner, PartitionIndex, Sym, NONE, NO_ENTRY};
use super::{Audit, State};
use roster_events::chain::Digest;
use roster_events::{ChainHead, ChainState};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::sync::Arc;
use uuid::Uuid;

/// The version of the body; a reader refuses any other.
pub const FORMAT: u32 = 1;
/// Entries or strings per frame.
const CHUNK: usize = 1 << 14;
/// The longest frame read.
const MAX_FRAME: usize = 64 << 20;

#[derive(Serialize, Deserialize)]
struct Head {
    format: u32,
    partitions: Vec<PartitionHead>,
    strings: u64,
}

#[derive(Serialize, Deserialize)]
struct PartitionHead {
    next: u64,
    tail: Option<Digest>,
    erasures: u64,
    /// Directory, sequence, record id and digest of each chain head.
    heads: Vec<(String, u64, Option<Uuid>, Option<Digest>)>,
    entries: u64,
}

#[derive(Serialize, Deserialize, PartialEq)]
struct End {
    entries: u64,
    strings: u64,
}

/// The index at one moment, ready to be written.
pub struct Picture {
    audit: Arc<Audit>,
    head: Head,
}

/// An index read back, to be installed by [`Audit::install`].
pub struct Restored(pub(super) State);

/// What a picture or a stored copy reflects: per partition the next position and the tail
/// digest; the erasures; and how many entries.
pub struct Reflected {
    pub next_positions: Vec<u64>,
    pub tails: Vec<Option<Digest>>,
    pub erasures: u64,
    pub entries: u64,
}

impl Head {
    fn reflected(&self) -> Reflected {
        Reflected {
            next_positions: self.partitions.iter().map(|p| p.next).collect(),
            tails: self.partitions.iter().map(|p| p.tail).collect(),
            erasures: self.partitions.iter().map(|p| p.erasures).sum(),
            entries: self.partitions.iter().map(|p| p.entries).sum(),
        }
    }
}

impl Picture {
    /// Takes what the index reflects now (under its read lock, for a moment).
    pub fn take(audit: &Arc<Audit>) -> Picture {
        let state = audit.read();
        let partitions = state
            .partitions
            .iter()
            .map(|p| PartitionHead {
                next: p.next,
                tail: p.tail,
                erasures: p.erasures,
                heads: p
                    .chain()
                    .heads()
                    .map(|(d, h)| (d.to_owned(), h.seq, h.record_id, h.digest))
                    .collect(),
                entries: p.entries.len() as u64,
            })
            .collect();
        let head = Head {
            format: FORMAT,
            partitions,
            strings: state.strings.len() as u64,
        };
        drop(state);
        Picture {
            audit: audit.clone(),
            head,
        }
    }

    pub fn reflected(&self) -> Reflected {
        self.head.reflected()
    }

    /// Writes the body.
    ///
    /// Fails when `out` fails.
    pub fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        frame(out, &self.head)?;
        // Which strings the written entries name: only those are written.
        let mut named = vec![false; self.head.strings as usize + 1];
        for (p, head) in self.head.partitions.iter().enumerate() {
            let total = head.entries as usize;
            for from in (0..total).step_by(CHUNK) {
                let to = (from + CHUNK).min(total);
                let bytes = {
                    let state = self.audit.read();
                    let chunk: Vec<&Entry> = state.partitions[p]
                        .entries
                        .slices(from, to)
                        .flatten()
                        .collect();
                    for e in &chunk {
                        for sym in syms(e) {
                            if let Some(n) = named.get_mut(sym as usize) {
                                *n = true;
                            }
                        }
                    }
                    encode(&chunk)?
                };
                put(out, &bytes)?;
            }
        }
        let total = self.head.strings as usize;
        for from in (0..total).step_by(CHUNK) {
            let bytes = {
                let state = self.audit.read();
                let chunk = state
                    .strings
                    .slice(from as Sym + 1, CHUNK.min(total - from), |s| {
                        named[s as usize]
                    });
                encode(&chunk)?
            };
            put(out, &bytes)?;
        }
        let entries = self.head.partitions.iter().map(|p| p.entries).sum();
        frame(
            out,
            &End {
                entries,
                strings: self.head.strings,
            },
        )
    }
}

/// Reads back a body [`Picture::write_to`] wrote.
///
/// Fails when a frame does not parse, the format is another release's, or the body is cut
/// short, runs on, or does not fit together.
pub fn read(input: &mut impl Read) -> anyhow::Result<(Restored, Reflected)> {
    let mut buf = Vec::new();
    let head: Head = next(input, &mut buf)?;
    anyhow::ensure!(
        head.format == FORMAT,
        "the audit index is in format {}; this release reads format {FORMAT}",
        head.format
    );
    let mut entries_of = Vec::with_capacity(head.partitions.len());
    for p in &head.partitions {
        let total = p.entries as usize;
        let mut entries: Chunked<Entry> = Chunked::default();
        while entries.len() < total {
            let chunk: Vec<Entry> = next(input, &mut buf)?;
            anyhow::ensure!(
                !chunk.is_empty() && entries.len() + chunk.len() <= total,
                "a partition holds more entries than its head says"
            );
            for e in chunk {
                entries.push(e);
            }
        }
        entries_of.push(entries);
    }
    let total = head.strings as usize;
    let mut strings: Vec<Option<String>> = Vec::with_capacity(total);
    while strings.len() < total {
        let chunk: Vec<Option<String>> = next(input, &mut buf)?;
        anyhow::ensure!(
            !chunk.is_empty() && strings.len() + chunk.len() <= total,
            "the index holds more strings than its head says"
        );
        strings.extend(chunk);
    }
    let end: End = next(input, &mut buf)?;
    let entries: u64 = head.partitions.iter().map(|p| p.entries).sum();
    anyhow::ensure!(
        end == End {
            entries,
            strings: head.strings
        },
        "the end frame does not match the head"
    );
    anyhow::ensure!(input.read(&mut [0u8; 1])? == 0, "data after the end frame");
    for entries in &entries_of {
        fits(entries, head.strings)?;
    }
    let reflected = head.reflected();
    let partitions = head
        .partitions
        .into_iter()
        .zip(entries_of)
        .map(|(p, entries)| {
            let mut chain = ChainState::default();
            for (dir, seq, record_id, digest) in p.heads {
                let head = ChainHead {
                    seq,
                    record_id,
                    digest,
                };
                chain.restore(dir, head);
            }
            let folded = Folded {
                next: p.next,
                tail: p.tail,
                erasures: p.erasures,
                chain,
            };
            PartitionIndex::restored(folded, entries)
        })
        .collect();
    let state = State {
        partitions,
        strings: Interner::restored(strings),
    };
    Ok((Restored(state), reflected))
}

/// Every string an entry names.
fn syms(e: &Entry) -> [Sym; 7] {
    [
        e.directory,
        e.actor,
        e.source,
        e.token,
        e.ip,
        e.user_agent,
        e.name,
    ]
}

/// Refuses entries that name a string the index does not hold or point to a later entry: a
/// query would fail on them.
fn fits(entries: &Chunked<Entry>, strings: u64) -> anyhow::Result<()> {
    for (i, e) in entries.iter().enumerate() {
        anyhow::ensure!(
            syms(e).iter().all(|&s| u64::from(s) <= strings),
            "entry {i} names a string the index does not hold"
        );
        anyhow::ensure!(
            e.previous == NO_ENTRY || (e.previous as usize) < i,
            "entry {i} follows an entry after it"
        );
        anyhow::ensure!(e.directory != NONE, "entry {i} has no directory");
    }
    Ok(())
}

fn encode(value: &impl Serialize) -> io::Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| io::Error::other(e.to_string()))
}

/// Writes one frame: the length, then the bytes.
fn put(out: &mut dyn Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("a frame over 4 GiB"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(bytes)
}

fn frame(out: &mut dyn Write, value: &impl Serialize) -> io::Result<()> {
    put(out, &encode(value)?)
}

/// Reads the next frame into `buf` and decodes it.
fn next<T: for<'de> Deserialize<'de>>(
    input: &mut impl Read,
    buf: &mut Vec<u8>,
) -> anyhow::Result<T> {
    let mut len = [0u8; 4];
    input
        .read_exact(&mut len)
        .map_err(|_| anyhow::anyhow!("the audit index is cut short"))?;
    let len = u32::from_le_bytes(len) as usize;
    anyhow::ensure!(len <= MAX_FRAME, "a frame of {len} bytes is too long");
    buf.resize(len, 0);
    input
        .read_exact(buf)
        .map_err(|_| anyhow::anyhow!("the audit index is cut short"))?;
    let (value, rest) = postcard::take_from_bytes(buf)?;
    anyhow::ensure!(rest.is_empty(), "a frame holds more than its value");
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::index::testing::{chained, envelope, user, user_created};
    use crate::log::FileLog;
    use roster_events::{Event, ResourceId, UserErased, UserReplaced};
    use roster_projections::LogEntry;

    /// One record per event (resource, event) of directory `dir` in partition `p`.
    fn records(dir: &str, p: u32, events: Vec<(ResourceId, Event)>) -> Vec<LogEntry> {
        let envelopes = events
            .into_iter()
            .enumerate()
            .map(|(i, (id, event))| {
                let source = format!("source-{p}");
                envelope(dir, id, i as u64 + 1, 1_000 * i as i64, &source, event)
            })
            .collect();
        chained(p, envelopes)
    }

    /// An index of two partitions: one where ada is created and erased and grace created,
    /// one where bob is renamed robert.
    fn index() -> (Arc<Audit>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::open(dir.path(), Default::default()).unwrap();
        let audit = Audit::new(Arc::new(log));
        let (ada, grace, bob) = (ResourceId::new(), ResourceId::new(), ResourceId::new());
        let created = user_created;
        let erased = Event::UserErased(UserErased {
            key: None,
            in_clear: 1,
            reference: None,
        });
        let replaced = Event::UserReplaced(UserReplaced {
            resource: user("robert"),
            mapped: None,
        });
        let first = records(
            "one",
            0,
            vec![
                (ada, created("ada")),
                (grace, created("grace")),
                (ada, erased),
            ],
        );
        let second = records("two", 1, vec![(bob, created("bob")), (bob, replaced)]);
        let mut state = audit.state.write().unwrap();
        let State {
            partitions,
            strings,
        } = &mut *state;
        partitions.resize_with(2, PartitionIndex::default);
        partitions[0].apply(strings, &first);
        partitions[1].apply(strings, &second);
        drop(state);
        (audit, dir)
    }

    fn written(audit: &Arc<Audit>) -> Vec<u8> {
        let mut body = Vec::new();
        Picture::take(audit).write_to(&mut body).unwrap();
        body
    }

    #[test]
    fn an_index_reads_back_as_it_was_folded_without_an_erased_name() {
        let (audit, _dir) = index();
        let body = written(&audit);
        let (restored, reflected) = read(&mut &body[..]).unwrap();
        let (restored, original) = (restored.0, audit.read());
        assert_eq!(restored.partitions, original.partitions);
        assert_eq!(reflected.next_positions, [3, 2]);
        assert_eq!(reflected.tails, [Some([3; 32]), Some([2; 32])]);
        assert_eq!((reflected.erasures, reflected.entries), (1, 5));
        // Every name an entry holds is there under the same symbol; the erased one is not.
        for name in ["grace", "robert", "bob", "one", "two", "source-0"] {
            let sym = original.strings.find(name);
            assert!(sym.is_some(), "{name}");
            assert_eq!(restored.strings.find(name), sym, "{name}");
        }
        assert!(original.strings.find("ada").is_some());
        assert_eq!(restored.strings.find("ada"), None);
        assert!(!String::from_utf8_lossy(&body).contains("ada"));
        assert_eq!(restored.strings.len(), original.strings.len());
    }

    #[test]
    fn a_body_cut_short_run_on_or_changed_is_refused() {
        let (audit, _dir) = index();
        let body = written(&audit);
        for cut in 0..body.len() {
            assert!(read(&mut &body[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = body.clone();
        longer.push(0);
        assert!(read(&mut &longer[..]).is_err());
        // A frame that claims more entries than its partition holds.
        let mut head: Head = postcard::from_bytes(&body[4..]).unwrap();
        head.partitions[0].entries -= 1;
        let head = encode(&head).unwrap();
        let len = u32::from_le_bytes(body[..4].try_into().unwrap()) as usize;
        let mut changed = Vec::new();
        put(&mut changed, &head).unwrap();
        changed.extend_from_slice(&body[4 + len..]);
        assert!(read(&mut &changed[..]).is_err());
    }
}
