//! One-shot calls (`dialer call`): a number, a trunk and a prompt, placed by the same call
//! runner as campaign attempts — the trunk's CPS limiter, channel count and burst cap, the
//! driver's INVITE placement, the media path — but with no campaign, no journal and no
//! retry. The reply to [`Command::Call`](super::Command::Call) comes when the call has ended,
//! as a [`CallReport`].
//!
//! A direct call waits in `direct_waiting` until its trunk can take it (a channel free,
//! the limiter ready, fewer than the burst cap picked but unsent), then joins the trunk's
//! send queue as a queued attempt; from there it is an [`Attempt`] like any other until
//! [`DialerCore::finish`], which hands it back here instead of settling it.

use std::time::{Duration, Instant};

use super::attempt::{Attempt, CallPlan, Phase};
use super::dispatch::local_end;
use super::invite::{credentials, domain, offer};
use super::io::{CallToken, CampaignId, Reply, ReplyTo, TrunkId};
use super::DialerCore;
use crate::dialer::retry::RetryPolicy;
use crate::dialer::scheduler::DueItem;
use crate::model::{NumberType, Outcome};
use crate::sip::endpoint::{CallEnd, CallParams};

/// The campaign id a direct call's attempt carries: no store campaign has it.
const NO_CAMPAIGN: CampaignId = CampaignId(i64::MIN);

/// A call to place once, outside any campaign.
#[derive(Debug, Clone)]
pub struct DirectCall {
    /// The trunk (by name) whose limits and proxy it uses.
    pub trunk: String,
    /// The callee, written into the Request-URI as given (no E.164 reading).
    pub number: String,
    /// The prompt (a path the media path opens) played on answer.
    pub prompt: String,
    /// Plays of the prompt.
    pub play_count: u32,
    /// From URI; default `sip:CALLER@DOMAIN` as for campaign calls on the trunk.
    pub from_uri: Option<String>,
    /// Request-URI and To; default `sip:NUMBER@DOMAIN`.
    pub request_uri: Option<String>,
}

/// How a direct call went.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// The number called.
    pub number: String,
    /// Its Call-ID.
    pub call_id: String,
    /// How it ended (the outcome word, final status and reason).
    pub end: CallEnd,
    /// From the INVITE to the first provisional (or final) response.
    pub pdd: Option<Duration>,
    /// From the INVITE to the answer.
    pub answer: Option<Duration>,
    /// From the answer to the end.
    pub duration: Option<Duration>,
    /// RTP packets of the prompt sent.
    pub rtp_packets: u64,
    /// Keys the callee pressed (RFC 4733 and SIP INFO).
    pub dtmf: String,
}

/// What the core keeps of a direct call besides its [`Attempt`].
#[derive(Debug)]
pub(super) struct Direct {
    reply: ReplyTo,
    from_uri: Option<String>,
    request_uri: Option<String>,
    /// When its CPS token was taken (the INVITE left right after).
    invited_at: Option<Instant>,
    /// RTP packets the media path reported.
    packets: u64,
}

impl DialerCore {
    /// Queues a direct call; it is refused at once when no live trunk has that name.
    pub(super) fn queue_direct(&mut self, reply: ReplyTo, req: DirectCall) {
        let known = self.trunk_named(&req.trunk).is_some();
        if !known || self.draining.is_some() {
            let why = format!("no trunk {}", req.trunk);
            let end = local_end(Outcome::Failed, why);
            self.reply(reply, Reply::Called(Box::new(unplaced(&req, end))));
            return;
        }
        self.direct_waiting.push_back((reply, req));
    }

    fn trunk_named(&self, name: &str) -> Option<TrunkId> {
        let i = self
            .trunks
            .iter()
            .position(|s| !s.removed && s.cfg().name == name)?;
        Some(TrunkId(i))
    }

    /// Moves waiting direct calls to their trunk's send queue while it can take them.
    pub(super) fn start_direct(&mut self, now: Instant) {
        while let Some((_, req)) = self.direct_waiting.front() {
            let Some(t) = self.trunk_named(&req.trunk) else {
                let (reply, req) = self.direct_waiting.pop_front().expect("front");
                let end = local_end(Outcome::Failed, "trunk removed");
                self.reply(reply, Reply::Called(Box::new(unplaced(&req, end))));
                continue;
            };
            if !self.trunks[t.0].can_take(now) {
                return;
            }
            let (reply, req) = self.direct_waiting.pop_front().expect("front");
            self.begin_direct(reply, req, t);
        }
    }

    /// Answers every waiting direct call as canceled (shutting down).
    pub(super) fn drop_direct_waiting(&mut self) {
        while let Some((reply, req)) = self.direct_waiting.pop_front() {
            let end = local_end(Outcome::Canceled, "dialer shutting down");
            self.reply(reply, Reply::Called(Box::new(unplaced(&req, end))));
        }
    }

    fn begin_direct(&mut self, reply: ReplyTo, req: DirectCall, t: TrunkId) {
        let slot = &mut self.trunks[t.0];
        slot.trunk.reserve_channel();
        slot.pending += 1;
        let call = self.new_token();
        let call_id = format!("{:016x}{:08x}@dialer", self.ids.next(), call.0 as u32);
        let item = DueItem {
            campaign: NO_CAMPAIGN.0,
            contact: 0,
            number: req.number,
            number_type: NumberType::Unknown,
            attempts: 0,
            excluded: vec![],
        };
        let plan = CallPlan {
            policy: RetryPolicy::default(),
            prompt: req.prompt,
            play_count: req.play_count,
        };
        // Nothing to journal: queued at once (the attempt id is never written anywhere).
        let phase = Phase::Journaling.journaled(0).unwrap_or_else(|p| p);
        let a = Attempt {
            campaign: NO_CAMPAIGN,
            item,
            plan,
            trunk: t,
            call_id,
            digits: String::new(),
            phase,
        };
        self.calls.insert(call, a);
        self.trunks[t.0].send_queue.push_back(call);
        let d = Direct {
            reply,
            from_uri: req.from_uri,
            request_uri: req.request_uri,
            invited_at: None,
            packets: 0,
        };
        self.direct.insert(call, d);
    }

    /// Whether `call` is a direct call.
    pub(super) fn is_direct(&self, call: CallToken) -> bool {
        self.direct.contains_key(&call)
    }

    /// The INVITE of a direct call about to leave (its CPS token taken at `now`).
    pub(super) fn direct_params(
        &mut self,
        now: Instant,
        call: CallToken,
        session: u64,
    ) -> Option<CallParams> {
        let a = self.calls.get(&call)?;
        let d = self.direct.get_mut(&call)?;
        d.invited_at = Some(now);
        let slot = &self.trunks[a.trunk.0];
        let trunk = slot.cfg();
        let domain = domain(trunk);
        let ruri = d
            .request_uri
            .clone()
            .unwrap_or_else(|| format!("sip:{}@{domain}", a.item.number));
        let caller = trunk.caller_id.as_deref().or(trunk.from_user.as_deref());
        let from = d
            .from_uri
            .clone()
            .unwrap_or_else(|| format!("sip:{}@{domain}", caller.unwrap_or("dialer")));
        Some(CallParams {
            proxy: slot.addr,
            request_uri: ruri.clone(),
            to_uri: ruri,
            from_uri: from,
            from_display: None,
            offer: offer(trunk, self.cfg.media_ip, session),
            ring_timeout: Duration::from_secs(trunk.ring_timeout_s.max(1)),
            credentials: credentials(trunk),
            transport: Some(trunk.transport.sip()),
            extra_headers: vec![],
            trunk: Some(trunk.name.clone()),
        })
    }

    /// The media path's packet count for a direct call (the largest reported wins).
    pub(super) fn direct_packets(&mut self, call: CallToken, packets: u64) {
        if let Some(d) = self.direct.get_mut(&call) {
            d.packets = d.packets.max(packets);
        }
    }

    /// Ends a direct call: frees what it held (as for any attempt) and replies with its
    /// report instead of settling it.
    pub(super) fn finish_direct(
        &mut self,
        now: Instant,
        call: CallToken,
        mut a: Attempt,
        end: CallEnd,
    ) {
        let Some(d) = self.direct.remove(&call) else {
            return;
        };
        let answered_at = match &a.phase {
            Phase::Playing { answered_at, .. } | Phase::Ending { answered_at, .. } => {
                Some(*answered_at)
            }
            _ => None,
        };
        let facts = self.release(now, call, &mut a, &end);
        let since_invite = |t: Instant| d.invited_at.map(|i| t.saturating_duration_since(i));
        let pdd = facts
            .pdd
            .or_else(|| (end.status != 0).then(|| since_invite(now)).flatten());
        let report = CallReport {
            number: a.item.number,
            call_id: a.call_id,
            end,
            pdd,
            answer: answered_at.and_then(since_invite),
            duration: facts.duration,
            rtp_packets: d.packets,
            dtmf: a.digits,
        };
        self.reply(d.reply, Reply::Called(Box::new(report)));
    }
}

/// The report of a call that never left.
fn unplaced(req: &DirectCall, end: CallEnd) -> CallReport {
    CallReport {
        number: req.number.clone(),
        call_id: String::new(),
        end,
        pdd: None,
        answer: None,
        duration: None,
        rtp_packets: 0,
        dtmf: String::new(),
    }
}
