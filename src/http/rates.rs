//! Per-source request rates: each source may send `per_second` requests a second on average,
//! with bursts up to `burst` (GCRA, by `governor`). Beyond that its requests are answered 429
//! with the `Retry-After` Entra ID and Okta honour, and other sources are unaffected.
//! Requests are counted after authentication, so a stranger cannot spend a source's budget.

use super::error::ScimError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;

/// The rate limits of every source.
pub struct SourceRates {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl SourceRates {
    /// Limits at `per_second` with bursts of `burst`; 0 requests a second means no limit.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate).max(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        SourceRates {
            limiter,
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request of `slug`.
    ///
    /// Fails with 429 and the seconds to wait when the source is over its rate.
    pub fn admit(&self, slug: &str) -> Result<(), ScimError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&slug.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            tracing::debug!(
                source = slug,
                wait_ms = wait.as_millis() as u64,
                "rate limited"
            );
            ScimError::too_many_requests(
                format!("source {slug:?} sends more requests than its rate limit allows"),
                secs,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_over_its_rate_is_turned_away_and_others_are_not() {
        let rates = SourceRates::new(1, 3);
        for _ in 0..3 {
            rates.admit("busy").unwrap();
        }
        let e = rates.admit("busy").unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.retry_after, Some(1));
        rates.admit("quiet").unwrap();
        let off = SourceRates::new(0, 0);
        for _ in 0..10_000 {
            off.admit("any").unwrap();
        }
    }
}
