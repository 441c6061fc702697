//! The answering-machine decision: words and silences of the first seconds of the callee's
//! audio. People answer briefly and wait ("Pronto?" then silence); recorded greetings speak on.

use super::config::AmdConfig;
use super::level::{Framer, VoiceMeter, FRAMES_PER_SECOND};

/// Who answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmdVerdict {
    /// A person: a short greeting, then silence.
    Human,
    /// An answering machine: a long greeting or many words.
    Machine,
    /// Nothing conclusive within the analysis time.
    Unsure,
}

/// Why the detector decided as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmdReason {
    /// Nobody spoke within `initial_silence_ms` (unsure).
    InitialSilence,
    /// The greeting's speech passed `greeting_ms` (machine).
    LongGreeting,
    /// The greeting had more than `maximum_words` words (machine).
    MaxWords,
    /// A short greeting was followed by `after_greeting_silence_ms` of silence (human).
    AfterGreetingSilence,
    /// `total_analysis_ms` passed without any of the above (unsure).
    TooLong,
}

/// The detector's answer, once per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdDecision {
    /// Human, machine or unsure.
    pub verdict: AmdVerdict,
    /// Milliseconds of received audio from the start of the analysis to the decision.
    pub at_ms: u32,
    /// What decided it.
    pub reason: AmdReason,
}

/// Durations of the configuration in frames, counted once at construction.
#[derive(Debug, Clone, Copy)]
struct Limits {
    initial_silence: u32,
    greeting: u32,
    after_greeting_silence: u32,
    total: u32,
    min_word: u32,
    between_words: u32,
    maximum_words: u32,
}

impl Limits {
    fn new(cfg: &AmdConfig) -> Self {
        let frames = |ms: u32| (ms * FRAMES_PER_SECOND).div_ceil(1000).max(1);
        Limits {
            initial_silence: frames(cfg.initial_silence_ms),
            greeting: frames(cfg.greeting_ms),
            after_greeting_silence: frames(cfg.after_greeting_silence_ms),
            total: frames(cfg.total_analysis_ms),
            min_word: frames(cfg.min_word_ms),
            between_words: frames(cfg.between_words_silence_ms),
            maximum_words: cfg.maximum_words,
        }
    }
}

/// Where the greeting stands: the counters of the classic algorithm, in frames.
#[derive(Debug, Clone, Copy, Default)]
struct Greeting {
    /// Frames analysed so far.
    frames: u32,
    /// A word has been heard (the initial silence is over).
    started: bool,
    /// Inside a word (voice since the last word-separating silence).
    in_word: bool,
    words: u32,
    /// Voice frames of the greeting, over all its words.
    voice: u32,
    /// The current run of voice frames.
    run_voice: u32,
    /// The current run of silence (voice runs shorter than a word do not break it).
    run_silence: u32,
}

impl Greeting {
    /// One frame's step; `Some` when it decides.
    fn step(&mut self, voice: bool, lim: &Limits) -> Option<(AmdVerdict, AmdReason)> {
        self.frames += 1;
        if voice {
            self.voice_frame(lim)
        } else {
            self.silence_frame(lim)
        }
        .or_else(|| (self.frames >= lim.total).then_some((AmdVerdict::Unsure, AmdReason::TooLong)))
    }

    fn voice_frame(&mut self, lim: &Limits) -> Option<(AmdVerdict, AmdReason)> {
        self.run_voice += 1;
        if self.started {
            self.voice += 1;
        }
        if self.run_voice < lim.min_word {
            self.run_silence += 1;
            return None;
        }
        self.run_silence = 0;
        if !self.in_word {
            if !self.started {
                self.started = true;
                self.voice += self.run_voice;
            }
            self.in_word = true;
            self.words += 1;
            if self.words > lim.maximum_words {
                return Some((AmdVerdict::Machine, AmdReason::MaxWords));
            }
        }
        (self.voice >= lim.greeting).then_some((AmdVerdict::Machine, AmdReason::LongGreeting))
    }

    fn silence_frame(&mut self, lim: &Limits) -> Option<(AmdVerdict, AmdReason)> {
        self.run_voice = 0;
        self.run_silence += 1;
        if self.run_silence >= lim.between_words {
            self.in_word = false;
        }
        if !self.started {
            return (self.run_silence >= lim.initial_silence)
                .then_some((AmdVerdict::Unsure, AmdReason::InitialSilence));
        }
        (self.run_silence >= lim.after_greeting_silence)
            .then_some((AmdVerdict::Human, AmdReason::AfterGreetingSilence))
    }
}

/// Answering-machine detection over the callee's audio from the answer on. Pure DSP: feed it
/// decoded PCM in any chunk size; time is counted in samples.
#[derive(Debug, Clone)]
pub struct Amd {
    limits: Limits,
    framer: Framer,
    meter: VoiceMeter,
    greeting: Greeting,
    rate: u32,
    decided: bool,
}

impl Amd {
    /// A detector for audio at `rate` Hz (8000 for G.711, 16000 for G.722, 48000 for Opus).
    pub fn new(cfg: &AmdConfig, rate: u32) -> Self {
        Amd {
            limits: Limits::new(cfg),
            framer: Framer::new(rate),
            meter: VoiceMeter::new(cfg.silence_threshold, cfg.voice_above_noise_db),
            greeting: Greeting::default(),
            rate: rate.max(1),
            decided: false,
        }
    }

    /// Analyses the next received samples; returns the decision once, at the frame that made
    /// it, and `None` before and ever after.
    pub fn push(&mut self, pcm: &[i16]) -> Option<AmdDecision> {
        if self.decided {
            return None;
        }
        let Amd {
            limits,
            framer,
            meter,
            greeting,
            ..
        } = self;
        let (verdict, reason) = framer.push(pcm, |frame| {
            let voice = meter.is_voice(frame);
            greeting.step(voice, limits)
        })?;
        self.decided = true;
        let samples = u64::from(self.greeting.frames) * self.framer.len() as u64;
        Some(AmdDecision {
            verdict,
            at_ms: (samples * 1000 / u64::from(self.rate)) as u32,
            reason,
        })
    }

    /// A watcher for the end of the greeting that goes on from here (after a `machine`
    /// verdict): the same voice meter and clock, `after_greeting_silence_ms` of silence.
    pub fn greeting_end(&self) -> super::GreetingEnd {
        let silence_ms = self.limits.after_greeting_silence * 1000 / FRAMES_PER_SECOND;
        super::quiet::GreetingEnd::continuing(
            silence_ms,
            self.rate,
            self.meter.clone(),
            self.greeting.frames,
        )
    }

    /// Whether the decision has been given.
    pub fn is_decided(&self) -> bool {
        self.decided
    }
}
