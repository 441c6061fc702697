//! Tests of SDP parsing, offers and negotiation.

use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

fn g711_offer() -> OfferParams {
    OfferParams::g711(42, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 40000)
}

fn neg(answer: &str) -> Result<NegotiatedMedia, SdpError> {
    negotiate(&g711_offer(), &parse(answer.as_bytes())?)
}

#[test]
fn an_inactive_offer_says_so_instead_of_sendrecv() {
    let mut p = g711_offer();
    p.inactive = true;
    let body = build_offer(&p);
    assert!(body.ends_with("a=ptime:20\r\na=inactive\r\n"), "{body}");
    assert!(!body.contains("sendrecv"), "{body}");
    assert_eq!(
        parse(body.as_bytes()).unwrap().media[0].direction,
        Some(Direction::Inactive)
    );
}

#[test]
fn offer_is_exact() {
    let body = build_offer(&g711_offer());
    assert_eq!(
        body,
        "v=0\r\n\
         o=- 42 42 IN IP4 192.0.2.10\r\n\
         s=-\r\n\
         c=IN IP4 192.0.2.10\r\n\
         t=0 0\r\n\
         m=audio 40000 RTP/AVP 0 8 101\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n"
    );
}

#[test]
fn offer_ipv6_opus_and_no_dtmf() {
    let mut p = OfferParams::g711(7, IpAddr::V6(Ipv6Addr::LOCALHOST), 5004);
    p.version = 8;
    p.codecs.insert(0, OfferCodec::opus(111));
    p.telephone_event_pt = None;
    p.ptime_ms = 0;
    let body = build_offer(&p);
    assert!(body.contains("o=- 7 8 IN IP6 ::1\r\n"));
    assert!(body.contains("c=IN IP6 ::1\r\n"));
    assert!(body.contains("m=audio 5004 RTP/AVP 111 0 8\r\n"));
    assert!(body.contains("a=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\n"));
    assert!(!body.contains("telephone-event"));
    assert!(!body.contains("ptime"));
    let sdp = parse(body.as_bytes()).unwrap();
    assert_eq!(sdp.media[0].fmtp(111), Some("useinbandfec=1"));
    let n = negotiate(&p, &sdp).unwrap();
    assert_eq!(
        (n.codec, n.payload_type, n.clock_rate),
        ("opus", 111, 48000)
    );
    assert_eq!(n.remote_rtp, "[::1]:5004".parse().unwrap());
    assert_eq!(n.telephone_event_pt, None);
}

#[test]
fn offer_round_trips_through_parse() {
    let text = build_offer(&g711_offer());
    let sdp = parse(text.as_bytes()).unwrap();
    let o = sdp.origin.as_ref().unwrap();
    assert_eq!((&*o.session_id, &*o.address), ("42", "192.0.2.10"));
    let m = &sdp.media[0];
    assert_eq!(m.payload_types().collect::<Vec<_>>(), [0, 8, 101]);
    assert_eq!(m.rtpmap(101).unwrap().encoding, "telephone-event");
    assert_eq!(m.fmtp(101), Some("0-16"));
    assert_eq!(m.ptime, Some(20));
    assert_eq!(m.direction, Some(Direction::SendRecv));
}

#[test]
fn typical_carrier_answer() {
    let n = neg("v=0\r\n\
         o=root 1234 1235 IN IP4 203.0.113.5\r\n\
         s=call\r\n\
         c=IN IP4 203.0.113.5\r\n\
         t=0 0\r\n\
         m=audio 17000 RTP/AVP 8 101\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\n\
         a=ptime:20\r\n\
         a=maxptime:150\r\n\
         a=sendrecv\r\n")
    .unwrap();
    assert_eq!(n.remote_rtp, "203.0.113.5:17000".parse().unwrap());
    assert_eq!(n.remote_rtcp, Some("203.0.113.5:17001".parse().unwrap()));
    assert!(!n.rtcp_mux);
    assert_eq!((n.payload_type, n.codec, n.clock_rate), (8, "PCMA", 8000));
    assert_eq!(n.ptime_ms, 20);
    assert_eq!(n.maxptime_ms, Some(150));
    assert_eq!(n.telephone_event_pt, Some(101));
    assert_eq!(n.direction, Direction::SendRecv);
}

#[test]
fn static_pt_without_rtpmap_lf_lines_and_answer_order() {
    let n = neg("v=0\nc=IN IP4 198.51.100.1\nm=audio 3000 RTP/AVP 18 8 0\n").unwrap();
    // 18 (G.729) was not offered; 8 comes before 0 in the answer.
    assert_eq!((n.payload_type, n.codec), (8, "PCMA"));
    assert_eq!(n.ptime_ms, 20, "our ptime when the answer has none");
    assert_eq!(n.telephone_event_pt, None);
}

#[test]
fn dynamic_renumbering_is_followed() {
    let n = neg(
        "v=0\r\nc=IN IP4 198.51.100.1\r\nm=audio 3000 RTP/AVP 0 96\r\n\
         a=rtpmap:96 TELEPHONE-EVENT/8000\r\na=ptime:30\r\n",
    )
    .unwrap();
    assert_eq!((n.payload_type, n.telephone_event_pt), (0, Some(96)));
    assert_eq!(n.ptime_ms, 30);
}

#[test]
fn telephone_event_alone_is_no_codec() {
    let e = neg(
        "v=0\r\nc=IN IP4 198.51.100.1\r\nm=audio 3000 RTP/AVP 101\r\n\
         a=rtpmap:101 telephone-event/8000\r\n",
    );
    assert_eq!(e, Err(SdpError::NoAcceptableCodec));
    let e = neg("v=0\r\nc=IN IP4 198.51.100.1\r\nm=audio 3000 RTP/AVP 18 97\r\n");
    assert_eq!(e, Err(SdpError::NoAcceptableCodec));
    // Right name, wrong clock.
    let e = neg(
        "v=0\r\nc=IN IP4 198.51.100.1\r\nm=audio 3000 RTP/AVP 96\r\n\
         a=rtpmap:96 PCMU/16000\r\n",
    );
    assert_eq!(e, Err(SdpError::NoAcceptableCodec));
}

#[test]
fn rejected_missing_and_unsupported() {
    assert_eq!(
        neg("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 0 RTP/AVP 0\r\n"),
        Err(SdpError::StreamRejected)
    );
    assert_eq!(
        neg("v=0\r\nm=audio 5000 RTP/AVP 0\r\n"),
        Err(SdpError::MissingConnection)
    );
    assert_eq!(
        neg("v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 5000 RTP/AVP 31\r\n"),
        Err(SdpError::NoAudio)
    );
    assert_eq!(
        neg("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5000 RTP/SAVP 0\r\n"),
        Err(SdpError::UnsupportedTransport("RTP/SAVP".into()))
    );
    assert_eq!(
        neg("v=0\r\nc=IN IP4 media.example.com\r\nm=audio 5000 RTP/AVP 0\r\n"),
        Err(SdpError::UnresolvedConnection("media.example.com".into()))
    );
}

#[test]
fn ipv6_and_media_level_connection_override() {
    // RFC 5118 §4.6 shape: no session c=, one per stream, mixed families.
    let sdp = parse(
        b"v=0\r\no=bob 280744730 28977631 IN IP4 host.example.com\r\ns=\r\nt=0 0\r\n\
          m=audio 22334 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\n\
          m=video 6024 RTP/AVP 107\r\nc=IN IP6 2001:db8::1\r\n\
          a=rtpmap:107 H263-1998/90000\r\n",
    )
    .unwrap();
    assert_eq!(sdp.media.len(), 2);
    assert_eq!(
        sdp.media[1].connections[0].ip,
        Some("2001:db8::1".parse().unwrap())
    );
    let n = negotiate(&g711_offer(), &sdp).unwrap();
    assert_eq!(n.remote_rtp, "192.0.2.1:22334".parse().unwrap());

    // Session-level IPv4, media-level IPv6 overriding it.
    let n = neg("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 6000 RTP/AVP 0\r\n\
         c=IN IP6 2001:db8::20\r\nc=IN IP6 2001:db8::21\r\n")
    .unwrap();
    assert_eq!(n.remote_rtp, "[2001:db8::20]:6000".parse().unwrap());
}

#[test]
fn ipv4_mapped_ipv6_is_canonicalised() {
    let n = neg("v=0\r\nc=IN IP6 ::ffff:192.0.2.2\r\nm=audio 6000 RTP/AVP 0\r\n").unwrap();
    assert_eq!(n.remote_rtp, "192.0.2.2:6000".parse().unwrap());
}

#[test]
fn family_mismatch_is_not_an_ip() {
    let sdp = parse(b"v=0\r\nc=IN IP4 2001:db8::1\r\nm=audio 1 RTP/AVP 0\r\n").unwrap();
    assert_eq!(sdp.connections[0].ip, None);
    let sdp = parse(b"v=0\r\nc=IN IP4 224.2.1.1/127/3\r\n").unwrap();
    assert_eq!(sdp.connections[0].address, "224.2.1.1");
    assert_eq!(sdp.connections[0].ip, Some("224.2.1.1".parse().unwrap()));
}

#[test]
fn rtcp_mux_and_rtcp_attribute() {
    let n = neg("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 6000 RTP/AVP 0\r\na=rtcp-mux\r\n").unwrap();
    assert!(n.rtcp_mux);
    assert_eq!(n.remote_rtcp, Some(n.remote_rtp));
    let n = neg("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 6000 RTP/AVP 0\r\na=rtcp:7001\r\n").unwrap();
    assert_eq!(n.remote_rtcp, Some("192.0.2.1:7001".parse().unwrap()));
    let n = neg("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 6000 RTP/AVP 0\r\n\
         a=rtcp:53020 IN IP6 2001:db8::9\r\n")
    .unwrap();
    assert_eq!(n.remote_rtcp, Some("[2001:db8::9]:53020".parse().unwrap()));
    let n = neg("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 65535 RTP/AVP 0\r\n").unwrap();
    assert_eq!(n.remote_rtcp, None);
}

#[test]
fn directions() {
    let n = neg("v=0\r\nc=IN IP4 192.0.2.1\r\na=recvonly\r\nm=audio 6000 RTP/AVP 0\r\n").unwrap();
    assert_eq!(n.direction, Direction::RecvOnly, "session level applies");
    assert!(n.direction.writer_receives() && !n.direction.writer_sends());
    let n = neg(
        "v=0\r\nc=IN IP4 192.0.2.1\r\na=recvonly\r\nm=audio 6000 RTP/AVP 0\r\n\
         a=inactive\r\n",
    )
    .unwrap();
    assert_eq!(n.direction, Direction::Inactive, "media level overrides");
    let n = neg("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 6000 RTP/AVP 0\r\na=sendonly\r\n").unwrap();
    assert_eq!(n.direction, Direction::SendOnly);
    let n = neg("v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 6000 RTP/AVP 0\r\n").unwrap();
    assert_eq!(n.direction, Direction::SendOnly, "RFC 2543 hold address");
}

#[test]
fn first_audio_stream_is_used() {
    let n = neg("v=0\r\nc=IN IP4 192.0.2.1\r\nm=video 0 RTP/AVP 31\r\n\
         m=audio 6000 RTP/AVP 8\r\nm=audio 7000 RTP/AVP 0\r\n")
    .unwrap();
    assert_eq!((n.remote_rtp.port(), n.codec), (6000, "PCMA"));
}

#[test]
fn tolerant_parsing() {
    // RFC 4475 sdp01: an rtpmap without a clock rate is kept raw, not fatal.
    let sdp = parse(
        b"v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.5\r\ns=-\r\n\
          c=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\n\
          m=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n\r\n",
    )
    .unwrap();
    assert!(sdp.media[1].rtpmaps.is_empty());
    assert_eq!(
        sdp.media[1].attribute("rtpmap").unwrap().value.as_deref(),
        Some("31 LPC")
    );
    // Fractional ptime, port count, unknown lines, non-UTF-8 session name.
    let sdp = parse(
        b"v=0\ns=\xff\xfe\nb=AS:64\nc=IN IP4 192.0.2.1\nm=audio 6000/2 RTP/AVP 0\n\
          a=ptime:20.0\na=x-foo\n",
    )
    .unwrap();
    assert_eq!(sdp.media[0].port_count, Some(2));
    assert_eq!(sdp.media[0].ptime, Some(20));
    assert_eq!(sdp.media[0].attribute("x-foo").unwrap().value, None);
    assert_eq!(sdp.session_name, "\u{fffd}\u{fffd}");
}

#[test]
fn hostile_input_is_an_error() {
    assert_eq!(parse(b""), Err(SdpError::NotSdp));
    assert_eq!(parse(b"\r\n\r\n"), Err(SdpError::NotSdp));
    assert_eq!(parse(b"v=1\r\n"), Err(SdpError::NotSdp));
    assert_eq!(parse(b"SIP/2.0 200 OK\r\n"), Err(SdpError::NotSdp));
    assert_eq!(parse(b"v=0\r\nm audio\r\n"), Err(SdpError::BadLine(2)));
    assert_eq!(parse(b"v=0\r\n=x\r\n"), Err(SdpError::BadLine(2)));
    assert_eq!(
        parse(b"v=0\r\nm=audio 70000 RTP/AVP 0\r\n"),
        Err(SdpError::BadMedia(2))
    );
    assert_eq!(parse(b"v=0\r\nm=audio\r\n"), Err(SdpError::BadMedia(2)));
    assert_eq!(
        parse(b"v=0\r\nc=IN IP4\r\n"),
        Err(SdpError::BadConnection(2))
    );
    assert_eq!(
        parse(b"v=0\r\nc=IN IP4 /5\r\n"),
        Err(SdpError::BadConnection(2))
    );
    // Multi-byte UTF-8 where a type letter is expected must not split a char.
    assert_eq!(
        parse("v=0\r\né=x\r\n".as_bytes()),
        Err(SdpError::BadLine(2))
    );
    assert_eq!(parse("v=0\r\naé\r\n".as_bytes()), Err(SdpError::BadLine(2)));
    // Out-of-range numbers inside attributes are ignored, not fatal.
    let sdp = parse(
        b"v=0\r\nm=audio 1 RTP/AVP 300 -1 0\r\na=rtpmap:300 X/1\r\na=rtpmap:0 PCMU/99999999999\r\n\
          a=ptime:99999999999\r\na=rtcp:99999\r\na=fmtp:\r\n",
    )
    .unwrap();
    let m = &sdp.media[0];
    assert_eq!(m.payload_types().collect::<Vec<_>>(), [0]);
    assert!(m.rtpmaps.is_empty() && m.ptime.is_none() && m.rtcp.is_none());
}

#[test]
fn fuzz_exercise_accepts_its_own_checks() {
    fuzz_exercise(b"");
    fuzz_exercise(b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/AVP 0\r\n");
    fuzz_exercise(&[0xff; 64]);
}

mod srtp {
    use super::*;
    use crate::media::srtp::MasterKey;
    use crate::sip::sdp::crypto::SrtpOffer;

    const THEIR_KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

    fn offer(required: bool) -> OfferParams {
        let mut o = g711_offer();
        o.srtp = Some(SrtpOffer {
            key: MasterKey::new([1; 16], [2; 14]),
            required,
        });
        o
    }

    fn answer(profile: &str, crypto: Option<&str>) -> SessionDescription<'static> {
        let mut s = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
             m=audio 30000 {profile} 8\r\na=rtpmap:8 PCMA/8000\r\n"
        );
        if let Some(c) = crypto {
            s.push_str(&format!("a=crypto:{c}\r\n"));
        }
        parse(s.as_bytes()).unwrap().into_owned()
    }

    #[test]
    fn required_offers_savp_with_our_key_and_optional_offers_avp() {
        let body = build_offer(&offer(true));
        assert!(
            body.contains("m=audio 40000 RTP/SAVP 0 8 101\r\n"),
            "{body}"
        );
        let key = MasterKey::new([1; 16], [2; 14]).to_inline();
        assert!(body.contains(&format!(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n"
        )));
        let body = build_offer(&offer(false));
        assert!(body.contains("m=audio 40000 RTP/AVP 0 8 101\r\n"));
        assert!(body.contains("a=crypto:1 "));
        assert!(!build_offer(&g711_offer()).contains("crypto"));
    }

    #[test]
    fn answer_key_is_taken_and_its_absence_judged_by_the_mode() {
        let good = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{THEIR_KEY}");
        let m = negotiate(&offer(true), &answer("RTP/SAVP", Some(&good))).unwrap();
        let keys = m.srtp.unwrap();
        assert_eq!(keys.remote.to_inline(), THEIR_KEY);
        assert_eq!(keys.local, MasterKey::new([1; 16], [2; 14]));
        let m = negotiate(&offer(false), &answer("RTP/AVP", Some(&good))).unwrap();
        assert!(m.srtp.is_some(), "best effort: the answer took the key");
        let m = negotiate(&offer(false), &answer("RTP/AVP", None)).unwrap();
        assert_eq!(m.srtp, None, "best effort: plain when refused");
        assert_eq!(
            negotiate(&offer(true), &answer("RTP/AVP", None)),
            Err(SdpError::NoUsableCrypto)
        );
        let wrong_tag = format!("2 AES_CM_128_HMAC_SHA1_80 inline:{THEIR_KEY}");
        assert_eq!(
            negotiate(&offer(true), &answer("RTP/SAVP", Some(&wrong_tag))),
            Err(SdpError::NoUsableCrypto)
        );
        assert!(matches!(
            negotiate(&g711_offer(), &answer("RTP/SAVP", Some(&good))),
            Err(SdpError::UnsupportedTransport(_))
        ));
    }
}

#[test]
fn a_parsed_body_detaches_unchanged_and_outlives_it() {
    let body = "v=0\r\no=- 7 8 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
                m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n\
                a=fmtp:101 0-16\r\na=rtcp:4005 IN IP4 192.0.2.10\r\na=sendonly\r\n"
        .to_string();
    let borrowed = parse(body.as_bytes()).unwrap();
    let owned = borrowed.clone().into_owned();
    assert_eq!(owned, borrowed);
    drop(borrowed);
    drop(body);
    let m = &owned.media[0];
    assert_eq!(m.fmtp(101), Some("0-16"));
    let rtcp = m.rtcp.as_ref().unwrap();
    assert_eq!(
        (rtcp.port, &*rtcp.connection.as_ref().unwrap().address),
        (4005, "192.0.2.10")
    );
    assert_eq!(owned.direction_for(m), Direction::SendOnly);
}
