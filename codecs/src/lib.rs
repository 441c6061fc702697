//! Audio codecs and prompts for the dialer.
//!
//! The dialer never transcodes per call (see `DESIGN.md`, principle 3). An uploaded message is
//! imported once ([`import`]), levelled once ([`level`]), resampled to each codec's rate
//! ([`resample`]) and encoded once per codec and packet time into a [`Prompt`]: one contiguous
//! buffer of ready RTP payloads plus offsets. Thousands of calls then share an `Arc<Prompt>` and
//! fetch frame `n` by slicing, without copying or allocating.
//!
//! Codecs: G.711 µ-law and A-law ([`g711`], exact to ITU-T G.711), Opus ([`opus_codec`], through
//! libopus), and G.722 ([`g722`], an SB-ADPCM implementation written for this crate from the
//! ITU-T G.722 algorithm description). Every codec also has a decoder ([`PayloadDecoder`]) for tests
//! and for the load tester's audio check.
//!
//! Untrusted input never panics: every failure is a [`CodecError`].

pub mod cache;
mod codec;
mod error;
pub mod g711;
pub mod g722;
pub mod generated;
pub mod import;
pub mod level;
pub mod opus_codec;
mod prompt;
pub mod prompt_set;
pub mod resample;
pub mod tts;
pub mod wav;

pub use cache::PromptCache;
pub use codec::{Codec, PayloadDecoder};
pub use error::CodecError;
pub use import::{Audio, SourceFormat};
pub use prompt::{
    EncodeSettings, PreparedAudio, Prompt, PromptInfo, PromptKey, PROMPT_FORMAT_VERSION,
};
pub use prompt_set::{wanted_encodings, PromptSet, DEFAULT_PTIME_MS};

/// The body of the `audio_import` fuzz target, shared with the test that replays its corpus:
/// parse as a cache file, import with a 2-second cap, then level and encode to PCMA whatever
/// imports. Returns whether the input became a prompt. Not part of the stable API.
#[doc(hidden)]
pub fn fuzz_entry(data: &[u8]) -> bool {
    // The cache file parser reads files that may be corrupt: it must not panic either.
    let _ = cache::from_cache_bytes(data);
    let settings = EncodeSettings {
        max_duration_ms: 2_000,
        ..EncodeSettings::default()
    };
    match PreparedAudio::from_bytes(data, &settings) {
        Ok(prep) => {
            let p = prep.encode(Codec::Pcma, 20);
            if let Ok(p) = &p {
                assert_eq!(p.payload_len(), p.frame_count() * 160);
            }
            p.is_ok()
        }
        Err(_) => false,
    }
}
