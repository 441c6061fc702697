//! RTCP (RFC 3550 §6): the sender reports and BYE we send, and the receiver reports the far
//! end sends, whose loss and jitter we record.
//!
//! Writing goes into a caller's buffer (no allocation); reading borrows the datagram and
//! never panics on hostile input (a fuzz target covers it).

use thiserror::Error;

/// RTCP packet types (RFC 3550 §12.1).
pub const PT_SR: u8 = 200;
/// Receiver report.
pub const PT_RR: u8 = 201;
/// Source description.
pub const PT_SDES: u8 = 202;
/// Goodbye.
pub const PT_BYE: u8 = 203;

/// What a sender report says about our stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// Our SSRC.
    pub ssrc: u32,
    /// Wallclock (NTP 32.32) when the report was made.
    pub ntp: u64,
    /// The RTP timestamp matching `ntp`.
    pub rtp_ts: u32,
    /// RTP packets sent.
    pub packets: u32,
    /// Payload octets sent.
    pub octets: u32,
}

/// Writes an RTCP compound packet SR + SDES(CNAME) [+ BYE] into `buf`; returns its length, or
/// 0 if `buf` is too small.
pub fn write_sr(buf: &mut [u8], info: &SenderInfo, cname: &str, bye: bool) -> usize {
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    // SDES chunk: SSRC, CNAME item (2 + len), END, padded to 4 bytes.
    let chunk = (4 + 2 + cname.len() + 1).next_multiple_of(4);
    let total = 28 + 4 + chunk + if bye { 8 } else { 0 };
    if buf.len() < total {
        return 0;
    }
    // SR: V=2, RC=0, PT=200, length 6 (28 bytes).
    buf[0] = 0x80;
    buf[1] = PT_SR;
    buf[2..4].copy_from_slice(&6u16.to_be_bytes());
    buf[4..8].copy_from_slice(&info.ssrc.to_be_bytes());
    buf[8..16].copy_from_slice(&info.ntp.to_be_bytes());
    buf[16..20].copy_from_slice(&info.rtp_ts.to_be_bytes());
    buf[20..24].copy_from_slice(&info.packets.to_be_bytes());
    buf[24..28].copy_from_slice(&info.octets.to_be_bytes());
    // SDES: V=2, SC=1.
    let s = &mut buf[28..28 + 4 + chunk];
    s[0] = 0x81;
    s[1] = PT_SDES;
    s[2..4].copy_from_slice(&((chunk / 4) as u16).to_be_bytes());
    s[4..8].copy_from_slice(&info.ssrc.to_be_bytes());
    s[8] = 1; // CNAME
    s[9] = cname.len() as u8;
    s[10..10 + cname.len()].copy_from_slice(cname);
    for b in &mut s[10 + cname.len()..] {
        *b = 0; // END and padding
    }
    if bye {
        let b = &mut buf[28 + 4 + chunk..total];
        b[0] = 0x81;
        b[1] = PT_BYE;
        b[2..4].copy_from_slice(&1u16.to_be_bytes());
        b[4..8].copy_from_slice(&info.ssrc.to_be_bytes());
    }
    total
}

/// Why an RTCP datagram was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtcpError {
    /// Shorter than a header, or a length field past the end.
    #[error("truncated RTCP packet")]
    Truncated,
    /// Version is not 2.
    #[error("RTCP version {0} is not 2")]
    Version(u8),
}

/// One packet of a compound, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpPacket<'a> {
    /// Packet type (200 SR, 201 RR, 202 SDES, 203 BYE, ...).
    pub pt: u8,
    /// The 5-bit count field (report blocks, chunks or sources).
    pub count: u8,
    /// Everything after the 4-byte header, padding removed.
    pub body: &'a [u8],
}

/// A reception report block (RFC 3550 §6.4.1): what the far end says about our stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The SSRC the block reports on (ours).
    pub ssrc: u32,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
}

/// Iterates the packets of a compound RTCP datagram.
#[derive(Debug, Clone)]
pub struct Compound<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Compound<'a> {
    /// Starts iterating `datagram`.
    pub fn new(datagram: &'a [u8]) -> Self {
        Compound {
            rest: datagram,
            failed: false,
        }
    }
}

impl<'a> Iterator for Compound<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        let r = self.rest;
        if r.len() < 4 {
            self.failed = true;
            return Some(Err(RtcpError::Truncated));
        }
        let v = r[0] >> 6;
        if v != 2 {
            self.failed = true;
            return Some(Err(RtcpError::Version(v)));
        }
        let len = (usize::from(u16::from_be_bytes([r[2], r[3]])) + 1) * 4;
        if len > r.len() {
            self.failed = true;
            return Some(Err(RtcpError::Truncated));
        }
        let mut body = &r[4..len];
        if r[0] & 0x20 != 0 {
            // Padding: the last octet counts the padding octets, itself included.
            let pad = usize::from(*body.last().unwrap_or(&0));
            if pad == 0 || pad > body.len() {
                self.failed = true;
                return Some(Err(RtcpError::Truncated));
            }
            body = &body[..body.len() - pad];
        }
        self.rest = &r[len..];
        Some(Ok(RtcpPacket {
            pt: r[1],
            count: r[0] & 0x1f,
            body,
        }))
    }
}

impl<'a> RtcpPacket<'a> {
    /// The report blocks of an SR or RR (none for other types; a truncated list stops early).
    pub fn report_blocks(&self) -> impl Iterator<Item = ReportBlock> + 'a {
        let skip = match self.pt {
            PT_SR => 24,
            PT_RR => 4,
            _ => usize::MAX,
        };
        let body = self.body;
        let blocks = if skip <= body.len() {
            &body[skip..]
        } else {
            &[][..]
        };
        blocks
            .chunks_exact(24)
            .take(usize::from(self.count))
            .map(|b| {
                let w = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                let lost = w(4) & 0x00ff_ffff;
                // Sign-extend the 24-bit count.
                let cumulative_lost = ((lost << 8) as i32) >> 8;
                ReportBlock {
                    ssrc: w(0),
                    fraction_lost: b[4],
                    cumulative_lost,
                    highest_seq: w(8),
                    jitter: w(12),
                }
            })
    }

    /// The sender SSRC of an SR, RR or the first SSRC of a BYE.
    pub fn sender_ssrc(&self) -> Option<u32> {
        let b = self.body.get(..4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Whether a datagram on a muxed RTP/RTCP port is RTCP (RFC 5761 §4: second byte 192–223).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 8 && (192..=223).contains(&datagram[1]) && datagram[0] >> 6 == 2
}

/// The body of the `rtp_packets` fuzz target, shared with the corpus replay test: every
/// media-side parser (datagram classification, RTCP compound and report blocks, RTP header,
/// RFC 4733 events) over the same bytes. Not part of the stable API.
#[doc(hidden)]
pub fn fuzz_exercise(data: &[u8]) {
    for p in Compound::new(data).flatten() {
        let _ = p.sender_ssrc();
        for b in p.report_blocks() {
            let _ = b.jitter;
        }
    }
    let _ = is_rtcp(data);
    let _ = super::demux::classify(data);
    if let Ok(r) = rtp_rs::RtpReader::new(data) {
        let _ = (r.sequence_number(), r.timestamp(), r.payload().len());
    }
    let _ = super::dtmf::TelephoneEvent::parse(data);
    let mut d = super::dtmf::DtmfDecoder::new(101);
    d.handle_rtp(data);
    // The same bytes as an RTP packet carrying telephone-events, and as INFO bodies.
    let mut pkt = vec![0x80, 101, 0, 1, 0, 0, 0, 160, 0, 0, 0, 1];
    pkt.extend_from_slice(data);
    d.handle_rtp(&pkt);
    while d.poll_event().is_some() {}
    let _ = super::dtmf::parse_info("application/dtmf-relay", data);
    let _ = super::dtmf::parse_info("application/dtmf", data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_report_round_trip() {
        let info = SenderInfo {
            ssrc: 0xdead_beef,
            ntp: 0x1122_3344_5566_7788,
            rtp_ts: 99,
            packets: 250,
            octets: 40_000,
        };
        let mut buf = [0u8; 128];
        let n = write_sr(&mut buf, &info, "dialer@example", true);
        assert_eq!(n % 4, 0);
        let pkts: Vec<RtcpPacket> = Compound::new(&buf[..n]).map(|p| p.unwrap()).collect();
        assert_eq!(
            pkts.iter().map(|p| p.pt).collect::<Vec<_>>(),
            [PT_SR, PT_SDES, PT_BYE]
        );
        assert_eq!(pkts[0].sender_ssrc(), Some(0xdead_beef));
        assert_eq!(pkts[2].sender_ssrc(), Some(0xdead_beef));
        assert!(is_rtcp(&buf[..n]));
        assert_eq!(write_sr(&mut buf[..20], &info, "x", false), 0);
    }

    #[test]
    fn receiver_report_blocks() {
        // RR from SSRC 7 with one block about SSRC 9: 5/256 lost, -3 cumulative, jitter 42.
        let mut p = vec![0x81, PT_RR, 0, 7, 0, 0, 0, 7];
        p.extend_from_slice(&9u32.to_be_bytes());
        p.extend_from_slice(&[5, 0xff, 0xff, 0xfd]);
        p.extend_from_slice(&1000u32.to_be_bytes());
        p.extend_from_slice(&42u32.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        let pkt = Compound::new(&p).next().unwrap().unwrap();
        let b: Vec<ReportBlock> = pkt.report_blocks().collect();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].ssrc, 9);
        assert_eq!(b[0].fraction_lost, 5);
        assert_eq!(b[0].cumulative_lost, -3);
        assert_eq!(b[0].jitter, 42);
        // Truncated length and bad version are errors, not panics.
        p[3] = 9;
        assert_eq!(Compound::new(&p).next(), Some(Err(RtcpError::Truncated)));
        p[0] = 0x41;
        assert!(matches!(
            Compound::new(&p).next(),
            Some(Err(RtcpError::Version(1)))
        ));
    }
}
