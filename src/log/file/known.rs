//! The digests of the records this process appended lately, by position: reading them back
//! (the projector, the audit index) takes the digest computed when they were sealed instead of
//! hashing their bytes again. Verification never uses them: it hashes what is stored.

use roster_events::chain::Digest;
use std::collections::{HashMap, VecDeque};

/// How many digests are kept (about 4 MiB): readers follow the appends closely, so the last
/// few thousand would do.
const KNOWN_MAX: usize = 65_536;

#[derive(Default)]
pub struct KnownDigests {
    by_position: HashMap<u64, Digest>,
    order: VecDeque<u64>,
}

impl KnownDigests {
    /// Remembers the digests of records appended from position `first` on.
    pub fn remember(&mut self, first: u64, digests: impl IntoIterator<Item = Digest>) {
        for (position, digest) in (first..).zip(digests) {
            self.by_position.insert(position, digest);
            self.order.push_back(position);
        }
        while self.order.len() > KNOWN_MAX {
            if let Some(old) = self.order.pop_front() {
                self.by_position.remove(&old);
            }
        }
    }

    pub fn get(&self, position: u64) -> Option<Digest> {
        self.by_position.get(&position).copied()
    }
}
