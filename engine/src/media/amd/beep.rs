//! The voicemail beep: a steady tone between 300 Hz and 2 kHz lasting at least 150 ms.
//!
//! A pure tone obeys `x[n] = 2cos(w)·x[n-1] − x[n-2]`. Every 10 ms the detector fits that
//! one coefficient by least squares over the last 20 ms: the fit gives the tone's frequency, and
//! what it leaves over (the residual) measures how far the sound is from a single tone. Speech
//! has several harmonics and moving formants, so it leaves a large residual or drifts in pitch; a
//! beep leaves almost nothing at one steady frequency. The line's noise floor is measured and
//! taken out of the fit, so a beep over background noise is still found. A few multiplications
//! per sample.

use super::level::{frame_db, Framer, NoiseFloor, FRAMES_PER_SECOND};

/// Lowest and highest beep frequency, in Hz.
const MIN_HZ: f32 = 300.0;
const MAX_HZ: f32 = 2000.0;
/// Shortest beep, in ms.
const MIN_BEEP_MS: u32 = 150;
/// Quietest beep, in dBFS (voicemail beeps are loud; this keeps line noise out).
const MIN_LEVEL_DB: f32 = -45.0;
/// Largest share of a frame's energy the tone fit may leave over, beyond what the line's noise
/// explains: G.711 leaves well under 0.1 %, a vowel dominated by one harmonic 2 % or more.
const MAX_RESIDUAL: f64 = 0.01;
/// Largest swing of frame levels within one tone, in dB: a beep is steady, a sung-out vowel
/// swells and fades.
const MAX_LEVEL_SWING_DB: f32 = 4.0;
/// How much of the residual the measured line noise may explain, as a multiple of what white
/// noise at the floor's level leaves through the predictor: noise does not hide a beep.
const NOISE_ALLOWANCE: f64 = 1.5;
/// Least tone-to-noise ratio (power) of a tonal frame.
const MIN_TONE_TO_NOISE: f64 = 3.0;
/// Frames (10 ms) each tone fit covers.
const WINDOW_FRAMES: usize = 2;
/// A frame this close to the floor (dB) is taken as its own floor: the floor is then the tone
/// itself (a call that starts with a beep), not noise.
const FLOOR_SELF_DB: f32 = 6.0;
/// How far a frame's frequency may drift from the tone's so far (relative).
const MAX_DRIFT: f32 = 0.03;
/// The same in Hz for low tones, where a 10 ms frame holds few cycles and the fitted frequency
/// wanders more.
const MAX_DRIFT_HZ: f32 = 25.0;
// Over noise the fitted frequency wanders too (coloured noise biases it by varying amounts):
// the drift allowed grows by the noise's share of the frame's power (at most a quarter).
/// Non-tonal frames bridged inside a tone (a noise burst or a codec glitch).
const MAX_GAP_FRAMES: u32 = 2;

/// The tone being followed.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Sum of the tonal frames' frequencies, for the mean.
    hz_sum: f32,
    frames: u32,
    /// Non-tonal frames since the last tonal one.
    gap: u32,
    /// Frame index just after the last tonal frame.
    end_frame: u64,
    /// Quietest and loudest tonal frame, in dBFS.
    db_min: f32,
    db_max: f32,
}

impl Run {
    fn mean_hz(&self) -> f32 {
        self.hz_sum / self.frames as f32
    }

    /// Whether a tonal frame continues this tone.
    fn continues(&self, t: &Tonal) -> bool {
        let (hz, db) = (t.hz, t.db);
        let mean = self.mean_hz();
        (hz - mean).abs() <= (mean * (MAX_DRIFT + t.noise_share)).max(MAX_DRIFT_HZ)
            && self.db_max.max(db) - self.db_min.min(db) <= MAX_LEVEL_SWING_DB
    }
}

/// What the fit found in a tonal frame.
#[derive(Debug, Clone, Copy)]
struct Tonal {
    hz: f32,
    /// The frame's level, dBFS.
    db: f32,
    /// The line noise's share of the frame's power (0–0.25).
    noise_share: f32,
}

/// Finds beeps in the callee's audio; reports each one when it ends.
#[derive(Debug, Clone)]
pub struct BeepDetector {
    framer: Framer,
    rate: f32,
    frames: u64,
    run: Option<Run>,
    min_frames: u32,
    /// The line's background level, so noise neither biases the fit nor hides a beep.
    floor: NoiseFloor,
    /// Samples averaged into one: the tone fit runs near 8 kHz whatever the codec's rate (at
    /// 48 kHz any smooth sound would fit a two-tap predictor).
    step: usize,
    /// The frame brought down to about 8 kHz, reused.
    scratch: Vec<f64>,
    /// The last two samples before the frame, so the fit runs across frame edges.
    tail: [f64; 2],
    /// The previous frames' sums (a ring): each fit covers [`WINDOW_FRAMES`] frames for a
    /// steadier estimate of low tones and tones over noise, while runs are still timed to the
    /// 10 ms frame.
    prev: [Sums; WINDOW_FRAMES - 1],
}

impl BeepDetector {
    /// A detector for audio at `rate` Hz.
    pub fn new(rate: u32) -> Self {
        let framer = Framer::new(rate);
        let step = (rate / 8000).max(1) as usize;
        BeepDetector {
            rate: rate.max(1) as f32,
            step,
            scratch: Vec::with_capacity(framer.len() / step + 1),
            frames: 0,
            run: None,
            floor: NoiseFloor::new(),
            tail: [0.0; 2],
            prev: [Sums::default(); WINDOW_FRAMES - 1],
            min_frames: (MIN_BEEP_MS * FRAMES_PER_SECOND).div_ceil(1000),
            framer,
        }
    }

    /// Analyses the next samples; returns, once per beep, the time its tone ended (ms of audio
    /// from the start). A second beep ending in the same push is reported by the next push
    /// (one frame later at most, so callers lose nothing that matters).
    pub fn push(&mut self, pcm: &[i16]) -> Option<u32> {
        let BeepDetector {
            framer,
            rate,
            frames,
            run,
            min_frames,
            floor,
            step,
            scratch,
            tail,
            prev,
        } = self;
        let frame_ms = framer.len() as f32 * 1000.0 / *rate;
        let fit_rate = *rate / *step as f32;
        framer.push(pcm, |frame| {
            *frames += 1;
            let db = frame_db(frame);
            let floor_db = floor.push(db);
            decimate(frame, *step, scratch);
            let sums = Sums::over(scratch, tail);
            let hz = if db < MIN_LEVEL_DB {
                None
            } else {
                // Power per sample of the noise, on the 16-bit scale, after averaging `step`.
                let noise = if floor_db + FLOOR_SELF_DB < db {
                    10f64.powf(f64::from(floor_db) / 10.0) * 32768.0 * 32768.0
                } else {
                    0.0
                };
                let window = prev.iter().fold(sums, |acc, p| acc + *p);
                tone_hz(&window, fit_rate, noise / *step as f64)
            };
            prev[(*frames % prev.len() as u64) as usize] = sums;
            let tonal = hz.map(|(hz, noise_share)| Tonal {
                hz,
                db,
                noise_share,
            });
            let ended = follow(run, tonal, *frames)?;
            (ended.frames >= *min_frames)
                .then(|| (ended.end_frame as f32 * frame_ms).round() as u32)
        })
    }
}

/// Extends, starts or ends the followed tone with this frame's pitch and level (`None`: not
/// tonal). Returns the run that just ended, if any.
fn follow(run: &mut Option<Run>, tone: Option<Tonal>, frame: u64) -> Option<Run> {
    match (run.as_mut(), tone) {
        (Some(r), Some(t)) if r.continues(&t) => {
            let (hz, db) = (t.hz, t.db);
            r.hz_sum += hz;
            r.frames += 1;
            r.gap = 0;
            r.end_frame = frame;
            r.db_min = r.db_min.min(db);
            r.db_max = r.db_max.max(db);
            None
        }
        (Some(r), None) if r.gap < MAX_GAP_FRAMES => {
            r.gap += 1;
            None
        }
        (_, tone) => {
            let ended = run.take();
            *run = tone.map(|t| Run {
                hz_sum: t.hz,
                frames: 1,
                gap: 0,
                end_frame: frame,
                db_min: t.db,
                db_max: t.db,
            });
            ended
        }
    }
}

/// Averages each `step` samples of `frame` into one, into `out`.
fn decimate(frame: &[i16], step: usize, out: &mut Vec<f64>) {
    out.clear();
    out.extend(
        frame
            .chunks_exact(step)
            .map(|c| c.iter().map(|&s| f64::from(s)).sum::<f64>() / step as f64),
    );
}

/// The sums of products the tone fit needs over some samples, with `a = x[n]`, `b = x[n-1]`,
/// `d = x[n-2]`. They add up across frames, so a fit over two frames costs one pass over each.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    aa: f64,
    bb: f64,
    dd: f64,
    /// Σ (a + d)·b: the fit's numerator.
    adb: f64,
    ad: f64,
    count: f64,
}

impl std::ops::Add for Sums {
    type Output = Sums;
    fn add(self, o: Sums) -> Sums {
        Sums {
            aa: self.aa + o.aa,
            bb: self.bb + o.bb,
            dd: self.dd + o.dd,
            adb: self.adb + o.adb,
            ad: self.ad + o.ad,
            count: self.count + o.count,
        }
    }
}

impl Sums {
    /// The sums over `x`, continuing from the two samples before it (`tail`, updated).
    fn over(x: &[f64], tail: &mut [f64; 2]) -> Sums {
        let mut s = Sums::default();
        let [mut d, mut b] = *tail;
        for &a in x {
            s.aa += a * a;
            s.bb += b * b;
            s.dd += d * d;
            s.adb += (a + d) * b;
            s.ad += a * d;
            d = b;
            b = a;
        }
        s.count = x.len() as f64;
        *tail = [d, b];
        s
    }
}

/// The frequency of the samples summed in `s` (at `rate` Hz) when they are one steady tone in
/// the beep band over background noise of `noise` power per sample, with the noise's share of
/// their power; else `None`.
fn tone_hz(s: &Sums, rate: f32, noise: f64) -> Option<(f32, f32)> {
    // White noise adds its power to `bb` but nothing to the numerator: take it out, or the fit
    // would pull the frequency towards a quarter of the rate.
    let noise_sum = noise * s.count;
    if s.aa <= noise_sum * (1.0 + MIN_TONE_TO_NOISE) {
        return None;
    }
    let den = s.bb - noise_sum;
    if den <= 0.0 {
        return None;
    }
    let cos = (s.adb / (2.0 * den)).clamp(-1.0, 1.0);
    // Σ (a − 2cos·b + d)², expanded so that it comes from the sums.
    let residual = s.aa + 4.0 * cos * cos * s.bb + s.dd - 4.0 * cos * s.adb + 2.0 * s.ad;
    let noise_residual = NOISE_ALLOWANCE * (2.0 + 4.0 * cos * cos) * noise_sum;
    if residual > MAX_RESIDUAL * s.aa + noise_residual {
        return None;
    }
    let hz = (cos.acos() as f32) * rate / std::f32::consts::TAU;
    (MIN_HZ..=MAX_HZ)
        .contains(&hz)
        .then_some((hz, (noise_sum / s.aa) as f32))
}
