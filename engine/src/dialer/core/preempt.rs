//! Emergency preemption: when an emergency campaign waits for channels that normal
//! campaigns' calls hold on a trunk, end as many of those calls as the emergency can use
//! within the next second, and give their contacts back to their campaigns uncounted.
//!
//! The decisions are pure functions ([`need`], [`choose`]); the core gathers the facts
//! (which emergency contacts wait for which trunk, which normal calls hold it) and acts:
//! an attempt not yet on the wire is closed at once, a ringing one is CANCELed, an
//! answered one gets a BYE. Each closes `canceled` (our own stop: not counted against
//! the resident, due again at once; see `settle::settle`), so the contact is called again
//! once the emergency no longer holds the trunk.

use std::collections::HashMap;
use std::time::Instant;

use tracing::info;

use super::attempt::Phase;
use super::dispatch::local_end;
use super::io::{Action, CallToken, TrunkId};
use super::DialerCore;
use crate::dialer::campaign::Priority;
use crate::dialer::routing::{self, Route};
use crate::id_map::IdMap;
use crate::metrics as m;
use crate::model::Outcome;
use crate::sip::endpoint::CallEnd;

/// The SIP reason journaled for a preempted attempt.
pub const PREEMPTED: &str = "preempted by an emergency campaign";

/// How many waiting emergency contacts are looked at per pass (the demand never needs more
/// than a second of a trunk's rate, and the scan runs after every input while they wait).
const SCAN: usize = 128;

/// Where a normal attempt is, in the order they are preempted: the cheapest to end first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Journaled, waiting for a CPS token: closed without a SIP message.
    Queued,
    /// INVITE out, not answered: CANCEL (nobody has heard anything yet).
    Ringing,
    /// Answered, the message playing: BYE (the callee is called again later).
    Answered,
}

impl Stage {
    /// The label of `dialer_preemptions_total{stage}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Queued => "queued",
            Stage::Ringing => "ringing",
            Stage::Answered => "answered",
        }
    }
}

/// A normal campaign's attempt that holds a channel of the trunk an emergency needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The attempt.
    pub call: CallToken,
    /// Where it is.
    pub stage: Stage,
    /// When it entered that stage (INVITE sent, answered); `None` before the wire.
    pub since: Option<Instant>,
}

/// How many calls to end on a trunk: the emergency contacts that wait for it (at most what
/// its CPS lets start in the next second) beyond its free channels and the channels that
/// calls already being ended will free.
pub fn need(waiting: u32, cps: f64, free: u32, freeing: u32) -> u32 {
    let horizon = (cps.max(0.0).ceil() as u32).max(1);
    waiting.min(horizon).saturating_sub(free + freeing)
}

/// Which calls to end, `need` of them at most: attempts not yet on the wire first, then
/// ringing calls, then answered ones; within a stage the most recent first (an answer of a
/// second ago has heard little of the message; one that rang long is about to be answered
/// or to time out by itself).
pub fn choose(cands: &[Candidate], need: u32) -> Vec<CallToken> {
    let mut v: Vec<&Candidate> = cands.iter().collect();
    v.sort_by_key(|c| (c.stage, std::cmp::Reverse(c.since), c.call));
    v.into_iter().take(need as usize).map(|c| c.call).collect()
}

/// The candidate a phase makes, if it can be preempted now (a call being journaled, whose
/// INVITE is being handed over, or that is already ending is left alone).
fn candidate(call: CallToken, phase: &Phase) -> Option<Candidate> {
    let (stage, since) = match phase {
        Phase::Queued { .. } => (Stage::Queued, None),
        Phase::Ringing { invited_at, .. } => (Stage::Ringing, Some(*invited_at)),
        Phase::Playing { answered_at, .. } => (Stage::Answered, Some(*answered_at)),
        _ => return None,
    };
    Some(Candidate { call, stage, since })
}

/// Calls being ended for an emergency, until their channel is free.
#[derive(Debug, Default)]
pub struct Preemptions {
    ending: IdMap<CallToken, TrunkId>,
}

impl Preemptions {
    /// Calls being ended, for [`DialerCore::held`].
    pub(super) fn held(&self) -> usize {
        self.ending.len()
    }

    fn freeing(&self, t: TrunkId) -> u32 {
        self.ending.values().filter(|x| **x == t).count() as u32
    }
}

impl DialerCore {
    /// Ends normal calls on trunks that emergency contacts wait for (see the module doc).
    pub(super) fn preempt(&mut self, now: Instant, wall: i64) {
        let short = |s: &super::slot::TrunkSlot| {
            let free = s.trunk.channel_cap().saturating_sub(s.trunk.active);
            !s.removed && free < need(u32::MAX, s.cfg().cps, 0, 0)
        };
        if self.draining.is_some() || !self.trunks.iter().any(short) {
            return;
        }
        // Nothing to preempt when every call in progress is an emergency's (the common
        // case once an emergency runs at full speed: no scan of the calls then).
        let emergency: usize = self
            .campaigns
            .values()
            .filter(|rt| rt.spec.priority == Priority::Emergency)
            .map(|rt| rt.in_calls)
            .sum();
        if self.calls.len() <= emergency + self.direct.len() {
            return;
        }
        let waiting = self.emergency_waiting();
        for (t, n) in waiting {
            let slot = &self.trunks[t.0];
            let free = slot.trunk.channel_cap().saturating_sub(slot.trunk.active);
            let freeing = self.preempts.freeing(t);
            let k = need(n, slot.cfg().cps, free, freeing);
            if k == 0 {
                continue;
            }
            let cands: Vec<Candidate> = self
                .calls
                .iter()
                .filter(|(c, a)| {
                    a.trunk == t
                        && !self.direct.contains_key(c)
                        && !self.preempts.ending.contains_key(c)
                        && self
                            .campaigns
                            .get(&a.campaign)
                            .is_none_or(|rt| rt.spec.priority == Priority::Normal)
                })
                .filter_map(|(c, a)| candidate(*c, &a.phase))
                .collect();
            let chosen = choose(&cands, k);
            if !chosen.is_empty() {
                info!(
                    trunk = t.0,
                    ending = chosen.len(),
                    "emergency preempts normal calls"
                );
            }
            for call in chosen {
                self.end_for_emergency(now, wall, t, call);
            }
        }
    }

    /// Ends one normal attempt for an emergency.
    fn end_for_emergency(&mut self, now: Instant, wall: i64, t: TrunkId, call: CallToken) {
        let Some(a) = self.calls.get(&call) else {
            return;
        };
        let Some(c) = candidate(call, &a.phase) else {
            return;
        };
        let name = self.trunks[t.0].cfg().name.clone();
        metrics::counter!(m::PREEMPTIONS, "trunk" => name, "stage" => c.stage.as_str())
            .increment(1);
        self.preempts.ending.insert(call, t);
        match a.phase.call() {
            Some(h) => self.actions.push_back(Action::Hangup(h)),
            None => self.finish(now, wall, call, local_end(Outcome::Canceled, PREEMPTED)),
        }
    }

    /// The end an attempt is journaled with: `canceled` when it was preempted, whatever the
    /// SIP layer saw (a BYE we sent ends an answered call normally on the wire).
    pub(super) fn preempted_end(&mut self, call: CallToken, end: CallEnd) -> CallEnd {
        if self.preempts.ending.remove(&call).is_none() {
            return end;
        }
        CallEnd {
            outcome: Outcome::Canceled,
            reason: PREEMPTED.into(),
            ..end
        }
    }

    /// Emergency contacts queued now, by the trunk each would take if it had room (only
    /// trunks that carry the number, are up and live; capacity is what is missing).
    fn emergency_waiting(&self) -> HashMap<TrunkId, u32> {
        let mut per: HashMap<TrunkId, u32> = HashMap::new();
        for it in self.sched.emergency_queued(SCAN) {
            let views: Vec<_> = self
                .trunks
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let out = it.excluded.contains(&i) || !s.trunk.health.is_up();
                    s.view(out, true)
                })
                .collect();
            if let Route::Trunk(t) = routing::route(&views, &it.number, it.number_type) {
                *per.entry(TrunkId(t)).or_default() += 1;
            }
        }
        per
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn c(call: u64, stage: Stage, since_ms: Option<u64>, t0: Instant) -> Candidate {
        Candidate {
            call: CallToken(call),
            stage,
            since: since_ms.map(|ms| t0 + Duration::from_millis(ms)),
        }
    }

    #[test]
    fn need_is_the_next_second_of_demand_beyond_free_and_freeing() {
        // 20 channels all busy, 10 CPS, 500 waiting: end 10 now (what 1 s of CPS can use).
        assert_eq!(need(500, 10.0, 0, 0), 10);
        // Five already being ended, three free: five more.
        assert_eq!(need(500, 10.0, 3, 5), 2);
        // Only 4 emergency contacts wait: no more than 4 calls end.
        assert_eq!(need(4, 10.0, 0, 0), 4);
        // Enough free channels (the wait is for CPS tokens): nothing ends.
        assert_eq!(need(500, 10.0, 12, 0), 0);
        assert_eq!(need(0, 10.0, 0, 0), 0);
        // A fractional or tiny rate still allows one.
        assert_eq!(need(9, 0.5, 0, 0), 1);
        assert_eq!(need(9, 2.5, 0, 0), 3);
    }

    #[test]
    fn choose_ends_unsent_then_ringing_then_answered_newest_first() {
        let t0 = Instant::now();
        let cands = [
            c(1, Stage::Answered, Some(1000), t0),
            c(2, Stage::Ringing, Some(500), t0),
            c(3, Stage::Answered, Some(3000), t0),
            c(4, Stage::Queued, None, t0),
            c(5, Stage::Ringing, Some(2500), t0),
            c(6, Stage::Answered, Some(2000), t0),
        ];
        let ids = |v: Vec<CallToken>| v.into_iter().map(|c| c.0).collect::<Vec<_>>();
        assert_eq!(ids(choose(&cands, 1)), [4]);
        assert_eq!(ids(choose(&cands, 3)), [4, 5, 2]);
        assert_eq!(ids(choose(&cands, 5)), [4, 5, 2, 3, 6]);
        assert_eq!(ids(choose(&cands, 99)), [4, 5, 2, 3, 6, 1]);
        assert!(choose(&cands, 0).is_empty());
        assert!(choose(&[], 5).is_empty());
    }
}
