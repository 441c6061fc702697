//! A virtual-time harness: the endpoint under test, a scripted carrier (a minimal UAS built
//! on the engine's own codec) and a link between them that can drop, delay and reorder.
//! The clock jumps to the next thing that happens, so a 32-second Timer B test runs in
//! microseconds and the same seed gives the same run.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use engine::sip::endpoint::{
    CallEnd, CallHandle, CallParams, Endpoint, EndpointConfig, Event, Transport,
};
use engine::sip::sdp::OfferParams;
use engine::sip::{parse, HeaderName, Message, MessageWriter, Method, Request};

pub const DIALER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 5060);
pub const CARRIER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 5080);

/// Deterministic xorshift PRNG for the link.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn chance(&mut self, percent: u32) -> bool {
        (self.next() % 100) < u64::from(percent)
    }
}

/// Link behaviour, both directions.
#[derive(Debug, Clone)]
pub struct Link {
    pub loss_percent: u32,
    pub delay: Duration,
    /// Extra random delay up to this much, which reorders packets.
    pub jitter: Duration,
    pub rng: Rng,
}

impl Link {
    pub fn perfect() -> Self {
        Link {
            loss_percent: 0,
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            rng: Rng(0x9e3779b97f4a7c15),
        }
    }

    pub fn lossy(loss_percent: u32, seed: u64) -> Self {
        Link {
            loss_percent,
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(60),
            rng: Rng(seed | 1),
        }
    }

    fn transit(&mut self) -> Option<Duration> {
        if self.rng.chance(self.loss_percent) {
            return None;
        }
        let j = if self.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_micros(self.rng.next() % self.jitter.as_micros() as u64)
        };
        Some(self.delay + j)
    }
}

/// What the scripted carrier does with an INVITE.
#[derive(Debug, Clone)]
pub enum Step {
    /// Send this response after the delay (relative to the INVITE's arrival).
    Respond {
        after: Duration,
        status: u16,
        sdp: bool,
        to_tag: &'static str,
    },
    /// Send a BYE after the delay (relative to the ACK of the 2xx).
    ByeAfterAck(Duration),
    /// Send a request in the dialog after the ACK: `re-INVITE` or `UPDATE`, with a
    /// Session-Expires value.
    RefreshAfterAck {
        after: Duration,
        method: &'static str,
        session_expires: Option<&'static str>,
    },
}

/// A message the carrier saw, for assertions.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Duration,
    pub method: Option<String>,
    pub status: Option<u16>,
    pub raw: Vec<u8>,
}

/// A minimal UAS: answers per script, retransmits its 2xx until ACKed (RFC 3261 §13.3.1.4),
/// answers CANCEL (200 + 487), BYE (200), and retransmitted requests with its last response.
pub struct Carrier {
    pub script: Vec<Step>,
    /// `Some((realm, nonce))`: challenge the first INVITE with 401.
    pub challenge: Option<(&'static str, &'static str)>,
    /// `Some((realm, nonce))`: challenge the first BYE with 407 (a proxy that wants its
    /// own nonce for in-dialog requests).
    pub bye_challenge: Option<(&'static str, &'static str)>,
    bye_challenged: bool,
    pub seen: Vec<Seen>,
    start: Instant,
    pending: BTreeMap<(Instant, u64), Vec<u8>>,
    seq: u64,
    invite: Option<Vec<u8>>,
    invite_at: Option<Instant>,
    pub last_invite_response: Option<Vec<u8>>,
    ok_retransmit: Option<(Vec<u8>, Instant, Duration)>,
    acked: bool,
    canceled: bool,
    ok_sent: bool,
    challenged: bool,
    bye_cseq: u32,
    dialog_to_tag: Option<&'static str>,
}

pub const CARRIER_SDP: &str = "v=0\r\no=carrier 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n";

impl Carrier {
    pub fn new(start: Instant, script: Vec<Step>) -> Self {
        Carrier {
            script,
            challenge: None,
            bye_challenge: None,
            bye_challenged: false,
            seen: Vec::new(),
            start,
            pending: BTreeMap::new(),
            seq: 0,
            invite: None,
            invite_at: None,
            last_invite_response: None,
            ok_retransmit: None,
            acked: false,
            canceled: false,
            ok_sent: false,
            challenged: false,
            bye_cseq: 100,
            dialog_to_tag: None,
        }
    }

    fn queue(&mut self, at: Instant, bytes: Vec<u8>) {
        self.seq += 1;
        self.pending.insert((at, self.seq), bytes);
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        let a = self.pending.keys().next().map(|(t, _)| *t);
        let b = self.ok_retransmit.as_ref().map(|(_, t, _)| *t);
        [a, b].into_iter().flatten().min()
    }

    /// Messages due at `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some((&(t, s), _)) = self.pending.iter().next() {
            if t > now {
                break;
            }
            let bytes = self.pending.remove(&(t, s)).expect("present");
            if self.canceled && is_invite_response(&bytes) && !self.ok_sent {
                continue; // a canceled INVITE gets no more scripted responses
            }
            if let Ok(Message::Response(r)) = parse(&bytes) {
                if r.headers
                    .cseq()
                    .map(|c| c.method == Method::Invite)
                    .unwrap_or(false)
                {
                    if (200..300).contains(&r.status) {
                        self.ok_sent = true;
                    }
                    if r.status >= 200 {
                        // 2xx (RFC 3261 §13.3.1.4) and non-2xx (Timer G) finals are
                        // retransmitted until an ACK arrives.
                        self.ok_retransmit = Some((
                            bytes.clone(),
                            now + Duration::from_millis(500),
                            Duration::from_millis(500),
                        ));
                    }
                    self.last_invite_response = Some(bytes.clone());
                }
            }
            out.push(bytes);
        }
        if let Some((b, at, iv)) = self.ok_retransmit.clone() {
            if at <= now {
                out.push(b.clone());
                let iv2 = (iv * 2).min(Duration::from_secs(4));
                self.ok_retransmit = Some((b, now + iv2, iv2));
            }
        }
        out
    }

    pub fn on_message(&mut self, now: Instant, bytes: &[u8]) {
        let at = now - self.start;
        let msg = parse(bytes).expect("the dialer sends well-formed SIP");
        match &msg {
            Message::Request(r) => self.seen.push(Seen {
                at,
                method: Some(r.method.as_str().to_string()),
                status: None,
                raw: bytes.to_vec(),
            }),
            Message::Response(r) => self.seen.push(Seen {
                at,
                method: None,
                status: Some(r.status),
                raw: bytes.to_vec(),
            }),
        }
        let Message::Request(r) = msg else { return };
        match r.method {
            Method::Invite => {
                let is_retransmission =
                    self.invite
                        .as_ref()
                        .and_then(|i| parse(i).ok())
                        .and_then(|m| {
                            m.headers()
                                .top_via()
                                .ok()
                                .and_then(|v| v.branch().map(str::to_string))
                        })
                        == r.headers
                            .top_via()
                            .ok()
                            .and_then(|v| v.branch().map(str::to_string));
                if is_retransmission {
                    if let Some(last) = self.last_invite_response.clone() {
                        if !self.ok_sent {
                            self.queue(now, last);
                        }
                    }
                    return;
                }
                if r.headers.to().ok().and_then(|t| t.tag()).is_some() {
                    // re-INVITE from the dialer (a refresh): accept it.
                    let resp = respond(&r, 200, Some("zz"), true);
                    self.queue(now, resp);
                    return;
                }
                if let Some((realm, nonce)) = self.challenge {
                    if !self.challenged {
                        self.challenged = true;
                        let mut resp = MessageWriter::response_to(&r, 401, "Unauthorized", Some("auth1"))
                            .header("WWW-Authenticate", format!("Digest realm=\"{realm}\", nonce=\"{nonce}\", qop=\"auth\", algorithm=MD5"))
                            .finish();
                        self.invite = Some(bytes.to_vec());
                        self.last_invite_response = Some(resp.clone());
                        self.queue(now, std::mem::take(&mut resp));
                        return;
                    }
                    assert!(
                        r.headers.authorization().next().is_some(),
                        "the re-sent INVITE carries credentials"
                    );
                }
                self.invite = Some(bytes.to_vec());
                self.invite_at = Some(now);
                self.ok_sent = false;
                self.last_invite_response = None;
                for step in self.script.clone() {
                    if let Step::Respond {
                        after,
                        status,
                        sdp,
                        to_tag,
                    } = step
                    {
                        if (200..300).contains(&status) && self.dialog_to_tag.is_none() {
                            self.dialog_to_tag = Some(to_tag);
                        }
                        let resp = respond(&r, status, Some(to_tag), sdp);
                        self.queue(now + after, resp);
                    }
                }
            }
            Method::Ack => {
                self.ok_retransmit = None;
                if self.ok_sent && !self.acked {
                    self.acked = true;
                    let invite = self.invite.clone().expect("INVITE seen");
                    for step in self.script.clone() {
                        match step {
                            Step::ByeAfterAck(d) => {
                                let bye = self.in_dialog(&invite, "BYE", None, None);
                                self.queue(now + d, bye);
                            }
                            Step::RefreshAfterAck {
                                after,
                                method,
                                session_expires,
                            } => {
                                let body = (method == "INVITE").then_some(CARRIER_SDP);
                                let req = self.in_dialog(&invite, method, session_expires, body);
                                self.queue(now + after, req);
                            }
                            _ => {}
                        }
                    }
                }
            }
            Method::Cancel => {
                let resp = respond(&r, 200, Some("c1"), false);
                self.queue(now, resp);
                if !self.ok_sent && !self.canceled {
                    self.canceled = true;
                    let inv = self.invite.clone().expect("INVITE before CANCEL");
                    let Ok(Message::Request(inv)) = parse(&inv) else {
                        unreachable!()
                    };
                    let r487 = respond(&inv, 487, Some("a1"), false);
                    self.last_invite_response = Some(r487.clone());
                    self.seq += 1;
                    // 487 is sent regardless of the "canceled" filter.
                    self.pending
                        .insert((now + Duration::from_millis(1), self.seq), r487);
                    self.ok_sent = false;
                }
            }
            Method::Bye if self.bye_challenge.is_some() && !self.bye_challenged => {
                let (realm, nonce) = self.bye_challenge.expect("checked");
                self.bye_challenged = true;
                let resp =
                    MessageWriter::response_to(&r, 407, "Proxy Authentication Required", None)
                        .header(
                            "Proxy-Authenticate",
                            format!(
                        "Digest realm=\"{realm}\", nonce=\"{nonce}\", qop=\"auth\", algorithm=MD5"
                    ),
                        )
                        .finish();
                self.queue(now, resp);
            }
            _ => {
                let resp = respond(&r, 200, None, false);
                self.queue(now, resp);
            }
        }
    }

    /// Builds a request from the carrier inside the dialog of `invite`.
    fn in_dialog(
        &mut self,
        invite: &[u8],
        method: &str,
        se: Option<&str>,
        body: Option<&str>,
    ) -> Vec<u8> {
        let Ok(Message::Request(inv)) = parse(invite) else {
            unreachable!()
        };
        let contact = inv.headers.contacts().unwrap()[0].uri.raw.to_string();
        let tag = self.dialog_to_tag.unwrap_or("a1");
        self.bye_cseq += 1;
        let mut w = MessageWriter::request(method, &contact)
            .header(
                "Via",
                format!(
                    "SIP/2.0/UDP {CARRIER};branch=z9hG4bKcarrier{}",
                    self.bye_cseq
                ),
            )
            .header("Max-Forwards", 70)
            .header(
                "From",
                format!("<{}>;tag={tag}", inv.headers.to().unwrap().uri.raw),
            )
            .header("To", inv.headers.first(HeaderName::From).unwrap())
            .header("Call-ID", inv.headers.call_id().unwrap())
            .header("CSeq", format!("{} {method}", self.bye_cseq))
            .header("Contact", format!("<sip:carrier@{CARRIER}>"));
        if let Some(se) = se {
            w = w.header("Session-Expires", se).header("Supported", "timer");
        }
        match body {
            Some(b) => w.finish_with_body(Some("application/sdp"), b.as_bytes()),
            None => w.finish(),
        }
    }

    pub fn requests(&self, method: &str) -> Vec<&Seen> {
        self.seen
            .iter()
            .filter(|s| s.method.as_deref() == Some(method))
            .collect()
    }
}

fn is_invite_response(bytes: &[u8]) -> bool {
    matches!(parse(bytes), Ok(Message::Response(r)) if r.headers.cseq().map(|c| c.method == Method::Invite).unwrap_or(false) && r.status != 487)
}

fn respond(r: &Request<'_>, status: u16, to_tag: Option<&str>, sdp: bool) -> Vec<u8> {
    let reason = match status {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        486 => "Busy Here",
        487 => "Request Terminated",
        503 => "Service Unavailable",
        _ => "Whatever",
    };
    let mut w =
        MessageWriter::response_to(r, status, reason, if status == 100 { None } else { to_tag });
    if (101..300).contains(&status) {
        w = w.header("Contact", format!("<sip:carrier@{CARRIER}>"));
    }
    if status == 503 {
        w = w.header("Retry-After", 30);
    }
    if sdp {
        w.finish_with_body(Some("application/sdp"), CARRIER_SDP.as_bytes())
    } else {
        w.finish()
    }
}

/// The endpoint, the carrier and the link, on one virtual clock.
pub struct Sim {
    pub ep: Endpoint,
    pub carrier: Carrier,
    pub link: Link,
    pub start: Instant,
    pub now: Instant,
    to_carrier: BTreeMap<(Instant, u64), Vec<u8>>,
    to_dialer: BTreeMap<(Instant, u64), Vec<u8>>,
    seq: u64,
    pub events: Vec<(Duration, Event)>,
}

impl Sim {
    pub fn new(script: Vec<Step>, link: Link) -> Self {
        let start = Instant::now();
        let mut cfg = EndpointConfig::new(DIALER);
        cfg.seed = Some(42);
        Sim {
            ep: Endpoint::new(cfg),
            carrier: Carrier::new(start, script),
            link,
            start,
            now: start,
            to_carrier: BTreeMap::new(),
            to_dialer: BTreeMap::new(),
            seq: 0,
            events: Vec::new(),
        }
    }

    pub fn call_params(ring_timeout: Duration) -> CallParams {
        CallParams {
            proxy: CARRIER,
            request_uri: format!("sip:+390771286891@{CARRIER}"),
            to_uri: format!("sip:+390771286891@{CARRIER}"),
            from_uri: "sip:comune@127.0.0.1".into(),
            from_display: Some("Comune".into()),
            offer: OfferParams::g711(7, DIALER.ip(), 20000),
            ring_timeout,
            credentials: None,
            transport: Some(Transport::Udp),
            extra_headers: Vec::new(),
            trunk: Some("test".into()),
        }
    }

    pub fn place(&mut self, params: CallParams) -> CallHandle {
        let now = self.now;
        self.ep.place_call(now, params)
    }

    fn pump(&mut self) {
        while let Some(t) = self.ep.poll_transmit() {
            assert_eq!(t.dest, CARRIER, "everything goes to the trunk here");
            if let Some(d) = self.link.transit() {
                self.seq += 1;
                self.to_carrier
                    .insert((self.now + d, self.seq), t.bytes.to_vec());
            }
        }
        for b in self.carrier.poll(self.now) {
            if let Some(d) = self.link.transit() {
                self.seq += 1;
                self.to_dialer.insert((self.now + d, self.seq), b);
            }
        }
        while let Some(e) = self.ep.poll_event() {
            self.events.push((self.now - self.start, e));
        }
    }

    /// Runs until the call ends or `limit` of virtual time passes.
    pub fn run_until_end(&mut self, call: CallHandle, limit: Duration) -> Option<CallEnd> {
        self.run_for(limit, |s| s.end_of(call).is_some());
        self.end_of(call)
    }

    /// Runs until `stop` holds or `limit` passes.
    pub fn run_for(&mut self, limit: Duration, mut stop: impl FnMut(&Self) -> bool) {
        let deadline = self.start + limit;
        loop {
            self.pump();
            if stop(self) {
                return;
            }
            let next = [
                self.ep.poll_timeout(),
                self.carrier.next_timeout(),
                self.to_carrier.keys().next().map(|k| k.0),
                self.to_dialer.keys().next().map(|k| k.0),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else { return };
            if next > deadline {
                self.now = deadline;
                return;
            }
            self.now = next.max(self.now);
            let now = self.now;
            while let Some((&k, _)) = self.to_carrier.iter().next() {
                if k.0 > now {
                    break;
                }
                let b = self.to_carrier.remove(&k).expect("present");
                self.carrier.on_message(now, &b);
            }
            while let Some((&k, _)) = self.to_dialer.iter().next() {
                if k.0 > now {
                    break;
                }
                let b = self.to_dialer.remove(&k).expect("present");
                self.ep.handle_datagram(now, CARRIER, Transport::Udp, &b);
            }
            if self.ep.poll_timeout().is_some_and(|t| t <= now) {
                self.ep.handle_timeout(now);
            }
        }
    }

    /// Runs `d` more of virtual time.
    pub fn run_more(&mut self, d: Duration) {
        let limit = self.now - self.start + d;
        self.run_for(limit, |_| false);
    }

    pub fn end_of(&self, call: CallHandle) -> Option<CallEnd> {
        self.events.iter().find_map(|(_, e)| match e {
            Event::Ended { call: c, end } if *c == call => Some(end.clone()),
            _ => None,
        })
    }

    pub fn answered(&self, call: CallHandle) -> bool {
        self.events
            .iter()
            .any(|(_, e)| matches!(e, Event::Answered { call: c, .. } if *c == call))
    }

    pub fn hangup(&mut self, call: CallHandle) {
        let now = self.now;
        self.ep.hangup(now, call);
    }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
