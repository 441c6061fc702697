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
use engine::sip::transaction::{
    ClientAction, ClientTx, ServerAction, ServerActions, ServerState, ServerTx, Wire,
};
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
        engine::media::xorshift64_star(&mut self.rng)
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
            (Method::Ack, Some(s)) => self.on_ack(now, s),
            (Method::Ack, None) => {}
            (Method::Cancel, Some(s)) => {
                let w = MessageWriter::response_to(req, 200, "OK", None).finish();
                self.respond(from, w);
                self.on_cancel(now, s);
            }
            (Method::Bye, Some(s)) => {
                let w = MessageWriter::response_to(req, 200, "OK", None).finish();
                self.respond(from, w);
                self.on_bye(now, s);
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

    /// The caller's ACK: an answered call is confirmed, gets its callee's script (if the
    /// mix picks one) and perhaps our hang-up time.
    fn on_ack(&mut self, now: Instant, s: u64) {
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

    /// The caller's CANCEL (answered 200 already): a ringing call ends with 487.
    fn on_cancel(&mut self, now: Instant, s: u64) {
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

    /// The caller's BYE (answered 200 already): the call ends, forgotten after T64.
    fn on_bye(&mut self, now: Instant, s: u64) {
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
}

mod call;
#[cfg(test)]
mod tests;
mod timers;
mod wire;
