//! `dialer prompt FILE`: encode an audio file exactly as a call would stream it.
//!
//! Why: operators need to check an upload before a campaign (does it import, how loud is it,
//! how long) and hear what a callee will hear (`--decode-to`); tests need the raw payloads
//! (`--out`) to compare with reference encoders such as sox.

use std::path::PathBuf;

use anyhow::{Context, Result};
use codecs::{Codec, EncodeSettings, PreparedAudio, Prompt};

/// Arguments of `dialer prompt`.
#[derive(Debug, clap::Args)]
pub struct PromptArgs {
    /// Audio file to encode (WAV or MP3).
    pub file: PathBuf,
    /// Codec: pcmu, pcma, opus or g722.
    #[arg(long, default_value = "pcma")]
    pub codec: Codec,
    /// Packet time in milliseconds (10, 20, 30; Opus: 10, 20, 40, 60).
    #[arg(long, default_value_t = 20)]
    pub ptime: u32,
    /// Do not level the loudness (samples pass to the encoder unchanged).
    #[arg(long)]
    pub no_normalize: bool,
    /// Write the RTP payloads, concatenated in order, to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Decode the payloads back to a 16-bit mono WAV at the codec's rate (what a callee hears).
    #[arg(long, value_name = "FILE.wav")]
    pub decode_to: Option<PathBuf>,
    /// Print the metadata as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Longest accepted message, in seconds.
    #[arg(long, default_value_t = 300)]
    pub max_duration_s: u64,
    /// Opus bitrate in bit/s.
    #[arg(long, default_value_t = codecs::opus_codec::DEFAULT_BITRATE)]
    pub opus_bitrate: u32,
}

/// Runs `dialer prompt`.
pub fn run(args: PromptArgs) -> Result<()> {
    let settings = EncodeSettings {
        normalize: !args.no_normalize,
        max_duration_ms: args.max_duration_s.saturating_mul(1000),
        opus_bitrate: args.opus_bitrate,
        ..EncodeSettings::default()
    };
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let prepared = PreparedAudio::from_bytes(&bytes, &settings)
        .with_context(|| format!("importing {}", args.file.display()))?;
    let prompt = prepared
        .encode(args.codec, args.ptime)
        .with_context(|| format!("encoding {} for {}", args.file.display(), args.codec))?;

    if let Some(out) = &args.out {
        std::fs::write(out, prompt.payload_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
    }
    if let Some(wav) = &args.decode_to {
        let pcm = prompt.decode()?;
        codecs::wav::write_wav(wav, &pcm, args.codec.sample_rate())
            .with_context(|| format!("writing {}", wav.display()))?;
    }

    if args.json {
        println!("{}", report_json(&args, &prompt));
    } else {
        print_report(&args, &prompt);
    }
    Ok(())
}

/// The report as JSON (`--json`): the encoding, the source and the loudness figures
/// (rounded to 0.01; not finite: null).
fn report_json(args: &PromptArgs, prompt: &Prompt) -> serde_json::Value {
    let info = prompt.info();
    let num = |x: f64| {
        if x.is_finite() {
            serde_json::json!((x * 100.0).round() / 100.0)
        } else {
            serde_json::Value::Null
        }
    };
    serde_json::json!({
        "file": args.file.display().to_string(),
        "key": prompt.key().to_hex(),
        "codec": args.codec.name(),
        "payload_type": args.codec.payload_type(),
        "rtpmap": args.codec.rtpmap(),
        "ptime_ms": prompt.ptime_ms(),
        "frames": prompt.frame_count(),
        "duration_ms": prompt.duration_ms(),
        "timestamp_step": prompt.timestamp_step(),
        "payload_bytes": prompt.payload_len(),
        "source": {
            "format": info.source_format,
            "sample_rate": info.source_sample_rate,
            "channels": info.source_channels,
            "duration_ms": info.source_duration_ms,
        },
        "normalized": info.normalized,
        "loudness_before_lufs": num(info.loudness_before_lufs),
        "loudness_after_lufs": num(info.loudness_after_lufs),
        "peak_before_dbfs": num(info.peak_before_dbfs),
        "peak_after_dbfs": num(info.peak_after_dbfs),
        "gain_db": num(info.gain_db),
        "limited": info.limited,
    })
}

/// The report as two lines of text.
fn print_report(args: &PromptArgs, prompt: &Prompt) {
    let info = prompt.info();
    println!(
        "{}: {} {} Hz {} ch, {} ms -> {} ptime {} ms: {} frames, {} ms, {} payload bytes",
        args.file.display(),
        info.source_format,
        info.source_sample_rate,
        info.source_channels,
        info.source_duration_ms,
        args.codec,
        prompt.ptime_ms(),
        prompt.frame_count(),
        prompt.duration_ms(),
        prompt.payload_len(),
    );
    println!(
        "loudness {:.1} LUFS -> {:.1} LUFS (gain {:+.1} dB{}), peak {:.1} dBFS -> {:.1} dBFS",
        info.loudness_before_lufs,
        info.loudness_after_lufs,
        info.gain_db,
        if info.limited { ", limited" } else { "" },
        info.peak_before_dbfs,
        info.peak_after_dbfs,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../codecs/tests/fixtures")
            .join(name)
    }

    /// Acceptance: `dialer prompt fixture.wav --codec pcmu --no-normalize --out x.ul` is
    /// byte-identical to sox's µ-law output of the fixture; the same for A-law.
    #[test]
    fn out_matches_sox() {
        let dir = std::env::temp_dir().join(format!("dialer-prompt-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (codec, ext) in [(Codec::Pcmu, "ul"), (Codec::Pcma, "al")] {
            let out = dir.join(format!("x.{ext}"));
            let wav = dir.join(format!("x-{ext}.wav"));
            run(PromptArgs {
                file: fixture("speech_8k_m8.wav"),
                codec,
                ptime: 20,
                no_normalize: true,
                out: Some(out.clone()),
                decode_to: Some(wav.clone()),
                json: true,
                max_duration_s: 300,
                opus_bitrate: codecs::opus_codec::DEFAULT_BITRATE,
            })
            .unwrap();
            let got = std::fs::read(&out).unwrap();
            let want = std::fs::read(fixture(&format!("speech_8k_m8.{ext}"))).unwrap();
            assert!(got == want, "{codec}: output differs from sox");
            assert!(std::fs::metadata(&wav).unwrap().len() > 44);
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn bad_file_is_an_error_not_a_panic() {
        let r = run(PromptArgs {
            file: fixture("truncated.wav"),
            codec: Codec::G722,
            ptime: 20,
            no_normalize: false,
            out: None,
            decode_to: None,
            json: false,
            max_duration_s: 300,
            opus_bitrate: codecs::opus_codec::DEFAULT_BITRATE,
        });
        let e = r.unwrap_err();
        assert!(format!("{e:#}").contains("is truncated"), "{e:#}");
    }
}
