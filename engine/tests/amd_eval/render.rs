//! Turns a [`Call`] into the 8 kHz audio the dialer would receive: espeak-ng speech (cached in
//! a temp dir by its parameters), levelled, placed on a timeline with a beep or silence, mixed
//! with background noise and passed through G.711.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::corpus::{Call, Law, NoiseKind, Rng, Tail};

pub const RATE: u32 = 8000;

/// Every call lasts at least this long (the analysis needs at most 5 s).
const MIN_CALL_MS: u32 = 8000;

/// Where synthesized utterances are kept between runs (generated, never committed).
pub fn cache_dir() -> PathBuf {
    std::env::temp_dir().join("dialer-amd-eval-v1")
}

/// The utterance of `text` by the call's voice at 8 kHz, in [-1, 1], leading and trailing
/// silence trimmed.
fn speak(call: &Call, text: &str) -> Vec<f32> {
    let key = format!("{}|{}|{}|{}", call.voice, call.speed, call.pitch, text);
    let hash = Sha256::digest(key.as_bytes());
    let name: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
    let path = cache_dir().join(format!("{name}.wav"));
    if !path.exists() {
        synthesize(call, text, &path);
    }
    let mut reader = hound::WavReader::open(&path).expect("cached utterance");
    let rate = reader.spec().sample_rate;
    let raw: Vec<f32> = reader
        .samples::<i16>()
        .map(|s| f32::from(s.expect("sample")) / 32768.0)
        .collect();
    let pcm = codecs::resample::resample(&raw, rate, RATE).expect("resample");
    trim(pcm)
}

/// Runs espeak-ng into a temp file, then renames it into place (parallel runs never see half
/// a file).
fn synthesize(call: &Call, text: &str, path: &Path) {
    std::fs::create_dir_all(cache_dir()).expect("cache dir");
    let tmp = path.with_extension(format!(
        "{}-{:?}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    let status = Command::new("espeak-ng")
        .args(["-v", &call.voice, "-s", &call.speed.to_string()])
        .args(["-p", &call.pitch.to_string(), "-w"])
        .arg(&tmp)
        .arg(text)
        .status()
        .expect("espeak-ng must be installed (scripts/setup installs it)");
    assert!(status.success(), "espeak-ng failed for {:?}", call.voice);
    std::fs::rename(&tmp, path).expect("rename cached utterance");
}

/// Drops the near-silent start and end espeak-ng leaves around an utterance.
fn trim(pcm: Vec<f32>) -> Vec<f32> {
    let loud = |s: &f32| s.abs() > 0.003;
    let start = pcm.iter().position(loud).unwrap_or(0);
    let end = pcm.iter().rposition(loud).map_or(start, |e| e + 1);
    pcm[start..end].to_vec()
}

fn rms(x: &[f32]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len() as f64).sqrt()
}

fn ms(n: u32) -> usize {
    (RATE * n / 1000) as usize
}

/// Copies `src` scaled by `gain` into `dst` at `at`, growing `dst` as needed.
fn place(dst: &mut Vec<f32>, at: usize, src: &[f32], gain: f64) {
    if dst.len() < at + src.len() {
        dst.resize(at + src.len(), 0.0);
    }
    for (d, &s) in dst[at..].iter_mut().zip(src) {
        *d += (f64::from(s) * gain) as f32;
    }
}

/// The call's audio as received: clean timeline, noise, G.711. Also returns when the beep
/// ended (ms), if there is one.
pub fn render(call: &Call) -> (Vec<i16>, Option<u32>) {
    let speech = speak(call, call.text);
    let gain = 10f64.powf(call.speech_db / 20.0) / rms(&speech).max(1e-6);
    let mut line = Vec::new();
    let mut at = ms(call.lead_ms);
    place(&mut line, at, &speech, gain);
    at += speech.len();
    let mut beep_end = None;
    if let Some((pause_ms, text)) = call.again {
        let again = speak(call, text);
        let gain = 10f64.powf(call.speech_db / 20.0) / rms(&again).max(1e-6);
        place(&mut line, at + ms(pause_ms), &again, gain);
    }
    if let Tail::Beep {
        hz,
        ms: len,
        rel_db,
    } = call.tail
    {
        at += ms(call.gap_ms);
        let amp = 10f64.powf((call.speech_db + rel_db) / 20.0) * 2f64.sqrt();
        let tone: Vec<f32> = (0..ms(len))
            .map(|i| (amp * (std::f64::consts::TAU * hz * i as f64 / f64::from(RATE)).sin()) as f32)
            .collect();
        place(&mut line, at, &tone, 1.0);
        at += tone.len();
        beep_end = Some((at as u64 * 1000 / u64::from(RATE)) as u32);
    }
    let total = line.len().max(at + ms(1500)).max(ms(MIN_CALL_MS));
    line.resize(total, 0.0);
    let noise_rms = 10f64.powf((call.speech_db - call.snr_db) / 20.0);
    add_noise(&mut line, call.noise, noise_rms, call.noise_seed);
    (g711(&line, call.law), beep_end)
}

/// Approximately Gaussian noise (sum of four uniforms), unit variance.
fn gauss(rng: &mut Rng) -> f64 {
    let s: f64 = (0..4).map(|_| rng.unit() - 0.5).sum();
    s * 3f64.sqrt()
}

fn add_noise(line: &mut [f32], kind: NoiseKind, target_rms: f64, seed: u64) {
    let mut rng = Rng::new(seed);
    let n = line.len();
    let noise: Vec<f64> = match kind {
        NoiseKind::None => return,
        NoiseKind::White => (0..n).map(|_| gauss(&mut rng)).collect(),
        NoiseKind::Rumble => {
            let mut y = 0.0;
            (0..n)
                .map(|_| {
                    y = 0.97 * y + gauss(&mut rng);
                    y + 0.5 * gauss(&mut rng)
                })
                .collect()
        }
        NoiseKind::Hum => (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(RATE);
                let hum: f64 = [(50.0, 1.0), (150.0, 0.5), (250.0, 0.3)]
                    .iter()
                    .map(|(f, a)| a * (std::f64::consts::TAU * f * t).sin())
                    .sum();
                hum + 0.2 * gauss(&mut rng)
            })
            .collect(),
        NoiseKind::Babble => babble(&mut rng, n),
    };
    let scale = target_rms / (noise.iter().map(|v| v * v).sum::<f64>() / n as f64).sqrt();
    for (s, v) in line.iter_mut().zip(noise) {
        *s += (v * scale) as f32;
    }
}

/// Band-limited noise whose loudness wanders at syllable rate, like distant talkers.
fn babble(rng: &mut Rng, n: usize) -> Vec<f64> {
    let (mut lp, mut env, mut target) = (0.0, 1.0, 1.0);
    (0..n)
        .map(|i| {
            if i % ms(150) == 0 {
                target = rng.uniform(0.3, 1.7);
            }
            env += (target - env) * 0.002;
            lp = 0.8 * lp + gauss(rng);
            lp * env
        })
        .collect()
}

/// Through the codec and back, as the pump would decode it.
fn g711(line: &[f32], law: Law) -> Vec<i16> {
    use codecs::g711::{decode_alaw, decode_ulaw, encode_alaw, encode_ulaw};
    line.iter()
        .map(|&s| {
            let s = (s * 32767.0).clamp(-32768.0, 32767.0) as i16;
            match law {
                Law::Pcmu => decode_ulaw(encode_ulaw(s)),
                Law::Pcma => decode_alaw(encode_alaw(s)),
            }
        })
        .collect()
}
