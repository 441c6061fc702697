//! Cutting received audio into 10 ms frames and judging each frame's loudness against the
//! line's noise floor: the shared front end of the machine and beep detectors.

/// Frames per second: 10 ms frames are short enough to time words and silences, long enough
/// to measure a frame's level and a tone's pitch.
pub(crate) const FRAMES_PER_SECOND: u32 = 100;

/// Lowest level the meters report (digital silence), in dBFS.
pub(crate) const FLOOR_DB: f32 = -100.0;

/// Collects samples pushed in any chunk size into whole frames.
#[derive(Debug, Clone)]
pub(crate) struct Framer {
    buf: Vec<i16>,
    fill: usize,
}

impl Framer {
    /// Frames of 10 ms at `rate` Hz (at least one sample, so a nonsense rate cannot stall).
    pub(crate) fn new(rate: u32) -> Self {
        let len = (rate / FRAMES_PER_SECOND).max(1) as usize;
        Framer {
            buf: vec![0; len],
            fill: 0,
        }
    }

    /// Samples in one frame.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Calls `f` on every frame completed by `pcm`, in order, until it returns `Some`; the rest
    /// of `pcm` is dropped then (the caller has decided). Incomplete tails wait for the next push.
    pub(crate) fn push<T>(
        &mut self,
        mut pcm: &[i16],
        mut f: impl FnMut(&[i16]) -> Option<T>,
    ) -> Option<T> {
        let len = self.buf.len();
        if self.fill > 0 {
            let take = (len - self.fill).min(pcm.len());
            self.buf[self.fill..self.fill + take].copy_from_slice(&pcm[..take]);
            self.fill += take;
            pcm = &pcm[take..];
            if self.fill < len {
                return None;
            }
            self.fill = 0;
            if let Some(out) = f(&self.buf) {
                return Some(out);
            }
        }
        let mut chunks = pcm.chunks_exact(len);
        for frame in chunks.by_ref() {
            if let Some(out) = f(frame) {
                return Some(out);
            }
        }
        let rest = chunks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.fill = rest.len();
        None
    }
}

/// The RMS level of a frame in dBFS ([`FLOOR_DB`] for digital silence).
pub(crate) fn frame_db(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return FLOOR_DB;
    }
    let sum: i64 = frame.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
    let mean = sum as f64 / frame.len() as f64;
    if mean < 1.0 {
        return FLOOR_DB;
    }
    let db = 10.0 * (mean / (32768.0 * 32768.0)).log10();
    (db as f32).max(FLOOR_DB)
}

/// An RMS amplitude on the 16-bit scale in dBFS.
pub(crate) fn amplitude_db(amplitude: u16) -> f32 {
    if amplitude == 0 {
        return FLOOR_DB;
    }
    (20.0 * (f32::from(amplitude) / 32768.0).log10()).max(FLOOR_DB)
}

/// Which share of the frames heard so far lies at or below the noise floor: speech has pauses
/// and weak sounds, so the quietest tenth of a call is its background, even in a greeting that
/// never stops.
const FLOOR_QUANTILE: f32 = 0.10;

/// The line's background level, as a low quantile of every frame level heard so far (a
/// histogram of 1 dB bins from [`FLOOR_DB`] to 0 dBFS, so each update is a fixed small cost).
#[derive(Debug, Clone)]
pub(crate) struct NoiseFloor {
    bins: [u32; 100],
    count: u32,
}

impl NoiseFloor {
    pub(crate) fn new() -> Self {
        NoiseFloor {
            bins: [0; 100],
            count: 0,
        }
    }

    /// Adds a frame's level and returns the floor estimate, in dBFS.
    pub(crate) fn push(&mut self, db: f32) -> f32 {
        let bin = ((db - FLOOR_DB) as usize).min(self.bins.len() - 1);
        self.bins[bin] += 1;
        self.count += 1;
        let target = ((self.count as f32) * FLOOR_QUANTILE).ceil().max(1.0) as u32;
        let mut seen = 0;
        for (i, &n) in self.bins.iter().enumerate() {
            seen += n;
            if seen >= target {
                return FLOOR_DB + i as f32 + 0.5;
            }
        }
        0.0
    }
}

/// Voice or silence per frame: louder than both the fixed threshold and the noise floor plus a
/// margin.
#[derive(Debug, Clone)]
pub(crate) struct VoiceMeter {
    threshold_db: f32,
    margin_db: f32,
    floor: NoiseFloor,
}

impl VoiceMeter {
    pub(crate) fn new(silence_threshold: u16, margin_db: f32) -> Self {
        VoiceMeter {
            threshold_db: amplitude_db(silence_threshold),
            margin_db,
            floor: NoiseFloor::new(),
        }
    }

    /// Whether `frame` holds voice (anything clearly above the background).
    pub(crate) fn is_voice(&mut self, frame: &[i16]) -> bool {
        let db = frame_db(frame);
        let floor = self.floor.push(db);
        db > self.threshold_db && db > floor + self.margin_db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_whole_whatever_the_chunking() {
        let pcm: Vec<i16> = (0..1000).map(|i| i as i16).collect();
        let mut framer = Framer::new(8000);
        assert_eq!(framer.len(), 80);
        let mut starts = Vec::new();
        for chunk in pcm.chunks(33) {
            framer.push(chunk, |f: &[i16]| {
                assert_eq!(f.len(), 80);
                starts.push(f[0]);
                None::<()>
            });
        }
        let expected: Vec<i16> = (0..12).map(|i| i * 80).collect();
        assert_eq!(starts, expected);
    }

    #[test]
    fn framer_stops_where_asked() {
        let mut framer = Framer::new(8000);
        let mut n = 0;
        let out = framer.push(&[0; 800], |_| {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(out, Some(3));
    }

    #[test]
    fn levels() {
        assert_eq!(frame_db(&[0; 80]), FLOOR_DB);
        let full: Vec<i16> = (0..80)
            .map(|i| if i % 2 == 0 { 32767 } else { -32767 })
            .collect();
        assert!(frame_db(&full).abs() < 0.01);
        assert!((amplitude_db(256) + 42.1).abs() < 0.1);
        assert_eq!(frame_db(&[]), FLOOR_DB);
    }

    #[test]
    fn floor_is_the_quiet_tenth() {
        let mut floor = NoiseFloor::new();
        let mut last = 0.0;
        for i in 0..100 {
            let db = if i % 5 == 0 { -60.0 } else { -20.0 };
            last = floor.push(db);
        }
        assert!((last + 59.5).abs() < 0.01, "{last}");
    }
}
