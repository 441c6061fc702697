//! Answering-machine and beep detection on the callee's received audio: pure DSP over decoded
//! PCM, no IO and no clock (time is counted in samples), so the media pump can run it per call
//! and tests can feed it anything.
//!
//! [`Amd`] follows the classic PBX algorithm's shape on 10 ms frames: a frame is voice when it
//! is louder than a fixed threshold and than the line's measured noise floor by a margin; voice
//! runs make words; a short greeting followed by silence is a person, a long greeting or many
//! words a machine, nothing conclusive in time `unsure`. [`BeepDetector`] finds the voicemail
//! beep (a steady 0.3–2 kHz tone of at least 150 ms) so a message can be left after it. Their
//! accuracy on a generated, labelled set of answered calls is measured by
//! `engine/tests/amd_eval.rs`; their cost by `engine/benches/amd.rs`.

mod beep;
mod config;
mod detector;
mod level;
mod quiet;

pub use beep::BeepDetector;
pub use config::{AmdConfig, AmdConfigError, MAX_ANALYSIS_MS};
pub use detector::{Amd, AmdDecision, AmdReason, AmdVerdict};
pub use quiet::GreetingEnd;

#[cfg(test)]
mod tests;
