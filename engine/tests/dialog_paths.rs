//! Every UAC dialog path of the endpoint, on virtual time against a scripted carrier.

mod common;

use common::*;
use engine::sip::endpoint::{Event, Hangup, Transport};
use engine::sip::outcome::Outcome;
use engine::sip::{parse, HeaderName, Message};

fn respond(after: u64, status: u16, sdp: bool) -> Step {
    Step::Respond {
        after: ms(after),
        status,
        sdp,
        to_tag: "a1",
    }
}

fn answer_script() -> Vec<Step> {
    vec![
        respond(0, 100, false),
        respond(50, 180, false),
        respond(300, 200, true),
    ]
}

#[test]
fn answered_call_acks_then_our_bye_ends_it() {
    let mut sim = Sim::new(answer_script(), Link::perfect());
    let call = sim.place(Sim::call_params(secs(30)));
    sim.run_for(secs(5), |s| s.answered(call));
    assert!(sim.answered(call));
    let Some((_, Event::Answered { media, .. })) = sim
        .events
        .iter()
        .find(|(_, e)| matches!(e, Event::Answered { .. }))
    else {
        panic!("no answer")
    };
    assert_eq!(media.payload_type, 8, "the answer chose PCMA");
    assert_eq!(media.remote_rtp.port(), 40000);
    sim.hangup(call);
    let end = sim.run_until_end(call, secs(10)).expect("ended");
    assert_eq!(
        (end.outcome, end.status, end.hangup),
        (Outcome::Answered, 200, Hangup::Local)
    );
    assert_eq!(
        sim.carrier.requests("INVITE").len(),
        1,
        "no retransmission on a clean link"
    );
    assert_eq!(sim.carrier.requests("ACK").len(), 1);
    let bye = sim.carrier.requests("BYE");
    assert_eq!(bye.len(), 1);
    let Ok(Message::Request(b)) = parse(&bye[0].raw) else {
        panic!()
    };
    assert_eq!(
        b.uri.raw,
        format!("sip:carrier@{CARRIER}"),
        "BYE goes to the remote target"
    );
    assert_eq!(b.headers.to().unwrap().tag(), Some("a1"));
}

#[test]
fn invite_carries_an_sdp_offer_with_g711_and_telephone_event() {
    let mut sim = Sim::new(answer_script(), Link::perfect());
    sim.place(Sim::call_params(secs(30)));
    sim.run_for(ms(100), |_| false);
    let inv = &sim.carrier.requests("INVITE")[0].raw;
    let Ok(Message::Request(r)) = parse(inv) else {
        panic!()
    };
    let body = std::str::from_utf8(r.body).unwrap();
    assert!(body.contains("m=audio 20000 RTP/AVP 0 8 101"), "{body}");
    assert!(body.contains("a=rtpmap:101 telephone-event/8000"));
    assert_eq!(r.headers.content_type(), Some("application/sdp"));
    assert!(r.headers.top_via().unwrap().rport().is_some());
}

#[test]
fn busy_is_acked_by_the_transaction() {
    let mut sim = Sim::new(
        vec![respond(0, 100, false), respond(100, 486, false)],
        Link::perfect(),
    );
    let call = sim.place(Sim::call_params(secs(30)));
    let end = sim.run_until_end(call, secs(5)).unwrap();
    assert_eq!((end.outcome, end.status), (Outcome::Busy, 486));
    sim.run_for(secs(40), |_| false);
    let acks = sim.carrier.requests("ACK");
    assert_eq!(acks.len(), 1);
    let Ok(Message::Request(a)) = parse(&acks[0].raw) else {
        panic!()
    };
    let Ok(Message::Request(i)) = parse(&sim.carrier.requests("INVITE")[0].raw) else {
        panic!()
    };
    assert_eq!(
        a.headers.top_via().unwrap().branch(),
        i.headers.top_via().unwrap().branch(),
        "non-2xx ACK shares the INVITE branch"
    );
    assert_eq!(a.headers.to().unwrap().tag(), Some("a1"));
    assert_eq!(sim.ep.transactions(), 0, "Timer D cleaned up");
}

#[test]
fn service_unavailable_is_a_carrier_failure() {
    let mut sim = Sim::new(vec![respond(10, 503, false)], Link::perfect());
    let call = sim.place(Sim::call_params(secs(30)));
    let end = sim.run_until_end(call, secs(5)).unwrap();
    assert_eq!((end.outcome, end.status), (Outcome::Failed, 503));
    assert!(end.outcome.is_carrier_fault());
}

#[test]
fn silence_times_out_with_timer_b_after_retransmissions() {
    let mut sim = Sim::new(
        vec![],
        Link {
            loss_percent: 100,
            ..Link::perfect()
        },
    );
    let call = sim.place(Sim::call_params(secs(60)));
    let end = sim.run_until_end(call, secs(100)).unwrap();
    assert_eq!((end.outcome, end.status), (Outcome::Failed, 408));
    let at = sim
        .events
        .iter()
        .find(|(_, e)| matches!(e, Event::Ended { .. }))
        .unwrap()
        .0;
    assert_eq!(at, secs(32), "Timer B = 64·T1");
}

#[test]
fn ring_timeout_cancels_after_a_provisional_and_487_is_no_answer() {
    let mut sim = Sim::new(
        vec![respond(0, 100, false), respond(100, 180, false)],
        Link::perfect(),
    );
    let call = sim.place(Sim::call_params(secs(3)));
    let end = sim.run_until_end(call, secs(60)).unwrap();
    assert_eq!((end.outcome, end.status), (Outcome::NoAnswer, 487));
    let cancel = sim.carrier.requests("CANCEL");
    assert_eq!(cancel.len(), 1);
    assert!(cancel[0].at >= secs(3) && cancel[0].at < secs(3) + ms(50));
    let Ok(Message::Request(c)) = parse(&cancel[0].raw) else {
        panic!()
    };
    let Ok(Message::Request(i)) = parse(&sim.carrier.requests("INVITE")[0].raw) else {
        panic!()
    };
    assert_eq!(
        c.headers.top_via().unwrap().branch(),
        i.headers.top_via().unwrap().branch()
    );
    assert_eq!(c.uri.raw, i.uri.raw);
    assert_eq!(c.headers.cseq().unwrap().seq, i.headers.cseq().unwrap().seq);
    sim.run_more(secs(1));
    assert_eq!(
        sim.carrier.requests("ACK").len(),
        1,
        "the 487 is acknowledged"
    );
}

#[test]
fn no_cancel_before_any_provisional() {
    // The carrier never answers; the ring timeout (1 s) passes long before Timer B.
    let mut sim = Sim::new(vec![], Link::perfect());
    let call = sim.place(Sim::call_params(secs(1)));
    let end = sim.run_until_end(call, secs(60)).unwrap();
    assert!(
        sim.carrier.requests("CANCEL").is_empty(),
        "CANCEL needs a provisional first"
    );
    assert_eq!(end.status, 408);
}

#[test]
fn user_hangup_while_ringing_is_canceled() {
    let mut sim = Sim::new(vec![respond(0, 180, false)], Link::perfect());
    let call = sim.place(Sim::call_params(secs(30)));
    sim.run_for(secs(1), |_| false);
    sim.hangup(call);
    let end = sim.run_until_end(call, secs(60)).unwrap();
    assert_eq!((end.outcome, end.status), (Outcome::Canceled, 487));
}

#[test]
fn ok_crossing_cancel_is_acked_then_byed() {
    // 200 leaves the carrier just after our CANCEL left us: they cross on the wire.
    let script = vec![respond(0, 180, false), respond(1998, 200, true)];
    let mut sim = Sim::new(script, Link::perfect());
    let call = sim.place(Sim::call_params(secs(2)));
    let end = sim.run_until_end(call, secs(60)).unwrap();
    sim.run_more(secs(1));
    assert_eq!(end.outcome, Outcome::NoAnswer);
    assert_eq!(end.status, 200);
    assert_eq!(sim.carrier.requests("CANCEL").len(), 1);
    assert_eq!(sim.carrier.requests("ACK").len(), 1);
    assert_eq!(sim.carrier.requests("BYE").len(), 1);
    assert!(!sim.answered(call), "no media for a call we gave up on");
}

#[test]
fn callee_hangs_up_first() {
    let mut script = answer_script();
    script.push(Step::ByeAfterAck(secs(2)));
    let mut sim = Sim::new(script, Link::perfect());
    let call = sim.place(Sim::call_params(secs(30)));
    let end = sim.run_until_end(call, secs(10)).unwrap();
    assert_eq!(
        (end.outcome, end.hangup),
        (Outcome::Answered, Hangup::Remote)
    );
    sim.run_for(secs(11), |_| false);
    let ok = sim
        .carrier
        .seen
        .iter()
        .filter(|s| s.status == Some(200))
        .count();
    assert_eq!(ok, 1, "our 200 to their BYE");
}

#[test]
fn early_media_183_is_not_an_answer() {
    let script = vec![respond(0, 183, true), respond(2000, 200, true)];
    let mut sim = Sim::new(script, Link::perfect());
    let call = sim.place(Sim::call_params(secs(30)));
    sim.run_for(secs(1), |_| false);
    assert!(!sim.answered(call));
    let early = sim.events.iter().find_map(|(_, e)| match e {
        Event::Progress {
            status: 183,
            early_media,
            ..
        } => Some(early_media.clone()),
        _ => None,
    });
    assert!(early.flatten().is_some(), "183 with SDP gives early media");
    sim.run_for(secs(5), |s| s.answered(call));
    assert!(sim.answered(call));
}

#[test]
fn every_retransmitted_2xx_gets_an_ack() {
    let mut sim = Sim::new(answer_script(), Link::perfect());
    let call = sim.place(Sim::call_params(secs(30)));
    sim.run_for(secs(5), |s| s.answered(call));
    sim.run_more(secs(1));
    let ok = sim.carrier.last_invite_response.clone().unwrap();
    let before = sim.carrier.requests("ACK").len();
    for _ in 0..3 {
        let now = sim.now;
        sim.ep.handle_datagram(now, CARRIER, Transport::Udp, &ok);
    }
    sim.run_for(sim.now - sim.start + ms(100), |_| false);
    assert_eq!(sim.carrier.requests("ACK").len(), before + 3);
    assert_eq!(
        sim.events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Answered { .. }))
            .count(),
        1
    );
}

#[test]
fn a_second_fork_is_acked_and_byed() {
    let script = vec![
        Step::Respond {
            after: ms(100),
            status: 200,
            sdp: true,
            to_tag: "a1",
        },
        Step::Respond {
            after: ms(150),
            status: 200,
            sdp: true,
            to_tag: "b2",
        },
    ];
    let mut sim = Sim::new(script, Link::perfect());
    let call = sim.place(Sim::call_params(secs(30)));
    sim.run_for(secs(2), |_| false);
    assert!(sim.answered(call));
    let acks = sim.carrier.requests("ACK");
    assert_eq!(acks.len(), 2);
    let byes = sim.carrier.requests("BYE");
    assert_eq!(byes.len(), 1);
    let Ok(Message::Request(b)) = parse(&byes[0].raw) else {
        panic!()
    };
    assert_eq!(
        b.headers.to().unwrap().tag(),
        Some("b2"),
        "only the second fork is hung up"
    );
    assert!(sim.end_of(call).is_none(), "the first dialog lives on");
}

#[test]
fn digest_challenge_is_answered_with_cseq_plus_one_and_same_call_id() {
    let mut sim = Sim::new(answer_script(), Link::perfect());
    sim.carrier.challenge = Some(("carrier.example", "abc123"));
    let mut p = Sim::call_params(secs(30));
    p.credentials = Some(engine::sip::auth::Credentials::new("comune", "secret"));
    let call = sim.place(p);
    sim.run_for(secs(5), |s| s.answered(call));
    assert!(sim.answered(call));
    let invites = sim.carrier.requests("INVITE");
    assert_eq!(invites.len(), 2);
    let Ok(Message::Request(a)) = parse(&invites[0].raw) else {
        panic!()
    };
    let Ok(Message::Request(b)) = parse(&invites[1].raw) else {
        panic!()
    };
    assert_eq!(a.headers.call_id(), b.headers.call_id());
    assert_eq!(
        b.headers.cseq().unwrap().seq,
        a.headers.cseq().unwrap().seq + 1
    );
    assert_eq!(
        a.headers.from().unwrap().tag(),
        b.headers.from().unwrap().tag()
    );
    let auth = b.headers.authorization().next().unwrap();
    assert!(
        auth.contains("realm=\"carrier.example\"") && auth.contains("nc=00000001"),
        "{auth}"
    );
}

#[test]
fn challenge_without_credentials_is_rejected() {
    let mut sim = Sim::new(answer_script(), Link::perfect());
    sim.carrier.challenge = Some(("carrier.example", "abc123"));
    let call = sim.place(Sim::call_params(secs(30)));
    let end = sim.run_until_end(call, secs(5)).unwrap();
    assert_eq!((end.outcome, end.status), (Outcome::Rejected, 401));
}

#[test]
fn far_end_update_refresh_is_answered_with_session_expires() {
    let mut script = answer_script();
    script.push(Step::RefreshAfterAck {
        after: secs(1),
        method: "UPDATE",
        session_expires: Some("120;refresher=uac"),
    });
    let mut sim = Sim::new(script, Link::perfect());
    let call = sim.place(Sim::call_params(secs(30)));
    sim.run_for(secs(3), |_| false);
    let ok = sim
        .carrier
        .seen
        .iter()
        .filter_map(|s| match parse(&s.raw) {
            Ok(Message::Response(r)) if r.headers.cseq().unwrap().method.as_str() == "UPDATE" => {
                Some((r.status, r.headers.session_expires()))
            }
            _ => None,
        })
        .next()
        .expect("UPDATE answered");
    assert_eq!(ok.0, 200);
    assert_eq!(ok.1.unwrap().secs, 120);
    assert!(sim.end_of(call).is_none());
}

#[test]
fn far_end_reinvite_is_answered_with_sdp_and_its_2xx_retransmitted_until_ack() {
    let mut script = answer_script();
    script.push(Step::RefreshAfterAck {
        after: secs(1),
        method: "INVITE",
        session_expires: Some("90"),
    });
    let mut sim = Sim::new(script, Link::perfect());
    let call = sim.place(Sim::call_params(secs(30)));
    sim.run_for(secs(4), |_| false);
    let oks: Vec<_> = sim
        .carrier
        .seen
        .iter()
        .filter_map(|s| match parse(&s.raw) {
            Ok(Message::Response(r)) if r.headers.cseq().unwrap().method.as_str() == "INVITE" => {
                Some(r.body.to_vec())
            }
            _ => None,
        })
        .collect();
    // The scripted carrier never ACKs a re-INVITE's 2xx, so ours is retransmitted.
    assert!(oks.len() >= 3, "2xx retransmitted: {}", oks.len());
    assert!(std::str::from_utf8(&oks[0])
        .unwrap()
        .contains("m=audio 20000 RTP/AVP 8"));
    assert!(sim.end_of(call).is_none());
}

/// Places a call that rings, then feeds the endpoint a 2xx crafted with `headers` (the
/// scripted carrier cannot add arbitrary headers to its answer).
fn ring_then_answer_with(headers: &[(&str, &str)]) -> (Sim, engine::sip::endpoint::CallHandle) {
    let mut sim = Sim::new(vec![respond(0, 180, false)], Link::perfect());
    let call = sim.place(Sim::call_params(secs(30)));
    sim.run_for(ms(200), |_| false);
    let Ok(Message::Request(inv)) = parse(&sim.carrier.requests("INVITE")[0].raw) else {
        panic!()
    };
    let mut w = engine::sip::MessageWriter::response_to(&inv, 200, "OK", Some("a1"));
    for (n, v) in headers {
        w = w.header(n, v);
    }
    let ok = w.finish_with_body(Some("application/sdp"), CARRIER_SDP.as_bytes());
    let now = sim.now;
    sim.ep.handle_datagram(now, CARRIER, Transport::Udp, &ok);
    (sim, call)
}

#[test]
fn we_refresh_when_the_answer_makes_us_refresher() {
    let contact = format!("<sip:carrier@{CARRIER}>");
    let (mut sim, call) = ring_then_answer_with(&[
        ("Contact", &contact),
        ("Require", "timer"),
        ("Session-Expires", "100;refresher=uac"),
    ]);
    sim.run_for(secs(60), |_| false);
    let updates = sim.carrier.requests("UPDATE");
    assert_eq!(updates.len(), 1, "one refresh at half of 100 s within 60 s");
    assert!(updates[0].at >= secs(50) && updates[0].at < secs(51));
    assert!(sim.answered(call));
}

#[test]
fn far_end_that_never_refreshes_gets_a_bye_before_expiry() {
    let contact = format!("<sip:carrier@{CARRIER}>");
    let (mut sim, call) = ring_then_answer_with(&[
        ("Contact", &contact),
        ("Require", "timer"),
        ("Session-Expires", "90;refresher=uas"),
    ]);
    let end = sim.run_until_end(call, secs(200)).unwrap();
    assert_eq!(end.reason, "session expired");
    let bye = sim.carrier.requests("BYE")[0].at;
    assert!(
        bye >= secs(60) && bye <= secs(61),
        "BYE at 90 - 30 s: {bye:?}"
    );
}

#[test]
fn record_route_becomes_the_route_set_in_reverse() {
    let (mut sim, call) = ring_then_answer_with(&[
        (
            "Record-Route",
            "<sip:p2.example.com;lr>, <sip:p1.example.com;lr>",
        ),
        ("Contact", "<sip:callee@192.0.2.9:5062>"),
    ]);
    sim.hangup(call);
    sim.run_for(sim.now - sim.start + secs(1), |_| false);
    let bye = &sim.carrier.requests("BYE")[0].raw;
    let Ok(Message::Request(b)) = parse(bye) else {
        panic!()
    };
    assert_eq!(
        b.uri.raw, "sip:callee@192.0.2.9:5062",
        "remote target from Contact"
    );
    let routes: Vec<_> = b.headers.values(HeaderName::Route).collect();
    assert_eq!(
        routes,
        ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    );
}

#[test]
fn every_call_reaches_its_outcome_over_a_lossy_reordering_link() {
    for seed in 1..=40u64 {
        for (script, want) in [
            (answer_script(), Outcome::Answered),
            (
                vec![respond(0, 100, false), respond(200, 486, false)],
                Outcome::Busy,
            ),
            (vec![respond(0, 180, false)], Outcome::NoAnswer),
        ] {
            let mut sim = Sim::new(script, Link::lossy(25, seed * 7919));
            let call = sim.place(Sim::call_params(secs(5)));
            if want == Outcome::Answered {
                sim.run_for(secs(40), |s| s.answered(call));
                if !sim.answered(call) {
                    // With 25% loss both ways, an INVITE can fail 7 times: that is Timer B.
                    let end = sim.end_of(call).expect("ended");
                    assert_eq!(end.outcome, Outcome::Failed, "seed {seed}");
                    continue;
                }
                sim.hangup(call);
            }
            let end = sim
                .run_until_end(call, secs(200))
                .unwrap_or_else(|| panic!("seed {seed}: no end for {want:?}"));
            if end.outcome != want {
                // Only total loss of every retransmission is allowed to turn into a failure.
                assert_eq!(
                    (end.outcome, end.status),
                    (Outcome::Failed, 408),
                    "seed {seed}, wanted {want:?}"
                );
            }
            sim.run_for(secs(400), |_| false);
            assert_eq!(
                sim.ep.transactions(),
                0,
                "seed {seed}: transactions all cleaned up"
            );
            assert_eq!(sim.ep.active_calls(), 0);
        }
    }
}
