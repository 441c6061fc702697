//! The endpoint's signalling cost per call on virtual time: a UAC [`Endpoint`] places a
//! call, a scripted peer answers 200 with SDP, the endpoint ACKs, hangs up (BYE) and the
//! peer answers 200. Only the endpoint's own work is timed (placing, feeding responses,
//! draining transmits and events, and the timers that retire the finished transactions);
//! the peer's parse/build is excluded. No socket and no clock: time jumps.
//!
//! `live` keeps `L` calls answered at once (50,000 shows the tables stay O(1) with that
//! many dialogs), placing and ending one per step.
//!
//! Run: `cargo bench -p engine --bench sip_endpoint -- --warm-up-time 1 --measurement-time 3`

use std::collections::VecDeque;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::sip::endpoint::{CallHandle, CallParams, Endpoint, EndpointConfig, Event, Transport};
use engine::sip::headers::Method;
use engine::sip::sdp::OfferParams;
use engine::sip::{parse, Message, MessageWriter};

const ANSWER: &str = "v=0\r\no=- 998877 998877 IN IP4 127.0.0.2\r\ns=-\r\n\
c=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 31000 RTP/AVP 8 101\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n";

fn peer_addr() -> SocketAddr {
    "127.0.0.2:5060".parse().expect("addr")
}

fn params() -> CallParams {
    let proxy = peer_addr();
    CallParams {
        proxy,
        request_uri: "sip:+390771286891@127.0.0.2:5060".into(),
        to_uri: "sip:+390771286891@127.0.0.2:5060".into(),
        from_uri: "sip:comune@127.0.0.1".into(),
        from_display: None,
        offer: OfferParams::g711(1, "127.0.0.1".parse().expect("ip"), 20000),
        ring_timeout: Duration::from_secs(30),
        credentials: None,
        transport: Some(Transport::Udp),
        extra_headers: Vec::new(),
        trunk: Some("bench".into()),
    }
}

/// The scripted UAS: 200 with SDP to an INVITE, 200 to a BYE, nothing to an ACK.
fn peer_reply(bytes: &[u8]) -> Option<Vec<u8>> {
    let Ok(Message::Request(r)) = parse(bytes) else {
        return None;
    };
    match r.method {
        Method::Invite => Some(
            MessageWriter::response_to(&r, 200, "OK", Some("uas1"))
                .header("Contact", "<sip:uas@127.0.0.2:5060>")
                .finish_with_body(Some("application/sdp"), ANSWER.as_bytes()),
        ),
        Method::Bye => Some(MessageWriter::response_to(&r, 200, "OK", Some("uas1")).finish()),
        _ => None,
    }
}

/// The endpoint, its virtual clock and the time spent inside it.
struct Run {
    ep: Endpoint,
    now: Instant,
    spent: Duration,
}

impl Run {
    fn new() -> Self {
        let mut cfg = EndpointConfig::new("127.0.0.1:5060".parse().expect("addr"));
        cfg.seed = Some(1);
        Run {
            ep: Endpoint::new(cfg),
            now: Instant::now(),
            spent: Duration::ZERO,
        }
    }

    /// Times `f` on the endpoint.
    fn timed<R>(&mut self, f: impl FnOnce(&mut Endpoint, Instant) -> R) -> R {
        let t = Instant::now();
        let r = f(&mut self.ep, self.now);
        self.spent += t.elapsed();
        r
    }

    /// Delivers the endpoint's transmits to the peer and its replies back until quiet;
    /// returns whether the call was answered or ended.
    fn exchange(&mut self) -> (bool, bool) {
        let (mut answered, mut ended) = (false, false);
        for _ in 0..8 {
            let out: Vec<Vec<u8>> = self.timed(|ep, _| {
                std::iter::from_fn(|| ep.poll_transmit())
                    .map(|t| t.bytes.to_vec())
                    .collect()
            });
            if out.is_empty() {
                break;
            }
            for m in out {
                if let Some(reply) = peer_reply(&m) {
                    self.timed(|ep, now| {
                        ep.handle_datagram(now, peer_addr(), Transport::Udp, &reply)
                    });
                }
            }
            self.timed(|ep, _| {
                while let Some(e) = ep.poll_event() {
                    match e {
                        Event::Answered { .. } => answered = true,
                        Event::Ended { .. } => ended = true,
                        _ => {}
                    }
                }
            });
        }
        (answered, ended)
    }

    /// Jumps past Timers K and M, retiring the finished transactions.
    fn retire(&mut self) {
        self.now += Duration::from_secs(40);
        self.timed(|ep, now| ep.handle_timeout(now));
    }

    fn place(&mut self) -> CallHandle {
        let h = self.timed(|ep, now| ep.place_call(now, params()));
        let (answered, _) = self.exchange();
        assert!(answered, "the scripted peer answers");
        h
    }

    fn hang_up(&mut self, h: CallHandle) {
        self.timed(|ep, now| ep.hangup(now, h));
        let (_, ended) = self.exchange();
        assert!(ended, "the BYE is answered");
    }
}

fn per_call(c: &mut Criterion) {
    let mut g = c.benchmark_group("endpoint");
    g.throughput(Throughput::Elements(1));
    g.bench_function("invite_200_ack_bye_200", |b| {
        b.iter_custom(|iters| {
            let mut run = Run::new();
            for i in 0..iters {
                let h = run.place();
                run.now += Duration::from_millis(1);
                run.hang_up(black_box(h));
                if i % 1_000 == 999 {
                    run.retire();
                }
            }
            run.retire();
            run.spent
        })
    });
    for live in [1_000usize, 10_000, 50_000] {
        g.bench_with_input(BenchmarkId::new("live", live), &live, |b, &live| {
            let mut run = Run::new();
            let mut calls: VecDeque<CallHandle> = (0..live).map(|_| run.place()).collect();
            run.retire();
            b.iter_custom(|iters| {
                run.spent = Duration::ZERO;
                for i in 0..iters {
                    calls.push_back(run.place());
                    run.now += Duration::from_millis(1);
                    let old = calls.pop_front().expect("live calls");
                    run.hang_up(old);
                    if i % 1_000 == 999 {
                        run.retire();
                    }
                }
                run.spent
            })
        });
    }
    g.finish();
}

criterion_group!(benches, per_call);
criterion_main!(benches);
