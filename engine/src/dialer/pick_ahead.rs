//! How many attempts a trunk (or a prefix limit) may have picked but not yet sent.
//!
//! An attempt is journaled before its INVITE leaves, so the limiter can only send what the
//! store has already committed. The attempts picked ahead of the limiter must cover the
//! slowest journal commit, or the trunk sends nothing while a commit stalls: at 2,000 CPS a
//! 300 ms fsync with 200 ms picked ahead costs 200 INVITEs that second. Picking further
//! ahead than needed has costs too: those attempts are bound to a trunk while other trunks
//! could have taken them, and a newly started campaign's calls wait behind them. So the
//! horizon follows the commits actually seen: twice the slowest pick-to-commit time of the
//! last few seconds, never under 200 ms nor over one second.

use std::time::{Duration, Instant};

/// The least horizon: what a trunk picks ahead even with instant commits, so that
/// the limiter always has the next INVITEs at hand.
pub const MIN_HORIZON: Duration = Duration::from_millis(200);

/// The most: a stall longer than a second is an outage of the store, not a hiccup to
/// ride over.
pub const MAX_HORIZON: Duration = Duration::from_secs(1);

/// How long a slow commit keeps widening the horizon (at least this, at most twice).
const MEMORY: Duration = Duration::from_secs(5);

/// How far ahead to pick given the slowest recent pick-to-commit time.
pub fn horizon(slowest: Duration) -> Duration {
    (slowest * 2).clamp(MIN_HORIZON, MAX_HORIZON)
}

/// Attempts picked but unsent allowed at `cps` over `horizon`: at least one.
pub fn cap(cps: f64, horizon: Duration) -> u32 {
    let n = (cps * horizon.as_secs_f64()).ceil();
    if n.is_finite() && n >= 1.0 {
        n.min(f64::from(u32::MAX)) as u32
    } else {
        1
    }
}

/// The slowest journal commit of the last [`MEMORY`]–2×[`MEMORY`]: a running maximum in
/// two buckets, so an old stall is forgotten without keeping every sample.
#[derive(Debug, Clone)]
pub struct CommitWatch {
    started: Instant,
    current: Duration,
    previous: Duration,
}

impl CommitWatch {
    /// No commit seen yet.
    pub fn new(now: Instant) -> Self {
        CommitWatch {
            started: now,
            current: Duration::ZERO,
            previous: Duration::ZERO,
        }
    }

    /// An attempt picked at `picked` was committed at `now`.
    pub fn committed(&mut self, picked: Instant, now: Instant) {
        self.roll(now);
        self.current = self.current.max(now.saturating_duration_since(picked));
    }

    /// The horizon to pick ahead at `now`.
    pub fn horizon(&mut self, now: Instant) -> Duration {
        self.roll(now);
        horizon(self.current.max(self.previous))
    }

    fn roll(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.started);
        if age >= MEMORY * 2 {
            self.previous = Duration::ZERO;
            self.current = Duration::ZERO;
            self.started = now;
        } else if age >= MEMORY {
            self.previous = self.current;
            self.current = Duration::ZERO;
            self.started += MEMORY;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn fast_commits_keep_a_fifth_of_a_second() {
        assert_eq!(horizon(ms(0)), ms(200));
        assert_eq!(horizon(ms(30)), ms(200));
        assert_eq!(cap(2000.0, ms(200)), 400);
        assert_eq!(cap(100.0, ms(200)), 20);
        assert_eq!(cap(7.5, ms(200)), 2);
    }

    #[test]
    fn a_slow_commit_doubles_into_the_horizon_up_to_a_second() {
        assert_eq!(horizon(ms(150)), ms(300));
        assert_eq!(horizon(ms(400)), ms(800));
        assert_eq!(horizon(ms(3000)), ms(1000));
        assert_eq!(cap(2000.0, ms(300)), 600);
    }

    #[test]
    fn at_least_one_even_at_a_tiny_or_broken_rate() {
        assert_eq!(cap(1.0, ms(200)), 1);
        assert_eq!(cap(0.2, ms(200)), 1);
        assert_eq!(cap(0.0, ms(200)), 1);
        assert_eq!(cap(f64::NAN, ms(200)), 1);
        assert_eq!(cap(f64::INFINITY, ms(200)), 1);
        assert_eq!(cap(1e30, ms(1000)), u32::MAX);
    }

    #[test]
    fn a_stall_widens_the_horizon_for_five_to_ten_seconds_then_is_forgotten() {
        let t0 = Instant::now();
        let mut w = CommitWatch::new(t0);
        assert_eq!(w.horizon(t0), ms(200));
        w.committed(t0 + ms(1000), t0 + ms(1250));
        assert_eq!(w.horizon(t0 + ms(1300)), ms(500));
        // Still remembered in the previous bucket after the first roll.
        assert_eq!(w.horizon(t0 + ms(9000)), ms(500));
        // Forgotten once both buckets have rolled past it.
        assert_eq!(w.horizon(t0 + ms(10_100)), ms(200));
    }

    #[test]
    fn a_long_silence_forgets_everything_at_once() {
        let t0 = Instant::now();
        let mut w = CommitWatch::new(t0);
        w.committed(t0, t0 + ms(400));
        assert_eq!(w.horizon(t0 + ms(60_000)), ms(200));
    }
}
