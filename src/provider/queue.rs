//! The work of one provider, object by object: the changes to one object go out in order,
//! one at a time; different objects go out side by side up to a concurrency limit; an object
//! whose change fails waits (its backoff) without holding up the others, and after too many
//! failures is parked with its last error until it is retried on demand or by the next full
//! sync. Time is passed in, so the queue is deterministic.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// In the ready line.
    Ready,
    InFlight,
    /// Failed; may start again at this time.
    Waiting(Instant),
    Parked,
}

struct Object<C> {
    changes: VecDeque<C>,
    state: State,
    /// Failed attempts of the change at the head.
    attempts: u32,
    last_error: Option<String>,
}

/// A parked object, for the status API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parked<K> {
    pub key: K,
    pub attempts: u32,
    pub error: String,
    /// Changes waiting behind the failed one (it included).
    pub pending: usize,
}

/// An object whose last attempt failed and that will be tried again, for the status API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failing<K> {
    pub key: K,
    pub attempts: u32,
    pub error: String,
    /// When it is tried next; None when it is in line or in flight now.
    pub next_attempt: Option<Instant>,
}

/// One object's entry as a checkpoint saves it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Saved<K, C> {
    pub key: K,
    pub changes: Vec<C>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub parked: bool,
}

/// Changes per object `K`, each of type `C`. What the status asks for every time it is
/// published (the failing and parked objects, how many wait, when the next wakes, how many
/// changes are queued) is kept beside the objects, so that it costs nothing with a million
/// objects queued by a full sync.
pub struct ObjectQueue<K, C> {
    objects: HashMap<K, Object<C>>,
    ready: VecDeque<K>,
    /// Objects waiting after a failure, by when they may start again.
    waking: BTreeSet<(Instant, K)>,
    /// Objects that failed their last attempt or are parked.
    troubled: HashSet<K>,
    in_flight: usize,
    parked: usize,
    /// Changes queued, in flight, waiting or parked.
    changes: usize,
    concurrency: usize,
    max_attempts: u32,
}

impl<K: Hash + Eq + Ord + Clone, C: Clone> ObjectQueue<K, C> {
    /// At most `concurrency` changes in flight; an object is parked at its `max_attempts`th
    /// failure.
    pub fn new(concurrency: usize, max_attempts: u32) -> Self {
        ObjectQueue {
            objects: HashMap::new(),
            ready: VecDeque::new(),
            waking: BTreeSet::new(),
            troubled: HashSet::new(),
            in_flight: 0,
            parked: 0,
            changes: 0,
            concurrency: concurrency.max(1),
            max_attempts: max_attempts.max(1),
        }
    }

    /// Moves `key`'s object to `to`, keeping the line, the wake times and the counts in step
    /// (an object entering `Ready` joins the end of the line).
    fn enter(&mut self, key: &K, to: State) {
        let Some(o) = self.objects.get_mut(key) else {
            return;
        };
        let from = std::mem::replace(&mut o.state, to);
        match from {
            State::Ready => {}
            State::InFlight => self.in_flight -= 1,
            State::Waiting(at) => {
                self.waking.remove(&(at, key.clone()));
            }
            State::Parked => self.parked -= 1,
        }
        match to {
            State::Ready => self.ready.push_back(key.clone()),
            State::InFlight => self.in_flight += 1,
            State::Waiting(at) => {
                self.waking.insert((at, key.clone()));
            }
            State::Parked => self.parked += 1,
        }
    }

    /// Records whether `key` is troubled: it failed its last attempt, or is parked.
    fn note_trouble(&mut self, key: &K) {
        match self.objects.get(key) {
            Some(o) if o.attempts > 0 || o.state == State::Parked => {
                self.troubled.insert(key.clone());
            }
            _ => {
                self.troubled.remove(key);
            }
        }
    }

    /// Queues a change behind the object's earlier ones.
    pub fn push(&mut self, key: K, change: C) {
        self.changes += 1;
        match self.objects.get_mut(&key) {
            Some(o) => o.changes.push_back(change),
            None => {
                self.objects.insert(
                    key.clone(),
                    Object {
                        changes: VecDeque::from([change]),
                        state: State::Ready,
                        attempts: 0,
                        last_error: None,
                    },
                );
                self.ready.push_back(key);
            }
        }
    }

    /// Queues a change, folding it into the object's last queued change with `merge` when
    /// that one has not started: for changes that say what to bring up to date rather than
    /// what to send, so that a busy object is carried once, not once per event.
    pub fn push_merged(&mut self, key: K, change: C, merge: impl FnOnce(&mut C, C)) {
        match self.objects.get_mut(&key) {
            Some(o) if o.changes.len() > 1 || o.state != State::InFlight => {
                match o.changes.back_mut() {
                    Some(last) => merge(last, change),
                    None => {
                        o.changes.push_back(change);
                        self.changes += 1;
                    }
                }
            }
            _ => self.push(key, change),
        }
    }

    /// Every object's queued changes, attempts, last error and whether it is parked: what a
    /// checkpoint saves. An object in flight is saved as queued (its change may not have
    /// reached the remote).
    pub fn export(&self) -> Vec<Saved<K, C>> {
        self.objects
            .iter()
            .map(|(k, o)| Saved {
                key: k.clone(),
                changes: o.changes.iter().cloned().collect(),
                attempts: o.attempts,
                last_error: o.last_error.clone(),
                parked: o.state == State::Parked,
            })
            .collect()
    }

    /// Queues what [`ObjectQueue::export`] saved; waiting objects start again at once.
    pub fn import(&mut self, saved: Vec<Saved<K, C>>) {
        for s in saved {
            if s.changes.is_empty() || self.objects.contains_key(&s.key) {
                continue;
            }
            self.changes += s.changes.len();
            let state = if s.parked {
                self.parked += 1;
                State::Parked
            } else {
                self.ready.push_back(s.key.clone());
                State::Ready
            };
            let key = s.key.clone();
            self.objects.insert(
                s.key,
                Object {
                    changes: s.changes.into(),
                    state,
                    attempts: s.attempts,
                    last_error: s.last_error,
                },
            );
            self.note_trouble(&key);
        }
    }

    /// Puts every parked object back in line; how many there were.
    pub fn retry_all(&mut self) -> usize {
        let parked: Vec<K> = self
            .troubled
            .iter()
            .filter(|k| self.is_parked(k))
            .cloned()
            .collect();
        for k in &parked {
            self.retry(k);
        }
        parked.len()
    }

    /// Failed attempts of the change at the head of `key`'s line.
    pub fn attempts(&self, key: &K) -> u32 {
        self.objects.get(key).map_or(0, |o| o.attempts)
    }

    /// Whether `key` is parked.
    pub fn is_parked(&self, key: &K) -> bool {
        self.objects
            .get(key)
            .is_some_and(|o| o.state == State::Parked)
    }

    /// Changes in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether `key` has changes queued, in flight, waiting or parked.
    pub fn contains(&self, key: &K) -> bool {
        self.objects.contains_key(key)
    }

    /// The next change to send, if one may start at `now`: the head of the first ready
    /// object (objects whose wait is over join the line first).
    pub fn take(&mut self, now: Instant) -> Option<(K, C)> {
        while let Some((at, key)) = self.waking.first().cloned() {
            if at > now {
                break;
            }
            self.enter(&key, State::Ready);
        }
        if self.in_flight >= self.concurrency {
            return None;
        }
        let key = self.ready.pop_front()?;
        self.start(key)
    }

    /// Sends the change at the head of `key`, taken out of the line.
    fn start(&mut self, key: K) -> Option<(K, C)> {
        self.enter(&key, State::InFlight);
        let change = self.objects.get(&key)?.changes.front()?.clone();
        Some((key, change))
    }

    /// Like [`ObjectQueue::take`] but beyond the concurrency limit, for `filter`'s objects
    /// only: to fill a Bulk request that one task sends. Objects it skips keep their place.
    pub fn take_more(&mut self, filter: impl Fn(&K, &C) -> bool) -> Option<(K, C)> {
        let at = self.ready.iter().position(|k| {
            self.objects
                .get(k)
                .and_then(|o| o.changes.front().map(|c| filter(k, c)))
                .unwrap_or(false)
        })?;
        let key = self.ready.remove(at)?;
        self.start(key)
    }

    /// The change taken for `key` reached the remote: the next one may go.
    pub fn succeeded(&mut self, key: &K) {
        let Some(o) = self.objects.get_mut(key) else {
            return;
        };
        if o.state != State::InFlight {
            return;
        }
        o.changes.pop_front();
        self.changes -= 1;
        o.attempts = 0;
        o.last_error = None;
        self.troubled.remove(key);
        if o.changes.is_empty() {
            self.in_flight -= 1;
            self.objects.remove(key);
        } else {
            self.enter(key, State::Ready);
        }
    }

    /// The change taken for `key` failed: it waits until `retry_at`, or is parked when it has
    /// failed `max_attempts` times or trying again cannot help (`retry_at` None).
    pub fn failed(&mut self, key: &K, error: String, retry_at: Option<Instant>) {
        let Some(o) = self.objects.get_mut(key) else {
            return;
        };
        if o.state != State::InFlight {
            return;
        }
        o.attempts += 1;
        o.last_error = Some(error);
        let to = match retry_at {
            Some(at) if o.attempts < self.max_attempts => State::Waiting(at),
            _ => State::Parked,
        };
        self.enter(key, to);
        self.troubled.insert(key.clone());
    }

    /// Replaces the changes waiting for `key` with `change` and puts the object back in line
    /// with a fresh count of attempts (a parked one too). A change in flight stays: `change`
    /// goes after it.
    pub fn replace_waiting(&mut self, key: K, change: C) {
        let Some(o) = self.objects.get_mut(&key) else {
            return self.push(key, change);
        };
        if o.state == State::InFlight {
            // The change in flight, and `change` after it.
            self.changes = self.changes - o.changes.len() + 2;
            o.changes.truncate(1);
            o.changes.push_back(change);
            return;
        }
        self.changes = self.changes - o.changes.len() + 1;
        o.changes = VecDeque::from([change]);
        o.attempts = 0;
        o.last_error = None;
        let ready = o.state == State::Ready;
        self.troubled.remove(&key);
        if !ready {
            self.enter(&key, State::Ready);
        }
    }

    /// Objects with changes to carry that are neither in flight nor parked.
    pub fn waiting_objects(&self) -> usize {
        self.objects.len() - self.in_flight - self.parked
    }

    /// Parked objects, in no particular order.
    pub fn parked(&self) -> Vec<Parked<K>> {
        self.troubled
            .iter()
            .filter_map(|k| self.objects.get(k).map(|o| (k, o)))
            .filter(|(_, o)| o.state == State::Parked)
            .map(|(k, o)| Parked {
                key: k.clone(),
                attempts: o.attempts,
                error: o.last_error.clone().unwrap_or_default(),
                pending: o.changes.len(),
            })
            .collect()
    }

    /// Objects whose last attempt failed and that are not parked, in no particular order.
    pub fn failing(&self) -> Vec<Failing<K>> {
        self.troubled
            .iter()
            .filter_map(|k| self.objects.get(k).map(|o| (k, o)))
            .filter(|(_, o)| o.state != State::Parked && o.attempts > 0)
            .map(|(k, o)| Failing {
                key: k.clone(),
                attempts: o.attempts,
                error: o.last_error.clone().unwrap_or_default(),
                next_attempt: match o.state {
                    State::Waiting(at) => Some(at),
                    _ => None,
                },
            })
            .collect()
    }

    /// Puts a parked object back in line with a fresh count of attempts. False if it is not
    /// parked.
    pub fn retry(&mut self, key: &K) -> bool {
        match self.objects.get_mut(key) {
            Some(o) if o.state == State::Parked => {
                o.attempts = 0;
                self.enter(key, State::Ready);
                self.troubled.remove(key);
                true
            }
            _ => false,
        }
    }

    /// When the earliest waiting object may start again.
    pub fn next_wake(&self) -> Option<Instant> {
        self.waking.first().map(|(at, _)| *at)
    }

    /// Changes queued, in flight, waiting or parked.
    pub fn len(&self) -> usize {
        self.changes
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

#[cfg(test)]
impl<K: Hash + Eq + Ord + Clone + std::fmt::Debug, C: Clone> ObjectQueue<K, C> {
    /// Asserts that what the queue keeps beside its objects is what a walk over them says.
    fn check(&self) {
        let count = |f: &dyn Fn(&Object<C>) -> bool| self.objects.values().filter(|o| f(o)).count();
        assert_eq!(self.in_flight, count(&|o| o.state == State::InFlight));
        assert_eq!(self.parked, count(&|o| o.state == State::Parked));
        assert_eq!(
            self.changes,
            self.objects
                .values()
                .map(|o| o.changes.len())
                .sum::<usize>()
        );
        let waking: BTreeSet<(Instant, K)> = self
            .objects
            .iter()
            .filter_map(|(k, o)| match o.state {
                State::Waiting(at) => Some((at, k.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(self.waking, waking);
        let troubled: HashSet<K> = self
            .objects
            .iter()
            .filter(|(_, o)| o.attempts > 0 || o.state == State::Parked)
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(self.troubled, troubled);
        let mut ready: Vec<K> = self.ready.iter().cloned().collect();
        ready.sort();
        let mut want: Vec<K> = self
            .objects
            .iter()
            .filter(|(_, o)| o.state == State::Ready)
            .map(|(k, _)| k.clone())
            .collect();
        want.sort();
        assert_eq!(ready, want, "the line holds each ready object once");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    proptest! {
        /// The counts, the failing and parked objects and the wake times the queue keeps
        /// beside its objects stay what a walk over them says, whatever is done to it.
        #[test]
        fn what_the_queue_keeps_equals_a_walk_over_its_objects(
            ops in proptest::collection::vec((0u8..9, 0u8..6, 0u64..5), 0..150)
        ) {
            let base = Instant::now();
            let mut q: ObjectQueue<u8, u32> = ObjectQueue::new(3, 3);
            for (i, (op, key, t)) in ops.into_iter().enumerate() {
                let now = base + Duration::from_secs(t);
                let i = i as u32;
                match op {
                    0 => q.push(key, i),
                    1 => q.push_merged(key, i, |a, b| *a += b),
                    2 => {
                        q.take(now);
                    }
                    3 => q.succeeded(&key),
                    4 => q.failed(&key, format!("e{i}"), Some(now + Duration::from_secs(1))),
                    5 => q.failed(&key, "gone".into(), None),
                    6 => q.replace_waiting(key, i),
                    7 => {
                        q.retry(&key);
                    }
                    _ => {
                        let saved = q.export();
                        q = ObjectQueue::new(3, 3);
                        q.import(saved);
                    }
                }
                q.check();
                prop_assert_eq!(q.waiting_objects() + q.in_flight() + q.parked().len(), q.objects.len());
                prop_assert_eq!(q.next_wake(), q.waking.first().map(|(at, _)| *at));
            }
        }
    }

    #[test]
    fn one_object_s_changes_go_in_order_one_at_a_time() {
        let now = Instant::now();
        let mut q = ObjectQueue::new(4, 3);
        q.push("a", 1);
        q.push("a", 2);
        q.push("b", 10);
        assert_eq!(q.take(now), Some(("a", 1)));
        assert_eq!(q.take(now), Some(("b", 10)));
        assert_eq!(q.take(now), None, "a's second change waits for its first");
        q.succeeded(&"a");
        assert_eq!(q.take(now), Some(("a", 2)));
        q.succeeded(&"a");
        q.succeeded(&"b");
        assert!(q.is_empty());
    }

    #[test]
    fn the_concurrency_limit_holds() {
        let now = Instant::now();
        let mut q = ObjectQueue::new(2, 3);
        for k in ["a", "b", "c"] {
            q.push(k, 0);
        }
        assert!(q.take(now).is_some());
        assert!(q.take(now).is_some());
        assert_eq!(q.take(now), None);
        q.succeeded(&"a");
        assert_eq!(q.take(now), Some(("c", 0)));
    }

    #[test]
    fn a_failing_object_shows_its_error_and_next_attempt_until_it_succeeds() {
        let mut q: ObjectQueue<&str, u32> = ObjectQueue::new(2, 3);
        let now = Instant::now();
        let later = now + std::time::Duration::from_secs(5);
        q.push("a", 1);
        q.push("b", 2);
        let _ = q.take(now);
        let _ = q.take(now);
        q.failed(
            &"a",
            "no answer: POST http://x/Users: refused".into(),
            Some(later),
        );
        q.succeeded(&"b");
        assert_eq!(
            q.failing(),
            vec![Failing {
                key: "a",
                attempts: 1,
                error: "no answer: POST http://x/Users: refused".into(),
                next_attempt: Some(later),
            }]
        );
        assert_eq!(q.take(later), Some(("a", 1)));
        q.succeeded(&"a");
        assert!(q.failing().is_empty(), "a success clears it");
    }

    #[test]
    fn a_failing_object_waits_and_is_parked_without_blocking_others() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(5);
        let mut q = ObjectQueue::new(1, 2);
        q.push("bad", 1);
        q.push("bad", 2);
        q.push("good", 1);
        assert_eq!(q.len(), 3);
        assert_eq!(q.take(t0), Some(("bad", 1)));
        q.failed(&"bad", "500: boom".into(), Some(later));
        assert_eq!(q.next_wake(), Some(later));
        // While it waits, the others go.
        assert_eq!(q.take(t0), Some(("good", 1)));
        q.succeeded(&"good");
        assert_eq!(q.take(t0), None);
        // Its wait is over: the same change again, not the next one.
        assert_eq!(q.take(later), Some(("bad", 1)));
        q.failed(&"bad", "400: userName is required".into(), Some(later));
        assert_eq!(
            q.parked(),
            [Parked {
                key: "bad",
                attempts: 2,
                error: "400: userName is required".into(),
                pending: 2
            }]
        );
        q.push("good", 2);
        assert_eq!(q.take(later + Duration::from_secs(60)), Some(("good", 2)));
        q.succeeded(&"good");
        assert_eq!(
            q.take(later + Duration::from_secs(60)),
            None,
            "parked stays parked"
        );
        assert!(q.retry(&"bad"));
        assert!(!q.retry(&"bad"), "no longer parked");
        assert_eq!(q.take(later), Some(("bad", 1)));
        q.succeeded(&"bad");
        assert_eq!(q.take(later), Some(("bad", 2)));
        q.succeeded(&"bad");
        assert!(q.is_empty() && q.parked().is_empty());
    }

    #[test]
    fn a_permanent_failure_parks_at_once_and_a_full_sync_replaces_what_waits() {
        let now = Instant::now();
        let mut q: ObjectQueue<&str, u32> = ObjectQueue::new(4, 8);
        q.push("g", 1);
        q.push("g", 2);
        assert_eq!(q.take(now), Some(("g", 1)));
        q.failed(&"g", "501: not implemented".into(), None);
        assert_eq!(
            q.parked().len(),
            1,
            "no retries for what the remote will never do"
        );
        assert_eq!(
            q.waiting_objects(),
            0,
            "a parked object is not also pending"
        );
        // The full sync's own change replaces the stale ones and unparks the object.
        q.replace_waiting("g", 9);
        assert!(q.parked().is_empty());
        assert_eq!(q.waiting_objects(), 1);
        assert_eq!(q.take(now), Some(("g", 9)));
        // With a change in flight, the replacement goes after it.
        q.push("g", 10);
        q.replace_waiting("g", 11);
        q.succeeded(&"g");
        assert_eq!(q.take(now), Some(("g", 11)));
        q.succeeded(&"g");
        assert!(q.is_empty());
        q.replace_waiting("new", 1);
        assert_eq!(q.take(now), Some(("new", 1)));
    }

    #[test]
    fn merged_changes_fold_into_the_last_one_that_has_not_started() {
        let now = Instant::now();
        let mut q: ObjectQueue<&str, Vec<u32>> = ObjectQueue::new(4, 3);
        let merge = |a: &mut Vec<u32>, b: Vec<u32>| a.extend(b);
        q.push_merged("a", vec![1], merge);
        q.push_merged("a", vec![2], merge);
        assert_eq!(q.len(), 1, "not started yet: one change");
        assert_eq!(q.take(now), Some(("a", vec![1, 2])));
        q.push_merged("a", vec![3], merge);
        q.push_merged("a", vec![4], merge);
        assert_eq!(q.len(), 2, "the one in flight stays as it was sent");
        q.succeeded(&"a");
        assert_eq!(q.take(now), Some(("a", vec![3, 4])));
    }

    #[test]
    fn an_exported_queue_imports_with_its_parked_objects_still_parked() {
        let now = Instant::now();
        let mut q: ObjectQueue<&str, u32> = ObjectQueue::new(4, 1);
        q.push("a", 1);
        q.push("b", 2);
        let (k, _) = q.take(now).unwrap();
        q.failed(&k, "boom".into(), Some(now));
        let (in_flight, _) = q.take(now).unwrap();
        let mut saved = q.export();
        saved.sort_by_key(|s| s.key);
        let mut r: ObjectQueue<&str, u32> = ObjectQueue::new(4, 1);
        r.import(saved);
        assert_eq!(r.parked().len(), 1);
        assert_eq!(r.parked()[0].key, k);
        assert_eq!(
            r.take(now),
            Some((in_flight, if in_flight == "a" { 1 } else { 2 })),
            "in flight is queued again"
        );
        assert_eq!(r.take(now), None);
        assert_eq!(r.retry_all(), 1);
        assert!(r.take(now).is_some());
    }
}
