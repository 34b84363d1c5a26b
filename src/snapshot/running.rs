//! The snapshots of a serving process: one background task that looks at every subject each
//! second, in turn (so that two snapshots are never written at once), and writes the last
//! ones at a clean stop.

use super::{Snapshots, Subject};
use roster_projections::MemoryStore;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How often the background task looks at its subjects.
const TICK: Duration = Duration::from_secs(1);

/// One subject and its snapshots, as the background task sees them.
#[async_trait::async_trait]
trait Due: Send + Sync {
    async fn tick(&self);
    async fn finish(&self);
}

struct Bound<S: Subject> {
    snapshots: Arc<Snapshots<S>>,
    subject: Arc<S>,
}

#[async_trait::async_trait]
impl<S: Subject> Due for Bound<S> {
    async fn tick(&self) {
        self.snapshots.tick(&self.subject).await;
    }

    async fn finish(&self) {
        if self.snapshots.policy.every_records > 0 {
            self.snapshots.write_now(&self.subject).await;
        }
    }
}

/// The snapshots of a serving process: one background task that looks at every subject in
/// turn (so that two snapshots are never written at once), and the last snapshots at stop.
pub struct Running {
    subjects: Arc<Mutex<Vec<Arc<dyn Due>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts writing snapshots of the views in `store` until `stop` fires.
    pub fn start(
        snapshots: Arc<Snapshots<MemoryStore>>,
        store: Arc<MemoryStore>,
        mut stop: watch::Receiver<bool>,
    ) -> Running {
        let first: Arc<dyn Due> = Arc::new(Bound {
            snapshots,
            subject: store,
        });
        let subjects = Arc::new(Mutex::new(vec![first]));
        let looked_at = subjects.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let now: Vec<_> = looked_at.lock().unwrap_or_else(|p| p.into_inner()).clone();
                for subject in now {
                    subject.tick().await;
                }
            }
        });
        Running { subjects, task }
    }

    /// A handle to add subjects by, for a task that outlives the caller's borrow.
    pub fn adder(&self) -> Adder {
        Adder(self.subjects.clone())
    }

    /// After the stop signal and the projectors' stop: waits for the task, then writes a
    /// last snapshot of every subject that moved since its last one, so the next start reads
    /// nothing more from the log.
    pub async fn finish(self) {
        let _ = self.task.await;
        let now: Vec<_> = self
            .subjects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for subject in now {
            subject.finish().await;
        }
    }
}

/// Adds subjects to a [`Running`] from another task.
#[derive(Clone)]
pub struct Adder(Arc<Mutex<Vec<Arc<dyn Due>>>>);

impl Adder {
    pub fn add<S: Subject>(&self, snapshots: Arc<Snapshots<S>>, subject: Arc<S>) {
        let due: Arc<dyn Due> = Arc::new(Bound { snapshots, subject });
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(due);
    }
}
