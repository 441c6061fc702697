//! What a datagram on a call's media port is, before anything trusts it.
//!
//! Why: softphones behind NAT (linphone, for one) send STUN Binding Requests to the RTP and RTCP
//! ports just before their first RTP packet (ICE connectivity checks, RFC 8445). Read as RTP, a
//! STUN message has a "sequence number" and an "SSRC" (bytes 8–12 are its transaction ID), so a
//! receiver that locks the source on the first datagram locks onto garbage and then drops every
//! real packet. RFC 7983 §7 separates the protocols that share a port by the first byte; RFC
//! 3550 Appendix A.1 says which headers are plausible RTP; RFC 5761 §4 tells RTCP from RTP by
//! the second byte. Only a datagram classified [`Datagram::Rtp`] may lock a source.

use super::rtcp;

/// The kinds of datagram that can reach a media port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram {
    /// A plausible RTP packet (RFC 3550 A.1), with its SSRC.
    Rtp {
        /// Synchronisation source.
        ssrc: u32,
        /// Payload type.
        payload_type: u8,
    },
    /// RTCP (RFC 5761 §4: second byte 192–223, version 2).
    Rtcp,
    /// STUN (RFC 7983: first byte 0–3), e.g. an ICE connectivity check.
    Stun,
    /// DTLS (first byte 20–63), e.g. a DTLS-SRTP handshake we never negotiated.
    Dtls,
    /// Anything else: ZRTP, TURN channel data, truncated or malformed RTP.
    Other,
}

/// Classifies `data` (RFC 7983 §7 first, then RTCP, then the RTP validity checks of RFC 3550
/// A.1: version 2, a header that fits with its CSRCs and extension, padding that fits).
pub fn classify(data: &[u8]) -> Datagram {
    let Some(&first) = data.first() else {
        return Datagram::Other;
    };
    match first {
        0..=3 => return Datagram::Stun,
        20..=63 => return Datagram::Dtls,
        128..=191 => {}
        _ => return Datagram::Other,
    }
    if rtcp::is_rtcp(data) {
        return Datagram::Rtcp;
    }
    if data.len() < 12 {
        return Datagram::Other;
    }
    let csrc = usize::from(first & 0x0f);
    let mut header = 12 + 4 * csrc;
    if first & 0x10 != 0 {
        // Extension: 4 bytes of profile and length, then `length` 32-bit words.
        let Some(ext) = data.get(header..header + 4) else {
            return Datagram::Other;
        };
        header += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    if header > data.len() {
        return Datagram::Other;
    }
    if first & 0x20 != 0 {
        // Padding: the last octet counts the padding octets, itself included.
        let pad = usize::from(data[data.len() - 1]);
        if pad == 0 || header + pad > data.len() {
            return Datagram::Other;
        }
    }
    Datagram::Rtp {
        ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
        payload_type: data[1] & 0x7f,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(first: u8, pt: u8, ssrc: u32, extra: &[u8]) -> Vec<u8> {
        let mut v = vec![first, pt, 0, 1, 0, 0, 0, 160];
        v.extend_from_slice(&ssrc.to_be_bytes());
        v.extend_from_slice(extra);
        v
    }

    /// A STUN Binding Request as linphone sends it before its first RTP: type 0x0001, length,
    /// magic cookie, 12-byte transaction ID (which sits where RTP's SSRC would be read).
    fn stun_binding() -> Vec<u8> {
        let mut v = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        v.extend_from_slice(&[9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2]);
        v
    }

    #[test]
    fn stun_dtls_and_garbage_are_not_rtp() {
        assert_eq!(classify(&stun_binding()), Datagram::Stun);
        // A STUN success response (0x0101) too.
        let mut resp = stun_binding();
        resp[0] = 0x01;
        resp[1] = 0x01;
        assert_eq!(classify(&resp), Datagram::Stun);
        assert_eq!(classify(&[22, 0xfe, 0xfd, 0, 0]), Datagram::Dtls);
        assert_eq!(classify(&[]), Datagram::Other);
        assert_eq!(classify(b"hello world!"), Datagram::Other);
        // Version 1 and version 3 headers.
        assert_eq!(classify(&rtp(0x40, 0, 1, &[0; 160])), Datagram::Other);
        assert_eq!(classify(&rtp(0xc0, 0, 1, &[0; 160])), Datagram::Other);
    }

    #[test]
    fn rtp_validity_checks() {
        assert_eq!(
            classify(&rtp(0x80, 8, 77, &[0xd5; 160])),
            Datagram::Rtp {
                ssrc: 77,
                payload_type: 8
            }
        );
        // Marker bit set: still payload type 101.
        assert_eq!(
            classify(&rtp(0x80, 0x80 | 101, 5, &[1, 0x8a, 0, 160])),
            Datagram::Rtp {
                ssrc: 5,
                payload_type: 101
            }
        );
        // Too short for the header, or for its announced CSRCs.
        assert_eq!(classify(&rtp(0x80, 0, 1, &[])[..11]), Datagram::Other);
        assert_eq!(classify(&rtp(0x83, 0, 1, &[0; 8])), Datagram::Other);
        assert!(matches!(
            classify(&rtp(0x81, 0, 1, &[0; 8])),
            Datagram::Rtp { .. }
        ));
        // An extension longer than the packet; one that fits.
        assert_eq!(
            classify(&rtp(0x90, 0, 1, &[0xbe, 0xde, 0, 9])),
            Datagram::Other
        );
        assert!(matches!(
            classify(&rtp(0x90, 0, 1, &[0xbe, 0xde, 0, 1, 1, 2, 3, 4])),
            Datagram::Rtp { .. }
        ));
        // Padding: zero, or more than the payload, is invalid.
        assert_eq!(classify(&rtp(0xa0, 0, 1, &[1, 2, 0])), Datagram::Other);
        assert_eq!(classify(&rtp(0xa0, 0, 1, &[1, 2, 40])), Datagram::Other);
        assert!(matches!(
            classify(&rtp(0xa0, 0, 1, &[1, 2, 2])),
            Datagram::Rtp { .. }
        ));
    }

    #[test]
    fn rtcp_is_told_from_rtp() {
        let rr = [0x81, 201, 0, 7, 0, 0, 0, 77, 0, 0, 0, 5];
        assert_eq!(classify(&rr), Datagram::Rtcp);
    }
}
