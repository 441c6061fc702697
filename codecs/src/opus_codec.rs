//! Opus through libopus (the `opus` crate, which builds a bundled libopus with cmake).
//!
//! Prompts are coded at 48 kHz mono with the VOIP application (speech-tuned, as the trunk side
//! expects), maximum complexity (we encode once and stream thousands of times, so encoder CPU is
//! irrelevant) and a configurable bitrate. DTX stays off: the pacer sends a packet every ptime.

use crate::CodecError;

/// Default Opus bitrate: 24 kbit/s is transparent-enough wideband speech (RFC 7587 §3.1.1 puts
/// fullband speech at 28-40 kbit/s and wideband at 16-20; prompts are speech).
pub const DEFAULT_BITRATE: u32 = 24_000;
/// Accepted bitrate range (libopus's own limits are 500..=512000).
pub const BITRATE_RANGE: std::ops::RangeInclusive<u32> = 6_000..=510_000;
/// Largest packet libopus may produce (its recommended output buffer).
const MAX_PACKET: usize = 4000;
const RATE: u32 = 48_000;

fn enc_err(e: opus::Error) -> CodecError {
    CodecError::Encoder(format!("opus: {e}"))
}

/// Encodes 48 kHz mono samples into one Opus packet per `frame_len` samples (the last frame
/// padded with silence), appending each packet to `data` and its end offset to `offsets`.
pub(crate) fn encode_frames(
    samples: &[i16],
    frame_len: usize,
    bitrate: u32,
    data: &mut Vec<u8>,
    offsets: &mut Vec<u32>,
) -> Result<(), CodecError> {
    if !BITRATE_RANGE.contains(&bitrate) {
        return Err(CodecError::InvalidSettings(format!(
            "opus bitrate {bitrate} outside {BITRATE_RANGE:?}"
        )));
    }
    let mut enc =
        opus::Encoder::new(RATE, opus::Channels::Mono, opus::Application::Voip).map_err(enc_err)?;
    enc.set_bitrate(opus::Bitrate::Bits(bitrate as i32))
        .map_err(enc_err)?;
    enc.set_complexity(10).map_err(enc_err)?;
    enc.set_signal(opus::Signal::Voice).map_err(enc_err)?;
    enc.set_dtx(false).map_err(enc_err)?;
    let mut packet = vec![0u8; MAX_PACKET];
    let mut frame = vec![0i16; frame_len];
    for chunk in samples.chunks(frame_len) {
        frame[..chunk.len()].copy_from_slice(chunk);
        frame[chunk.len()..].fill(0);
        let n = enc.encode(&frame, &mut packet).map_err(enc_err)?;
        data.extend_from_slice(&packet[..n]);
        offsets.push(data.len() as u32);
    }
    Ok(())
}

/// The encoder's algorithmic delay at 48 kHz in samples (6.5 ms for the VOIP application): the
/// decoded audio lags the source by this much.
pub fn lookahead() -> Result<usize, CodecError> {
    let mut enc =
        opus::Encoder::new(RATE, opus::Channels::Mono, opus::Application::Voip).map_err(enc_err)?;
    Ok(enc.get_lookahead().map_err(enc_err)?.max(0) as usize)
}

/// A stateful Opus decoder producing 48 kHz mono samples.
pub struct OpusDecoder {
    dec: opus::Decoder,
    buf: Vec<i16>,
}

impl OpusDecoder {
    /// A fresh decoder.
    pub fn new() -> Result<Self, CodecError> {
        let dec = opus::Decoder::new(RATE, opus::Channels::Mono)
            .map_err(|e| CodecError::Decoder(format!("opus: {e}")))?;
        Ok(OpusDecoder {
            dec,
            // 120 ms is the longest Opus packet.
            buf: vec![0; 5760],
        })
    }

    /// Decodes one packet. An empty payload stands for a lost packet: libopus conceals it with
    /// as much audio as the previous packet carried (20 ms before any packet).
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        let room = if payload.is_empty() {
            let last = self.dec.get_last_packet_duration().unwrap_or(0) as usize;
            let n = if last == 0 { 960 } else { last };
            n.clamp(120, self.buf.len())
        } else {
            self.buf.len()
        };
        let n = self
            .dec
            .decode(payload, &mut self.buf[..room], false)
            .map_err(|e| CodecError::Decoder(format!("opus: {e}")))?;
        out.extend_from_slice(&self.buf[..n]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_is_concealed_with_one_frame() {
        let pcm: Vec<i16> = (0..4800).map(|i| ((i % 96) as i16 - 48) * 200).collect();
        let (mut data, mut offsets) = (Vec::new(), vec![0u32]);
        encode_frames(&pcm, 960, DEFAULT_BITRATE, &mut data, &mut offsets).unwrap();
        assert_eq!(offsets.len(), 6);
        let mut d = OpusDecoder::new().unwrap();
        let mut out = Vec::new();
        d.decode(&[], &mut out).unwrap();
        assert_eq!(out.len(), 960);
        d.decode(&data[..offsets[1] as usize], &mut out).unwrap();
        d.decode(&[], &mut out).unwrap();
        assert_eq!(out.len(), 3 * 960);
        // Garbage is an error, not a panic.
        let mut e = Vec::new();
        for junk in [&[0xFFu8, 0xFF, 0xFF][..], &[0x03, 0xFF], &[0x7F; 40]] {
            let _ = d.decode(junk, &mut e);
        }
        assert!(matches!(
            encode_frames(&pcm, 960, 1, &mut data, &mut offsets),
            Err(CodecError::InvalidSettings(_))
        ));
    }
}
