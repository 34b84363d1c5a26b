//! Personal data sealed under a key of its own (docs/adr/0014): a user's document and password
//! hash are stored encrypted with a *data key* that belongs to that user alone. Erasing the
//! user destroys the key (crypto-shredding): what the log holds of the person can no longer be
//! read, while every byte of every record stays as written, so the digest chain and the seals
//! of ADR 0012 still check out.
//!
//! Stored form: the string `p1:<key id>:<base64 of nonce and ciphertext>` where the clear value
//! (a JSON object, or a string) stood before; XChaCha20-Poly1305 with a random 24-byte nonce
//! and the key id as associated data. Decoded, such a value is [`Personal::Sealed`] until a
//! reader that holds the keys opens the record ([`Record::open_personal`]): then it is `Open`,
//! or `Erased` when its key was destroyed. The write path does the reverse
//! ([`Record::seal_personal`]) just before a record is encoded.

use crate::document::Document;
use crate::record::Record;
use crate::types::Event;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use std::fmt;
use uuid::Uuid;

const PREFIX: &str = "p1:";
const NONCE: usize = 24;

/// The id of one person's data key: random, and meaningless once the key is destroyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub Uuid);

impl KeyId {
    /// A fresh, random key id.
    pub fn new() -> KeyId {
        KeyId(Uuid::new_v4())
    }
}

impl Default for KeyId {
    fn default() -> Self {
        KeyId::new()
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A 256-bit data key. Its bytes never appear in logs or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey([u8; 32]);

impl DataKey {
    /// A fresh random key (from the thread's CSPRNG, seeded by the operating system).
    pub fn generate() -> DataKey {
        let mut key = [0; 32];
        rand::rng().fill_bytes(&mut key);
        DataKey(key)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> DataKey {
        DataKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(***)")
    }
}

/// What a reader knows of a data key.
#[derive(Clone, Debug)]
pub enum KeyState {
    Key(DataKey),
    /// The key was destroyed: the person was erased.
    Erased,
    /// The key is not known (yet): a key store that lags, or one that lost data.
    Unknown,
}

/// Why personal data could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersonalError {
    #[error("data key {0} is not in the key store")]
    UnknownKey(KeyId),
    /// The ciphertext does not open with its key: it was altered, or sealed with another key
    /// under the same id.
    #[error("personal data sealed with key {0} does not open with it")]
    Broken(KeyId),
    #[error(
        "data key {0} was destroyed: the person was erased, nothing more can be sealed with it"
    )]
    Erased(KeyId),
}

/// A sealed value as stored: its key id and its full stored text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedValue {
    pub key: KeyId,
    text: Box<str>,
}

impl SealedValue {
    /// Parses the stored text; None when it is not a sealed value.
    fn parse(text: &str) -> Option<SealedValue> {
        let rest = text.strip_prefix(PREFIX)?;
        let (id, _) = rest.split_once(':')?;
        let key = KeyId(Uuid::parse_str(id).ok()?);
        Some(SealedValue {
            key,
            text: text.into(),
        })
    }

    fn seal(key_id: KeyId, key: &DataKey, plain: &[u8]) -> SealedValue {
        let mut nonce = [0; NONCE];
        rand::rng().fill_bytes(&mut nonce);
        let nonce = XNonce::from(nonce);
        let aad = key_id.0.as_bytes();
        // Encryption with a valid key and nonce only fails for inputs over 256 GiB.
        let ct = key
            .cipher()
            .encrypt(&nonce, Payload { msg: plain, aad })
            .expect("sealing personal data");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ct);
        SealedValue {
            key: key_id,
            text: format!("{PREFIX}{key_id}:{}", STANDARD.encode(bytes)).into(),
        }
    }

    fn open(&self, key: &DataKey) -> Result<Vec<u8>, PersonalError> {
        let broken = || PersonalError::Broken(self.key);
        // `p1:` and the key id's 36 characters and `:` come first.
        let b64 = self.text.get(PREFIX.len() + 37..).ok_or_else(broken)?;
        let bytes = STANDARD.decode(b64).map_err(|_| broken())?;
        if bytes.len() < NONCE {
            return Err(broken());
        }
        let (nonce, ct) = bytes.split_at(NONCE);
        let aad = self.key.0.as_bytes();
        key.cipher()
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| broken())
    }
}

/// A value that can be personal data: its clear text, and back.
pub trait PersonalValue: Sized {
    /// The bytes that are sealed.
    fn plain_bytes(&self) -> &[u8];
    /// The value from bytes that were sealed.
    fn from_plain(bytes: Vec<u8>) -> Option<Self>;
    /// The value from its stored JSON when it was stored in clear.
    fn from_raw(raw: Box<RawValue>) -> Result<Self, String>;
}

impl PersonalValue for Document {
    fn plain_bytes(&self) -> &[u8] {
        self.as_str().as_bytes()
    }

    fn from_plain(bytes: Vec<u8>) -> Option<Self> {
        serde_json::from_slice(&bytes).ok()
    }

    fn from_raw(raw: Box<RawValue>) -> Result<Self, String> {
        Document::from_raw(raw)
    }
}

impl PersonalValue for String {
    fn plain_bytes(&self) -> &[u8] {
        self.as_bytes()
    }

    fn from_plain(bytes: Vec<u8>) -> Option<Self> {
        String::from_utf8(bytes).ok()
    }

    fn from_raw(raw: Box<RawValue>) -> Result<Self, String> {
        serde_json::from_str(raw.get()).map_err(|e| e.to_string())
    }
}

/// A piece of personal data as the log holds it, and as a reader sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum Personal<T> {
    /// Stored in clear (written before personal data was sealed, or by a tool that does not
    /// seal). Erasure cannot take it out of the log.
    Plain(T),
    /// Sealed under `key` when stored; here in clear, opened, or about to be sealed.
    Open { key: KeyId, value: T },
    /// Stored sealed and not opened.
    Sealed(SealedValue),
    /// Stored sealed under a key that was destroyed.
    Erased(KeyId),
}

impl<T> Personal<T> {
    /// The value, when it is readable.
    pub fn value(&self) -> Option<&T> {
        match self {
            Personal::Plain(v) | Personal::Open { value: v, .. } => Some(v),
            Personal::Sealed(_) | Personal::Erased(_) => None,
        }
    }

    /// The value, when it is readable.
    pub fn into_value(self) -> Option<T> {
        match self {
            Personal::Plain(v) | Personal::Open { value: v, .. } => Some(v),
            Personal::Sealed(_) | Personal::Erased(_) => None,
        }
    }

    /// The data key the value is (or is to be) sealed under.
    pub fn key(&self) -> Option<KeyId> {
        match self {
            Personal::Plain(_) => None,
            Personal::Open { key, .. } | Personal::Erased(key) => Some(*key),
            Personal::Sealed(s) => Some(s.key),
        }
    }

    pub fn is_erased(&self) -> bool {
        matches!(self, Personal::Erased(_))
    }
}

impl<T: PersonalValue> Personal<T> {
    /// Whether [`Personal::open`] would change it: it is sealed, or open under a key
    /// destroyed since.
    fn to_open(&self, keys: &dyn Fn(KeyId) -> KeyState) -> bool {
        match self {
            Personal::Sealed(_) => true,
            Personal::Open { key, .. } => matches!(keys(*key), KeyState::Erased),
            Personal::Plain(_) | Personal::Erased(_) => false,
        }
    }

    fn open(&mut self, keys: &dyn Fn(KeyId) -> KeyState) -> Result<(), PersonalError> {
        if let Personal::Open { key, .. } = self {
            // A record this process kept open (its own append) reads as erased once the
            // key is destroyed, as the stored bytes do.
            if matches!(keys(*key), KeyState::Erased) {
                *self = Personal::Erased(*key);
            }
            return Ok(());
        }
        let Personal::Sealed(s) = self else {
            return Ok(());
        };
        *self = match keys(s.key) {
            KeyState::Key(k) => {
                let bytes = s.open(&k)?;
                let value = T::from_plain(bytes).ok_or(PersonalError::Broken(s.key))?;
                Personal::Open { key: s.key, value }
            }
            KeyState::Erased => Personal::Erased(s.key),
            KeyState::Unknown => return Err(PersonalError::UnknownKey(s.key)),
        };
        Ok(())
    }

    fn seal(&mut self, keys: &dyn Fn(KeyId) -> KeyState) -> Result<(), PersonalError> {
        let Personal::Open { key, value } = self else {
            return Ok(());
        };
        *self = match keys(*key) {
            KeyState::Key(k) => Personal::Sealed(SealedValue::seal(*key, &k, value.plain_bytes())),
            KeyState::Erased => return Err(PersonalError::Erased(*key)),
            KeyState::Unknown => return Err(PersonalError::UnknownKey(*key)),
        };
        Ok(())
    }
}

impl<T: Serialize> Serialize for Personal<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Personal::Plain(v) | Personal::Open { value: v, .. } => v.serialize(s),
            Personal::Sealed(v) => s.serialize_str(&v.text),
            // Never stored: only what a reader renders (an export of an erased person's events).
            Personal::Erased(_) => s.serialize_none(),
        }
    }
}

impl<'de, T: PersonalValue> Deserialize<'de> for Personal<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let stored = raw.get();
        if stored.starts_with("\"p1:") {
            // Roster writes the sealed form without escapes; read any other spelling in full.
            let bare = stored
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .filter(|t| !t.contains('\\'));
            let unescaped: String;
            let text = match bare {
                Some(t) => t,
                None => {
                    unescaped = serde_json::from_str(stored).map_err(D::Error::custom)?;
                    &unescaped
                }
            };
            return SealedValue::parse(text)
                .map(Personal::Sealed)
                .ok_or_else(|| D::Error::custom("malformed sealed personal data"));
        }
        T::from_raw(raw)
            .map(Personal::Plain)
            .map_err(D::Error::custom)
    }
}

/// One step over a piece of personal data, with the keys.
type Step = fn(Slot<'_>, &dyn Fn(KeyId) -> KeyState) -> Result<(), PersonalError>;

/// One piece of personal data inside an event, to change or to look at.
enum Slot<'a> {
    Document(&'a mut Personal<Document>),
    Text(&'a mut Personal<String>),
    DocumentRef(&'a Personal<Document>),
    TextRef(&'a Personal<String>),
}

impl Event {
    /// The personal data this event carries: a user's document, and what its source sent
    /// when mappings changed it; a password hash.
    fn personal(&mut self) -> [Option<Slot<'_>>; 2] {
        fn sent(m: &mut Option<crate::Mapped<Personal<Document>>>) -> Option<Slot<'_>> {
            m.as_mut().map(|m| Slot::Document(&mut m.sent_patch))
        }
        match self {
            Event::UserCreated(e) => [Some(Slot::Document(&mut e.resource)), sent(&mut e.mapped)],
            Event::UserReplaced(e) => [Some(Slot::Document(&mut e.resource)), sent(&mut e.mapped)],
            Event::UserPasswordSet(e) => [Some(Slot::Text(&mut e.hash)), None],
            _ => [None, None],
        }
    }

    /// The data key of the personal data this event carries, if any is sealed or to be.
    pub fn data_key(&self) -> Option<KeyId> {
        match self {
            Event::UserCreated(e) => e.resource.key(),
            Event::UserReplaced(e) => e.resource.key(),
            Event::UserPasswordSet(e) => e.hash.key(),
            _ => None,
        }
    }
}

impl Record {
    /// True when an event of this record holds personal data `pick` selects.
    fn holds(&self, pick: &dyn Fn(Slot<'_>) -> bool) -> bool {
        // Slots are handed out mutably; a look needs no copy of the record.
        let sent = |m: &Option<crate::Mapped<Personal<Document>>>| {
            m.as_ref()
                .is_some_and(|m| pick(Slot::DocumentRef(&m.sent_patch)))
        };
        self.events.iter().any(|e| match &e.event {
            Event::UserCreated(c) => pick(Slot::DocumentRef(&c.resource)) || sent(&c.mapped),
            Event::UserReplaced(r) => pick(Slot::DocumentRef(&r.resource)) || sent(&r.mapped),
            Event::UserPasswordSet(p) => pick(Slot::TextRef(&p.hash)),
            _ => false,
        })
    }

    /// This record with its sealed personal data opened with `keys`, and `Erased` where a
    /// key was destroyed (also for data this process kept open); None when nothing changes.
    ///
    /// Fails when a key is unknown or a sealed value does not open with its key.
    pub fn open_personal(
        &self,
        keys: &dyn Fn(KeyId) -> KeyState,
    ) -> Result<Option<Record>, PersonalError> {
        if !self.to_open(keys) {
            return Ok(None);
        }
        let mut out = self.clone();
        out.open_personal_in_place(keys)?;
        Ok(Some(out))
    }

    /// Whether [`Record::open_personal`] would change this record.
    pub fn to_open(&self, keys: &dyn Fn(KeyId) -> KeyState) -> bool {
        self.holds(&|slot: Slot<'_>| match slot {
            Slot::DocumentRef(p) => p.to_open(keys),
            Slot::TextRef(p) => p.to_open(keys),
            _ => false,
        })
    }

    /// Opens this record's personal data where it is (see [`Record::open_personal`]). On
    /// failure, the values before the one that failed are open, the rest as they were.
    ///
    /// Fails as `open_personal` does.
    pub fn open_personal_in_place(
        &mut self,
        keys: &dyn Fn(KeyId) -> KeyState,
    ) -> Result<(), PersonalError> {
        for e in &mut self.events {
            for slot in e.event.personal().into_iter().flatten() {
                match slot {
                    Slot::Document(p) => p.open(keys)?,
                    Slot::Text(p) => p.open(keys)?,
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// This record with its open personal data sealed under the keys it names; None when it
    /// holds nothing to seal.
    ///
    /// Fails when a key is unknown or destroyed.
    pub fn seal_personal(
        &self,
        keys: &dyn Fn(KeyId) -> KeyState,
    ) -> Result<Option<Record>, PersonalError> {
        let pick = |slot: Slot<'_>| match slot {
            Slot::DocumentRef(p) => matches!(p, Personal::Open { .. }),
            Slot::TextRef(p) => matches!(p, Personal::Open { .. }),
            _ => false,
        };
        self.transform(&pick, keys, |slot, keys| match slot {
            Slot::Document(p) => p.seal(keys),
            Slot::Text(p) => p.seal(keys),
            _ => Ok(()),
        })
    }

    fn transform(
        &self,
        pick: &dyn Fn(Slot<'_>) -> bool,
        keys: &dyn Fn(KeyId) -> KeyState,
        step: Step,
    ) -> Result<Option<Record>, PersonalError> {
        if !self.holds(pick) {
            return Ok(None);
        }
        let mut out = self.clone();
        for e in &mut out.events {
            for slot in e.event.personal().into_iter().flatten() {
                step(slot, keys)?;
            }
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Actor, Envelope, ResourceType};
    use crate::ids::ResourceId;
    use crate::types::{UserCreated, UserPasswordSet};

    fn record(key: KeyId) -> Record {
        let doc: Document = serde_json::from_str(r#"{"userName":"alice@example.com"}"#).unwrap();
        let sent: Document = serde_json::from_str(r#"{"userName":"Alice@Example.com"}"#).unwrap();
        let env = |event| Envelope {
            event_id: Uuid::now_v7(),
            directory: "default".into(),
            resource_type: ResourceType::User,
            resource_id: ResourceId::new(),
            resource_version: 1,
            time: chrono::Utc::now(),
            actor: Actor::System,
            source: None,
            correlation_id: None,
            client: None,
            event,
        };
        Record {
            record_id: Uuid::now_v7(),
            directory: "default".into(),
            follows: 0,
            prev: None,
            events: vec![
                env(Event::UserCreated(UserCreated {
                    owner: None,
                    resource: Personal::Open { key, value: doc },
                    mapped: Some(crate::Mapped {
                        sent_patch: Personal::Open { key, value: sent },
                        mappings: vec!["lower-case".into()],
                    }),
                })),
                env(Event::UserPasswordSet(UserPasswordSet {
                    hash: Personal::Open {
                        key,
                        value: "$argon2id$v=19$x".into(),
                    },
                })),
            ],
            prev_digest: None,
            mac: None,
        }
    }

    #[test]
    fn sealed_personal_data_opens_with_its_key_and_reads_erased_without_it() {
        let id = KeyId::new();
        let key = DataKey::generate();
        let have = |k: KeyId| {
            if k == id {
                KeyState::Key(key.clone())
            } else {
                KeyState::Unknown
            }
        };
        let open = record(id);
        let sealed = open.seal_personal(&have).unwrap().unwrap();
        let stored = serde_json::to_string(&sealed).unwrap();
        assert!(!stored.contains("alice"), "{stored}");
        assert!(
            !stored.contains("Alice"),
            "what the source sent is sealed too: {stored}"
        );
        assert!(!stored.contains("argon2id"), "{stored}");
        assert!(open.seal_personal(&have).unwrap().is_some());
        assert!(
            sealed.seal_personal(&have).unwrap().is_none(),
            "nothing left to seal"
        );

        let back: Record = serde_json::from_str(&stored).unwrap();
        assert_eq!(back.events[0].event.data_key(), Some(id));
        let opened = back.open_personal(&have).unwrap().unwrap();
        assert_eq!(opened, open, "opened, the record is what was sealed");

        let closed = open.open_personal(&|_| KeyState::Erased).unwrap().unwrap();
        assert!(
            matches!(&closed.events[1].event, Event::UserPasswordSet(p) if p.hash == Personal::Erased(id)),
            "data kept open reads as erased once its key is destroyed"
        );
        assert!(
            open.open_personal(&have).unwrap().is_none(),
            "nothing to open"
        );
        let erased = back.open_personal(&|_| KeyState::Erased).unwrap().unwrap();
        match &erased.events[0].event {
            Event::UserCreated(c) => {
                assert_eq!(c.resource, Personal::Erased(id));
                let sent = &c.mapped.as_ref().unwrap().sent_patch;
                assert_eq!(*sent, Personal::Erased(id));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            back.open_personal(&|_| KeyState::Unknown),
            Err(PersonalError::UnknownKey(id))
        );
        let other = DataKey::generate();
        assert_eq!(
            back.open_personal(&|_| KeyState::Key(other.clone())),
            Err(PersonalError::Broken(id))
        );
        assert_eq!(
            open.seal_personal(&|_| KeyState::Erased),
            Err(PersonalError::Erased(id))
        );
    }

    #[test]
    fn clear_values_still_decode_as_plain() {
        let c: UserCreated =
            serde_json::from_str(r#"{"owner":null,"resource":{"userName":"bob"}}"#).unwrap();
        assert_eq!(
            c.resource.value().unwrap().as_str(),
            r#"{"userName":"bob"}"#
        );
        assert_eq!(c.resource.key(), None);
        let p: UserPasswordSet = serde_json::from_str(r#"{"hash":"$argon2id$v=19$y"}"#).unwrap();
        assert_eq!(p.hash, Personal::Plain("$argon2id$v=19$y".to_owned()));
        assert!(serde_json::from_str::<UserPasswordSet>(r#"{"hash":"p1:zz"}"#).is_err());
    }
}
