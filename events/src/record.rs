//! The log record and the directory-sequence chain.
//!
//! A record carries all events of one command, so a crash never leaves half a command in the
//! log. Every record names the directory sequence number it expects to follow. Every reader
//! applies one deterministic rule ([`ChainState::admit`]): a record is valid only if it follows
//! the last valid record of its directory. An invalid record (a stale or duplicate write) is
//! ignored by every projection and consumer. This gives compare-and-set on any append-only log,
//! Kafka included, without broker transactions.

use crate::envelope::Envelope;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

/// One command's events, appended atomically.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Unique per append attempt, so a writer can recognise its own record when reading back.
    pub record_id: Uuid,
    pub directory: String,
    /// The directory sequence number of the record this one follows (0 for the first).
    /// The record's own sequence number is `follows + 1`.
    pub follows: u64,
    pub events: Vec<Envelope>,
}

impl Record {
    /// The directory sequence number this record takes if it is valid.
    pub fn seq(&self) -> u64 {
        self.follows + 1
    }
}

/// The last valid sequence number of every directory a reader has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainState {
    last: HashMap<String, u64>,
}

impl ChainState {
    /// Applies the validity rule: true (and the chain advances) if `record` follows the last
    /// valid record of its directory; false if it is stale or a duplicate.
    pub fn admit(&mut self, record: &Record) -> bool {
        let last = self.last.entry(record.directory.clone()).or_insert(0);
        if record.follows == *last {
            *last += 1;
            true
        } else {
            false
        }
    }

    /// The last valid sequence number of `directory` (0 if it has none).
    pub fn last(&self, directory: &str) -> u64 {
        self.last.get(directory).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(dir: &str, follows: u64) -> Record {
        Record {
            record_id: Uuid::now_v7(),
            directory: dir.into(),
            follows,
            events: vec![],
        }
    }

    #[test]
    fn records_are_valid_only_when_they_follow_the_last_valid_one_of_their_directory() {
        let mut chain = ChainState::default();
        assert!(chain.admit(&rec("a", 0)));
        assert!(chain.admit(&rec("b", 0)));
        assert!(!chain.admit(&rec("a", 0)), "a duplicate of seq 1 is stale");
        assert!(chain.admit(&rec("a", 1)));
        assert!(!chain.admit(&rec("a", 5)), "a gap is invalid too");
        assert!(chain.admit(&rec("a", 2)));
        assert_eq!(chain.last("a"), 3);
        assert_eq!(chain.last("b"), 1);
        assert_eq!(chain.last("c"), 0);
    }
}
