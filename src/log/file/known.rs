//! The records this process appended lately, by position, with their digests: reading them
//! back (the projector, the audit index) takes the record as the writer decided it (its
//! personal data still open, ADR 0014) and the digest computed when it was sealed, instead of
//! decoding, opening and hashing the stored bytes again. Verification never uses them: it
//! reads what is stored.

use roster_events::chain::Digest;
use roster_events::Record;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// How many records are kept: readers follow the appends closely (a projector reads a batch
/// right after it is appended), so the last few thousand do. About 1-2 KiB each.
const KNOWN_MAX: usize = 4_096;

#[derive(Default)]
pub struct KnownRecords {
    by_position: HashMap<u64, (Arc<Record>, Digest)>,
    order: VecDeque<u64>,
}

impl KnownRecords {
    /// Remembers the records appended from position `first` on.
    pub fn remember(
        &mut self,
        first: u64,
        records: impl IntoIterator<Item = (Arc<Record>, Digest)>,
    ) {
        for (position, known) in (first..).zip(records) {
            self.by_position.insert(position, known);
            self.order.push_back(position);
        }
        while self.order.len() > KNOWN_MAX {
            if let Some(old) = self.order.pop_front() {
                self.by_position.remove(&old);
            }
        }
    }

    pub fn get(&self, position: u64) -> Option<(Arc<Record>, Digest)> {
        self.by_position.get(&position).cloned()
    }
}
