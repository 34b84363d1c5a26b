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
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn unhex(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
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
pub struct ChainKey([u8; 32]);

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(***)")
    }
}

impl ChainKey {
    /// The chain key of a server whose secret key is `secret` (a key of its own, so that the
    /// seal never reveals anything about the key that seals provider credentials).
    pub fn derive(secret: &[u8]) -> ChainKey {
        ChainKey(Self::mac_with(secret, b"roster audit chain v1"))
    }

    fn mac_with(key: &[u8], data: &[u8]) -> [u8; 32] {
        // HMAC takes a key of any length.
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
        m.update(data);
        m.finalize().into_bytes().into()
    }

    /// Seals `record` (whose `prev_digest` is already set) and returns its digest: the
    /// digest its successor commits to.
    pub fn seal(&self, record: &mut Record) -> Digest {
        record.mac = None;
        // A record of plain data always serializes.
        let body = serde_json::to_vec(&*record).expect("records serialize");
        let digest: Digest = Sha256::digest(&body).into();
        record.mac = Some(hex(&Self::mac_with(&self.0, &digest)));
        digest
    }

    /// Checks the seal of the record stored as `stored`, whose body digest is `digest`.
    pub fn check(&self, stored_seal: Option<&str>, digest: &Digest) -> Seal {
        let Some(seal) = stored_seal else {
            return Seal::Missing;
        };
        let Some(tag) = unhex(seal.as_bytes()) else {
            return Seal::Broken;
        };
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key");
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
        let mut r = record();
        let digest = key.seal(&mut r);
        let stored = serde_json::to_vec(&r).unwrap();
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
    fn an_unsealed_records_digest_is_of_all_its_bytes() {
        let r = record();
        let stored = serde_json::to_vec(&r).unwrap();
        assert_eq!(
            body_digest(&stored),
            <[u8; 32]>::from(Sha256::digest(&stored))
        );
    }
}
