//! SDES (RFC 4568): the `a=crypto` attribute that carries SRTP keys in the SDP, which is why
//! it may only travel over TLS.
//!
//! We offer and accept one suite, `AES_CM_128_HMAC_SHA1_80` (the one every SIP trunk and
//! softphone supports), with one `inline:` key, the default lifetime (2^31 packets, more
//! than a call lasts) and no MKI. A line with session parameters (`UNENCRYPTED_SRTP`,
//! `KDR=` ...) changes what the packets look like, so it is not taken rather than half
//! honoured.

use crate::media::srtp::MasterKey;

use super::{MediaDescription, SdpError};

/// The crypto suite name we speak.
pub const SUITE: &str = "AES_CM_128_HMAC_SHA1_80";

/// Whether a trunk's calls are encrypted (`srtp` in the trunk's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SrtpMode {
    /// Plain RTP, no `a=crypto`.
    #[default]
    Off,
    /// Offer `RTP/AVP` with `a=crypto` (RFC 4568 best effort): encrypted when the answer
    /// takes the key, plain otherwise.
    Optional,
    /// Offer `RTP/SAVP`; an answer without a usable key ends the call.
    Required,
}

impl SrtpMode {
    /// The configuration word.
    pub fn as_str(self) -> &'static str {
        match self {
            SrtpMode::Off => "off",
            SrtpMode::Optional => "optional",
            SrtpMode::Required => "required",
        }
    }
}

/// Our side of an SDES exchange: the key we send with and whether encryption is a must.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpOffer {
    /// The key our packets are protected with (fresh per call).
    pub key: MasterKey,
    /// `RTP/SAVP` and nothing else.
    pub required: bool,
}

/// The two keys of an encrypted call: what we protect our packets with, and what the far
/// end protects its own with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// Our key (our SDP's `a=crypto`).
    pub local: MasterKey,
    /// The far end's key (its SDP's `a=crypto`).
    pub remote: MasterKey,
}

/// One `a=crypto` line: its tag and the key, when the suite and parameters are ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoLine {
    /// The line's tag (`1` in `a=crypto:1 ...`): an answer repeats the tag it accepts.
    pub tag: u32,
    /// The master key and salt of the `inline:` parameter.
    pub key: MasterKey,
}

/// Writes our `a=crypto` line (without the line end).
pub fn write_line(tag: u32, key: &MasterKey) -> String {
    format!("a=crypto:{tag} {SUITE} inline:{}", key.to_inline())
}

/// Parses the value of an `a=crypto` attribute (after `crypto:`). `None` when it is
/// malformed or not something we can use: another suite, several keys, an MKI, session
/// parameters, or a lifetime below 2^20 packets (about 5.8 hours at 50 packets a second is
/// more than a call; a shorter one would ask us to re-key mid-call).
pub fn parse_line(value: &str) -> Option<CryptoLine> {
    let mut fields = value.split_ascii_whitespace();
    let tag = fields
        .next()?
        .parse::<u32>()
        .ok()
        .filter(|t| *t < 1_000_000_000)?;
    if !fields.next()?.eq_ignore_ascii_case(SUITE) {
        return None;
    }
    let params = fields.next()?;
    if fields.next().is_some() || params.contains(';') {
        return None;
    }
    let inline = params.strip_prefix("inline:")?;
    let mut parts = inline.split('|');
    let key = MasterKey::from_inline(parts.next()?)?;
    for extra in parts {
        if extra.contains(':') {
            return None; // MKI
        }
        let lifetime = match extra.strip_prefix("2^") {
            Some(exp) => 1u64.checked_shl(exp.parse::<u32>().ok()?)?,
            None => extra.parse::<u64>().ok()?,
        };
        if lifetime < 1 << 20 {
            return None;
        }
    }
    Some(CryptoLine { tag, key })
}

/// The first usable `a=crypto` line of a media section.
pub fn first_usable(media: &MediaDescription) -> Option<CryptoLine> {
    media
        .attributes
        .iter()
        .filter(|a| a.name == "crypto")
        .find_map(|a| parse_line(a.value.as_deref()?))
}

/// Whether a media protocol is secure RTP.
pub fn is_secure_profile(protocol: &str) -> bool {
    let p = protocol.to_ascii_uppercase();
    p == "RTP/SAVP" || p == "RTP/SAVPF"
}

/// Settles SRTP for an answer to our offer: both keys when the call is encrypted, `None`
/// when it is plain, an error when the rules are broken (an encrypted profile without
/// a key we can use, or plain RTP when we required SRTP).
pub fn settle_answer(
    offer: Option<&SrtpOffer>,
    media: &MediaDescription,
) -> Result<Option<SrtpKeys>, SdpError> {
    let secure = is_secure_profile(&media.protocol);
    let Some(ours) = offer else {
        return if secure {
            Err(SdpError::UnsupportedTransport(media.protocol.to_string()))
        } else {
            Ok(None)
        };
    };
    match first_usable(media).filter(|line| line.tag == 1) {
        Some(line) => Ok(Some(SrtpKeys {
            local: ours.key.clone(),
            remote: line.key,
        })),
        None if secure || ours.required => Err(SdpError::NoUsableCrypto),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

    #[test]
    fn parses_what_trunks_send() {
        let l = parse_line(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")).unwrap();
        assert_eq!(l.tag, 1);
        assert_eq!(l.key.to_inline(), KEY);
        assert!(parse_line(&format!("2 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^31")).is_some());
        assert!(parse_line(&format!(
            "2 aes_cm_128_hmac_sha1_80 inline:{KEY}|2147483648"
        ))
        .is_some());
    }

    #[test]
    fn refuses_what_we_cannot_honour() {
        for bad in [
            format!("1 AES_CM_128_HMAC_SHA1_32 inline:{KEY}"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^31|1:4"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^10"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} UNENCRYPTED_SRTP"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY};inline:{KEY}"),
            "1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=".to_string(),
            "x AES_CM_128_HMAC_SHA1_80".to_string(),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^999"),
            String::new(),
        ] {
            assert_eq!(parse_line(&bad), None, "{bad}");
        }
    }

    #[test]
    fn written_lines_parse_back() {
        let key = MasterKey::new([7; 16], [9; 14]);
        let line = write_line(1, &key);
        let value = line.strip_prefix("a=crypto:").unwrap();
        assert_eq!(parse_line(value), Some(CryptoLine { tag: 1, key }));
    }
}
