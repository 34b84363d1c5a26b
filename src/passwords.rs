//! Password hashing with bounded work. An Argon2id hash takes tens of milliseconds and 19 MiB
//! on purpose, so unbounded, a burst of requests carrying passwords would take every core and
//! gigabytes of memory. At most `concurrency` hashes run at once, on the blocking pool; at most
//! `queue` more wait, each for at most `wait`; beyond that the request is answered 503 with
//! `Retry-After` and nothing is written.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The longest password accepted, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a password was not hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Too many hashes are running and waiting: try again later.
    #[error("too many passwords are being hashed; try again later")]
    Busy,
    #[error("a password may be at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// The bounded hashing pool.
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
    wait: Duration,
}

/// Counts a request among the waiting while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PasswordHasher {
    pub fn new(concurrency: usize, queue: usize, wait: Duration) -> Self {
        PasswordHasher {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            waiting: AtomicUsize::new(0),
            queue,
            wait,
        }
    }

    /// Hashes `password` with Argon2id (see [`crate::auth::hash_password`]).
    ///
    /// Fails with `Busy` when the queue is full or the wait runs out, and `TooLong` for a
    /// password over [`MAX_PASSWORD_BYTES`].
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(HashError::TooLong);
        }
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(HashError::Busy);
                }
                let _waiting = Waiting(&self.waiting);
                match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
                    Ok(Ok(p)) => p,
                    _ => return Err(HashError::Busy),
                }
            }
        };
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            crate::auth::hash_password(&password)
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))?
        .map_err(HashError::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn beyond_the_running_and_waiting_hashes_a_request_is_turned_away() {
        let hasher = Arc::new(PasswordHasher::new(1, 1, Duration::from_secs(5)));
        // The one hash that may run is running.
        let running = hasher.permits.clone().acquire_owned().await.unwrap();
        let waiting = tokio::spawn({
            let h = hasher.clone();
            async move { h.hash("two".into()).await }
        });
        while hasher.waiting.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // One waits: the next finds the queue full at once.
        assert!(matches!(
            hasher.hash("three".into()).await,
            Err(HashError::Busy)
        ));
        drop(running);
        assert!(waiting.await.unwrap().unwrap().starts_with("$argon2id$"));
        assert_eq!(hasher.waiting.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_that_runs_out_is_turned_away_and_long_passwords_refused() {
        let hasher = PasswordHasher::new(1, 8, Duration::from_secs(5));
        let _running = hasher.permits.clone().acquire_owned().await.unwrap();
        assert!(matches!(
            hasher.hash("x".into()).await,
            Err(HashError::Busy)
        ));
        assert_eq!(hasher.waiting.load(Ordering::SeqCst), 0);
        assert!(matches!(
            hasher.hash("x".repeat(MAX_PASSWORD_BYTES + 1)).await,
            Err(HashError::TooLong)
        ));
    }
}
