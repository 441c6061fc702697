//! Virtual-time tests of the endpoint's wake-ups: `poll_timeout` is exactly the earliest
//! live deadline, through retransmissions, answers, CANCELs, refreshes and registrations.

use super::*;
use crate::sip::message::parse;

const DIALER: &str = "127.0.0.1:5060";
const PEER: &str = "127.0.0.2:5060";
const ANSWER: &str = "v=0\r\no=peer 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\n\
t=0 0\r\nm=audio 40000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";

impl Endpoint {
    /// The earliest deadline any live transaction, call or registration holds, found the
    /// slow way (by asking every one).
    fn live_deadline_min(&self) -> Option<Instant> {
        let clients = self.clients.values().filter_map(|e| e.tx.next_timeout());
        let servers = self.servers.values().filter_map(|e| e.tx.next_timeout());
        let calls = self.calls.values().filter_map(|c| c.timers.next());
        let regs = self.regs.values().filter_map(|r| r.timers.next());
        let accepted = self.accepted.next();
        clients
            .chain(servers)
            .chain(calls)
            .chain(regs)
            .chain(accepted)
            .min()
    }
}

/// A call to the test peer over UDP (also what `held` places).
pub(super) fn params(ring: Duration) -> CallParams {
    let proxy: SocketAddr = PEER.parse().expect("addr");
    CallParams {
        proxy,
        request_uri: format!("sip:+390771286891@{PEER}"),
        to_uri: format!("sip:+390771286891@{PEER}"),
        from_uri: "sip:comune@127.0.0.1".into(),
        from_display: None,
        offer: sdp::OfferParams::g711(7, proxy.ip(), 20000),
        ring_timeout: ring,
        credentials: None,
        transport: Some(Transport::Udp),
        extra_headers: Vec::new(),
        trunk: None,
    }
}

/// What the scripted peer does with a request, by the call's order of placement.
#[derive(Clone, Copy)]
enum Script {
    /// 180, then 200 with `Session-Expires: 120;refresher=uac`.
    AnswerWithTimer,
    /// 180 and nothing more (until CANCEL: 200 and 487).
    Ring,
    /// Never answers.
    Silent,
}

struct Harness {
    ep: Endpoint,
    now: Instant,
    /// Call-ID → script.
    scripts: HashMap<String, Script>,
    /// INVITEs seen per Call-ID, to drop each call's first one.
    invites: HashMap<String, u32>,
    checks: u32,
}

impl Harness {
    fn check(&mut self) {
        assert_eq!(self.ep.poll_timeout(), self.ep.live_deadline_min());
        self.checks += 1;
    }

    /// Delivers everything the endpoint sent to the peer and the peer's replies back,
    /// checking the wake-up after every input.
    fn exchange(&mut self) {
        for _ in 0..20 {
            let out: Vec<Transmit> = std::iter::from_fn(|| self.ep.poll_transmit()).collect();
            if out.is_empty() {
                return;
            }
            for t in out {
                for reply in self.peer(&t.bytes) {
                    let from = PEER.parse().expect("addr");
                    self.ep
                        .handle_datagram(self.now, from, Transport::Udp, &reply);
                    self.check();
                }
            }
        }
    }

    fn peer(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let Ok(Message::Request(r)) = parse(bytes) else {
            return Vec::new();
        };
        let id = r.headers.call_id().expect("call-id").to_string();
        let respond = |status, reason: &str| -> Vec<u8> {
            MessageWriter::response_to(&r, status, reason, Some("peer")).finish()
        };
        match r.method {
            Method::Invite => {
                let n = self.invites.entry(id.clone()).or_default();
                *n += 1;
                if *n == 1 {
                    return Vec::new(); // lost: Timer A retransmits
                }
                match self.scripts.get(&id).copied() {
                    Some(Script::AnswerWithTimer) => {
                        let ok = MessageWriter::response_to(&r, 200, "OK", Some("peer"))
                            .header("Contact", format!("<sip:peer@{PEER}>"))
                            .header("Session-Expires", "120;refresher=uac")
                            .finish_with_body(Some("application/sdp"), ANSWER.as_bytes());
                        vec![respond(180, "Ringing"), ok]
                    }
                    Some(Script::Ring) => vec![respond(180, "Ringing")],
                    _ => Vec::new(),
                }
            }
            Method::Cancel => vec![respond(200, "OK")],
            Method::Bye | Method::Update | Method::Options => vec![respond(200, "OK")],
            Method::Register => vec![MessageWriter::response_to(&r, 200, "OK", Some("peer"))
                .header("Expires", 60)
                .finish()],
            _ => Vec::new(),
        }
    }

    fn place(&mut self, ring: Duration, script: Script) -> CallHandle {
        let h = self.ep.place_call(self.now, params(ring));
        let id = self.ep.call_id(h).expect("id").to_string();
        self.scripts.insert(id, script);
        self.check();
        h
    }

    /// Jumps to the next wake-up and handles it.
    fn step(&mut self) -> bool {
        let Some(at) = self.ep.poll_timeout() else {
            return false;
        };
        assert!(at >= self.now, "a wake-up in the past");
        self.now = at;
        self.ep.handle_timeout(at);
        self.check();
        self.exchange();
        true
    }
}

#[test]
fn poll_timeout_is_the_exact_minimum_of_live_deadlines() {
    let mut cfg = EndpointConfig::new(DIALER.parse().expect("addr"));
    cfg.seed = Some(7);
    let start = Instant::now();
    let mut h = Harness {
        ep: Endpoint::new(cfg),
        now: start,
        scripts: HashMap::new(),
        invites: HashMap::new(),
        checks: 0,
    };
    assert_eq!(h.ep.poll_timeout(), None);
    let answered = h.place(Duration::from_secs(30), Script::AnswerWithTimer);
    let ringing = h.place(Duration::from_secs(4), Script::Ring);
    let silent = h.place(Duration::from_secs(60), Script::Silent);
    let reg = h.ep.register(
        h.now,
        RegisterParams {
            registrar: PEER.parse().expect("addr"),
            registrar_uri: format!("sip:{PEER}"),
            aor: format!("sip:dialer@{PEER}"),
            credentials: None,
            expires: 60,
            transport: None,
        },
    );
    h.check();
    h.ep.send_options(h.now, PEER.parse().expect("addr"), &format!("sip:{PEER}"));
    h.check();
    h.exchange();
    let mut events = Vec::new();
    let mut steps = 0;
    while h.now < start + Duration::from_secs(200) && steps < 1_000 {
        events.extend(std::iter::from_fn(|| h.ep.poll_event()));
        if h.now >= start + Duration::from_secs(100) && h.ep.call_id(answered).is_some() {
            h.ep.hangup(h.now, answered);
            h.check();
            h.exchange();
        }
        if !h.step() {
            break;
        }
        steps += 1;
    }
    events.extend(std::iter::from_fn(|| h.ep.poll_event()));
    let end = |call| {
        events.iter().find_map(|e| match e {
            Event::Ended { call: c, end } if *c == call => Some(end.clone()),
            _ => None,
        })
    };
    assert_eq!(end(answered).map(|e| e.hangup), Some(Hangup::Local));
    assert_eq!(end(ringing).map(|e| e.outcome), Some(Outcome::NoAnswer));
    assert_eq!(end(silent).map(|e| e.status), Some(408));
    let refreshes = events
        .iter()
        .filter(|e| matches!(e, Event::Registration { reg: r, state: RegistrationState::Registered { .. } } if *r == reg))
        .count();
    assert!(
        refreshes >= 3,
        "registration refreshed on its timer: {refreshes}"
    );
    assert!(
        h.checks > 30,
        "the scenario exercised the wake-ups: {}",
        h.checks
    );
}
