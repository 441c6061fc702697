//! Our offer: the codecs we can send and the SDP body that offers them.

use super::*;
use crate::sip::builder::{push_decimal, push_ip};

/// One codec of our offer.
///
/// `name` is `'static` because the codecs we can offer are the ones the `codecs` crate
/// implements, known at compile time; [`NegotiatedMedia::codec`] hands the same string
/// back, so the media path can match on it without allocating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferCodec {
    /// RTP payload type (static 0..=95 or dynamic 96..=127).
    pub payload_type: u8,
    /// Encoding name as registered (`PCMU`, `PCMA`, `G722`, `opus`).
    pub name: &'static str,
    /// RTP clock rate in Hz (8000 for G.711; 8000 for G.722 too, by RFC 3551's erratum).
    pub clock_rate: u32,
    /// Channel count, written as the rtpmap's third field when set (`opus/48000/2`).
    pub channels: Option<u8>,
    /// `a=fmtp:` parameters for this codec, if any.
    pub fmtp: Option<String>,
}

impl OfferCodec {
    /// G.711 µ-law, static payload type 0: what North American and many European trunks
    /// prefer.
    pub fn pcmu() -> OfferCodec {
        OfferCodec {
            payload_type: 0,
            name: "PCMU",
            clock_rate: 8000,
            channels: None,
            fmtp: None,
        }
    }

    /// G.711 A-law, static payload type 8: the native codec of European PSTN trunks.
    pub fn pcma() -> OfferCodec {
        OfferCodec {
            payload_type: 8,
            name: "PCMA",
            clock_rate: 8000,
            channels: None,
            fmtp: None,
        }
    }

    /// G.722, static payload type 9: wideband (16 kHz audio) at G.711's bit rate; its RTP
    /// clock says 8000 by RFC 3551's erratum.
    pub fn g722() -> OfferCodec {
        OfferCodec {
            payload_type: 9,
            name: "G722",
            clock_rate: 8000,
            channels: None,
            fmtp: None,
        }
    }

    /// Opus on a dynamic payload type, `opus/48000/2` as RFC 7587 requires (the `/2` is
    /// mandatory whatever is actually sent), with in-band FEC asked for.
    pub fn opus(payload_type: u8) -> OfferCodec {
        OfferCodec {
            payload_type,
            name: "opus",
            clock_rate: 48000,
            channels: Some(2),
            fmtp: Some("useinbandfec=1".to_owned()),
        }
    }
}

/// Everything our SDP offer says. One audio stream, always: the dialer plays a prompt and
/// listens for DTMF, nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferParams {
    /// `o=` session id: unique per call (a random or time-based number).
    pub session_id: u64,
    /// `o=` version: bump it whenever a re-offer in the same dialog changes anything.
    pub version: u64,
    /// Our media address, written in `o=` and `c=`.
    pub addr: IpAddr,
    /// Our RTP port (even, by RFC 3550 convention; RTCP is the next one).
    pub rtp_port: u16,
    /// Codecs in preference order.
    pub codecs: Vec<OfferCodec>,
    /// Packet time we send and want, in milliseconds (`a=ptime`); 0 leaves it out.
    pub ptime_ms: u32,
    /// Payload type for RFC 4733 telephone-event/8000, or `None` not to offer DTMF events.
    pub telephone_event_pt: Option<u8>,
    /// SDES keying (trunk `srtp` not `off`, and only over TLS): our key in `a=crypto`, and
    /// `RTP/SAVP` when encryption is required.
    pub srtp: Option<crypto::SrtpOffer>,
    /// Offer the stream `a=inactive` (RFC 3264 §5.1) instead of `sendrecv`: signalling-only
    /// calls that will send and take no RTP.
    pub inactive: bool,
}

impl OfferParams {
    /// The offer every PSTN trunk accepts: PCMU, PCMA and telephone-event/101, 20 ms
    /// packets, version equal to the session id (the RFC 4566 suggestion of an NTP-style
    /// number for both is common practice). Reorder `codecs` to prefer A-law.
    pub fn g711(session_id: u64, addr: IpAddr, rtp_port: u16) -> OfferParams {
        OfferParams {
            session_id,
            version: session_id,
            addr,
            rtp_port,
            codecs: vec![OfferCodec::pcmu(), OfferCodec::pcma()],
            ptime_ms: 20,
            telephone_event_pt: Some(TELEPHONE_EVENT_PT),
            srtp: None,
            inactive: false,
        }
    }
}

/// Writes our SDP offer (RFC 4566, CRLF line ends):
///
/// ```text
/// v=0
/// o=- <session_id> <version> IN IP4 <addr>
/// s=-
/// c=IN IP4 <addr>
/// t=0 0
/// m=audio <port> RTP/AVP <pt> ... <te-pt>       (RTP/SAVP when SRTP is required)
/// a=rtpmap:<pt> <name>/<clock>[/<channels>]   (one per codec, static ones too)
/// a=fmtp:<pt> <params>                        (when the codec has any)
/// a=rtpmap:<te-pt> telephone-event/8000
/// a=fmtp:<te-pt> 0-16
/// a=ptime:<ms>
/// a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:<key> (with SRTP)
/// a=sendrecv
/// ```
///
/// Static payload types get an `a=rtpmap` too: RFC 3264 allows it and some answerers only
/// look at rtpmaps. `sendrecv` is explicit because, although it is the default, a few SBCs
/// treat its absence as hold after a re-INVITE (`a=inactive` instead when
/// [`OfferParams::inactive`]). A telephone-event payload type equal to a
/// codec's is skipped rather than written twice.
pub fn build_offer(params: &OfferParams) -> String {
    let ip_type = match params.addr {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    let mut s = String::with_capacity(256);
    let mut addr = String::with_capacity(40);
    push_ip(&mut addr, params.addr);
    s.push_str("v=0\r\no=- ");
    push_decimal(&mut s, params.session_id);
    s.push(' ');
    push_decimal(&mut s, params.version);
    for part in [
        " IN ",
        ip_type,
        " ",
        &addr,
        "\r\ns=-\r\nc=IN ",
        ip_type,
        " ",
        &addr,
    ] {
        s.push_str(part);
    }
    s.push_str("\r\nt=0 0\r\n");
    push_media_lines(&mut s, params);
    if let Some(srtp) = &params.srtp {
        s.push_str(&crypto::write_line(1, &srtp.key));
        s.push_str("\r\n");
    }
    s.push_str(if params.inactive {
        "a=inactive\r\n"
    } else {
        "a=sendrecv\r\n"
    });
    s
}

/// The `m=` line and the codecs' `a=rtpmap`/`a=fmtp` lines, telephone-event and `a=ptime`.
fn push_media_lines(s: &mut String, params: &OfferParams) {
    let te = params
        .telephone_event_pt
        .filter(|te| params.codecs.iter().all(|c| c.payload_type != *te));
    let profile = match &params.srtp {
        Some(srtp) if srtp.required => "RTP/SAVP",
        _ => "RTP/AVP",
    };
    // Numbers are written with `push_decimal` (itoa), not `fmt`: formatting them was a third of
    // the cost of building the INVITE.
    s.push_str("m=audio ");
    push_decimal(s, params.rtp_port);
    s.push(' ');
    s.push_str(profile);
    for c in &params.codecs {
        s.push(' ');
        push_decimal(s, c.payload_type);
    }
    if let Some(te) = te {
        s.push(' ');
        push_decimal(s, te);
    }
    s.push_str("\r\n");
    for c in &params.codecs {
        s.push_str("a=rtpmap:");
        push_decimal(s, c.payload_type);
        s.push(' ');
        s.push_str(c.name);
        s.push('/');
        push_decimal(s, c.clock_rate);
        if let Some(ch) = c.channels {
            s.push('/');
            push_decimal(s, ch);
        }
        s.push_str("\r\n");
        if let Some(fmtp) = &c.fmtp {
            s.push_str("a=fmtp:");
            push_decimal(s, c.payload_type);
            s.push(' ');
            s.push_str(fmtp);
            s.push_str("\r\n");
        }
    }
    if let Some(te) = te {
        for (line, rest) in [
            ("a=rtpmap:", " telephone-event/8000\r\n"),
            ("a=fmtp:", " 0-16\r\n"),
        ] {
            s.push_str(line);
            push_decimal(s, te);
            s.push_str(rest);
        }
    }
    if params.ptime_ms > 0 {
        s.push_str("a=ptime:");
        push_decimal(s, params.ptime_ms);
        s.push_str("\r\n");
    }
}
