//! What the write path can do now, for readiness: whether each projector's last attempt to
//! read the log and fold it into the views succeeded, and how long this process's oldest
//! append has waited for its outcome. A process whose writes would hang is not ready, even
//! while the log still takes appends (a broker that came back before its consumers did).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An append still waiting for its outcome after this long makes the process not ready.
/// Outcomes take milliseconds, or a fetch wait (500 ms by default) under contention.
const STALLED_AFTER: Duration = Duration::from_secs(3);

/// The write path's health, shared by the projectors, the writers and `/readyz`.
pub struct WriteHealth {
    /// Per partition, why the projector's last attempt failed, if it did.
    projectors: Vec<Mutex<Option<String>>>,
    /// Per directory, since when its writer's current round has waited for the log.
    waiting: Mutex<HashMap<String, Instant>>,
}

impl WriteHealth {
    pub fn new(partitions: u32) -> WriteHealth {
        WriteHealth {
            projectors: (0..partitions).map(|_| Mutex::new(None)).collect(),
            waiting: Mutex::default(),
        }
    }

    /// Records how the projector of `partition` last did: `Err` with why it failed.
    pub(super) fn projected(&self, partition: u32, outcome: Result<(), String>) {
        if let Some(slot) = self.projectors.get(partition as usize) {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = outcome.err();
        }
    }

    /// Marks `directory`'s writer as waiting on the log until the guard is dropped.
    pub(super) fn waiting<'a>(&'a self, directory: &str) -> Waiting<'a> {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(directory.to_owned(), Instant::now());
        Waiting {
            health: self,
            directory: directory.to_owned(),
        }
    }

    /// Why writes cannot be served now, if they cannot.
    pub fn stalled(&self) -> Option<String> {
        for (partition, slot) in self.projectors.iter().enumerate() {
            if let Some(why) = &*slot.lock().unwrap_or_else(|p| p.into_inner()) {
                return Some(format!(
                    "the log cannot be read back (partition {partition}): {why}"
                ));
            }
        }
        let waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = waiting.values().min()?.elapsed();
        (oldest >= STALLED_AFTER).then(|| {
            format!(
                "writes have waited {:.1} s for the log to confirm them",
                oldest.as_secs_f64()
            )
        })
    }
}

/// A writer waiting on the log; dropping it ends the wait.
pub(super) struct Waiting<'a> {
    health: &'a WriteHealth,
    directory: String,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.health
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.directory);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_projector_stalls_writes_until_it_succeeds_again() {
        let h = WriteHealth::new(2);
        assert_eq!(h.stalled(), None);
        h.projected(1, Err("broker down".into()));
        assert!(h.stalled().is_some_and(|w| w.contains("partition 1")));
        h.projected(1, Ok(()));
        assert_eq!(h.stalled(), None);
    }

    #[test]
    fn a_wait_counts_only_while_it_lasts_and_only_once_long() {
        let h = WriteHealth::new(1);
        {
            let _w = h.waiting("d");
            assert_eq!(h.stalled(), None, "a fresh wait is normal");
            h.waiting
                .lock()
                .unwrap()
                .insert("d".into(), Instant::now() - STALLED_AFTER);
            assert!(h.stalled().is_some_and(|w| w.contains("waited")));
        }
        assert_eq!(h.stalled(), None);
    }
}
