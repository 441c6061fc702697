//! A sans-IO SIP UAS for the fake carrier, built on the engine's codec and RFC 3261 server
//! transactions.
//!
//! Each INVITE gets a disposition drawn from the configured mix: answer (100, 180, then 200
//! with an SDP answer after the ring delay, retransmitted until the ACK), busy (486),
//! reject (any code), or no answer (ring until the caller CANCELs: 200 to the CANCEL, 487 to
//! the INVITE). A share of answered callees hang up first (our BYE). A BYE from the caller
//! ends the call with 200. Per call it keeps the INVITE bytes (to build responses), one
//! server transaction and a few integers, so it costs less than the dialer it measures.
//!
//! Like the engine, it never reads a clock or touches a socket: `handle_datagram(now, ..)`,
//! `handle_timeout(now)`, then drain `poll_transmit` / `poll_event` / `poll_timeout`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::sip::message::{parse, Message, Request};
use engine::sip::timer::TimerConfig;
use engine::sip::transaction::{ClientAction, ClientTx, ServerAction, ServerState, ServerTx, Wire};
use engine::sip::{sdp, HeaderName, MessageWriter, Method};

use crate::callee::{info_body, Callee, CalleeMix, Step, Via};

/// What the carrier does with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// 200 OK after the ring delay.
    Answer,
    /// 486 Busy Here after the ring delay.
    Busy,
    /// Ring until the caller gives up.
    NoAnswer,
    /// This final status after the ring delay.
    Reject(u16),
}

impl Disposition {
    /// A short name for reports.
    pub fn name(self) -> String {
        match self {
            Disposition::Answer => "answer".into(),
            Disposition::Busy => "busy".into(),
            Disposition::NoAnswer => "no_answer".into(),
            Disposition::Reject(c) => format!("reject_{c}"),
        }
    }
}

/// Weights of each disposition (percentages, or any weights).
#[derive(Debug, Clone)]
pub struct Mix {
    /// Weighted choices.
    pub choices: Vec<(Disposition, u32)>,
}

impl Mix {
    fn pick(&self, r: u64) -> Disposition {
        let total: u64 = self.choices.iter().map(|c| u64::from(c.1)).sum();
        if total == 0 {
            return Disposition::Answer;
        }
        let mut x = r % total;
        for (d, w) in &self.choices {
            if x < u64::from(*w) {
                return *d;
            }
            x -= u64::from(*w);
        }
        Disposition::Answer
    }
}

/// Carrier settings.
#[derive(Debug, Clone)]
pub struct UasConfig {
    /// Our SIP address (Contact, Via of our BYEs).
    pub local: SocketAddr,
    /// Where callers must send RTP (one address for every call; RTCP on the port above).
    pub media: SocketAddr,
    /// Disposition weights.
    pub mix: Mix,
    /// Ring delay range (uniform), before the final response.
    pub ring: (Duration, Duration),
    /// Percentage of answered calls the callee hangs up first.
    pub hangup_pct: u32,
    /// When the callee hangs up, after the answer (uniform range).
    pub hangup_after: (Duration, Duration),
    /// Seed of the mix.
    pub seed: u64,
    /// SIP timers.
    pub timers: TimerConfig,
    /// What answered callees do (empty: listen until the caller hangs up).
    pub callees: CalleeMix,
}

/// Who ended an answered call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    /// The caller sent BYE.
    Caller,
    /// We sent BYE.
    Callee,
    /// The caller cancelled before an answer.
    Cancel,
    /// A final non-2xx response ended it.
    Final,
    /// The 2xx was never acknowledged.
    NoAck,
}

impl EndedBy {
    /// Name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            EndedBy::Caller => "caller_bye",
            EndedBy::Callee => "callee_bye",
            EndedBy::Cancel => "cancel",
            EndedBy::Final => "final",
            EndedBy::NoAck => "no_ack",
        }
    }
}

/// What the carrier reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UasEvent {
    /// A new INVITE.
    Offered {
        /// Our serial number for the call.
        call: u64,
        /// Its Call-ID.
        call_id: String,
        /// What we will do.
        disposition: Disposition,
    },
    /// The 2xx was acknowledged; media flows from `rtp_from` (the offer's address).
    Answered {
        /// Serial.
        call: u64,
        /// The offer's RTP address (where the caller sends from, symmetric RTP).
        rtp_from: Option<SocketAddr>,
        /// Payload type we accepted.
        payload_type: u8,
    },
    /// An answered callee did something of its behaviour (`--callee`): the carrier sends
    /// its audio or RFC 4733 key to `rtp_to`; INFO keys and BYEs the UAS sent itself.
    Step {
        /// Serial.
        call: u64,
        /// What it did.
        step: Step,
        /// The caller's RTP address (from its offer).
        rtp_to: Option<SocketAddr>,
        /// The call's audio payload type.
        payload_type: u8,
    },
    /// The behaviour drawn for an answered call.
    Behaves {
        /// Serial.
        call: u64,
        /// The behaviour.
        callee: Callee,
    },
    /// The call is over.
    Ended {
        /// Serial.
        call: u64,
        /// How.
        by: EndedBy,
    },
}

/// A datagram to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// Destination.
    pub dest: SocketAddr,
    /// Bytes.
    pub bytes: Wire,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Phase {
    Ringing,
    Answered,
    Confirmed,
    Ended,
}

#[derive(Debug)]
struct Call {
    call_id: String,
    invite: Vec<u8>,
    peer: SocketAddr,
    tx: ServerTx,
    disposition: Disposition,
    to_tag: u64,
    phase: Phase,
    final_at: Option<Instant>,
    hangup_at: Option<Instant>,
    bye: Option<ClientTx>,
    payload_type: u8,
    rtp_from: Option<SocketAddr>,
    answer: Option<Arc<[u8]>>,
    /// Forget the call at this time (after the transaction's lifetime).
    forget_at: Option<Instant>,
    /// What its callee does next (`--callee`), in time order.
    steps: VecDeque<(Instant, Step)>,
    /// CSeq of our last in-dialog request (BYE is 1).
    cseq: u32,
}

/// The carrier's SIP side. See the module documentation.
#[derive(Debug)]
pub struct Uas {
    cfg: UasConfig,
    calls: HashMap<u64, Call>,
    by_id: HashMap<String, u64>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<UasEvent>,
    next_serial: u64,
    rng: u64,
}

impl Uas {
    /// A carrier with this configuration.
    pub fn new(cfg: UasConfig) -> Uas {
        Uas {
            rng: cfg.seed | 1,
            cfg,
            calls: HashMap::new(),
            by_id: HashMap::new(),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_serial: 1,
        }
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<UasEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    fn rand(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn uniform(&mut self, (a, b): (Duration, Duration)) -> Duration {
        if b <= a {
            return a;
        }
        let span = (b - a).as_micros() as u64;
        a + Duration::from_micros(self.rand() % (span + 1))
    }

    /// Handles a datagram from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Ok(msg) = parse(bytes) else {
            return;
        };
        match msg {
            Message::Request(req) => self.on_request(now, from, &req, bytes),
            Message::Response(resp) => {
                // Only our BYEs get responses.
                let Ok(id) = resp.headers.call_id() else {
                    return;
                };
                let Some(&serial) = self.by_id.get(id) else {
                    return;
                };
                if let Some(call) = self.calls.get_mut(&serial) {
                    if let Some(tx) = call.bye.as_mut() {
                        let _ = tx.on_response(now, resp.status, Vec::new);
                        if resp.status >= 200 {
                            call.bye = None;
                        }
                    }
                }
            }
        }
    }

    fn respond(&mut self, dest: SocketAddr, bytes: Vec<u8>) {
        self.transmits.push_back(Transmit {
            dest,
            bytes: bytes.into(),
        });
    }

    fn on_request(&mut self, now: Instant, from: SocketAddr, req: &Request<'_>, raw: &[u8]) {
        let call_id = req.headers.call_id().unwrap_or("").to_string();
        let serial = self.by_id.get(&call_id).copied();
        match (req.method, serial) {
            (Method::Invite, None) => self.new_call(now, from, req, raw, call_id),
            (Method::Invite, Some(s)) => {
                let call = self.calls.get_mut(&s).expect("indexed");
                if let Some(w) = call.tx.on_retransmission() {
                    self.transmits.push_back(Transmit {
                        dest: call.peer,
                        bytes: w,
                    });
                }
            }
            (Method::Ack, Some(s)) => {
                let call = self.calls.get_mut(&s).expect("indexed");
                let actions = call.tx.on_ack(now);
                if call.phase == Phase::Answered {
                    call.phase = Phase::Confirmed;
                    let (rtp_from, payload_type) = (call.rtp_from, call.payload_type);
                    self.events.push_back(UasEvent::Answered {
                        call: s,
                        rtp_from,
                        payload_type,
                    });
                    let r = self.rand();
                    if let Some(c) = self.cfg.callees.pick(r).cloned() {
                        let call = self.calls.get_mut(&s).expect("indexed");
                        call.steps = c
                            .script()
                            .into_iter()
                            .map(|(d, st)| (now + d, st))
                            .collect();
                        self.events
                            .push_back(UasEvent::Behaves { call: s, callee: c });
                    }
                    let pct = self.cfg.hangup_pct;
                    if pct > 0 && self.rand() % 100 < u64::from(pct) {
                        let after = self.uniform(self.cfg.hangup_after);
                        let call = self.calls.get_mut(&s).expect("indexed");
                        call.hangup_at = Some(now + after);
                    }
                }
                self.apply(now, s, actions);
                self.schedule(s);
            }
            (Method::Ack, None) => {}
            (Method::Cancel, Some(s)) => {
                let w = MessageWriter::response_to(req, 200, "OK", None).finish();
                self.respond(from, w);
                let call = self.calls.get_mut(&s).expect("indexed");
                if call.phase == Phase::Ringing {
                    call.phase = Phase::Ended;
                    call.final_at = None;
                    let resp = self.final_response(s, 487, "Request Terminated");
                    let call = self.calls.get_mut(&s).expect("indexed");
                    let actions = call.tx.respond(now, 487, resp);
                    self.events.push_back(UasEvent::Ended {
                        call: s,
                        by: EndedBy::Cancel,
                    });
                    self.apply(now, s, actions);
                    self.schedule(s);
                }
            }
            (Method::Bye, Some(s)) => {
                let w = MessageWriter::response_to(req, 200, "OK", None).finish();
                self.respond(from, w);
                let call = self.calls.get_mut(&s).expect("indexed");
                if call.phase != Phase::Ended {
                    call.phase = Phase::Ended;
                    call.hangup_at = None;
                    call.forget_at.get_or_insert(now + self.cfg.timers.t64());
                    self.events.push_back(UasEvent::Ended {
                        call: s,
                        by: EndedBy::Caller,
                    });
                    self.schedule(s);
                }
            }
            (Method::Bye | Method::Cancel, None) => {
                let w =
                    MessageWriter::response_to(req, 481, "Call/Transaction Does Not Exist", None)
                        .finish();
                self.respond(from, w);
            }
            _ => {
                // OPTIONS, INFO, anything else: 200.
                let w = MessageWriter::response_to(req, 200, "OK", Some("carrier")).finish();
                self.respond(from, w);
            }
        }
    }

    fn new_call(
        &mut self,
        now: Instant,
        from: SocketAddr,
        req: &Request<'_>,
        raw: &[u8],
        call_id: String,
    ) {
        let serial = self.next_serial;
        self.next_serial += 1;
        let r = self.rand();
        let disposition = self.cfg.mix.pick(r);
        let to_tag = self.rand();
        // Choose G.711 from the offer; remember where the caller's RTP comes from.
        let (mut payload_type, mut rtp_from, mut ok) = (0u8, None, false);
        if let Ok(offer) = sdp::parse(req.body) {
            if let Some(m) = offer
                .media
                .iter()
                .find(|m| m.media == "audio" && m.port != 0)
            {
                if let Some(pt) = m.payload_types().find(|pt| *pt == 0 || *pt == 8) {
                    payload_type = pt;
                    ok = true;
                }
                if let Some(ip) = offer.connection_for(m).and_then(|c| c.ip) {
                    rtp_from = Some(SocketAddr::new(ip, m.port));
                }
            }
        }
        let disposition = if ok || disposition != Disposition::Answer {
            disposition
        } else {
            Disposition::Reject(488)
        };
        let mut tx = ServerTx::new(true, false, self.cfg.timers);
        let trying = MessageWriter::response_to(req, 100, "Trying", None).finish();
        let mut actions = tx.respond(now, 100, trying.into());
        let ring = self.uniform(self.cfg.ring);
        let call = Call {
            call_id: call_id.clone(),
            invite: raw.to_vec(),
            peer: from,
            tx,
            disposition,
            to_tag,
            phase: Phase::Ringing,
            final_at: (disposition != Disposition::NoAnswer).then_some(now + ring),
            hangup_at: None,
            bye: None,
            payload_type,
            rtp_from,
            answer: None,
            forget_at: None,
            steps: VecDeque::new(),
            cseq: 1,
        };
        self.calls.insert(serial, call);
        self.by_id.insert(call_id.clone(), serial);
        self.events.push_back(UasEvent::Offered {
            call: serial,
            call_id,
            disposition,
        });
        let ringing = self.final_response(serial, 180, "Ringing");
        let call = self.calls.get_mut(&serial).expect("inserted");
        actions.extend(call.tx.respond(now, 180, ringing));
        self.apply(now, serial, actions);
        if ring.is_zero() {
            self.handle_call_timers(now, serial);
        }
        self.schedule(serial);
    }

    /// A response to the call's INVITE with our To tag (and Contact, and SDP for a 2xx).
    fn final_response(&mut self, serial: u64, status: u16, reason: &str) -> Wire {
        let local = self.cfg.local;
        let media = self.cfg.media;
        let call = self.calls.get_mut(&serial).expect("call");
        let Ok(Message::Request(req)) = parse(&call.invite) else {
            return Arc::from(&b""[..]);
        };
        let tag = format!("{:x}", call.to_tag);
        let mut w = MessageWriter::response_to(&req, status, reason, Some(&tag));
        if status < 300 {
            w.push_header("Contact", format_args!("<sip:carrier@{local}>"));
        }
        if (200..300).contains(&status) {
            let pt = call.payload_type;
            let name = if pt == 8 { "PCMA" } else { "PCMU" };
            let ip = media.ip();
            let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
            let body = format!(
                "v=0\r\no=carrier {0} 1 IN {fam} {ip}\r\ns=-\r\nc=IN {fam} {ip}\r\nt=0 0\r\n\
                 m=audio {1} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {name}/8000\r\n\
                 a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n\
                 a=sendrecv\r\n",
                serial,
                media.port()
            );
            w.finish_with_body(Some("application/sdp"), body.as_bytes())
                .into()
        } else {
            w.finish().into()
        }
    }

    fn apply(&mut self, _now: Instant, serial: u64, actions: Vec<ServerAction>) {
        let Some(call) = self.calls.get_mut(&serial) else {
            return;
        };
        let peer = call.peer;
        let mut no_ack = false;
        for a in actions {
            match a {
                ServerAction::Send(bytes) => {
                    self.transmits.push_back(Transmit { dest: peer, bytes })
                }
                ServerAction::NoAck => no_ack = true,
                ServerAction::Terminated => {}
            }
        }
        if no_ack {
            let call = self.calls.get_mut(&serial).expect("call");
            if call.phase == Phase::Answered {
                call.phase = Phase::Ended;
                self.events.push_back(UasEvent::Ended {
                    call: serial,
                    by: EndedBy::NoAck,
                });
            }
        }
    }

    fn next_deadline(call: &Call) -> Option<Instant> {
        [
            call.final_at,
            call.hangup_at,
            call.steps.front().map(|(t, _)| *t),
            call.tx.next_timeout(),
            call.bye.as_ref().and_then(|b| b.next_timeout()),
            call.forget_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn schedule(&mut self, serial: u64) {
        if let Some(call) = self.calls.get(&serial) {
            if let Some(t) = Self::next_deadline(call) {
                self.timers.push(Reverse((t, serial)));
            }
        }
    }

    /// Handles every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((t, serial))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(call) = self.calls.get(&serial) else {
                continue;
            };
            // Stale heap entries (a deadline that moved) are skipped cheaply.
            if Self::next_deadline(call).is_none_or(|d| d > now) {
                continue;
            }
            self.handle_call_timers(now, serial);
            self.schedule(serial);
        }
    }

    fn handle_call_timers(&mut self, now: Instant, serial: u64) {
        let call = self.calls.get_mut(&serial).expect("call");
        if call.final_at.is_some_and(|t| t <= now) {
            call.final_at = None;
            let (status, reason) = match call.disposition {
                Disposition::Answer => (200, "OK"),
                Disposition::Busy => (486, "Busy Here"),
                Disposition::Reject(c) => (c, reason_for(c)),
                Disposition::NoAnswer => (0, ""),
            };
            if status != 0 {
                let resp = self.final_response(serial, status, reason);
                let call = self.calls.get_mut(&serial).expect("call");
                if status < 300 {
                    call.phase = Phase::Answered;
                    call.answer = Some(resp.clone());
                } else {
                    call.phase = Phase::Ended;
                    self.events.push_back(UasEvent::Ended {
                        call: serial,
                        by: EndedBy::Final,
                    });
                }
                let call = self.calls.get_mut(&serial).expect("call");
                let actions = call.tx.respond(now, status, resp);
                self.apply(now, serial, actions);
            }
        }
        self.run_steps(now, serial);
        let local = self.cfg.local;
        let timers = self.cfg.timers;
        let call = self.calls.get_mut(&serial).expect("call");
        if call.hangup_at.is_some_and(|t| t <= now) && call.phase == Phase::Confirmed {
            call.hangup_at = None;
            call.phase = Phase::Ended;
            call.forget_at = Some(now + timers.t64());
            let bye = build_bye(call, local, serial);
            let mut tx = ClientTx::new(now, false, bye.clone(), false, timers);
            let _ = &mut tx;
            call.bye = Some(tx);
            let peer = call.peer;
            self.transmits.push_back(Transmit {
                dest: peer,
                bytes: bye,
            });
            self.events.push_back(UasEvent::Ended {
                call: serial,
                by: EndedBy::Callee,
            });
        }
        let call = self.calls.get_mut(&serial).expect("call");
        let mut sends = Vec::new();
        if let Some(b) = call.bye.as_mut() {
            if b.next_timeout().is_some_and(|t| t <= now) {
                for a in b.on_timeout(now) {
                    match a {
                        ClientAction::Send(w) => sends.push(w),
                        ClientAction::Timeout | ClientAction::Terminated => {}
                        ClientAction::PassUp => {}
                    }
                }
                if b.next_timeout().is_none() {
                    call.bye = None;
                }
            }
        }
        let peer = call.peer;
        for w in sends {
            self.transmits.push_back(Transmit {
                dest: peer,
                bytes: w,
            });
        }
        let call = self.calls.get_mut(&serial).expect("call");
        if call.tx.next_timeout().is_some_and(|t| t <= now) {
            let actions = call.tx.on_timeout(now);
            self.apply(now, serial, actions);
        }
        let call = self.calls.get_mut(&serial).expect("call");
        let done = call.phase == Phase::Ended
            && call.tx.state() == ServerState::Terminated
            && call.bye.is_none()
            && call.forget_at.is_none_or(|t| t <= now);
        if done {
            let id = call.call_id.clone();
            self.calls.remove(&serial);
            self.by_id.remove(&id);
        }
    }
}

impl Uas {
    /// The callee's steps due at `now` (only while the call is up).
    fn run_steps(&mut self, now: Instant, serial: u64) {
        let local = self.cfg.local;
        let call = self.calls.get_mut(&serial).expect("call");
        while call.steps.front().is_some_and(|(t, _)| *t <= now) {
            let (_, step) = call.steps.pop_front().expect("front");
            if call.phase != Phase::Confirmed {
                call.steps.clear();
                break;
            }
            match step {
                Step::HangUp => call.hangup_at = Some(now),
                Step::Key(d, Via::Info) => {
                    call.cseq += 1;
                    let info = build_info(call, local, serial, d);
                    self.transmits.push_back(Transmit {
                        dest: call.peer,
                        bytes: info,
                    });
                }
                Step::Key(_, Via::Rtp) | Step::Greeting(_) | Step::Beep => {}
            }
            self.events.push_back(UasEvent::Step {
                call: serial,
                step,
                rtp_to: call.rtp_from,
                payload_type: call.payload_type,
            });
        }
    }
}

fn reason_for(code: u16) -> &'static str {
    match code {
        403 => "Forbidden",
        404 => "Not Found",
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "Rejected",
    }
}

fn build_bye(call: &Call, local: SocketAddr, serial: u64) -> Wire {
    let Ok(Message::Request(req)) = parse(&call.invite) else {
        return Arc::from(&b""[..]);
    };
    let target = req
        .headers
        .contacts()
        .ok()
        .and_then(|c| c.first().map(|c| c.uri.raw.to_string()))
        .unwrap_or_else(|| format!("sip:{}", call.peer));
    let from = req.headers.first(HeaderName::From).unwrap_or("");
    let to = req.headers.first(HeaderName::To).unwrap_or("");
    let to = to.trim_end_matches(|c: char| c == ';' || c.is_ascii_whitespace());
    MessageWriter::request("BYE", &target)
        .header(
            "Via",
            format_args!("SIP/2.0/UDP {local};branch=z9hG4bKcb{serial:x};rport"),
        )
        .header("Max-Forwards", 70)
        .header("From", format_args!("{to};tag={:x}", call.to_tag))
        .header("To", from)
        .header("Call-ID", &call.call_id)
        .header("CSeq", "1 BYE")
        .finish()
        .into()
}

/// An in-dialog INFO with key `d` (`application/dtmf-relay`), sent once: loopback tests
/// do not lose it, and a lost key is what a real phone's user would press again.
fn build_info(call: &Call, local: SocketAddr, serial: u64, d: char) -> Wire {
    let Ok(Message::Request(req)) = parse(&call.invite) else {
        return Arc::from(&b""[..]);
    };
    let target = req
        .headers
        .contacts()
        .ok()
        .and_then(|c| c.first().map(|c| c.uri.raw.to_string()))
        .unwrap_or_else(|| format!("sip:{}", call.peer));
    let from = req.headers.first(HeaderName::From).unwrap_or("");
    let to = req.headers.first(HeaderName::To).unwrap_or("");
    let to = to.trim_end_matches(|c: char| c == ';' || c.is_ascii_whitespace());
    let cseq = call.cseq;
    MessageWriter::request("INFO", &target)
        .header(
            "Via",
            format_args!("SIP/2.0/UDP {local};branch=z9hG4bKci{serial:x}x{cseq};rport"),
        )
        .header("Max-Forwards", 70)
        .header("From", format_args!("{to};tag={:x}", call.to_tag))
        .header("To", from)
        .header("Call-ID", &call.call_id)
        .header("CSeq", format_args!("{cseq} INFO"))
        .finish_with_body(Some("application/dtmf-relay"), info_body(d).as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::sip::endpoint::{CallParams, Endpoint, EndpointConfig, Event, Hangup};
    use engine::sip::outcome::Outcome;
    use engine::sip::sdp::OfferParams;

    fn cfg(choices: Vec<(Disposition, u32)>, hangup_pct: u32) -> UasConfig {
        UasConfig {
            local: "127.0.0.1:5070".parse().unwrap(),
            media: "127.0.0.1:30000".parse().unwrap(),
            mix: Mix { choices },
            ring: (Duration::from_millis(100), Duration::from_millis(300)),
            hangup_pct,
            hangup_after: (Duration::from_secs(1), Duration::from_secs(2)),
            seed: 7,
            timers: TimerConfig::default(),
            callees: CalleeMix::default(),
        }
    }

    /// Runs the engine's UAC against the carrier on virtual time; returns the UAC's events and
    /// the carrier's.
    fn run(
        uas_cfg: UasConfig,
        calls: usize,
        hang_up_after: Duration,
    ) -> (Vec<Event>, Vec<UasEvent>) {
        let t0 = Instant::now();
        let mut now = t0;
        let uac_addr: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let uas_addr = uas_cfg.local;
        let mut uac = Endpoint::new(EndpointConfig::new(uac_addr));
        let mut uas = Uas::new(uas_cfg);
        for i in 0..calls {
            let ruri = format!("sip:{i}@127.0.0.1:5070");
            uac.place_call(
                now,
                CallParams {
                    proxy: uas_addr,
                    request_uri: ruri.clone(),
                    to_uri: ruri,
                    from_uri: "sip:dialer@127.0.0.1:5060".into(),
                    from_display: None,
                    offer: OfferParams::g711(
                        i as u64,
                        "127.0.0.1".parse().unwrap(),
                        20000 + 2 * i as u16,
                    ),
                    ring_timeout: Duration::from_secs(5),
                    credentials: None,
                    transport: None,
                    extra_headers: Vec::new(),
                    trunk: None,
                },
            );
        }
        let (mut uac_events, mut uas_events) = (Vec::new(), Vec::new());
        let mut answered_at = HashMap::new();
        let end = t0 + Duration::from_secs(120);
        while now < end {
            let mut moved = true;
            while moved {
                moved = false;
                while let Some(t) = uac.poll_transmit() {
                    uas.handle_datagram(now, uac_addr, &t.bytes);
                    moved = true;
                }
                while let Some(t) = uas.poll_transmit() {
                    uac.handle_datagram(
                        now,
                        uas_addr,
                        engine::sip::endpoint::Transport::Udp,
                        &t.bytes,
                    );
                    moved = true;
                }
                while let Some(e) = uac.poll_event() {
                    if let Event::Answered { call, .. } = &e {
                        answered_at.insert(*call, now);
                    }
                    uac_events.push(e);
                    moved = true;
                }
                while let Some(e) = uas.poll_event() {
                    uas_events.push(e);
                }
            }
            let hang: Vec<_> = answered_at
                .iter()
                .filter(|(_, t)| now >= **t + hang_up_after)
                .map(|(c, _)| *c)
                .collect();
            for c in hang {
                answered_at.remove(&c);
                uac.hangup(now, c);
            }
            let next = [uac.poll_timeout(), uas.poll_timeout()]
                .into_iter()
                .flatten()
                .chain(answered_at.values().map(|t| *t + hang_up_after))
                .min();
            let Some(next) = next else { break };
            now = next.max(now);
            uac.handle_timeout(now);
            uas.handle_timeout(now);
        }
        (uac_events, uas_events)
    }

    fn outcomes(ev: &[Event]) -> HashMap<Outcome, usize> {
        let mut m = HashMap::new();
        for e in ev {
            if let Event::Ended { end, .. } = e {
                *m.entry(end.outcome).or_default() += 1;
            }
        }
        m
    }

    #[test]
    fn answer_then_caller_bye() {
        let (uac, uas) = run(
            cfg(vec![(Disposition::Answer, 1)], 0),
            20,
            Duration::from_secs(3),
        );
        assert_eq!(outcomes(&uac).get(&Outcome::Answered), Some(&20));
        let answered = uas
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    UasEvent::Answered {
                        rtp_from: Some(_),
                        payload_type: 0,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(answered, 20);
        let byes = uas
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    UasEvent::Ended {
                        by: EndedBy::Caller,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(byes, 20);
    }

    #[test]
    fn busy_reject_and_no_answer() {
        let (uac, uas) = run(
            cfg(
                vec![
                    (Disposition::Busy, 1),
                    (Disposition::Reject(503), 1),
                    (Disposition::NoAnswer, 1),
                ],
                0,
            ),
            30,
            Duration::from_secs(3),
        );
        let o = outcomes(&uac);
        let n = |k| o.get(&k).copied().unwrap_or(0);
        assert_eq!(
            n(Outcome::Busy) + n(Outcome::Failed) + n(Outcome::Rejected) + n(Outcome::NoAnswer),
            30,
            "{o:?}"
        );
        assert!(n(Outcome::Busy) > 0 && n(Outcome::NoAnswer) > 0, "{o:?}");
        let cancels = uas
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    UasEvent::Ended {
                        by: EndedBy::Cancel,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(cancels, n(Outcome::NoAnswer));
    }

    #[test]
    fn callee_hangs_up_first() {
        let (uac, uas) = run(
            cfg(vec![(Disposition::Answer, 1)], 100),
            10,
            Duration::from_secs(30),
        );
        let remote = uac
            .iter()
            .filter(|e| matches!(e, Event::Ended { end, .. } if end.hangup == Hangup::Remote))
            .count();
        assert_eq!(remote, 10);
        let ours = uas
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    UasEvent::Ended {
                        by: EndedBy::Callee,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(ours, 10);
    }

    #[test]
    fn callee_behaviours_key_by_info_and_rtp_and_hang_up() {
        let mut c = cfg(vec![(Disposition::Answer, 1)], 0);
        c.callees = CalleeMix::parse(&["human;key=1@1;key=2@1.5;hangup@3;info".into()]).unwrap();
        let (uac_ev, uas_ev) = run(c, 1, Duration::from_secs(30));
        let infos: Vec<String> = uac_ev
            .iter()
            .filter_map(|e| match e {
                Event::Info { body, .. } => Some(String::from_utf8_lossy(body).to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(infos.len(), 2, "{uac_ev:?}");
        assert!(infos[0].starts_with("Signal=1") && infos[1].starts_with("Signal=2"));
        assert!(uas_ev.contains(&UasEvent::Ended {
            call: 1,
            by: EndedBy::Callee
        }));
        let mut c = cfg(vec![(Disposition::Answer, 1)], 0);
        c.callees = CalleeMix::parse(&["machine;greeting=1200;beep".into()]).unwrap();
        let (_, uas_ev) = run(c, 1, Duration::from_secs(5));
        let steps: Vec<Step> = uas_ev
            .iter()
            .filter_map(|e| match e {
                UasEvent::Step { step, rtp_to, .. } => {
                    assert!(rtp_to.is_some());
                    Some(*step)
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            steps,
            vec![Step::Greeting(Duration::from_millis(1200)), Step::Beep]
        );
    }
}
