//! The per-trunk calls-per-second limiter: a token bucket whose rate congestion control may
//! lower, guarded by a sliding one-second window that enforces the configured ceiling. A
//! backlog's tokens are spent in bursts of [`PACING_QUANTUM`] rather than one by one.
//!
//! Our own code rather than `governor`: governor fixes a limiter's quota at construction
//! (AIMD changes the rate on every 503, which would mean rebuilding limiters and losing
//! their state), and its clocks are its own types, whereas every decision here takes
//! `now: Instant` as an argument so tests run on virtual time. The sliding window makes
//! the carrier's promise ("never more than `cps` INVITEs in any second") a checked
//! invariant instead of a property of the bucket's arithmetic.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The sliding window: one second plus a 10 ms guard, so that jitter between the send
/// (the window counts from it, see [`CpsLimiter::stamp_since`]) and the carrier's clock
/// cannot put `cps + 1` INVITEs into one second as the carrier measures it. Costs 1 % of
/// the ceiling. A 20 ms guard (2 %) left nothing of the "use ≥ 98 %" requirement for the
/// pacing loop's own slack: `dialer call` measured 97.9 % of 5,000 CPS with it.
const WINDOW: Duration = Duration::from_millis(1010);

/// How long a backlog's tokens gather before they are spent together. Each admission
/// wakes the signalling thread and starts a round of SIP exchanges; one INVITE per token
/// at 1,000 CPS meant a wake-up every millisecond and two more for the answers, with the
/// instruction cache cold each time. Gathering 20 ms of tokens sends 20 INVITEs at once and
/// their answers come back together: `dialer call --no-media` against `sipp -sn uas` fell
/// from 119-133 to 85-97 µs of CPU per call at 1,000 CPS, and from 102 to 60 µs at 2,000
/// (session 15). Carriers count calls per second; a burst of 20 ms of the rate is a fifth
/// of what the bucket already allows after an idle spell ([`capacity_at`]).
const PACING_QUANTUM: Duration = Duration::from_millis(20);

/// The most INVITEs one burst gathers, so that at thousands of CPS a burst stays the size
/// of what the SIP peer and the sockets take in one go (50 at 2,500 CPS and above).
const MAX_BURST: f64 = 50.0;

/// Admits call attempts at most at the current rate and never more than `ceiling` in any
/// one-second window.
#[derive(Debug, Clone)]
pub struct CpsLimiter {
    ceiling: f64,
    /// Admissions allowed in any one-second window.
    window_max: usize,
    rate: f64,
    tokens: f64,
    capacity: f64,
    last: Option<Instant>,
    /// Admission instants of the last second, oldest first.
    recent: VecDeque<Instant>,
    hold_until: Option<Instant>,
    /// Tokens a burst waits for before its first admission (see [`quantum_at`]).
    quantum: f64,
    /// The instant of the pass whose burst is open: admissions at that instant need one
    /// token, not a quantum.
    open_at: Option<Instant>,
}

impl CpsLimiter {
    /// A limiter at full rate `ceiling` (calls per second, > 0; below 0.01 it is 0.01, the
    /// least rate congestion control goes down to).
    pub fn new(ceiling: f64) -> Self {
        let ceiling = if ceiling.is_finite() && ceiling > 0.0 {
            ceiling.max(0.01)
        } else {
            1.0
        };
        let window_max = (ceiling.floor() as usize).max(1);
        CpsLimiter {
            ceiling,
            window_max,
            rate: ceiling,
            // A fresh trunk sends its first burst at once.
            tokens: quantum_at(ceiling),
            capacity: capacity_at(ceiling),
            last: None,
            recent: VecDeque::with_capacity(window_max + 1),
            hold_until: None,
            quantum: quantum_at(ceiling),
            open_at: None,
        }
    }

    /// A limiter at full rate `ceiling` that remembers this one's recent admissions,
    /// tokens and hold: a trunk reconfigured at run time cannot exceed its new ceiling in
    /// the second around the change by starting from an empty window.
    pub fn reconfigured(&self, ceiling: f64) -> Self {
        let mut l = CpsLimiter::new(ceiling);
        l.tokens = self.tokens.min(l.capacity);
        l.last = self.last;
        l.hold_until = self.hold_until;
        l.recent = self.recent.clone();
        l
    }

    /// The configured ceiling.
    pub fn ceiling(&self) -> f64 {
        self.ceiling
    }

    /// The current rate (at most the ceiling).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Changes the rate, clamped to `(0, ceiling]`. The bucket holds at most a tenth of a
    /// second's worth of tokens (and at least one), so a rate cut takes effect at once.
    pub fn set_rate(&mut self, rate: f64) {
        let rate = rate.clamp(0.01, self.ceiling);
        // The trunk sets it before every question it asks, mostly to what it was.
        if rate == self.rate {
            return;
        }
        self.rate = rate;
        self.capacity = capacity_at(rate);
        self.quantum = quantum_at(rate);
        self.tokens = self.tokens.min(self.capacity);
    }

    /// No admissions before `until` (a carrier's Retry-After).
    pub fn hold(&mut self, until: Instant) {
        self.hold_until = Some(self.hold_until.map_or(until, |h| h.max(until)));
    }

    fn refill(&mut self, now: Instant) {
        // The core asks several times in one pass with the same instant: nothing to add,
        // and the window was pruned at that instant already.
        if self.last == Some(now) {
            return;
        }
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.capacity);
        }
        self.last = Some(now);
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            self.recent.pop_front();
        }
    }

    /// The tokens an admission at `now` needs: one within the pass whose burst is open,
    /// a quantum to open one.
    fn needed(&self, now: Instant) -> f64 {
        if self.open_at == Some(now) {
            1.0
        } else {
            self.quantum
        }
    }

    /// Whether an attempt may start now; takes a token when it may.
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.hold_until.is_some_and(|h| now < h) {
            return false;
        }
        if self.tokens < self.needed(now) - 1e-9 || self.recent.len() >= self.window_max {
            return false;
        }
        self.open_at = Some(now);
        self.tokens -= 1.0;
        self.recent.push_back(now);
        true
    }

    /// Moves the admissions made at or after `decided` to `sent` (when their INVITEs
    /// actually left, known only after the send): the window then counts from the send,
    /// not the decision, so a slow send cannot bunch two seconds' INVITEs into one on the
    /// wire. The INVITEs one pass of the core admits leave in one batch, so they all take
    /// the batch's instant.
    pub fn stamp_since(&mut self, decided: Instant, sent: Instant) {
        for t in self.recent.iter_mut().rev() {
            if *t < decided {
                break;
            }
            *t = (*t).max(sent);
        }
    }

    /// The earliest instant at which [`CpsLimiter::try_acquire`] may succeed.
    pub fn next_ready(&mut self, now: Instant) -> Instant {
        self.refill(now);
        let mut at = now;
        // Short of what `now` needs, the next chance is a new burst, whatever is open now.
        if self.tokens < self.needed(now) - 1e-9 {
            let wait = (self.quantum - self.tokens) / self.rate;
            at = at.max(now + Duration::from_secs_f64(wait));
        }
        if self.recent.len() >= self.window_max {
            if let Some(oldest) = self.recent.front() {
                at = at.max(*oldest + WINDOW);
            }
        }
        if let Some(h) = self.hold_until {
            at = at.max(h);
        }
        at
    }
}

/// The bucket's size at `rate`: a tenth of a second's tokens, at least one.
fn capacity_at(rate: f64) -> f64 {
    (rate / 10.0).max(1.0)
}

/// The tokens a burst waits for at `rate`: [`PACING_QUANTUM`]'s worth, whole, at least one
/// and at most [`MAX_BURST`].
fn quantum_at(rate: f64) -> f64 {
    (rate * PACING_QUANTUM.as_secs_f64())
        .floor()
        .clamp(1.0, MAX_BURST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vanishing_ceiling_is_the_least_rate_not_a_panic() {
        let mut l = CpsLimiter::new(f64::MIN_POSITIVE);
        assert_eq!(l.ceiling(), 0.01);
        assert!(l.try_acquire(Instant::now()));
    }

    #[test]
    fn reconfigured_keeps_the_window() {
        let t0 = Instant::now();
        let mut l = CpsLimiter::new(5.0);
        let mut n = 0;
        let mut now = t0;
        while now < t0 + Duration::from_millis(990) {
            n += usize::from(l.try_acquire(now));
            now += Duration::from_millis(10);
        }
        assert_eq!(n, 5);
        // Lowered to 2: the 5 of the last second are still counted, nothing more now.
        let mut low = l.reconfigured(2.0);
        assert_eq!(low.ceiling(), 2.0);
        assert!(!low.try_acquire(t0 + Duration::from_millis(995)));
        // Raised to 8: at most 3 more in the same second.
        let mut high = l.reconfigured(8.0);
        let mut more = 0;
        let mut now = t0 + Duration::from_millis(990);
        while now < t0 + Duration::from_millis(999) {
            more += usize::from(high.try_acquire(now));
            now += Duration::from_millis(1);
        }
        assert!(more <= 3, "{more}");
    }

    /// Runs a backlog: polls at every `next_ready` and returns admission instants.
    fn drive(l: &mut CpsLimiter, start: Instant, secs: u64, step: Duration) -> Vec<Instant> {
        let end = start + Duration::from_secs(secs);
        let mut now = start;
        let mut out = vec![];
        while now < end {
            while l.try_acquire(now) {
                out.push(now);
            }
            // A real loop wakes at next_ready, rounded up to its timer granularity.
            let next = l.next_ready(now);
            let n = ((next - start).as_nanos().div_ceil(step.as_nanos())) as u32;
            now = (start + step * n).max(now + Duration::from_nanos(1));
        }
        out
    }

    fn max_in_any_window(t: &[Instant]) -> usize {
        let mut best = 0;
        let mut j = 0;
        for i in 0..t.len() {
            while t[i].duration_since(t[j]) >= WINDOW {
                j += 1;
            }
            best = best.max(i - j + 1);
        }
        best
    }

    #[test]
    fn never_over_ceiling_and_uses_98_5_percent() {
        for (cps, step_us) in [
            (10.0, 1),
            (30.0, 1000),
            (100.0, 1000),
            (7.5, 500),
            (250.0, 1),
            (1000.0, 1000),
            (5000.0, 1),
        ] {
            let mut l = CpsLimiter::new(cps);
            let t0 = Instant::now();
            let adm = drive(&mut l, t0, 60, Duration::from_micros(step_us));
            let max = max_in_any_window(&adm);
            assert!(
                max <= cps.floor() as usize,
                "cps {cps}: {max} in one second"
            );
            // A fractional ceiling allows floor(cps) calls in a one-second window.
            let used = adm.len() as f64 / (cps.floor() * 60.0);
            assert!(used >= 0.985, "cps {cps}: used {used:.3} of the ceiling");
        }
    }

    #[test]
    fn a_backlog_goes_in_bursts_of_twenty_milliseconds_of_tokens() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut l = CpsLimiter::new(1000.0);
        let burst = |l: &mut CpsLimiter, at| (0..100).take_while(|_| l.try_acquire(at)).count();
        // A fresh trunk sends its first burst at once.
        assert_eq!(burst(&mut l, t0), 20);
        // The burst spent, the next one is 20 ms away (not the next single token's 1 ms).
        let next = l.next_ready(t0);
        assert_eq!(next.duration_since(t0).as_millis(), 20, "{next:?}");
        // One token has gathered after a millisecond: not enough to open a burst.
        assert_eq!(burst(&mut l, t0 + ms(1)), 0);
        let next = l.next_ready(t0 + ms(1));
        let off = next.max(t0 + ms(20)) - next.min(t0 + ms(20));
        assert!(off < Duration::from_micros(1), "{off:?}");
        assert_eq!(burst(&mut l, t0 + ms(20)), 20);
        // A burst open at an instant takes single tokens at that instant only.
        assert_eq!(burst(&mut l, t0 + ms(21)), 0);
    }

    #[test]
    fn a_burst_is_one_token_at_low_rates_and_at_most_fifty() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut slow = CpsLimiter::new(40.0);
        assert!(slow.try_acquire(t0));
        assert!(!slow.try_acquire(t0));
        assert!(slow.try_acquire(t0 + ms(25)));
        let mut fast = CpsLimiter::new(5000.0);
        let n = (0..200).take_while(|_| fast.try_acquire(t0)).count();
        assert_eq!(n, 50);
        // Lowered by congestion control to 500 CPS, a burst opens at 10 tokens.
        fast.set_rate(500.0);
        let mut burst = |at| (0..200).take_while(|_| fast.try_acquire(t0 + at)).count();
        // After an idle spell the bucket's whole tenth of a second goes, as before.
        assert_eq!(burst(ms(200)), 50);
        assert_eq!(burst(ms(210)), 0);
        assert_eq!(burst(ms(220)), 10);
    }

    #[test]
    fn lower_rate_is_respected_and_hold_blocks() {
        let mut l = CpsLimiter::new(50.0);
        l.set_rate(10.0);
        let t0 = Instant::now();
        let adm = drive(&mut l, t0, 10, Duration::from_millis(1));
        assert!(adm.len() <= 101 && adm.len() >= 98, "{}", adm.len());
        let t1 = t0 + Duration::from_secs(20);
        l.hold(t1 + Duration::from_secs(5));
        assert!(!l.try_acquire(t1 + Duration::from_secs(4)));
        assert_eq!(l.next_ready(t1), t1 + Duration::from_secs(5));
        assert!(l.try_acquire(t1 + Duration::from_secs(5)));
    }

    #[test]
    fn window_counts_from_the_send() {
        let mut l = CpsLimiter::new(2.0);
        let t0 = Instant::now();
        assert!(l.try_acquire(t0));
        // The first INVITE only left 300 ms after its admission.
        l.stamp_since(t0, t0 + Duration::from_millis(300));
        assert!(l.try_acquire(t0 + Duration::from_millis(500)));
        // A third one must wait for a window after the first *send*.
        assert!(!l.try_acquire(t0 + Duration::from_millis(1100)));
        assert_eq!(
            l.next_ready(t0 + Duration::from_millis(1100)),
            t0 + Duration::from_millis(300) + WINDOW
        );
    }

    #[test]
    fn a_batch_takes_its_send_instant_and_earlier_admissions_keep_theirs() {
        let mut l = CpsLimiter::new(100.0);
        let t0 = Instant::now();
        assert!(l.try_acquire(t0));
        let t1 = t0 + Duration::from_millis(100);
        assert!(l.try_acquire(t1));
        assert!(l.try_acquire(t1));
        l.stamp_since(t1, t1 + Duration::from_millis(2));
        let stamps: Vec<Instant> = l.recent.iter().copied().collect();
        assert_eq!(
            stamps,
            [
                t0,
                t1 + Duration::from_millis(2),
                t1 + Duration::from_millis(2)
            ]
        );
    }

    #[test]
    fn idle_bucket_bursts_no_more_than_the_ceiling() {
        let mut l = CpsLimiter::new(20.0);
        let t0 = Instant::now();
        // Idle for a minute, then a backlog arrives all at once.
        let t = t0 + Duration::from_secs(60);
        let _ = l.try_acquire(t0);
        let mut n = 0;
        while l.try_acquire(t) {
            n += 1;
        }
        assert!(n <= 2, "burst of {n}");
    }
}
