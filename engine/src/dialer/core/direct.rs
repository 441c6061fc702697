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
use crate::model::heard::Keys;
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
            let horizon = self.journals.horizon(now);
            if !self.trunks[t.0].can_take(now, horizon) {
                return;
            }
            let (reply, req) = self.direct_waiting.pop_front().expect("front");
            self.begin_direct(reply, req, t, now);
        }
    }

    /// Answers every waiting direct call as canceled (shutting down).
    pub(super) fn drop_direct_waiting(&mut self) {
        while let Some((reply, req)) = self.direct_waiting.pop_front() {
            let end = local_end(Outcome::Canceled, "dialer shutting down");
            self.reply(reply, Reply::Called(Box::new(unplaced(&req, end))));
        }
    }

    fn begin_direct(&mut self, reply: ReplyTo, req: DirectCall, t: TrunkId, now: Instant) {
        let slot = &mut self.trunks[t.0];
        slot.trunk.reserve_channel();
        slot.pending += 1;
        let call = self.new_token();
        let call_id = super::dispatch::call_id(self.ids.next(), call.0 as u32);
        let item = DueItem {
            campaign: NO_CAMPAIGN.0,
            contact: 0,
            number: req.number,
            number_type: NumberType::Unknown,
            attempts: 0,
            excluded: vec![],
            message: None,
        };
        let plan = CallPlan {
            policy: RetryPolicy::default(),
            prompt: req.prompt,
            play_count: req.play_count,
            // Keys are reported, not acted on: `dialer call` has no campaign to confirm.
            keys: Keys {
                confirm: None,
                repeat: None,
                optout: None,
                max_repeats: 0,
            },
            pre_roll: None,
            post_roll: None,
            confirmed_prompt: None,
            until: Default::default(),
            amd: None,
            amd_config: None,
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
            listen: Default::default(),
            journal_seq: 0,
            picked: now,
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
            .unwrap_or_else(|| ["sip:", &a.item.number, "@", &domain].concat());
        let caller = trunk.caller_id.as_deref().or(trunk.from_user.as_deref());
        let from = d
            .from_uri
            .clone()
            .unwrap_or_else(|| ["sip:", caller.unwrap_or("dialer"), "@", &domain].concat());
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
            trunk: Some(slot.trunk.metrics.label()),
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::net::{IpAddr, Ipv4Addr};

    use super::super::tests_support::trunk_cfg;
    use super::super::{Action, Command, CoreConfig, DialerCore, DriverNote, StoreReply};
    use super::*;
    use crate::dialer::call_media::MediaNote;
    use crate::sip::endpoint::{CallHandle, Event, Hangup};
    use crate::sip::sdp::{Direction, NegotiatedMedia};

    /// What reaches the core later on the virtual clock.
    enum Input {
        Sip(Event),
        Media(MediaNote),
    }

    fn answer() -> NegotiatedMedia {
        NegotiatedMedia {
            remote_rtp: "127.0.0.1:40000".parse().unwrap(),
            remote_rtcp: None,
            rtcp_mux: true,
            payload_type: 8,
            codec: "PCMA",
            clock_rate: 8000,
            fmtp: None,
            ptime_ms: 20,
            maxptime_ms: None,
            telephone_event_pt: None,
            direction: Direction::SendRecv,
            srtp: None,
        }
    }

    fn req(number: &str) -> DirectCall {
        DirectCall {
            trunk: "t".into(),
            number: number.into(),
            prompt: "p.wav".into(),
            play_count: 1,
            from_uri: Some("sip:me@example.org".into()),
            request_uri: None,
        }
    }

    /// Ten one-shot calls on a trunk of 4 CPS and 3 channels, on virtual time: the callee
    /// answers after 100 ms, the prompt plays 1 s (50 packets). Never more than 3 calls at
    /// once, never more than 4 INVITEs in any 1 s window, every call reported answered with
    /// its packets, answer delay and Call-ID, and nothing journaled.
    #[test]
    fn direct_calls_keep_the_trunk_limits_and_report() {
        let t0 = Instant::now();
        let cfg = CoreConfig {
            media_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            seed: 1,
        };
        let trunk = (trunk_cfg("t", 4.0, 3), "127.0.0.1:5060".parse().unwrap());
        let mut core = DialerCore::new(cfg, vec![trunk], t0);
        let mut now = t0;
        for i in 0..10 {
            core.handle_command(now, 0, ReplyTo(i), Command::Call(Box::new(req("100"))));
        }
        let mut later: BTreeMap<(Instant, u64), Input> = BTreeMap::new();
        let (mut seq, mut next_handle) = (0u64, 1u64);
        let (mut invites, mut reports, mut live, mut peak) = (vec![], vec![], 0usize, 0usize);
        let mut tokens: HashMap<CallHandle, u64> = HashMap::new();
        for _ in 0..10_000 {
            while let Some(a) = core.poll_action() {
                match a {
                    Action::LoadCampaigns => {
                        core.handle_store(now, 0, StoreReply::Campaigns(vec![]));
                    }
                    Action::Invite { call, params, .. } => {
                        assert_eq!(params.from_uri, "sip:me@example.org");
                        assert_eq!(params.request_uri, "sip:100@127.0.0.1");
                        invites.push(now);
                        let h = CallHandle(next_handle);
                        next_handle += 1;
                        tokens.insert(h, call.0);
                        live += 1;
                        peak = peak.max(live);
                        seq += 1;
                        let ev = Event::Answered {
                            call: h,
                            media: answer(),
                        };
                        later.insert((now + Duration::from_millis(100), seq), Input::Sip(ev));
                        core.handle_driver(now, 0, DriverNote::Placed(call, h));
                    }
                    Action::StartMedia { call, .. } => {
                        seq += 1;
                        let n = MediaNote::Finished {
                            token: call.0,
                            packets: 50,
                        };
                        later.insert((now + Duration::from_secs(1), seq), Input::Media(n));
                    }
                    Action::Hangup(h) => {
                        seq += 1;
                        let end = CallEnd {
                            outcome: Outcome::Answered,
                            status: 200,
                            reason: "OK".into(),
                            hangup: Hangup::Local,
                            retry_after: None,
                        };
                        let ev = Event::Ended { call: h, end };
                        later.insert((now + Duration::from_millis(20), seq), Input::Sip(ev));
                    }
                    Action::StopMedia(call) => {
                        seq += 1;
                        let n = MediaNote::Stopped {
                            token: call.0,
                            packets: 50,
                            played_permille: 1000,
                        };
                        later.insert((now, seq), Input::Media(n));
                    }
                    Action::Reply(_, Reply::Called(r)) => {
                        live -= 1;
                        reports.push(*r);
                    }
                    Action::JournalBegin(..)
                    | Action::JournalAnswered { .. }
                    | Action::JournalFinish(..) => panic!("a direct call was journaled"),
                    _ => {}
                }
            }
            if reports.len() == 10 {
                break;
            }
            let next_in = later.keys().next().map(|k| k.0);
            let next = [next_in, core.poll_timeout()].into_iter().flatten().min();
            now = next.expect("something to wait for").max(now);
            if let Some(e) = later.first_entry().filter(|e| e.key().0 <= now) {
                match e.remove() {
                    Input::Sip(ev) => core.handle_sip(now, 0, ev),
                    Input::Media(n) => core.handle_media(now, 0, n),
                }
            } else {
                core.handle_timeout(now, 0);
            }
        }
        assert_eq!(reports.len(), 10, "every call reported");
        assert!(peak <= 3, "at most 3 calls at once, saw {peak}");
        for w in invites.windows(5) {
            assert!(w[4] - w[0] >= Duration::from_secs(1), "over 4 CPS: {w:?}");
        }
        let ids: std::collections::HashSet<&str> =
            reports.iter().map(|r| r.call_id.as_str()).collect();
        assert_eq!(ids.len(), 10, "distinct Call-IDs");
        for r in &reports {
            assert_eq!((r.end.outcome, r.rtp_packets), (Outcome::Answered, 50));
            assert_eq!(r.answer, Some(Duration::from_millis(100)));
            assert_eq!(r.duration, Some(Duration::from_millis(1020)));
        }
        assert_eq!(core.calls_in_progress(), 0);
    }

    /// Sixty calls queued at once on a trunk of 1,000 CPS: one pass of the core hands over
    /// a burst of 20 INVITEs (20 ms of tokens), and the next burst is due 20 ms later.
    #[test]
    fn a_backlog_leaves_in_bursts_of_one_pass() {
        let t0 = Instant::now();
        let cfg = CoreConfig {
            media_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            seed: 1,
        };
        let trunk = (
            trunk_cfg("t", 1000.0, 100),
            "127.0.0.1:5060".parse().unwrap(),
        );
        let mut core = DialerCore::new(cfg, vec![trunk], t0);
        for i in 0..60 {
            core.handle_command(t0, 0, ReplyTo(i), Command::Call(Box::new(req("100"))));
        }
        let mut handle = 0;
        // One pass: every action the core has now, then the INVITEs noted as placed.
        let mut pass = |core: &mut DialerCore, now: Instant| {
            let mut placed = vec![];
            while let Some(a) = core.poll_action() {
                match a {
                    Action::LoadCampaigns => {
                        core.handle_store(now, 0, StoreReply::Campaigns(vec![]));
                    }
                    Action::Invite { call, .. } => {
                        handle += 1;
                        placed.push(super::super::Input::Driver(DriverNote::Placed(
                            call,
                            CallHandle(handle),
                        )));
                    }
                    _ => {}
                }
            }
            let n = placed.len();
            core.handle_all(now, 0, placed);
            n
        };
        assert_eq!(pass(&mut core, t0), 20);
        let next = core.poll_timeout().expect("the next burst's wake-up");
        assert!(next > t0 + Duration::from_millis(19), "{:?}", next - t0);
        assert!(next <= t0 + Duration::from_millis(20), "{:?}", next - t0);
        // Nothing leaves between bursts, however often the core is woken.
        core.handle_timeout(t0 + Duration::from_millis(10), 0);
        assert_eq!(pass(&mut core, t0 + Duration::from_millis(10)), 0);
        let at = t0 + Duration::from_millis(20);
        core.handle_timeout(at, 0);
        assert_eq!(pass(&mut core, at), 20);
    }

    /// A call for a trunk the core does not have is answered at once as failed.
    #[test]
    fn unknown_trunk_is_refused() {
        let t0 = Instant::now();
        let cfg = CoreConfig {
            media_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            seed: 1,
        };
        let mut core = DialerCore::new(cfg, vec![], t0);
        let mut r = req("100");
        r.trunk = "nope".into();
        core.handle_command(t0, 0, ReplyTo(1), Command::Call(Box::new(r)));
        let got = std::iter::from_fn(|| core.poll_action()).find_map(|a| match a {
            Action::Reply(ReplyTo(1), Reply::Called(r)) => Some(r),
            _ => None,
        });
        let r = got.expect("refused at once");
        assert_eq!((r.end.outcome, r.end.status), (Outcome::Failed, 0));
    }
}
