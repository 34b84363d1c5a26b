//! Secrets at rest: the outbound credentials an operator gives a provider (bearer tokens,
//! passwords, OAuth2 client secrets) are sealed with the server's key before they become part
//! of an event, so the log, the views and their backups hold only ciphertext.
//!
//! XChaCha20-Poly1305 with a random 192-bit nonce per secret; the stored form is `v1:` then
//! base64 of nonce and ciphertext. The key is 32 bytes: `secret_key` in the settings (base64),
//! or, when unset, a key generated once into `<data_dir>/secret.key` (mode 0600). Replicas that
//! share a log must share the key (see docs/operations.md).

use crate::auth::Secret;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use roster_events::chain::ChainKey;
use roster_events::Sealed;
use std::path::Path;

const PREFIX: &str = "v1:";
const NONCE: usize = 24;

/// Why a secret could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the stored secret is not in the sealed format")]
    Format,
    /// The ciphertext does not open with this server's key: another key sealed it, or it was
    /// altered.
    #[error("the stored secret does not open with this server's secret key")]
    WrongKey,
}

/// The server's sealing key, the key its log records are sealed with, and the key its view
/// snapshots are sealed with (both derived from it).
#[derive(Clone)]
pub struct SecretKey(XChaCha20Poly1305, ChainKey, XChaCha20Poly1305);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl SecretKey {
    /// A key from 32 bytes in base64.
    ///
    /// Fails when the text is not base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> anyhow::Result<SecretKey> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| anyhow::anyhow!("secret_key is not base64"))?;
        let key = XChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|_| anyhow::anyhow!("secret_key must be 32 bytes (base64)"))?;
        let snapshots = ChainKey::derive_subkey(&bytes, b"roster view snapshot v1");
        let snapshots = XChaCha20Poly1305::new_from_slice(&snapshots).expect("32 bytes");
        Ok(SecretKey(key, ChainKey::derive(&bytes), snapshots))
    }

    /// The configured key, or the one in `data_dir/secret.key`, generated there on first use.
    ///
    /// Fails when the file cannot be read or written, or holds no valid key.
    pub fn load(configured: Option<&Secret>, data_dir: &Path) -> anyhow::Result<SecretKey> {
        if let Some(k) = configured {
            return SecretKey::from_base64(k.expose());
        }
        let path = data_dir.join("secret.key");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                crate::datadir::tighten(&path)?;
                SecretKey::from_base64(&text)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                crate::datadir::create_dir(data_dir)?;
                let key = XChaCha20Poly1305::generate_key(&mut OsRng);
                let text = STANDARD.encode(key);
                write_private(&path, text.as_bytes())?;
                SecretKey::from_base64(&text)
            }
            Err(e) => Err(anyhow::anyhow!("reading {}: {e}", path.display())),
        }
    }

    /// The key that seals log records (docs/adr/0012).
    pub fn chain_key(&self) -> ChainKey {
        self.1.clone()
    }

    /// The key view snapshots are sealed with (docs/adr/0020).
    pub fn snapshot_cipher(&self) -> XChaCha20Poly1305 {
        self.2.clone()
    }

    /// Seals `plain`.
    pub fn seal(&self, plain: &str) -> Sealed {
        let mut nonce = [0; NONCE];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
        let nonce = XNonce::from(nonce);
        // Encryption with a valid key and nonce only fails for inputs over 256 GiB.
        let ct = self
            .0
            .encrypt(&nonce, plain.as_bytes())
            .expect("sealing a secret");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ct);
        Sealed(format!("{PREFIX}{}", STANDARD.encode(bytes)))
    }

    /// Opens a sealed secret.
    ///
    /// Fails when the text is not a sealed secret or does not open with this key.
    pub fn open(&self, sealed: &Sealed) -> Result<Secret, SealError> {
        let b64 = sealed.0.strip_prefix(PREFIX).ok_or(SealError::Format)?;
        let bytes = STANDARD.decode(b64).map_err(|_| SealError::Format)?;
        if bytes.len() < NONCE {
            return Err(SealError::Format);
        }
        let (nonce, ct) = bytes.split_at(NONCE);
        let plain = self
            .0
            .decrypt(XNonce::from_slice(nonce), ct)
            .map_err(|_| SealError::WrongKey)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| SealError::Format)
    }
}

/// Writes a file only its owner can read, durably.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = crate::datadir::file_options()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_its_key_only_and_never_shows_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::load(None, dir.path()).unwrap();
        let sealed = key.seal("s3cret-token");
        assert!(sealed.0.starts_with("v1:"));
        assert!(!sealed.0.contains("s3cret"));
        assert_ne!(key.seal("s3cret-token"), sealed, "a fresh nonce every time");
        assert_eq!(key.open(&sealed).unwrap().expose(), "s3cret-token");

        let again = SecretKey::load(None, dir.path()).unwrap();
        assert_eq!(again.open(&sealed).unwrap().expose(), "s3cret-token");

        let other = SecretKey::load(None, tempfile::tempdir().unwrap().path()).unwrap();
        assert!(matches!(other.open(&sealed), Err(SealError::WrongKey)));
        let mut tampered = sealed.0.clone();
        tampered.pop();
        tampered.push(if sealed.0.ends_with('A') { 'B' } else { 'A' });
        assert!(key.open(&Sealed(tampered)).is_err());
        assert!(matches!(
            key.open(&Sealed("plain".into())),
            Err(SealError::Format)
        ));
    }

    #[test]
    fn a_configured_key_must_be_32_bytes_of_base64() {
        assert!(SecretKey::from_base64(&STANDARD.encode([7u8; 32])).is_ok());
        assert!(SecretKey::from_base64(&STANDARD.encode([7u8; 16])).is_err());
        assert!(SecretKey::from_base64("not base64!").is_err());
    }
}
