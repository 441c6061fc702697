//! What listens for answering machines on one call's decoded audio: the machine decision
//! (once), the beeps (for [`MAX_BEEP_WATCH_MS`]), and after a `machine` verdict the end of
//! the greeting (once), each sent as a [`MediaEvent`] when found.

use super::{EventTx, MediaEvent};
use crate::media::amd::{Amd, AmdConfig, AmdVerdict, BeepDetector, GreetingEnd};
use crate::media::tap::MAX_BEEP_WATCH_MS;

/// A call's running detectors (none running: nothing to feed).
#[derive(Default)]
pub(super) struct Detectors {
    amd: Option<Amd>,
    beep: Option<BeepDetector>,
    /// Samples of audio the beep detector still watches.
    beep_left: u64,
    /// Runs from a `machine` verdict until the greeting's silence.
    greeting_end: Option<GreetingEnd>,
}

impl Detectors {
    /// Starts (or restarts) the analysis of audio at `rate` Hz.
    pub(super) fn start(&mut self, cfg: &AmdConfig, rate: u32) {
        self.amd = Some(Amd::new(cfg, rate));
        self.beep = Some(BeepDetector::new(rate));
        self.beep_left = u64::from(rate) * u64::from(MAX_BEEP_WATCH_MS) / 1000;
        self.greeting_end = None;
    }

    /// Whether any detector still runs.
    pub(super) fn running(&self) -> bool {
        self.amd.is_some() || self.beep.is_some() || self.greeting_end.is_some()
    }

    /// Feeds the call's latest audio (`gap` zero samples, then `pcm`) and sends what the
    /// detectors find.
    pub(super) fn feed(&mut self, events: &EventTx, token: u64, gap: usize, pcm: &[i16]) {
        const ZEROS: [i16; 960] = [0; 960];
        let mut gap_left = gap;
        let zeros = std::iter::from_fn(|| {
            let n = gap_left.min(ZEROS.len());
            gap_left -= n;
            (n > 0).then(|| &ZEROS[..n])
        });
        for chunk in zeros.chain(std::iter::once(pcm)) {
            self.chunk(events, token, chunk);
            if !self.running() {
                break;
            }
        }
    }

    fn chunk(&mut self, events: &EventTx, token: u64, chunk: &[i16]) {
        if let Some(g) = self.greeting_end.as_mut() {
            if let Some(at_ms) = g.push(chunk) {
                self.greeting_end = None;
                events.send(MediaEvent::GreetingEnd { token, at_ms });
            }
        }
        if let Some(a) = self.amd.as_mut() {
            if let Some(decision) = a.push(chunk) {
                if decision.verdict == AmdVerdict::Machine {
                    self.greeting_end = Some(a.greeting_end());
                }
                self.amd = None;
                events.send(MediaEvent::Amd { token, decision });
            }
        }
        if let Some(b) = self.beep.as_mut() {
            if let Some(at_ms) = b.push(chunk) {
                events.send(MediaEvent::Beep { token, at_ms });
            }
            self.beep_left = self.beep_left.saturating_sub(chunk.len() as u64);
            if self.beep_left == 0 {
                self.beep = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(rx: &mut tokio::sync::mpsc::UnboundedReceiver<MediaEvent>) -> Vec<MediaEvent> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    /// The detectors see the gap as zeros (their clock is the sender's), the decision is sent
    /// once and the detector dropped, a beep is sent where it ends, and the beep watch ends
    /// after its minute. Prints what analysis costs per 20 ms packet (not asserted).
    #[test]
    fn feed_fills_gaps_and_ends_its_watches() {
        let (tx, mut rx) = EventTx::channel();
        let mut d = Detectors::default();
        d.start(&AmdConfig::default(), 8000);
        let tone: Vec<i16> = (0..160)
            .map(|i| ((i as f32 * std::f32::consts::PI / 4.0).sin() * 8000.0) as i16)
            .collect();
        let silence = [0i16; 160];
        // 1 s of silence sent as one packet after a 7,840-sample gap, then a 400 ms beep.
        d.feed(&tx, 1, 7840, &silence);
        let t = std::time::Instant::now();
        for _ in 0..20 {
            d.feed(&tx, 1, 0, &tone);
        }
        let per_packet = t.elapsed() / 20;
        for _ in 0..10 {
            d.feed(&tx, 1, 0, &silence);
        }
        let mut beeps = Vec::new();
        let mut decided = 0;
        for ev in events(&mut rx) {
            match ev {
                MediaEvent::Beep { at_ms, .. } => beeps.push(at_ms),
                MediaEvent::Amd { .. } => decided += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(beeps.len(), 1, "{beeps:?}");
        assert!(beeps[0].abs_diff(1400) <= 30, "beep ended at {}", beeps[0]);
        // A long gap (the callee silent, DTX) runs out the beep watch; the AMD decides by then.
        d.feed(&tx, 1, 60 * 8000, &silence);
        assert!(!d.running() && d.beep_left == 0);
        decided += events(&mut rx)
            .iter()
            .filter(|e| matches!(e, MediaEvent::Amd { .. }))
            .count();
        assert_eq!(decided, 1);
        println!("AMD + beep detection: {per_packet:?} per 20 ms packet at 8 kHz");
    }

    /// A long greeting is a machine; the end of its speech follows as `GreetingEnd`, placed
    /// where the silence began, after the verdict.
    #[test]
    fn a_machine_verdict_watches_for_the_greeting_end() {
        let (tx, mut rx) = EventTx::channel();
        let mut d = Detectors::default();
        d.start(&AmdConfig::default(), 8000);
        // 3 s of speech-like bursts (300 ms on, 100 ms off), then 2 s of silence.
        let speech: Vec<i16> = (0..8 * 3000u32)
            .map(|n| {
                let on = (n / 8) % 400 < 300;
                let s = (f64::from(n) * 0.15).sin() * if on { 9000.0 } else { 0.0 };
                s as i16
            })
            .collect();
        for c in speech.chunks(160) {
            d.feed(&tx, 9, 0, c);
        }
        for _ in 0..100 {
            d.feed(&tx, 9, 0, &[0; 160]);
        }
        let evs = events(&mut rx);
        let verdict = evs.iter().find_map(|e| match e {
            MediaEvent::Amd { decision, .. } => Some(*decision),
            _ => None,
        });
        let v = verdict.expect("decided");
        assert_eq!(v.verdict, AmdVerdict::Machine);
        let ends: Vec<u32> = evs
            .iter()
            .filter_map(|e| match e {
                MediaEvent::GreetingEnd { at_ms, .. } => Some(*at_ms),
                _ => None,
            })
            .collect();
        assert_eq!(ends.len(), 1, "{evs:?}");
        assert!(ends[0] > v.at_ms, "{} after {}", ends[0], v.at_ms);
        assert!(
            ends[0].abs_diff(2900) <= 110,
            "greeting ended at {}",
            ends[0]
        );
    }
}
