//! How many events the audit trail recorded in each of the last hours (the console's activity
//! chart): per partition, the first entry at or after each hour's start, found by time in the
//! index (or the audit projection's time index), and the differences between them. Nothing
//! is read back from the log.

use super::{Audit, AuditError};
use chrono::{DateTime, Timelike, Utc};

/// One hour and the events recorded in it.
#[derive(Clone, Debug, PartialEq)]
pub struct Hour {
    pub start: DateTime<Utc>,
    pub events: u64,
}

const HOUR_MS: i64 = 3_600_000;

impl Audit {
    /// The events recorded in each of the `hours` hours up to now, oldest first (the last is
    /// the hour under way).
    ///
    /// Fails when the audit projection in PostgreSQL cannot be read.
    pub async fn per_hour(
        &self,
        hours: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<Hour>, AuditError> {
        let this_hour = now
            .with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(now)
            .timestamp_millis();
        let first = this_hour - (hours as i64 - 1) * HOUR_MS;
        // The hour boundaries, and the end of the last one.
        let bounds: Vec<i64> = (0..=hours as i64).map(|i| first + i * HOUR_MS).collect();
        let mut counts = vec![0u64; hours];
        for partition in 0..self.partitions() {
            let mut at = Vec::with_capacity(bounds.len());
            for &b in &bounds {
                at.push(self.first_entry_since(partition as u32, b).await?);
            }
            for (i, w) in at.windows(2).enumerate() {
                counts[i] += w[1].saturating_sub(w[0]);
            }
        }
        Ok(counts
            .into_iter()
            .enumerate()
            .map(|(i, events)| Hour {
                start: DateTime::from_timestamp_millis(bounds[i]).unwrap_or(now),
                events,
            })
            .collect())
    }

    /// The first entry of `partition` at or after `since_ms`, or its end.
    async fn first_entry_since(&self, partition: u32, since_ms: i64) -> Result<u64, AuditError> {
        match &self.pg {
            Some(pg) => Ok(pg.store.audit_first_since(partition, since_ms).await?),
            None => {
                let state = self.read();
                Ok(state
                    .partitions
                    .get(partition as usize)
                    .map_or(0, |p| p.first_at_or_after(since_ms) as u64))
            }
        }
    }
}
