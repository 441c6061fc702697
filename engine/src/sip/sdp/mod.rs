//! SDP (RFC 4566) for a UAC that offers one audio stream, and the RFC 3264 offer/answer
//! negotiation on top of it.
//!
//! The dialer always makes the offer (in its INVITE) and reads the answer (in a 183 or a
//! 2xx). So this module does three things:
//!
//! * [`build_offer`] writes our offer from [`OfferParams`];
//! * [`parse`] reads any SDP body a peer sends into a [`SessionDescription`] borrowing the
//!   body, tolerating what real carriers emit (LF line ends, blank lines, `a=rtpmap:31 LPC`
//!   without a clock rate, hostnames in `c=`) and rejecting with an [`SdpError`] — never
//!   a panic — what cannot be SDP at all;
//! * [`negotiate`] turns our offer and their answer into [`NegotiatedMedia`]: where to send
//!   RTP, which payload type, at what packet time.
//!
//! SDP is parsed once per call, but at thousands of calls a second that is on the hot path:
//! an owned form cost about twenty allocations per answer (a third of a call's). So the
//! parsed form borrows the body (`Cow`, owned only where a body was not UTF-8), and the
//! one place that keeps it past the datagram (an inbound call's offer) calls
//! [`SessionDescription::into_owned`].

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use thiserror::Error;

mod answer;
pub mod crypto;
mod negotiate;
mod offer;
mod owned;
mod parse;
#[cfg(test)]
mod tests;

pub use answer::{answer, AnswerParams, Answered};
pub use negotiate::{fuzz_exercise, negotiate, NegotiatedMedia};
pub use offer::{build_offer, OfferCodec, OfferParams};
pub use parse::parse;

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
    /// SRTP was required (or the answer chose `RTP/SAVP`) but no `a=crypto` line of the
    /// answer holds a key for our suite under our tag.
    #[error("answer holds no usable SRTP key (a=crypto)")]
    NoUsableCrypto,
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
pub struct Origin<'a> {
    /// `<username>` (`-` when the writer has none).
    pub username: Cow<'a, str>,
    /// `<sess-id>`, kept as text: some stacks exceed 64 bits.
    pub session_id: Cow<'a, str>,
    /// `<sess-version>`, kept as text for the same reason.
    pub session_version: Cow<'a, str>,
    /// `<nettype>`, normally `IN`.
    pub net_type: Cow<'a, str>,
    /// `<addrtype>`, normally `IP4` or `IP6`.
    pub addr_type: Cow<'a, str>,
    /// `<unicast-address>`: an IP literal or a hostname.
    pub address: Cow<'a, str>,
}

/// A `c=` line (RFC 4566 §5.7), at session or media level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection<'a> {
    /// `<nettype>`, normally `IN`.
    pub net_type: Cow<'a, str>,
    /// `<addrtype>`, normally `IP4` or `IP6`.
    pub addr_type: Cow<'a, str>,
    /// The address as written, without a multicast `/ttl` or `/count` suffix.
    pub address: Cow<'a, str>,
    /// The address as an IP when it is a literal of the family `addr_type` names (`IP4`
    /// with a dotted quad, `IP6` with an IPv6 literal); `None` for hostnames or mismatches,
    /// which [`negotiate`] reports rather than guessing.
    pub ip: Option<IpAddr>,
}

/// An `a=rtpmap:` attribute: what a dynamic (or restated static) payload type means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap<'a> {
    /// The payload type it describes.
    pub payload_type: u8,
    /// Encoding name as written (`PCMU`, `opus`, `telephone-event`); compare it
    /// case-insensitively.
    pub encoding: Cow<'a, str>,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Encoding parameters; for audio, the channel count (`opus/48000/2`).
    pub channels: Option<u8>,
}

/// An `a=fmtp:` attribute: format parameters for one payload type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp<'a> {
    /// The payload type the parameters apply to.
    pub payload_type: u8,
    /// The parameters as written (`0-16`, `useinbandfec=1; stereo=0`).
    pub params: Cow<'a, str>,
}

/// An `a=rtcp:` attribute (RFC 3605): where RTCP goes when it is not RTP port + 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtcp<'a> {
    /// The RTCP port.
    pub port: u16,
    /// An explicit address for RTCP, when the attribute has one.
    pub connection: Option<Connection<'a>>,
}

/// Any `a=` attribute, as written: `name` and the text after the first `:`, if any.
/// Kept so that callers can read attributes this module does not interpret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute<'a> {
    /// Name before the colon (or the whole property attribute, like `rtcp-mux`).
    pub name: Cow<'a, str>,
    /// Value after the colon.
    pub value: Option<Cow<'a, str>>,
}

/// One `m=` section with the attributes this UAC acts on already interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription<'a> {
    /// Media type: `audio`, `video`, `application`, ...
    pub media: Cow<'a, str>,
    /// Transport port; 0 means the stream is rejected or disabled (RFC 3264 §6).
    pub port: u16,
    /// The `/<number of ports>` suffix, when present.
    pub port_count: Option<u16>,
    /// Transport protocol: `RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, ...
    pub protocol: Cow<'a, str>,
    /// Formats in preference order; for RTP these are payload type numbers
    /// (see [`MediaDescription::payload_types`]).
    pub formats: Vec<Cow<'a, str>>,
    /// Media-level `c=` lines; RFC 4566 allows several (layered multicast), and when any is
    /// present it overrides the session level.
    pub connections: Vec<Connection<'a>>,
    /// Parsed `a=rtpmap:` lines (malformed ones are only in `attributes`).
    pub rtpmaps: Vec<RtpMap<'a>>,
    /// Parsed `a=fmtp:` lines.
    pub fmtps: Vec<Fmtp<'a>>,
    /// `a=ptime:` in milliseconds (a fractional value is truncated).
    pub ptime: Option<u32>,
    /// `a=maxptime:` in milliseconds.
    pub maxptime: Option<u32>,
    /// `a=rtcp:` (RFC 3605).
    pub rtcp: Option<Rtcp<'a>>,
    /// `a=rtcp-mux` present (RFC 5761).
    pub rtcp_mux: bool,
    /// Media-level direction attribute, if any (the last one wins, as most stacks do).
    pub direction: Option<Direction>,
    /// Every media-level attribute as written, interpreted or not.
    pub attributes: Vec<Attribute<'a>>,
}

impl<'a> MediaDescription<'a> {
    /// The formats that are RTP payload type numbers (0..=127), in order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .filter(|pt| *pt <= 127)
    }

    /// The `a=rtpmap:` entry for a payload type, if present.
    pub fn rtpmap(&self, payload_type: u8) -> Option<&RtpMap<'a>> {
        self.rtpmaps.iter().find(|m| m.payload_type == payload_type)
    }

    /// The `a=fmtp:` parameters for a payload type, if present.
    pub fn fmtp(&self, payload_type: u8) -> Option<&str> {
        self.fmtps
            .iter()
            .find(|f| f.payload_type == payload_type)
            .map(|f| &*f.params)
    }

    /// The first attribute with this name (case-sensitive, as RFC 4566 names are).
    pub fn attribute(&self, name: &str) -> Option<&Attribute<'a>> {
        self.attributes.iter().find(|a| a.name == name)
    }
}

/// A parsed SDP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription<'a> {
    /// `o=` line, if present and well formed.
    pub origin: Option<Origin<'a>>,
    /// `s=` text (may be empty or `-`).
    pub session_name: Cow<'a, str>,
    /// Session-level `c=` lines (RFC 4566 allows one; we keep all that appear).
    pub connections: Vec<Connection<'a>>,
    /// Session-level direction attribute, the default for every media section.
    pub direction: Option<Direction>,
    /// Session-level attributes as written.
    pub attributes: Vec<Attribute<'a>>,
    /// The `m=` sections in order; their position is what RFC 3264 matches offers and
    /// answers by.
    pub media: Vec<MediaDescription<'a>>,
}

impl<'s> SessionDescription<'s> {
    /// The effective connection of a media section: its own first `c=`, else the session's
    /// first (RFC 4566 §5.7).
    pub fn connection_for<'a>(
        &'a self,
        media: &'a MediaDescription<'s>,
    ) -> Option<&'a Connection<'s>> {
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
