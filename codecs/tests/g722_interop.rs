//! G.722 interoperability: this crate's SB-ADPCM encoder and decoder are bit-exact with FFmpeg's
//! G.722 codec (5.1, `-c:a g722`), an independent implementation deployed in countless SIP
//! stacks. The fixtures were made once with
//! `ffmpeg -i X.wav -c:a g722 -f g722 X.ffmpeg.g722` and
//! `ffmpeg -f g722 -i X.ffmpeg.g722 -f s16le X.ffmpeg.g722.s16`, so the test needs no FFmpeg.
//! `g722_stress.wav` (white noise at full scale, a 50-7900 Hz sweep, a full-scale square wave)
//! drives the saturation and limiter paths of both ADPCM bands.

mod common;

use codecs::g722::{Decoder, Encoder};
use common::*;

fn check(name: &str) {
    let (pcm, rate) = wav_samples(&format!("{name}.wav"));
    assert_eq!(rate, 16000);
    let reference_bytes = fixture(&format!("{name}.ffmpeg.g722"));
    let reference_pcm = s16le(&fixture(&format!("{name}.ffmpeg.g722.s16")));

    let mut enc = Encoder::new();
    let mut bytes = Vec::new();
    enc.encode(&pcm, &mut bytes);
    assert_eq!(bytes.len(), reference_bytes.len());
    if let Some(i) = bytes.iter().zip(&reference_bytes).position(|(a, b)| a != b) {
        panic!("{name}: encoded byte {i} differs from FFmpeg's");
    }

    let mut dec = Decoder::new();
    let mut out = Vec::new();
    dec.decode(&reference_bytes, &mut out);
    assert_eq!(out.len(), reference_pcm.len());
    if let Some(i) = out.iter().zip(&reference_pcm).position(|(a, b)| a != b) {
        panic!("{name}: decoded sample {i} differs from FFmpeg's");
    }
}

#[test]
fn speech_is_bit_exact_with_ffmpeg() {
    check("speech_16k");
}

#[test]
fn stress_signal_is_bit_exact_with_ffmpeg() {
    check("g722_stress");
}
