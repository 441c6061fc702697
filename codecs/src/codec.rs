//! The codecs a prompt can be encoded to, with their RTP/SDP facts, and a per-stream decoder.

use std::fmt;
use std::str::FromStr;

use crate::{g711, g722, opus_codec, CodecError};

/// A voice codec the dialer can offer in SDP and stream from a [`crate::Prompt`].
///
/// The RTP facts (payload type, SDP name, clock rate) are those of RFC 3551 and RFC 7587, so the
/// engine can write SDP and RTP headers without knowing codec internals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Codec {
    /// G.711 µ-law (PCMU), 8 kHz narrowband, 64 kbit/s.
    Pcmu,
    /// G.711 A-law (PCMA), 8 kHz narrowband, 64 kbit/s: the usual codec of European trunks.
    Pcma,
    /// Opus (RFC 6716 / RFC 7587), coded at 48 kHz, VOIP application.
    Opus,
    /// G.722 SB-ADPCM, 16 kHz wideband, 64 kbit/s.
    G722,
}

impl Codec {
    /// Every codec, in a stable order (useful for encoding a prompt for all of them).
    pub const ALL: [Codec; 4] = [Codec::Pcmu, Codec::Pcma, Codec::Opus, Codec::G722];

    /// RTP payload type: the static ones of RFC 3551 (0, 8, 9); Opus is dynamic, and 111 is the
    /// conventional default the engine offers unless the peer's SDP says otherwise.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
            Codec::G722 => 9,
            Codec::Opus => 111,
        }
    }

    /// Encoding name for an SDP `a=rtpmap` line.
    pub fn sdp_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::Opus => "opus",
            Codec::G722 => "G722",
        }
    }

    /// RTP clock rate. G.722 says 8000 although it samples at 16 kHz: an error kept for
    /// compatibility by RFC 3551 §4.5.2. Opus always says 48000 (RFC 7587).
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::G722 => 8000,
            Codec::Opus => 48000,
        }
    }

    /// Audio sample rate the encoder works at (what the source is resampled to).
    pub fn sample_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::G722 => 16000,
            Codec::Opus => 48000,
        }
    }

    /// Channel count to write in `a=rtpmap` (`opus/48000/2` is mandatory per RFC 7587, even for
    /// mono streams); `None` when the rtpmap line carries no channel field.
    pub fn channels_sdp(self) -> Option<u8> {
        match self {
            Codec::Opus => Some(2),
            _ => None,
        }
    }

    /// The `a=rtpmap` value after the payload type, e.g. `PCMA/8000` or `opus/48000/2`.
    pub fn rtpmap(self) -> String {
        match self.channels_sdp() {
            Some(ch) => format!("{}/{}/{}", self.sdp_name(), self.clock_rate(), ch),
            None => format!("{}/{}", self.sdp_name(), self.clock_rate()),
        }
    }

    /// Lower-case name as used on the command line and in config (`pcmu`, `pcma`, `opus`, `g722`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "pcmu",
            Codec::Pcma => "pcma",
            Codec::Opus => "opus",
            Codec::G722 => "g722",
        }
    }

    /// Whether `ptime_ms` can be packetised by this codec. All codecs take multiples of 10 ms up
    /// to 60 ms, except that Opus frames are 10, 20, 40 or 60 ms (RFC 6716 §2.1.4: there is no
    /// 30 ms Opus frame).
    pub fn supports_ptime(self, ptime_ms: u32) -> bool {
        match self {
            Codec::Opus => matches!(ptime_ms, 10 | 20 | 40 | 60),
            _ => matches!(ptime_ms, 10 | 20 | 30 | 40 | 50 | 60),
        }
    }

    /// The packet time to stream when the answer asks for `wanted_ms` (its `a=ptime`, else our
    /// offer's) and allows at most `max_ms` (`a=maxptime`): `wanted_ms` when this codec can
    /// packetise it within the maximum, else the longest of 60, 40, 30, 20, 10 ms that fits,
    /// else 20 ms. `a=ptime` is a preference (RFC 4566 §6), so a fallback is still decodable.
    pub fn stream_ptime(self, wanted_ms: u32, max_ms: Option<u32>) -> u32 {
        let fits = |p: u32| self.supports_ptime(p) && max_ms.is_none_or(|m| p <= m);
        if fits(wanted_ms) {
            return wanted_ms;
        }
        [60, 40, 30, 20, 10]
            .into_iter()
            .find(|&p| p <= wanted_ms && fits(p))
            .unwrap_or(20)
    }

    /// RTP timestamp increment per packet of `ptime_ms`.
    pub fn timestamp_step(self, ptime_ms: u32) -> u32 {
        self.clock_rate() / 1000 * ptime_ms
    }

    /// Audio samples (at [`Codec::sample_rate`]) per packet of `ptime_ms`.
    pub fn samples_per_frame(self, ptime_ms: u32) -> usize {
        (self.sample_rate() / 1000 * ptime_ms) as usize
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Codec {
    type Err = CodecError;

    /// Accepts the CLI names (`pcmu`, `pcma`, `opus`, `g722`) and the SDP names, case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "pcmu" | "ulaw" | "mulaw" | "g711u" => Ok(Codec::Pcmu),
            "pcma" | "alaw" | "g711a" => Ok(Codec::Pcma),
            "opus" => Ok(Codec::Opus),
            "g722" => Ok(Codec::G722),
            _ => Err(CodecError::UnknownCodec(s.chars().take(32).collect())),
        }
    }
}

/// A decoder for one received or stored RTP stream of a given codec.
///
/// Codecs with memory (G.722, Opus) must see a stream's payloads in order through one decoder.
/// Used by tests, by `dialer prompt --decode-to` and by the load tester's audio check.
pub struct PayloadDecoder {
    codec: Codec,
    inner: DecoderState,
}

enum DecoderState {
    Pcmu,
    Pcma,
    G722(Box<g722::Decoder>),
    Opus(Box<opus_codec::OpusDecoder>),
}

impl PayloadDecoder {
    /// A fresh decoder for `codec`.
    pub fn new(codec: Codec) -> Result<Self, CodecError> {
        let inner = match codec {
            Codec::Pcmu => DecoderState::Pcmu,
            Codec::Pcma => DecoderState::Pcma,
            Codec::G722 => DecoderState::G722(Box::default()),
            Codec::Opus => DecoderState::Opus(Box::new(opus_codec::OpusDecoder::new()?)),
        };
        Ok(PayloadDecoder { codec, inner })
    }

    /// The codec this decoder decodes.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Decodes one payload, appending samples at [`Codec::sample_rate`] to `out`; returns how
    /// many were appended.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        let before = out.len();
        match &mut self.inner {
            DecoderState::Pcmu => out.extend(payload.iter().map(|&b| g711::decode_ulaw(b))),
            DecoderState::Pcma => out.extend(payload.iter().map(|&b| g711::decode_alaw(b))),
            DecoderState::G722(d) => d.decode(payload, out),
            DecoderState::Opus(d) => d.decode(payload, out)?,
        }
        Ok(out.len() - before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ptime_honours_the_answer_within_the_codec_and_maxptime() {
        assert_eq!(Codec::Pcma.stream_ptime(30, None), 30);
        assert_eq!(
            Codec::Opus.stream_ptime(30, None),
            20,
            "no 30 ms Opus frame"
        );
        assert_eq!(Codec::G722.stream_ptime(60, Some(40)), 40);
        assert_eq!(Codec::Pcmu.stream_ptime(25, None), 20);
        assert_eq!(Codec::Pcmu.stream_ptime(20, Some(10)), 10);
        assert_eq!(Codec::Pcmu.stream_ptime(5, None), 20);
    }
}
