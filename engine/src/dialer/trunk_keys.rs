//! Trunk keys that are words in the configuration and enums in the program: `transport`,
//! `codecs` and `routes`, parsed once when the configuration (or an API body) is read and
//! written back as the same words.

use std::fmt;

use codecs::Codec;
use serde::{Deserialize, Deserializer};

use super::numbers::NumberType;
use crate::sip::endpoint::Transport;
use crate::sip::sdp::OfferCodec;

/// How SIP reaches a trunk's proxy (`udp` or `tcp`, any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrunkTransport {
    /// UDP (the default).
    #[default]
    Udp,
    /// TCP.
    Tcp,
    /// TLS (the only transport SRTP keys may travel on).
    Tls,
}

impl TrunkTransport {
    /// The configuration word.
    pub fn as_str(self) -> &'static str {
        match self {
            TrunkTransport::Udp => "udp",
            TrunkTransport::Tcp => "tcp",
            TrunkTransport::Tls => "tls",
        }
    }

    /// The endpoint's transport.
    pub fn sip(self) -> Transport {
        match self {
            TrunkTransport::Udp => Transport::Udp,
            TrunkTransport::Tcp => Transport::Tcp,
            TrunkTransport::Tls => Transport::Tls,
        }
    }

    /// Parses a configuration word (case-insensitive).
    pub fn parse(s: &str) -> Option<TrunkTransport> {
        match s.to_ascii_lowercase().as_str() {
            "udp" => Some(TrunkTransport::Udp),
            "tcp" => Some(TrunkTransport::Tcp),
            "tls" => Some(TrunkTransport::Tls),
            _ => None,
        }
    }
}

impl fmt::Display for TrunkTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TrunkTransport {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TrunkTransport::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("transport must be udp, tcp or tls, not {s:?}"))
        })
    }
}

/// What one entry of a trunk's `routes` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteKey {
    /// `*` or `any`: every number.
    Any,
    /// A number type (`fixed`, `mobile`, `unknown`).
    Type(NumberType),
    /// An E.164 prefix such as `+39`.
    Prefix(String),
}

impl RouteKey {
    /// Parses one `routes` entry; `None` for a word that is neither a type nor a prefix.
    pub fn parse(s: &str) -> Option<RouteKey> {
        let s = s.trim();
        if s.len() > 1 && s.starts_with('+') && s[1..].bytes().all(|b| b.is_ascii_digit()) {
            return Some(RouteKey::Prefix(s.to_string()));
        }
        match s.to_ascii_lowercase().as_str() {
            "*" | "any" => Some(RouteKey::Any),
            "fixed" => Some(RouteKey::Type(NumberType::Fixed)),
            "mobile" => Some(RouteKey::Type(NumberType::Mobile)),
            "unknown" => Some(RouteKey::Type(NumberType::Unknown)),
            _ => None,
        }
    }

    /// How specifically this entry matches a number (`None`: it does not). A prefix beats
    /// a type, a longer prefix a shorter one, and a type beats `any`.
    pub fn specificity(&self, e164: &str, ty: NumberType) -> Option<usize> {
        match self {
            RouteKey::Any => Some(0),
            RouteKey::Type(t) => (*t == ty).then_some(1),
            RouteKey::Prefix(p) => e164.starts_with(p.as_str()).then_some(1 + p.len()),
        }
    }
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteKey::Any => f.write_str("any"),
            RouteKey::Type(t) => f.write_str(t.as_str()),
            RouteKey::Prefix(p) => f.write_str(p),
        }
    }
}

impl<'de> Deserialize<'de> for RouteKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RouteKey::parse(&s).ok_or_else(|| serde::de::Error::custom(unknown_route(&s)))
    }
}

/// The message for a `routes` entry that does not parse.
pub fn unknown_route(s: &str) -> String {
    format!("unknown route {s:?} (fixed, mobile, unknown, any or an E.164 prefix like +39)")
}

/// The message for a `codecs` entry that does not parse.
pub fn unknown_codec(s: &str) -> String {
    format!("unknown codec {s:?}")
}

/// Deserializes `codecs` names (`PCMA`, `pcmu`, `G722`, `opus`, any case).
pub fn de_codecs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Codec>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            n.parse::<Codec>()
                .map_err(|_| serde::de::Error::custom(format!("codecs[{i}]: {}", unknown_codec(n))))
        })
        .collect()
}

/// The SDP offer entry of a codec (Opus on its conventional dynamic payload type).
pub fn offer_codec(c: Codec) -> OfferCodec {
    match c {
        Codec::Pcmu => OfferCodec::pcmu(),
        Codec::Pcma => OfferCodec::pcma(),
        Codec::G722 => OfferCodec::g722(),
        Codec::Opus => OfferCodec::opus(c.payload_type()),
    }
}

/// The configuration word of a codec as the API shows it (its SDP name).
pub fn codec_word(c: Codec) -> String {
    c.sdp_name().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_once_and_match_by_specificity() {
        let p = RouteKey::parse(" +3906 ").unwrap();
        assert_eq!(p, RouteKey::Prefix("+3906".into()));
        assert_eq!(p.specificity("+390612345", NumberType::Fixed), Some(6));
        assert_eq!(p.specificity("+39333", NumberType::Mobile), None);
        let m = RouteKey::parse("Mobile").unwrap();
        assert_eq!(m.specificity("+39333", NumberType::Mobile), Some(1));
        assert_eq!(m.specificity("+39333", NumberType::Fixed), None);
        assert_eq!(RouteKey::parse("*"), Some(RouteKey::Any));
        assert_eq!(RouteKey::parse("landline"), None);
        assert_eq!(RouteKey::parse("+"), None);
        assert_eq!(m.to_string(), "mobile");
    }

    #[test]
    fn transport_words() {
        assert_eq!(TrunkTransport::parse("TCP"), Some(TrunkTransport::Tcp));
        assert_eq!(TrunkTransport::parse("tls"), Some(TrunkTransport::Tls));
        assert_eq!(TrunkTransport::Tls.sip(), Transport::Tls);
        assert_eq!(TrunkTransport::parse("sctp"), None);
        assert_eq!(TrunkTransport::Udp.sip(), Transport::Udp);
    }

    #[test]
    fn codecs_offer_what_is_configured() {
        let names: Vec<&str> = [Codec::G722, Codec::Pcma, Codec::Opus]
            .into_iter()
            .map(|c| offer_codec(c).name)
            .collect();
        assert_eq!(names, ["G722", "PCMA", "opus"]);
        assert_eq!(offer_codec(Codec::G722).payload_type, 9);
    }
}
