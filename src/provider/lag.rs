//! Each provider's lag over the last day, as the status API and the console's charts show
//! it: the most and the last lag seen in each hour, from samples the manager takes about once
//! a minute. Kept in this process's memory: a restart starts the day again, and an hour in
//! which nothing was sampled (the process was down) has no entry.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// How many hours are kept.
pub const HOURS: usize = 24;

/// How often the manager samples each provider's lag.
pub const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// One hour of a provider's lag, in log records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LagHour {
    /// The hour's start (UTC).
    pub hour: DateTime<Utc>,
    /// The most the provider was behind the views in that hour.
    pub max: u64,
    /// The last sample of the hour.
    pub last: u64,
    pub samples: u32,
}

/// A provider's lag, hour by hour, over the last [`HOURS`] hours.
#[derive(Clone, Debug, Default)]
pub struct LagHistory {
    hours: VecDeque<LagHour>,
    sampled: Option<std::time::Instant>,
}

impl LagHistory {
    /// Whether the next sample is due (none was taken yet, or the last is [`SAMPLE_EVERY`]
    /// old).
    pub fn due(&self, now: std::time::Instant) -> bool {
        self.sampled
            .is_none_or(|at| now.saturating_duration_since(at) >= SAMPLE_EVERY)
    }

    /// Records a lag of `lag` records seen at `at`, and forgets hours older than a day.
    pub fn record(&mut self, at: DateTime<Utc>, lag: u64, now: std::time::Instant) {
        self.sampled = Some(now);
        let hour = start_of_hour(at);
        match self.hours.back_mut() {
            // A clock that went back: the sample joins the latest hour rather than reorder it.
            Some(h) if h.hour >= hour => {
                h.max = h.max.max(lag);
                h.last = lag;
                h.samples += 1;
            }
            _ => self.hours.push_back(LagHour {
                hour,
                max: lag,
                last: lag,
                samples: 1,
            }),
        }
        self.forget_before(hour);
    }

    /// The hours of the last day up to `now` that were sampled, oldest first.
    pub fn last_day(&self, now: DateTime<Utc>) -> Vec<LagHour> {
        let first = first_hour(now);
        self.hours
            .iter()
            .filter(|h| h.hour >= first)
            .copied()
            .collect()
    }

    fn forget_before(&mut self, now: DateTime<Utc>) {
        let first = first_hour(now);
        while self.hours.front().is_some_and(|h| h.hour < first) {
            self.hours.pop_front();
        }
    }
}

/// The start of the oldest of the [`HOURS`] hours that end with the one holding `now`.
pub fn first_hour(now: DateTime<Utc>) -> DateTime<Utc> {
    start_of_hour(now) - Duration::hours(HOURS as i64 - 1)
}

fn start_of_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::hours(1)).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 6, h, m, 0).unwrap()
    }

    #[test]
    fn each_hour_keeps_its_most_and_its_last_lag() {
        let now = std::time::Instant::now();
        let mut history = LagHistory::default();
        history.record(at(9, 1), 5, now);
        history.record(at(9, 30), 40, now);
        history.record(at(9, 59), 2, now);
        history.record(at(10, 0), 0, now);
        let day = history.last_day(at(10, 5));
        assert_eq!(
            day,
            vec![
                LagHour {
                    hour: at(9, 0),
                    max: 40,
                    last: 2,
                    samples: 3
                },
                LagHour {
                    hour: at(10, 0),
                    max: 0,
                    last: 0,
                    samples: 1
                },
            ]
        );
    }

    #[test]
    fn hours_older_than_a_day_are_forgotten() {
        let now = std::time::Instant::now();
        let mut history = LagHistory::default();
        history.record(at(0, 10), 7, now);
        history.record(at(1, 10), 8, now);
        assert_eq!(history.last_day(at(23, 59)).len(), 2);
        // At 00:00 the next day, the day starts at 01:00.
        let next_day = at(0, 0) + Duration::days(1);
        assert_eq!(
            history
                .last_day(next_day)
                .iter()
                .map(|h| h.max)
                .collect::<Vec<_>>(),
            vec![8]
        );
        history.record(next_day + Duration::hours(1), 3, now);
        assert_eq!(history.hours.len(), 1, "the hours before were dropped");
    }

    #[test]
    fn a_sample_is_due_a_minute_after_the_last() {
        let start = std::time::Instant::now();
        let mut history = LagHistory::default();
        assert!(history.due(start));
        history.record(at(9, 0), 1, start);
        assert!(!history.due(start + std::time::Duration::from_secs(59)));
        assert!(history.due(start + SAMPLE_EVERY));
    }

    #[test]
    fn a_clock_that_goes_back_does_not_reorder_the_hours() {
        let now = std::time::Instant::now();
        let mut history = LagHistory::default();
        history.record(at(10, 0), 1, now);
        history.record(at(9, 59), 9, now);
        let day = history.last_day(at(10, 1));
        assert_eq!(day.len(), 1);
        assert_eq!((day[0].max, day[0].last), (9, 9));
    }
}
