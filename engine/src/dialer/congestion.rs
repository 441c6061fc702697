//! Congestion control per trunk: additive increase, multiplicative decrease (AIMD) of the
//! effective CPS below the configured ceiling.
//!
//! Signals: a 503 (with its Retry-After, which also holds the trunk), a burst of
//! 408/480/transaction timeouts, the trunk marked down. Each cuts the rate in half, at most
//! once per second so that one overload episode (many 503s in flight) counts once. Without
//! signals the rate climbs back by a twentieth of the ceiling per second.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Tuning of [`Aimd`].
#[derive(Debug, Clone, Copy)]
pub struct AimdConfig {
    /// Multiplier on a congestion signal.
    pub decrease: f64,
    /// Recovery per second, as a fraction of the ceiling.
    pub increase_per_s: f64,
    /// Lowest rate, as a fraction of the ceiling.
    pub floor: f64,
    /// Timeouts (408/480/no response) within `burst_window` that count as a signal.
    pub burst_count: usize,
    /// Window for counting timeouts.
    pub burst_window: Duration,
    /// Minimum time between two decreases.
    pub cooldown: Duration,
}

impl Default for AimdConfig {
    fn default() -> Self {
        AimdConfig {
            decrease: 0.5,
            increase_per_s: 0.05,
            floor: 0.05,
            burst_count: 5,
            burst_window: Duration::from_secs(5),
            cooldown: Duration::from_secs(1),
        }
    }
}

/// What a call end tells congestion control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The call got a final answer that says nothing about load (2xx, 486, 404, ...).
    Ok,
    /// 503 Service Unavailable, with Retry-After seconds if given.
    Overloaded(Option<u32>),
    /// 408, 480 or a transaction timeout.
    Timeout,
    /// The trunk was marked down by OPTIONS pings.
    Down,
}

impl Signal {
    /// The signal of a final INVITE status (0 = no response at all).
    pub fn from_status(status: u16) -> Signal {
        match status {
            503 => Signal::Overloaded(None),
            0 | 408 | 480 => Signal::Timeout,
            _ => Signal::Ok,
        }
    }

    /// What a finished attempt tells congestion control: nothing when its INVITE never
    /// left (the carrier saw nothing), a 503 with the carrier's Retry-After as an overload
    /// that also holds the trunk, else what the final status says.
    pub fn of_end(sent: bool, status: u16, retry_after: Option<u32>) -> Signal {
        match (sent, status) {
            (false, _) => Signal::Ok,
            (true, 503) => Signal::Overloaded(retry_after),
            (true, s) => Signal::from_status(s),
        }
    }
}

/// The AIMD controller of one trunk.
#[derive(Debug, Clone)]
pub struct Aimd {
    cfg: AimdConfig,
    ceiling: f64,
    rate: f64,
    last_update: Option<Instant>,
    last_decrease: Option<Instant>,
    timeouts: VecDeque<Instant>,
    hold_until: Option<Instant>,
}

impl Aimd {
    /// A controller starting at the ceiling.
    pub fn new(ceiling: f64, cfg: AimdConfig) -> Self {
        Aimd {
            cfg,
            ceiling,
            rate: ceiling,
            last_update: None,
            last_decrease: None,
            timeouts: VecDeque::new(),
            hold_until: None,
        }
    }

    /// The effective rate at `now` (recovery applied).
    pub fn rate(&mut self, now: Instant) -> f64 {
        // At the ceiling (no congestion: the usual case) recovery has nothing to add, and
        // this runs several times per pass of the core.
        if self.rate >= self.ceiling {
            self.last_update = Some(now);
            return self.rate;
        }
        if let Some(last) = self.last_update {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.rate = (self.rate + dt * self.cfg.increase_per_s * self.ceiling).min(self.ceiling);
        }
        self.last_update = Some(now);
        self.rate
    }

    /// Until when a Retry-After asked us to stop.
    pub fn hold_until(&self) -> Option<Instant> {
        self.hold_until
    }

    fn decrease(&mut self, now: Instant) {
        let _ = self.rate(now);
        if self
            .last_decrease
            .is_some_and(|t| now.saturating_duration_since(t) < self.cfg.cooldown)
        {
            return;
        }
        self.last_decrease = Some(now);
        self.rate = (self.rate * self.cfg.decrease).max(self.cfg.floor * self.ceiling);
    }

    /// Feeds a signal; returns whether the rate was cut.
    pub fn on_signal(&mut self, now: Instant, s: Signal) -> bool {
        let before = self.rate(now);
        match s {
            Signal::Ok => return false,
            Signal::Overloaded(retry_after) => {
                if let Some(secs) = retry_after {
                    let until = now + Duration::from_secs(u64::from(secs.min(3600)));
                    self.hold_until = Some(self.hold_until.map_or(until, |h| h.max(until)));
                }
                self.decrease(now);
            }
            Signal::Timeout => {
                self.timeouts.push_back(now);
                while self
                    .timeouts
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) > self.cfg.burst_window)
                {
                    self.timeouts.pop_front();
                }
                if self.timeouts.len() >= self.cfg.burst_count {
                    self.timeouts.clear();
                    self.decrease(now);
                }
            }
            Signal::Down => {
                self.last_decrease = Some(now);
                self.rate = self.cfg.floor * self.ceiling;
            }
        }
        self.rate < before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_of_a_call_end() {
        assert_eq!(
            Signal::of_end(true, 503, Some(30)),
            Signal::Overloaded(Some(30))
        );
        assert_eq!(Signal::of_end(true, 503, None), Signal::Overloaded(None));
        assert_eq!(Signal::of_end(false, 503, Some(30)), Signal::Ok);
        assert_eq!(Signal::of_end(true, 0, None), Signal::Timeout);
        assert_eq!(Signal::of_end(true, 408, None), Signal::Timeout);
        assert_eq!(Signal::of_end(true, 486, None), Signal::Ok);
        assert_eq!(Signal::of_end(true, 200, None), Signal::Ok);
    }

    #[test]
    fn backs_off_on_503_and_recovers_additively() {
        let t0 = Instant::now();
        let mut a = Aimd::new(100.0, AimdConfig::default());
        assert_eq!(a.rate(t0), 100.0);
        assert!(a.on_signal(t0, Signal::Overloaded(None)));
        assert_eq!(a.rate(t0), 50.0);
        // A second 503 of the same episode does not cut again.
        assert!(!a.on_signal(t0 + Duration::from_millis(200), Signal::Overloaded(None)));
        // Another one later does.
        let t1 = t0 + Duration::from_secs(2);
        assert!(a.on_signal(t1, Signal::Overloaded(None)));
        let r1 = a.rate(t1);
        assert!((r1 - 30.0).abs() < 1e-6, "{r1}"); // (50 + 2·5) / 2
                                                   // Additive: +5 cps per second.
        let r = a.rate(t1 + Duration::from_secs(4));
        assert!((r - 50.0).abs() < 1e-6, "{r}");
        // Back to the ceiling and never above.
        assert_eq!(a.rate(t1 + Duration::from_secs(60)), 100.0);
    }

    #[test]
    fn retry_after_holds_and_floor_holds() {
        let t0 = Instant::now();
        let mut a = Aimd::new(10.0, AimdConfig::default());
        a.on_signal(t0, Signal::Overloaded(Some(30)));
        assert_eq!(a.hold_until(), Some(t0 + Duration::from_secs(30)));
        for i in 1..20 {
            a.on_signal(t0 + Duration::from_secs(2 * i), Signal::Overloaded(None));
        }
        let r = a.rate(t0 + Duration::from_secs(38));
        assert!(r >= 0.5 - 1e-9, "{r}");
        a.on_signal(t0 + Duration::from_secs(40), Signal::Down);
        assert!((a.rate(t0 + Duration::from_secs(40)) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn timeouts_count_only_in_bursts() {
        let t0 = Instant::now();
        let mut a = Aimd::new(20.0, AimdConfig::default());
        // Scattered timeouts: no cut.
        for i in 0..10 {
            assert!(!a.on_signal(t0 + Duration::from_secs(10 * i), Signal::Timeout));
        }
        let t1 = t0 + Duration::from_secs(200);
        let cut: Vec<bool> = (0..5)
            .map(|i| a.on_signal(t1 + Duration::from_millis(100 * i), Signal::Timeout))
            .collect();
        assert_eq!(cut, vec![false, false, false, false, true]);
        assert_eq!(Signal::from_status(503), Signal::Overloaded(None));
        assert_eq!(Signal::from_status(0), Signal::Timeout);
        assert_eq!(Signal::from_status(486), Signal::Ok);
    }
}
