//! The voicemail beep: a steady tone between 300 Hz and 2 kHz lasting at least 150 ms.
//!
//! A pure tone obeys `x[n] = 2cos(w)·x[n-1] − x[n-2]`. Per 10 ms frame the detector fits that
//! one coefficient by least squares: the fit gives the tone's frequency, and what the fit leaves
//! over (the residual) measures how far the frame is from a single tone. Speech has several
//! harmonics and moving formants, so it leaves a large residual or drifts in pitch; a beep leaves
//! almost nothing at one steady frequency. A few multiplications per sample.

use super::level::{frame_db, Framer, FRAMES_PER_SECOND};

/// Lowest and highest beep frequency, in Hz.
const MIN_HZ: f32 = 300.0;
const MAX_HZ: f32 = 2000.0;
/// Shortest beep, in ms.
const MIN_BEEP_MS: u32 = 150;
/// Quietest beep, in dBFS (voicemail beeps are loud; this keeps line noise out).
const MIN_LEVEL_DB: f32 = -45.0;
/// Largest residual share of a tonal frame: a tone with white noise 16 dB below it still passes.
const MAX_RESIDUAL: f32 = 0.12;
/// How far a frame's frequency may drift from the tone's so far (relative).
const MAX_DRIFT: f32 = 0.03;
/// Non-tonal frames bridged inside a tone (a noise burst or a codec glitch).
const MAX_GAP_FRAMES: u32 = 1;

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
}

impl Run {
    fn mean_hz(&self) -> f32 {
        self.hz_sum / self.frames as f32
    }
}

/// Finds beeps in the callee's audio; reports each one when it ends.
#[derive(Debug, Clone)]
pub struct BeepDetector {
    framer: Framer,
    rate: f32,
    frames: u64,
    run: Option<Run>,
    min_frames: u32,
    /// Samples averaged into one: the tone fit runs near 8 kHz whatever the codec's rate (at
    /// 48 kHz any smooth sound would fit a two-tap predictor).
    step: usize,
    /// The frame brought down to about 8 kHz, reused.
    scratch: Vec<f64>,
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
            step,
            scratch,
        } = self;
        let frame_ms = framer.len() as f32 * 1000.0 / *rate;
        let fit_rate = *rate / *step as f32;
        framer.push(pcm, |frame| {
            *frames += 1;
            let hz = if frame_db(frame) < MIN_LEVEL_DB {
                None
            } else {
                decimate(frame, *step, scratch);
                tone_hz(scratch, fit_rate)
            };
            let ended = follow(run, hz, *frames)?;
            (ended.frames >= *min_frames)
                .then(|| (ended.end_frame as f32 * frame_ms).round() as u32)
        })
    }
}

/// Extends, starts or ends the followed tone with this frame's pitch (`None`: not tonal).
/// Returns the run that just ended, if any.
fn follow(run: &mut Option<Run>, hz: Option<f32>, frame: u64) -> Option<Run> {
    match (run.as_mut(), hz) {
        (Some(r), Some(hz)) if (hz - r.mean_hz()).abs() <= r.mean_hz() * MAX_DRIFT => {
            r.hz_sum += hz;
            r.frames += 1;
            r.gap = 0;
            r.end_frame = frame;
            None
        }
        (Some(r), None) if r.gap < MAX_GAP_FRAMES => {
            r.gap += 1;
            None
        }
        (_, hz) => {
            let ended = run.take();
            *run = hz.map(|hz| Run {
                hz_sum: hz,
                frames: 1,
                gap: 0,
                end_frame: frame,
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

/// The frequency of samples (at `rate` Hz) that are one steady tone in the beep band, else
/// `None`.
fn tone_hz(x: &[f64], rate: f32) -> Option<f32> {
    if x.len() < 8 {
        return None;
    }
    let (mut num, mut den, mut energy) = (0f64, 0f64, 0f64);
    for n in 2..x.len() {
        let (a, b, c) = (x[n], x[n - 1], x[n - 2]);
        num += (a + c) * b;
        den += b * b;
        energy += a * a;
    }
    if den <= 0.0 || energy <= 0.0 {
        return None;
    }
    let cos = (num / (2.0 * den)).clamp(-1.0, 1.0);
    let mut residual = 0f64;
    for n in 2..x.len() {
        let e = x[n] - 2.0 * cos * x[n - 1] + x[n - 2];
        residual += e * e;
    }
    if residual / energy > f64::from(MAX_RESIDUAL) {
        return None;
    }
    let hz = (cos.acos() as f32) * rate / std::f32::consts::TAU;
    (MIN_HZ..=MAX_HZ).contains(&hz).then_some(hz)
}
