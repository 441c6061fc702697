//! Importing uploaded audio: WAV (8/16/24/32-bit integer, 32-bit float) and MP3, any plausible
//! rate, any channel count up to 8, down-mixed to mono `f32` in `[-1, 1]`.
//!
//! Uploads are hostile until parsed. Each way a file can be bad gets its own [`CodecError`]
//! variant, sizes from headers are checked against the bytes actually present before anything is
//! allocated, and the maximum duration is enforced from the header (WAV) or while decoding (MP3)
//! so a huge file is refused without being decoded.

use std::io::Cursor;

use crate::CodecError;

/// Lowest sample rate accepted: below this a header is taken as implausible.
pub const MIN_SAMPLE_RATE: u32 = 4_000;
/// Highest sample rate accepted.
pub const MAX_SAMPLE_RATE: u32 = 384_000;
/// Most channels accepted (they are averaged to mono).
pub const MAX_CHANNELS: u16 = 8;
/// Default maximum message length: five minutes.
pub const DEFAULT_MAX_DURATION_MS: u64 = 5 * 60 * 1000;

/// The container/codec an upload was recognised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// RIFF WAVE with integer PCM of the given bit depth.
    WavInt(u16),
    /// RIFF WAVE with 32-bit IEEE float samples.
    WavFloat,
    /// MPEG-1/2 Layer III.
    Mp3,
}

impl SourceFormat {
    /// Short description for metadata (`wav/pcm16`, `wav/float32`, `mp3`).
    pub fn describe(self) -> String {
        match self {
            SourceFormat::WavInt(b) => format!("wav/pcm{b}"),
            SourceFormat::WavFloat => "wav/float32".to_string(),
            SourceFormat::Mp3 => "mp3".to_string(),
        }
    }
}

/// Decoded mono audio.
#[derive(Debug, Clone)]
pub struct Audio {
    /// Mono samples, nominally in `[-1, 1]`.
    pub samples: Vec<f32>,
    /// Sample rate of `samples` in Hz.
    pub sample_rate: u32,
    /// Channel count of the source before down-mixing.
    pub source_channels: u16,
    /// What the source was.
    pub format: SourceFormat,
}

impl Audio {
    /// Duration in milliseconds (rounded down).
    pub fn duration_ms(&self) -> u64 {
        duration_ms(self.samples.len() as u64, self.sample_rate)
    }
}

fn duration_ms(frames: u64, rate: u32) -> u64 {
    frames.saturating_mul(1000) / u64::from(rate.max(1))
}

/// Imports a WAV or MP3 file held in memory, refusing audio longer than `max_duration_ms`.
///
/// The format is recognised by content (`RIFF....WAVE`, an ID3v2 tag or an MPEG audio frame
/// sync), not by file name.
pub fn import(bytes: &[u8], max_duration_ms: u64) -> Result<Audio, CodecError> {
    if bytes.is_empty() {
        return Err(CodecError::Empty);
    }
    if bytes.starts_with(b"RIFF") || (bytes.len() < 4 && b"RIFF".starts_with(bytes)) {
        if bytes.len() < 12 {
            return Err(CodecError::Truncated(
                "RIFF header shorter than 12 bytes".into(),
            ));
        }
        if &bytes[8..12] != b"WAVE" {
            return Err(CodecError::UnsupportedFormat(
                "RIFF file that is not WAVE".into(),
            ));
        }
        return import_wav(bytes, max_duration_ms);
    }
    if bytes.starts_with(b"RIFX") || bytes.starts_with(b"RF64") || bytes.starts_with(b"BW64") {
        return Err(CodecError::UnsupportedFormat(
            "big-endian or 64-bit WAV (RIFX/RF64) is not supported".into(),
        ));
    }
    if bytes.starts_with(b"ID3") || looks_like_mpeg_audio(bytes) {
        return import_mp3(bytes, max_duration_ms);
    }
    Err(CodecError::UnsupportedFormat(format!(
        "not a WAV or MP3 file (starts with {})",
        hex_prefix(bytes)
    )))
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// An MPEG audio frame header: 11 sync bits, a valid version and layer, bitrate index not 15,
/// sample-rate index not 3.
fn looks_like_mpeg_audio(b: &[u8]) -> bool {
    b.len() >= 4
        && b[0] == 0xFF
        && b[1] & 0xE0 == 0xE0
        && (b[1] >> 3) & 0x03 != 0x01
        && (b[1] >> 1) & 0x03 != 0x00
        && b[2] >> 4 != 0x0F
        && (b[2] >> 2) & 0x03 != 0x03
}

fn map_hound(e: hound::Error) -> CodecError {
    match e {
        // Reading from memory, the only I/O failure is running out of bytes.
        hound::Error::IoError(_) => {
            CodecError::Truncated("WAV ends before its header or data does".into())
        }
        hound::Error::FormatError(msg) => CodecError::Malformed(format!("WAV: {msg}")),
        hound::Error::TooWide => CodecError::UnsupportedFormat("WAV sample too wide".into()),
        hound::Error::UnfinishedSample => {
            CodecError::Truncated("WAV ends in the middle of a sample".into())
        }
        hound::Error::Unsupported => CodecError::UnsupportedFormat(
            "WAV encoding other than integer PCM or 32-bit float".into(),
        ),
        hound::Error::InvalidSampleFormat => {
            CodecError::UnsupportedFormat("WAV sample format mismatch".into())
        }
    }
}

/// Reads the raw `fmt ` fields and the `data` chunk size without trusting them, so implausible
/// headers get [`CodecError::AbsurdHeader`] and short files [`CodecError::Truncated`] before
/// hound sees them.
struct RiffScan {
    channels: Option<u16>,
    rate: Option<u32>,
    /// Declared data size and the bytes actually present after the data header.
    data: Option<(u32, usize)>,
}

fn scan_riff(bytes: &[u8]) -> RiffScan {
    let mut scan = RiffScan {
        channels: None,
        rate: None,
        data: None,
    };
    let mut pos = 12usize;
    while let Some(hdr) = bytes.get(pos..pos + 8) {
        let id = &hdr[0..4];
        let size = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
        let body = pos + 8;
        if id == b"fmt " {
            if let Some(f) = bytes.get(body..body + 8) {
                scan.channels = Some(u16::from_le_bytes([f[2], f[3]]));
                scan.rate = Some(u32::from_le_bytes([f[4], f[5], f[6], f[7]]));
            }
        } else if id == b"data" {
            scan.data = Some((size, bytes.len().saturating_sub(body)));
            break;
        }
        // Chunks are padded to an even size.
        let next = body as u64 + u64::from(size) + u64::from(size & 1);
        if next > bytes.len() as u64 {
            break;
        }
        pos = next as usize;
    }
    scan
}

/// Refuses what the raw RIFF scan already shows to be absurd or truncated, before hound reads
/// (and allocates for) the header's claims.
fn check_riff(bytes: &[u8]) -> Result<(), CodecError> {
    let scan = scan_riff(bytes);
    if let Some(ch) = scan.channels {
        if ch == 0 || ch > MAX_CHANNELS {
            return Err(CodecError::AbsurdHeader(format!("{ch} channels")));
        }
    }
    if let Some(rate) = scan.rate {
        if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
            return Err(CodecError::AbsurdHeader(format!("sample rate {rate} Hz")));
        }
    }
    if let Some((declared, present)) = scan.data {
        if declared as usize > present {
            return Err(CodecError::Truncated(format!(
                "WAV data chunk declares {declared} bytes but only {present} follow"
            )));
        }
    }
    Ok(())
}

fn import_wav(bytes: &[u8], max_duration_ms: u64) -> Result<Audio, CodecError> {
    check_riff(bytes)?;
    let reader = hound::WavReader::new(Cursor::new(bytes)).map_err(map_hound)?;
    let spec = reader.spec();
    // hound accepted it; re-check what the raw scan may have missed (e.g. extensible headers).
    if spec.channels == 0 || spec.channels > MAX_CHANNELS {
        return Err(CodecError::AbsurdHeader(format!(
            "{} channels",
            spec.channels
        )));
    }
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&spec.sample_rate) {
        return Err(CodecError::AbsurdHeader(format!(
            "sample rate {} Hz",
            spec.sample_rate
        )));
    }
    let frames = u64::from(reader.duration());
    if frames == 0 {
        return Err(CodecError::Empty);
    }
    let declared_ms = duration_ms(frames, spec.sample_rate);
    if declared_ms > max_duration_ms {
        return Err(CodecError::TooLong {
            actual_ms: declared_ms,
            max_ms: max_duration_ms,
        });
    }
    // Never trust the header for an allocation: it is bounded by the bytes present.
    let total = reader.len() as usize;
    if total > bytes.len() {
        return Err(CodecError::Truncated(
            "WAV declares more samples than bytes".into(),
        ));
    }
    let (interleaved, format) = read_wav_samples(reader, total)?;
    if interleaved.len() != total {
        return Err(CodecError::Truncated("WAV data ends early".into()));
    }
    Ok(Audio {
        samples: downmix(&interleaved, usize::from(spec.channels)),
        sample_rate: spec.sample_rate,
        source_channels: spec.channels,
        format,
    })
}

/// Every sample of a WAV as floats in −1..1, interleaved, and the source format.
fn read_wav_samples(
    reader: hound::WavReader<Cursor<&[u8]>>,
    total: usize,
) -> Result<(Vec<f32>, SourceFormat), CodecError> {
    let spec = reader.spec();
    let mut interleaved: Vec<f32> = Vec::with_capacity(total);
    let format = match spec.sample_format {
        hound::SampleFormat::Float => {
            if spec.bits_per_sample != 32 {
                return Err(CodecError::UnsupportedFormat(format!(
                    "{}-bit float WAV",
                    spec.bits_per_sample
                )));
            }
            for s in reader.into_samples::<f32>() {
                let s = s.map_err(map_hound)?;
                if !s.is_finite() {
                    return Err(CodecError::Malformed("non-finite float sample".into()));
                }
                interleaved.push(s);
            }
            SourceFormat::WavFloat
        }
        hound::SampleFormat::Int => {
            let bits = spec.bits_per_sample;
            if !matches!(bits, 8 | 16 | 24 | 32) {
                return Err(CodecError::UnsupportedFormat(format!(
                    "{bits}-bit integer WAV"
                )));
            }
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            for s in reader.into_samples::<i32>() {
                let s = s.map_err(map_hound)?;
                interleaved.push((f64::from(s) * scale) as f32);
            }
            SourceFormat::WavInt(bits)
        }
    };
    Ok((interleaved, format))
}

/// Averages interleaved channels to mono.
pub fn downmix(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels <= 1 {
        return interleaved.to_vec();
    }
    let inv = 1.0 / channels as f32;
    interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() * inv)
        .collect()
}

fn import_mp3(bytes: &[u8], max_duration_ms: u64) -> Result<Audio, CodecError> {
    // symphonia is a large decoder; a panic inside it must not take the process down.
    match std::panic::catch_unwind(|| decode_mp3(bytes, max_duration_ms)) {
        Ok(r) => r,
        Err(_) => Err(CodecError::Malformed(
            "MP3 decoder failed on this input".into(),
        )),
    }
}

fn map_symphonia(e: symphonia::core::errors::Error) -> CodecError {
    use symphonia::core::errors::Error as E;
    match e {
        E::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            CodecError::Truncated("MP3 stream ends early".into())
        }
        E::IoError(io) => CodecError::Malformed(format!("MP3 read error: {io}")),
        E::DecodeError(m) => CodecError::Malformed(format!("MP3: {m}")),
        E::Unsupported(m) => CodecError::UnsupportedFormat(format!("MP3: {m}")),
        E::LimitError(m) => CodecError::AbsurdHeader(format!("MP3: {m}")),
        other => CodecError::Malformed(format!("MP3: {other}")),
    }
}

/// Refuses a decoded MP3 frame of absurd shape, or whose rate differs from the first frame's
/// (`rate`, set by the first frame).
fn check_mp3_frame(r: u32, ch: usize, rate: &mut Option<u32>) -> Result<(), CodecError> {
    if ch == 0 || ch > usize::from(MAX_CHANNELS) {
        return Err(CodecError::AbsurdHeader(format!("MP3 with {ch} channels")));
    }
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&r) {
        return Err(CodecError::AbsurdHeader(format!("MP3 sample rate {r} Hz")));
    }
    match *rate {
        None => *rate = Some(r),
        Some(prev) if prev != r => {
            return Err(CodecError::UnsupportedFormat(
                "MP3 whose sample rate changes mid-stream".into(),
            ))
        }
        Some(_) => {}
    }
    Ok(())
}

/// The MP3 reader, a decoder for its audio track, and that track's id.
fn open_mp3(
    bytes: &[u8],
) -> Result<
    (
        symphonia::default::formats::MpaReader<'static>,
        symphonia::default::codecs::MpaDecoder,
        u32,
    ),
    CodecError,
> {
    use symphonia::core::codecs::audio::AudioDecoderOptions;
    use symphonia::core::codecs::CodecParameters;
    use symphonia::core::formats::{FormatOptions, FormatReader};
    use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
    use symphonia::default::codecs::MpaDecoder;
    use symphonia::default::formats::MpaReader;

    let mss = MediaSourceStream::new(
        Box::new(Cursor::new(bytes.to_vec())),
        MediaSourceStreamOptions::default(),
    );
    let reader = MpaReader::try_new(mss, FormatOptions::default()).map_err(map_symphonia)?;
    let track = reader
        .tracks()
        .first()
        .ok_or_else(|| CodecError::Malformed("MP3 without an audio track".into()))?;
    let track_id = track.id;
    let params = match &track.codec_params {
        Some(CodecParameters::Audio(p)) => p.clone(),
        _ => {
            return Err(CodecError::UnsupportedFormat(
                "MP3 track is not audio".into(),
            ))
        }
    };
    let decoder =
        MpaDecoder::try_new(&params, &AudioDecoderOptions::default()).map_err(map_symphonia)?;
    Ok((reader, decoder, track_id))
}

fn decode_mp3(bytes: &[u8], max_duration_ms: u64) -> Result<Audio, CodecError> {
    use symphonia::core::codecs::audio::AudioDecoder;
    use symphonia::core::errors::Error as E;
    use symphonia::core::formats::FormatReader;

    let (mut reader, mut decoder, track_id) = open_mp3(bytes)?;
    let mut mono: Vec<f32> = Vec::new();
    let mut rate: Option<u32> = None;
    let mut channels: u16 = 0;
    let mut buf: Vec<f32> = Vec::new();
    let mut bad_packets = 0usize;
    loop {
        let packet = match reader.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(E::IoError(io)) if io.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(E::ResetRequired) => break,
            Err(e) => {
                if mono.is_empty() {
                    return Err(map_symphonia(e));
                }
                break;
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(E::DecodeError(_)) | Err(E::IoError(_)) => {
                // Damaged frames happen in real MP3s; tolerate a few, not a stream of them.
                bad_packets += 1;
                if bad_packets > 16 && bad_packets * 2 > mono.len() / 1152 + 1 {
                    return Err(CodecError::Malformed("MP3 frames do not decode".into()));
                }
                continue;
            }
            Err(e) => return Err(map_symphonia(e)),
        };
        let spec = decoded.spec();
        let (r, ch) = (spec.rate(), spec.channels().count());
        check_mp3_frame(r, ch, &mut rate)?;
        channels = channels.max(ch as u16);
        buf.clear();
        decoded.copy_to_vec_interleaved::<f32>(&mut buf);
        mono.extend(downmix(&buf, ch));
        let ms = duration_ms(mono.len() as u64, r);
        if ms > max_duration_ms {
            return Err(CodecError::TooLong {
                actual_ms: ms,
                max_ms: max_duration_ms,
            });
        }
    }
    let Some(rate) = rate else {
        return Err(CodecError::Malformed("no decodable MP3 frame".into()));
    };
    if mono.is_empty() {
        return Err(CodecError::Empty);
    }
    for s in &mut mono {
        if !s.is_finite() {
            *s = 0.0;
        }
    }
    Ok(Audio {
        samples: mono,
        sample_rate: rate,
        source_channels: channels,
        format: SourceFormat::Mp3,
    })
}
