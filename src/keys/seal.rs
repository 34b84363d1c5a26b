//! The write path's side of personal data (docs/adr/0014): each user's events get the user's
//! data key (a fresh one for a user who has none yet), and a record is encoded with its
//! personal data sealed under those keys, then sealed as a whole for the digest chain
//! (docs/adr/0012).

use super::Keyring;
use roster_events::chain::{ChainKey, Encoded};
use roster_events::personal::PersonalError;
use roster_events::{Envelope, Event, KeyId, Personal, Record, ResourceId};
use std::collections::HashMap;
use std::sync::Arc;

/// Gives the personal data the domain decided (in clear) to the data key of its user:
/// the key the user has (`key_of`), the one given earlier in `events`, or a fresh one from
/// `fresh`.
///
/// Fails when a user needs a fresh key and `fresh` has none (the caller takes enough for
/// every command it decides).
pub fn assign(
    events: &mut [Envelope],
    key_of: impl Fn(ResourceId) -> Option<KeyId>,
    fresh: &mut Vec<KeyId>,
) -> Result<(), &'static str> {
    let mut given: HashMap<ResourceId, KeyId> = HashMap::new();
    for env in events {
        let id = env.resource_id;
        let mut key = || -> Result<KeyId, &'static str> {
            if let Some(k) = given.get(&id).copied().or_else(|| key_of(id)) {
                return Ok(k);
            }
            let k = fresh.pop().ok_or("no fresh data key at hand")?;
            given.insert(id, k);
            Ok(k)
        };
        match &mut env.event {
            Event::UserCreated(c) => {
                let key = key()?;
                give(&mut c.resource, key);
                if let Some(m) = &mut c.mapped {
                    give(&mut m.sent_patch, key);
                }
            }
            Event::UserReplaced(r) => {
                let key = key()?;
                give(&mut r.resource, key);
                if let Some(m) = &mut r.mapped {
                    give(&mut m.sent_patch, key);
                }
            }
            Event::UserPasswordSet(p) => give(&mut p.hash, key()?),
            _ => {}
        }
    }
    Ok(())
}

/// A value in clear becomes open under `key` (sealed with it when encoded).
fn give<T>(p: &mut Personal<T>, key: KeyId) {
    *p = match std::mem::replace(p, Personal::Erased(key)) {
        Personal::Plain(value) => Personal::Open { key, value },
        other => other,
    };
}

/// Encodes records as the log stores them.
#[derive(Clone)]
pub struct RecordSealer {
    chain: ChainKey,
    keys: Arc<Keyring>,
}

impl RecordSealer {
    pub fn new(chain: ChainKey, keys: Arc<Keyring>) -> RecordSealer {
        RecordSealer { chain, keys }
    }

    /// The data keys it seals with.
    pub fn keys(&self) -> &Arc<Keyring> {
        &self.keys
    }

    /// `record` (whose `prev_digest` is set) encoded with its personal data sealed and its
    /// seal spliced in. The encoded record keeps the personal data open, as readers of this
    /// process's own appends want it; its bytes hold it sealed.
    ///
    /// Fails when a data key the record names is unknown or destroyed.
    pub fn seal(&self, record: Record) -> Result<Encoded, PersonalError> {
        let keys = |id| self.keys.state(id);
        let Some(stored) = record.seal_personal(&keys)? else {
            return Ok(self.chain.seal(record));
        };
        let encoded = self.chain.seal(stored);
        let open = Record {
            mac: encoded.record.mac.clone(),
            ..record
        };
        Ok(Encoded {
            record: Arc::new(open),
            ..encoded
        })
    }
}
