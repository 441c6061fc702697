//! The prefix limits' run-time state: per limit a CPS window (the trunks' limiter, so the
//! same "never over the ceiling in any 1 s window" holds) and the channels in use.
//!
//! A call is counted from its pick to its end. At the pick a limit must have a channel free
//! and fewer picked-but-unsent calls than its rate over the trunks' pick-ahead horizon (a
//! fifth of a second unless journal commits are slow, see [`pick_ahead`]: a call of the
//! limit may wait that long in a trunk's send queue, so fewer would starve the limit); its CPS token is taken when the INVITE leaves,
//! with the trunk's, and stamped with the instant it left. Calls of no limit cost a map
//! lookup; a pick under a limit checks its state without allocating keys.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{applying, PrefixLimit};
use crate::dialer::core::CallToken;
use crate::dialer::limiter::CpsLimiter;
use crate::dialer::pick_ahead;
use crate::id_map::IdMap;

/// A limit's identity: its tenant (none: global) and prefix.
type Key = (Option<String>, String);

#[derive(Debug)]
struct State {
    limiter: CpsLimiter,
    /// Calls from pick to end.
    active: u32,
    /// Calls picked whose INVITE has not left.
    pending: u32,
}

/// Every limit's state and which limits each call holds.
#[derive(Debug, Default)]
pub struct Pacers {
    /// The limits, in the order `applying` indexes.
    limits: Vec<PrefixLimit>,
    /// Each limit's state, at its index in `limits`.
    state: Vec<State>,
    /// The limits each call holds, by identity (indices change when the limits do).
    calls: IdMap<CallToken, Vec<Key>>,
}

fn key(l: &PrefixLimit) -> Key {
    (l.tenant.clone(), l.prefix.clone())
}

impl Pacers {
    /// Calls holding a limit, for the core's retention check.
    pub fn calls_held(&self) -> usize {
        self.calls.len()
    }

    /// Replaces the limits. A limit that stays keeps its counts and its window (a lower
    /// rate applies at once); calls holding a removed one stop counting against anything.
    pub fn set(&mut self, limits: Vec<PrefixLimit>) {
        let old_limits = std::mem::take(&mut self.limits);
        let mut old: HashMap<Key, State> = old_limits
            .iter()
            .map(key)
            .zip(std::mem::take(&mut self.state))
            .collect();
        self.state = limits
            .iter()
            .map(|l| match old.remove(&key(l)) {
                Some(mut s) => {
                    s.limiter = s.limiter.reconfigured(l.cps);
                    s
                }
                None => State {
                    limiter: CpsLimiter::new(l.cps),
                    active: 0,
                    pending: 0,
                },
            })
            .collect();
        self.limits = limits;
    }

    /// The index of a limit by identity.
    fn index(&self, k: &Key) -> Option<usize> {
        self.limits
            .iter()
            .position(|l| l.tenant == k.0 && l.prefix == k.1)
    }

    /// Whether a lane's limits let one more call be picked now: a channel free and fewer
    /// picked-but-unsent calls than its rate over `horizon`. `lane` is a lane key,
    /// which stands for the numbers under it: the limits that apply to it are those of any
    /// of its numbers.
    pub fn can_pick(&self, tenant: &str, lane: &str, horizon: Duration) -> bool {
        if lane.is_empty() {
            return true;
        }
        applying(&self.limits, tenant, lane).into_iter().all(|i| {
            let (l, s) = (&self.limits[i], &self.state[i]);
            s.active < l.max_channels && s.pending < pick_ahead::cap(l.cps, horizon)
        })
    }

    /// A call was picked: it holds a channel of each of its limits.
    pub fn picked(&mut self, call: CallToken, tenant: &str, number: &str) {
        let idx = applying(&self.limits, tenant, number);
        if idx.is_empty() {
            return;
        }
        for &i in &idx {
            self.state[i].active += 1;
            self.state[i].pending += 1;
        }
        let keys = idx.into_iter().map(|i| key(&self.limits[i])).collect();
        self.calls.insert(call, keys);
    }

    /// The states of the limits a call holds.
    fn held(&self, call: CallToken) -> Vec<usize> {
        self.calls
            .get(&call)
            .map(|keys| keys.iter().filter_map(|k| self.index(k)).collect())
            .unwrap_or_default()
    }

    /// When every limit of the call would give a CPS token (`now` if it holds none).
    pub fn next_ready(&mut self, call: CallToken, now: Instant) -> Instant {
        // No call holds a limit (no limits, or none applying): nothing to look up.
        if self.calls.is_empty() || !self.calls.contains_key(&call) {
            return now;
        }
        let mut at = now;
        for i in self.held(call) {
            at = at.max(self.state[i].limiter.next_ready(now));
        }
        at
    }

    /// Takes the call's CPS tokens as its INVITE is handed over (from every limit or, when
    /// one is not ready, from none).
    pub fn sending(&mut self, call: CallToken, now: Instant) -> bool {
        if self.next_ready(call, now) > now {
            return false;
        }
        for i in self.held(call) {
            let s = &mut self.state[i];
            s.limiter.try_acquire(now);
            s.pending = s.pending.saturating_sub(1);
        }
        true
    }

    /// The INVITE, given its tokens at `decided`, left at `sent`: its limits' windows
    /// count from then.
    pub fn placed(&mut self, call: CallToken, decided: Instant, sent: Instant) {
        for i in self.held(call) {
            self.state[i].limiter.stamp_since(decided, sent);
        }
    }

    /// The call ended (`sent`: its INVITE had been handed over): its channels are free.
    pub fn ended(&mut self, call: CallToken, sent: bool) {
        let held = self.held(call);
        if self.calls.remove(&call).is_none() {
            return;
        }
        for i in held {
            let s = &mut self.state[i];
            s.active = s.active.saturating_sub(1);
            if !sent {
                s.pending = s.pending.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trunks' horizon with fast commits.
    const H: Duration = pick_ahead::MIN_HORIZON;

    fn lim(prefix: &str, cps: f64, ch: u32) -> PrefixLimit {
        PrefixLimit {
            prefix: prefix.into(),
            cps,
            max_channels: ch,
            tenant: None,
        }
    }

    #[test]
    fn channels_pending_and_tokens() {
        let t0 = Instant::now();
        let mut p = Pacers::default();
        p.set(vec![lim("+39077", 5.0, 2)]);
        assert!(p.can_pick("t", "+39077", H));
        assert!(p.can_pick("t", "", H));
        p.picked(CallToken(1), "t", "+390771111");
        // One picked and unsent is a fifth of a second at 5 CPS: wait for its send.
        assert!(!p.can_pick("t", "+39077", H));
        assert!(p.sending(CallToken(1), t0));
        p.placed(CallToken(1), t0, t0 + Duration::from_millis(5));
        assert!(p.can_pick("t", "+39077", H));
        p.picked(CallToken(2), "t", "+390772222");
        // The bucket holds one token: the second waits about 200 ms.
        assert!(!p.sending(CallToken(2), t0 + Duration::from_millis(10)));
        let at = p.next_ready(CallToken(2), t0 + Duration::from_millis(10));
        assert!(at > t0 + Duration::from_millis(150), "{at:?}");
        assert!(p.sending(CallToken(2), at));
        // Two channels in use: no third pick until one ends.
        assert!(!p.can_pick("t", "+39077", H));
        p.ended(CallToken(1), true);
        assert!(p.can_pick("t", "+39077", H));
        // Numbers under no limit hold nothing.
        p.picked(CallToken(3), "t", "+4412345");
        assert_eq!(p.next_ready(CallToken(3), t0), t0);
        assert!(p.sending(CallToken(3), t0));
    }

    #[test]
    fn never_over_the_ceiling_in_any_second() {
        let t0 = Instant::now();
        let mut p = Pacers::default();
        p.set(vec![lim("+39077", 5.0, 1000)]);
        let mut sent = vec![];
        let mut now = t0;
        let mut next = 0u64;
        let mut unsent: Vec<CallToken> = vec![];
        while now < t0 + Duration::from_secs(20) {
            if p.can_pick("t", "+39077", H) {
                next += 1;
                p.picked(CallToken(next), "t", "+39077123");
                unsent.push(CallToken(next));
            }
            if let Some(&call) = unsent.first() {
                if p.next_ready(call, now) <= now && p.sending(call, now) {
                    unsent.remove(0);
                    sent.push(now);
                    p.placed(call, now, now);
                    p.ended(call, true);
                }
            }
            now += Duration::from_millis(7);
        }
        for (i, t) in sent.iter().enumerate() {
            let n = sent[i..]
                .iter()
                .take_while(|x| **x < *t + Duration::from_secs(1))
                .count();
            assert!(n <= 5, "{n} in the second from {t:?}");
        }
        // And it uses the rate: 20 s at 5 CPS.
        assert!(sent.len() >= 95, "{}", sent.len());
    }

    #[test]
    fn a_changed_limit_keeps_its_counts() {
        let mut p = Pacers::default();
        p.set(vec![lim("+39077", 5.0, 1)]);
        p.picked(CallToken(1), "t", "+39077123");
        p.set(vec![lim("+39077", 10.0, 1), lim("+3906", 1.0, 1)]);
        assert!(!p.can_pick("t", "+39077", H), "its one channel is in use");
        assert!(p.can_pick("t", "+3906", H));
        p.set(vec![]);
        assert!(p.can_pick("t", "+39077", H));
        p.ended(CallToken(1), false);
    }
}
