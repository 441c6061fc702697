//! From a due contact to an INVITE: pick and route while trunks have capacity, journal,
//! then send each journaled attempt when its trunk's limiter gives a CPS token.

use smallvec::SmallVec;
use std::collections::VecDeque;
use std::time::Instant;

use tracing::warn;

use super::attempt::{Attempt, Phase};
use super::invite::{invite_params, srtp_offer};
use super::io::{Action, CallToken, CampaignId, TrunkId};
use super::timers::Deadline;
use super::DialerCore;
use crate::dialer::prefix_limit::pacer::Pacers;
use crate::dialer::routing;
use crate::dialer::scheduler::{DueItem, Pick};
use crate::dialer::trunk_metrics::ActiveState;
use crate::metrics as m;
use crate::model::Outcome;
use crate::sip::endpoint::{CallEnd, CallHandle, CallParams, Hangup};
use crate::store::{AttemptStart, StoreError};

/// An end for an attempt whose INVITE never got an answer from the carrier.
pub fn local_end(outcome: Outcome, reason: impl Into<String>) -> CallEnd {
    CallEnd {
        outcome,
        status: 0,
        reason: reason.into(),
        hangup: Hangup::None,
        retry_after: None,
    }
}

impl DialerCore {
    /// Picks attempts while trunks have capacity, moves attempts off trunks that cannot
    /// send, then sends what the limiters admit.
    pub(super) fn dispatch(&mut self, now: Instant, wall: i64) {
        self.dispatch_verifies(now);
        if self.draining.is_none() {
            self.start_direct(now);
            self.pick(now, wall);
            if self.sched.has_emergency_queued() {
                self.preempt(now, wall);
            }
        } else {
            self.drop_direct_waiting();
        }
        self.flush_unavailable(now, wall);
        for t in 0..self.trunks.len() {
            self.send_queued(now, wall, TrunkId(t));
        }
    }

    fn pick(&mut self, now: Instant, wall: i64) {
        if !self.sched.has_work() {
            return;
        }
        let horizon = self.journals.horizon(now);
        loop {
            // Inline for the usual handful of trunks: one pass per call placed.
            let avail: SmallVec<[bool; 8]> = self
                .trunks
                .iter_mut()
                .map(|s| s.can_take(now, horizon))
                .collect();
            if !avail.iter().any(|a| *a) {
                return;
            }
            let trunks = &self.trunks;
            let pacers = &self.pacers;
            let pick = self.sched.next_paced(
                |it| {
                    let views: SmallVec<[_; 8]> = trunks
                        .iter()
                        .enumerate()
                        .map(|(i, s)| s.view(it.excluded.contains(&i), avail[i]))
                        .collect();
                    routing::route(&views, &it.number, it.number_type)
                },
                |tenant, lane| pacers.can_pick(tenant, lane, horizon),
            );
            match pick {
                Pick::Idle => return,
                Pick::NoRoute(it) => {
                    warn!(
                        campaign = it.campaign,
                        "no trunk carries this number type/prefix"
                    );
                    self.actions.push_back(Action::CloseContact {
                        campaign: CampaignId(it.campaign),
                        contact: it.contact,
                        outcome: Outcome::Failed,
                    });
                    metrics::counter!(m::CALLS_COMPLETED, "trunk" => "none", "outcome" => "failed")
                        .increment(1);
                }
                Pick::Dial(it, t) => self.begin(it, TrunkId(t), now, wall),
            }
        }
    }

    /// Reserves a channel and journals the attempt with a fresh Call-ID.
    fn begin(&mut self, item: DueItem, t: TrunkId, now: Instant, wall: i64) {
        let c = CampaignId(item.campaign);
        let Some(rt) = self.campaigns.get_mut(&c) else {
            self.sched
                .finish(item.campaign, item.contact, &item.number, false);
            return;
        };
        rt.in_calls += 1;
        let mut plan = rt.plan.clone();
        let message = item.message.map(|m| m as usize);
        plan.prompt = rt.spec.message_prompt(message).to_string();
        let slot = &mut self.trunks[t.0];
        slot.trunk.reserve_channel();
        slot.pending += 1;
        let trunk_name = slot.cfg().name.clone();
        let call = self.new_token();
        if let Some(rt) = self.campaigns.get(&c) {
            self.pacers.picked(call, &rt.spec.tenant, &item.number);
        }
        let call_id = call_id(self.ids.next(), call.0 as u32);
        let start = AttemptStart {
            campaign: item.campaign,
            contact: item.contact,
            number: item.number.clone(),
            call_id: call_id.clone(),
            trunk: trunk_name,
            started_ms: wall,
        };
        self.actions.push_back(Action::JournalBegin(call, start));
        let journal_seq = self.sched.begin_journal();
        let a = Attempt {
            campaign: c,
            item,
            plan,
            trunk: t,
            call_id,
            digits: String::new(),
            phase: Phase::Journaling,
            picked: now,
            listen: Default::default(),
            journal_seq,
        };
        self.calls.insert(call, a);
    }

    /// The journal committed an attempt (it waits for a token) or failed (dropped).
    pub(super) fn on_journaled(
        &mut self,
        now: Instant,
        wall: i64,
        call: CallToken,
        r: Result<i64, StoreError>,
    ) {
        let Some(a) = self.calls.get_mut(&call) else {
            return;
        };
        match r {
            Ok(id) => {
                self.sched.journaled(a.journal_seq);
                self.journals.committed(a.picked, now);
                let phase = std::mem::replace(&mut a.phase, Phase::Journaling);
                a.phase = phase.journaled(id).unwrap_or_else(|p| p);
                self.trunks[a.trunk.0].send_queue.push_back(call);
            }
            Err(e) => {
                warn!(error = %e, "journal write failed; attempt dropped");
                self.finish(
                    now,
                    wall,
                    call,
                    local_end(Outcome::Failed, "journal failed"),
                );
            }
        }
    }

    /// Attempts waiting on a trunk that was removed, went down or was told to stay away
    /// (Retry-After) go to another trunk instead of waiting.
    fn flush_unavailable(&mut self, now: Instant, wall: i64) {
        for t in 0..self.trunks.len() {
            let s = &self.trunks[t];
            if s.send_queue.is_empty() {
                continue;
            }
            if s.removed || s.trunk.held(now) || !s.trunk.health.is_up() {
                let queued = std::mem::take(&mut self.trunks[t].send_queue);
                for call in queued {
                    let why = "trunk unavailable before the INVITE left";
                    self.finish(now, wall, call, local_end(Outcome::Failed, why));
                }
            }
        }
    }

    /// Sends the head of a trunk's queue while its limiter gives tokens: the INVITEs of
    /// one pass leave in one batch, and each takes the batch's instant when placed.
    fn send_queued(&mut self, now: Instant, wall: i64, t: TrunkId) {
        loop {
            // Prefix limits: the first attempt they let go goes first.
            if !self.pacer_ready_first(now, t) {
                return;
            }
            let Some(&call) = self.trunks[t.0].send_queue.front() else {
                return;
            };
            let Some(a) = self.calls.get(&call) else {
                self.trunks[t.0].send_queue.pop_front();
                continue;
            };
            if self.is_direct(call) {
                if !self.trunks[t.0].trunk.take_token(now) {
                    return;
                }
                let session = self.ids.next() as u32 as u64;
                let params = self.direct_params(now, call, session).expect("direct call");
                self.send_head(now, t, call, params);
                continue;
            }
            let Some(rt) = self.campaigns.get(&a.campaign) else {
                // Paused, canceled or shutting down while journaling: close it unsent.
                self.trunks[t.0].send_queue.pop_front();
                let why = "campaign stopped before the INVITE";
                self.finish(now, wall, call, local_end(Outcome::Canceled, why));
                continue;
            };
            let slot = &mut self.trunks[t.0];
            if !slot.trunk.take_token(now) {
                return;
            }
            self.pacers.sending(call, now);
            let session = self.ids.next() as u32 as u64;
            let params = invite_params(
                slot.cfg(),
                slot.trunk.metrics.label(),
                slot.addr,
                &rt.spec,
                &a.item.number,
                self.cfg.media_ip,
                session,
            );
            self.send_head(now, t, call, params);
        }
    }

    /// Hands the head of a trunk's send queue to the driver (its CPS token taken).
    fn send_head(&mut self, now: Instant, t: TrunkId, call: CallToken, mut params: CallParams) {
        params.offer.srtp = srtp_offer(self.trunks[t.0].cfg().srtp, &mut self.ids.0);
        let slot = &mut self.trunks[t.0];
        slot.send_queue.pop_front();
        slot.pending = slot.pending.saturating_sub(1);
        let a = self.calls.get_mut(&call).expect("queued calls are live");
        let call_id = a.call_id.clone();
        let phase = std::mem::replace(&mut a.phase, Phase::Journaling);
        a.phase = phase.sending(now).unwrap_or_else(|p| p);
        let params = Box::new(params);
        self.actions.push_back(Action::Invite {
            call,
            call_id,
            params,
        });
    }

    /// The INVITE left: the token is stamped with this instant and the call rings.
    pub(super) fn on_placed(&mut self, now: Instant, call: CallToken, handle: CallHandle) {
        let Some(a) = self.calls.get_mut(&call) else {
            self.actions.push_back(Action::Hangup(handle));
            return;
        };
        // Its tokens were taken when the core handed it over; they count from its send.
        let decided = a.phase.invited_at().unwrap_or(now);
        let slot = &mut self.trunks[a.trunk.0];
        slot.trunk.stamp_sent(decided, now);
        self.pacers.placed(call, decided, now);
        let phase = std::mem::replace(&mut a.phase, Phase::Journaling);
        a.phase = phase.placed(handle).unwrap_or_else(|p| p);
        self.by_handle.insert(handle, call);
        slot.trunk.metrics.attempts().increment(1);
        slot.trunk
            .metrics
            .active(ActiveState::Ringing)
            .increment(1.0);
        if self.draining.is_some() {
            self.actions.push_back(Action::Hangup(handle));
        }
    }

    /// The driver could not place the INVITE.
    pub(super) fn on_place_failed(
        &mut self,
        now: Instant,
        wall: i64,
        call: CallToken,
        why: String,
    ) {
        self.finish(now, wall, call, local_end(Outcome::Failed, why));
    }

    /// Moves to the head of a trunk's send queue the first attempt whose prefix limits
    /// give a CPS token now; false when none does (the others keep their order).
    fn pacer_ready_first(&mut self, now: Instant, t: TrunkId) -> bool {
        let q = &self.trunks[t.0].send_queue;
        let Some(i) = q
            .iter()
            .position(|c| self.pacers.next_ready(*c, now) <= now)
        else {
            return false;
        };
        let q = &mut self.trunks[t.0].send_queue;
        if i > 0 {
            let call = q.remove(i).expect("index in range");
            q.push_front(call);
        }
        true
    }

    /// Arms each trunk's limiter wake-up when work waits for its next token.
    pub(super) fn plan_limiters(&mut self, now: Instant) {
        let work = !self.direct_waiting.is_empty()
            || self.campaigns.keys().any(|c| self.sched.queued(c.0) > 0);
        for (i, s) in self.trunks.iter_mut().enumerate() {
            let d = Deadline::Limiter(TrunkId(i));
            let t = &s.trunk;
            let could_pick = work && t.health.is_up() && t.active < t.channel_cap();
            let queued = !s.send_queue.is_empty();
            if s.removed || !(queued || could_pick) {
                self.timers.stop(d);
                continue;
            }
            let mut ready = s.trunk.next_ready(now);
            if queued {
                ready = ready.max(first_paced(&mut self.pacers, &s.send_queue, now));
            }
            if ready > now {
                self.timers.set(d, ready);
            } else {
                self.timers.stop(d);
            }
        }
    }
}

/// The earliest instant the prefix limits let one of `queue`'s calls go; `now` as soon as
/// one may go now (no need to look further: the queue is up to a fifth of a second of the
/// trunk's calls, and this runs at every pass of the core).
fn first_paced(pacers: &mut Pacers, queue: &VecDeque<CallToken>, now: Instant) -> Instant {
    let mut first: Option<Instant> = None;
    for c in queue {
        let at = pacers.next_ready(*c, now);
        if at <= now {
            return now;
        }
        first = Some(first.map_or(at, |f| f.min(at)));
    }
    first.unwrap_or(now)
}

/// A Call-ID: 16 hex digits of `random`, 8 of `token`, then `@dialer` (as
/// `format!("{random:016x}{token:08x}@dialer")` writes it, without the formatter's pass).
pub(super) fn call_id(random: u64, token: u32) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(31);
    for shift in (0..16).rev() {
        s.push(char::from(HEX[(random >> (shift * 4)) as usize & 15]));
    }
    for shift in (0..8).rev() {
        s.push(char::from(HEX[(token >> (shift * 4)) as usize & 15]));
    }
    s.push_str("@dialer");
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn call_ids_are_written_as_format_would() {
        for (r, t) in [
            (0, 0),
            (u64::MAX, u32::MAX),
            (0x0123_4567_89ab_cdef, 0xfe),
            (1 << 63, 1),
        ] {
            assert_eq!(super::call_id(r, t), format!("{r:016x}{t:08x}@dialer"));
        }
    }
}
