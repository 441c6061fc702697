//! The knobs of answering-machine detection, in the spirit of the classic PBX AMD parameters
//! (initial silence, greeting, after-greeting silence, words), with defaults tuned on the
//! evaluation set (`engine/tests/amd_eval.rs`).

use serde::{Deserialize, Serialize};

/// How [`super::Amd`] tells a person from an answering machine. Every duration is of received
/// audio, counted in samples, so the detector needs no clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmdConfig {
    /// Silence from the answer before anyone speaks after which the detector gives up
    /// (`unsure`, reason `initial_silence`): a person who says nothing is not proof of a machine,
    /// and taking a person for a machine is the costly error.
    pub initial_silence_ms: u32,
    /// Speech in the greeting (summed over its words) beyond which it is a machine: people
    /// answer with a word or two ("Pronto?", "Sì, chi parla?"), recorded greetings go on.
    pub greeting_ms: u32,
    /// Silence after a short greeting that makes it a person: they said hello and now wait.
    pub after_greeting_silence_ms: u32,
    /// Upper bound of the analysis: no decision by then is `unsure` (reason `too_long`).
    pub total_analysis_ms: u32,
    /// Shortest run of voice that counts as a word (shorter runs are clicks or noise).
    pub min_word_ms: u32,
    /// Silence that separates two words.
    pub between_words_silence_ms: u32,
    /// More words than this in the greeting make it a machine.
    pub maximum_words: u32,
    /// RMS amplitude (16-bit scale) below which a 10 ms frame is always silence, whatever the
    /// noise: 256 is about −42 dBFS.
    pub silence_threshold: u16,
    /// How far above the line's noise floor (measured while listening) a frame must be to count
    /// as voice, in dB: it keeps steady background noise from being taken for speech.
    pub voice_above_noise_db: f32,
}

impl Default for AmdConfig {
    fn default() -> Self {
        AmdConfig {
            initial_silence_ms: 2500,
            greeting_ms: 1500,
            after_greeting_silence_ms: 800,
            total_analysis_ms: 5000,
            min_word_ms: 100,
            between_words_silence_ms: 50,
            maximum_words: 3,
            silence_threshold: 256,
            voice_above_noise_db: 8.0,
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AmdConfigError {
    /// A duration is zero or beyond the analysis bound.
    #[error("amd: {0} must be between 1 and {MAX_ANALYSIS_MS} ms")]
    Duration(&'static str),
    /// `maximum_words` is zero.
    #[error("amd: maximum_words must be at least 1")]
    Words,
    /// `voice_above_noise_db` is not a number in 0–40.
    #[error("amd: voice_above_noise_db must be between 0 and 40")]
    Margin,
}

/// Longest analysis accepted (the caller hears nothing meanwhile).
pub const MAX_ANALYSIS_MS: u32 = 30_000;

impl AmdConfig {
    /// Checks the values are usable (durations in 1..=30 s, at least one word, a sane margin),
    /// for configuration and campaign validation at the edge.
    pub fn validate(&self) -> Result<(), AmdConfigError> {
        let durations = [
            ("initial_silence_ms", self.initial_silence_ms),
            ("greeting_ms", self.greeting_ms),
            ("after_greeting_silence_ms", self.after_greeting_silence_ms),
            ("total_analysis_ms", self.total_analysis_ms),
            ("min_word_ms", self.min_word_ms),
            ("between_words_silence_ms", self.between_words_silence_ms),
        ];
        for (name, ms) in durations {
            if ms == 0 || ms > MAX_ANALYSIS_MS {
                return Err(AmdConfigError::Duration(name));
            }
        }
        if self.maximum_words == 0 {
            return Err(AmdConfigError::Words);
        }
        if !(0.0..=40.0).contains(&self.voice_above_noise_db) {
            return Err(AmdConfigError::Margin);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(AmdConfig::default().validate(), Ok(()));
    }

    #[test]
    fn partial_config_fills_the_rest_with_defaults() {
        let cfg: AmdConfig = toml::from_str("greeting_ms = 2000").unwrap();
        assert_eq!(cfg.greeting_ms, 2000);
        assert_eq!(cfg.min_word_ms, AmdConfig::default().min_word_ms);
        assert!(toml::from_str::<AmdConfig>("greting_ms = 2000").is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        let zero = AmdConfig {
            min_word_ms: 0,
            ..AmdConfig::default()
        };
        assert_eq!(
            zero.validate(),
            Err(AmdConfigError::Duration("min_word_ms"))
        );
        let words = AmdConfig {
            maximum_words: 0,
            ..AmdConfig::default()
        };
        assert_eq!(words.validate(), Err(AmdConfigError::Words));
        let nan = AmdConfig {
            voice_above_noise_db: f32::NAN,
            ..AmdConfig::default()
        };
        assert_eq!(nan.validate(), Err(AmdConfigError::Margin));
    }
}
