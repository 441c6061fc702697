//! The body of the SIP parser fuzz target, shared with the corpus replay test so that both
//! run exactly the same code. Not part of the engine's API.
//!
//! Besides "no panic", it checks a few invariants that must hold for any input:
//! framing never claims more bytes than it was given, the body lies inside the input, and
//! a response built with [`MessageWriter::response_to`] from a request that parsed parses
//! again with the same Call-ID, CSeq and top Via.

use super::builder::MessageWriter;
use super::headers::{NameAddr, Via};
use super::message::{parse, parse_framed, stream_message_len, Headers, Message};
use super::uri::Uri;

/// Runs one input through every entry point of the codec. Panics only when an invariant
/// above is broken (or the codec itself panics), which is what the fuzzer looks for.
pub fn exercise(data: &[u8]) {
    if let Ok(Some(n)) = stream_message_len(data) {
        assert!(n <= data.len(), "stream_message_len beyond the buffer");
    }
    if let Ok((msg, used)) = parse_framed(data, true) {
        assert!(
            used <= data.len(),
            "parse_framed consumed beyond the buffer"
        );
        touch_message(&msg);
    }
    if let Ok(msg) = parse(data) {
        touch_message(&msg);
        if let Message::Request(req) = &msg {
            let (has_via, has_call_id, has_cseq) = (
                req.headers.top_via().is_ok(),
                req.headers.call_id().is_ok(),
                req.headers.cseq().is_ok(),
            );
            for (status, tag) in [(100, None), (200, Some("fz9")), (487, Some("t"))] {
                let bytes = MessageWriter::response_to(req, status, "Reason", tag).finish();
                let resp = match parse(&bytes) {
                    Ok(r) => r,
                    Err(e) => panic!(
                        "response_to built an unparsable response ({e}):\n{}",
                        String::from_utf8_lossy(&bytes)
                    ),
                };
                touch_message(&resp);
                let Message::Response(r) = &resp else {
                    panic!("response_to built a request")
                };
                assert_eq!(r.status, status);
                let h = &r.headers;
                if has_via {
                    assert_eq!(
                        h.top_via().map(|v| v.branch()),
                        req.headers.top_via().map(|v| v.branch())
                    );
                }
                if has_call_id {
                    assert_eq!(h.call_id(), req.headers.call_id());
                }
                if has_cseq {
                    assert_eq!(h.cseq(), req.headers.cseq());
                }
            }
        }
    }
}

fn touch_message(msg: &Message<'_>) {
    let body = msg.body();
    std::hint::black_box(body.len());
    match msg {
        Message::Request(r) => {
            std::hint::black_box(r.method.as_str());
            touch_uri(&r.uri);
        }
        Message::Response(r) => {
            assert!((100..=699).contains(&r.status));
            std::hint::black_box(r.reason);
        }
    }
    touch_headers(msg.headers());
}

fn touch_headers(h: &Headers<'_>) {
    for header in h.iter() {
        std::hint::black_box((header.name.as_str(), header.value));
    }
    if let Ok(v) = h.top_via() {
        touch_via(&v);
    }
    for v in h.vias().flatten() {
        touch_via(&v);
    }
    if let Ok(f) = h.from() {
        touch_name_addr(&f);
    }
    if let Ok(t) = h.to() {
        touch_name_addr(&t);
    }
    let _ = std::hint::black_box(h.call_id());
    if let Ok(c) = h.cseq() {
        std::hint::black_box((c.seq, c.method.as_str()));
    }
    for list in [
        h.contacts(),
        h.record_routes(),
        h.routes(),
        h.p_asserted_identity(),
    ]
    .into_iter()
    .flatten()
    {
        for na in &list {
            touch_name_addr(na);
        }
    }
    let _ = std::hint::black_box(h.max_forwards());
    let _ = std::hint::black_box(h.content_length());
    std::hint::black_box(h.content_type());
    std::hint::black_box(h.retry_after());
    std::hint::black_box(h.session_expires());
    std::hint::black_box(h.min_se());
    std::hint::black_box(h.rseq());
    std::hint::black_box(h.expires());
    std::hint::black_box(h.require().count());
    std::hint::black_box(h.supported().count());
    std::hint::black_box(h.allow().count());
    std::hint::black_box(h.www_authenticate().count());
    std::hint::black_box(h.proxy_authenticate().count());
    std::hint::black_box(h.authorization().count());
}

fn touch_via(v: &Via<'_>) {
    std::hint::black_box((v.transport, v.host.to_string(), v.port));
    std::hint::black_box((v.branch(), v.received(), v.rport()));
    std::hint::black_box(v.params.iter().count());
}

fn touch_name_addr(n: &NameAddr<'_>) {
    std::hint::black_box((n.display, n.tag()));
    std::hint::black_box(n.params.iter().count());
    touch_uri(&n.uri);
}

fn touch_uri(u: &Uri<'_>) {
    std::hint::black_box((u.to_string(), u.host_port(), u.user, u.password));
    std::hint::black_box((u.is_loose_router(), u.transport_param(), u.headers));
    std::hint::black_box(u.params.iter().count());
}
