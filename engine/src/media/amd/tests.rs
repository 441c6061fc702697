//! The detectors on synthetic signals: silences, speech-like bursts, noise and tones.

use super::*;
use std::f32::consts::TAU;

const RATE: u32 = 8000;

/// A deterministic noise source (xorshift), uniform in [-1, 1).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
}

/// Silence (digital zero) of `ms`.
fn silence(rate: u32, ms: u32) -> Vec<f32> {
    vec![0.0; (rate * ms / 1000) as usize]
}

/// A voiced, speech-like sound of `ms`: harmonics of a wavering 130 Hz fundamental above
/// 300 Hz with a 4 Hz syllable envelope, peak amplitude `amp` (0–1).
fn speech(rate: u32, ms: u32, amp: f32) -> Vec<f32> {
    let n = (rate * ms / 1000) as usize;
    let mut phase = 0.0f32;
    (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let f0 = 130.0 + 20.0 * (TAU * 3.0 * t).sin();
            phase += TAU * f0 / rate as f32;
            let voiced: f32 = (3..12)
                .map(|h| (phase * h as f32).sin() / h as f32)
                .sum::<f32>();
            let env = 0.6 + 0.4 * (TAU * 4.0 * t).sin();
            amp * env * voiced / 1.2
        })
        .collect()
}

fn tone(rate: u32, hz: f32, ms: u32, amp: f32) -> Vec<f32> {
    let n = (rate * ms / 1000) as usize;
    (0..n)
        .map(|i| amp * (TAU * hz * i as f32 / rate as f32).sin())
        .collect()
}

fn concat(parts: &[Vec<f32>]) -> Vec<f32> {
    parts.concat()
}

/// Adds white noise of RMS `rms` (0–1 scale) and converts to 16-bit PCM.
fn pcm(signal: &[f32], rms: f32, seed: u64) -> Vec<i16> {
    let mut noise = Noise(seed | 1);
    // Uniform noise in [-1, 1) has RMS 1/sqrt(3).
    let scale = rms * 3f32.sqrt();
    signal
        .iter()
        .map(|&s| ((s + scale * noise.next()) * 32767.0).clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// Runs the detector over `pcm` in chunks of `chunk` samples.
fn detect(cfg: &AmdConfig, rate: u32, pcm: &[i16], chunk: usize) -> Option<AmdDecision> {
    let mut amd = Amd::new(cfg, rate);
    let mut decision = None;
    for part in pcm.chunks(chunk) {
        if let Some(d) = amd.push(part) {
            assert!(decision.is_none(), "decided twice");
            decision = Some(d);
        }
    }
    decision
}

fn verdict(d: Option<AmdDecision>) -> (AmdVerdict, AmdReason) {
    let d = d.expect("a decision");
    (d.verdict, d.reason)
}

#[test]
fn short_hello_then_silence_is_a_person() {
    let call = pcm(
        &concat(&[
            silence(RATE, 400),
            speech(RATE, 600, 0.3),
            silence(RATE, 3000),
        ]),
        0.001,
        1,
    );
    let d = detect(&AmdConfig::default(), RATE, &call, 160).unwrap();
    assert_eq!(
        (d.verdict, d.reason),
        (AmdVerdict::Human, AmdReason::AfterGreetingSilence)
    );
    // The word ends at 1000 ms; the decision comes after_greeting_silence_ms later.
    assert!((1790..=1830).contains(&d.at_ms), "{}", d.at_ms);
}

#[test]
fn long_greeting_is_a_machine() {
    let call = pcm(
        &concat(&[silence(RATE, 300), speech(RATE, 4000, 0.3)]),
        0.001,
        2,
    );
    let d = detect(&AmdConfig::default(), RATE, &call, 160).unwrap();
    assert_eq!(
        (d.verdict, d.reason),
        (AmdVerdict::Machine, AmdReason::LongGreeting)
    );
    assert!((1790..=1830).contains(&d.at_ms), "{}", d.at_ms);
}

#[test]
fn many_short_words_are_a_machine() {
    let word = || speech(RATE, 250, 0.3);
    let gap = || silence(RATE, 200);
    let call = pcm(
        &concat(&[
            gap(),
            word(),
            gap(),
            word(),
            gap(),
            word(),
            gap(),
            word(),
            gap(),
        ]),
        0.001,
        3,
    );
    let d = detect(&AmdConfig::default(), RATE, &call, 160);
    assert_eq!(verdict(d), (AmdVerdict::Machine, AmdReason::MaxWords));
}

#[test]
fn nobody_speaking_is_unsure_not_a_machine() {
    let call = pcm(&silence(RATE, 6000), 0.002, 4);
    let d = detect(&AmdConfig::default(), RATE, &call, 160).unwrap();
    assert_eq!(
        (d.verdict, d.reason),
        (AmdVerdict::Unsure, AmdReason::InitialSilence)
    );
    assert_eq!(d.at_ms, 2500);
}

#[test]
fn no_conclusion_in_time_is_unsure() {
    // Words every 700 ms: never enough silence for a person, never enough speech for a machine.
    let cfg = AmdConfig {
        maximum_words: 100,
        greeting_ms: 3000,
        ..AmdConfig::default()
    };
    let beat = || concat(&[speech(RATE, 150, 0.3), silence(RATE, 550)]);
    let call = pcm(&concat(&vec![beat(); 10]), 0.001, 5);
    let d = detect(&cfg, RATE, &call, 160).unwrap();
    assert_eq!(
        (d.verdict, d.reason),
        (AmdVerdict::Unsure, AmdReason::TooLong)
    );
    assert_eq!(d.at_ms, cfg.total_analysis_ms);
}

#[test]
fn steady_loud_noise_is_not_speech() {
    // Noise at −32 dBFS (speech 12 dB above it), well above the fixed threshold: only the
    // measured floor keeps it silence.
    let signal = concat(&[
        silence(RATE, 500),
        speech(RATE, 600, 0.4),
        silence(RATE, 3000),
    ]);
    let call = pcm(&signal, 0.025, 6);
    let d = detect(&AmdConfig::default(), RATE, &call, 160);
    assert_eq!(
        verdict(d),
        (AmdVerdict::Human, AmdReason::AfterGreetingSilence)
    );
}

#[test]
fn clicks_are_not_words() {
    let click = || speech(RATE, 30, 0.5);
    let gap = || silence(RATE, 300);
    let call = pcm(
        &concat(&[
            gap(),
            click(),
            gap(),
            click(),
            gap(),
            click(),
            silence(RATE, 3000),
        ]),
        0.001,
        7,
    );
    let d = detect(&AmdConfig::default(), RATE, &call, 160);
    assert_eq!(verdict(d), (AmdVerdict::Unsure, AmdReason::InitialSilence));
}

#[test]
fn chunking_and_rate_do_not_change_the_decision() {
    for rate in [8000, 16000, 48000] {
        let signal = concat(&[
            silence(rate, 400),
            speech(rate, 700, 0.3),
            silence(rate, 2000),
        ]);
        let call = pcm(&signal, 0.001, 8);
        let whole = detect(&AmdConfig::default(), rate, &call, call.len()).unwrap();
        for chunk in [1, 7, 160, 961] {
            assert_eq!(
                detect(&AmdConfig::default(), rate, &call, chunk),
                Some(whole)
            );
        }
        assert_eq!(whole.verdict, AmdVerdict::Human, "rate {rate}");
        assert!(
            (1890..=1930).contains(&whole.at_ms),
            "rate {rate}: {}",
            whole.at_ms
        );
    }
}

#[test]
fn decides_once_and_hostile_input_does_not_panic() {
    let mut amd = Amd::new(&AmdConfig::default(), 8000);
    assert_eq!(amd.push(&[]), None);
    let extreme: Vec<i16> = (0..40_000)
        .map(|i| if i % 2 == 0 { i16::MIN } else { i16::MAX })
        .collect();
    assert!(amd.push(&extreme).is_some());
    assert!(amd.is_decided());
    assert_eq!(amd.push(&extreme), None);
    for rate in [0, 1, 99, 7, u32::MAX] {
        let mut amd = Amd::new(&AmdConfig::default(), rate);
        amd.push(&extreme);
        let mut beep = BeepDetector::new(rate);
        beep.push(&extreme);
    }
}

/// Every beep end reported by a detector fed in 20 ms chunks.
fn beeps(rate: u32, pcm: &[i16]) -> Vec<u32> {
    let mut det = BeepDetector::new(rate);
    let chunk = (rate / 50) as usize;
    pcm.chunks(chunk).filter_map(|c| det.push(c)).collect()
}

#[test]
fn a_beep_is_reported_when_it_ends() {
    let call = pcm(
        &concat(&[
            silence(RATE, 500),
            tone(RATE, 1000.0, 300, 0.3),
            silence(RATE, 500),
        ]),
        0.001,
        9,
    );
    let ends = beeps(RATE, &call);
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert!((790..=810).contains(&ends[0]), "{ends:?}");
}

#[test]
fn beeps_at_other_rates_pitches_and_in_noise() {
    for (rate, hz, noise) in [
        (8000, 400.0, 0.001),
        (8000, 1900.0, 0.001),
        (8000, 850.0, 0.015),
        (16000, 1000.0, 0.005),
        (48000, 440.0, 0.005),
    ] {
        let signal = concat(&[
            silence(rate, 300),
            tone(rate, hz, 200, 0.2),
            silence(rate, 300),
        ]);
        let ends = beeps(rate, &pcm(&signal, noise, 10));
        assert_eq!(ends.len(), 1, "{rate} Hz rate, {hz} Hz tone: {ends:?}");
        assert!((490..=510).contains(&ends[0]), "{ends:?}");
    }
}

#[test]
fn two_beeps_two_reports() {
    let signal = concat(&[
        tone(RATE, 600.0, 250, 0.3),
        silence(RATE, 400),
        tone(RATE, 1200.0, 250, 0.3),
        silence(RATE, 100),
    ]);
    assert_eq!(beeps(RATE, &pcm(&signal, 0.001, 11)).len(), 2);
}

#[test]
fn not_beeps() {
    let cases: Vec<(&str, Vec<f32>)> = vec![
        ("too short", tone(RATE, 1000.0, 100, 0.3)),
        ("too low", tone(RATE, 200.0, 500, 0.3)),
        ("too high", tone(RATE, 2500.0, 500, 0.3)),
        ("too quiet", tone(RATE, 1000.0, 500, 0.004)),
        ("speech", speech(RATE, 2000, 0.4)),
        ("sweep", {
            let n = (RATE * 400 / 1000) as usize;
            let mut phase = 0.0f32;
            (0..n)
                .map(|i| {
                    phase += TAU * (500.0 + 1000.0 * i as f32 / n as f32) / RATE as f32;
                    0.3 * phase.sin()
                })
                .collect()
        }),
    ];
    for (name, signal) in cases {
        let signal = concat(&[silence(RATE, 200), signal, silence(RATE, 300)]);
        assert!(beeps(RATE, &pcm(&signal, 0.0005, 12)).is_empty(), "{name}");
    }
    let white = pcm(&silence(RATE, 2000), 0.2, 13);
    assert!(beeps(RATE, &white).is_empty(), "white noise");
}
