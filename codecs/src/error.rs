//! The one error type of the crate.

use std::path::PathBuf;

use crate::Codec;

/// Everything that can go wrong while importing, levelling, encoding, decoding or caching audio.
///
/// Each bad upload maps to its own variant so that the API can tell the user *what* is wrong with
/// the file (empty, truncated, wrong format, implausible header, silent, too long) rather than a
/// generic failure. Hostile input yields one of these values, never a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input holds no bytes, or a valid header with no audio frames.
    #[error("audio input is empty")]
    Empty,
    /// The input ends before the data its header announces.
    #[error("audio input is truncated: {0}")]
    Truncated(String),
    /// The input is not WAV or MP3, or a variant of them that is not supported.
    #[error("unsupported audio format: {0}")]
    UnsupportedFormat(String),
    /// The header parses but describes something implausible (zero channels, a sample rate of
    /// 0 Hz or 4 GHz, ...).
    #[error("implausible audio header: {0}")]
    AbsurdHeader(String),
    /// The data is damaged in a way the decoder cannot recover from.
    #[error("malformed audio data: {0}")]
    Malformed(String),
    /// Every sample is (digitally) silent: nothing to play.
    #[error("audio contains only silence")]
    SilenceOnly,
    /// The audio lasts longer than the configured maximum.
    #[error("audio lasts {actual_ms} ms, longer than the maximum of {max_ms} ms")]
    TooLong {
        /// Duration of the input (as declared by its header when known up front).
        actual_ms: u64,
        /// The configured maximum.
        max_ms: u64,
    },
    /// The packet time is not one this codec can packetise.
    #[error("packet time {ptime_ms} ms is not supported for {codec}")]
    UnsupportedPtime {
        /// The codec asked for.
        codec: Codec,
        /// The packet time asked for.
        ptime_ms: u32,
    },
    /// A codec name that is not `pcmu`, `pcma`, `opus` or `g722`.
    #[error("unknown codec {0:?} (expected pcmu, pcma, opus or g722)")]
    UnknownCodec(String),
    /// Settings out of range (bitrate, loudness target, ...).
    #[error("invalid encode settings: {0}")]
    InvalidSettings(String),
    /// The codec library refused to encode.
    #[error("encoder error: {0}")]
    Encoder(String),
    /// A payload could not be decoded.
    #[error("decoder error: {0}")]
    Decoder(String),
    /// The resampler could not be built or run.
    #[error("resampler error: {0}")]
    Resample(String),
    /// A cached prompt file is not a valid prompt of this version (it is then re-encoded).
    #[error("invalid prompt cache file: {0}")]
    CacheInvalid(String),
    /// Text to speech needs `espeak-ng`, which is not installed.
    #[error("text to speech is unavailable: {0}")]
    TtsUnavailable(String),
    /// `espeak-ng` ran but failed.
    #[error("text to speech failed: {0}")]
    Tts(String),
    /// Reading or writing a file failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl CodecError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CodecError::Io {
            path: path.into(),
            source,
        }
    }

    /// A short stable word for the error kind, for metrics labels and API problem types.
    pub fn kind(&self) -> &'static str {
        match self {
            CodecError::Empty => "empty",
            CodecError::Truncated(_) => "truncated",
            CodecError::UnsupportedFormat(_) => "unsupported_format",
            CodecError::AbsurdHeader(_) => "absurd_header",
            CodecError::Malformed(_) => "malformed",
            CodecError::SilenceOnly => "silence_only",
            CodecError::TooLong { .. } => "too_long",
            CodecError::UnsupportedPtime { .. } => "unsupported_ptime",
            CodecError::UnknownCodec(_) => "unknown_codec",
            CodecError::InvalidSettings(_) => "invalid_settings",
            CodecError::Encoder(_) => "encoder",
            CodecError::Decoder(_) => "decoder",
            CodecError::Resample(_) => "resample",
            CodecError::CacheInvalid(_) => "cache_invalid",
            CodecError::TtsUnavailable(_) => "tts_unavailable",
            CodecError::Tts(_) => "tts",
            CodecError::Io { .. } => "io",
        }
    }
}
