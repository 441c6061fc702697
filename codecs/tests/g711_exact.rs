//! G.711 exactness: decode tables against the standard and sox, encoding against sox bit for bit.

mod common;

use codecs::g711::{decode_alaw, decode_ulaw, encode_alaw, encode_ulaw};
use codecs::{Codec, EncodeSettings, Prompt};
use common::*;

/// The decode values of ITU-T G.711 Tables 1a/2a (µ-law, 14-bit) and 1b/2b (A-law, 13-bit),
/// generated from the tables' segment/step structure: µ-law segment s, step q decodes to
/// ((2q + 33) << s) - 33; A-law segment 0 to 2q + 1 and segment s ≥ 1 to (2q + 33) << (s - 1).
/// Character signals: µ-law transmits the bits inverted, A-law with even bits inverted (0x55);
/// a set sign bit (after inversion: clear for µ-law) means positive.
fn itu_ulaw(code: u8) -> i32 {
    let u = !code;
    let (s, q) = (i32::from((u >> 4) & 7), i32::from(u & 15));
    let mag = ((2 * q + 33) << s) - 33;
    if u & 0x80 != 0 {
        -mag
    } else {
        mag
    }
}

fn itu_alaw(code: u8) -> i32 {
    let a = code ^ 0x55;
    let (s, q) = (i32::from((a >> 4) & 7), i32::from(a & 15));
    let mag = if s == 0 {
        2 * q + 1
    } else {
        (2 * q + 33) << (s - 1)
    };
    if a & 0x80 != 0 {
        mag
    } else {
        -mag
    }
}

#[test]
fn decode_tables_match_itu_for_all_256_codes() {
    // A few values printed in the standard itself, as an anchor for the generator above.
    assert_eq!(itu_ulaw(0x80), 8031);
    assert_eq!(itu_ulaw(0xFF), 0);
    assert_eq!(itu_ulaw(0x7F), 0);
    assert_eq!(itu_ulaw(0x00), -8031);
    assert_eq!(itu_ulaw(0xEF), 33); // first step of segment 1
    assert_eq!(itu_ulaw(0xFE), 2);
    assert_eq!(itu_alaw(0xD5), 1);
    assert_eq!(itu_alaw(0xAA), 4032);
    assert_eq!(itu_alaw(0x2A), -4032);
    for c in 0..=255u8 {
        assert_eq!(i32::from(decode_ulaw(c)), 4 * itu_ulaw(c), "µ-law {c:#04x}");
        assert_eq!(i32::from(decode_alaw(c)), 8 * itu_alaw(c), "A-law {c:#04x}");
    }
}

#[test]
fn decode_tables_match_sox() {
    let u = s16le(&fixture("ulaw_decode.s16"));
    let a = s16le(&fixture("alaw_decode.s16"));
    for c in 0..=255u8 {
        assert_eq!(decode_ulaw(c), u[usize::from(c)], "µ-law {c:#04x}");
        assert_eq!(decode_alaw(c), a[usize::from(c)], "A-law {c:#04x}");
    }
}

#[test]
fn encoding_every_16_bit_value_matches_sox() {
    let ul = fixture("all16.ul");
    let al = fixture("all16.al");
    for (i, s) in (i16::MIN..=i16::MAX).enumerate() {
        assert_eq!(encode_ulaw(s), ul[i], "µ-law of {s}");
        assert_eq!(encode_alaw(s), al[i], "A-law of {s}");
    }
}

#[test]
fn multiples_of_8_fixture_matches_sox_bytes() {
    let (samples, rate) = wav_samples("speech_8k_m8.wav");
    assert_eq!(rate, 8000);
    assert!(samples.iter().all(|s| s % 8 == 0));
    let ul: Vec<u8> = samples.iter().map(|&s| encode_ulaw(s)).collect();
    let al: Vec<u8> = samples.iter().map(|&s| encode_alaw(s)).collect();
    assert_eq!(ul, fixture("speech_8k_m8.ul"));
    assert_eq!(al, fixture("speech_8k_m8.al"));
}

/// The acceptance check of `dialer prompt fixture.wav --codec pcmu --no-normalize --out x.ul`:
/// the prompt's concatenated payloads are byte-identical to sox's output. The fixture holds
/// 23 520 samples, a whole number of 10, 20 and 30 ms packets, so no padding is involved.
#[test]
fn prompt_payloads_equal_sox_output() {
    let wav = fixture("speech_8k_m8.wav");
    let settings = EncodeSettings {
        normalize: false,
        ..EncodeSettings::default()
    };
    for (codec, expected) in [
        (Codec::Pcmu, fixture("speech_8k_m8.ul")),
        (Codec::Pcma, fixture("speech_8k_m8.al")),
    ] {
        for ptime in [10, 20, 30] {
            let p = Prompt::from_bytes(&wav, codec, ptime, &settings).unwrap();
            assert!(p.payload_bytes() == &expected[..], "{codec} {ptime} ms");
            assert_eq!(p.frame_count(), 23520 / (8 * ptime as usize));
        }
    }
}

/// A last partial packet is padded with encoded silence (0xFF µ-law, 0xD5 A-law).
#[test]
fn last_packet_is_padded_with_silence() {
    let (samples, _) = wav_samples("speech_8k_m8.wav");
    let wav = codecs::wav::to_wav_bytes(&samples[..1000], 8000).unwrap();
    let settings = EncodeSettings {
        normalize: false,
        ..EncodeSettings::default()
    };
    for (codec, silence) in [(Codec::Pcmu, 0xFFu8), (Codec::Pcma, 0xD5u8)] {
        let p = Prompt::from_bytes(&wav, codec, 20, &settings).unwrap();
        assert_eq!(p.frame_count(), 7);
        let bytes = p.payload_bytes();
        assert_eq!(bytes.len(), 1120);
        assert!(bytes[1000..].iter().all(|&b| b == silence));
    }
}
