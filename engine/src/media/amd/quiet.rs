//! The end of a machine's greeting: once detection has said `machine`, a message left "after
//! the greeting" must wait until the recording is actually running. Without a beep, the
//! only sign is that the greeting stops: `after_greeting_silence_ms` of silence after the
//! verdict. The watcher continues the detector's voice meter (its learned noise floor) and its
//! sample count, so its time is on the same scale as the verdict's and the beep's.

use super::config::AmdConfig;
use super::level::{Framer, VoiceMeter, FRAMES_PER_SECOND};

/// Watches for the silence that ends a machine's greeting. Pure DSP like [`super::Amd`].
#[derive(Debug, Clone)]
pub struct GreetingEnd {
    framer: Framer,
    meter: VoiceMeter,
    /// Silence frames that end the greeting.
    needed: u32,
    /// Current run of silence frames.
    run: u32,
    /// Frames since the analysis started (the detector's frames, then these).
    frames: u32,
    done: bool,
}

impl GreetingEnd {
    /// A watcher for audio at `rate` Hz whose clock starts at `frames` 10 ms frames (where
    /// the detector decided), with the detector's meter.
    pub(crate) fn continuing(
        cfg_silence_ms: u32,
        rate: u32,
        meter: VoiceMeter,
        frames: u32,
    ) -> Self {
        GreetingEnd {
            framer: Framer::new(rate),
            meter,
            needed: (cfg_silence_ms * FRAMES_PER_SECOND).div_ceil(1000).max(1),
            run: 0,
            frames,
            done: false,
        }
    }

    /// A watcher from scratch (its clock at 0), for tests and callers without a detector.
    pub fn new(cfg: &AmdConfig, rate: u32) -> Self {
        let meter = VoiceMeter::new(cfg.silence_threshold, cfg.voice_above_noise_db);
        GreetingEnd::continuing(cfg.after_greeting_silence_ms, rate, meter, 0)
    }

    /// The next received samples; `Some(ms since the analysis started)` once, at the frame
    /// where the silence that ends the greeting began.
    pub fn push(&mut self, pcm: &[i16]) -> Option<u32> {
        if self.done {
            return None;
        }
        let GreetingEnd {
            framer,
            meter,
            needed,
            run,
            frames,
            ..
        } = self;
        let at = framer.push(pcm, |frame| {
            *frames += 1;
            if meter.is_voice(frame) {
                *run = 0;
                return None;
            }
            *run += 1;
            (*run >= *needed).then(|| (*frames - *run) * (1000 / FRAMES_PER_SECOND))
        })?;
        self.done = true;
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: u32, amp: f64) -> Vec<i16> {
        (0..ms * 8)
            .map(|n| ((f64::from(n) * 0.2).sin() * amp) as i16)
            .collect()
    }

    #[test]
    fn the_greeting_ends_where_its_silence_begins() {
        let cfg = AmdConfig::default(); // 800 ms of silence ends it
        let mut w = GreetingEnd::new(&cfg, 8000);
        // Speech with short pauses (words) does not end it.
        for _ in 0..4 {
            assert_eq!(w.push(&tone(400, 8000.0)), None);
            assert_eq!(w.push(&vec![0; 8 * 300]), None);
        }
        assert_eq!(w.push(&tone(200, 8000.0)), None); // speech until 3,000 ms
        let silence = vec![0i16; 8 * 1000];
        let mut found = None;
        for chunk in silence.chunks(160) {
            if let Some(at) = w.push(chunk) {
                assert!(found.is_none());
                found = Some(at);
            }
        }
        assert_eq!(found, Some(3000));
        // Once only.
        assert_eq!(w.push(&silence), None);
    }
}
