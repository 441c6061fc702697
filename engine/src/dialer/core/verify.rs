//! Verification calls: the citizens' web form proves a number is the resident's by calling
//! it and asking for the code shown on the page ("digita sulla tastiera il codice che vedi
//! sullo schermo"). A verification call is no campaign's attempt: it is not journaled, has
//! no retry, and goes before every campaign on the trunks (it is picked first in
//! [`DialerCore::dispatch`]) while respecting their channels and CPS. The digits come from
//! RFC 4733 ([`MediaNote::Digit`]) or SIP INFO, like a campaign call's.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use metrics::SharedString;
use tracing::debug;

use super::io::{Action, CallToken, Reply, ReplyTo, TrunkId};
use super::timers::Deadline;
use super::DialerCore;
use crate::dialer::call_media::MediaNote;
use crate::dialer::congestion::Signal;
use crate::dialer::core::invite::{credentials, domain, offer};
use crate::dialer::routing::{self, Route};
use crate::dialer::trunk::TrunkConfig;
use crate::media::dtmf::parse_info;
use crate::model::{NumberType, Outcome};
use crate::sip::endpoint::{CallEnd, CallHandle, CallParams, Event};
use crate::sip::sdp::NegotiatedMedia;
use std::net::{IpAddr, SocketAddr};

/// How long a verification may wait for a trunk with capacity before it gives up.
pub const QUEUE_WAIT: Duration = Duration::from_secs(60);
/// How long the callee has, once answered, to key the code (all tries).
pub const KEYING_TIME: Duration = Duration::from_secs(60);
/// How many wrong codes end the call.
pub const MAX_TRIES: u8 = 3;
/// How many times the prompt plays.
const PROMPT_PLAYS: u32 = 3;

/// What the web form asks the dialer to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyRequest {
    /// E.164 number to call (checked by the caller: the tenant's country, no premium).
    pub number: String,
    /// Its type, for routing.
    pub number_type: NumberType,
    /// The code the callee must key (digits only).
    pub code: String,
    /// The prompt to play (a WAV path the media path can open).
    pub prompt: String,
    /// Caller id when the trunk has none (the tenant's).
    pub caller_id: Option<String>,
}

/// How a verification call ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyOutcome {
    /// The callee keyed the code.
    Confirmed,
    /// The callee keyed a wrong code [`MAX_TRIES`] times.
    WrongCode,
    /// Answered, but the code was not keyed in time (or the callee hung up first).
    NotKeyed,
    /// The call was not answered (busy, no answer, rejected, carrier fault).
    NotAnswered(Outcome),
    /// No trunk carries the number, or none had capacity in [`QUEUE_WAIT`].
    NoTrunk,
    /// The dialer is shutting down.
    ShuttingDown,
}

/// What a keyed sequence means against the code: a pure rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyed {
    /// Fewer digits than the code: wait for more.
    Pending,
    /// The code, exactly.
    Right,
    /// As many digits as the code, not the code.
    Wrong,
}

/// Compares what was keyed since the last judgement with the code.
pub fn judge(code: &str, keyed: &str) -> Keyed {
    if keyed.len() < code.len() {
        Keyed::Pending
    } else if keyed == code {
        Keyed::Right
    } else {
        Keyed::Wrong
    }
}

/// The INVITE of a verification call: the trunk's caller id first (as for campaigns),
/// then the tenant's; the trunk's ring timeout.
pub fn verify_params(
    trunk: &TrunkConfig,
    label: SharedString,
    proxy: SocketAddr,
    req: &VerifyRequest,
    media_ip: IpAddr,
    session_id: u64,
) -> CallParams {
    let domain = domain(trunk);
    let caller = trunk
        .caller_id
        .clone()
        .or_else(|| req.caller_id.clone())
        .or_else(|| trunk.from_user.clone())
        .unwrap_or_else(|| "anonymous".into());
    CallParams {
        proxy,
        request_uri: format!("sip:{}@{domain}", req.number),
        to_uri: format!("sip:{}@{domain}", req.number),
        from_uri: format!("sip:{caller}@{domain}"),
        from_display: None,
        offer: offer(trunk, media_ip, session_id),
        ring_timeout: Duration::from_secs(trunk.ring_timeout_s.max(1)),
        credentials: credentials(trunk),
        transport: Some(trunk.transport.sip()),
        extra_headers: vec![],
        trunk: Some(label),
    }
}

/// Where a verification call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Waiting for a trunk with a free channel and a CPS token, since this instant.
    Queued(Instant),
    /// INVITE handed to the driver on this trunk, its CPS token taken at this instant.
    Sending(TrunkId, Instant),
    /// Ringing.
    Ringing(TrunkId, CallHandle),
    /// Answered: the prompt plays and digits are compared.
    Answered(TrunkId, CallHandle),
}

/// One verification in progress.
#[derive(Debug)]
pub(super) struct Verification {
    req: VerifyRequest,
    reply: Option<ReplyTo>,
    step: Step,
    keyed: String,
    wrong: u8,
}

/// The verification calls of a core.
#[derive(Debug, Default)]
pub(super) struct Verifications {
    calls: crate::id_map::IdMap<CallToken, Verification>,
    queue: VecDeque<CallToken>,
}

impl Verifications {
    /// Entries held (calls and queue places), for [`DialerCore::held`].
    pub(super) fn held(&self) -> usize {
        self.calls.len() + self.queue.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    fn token_of(&self, h: CallHandle) -> Option<CallToken> {
        self.calls.iter().find_map(|(t, v)| match v.step {
            Step::Ringing(_, x) | Step::Answered(_, x) if x == h => Some(*t),
            _ => None,
        })
    }
}

impl DialerCore {
    /// A verification request from the facade; the reply comes when it ends.
    pub(super) fn verify(&mut self, now: Instant, reply: ReplyTo, req: VerifyRequest) {
        if self.draining.is_some() {
            self.reply(reply, Reply::Verified(VerifyOutcome::ShuttingDown));
            return;
        }
        let token = self.new_token();
        let v = Verification {
            req,
            reply: Some(reply),
            step: Step::Queued(now),
            keyed: String::new(),
            wrong: 0,
        };
        self.verifies.calls.insert(token, v);
        self.verifies.queue.push_back(token);
        self.timers.set(Deadline::Verify(token), now + QUEUE_WAIT);
    }

    /// Places the queued verifications that a trunk can carry now, before any campaign.
    pub(super) fn dispatch_verifies(&mut self, now: Instant) {
        let mut waiting = VecDeque::new();
        while let Some(token) = self.verifies.queue.pop_front() {
            let Some(v) = self.verifies.calls.get(&token) else {
                continue;
            };
            let horizon = self.journals.horizon(now);
            let avail: Vec<bool> = self
                .trunks
                .iter_mut()
                .map(|s| s.can_take(now, horizon))
                .collect();
            let views: Vec<_> = self
                .trunks
                .iter()
                .enumerate()
                .map(|(i, s)| s.view(!s.trunk.health.is_up(), avail[i]))
                .collect();
            match routing::route(&views, &v.req.number, v.req.number_type) {
                Route::NoRoute => self.end_verify(token, VerifyOutcome::NoTrunk),
                Route::Wait => waiting.push_back(token),
                Route::Trunk(t) => {
                    if !self.trunks[t].trunk.take_token(now) {
                        waiting.push_back(token);
                        continue;
                    }
                    self.place_verify(now, token, TrunkId(t));
                }
            }
        }
        self.verifies.queue = waiting;
        let next = self
            .trunks
            .iter_mut()
            .filter(|s| !s.removed)
            .map(|s| s.trunk.next_ready(now))
            .min();
        match next {
            Some(at) if !self.verifies.queue.is_empty() => self.timers.set(
                Deadline::VerifyWake,
                at.max(now + Duration::from_millis(20)),
            ),
            _ => self.timers.stop(Deadline::VerifyWake),
        }
    }

    fn place_verify(&mut self, now: Instant, token: CallToken, t: TrunkId) {
        let session = self.ids.next() as u32 as u64;
        let call_id = super::dispatch::call_id(self.ids.next(), token.0 as u32);
        let v = self.verifies.calls.get_mut(&token).expect("queued");
        let slot = &mut self.trunks[t.0];
        slot.trunk.reserve_channel();
        let params = verify_params(
            slot.cfg(),
            slot.trunk.metrics.label(),
            slot.addr,
            &v.req,
            self.cfg.media_ip,
            session,
        );
        v.step = Step::Sending(t, now);
        debug!(call = token.0, trunk = t.0, "verification call placed");
        self.actions.push_back(Action::Invite {
            call: token,
            call_id,
            params: Box::new(params),
        });
    }

    /// The driver placed (or failed to place) a verification INVITE; false if `call` is
    /// no verification.
    pub(super) fn verify_placed(
        &mut self,
        now: Instant,
        call: CallToken,
        placed: Result<CallHandle, String>,
    ) -> bool {
        let Some(v) = self.verifies.calls.get_mut(&call) else {
            return false;
        };
        let Step::Sending(t, decided) = v.step else {
            return true;
        };
        let slot = &mut self.trunks[t.0];
        match placed {
            Ok(h) => {
                slot.trunk.stamp_sent(decided, now);
                v.step = Step::Ringing(t, h);
                // From here the trunk's ring timeout bounds the wait.
                self.timers.stop(Deadline::Verify(call));
                if self.draining.is_some() {
                    self.actions.push_back(Action::Hangup(h));
                }
            }
            Err(why) => {
                debug!(error = %why, "verification INVITE not placed");
                slot.trunk.release(now, Signal::Ok);
                self.actions.push_back(Action::ReleasePort(call));
                self.end_verify(call, VerifyOutcome::NotAnswered(Outcome::Failed));
            }
        }
        true
    }

    /// A SIP event of a verification call; false if it is not one (the campaign path
    /// handles it).
    pub(super) fn verify_sip(&mut self, now: Instant, ev: &Event) -> bool {
        let handle = match ev {
            Event::Progress { call, .. }
            | Event::Answered { call, .. }
            | Event::Info { call, .. }
            | Event::Ended { call, .. } => *call,
            _ => return false,
        };
        let Some(token) = self.verifies.token_of(handle) else {
            return false;
        };
        match ev {
            Event::Answered { media, .. } => self.verify_answered(now, token, media),
            Event::Info {
                content_type, body, ..
            } => {
                if let Some(d) = parse_info(content_type, body) {
                    self.verify_digit(token, d.digit);
                }
            }
            Event::Ended { end, .. } => self.verify_ended(now, token, end),
            _ => {}
        }
        true
    }

    fn verify_answered(&mut self, now: Instant, token: CallToken, media: &NegotiatedMedia) {
        let v = self
            .verifies
            .calls
            .get_mut(&token)
            .expect("found by handle");
        let Step::Ringing(t, h) = v.step else {
            return;
        };
        v.step = Step::Answered(t, h);
        let latch = self.trunks[t.0].cfg().media_latch;
        self.actions.push_back(Action::StartMedia {
            call: token,
            media: Box::new(media.clone()),
            prompt: v.req.prompt.clone(),
            play_count: PROMPT_PLAYS,
            latch,
        });
        self.timers.set(Deadline::Verify(token), now + KEYING_TIME);
    }

    fn verify_digit(&mut self, token: CallToken, digit: char) {
        let Some(v) = self.verifies.calls.get_mut(&token) else {
            return;
        };
        if v.reply.is_none() || !matches!(v.step, Step::Answered(..)) {
            return;
        }
        v.keyed.push(digit);
        match judge(&v.req.code, &v.keyed) {
            Keyed::Pending => {}
            Keyed::Right => self.decide(token, VerifyOutcome::Confirmed),
            Keyed::Wrong => {
                v.keyed.clear();
                v.wrong += 1;
                if v.wrong >= MAX_TRIES {
                    self.decide(token, VerifyOutcome::WrongCode);
                }
            }
        }
    }

    /// Replies now and hangs up; the call's end only frees its resources.
    fn decide(&mut self, token: CallToken, outcome: VerifyOutcome) {
        let Some(v) = self.verifies.calls.get_mut(&token) else {
            return;
        };
        if let Some(to) = v.reply.take() {
            self.actions
                .push_back(Action::Reply(to, Reply::Verified(outcome)));
        }
        if let Step::Ringing(_, h) | Step::Answered(_, h) = v.step {
            self.actions.push_back(Action::Hangup(h));
        }
    }

    fn verify_ended(&mut self, now: Instant, token: CallToken, end: &CallEnd) {
        let Some(v) = self.verifies.calls.get(&token) else {
            return;
        };
        let (t, answered) = match v.step {
            Step::Ringing(t, _) => (t, false),
            Step::Answered(t, _) => (t, true),
            _ => return,
        };
        let signal = Signal::of_end(true, end.status, end.retry_after);
        self.trunks[t.0].trunk.release(now, signal);
        if answered {
            self.actions.push_back(Action::StopMedia(token));
        }
        self.actions.push_back(Action::ReleasePort(token));
        let outcome = if answered {
            VerifyOutcome::NotKeyed
        } else {
            VerifyOutcome::NotAnswered(end.outcome)
        };
        self.end_verify(token, outcome);
    }

    /// A media note of a verification call; false if it is not one.
    pub(super) fn verify_media(&mut self, note: &MediaNote) -> bool {
        #[allow(unreachable_patterns)] // other notes (recordings, AMD) concern no verification
        let (token, digit) = match note {
            MediaNote::Digit { token, digit } => (CallToken(*token), Some(*digit)),
            MediaNote::Finished { token, .. } | MediaNote::Stopped { token, .. } => {
                (CallToken(*token), None)
            }
            _ => return false,
        };
        // A Stopped note that arrives after the verification ended finds nothing here and
        // is ignored by the campaign path too (no attempt has this token).
        if !self.verifies.calls.contains_key(&token) {
            return false;
        }
        if let Some(d) = digit {
            self.verify_digit(token, d);
        }
        true
    }

    /// The verification's deadline passed: still queued (no trunk in time) or answered and
    /// not keyed in time.
    pub(super) fn verify_expired(&mut self, token: CallToken) {
        let Some(v) = self.verifies.calls.get(&token) else {
            return;
        };
        match v.step {
            Step::Queued(_) => {
                self.verifies.queue.retain(|x| *x != token);
                self.end_verify(token, VerifyOutcome::NoTrunk);
            }
            Step::Answered(..) | Step::Ringing(..) => {
                self.decide(token, VerifyOutcome::NotKeyed);
            }
            Step::Sending(..) => {}
        }
    }

    /// Hangs up every verification call (shutdown) and answers the queued ones.
    pub(super) fn stop_verifies(&mut self) {
        let tokens: Vec<CallToken> = self.verifies.calls.keys().copied().collect();
        for t in tokens {
            match self.verifies.calls[&t].step {
                Step::Queued(_) => self.end_verify(t, VerifyOutcome::ShuttingDown),
                _ => self.decide(t, VerifyOutcome::ShuttingDown),
            }
        }
        self.verifies.queue.clear();
    }

    /// Forgets a verification, replying if nobody was told yet.
    fn end_verify(&mut self, token: CallToken, outcome: VerifyOutcome) {
        self.timers.stop(Deadline::Verify(token));
        if let Some(v) = self.verifies.calls.remove(&token) {
            if let Some(to) = v.reply {
                self.actions
                    .push_back(Action::Reply(to, Reply::Verified(outcome)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::io::{Command, DriverNote};
    use super::super::tests_support::trunk_cfg;
    use super::super::CoreConfig;
    use super::*;
    use crate::sip::endpoint::Hangup;
    use std::net::Ipv4Addr;

    const WALL: i64 = 1_800_000_000_000;

    #[test]
    fn judge_waits_for_all_digits_then_compares() {
        assert_eq!(judge("4821", ""), Keyed::Pending);
        assert_eq!(judge("4821", "482"), Keyed::Pending);
        assert_eq!(judge("4821", "4821"), Keyed::Right);
        assert_eq!(judge("4821", "4822"), Keyed::Wrong);
        assert_eq!(judge("4821", "48211"), Keyed::Wrong);
    }

    fn core(channels: u32, t0: Instant) -> DialerCore {
        let cfg = CoreConfig {
            media_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            seed: 3,
        };
        let addr: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let mut c = DialerCore::new(cfg, vec![(trunk_cfg("a", 10.0, channels), addr)], t0);
        while c.poll_action().is_some() {}
        c
    }

    fn request() -> VerifyRequest {
        VerifyRequest {
            number: "+393331234567".into(),
            number_type: NumberType::Mobile,
            code: "4821".into(),
            prompt: "verifica.wav".into(),
            caller_id: Some("+390771000000".into()),
        }
    }

    fn drain(c: &mut DialerCore) -> Vec<Action> {
        std::iter::from_fn(|| c.poll_action()).collect()
    }

    fn media() -> NegotiatedMedia {
        NegotiatedMedia {
            remote_rtp: "127.0.0.1:40000".parse().unwrap(),
            remote_rtcp: None,
            rtcp_mux: false,
            payload_type: 8,
            codec: "PCMA",
            clock_rate: 8000,
            fmtp: None,
            ptime_ms: 20,
            maxptime_ms: None,
            telephone_event_pt: Some(101),
            direction: crate::sip::sdp::Direction::SendRecv,
            srtp: None,
        }
    }

    /// Requests a verification and answers its call; returns the call's token and handle.
    fn answered(c: &mut DialerCore, t0: Instant) -> (CallToken, CallHandle) {
        c.handle_command(t0, WALL, ReplyTo(9), Command::Verify(Box::new(request())));
        let acts = drain(c);
        let (token, params) = acts
            .into_iter()
            .find_map(|a| match a {
                Action::Invite { call, params, .. } => Some((call, params)),
                _ => None,
            })
            .expect("the verification INVITE leaves at once");
        assert_eq!(params.request_uri, "sip:+393331234567@127.0.0.1");
        assert!(params.from_uri.starts_with("sip:+390771000000@"));
        let h = CallHandle(77);
        c.handle_driver(t0, WALL, DriverNote::Placed(token, h));
        let ev = Event::Answered {
            call: h,
            media: media(),
        };
        c.handle_sip(t0, WALL, ev);
        let acts = drain(c);
        assert!(
            acts.iter().any(|a| matches!(a,
            Action::StartMedia { call, prompt, .. } if *call == token && prompt == "verifica.wav"))
        );
        (token, h)
    }

    fn verdict(acts: &[Action]) -> Option<VerifyOutcome> {
        acts.iter().find_map(|a| match a {
            Action::Reply(ReplyTo(9), Reply::Verified(o)) => Some(o.clone()),
            _ => None,
        })
    }

    fn key(c: &mut DialerCore, token: CallToken, digits: &str, t: Instant) -> Vec<Action> {
        for d in digits.chars() {
            let note = MediaNote::Digit {
                token: token.0,
                digit: d,
            };
            c.handle_media(t, WALL, note);
        }
        drain(c)
    }

    #[test]
    fn the_right_code_by_rfc4733_confirms_and_hangs_up() {
        let t0 = Instant::now();
        let mut c = core(2, t0);
        let (token, h) = answered(&mut c, t0);
        let acts = key(&mut c, token, "482", t0);
        assert_eq!(verdict(&acts), None);
        let acts = key(&mut c, token, "1", t0);
        assert_eq!(verdict(&acts), Some(VerifyOutcome::Confirmed));
        assert!(acts
            .iter()
            .any(|a| matches!(a, Action::Hangup(x) if *x == h)));
        let end = CallEnd {
            outcome: Outcome::Answered,
            status: 200,
            reason: "OK".into(),
            hangup: Hangup::Local,
            retry_after: None,
        };
        c.handle_sip(t0, WALL, Event::Ended { call: h, end });
        let acts = drain(&mut c);
        assert!(acts
            .iter()
            .any(|a| matches!(a, Action::StopMedia(x) if *x == token)));
        assert_eq!(verdict(&acts), None, "one reply only");
        assert_eq!(c.snapshot(t0).trunks[0].active, 0, "channel freed");
    }

    #[test]
    fn three_wrong_codes_fail_and_info_digits_count() {
        let t0 = Instant::now();
        let mut c = core(2, t0);
        let (token, h) = answered(&mut c, t0);
        assert_eq!(verdict(&key(&mut c, token, "1111", t0)), None);
        assert_eq!(verdict(&key(&mut c, token, "2222", t0)), None);
        for d in ["9", "9", "9"] {
            let ev = Event::Info {
                call: h,
                content_type: "application/dtmf-relay".into(),
                body: format!("Signal={d}\r\nDuration=160\r\n").into_bytes(),
            };
            c.handle_sip(t0, WALL, ev);
        }
        assert_eq!(verdict(&drain(&mut c)), None);
        assert_eq!(
            verdict(&key(&mut c, token, "9", t0)),
            Some(VerifyOutcome::WrongCode)
        );
    }

    #[test]
    fn not_keyed_in_time_ends_the_call() {
        let t0 = Instant::now();
        let mut c = core(2, t0);
        let (_, h) = answered(&mut c, t0);
        let later = t0 + KEYING_TIME;
        c.handle_timeout(later, WALL + 60_000);
        let acts = drain(&mut c);
        assert_eq!(verdict(&acts), Some(VerifyOutcome::NotKeyed));
        assert!(acts
            .iter()
            .any(|a| matches!(a, Action::Hangup(x) if *x == h)));
    }

    #[test]
    fn a_full_trunk_queues_the_verification_until_it_gives_up() {
        let t0 = Instant::now();
        let mut c = core(1, t0);
        let _ = answered(&mut c, t0);
        let other = ReplyTo(10);
        c.handle_command(t0, WALL, other, Command::Verify(Box::new(request())));
        let acts = drain(&mut c);
        assert!(!acts.iter().any(|a| matches!(a, Action::Invite { .. })));
        c.handle_timeout(t0 + QUEUE_WAIT, WALL + 60_000);
        let acts = drain(&mut c);
        let got = acts.iter().find_map(|a| match a {
            Action::Reply(to, Reply::Verified(o)) if *to == other => Some(o.clone()),
            _ => None,
        });
        assert_eq!(got, Some(VerifyOutcome::NoTrunk));
    }
}
