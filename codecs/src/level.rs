//! Loudness measurement (EBU R128) and normalisation to a telephony speech level with a peak
//! limiter.
//!
//! Why: prompts arrive at any level (a phone recording at −40 LUFS, a studio master at −9 LUFS).
//! Telephone networks expect active speech around −19 dBm0 (RFC 7874 §4). In G.711, 0 dBm0 is a
//! sine 3.14–3.17 dB below a full-scale sine, so −19 dBm0 is about −22 dB below a full-scale sine,
//! i.e. an RMS of about −25 dBFS (full scale = a full-scale square wave). EBU R128 integrated
//! loudness (K-weighted, gated, so pauses barely count) reads a full-scale 1 kHz sine as
//! −3.01 LUFS, so it sits on the same scale: the default target is **−25 LUFS**.
//!
//! After the gain, a look-ahead limiter keeps every sample under a ceiling (default −1 dBFS, which
//! leaves room for resampling overshoot) without hard clipping.

use crate::CodecError;

/// Default loudness target, ≈ −19 dBm0 active speech (see the module docs).
pub const DEFAULT_TARGET_LUFS: f64 = -25.0;
/// Default sample-peak ceiling after limiting.
pub const DEFAULT_CEILING_DBFS: f64 = -1.0;
/// Most gain normalisation will apply: beyond this a recording is mostly noise.
pub const MAX_GAIN_DB: f64 = 40.0;
/// Peaks below this (about 1 LSB of 16-bit audio) count as digital silence.
pub const SILENCE_PEAK: f32 = 1.0 / 32768.0;

/// Loudness figures of a signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Loudness {
    /// EBU R128 integrated loudness in LUFS (`-inf` when every block is gated out).
    pub integrated_lufs: f64,
    /// Sample peak in dBFS.
    pub peak_dbfs: f64,
}

/// What normalisation did, for the prompt's metadata.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelReport {
    /// Loudness of the imported audio.
    pub before: Loudness,
    /// Loudness after gain and limiting (equal to `before` when normalisation is off).
    pub after: Loudness,
    /// Gain applied before limiting, in dB (0 when off).
    pub gain_db: f64,
    /// Whether the limiter had to reduce any sample.
    pub limited: bool,
}

fn to_db(x: f64) -> f64 {
    if x > 0.0 {
        20.0 * x.log10()
    } else {
        f64::NEG_INFINITY
    }
}

/// Measures integrated loudness and sample peak of mono `samples` at `rate` Hz.
pub fn measure(samples: &[f32], rate: u32) -> Result<Loudness, CodecError> {
    let peak = samples.iter().fold(0.0f32, |m, &s| m.max(s.abs()));
    let mut meter = ebur128::EbuR128::new(1, rate, ebur128::Mode::I)
        .map_err(|e| CodecError::InvalidSettings(format!("loudness meter: {e}")))?;
    meter
        .add_frames_f32(samples)
        .map_err(|e| CodecError::Malformed(format!("loudness meter: {e}")))?;
    let lufs = meter
        .loudness_global()
        .map_err(|e| CodecError::Malformed(format!("loudness meter: {e}")))?;
    // EBU R128 gates in 400 ms blocks: shorter clips have no integrated loudness. Fall back to
    // the plain (unweighted, ungated) mean-square level, which is what R128 reads for speech
    // within a dB or two.
    let integrated_lufs = if lufs.is_finite() {
        lufs
    } else if samples.is_empty() {
        f64::NEG_INFINITY
    } else {
        let ms = samples
            .iter()
            .map(|&s| f64::from(s) * f64::from(s))
            .sum::<f64>()
            / samples.len() as f64;
        let db = if ms > 0.0 {
            10.0 * ms.log10()
        } else {
            f64::NEG_INFINITY
        };
        if db < -70.0 {
            f64::NEG_INFINITY
        } else {
            db
        }
    };
    Ok(Loudness {
        integrated_lufs,
        peak_dbfs: to_db(f64::from(peak)),
    })
}

/// Fails with [`CodecError::SilenceOnly`] when `samples` hold nothing audible: a peak under one
/// 16-bit LSB, or a level under EBU R128's −70 LUFS absolute gate.
pub fn check_not_silent(samples: &[f32], loudness: &Loudness) -> Result<(), CodecError> {
    let peak = samples.iter().fold(0.0f32, |m, &s| m.max(s.abs()));
    if peak < SILENCE_PEAK || loudness.integrated_lufs == f64::NEG_INFINITY {
        return Err(CodecError::SilenceOnly);
    }
    Ok(())
}

/// Applies gain toward `target_lufs` (capped at [`MAX_GAIN_DB`]) and limits peaks to
/// `ceiling_dbfs`, in place. `before` must be the measurement of `samples`.
pub fn normalize(
    samples: &mut [f32],
    rate: u32,
    before: Loudness,
    target_lufs: f64,
    ceiling_dbfs: f64,
) -> Result<LevelReport, CodecError> {
    if !target_lufs.is_finite() || !(-70.0..=0.0).contains(&target_lufs) {
        return Err(CodecError::InvalidSettings(format!(
            "loudness target {target_lufs} LUFS"
        )));
    }
    if !ceiling_dbfs.is_finite() || !(-30.0..=0.0).contains(&ceiling_dbfs) {
        return Err(CodecError::InvalidSettings(format!(
            "peak ceiling {ceiling_dbfs} dBFS"
        )));
    }
    let gain_db = if before.integrated_lufs.is_finite() {
        (target_lufs - before.integrated_lufs).min(MAX_GAIN_DB)
    } else {
        0.0
    };
    let gain = 10f64.powf(gain_db / 20.0) as f32;
    for s in samples.iter_mut() {
        *s *= gain;
    }
    let ceiling = 10f64.powf(ceiling_dbfs / 20.0) as f32;
    let limited = limit(samples, rate, ceiling);
    let after = measure(samples, rate)?;
    Ok(LevelReport {
        before,
        after,
        gain_db,
        limited,
    })
}

/// Look-ahead peak limiter. The gain each sample needs (`ceiling / |x|`, at most 1) is
/// min-filtered over ±`r` samples and then box-averaged over ±`r`: every averaged value comes from
/// windows that contain the sample, so the result never exceeds what that sample needs (no
/// overshoot), while the gain moves smoothly over 2r (5 ms) instead of clipping. Returns whether
/// any gain reduction happened.
pub fn limit(samples: &mut [f32], rate: u32, ceiling: f32) -> bool {
    let n = samples.len();
    if n == 0 || !samples.iter().any(|s| s.abs() > ceiling) {
        return false;
    }
    let r = ((rate as usize) / 200).max(1); // 5 ms
    let need: Vec<f32> = samples
        .iter()
        .map(|s| {
            let a = s.abs();
            if a > ceiling {
                ceiling / a
            } else {
                1.0
            }
        })
        .collect();
    let minf = sliding_min(&need, r);
    // Box average over ±r with a prefix sum (f64 to keep it exact enough over minutes).
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0.0f64);
    let mut acc = 0.0f64;
    for &g in &minf {
        acc += f64::from(g);
        prefix.push(acc);
    }
    for (i, s) in samples.iter_mut().enumerate() {
        let lo = i.saturating_sub(r);
        let hi = (i + r + 1).min(n);
        let g = ((prefix[hi] - prefix[lo]) / (hi - lo) as f64) as f32;
        // Near the edges the window is clipped and still only holds minima covering i, but
        // rounding can leave a hair above the need: clamp to it.
        *s *= g.min(need[i]);
    }
    true
}

/// Minimum over `[i - r, i + r]` for every `i`, in O(n) with a monotonic deque.
fn sliding_min(v: &[f32], r: usize) -> Vec<f32> {
    let n = v.len();
    let mut out = vec![1.0f32; n];
    let mut dq: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    let mut next = 0usize; // next index to push
    for (i, o) in out.iter_mut().enumerate() {
        let hi = (i + r).min(n - 1);
        while next <= hi {
            while let Some(&b) = dq.back() {
                if v[b] >= v[next] {
                    dq.pop_back();
                } else {
                    break;
                }
            }
            dq.push_back(next);
            next += 1;
        }
        while let Some(&f) = dq.front() {
            if f + r < i {
                dq.pop_front();
            } else {
                break;
            }
        }
        *o = dq.front().map_or(1.0, |&f| v[f]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, amp: f32, rate: u32, secs: f32) -> Vec<f32> {
        (0..(rate as f32 * secs) as usize)
            .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn full_scale_sine_reads_minus_3_lufs() {
        let s = sine(1000.0, 1.0, 48000, 3.0);
        let l = measure(&s, 48000).unwrap();
        assert!((l.integrated_lufs + 3.01).abs() < 0.1, "{l:?}");
        assert!(l.peak_dbfs.abs() < 0.01);
    }

    #[test]
    fn normalize_reaches_target_and_ceiling() {
        let mut s = sine(440.0, 0.01, 16000, 3.0);
        let before = measure(&s, 16000).unwrap();
        let rep = normalize(&mut s, 16000, before, -25.0, -1.0).unwrap();
        assert!((rep.after.integrated_lufs + 25.0).abs() < 0.2, "{rep:?}");
        // A loud signal needs limiting: peak stays under the ceiling.
        let mut s = sine(440.0, 0.5, 16000, 3.0);
        for (i, x) in s.iter_mut().enumerate() {
            if i % 4000 < 40 {
                *x = 1.0; // clicks far above the sine
            }
        }
        let before = measure(&s, 16000).unwrap();
        let rep = normalize(&mut s, 16000, before, -6.0, -1.0).unwrap();
        let ceiling = 10f32.powf(-1.0 / 20.0);
        assert!(s.iter().all(|x| x.abs() <= ceiling + 1e-6));
        assert!(rep.limited);
    }

    #[test]
    fn silence_is_detected() {
        let s = vec![0.0f32; 16000];
        let l = measure(&s, 16000).unwrap();
        assert!(matches!(
            check_not_silent(&s, &l),
            Err(CodecError::SilenceOnly)
        ));
    }

    #[test]
    fn sliding_min_matches_naive() {
        let v: Vec<f32> = (0..200).map(|i| ((i * 37 % 101) as f32) / 101.0).collect();
        for r in [1, 3, 10] {
            let fast = sliding_min(&v, r);
            for (i, f) in fast.iter().enumerate() {
                let lo = i.saturating_sub(r);
                let hi = (i + r).min(v.len() - 1);
                let m = v[lo..=hi].iter().cloned().fold(f32::INFINITY, f32::min);
                assert_eq!(*f, m);
            }
        }
    }
}
