//! Tamper evidence (docs/adr/0012): every record is sealed with an HMAC under the server's
//! key, and commits to the digest of the previous valid record of its directory. A record
//! changed after it was written no longer matches its seal; one removed or moved breaks the
//! link of the record after it; one written by anyone without the key carries no valid seal.
//!
//! A record's *body* is its stored JSON without the seal: Roster writes the seal as the last
//! field, so the body is the stored bytes up to `,"mac":"…"` plus the closing brace, exactly,
//! with no re-serialization (which a later release might do differently). The digest is
//! SHA-256 of the body; the seal is HMAC-SHA256 of the digest.

use crate::record::Record;
use hmac::{KeyInit, Mac};
use sha2::{Digest as _, Sha256};
use std::sync::Arc;

/// SHA-256 of a record's body.
pub type Digest = [u8; 32];

type HmacSha256 = hmac::Hmac<Sha256>;

/// `,"mac":"` + 64 hex digits + `"}`: how a sealed record's stored bytes end.
const SEAL_PREFIX: &[u8] = b",\"mac\":\"";
const SEAL_LEN: usize = SEAL_PREFIX.len() + 64 + 2;

/// The seal at the end of a record's stored bytes, if it has one: (body without the closing
/// brace, the seal's hex digits).
fn split(stored: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = stored.len();
    if n < SEAL_LEN || !stored.ends_with(b"\"}") {
        return None;
    }
    let start = n - SEAL_LEN;
    (&stored[start..start + SEAL_PREFIX.len()] == SEAL_PREFIX)
        .then(|| (&stored[..start], &stored[n - 66..n - 2]))
}

/// The digest of the record stored as `stored` (its body's SHA-256).
pub fn body_digest(stored: &[u8]) -> Digest {
    match split(stored) {
        Some((open, _)) => {
            let mut h = Sha256::new();
            h.update(open);
            h.update(b"}");
            h.finalize().into()
        }
        None => Sha256::digest(stored).into(),
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// A record as the log stores it: the record, its stored bytes, and its body's digest. Cheap
/// to clone (a writer keeps its records until the log has taken them).
#[derive(Clone, Debug)]
pub struct Encoded {
    pub record: Arc<Record>,
    pub bytes: Arc<[u8]>,
    pub digest: Digest,
}

impl Encoded {
    /// `record` encoded as it is (unsealed, or sealed already).
    pub fn plain(record: Record) -> Encoded {
        // A record of plain data always serializes.
        let bytes = serde_json::to_vec(&record).expect("records serialize");
        Encoded {
            digest: body_digest(&bytes),
            record: Arc::new(record),
            bytes: bytes.into(),
        }
    }
}

/// Each byte's value as a hex digit, or `NOT_HEX`: verification decodes two hex fields of every
/// record, so a lookup replaces the branches.
const NOT_HEX: u8 = 0xff;
const HEX_VALUE: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut c = 0;
    while c < 256 {
        table[c] = match c as u8 {
            b @ b'0'..=b'9' => b - b'0',
            b @ b'a'..=b'f' => b - b'a' + 10,
            b @ b'A'..=b'F' => b - b'A' + 10,
            _ => NOT_HEX,
        };
        c += 1;
    }
    table
};

/// The 32 bytes that 64 hex digits spell, if `text` is that.
pub fn unhex32(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0; 32];
    let mut bad = 0;
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (hi, lo) = (
            HEX_VALUE[usize::from(pair[0])],
            HEX_VALUE[usize::from(pair[1])],
        );
        bad |= hi | lo;
        *o = (hi << 4) | (lo & 0xf);
    }
    // A digit's value is below 16; NOT_HEX sets the high bits.
    (bad < 16).then_some(out)
}

/// What a record's seal says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seal {
    /// Sealed with this key, and unchanged since.
    Valid,
    /// No seal (written before seals existed, or by something other than Roster).
    Missing,
    /// A seal that does not match: the record was changed, or another key sealed it.
    Broken,
}

/// The key records are sealed with, derived from the server's secret key.
#[derive(Clone)]
pub struct ChainKey {
    /// HMAC-SHA256 already keyed: each seal starts from a copy (keying costs two blocks).
    keyed: HmacSha256,
}

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(***)")
    }
}

impl ChainKey {
    /// The chain key of a server whose secret key is `secret` (a key of its own, so that the
    /// seal never reveals anything about the key that seals provider credentials).
    pub fn derive(secret: &[u8]) -> ChainKey {
        let key = Self::mac_with(secret, b"roster audit chain v1");
        ChainKey {
            keyed: <HmacSha256 as KeyInit>::new_from_slice(&key).expect("HMAC takes any key"),
        }
    }

    /// A key of its own for `purpose`, derived from the server's secret key as the chain key
    /// is (HMAC-SHA256 keyed by the secret, over a label naming the purpose): knowing one
    /// derived key reveals nothing of the secret or of another derived key.
    pub fn derive_subkey(secret: &[u8], purpose: &[u8]) -> [u8; 32] {
        Self::mac_with(secret, purpose)
    }

    fn mac_with(key: &[u8], data: &[u8]) -> [u8; 32] {
        // HMAC takes a key of any length.
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
        m.update(data);
        m.finalize().into_bytes().into()
    }

    /// Seals `record` (whose `prev_digest` is already set) and encodes it once: the stored
    /// bytes are its body with the seal spliced in as the last field, exactly as the record
    /// with its seal serializes. The digest is the one its successor commits to.
    pub fn seal(&self, mut record: Record) -> Encoded {
        record.mac = None;
        // A record of plain data always serializes, as an object with fields.
        let mut bytes = serde_json::to_vec(&record).expect("records serialize");
        let digest: Digest = Sha256::digest(&bytes).into();
        let mut m = self.keyed.clone();
        m.update(&digest);
        let mac = hex(&m.finalize().into_bytes());
        bytes.pop();
        bytes.extend_from_slice(SEAL_PREFIX);
        bytes.extend_from_slice(mac.as_bytes());
        bytes.extend_from_slice(b"\"}");
        record.mac = Some(mac);
        Encoded {
            record: Arc::new(record),
            bytes: bytes.into(),
            digest,
        }
    }

    /// Checks the seal of the record stored as `stored`, whose body digest is `digest`.
    pub fn check(&self, stored_seal: Option<&str>, digest: &Digest) -> Seal {
        let Some(seal) = stored_seal else {
            return Seal::Missing;
        };
        let Some(tag) = unhex32(seal.as_bytes()) else {
            return Seal::Broken;
        };
        let mut m = self.keyed.clone();
        m.update(digest);
        // Constant time.
        match m.verify_slice(&tag) {
            Ok(()) => Seal::Valid,
            Err(_) => Seal::Broken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            record_id: uuid::Uuid::now_v7(),
            directory: "default".into(),
            follows: 3,
            prev: Some(uuid::Uuid::now_v7()),
            events: vec![],
            prev_digest: Some(hex(&[7; 32])),
            mac: None,
        }
    }

    #[test]
    fn a_sealed_record_checks_out_from_its_stored_bytes_and_a_changed_one_does_not() {
        let key = ChainKey::derive(b"0123456789abcdef0123456789abcdef");
        let sealed = key.seal(record());
        let digest = sealed.digest;
        let stored = sealed.bytes.to_vec();
        assert_eq!(
            stored,
            serde_json::to_vec(&*sealed.record).unwrap(),
            "the seal spliced in is the record with its seal, serialized"
        );
        assert_eq!(
            body_digest(&stored),
            digest,
            "the digest is the body's, seal left out"
        );
        let back: Record = serde_json::from_slice(&stored).unwrap();
        assert_eq!(
            key.check(back.mac.as_deref(), &body_digest(&stored)),
            Seal::Valid
        );

        let changed = String::from_utf8(stored.clone())
            .unwrap()
            .replace("\"follows\":3", "\"follows\":4");
        let d = body_digest(changed.as_bytes());
        assert_ne!(d, digest);
        assert_eq!(key.check(back.mac.as_deref(), &d), Seal::Broken);
        let other = ChainKey::derive(b"another key entirely, 32 bytes..");
        assert_eq!(other.check(back.mac.as_deref(), &digest), Seal::Broken);
        assert_eq!(key.check(None, &digest), Seal::Missing);
        assert_eq!(key.check(Some("zz"), &digest), Seal::Broken);
    }

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(hex(&[0, 9, 10, 255, 0xab]), "00090affab");
        let d: Digest = std::array::from_fn(|i| (i * 7) as u8);
        assert_eq!(unhex32(hex(&d).as_bytes()), Some(d));
        assert_eq!(unhex32(hex(&d).to_uppercase().as_bytes()), Some(d));
        assert_eq!(unhex32(b"0a"), None);
        assert_eq!(unhex32(&[b'g'; 64]), None);
        // One bad character anywhere, of any kind, is refused.
        let good = hex(&d);
        for (i, bad) in [(0, b'x'), (31, b':'), (63, b'G'), (40, 0xc3), (7, b' ')] {
            let mut text = good.clone().into_bytes();
            text[i] = bad;
            assert_eq!(unhex32(&text), None, "{i}");
        }
    }

    #[test]
    fn an_unsealed_records_digest_is_of_all_its_bytes() {
        let r = record();
        let stored = serde_json::to_vec(&r).unwrap();
        assert_eq!(
            body_digest(&stored),
            <[u8; 32]>::from(Sha256::digest(&stored))
        );
    }
}
