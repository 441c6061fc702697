//! Parse and serialize costs of the SIP codec for the messages a dialer handles most: a
//! carrier INVITE with an SDP offer (~1 KB) and the 200 OK that answers it.
//!
//! `parse` is the datagram parse alone (start line, header split, grammar checks of every
//! known header, Content-Length framing); `parse+tx-keys` adds what a transaction and dialog
//! layer reads of every message: Call-ID, CSeq, top Via branch, From and To tags;
//! `serialize` writes the same message with `MessageWriter`.
//!
//! Run: `cargo bench -p engine --bench sip_codec -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::sip::{parse, Message, MessageWriter};

const INVITE: &[u8] = include_bytes!("../../fuzz/corpus/sip_message/real-invite-sdp.sip");
const OK_200: &[u8] = include_bytes!("../../fuzz/corpus/sip_message/real-200-ok-sdp.sip");

const OFFER: &str = "v=0\r\no=- 1234567890 1234567890 IN IP4 198.51.100.10\r\ns=-\r\n\
c=IN IP4 198.51.100.10\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

const ANSWER: &str = "v=0\r\no=- 998877 998877 IN IP4 203.0.113.20\r\ns=-\r\n\
c=IN IP4 203.0.113.20\r\nt=0 0\r\nm=audio 31000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

/// What a transaction layer reads of each message: its keys and the dialog identifiers.
fn tx_keys(bytes: &[u8]) -> (usize, u32, usize, usize, usize) {
    let msg = parse(bytes).expect("bench message parses");
    let h = msg.headers();
    let call_id = h.call_id().unwrap();
    let cseq = h.cseq().unwrap();
    let branch = h.top_via().unwrap().branch().unwrap();
    let from_tag = h.from().unwrap().tag().unwrap();
    let to_tag = h.to().unwrap().tag().unwrap_or("");
    (
        call_id.len(),
        cseq.seq,
        branch.len(),
        from_tag.len(),
        to_tag.len(),
    )
}

fn write_invite() -> Vec<u8> {
    MessageWriter::request(
        "INVITE",
        "sip:+393471234567@trunk.carrier.example.net;user=phone",
    )
    .header(
        "Via",
        "SIP/2.0/UDP 198.51.100.10:5060;rport;branch=z9hG4bK-524287-1---a3f1c2d4e5b6a7c8",
    )
    .header("Max-Forwards", 70)
    .header(
        "From",
        "\"Comune di Gaeta\" <sip:+390771469111@198.51.100.10>;tag=as7d9f8g",
    )
    .header("To", "<sip:+393471234567@trunk.carrier.example.net>")
    .header(
        "Call-ID",
        "5f3c9a1e-2b7d-4c8e-9f01-a2b3c4d5e6f7@198.51.100.10",
    )
    .header("CSeq", "1 INVITE")
    .header(
        "Contact",
        "<sip:+390771469111@198.51.100.10:5060;transport=udp>",
    )
    .header(
        "Allow",
        "INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, INFO",
    )
    .header("Supported", "timer, 100rel, replaces")
    .header("Session-Expires", "1800;refresher=uac")
    .header("Min-SE", 90)
    .header(
        "P-Asserted-Identity",
        "\"Comune di Gaeta\" <sip:+390771469111@198.51.100.10;user=phone>",
    )
    .header("User-Agent", "dialer/0.1")
    .finish_with_body(Some("application/sdp"), OFFER.as_bytes())
}

/// The 200 OK a UAS builds from the parsed INVITE (`response_to` copies Via, From, To,
/// Call-ID and CSeq) plus its own headers and SDP answer.
fn write_200(invite: &engine::sip::Request<'_>) -> Vec<u8> {
    let mut w = MessageWriter::response_to(invite, 200, "OK", Some("8472761-1716203912"));
    w.push_header("Record-Route", "<sip:203.0.113.5;lr;ftag=as7d9f8g>");
    w.push_header("Record-Route", "<sip:203.0.113.9:5060;transport=udp;lr>");
    w.push_header("Contact", "<sip:callee@203.0.113.20:5060;transport=udp>");
    w.push_header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE");
    w.push_header("Supported", "timer");
    w.push_header("Require", "timer");
    w.push_header("Session-Expires", "1800;refresher=uas");
    w.push_header("Server", "CarrierSBC/4.2");
    w.finish_with_body(Some("application/sdp"), ANSWER.as_bytes())
}

fn bench(c: &mut Criterion) {
    let Message::Request(invite) = parse(INVITE).unwrap() else {
        panic!("INVITE is a request")
    };
    // The serialized messages are the benchmarked ones: check they are what we parse.
    assert!(parse(&write_invite()).is_ok());
    assert!(parse(&write_200(&invite)).is_ok());

    let mut g = c.benchmark_group("sip_codec");
    g.throughput(Throughput::Elements(1));
    for (name, bytes) in [("invite", INVITE), ("200ok", OK_200)] {
        g.bench_function(format!("parse/{name}_{}B", bytes.len()), |b| {
            b.iter(|| parse(black_box(bytes)).map(|m| m.body().len()))
        });
        g.bench_function(format!("parse+tx-keys/{name}"), |b| {
            b.iter(|| tx_keys(black_box(bytes)))
        });
    }
    g.bench_function("serialize/invite", |b| b.iter(write_invite));
    g.bench_function("serialize/200ok", |b| {
        b.iter(|| write_200(black_box(&invite)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
