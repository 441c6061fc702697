//! Calls that come to us, checked by an independent peer: SIPp (`sipp`, Debian package
//! `sip-tester`) is the caller (`tests/sipp/uac_inbound_dtmf.xml`) and a minimal answerer
//! built on the engine's SIP driver takes the call: it rings, accepts with an SDP answer,
//! decodes the RFC 4733 digit SIPp plays from Debian's pcap and the INFO digit, and sees
//! SIPp's BYE. SIPp's own checks (To tag, Record-Route echoed, codec answered, Require:
//! timer) fail the call if our wire behaviour is wrong.
//!
//! Without `sipp` on PATH the test prints why and passes, unless `CI` is set: then it fails.

use e2e::{free_media_port, free_port, missing};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use engine::media::dtmf::{parse_info, DtmfDecoder};
use engine::net::sip_driver::SipDriver;
use engine::sip::endpoint::{AnswerParams, EndpointConfig, Event, Hangup};
use engine::sip::outcome::Outcome;
use engine::sip::sdp::OfferCodec;

const PCAP: &str = "/usr/share/sip-tester/dtmf_2833_1.pcap";
const NUMBER: &str = "+390771286891";

/// What the answerer saw of the call.
#[derive(Debug, Default)]
struct Seen {
    incoming: Option<String>,
    answered: bool,
    rtp_digits: String,
    info_digits: String,
    end: Option<(Outcome, Hangup)>,
}

/// SIPp and Debian's RFC 4733 pcaps it plays.
fn sipp_available() -> bool {
    if !e2e::sipp_available() {
        return false;
    }
    let ok = Path::new(PCAP).is_file();
    if !ok {
        missing(&format!(
            "{PCAP} is missing; install the Debian package sip-tester"
        ));
    }
    ok
}

#[test]
fn sipp_calls_in_and_keys_a_digit_by_rfc4733_and_one_by_info() {
    call_in("u1");
}

#[test]
fn sipp_calls_in_over_tcp() {
    call_in("t1");
}

/// One call from SIPp over `transport` (`u1` UDP, `t1` TCP, SIPp's `-t` values).
fn call_in(transport: &str) {
    if !sipp_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (seen, sipp_ok, logs) = rt.block_on(async {
        let mut cfg = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
        cfg.inbound_calls = true;
        let (sip, mut events) = SipDriver::start("127.0.0.1:0".parse().unwrap(), cfg)
            .await
            .unwrap();
        let rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let rtp_port = rtp.local_addr().unwrap().port();
        let target: SocketAddr = sip.local_addr();
        let port = free_port();
        let mut child = Command::new("sipp")
            .arg("-sf")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("sipp/uac_inbound_dtmf.xml"))
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &port.to_string()])
            .args(["-mp", &free_media_port().to_string()])
            .args(["-s", NUMBER, "-m", "1", "-timeout", "30s", "-timeout_error"])
            .args(["-t", transport])
            .arg("-trace_err")
            .arg("-error_file")
            .arg(dir.path().join("errors.log"))
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(dir.path().join("messages.log"))
            .arg("-nostdin")
            .arg(target.to_string())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sipp");
        let mut seen = Seen::default();
        let mut dtmf = DtmfDecoder::new(101);
        let mut buf = [0u8; 2048];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        let status = loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(Event::Incoming { call, invite }) => {
                        seen.incoming = invite.asserted_identity.clone();
                        sip.ring(call);
                        let params = AnswerParams {
                            session_id: 1,
                            addr: "127.0.0.1".parse().unwrap(),
                            rtp_port,
                            codecs: vec![OfferCodec::pcma(), OfferCodec::pcmu()],
                            ptime_ms: 20,
                            telephone_event_pt: Some(101),
                        };
                        let media = sip.accept(call, params).await.unwrap().unwrap();
                        assert_eq!((media.codec, media.telephone_event_pt), ("PCMA", Some(101)));
                    }
                    Some(Event::Answered { .. }) => seen.answered = true,
                    Some(Event::Info { content_type, body, .. }) => {
                        if let Some(d) = parse_info(&content_type, &body) {
                            seen.info_digits.push(d.digit);
                        }
                    }
                    Some(Event::Ended { end, .. }) => seen.end = Some((end.outcome, end.hangup)),
                    Some(_) => {}
                    None => panic!("SIP driver stopped"),
                },
                r = rtp.recv_from(&mut buf) => {
                    if let Ok((n, _)) = r {
                        dtmf.handle_rtp(&buf[..n]);
                        while let Some(e) = dtmf.poll_event() {
                            seen.rtp_digits.push(e.digit);
                        }
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    if let Ok(Some(st)) = child.try_wait() {
                        break Some(st);
                    }
                    if tokio::time::Instant::now() >= deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        break None;
                    }
                }
            }
        };
        // Let the endpoint finish what SIPp's last message started.
        let settle = tokio::time::Instant::now() + Duration::from_millis(300);
        while seen.end.is_none() {
            match tokio::time::timeout_at(settle, events.recv()).await {
                Ok(Some(Event::Ended { end, .. })) => seen.end = Some((end.outcome, end.hangup)),
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        let logs = std::fs::read_to_string(dir.path().join("messages.log")).unwrap_or_default()
            + &std::fs::read_to_string(dir.path().join("errors.log")).unwrap_or_default();
        (seen, status.is_some_and(|s| s.success()), logs)
    });
    assert!(sipp_ok, "SIPp's checks failed: {seen:?}\n{logs}");
    assert_eq!(
        seen.incoming.as_deref(),
        Some("sip:+393331234567@carrier.example")
    );
    assert!(seen.answered, "Answered on SIPp's ACK");
    assert_eq!(seen.rtp_digits, "1", "RFC 4733 digit from the pcap\n{logs}");
    assert_eq!(seen.info_digits, "5");
    assert_eq!(seen.end, Some((Outcome::Answered, Hangup::Remote)));
}
