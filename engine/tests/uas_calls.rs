//! Calls that come to us (issue 12, the SIP side), on virtual time: a scripted caller (a
//! trunk's proxy) sends INVITEs to the endpoint over a link that can lose and reorder,
//! and the tests check what goes back and when, to the millisecond.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{ms, secs, Link, DIALER};
use engine::sip::endpoint::{
    AnswerError, AnswerParams, CallHandle, Endpoint, EndpointConfig, Event, Hangup, IncomingCall,
    Transport,
};
use engine::sip::outcome::Outcome;
use engine::sip::sdp::{self, OfferCodec, TELEPHONE_EVENT_PT};
use engine::sip::{parse, HeaderName, Message, MessageWriter, Method, Request, Response};

const CALLER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)), 5070);
const T1: Duration = Duration::from_millis(500);

const OFFER: &str = "v=0\r\no=caller 5 5 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0 8 9 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n";

fn answer_params() -> AnswerParams {
    AnswerParams {
        session_id: 77,
        addr: DIALER.ip(),
        rtp_port: 30000,
        codecs: vec![OfferCodec::pcma(), OfferCodec::pcmu(), OfferCodec::g722()],
        ptime_ms: 20,
        telephone_event_pt: Some(TELEPHONE_EVENT_PT),
    }
}

/// The caller's INVITE: `n` makes Call-ID and branch unique, `extra` adds header lines.
fn invite(n: u32, transport: &str, extra: &str, body: Option<&str>) -> Vec<u8> {
    let body = body.unwrap_or("");
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_string()
    };
    format!(
        "INVITE sip:+390771286891@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {CALLER};branch=z9hG4bKinv{n}\r\nMax-Forwards: 70\r\n\
         From: \"Mario Rossi\" <sip:+393331234567@127.0.0.3>;tag=caller{n}\r\n\
         To: <sip:+390771286891@dialer.example>\r\n\
         Call-ID: in-{n}@127.0.0.3\r\nCSeq: 10 INVITE\r\n\
         Contact: <sip:+393331234567@{CALLER}>\r\n{extra}{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A request the caller sends inside the dialog a 2xx (or 18x) opened.
fn in_dialog(resp: &[u8], method: &str, cseq: u32, branch: &str, extra: &str) -> Vec<u8> {
    let Ok(Message::Response(r)) = parse(resp) else {
        panic!("not a response")
    };
    let contact = r.headers.contacts().unwrap()[0].uri.raw.to_string();
    let mut w = MessageWriter::request(method, &contact)
        .header("Via", format!("SIP/2.0/UDP {CALLER};branch={branch}"))
        .header("Max-Forwards", 70)
        .header("From", r.headers.first(HeaderName::From).unwrap())
        .header("To", r.headers.first(HeaderName::To).unwrap())
        .header("Call-ID", r.headers.call_id().unwrap())
        .header("CSeq", format!("{cseq} {method}"));
    for line in extra.split("\r\n").filter(|l| !l.is_empty()) {
        let (n, v) = line.split_once(": ").unwrap();
        w.push_header(n, v);
    }
    w.finish()
}

/// The endpoint and a caller on one virtual clock.
struct Uas {
    ep: Endpoint,
    link: Link,
    start: Instant,
    now: Instant,
    to_ep: BTreeMap<(Instant, u64), Vec<u8>>,
    to_caller: BTreeMap<(Instant, u64), Vec<u8>>,
    seq: u64,
    transport: Transport,
    /// What the endpoint sent, when it sent it (before the link).
    sent: Vec<(Duration, Vec<u8>)>,
    /// What reached the caller.
    got: Vec<(Duration, Vec<u8>)>,
    events: Vec<(Duration, Event)>,
    /// The caller ACKs every 2xx to its INVITE and answers the endpoint's requests 200.
    auto: bool,
}

impl Uas {
    fn new(link: Link) -> Uas {
        let mut cfg = EndpointConfig::new(DIALER);
        cfg.seed = Some(7);
        cfg.inbound_calls = true;
        Uas::with(cfg, link)
    }

    fn with(cfg: EndpointConfig, link: Link) -> Uas {
        let start = Instant::now();
        Uas {
            ep: Endpoint::new(cfg),
            link,
            start,
            now: start,
            to_ep: BTreeMap::new(),
            to_caller: BTreeMap::new(),
            seq: 0,
            transport: Transport::Udp,
            sent: Vec::new(),
            got: Vec::new(),
            events: Vec::new(),
            auto: true,
        }
    }

    fn at(&self) -> Duration {
        self.now - self.start
    }

    /// The caller sends `bytes` now (through the link).
    fn send(&mut self, bytes: Vec<u8>) {
        if let Some(d) = self.link_transit() {
            self.seq += 1;
            self.to_ep.insert((self.now + d, self.seq), bytes);
        }
    }

    fn link_transit(&mut self) -> Option<Duration> {
        // The link's own loss and delay, reused from the common harness.
        let mut probe = self.link.clone();
        let d = probe_transit(&mut probe);
        self.link = probe;
        d
    }

    fn pump(&mut self) {
        while let Some(t) = self.ep.poll_transmit() {
            assert_eq!(t.transport, self.transport);
            let at = self.at();
            self.sent.push((at, t.bytes.to_vec()));
            if let Some(d) = self.link_transit() {
                self.seq += 1;
                self.to_caller
                    .insert((self.now + d, self.seq), t.bytes.to_vec());
            }
        }
        while let Some(e) = self.ep.poll_event() {
            let at = self.at();
            self.events.push((at, e));
        }
    }

    fn deliver_to_caller(&mut self, bytes: Vec<u8>) {
        let at = self.at();
        self.got.push((at, bytes.clone()));
        if !self.auto {
            return;
        }
        match parse(&bytes).expect("the endpoint sends well-formed SIP") {
            Message::Response(r) => {
                let invite_2xx = r.headers.cseq().is_ok_and(|c| c.method == Method::Invite)
                    && (200..300).contains(&r.status);
                if invite_2xx {
                    let seq = r.headers.cseq().unwrap().seq;
                    let ack = in_dialog(&bytes, "ACK", seq, "z9hG4bKack", "");
                    self.send(ack);
                }
            }
            Message::Request(q) if q.method != Method::Ack => {
                let resp = MessageWriter::response_to(&q, 200, "OK", None).finish();
                self.send(resp);
            }
            Message::Request(_) => {}
        }
    }

    /// Runs until `stop` holds or `limit` of virtual time (from the start) passes.
    fn run_until(&mut self, limit: Duration, mut stop: impl FnMut(&Uas) -> bool) {
        let deadline = self.start + limit;
        for _ in 0..100_000 {
            self.pump();
            if stop(self) {
                return;
            }
            let next = [
                self.ep.poll_timeout(),
                self.to_ep.keys().next().map(|k| k.0),
                self.to_caller.keys().next().map(|k| k.0),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next.filter(|n| *n <= deadline) else {
                self.now = deadline.max(self.now);
                return;
            };
            self.now = next.max(self.now);
            let now = self.now;
            while let Some((&k, _)) = self.to_caller.iter().next() {
                if k.0 > now {
                    break;
                }
                let b = self.to_caller.remove(&k).expect("present");
                self.deliver_to_caller(b);
            }
            while let Some((&k, _)) = self.to_ep.iter().next() {
                if k.0 > now {
                    break;
                }
                let b = self.to_ep.remove(&k).expect("present");
                self.ep.handle_datagram(now, CALLER, self.transport, &b);
            }
            if self.ep.poll_timeout().is_some_and(|t| t <= now) {
                self.ep.handle_timeout(now);
            }
        }
        panic!("the simulation did not settle");
    }

    fn run_more(&mut self, d: Duration) {
        let limit = self.at() + d;
        self.run_until(limit, |_| false);
    }

    fn incoming(&self) -> Option<(CallHandle, IncomingCall)> {
        self.events.iter().find_map(|(_, e)| match e {
            Event::Incoming { call, invite } => Some((*call, (**invite).clone())),
            _ => None,
        })
    }

    /// Responses that reached the caller: (when, status, the parsed bytes).
    fn responses(&self) -> Vec<(Duration, u16, Vec<u8>)> {
        self.got
            .iter()
            .filter_map(|(at, b)| match parse(b) {
                Ok(Message::Response(r)) => Some((*at, r.status, b.clone())),
                _ => None,
            })
            .collect()
    }

    fn requests(&self, method: &str) -> Vec<(Duration, Vec<u8>)> {
        self.got
            .iter()
            .filter(|(_, b)| b.starts_with(format!("{method} ").as_bytes()))
            .cloned()
            .collect()
    }

    fn ended(&self) -> Option<engine::sip::endpoint::CallEnd> {
        self.events.iter().find_map(|(_, e)| match e {
            Event::Ended { end, .. } => Some(end.clone()),
            _ => None,
        })
    }

    fn answered(&self) -> bool {
        self.events
            .iter()
            .any(|(_, e)| matches!(e, Event::Answered { .. }))
    }
}

fn probe_transit(link: &mut Link) -> Option<Duration> {
    if link.rng.chance(link.loss_percent) {
        return None;
    }
    let j = if link.jitter.is_zero() {
        Duration::ZERO
    } else {
        Duration::from_micros(link.rng.next() % link.jitter.as_micros() as u64)
    };
    Some(link.delay + j)
}

fn response(bytes: &[u8]) -> Response<'_> {
    match parse(bytes) {
        Ok(Message::Response(r)) => r,
        other => panic!("not a response: {other:?}"),
    }
}

fn request(bytes: &[u8]) -> Request<'_> {
    match parse(bytes) {
        Ok(Message::Request(r)) => r,
        other => panic!("not a request: {other:?}"),
    }
}

/// A caller's INVITE arrives; returns the call once the application has been told.
fn offered(sim: &mut Uas, n: u32, extra: &str, body: Option<&str>) -> CallHandle {
    let t = if sim.transport == Transport::Tcp {
        "TCP"
    } else {
        "UDP"
    };
    sim.send(invite(n, t, extra, body));
    sim.run_until(secs(5), |s| s.incoming().is_some());
    sim.incoming().expect("the INVITE is offered").0
}

#[test]
fn an_incoming_call_is_offered_rung_accepted_and_confirmed_by_the_ack() {
    let mut sim = Uas::new(Link::perfect());
    let extra = "P-Asserted-Identity: <sip:+393331234567@carrier.example>\r\nPrivacy: none\r\n\
                 Record-Route: <sip:127.0.0.3:5070;lr>\r\n";
    let call = offered(&mut sim, 1, extra, Some(OFFER));
    let (_, inv) = sim.incoming().unwrap();
    assert_eq!(inv.source, CALLER);
    assert_eq!(inv.transport, Transport::Udp);
    assert_eq!(inv.request_uri, "sip:+390771286891@127.0.0.1:5060");
    assert_eq!(inv.to_uri, "sip:+390771286891@dialer.example");
    assert_eq!(inv.from_uri, "sip:+393331234567@127.0.0.3");
    assert_eq!(inv.from_display.as_deref(), Some("Mario Rossi"));
    assert_eq!(
        inv.asserted_identity.as_deref(),
        Some("sip:+393331234567@carrier.example")
    );
    assert_eq!(inv.privacy.as_deref(), Some("none"));
    assert_eq!(inv.offer.as_ref().unwrap().media[0].port, 41000);

    let now = sim.now;
    sim.ep.ring(now, call);
    let media = sim.ep.accept(now, call, &answer_params()).unwrap();
    assert_eq!(
        (media.codec, media.payload_type),
        ("PCMA", 8),
        "our preference"
    );
    assert_eq!(media.telephone_event_pt, Some(101));
    assert_eq!(media.remote_rtp, "127.0.0.3:41000".parse().unwrap());
    assert_eq!(
        sim.ep.accept(now, call, &answer_params()),
        Err(AnswerError::AlreadyAnswered)
    );
    sim.run_until(secs(5), |s| s.answered());
    let rs = sim.responses();
    // 100 Trying at once (10 ms there, 10 ms back), without a To tag.
    assert_eq!((rs[0].0, rs[0].1), (ms(20), 100));
    assert_eq!(response(&rs[0].2).headers.to().unwrap().tag(), None);
    let ringing = response(&rs[1].2);
    let ok = response(&rs[2].2);
    assert_eq!((rs[1].1, rs[2].1), (180, 200));
    let tag = ok.headers.to().unwrap().tag().unwrap().to_string();
    assert_eq!(ringing.headers.to().unwrap().tag(), Some(tag.as_str()));
    for r in [&ringing, &ok] {
        assert_eq!(
            r.headers.first(HeaderName::RecordRoute),
            Some("<sip:127.0.0.3:5070;lr>"),
            "Record-Route echoed"
        );
        assert!(r.headers.contacts().unwrap()[0]
            .uri
            .raw
            .contains("127.0.0.1:5060"));
    }
    let answer = sdp::parse(ok.body).unwrap();
    assert_eq!(answer.media[0].formats, ["8", "101"]);
    assert_eq!(answer.media[0].port, 30000);
    // Answered when the ACK arrived (the 200 took 10 ms, the ACK 10 ms), same media.
    let (at, ev) = sim
        .events
        .iter()
        .find(|(_, e)| matches!(e, Event::Answered { .. }))
        .cloned()
        .unwrap();
    assert_eq!(at, ms(30));
    assert_eq!(ev, Event::Answered { call, media });
    // The 2xx is not retransmitted once ACKed.
    sim.run_more(secs(40));
    assert_eq!(sim.responses().len(), 3, "100, 180, 200 once each");
    assert_eq!(
        sim.ep.transactions(),
        0,
        "Timer L ended the INVITE transaction"
    );
    assert_eq!(sim.ep.active_calls(), 1);
}

#[test]
fn the_2xx_is_retransmitted_at_t1_doublings_until_timer_h_then_bye() {
    let mut sim = Uas::new(Link::perfect());
    sim.auto = false;
    let call = offered(&mut sim, 2, "", Some(OFFER));
    let t_ok = sim.at();
    let now = sim.now;
    sim.ep.accept(now, call, &answer_params()).unwrap();
    sim.run_more(secs(70));
    let oks: Vec<Duration> = sim
        .sent
        .iter()
        .filter(|(_, b)| b.starts_with(b"SIP/2.0 200 "))
        .map(|(at, _)| *at - t_ok)
        .collect();
    // RFC 3261 §13.3.1.4: T1, then doubling up to T2 (4 s), for 64·T1.
    let want: Vec<Duration> = [
        0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
    ]
    .into_iter()
    .map(ms)
    .collect();
    assert_eq!(oks, want);
    // Timer H (64·T1 = 32 s): the session is ended with a BYE.
    let byes: Vec<Duration> = sim
        .sent
        .iter()
        .filter(|(_, b)| b.starts_with(b"BYE "))
        .map(|(at, _)| *at - t_ok)
        .collect();
    assert_eq!(byes.first(), Some(&(T1 * 64)));
    assert!(!sim.answered());
    // The BYE is never answered here: Timer F ends it and the call.
    let end = sim.ended().expect("ended after the BYE timed out");
    assert_eq!(end.outcome, Outcome::Failed);
    assert_eq!(end.hangup, Hangup::Local);
    assert_eq!(sim.ep.active_calls(), 0);
}

#[test]
fn lossy_links_still_confirm_and_end_every_call() {
    for seed in 1..=20u64 {
        let mut sim = Uas::new(Link::lossy(25, seed * 7919));
        let t = "UDP";
        sim.send(invite(3, t, "", Some(OFFER)));
        // The caller retransmits its INVITE (Timer A) until a response gets through.
        for k in 0..7 {
            let at = sim.at() + T1 * (1 << k);
            sim.run_until(at, |s| s.incoming().is_some());
            if sim.incoming().is_some() {
                break;
            }
            sim.send(invite(3, t, "", Some(OFFER)));
        }
        let Some((call, _)) = sim.incoming() else {
            continue; // every INVITE lost: nothing to check
        };
        let now = sim.now;
        sim.ep.accept(now, call, &answer_params()).unwrap();
        sim.run_until(secs(60), |s| s.answered() || s.ended().is_some());
        if sim.answered() {
            let now = sim.now;
            sim.ep.hangup(now, call);
        }
        sim.run_until(secs(200), |s| s.ended().is_some());
        let end = sim
            .ended()
            .unwrap_or_else(|| panic!("seed {seed}: never ended"));
        assert_eq!(end.hangup, Hangup::Local, "seed {seed}");
        sim.run_more(secs(60));
        assert_eq!(sim.ep.active_calls(), 0, "seed {seed}");
        assert_eq!(sim.ep.transactions(), 0, "seed {seed}");
        assert_eq!(sim.ep.poll_timeout(), None, "seed {seed}: no timer left");
    }
}

#[test]
fn cancel_gets_200_then_487_and_ends_the_call_as_canceled() {
    let mut sim = Uas::new(Link::perfect());
    let call = offered(&mut sim, 4, "", Some(OFFER));
    let now = sim.now;
    sim.ep.ring(now, call);
    let cancel = String::from_utf8(invite(4, "UDP", "", None))
        .unwrap()
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 10 INVITE", "CSeq: 10 CANCEL");
    sim.send(cancel.into_bytes());
    sim.run_until(secs(5), |s| s.ended().is_some());
    sim.run_more(ms(100));
    let statuses: Vec<(u16, String)> = sim
        .responses()
        .iter()
        .map(|(_, s, b)| {
            (
                *s,
                response(b)
                    .headers
                    .cseq()
                    .unwrap()
                    .method
                    .as_str()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (100, "INVITE".into()),
            (180, "INVITE".into()),
            (200, "CANCEL".into()),
            (487, "INVITE".into())
        ]
    );
    let end = sim.ended().unwrap();
    assert_eq!(
        (end.outcome, end.status, end.hangup),
        (Outcome::Canceled, 487, Hangup::Remote)
    );
    assert_eq!(
        sim.ep.accept(sim.now, call, &answer_params()),
        Err(AnswerError::UnknownCall)
    );
    // No ACK for the 487 (auto ACKs 2xx only): Timer G resends it until H.
    sim.run_more(secs(40));
    let r487 = sim.responses().iter().filter(|r| r.1 == 487).count();
    assert_eq!(
        r487, 11,
        "at 0, 0.5, 1.5, 3.5, 7.5, then every 4 s until Timer H at 32 s"
    );
    assert_eq!(sim.ep.transactions(), 0);
}

#[test]
fn reject_sends_any_status_once_and_absorbs_the_ack() {
    for (status, reason, outcome) in [
        (404, "Not Found", Outcome::InvalidNumber),
        (486, "Busy Here", Outcome::Busy),
        (603, "Decline", Outcome::Rejected),
        (403, "Forbidden", Outcome::Rejected),
    ] {
        let mut sim = Uas::new(Link::perfect());
        let call = offered(&mut sim, 5, "", Some(OFFER));
        let now = sim.now;
        sim.ep.reject(now, call, status, reason);
        sim.run_until(secs(1), |s| s.responses().len() == 2);
        let (_, st, b) = sim.responses()[1].clone();
        assert_eq!(st, status);
        assert_eq!(response(&b).reason, reason);
        let end = sim.ended().unwrap();
        assert_eq!((end.outcome, end.status), (outcome, status));
        // The caller ACKs the final response on the INVITE's branch: no more resends.
        let ack = String::from_utf8(invite(5, "UDP", "", None))
            .unwrap()
            .replacen("INVITE sip:", "ACK sip:", 1)
            .replace("CSeq: 10 INVITE", "CSeq: 10 ACK");
        sim.send(ack.into_bytes());
        sim.run_more(secs(40));
        assert_eq!(sim.responses().len(), 2, "{status} sent once");
        assert_eq!(sim.ep.transactions(), 0);
    }
}

#[test]
fn we_hang_up_with_a_bye_along_the_route_set() {
    let mut sim = Uas::new(Link::perfect());
    let rr = "Record-Route: <sip:127.0.0.3:5070;lr>, <sip:proxy2.example;lr>\r\n";
    let call = offered(&mut sim, 6, rr, Some(OFFER));
    let now = sim.now;
    sim.ep.accept(now, call, &answer_params()).unwrap();
    sim.run_until(secs(5), |s| s.answered());
    let now = sim.now;
    sim.ep.hangup(now, call);
    sim.run_until(secs(10), |s| s.ended().is_some());
    let byes = sim.requests("BYE");
    assert_eq!(byes.len(), 1);
    let bye = request(&byes[0].1);
    assert_eq!(
        bye.uri.raw, "sip:+393331234567@127.0.0.3:5070",
        "the caller's Contact"
    );
    let routes: Vec<&str> = bye.headers.values(HeaderName::Route).collect();
    assert_eq!(
        routes,
        ["<sip:127.0.0.3:5070;lr>", "<sip:proxy2.example;lr>"]
    );
    assert_eq!(bye.headers.from().unwrap().tag().map(|t| t.len()), Some(10));
    assert_eq!(bye.headers.to().unwrap().tag(), Some("caller6"));
    assert_eq!(
        bye.headers.from().unwrap().uri.raw,
        "sip:+390771286891@dialer.example"
    );
    let end = sim.ended().unwrap();
    assert_eq!(
        (end.outcome, end.hangup),
        (Outcome::Answered, Hangup::Local)
    );
}

#[test]
fn the_caller_hangs_up_and_sends_dtmf_by_info() {
    let mut sim = Uas::new(Link::perfect());
    let call = offered(&mut sim, 7, "", Some(OFFER));
    let now = sim.now;
    sim.ep.accept(now, call, &answer_params()).unwrap();
    sim.run_until(secs(5), |s| s.answered());
    let ok = sim
        .responses()
        .iter()
        .find(|r| r.1 == 200)
        .unwrap()
        .2
        .clone();
    let mut info = String::from_utf8(in_dialog(&ok, "INFO", 11, "z9hG4bKinfo", "")).unwrap();
    info = info.replace(
        "Content-Length: 0\r\n\r\n",
        "Content-Type: application/dtmf-relay\r\nContent-Length: 24\r\n\r\nSignal=5\r\nDuration=160\r\n",
    );
    sim.send(info.into_bytes());
    sim.run_more(secs(1));
    assert!(sim.events.iter().any(|(_, e)| matches!(e,
        Event::Info { call: c, content_type, body }
            if *c == call && content_type == "application/dtmf-relay" && body.starts_with(b"Signal=5"))));
    sim.send(in_dialog(&ok, "BYE", 12, "z9hG4bKbye", ""));
    sim.run_until(secs(10), |s| s.ended().is_some());
    sim.run_more(ms(100));
    let statuses: Vec<u16> = sim.responses().iter().map(|r| r.1).collect();
    assert_eq!(
        statuses,
        [100, 200, 200, 200],
        "100, the 2xx, INFO's 200, BYE's 200"
    );
    let end = sim.ended().unwrap();
    assert_eq!(
        (end.outcome, end.hangup),
        (Outcome::Answered, Hangup::Remote)
    );
}

#[test]
fn reinvite_and_update_refresh_an_inbound_dialog_with_the_codec_in_use() {
    let mut sim = Uas::new(Link::perfect());
    let call = offered(&mut sim, 8, "", Some(OFFER));
    let now = sim.now;
    sim.ep.accept(now, call, &answer_params()).unwrap();
    sim.run_until(secs(5), |s| s.answered());
    let ok = sim
        .responses()
        .iter()
        .find(|r| r.1 == 200)
        .unwrap()
        .2
        .clone();
    let mut reinvite = String::from_utf8(in_dialog(&ok, "INVITE", 11, "z9hG4bKre", "")).unwrap();
    reinvite = reinvite.replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{OFFER}",
            OFFER.len()
        ),
    );
    sim.send(reinvite.into_bytes());
    sim.run_more(secs(1));
    sim.send(in_dialog(
        &ok,
        "UPDATE",
        12,
        "z9hG4bKupd",
        "Session-Expires: 300;refresher=uac\r\nSupported: timer\r\n",
    ));
    sim.run_more(secs(40));
    let oks: Vec<Vec<u8>> = sim
        .responses()
        .into_iter()
        .filter(|r| r.1 == 200)
        .map(|r| r.2)
        .collect();
    assert_eq!(
        oks.len(),
        3,
        "2xx, re-INVITE's 2xx (ACKed: sent once), UPDATE's 200"
    );
    let re = response(&oks[1]);
    let sdp = sdp::parse(re.body).unwrap();
    assert_eq!(sdp.media[0].formats, ["8", "101"], "the codec in use");
    assert_ne!(
        sdp.origin.unwrap().session_version,
        "77",
        "a new version for a new answer"
    );
    let upd = response(&oks[2]);
    assert_eq!(
        upd.headers.first(HeaderName::SessionExpires),
        Some("300;refresher=uac")
    );
    assert!(sim.ended().is_none());
    assert_eq!(sim.ep.transactions(), 0);
}

#[test]
fn session_timers_follow_the_caller_and_end_a_silent_session() {
    // The caller refreshes: we expect its refresh before the interval ends, else BYE at
    // interval − min(32 s, interval/3) (RFC 4028 §10).
    let mut sim = Uas::new(Link::perfect());
    let se = "Session-Expires: 120;refresher=uac\r\nSupported: timer\r\n";
    let call = offered(&mut sim, 9, se, Some(OFFER));
    let t_ok = sim.at();
    let now = sim.now;
    sim.ep.accept(now, call, &answer_params()).unwrap();
    sim.run_until(secs(300), |s| !s.requests("BYE").is_empty());
    let ok_bytes = sim.responses().into_iter().find(|r| r.1 == 200).unwrap().2;
    let ok = response(&ok_bytes).headers.clone();
    assert_eq!(
        ok.first(HeaderName::SessionExpires),
        Some("120;refresher=uac")
    );
    assert_eq!(ok.first(HeaderName::Require), Some("timer"));
    let bye_at = sim.requests("BYE")[0].0 - ms(10);
    assert_eq!(bye_at - t_ok, secs(120 - 32));
    let _ = call;

    // The caller makes us the refresher: an UPDATE every interval/2.
    let mut sim = Uas::new(Link::perfect());
    let se = "Session-Expires: 90;refresher=uas\r\nSupported: timer\r\n";
    let call = offered(&mut sim, 10, se, Some(OFFER));
    let t_ok = sim.at();
    let now = sim.now;
    sim.ep.accept(now, call, &answer_params()).unwrap();
    sim.run_until(secs(100), |_| false);
    let updates: Vec<Duration> = sim
        .requests("UPDATE")
        .iter()
        .map(|(at, _)| *at - ms(10) - t_ok)
        .collect();
    assert_eq!(updates, [secs(45), secs(90)]);
    assert!(sim.ended().is_none());
}

#[test]
fn over_tcp_nothing_is_retransmitted_and_contact_says_tcp() {
    let mut sim = Uas::new(Link::perfect());
    sim.transport = Transport::Tcp;
    sim.auto = false;
    let call = offered(&mut sim, 11, "", Some(OFFER));
    let now = sim.now;
    sim.ep.accept(now, call, &answer_params()).unwrap();
    sim.run_more(secs(40));
    let oks: Vec<_> = sim.responses().into_iter().filter(|r| r.1 == 200).collect();
    assert_eq!(oks.len(), 1, "reliable transport: the 2xx once");
    let ok = response(&oks[0].2);
    assert!(ok.headers.contacts().unwrap()[0]
        .uri
        .raw
        .ends_with(";transport=tcp"));
    // No ACK came: Timer H still ends the session.
    assert_eq!(sim.requests("BYE").len(), 1);
    let bye_bytes = sim.requests("BYE")[0].1.clone();
    let bye = request(&bye_bytes);
    assert!(bye
        .headers
        .top_via()
        .unwrap()
        .transport
        .eq_ignore_ascii_case("TCP"));
}

#[test]
fn an_offer_without_a_common_codec_is_refused_488() {
    let mut sim = Uas::new(Link::perfect());
    let g729 = OFFER.replace("RTP/AVP 0 8 9 101", "RTP/AVP 18 101");
    let call = offered(&mut sim, 12, "", Some(&g729));
    let now = sim.now;
    assert!(matches!(
        sim.ep.accept(now, call, &answer_params()),
        Err(AnswerError::Unacceptable(_))
    ));
    sim.run_more(secs(1));
    assert_eq!(sim.responses()[1].1, 488);
    assert_eq!(sim.ended().unwrap().status, 488);

    let mut sim = Uas::new(Link::perfect());
    let call = offered(&mut sim, 13, "", None);
    let now = sim.now;
    assert_eq!(
        sim.ep.accept(now, call, &answer_params()),
        Err(AnswerError::NoOffer)
    );
}

#[test]
fn a_hangup_before_the_ack_waits_for_it_and_an_unanswered_call_times_out() {
    let mut sim = Uas::new(Link::perfect());
    let call = offered(&mut sim, 14, "", Some(OFFER));
    let now = sim.now;
    sim.ep.accept(now, call, &answer_params()).unwrap();
    sim.ep.hangup(now, call);
    assert!(sim.requests("BYE").is_empty());
    sim.run_until(secs(5), |s| s.ended().is_some());
    assert_eq!(sim.requests("BYE").len(), 1, "BYE after the ACK");
    assert!(!sim.answered(), "never reported answered");

    // The application never answers: 480 after inbound_answer_timeout.
    let mut sim = Uas::new(Link::perfect());
    let _ = offered(&mut sim, 15, "", Some(OFFER));
    let t = sim.at();
    sim.run_until(secs(200), |s| s.ended().is_some());
    sim.run_more(ms(100));
    let (at, status, _) = sim.responses()[1].clone();
    assert_eq!((at - t - ms(10), status), (secs(120), 480));
}

#[test]
fn inbound_off_answers_480_and_a_repeated_call_id_482() {
    let mut cfg = EndpointConfig::new(DIALER);
    cfg.seed = Some(1);
    let mut sim = Uas::with(cfg, Link::perfect());
    sim.send(invite(16, "UDP", "", Some(OFFER)));
    sim.run_more(ms(100));
    assert_eq!(sim.responses()[0].1, 480);
    assert!(sim.incoming().is_none());

    let mut sim = Uas::new(Link::perfect());
    let _ = offered(&mut sim, 17, "", Some(OFFER));
    let again = String::from_utf8(invite(17, "UDP", "", Some(OFFER)))
        .unwrap()
        .replace("z9hG4bKinv17", "z9hG4bKother");
    sim.send(again.into_bytes());
    sim.run_more(ms(100));
    assert_eq!(sim.responses().last().unwrap().1, 482);
}
