#![allow(dead_code)]
//! Helpers shared by the integration tests.

use std::path::PathBuf;

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Reads a 16-bit mono WAV's samples with hound (the oracle side of the tests).
pub fn wav_samples(name: &str) -> (Vec<i16>, u32) {
    let r = hound::WavReader::open(fixture_path(name)).unwrap();
    let rate = r.spec().sample_rate;
    (r.into_samples::<i16>().map(|s| s.unwrap()).collect(), rate)
}

pub fn s16le(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// Signal-to-noise ratio in dB of `out` against `reference`, with `out` delayed by `delay`
/// samples, over the overlap minus `margin` samples at each end.
pub fn snr_db(reference: &[i16], out: &[i16], delay: usize, margin: usize) -> f64 {
    let n = reference.len().min(out.len().saturating_sub(delay));
    if n <= 2 * margin {
        return f64::NEG_INFINITY;
    }
    let (mut sig, mut noise) = (0.0f64, 0.0f64);
    for i in margin..n - margin {
        let r = f64::from(reference[i]);
        let e = f64::from(out[i + delay]) - r;
        sig += r * r;
        noise += e * e;
    }
    10.0 * (sig / noise.max(1e-9)).log10()
}

/// Best SNR over `delays` (codecs with algorithmic delay), and that delay.
pub fn best_snr_db(
    reference: &[i16],
    out: &[i16],
    delays: std::ops::RangeInclusive<usize>,
    margin: usize,
) -> (f64, usize) {
    delays
        .map(|d| (snr_db(reference, out, d, margin), d))
        .fold((f64::NEG_INFINITY, 0), |a, b| if b.0 > a.0 { b } else { a })
}
