//! What an answered callee of `loadtest carrier` does, to test confirmation keys and
//! machine detection at scale: a human who listens, keys digits at given seconds (by
//! RFC 4733 on the media or by SIP INFO) and may hang up at a given second; or an
//! answering machine that plays a greeting of a given length, then a beep or none, and
//! records what follows. Parsed from `--callee SPEC:WEIGHT`; the audio it sends is built
//! here (G.711 frames, telephone-event packets) and paced by the carrier.
//!
//! Spec grammar, `;`-separated: `human` or `machine` first, then for a human
//! `key=D@S` (repeatable: digit D at S seconds after the answer), `hangup@S`, `info` (keys
//! by SIP INFO instead of RFC 4733), `hello=MS` (says "Pronto?" for MS at the answer); for
//! a machine `greeting=MS` and `beep`. A callee that speaks (a machine, a human with
//! `hello`) then streams silence while it listens or records, as phones and voicemail do,
//! until the call ends (at most [`LISTEN`]).
//! Examples: `human;key=1@3.5`, `human;key=2@2;key=1@9;info`, `human;hangup@4`,
//! `human;hello=600`, `machine;greeting=2500;beep`.

use std::time::Duration;

use anyhow::{bail, Context, Result};

/// How keys are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// RFC 4733 telephone-events on the call's media.
    Rtp,
    /// SIP INFO, `application/dtmf-relay`.
    Info,
}

/// One callee behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callee {
    /// A person: listens, keys, hangs up.
    Human {
        /// Keys and when, after the answer.
        keys: Vec<(char, Duration)>,
        /// How they are sent.
        via: Via,
        /// When the person hangs up (none: when the caller does).
        hangup: Option<Duration>,
        /// A short "Pronto?" at the answer (none: silent, no RTP).
        hello: Option<Duration>,
    },
    /// An answering machine: greeting, optional beep, then it records.
    Machine {
        /// Greeting length.
        greeting: Duration,
        /// A 1 kHz beep of [`BEEP`] after the greeting.
        beep: bool,
    },
}

/// Length of a machine's beep.
pub const BEEP: Duration = Duration::from_millis(400);
/// Length of one key press sent by RFC 4733.
pub const KEY_MS: u32 = 100;
/// How long a callee that spoke streams silence after its last sound (stopped earlier when
/// the call ends).
pub const LISTEN: Duration = Duration::from_secs(30);

/// What a callee does at one instant after the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Presses a key.
    Key(char, Via),
    /// Sends BYE.
    HangUp,
    /// Starts its greeting (audio of this length).
    Greeting(Duration),
    /// Starts its beep.
    Beep,
}

fn seconds(s: &str, what: &str) -> Result<Duration> {
    let v: f64 = s
        .trim()
        .parse()
        .with_context(|| format!("{what}: seconds"))?;
    if !(0.0..=3600.0).contains(&v) {
        bail!("{what}: 0..=3600 seconds");
    }
    Ok(Duration::from_secs_f64(v))
}

impl std::str::FromStr for Callee {
    type Err = anyhow::Error;

    fn from_str(spec: &str) -> Result<Callee> {
        let mut parts = spec.split(';').map(str::trim);
        match parts.next() {
            Some("human") => {
                let (mut keys, mut via, mut hangup, mut hello) = (vec![], Via::Rtp, None, None);
                for p in parts {
                    if let Some(k) = p.strip_prefix("key=") {
                        let (d, at) = k.split_once('@').context("key=D@SECONDS")?;
                        let mut c = d.chars();
                        let (Some(d), None) = (c.next(), c.next()) else {
                            bail!("key=D@SECONDS: one key");
                        };
                        if !"0123456789*#".contains(d) {
                            bail!("key: 0-9, * or #");
                        }
                        keys.push((d, seconds(at, "key")?));
                    } else if let Some(at) = p.strip_prefix("hangup@") {
                        hangup = Some(seconds(at, "hangup")?);
                    } else if p == "info" {
                        via = Via::Info;
                    } else if let Some(ms) = p.strip_prefix("hello=") {
                        let ms: u64 = ms.parse().context("hello=MS")?;
                        hello = Some(Duration::from_millis(ms.min(10_000)));
                    } else {
                        bail!("human: unknown part {p:?}");
                    }
                }
                keys.sort_by_key(|(_, at)| *at);
                Ok(Callee::Human {
                    keys,
                    via,
                    hangup,
                    hello,
                })
            }
            Some("machine") => {
                let (mut greeting, mut beep) = (Duration::from_secs(3), false);
                for p in parts {
                    if let Some(ms) = p.strip_prefix("greeting=") {
                        greeting = Duration::from_millis(ms.parse().context("greeting=MS")?);
                    } else if p == "beep" {
                        beep = true;
                    } else {
                        bail!("machine: unknown part {p:?}");
                    }
                }
                Ok(Callee::Machine { greeting, beep })
            }
            _ => bail!("callee: human;... or machine;..."),
        }
    }
}

impl Callee {
    /// What the callee does, in time order, after the answer.
    pub fn script(&self) -> Vec<(Duration, Step)> {
        match self {
            Callee::Human {
                keys,
                via,
                hangup,
                hello,
            } => {
                let mut s: Vec<(Duration, Step)> = keys
                    .iter()
                    .map(|(d, at)| (*at, Step::Key(*d, *via)))
                    .collect();
                if let Some(h) = hello {
                    s.push((Duration::ZERO, Step::Greeting(*h)));
                }
                if let Some(h) = hangup {
                    s.push((*h, Step::HangUp));
                }
                s.sort_by_key(|(at, _)| *at);
                s
            }
            Callee::Machine { greeting, beep } => {
                let mut s = vec![(Duration::ZERO, Step::Greeting(*greeting))];
                if *beep {
                    s.push((*greeting, Step::Beep));
                }
                s
            }
        }
    }

    /// When the machine's beep ends (or its greeting, without one), after the answer.
    pub fn greeting_end(&self) -> Option<Duration> {
        match self {
            Callee::Machine { greeting, beep } => {
                Some(*greeting + if *beep { BEEP } else { Duration::ZERO })
            }
            Callee::Human { .. } => None,
        }
    }

    /// The callee's last sound, after which it streams silence (none: it never speaks).
    pub fn last_sound(&self) -> Option<Step> {
        match self {
            Callee::Machine { beep: true, .. } => Some(Step::Beep),
            Callee::Machine { greeting, .. } => Some(Step::Greeting(*greeting)),
            Callee::Human { hello, .. } => hello.map(Step::Greeting),
        }
    }

    /// A short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Callee::Human { .. } => "human",
            Callee::Machine { beep: true, .. } => "machine_beep",
            Callee::Machine { beep: false, .. } => "machine",
        }
    }
}

/// Weighted callee behaviours.
#[derive(Debug, Clone, Default)]
pub struct CalleeMix {
    /// Behaviours and weights.
    pub choices: Vec<(Callee, u32)>,
}

impl CalleeMix {
    /// Parses `SPEC:WEIGHT` (weight 1 when absent) arguments.
    pub fn parse(args: &[String]) -> Result<CalleeMix> {
        let mut choices = vec![];
        for a in args {
            let (spec, w) = match a.rsplit_once(':') {
                Some((s, w)) if w.chars().all(|c| c.is_ascii_digit()) && !w.is_empty() => {
                    (s, w.parse()?)
                }
                _ => (a.as_str(), 1),
            };
            choices.push((spec.parse()?, w));
        }
        Ok(CalleeMix { choices })
    }

    /// The behaviour for random number `r` (none when the mix is empty).
    pub fn pick(&self, r: u64) -> Option<&Callee> {
        let total: u64 = self.choices.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return None;
        }
        let mut x = r % total;
        for (c, w) in &self.choices {
            if x < u64::from(*w) {
                return Some(c);
            }
            x -= u64::from(*w);
        }
        None
    }
}

/// An RTP packet to send `at` after the first of its burst.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timed {
    /// Offset from the burst's start.
    pub at: Duration,
    /// The datagram.
    pub bytes: Vec<u8>,
}

/// Writes an RTP header and payload.
fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len());
    p.push(0x80);
    p.push(pt | if marker { 0x80 } else { 0 });
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// The RFC 4733 event code of a key.
pub fn event_code(d: char) -> Option<u8> {
    match d {
        '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        _ => None,
    }
}

/// One key press as RFC 4733 packets (payload type `pt`): an event packet every 20 ms
/// for [`KEY_MS`], the first marked, then the end packet three times (RFC 4733 §2.5.1.4).
pub fn key_packets(d: char, pt: u8, ssrc: u32, seq0: u16, ts0: u32) -> Vec<Timed> {
    let Some(code) = event_code(d) else {
        return vec![];
    };
    let mut out = vec![];
    let steps = KEY_MS / 20;
    for i in 0..steps + 3 {
        let end = i >= steps;
        let dur = (((i.min(steps - 1)) + 1) * 160) as u16;
        let payload = [
            code,
            if end { 0x80 | 10 } else { 10 },
            (dur >> 8) as u8,
            dur as u8,
        ];
        let at = Duration::from_millis(u64::from(i.min(steps)) * 20);
        let seq = seq0.wrapping_add(i as u16);
        out.push(Timed {
            at,
            bytes: rtp(pt, i == 0, seq, ts0, ssrc, &payload),
        });
    }
    out
}

/// `len` of G.711 audio (PCMU for payload type 0, else PCMA) in 20 ms packets of a
/// signal `sample(n)`.
fn audio_packets(
    len: Duration,
    pt: u8,
    ssrc: u32,
    seq0: u16,
    ts0: u32,
    sample: impl Fn(u32) -> i16,
) -> Vec<Timed> {
    let frames = (len.as_millis() / 20) as u32;
    (0..frames)
        .map(|f| {
            let payload: Vec<u8> = (0..160)
                .map(|i| {
                    let s = sample(f * 160 + i);
                    if pt == 0 {
                        codecs::g711::encode_ulaw(s)
                    } else {
                        codecs::g711::encode_alaw(s)
                    }
                })
                .collect();
            Timed {
                at: Duration::from_millis(u64::from(f) * 20),
                bytes: rtp(
                    pt,
                    f == 0,
                    seq0.wrapping_add(f as u16),
                    ts0 + f * 160,
                    ssrc,
                    &payload,
                ),
            }
        })
        .collect()
}

/// A greeting: speech-like syllables (a voiced 180 Hz buzz with formant-ish partials,
/// 200 ms on and 80 ms off, every fourth gap 300 ms like words) at 8 kHz.
pub fn greeting_packets(len: Duration, pt: u8, ssrc: u32, seq0: u16, ts0: u32) -> Vec<Timed> {
    audio_packets(len, pt, ssrc, seq0, ts0, |n| {
        let t = f64::from(n) / 8000.0;
        let ms = n / 8;
        let cycle = ms % 1_200;
        let on = matches!(cycle, 0..=199 | 280..=479 | 560..=759 | 840..=899);
        if !on {
            return 0;
        }
        let w = std::f64::consts::TAU;
        let v = (w * 180.0 * t).sin() * 0.5
            + (w * 720.0 * t).sin() * 0.3
            + (w * 1260.0 * t).sin() * 0.2;
        (v * 9000.0) as i16
    })
}

/// `len` of digital silence: what a phone or a recording mailbox streams while it listens.
pub fn silence_packets(len: Duration, pt: u8, ssrc: u32, seq0: u16, ts0: u32) -> Vec<Timed> {
    audio_packets(len, pt, ssrc, seq0, ts0, |_| 0)
}

/// The machine's beep: 1 kHz for [`BEEP`].
pub fn beep_packets(pt: u8, ssrc: u32, seq0: u16, ts0: u32) -> Vec<Timed> {
    audio_packets(BEEP, pt, ssrc, seq0, ts0, |n| {
        let t = f64::from(n) / 8000.0;
        ((std::f64::consts::TAU * 1000.0 * t).sin() * 12_000.0) as i16
    })
}

/// The body of a SIP INFO carrying key `d` (`application/dtmf-relay`).
pub fn info_body(d: char) -> String {
    format!("Signal={d}\r\nDuration={KEY_MS}\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_into_scripts() {
        let h: Callee = "human;key=2@2;key=1@9.5;hangup@20;info".parse().unwrap();
        assert_eq!(
            h.script(),
            vec![
                (Duration::from_secs(2), Step::Key('2', Via::Info)),
                (Duration::from_millis(9500), Step::Key('1', Via::Info)),
                (Duration::from_secs(20), Step::HangUp),
            ]
        );
        let m: Callee = "machine;greeting=2500;beep".parse().unwrap();
        assert_eq!(
            m.script(),
            vec![
                (Duration::ZERO, Step::Greeting(Duration::from_millis(2500))),
                (Duration::from_millis(2500), Step::Beep),
            ]
        );
        assert_eq!(m.greeting_end(), Some(Duration::from_millis(2900)));
        assert_eq!(m.last_sound(), Some(Step::Beep));
        let h: Callee = "human;hello=600;key=1@3".parse().unwrap();
        assert_eq!(
            h.script()[0],
            (Duration::ZERO, Step::Greeting(Duration::from_millis(600)))
        );
        assert_eq!(
            h.last_sound(),
            Some(Step::Greeting(Duration::from_millis(600)))
        );
        assert_eq!("human".parse::<Callee>().unwrap().last_sound(), None);
        assert!("human;key=12@1".parse::<Callee>().is_err());
        assert!("robot".parse::<Callee>().is_err());
        let mix = CalleeMix::parse(&["human;key=1@1:3".into(), "machine:1".into()]).unwrap();
        assert_eq!(mix.choices[0].1, 3);
        assert_eq!(mix.pick(0).unwrap().name(), "human");
        assert_eq!(mix.pick(3).unwrap().name(), "machine");
    }

    #[test]
    fn a_key_is_marked_events_then_three_ends() {
        let p = key_packets('9', 101, 7, 100, 5000);
        assert_eq!(p.len(), 5 + 3);
        assert_eq!(p[0].bytes[1], 0x80 | 101); // marker on the first
        assert_eq!(p[0].bytes[12], 9);
        assert_eq!(p[1].bytes[1], 101);
        let last = &p[7].bytes;
        assert_eq!(last[13] & 0x80, 0x80); // end bit
        assert_eq!(u16::from_be_bytes([last[14], last[15]]), 800);
        // One event: the same timestamp throughout.
        assert!(p.iter().all(|t| t.bytes[4..8] == 5000u32.to_be_bytes()));
    }

    #[test]
    fn greeting_and_beep_are_paced_frames() {
        let g = greeting_packets(Duration::from_millis(1000), 8, 1, 0, 0);
        assert_eq!(g.len(), 50);
        assert_eq!(g[49].at, Duration::from_millis(980));
        assert!(g.iter().all(|t| t.bytes.len() == 172));
        assert_eq!(beep_packets(0, 1, 0, 0).len(), 20);
    }
}
