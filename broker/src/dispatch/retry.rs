//! The one retry policy of triggers and source sinks: the wait before each retry.

use std::time::Duration;

use crate::config::{BackoffPolicy, DeliveryPolicy};

/// How long to wait before retry `n` of a delivery, from a [`DeliveryPolicy`].
///
/// Every step saturates: a huge `backoffDelay`, `2^(n-1)` for a large `n`, jitter on top of
/// `Duration::MAX` or a far `Retry-After` all end at `Duration::MAX` instead of panicking
/// (tokio treats such a sleep as "never").
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy<'a> {
    pub policy: &'a DeliveryPolicy,
    /// Adds up to 10% random jitter to each backoff (off in tests that pin the formula).
    pub jitter: bool,
}

impl<'a> RetryPolicy<'a> {
    pub fn new(policy: &'a DeliveryPolicy, jitter: bool) -> Self {
        Self { policy, jitter }
    }

    /// Attempts in one round: the first plus `retry`.
    pub fn attempts(&self) -> u32 {
        self.policy.retry.saturating_add(1)
    }

    /// The wait before retry `n` (1-based): the policy's backoff (plus jitter), or
    /// `Retry-After` when that is longer, capped by `retryAfterMax`.
    pub fn wait(&self, n: u32, retry_after: Option<Duration>) -> Duration {
        let mut wait = self.backoff(n);
        if self.jitter {
            wait = wait.saturating_add(jitter_of(wait, fastrand::f64()));
        }
        if let Some(after) = retry_after {
            let after = self
                .policy
                .retry_after_max
                .map_or(after, |max| after.min(max));
            wait = wait.max(after);
        }
        wait
    }
}

impl RetryPolicy<'_> {
    /// The backoff before retry `n` (1-based), before jitter and `Retry-After`: exponential
    /// `delay * 2^(n-1)`, linear `delay * n`, then `backoffCap`. Computed in nanoseconds as
    /// `u128`, saturating at `Duration::MAX`.
    pub fn backoff(&self, n: u32) -> Duration {
        let n = n.max(1);
        let factor = match self.policy.backoff_policy {
            BackoffPolicy::Exponential => 1u128.checked_shl(n - 1).unwrap_or(u128::MAX),
            BackoffPolicy::Linear => u128::from(n),
        };
        let raw = scale(self.policy.backoff_delay, factor);
        match self.policy.backoff_cap {
            Some(cap) => raw.min(cap),
            None => raw,
        }
    }
}

/// `delay * factor`, saturating at `Duration::MAX`.
fn scale(delay: Duration, factor: u128) -> Duration {
    const NANOS: u128 = 1_000_000_000;
    let nanos = delay.as_nanos().saturating_mul(factor);
    match u64::try_from(nanos / NANOS) {
        Ok(secs) => Duration::new(secs, (nanos % NANOS) as u32),
        Err(_) => Duration::MAX,
    }
}

/// `fraction` (0..1) of a tenth of `wait`, without the overflow panic of `mul_f64`.
fn jitter_of(wait: Duration, fraction: f64) -> Duration {
    Duration::try_from_secs_f64(wait.as_secs_f64() * 0.1 * fraction.clamp(0.0, 1.0))
        .unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff_policy: BackoffPolicy, delay: Duration) -> DeliveryPolicy {
        DeliveryPolicy {
            retry: u32::MAX,
            backoff_policy,
            backoff_delay: delay,
            ..DeliveryPolicy::default()
        }
    }

    #[test]
    fn exponential_and_linear_follow_the_formula() {
        let p = policy(BackoffPolicy::Exponential, Duration::from_secs(1));
        let r = RetryPolicy::new(&p, false);
        let waits: Vec<u64> = (1..=4).map(|n| r.wait(n, None).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8]);
        let p = policy(BackoffPolicy::Linear, Duration::from_secs(1));
        let r = RetryPolicy::new(&p, false);
        let waits: Vec<u64> = (1..=4).map(|n| r.wait(n, None).as_secs()).collect();
        assert_eq!(waits, [1, 2, 3, 4]);
    }

    #[test]
    fn large_n_and_huge_delays_saturate_instead_of_panicking() {
        for delay in [
            Duration::from_millis(200),
            Duration::from_secs(u64::MAX / 2),
            Duration::from_secs(u64::MAX),
            Duration::MAX,
        ] {
            for backoff in [BackoffPolicy::Exponential, BackoffPolicy::Linear] {
                let p = policy(backoff, delay);
                for jitter in [false, true] {
                    let r = RetryPolicy::new(&p, jitter);
                    for n in [0, 1, 2, 64, 1000, u32::MAX] {
                        let wait = r.wait(n, Some(Duration::MAX));
                        assert!(wait >= delay.min(Duration::MAX), "{backoff:?} {n} {wait:?}");
                    }
                    let wait = r.wait(1000, None);
                    assert!(wait >= delay, "{backoff:?} {wait:?}");
                }
            }
        }
        let p = policy(BackoffPolicy::Exponential, Duration::from_millis(200));
        assert_eq!(RetryPolicy::new(&p, false).wait(1000, None), Duration::MAX);
        assert_eq!(RetryPolicy::new(&p, true).wait(1000, None), Duration::MAX);
    }

    #[test]
    fn jitter_adds_at_most_ten_percent() {
        let p = policy(BackoffPolicy::Exponential, Duration::from_secs(1));
        let r = RetryPolicy::new(&p, true);
        for _ in 0..100 {
            let wait = r.wait(2, None);
            assert!(wait >= Duration::from_secs(2) && wait <= Duration::from_millis(2200));
        }
        assert!(jitter_of(Duration::MAX, 1.0) <= Duration::MAX);
    }

    #[test]
    fn retry_after_wins_when_longer_up_to_its_max() {
        let mut p = policy(BackoffPolicy::Exponential, Duration::from_secs(1));
        let r = RetryPolicy::new(&p, false);
        assert_eq!(
            r.wait(1, Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert_eq!(
            r.wait(3, Some(Duration::from_secs(1))),
            Duration::from_secs(4)
        );
        p.retry_after_max = Some(Duration::from_secs(2));
        let r = RetryPolicy::new(&p, false);
        assert_eq!(
            r.wait(1, Some(Duration::from_secs(5))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn attempts_saturate() {
        let p = policy(BackoffPolicy::Linear, Duration::from_secs(1));
        assert_eq!(RetryPolicy::new(&p, false).attempts(), u32::MAX);
    }
}
