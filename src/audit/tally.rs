//! Counting over a window, per key: the first occurrence of a key in a window is for recording
//! at once, the others are counted and come out as one aggregate when the window ends. The
//! number of open keys is bounded: past the bound, new keys are counted under an overflow key,
//! so that a flood from many addresses costs a bounded amount of memory and log.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A key that has an overflow key to fall back on when too many keys are open.
pub trait TallyKey: Clone + Eq + Hash {
    /// The key this one is counted under when the tally is full (the same for many keys).
    fn overflow(&self) -> Self;
}

/// What the window's later occurrences add up to, when it ends.
#[derive(Debug)]
pub struct Aggregate<S> {
    /// The first of the counted occurrences.
    pub sample: S,
    pub count: u64,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

impl<S> Aggregate<S> {
    /// One occurrence at `at`.
    pub fn one(sample: S, at: DateTime<Utc>) -> Self {
        Aggregate {
            sample,
            count: 1,
            first: at,
            last: at,
        }
    }
}

struct Open<S> {
    opened: Instant,
    later: Option<Aggregate<S>>,
}

/// Occurrences per key over a window.
pub struct Tally<K, S> {
    window: Duration,
    max_keys: usize,
    state: Mutex<State<K, S>>,
}

struct State<K, S> {
    open: HashMap<K, Open<S>>,
    /// Aggregates of windows that ended when their key came again before a flush.
    ended: Vec<(K, Aggregate<S>)>,
}

impl<K: TallyKey, S> Tally<K, S> {
    pub fn new(window: Duration, max_keys: usize) -> Self {
        Tally {
            window,
            max_keys: max_keys.max(1),
            state: Mutex::new(State {
                open: HashMap::new(),
                ended: Vec::new(),
            }),
        }
    }

    /// Counts one occurrence of `key` at `at`: `Some` (the key it is recorded under, and the
    /// sample back) when it is the first of its window and is to be recorded at once, `None`
    /// when it was counted into the window's aggregate.
    pub fn note(&self, key: K, sample: S, at: DateTime<Utc>) -> Option<(K, S)> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let State { open, ended } = &mut *state;
        let key = if open.len() >= self.max_keys && !open.contains_key(&key) {
            key.overflow()
        } else {
            key
        };
        if let Some(o) = open.get_mut(&key) {
            if now.duration_since(o.opened) < self.window {
                match &mut o.later {
                    Some(a) => {
                        a.count += 1;
                        a.last = at;
                    }
                    None => o.later = Some(Aggregate::one(sample, at)),
                }
                return None;
            }
            // Its window ended and was not flushed yet: this occurrence opens the next.
            if let Some(a) = o.later.take() {
                ended.push((key.clone(), a));
            }
        }
        open.insert(
            key.clone(),
            Open {
                opened: now,
                later: None,
            },
        );
        Some((key, sample))
    }

    /// The aggregates of the windows that ended by now (all of them when `all`), removed.
    pub fn due(&self, all: bool) -> Vec<(K, Aggregate<S>)> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let State { open, ended } = &mut *state;
        let mut out = std::mem::take(ended);
        open.retain(|k, o| {
            let over = all || now.duration_since(o.opened) >= self.window;
            if over {
                if let Some(a) = o.later.take() {
                    out.push((k.clone(), a));
                }
            }
            !over
        });
        out
    }

    /// How many keys have a window open.
    #[cfg(test)]
    pub fn open_keys(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .open
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, PartialEq, Eq, Hash, Debug)]
    struct Key(Option<u32>);

    impl TallyKey for Key {
        fn overflow(&self) -> Self {
            Key(None)
        }
    }

    #[test]
    fn the_first_of_a_window_is_recorded_and_the_rest_counted() {
        let t = Tally::new(Duration::from_secs(3600), 10);
        let at = Utc::now();
        assert_eq!(t.note(Key(Some(1)), "a", at), Some((Key(Some(1)), "a")));
        for _ in 0..5 {
            assert_eq!(t.note(Key(Some(1)), "b", at), None);
        }
        assert_eq!(t.note(Key(Some(2)), "c", at), Some((Key(Some(2)), "c")));
        // The window is still open: nothing is due yet.
        assert!(t.due(false).is_empty());
        let due = t.due(true);
        assert_eq!(due.len(), 1, "key 2 counted nothing after its first");
        assert_eq!(due[0].0, Key(Some(1)));
        assert_eq!(due[0].1.count, 5);
        assert_eq!(due[0].1.sample, "b");
        assert_eq!(t.open_keys(), 0);
    }

    #[test]
    fn an_ended_window_opens_a_new_one_and_keeps_its_count() {
        let t = Tally::new(Duration::ZERO, 10);
        let at = Utc::now();
        assert!(t.note(Key(Some(1)), 1, at).is_some());
        // A zero window ends at once: each occurrence opens the next.
        assert!(t.note(Key(Some(1)), 2, at).is_some());
        assert!(t.due(false).is_empty(), "nothing was counted");
    }

    #[test]
    fn past_the_bound_new_keys_share_the_overflow_key() {
        let t = Tally::new(Duration::from_secs(3600), 2);
        let at = Utc::now();
        assert!(t.note(Key(Some(1)), (), at).is_some());
        assert!(t.note(Key(Some(2)), (), at).is_some());
        assert_eq!(t.note(Key(Some(3)), (), at), Some((Key(None), ())));
        for i in 4..1000 {
            assert_eq!(t.note(Key(Some(i)), (), at), None);
        }
        assert_eq!(t.open_keys(), 3);
        let due = t.due(true);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0, Key(None));
        assert_eq!(due[0].1.count, 996);
    }
}
