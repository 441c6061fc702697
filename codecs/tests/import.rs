//! Import: every supported format decodes to the same speech, every bad fixture to its own error.

mod common;

use codecs::import::{import, DEFAULT_MAX_DURATION_MS};
use codecs::{Codec, CodecError, EncodeSettings, Prompt, SourceFormat};
use common::*;

fn err(name: &str) -> CodecError {
    import(&fixture(name), DEFAULT_MAX_DURATION_MS).expect_err(name)
}

fn prompt_err(name: &str, settings: &EncodeSettings) -> CodecError {
    Prompt::from_bytes(&fixture(name), Codec::Pcma, 20, settings).expect_err(name)
}

#[test]
fn empty_file() {
    assert!(
        matches!(err("empty.wav"), CodecError::Empty),
        "{:?}",
        err("empty.wav")
    );
}

#[test]
fn truncated_file() {
    assert!(
        matches!(err("truncated.wav"), CodecError::Truncated(_)),
        "{:?}",
        err("truncated.wav")
    );
    // Cut inside the header too.
    let head = &fixture("speech_8k_m8.wav")[..30];
    let e = import(head, 1000);
    assert!(matches!(e, Err(CodecError::Truncated(_))), "{e:?}");
    assert!(matches!(
        import(b"RIF", 1000),
        Err(CodecError::Truncated(_))
    ));
}

#[test]
fn wrong_format() {
    assert!(matches!(
        err("not_audio.txt"),
        CodecError::UnsupportedFormat(_)
    ));
    assert!(matches!(
        err("fmt_flac.flac"),
        CodecError::UnsupportedFormat(_)
    ));
}

#[test]
fn absurd_headers() {
    for f in [
        "absurd_rate.wav",
        "absurd_rate_huge.wav",
        "absurd_channels.wav",
    ] {
        assert!(
            matches!(err(f), CodecError::AbsurdHeader(_)),
            "{f}: {:?}",
            err(f)
        );
    }
}

#[test]
fn silence_only() {
    // Imports fine (it is valid audio) but cannot become a prompt.
    assert!(import(&fixture("silence.wav"), DEFAULT_MAX_DURATION_MS).is_ok());
    for normalize in [true, false] {
        let s = EncodeSettings {
            normalize,
            ..Default::default()
        };
        assert!(matches!(
            prompt_err("silence.wav", &s),
            CodecError::SilenceOnly
        ));
    }
}

#[test]
fn too_long_with_small_maximum() {
    let s = EncodeSettings {
        max_duration_ms: 1500,
        ..Default::default()
    };
    match prompt_err("tone_2s.wav", &s) {
        CodecError::TooLong { actual_ms, max_ms } => {
            assert_eq!(actual_ms, 2000);
            assert_eq!(max_ms, 1500);
        }
        e => panic!("{e:?}"),
    }
    match import(&fixture("speech.mp3"), 1000) {
        Err(CodecError::TooLong { max_ms: 1000, .. }) => {}
        other => panic!("{other:?}"),
    }
    // Exactly at the limit is fine.
    assert!(import(&fixture("tone_2s.wav"), 2000).is_ok());
}

#[test]
fn each_bad_fixture_has_its_own_error_kind() {
    let kinds = [
        err("empty.wav").kind(),
        err("truncated.wav").kind(),
        err("not_audio.txt").kind(),
        err("absurd_rate.wav").kind(),
        prompt_err("silence.wav", &EncodeSettings::default()).kind(),
        import(&fixture("tone_2s.wav"), 1000).unwrap_err().kind(),
    ];
    let mut dedup = kinds.to_vec();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), kinds.len(), "{kinds:?}");
}

/// Every WAV flavour and the MP3 decode to the same speech (compared at 16 kHz, mono).
#[test]
fn all_formats_decode_to_the_same_speech() {
    let (reference, rate) = wav_samples("speech_16k.wav");
    assert_eq!(rate, 16000);
    // The format fixtures are `trim 0.3 0.6` of the reference.
    let start = (0.3 * 16000.0) as usize;
    let reference: Vec<f32> = reference[start..start + 9600]
        .iter()
        .map(|&s| f32::from(s) / 32768.0)
        .collect();
    for (name, format, channels, min_snr) in [
        ("fmt_u8.wav", SourceFormat::WavInt(8), 1, 25.0),
        ("fmt_s24.wav", SourceFormat::WavInt(24), 1, 80.0),
        ("fmt_s32.wav", SourceFormat::WavInt(32), 1, 80.0),
        ("fmt_f32.wav", SourceFormat::WavFloat, 1, 80.0),
        ("fmt_stereo_44k.wav", SourceFormat::WavInt(16), 2, 30.0),
    ] {
        let a = import(&fixture(name), DEFAULT_MAX_DURATION_MS).unwrap();
        assert_eq!(a.format, format, "{name}");
        assert_eq!(a.source_channels, channels, "{name}");
        let x = codecs::resample::resample(&a.samples, a.sample_rate, 16000).unwrap();
        assert_eq!(x.len(), 9600, "{name}");
        let (mut sig, mut noise) = (0.0f64, 0.0f64);
        for (r, y) in reference.iter().zip(&x).skip(100).take(9400) {
            sig += f64::from(*r).powi(2);
            noise += f64::from(y - r).powi(2);
        }
        let snr = 10.0 * (sig / noise.max(1e-20)).log10();
        assert!(snr > min_snr, "{name}: SNR {snr:.1} dB");
    }
}

#[test]
fn mp3_imports() {
    let a = import(&fixture("speech.mp3"), DEFAULT_MAX_DURATION_MS).unwrap();
    assert_eq!(a.format, SourceFormat::Mp3);
    assert_eq!(a.sample_rate, 16000);
    // Gapless decoding gives back the source length within one MP3 granule.
    let ms = a.duration_ms() as i64;
    // (symphonia does not trim the encoder delay of this MPEG-2 LAME file: ~84 ms more)
    assert!((ms - 2976).abs() < 120, "mp3 lasts {ms} ms");
    let p = Prompt::from_bytes(
        &fixture("speech.mp3"),
        Codec::Opus,
        20,
        &EncodeSettings::default(),
    )
    .unwrap();
    assert!(p.frame_count() > 140);
}

#[test]
fn garbage_never_panics() {
    // Deterministic pseudo-random buffers with and without valid magic.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let prefixes: [&[u8]; 4] = [
        b"RIFF\x24\x00\x00\x00WAVEfmt ",
        b"ID3\x03\x00",
        b"\xFF\xFB\x90\x64",
        b"",
    ];
    for round in 0..400 {
        let len = (next() % 600) as usize;
        let mut buf: Vec<u8> = prefixes[round % 4].to_vec();
        buf.extend((0..len).map(|_| next() as u8));
        let _ = import(&buf, 2000);
    }
}
