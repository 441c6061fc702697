//! One attempt's phases as a type: each variant carries what that phase has, and each
//! transition consumes the old phase (an illegal one gives it back unchanged).

use std::time::{Duration, Instant};

use super::super::retry::RetryPolicy;
use super::super::scheduler::DueItem;
use super::io::{CampaignId, TrunkId};
use super::listen::Listening;
use crate::dialer::trunk_metrics::ActiveState;
use crate::model::{AmdPolicy, CampaignSpec, Keys, Until};
use crate::sip::endpoint::{CallEnd, CallHandle};

/// Where an attempt is, from pick to end.
#[derive(Debug)]
pub enum Phase {
    /// Picked, a channel reserved, the journal write in flight.
    Journaling,
    /// Journaled; waiting in its trunk's send queue for a CPS token.
    Queued {
        /// Journal id.
        attempt: i64,
    },
    /// INVITE handed to the driver, its SIP handle not yet known.
    Sending {
        /// Journal id.
        attempt: i64,
        /// When the token was taken.
        invited_at: Instant,
    },
    /// INVITE on the wire: trying or ringing.
    Ringing {
        /// Journal id.
        attempt: i64,
        /// SIP handle.
        call: CallHandle,
        /// When the INVITE left.
        invited_at: Instant,
        /// Post-dial delay, once a provisional response came.
        pdd: Option<Duration>,
    },
    /// Answered, the prompt playing.
    Playing {
        /// Journal id.
        attempt: i64,
        /// SIP handle.
        call: CallHandle,
        /// Post-dial delay.
        pdd: Option<Duration>,
        /// When it was answered.
        answered_at: Instant,
        /// Share of the message sent, in thousandths, once the media path said.
        played: u32,
        /// Media is playing (false when it could not start: no packet count will come).
        media: bool,
    },
    /// The call ended while media was on; waiting for the media's packet count.
    Ending {
        /// Journal id.
        attempt: i64,
        /// Post-dial delay.
        pdd: Option<Duration>,
        /// When it was answered.
        answered_at: Instant,
        /// When the call ended.
        ended_at: Instant,
        /// How it ended.
        end: CallEnd,
        /// Share of the message sent so far, in thousandths.
        played: u32,
    },
}

/// What an attempt had when it ended, for the journal and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// Journal id (none when the journal write failed or never came back).
    pub attempt: Option<i64>,
    /// Whether its INVITE left.
    pub sent: bool,
    /// Post-dial delay.
    pub pdd: Option<Duration>,
    /// Answered call duration.
    pub duration: Option<Duration>,
    /// Share of the message played, in thousandths (answered calls only).
    pub played_permille: Option<i64>,
}

impl Phase {
    /// The journal committed.
    pub fn journaled(self, attempt: i64) -> Result<Phase, Phase> {
        match self {
            Phase::Journaling => Ok(Phase::Queued { attempt }),
            p => Err(p),
        }
    }

    /// A CPS token was taken: the INVITE goes to the driver.
    pub fn sending(self, now: Instant) -> Result<Phase, Phase> {
        match self {
            Phase::Queued { attempt } => Ok(Phase::Sending {
                attempt,
                invited_at: now,
            }),
            p => Err(p),
        }
    }

    /// When an INVITE handed to the driver took its CPS token (`None` in any other phase).
    pub fn invited_at(&self) -> Option<Instant> {
        match self {
            Phase::Sending { invited_at, .. } => Some(*invited_at),
            _ => None,
        }
    }

    /// The driver placed the INVITE.
    pub fn placed(self, call: CallHandle) -> Result<Phase, Phase> {
        match self {
            Phase::Sending {
                attempt,
                invited_at,
            } => Ok(Phase::Ringing {
                attempt,
                call,
                invited_at,
                pdd: None,
            }),
            p => Err(p),
        }
    }

    /// A provisional response: the post-dial delay is measured once.
    pub fn progress(&mut self, now: Instant) {
        if let Phase::Ringing {
            invited_at, pdd, ..
        } = self
        {
            pdd.get_or_insert(now.saturating_duration_since(*invited_at));
        }
    }

    /// The call was answered.
    pub fn answered(self, now: Instant) -> Result<Phase, Phase> {
        match self {
            Phase::Ringing {
                attempt,
                call,
                invited_at,
                pdd,
            } => Ok(Phase::Playing {
                attempt,
                call,
                pdd: pdd.or(Some(now.saturating_duration_since(invited_at))),
                answered_at: now,
                played: 0,
                media: true,
            }),
            p => Err(p),
        }
    }

    /// The media path said how much of the message it sent (the prompt finished: all of
    /// it; media stopped: its share).
    pub fn record_played(&mut self, permille: u32) {
        if let Phase::Playing { played, .. } | Phase::Ending { played, .. } = self {
            *played = (*played).max(permille.min(1000));
        }
    }

    /// Media could not start: the end will not wait for a packet count.
    pub fn media_failed(&mut self) {
        if let Phase::Playing { media, .. } = self {
            *media = false;
        }
    }

    /// Whether the prompt is playing (the end then waits for the media's packet count).
    pub fn plays_media(&self) -> bool {
        matches!(self, Phase::Playing { media: true, .. })
    }

    /// The SIP call ended while its media plays: wait for the packet count.
    pub fn ending(self, end: CallEnd, now: Instant) -> Result<Phase, Phase> {
        match self {
            Phase::Playing {
                attempt,
                pdd,
                answered_at,
                played,
                media: true,
                ..
            } => Ok(Phase::Ending {
                attempt,
                pdd,
                answered_at,
                ended_at: now,
                end,
                played,
            }),
            p => Err(p),
        }
    }

    /// The SIP handle, once the INVITE is out and until the call ends.
    pub fn call(&self) -> Option<CallHandle> {
        match self {
            Phase::Ringing { call, .. } | Phase::Playing { call, .. } => Some(*call),
            _ => None,
        }
    }

    /// Journal id, once committed.
    pub fn attempt(&self) -> Option<i64> {
        match self {
            Phase::Journaling => None,
            Phase::Queued { attempt }
            | Phase::Sending { attempt, .. }
            | Phase::Ringing { attempt, .. }
            | Phase::Playing { attempt, .. }
            | Phase::Ending { attempt, .. } => Some(*attempt),
        }
    }

    /// Whether the INVITE was picked for sending (so the call counts on the wire).
    pub fn sent(&self) -> bool {
        !matches!(self, Phase::Journaling | Phase::Queued { .. })
    }

    /// Whether the callee answered.
    pub fn was_answered(&self) -> bool {
        matches!(self, Phase::Playing { .. } | Phase::Ending { .. })
    }

    /// The label of `dialer_calls_active{state}` this phase counts under, if any.
    pub fn active_state(&self) -> Option<ActiveState> {
        match self {
            Phase::Ringing { .. } => Some(ActiveState::Ringing),
            Phase::Playing { .. } | Phase::Ending { .. } => Some(ActiveState::Answered),
            _ => None,
        }
    }

    /// The end of the attempt: what it had.
    pub fn close(self, now: Instant) -> Facts {
        let sent = self.sent();
        let attempt = self.attempt();
        let (pdd, duration, played) = match self {
            Phase::Ringing { pdd, .. } => (pdd, None, None),
            Phase::Playing {
                pdd,
                answered_at,
                played,
                ..
            } => (
                pdd,
                Some(now.saturating_duration_since(answered_at)),
                Some(played),
            ),
            Phase::Ending {
                pdd,
                answered_at,
                ended_at,
                played,
                ..
            } => (
                pdd,
                Some(ended_at.saturating_duration_since(answered_at)),
                Some(played),
            ),
            _ => (None, None, None),
        };
        Facts {
            attempt,
            sent,
            pdd,
            duration,
            played_permille: played.map(i64::from),
        }
    }
}

/// What a campaign tells each of its attempts.
#[derive(Debug, Clone)]
pub struct CallPlan {
    /// When (if ever) to call again.
    pub policy: RetryPolicy,
    /// Prompt to play (the contact's per-zone message once the attempt is made).
    pub prompt: String,
    /// Plays of the prompt.
    pub play_count: u32,
    /// What keys do.
    pub keys: Keys,
    /// Played before the message.
    pub pre_roll: Option<String>,
    /// Played after the message.
    pub post_roll: Option<String>,
    /// Acknowledges a confirmation (a tone without it).
    pub confirmed_prompt: Option<String>,
    /// When a contact is done.
    pub until: Until,
    /// What happens to machines (none: no detection).
    pub amd: Option<AmdPolicy>,
    /// The detector's parameters (with `amd`).
    pub amd_config: Option<crate::media::amd::AmdConfig>,
}

impl CallPlan {
    /// The plan of a campaign's attempts, playing its default message.
    pub fn of(spec: &CampaignSpec) -> CallPlan {
        let d = &spec.delivery;
        CallPlan {
            policy: spec.retry,
            prompt: spec.prompt.clone(),
            play_count: spec.play_count,
            keys: spec.keys(),
            pre_roll: d.pre_roll.clone(),
            post_roll: d.post_roll.clone(),
            confirmed_prompt: d.confirmed_prompt.clone(),
            until: d.until,
            amd: d.amd.as_ref().map(|a| a.policy),
            amd_config: d.amd.as_ref().map(super::amd::amd_config),
        }
    }
}

/// One attempt: the contact, where it goes, and its phase.
#[derive(Debug)]
pub struct Attempt {
    /// Campaign.
    pub campaign: CampaignId,
    /// The contact and its routing history.
    pub item: DueItem,
    /// Its campaign's plan.
    pub plan: CallPlan,
    /// The trunk it was routed to.
    pub trunk: TrunkId,
    /// Journaled Call-ID.
    pub call_id: String,
    /// DTMF keys pressed.
    pub digits: String,
    /// Where it is.
    pub phase: Phase,
    /// What the answered call plays and what its keys did.
    pub listen: Listening,
    /// The order of its journal write among all attempts' (0: never journaled), so that
    /// its commit tells the scheduler which earlier answers the store has (see
    /// [`crate::dialer::scheduler::Scheduler::journaled`]).
    pub journal_seq: u64,
    /// When it was picked: its journal commit's delay sets how far ahead trunks pick.
    pub picked: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_move_forward_only() {
        let t0 = Instant::now();
        let p = Phase::Journaling.journaled(7).unwrap();
        let p = p.journaled(8).unwrap_err(); // twice: refused, unchanged
        assert_eq!(p.attempt(), Some(7));
        let p = p.sending(t0).unwrap();
        assert!(p.sent());
        let mut p = p.placed(CallHandle(1)).unwrap();
        p.progress(t0 + Duration::from_millis(300));
        p.progress(t0 + Duration::from_millis(900));
        let p = p.answered(t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(p.active_state(), Some(ActiveState::Answered));
        let mut p = p;
        p.record_played(400);
        p.record_played(250); // a later, smaller count does not lower it
        let f = p.close(t0 + Duration::from_secs(5));
        assert_eq!(f.played_permille, Some(400));
        assert_eq!(f.pdd, Some(Duration::from_millis(300)));
        assert_eq!(f.duration, Some(Duration::from_secs(3)));
        assert!(Phase::Journaling.placed(CallHandle(1)).is_err());
    }
}
