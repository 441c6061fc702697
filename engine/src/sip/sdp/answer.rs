//! The answer side of RFC 3264, for calls that come to us: the caller's INVITE holds the
//! offer, we pick a codec from it by our own preference and write the answer.

use super::negotiate::{rtcp_target, static_payload};
use super::*;

/// What we can answer with: where we receive RTP and the codecs we can send, best first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerParams {
    /// `o=` session id (and version) of our answer: unique per call.
    pub session_id: u64,
    /// Our media address, written in `o=` and `c=`.
    pub addr: IpAddr,
    /// Our RTP port (even; RTCP is the next one).
    pub rtp_port: u16,
    /// Codecs we can send and receive, in our order of preference: the first of them the
    /// offer holds is chosen, whatever the offerer's order (we stream prompts encoded once
    /// per codec, so our cost decides, not the caller's taste). Payload type numbers here
    /// only matter when we make the offer ourselves (an INVITE without SDP).
    pub codecs: Vec<OfferCodec>,
    /// Packet time we send when the offer asks for none, in milliseconds.
    pub ptime_ms: u32,
    /// Whether (and, when we make the offer, under which number) we take RFC 4733
    /// telephone-event: when answering, the offer's own number is echoed.
    pub telephone_event_pt: Option<u8>,
}

impl AnswerParams {
    /// The same capabilities written as an offer, for an INVITE that came without SDP
    /// (RFC 3261 §13.2.1: the offer then goes in our 2xx and the answer comes in the ACK).
    pub fn as_offer(&self) -> OfferParams {
        OfferParams {
            session_id: self.session_id,
            version: self.session_id,
            addr: self.addr,
            rtp_port: self.rtp_port,
            codecs: self.codecs.clone(),
            ptime_ms: self.ptime_ms,
            telephone_event_pt: self.telephone_event_pt,
            srtp: None,
            inactive: false,
        }
    }
}

/// Our answer to an offer: the SDP body, what it settles, and the codec as numbered in
/// the offer (what a later re-offer in the dialog must keep).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The SDP answer, CRLF line ends.
    pub body: String,
    /// Where and how to send RTP.
    pub media: NegotiatedMedia,
    /// The chosen codec under the offer's payload type number.
    pub codec: OfferCodec,
}

/// Answers `offer` (RFC 3264 §6): the first audio stream we can take is accepted with one
/// codec (our most preferred one the offer holds) and telephone-event when both sides want
/// it; every other `m=` line is declined with port 0, keeping the offer's line count and
/// order as §6 requires. The answer's direction mirrors the offer's (`sendonly` is answered
/// `recvonly`, and so on).
///
/// Errors: no audio stream, only declined or non-RTP/AVP audio streams, no usable
/// connection address, or no codec in common (the caller answers 488).
pub fn answer(offer: &SessionDescription, p: &AnswerParams) -> Result<Answered, SdpError> {
    let mut err = SdpError::NoAudio;
    let mut chosen = None;
    for (i, m) in offer.media.iter().enumerate() {
        if !m.media.eq_ignore_ascii_case("audio") {
            continue;
        }
        match accept_stream(offer, m, p) {
            Ok(a) => {
                chosen = Some((i, a));
                break;
            }
            Err(e) => err = e,
        }
    }
    let (index, (media, codec)) = chosen.ok_or(err)?;
    let body = write_answer(offer, index, &media, &codec, p);
    Ok(Answered { body, media, codec })
}

/// Settles one offered audio stream, or says why it cannot be taken.
fn accept_stream(
    offer: &SessionDescription,
    m: &MediaDescription,
    p: &AnswerParams,
) -> Result<(NegotiatedMedia, OfferCodec), SdpError> {
    if m.port == 0 {
        return Err(SdpError::StreamRejected);
    }
    let proto = m.protocol.to_ascii_uppercase();
    if proto != "RTP/AVP" && proto != "RTP/AVPF" {
        return Err(SdpError::UnsupportedTransport(m.protocol.to_string()));
    }
    let conn = offer.connection_for(m).ok_or(SdpError::MissingConnection)?;
    let ip = conn
        .ip
        .ok_or_else(|| SdpError::UnresolvedConnection(conn.address.to_string()))?
        .to_canonical();
    let is_te = |pt: u8| {
        m.rtpmap(pt)
            .is_some_and(|map| map.encoding.eq_ignore_ascii_case("telephone-event"))
    };
    let (payload_type, ours) = p
        .codecs
        .iter()
        .find_map(|c| {
            m.payload_types()
                .filter(|pt| !is_te(*pt))
                .find(|pt| offered_as(m, *pt, c))
                .map(|pt| (pt, c))
        })
        .ok_or(SdpError::NoAcceptableCodec)?;
    let telephone_event_pt = p.telephone_event_pt.and(m.payload_types().find(|pt| {
        m.rtpmap(*pt).is_some_and(|map| {
            map.encoding.eq_ignore_ascii_case("telephone-event") && map.clock_rate == 8000
        })
    }));
    let mut ptime_ms = m.ptime.unwrap_or(p.ptime_ms);
    if let Some(max) = m.maxptime.filter(|max| *max > 0) {
        ptime_ms = ptime_ms.min(max);
    }
    let remote_rtp = SocketAddr::new(ip, m.port);
    let mut direction = offer.direction_for(m);
    if ip.is_unspecified() {
        direction = direction.without_receive();
    }
    let media = NegotiatedMedia {
        remote_rtp,
        // We do not answer rtcp-mux: RTCP stays on its own port (RFC 5761 §5.1.1).
        remote_rtcp: rtcp_target(m, remote_rtp, false),
        rtcp_mux: false,
        payload_type,
        codec: ours.name,
        clock_rate: ours.clock_rate,
        fmtp: m.fmtp(payload_type).map(str::to_owned),
        ptime_ms,
        maxptime_ms: m.maxptime,
        telephone_event_pt,
        direction,
        srtp: None,
    };
    let codec = OfferCodec {
        payload_type,
        ..ours.clone()
    };
    Ok((media, codec))
}

/// Whether payload type `pt` of the offered stream is our codec `c`: by rtpmap (name,
/// clock rate, and no more channels than we take), else by its static meaning.
fn offered_as(m: &MediaDescription, pt: u8, c: &OfferCodec) -> bool {
    match m.rtpmap(pt) {
        Some(map) => {
            map.encoding.eq_ignore_ascii_case(c.name)
                && map.clock_rate == c.clock_rate
                && map.channels.unwrap_or(1) <= c.channels.unwrap_or(1).max(1)
        }
        None => static_payload(pt).is_some_and(|(name, clock)| {
            name.eq_ignore_ascii_case(c.name) && clock == c.clock_rate
        }),
    }
}

/// The direction we answer with for an offered one (RFC 3264 §6.1).
fn mirror(d: Direction) -> Direction {
    match d {
        Direction::SendRecv => Direction::SendRecv,
        Direction::SendOnly => Direction::RecvOnly,
        Direction::RecvOnly => Direction::SendOnly,
        Direction::Inactive => Direction::Inactive,
    }
}

fn write_answer(
    offer: &SessionDescription,
    index: usize,
    media: &NegotiatedMedia,
    codec: &OfferCodec,
    p: &AnswerParams,
) -> String {
    let ip_type = match p.addr {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    let mut s = String::with_capacity(320);
    let _ = write!(
        s,
        "v=0\r\no=- {sid} {sid} IN {ip_type} {addr}\r\ns=-\r\nc=IN {ip_type} {addr}\r\nt=0 0\r\n",
        sid = p.session_id,
        addr = p.addr,
    );
    for (i, m) in offer.media.iter().enumerate() {
        if i != index {
            // Declined: port 0, the offer's formats repeated (RFC 3264 §6).
            let _ = write!(s, "m={} 0 {}", m.media, m.protocol);
            for f in &m.formats {
                let _ = write!(s, " {f}");
            }
            s.push_str("\r\n");
            continue;
        }
        let _ = write!(
            s,
            "m=audio {} {} {}",
            p.rtp_port, m.protocol, codec.payload_type
        );
        if let Some(te) = media.telephone_event_pt {
            let _ = write!(s, " {te}");
        }
        s.push_str("\r\n");
        let _ = write!(
            s,
            "a=rtpmap:{} {}/{}",
            codec.payload_type, codec.name, codec.clock_rate
        );
        if let Some(ch) = codec.channels {
            let _ = write!(s, "/{ch}");
        }
        s.push_str("\r\n");
        if let Some(fmtp) = &codec.fmtp {
            let _ = write!(s, "a=fmtp:{} {fmtp}\r\n", codec.payload_type);
        }
        if let Some(te) = media.telephone_event_pt {
            let _ = write!(
                s,
                "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
            );
        }
        if media.ptime_ms > 0 {
            let _ = write!(s, "a=ptime:{}\r\n", media.ptime_ms);
        }
        let _ = write!(s, "a={}\r\n", mirror(media.direction).as_str());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ours() -> AnswerParams {
        AnswerParams {
            session_id: 9,
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            rtp_port: 30000,
            codecs: vec![
                OfferCodec::g722(),
                OfferCodec::pcma(),
                OfferCodec::pcmu(),
                OfferCodec::opus(111),
            ],
            ptime_ms: 20,
            telephone_event_pt: Some(TELEPHONE_EVENT_PT),
        }
    }

    fn offer(m: &str) -> SessionDescription<'static> {
        let body = format!(
            "v=0\r\no=caller 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n{m}"
        );
        parse(body.as_bytes()).unwrap().into_owned()
    }

    #[test]
    fn our_preference_wins_and_the_offer_numbers_are_echoed() {
        let o = offer(
            "m=audio 4000 RTP/AVP 0 8 9 96\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n",
        );
        let a = answer(&o, &ours()).unwrap();
        assert_eq!((a.media.codec, a.media.payload_type), ("G722", 9));
        assert_eq!(a.media.telephone_event_pt, Some(96));
        assert_eq!(a.media.remote_rtp, "198.51.100.7:4000".parse().unwrap());
        assert_eq!(
            a.media.remote_rtcp,
            Some("198.51.100.7:4001".parse().unwrap())
        );
        assert_eq!(
            a.body,
            "v=0\r\no=- 9 9 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
             m=audio 30000 RTP/AVP 9 96\r\na=rtpmap:9 G722/8000\r\n\
             a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
        );
        // Our answer reads back as an answer to the offer it came from.
        let back = parse(a.body.as_bytes()).unwrap();
        assert_eq!(back.media[0].port, 30000);
    }

    #[test]
    fn opus_under_a_dynamic_number_and_pcmu_fallback() {
        let mut p = ours();
        p.codecs.insert(0, OfferCodec::opus(111));
        let o = offer(
            "m=audio 4000 RTP/AVP 107 0\r\na=rtpmap:107 opus/48000/2\r\na=fmtp:107 minptime=10\r\na=ptime:40\r\n",
        );
        let a = answer(&o, &p).unwrap();
        assert_eq!(
            (a.media.codec, a.media.payload_type, a.media.clock_rate),
            ("opus", 107, 48000)
        );
        assert_eq!(a.media.fmtp.as_deref(), Some("minptime=10"));
        assert_eq!(a.media.ptime_ms, 40);
        assert_eq!(a.media.telephone_event_pt, None, "not offered");
        assert!(a.body.contains("m=audio 30000 RTP/AVP 107\r\n"));
        assert!(a
            .body
            .contains("a=rtpmap:107 opus/48000/2\r\na=fmtp:107 useinbandfec=1\r\n"));
        p.codecs.retain(|c| c.name == "PCMU");
        let a = answer(&o, &p).unwrap();
        assert_eq!((a.media.codec, a.media.payload_type), ("PCMU", 0));
    }

    #[test]
    fn other_streams_are_declined_in_place_and_directions_mirrored() {
        let o = offer(
            "m=video 5000 RTP/AVP 31\r\nm=audio 0 RTP/AVP 8\r\nm=audio 4002 RTP/AVP 8\r\na=sendonly\r\n",
        );
        let a = answer(&o, &ours()).unwrap();
        let back = parse(a.body.as_bytes()).unwrap();
        assert_eq!(back.media.len(), 3);
        assert_eq!(
            back.media.iter().map(|m| m.port).collect::<Vec<_>>(),
            [0, 0, 30000]
        );
        assert_eq!(back.direction_for(&back.media[2]), Direction::RecvOnly);
        assert_eq!(a.media.direction, Direction::SendOnly);
        assert!(!a.media.direction.writer_receives());
    }

    #[test]
    fn nothing_in_common_or_no_audio_is_an_error() {
        let o = offer("m=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n");
        assert_eq!(answer(&o, &ours()), Err(SdpError::NoAcceptableCodec));
        let o = offer("m=video 4000 RTP/AVP 31\r\n");
        assert_eq!(answer(&o, &ours()), Err(SdpError::NoAudio));
        let o = offer("m=audio 4000 RTP/SAVP 8\r\n");
        assert!(matches!(
            answer(&o, &ours()),
            Err(SdpError::UnsupportedTransport(_))
        ));
        let o = offer("m=audio 0 RTP/AVP 8\r\n");
        assert_eq!(answer(&o, &ours()), Err(SdpError::StreamRejected));
    }

    #[test]
    fn a_delayed_offer_is_our_capabilities() {
        let p = ours();
        let o = p.as_offer();
        let text = build_offer(&o);
        let back = parse(text.as_bytes()).unwrap();
        let a = answer(&back, &p).unwrap();
        assert_eq!(a.media.codec, "G722");
        assert_eq!(a.media.telephone_event_pt, Some(TELEPHONE_EVENT_PT));
    }
}
