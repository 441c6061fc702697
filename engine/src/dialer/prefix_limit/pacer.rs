//! The prefix limits' run-time state: per limit a CPS window (the trunks' limiter, so the
//! same "never over the ceiling in any 1 s window" holds) and the channels in use.
//!
//! A call is counted from its pick to its end. At the pick a limit must have a channel free
//! and fewer picked-but-unsent calls than a fifth of a second of its rate (so only a few of
//! its calls wait in a trunk's send queue); its CPS token is taken when the INVITE leaves,
//! with the trunk's, and stamped with the instant it left.

use std::collections::HashMap;
use std::time::Instant;

use super::{applying, lane_key, PrefixLimit};
use crate::dialer::core::CallToken;
use crate::dialer::limiter::{burst_cap, CpsLimiter};
use crate::metrics as m;

/// A limit's identity: its tenant (none: global) and prefix.
type Key = (Option<String>, String);

#[derive(Debug)]
struct State {
    limit: PrefixLimit,
    limiter: CpsLimiter,
    /// Calls from pick to end.
    active: u32,
    /// Calls picked whose INVITE has not left.
    pending: u32,
}

impl State {
    fn can_pick(&self) -> bool {
        self.active < self.limit.max_channels && self.pending < burst_cap(self.limit.cps)
    }
}

/// Every limit's state and which limits each call holds.
#[derive(Debug, Default)]
pub struct Pacers {
    /// The limits, in the order `applying` indexes.
    limits: Vec<PrefixLimit>,
    state: HashMap<Key, State>,
    calls: HashMap<CallToken, Vec<Key>>,
}

fn key(l: &PrefixLimit) -> Key {
    (l.tenant.clone(), l.prefix.clone())
}

impl Pacers {
    /// The limits in force.
    pub fn limits(&self) -> &[PrefixLimit] {
        &self.limits
    }

    /// Replaces the limits. A limit that stays keeps its counts and its window (a lower
    /// rate applies at once); calls holding a removed one stop counting against anything.
    pub fn set(&mut self, limits: Vec<PrefixLimit>) {
        let mut old = std::mem::take(&mut self.state);
        for l in &limits {
            let k = key(l);
            let st = match old.remove(&k) {
                Some(mut s) => {
                    s.limiter = s.limiter.reconfigured(l.cps);
                    s.limit = l.clone();
                    s
                }
                None => State {
                    limit: l.clone(),
                    limiter: CpsLimiter::new(l.cps),
                    active: 0,
                    pending: 0,
                },
            };
            self.state.insert(k, st);
        }
        self.limits = limits;
    }

    /// The lane of a number in its campaign's queue (see [`lane_key`]).
    pub fn lane(&self, tenant: &str, number: &str) -> String {
        lane_key(&self.limits, tenant, number).to_string()
    }

    fn keys_of(&self, tenant: &str, number: &str) -> Vec<Key> {
        applying(&self.limits, tenant, number)
            .into_iter()
            .map(|i| key(&self.limits[i]))
            .collect()
    }

    /// Whether a lane's limits let one more call be picked now. `lane` is a lane key, which
    /// stands for the numbers under it: the limits that apply to it are those of any of its
    /// numbers.
    pub fn can_pick(&self, tenant: &str, lane: &str) -> bool {
        if lane.is_empty() {
            return true;
        }
        let ok = self
            .keys_of(tenant, lane)
            .iter()
            .all(|k| self.state.get(k).is_none_or(State::can_pick));
        if !ok {
            metrics::counter!(m::PREFIX_THROTTLED, "prefix" => lane.to_string()).increment(1);
        }
        ok
    }

    /// A call was picked: it holds a channel of each of its limits.
    pub fn picked(&mut self, call: CallToken, tenant: &str, number: &str) {
        let keys = self.keys_of(tenant, number);
        if keys.is_empty() {
            return;
        }
        for k in &keys {
            if let Some(s) = self.state.get_mut(k) {
                s.active += 1;
                s.pending += 1;
            }
        }
        self.calls.insert(call, keys);
    }

    /// When every limit of the call would give a CPS token (`now` if it holds none).
    pub fn next_ready(&mut self, call: CallToken, now: Instant) -> Instant {
        let Some(keys) = self.calls.get(&call) else {
            return now;
        };
        let mut at = now;
        for k in keys {
            if let Some(s) = self.state.get_mut(k) {
                at = at.max(s.limiter.next_ready(now));
            }
        }
        at
    }

    /// Takes the call's CPS tokens as its INVITE is handed over (check
    /// [`Pacers::next_ready`] first: the tokens are taken from every limit or none).
    pub fn sending(&mut self, call: CallToken, now: Instant) -> bool {
        if self.next_ready(call, now) > now {
            return false;
        }
        let Some(keys) = self.calls.get(&call) else {
            return true;
        };
        for k in keys {
            if let Some(s) = self.state.get_mut(k) {
                s.limiter.try_acquire(now);
                s.pending = s.pending.saturating_sub(1);
            }
        }
        true
    }

    /// The INVITE left at `sent`: its limits' windows count from then.
    pub fn placed(&mut self, call: CallToken, sent: Instant) {
        let Some(keys) = self.calls.get(&call) else {
            return;
        };
        for k in keys {
            if let Some(s) = self.state.get_mut(k) {
                s.limiter.stamp_last(sent);
            }
        }
    }

    /// The call ended (`sent`: its INVITE had been handed over): its channels are free.
    pub fn ended(&mut self, call: CallToken, sent: bool) {
        let Some(keys) = self.calls.remove(&call) else {
            return;
        };
        for k in keys {
            if let Some(s) = self.state.get_mut(&k) {
                s.active = s.active.saturating_sub(1);
                if !sent {
                    s.pending = s.pending.saturating_sub(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        assert!(p.can_pick("t", "+39077"));
        assert!(p.can_pick("t", ""));
        p.picked(CallToken(1), "t", "+390771111");
        // One picked and unsent is a fifth of a second at 5 CPS: wait for its send.
        assert!(!p.can_pick("t", "+39077"));
        assert!(p.sending(CallToken(1), t0));
        p.placed(CallToken(1), t0 + Duration::from_millis(5));
        assert!(p.can_pick("t", "+39077"));
        p.picked(CallToken(2), "t", "+390772222");
        // The bucket holds one token: the second waits about 200 ms.
        assert!(!p.sending(CallToken(2), t0 + Duration::from_millis(10)));
        let at = p.next_ready(CallToken(2), t0 + Duration::from_millis(10));
        assert!(at > t0 + Duration::from_millis(150), "{at:?}");
        assert!(p.sending(CallToken(2), at));
        // Two channels in use: no third pick until one ends.
        assert!(!p.can_pick("t", "+39077"));
        p.ended(CallToken(1), true);
        assert!(p.can_pick("t", "+39077"));
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
            if p.can_pick("t", "+39077") {
                next += 1;
                p.picked(CallToken(next), "t", "+39077123");
                unsent.push(CallToken(next));
            }
            if let Some(&call) = unsent.first() {
                if p.next_ready(call, now) <= now && p.sending(call, now) {
                    unsent.remove(0);
                    sent.push(now);
                    p.placed(call, now);
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
        assert!(!p.can_pick("t", "+39077"), "its one channel is in use");
        assert!(p.can_pick("t", "+3906"));
        p.set(vec![]);
        assert!(p.can_pick("t", "+39077"));
        p.ended(CallToken(1), false);
    }
}
