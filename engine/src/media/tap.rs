//! The callee's audio, decoded: what recording (the staff line) and answering-machine
//! detection listen to. Sans-IO: packets in, 16-bit PCM at the codec's sample rate out.
//!
//! Decoding happens only for calls that record or analyse; every other call's packets never
//! reach a decoder. The tap keeps the audio on the sender's clock: a packet that is lost, or
//! not sent (silence suppression, comfort noise), becomes as many zero samples as its RTP
//! timestamps say, so what is recorded lines up with what was said; late and repeated packets
//! are dropped (they were already counted as silence).

use codecs::{Codec, CodecError, PayloadDecoder};

/// Largest hole (RTP timestamp jump) filled with silence: beyond it the jump is taken as a
/// discontinuity (the far end restarted its clock) and audio simply continues.
pub const MAX_GAP_MS: u32 = 10_000;

/// Longest recording the media path keeps (`record` asks are capped to it): five minutes, the
/// longest upload too; about 9.6 MB at 16 kHz.
pub const MAX_RECORD_MS: u32 = 300_000;

/// One decoded packet: `gap` zero samples (audio lost or not sent before it), then `pcm`.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// Samples of silence to put before `pcm`.
    pub gap: usize,
    /// The packet's audio.
    pub pcm: &'a [i16],
}

/// A call's decoder of received audio.
pub struct AudioTap {
    decoder: PayloadDecoder,
    /// The answer's number for the codec and the number we offer it under: a peer may send
    /// with either (they differ only for Opus, whose number is dynamic).
    payload_types: [u8; 2],
    /// Samples per RTP clock tick: 2 for G.722 (16 kHz audio, 8 kHz clock), else 1.
    per_tick: u32,
    rate: u32,
    ssrc: Option<u32>,
    /// RTP timestamp the next packet should carry.
    next_ts: Option<u32>,
    scratch: Vec<i16>,
}

impl std::fmt::Debug for AudioTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioTap")
            .field("codec", &self.decoder.codec())
            .field("payload_types", &self.payload_types)
            .finish()
    }
}

impl AudioTap {
    /// A tap for audio of `codec` sent with `payload_type` (the answer's) or the codec's usual
    /// number.
    pub fn new(codec: Codec, payload_type: u8) -> Result<AudioTap, CodecError> {
        Ok(AudioTap {
            decoder: PayloadDecoder::new(codec)?,
            payload_types: [payload_type, codec.payload_type()],
            per_tick: (codec.sample_rate() / codec.clock_rate()).max(1),
            rate: codec.sample_rate(),
            ssrc: None,
            next_ts: None,
            scratch: Vec::with_capacity(codec.samples_per_frame(60)),
        })
    }

    /// Sample rate of what comes out (the codec's: 8, 16 or 48 kHz).
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Decodes one RTP packet. `None` for what is not this call's audio (telephone-events,
    /// comfort noise, another payload type, garbage), late or repeated packets, and payloads
    /// the decoder refuses.
    pub fn push(&mut self, packet: &[u8]) -> Option<Decoded<'_>> {
        let r = rtp_rs::RtpReader::new(packet).ok()?;
        if !self.payload_types.contains(&r.payload_type()) || r.payload().is_empty() {
            return None;
        }
        let ts = r.timestamp();
        if self.ssrc != Some(r.ssrc()) {
            // A new source (or the first packet): its clock starts here.
            self.ssrc = Some(r.ssrc());
            self.next_ts = None;
        }
        let ahead = self.next_ts.map_or(0, |n| ts.wrapping_sub(n) as i32);
        if ahead < 0 {
            return None;
        }
        let max_gap_ticks = (self.rate / self.per_tick / 1000 * MAX_GAP_MS) as i32;
        let gap = if ahead <= max_gap_ticks {
            ahead as usize * self.per_tick as usize
        } else {
            0
        };
        self.scratch.clear();
        let n = self.decoder.decode(r.payload(), &mut self.scratch).ok()?;
        self.next_ts = Some(ts.wrapping_add(n as u32 / self.per_tick));
        Some(Decoded {
            gap,
            pcm: &self.scratch,
        })
    }
}

/// Audio captured from a call, bounded.
#[derive(Debug)]
pub struct Recording {
    pcm: Vec<i16>,
    max: usize,
}

impl Recording {
    /// A recording of at most `max_ms` (capped at [`MAX_RECORD_MS`]) at `rate`. Memory grows
    /// with what is captured, never past the bound.
    pub fn new(rate: u32, max_ms: u32) -> Recording {
        let max = (u64::from(rate) * u64::from(max_ms.min(MAX_RECORD_MS)) / 1000) as usize;
        Recording {
            pcm: Vec::new(),
            max,
        }
    }

    /// Adds a decoded packet; returns `true` once the recording is full (it then keeps nothing
    /// more).
    pub fn push(&mut self, d: &Decoded<'_>) -> bool {
        let room = self.max - self.pcm.len();
        let gap = d.gap.min(room);
        self.pcm.resize(self.pcm.len() + gap, 0);
        let room = self.max - self.pcm.len();
        self.pcm.extend_from_slice(&d.pcm[..d.pcm.len().min(room)]);
        self.pcm.len() >= self.max
    }

    /// The samples captured.
    pub fn into_pcm(mut self) -> Vec<i16> {
        self.pcm.shrink_to_fit();
        self.pcm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codecs::Prompt;

    fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 12 + payload.len()];
        let n = rtp_rs::RtpPacketBuilder::new()
            .payload_type(pt)
            .sequence(rtp_rs::Seq::from(seq))
            .timestamp(ts)
            .ssrc(ssrc)
            .payload(payload)
            .build_into(&mut buf)
            .unwrap();
        buf.truncate(n);
        buf
    }

    /// Every codec decodes back to the tone sent, at its own rate; a lost packet becomes the
    /// silence its timestamps say, a late or repeated one is dropped, other payload types are
    /// ignored.
    #[test]
    fn decodes_every_codec_and_keeps_the_senders_clock() {
        for (codec, pt) in [
            (Codec::Pcma, 8),
            (Codec::Pcmu, 0),
            (Codec::G722, 9),
            (Codec::Opus, 111),
        ] {
            let p = Prompt::tone(codec, 20, 700, 200).unwrap();
            let step = p.timestamp_step();
            let spf = codec.samples_per_frame(20);
            let mut tap = AudioTap::new(codec, pt).unwrap();
            assert_eq!(tap.rate(), codec.sample_rate());
            let mut rec = Recording::new(tap.rate(), 10_000);
            let ts0 = u32::MAX - step; // wraps
            for n in 0..10u32 {
                if n == 4 {
                    continue; // lost
                }
                let pkt = rtp(
                    pt,
                    n as u16,
                    ts0.wrapping_add(n * step),
                    5,
                    p.frame(n as usize).unwrap(),
                );
                let d = tap.push(&pkt).unwrap();
                assert_eq!(
                    (d.gap, d.pcm.len()),
                    (if n == 5 { spf } else { 0 }, spf),
                    "{codec} {n}"
                );
                rec.push(&d);
                if n == 6 {
                    assert!(tap.push(&pkt).is_none(), "repeated");
                    let late = rtp(pt, 3, ts0.wrapping_add(3 * step), 5, p.frame(3).unwrap());
                    assert!(tap.push(&late).is_none(), "late");
                }
            }
            assert!(tap
                .push(&rtp(101, 20, ts0, 5, &[1, 0x8a, 0, 160]))
                .is_none());
            let pcm = rec.into_pcm();
            assert_eq!(pcm.len(), 10 * spf);
            assert!(pcm[4 * spf..5 * spf].iter().all(|&s| s == 0));
            // The tone is there: ~700 Hz by zero crossings over packets 6..10.
            let part = &pcm[6 * spf..10 * spf];
            let crossings = part.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
            assert!((108..=116).contains(&crossings), "{codec}: {crossings}");
        }
    }

    /// A recording stops growing at its bound, gaps included; a new SSRC restarts the clock.
    #[test]
    fn recording_is_bounded_and_ssrc_change_is_no_gap() {
        let p = Prompt::tone(Codec::Pcma, 20, 700, 100).unwrap();
        let mut tap = AudioTap::new(Codec::Pcma, 8).unwrap();
        let mut rec = Recording::new(8000, 50); // 400 samples
        let d = tap.push(&rtp(8, 1, 1000, 1, p.frame(0).unwrap())).unwrap();
        assert!(!rec.push(&d));
        let d = tap
            .push(&rtp(8, 2, 90_000, 2, p.frame(1).unwrap()))
            .unwrap();
        assert_eq!(d.gap, 0, "another source");
        assert!(!rec.push(&d));
        let d = tap
            .push(&rtp(8, 3, 90_000 + 800, 2, p.frame(2).unwrap()))
            .unwrap();
        assert_eq!(d.gap, 640);
        assert!(rec.push(&d));
        assert_eq!(rec.into_pcm().len(), 400);
        assert_eq!(
            Recording::new(16000, u32::MAX).max,
            16 * MAX_RECORD_MS as usize
        );
    }
}
