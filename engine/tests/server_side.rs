//! What the endpoint answers to requests it did not ask for.

mod common;

use common::*;
use engine::sip::endpoint::Transport;
use engine::sip::timer::TimerConfig;
use engine::sip::{parse, Message};

fn request(method: &str, extra: &str) -> Vec<u8> {
    format!(
        "{method} sip:dialer@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CARRIER};branch=z9hG4bKsrv{method}\r\nMax-Forwards: 70\r\nFrom: <sip:carrier@127.0.0.2>;tag=f1\r\nTo: <sip:dialer@127.0.0.1>\r\nCall-ID: srv-{method}@127.0.0.2\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn answer(sim: &mut Sim, bytes: &[u8]) -> Vec<(u16, String)> {
    let now = sim.now;
    sim.ep.handle_datagram(now, CARRIER, Transport::Udp, bytes);
    let mut out = Vec::new();
    while let Some(t) = sim.ep.poll_transmit() {
        assert_eq!(t.dest, CARRIER, "answered to the source address");
        match parse(&t.bytes) {
            Ok(Message::Response(r)) => out.push((r.status, r.reason.to_string())),
            // A 400 copies the offending header as it came, so it may not parse itself.
            _ if t.bytes.starts_with(b"SIP/2.0 400 ") => out.push((400, String::new())),
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

#[test]
fn options_ping_gets_200_with_allow() {
    let mut sim = Sim::new(vec![], Link::perfect());
    let now = sim.now;
    sim.ep
        .handle_datagram(now, CARRIER, Transport::Udp, &request("OPTIONS", ""));
    let t = sim.ep.poll_transmit().unwrap();
    let Ok(Message::Response(r)) = parse(&t.bytes) else {
        panic!()
    };
    assert_eq!(r.status, 200);
    assert!(r.headers.allow().any(|m| m == "INVITE"));
    assert!(r.headers.to().unwrap().tag().is_some());
}

#[test]
fn unknown_method_is_501_and_unknown_dialogs_481() {
    let mut sim = Sim::new(vec![], Link::perfect());
    assert_eq!(answer(&mut sim, &request("FROBNICATE", ""))[0].0, 501);
    assert_eq!(answer(&mut sim, &request("BYE", ""))[0].0, 481);
    assert_eq!(answer(&mut sim, &request("CANCEL", ""))[0].0, 481);
    assert_eq!(answer(&mut sim, &request("SUBSCRIBE", ""))[0].0, 405);
}

#[test]
fn inbound_invite_is_480_retransmitted_until_ack() {
    let mut sim = Sim::new(vec![], Link::perfect());
    let inv = request("INVITE", "");
    assert_eq!(answer(&mut sim, &inv)[0].0, 480);
    // A retransmitted INVITE gets the same response again.
    assert_eq!(answer(&mut sim, &inv)[0].0, 480);
    // Timer G resends it at T1.
    let t = sim.ep.poll_timeout().unwrap();
    assert_eq!(t - sim.now, TimerConfig::default().t1);
    sim.now = t;
    sim.ep.handle_timeout(t);
    assert!(sim.ep.poll_transmit().is_some());
    // The ACK is absorbed, never answered.
    let ack = String::from_utf8(request("ACK", ""))
        .unwrap()
        .replace("branch=z9hG4bKsrvACK", "branch=z9hG4bKsrvINVITE");
    assert!(answer(&mut sim, ack.as_bytes()).is_empty());
    assert_eq!(
        sim.ep.transactions(),
        1,
        "Confirmed, absorbing ACKs until Timer I"
    );
    sim.now += secs(6);
    let now = sim.now;
    sim.ep.handle_timeout(now);
    assert_eq!(sim.ep.transactions(), 0);
}

#[test]
fn malformed_request_gets_400_and_responses_are_never_answered() {
    let mut sim = Sim::new(vec![], Link::perfect());
    let bad = String::from_utf8(request("OPTIONS", ""))
        .unwrap()
        .replace("CSeq: 1 OPTIONS", "CSeq: 99999999999 OPTIONS");
    let got = answer(&mut sim, bad.as_bytes());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, 400);
    let resp = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnobody\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    assert!(answer(&mut sim, resp).is_empty());
    assert!(answer(&mut sim, b"SIP/2.0 999 Garbage\r\n\r\n").is_empty());
    assert!(answer(&mut sim, b"\x00\xff garbage").is_empty());
}

#[test]
fn missing_headers_and_unsupported_extensions_are_refused() {
    let mut sim = Sim::new(vec![], Link::perfect());
    let no_from = String::from_utf8(request("OPTIONS", ""))
        .unwrap()
        .replace("From: <sip:carrier@127.0.0.2>;tag=f1\r\n", "");
    assert_eq!(answer(&mut sim, no_from.as_bytes())[0].0, 400);
    assert_eq!(
        answer(&mut sim, &request("INVITE", "Require: nonsense\r\n"))[0].0,
        420
    );
}

#[test]
fn torture_semantic_messages_get_their_responses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rfc4475");
    for (file, want) in [
        ("insuf.dat", 400),
        ("unkscm.dat", 416),
        ("bext01.dat", 420),
        ("multi01.dat", 400),
        ("mcl01.dat", 400),
    ] {
        let mut sim = Sim::new(vec![], Link::perfect());
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let got = answer(&mut sim, &bytes);
        assert_eq!(got.first().map(|g| g.0), Some(want), "{file}");
    }
    let mut sim = Sim::new(vec![], Link::perfect());
    assert!(
        answer(&mut sim, &std::fs::read(dir.join("bcast.dat")).unwrap()).is_empty(),
        "a response is never answered"
    );
}

#[test]
fn oversized_request_goes_over_tcp() {
    let mut sim = Sim::new(vec![], Link::perfect());
    let mut p = Sim::call_params(secs(30));
    p.extra_headers.push(("X-Padding".into(), "x".repeat(1400)));
    sim.place(p);
    let t = sim.ep.poll_transmit().unwrap();
    assert_eq!(t.transport, Transport::Tcp);
    let Ok(Message::Request(r)) = parse(&t.bytes) else {
        panic!()
    };
    assert_eq!(r.headers.top_via().unwrap().transport, "TCP");
    // Reliable transport: no Timer A retransmission.
    assert!(sim.ep.poll_timeout().unwrap() - sim.now >= secs(30));
}
