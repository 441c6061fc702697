//! DTMF received from the callee, from either of its two carriers, as one event type:
//! RFC 4733 telephone-events in the RTP stream and SIP INFO bodies (`application/dtmf-relay`,
//! `application/dtmf`).
//!
//! An RFC 4733 key press arrives as many packets sharing one RTP timestamp: updates while the
//! key is held, then the final packet (E bit) sent three times. The decoder reports each press
//! once, when its end arrives; when every end packet is lost it reports the press anyway, when
//! the next press starts or after [`END_TIMEOUT`] of silence. Late and retransmitted packets
//! of a press already reported are dropped. Sans-IO: time comes in as arguments.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a press may go without packets before it is reported with its last duration
/// (every end packet lost).
pub const END_TIMEOUT: Duration = Duration::from_millis(500);

/// Where a digit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfSource {
    /// RFC 4733 telephone-event in RTP.
    Rfc4733,
    /// SIP INFO `application/dtmf-relay` or `application/dtmf`.
    SipInfo,
}

/// One key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfEvent {
    /// `0`-`9`, `*`, `#`, `A`-`D`.
    pub digit: char,
    /// How long the key was held, in milliseconds (0 when the INFO did not say).
    pub duration_ms: u32,
    /// RTP or SIP INFO.
    pub source: DtmfSource,
}

/// An RFC 4733 §2.3 event block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0-15 are DTMF).
    pub event: u8,
    /// The E bit: this is (a copy of) the final packet.
    pub end: bool,
    /// Volume in −dBm0.
    pub volume: u8,
    /// Duration so far in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first event block of a payload; `None` when shorter than 4 bytes.
    pub fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
        let b = payload.get(..4)?;
        Some(TelephoneEvent {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3f,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }
}

/// The digit of an RFC 4733 DTMF event code.
pub fn digit_of(event: u8) -> Option<char> {
    match event {
        0..=9 => Some((b'0' + event) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + event - 12) as char),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy)]
struct Press {
    ts: u32,
    event: u8,
    duration: u16,
    last_seen: Instant,
}

/// Per-call RFC 4733 decoder (a few integers).
#[derive(Debug)]
pub struct DtmfDecoder {
    payload_type: u8,
    clock_rate: u32,
    current: Option<Press>,
    last_reported_ts: Option<u32>,
    events: VecDeque<DtmfEvent>,
}

impl DtmfDecoder {
    /// A decoder for telephone-events on `payload_type` (the number our offer gave), 8 kHz.
    pub fn new(payload_type: u8) -> Self {
        DtmfDecoder {
            payload_type,
            clock_rate: 8000,
            current: None,
            last_reported_ts: None,
            events: VecDeque::new(),
        }
    }

    /// Feeds one RTP packet. Returns whether it carried a telephone-event (other packets
    /// are the caller's to drop).
    pub fn handle_rtp(&mut self, now: Instant, packet: &[u8]) -> bool {
        let Ok(r) = rtp_rs::RtpReader::new(packet) else {
            return false;
        };
        if r.payload_type() != self.payload_type {
            return false;
        }
        let Some(ev) = TelephoneEvent::parse(r.payload()) else {
            return true;
        };
        let ts = r.timestamp();
        if self.last_reported_ts == Some(ts) {
            return true; // a retransmitted end, or a late update of a reported press
        }
        if let Some(cur) = self.current {
            if cur.ts != ts {
                if (ts.wrapping_sub(cur.ts) as i32) < 0 {
                    return true; // a late packet of an older press
                }
                // A new press began while the old one never ended: report the old one.
                self.report(cur);
                self.current = None;
            }
        } else if let Some(last) = self.last_reported_ts {
            if (ts.wrapping_sub(last) as i32) < 0 {
                return true;
            }
        }
        let press = self.current.get_or_insert(Press {
            ts,
            event: ev.event,
            duration: 0,
            last_seen: now,
        });
        press.duration = press.duration.max(ev.duration);
        press.last_seen = now;
        if ev.end {
            let p = *press;
            self.current = None;
            self.report(p);
        }
        true
    }

    /// Reports a press whose end packets were all lost once [`END_TIMEOUT`] has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(cur) = self.current {
            if now.saturating_duration_since(cur.last_seen) >= END_TIMEOUT {
                self.current = None;
                self.report(cur);
            }
        }
    }

    /// When [`DtmfDecoder::handle_timeout`] has work, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current.map(|c| c.last_seen + END_TIMEOUT)
    }

    /// Next decoded digit.
    pub fn poll_event(&mut self) -> Option<DtmfEvent> {
        self.events.pop_front()
    }

    fn report(&mut self, p: Press) {
        self.last_reported_ts = Some(p.ts);
        if let Some(digit) = digit_of(p.event) {
            self.events.push_back(DtmfEvent {
                digit,
                duration_ms: u32::from(p.duration) * 1000 / self.clock_rate,
                source: DtmfSource::Rfc4733,
            });
        }
    }
}

fn parse_signal(s: &str) -> Option<char> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u8>() {
        // `Signal=10` / `11` are `*` / `#` in some implementations; single digits are digits.
        return digit_of(n);
    }
    let mut chars = s.chars();
    let c = chars.next()?.to_ascii_uppercase();
    if chars.next().is_some() {
        return None;
    }
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
}

/// Parses a SIP INFO body carrying DTMF: `application/dtmf-relay` (`Signal=5`,
/// `Duration=160` lines) or `application/dtmf` (the digit alone). `None` for other types or
/// bodies without a valid digit.
pub fn parse_info(content_type: &str, body: &[u8]) -> Option<DtmfEvent> {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let text = std::str::from_utf8(body).ok()?;
    match ct.as_str() {
        "application/dtmf-relay" => {
            let mut digit = None;
            let mut duration_ms = 0;
            for line in text.lines() {
                let Some((k, v)) = line.split_once('=') else {
                    continue;
                };
                match k.trim().to_ascii_lowercase().as_str() {
                    "signal" => digit = parse_signal(v),
                    "duration" => duration_ms = v.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
            Some(DtmfEvent {
                digit: digit?,
                duration_ms,
                source: DtmfSource::SipInfo,
            })
        }
        "application/dtmf" => Some(DtmfEvent {
            digit: parse_signal(text)?,
            duration_ms: 0,
            source: DtmfSource::SipInfo,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u16, ts: u32, event: u8, end: bool, duration: u16) -> Vec<u8> {
        let mut p = vec![0x80, 101];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x1234u32.to_be_bytes());
        p.extend_from_slice(&[event, if end { 0x8a } else { 0x0a }]);
        p.extend_from_slice(&duration.to_be_bytes());
        p
    }

    fn drain(d: &mut DtmfDecoder) -> Vec<(char, u32)> {
        std::iter::from_fn(|| d.poll_event())
            .map(|e| (e.digit, e.duration_ms))
            .collect()
    }

    #[test]
    fn one_press_with_updates_and_three_ends_reports_once() {
        let t = Instant::now();
        let mut d = DtmfDecoder::new(101);
        for (i, dur) in [160u16, 320, 480, 640].iter().enumerate() {
            assert!(d.handle_rtp(t, &pkt(i as u16, 8000, 5, false, *dur)));
        }
        for i in 0..3 {
            d.handle_rtp(t, &pkt(4 + i, 8000, 5, true, 800));
        }
        assert_eq!(drain(&mut d), vec![('5', 100)]);
        // A retransmitted end arriving later (reordered) is still not a second press.
        d.handle_rtp(t, &pkt(9, 8000, 5, true, 800));
        assert!(drain(&mut d).is_empty());
    }

    #[test]
    fn every_end_lost_reports_at_next_press_or_timeout() {
        let t = Instant::now();
        let mut d = DtmfDecoder::new(101);
        d.handle_rtp(t, &pkt(1, 1000, 1, false, 400));
        d.handle_rtp(t, &pkt(2, 1000, 1, false, 560));
        // Ends lost; the next press (new timestamp) begins.
        d.handle_rtp(t, &pkt(3, 3000, 11, false, 160));
        assert_eq!(drain(&mut d), vec![('1', 70)]);
        // The second press's ends are lost too: reported after the timeout, not before.
        d.handle_timeout(t + Duration::from_millis(100));
        assert!(drain(&mut d).is_empty());
        assert_eq!(d.poll_timeout(), Some(t + END_TIMEOUT));
        d.handle_timeout(t + END_TIMEOUT);
        assert_eq!(drain(&mut d), vec![('#', 20)]);
        // A late packet of the old press does not resurrect it.
        d.handle_rtp(t, &pkt(2, 1000, 1, true, 600));
        d.handle_rtp(t, &pkt(4, 3000, 11, true, 600));
        d.handle_timeout(t + Duration::from_secs(5));
        assert!(drain(&mut d).is_empty());
    }

    #[test]
    fn only_the_end_packet_arrives() {
        let t = Instant::now();
        let mut d = DtmfDecoder::new(101);
        d.handle_rtp(t, &pkt(1, 5000, 10, true, 1200));
        d.handle_rtp(t, &pkt(2, 5000, 10, true, 1200));
        assert_eq!(drain(&mut d), vec![('*', 150)]);
    }

    #[test]
    fn other_payload_types_are_not_events() {
        let t = Instant::now();
        let mut d = DtmfDecoder::new(101);
        let mut p = pkt(1, 0, 5, true, 100);
        p[1] = 0; // PCMU
        assert!(!d.handle_rtp(t, &p));
        assert!(!d.handle_rtp(t, &[0x80, 101]));
        assert!(d.handle_rtp(t, &pkt(1, 0, 200, true, 1))); // not DTMF: no digit
        assert!(drain(&mut d).is_empty());
    }

    #[test]
    fn info_bodies() {
        let e = parse_info("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n").unwrap();
        assert_eq!(
            (e.digit, e.duration_ms, e.source),
            ('5', 160, DtmfSource::SipInfo)
        );
        let e = parse_info("Application/DTMF-Relay; x=y", b"signal= *\nduration=100").unwrap();
        assert_eq!(e.digit, '*');
        assert_eq!(
            parse_info("application/dtmf-relay", b"Signal=11")
                .unwrap()
                .digit,
            '#'
        );
        assert_eq!(parse_info("application/dtmf", b"#").unwrap().digit, '#');
        assert_eq!(parse_info("application/dtmf", b"7\r\n").unwrap().digit, '7');
        assert!(parse_info("application/dtmf-relay", b"Signal=X").is_none());
        assert!(parse_info("text/plain", b"5").is_none());
        assert!(parse_info("application/dtmf", &[0xff, 0xfe]).is_none());
    }
}
