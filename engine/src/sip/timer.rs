//! RFC 3261 §17 timers as a small per-transaction table keyed by [`Timer`].
//!
//! A transaction never sleeps: it records when each of its timers fires, the endpoint asks
//! every transaction for its earliest deadline, and a driver (or a test on virtual time)
//! calls back at that instant.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// The timers of RFC 3261 §17 and RFC 6026's Timer L, plus the UAS 2xx retransmission timer
/// of RFC 3261 §13.3.1.4 (`Ok2xx`). Timer M (RFC 6026) is not here: the INVITE client's
/// Accepted state is an [`AcceptedInvite`](super::transaction::AcceptedInvite), which keeps
/// no timer table, only its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// INVITE client: retransmit the INVITE (UDP).
    A,
    /// INVITE client: give up waiting for a response.
    B,
    /// INVITE client: wait in Completed for retransmitted final responses.
    D,
    /// Non-INVITE client: retransmit the request (UDP).
    E,
    /// Non-INVITE client: give up waiting for a final response.
    F,
    /// INVITE server: retransmit the final non-2xx response (UDP).
    G,
    /// INVITE server: give up waiting for the ACK.
    H,
    /// INVITE server: absorb ACK retransmissions in Confirmed.
    I,
    /// Non-INVITE server: absorb request retransmissions in Completed.
    J,
    /// Non-INVITE client: absorb response retransmissions in Completed.
    K,
    /// INVITE server (RFC 6026): stay Accepted to absorb INVITE retransmissions.
    L,
    /// INVITE server: retransmit a 2xx until its ACK arrives (RFC 3261 §13.3.1.4).
    Ok2xx,
}

impl TimerKind for Timer {
    const ALL: &'static [Timer] = &[
        Timer::A,
        Timer::B,
        Timer::D,
        Timer::E,
        Timer::F,
        Timer::G,
        Timer::H,
        Timer::I,
        Timer::J,
        Timer::K,
        Timer::L,
        Timer::Ok2xx,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// A kind of deadline an owner can arm, one slot each: the RFC 3261 transaction timers,
/// a call's ring/cancel/session deadlines, a registration's refresh and retry.
pub trait TimerKind: Copy + 'static {
    /// Every kind, in slot order (`ALL[k.index()] == k`).
    const ALL: &'static [Self];
    /// The kind's slot.
    fn index(self) -> usize;
}

/// The timer durations, configurable because carriers and tests differ (RFC 3261 §17.1.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// Round-trip estimate, 500 ms by default.
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE responses, 4 s.
    pub t2: Duration,
    /// Longest time a message stays in the network, 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64·T1: Timers B, F, H, J (unreliable), L and M.
    pub fn t64(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer D: at least 32 s on UDP, zero on a reliable transport.
    pub fn d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            Duration::from_secs(32).max(self.t64())
        }
    }
}

/// Deadlines of one owner, one slot per kind `T` (`N` = the number of kinds).
#[derive(Debug, Clone)]
pub struct TimerTable<T: TimerKind, const N: usize> {
    slots: [Option<Instant>; N],
    kind: PhantomData<T>,
}

/// The timers of one transaction.
pub type TxTimers = TimerTable<Timer, 12>;

impl<T: TimerKind, const N: usize> Default for TimerTable<T, N> {
    fn default() -> Self {
        TimerTable {
            slots: [None; N],
            kind: PhantomData,
        }
    }
}

impl<T: TimerKind, const N: usize> TimerTable<T, N> {
    /// Arms `t` to fire at `at`, replacing any earlier deadline.
    pub fn set(&mut self, t: T, at: Instant) {
        self.slots[t.index()] = Some(at);
    }

    /// Disarms `t`.
    pub fn stop(&mut self, t: T) {
        self.slots[t.index()] = None;
    }

    /// Disarms every timer.
    pub fn clear(&mut self) {
        self.slots = [None; N];
    }

    /// When `t` fires, if armed.
    pub fn get(&self, t: T) -> Option<Instant> {
        self.slots[t.index()]
    }

    /// The earliest deadline of all armed timers.
    pub fn next(&self) -> Option<Instant> {
        self.slots.iter().flatten().min().copied()
    }

    /// Disarms and returns the earliest timer due at `now`, if any.
    pub fn pop_expired(&mut self, now: Instant) -> Option<T> {
        let (i, _) = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.filter(|at| *at <= now).map(|at| (i, at)))
            .min_by_key(|(_, at)| *at)?;
        self.slots[i] = None;
        Some(T::ALL[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_orders_deadlines() {
        let t0 = Instant::now();
        let mut t = TxTimers::default();
        t.set(Timer::B, t0 + Duration::from_secs(32));
        t.set(Timer::A, t0 + Duration::from_millis(500));
        assert_eq!(t.next(), Some(t0 + Duration::from_millis(500)));
        assert_eq!(t.pop_expired(t0), None);
        assert_eq!(t.pop_expired(t0 + Duration::from_secs(40)), Some(Timer::A));
        assert_eq!(t.pop_expired(t0 + Duration::from_secs(40)), Some(Timer::B));
        assert_eq!(t.next(), None);
    }
}
