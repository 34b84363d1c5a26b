//! How far PostgreSQL's views are, as the cache ([`super::cache`]) must know before it
//! answers: a [`Seen`] (the active generation and, per partition, the first position not
//! reflected) no older than the request being answered.
//!
//! - With several processes folding (a Kafka log), a probe of `positions` that started after
//!   the request arrived. One probe runs at a time; every read waiting when it starts shares its
//!   answer (it lets the scheduler go round once before it starts, so that requests already
//!   arrived join it), and every read of one request shares one probe (the arrival is a
//!   task-local the HTTP layer sets: [`reads_as_of`]).
//! - With this process alone folding (the embedded file log), what it committed itself; a probe
//!   once a second still notices a rebuild's swap of generations.

use super::StoreError;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{watch, Notify};

tokio::task_local! {
    /// When the request being answered arrived: a probe that started after it is fresh enough
    /// for every read the request makes.
    static ARRIVED: Instant;
}

/// Runs `f` as the answer to a request that arrived at `at`: the PostgreSQL store's cached reads
/// within it share one freshness probe started after `at` (instead of one each).
pub async fn reads_as_of<F: Future>(at: Instant, f: F) -> F::Output {
    ARRIVED.scope(at, f).await
}

fn arrived() -> Instant {
    ARRIVED.try_with(|t| *t).unwrap_or_else(|_| Instant::now())
}

/// The generation and per partition the first position PostgreSQL's views do not reflect, as
/// one probe saw them.
#[derive(Debug)]
pub(super) struct Seen {
    pub(super) gen: i32,
    pub(super) next: Vec<u64>,
}

impl Seen {
    pub(super) fn next(&self, partition: usize) -> u64 {
        self.next.get(partition).copied().unwrap_or(0)
    }
}

/// Who folds the log into the tables the cache stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Folders {
    /// This process alone (the embedded file log): its own commits say how far they are.
    #[default]
    One,
    /// Possibly several processes (a Kafka log): each read asks PostgreSQL.
    Several,
}

/// Says how far the views are; its probe task ends when it is dropped.
pub(super) struct Freshness {
    folders: Folders,
    /// With [`Folders::One`]: the generation last probed and the positions this process
    /// committed.
    committed: Mutex<Arc<Seen>>,
    probe: Arc<Probe>,
    task: tokio::task::JoinHandle<()>,
}

/// One freshness probe at a time; every read waiting when it starts shares its answer.
struct Probe {
    wanted: Notify,
    in_flight: Mutex<Flight>,
    done: watch::Sender<Option<Arc<Probed>>>,
}

/// Where the probe is.
#[derive(Clone, Copy)]
enum Flight {
    Idle,
    /// About to start: it will start after every read that arrives now.
    Starting,
    /// In flight since then.
    Since(Instant),
}

impl Probe {
    fn set(&self, flight: Flight) {
        *self.in_flight.lock().unwrap_or_else(|p| p.into_inner()) = flight;
    }
}

struct Probed {
    started: Instant,
    seen: Option<Arc<Seen>>,
}

impl Drop for Freshness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Freshness {
    /// Reads the positions now and starts the probe task; returns what it read.
    ///
    /// Fails when the database cannot be reached.
    pub(super) async fn start(
        folders: Folders,
        pool: deadpool_postgres::Pool,
    ) -> Result<(Freshness, Seen), StoreError> {
        let seen = read_positions(&pool).await?;
        let probe = Arc::new(Probe {
            wanted: Notify::new(),
            in_flight: Mutex::new(Flight::Idle),
            done: watch::channel(None).0,
        });
        let task = tokio::spawn(run_probe(probe.clone(), folders, pool));
        let committed = Mutex::new(Arc::new(Seen {
            gen: seen.gen,
            next: seen.next.clone(),
        }));
        Ok((
            Freshness {
                folders,
                committed,
                probe,
                task,
            },
            seen,
        ))
    }

    /// After entries were folded: with [`Folders::One`], the tables now reflect every entry
    /// before `next` (per partition).
    pub(super) fn committed(&self, next: &[(usize, u64)]) {
        if self.folders != Folders::One {
            return;
        }
        let mut committed = self.committed.lock().unwrap_or_else(|p| p.into_inner());
        let mut seen = Seen {
            gen: committed.gen,
            next: committed.next.clone(),
        };
        for &(p, n) in next {
            if seen.next.len() <= p {
                seen.next.resize(p + 1, 0);
            }
            seen.next[p] = seen.next[p].max(n);
        }
        *committed = Arc::new(seen);
    }

    /// The positions PostgreSQL reflected after the current request arrived; None when the
    /// database could not say (the read then goes to the tables, and fails there if it is down).
    pub(super) async fn seen(&self) -> Option<Arc<Seen>> {
        if self.folders == Folders::One {
            let probed = self
                .probe
                .done
                .borrow()
                .as_ref()
                .and_then(|d| d.seen.clone());
            let mut committed = self.committed.lock().unwrap_or_else(|p| p.into_inner());
            // A rebuild swapped in a newer generation (folded from the same log up to here).
            if let Some(probed) = probed.filter(|p| p.gen > committed.gen) {
                let next = (0..committed.next.len().max(probed.next.len()))
                    .map(|p| committed.next(p).max(probed.next(p)))
                    .collect();
                *committed = Arc::new(Seen {
                    gen: probed.gen,
                    next,
                });
            }
            return Some(committed.clone());
        }
        let since = arrived();
        let mut done = self.probe.done.subscribe();
        loop {
            if let Some(d) = done.borrow_and_update().as_ref() {
                if d.started >= since {
                    return d.seen.clone();
                }
            }
            let flight = *self
                .probe
                .in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match flight {
                Flight::Starting => {}
                Flight::Since(s) if s >= since => {}
                Flight::Idle | Flight::Since(_) => self.probe.wanted.notify_one(),
            }
            if done.changed().await.is_err() {
                return None;
            }
        }
    }
}

/// Runs one probe each time one is wanted (with [`Folders::One`], once a second), until the
/// cache is dropped.
async fn run_probe(probe: Arc<Probe>, folders: Folders, pool: deadpool_postgres::Pool) {
    loop {
        match folders {
            Folders::Several => {
                probe.wanted.notified().await;
                // Once round the scheduler first (which polls the sockets when it defers a
                // yield): requests that have arrived meanwhile reach their reads and share
                // this probe, instead of each waiting for the next. Costs nothing when idle.
                probe.set(Flight::Starting);
                tokio::task::yield_now().await;
            }
            Folders::One => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
        }
        let started = Instant::now();
        probe.set(Flight::Since(started));
        let seen = read_positions(&pool).await.ok().map(Arc::new);
        probe
            .done
            .send_replace(Some(Arc::new(Probed { started, seen })));
        probe.set(Flight::Idle);
    }
}

async fn read_positions(pool: &deadpool_postgres::Pool) -> Result<Seen, StoreError> {
    let unavailable = |e: &dyn std::fmt::Display| StoreError::Unavailable(e.to_string());
    let client = pool.get().await.map_err(|e| unavailable(&e))?;
    let stmt = client
        .prepare_cached(
            "SELECT r.active, p.log_partition, p.next_position FROM roster_generation r \
             LEFT JOIN positions p ON p.gen = r.active",
        )
        .await
        .map_err(|e| unavailable(&e))?;
    let rows = client
        .query(&stmt, &[])
        .await
        .map_err(|e| unavailable(&e))?;
    let mut seen = Seen {
        gen: rows.first().map_or(0, |r| r.get(0)),
        next: Vec::new(),
    };
    for r in &rows {
        let (Some(p), Some(next)) = (r.get::<_, Option<i32>>(1), r.get::<_, Option<i64>>(2)) else {
            continue;
        };
        let p = p.max(0) as usize;
        if seen.next.len() <= p {
            seen.next.resize(p + 1, 0);
        }
        seen.next[p] = next.max(0) as u64;
    }
    Ok(seen)
}
