//! The log record and the directory-sequence chain.
//!
//! A record carries all events of one command, so a crash never leaves half a command in the
//! log. Every record names the directory sequence number it expects to follow and the id of
//! the record it was decided on top of. Every reader applies one deterministic rule
//! ([`ChainState::admit`]): a record is valid only if it follows the last valid record of its
//! directory. An invalid record (a stale, duplicate or orphaned write) is ignored by every
//! projection and consumer. This gives compare-and-set on any append-only log, Kafka
//! included, without broker transactions (docs/adr/0001 and 0005).

use crate::chain::Digest;
use crate::envelope::Envelope;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

/// One command's events, appended atomically.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Unique per decided command, so a writer can recognise its own record when reading
    /// back (a record sent again after an unknown outcome keeps its id).
    pub record_id: Uuid,
    pub directory: String,
    /// The directory sequence number of the record this one follows (0 for the first).
    /// The record's own sequence number is `follows + 1`.
    pub follows: u64,
    /// The `record_id` of the record this one follows (absent for a directory's first record,
    /// and in records written before Roster 0.2). A writer that appends several records at
    /// once chains them by id: if an earlier one loses its race, the later ones are invalid
    /// too, though their numbers would fit after the winner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<Uuid>,
    pub events: Vec<Envelope>,
    /// Lower-case hex of the digest of the previous valid record of the directory: the link
    /// that makes removing or reordering records evident (docs/adr/0012). Absent for a
    /// directory's first record and in records written before Roster 0.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_digest: Option<String>,
    /// The record's seal ([`crate::chain`]); absent in records written before Roster 0.3.
    /// Always the last field: the body the seal covers is the stored bytes without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl Record {
    /// The directory sequence number this record takes if it is valid.
    pub fn seq(&self) -> u64 {
        self.follows + 1
    }

    /// What the chain rule and the seal need of this record.
    pub fn header(&self) -> RecordHeader {
        RecordHeader {
            record_id: self.record_id,
            directory: self.directory.clone(),
            follows: self.follows,
            prev: self.prev,
            prev_digest: self.prev_digest.clone(),
            mac: self.mac.clone(),
        }
    }
}

/// A record without its events: what the directory-sequence rule and the digest chain need.
/// Decoding only this from stored bytes passes over the events (verification reads it).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct RecordHeader {
    pub record_id: Uuid,
    pub directory: String,
    pub follows: u64,
    #[serde(default)]
    pub prev: Option<Uuid>,
    #[serde(default)]
    pub prev_digest: Option<String>,
    #[serde(default)]
    pub mac: Option<String>,
}

impl RecordHeader {
    /// The directory sequence number this record takes if it is valid.
    pub fn seq(&self) -> u64 {
        self.follows + 1
    }

    /// The header of the record stored as `stored`. Roster writes a record's fields in one
    /// order (the events between `prev` and `prev_digest`), so the header is read from the
    /// fields before the events and the fixed-size ones after them, and the events are not
    /// scanned at all; bytes of any other shape are decoded in full. Verification checks the
    /// whole body against its seal, so events it does not read are still covered.
    ///
    /// Fails when the bytes are not a record.
    pub fn from_stored(stored: &[u8]) -> Result<RecordHeader, serde_json::Error> {
        match Self::fast(stored) {
            Some(header) => Ok(header),
            None => serde_json::from_slice(stored),
        }
    }

    fn fast(stored: &[u8]) -> Option<RecordHeader> {
        let Prefix {
            record_id,
            directory,
            follows,
            prev,
        } = Prefix::read(stored)?;
        let mut rest = stored.strip_suffix(b"}")?;
        let mut tail = |name: &[u8]| -> Option<String> {
            // `,"<name>":"<64 hex digits>"` at the end of what is left.
            let len = name.len() + 6 + 64;
            let field = rest.len().checked_sub(len).map(|start| &rest[start..])?;
            let hex = field
                .strip_prefix(b",\"")?
                .strip_prefix(name)?
                .strip_prefix(b"\":\"")?
                .strip_suffix(b"\"")?;
            // Checked without a branch per digit: the digits of a digest are random.
            crate::chain::unhex32(hex)?;
            rest = &rest[..rest.len() - len];
            std::str::from_utf8(hex).ok().map(str::to_owned)
        };
        let mac = tail(b"mac");
        let prev_digest = tail(b"prev_digest");
        // What is left ends with the events array.
        rest.ends_with(b"]").then_some(RecordHeader {
            record_id,
            directory,
            follows,
            prev,
            prev_digest,
            mac,
        })
    }
}

/// The fields of a stored record before its events, read from the bytes in the one shape
/// Roster writes them (`{"record_id":"…","directory":"…","follows":N,["prev":"…",]"events":[`),
/// or not at all: verification reads millions of headers, and a general JSON decoder costs
/// more than hashing the rest of the record. Anything the decoder would read differently
/// (an escape in the directory, a number with a leading zero, `"prev":null`) is not this
/// shape, and the record is decoded in full.
struct Prefix {
    record_id: Uuid,
    directory: String,
    follows: u64,
    prev: Option<Uuid>,
}

impl Prefix {
    fn read(stored: &[u8]) -> Option<Prefix> {
        let rest = stored.strip_prefix(b"{\"record_id\":\"")?;
        let (record_id, rest) = uuid_then_quote(rest)?;
        let rest = rest.strip_prefix(b",\"directory\":\"")?;
        let end = memchr::memchr(b'"', rest)?;
        let (directory, rest) = (&rest[..end], &rest[end + 1..]);
        // An escape or a control character: the decoder's business.
        if directory.iter().any(|&b| b == b'\\' || b < 0x20) {
            return None;
        }
        let directory = std::str::from_utf8(directory).ok()?.to_owned();
        let rest = rest.strip_prefix(b",\"follows\":")?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || (digits > 1 && rest[0] == b'0') {
            return None;
        }
        let follows = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
        let rest = &rest[digits..];
        let (prev, rest) = match rest.strip_prefix(b",\"prev\":\"") {
            Some(rest) => {
                let (prev, rest) = uuid_then_quote(rest)?;
                (Some(prev), rest)
            }
            None => (None, rest),
        };
        rest.starts_with(b",\"events\":[").then_some(Prefix {
            record_id,
            directory,
            follows,
            prev,
        })
    }
}

/// A hyphenated UUID and the quote that closes its string, and what follows.
fn uuid_then_quote(bytes: &[u8]) -> Option<(Uuid, &[u8])> {
    let (text, rest) = bytes.split_at_checked(36)?;
    Some((Uuid::try_parse_ascii(text).ok()?, rest.strip_prefix(b"\"")?))
}

/// The head of one directory's chain: its last valid sequence number, record id and digest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub record_id: Option<Uuid>,
    /// The digest of the last valid record's body ([`crate::chain::body_digest`]), which
    /// the next record commits to (absent where it was not kept, as in views written before
    /// Roster 0.3).
    pub digest: Option<Digest>,
}

impl ChainHead {
    /// Applies the validity rule to one record of this directory, stored with body digest
    /// `digest`: true (and the head moves to it) if `record` follows this head; false if it is
    /// stale, a duplicate, or was decided on top of a record that lost.
    pub fn admit(&mut self, record: &Record, digest: Digest) -> bool {
        self.step(record.follows, record.prev, record.record_id, digest)
    }

    /// [`ChainHead::admit`] for a record read without its events.
    pub fn admit_header(&mut self, header: &RecordHeader, digest: Digest) -> bool {
        self.step(header.follows, header.prev, header.record_id, digest)
    }

    fn step(&mut self, follows: u64, prev: Option<Uuid>, record_id: Uuid, digest: Digest) -> bool {
        let linked = match prev {
            Some(prev) => self.record_id == Some(prev),
            // Records from before `prev` existed: the number alone decides.
            None => true,
        };
        if follows == self.seq && linked {
            self.seq += 1;
            self.record_id = Some(record_id);
            self.digest = Some(digest);
            true
        } else {
            false
        }
    }
}

/// The chain head of every directory a reader has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainState {
    heads: HashMap<String, ChainHead>,
}

impl ChainState {
    /// Applies the validity rule: true (and the chain advances) if `record` follows the last
    /// valid record of its directory; false if it is stale or a duplicate.
    pub fn admit(&mut self, record: &Record, digest: Digest) -> bool {
        match self.heads.get_mut(&record.directory) {
            Some(head) => head.admit(record, digest),
            None => {
                let mut head = ChainHead::default();
                let admitted = head.admit(record, digest);
                self.heads.insert(record.directory.clone(), head);
                admitted
            }
        }
    }

    /// Sets the head of `directory`, as a stored copy of the state recorded it (a view
    /// snapshot read back).
    pub fn restore(&mut self, directory: String, head: ChainHead) {
        self.heads.insert(directory, head);
    }

    /// The last valid sequence number of `directory` (0 if it has none).
    pub fn last(&self, directory: &str) -> u64 {
        self.head(directory).seq
    }

    /// Every directory's chain head, in no particular order.
    pub fn heads(&self) -> impl Iterator<Item = (&str, ChainHead)> + '_ {
        self.heads.iter().map(|(d, h)| (d.as_str(), *h))
    }

    /// The chain head of `directory` (sequence 0 and no id if it has none).
    pub fn head(&self, directory: &str) -> ChainHead {
        self.heads.get(directory).copied().unwrap_or_default()
    }
}

/// The log partition a directory lives in, out of `partitions`: FNV-1a (64-bit) of the
/// directory name's UTF-8 bytes, modulo the partition count. Roster computes it itself, so
/// it never depends on a client library's partitioner; it must never change, or a
/// directory's records would be split across partitions.
pub fn partition_of(directory: &str, partitions: u32) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = directory
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    (hash % u64::from(partitions.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A digest for records that no log stored.
    const D: Digest = [0; 32];

    fn rec(dir: &str, follows: u64) -> Record {
        Record {
            record_id: Uuid::now_v7(),
            directory: dir.into(),
            follows,
            prev: None,
            events: vec![],
            prev_digest: None,
            mac: None,
        }
    }

    fn after(prev: &Record) -> Record {
        Record {
            prev: Some(prev.record_id),
            ..rec(&prev.directory, prev.follows + 1)
        }
    }

    #[test]
    fn records_are_valid_only_when_they_follow_the_last_valid_one_of_their_directory() {
        let mut chain = ChainState::default();
        assert!(chain.admit(&rec("a", 0), D));
        assert!(chain.admit(&rec("b", 0), D));
        assert!(
            !chain.admit(&rec("a", 0), D),
            "a duplicate of seq 1 is stale"
        );
        assert!(chain.admit(&rec("a", 1), D));
        assert!(!chain.admit(&rec("a", 5), D), "a gap is invalid too");
        assert!(chain.admit(&rec("a", 2), D));
        assert_eq!(chain.last("a"), 3);
        assert_eq!(chain.last("b"), 1);
        assert_eq!(chain.last("c"), 0);
    }

    #[test]
    fn a_record_decided_on_top_of_a_losing_record_is_invalid_though_its_number_fits() {
        let mut chain = ChainState::default();
        let base = rec("d", 0);
        assert!(chain.admit(&base, D));
        // Writer A decides two records on top of `base`; writer B one. B's lands first.
        let a1 = after(&base);
        let a2 = after(&a1);
        let b1 = after(&base);
        assert!(chain.admit(&b1, D));
        assert!(!chain.admit(&a1, D), "a1 lost the race for seq 2");
        assert!(
            !chain.admit(&a2, D),
            "a2 follows seq 2 by number, but not b1 by id"
        );
        assert_eq!(chain.head("d").record_id, Some(b1.record_id));
        let b2 = after(&b1);
        assert!(chain.admit(&b2, D));
        assert!(
            !chain.admit(&b2, D),
            "the same record sent twice counts once"
        );
    }

    #[test]
    fn a_header_decoded_from_stored_bytes_is_the_records_header() {
        let r = Record {
            prev_digest: Some("ab".repeat(32)),
            mac: Some("cd".repeat(32)),
            ..after(&rec("h", 4))
        };
        let stored = serde_json::to_vec(&r).unwrap();
        let h: RecordHeader = serde_json::from_slice(&stored).unwrap();
        assert_eq!(h, r.header());
        assert_eq!(
            RecordHeader::fast(&stored),
            Some(r.header()),
            "read without the events"
        );
        for (prev_digest, mac) in [(None, None), (Some("ab".repeat(32)), None)] {
            let plain = Record {
                prev_digest,
                mac,
                ..r.clone()
            };
            let stored = serde_json::to_vec(&plain).unwrap();
            assert_eq!(RecordHeader::fast(&stored), Some(plain.header()));
        }
        // Another shape is decoded in full, the same.
        let reordered = serde_json::to_vec(&serde_json::json!({
            "mac": r.mac, "events": [], "prev_digest": r.prev_digest, "follows": r.follows,
            "directory": r.directory, "record_id": r.record_id, "prev": r.prev,
        }))
        .unwrap();
        assert_eq!(RecordHeader::fast(&reordered), None);
        assert_eq!(RecordHeader::from_stored(&reordered).unwrap(), r.header());
        // What the fast path leaves to the decoder, the decoder reads (or refuses) as ever.
        let text = String::from_utf8(stored.clone()).unwrap();
        let id = r.record_id.to_string();
        for (from, to, decodes) in [
            ("\"directory\":\"h\"", "\"directory\":\"\\u0068\"", true),
            ("\"directory\":\"h\"", "\"directory\":\"h\\n\"", true),
            ("\"follows\":5", "\"follows\":05", false),
            ("\"follows\":5", "\"follows\":99999999999999999999", false),
            ("\"directory\":\"h\"", "\"directory\":\"h\u{1}\"", false),
            (id.as_str(), &id.to_uppercase(), true),
        ] {
            assert!(text.contains(from), "{from}");
            let changed = text.replacen(from, to, 1);
            let serde: Result<RecordHeader, _> = serde_json::from_str(&changed);
            let read = RecordHeader::from_stored(changed.as_bytes());
            assert_eq!(read.is_ok(), decodes, "{to}");
            assert_eq!(read.ok(), serde.ok(), "{to}");
        }
        let mut no_prev = r.clone();
        no_prev.prev = None;
        let null_prev = String::from_utf8(serde_json::to_vec(&no_prev).unwrap())
            .unwrap()
            .replacen(",\"events\"", ",\"prev\":null,\"events\"", 1);
        assert_eq!(RecordHeader::fast(null_prev.as_bytes()), None);
        assert_eq!(
            RecordHeader::from_stored(null_prev.as_bytes()).unwrap(),
            no_prev.header()
        );
        assert!(RecordHeader::from_stored(b"{\"x\":1}").is_err());
        assert_eq!(h.seq(), r.seq());
        let (mut a, mut b) = (ChainHead::default(), ChainHead::default());
        a.seq = 5;
        a.record_id = r.prev;
        b.seq = 5;
        b.record_id = r.prev;
        assert_eq!(a.admit(&r, D), b.admit_header(&h, D));
        assert_eq!(a, b);
    }

    #[test]
    fn records_written_before_prev_existed_still_decode_and_chain_by_number() {
        let old = r#"{"record_id":"01890a5d-ac96-774b-bcce-b302099a8057","directory":"default","follows":0,"events":[]}"#;
        let r: Record = serde_json::from_str(old).unwrap();
        assert_eq!(r.prev, None);
        let mut chain = ChainState::default();
        assert!(chain.admit(&r, D));
        assert!(!serde_json::to_string(&r).unwrap().contains("prev"));
    }

    #[test]
    fn the_partition_hash_is_stable() {
        // Pinned values: changing the hash would move directories between partitions.
        assert_eq!(partition_of("default", 1), 0);
        assert_eq!(partition_of("default", 3), 0);
        assert_eq!(partition_of("default", 12), 6);
        let spread: std::collections::HashSet<u32> = (0..100)
            .map(|i| partition_of(&format!("dir-{i}"), 8))
            .collect();
        assert_eq!(
            spread.len(),
            8,
            "100 directories use every one of 8 partitions"
        );
        assert!((0..100).all(|i| partition_of(&format!("dir-{i}"), 8) < 8));
    }

    /// One step of a multi-writer schedule: a writer reads the log so far and adopts its head,
    /// or appends a batch chained on the head it last adopted (sometimes twice, as a writer
    /// does after an unknown outcome).
    #[derive(Clone, Debug)]
    enum Step {
        Sync(usize),
        Append {
            writer: usize,
            len: usize,
            twice: bool,
        },
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            (0..3usize).prop_map(Step::Sync),
            (0..3usize, 1..4usize, proptest::bool::weighted(0.2))
                .prop_map(|(writer, len, twice)| Step::Append { writer, len, twice }),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Whatever the interleaving of writers, the valid records form one chain, no valid
        /// record follows a record of its own batch that lost, and a record sent twice counts
        /// at most once.
        #[test]
        fn concurrent_writers_leave_one_chain_and_never_build_on_a_loser(
            steps in proptest::collection::vec(step(), 1..60),
        ) {
            let mut log: Vec<Record> = Vec::new();
            let mut heads = [ChainHead::default(); 3];
            for s in &steps {
                match *s {
                    Step::Sync(w) => {
                        let mut head = ChainHead::default();
                        for r in &log {
                            head.admit(r, D);
                        }
                        heads[w] = head;
                    }
                    Step::Append { writer, len, twice } => {
                        let head = heads[writer];
                        let mut prev = head.record_id;
                        let mut batch = Vec::new();
                        for i in 0..len {
                            let r = Record {
                                prev,
                                ..rec("d", head.seq + i as u64)
                            };
                            prev = Some(r.record_id);
                            batch.push(r);
                        }
                        log.extend(batch.iter().cloned());
                        if twice {
                            log.extend(batch);
                        }
                    }
                }
            }
            let mut head = ChainHead::default();
            let mut valid: Vec<&Record> = Vec::new();
            for r in &log {
                if head.admit(r, D) {
                    valid.push(r);
                }
            }
            // Each valid record follows the previous valid one by number and by id. Within a
            // batch `prev` is the batch's previous record, so no valid record follows one of
            // its batch that lost.
            let mut seen = std::collections::HashSet::new();
            for (i, r) in valid.iter().enumerate() {
                proptest::prop_assert_eq!(r.follows, i as u64);
                let expected_prev = if i == 0 { None } else { Some(valid[i - 1].record_id) };
                proptest::prop_assert_eq!(r.prev, expected_prev);
                proptest::prop_assert!(seen.insert(r.record_id), "a record counted twice");
            }
        }
    }
}
