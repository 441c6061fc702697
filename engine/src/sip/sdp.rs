//! SDP (RFC 4566) for a UAC that offers one audio stream, and the RFC 3264 offer/answer
//! negotiation on top of it.
//!
//! The dialer always makes the offer (in its INVITE) and reads the answer (in a 183 or a
//! 2xx). So this module does three things:
//!
//! * [`build_offer`] writes our offer from [`OfferParams`];
//! * [`parse`] reads any SDP body a peer sends into an owned [`SessionDescription`],
//!   tolerating what real carriers emit (LF line ends, blank lines, `a=rtpmap:31 LPC`
//!   without a clock rate, hostnames in `c=`) and rejecting with an [`SdpError`] — never
//!   a panic — what cannot be SDP at all;
//! * [`negotiate`] turns our offer and their answer into [`NegotiatedMedia`]: where to send
//!   RTP, which payload type, at what packet time.
//!
//! SDP is parsed once per call and not on the hot path, so the parsed form owns its
//! strings: it can outlive the datagram and be kept in the dialog without lifetimes.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use thiserror::Error;

/// Why an SDP body was rejected or could not be negotiated.
///
/// Parse errors carry the 1-based line number so a log line points at the culprit;
/// negotiation errors say which RFC 3264 rule the answer broke, so the call can end with
/// a precise reason (typically a BYE or CANCEL with a `Reason` header, or outcome `failed`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    /// The body is empty or does not start with `v=0`.
    #[error("not an SDP body (no v=0 first)")]
    NotSdp,
    /// A line is not `<letter>=<value>`.
    #[error("line {0}: not a <type>=<value> line")]
    BadLine(usize),
    /// An `m=` line is malformed (missing fields, port not a number).
    #[error("line {0}: bad m= line")]
    BadMedia(usize),
    /// A `c=` line is malformed (fewer than three fields).
    #[error("line {0}: bad c= line")]
    BadConnection(usize),
    /// The answer has no audio stream.
    #[error("answer has no audio stream")]
    NoAudio,
    /// The answer rejected our audio stream with port 0 (RFC 3264 §6).
    #[error("answer rejected the audio stream (port 0)")]
    StreamRejected,
    /// The audio stream uses a transport other than RTP/AVP (e.g. RTP/SAVP), which we did not
    /// offer and cannot speak.
    #[error("answer uses transport {0}, not RTP/AVP")]
    UnsupportedTransport(String),
    /// Neither the audio stream nor the session has a `c=` line.
    #[error("answer has no connection address for the audio stream")]
    MissingConnection,
    /// The connection address is not an IP literal (a hostname); the sans-IO core does not
    /// resolve names, and carriers send literals in practice.
    #[error("connection address {0:?} is not an IP address")]
    UnresolvedConnection(String),
    /// None of the answer's formats is a codec we offered.
    #[error("answer holds no codec that we offered")]
    NoAcceptableCodec,
}

/// The RTP payload type our offers use for RFC 4733 telephone-event by default: 101 is what
/// nearly every SIP stack uses, which spares a carrier's transcoder any remapping.
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// Stream direction (RFC 4566 §6 / RFC 3264 §5.1), always as declared by the side that
/// wrote the SDP: `recvonly` in an answer means *the answerer* only receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Both ways (the default when no direction attribute is present).
    SendRecv,
    /// The writer only sends.
    SendOnly,
    /// The writer only receives.
    RecvOnly,
    /// Neither way (on hold or media not wanted).
    Inactive,
}

impl Direction {
    /// The attribute name, as written after `a=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Whether the writer of this SDP accepts media: when the answer says `sendonly` or
    /// `inactive`, our prompt must not be sent (RFC 3264 §6.1).
    pub fn writer_receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// Whether the writer of this SDP will send media to us.
    pub fn writer_sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    fn from_attr(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// The direction once the writer's address is the RFC 2543 hold address `0.0.0.0`:
    /// whatever it said, it no longer receives.
    fn without_receive(self) -> Direction {
        match self {
            Direction::SendRecv | Direction::SendOnly => Direction::SendOnly,
            Direction::RecvOnly | Direction::Inactive => Direction::Inactive,
        }
    }
}

/// An `o=` line: identifies the session and its version, which a re-INVITE's SDP compares
/// to tell a real change from a refresh (RFC 3264 §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `<username>` (`-` when the writer has none).
    pub username: String,
    /// `<sess-id>`, kept as text: some stacks exceed 64 bits.
    pub session_id: String,
    /// `<sess-version>`, kept as text for the same reason.
    pub session_version: String,
    /// `<nettype>`, normally `IN`.
    pub net_type: String,
    /// `<addrtype>`, normally `IP4` or `IP6`.
    pub addr_type: String,
    /// `<unicast-address>`: an IP literal or a hostname.
    pub address: String,
}

/// A `c=` line (RFC 4566 §5.7), at session or media level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `<nettype>`, normally `IN`.
    pub net_type: String,
    /// `<addrtype>`, normally `IP4` or `IP6`.
    pub addr_type: String,
    /// The address as written, without a multicast `/ttl` or `/count` suffix.
    pub address: String,
    /// The address as an IP when it is a literal of the family `addr_type` names (`IP4`
    /// with a dotted quad, `IP6` with an IPv6 literal); `None` for hostnames or mismatches,
    /// which [`negotiate`] reports rather than guessing.
    pub ip: Option<IpAddr>,
}

/// An `a=rtpmap:` attribute: what a dynamic (or restated static) payload type means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// The payload type it describes.
    pub payload_type: u8,
    /// Encoding name as written (`PCMU`, `opus`, `telephone-event`); compare it
    /// case-insensitively.
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Encoding parameters; for audio, the channel count (`opus/48000/2`).
    pub channels: Option<u8>,
}

/// An `a=fmtp:` attribute: format parameters for one payload type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// The payload type the parameters apply to.
    pub payload_type: u8,
    /// The parameters as written (`0-16`, `useinbandfec=1; stereo=0`).
    pub params: String,
}

/// An `a=rtcp:` attribute (RFC 3605): where RTCP goes when it is not RTP port + 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtcp {
    /// The RTCP port.
    pub port: u16,
    /// An explicit address for RTCP, when the attribute has one.
    pub connection: Option<Connection>,
}

/// Any `a=` attribute, as written: `name` and the text after the first `:`, if any.
/// Kept so that callers can read attributes this module does not interpret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Name before the colon (or the whole property attribute, like `rtcp-mux`).
    pub name: String,
    /// Value after the colon.
    pub value: Option<String>,
}

/// One `m=` section with the attributes this UAC acts on already interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type: `audio`, `video`, `application`, ...
    pub media: String,
    /// Transport port; 0 means the stream is rejected or disabled (RFC 3264 §6).
    pub port: u16,
    /// The `/<number of ports>` suffix, when present.
    pub port_count: Option<u16>,
    /// Transport protocol: `RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, ...
    pub protocol: String,
    /// Formats in preference order; for RTP these are payload type numbers
    /// (see [`MediaDescription::payload_types`]).
    pub formats: Vec<String>,
    /// Media-level `c=` lines; RFC 4566 allows several (layered multicast), and when any is
    /// present it overrides the session level.
    pub connections: Vec<Connection>,
    /// Parsed `a=rtpmap:` lines (malformed ones are only in `attributes`).
    pub rtpmaps: Vec<RtpMap>,
    /// Parsed `a=fmtp:` lines.
    pub fmtps: Vec<Fmtp>,
    /// `a=ptime:` in milliseconds (a fractional value is truncated).
    pub ptime: Option<u32>,
    /// `a=maxptime:` in milliseconds.
    pub maxptime: Option<u32>,
    /// `a=rtcp:` (RFC 3605).
    pub rtcp: Option<Rtcp>,
    /// `a=rtcp-mux` present (RFC 5761).
    pub rtcp_mux: bool,
    /// Media-level direction attribute, if any (the last one wins, as most stacks do).
    pub direction: Option<Direction>,
    /// Every media-level attribute as written, interpreted or not.
    pub attributes: Vec<Attribute>,
}

impl MediaDescription {
    /// The formats that are RTP payload type numbers (0..=127), in order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .filter(|pt| *pt <= 127)
    }

    /// The `a=rtpmap:` entry for a payload type, if present.
    pub fn rtpmap(&self, payload_type: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == payload_type)
    }

    /// The `a=fmtp:` parameters for a payload type, if present.
    pub fn fmtp(&self, payload_type: u8) -> Option<&str> {
        self.fmtps
            .iter()
            .find(|f| f.payload_type == payload_type)
            .map(|f| f.params.as_str())
    }

    /// The first attribute with this name (case-sensitive, as RFC 4566 names are).
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
}

/// A parsed SDP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=` line, if present and well formed.
    pub origin: Option<Origin>,
    /// `s=` text (may be empty or `-`).
    pub session_name: String,
    /// Session-level `c=` lines (RFC 4566 allows one; we keep all that appear).
    pub connections: Vec<Connection>,
    /// Session-level direction attribute, the default for every media section.
    pub direction: Option<Direction>,
    /// Session-level attributes as written.
    pub attributes: Vec<Attribute>,
    /// The `m=` sections in order; their position is what RFC 3264 matches offers and
    /// answers by.
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// The effective connection of a media section: its own first `c=`, else the session's
    /// first (RFC 4566 §5.7).
    pub fn connection_for<'a>(&'a self, media: &'a MediaDescription) -> Option<&'a Connection> {
        media.connections.first().or(self.connections.first())
    }

    /// The effective direction of a media section: its own attribute, else the session's,
    /// else `sendrecv` (RFC 3264 §5.1).
    pub fn direction_for(&self, media: &MediaDescription) -> Direction {
        media
            .direction
            .or(self.direction)
            .unwrap_or(Direction::SendRecv)
    }
}

/// Parses an SDP body.
///
/// Accepts CRLF or bare LF line ends and skips blank lines. The first line must be `v=0`;
/// every other line must be `<letter>=<value>`. Line types this UAC has no use for (`t=`,
/// `b=`, `k=`, `i=`, ...) are skipped; an `a=` attribute that does not parse (say
/// `a=rtpmap:31 LPC`) is kept in `attributes` but not interpreted, because carriers send
/// such lines and rejecting the whole answer for them would fail calls that can work.
/// Non-UTF-8 bytes are replaced, never trusted.
pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
    let text = String::from_utf8_lossy(body);
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty());

    match lines.next() {
        Some((_, l)) if l.trim_end() == "v=0" => {}
        _ => return Err(SdpError::NotSdp),
    }

    let mut sdp = SessionDescription {
        origin: None,
        session_name: String::new(),
        connections: Vec::new(),
        direction: None,
        attributes: Vec::new(),
        media: Vec::new(),
    };

    for (n, line) in lines {
        let bytes = line.as_bytes();
        if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_alphabetic() {
            return Err(SdpError::BadLine(n));
        }
        let value = &line[2..];
        if bytes[0] == b'm' {
            sdp.media
                .push(parse_media(value).ok_or(SdpError::BadMedia(n))?);
            continue;
        }
        match (bytes[0], sdp.media.last_mut()) {
            (b'c', None) => sdp
                .connections
                .push(parse_connection(value).ok_or(SdpError::BadConnection(n))?),
            (b'c', Some(m)) => m
                .connections
                .push(parse_connection(value).ok_or(SdpError::BadConnection(n))?),
            (b'o', None) => sdp.origin = parse_origin(value),
            (b's', None) => sdp.session_name = value.to_owned(),
            (b'a', None) => {
                let attr = split_attribute(value);
                if let Some(d) = Direction::from_attr(&attr.name) {
                    sdp.direction = Some(d);
                }
                sdp.attributes.push(attr);
            }
            (b'a', Some(m)) => apply_media_attribute(m, split_attribute(value)),
            _ => {}
        }
    }
    Ok(sdp)
}

fn split_attribute(value: &str) -> Attribute {
    match value.split_once(':') {
        Some((name, v)) => Attribute {
            name: name.trim().to_owned(),
            value: Some(v.to_owned()),
        },
        None => Attribute {
            name: value.trim().to_owned(),
            value: None,
        },
    }
}

fn apply_media_attribute(m: &mut MediaDescription, attr: Attribute) {
    let value = attr.value.as_deref().unwrap_or("").trim();
    match attr.name.as_str() {
        "rtpmap" => {
            if let Some(map) = parse_rtpmap(value) {
                if m.rtpmap(map.payload_type).is_none() {
                    m.rtpmaps.push(map);
                }
            }
        }
        "fmtp" => {
            if let Some((pt, params)) = value.split_once([' ', '\t']) {
                if let Ok(payload_type) = pt.parse::<u8>() {
                    if m.fmtp(payload_type).is_none() {
                        m.fmtps.push(Fmtp {
                            payload_type,
                            params: params.trim().to_owned(),
                        });
                    }
                }
            }
        }
        "ptime" => m.ptime = m.ptime.or_else(|| parse_millis(value)),
        "maxptime" => m.maxptime = m.maxptime.or_else(|| parse_millis(value)),
        "rtcp" => m.rtcp = m.rtcp.take().or_else(|| parse_rtcp(value)),
        "rtcp-mux" => m.rtcp_mux = true,
        name => {
            if let Some(d) = Direction::from_attr(name) {
                m.direction = Some(d);
            }
        }
    }
    m.attributes.push(attr);
}

/// `20`, `20.0` or `22.5` (truncated); zero is meaningless and treated as absent.
fn parse_millis(value: &str) -> Option<u32> {
    let int = value.split('.').next()?;
    int.parse::<u32>().ok().filter(|v| *v > 0)
}

/// `<pt> <name>/<clock>[/<channels>]`.
fn parse_rtpmap(value: &str) -> Option<RtpMap> {
    let (pt, rest) = value.split_once([' ', '\t'])?;
    let payload_type = pt.parse::<u8>().ok().filter(|pt| *pt <= 127)?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next()?.trim();
    let clock_rate = parts.next()?.trim().parse::<u32>().ok()?;
    let channels = match parts.next() {
        Some(c) => Some(c.trim().parse::<u8>().ok()?),
        None => None,
    };
    if encoding.is_empty() {
        return None;
    }
    Some(RtpMap {
        payload_type,
        encoding: encoding.to_owned(),
        clock_rate,
        channels,
    })
}

/// `<port> [<nettype> <addrtype> <address>]` (RFC 3605).
fn parse_rtcp(value: &str) -> Option<Rtcp> {
    let mut fields = value.split_ascii_whitespace();
    let port = fields.next()?.parse::<u16>().ok()?;
    let rest: Vec<&str> = fields.collect();
    let connection = if rest.is_empty() {
        None
    } else {
        Some(parse_connection(&rest.join(" "))?)
    };
    Some(Rtcp { port, connection })
}

/// `<media> <port>[/<count>] <proto> <fmt> ...`.
fn parse_media(value: &str) -> Option<MediaDescription> {
    let mut fields = value.split_ascii_whitespace();
    let media = fields.next()?.to_owned();
    let port_field = fields.next()?;
    let (port, port_count) = match port_field.split_once('/') {
        Some((p, c)) => (p.parse::<u16>().ok()?, Some(c.parse::<u16>().ok()?)),
        None => (port_field.parse::<u16>().ok()?, None),
    };
    let protocol = fields.next()?.to_owned();
    let formats = fields.map(str::to_owned).collect();
    Some(MediaDescription {
        media,
        port,
        port_count,
        protocol,
        formats,
        connections: Vec::new(),
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime: None,
        maxptime: None,
        rtcp: None,
        rtcp_mux: false,
        direction: None,
        attributes: Vec::new(),
    })
}

/// `<nettype> <addrtype> <address>[/<ttl>][/<count>]`.
fn parse_connection(value: &str) -> Option<Connection> {
    let mut fields = value.split_ascii_whitespace();
    let net_type = fields.next()?;
    let addr_type = fields.next()?;
    let full = fields.next()?;
    let address = full.split('/').next().unwrap_or(full);
    if address.is_empty() {
        return None;
    }
    let ip = if !net_type.eq_ignore_ascii_case("IN") {
        None
    } else if addr_type.eq_ignore_ascii_case("IP4") {
        address.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
    } else if addr_type.eq_ignore_ascii_case("IP6") {
        // Some stacks bracket IPv6 literals as in URIs; accept that spelling too.
        let bare = address
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(address);
        bare.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        None
    };
    Some(Connection {
        net_type: net_type.to_owned(),
        addr_type: addr_type.to_owned(),
        address: address.to_owned(),
        ip,
    })
}

/// `<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`; anything else
/// yields `None` (the origin is informative for a UAC, not worth failing a call over).
fn parse_origin(value: &str) -> Option<Origin> {
    let f: Vec<&str> = value.split_ascii_whitespace().collect();
    match f.as_slice() {
        [username, session_id, session_version, net_type, addr_type, address] => Some(Origin {
            username: (*username).to_owned(),
            session_id: (*session_id).to_owned(),
            session_version: (*session_version).to_owned(),
            net_type: (*net_type).to_owned(),
            addr_type: (*addr_type).to_owned(),
            address: (*address).to_owned(),
        }),
        _ => None,
    }
}

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
/// m=audio <port> RTP/AVP <pt> ... <te-pt>
/// a=rtpmap:<pt> <name>/<clock>[/<channels>]   (one per codec, static ones too)
/// a=fmtp:<pt> <params>                        (when the codec has any)
/// a=rtpmap:<te-pt> telephone-event/8000
/// a=fmtp:<te-pt> 0-16
/// a=ptime:<ms>
/// a=sendrecv
/// ```
///
/// Static payload types get an `a=rtpmap` too: RFC 3264 allows it and some answerers only
/// look at rtpmaps. `sendrecv` is explicit because, although it is the default, a few SBCs
/// treat its absence as hold after a re-INVITE. A telephone-event payload type equal to a
/// codec's is skipped rather than written twice.
pub fn build_offer(params: &OfferParams) -> String {
    let ip_type = match params.addr {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    let mut s = String::with_capacity(256);
    // `write!` into a String cannot fail; the results are ignored on purpose.
    let _ = write!(
        s,
        "v=0\r\no=- {} {} IN {ip_type} {addr}\r\ns=-\r\nc=IN {ip_type} {addr}\r\nt=0 0\r\n",
        params.session_id,
        params.version,
        addr = params.addr,
    );
    let te = params
        .telephone_event_pt
        .filter(|te| params.codecs.iter().all(|c| c.payload_type != *te));
    let _ = write!(s, "m=audio {} RTP/AVP", params.rtp_port);
    for c in &params.codecs {
        let _ = write!(s, " {}", c.payload_type);
    }
    if let Some(te) = te {
        let _ = write!(s, " {te}");
    }
    s.push_str("\r\n");
    for c in &params.codecs {
        let _ = write!(s, "a=rtpmap:{} {}/{}", c.payload_type, c.name, c.clock_rate);
        if let Some(ch) = c.channels {
            let _ = write!(s, "/{ch}");
        }
        s.push_str("\r\n");
        if let Some(fmtp) = &c.fmtp {
            let _ = write!(s, "a=fmtp:{} {}\r\n", c.payload_type, fmtp);
        }
    }
    if let Some(te) = te {
        let _ = write!(
            s,
            "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
        );
    }
    if params.ptime_ms > 0 {
        let _ = write!(s, "a=ptime:{}\r\n", params.ptime_ms);
    }
    s.push_str("a=sendrecv\r\n");
    s
}

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
}

/// Static payload types a peer may use without an rtpmap (RFC 3551 table 4), restricted to
/// the audio codecs a trunk might answer with.
fn static_payload(pt: u8) -> Option<(&'static str, u32)> {
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
    if proto != "RTP/AVP" && proto != "RTP/AVPF" {
        return Err(SdpError::UnsupportedTransport(media.protocol.clone()));
    }
    let conn = answer
        .connection_for(media)
        .ok_or(SdpError::MissingConnection)?;
    let ip = conn
        .ip
        .ok_or_else(|| SdpError::UnresolvedConnection(conn.address.clone()))?
        .to_canonical();
    let remote_rtp = SocketAddr::new(ip, media.port);

    let is_te = |pt: u8| match media.rtpmap(pt) {
        Some(map) => map.encoding.eq_ignore_ascii_case("telephone-event"),
        None => offer.telephone_event_pt == Some(pt),
    };
    let mut chosen = None;
    for pt in media.payload_types() {
        if is_te(pt) {
            continue;
        }
        let (name, clock, channels) = match media.rtpmap(pt) {
            Some(map) => (map.encoding.as_str(), map.clock_rate, map.channels),
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
            chosen = Some((pt, codec));
            break;
        }
    }
    let (payload_type, codec) = chosen.ok_or(SdpError::NoAcceptableCodec)?;

    let telephone_event_pt = offer
        .telephone_event_pt
        .and(media.payload_types().find(|pt| match media.rtpmap(*pt) {
            Some(map) => {
                map.encoding.eq_ignore_ascii_case("telephone-event") && map.clock_rate == 8000
            }
            None => offer.telephone_event_pt == Some(*pt),
        }));

    let remote_rtcp = if media.rtcp_mux {
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
    };

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
    })
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
        if let Ok(neg) = negotiate(&offer, &sdp) {
            assert_ne!(neg.remote_rtp.port(), 0, "negotiated port 0");
            assert!(
                offer.codecs.iter().any(|c| c.name == neg.codec),
                "negotiated a codec we did not offer"
            );
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn g711_offer() -> OfferParams {
        OfferParams::g711(42, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 40000)
    }

    fn neg(answer: &str) -> Result<NegotiatedMedia, SdpError> {
        negotiate(&g711_offer(), &parse(answer.as_bytes())?)
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
        let sdp = parse(build_offer(&g711_offer()).as_bytes()).unwrap();
        let o = sdp.origin.as_ref().unwrap();
        assert_eq!(
            (o.session_id.as_str(), o.address.as_str()),
            ("42", "192.0.2.10")
        );
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
        let n =
            neg("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 6000 RTP/AVP 0\r\na=rtcp-mux\r\n").unwrap();
        assert!(n.rtcp_mux);
        assert_eq!(n.remote_rtcp, Some(n.remote_rtp));
        let n =
            neg("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 6000 RTP/AVP 0\r\na=rtcp:7001\r\n").unwrap();
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
        let n =
            neg("v=0\r\nc=IN IP4 192.0.2.1\r\na=recvonly\r\nm=audio 6000 RTP/AVP 0\r\n").unwrap();
        assert_eq!(n.direction, Direction::RecvOnly, "session level applies");
        assert!(n.direction.writer_receives() && !n.direction.writer_sends());
        let n = neg(
            "v=0\r\nc=IN IP4 192.0.2.1\r\na=recvonly\r\nm=audio 6000 RTP/AVP 0\r\n\
             a=inactive\r\n",
        )
        .unwrap();
        assert_eq!(n.direction, Direction::Inactive, "media level overrides");
        let n =
            neg("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 6000 RTP/AVP 0\r\na=sendonly\r\n").unwrap();
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
}
