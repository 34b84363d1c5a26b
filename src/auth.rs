//! Bearer tokens: generation, hashing at rest, constant-time verification.
//!
//! A token is 32 random bytes, base64url-encoded behind a short type prefix (`rst_` for source
//! tokens, `rsa_` for admin tokens). Only its SHA-256 is stored: the token has 256 bits of
//! entropy, so a fast hash is enough and a slow password hash would only cost latency on every
//! request. Verification compares digests in constant time. Tokens never reach a log line.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// A secret string that never prints.
#[derive(Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A freshly generated token: show `token` once, store `hash` and `prefix`.
pub struct IssuedToken {
    pub token: Secret,
    pub hash: String,
    pub prefix: String,
}

/// Generates a token with the given type prefix (`rst_`, `rsa_`).
pub fn generate(kind: &str) -> IssuedToken {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("{kind}{}", URL_SAFE_NO_PAD.encode(bytes));
    let prefix = token.chars().take(kind.len() + 4).collect();
    IssuedToken {
        hash: hash(&token),
        token: Secret(token),
        prefix,
    }
}

/// Lower-case hex SHA-256 of a token.
pub fn hash(token: &str) -> String {
    roster_events::chain::hex(&Sha256::digest(token.as_bytes()))
}

/// True if `presented` hashes to one of `hashes`. Every candidate is compared in constant time.
pub fn verify<'a>(presented: &str, hashes: impl IntoIterator<Item = &'a str>) -> bool {
    find(presented, hashes.into_iter().map(|h| ((), h))).is_some()
}

/// The key of the candidate `presented` hashes to. Every candidate is compared, each in
/// constant time, whichever matches.
pub fn find<'a, K>(
    presented: &str,
    candidates: impl IntoIterator<Item = (K, &'a str)>,
) -> Option<K> {
    let h = hash(presented);
    let mut found = None;
    for (key, candidate) in candidates {
        if bool::from(h.as_bytes().ct_eq(candidate.as_bytes())) {
            found = Some(key);
        }
    }
    found
}

/// An Argon2id hash (PHC string, OWASP parameters: 19 MiB, 2 passes) of a user's password,
/// with a fresh random salt. Slow on purpose; call it off the async workers.
///
/// Fails only if the hasher rejects its parameters, which are fixed and valid.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let salt = SaltString::encode_b64(&bytes).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// True if `password` matches a hash made by [`hash_password`].
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// The token of an `Authorization: Bearer <token>` header value. The scheme is
/// case-insensitive (RFC 7235 §2.1).
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_verifies_against_its_hash_only() {
        let a = generate("rst_");
        let b = generate("rst_");
        assert!(a.token.expose().starts_with("rst_"));
        assert_eq!(a.prefix.len(), 8);
        assert!(verify(a.token.expose(), [b.hash.as_str(), a.hash.as_str()]));
        assert!(!verify(a.token.expose(), [b.hash.as_str()]));
        assert!(!verify("", [a.hash.as_str()]));
        assert_ne!(a.token.expose(), b.token.expose());
    }

    #[test]
    fn password_hashes_are_salted_argon2id_and_verify() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "a fresh salt every time");
        assert!(verify_password("correct horse", &a));
        assert!(!verify_password("battery staple", &a));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn bearer_headers_parse_case_insensitively() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
