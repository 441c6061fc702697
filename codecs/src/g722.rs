//! G.722 sub-band ADPCM (64 kbit/s, mode 1), written for this crate from the ITU-T G.722
//! algorithm description.
//!
//! Why our own: no maintained stand-alone Rust crate exists (the only one on crates.io at the time
//! of writing, `ezk-g722` 0.1, is tied to an experimental media framework and drags it in).
//!
//! Structure (G.722 §3-§4): a 24-tap quadrature mirror filter (QMF) splits 16 kHz input into a
//! lower and a higher 8 kHz sub-band. The lower band is coded with 6-bit ADPCM (60-level
//! quantiser, of which the 4-bit core feeds the predictor so the bit stream stays embedded), the
//! higher band with 2-bit ADPCM. Each band has a backward-adaptive scale factor (blocks 3L/3H) and
//! a pole-zero predictor with two poles and six zeros (block 4). One byte (`ih << 6 | il`) carries
//! each pair of 16 kHz samples, which is why RTP says "8000 Hz" for G.722 (RFC 3551).
//!
//! Levels follow the usual 16-bit convention of telephony stacks: the lower band is fed
//! `(xA + xB) >> 14` of 16-bit input and the decoder output is the QMF sum `>> 11`, which gives
//! unity gain end to end.
//!
//! Interoperability is tested, not assumed: encoder and decoder are bit-exact with FFmpeg's G.722
//! on speech and on a full-scale stress signal (`tests/g722_interop.rs`).

/// QMF coefficients h(0)..h(23) (G.722 Table 11, scaled by 2^13; symmetric).
const QMF: [i32; 24] = [
    3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876, 3876, 951, -805, -210, 362, 32,
    -156, 12, 53, -11, -11, 3,
];

/// Lower-band 6-bit quantiser decision levels (×det >> 12), intervals 0..30.
const Q6: [i32; 31] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0,
];
/// Interval → 6-bit code, negative differences.
const ILN: [i32; 31] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4,
];
/// Interval → 6-bit code, positive differences.
const ILP: [i32; 31] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32,
];
/// 6-bit inverse quantiser outputs (the decoder's lower-band reconstruction at 64 kbit/s).
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// 4-bit inverse quantiser outputs (feed the lower-band predictor in encoder and decoder).
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
/// 4-bit code → magnitude class for the lower-band log scale factor.
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
/// Lower-band log scale factor increments.
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
/// Inverse log table: round(2048 · 2^(i/32)).
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
/// Higher-band 2-bit inverse quantiser outputs.
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
/// Higher-band code → magnitude class.
const RH2: [usize; 4] = [2, 1, 2, 1];
/// Higher-band log scale factor increments.
const WH: [i32; 3] = [0, -214, 798];
/// Higher-band quantiser: interval → code for negative / positive differences.
const IHN: [i32; 3] = [0, 1, 0];
const IHP: [i32; 3] = [0, 3, 2];

#[inline]
fn sat16(x: i32) -> i32 {
    x.clamp(-32768, 32767)
}

/// Sign as used by the sign-sign adaptation (0 for ≥ 0, -1 for < 0).
#[inline]
fn sgn(x: i32) -> i32 {
    if x < 0 {
        -1
    } else {
        0
    }
}

/// State of one sub-band's ADPCM loop: scale factor and pole-zero predictor (block 4).
#[derive(Debug, Clone, Default)]
struct Band {
    /// Signal estimate (predictor output) s.
    s: i32,
    /// Pole section output.
    sp: i32,
    /// Zero section output.
    sz: i32,
    /// Reconstructed signals r(n), r(n-1), r(n-2).
    r: [i32; 3],
    /// Pole coefficients a1, a2 (index 0 unused).
    a: [i32; 3],
    /// Updated pole coefficients.
    ap: [i32; 3],
    /// Partially reconstructed signals p(n), p(n-1), p(n-2).
    p: [i32; 3],
    /// Quantised differences d(n)..d(n-6).
    d: [i32; 7],
    /// Zero coefficients b1..b6 (index 0 unused).
    b: [i32; 7],
    /// Updated zero coefficients.
    bp: [i32; 7],
    /// Log scale factor.
    nb: i32,
    /// Scale factor.
    det: i32,
}

impl Band {
    fn new(det: i32) -> Self {
        Band {
            det,
            ..Default::default()
        }
    }

    /// Block 3L/3H: log scale factor adaptation and conversion to the linear scale factor.
    fn adapt_scale(&mut self, increment: i32, nb_max: i32, shift_base: i32) {
        let wd = (self.nb * 32512) >> 15;
        self.nb = (wd + increment).clamp(0, nb_max);
        let wd1 = ((self.nb >> 6) & 31) as usize;
        let wd2 = shift_base - (self.nb >> 11);
        let wd3 = if wd2 < 0 {
            ILB[wd1] << -wd2
        } else {
            ILB[wd1] >> wd2
        };
        self.det = wd3 << 2;
    }

    /// Block 4: reconstruct, adapt the pole and zero coefficients (sign-sign algorithm with
    /// leakage), shift the delay lines and compute the next signal estimate.
    fn predict(&mut self, d: i32) {
        // RECONS and PARREC
        self.d[0] = d;
        self.r[0] = sat16(self.s + d);
        self.p[0] = sat16(self.sz + d);

        // UPPOL2: second pole coefficient
        let sg0 = sgn(self.p[0]);
        let sg1 = sgn(self.p[1]);
        let sg2 = sgn(self.p[2]);
        let wd1 = sat16(self.a[1] << 2);
        let wd2 = if sg0 == sg1 { -wd1 } else { wd1 }.min(32767);
        let mut wd3 = (wd2 >> 7) + if sg0 == sg2 { 128 } else { -128 };
        wd3 += (self.a[2] * 32512) >> 15;
        self.ap[2] = wd3.clamp(-12288, 12288);

        // UPPOL1: first pole coefficient, limited by the stability bound 15360 - |a2|
        let wd1 = if sg0 == sg1 { 192 } else { -192 };
        let wd2 = (self.a[1] * 32640) >> 15;
        let lim = sat16(15360 - self.ap[2]);
        self.ap[1] = sat16(wd1 + wd2).clamp(-lim, lim);

        // UPZERO: six zero coefficients
        let step = if d == 0 { 0 } else { 128 };
        let sgd = sgn(d);
        for i in 1..7 {
            let w = if sgn(self.d[i]) == sgd { step } else { -step };
            let leak = (self.b[i] * 32640) >> 15;
            self.bp[i] = sat16(w + leak);
        }

        // DELAYA: shift delay lines, adopt new coefficients
        for i in (1..7).rev() {
            self.d[i] = self.d[i - 1];
            self.b[i] = self.bp[i];
        }
        for i in (1..3).rev() {
            self.r[i] = self.r[i - 1];
            self.p[i] = self.p[i - 1];
            self.a[i] = self.ap[i];
        }

        // FILTEP: pole section
        let wd1 = (self.a[1] * sat16(self.r[1] + self.r[1])) >> 15;
        let wd2 = (self.a[2] * sat16(self.r[2] + self.r[2])) >> 15;
        self.sp = sat16(wd1 + wd2);

        // FILTEZ: zero section
        let mut sz = 0;
        for i in (1..7).rev() {
            sz += (self.b[i] * sat16(self.d[i] + self.d[i])) >> 15;
        }
        self.sz = sat16(sz);

        // PREDIC
        self.s = sat16(self.sp + self.sz);
    }

    /// Lower band, shared by encoder and decoder: adapt from the 6-bit code's 4-bit core.
    fn update_low(&mut self, il6: usize) {
        let ril = il6 >> 2;
        let dlow = (self.det * QM4[ril]) >> 15;
        self.adapt_scale(WL[RL42[ril]], 18432, 8);
        self.predict(dlow);
    }

    /// Higher band, shared by encoder and decoder. Returns the quantised difference.
    fn update_high(&mut self, ih: usize) -> i32 {
        let dhigh = (self.det * QM2[ih]) >> 15;
        self.adapt_scale(WH[RH2[ih]], 22528, 10);
        self.predict(dhigh);
        dhigh
    }
}

/// The state G.722 keeps per stream on either side: the adaptive quantisers of both sub-bands
/// and the QMF delay line (G.722 §3.6 gives encoder and decoder the same initial values).
#[derive(Debug, Clone)]
struct Subbands {
    low: Band,
    high: Band,
    x: [i32; 24],
}

impl Default for Subbands {
    fn default() -> Self {
        Subbands {
            low: Band::new(32),
            high: Band::new(8),
            x: [0; 24],
        }
    }
}

/// G.722 encoder state (one per stream): 16 kHz 16-bit samples in, one byte per sample pair out.
#[derive(Debug, Clone, Default)]
pub struct Encoder(Subbands);

impl Encoder {
    /// A fresh encoder (initial state of G.722 §3.6).
    pub fn new() -> Self {
        Self::default()
    }

    /// Encodes one pair of consecutive 16 kHz samples into one byte.
    #[inline]
    pub fn encode_pair(&mut self, first: i16, second: i16) -> u8 {
        // Transmit QMF: x[23] is the newest sample.
        self.0.x.copy_within(2.., 0);
        self.0.x[22] = i32::from(first);
        self.0.x[23] = i32::from(second);
        let mut xa = 0; // odd taps (incl. the newest sample's even coefficient by symmetry)
        let mut xb = 0;
        for i in 0..12 {
            xb += self.0.x[2 * i] * QMF[2 * i];
            xa += self.0.x[2 * i + 1] * QMF[2 * i + 1];
        }
        let xlow = (xa + xb) >> 14;
        let xhigh = (xa - xb) >> 14;

        // Lower band: block 1L (difference and 6-bit quantiser)
        let el = sat16(xlow - self.0.low.s);
        let wd = if el >= 0 { el } else { -(el + 1) };
        let mut mil = 1;
        while mil < 30 {
            if wd < (Q6[mil] * self.0.low.det) >> 12 {
                break;
            }
            mil += 1;
        }
        let il = if el < 0 { ILN[mil] } else { ILP[mil] } as usize;
        self.0.low.update_low(il);

        // Higher band: block 1H (2-bit quantiser)
        let eh = sat16(xhigh - self.0.high.s);
        let wd = if eh >= 0 { eh } else { -(eh + 1) };
        let mih = if wd >= (564 * self.0.high.det) >> 12 {
            2
        } else {
            1
        };
        let ih = if eh < 0 { IHN[mih] } else { IHP[mih] } as usize;
        self.0.high.update_high(ih);

        ((ih << 6) | il) as u8
    }

    /// Encodes 16 kHz samples (an odd trailing sample is paired with silence), appending one byte
    /// per pair to `out`.
    pub fn encode(&mut self, samples: &[i16], out: &mut Vec<u8>) {
        let mut it = samples.chunks(2);
        for pair in &mut it {
            let second = pair.get(1).copied().unwrap_or(0);
            out.push(self.encode_pair(pair[0], second));
        }
    }
}

/// G.722 decoder state (one per stream): one byte in, two 16 kHz samples out.
#[derive(Debug, Clone, Default)]
pub struct Decoder(Subbands);

impl Decoder {
    /// A fresh decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one byte into two consecutive 16 kHz samples.
    #[inline]
    pub fn decode_byte(&mut self, code: u8) -> [i16; 2] {
        let il = usize::from(code & 0x3F);
        let ih = usize::from(code >> 6);

        // Lower band: 6-bit inverse quantiser for the output, 4-bit core for adaptation.
        let wd = (self.0.low.det * QM6[il]) >> 15;
        let rlow = (self.0.low.s + wd).clamp(-16384, 16383);
        self.0.low.update_low(il);

        // Higher band
        let s_high = self.0.high.s;
        let dhigh = self.0.high.update_high(ih);
        let rhigh = (dhigh + s_high).clamp(-16384, 16383);

        // Receive QMF: xd = rl - rh feeds the even taps (first output), xs = rl + rh the odd taps.
        self.0.x.copy_within(2.., 0);
        self.0.x[22] = rlow + rhigh;
        self.0.x[23] = rlow - rhigh;
        let mut out1 = 0; // Σ h(2i) · xd(n - i)
        let mut out2 = 0; // Σ h(2i+1) · xs(n - i)
        for i in 0..12 {
            out1 += QMF[2 * i] * self.0.x[23 - 2 * i];
            out2 += QMF[2 * i + 1] * self.0.x[22 - 2 * i];
        }
        [sat16(out1 >> 11) as i16, sat16(out2 >> 11) as i16]
    }

    /// Decodes a payload, appending two samples per byte to `out`.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        out.reserve(payload.len() * 2);
        for &b in payload {
            out.extend_from_slice(&self.decode_byte(b));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_consistent() {
        // Inverse log table is 2048 · 2^(i/32).
        for (i, &v) in ILB.iter().enumerate() {
            let exact = 2048.0 * 2f64.powf(i as f64 / 32.0);
            assert!((f64::from(v) - exact).abs() <= 1.0, "ILB[{i}]");
        }
        // QMF symmetric, coefficients sum to 2^13.
        for i in 0..12 {
            assert_eq!(QMF[i], QMF[23 - i]);
        }
        assert_eq!(QMF.iter().sum::<i32>(), 8192);
        // Every 6-bit reconstruction value lies inside its decision interval (scaled by 8).
        for mil in 1..=30 {
            let lo = Q6[mil - 1] * 8;
            let hi = if mil < 30 { Q6[mil] * 8 } else { i32::MAX };
            let pos = QM6[ILP[mil] as usize];
            let neg = QM6[ILN[mil] as usize];
            assert!(pos >= lo && pos < hi, "positive interval {mil}: {pos}");
            assert_eq!(neg, -pos, "negative interval {mil}");
        }
        // The 4-bit levels are the 6-bit decision levels of every fourth interval.
        for (k, &q) in QM4[8..15].iter().enumerate() {
            assert!(Q6.iter().any(|&d| d * 8 == q), "QM4 {k}: {q}");
        }
    }

    #[test]
    fn silence_stays_silent() {
        let mut e = Encoder::new();
        let mut bytes = Vec::new();
        e.encode(&[0i16; 320], &mut bytes);
        let mut d = Decoder::new();
        let mut out = Vec::new();
        d.decode(&bytes, &mut out);
        assert!(out.iter().all(|&s| s.abs() < 64), "{out:?}");
    }

    #[test]
    fn hostile_codes_do_not_panic() {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        let junk: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect();
        d.decode(&junk, &mut out);
        d.decode(&[0xFF; 10_000], &mut out);
        d.decode(&[0x00; 10_000], &mut out);
        assert_eq!(out.len(), 240_000);
    }
}
