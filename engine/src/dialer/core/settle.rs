//! The end of an attempt: whether it counts against the resident's allowance, whether it
//! goes to another trunk, and when (if ever) the contact is called again.

use std::time::Instant;

use tracing::debug;

use super::attempt::{Attempt, CallPlan, Facts, Phase};
use super::io::{Action, CallToken};
use super::DialerCore;
use crate::dialer::congestion::Signal;
use crate::dialer::retry::{Next, RetryPolicy};
use crate::dialer::routing::{self, Route};
use crate::model::heard::answered_done;
use crate::model::{CallResult, Listened, Outcome};
use crate::sip::endpoint::CallEnd;
use crate::store::AttemptSubject;
use crate::store::{AttemptEnd, ContactNext};

/// What becomes of a contact after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    /// The attempt counts against the resident's retry allowance.
    pub counted: bool,
    /// The contact goes at once to another trunk (a carrier fault elsewhere untried).
    pub failover: bool,
    /// Where the contact goes in the store.
    pub next: ContactNext,
}

/// Settles an attempt that ended with `outcome`.
///
/// - A carrier fault (`failed`) with another trunk left to try fails over at once and
///   does not count: the resident was not reached through no fault of theirs.
/// - An attempt we stopped ourselves (`canceled`: pause, cancel, shutdown) or whose INVITE
///   never left (`sent` false) does not count either and is due again at once.
/// - Anything else counts, and the campaign's retry policy says when to call again.
///
/// `attempts_before` is the contact's counted attempts before this one; `wall` is now in
/// Unix ms.
pub fn settle(
    outcome: Outcome,
    sent: bool,
    another_trunk: bool,
    attempts_before: u32,
    policy: &RetryPolicy,
    wall: i64,
) -> Settlement {
    let failover = outcome.is_carrier_fault() && another_trunk;
    let ours = outcome == Outcome::Canceled || !sent;
    let counted = !failover && !ours;
    let next = if failover || ours {
        ContactNext::RetryAt(wall)
    } else {
        match policy.decide(outcome, attempts_before + 1, wall) {
            Next::RetryAt(t) => ContactNext::RetryAt(t),
            Next::Done => ContactNext::Done,
        }
    };
    Settlement {
        counted,
        failover,
        next,
    }
}

/// An attempt's result beside its outcome and what it means for its contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judged {
    /// Heard, confirmed, partial or machine (answered calls only).
    pub result: Option<CallResult>,
    /// The campaign's `until` is met: the contact is done for good.
    pub satisfied: bool,
    /// The outcome whose retry rule applies when it is not the journaled one: an answer
    /// that did not meet `until` (or a machine to call later) is retried like `no_answer`.
    pub retry_as: Option<Outcome>,
}

/// Judges an ended attempt by its campaign's `until` and machine policy. `played` is the
/// share of the message the media path sent (answered calls only).
pub fn judge(plan: &CallPlan, outcome: Outcome, facts: &Listened, played: Option<i64>) -> Judged {
    if outcome != Outcome::Answered {
        return Judged {
            result: None,
            satisfied: false,
            retry_as: None,
        };
    }
    let mut facts = *facts;
    facts.share_permille = played.unwrap_or(0).clamp(0, 1000) as u32;
    facts.message_done |= facts.share_permille >= 1000;
    let satisfied = answered_done(plan.until, plan.amd, &facts);
    Judged {
        result: Some(facts.result()),
        satisfied,
        retry_as: (!satisfied).then_some(Outcome::NoAnswer),
    }
}

impl DialerCore {
    /// Ends an attempt: frees its channel, feeds congestion control, counts metrics,
    /// journals the end and requeues, reschedules or closes the contact.
    pub(super) fn finish(&mut self, now: Instant, wall: i64, call: CallToken, end: CallEnd) {
        let Some(mut a) = self.calls.remove(&call) else {
            return;
        };
        self.timers.stop(super::timers::Deadline::Amd(call));
        let end = self.preempted_end(call, end);
        if self.is_direct(call) {
            return self.finish_direct(now, call, a, end);
        }
        let facts = self.release(now, call, &mut a, &end);
        let Some(attempt) = facts.attempt else {
            let it = &a.item;
            self.sched
                .finish(it.campaign, it.contact, &it.number, false);
            return;
        };
        let outcome = end.outcome;
        let another = outcome.is_carrier_fault() && self.another_trunk(&a);
        let policy = &a.plan.policy;
        let heard = judge(&a.plan, outcome, &a.listen.facts, facts.played_permille);
        let retry_as = heard.retry_as.unwrap_or(outcome);
        let s = settle(retry_as, facts.sent, another, a.item.attempts, policy, wall);
        let rec = AttemptEnd {
            attempt,
            outcome,
            sip_status: end.status,
            sip_reason: end.reason,
            counted: s.counted,
            ended_ms: wall,
            pdd_ms: facts.pdd.map(|d| d.as_millis() as i64),
            duration_ms: facts.duration.map(|d| d.as_millis() as i64),
            played_permille: facts.played_permille,
            dtmf: (!a.digits.is_empty()).then(|| a.digits.clone()),
            result: heard.result,
            satisfied: heard.satisfied,
            opt_out: a.listen.facts.opted_out,
            beep_ms: a.listen.amd.beep_ms.map(i64::from),
        };
        let subject = self.campaigns.get(&a.campaign).map(|rt| AttemptSubject {
            campaign: a.campaign.0,
            tenant: rt.spec.tenant.clone(),
            number: a.item.number.clone(),
        });
        self.actions
            .push_back(Action::JournalFinish(rec, s.next, subject));
        debug!(attempt, outcome = %outcome, status = end.status, trunk = a.trunk.0, failover = s.failover, "attempt ended");
        let mut item = a.item;
        if s.failover {
            item.attempts += u32::from(s.counted);
            item.excluded.push(a.trunk.0);
            self.sched.requeue_front(item);
        } else {
            self.sched
                .finish(item.campaign, item.contact, &item.number, heard.satisfied);
        }
    }

    /// Frees what an ending attempt held (its SIP handle, trunk channel and queue place,
    /// RTP port, campaign count), feeds congestion control and records its metrics.
    pub(super) fn release(
        &mut self,
        now: Instant,
        call: CallToken,
        a: &mut Attempt,
        end: &CallEnd,
    ) -> Facts {
        if let Some(h) = a.phase.call() {
            self.by_handle.remove(&h);
        }
        let slot = &mut self.trunks[a.trunk.0];
        if !a.phase.sent() {
            slot.pending = slot.pending.saturating_sub(1);
            slot.send_queue.retain(|x| *x != call);
        }
        if let Some(state) = a.phase.active_state() {
            slot.trunk.metrics.active(state).decrement(1.0);
        }
        self.pacers.ended(call, a.phase.sent());
        let phase = std::mem::replace(&mut a.phase, Phase::Journaling);
        let facts = phase.close(now);
        let signal = Signal::of_end(facts.sent, end.status, end.retry_after);
        slot.trunk.release(now, signal);
        if facts.sent {
            self.actions.push_back(Action::ReleasePort(call));
        }
        let metrics = &slot.trunk.metrics;
        metrics.completed(end.outcome).increment(1);
        if let Some(p) = facts.pdd {
            metrics.post_dial_delay().record(p.as_secs_f64());
        }
        if let Some(d) = facts.duration {
            metrics.duration().record(d.as_secs_f64());
        }
        if let Some(rt) = self.campaigns.get_mut(&a.campaign) {
            rt.in_calls = rt.in_calls.saturating_sub(1);
        }
        facts
    }

    /// Whether a trunk other than those already tried (and up, and live) carries the
    /// attempt's number, while its campaign still runs.
    fn another_trunk(&self, a: &Attempt) -> bool {
        if !self.campaigns.contains_key(&a.campaign) {
            return false;
        }
        let views: Vec<_> = self
            .trunks
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let tried = i == a.trunk.0 || a.item.excluded.contains(&i);
                s.view(tried || !s.trunk.health.is_up(), true)
            })
            .collect();
        routing::route(&views, &a.item.number, a.item.number_type) != Route::NoRoute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RetryPolicy = RetryPolicy {
        busy: crate::dialer::retry::RetryRule {
            interval_s: 60,
            max_attempts: 3,
        },
        no_answer: crate::dialer::retry::RetryRule {
            interval_s: 900,
            max_attempts: 3,
        },
        failed: crate::dialer::retry::RetryRule {
            interval_s: 120,
            max_attempts: 2,
        },
        rejected: crate::dialer::retry::RetryRule {
            interval_s: 0,
            max_attempts: 1,
        },
    };

    fn plan(until: crate::model::Until) -> CallPlan {
        let mut spec = super::super::tests_support::spec();
        spec.delivery.until = until;
        CallPlan::of(&spec)
    }

    #[test]
    fn an_answer_is_judged_by_until() {
        use crate::model::Until;
        let none = Listened::default();
        // Answered is enough: done, partial with what was played.
        let j = judge(&plan(Until::Answered), Outcome::Answered, &none, Some(400));
        assert_eq!(
            (j.result, j.satisfied, j.retry_as),
            (Some(CallResult::Partial), true, None)
        );
        // The whole message sent is heard, even without a Played note.
        let j = judge(&plan(Until::Heard), Outcome::Answered, &none, Some(1000));
        assert_eq!((j.result, j.satisfied), (Some(CallResult::Heard), true));
        // Not confirmed under `confirmed`: retried by the no_answer rule.
        let j = judge(
            &plan(Until::Confirmed),
            Outcome::Answered,
            &none,
            Some(1000),
        );
        assert_eq!(
            (j.result, j.satisfied, j.retry_as),
            (Some(CallResult::Heard), false, Some(Outcome::NoAnswer))
        );
        let s = settle(j.retry_as.unwrap(), true, false, 0, &P, 0);
        assert_eq!((s.counted, s.next), (true, ContactNext::RetryAt(900_000)));
        let yes = Listened {
            confirmed: true,
            ..Default::default()
        };
        let j = judge(&plan(Until::Confirmed), Outcome::Answered, &yes, Some(300));
        assert_eq!((j.result, j.satisfied), (Some(CallResult::Confirmed), true));
        // Unanswered attempts have no result and follow their own outcome.
        let j = judge(&plan(Until::Confirmed), Outcome::Busy, &none, None);
        assert_eq!((j.result, j.satisfied, j.retry_as), (None, false, None));
    }

    #[test]
    fn carrier_fault_fails_over_without_counting() {
        let s = settle(Outcome::Failed, true, true, 1, &P, 1000);
        assert_eq!(
            (s.counted, s.failover, s.next),
            (false, true, ContactNext::RetryAt(1000))
        );
        // No trunk left: it counts and the policy decides.
        let s = settle(Outcome::Failed, true, false, 0, &P, 1000);
        assert_eq!((s.counted, s.failover), (true, false));
        assert_eq!(s.next, ContactNext::RetryAt(121_000));
        let s = settle(Outcome::Failed, true, false, 1, &P, 1000);
        assert_eq!(s.next, ContactNext::Done);
    }

    #[test]
    fn ours_does_not_count_and_is_due_at_once() {
        let s = settle(Outcome::Canceled, true, true, 2, &P, 5);
        assert_eq!(
            (s.counted, s.failover, s.next),
            (false, false, ContactNext::RetryAt(5))
        );
        let s = settle(Outcome::Busy, false, false, 2, &P, 5);
        assert_eq!((s.counted, s.next), (false, ContactNext::RetryAt(5)));
    }

    #[test]
    fn callee_outcomes_count_and_follow_the_policy() {
        let s = settle(Outcome::Busy, true, true, 0, &P, 0);
        assert_eq!(
            (s.counted, s.failover, s.next),
            (true, false, ContactNext::RetryAt(60_000))
        );
        assert_eq!(
            settle(Outcome::Busy, true, true, 2, &P, 0).next,
            ContactNext::Done
        );
        assert_eq!(
            settle(Outcome::Answered, true, true, 0, &P, 0).next,
            ContactNext::Done
        );
        assert_eq!(
            settle(Outcome::InvalidNumber, true, true, 0, &P, 0).next,
            ContactNext::Done
        );
    }
}
