//! Per-stream RTP receive analysis: packets, loss, sequence gaps, RFC 3550 interarrival
//! jitter, arrival lag against the stream's own clock, marker and timestamp checks, audio
//! heard, and (optionally) a streaming correlation of the decoded audio with the expected
//! prompt. O(1) memory per stream: no payload is stored.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use codecs::g711;
use codecs::Prompt;

/// Arrival-lag histogram: 10 µs buckets from −5 ms to +95 ms (lag relative to the stream's
/// first packet; negative when the first packet itself was late).
#[derive(Debug, Clone)]
pub struct Hist {
    buckets: Vec<u64>,
    /// Samples.
    pub count: u64,
    max_ns: i64,
}

const H_BUCKET: i64 = 10_000;
const H_OFFSET: i64 = 5_000_000;
const H_N: usize = 10_000;

impl Default for Hist {
    fn default() -> Self {
        Hist {
            buckets: vec![0; H_N + 1],
            count: 0,
            max_ns: i64::MIN,
        }
    }
}

impl Hist {
    /// Adds one value in nanoseconds.
    pub fn record(&mut self, ns: i64) {
        let b = ((ns + H_OFFSET).max(0) / H_BUCKET) as usize;
        self.buckets[b.min(H_N)] += 1;
        self.count += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    /// The `q` quantile in milliseconds (upper bucket edge).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let target = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= target {
                let edge = (i as i64 + 1) * H_BUCKET - H_OFFSET;
                return edge.min(self.max_ns) as f64 / 1e6;
            }
        }
        self.max_ms()
    }

    /// The largest value in milliseconds.
    pub fn max_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.max_ns as f64 / 1e6
        }
    }
}

/// Expected audio: the prompt per payload type (the dialer's exact encoding).
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// Prompt per payload type (0 PCMU, 8 PCMA).
    pub prompts: HashMap<u8, Arc<Prompt>>,
}

/// What one received stream looked like.
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    /// Carrier call serial this stream belongs to (0 if unknown).
    pub call: u64,
    /// SSRC.
    pub ssrc: u32,
    /// Payload type of the first packet.
    pub payload_type: u8,
    /// Packets received (duplicates included).
    pub packets: u64,
    first_ext_seq: u64,
    max_ext_seq: u64,
    /// Jumps forward by more than one.
    pub seq_gaps: u64,
    /// Packets at or below the highest sequence seen (duplicates or reordering).
    pub late_or_dup: u64,
    first_ts: u32,
    first_offset_ns: i64,
    last_transit: f64,
    /// RFC 3550 interarrival jitter, timestamp units.
    pub jitter: f64,
    /// Largest jitter value seen.
    pub jitter_max: f64,
    /// Marked packets, and whether the first was marked.
    pub marked: u64,
    /// The first packet had the marker bit.
    pub first_marked: bool,
    /// Packets whose timestamp was not `first + (seq − first_seq)·step`.
    pub ts_errors: u64,
    /// Payload type changes.
    pub pt_changes: u64,
    /// Highest timestamp offset seen, in samples (for the audio heard).
    max_ts_off: u32,
    step: u32,
    // Correlation sums over decoded samples: received x, expected y.
    sxy: f64,
    sxx: f64,
    syy: f64,
    /// Frames compared with the expected prompt.
    pub frames_compared: u64,
    /// Frames byte-identical to the expected prompt.
    pub frames_exact: u64,
    /// RTCP sender reports received for this stream.
    pub rtcp_sr: u64,
    /// RTCP BYE received.
    pub rtcp_bye: bool,
    /// Wall-clock ns of the first packet's arrival (what a callee heard, and when).
    pub first_arrival_ns: i64,
    /// Wall-clock ns of the last packet's arrival.
    pub last_arrival_ns: i64,
    /// RTP timestamp of the packet carrying the prompt's first frame: where the message
    /// begins (a screened call streams silence before it). Frames are compared from here.
    onset_ts: Option<u32>,
    /// Wall-clock ns of that packet's arrival: when the callee began hearing the message.
    pub onset_arrival_ns: Option<i64>,
    /// Frames of the expected prompt (the whole message), once its start was seen.
    pub prompt_frames: u64,
}

impl StreamStats {
    /// Packets expected from the sequence numbers.
    pub fn expected(&self) -> u64 {
        if self.packets == 0 {
            0
        } else {
            self.max_ext_seq - self.first_ext_seq + 1
        }
    }

    /// Packets lost (never negative).
    pub fn lost(&self) -> u64 {
        let unique = self.packets - self.late_or_dup.min(self.packets);
        self.expected().saturating_sub(unique)
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter / 8.0
    }

    /// Audio heard: timestamp span plus one packet, in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        if self.packets == 0 {
            0
        } else {
            u64::from(self.max_ts_off + self.step) / 8
        }
    }

    /// Pearson correlation of the decoded audio with the expected prompt, if compared.
    pub fn correlation(&self) -> Option<f64> {
        if self.frames_compared == 0 {
            return None;
        }
        if self.sxx == 0.0 && self.syy == 0.0 {
            return Some(1.0);
        }
        let d = (self.sxx * self.syy).sqrt();
        Some(if d > 0.0 { self.sxy / d } else { 0.0 })
    }

    /// The extended sequence number of `seq` relative to the highest seen, counting gaps
    /// (a jump forward by more than one) and late or duplicate packets.
    fn extend_seq(&mut self, seq: u16, first: bool) -> u64 {
        if first {
            return self.max_ext_seq;
        }
        let delta = seq.wrapping_sub(self.max_ext_seq as u16) as i16;
        let ext = (self.max_ext_seq as i64 + i64::from(delta)) as u64;
        if delta > 0 {
            if delta > 1 {
                self.seq_gaps += 1;
            }
            self.max_ext_seq = ext;
        } else {
            self.late_or_dup += 1;
        }
        ext
    }

    /// RFC 3550 §6.4.1 / A.8 interarrival jitter, in timestamp units (8 kHz).
    fn note_jitter(&mut self, ts: u32, arrival_ns: i64, first: bool) {
        let arrival_ts = arrival_ns as f64 * 8000.0 / 1e9;
        let transit = arrival_ts - f64::from(ts);
        if !first {
            let mut d = transit - self.last_transit;
            // Timestamps wrap at 2^32.
            if d > 2_147_483_648.0 {
                d -= 4_294_967_296.0;
            } else if d < -2_147_483_648.0 {
                d += 4_294_967_296.0;
            }
            self.jitter += (d.abs() - self.jitter) / 16.0;
            self.jitter_max = self.jitter_max.max(self.jitter);
        }
        self.last_transit = transit;
    }

    /// Compares a packet's payload with the expected prompt's frame at its place, from the
    /// packet that carries the prompt's first frame on: exact frames and the correlation
    /// sums of the decoded G.711 audio.
    fn compare_audio(&mut self, p: &Prompt, h: &RtpHeader, arrival_ns: i64, payload: &[u8]) {
        let step = p.timestamp_step().max(1);
        if self.onset_ts.is_none() && p.frame(0) == Some(payload) {
            self.onset_ts = Some(h.ts);
            self.onset_arrival_ns = Some(arrival_ns);
            self.prompt_frames = p.frame_count() as u64;
        }
        let off = self.onset_ts.map(|on| h.ts.wrapping_sub(on));
        let idx = off
            .filter(|o| (*o as i32) >= 0)
            .map(|o| (o / step) as usize);
        let Some(frame) = idx.and_then(|i| p.frame(i)) else {
            return;
        };
        self.frames_compared += 1;
        if frame == payload {
            self.frames_exact += 1;
        }
        let dec = if h.pt == 8 {
            g711::decode_alaw
        } else {
            g711::decode_ulaw
        };
        for (a, b) in payload.iter().zip(frame) {
            let x = f64::from(dec(*a));
            let y = f64::from(dec(*b));
            self.sxy += x * y;
            self.sxx += x * x;
            self.syy += y * y;
        }
    }
}

/// The fixed RTP header fields the analysis reads, and where the payload starts (after
/// CSRCs and any header extension).
struct RtpHeader {
    marker: bool,
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    len: usize,
}

impl RtpHeader {
    /// `None` for what is not RTP version 2 or is shorter than its own header.
    fn parse(data: &[u8]) -> Option<RtpHeader> {
        if data.len() < 12 || data[0] >> 6 != 2 {
            return None;
        }
        let mut len = 12 + 4 * usize::from(data[0] & 0x0f);
        if data[0] & 0x10 != 0 {
            if data.len() < len + 4 {
                return None;
            }
            len += 4 + 4 * usize::from(u16::from_be_bytes([data[len + 2], data[len + 3]]));
        }
        if data.len() < len {
            return None;
        }
        Some(RtpHeader {
            marker: data[1] & 0x80 != 0,
            pt: data[1] & 0x7f,
            seq: u16::from_be_bytes([data[2], data[3]]),
            ts: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
            ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
            len,
        })
    }
}

/// Every stream the carrier receives, keyed by source address and SSRC.
#[derive(Debug, Default)]
pub struct Analyzer {
    /// Streams.
    pub streams: HashMap<(SocketAddr, u32), StreamStats>,
    /// Source address -> call serial, set when the call is answered.
    pub expect_from: HashMap<SocketAddr, u64>,
    /// Arrival lag of every packet against its stream's first.
    pub lag: Hist,
    /// Expected audio, when checking.
    pub expected: Option<Expected>,
    /// Packets that were not RTP.
    pub malformed: u64,
    /// Packets received in all.
    pub packets: u64,
}

impl Analyzer {
    /// Feeds one datagram received at `arrival_ns` (wallclock ns) from `from`.
    pub fn packet(&mut self, from: SocketAddr, arrival_ns: i64, data: &[u8]) {
        self.packets += 1;
        let Some(h) = RtpHeader::parse(data) else {
            self.malformed += 1;
            return;
        };
        let payload = &data[h.len..];
        let call = self.expect_from.get(&from).copied().unwrap_or(0);
        let s = self
            .streams
            .entry((from, h.ssrc))
            .or_insert_with(|| StreamStats {
                call,
                ssrc: h.ssrc,
                payload_type: h.pt,
                first_ext_seq: u64::from(h.seq) + (1 << 16),
                max_ext_seq: u64::from(h.seq) + (1 << 16),
                first_ts: h.ts,
                first_offset_ns: arrival_ns,
                first_marked: h.marker,
                step: (payload.len() as u32).max(1),
                ..StreamStats::default()
            });
        if s.call == 0 {
            // RTP may beat the SIP thread's note of the call (sent right after the ACK).
            if let Some(&c) = self.expect_from.get(&from) {
                s.call = c;
            }
        }
        let first = s.packets == 0;
        s.packets += 1;
        if first {
            s.first_arrival_ns = arrival_ns;
        }
        s.last_arrival_ns = s.last_arrival_ns.max(arrival_ns);
        if h.marker {
            s.marked += 1;
        }
        if h.pt != s.payload_type {
            s.pt_changes += 1;
        }
        let ext = s.extend_seq(h.seq, first);
        let n = ext - s.first_ext_seq;
        let ts_off = h.ts.wrapping_sub(s.first_ts);
        if ts_off != (n as u32).wrapping_mul(s.step) {
            s.ts_errors += 1;
        }
        if (ts_off as i32) >= 0 {
            s.max_ts_off = s.max_ts_off.max(ts_off);
        }
        s.note_jitter(h.ts, arrival_ns, first);
        // Arrival lag against the schedule the timestamps imply, anchored at the first packet.
        let sched = i64::from(ts_off as i32) * 125_000; // 1/8000 s in ns
        let offset = arrival_ns - sched;
        if first {
            s.first_offset_ns = offset;
        }
        self.lag.record(offset - s.first_offset_ns);
        if let Some(p) = self.expected.as_ref().and_then(|e| e.prompts.get(&h.pt)) {
            s.compare_audio(p, &h, arrival_ns, payload);
        }
    }

    /// Feeds an RTCP datagram from `from` (the RTP source's port + 1).
    pub fn rtcp(&mut self, from: SocketAddr, data: &[u8]) {
        let rtp_from = SocketAddr::new(from.ip(), from.port().wrapping_sub(1));
        for p in engine::media::rtcp::Compound::new(data).flatten() {
            let Some(ssrc) = p.sender_ssrc() else {
                continue;
            };
            let key = (rtp_from, ssrc);
            let Some(s) = self.streams.get_mut(&key) else {
                continue;
            };
            match p.pt {
                engine::media::rtcp::PT_SR => s.rtcp_sr += 1,
                engine::media::rtcp::PT_BYE => s.rtcp_bye = true,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&9u32.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn loss_gaps_jitter_and_wrap() {
        let mut a = Analyzer::default();
        let from: SocketAddr = "127.0.0.1:20000".parse().unwrap();
        let pay = [0xffu8; 160];
        let mut t = 1_000_000_000i64;
        let mut seq = 65534u16;
        let mut ts = u32::MAX - 159;
        for i in 0..100 {
            if i != 50 && i != 51 {
                a.packet(from, t, &pkt(seq, ts, i == 0, &pay));
            }
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(160);
            // Alternate 19 and 21 ms: 1 ms of transit variation.
            t += if i % 2 == 0 { 19_000_000 } else { 21_000_000 };
        }
        let s = a.streams.values().next().unwrap();
        assert_eq!(s.packets, 98);
        assert_eq!(s.expected(), 100);
        assert_eq!(s.lost(), 2);
        assert_eq!(s.seq_gaps, 1);
        assert_eq!(s.ts_errors, 0);
        assert!(s.first_marked && s.marked == 1);
        assert_eq!(s.duration_ms(), 2000);
        // |D| alternates 8 and 8 timestamp units: J converges to 8 (1 ms).
        assert!((s.jitter_ms() - 1.0).abs() < 0.1, "{}", s.jitter_ms());
    }

    #[test]
    fn duplicates_are_not_loss() {
        let mut a = Analyzer::default();
        let from: SocketAddr = "127.0.0.1:20000".parse().unwrap();
        for i in 0..10u16 {
            a.packet(
                from,
                i64::from(i) * 20_000_000,
                &pkt(i, u32::from(i) * 160, i == 0, &[0; 160]),
            );
            if i == 4 {
                a.packet(from, 0, &pkt(i, u32::from(i) * 160, false, &[0; 160]));
            }
        }
        let s = a.streams.values().next().unwrap();
        assert_eq!((s.packets, s.lost(), s.late_or_dup), (11, 0, 1));
    }
}
