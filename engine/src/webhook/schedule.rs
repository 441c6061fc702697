//! When a failed delivery is tried again: exponential backoff with jitter, for up to
//! 24 h from the start of its retry window, then the dead-letter state.
//!
//! A pure function of the failure count, the window's start, now and a jitter draw, so
//! the whole schedule is unit-tested without a clock.

use std::time::Duration;

/// The wait after the first failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(5);
/// The longest wait between two attempts (the doubling stops here).
pub const MAX_INTERVAL: Duration = Duration::from_secs(2 * 3600);
/// How long a delivery is retried before it is dead.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Jitter spreads each wait over ±20 % so that many deliveries failed together (a
/// receiver that was down) do not come back in one burst.
const JITTER: f64 = 0.2;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again at this Unix ms.
    RetryAt(i64),
    /// Give up: the next try would fall past [`GIVE_UP_AFTER`].
    Dead,
}

/// The un-jittered wait after `failures` failed attempts (1: the first failure).
pub fn base_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    FIRST_RETRY
        .saturating_mul(1u32 << doublings)
        .min(MAX_INTERVAL)
}

/// The next step after `failures` failed attempts (counting the one that just failed) of
/// a delivery whose retry window began at `since_ms`, failed at `now_ms`; `jitter` is a
/// uniform draw in [0, 1).
pub fn after_failure(failures: u32, since_ms: i64, now_ms: i64, jitter: f64) -> Next {
    let base = base_delay(failures).as_secs_f64() * 1000.0;
    let factor = 1.0 - JITTER + 2.0 * JITTER * jitter.clamp(0.0, 1.0);
    let at = now_ms.saturating_add((base * factor) as i64);
    let limit = since_ms.saturating_add(GIVE_UP_AFTER.as_millis() as i64);
    if at > limit {
        Next::Dead
    } else {
        Next::RetryAt(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_five_seconds_up_to_the_cap() {
        assert_eq!(base_delay(1), Duration::from_secs(5));
        assert_eq!(base_delay(2), Duration::from_secs(10));
        assert_eq!(base_delay(3), Duration::from_secs(20));
        assert_eq!(base_delay(11), Duration::from_secs(5120));
        assert_eq!(base_delay(12), MAX_INTERVAL);
        assert_eq!(base_delay(1000), MAX_INTERVAL);
        // No zero wait even for a nonsense count.
        assert_eq!(base_delay(0), FIRST_RETRY);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for (j, want) in [(0.0, 4_000), (0.5, 5_000), (0.999_999, 5_999)] {
            assert_eq!(after_failure(1, 0, 0, j), Next::RetryAt(want), "{j}");
        }
        // Out-of-range draws are clamped, never a negative or huge wait.
        assert_eq!(after_failure(1, 0, 0, -3.0), Next::RetryAt(4_000));
        assert_eq!(after_failure(1, 0, 0, 7.0), Next::RetryAt(6_000));
    }

    #[test]
    fn a_down_receiver_is_tried_for_a_day_then_dead() {
        // Replay a receiver that never answers, failing at each scheduled instant.
        let (mut now, mut failures, mut tries) = (0i64, 0u32, 1u32);
        loop {
            failures += 1;
            match after_failure(failures, 0, now, 0.5) {
                Next::RetryAt(at) => {
                    assert!(at > now);
                    now = at;
                    tries += 1;
                }
                Next::Dead => break,
            }
            assert!(tries < 100, "bounded");
        }
        let day = GIVE_UP_AFTER.as_millis() as i64;
        assert!(now <= day, "never tried after 24 h");
        assert!(
            now > day - MAX_INTERVAL.as_millis() as i64 * 2,
            "kept trying near the end"
        );
        // 11 doublings (5 s .. 5120 s, 2.8 h in all), then 10 waits of 2 h: 22 tries.
        assert_eq!(tries, 22);
    }

    #[test]
    fn a_manual_redelivery_opens_a_new_window() {
        let day = GIVE_UP_AFTER.as_millis() as i64;
        // Failing long after the original window: dead if counted from it...
        assert_eq!(after_failure(1, 0, day + 1, 0.5), Next::Dead);
        // ...retried when the window restarts at the redelivery.
        assert_eq!(
            after_failure(1, day, day + 1, 0.5),
            Next::RetryAt(day + 5_001)
        );
    }
}
