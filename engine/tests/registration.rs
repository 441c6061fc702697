//! OPTIONS pings and REGISTER (with digest, refresh and backoff), on virtual time.

mod common;

use std::time::Instant;

use common::*;
use engine::sip::auth::Credentials;
use engine::sip::endpoint::{
    Endpoint, EndpointConfig, Event, RegisterParams, RegistrationState, Transport,
};
use engine::sip::{parse, Message, MessageWriter};

fn endpoint() -> (Endpoint, Instant) {
    let mut cfg = EndpointConfig::new(DIALER);
    cfg.seed = Some(7);
    (Endpoint::new(cfg), Instant::now())
}

/// Takes the one request the endpoint sent and answers it with `status` plus `extra` headers.
fn answer(ep: &mut Endpoint, now: Instant, status: u16, extra: &[(&str, &str)]) -> String {
    let t = ep.poll_transmit().expect("a request was sent");
    assert!(ep.poll_transmit().is_none());
    let Ok(Message::Request(req)) = parse(&t.bytes) else {
        panic!("not a request")
    };
    let mut w = MessageWriter::response_to(&req, status, "Whatever", Some("reg1"));
    for (n, v) in extra {
        w = w.header(n, v);
    }
    ep.handle_datagram(now, CARRIER, Transport::Udp, &w.finish());
    String::from_utf8_lossy(&t.bytes).to_string()
}

/// Advances virtual time through the endpoint's wake-ups until it sends something; returns
/// that instant (stale wake-ups are allowed and skipped).
fn next_send(ep: &mut Endpoint, limit: Instant) -> Option<Instant> {
    while let Some(at) = ep.poll_timeout() {
        if at > limit {
            return None;
        }
        ep.handle_timeout(at);
        if let Some(t) = ep.poll_transmit() {
            PENDING.with(|p| p.borrow_mut().push(t.bytes.to_vec()));
            return Some(at);
        }
    }
    None
}

thread_local! {
    static PENDING: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn events(ep: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

#[test]
fn options_ping_reports_status_and_rtt() {
    let (mut ep, t0) = endpoint();
    let ping = ep.send_options(t0, CARRIER, "sip:127.0.0.2:5080");
    let sent = answer(&mut ep, t0 + ms(35), 200, &[]);
    assert!(sent.starts_with("OPTIONS sip:127.0.0.2:5080 SIP/2.0\r\n"));
    assert_eq!(
        events(&mut ep),
        vec![Event::OptionsReply {
            ping,
            status: 200,
            rtt: ms(35)
        }]
    );
}

#[test]
fn unanswered_ping_times_out_as_408_after_timer_f() {
    let (mut ep, t0) = endpoint();
    let ping = ep.send_options(t0, CARRIER, "sip:127.0.0.2:5080");
    let mut sent = 0;
    let mut now = t0;
    while let Some(at) = ep.poll_timeout() {
        now = at;
        while ep.poll_transmit().is_some() {
            sent += 1;
        }
        ep.handle_timeout(now);
        if ep.poll_event().is_some() || now - t0 > secs(40) {
            break;
        }
    }
    assert_eq!(now - t0, secs(32));
    assert_eq!(sent, 11, "the request and 10 Timer E retransmissions");
    let _ = ping;
}

fn reg_params(creds: bool) -> RegisterParams {
    RegisterParams {
        registrar: CARRIER,
        registrar_uri: "sip:carrier.example".into(),
        aor: "sip:390771000000@carrier.example".into(),
        credentials: creds.then(|| Credentials::new("390771000000", "secret")),
        expires: 600,
        transport: None,
    }
}

#[test]
fn register_answers_the_challenge_and_refreshes_before_expiry() {
    let (mut ep, t0) = endpoint();
    let reg = ep.register(t0, reg_params(true));
    let first = answer(
        &mut ep,
        t0,
        401,
        &[(
            "WWW-Authenticate",
            "Digest realm=\"carrier.example\", nonce=\"n1\", qop=\"auth\"",
        )],
    );
    assert!(first.contains("Expires: 600"));
    let second = answer(
        &mut ep,
        t0,
        200,
        &[("Contact", "<sip:dialer@127.0.0.1:5060>;expires=300")],
    );
    assert!(
        second.contains("Authorization: Digest username=\"390771000000\""),
        "{second}"
    );
    assert!(second.contains("CSeq: 2 REGISTER"));
    assert_eq!(
        events(&mut ep),
        vec![Event::Registration {
            reg,
            state: RegistrationState::Registered { expires: 300 }
        }]
    );
    // The refresh goes out at 80 % of the 300 s grant, with the same Call-ID.
    let at = next_send(&mut ep, t0 + secs(400)).expect("a refresh");
    assert_eq!(at - t0, secs(240));
    let refresh = PENDING.with(|p| String::from_utf8(p.borrow_mut().pop().unwrap()).unwrap());
    assert!(refresh.contains("CSeq: 3 REGISTER"), "{refresh}");
    let call_id = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("Call-ID"))
            .unwrap()
            .to_string()
    };
    assert_eq!(call_id(&refresh), call_id(&first));
}

#[test]
fn failed_registration_backs_off_and_honours_retry_after() {
    let (mut ep, t0) = endpoint();
    let reg = ep.register(t0, reg_params(false));
    answer(&mut ep, t0, 503, &[]);
    assert_eq!(
        events(&mut ep),
        vec![Event::Registration {
            reg,
            state: RegistrationState::Failed {
                status: 503,
                retry_in: secs(30)
            }
        }]
    );
    // The retry goes out 30 s later.
    let at = next_send(&mut ep, t0 + secs(100)).expect("a retry");
    assert_eq!(at - t0, secs(30));
    // A second failure doubles the backoff, unless Retry-After asks for more.
    let retry = PENDING.with(|p| p.borrow_mut().pop().unwrap());
    let Ok(Message::Request(req)) = parse(&retry) else {
        panic!()
    };
    let resp = MessageWriter::response_to(&req, 503, "Unavailable", Some("r"))
        .header("Retry-After", 120)
        .finish();
    ep.handle_datagram(at, CARRIER, Transport::Udp, &resp);
    assert_eq!(
        events(&mut ep),
        vec![Event::Registration {
            reg,
            state: RegistrationState::Failed {
                status: 503,
                retry_in: secs(120)
            }
        }]
    );
}

#[test]
fn wrong_credentials_are_not_retried_forever() {
    let (mut ep, t0) = endpoint();
    let reg = ep.register(t0, reg_params(true));
    let ch = [(
        "WWW-Authenticate",
        "Digest realm=\"carrier.example\", nonce=\"n1\", qop=\"auth\"",
    )];
    answer(&mut ep, t0, 401, &ch);
    answer(&mut ep, t0, 401, &ch);
    assert!(
        ep.poll_transmit().is_none(),
        "the same nonce again means wrong credentials"
    );
    let ev = events(&mut ep);
    assert!(
        matches!(ev.as_slice(), [Event::Registration { reg: r, state: RegistrationState::Failed { status: 401, .. } }] if *r == reg),
        "{ev:?}"
    );
}

#[test]
fn unregister_sends_expires_zero() {
    let (mut ep, t0) = endpoint();
    let reg = ep.register(t0, reg_params(false));
    answer(&mut ep, t0, 200, &[("Expires", "600")]);
    events(&mut ep);
    ep.unregister(t0 + secs(1), reg);
    let sent = answer(&mut ep, t0 + secs(1), 200, &[]);
    assert!(sent.contains("Expires: 0"));
    assert_eq!(
        events(&mut ep),
        vec![Event::Registration {
            reg,
            state: RegistrationState::Unregistered
        }]
    );
}
