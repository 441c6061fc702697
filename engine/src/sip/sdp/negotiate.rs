//! RFC 3264: our offer and their answer settle where, what and how often RTP goes.

use super::*;

/// What the offer/answer exchange settled for the call's audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedMedia {
    /// Where to send RTP: the audio stream's connection address (media level, else
    /// session level) and port. An IPv4-mapped IPv6 address (`::ffff:192.0.2.2`, RFC 5118
    /// §4.4) is given as the IPv4 address it names, so an IPv4 socket can reach it.
    pub remote_rtp: SocketAddr,
    /// Where to send RTCP: the RTP address with `rtcp_mux`, else `a=rtcp` (RFC 3605), else
    /// RTP port + 1. `None` only when RTP is on port 65535 and there is no port after it.
    pub remote_rtcp: Option<SocketAddr>,
    /// The answer carries `a=rtcp-mux` (RFC 5761): RTCP shares the RTP port.
    pub rtcp_mux: bool,
    /// Payload type to stamp on our RTP packets: the answer's number for the codec, which
    /// RFC 3264 §6.1 says is what the answerer expects to receive.
    pub payload_type: u8,
    /// The codec's name as we offered it (one of the `&'static str` of
    /// [`OfferParams::codecs`]).
    pub codec: &'static str,
    /// The codec's RTP clock rate, which RTP timestamps count in.
    pub clock_rate: u32,
    /// The answer's `a=fmtp` for the chosen payload type, if any.
    pub fmtp: Option<String>,
    /// Packet time in milliseconds: the answer's `a=ptime`, else what we offered.
    pub ptime_ms: u32,
    /// The answer's `a=maxptime`, if any: our packets must not be longer.
    pub maxptime_ms: Option<u32>,
    /// Payload type for RFC 4733 events when the answer kept telephone-event (as the
    /// answer numbers it), `None` when it dropped it or we did not offer it.
    pub telephone_event_pt: Option<u8>,
    /// The answerer's direction for the stream. `sendonly`/`inactive` mean it will not
    /// receive our prompt. An answer with the RFC 2543 hold address `0.0.0.0` is reported
    /// as not receiving as well.
    pub direction: Direction,
    /// The SRTP keys when the call is encrypted (ours from the offer, theirs from the
    /// answer's `a=crypto`); `None` for plain RTP.
    pub srtp: Option<crypto::SrtpKeys>,
}

/// Static payload types a peer may use without an rtpmap (RFC 3551 table 4), restricted to
/// the audio codecs a trunk might answer with.
pub(super) fn static_payload(pt: u8) -> Option<(&'static str, u32)> {
    match pt {
        0 => Some(("PCMU", 8000)),
        3 => Some(("GSM", 8000)),
        4 => Some(("G723", 8000)),
        8 => Some(("PCMA", 8000)),
        9 => Some(("G722", 8000)),
        18 => Some(("G729", 8000)),
        _ => None,
    }
}

/// Reads an SDP answer against our offer (RFC 3264 §5–§6).
///
/// Takes the answer's first `audio` stream, since we offer exactly one audio `m=` line and
/// answers match offers by position. The codec is the first format of that stream, in the
/// answerer's order, that we offered: a payload type with an rtpmap matches an offered
/// codec by encoding name (case-insensitive) and clock rate; a static payload type without
/// an rtpmap (0, 8, 9, ...) matches by its RFC 3551 meaning; a dynamic payload type
/// without an rtpmap matches nothing. telephone-event matches by rtpmap, or by our own
/// number when the answer repeats it without an rtpmap.
///
/// Errors: no audio stream, port 0 (rejected), a transport other than RTP/AVP(F), no `c=`
/// for the stream, a hostname rather than an address, and no common codec.
pub fn negotiate(
    offer: &OfferParams,
    answer: &SessionDescription,
) -> Result<NegotiatedMedia, SdpError> {
    let media = answer
        .media
        .iter()
        .find(|m| m.media.eq_ignore_ascii_case("audio"))
        .ok_or(SdpError::NoAudio)?;
    if media.port == 0 {
        return Err(SdpError::StreamRejected);
    }
    let proto = media.protocol.to_ascii_uppercase();
    if !matches!(
        proto.as_str(),
        "RTP/AVP" | "RTP/AVPF" | "RTP/SAVP" | "RTP/SAVPF"
    ) {
        return Err(SdpError::UnsupportedTransport(media.protocol.to_string()));
    }
    let srtp = crypto::settle_answer(offer.srtp.as_ref(), media)?;
    let conn = answer
        .connection_for(media)
        .ok_or(SdpError::MissingConnection)?;
    let ip = conn
        .ip
        .ok_or_else(|| SdpError::UnresolvedConnection(conn.address.to_string()))?
        .to_canonical();
    let remote_rtp = SocketAddr::new(ip, media.port);

    let (payload_type, codec) = choose_codec(offer, media)?;
    let telephone_event_pt = answered_telephone_event(offer, media);

    let remote_rtcp = rtcp_target(media, remote_rtp, media.rtcp_mux);

    let mut direction = answer.direction_for(media);
    if ip.is_unspecified() {
        direction = direction.without_receive();
    }

    Ok(NegotiatedMedia {
        remote_rtp,
        remote_rtcp,
        rtcp_mux: media.rtcp_mux,
        payload_type,
        codec: codec.name,
        clock_rate: codec.clock_rate,
        fmtp: media.fmtp(payload_type).map(str::to_owned),
        ptime_ms: media.ptime.unwrap_or(offer.ptime_ms),
        maxptime_ms: media.maxptime,
        telephone_event_pt,
        direction,
        srtp,
    })
}

/// The codec of the answer: the first of its formats, in the answerer's order, that we
/// offered (see [`negotiate`] for how a format matches), with the answer's payload type.
fn choose_codec<'o>(
    offer: &'o OfferParams,
    media: &MediaDescription,
) -> Result<(u8, &'o OfferCodec), SdpError> {
    let is_te = |pt: u8| match media.rtpmap(pt) {
        Some(map) => map.encoding.eq_ignore_ascii_case("telephone-event"),
        None => offer.telephone_event_pt == Some(pt),
    };
    for pt in media.payload_types() {
        if is_te(pt) {
            continue;
        }
        let (name, clock, channels) = match media.rtpmap(pt) {
            Some(map) => (&*map.encoding, map.clock_rate, map.channels),
            None => match static_payload(pt) {
                Some((name, clock)) => (name, clock, None),
                None => continue,
            },
        };
        let found = offer.codecs.iter().find(|c| {
            c.name.eq_ignore_ascii_case(name)
                && c.clock_rate == clock
                && channels.unwrap_or(1) <= c.channels.unwrap_or(1).max(1)
        });
        if let Some(codec) = found {
            return Ok((pt, codec));
        }
    }
    Err(SdpError::NoAcceptableCodec)
}

/// The answer's payload type for RFC 4733 events (8 kHz telephone-event, or our own number
/// repeated without an rtpmap), when we offered them.
fn answered_telephone_event(offer: &OfferParams, media: &MediaDescription) -> Option<u8> {
    offer
        .telephone_event_pt
        .and(media.payload_types().find(|pt| match media.rtpmap(*pt) {
            Some(map) => {
                map.encoding.eq_ignore_ascii_case("telephone-event") && map.clock_rate == 8000
            }
            None => offer.telephone_event_pt == Some(*pt),
        }))
}

/// Where the peer wants RTCP: its RTP address when RTCP is muxed, else `a=rtcp` (RFC 3605),
/// else RTP port + 1.
pub(super) fn rtcp_target(
    media: &MediaDescription,
    remote_rtp: SocketAddr,
    mux: bool,
) -> Option<SocketAddr> {
    let ip = remote_rtp.ip();
    if mux {
        Some(remote_rtp)
    } else if let Some(rtcp) = &media.rtcp {
        let rtcp_ip = rtcp
            .connection
            .as_ref()
            .and_then(|c| c.ip)
            .map(|ip| ip.to_canonical())
            .unwrap_or(ip);
        Some(SocketAddr::new(rtcp_ip, rtcp.port))
    } else {
        media
            .port
            .checked_add(1)
            .map(|port| SocketAddr::new(ip, port))
    }
}

/// The body of the SDP fuzz target, shared with the corpus replay test so both run the
/// same code. Not part of the engine's API.
///
/// Besides "no panic", it checks that negotiation of anything that parses stays
/// consistent (the chosen codec is one we offered, the RTP port is not 0) and that our own
/// offer parses back and negotiates against itself.
#[doc(hidden)]
pub fn fuzz_exercise(data: &[u8]) {
    let offer = OfferParams::g711(1, IpAddr::from([192, 0, 2, 1]), 4000);
    if let Ok(sdp) = parse(data) {
        for m in &sdp.media {
            let _ = sdp.connection_for(m);
            let _ = sdp.direction_for(m);
            let _ = m.payload_types().count();
        }
        // The same bytes as the answer to an SRTP offer: a key is only ever taken from a
        // well-formed a=crypto line of ours.
        let mut secure = offer.clone();
        secure.srtp = Some(super::crypto::SrtpOffer {
            key: crate::media::srtp::MasterKey::new([1; 16], [2; 14]),
            required: data.first().is_some_and(|b| b & 1 == 1),
        });
        if let Ok(neg) = negotiate(&secure, &sdp) {
            let required = secure.srtp.as_ref().is_some_and(|s| s.required);
            assert!(
                !required || neg.srtp.is_some(),
                "required SRTP settled without a key"
            );
        }
        for m in &sdp.media {
            for a in m.attributes.iter().filter(|a| a.name == "crypto") {
                let _ = super::crypto::parse_line(a.value.as_deref().unwrap_or(""));
            }
        }
        if let Ok(neg) = negotiate(&offer, &sdp) {
            assert_ne!(neg.remote_rtp.port(), 0, "negotiated port 0");
            assert!(
                offer.codecs.iter().any(|c| c.name == neg.codec),
                "negotiated a codec we did not offer"
            );
        }
        // The same bytes as a caller's offer: our answer picks one of our codecs, on a
        // live port, keeps the offer's m= line count, and parses back.
        let ours = super::AnswerParams {
            session_id: 1,
            addr: IpAddr::from([192, 0, 2, 1]),
            rtp_port: 4000,
            codecs: vec![
                OfferCodec::pcma(),
                OfferCodec::pcmu(),
                OfferCodec::g722(),
                OfferCodec::opus(111),
            ],
            ptime_ms: 20,
            telephone_event_pt: Some(super::TELEPHONE_EVENT_PT),
        };
        if let Ok(a) = super::answer(&sdp, &ours) {
            assert_ne!(a.media.remote_rtp.port(), 0, "answered port 0");
            assert!(ours.codecs.iter().any(|c| c.name == a.media.codec));
            let back = parse(a.body.as_bytes()).expect("our answer must parse");
            assert_eq!(back.media.len(), sdp.media.len(), "one m= line per offered");
        }
    }
    // Our own offer, with fuzz-chosen numbers, must read back as itself.
    if data.len() >= 8 {
        let port = u16::from_le_bytes([data[0], data[1]]).max(1);
        let mut own = OfferParams::g711(
            u64::from(data[2]),
            IpAddr::from([data[3], data[4], data[5], data[6]]),
            port,
        );
        own.ptime_ms = u32::from(data[7]);
        let body = build_offer(&own);
        let back = parse(body.as_bytes()).expect("our offer must parse");
        let neg = negotiate(&own, &back).expect("our offer must negotiate against itself");
        assert_eq!(neg.remote_rtp, SocketAddr::new(own.addr, port));
        assert_eq!(neg.codec, "PCMU");
    }
}
