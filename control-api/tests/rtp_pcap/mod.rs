//! A caller's RTP stream written as pcap files that SIPp replays (`play_pcap_audio`):
//! one SSRC, sequence numbers and timestamps that carry on from one file to the next, so
//! that a scenario can play keys, then a spoken message, then more keys, and the dialer
//! sees one continuous stream (RFC 3550) with a new timestamp for each key press (RFC 4733
//! §2.5.1: a press is identified by its timestamp; Debian's `dtmf_2833_N.pcap` all carry
//! one timestamp, so a second press from them is, correctly, taken as the same press).
//!
//! Shared by the test binaries that include it (`#[path]` from their common module).

#![allow(dead_code)]

/// RTP payload type of telephone-events in every offer the tests make.
pub const TE_PT: u8 = 101;

/// The caller's side of one call: the next sequence number, RTP timestamp (8 kHz) and
/// capture time of the packets to come.
pub struct RtpStream {
    ssrc: u32,
    seq: u16,
    ts: u32,
    at_us: u64,
}

impl RtpStream {
    /// A stream starting at arbitrary but fixed values (deterministic tests).
    pub fn new(ssrc: u32) -> RtpStream {
        RtpStream {
            ssrc,
            seq: 1000,
            ts: 8000,
            at_us: 0,
        }
    }

    /// Moves the stream's clock on by `ms` with nothing sent: the scenario's pause between
    /// two files, so the next file's timestamps follow the time that really passed.
    pub fn skip_ms(&mut self, ms: u32) {
        self.ts = self.ts.wrapping_add(ms * 8);
        self.at_us += u64::from(ms) * 1000;
    }

    /// A pcap of key presses `gap_ms` apart: each press 100 ms of updates (one packet per
    /// 20 ms, the first with the marker bit), then its final packet three times (E bit), all
    /// with the press's own timestamp. The stream's clock moves past the last press.
    pub fn keys(&mut self, digits: &str, gap_ms: u32) -> Vec<u8> {
        assert!(gap_ms >= 160, "a press and its ends take 160 ms");
        let mut out = header();
        let t0 = self.at_us;
        for (i, d) in digits.chars().enumerate() {
            let event: u8 = match d {
                '0'..='9' => d as u8 - b'0',
                '*' => 10,
                '#' => 11,
                _ => panic!("not a key: {d}"),
            };
            let ts = self.ts.wrapping_add(i as u32 * gap_ms * 8);
            for k in 0..8u32 {
                let end = k >= 5;
                let duration = if end { 960u16 } else { (k as u16 + 1) * 160 };
                let mut payload = vec![event, if end { 0x80 | 10 } else { 10 }];
                payload.extend_from_slice(&duration.to_be_bytes());
                let at = t0 + i as u64 * u64::from(gap_ms) * 1000 + u64::from(k) * 20_000;
                let rtp = self.packet(k == 0, TE_PT, ts, &payload);
                out.extend_from_slice(&record(at, &rtp));
            }
        }
        self.skip_ms(digits.chars().count() as u32 * gap_ms);
        out
    }

    /// A pcap of audio frames of payload type `pt`, one per 20 ms, the timestamp advancing
    /// `ts_step` per frame (160 for PCMA/PCMU and for G.722, whose RTP clock is 8 kHz).
    pub fn audio(&mut self, pt: u8, frames: &[Vec<u8>], ts_step: u32) -> Vec<u8> {
        let mut out = header();
        for (i, f) in frames.iter().enumerate() {
            let rtp = self.packet(i == 0, pt, self.ts, f);
            out.extend_from_slice(&record(self.at_us, &rtp));
            self.ts = self.ts.wrapping_add(ts_step);
            self.at_us += 20_000;
        }
        out
    }

    fn packet(&mut self, marker: bool, pt: u8, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut rtp = vec![0x80, if marker { 0x80 | pt } else { pt }];
        rtp.extend_from_slice(&self.seq.to_be_bytes());
        rtp.extend_from_slice(&ts.to_be_bytes());
        rtp.extend_from_slice(&self.ssrc.to_be_bytes());
        rtp.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        rtp
    }
}

/// The pcap global header: magic, version 2.4, zone, accuracy, snap length, Ethernet.
fn header() -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out
}

/// One pcap record: Ethernet, IPv4 (127.0.0.1 → 127.0.0.1), UDP 10000 → 20000, payload.
/// (SIPp sends the UDP payload from its own media socket; the addresses here are unused.)
fn record(at_us: u64, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len() as u16;
    let ip_len = 20 + udp_len;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&ip_len.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
    let sum = ip
        .chunks(2)
        .fold(0u32, |a, c| a + u32::from(u16::from_be_bytes([c[0], c[1]])));
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&10_000u16.to_be_bytes());
    frame.extend_from_slice(&20_000u16.to_be_bytes());
    frame.extend_from_slice(&udp_len.to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(payload);
    let mut rec = Vec::new();
    rec.extend_from_slice(&((at_us / 1_000_000) as u32 + 1_700_000_000).to_le_bytes());
    rec.extend_from_slice(&((at_us % 1_000_000) as u32).to_le_bytes());
    rec.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    rec.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    rec.extend_from_slice(&frame);
    rec
}

/// Reads back the RTP packets of a pcap this module wrote: (payload type, timestamp,
/// whether the marker is set, payload). For the module's own tests.
pub fn packets(pcap: &[u8]) -> Vec<(u8, u32, bool, Vec<u8>)> {
    let mut out = vec![];
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let len = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &pcap[at + 16..at + 16 + len];
        let rtp = &frame[14 + 20 + 8..];
        out.push((
            rtp[1] & 0x7f,
            u32::from_be_bytes(rtp[4..8].try_into().unwrap()),
            rtp[1] & 0x80 != 0,
            rtp[12..].to_vec(),
        ));
        at += 16 + len;
    }
    out
}

#[test]
fn a_repeated_key_is_two_presses_and_the_stream_carries_on() {
    let mut s = RtpStream::new(7);
    let keys = packets(&s.keys("11", 400));
    assert_eq!(keys.len(), 16);
    let ts: Vec<u32> = keys.iter().map(|p| p.1).collect();
    assert_ne!(ts[0], ts[8], "a new timestamp for the second press");
    assert!(ts[..8].iter().all(|t| *t == ts[0]) && ts[8..].iter().all(|t| *t == ts[8]));
    // Three end packets (E bit) per press, the marker on each press's first packet.
    let ends = keys.iter().filter(|p| p.3[1] & 0x80 != 0).count();
    assert_eq!(ends, 6);
    assert!(keys[0].2 && keys[8].2 && !keys[1].2);
    let audio = packets(&s.audio(8, &[vec![0xd5; 160], vec![0xd5; 160]], 160));
    assert!(audio[0].1 > ts[8], "audio after the keys on the same clock");
    assert_eq!(audio[1].1 - audio[0].1, 160);
}
