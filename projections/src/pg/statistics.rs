//! Keeps the planner's statistics of the views fresh while they grow fast.
//!
//! Autovacuum analyzes a table once a tenth of it changed, but looks only once a minute. During
//! a first provisioning (Entra ID creating tens of thousands of users, asking for each userName
//! before creating it) the views grow from nothing well within that minute, and a table never
//! analyzed is planned as if empty: PostgreSQL then finds a userName by walking the users'
//! primary key (33 ms at 30,000 users, against 0.05 ms through the userName index), and the
//! fold's lookup of each changed resource's last audit row walks the whole audit table (a PATCH
//! right after a provisioning took ten times as long). So the serving store analyzes the users,
//! groups and audit tables itself once the user and group events it folded since the last time
//! reach what the users table held then (at least 1,000): each time it may have doubled, one
//! analysis at a time, in the background. Plans change across orders of magnitude, not tenths;
//! an analysis samples 30,000 rows whatever the size, and at a tenth it took a third of
//! PostgreSQL's processor time during fast provisioning (analyzing once a second at 3,000
//! creates/s). Autovacuum's tenth keeps them fresh once growth slows.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// The fewest changes that make the store analyze its tables again.
const LEAST_CHANGES: u64 = 1_000;

pub(super) struct Statistics {
    /// User and group events folded since the last analysis.
    pending: AtomicU64,
    /// How many make the next one.
    threshold: AtomicU64,
    running: AtomicBool,
}

impl Statistics {
    /// Statistics of tables whose users table the planner believes holds `rows` (negative:
    /// never analyzed).
    pub(super) fn new(rows: f64) -> Statistics {
        Statistics {
            pending: AtomicU64::new(0),
            threshold: AtomicU64::new(threshold(rows)),
            running: AtomicBool::new(false),
        }
    }

    /// Counts `changes` folded; true when the caller should analyze the tables now (and then
    /// call [`Statistics::analyzed`]).
    fn folded(&self, changes: u64) -> bool {
        let pending = self.pending.fetch_add(changes, Ordering::Relaxed) + changes;
        pending >= self.threshold.load(Ordering::Relaxed)
            && !self.running.swap(true, Ordering::AcqRel)
    }

    /// After an analysis that found `rows` users (None: it failed, try again later).
    fn analyzed(&self, rows: Option<f64>) {
        if let Some(rows) = rows {
            self.pending.store(0, Ordering::Relaxed);
            self.threshold.store(threshold(rows), Ordering::Relaxed);
        }
        self.running.store(false, Ordering::Release);
    }
}

fn threshold(rows: f64) -> u64 {
    (rows.max(0.0) as u64).max(LEAST_CHANGES)
}

/// What the planner believes the active generation's users table holds.
pub(super) async fn user_rows(
    client: &tokio_postgres::Client,
) -> Result<f64, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT coalesce((SELECT reltuples::float8 FROM pg_class WHERE oid = \
             to_regclass('users_g' || (SELECT active FROM roster_generation))), -1)",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Counts `changes` folded into `pool`'s views and analyzes them in the background when they
/// are due.
pub(super) fn folded(stats: &Arc<Statistics>, pool: &deadpool_postgres::Pool, changes: u64) {
    if changes == 0 || !stats.folded(changes) {
        return;
    }
    let (stats, pool) = (stats.clone(), pool.clone());
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let rows = async {
            let client = pool.get().await.ok()?;
            client
                .batch_execute("ANALYZE users, user_emails, groups, group_members, audit_events")
                .await
                .ok()?;
            user_rows(&client).await.ok()
        }
        .await;
        match rows {
            Some(rows) => tracing::info!(
                users = rows,
                seconds = started.elapsed().as_secs_f64(),
                "analyzed the views' tables after fast growth"
            ),
            None => tracing::warn!("could not analyze the views' tables; trying again later"),
        }
        stats.analyzed(rows);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analyses_come_each_time_the_table_may_have_doubled_one_at_a_time() {
        let s = Statistics::new(-1.0);
        assert!(!s.folded(999));
        assert!(s.folded(1), "1,000 changes to a table never analyzed");
        assert!(!s.folded(5_000), "one analysis at a time");
        s.analyzed(Some(50_000.0));
        assert!(!s.folded(49_999));
        assert!(s.folded(1), "as many changes as the 50,000 rows");
        s.analyzed(None);
        assert!(
            s.folded(1),
            "a failed analysis is tried again at the next change"
        );
    }
}
