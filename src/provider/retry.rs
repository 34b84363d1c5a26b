//! When to send a failed request again: which failures are worth retrying, exponential
//! backoff with full jitter, and the remote's own `Retry-After` (RFC 9110 §10.2.3) on 429
//! and 503, which wins over the backoff.

use chrono::{DateTime, Utc};
use rand::Rng;
use reqwest::StatusCode;
use std::time::Duration;

/// The longest wait a `Retry-After` may impose; a remote asking for more is waited on this
/// long, then asked again.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Exponential backoff: attempt `n` (from 1) waits a random time in `[0, min(cap, base·2ⁿ⁻¹)]`
/// ("full jitter"), so that many objects failing together do not retry together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The upper bound of attempt `attempt`'s wait.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A random wait for attempt `attempt`.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        Duration::from_nanos(rng.random_range(0..=ceiling.as_nanos().min(u64::MAX as u128) as u64))
    }
}

/// Whether a response status is worth retrying: the remote is overloaded or failing
/// (429, 500, 502, 503, 504) or timed the request out (408). Other 4xx answers will not
/// change by themselves.
pub fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// The wait a `Retry-After` header asks for: delay-seconds or an HTTP-date (a date in the
/// past means now). `None` when absent or unreadable.
pub fn retry_after(value: Option<&str>, now: DateTime<Utc>) -> Option<Duration> {
    let value = value?.trim();
    let wait = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let at = DateTime::parse_from_rfc2822(value)
            .ok()?
            .with_timezone(&Utc);
        (at - now).to_std().unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// How long to wait before attempt `attempt + 1` after a response with `status` and
/// `Retry-After` header `header`: the header's wait on 429 and 503 when it has one, the
/// backoff otherwise.
pub fn wait_after(
    status: StatusCode,
    header: Option<&str>,
    attempt: u32,
    backoff: &Backoff,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> Duration {
    let honoured = matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    );
    honoured
        .then(|| retry_after(header, now))
        .flatten()
        .unwrap_or_else(|| backoff.delay(attempt, rng))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter_below_the_ceiling() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(1), Duration::from_millis(500));
        assert_eq!(b.ceiling(2), Duration::from_secs(1));
        assert_eq!(b.ceiling(5), Duration::from_secs(8));
        assert_eq!(b.ceiling(20), Duration::from_secs(300));
        assert_eq!(b.ceiling(200), Duration::from_secs(300));
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let waits: Vec<Duration> = (0..200).map(|_| b.delay(4, &mut rng)).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(4)));
        // Jitter: not all the same.
        assert!(waits.iter().any(|w| *w != waits[0]));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            retry_after(Some("120"), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(retry_after(Some(" 0 "), now), Some(Duration::ZERO));
        assert_eq!(
            retry_after(Some("Tue, 01 Dec 2026 12:00:30 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(Some("Tue, 01 Dec 2026 11:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(Some("999999999"), now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(Some("soon"), now), None);
        assert_eq!(retry_after(Some("-5"), now), None);
        assert_eq!(retry_after(None, now), None);
    }

    #[test]
    fn retry_after_wins_on_429_and_503_only() {
        let now = Utc::now();
        let b = Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(1),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let w = |s: u16, h: Option<&str>, rng: &mut rand::rngs::StdRng| {
            wait_after(StatusCode::from_u16(s).unwrap(), h, 1, &b, now, rng)
        };
        assert_eq!(w(429, Some("7"), &mut rng), Duration::from_secs(7));
        assert_eq!(w(503, Some("7"), &mut rng), Duration::from_secs(7));
        assert!(w(500, Some("7"), &mut rng) <= Duration::from_millis(1));
        assert!(w(429, None, &mut rng) <= Duration::from_millis(1));
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(retryable(StatusCode::BAD_GATEWAY));
        assert!(!retryable(StatusCode::BAD_REQUEST));
        assert!(!retryable(StatusCode::CONFLICT));
        assert!(!retryable(StatusCode::NOT_FOUND));
    }
}
