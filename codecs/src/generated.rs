//! Prompts made here rather than uploaded: a tone (the beep before a recording, menu cues) and a
//! packet of silence (what an idle call streams), encoded for one codec and packet time.
//!
//! They skip the upload pipeline on purpose: silence would be refused as an empty upload and a
//! tone has an exact level already, so levelling would only move it.

use sha2::{Digest, Sha256};

use crate::prompt::encode_payloads;
use crate::{Codec, CodecError, EncodeSettings, Prompt, PromptInfo, PromptKey};

/// Peak amplitude of generated tones: −12 dBFS, a clear beep that stays below levelled speech
/// peaks (the limiter's ceiling) so a tone is never louder than the message around it.
const TONE_PEAK: f64 = 0.25;

/// Fade at each end of a tone, so it starts and stops without a click.
const TONE_FADE_MS: u32 = 5;

/// Longest tone or silence made at once (one minute): a playlist item is bounded like an upload.
pub const MAX_GENERATED_MS: u32 = 60_000;

impl Prompt {
    /// A sine of `hz` lasting `ms` (rounded up to whole packets), faded in and out over 5 ms.
    pub fn tone(codec: Codec, ptime_ms: u32, hz: u16, ms: u32) -> Result<Prompt, CodecError> {
        let rate = codec.sample_rate();
        if u32::from(hz) * 2 >= rate || hz == 0 {
            return Err(CodecError::Encoder(format!(
                "tone of {hz} Hz cannot be coded at {rate} Hz"
            )));
        }
        let n = samples(rate, ms)?;
        let fade = (rate / 1000 * TONE_FADE_MS).min(n as u32 / 2).max(1) as usize;
        let w = 2.0 * std::f64::consts::PI * f64::from(hz) / f64::from(rate);
        let pcm: Vec<i16> = (0..n)
            .map(|i| {
                let edge = i.min(n - 1 - i);
                let gain = if edge < fade {
                    edge as f64 / fade as f64
                } else {
                    1.0
                };
                ((i as f64 * w).sin() * TONE_PEAK * gain * 32767.0).round() as i16
            })
            .collect();
        generated(&pcm, codec, ptime_ms, &format!("tone/{hz}Hz/{ms}ms"))
    }

    /// Digital silence lasting `ms` (rounded up to whole packets; at least one packet).
    pub fn silence(codec: Codec, ptime_ms: u32, ms: u32) -> Result<Prompt, CodecError> {
        let n = samples(codec.sample_rate(), ms.max(1))?;
        generated(&vec![0; n], codec, ptime_ms, &format!("silence/{ms}ms"))
    }
}

fn samples(rate: u32, ms: u32) -> Result<usize, CodecError> {
    if ms > MAX_GENERATED_MS {
        return Err(CodecError::TooLong {
            actual_ms: u64::from(ms),
            max_ms: u64::from(MAX_GENERATED_MS),
        });
    }
    Ok((u64::from(rate) * u64::from(ms) / 1000) as usize)
}

fn generated(pcm: &[i16], codec: Codec, ptime_ms: u32, what: &str) -> Result<Prompt, CodecError> {
    if !codec.supports_ptime(ptime_ms) {
        return Err(CodecError::UnsupportedPtime { codec, ptime_ms });
    }
    if pcm.is_empty() {
        return Err(CodecError::Empty);
    }
    let settings = EncodeSettings {
        normalize: false,
        ..EncodeSettings::default()
    };
    let (data, offsets) = encode_payloads(pcm, codec, ptime_ms, settings.opus_bitrate)?;
    let sha: [u8; 32] = Sha256::digest(what.as_bytes()).into();
    let info = PromptInfo {
        source_format: "generated".into(),
        source_sample_rate: codec.sample_rate(),
        source_channels: 1,
        source_duration_ms: pcm.len() as u64 * 1000 / u64::from(codec.sample_rate()),
        source_sha256: sha,
        normalized: false,
        loudness_before_lufs: f64::NEG_INFINITY,
        loudness_after_lufs: f64::NEG_INFINITY,
        peak_before_dbfs: f64::NEG_INFINITY,
        peak_after_dbfs: f64::NEG_INFINITY,
        gain_db: 0.0,
        limited: false,
    };
    Ok(Prompt {
        codec,
        ptime_ms,
        timestamp_step: codec.timestamp_step(ptime_ms),
        data,
        offsets,
        info,
        key: PromptKey::from_source_hash(&sha, codec, ptime_ms, &settings),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tone decodes to its frequency (zero crossings) in every codec, padded to whole
    /// packets; silence is one packet per ptime and decodes to (near) zero.
    #[test]
    fn tone_and_silence_decode_as_made() {
        for codec in Codec::ALL {
            let p = Prompt::tone(codec, 20, 1000, 300).unwrap();
            assert_eq!(p.frame_count(), 15, "{codec}");
            let pcm = p.decode().unwrap();
            let rate = codec.sample_rate() as usize;
            // Skip the codec's start-up (Opus look-ahead) and the fades: 100 ms in the middle.
            let mid = &pcm[rate / 10..rate / 5];
            let crossings = mid.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
            assert!((195..=205).contains(&crossings), "{codec}: {crossings}");
            let peak = mid.iter().map(|s| s.unsigned_abs()).max().unwrap();
            assert!((6500..=9500).contains(&peak), "{codec}: peak {peak}");

            let s = Prompt::silence(codec, 20, 20).unwrap();
            assert_eq!(s.frame_count(), 1);
            let pcm = s.decode().unwrap();
            assert!(pcm.iter().all(|x| x.unsigned_abs() < 64), "{codec}");
        }
        assert!(
            Prompt::tone(Codec::Pcma, 20, 5000, 100).is_err(),
            "above Nyquist"
        );
        assert!(Prompt::tone(Codec::Pcma, 20, 440, MAX_GENERATED_MS + 1).is_err());
        assert!(
            Prompt::silence(Codec::Opus, 30, 20).is_err(),
            "no 30 ms Opus"
        );
    }
}
