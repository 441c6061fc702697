//! DTMF received from the callee, from either of its two carriers, as one event type:
//! RFC 4733 telephone-events in the RTP stream and SIP INFO bodies (`application/dtmf-relay`,
//! `application/dtmf`).
//!
//! An RFC 4733 key press arrives as many packets sharing one RTP timestamp: updates while the
//! key is held, then the final packet (E bit) sent three times. The decoder reports each press
//! once, at the first packet of it that arrives (a menu acts on the key at once, not when the
//! caller lets go of it: RFC 4733 §2.5.1.1 marks the start of the event, and waiting for the end
//! would add the whole key press, 100 ms to seconds, to the reaction time). Later packets of the
//! same press, its retransmitted ends, late packets of an older press and the further segments
//! of a press longer than one packet's duration field can hold (§2.5.1.3) are not new presses.
//! Sans-IO: no clock at all.

use std::collections::VecDeque;

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
    /// How long the key had been held when it was reported, in milliseconds: for RFC 4733 what
    /// the first packet seen said (often 0 or one packet time), for INFO what its body said (0
    /// when it did not say).
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

/// A press seen: its timestamp (the event's start), its key, how long it has lasted so far and
/// whether its end has arrived.
#[derive(Debug, Clone, Copy)]
struct Press {
    ts: u32,
    event: u8,
    duration: u16,
    ended: bool,
}

/// How far past the end of the last segment of a press the next segment may start and still be
/// the same press (RFC 4733 §2.5.1.3 segments follow each other without a gap): 50 ms at 8 kHz.
const SEGMENT_SLACK: u32 = 400;

/// Per-call RFC 4733 decoder (a few integers).
#[derive(Debug)]
pub struct DtmfDecoder {
    payload_type: u8,
    clock_rate: u32,
    last: Option<Press>,
    events: VecDeque<DtmfEvent>,
}

impl DtmfDecoder {
    /// A decoder for telephone-events on `payload_type` (the number our offer gave), 8 kHz.
    pub fn new(payload_type: u8) -> Self {
        DtmfDecoder {
            payload_type,
            clock_rate: 8000,
            last: None,
            events: VecDeque::new(),
        }
    }

    /// Feeds one RTP packet. Returns whether it carried a telephone-event (other packets
    /// are the caller's to drop). A new press is reported at once.
    pub fn handle_rtp(&mut self, packet: &[u8]) -> bool {
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
        if let Some(last) = self.last.as_mut() {
            let since = ts.wrapping_sub(last.ts);
            if since == 0 {
                last.duration = last.duration.max(ev.duration);
                last.ended |= ev.end;
                return true;
            }
            if (since as i32) < 0 {
                return true; // a late packet of an older press
            }
            if ev.event == last.event
                && !last.ended
                && since <= u32::from(last.duration) + SEGMENT_SLACK
            {
                // The next segment of a long press.
                *last = Press {
                    ts,
                    event: ev.event,
                    duration: ev.duration,
                    ended: ev.end,
                };
                return true;
            }
        }
        let press = Press {
            ts,
            event: ev.event,
            duration: ev.duration,
            ended: ev.end,
        };
        self.last = Some(press);
        if let Some(digit) = digit_of(press.event) {
            self.events.push_back(DtmfEvent {
                digit,
                duration_ms: u32::from(press.duration) * 1000 / self.clock_rate,
                source: DtmfSource::Rfc4733,
            });
        }
        true
    }

    /// Next decoded digit.
    pub fn poll_event(&mut self) -> Option<DtmfEvent> {
        self.events.pop_front()
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

    /// The press is reported at its first packet, with the duration that packet gave; its
    /// updates, three ends and a late retransmission are not new presses.
    #[test]
    fn a_press_is_reported_at_its_first_packet_only() {
        let mut d = DtmfDecoder::new(101);
        assert!(d.handle_rtp(&pkt(0, 8000, 5, false, 160)));
        assert_eq!(drain(&mut d), vec![('5', 20)]);
        for (i, dur) in [320u16, 480, 640].iter().enumerate() {
            assert!(d.handle_rtp(&pkt(1 + i as u16, 8000, 5, false, *dur)));
        }
        for i in 0..3 {
            d.handle_rtp(&pkt(4 + i, 8000, 5, true, 800));
        }
        d.handle_rtp(&pkt(9, 8000, 5, true, 800));
        assert!(drain(&mut d).is_empty());
        // The same key again is a new press (new timestamp).
        d.handle_rtp(&pkt(10, 16000, 5, false, 0));
        assert_eq!(drain(&mut d), vec![('5', 0)]);
    }

    /// Lost first packets: the press is reported at whichever packet comes first, even its
    /// end; every end lost changes nothing; a late packet of an older press is dropped.
    #[test]
    fn lost_packets_and_late_ones() {
        let mut d = DtmfDecoder::new(101);
        d.handle_rtp(&pkt(2, 1000, 1, false, 560));
        d.handle_rtp(&pkt(3, 3000, 11, false, 160));
        assert_eq!(drain(&mut d), vec![('1', 70), ('#', 20)]);
        d.handle_rtp(&pkt(2, 1000, 1, true, 600));
        assert!(drain(&mut d).is_empty());
        d.handle_rtp(&pkt(8, 5000, 10, true, 1200));
        d.handle_rtp(&pkt(9, 5000, 10, true, 1200));
        assert_eq!(drain(&mut d), vec![('*', 150)]);
    }

    /// A press longer than the duration field (8 s at 8 kHz) goes on in a new segment with a
    /// new timestamp: one press. The same key pressed again after its end is two.
    #[test]
    fn long_press_segments_are_one_press() {
        let mut d = DtmfDecoder::new(101);
        d.handle_rtp(&pkt(1, 0, 7, false, 160));
        d.handle_rtp(&pkt(2, 0, 7, false, u16::MAX));
        d.handle_rtp(&pkt(3, u32::from(u16::MAX), 7, false, 160));
        d.handle_rtp(&pkt(4, u32::from(u16::MAX), 7, true, 800));
        assert_eq!(drain(&mut d), vec![('7', 20)]);
        d.handle_rtp(&pkt(5, u32::from(u16::MAX) + 900, 7, false, 160));
        assert_eq!(drain(&mut d), vec![('7', 20)]);
    }

    #[test]
    fn other_payload_types_are_not_events() {
        let mut d = DtmfDecoder::new(101);
        let mut p = pkt(1, 0, 5, true, 100);
        p[1] = 0; // PCMU
        assert!(!d.handle_rtp(&p));
        assert!(!d.handle_rtp(&[0x80, 101]));
        assert!(d.handle_rtp(&pkt(1, 0, 200, true, 1))); // not DTMF: no digit
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
