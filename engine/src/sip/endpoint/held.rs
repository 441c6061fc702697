//! What the endpoint holds for calls that are over but whose INVITE transactions are still
//! within Timer M (RFC 6026 Accepted), measured in heap bytes on virtual time.
//!
//! The test binary's allocator counts, per thread, the bytes allocated and not yet freed;
//! the endpoint runs on the test's thread only, so the count's change across a run is what
//! the endpoint kept (table capacities included), whatever other tests do meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use super::*;
use crate::sip::message::parse;

/// The system allocator, counting this thread's live heap bytes.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // During thread teardown the slot may be gone; those bytes are nobody's measurement.
    let _ = LIVE.try_with(|b| b.set(b.get() + delta));
}

fn live_bytes() -> isize {
    LIVE.with(|b| b.get())
}

// SAFETY: every call goes straight to `System` with the caller's arguments; the counting
// touches only a const-initialised thread-local `Cell` (no allocation, no destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` is the caller's, unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const PEER: &str = "127.0.0.2:5060";
const ANSWER: &str = "v=0\r\no=peer 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\n\
t=0 0\r\nm=audio 40000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";

/// The far end: 200 with SDP to an INVITE, sent twice (the second a retransmission, as
/// when our ACK is late), and 200 to a BYE.
fn far_end(bytes: &[u8]) -> Vec<Vec<u8>> {
    let Ok(Message::Request(r)) = parse(bytes) else {
        return Vec::new();
    };
    match r.method {
        Method::Invite => {
            let ok = MessageWriter::response_to(&r, 200, "OK", Some("peer"))
                .header("Contact", format!("<sip:peer@{PEER}>"))
                .finish_with_body(Some("application/sdp"), ANSWER.as_bytes());
            vec![ok.clone(), ok]
        }
        Method::Bye => vec![MessageWriter::response_to(&r, 200, "OK", Some("peer")).finish()],
        _ => Vec::new(),
    }
}

/// Delivers what the endpoint sends to the far end and its replies back until quiet;
/// returns the ACKs sent and whether a call ended.
fn exchange(ep: &mut Endpoint, now: Instant) -> (usize, bool) {
    let (mut acks, mut ended) = (0, false);
    for _ in 0..8 {
        let out: Vec<Transmit> = std::iter::from_fn(|| ep.poll_transmit()).collect();
        if out.is_empty() {
            break;
        }
        for t in out {
            acks += usize::from(t.bytes.starts_with(b"ACK "));
            for reply in far_end(&t.bytes) {
                ep.handle_datagram(now, PEER.parse().expect("addr"), Transport::Udp, &reply);
            }
        }
        while let Some(e) = ep.poll_event() {
            ended |= matches!(e, Event::Ended { .. });
        }
    }
    (acks, ended)
}

/// Places `n` calls `gap` apart, each answered (its 2xx retransmitted once), hung up and
/// its BYE answered before the next; handles every timer due on the way.
fn calls(ep: &mut Endpoint, now: &mut Instant, n: usize, gap: Duration) {
    for _ in 0..n {
        let call = ep.place_call(*now, super::tests::params(Duration::from_secs(30)));
        let (acks, _) = exchange(ep, *now);
        assert_eq!(acks, 2, "the retransmitted 2xx is acknowledged again");
        ep.hangup(*now, call);
        let (_, ended) = exchange(ep, *now);
        assert!(ended, "the BYE is answered");
        *now += gap;
        ep.handle_timeout(*now);
        exchange(ep, *now);
    }
}

/// Bytes the endpoint may keep per call whose INVITE is Accepted (its call over): the
/// branch key, call handle and Timer M (40 bytes) at a hash table's and a queue's
/// load factors after doubling. The whole transaction it used to keep was ~1 KiB.
const HELD_PER_ACCEPTED_CALL: isize = 96;

#[test]
fn calls_over_within_timer_m_cost_a_small_record_each() {
    let mut cfg = EndpointConfig::new("127.0.0.1:5060".parse().expect("addr"));
    cfg.seed = Some(3);
    // Timer K (T4) short, so that the finished BYEs' window is not what is measured.
    cfg.timers.t4 = Duration::from_millis(100);
    let mut ep = Endpoint::new(cfg);
    let mut now = Instant::now();
    // One call through and retired first: lazily made state is not per call.
    calls(&mut ep, &mut now, 1, Duration::from_secs(40));
    now += Duration::from_secs(40);
    ep.handle_timeout(now);
    assert_eq!(ep.transactions(), 0);
    let before = live_bytes();

    // 2,500 calls in 25 s: all of them over, every INVITE still within Timer M (32 s).
    const N: usize = 2_500;
    let first = now;
    calls(&mut ep, &mut now, N, Duration::from_millis(10));
    now += Duration::from_millis(500);
    ep.handle_timeout(now);
    assert!(now < first + Duration::from_secs(32));
    assert_eq!(ep.active_calls(), 0);
    assert_eq!(ep.transactions(), N, "only the Accepted INVITEs are left");
    let per_call = (live_bytes() - before) / N as isize;
    eprintln!("held per call over within Timer M: {per_call} bytes");
    assert!(
        per_call <= HELD_PER_ACCEPTED_CALL,
        "{per_call} bytes held per call over, more than {HELD_PER_ACCEPTED_CALL}"
    );

    // Timer M ends them all, and nothing else is waited for.
    now = first + Duration::from_secs(60);
    ep.handle_timeout(now);
    assert_eq!(ep.transactions(), 0);
    assert_eq!(ep.poll_timeout(), None);
}
