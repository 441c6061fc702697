//! `Prompt`: a message encoded once for one codec and packet time, as ready RTP payloads.

use std::path::Path;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::import::{self, Audio, DEFAULT_MAX_DURATION_MS};
use crate::level::{self, LevelReport};
use crate::{g711, g722, opus_codec, resample, Codec, CodecError, PayloadDecoder};

/// Version of the encoding pipeline and of the cache file layout. Bump it whenever encoded bytes
/// for the same input and settings could change (new resampler, limiter, codec fix, ...): it is
/// part of every [`PromptKey`], so old cache files are simply never looked up again.
pub const PROMPT_FORMAT_VERSION: u32 = 1;

/// How an upload becomes a prompt. The defaults suit telephony; every field except
/// `max_duration_ms` is part of the prompt's identity ([`PromptKey`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeSettings {
    /// Level the speech to `target_lufs` with a peak limiter. Off: samples pass unchanged (this
    /// is how the G.711 output can be compared bit for bit with sox).
    pub normalize: bool,
    /// Loudness target in LUFS; −25 LUFS ≈ −19 dBm0 active speech (see [`crate::level`]).
    pub target_lufs: f64,
    /// Sample-peak ceiling of the limiter in dBFS.
    pub peak_ceiling_dbfs: f64,
    /// Longest accepted message in milliseconds (default five minutes).
    pub max_duration_ms: u64,
    /// Opus bitrate in bit/s.
    pub opus_bitrate: u32,
}

impl Default for EncodeSettings {
    fn default() -> Self {
        EncodeSettings {
            normalize: true,
            target_lufs: level::DEFAULT_TARGET_LUFS,
            peak_ceiling_dbfs: level::DEFAULT_CEILING_DBFS,
            max_duration_ms: DEFAULT_MAX_DURATION_MS,
            opus_bitrate: opus_codec::DEFAULT_BITRATE,
        }
    }
}

impl EncodeSettings {
    /// The settings that change encoded bytes, in a canonical byte form for hashing.
    fn fingerprint(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(32);
        v.push(u8::from(self.normalize));
        if self.normalize {
            v.extend_from_slice(&self.target_lufs.to_bits().to_le_bytes());
            v.extend_from_slice(&self.peak_ceiling_dbfs.to_bits().to_le_bytes());
        }
        v.extend_from_slice(&self.opus_bitrate.to_le_bytes());
        v
    }
}

/// Identity of a prompt: SHA-256 over the pipeline version, the source file's bytes, the codec,
/// the packet time and the settings that affect output. Equal keys mean byte-identical prompts,
/// so it names cache files and lets many campaigns share one encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PromptKey(pub [u8; 32]);

impl PromptKey {
    /// Computes the key of `source` encoded with these parameters.
    pub fn new(source: &[u8], codec: Codec, ptime_ms: u32, settings: &EncodeSettings) -> Self {
        Self::from_source_hash(&Sha256::digest(source).into(), codec, ptime_ms, settings)
    }

    /// Same as [`PromptKey::new`] from the SHA-256 of the source (so a set of encodings can
    /// find its cache files without keeping the source bytes).
    pub fn from_source_hash(
        source_sha256: &[u8; 32],
        codec: Codec,
        ptime_ms: u32,
        settings: &EncodeSettings,
    ) -> Self {
        let mut h = Sha256::new();
        h.update(b"dialer-prompt\0");
        h.update(PROMPT_FORMAT_VERSION.to_le_bytes());
        h.update(source_sha256);
        h.update(codec.name().as_bytes());
        h.update(ptime_ms.to_le_bytes());
        h.update(settings.fingerprint());
        PromptKey(h.finalize().into())
    }

    /// Lower-case hex form (file names, logs, API).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What is known about a prompt's source and levelling, kept with the prompt (and in the cache)
/// for the API and `dialer prompt --json`.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptInfo {
    /// `wav/pcm16`, `wav/float32`, `mp3`, ...
    pub source_format: String,
    /// Sample rate of the upload.
    pub source_sample_rate: u32,
    /// Channels of the upload before down-mixing.
    pub source_channels: u16,
    /// Duration of the upload in milliseconds.
    pub source_duration_ms: u64,
    /// SHA-256 of the uploaded bytes.
    pub source_sha256: [u8; 32],
    /// Whether loudness normalisation was applied.
    pub normalized: bool,
    /// Integrated loudness of the upload (LUFS).
    pub loudness_before_lufs: f64,
    /// Integrated loudness after levelling (LUFS; equal to before when not normalised).
    pub loudness_after_lufs: f64,
    /// Sample peak of the upload (dBFS).
    pub peak_before_dbfs: f64,
    /// Sample peak after levelling (dBFS).
    pub peak_after_dbfs: f64,
    /// Gain applied (dB).
    pub gain_db: f64,
    /// Whether the peak limiter acted.
    pub limited: bool,
}

/// An upload decoded, checked and levelled once, ready to be encoded for any codec.
///
/// Encoding one upload for several codecs should go through one `PreparedAudio` so import and
/// loudness analysis happen once.
#[derive(Debug, Clone)]
pub struct PreparedAudio {
    samples: Vec<f32>,
    sample_rate: u32,
    info: PromptInfo,
    settings: EncodeSettings,
    /// 16-bit PCM at 8, 16 and 48 kHz, resampled on first use and reused for every codec and
    /// ptime at that rate.
    pcm: [OnceLock<Vec<i16>>; 3],
}

impl PreparedAudio {
    /// Imports `bytes` (WAV or MP3), rejects silence, and levels it when `settings.normalize`.
    pub fn from_bytes(bytes: &[u8], settings: &EncodeSettings) -> Result<Self, CodecError> {
        let audio = import::import(bytes, settings.max_duration_ms)?;
        let sha: [u8; 32] = Sha256::digest(bytes).into();
        Self::from_audio(audio, sha, settings)
    }

    /// Same as [`PreparedAudio::from_bytes`] for samples already decoded (tests, TTS, tools).
    /// `source_sha256` identifies the source for the prompt key.
    pub fn from_audio(
        audio: Audio,
        source_sha256: [u8; 32],
        settings: &EncodeSettings,
    ) -> Result<Self, CodecError> {
        let Audio {
            mut samples,
            sample_rate,
            source_channels,
            format,
        } = audio;
        if samples.is_empty() {
            return Err(CodecError::Empty);
        }
        if sample_rate == 0 {
            return Err(CodecError::AbsurdHeader("sample rate 0 Hz".into()));
        }
        let duration_ms = samples.len() as u64 * 1000 / u64::from(sample_rate);
        if duration_ms > settings.max_duration_ms {
            return Err(CodecError::TooLong {
                actual_ms: duration_ms,
                max_ms: settings.max_duration_ms,
            });
        }
        let before = level::measure(&samples, sample_rate)?;
        level::check_not_silent(&samples, &before)?;
        let report = if settings.normalize {
            level::normalize(
                &mut samples,
                sample_rate,
                before,
                settings.target_lufs,
                settings.peak_ceiling_dbfs,
            )?
        } else {
            LevelReport {
                before,
                after: before,
                gain_db: 0.0,
                limited: false,
            }
        };
        let info = PromptInfo {
            source_format: format.describe(),
            source_sample_rate: sample_rate,
            source_channels,
            source_duration_ms: duration_ms,
            source_sha256,
            normalized: settings.normalize,
            loudness_before_lufs: report.before.integrated_lufs,
            loudness_after_lufs: report.after.integrated_lufs,
            peak_before_dbfs: report.before.peak_dbfs,
            peak_after_dbfs: report.after.peak_dbfs,
            gain_db: report.gain_db,
            limited: report.limited,
        };
        Ok(PreparedAudio {
            samples,
            sample_rate,
            info,
            settings: settings.clone(),
            pcm: Default::default(),
        })
    }

    /// Source and levelling metadata.
    pub fn info(&self) -> &PromptInfo {
        &self.info
    }

    /// The levelled samples at the source rate.
    pub fn samples(&self) -> &[f32] {
        &self.samples
    }

    /// Sample rate of [`PreparedAudio::samples`].
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The levelled audio resampled to `codec`'s rate as 16-bit samples: exactly what the
    /// encoder of that codec is fed.
    pub fn pcm_for(&self, codec: Codec) -> Result<&[i16], CodecError> {
        let slot = match codec.sample_rate() {
            8000 => &self.pcm[0],
            16000 => &self.pcm[1],
            _ => &self.pcm[2],
        };
        if let Some(p) = slot.get() {
            return Ok(p);
        }
        let x = resample::resample(&self.samples, self.sample_rate, codec.sample_rate())?;
        let pcm: Vec<i16> = x.iter().map(|&s| f32_to_i16(s)).collect();
        Ok(slot.get_or_init(|| pcm))
    }

    /// Encodes for `codec` with packets of `ptime_ms`.
    pub fn encode(&self, codec: Codec, ptime_ms: u32) -> Result<Prompt, CodecError> {
        if !codec.supports_ptime(ptime_ms) {
            return Err(CodecError::UnsupportedPtime { codec, ptime_ms });
        }
        let pcm = self.pcm_for(codec)?;
        let (data, offsets) = encode_payloads(pcm, codec, ptime_ms, self.settings.opus_bitrate)?;
        let key =
            PromptKey::from_source_hash(&self.info.source_sha256, codec, ptime_ms, &self.settings);
        Ok(Prompt {
            codec,
            ptime_ms,
            timestamp_step: codec.timestamp_step(ptime_ms),
            data,
            offsets,
            info: self.info.clone(),
            key,
        })
    }
}

/// Cuts `pcm` (at `codec`'s sample rate) into packets of `ptime_ms` and encodes each: every RTP
/// payload back to back, and the `frames + 1` offsets where they start. The last packet is padded
/// with silence to a full one.
pub(crate) fn encode_payloads(
    pcm: &[i16],
    codec: Codec,
    ptime_ms: u32,
    opus_bitrate: u32,
) -> Result<(Box<[u8]>, Box<[u32]>), CodecError> {
    let spf = codec.samples_per_frame(ptime_ms);
    let frames = pcm.len().div_ceil(spf);
    let mut offsets: Vec<u32> = Vec::with_capacity(frames + 1);
    offsets.push(0);
    let mut data: Vec<u8> = Vec::new();
    match codec {
        Codec::Pcmu | Codec::Pcma => {
            data.reserve(frames * spf);
            let enc = if codec == Codec::Pcmu {
                g711::encode_ulaw
            } else {
                g711::encode_alaw
            };
            for chunk in pcm.chunks(spf) {
                data.extend(chunk.iter().map(|&s| enc(s)));
                // Pad the last frame with encoded silence to a full packet.
                data.extend(std::iter::repeat_n(enc(0), spf - chunk.len()));
                offsets.push(data.len() as u32);
            }
        }
        Codec::G722 => {
            data.reserve(frames * spf / 2);
            let mut enc = g722::Encoder::new();
            let mut frame = vec![0i16; spf];
            for chunk in pcm.chunks(spf) {
                frame[..chunk.len()].copy_from_slice(chunk);
                frame[chunk.len()..].fill(0);
                enc.encode(&frame, &mut data);
                offsets.push(data.len() as u32);
            }
        }
        Codec::Opus => {
            opus_codec::encode_frames(pcm, spf, opus_bitrate, &mut data, &mut offsets)?;
        }
    }
    debug_assert_eq!(offsets.len(), frames + 1);
    if frames == 0 {
        return Err(CodecError::Empty);
    }
    if data.len() > u32::MAX as usize {
        return Err(CodecError::Encoder("prompt larger than 4 GiB".into()));
    }
    Ok((data.into_boxed_slice(), offsets.into_boxed_slice()))
}

/// Converts a float sample to 16 bits: round to nearest, saturate. Exact for values that came
/// from 16-bit input (`s / 32768`), which keeps unlevelled G.711 encoding bit-exact.
#[inline]
pub(crate) fn f32_to_i16(s: f32) -> i16 {
    (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// A message encoded once for one codec and packet time: every RTP payload of the stream in one
/// contiguous buffer, plus the offsets where each payload starts.
///
/// Immutable and `Send + Sync`: the engine holds it in an `Arc<Prompt>` shared by every call
/// playing it; a call's media state is just a frame cursor, and [`Prompt::frame`] is a bounds
/// check and a slice (no copy, no allocation). The last frame is padded with silence to a full
/// packet, so every frame lasts exactly [`Prompt::ptime_ms`] and consecutive frames advance the
/// RTP timestamp by [`Prompt::timestamp_step`].
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub(crate) codec: Codec,
    pub(crate) ptime_ms: u32,
    pub(crate) timestamp_step: u32,
    /// All payloads back to back.
    pub(crate) data: Box<[u8]>,
    /// `frame_count + 1` offsets into `data`; frame `n` is `data[offsets[n]..offsets[n + 1]]`.
    pub(crate) offsets: Box<[u32]>,
    pub(crate) info: PromptInfo,
    pub(crate) key: PromptKey,
}

impl Prompt {
    /// Imports, levels and encodes an audio file in one call.
    pub fn from_file(
        path: impl AsRef<Path>,
        codec: Codec,
        ptime_ms: u32,
        settings: &EncodeSettings,
    ) -> Result<Prompt, CodecError> {
        let path = path.as_ref();
        let bytes = read_limited(path, settings.max_duration_ms)?;
        Self::from_bytes(&bytes, codec, ptime_ms, settings)
    }

    /// Imports, levels and encodes an audio file held in memory (WAV or MP3) in one call.
    pub fn from_bytes(
        bytes: &[u8],
        codec: Codec,
        ptime_ms: u32,
        settings: &EncodeSettings,
    ) -> Result<Prompt, CodecError> {
        if !codec.supports_ptime(ptime_ms) {
            return Err(CodecError::UnsupportedPtime { codec, ptime_ms });
        }
        PreparedAudio::from_bytes(bytes, settings)?.encode(codec, ptime_ms)
    }

    /// The codec of every payload.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Packet time in milliseconds.
    pub fn ptime_ms(&self) -> u32 {
        self.ptime_ms
    }

    /// Number of payloads (RTP packets) in the stream.
    #[inline]
    pub fn frame_count(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Payload of frame `n`, or `None` past the end (the prompt is over).
    #[inline]
    pub fn frame(&self, n: usize) -> Option<&[u8]> {
        let start = *self.offsets.get(n)? as usize;
        let end = *self.offsets.get(n + 1)? as usize;
        self.data.get(start..end)
    }

    /// RTP timestamp increment between consecutive frames (in [`Codec::clock_rate`] units).
    pub fn timestamp_step(&self) -> u32 {
        self.timestamp_step
    }

    /// Playing time of the whole stream: `frame_count × ptime_ms`.
    pub fn duration_ms(&self) -> u64 {
        self.frame_count() as u64 * u64::from(self.ptime_ms)
    }

    /// All payloads concatenated (what `dialer prompt --out` writes).
    pub fn payload_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Total payload bytes (memory held by the prompt, besides offsets).
    pub fn payload_len(&self) -> usize {
        self.data.len()
    }

    /// Source and levelling metadata.
    pub fn info(&self) -> &PromptInfo {
        &self.info
    }

    /// Identity of this prompt (also its cache file name).
    pub fn key(&self) -> PromptKey {
        self.key
    }

    /// Decodes the whole stream, as a callee would hear it, at [`Codec::sample_rate`].
    pub fn decode(&self) -> Result<Vec<i16>, CodecError> {
        let mut dec = PayloadDecoder::new(self.codec)?;
        let mut out =
            Vec::with_capacity(self.frame_count() * self.codec.samples_per_frame(self.ptime_ms));
        for n in 0..self.frame_count() {
            if let Some(f) = self.frame(n) {
                dec.decode(f, &mut out)?;
            }
        }
        Ok(out)
    }
}

/// Reads a file, refusing files too large to be a message within the duration limit (384 kHz,
/// 8 channels, 32-bit is the most any accepted WAV spends per second) so a huge file is not
/// pulled into memory only to be rejected.
pub(crate) fn read_limited(path: &Path, max_duration_ms: u64) -> Result<Vec<u8>, CodecError> {
    let meta = std::fs::metadata(path).map_err(|e| CodecError::io(path, e))?;
    let max_bytes = (max_duration_ms / 1000 + 1)
        .saturating_mul(u64::from(import::MAX_SAMPLE_RATE) * u64::from(import::MAX_CHANNELS) * 4)
        .saturating_add(1 << 20);
    if meta.len() > max_bytes {
        return Err(CodecError::TooLong {
            actual_ms: u64::MAX,
            max_ms: max_duration_ms,
        });
    }
    std::fs::read(path).map_err(|e| CodecError::io(path, e))
}
