//! One outbound RTP stream of a shared, pre-encoded prompt (RFC 3550).
//!
//! The state is a handful of integers: which frame comes next, the sequence number, the
//! timestamp, the SSRC and how many plays are left. A sender (the simple per-call player
//! now, the batched pump later) asks it for the next packet, written into its own buffer.

use std::sync::Arc;

use codecs::Prompt;
use rtp_rs::{RtpPacketBuilder, Seq};

/// What a stream needs from the negotiation and the campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamParams {
    /// Payload type from the SDP answer.
    pub payload_type: u8,
    /// Random SSRC (RFC 3550 §8).
    pub ssrc: u32,
    /// Random first sequence number.
    pub first_seq: u16,
    /// Random first timestamp.
    pub first_timestamp: u32,
    /// How many times the prompt plays (at least once).
    pub play_count: u32,
    /// Silence between plays, in frames (sent as nothing: the timestamp advances).
    pub gap_frames: u32,
}

/// The sending state of one call's media.
#[derive(Debug, Clone)]
pub struct RtpStream {
    prompt: Arc<Prompt>,
    params: StreamParams,
    /// Index of the next frame within the current play.
    frame: usize,
    /// Plays finished so far.
    plays_done: u32,
    /// Frames of gap still to skip before the next play.
    gap_left: u32,
    seq: u16,
    timestamp: u32,
    first: bool,
    sent: u64,
    octets: u64,
}

impl RtpStream {
    /// A stream at the start of the prompt.
    pub fn new(prompt: Arc<Prompt>, params: StreamParams) -> Self {
        RtpStream {
            prompt,
            frame: 0,
            plays_done: 0,
            gap_left: 0,
            seq: params.first_seq,
            timestamp: params.first_timestamp,
            first: true,
            sent: 0,
            octets: 0,
            params,
        }
    }

    /// Packets produced so far.
    pub fn packets_sent(&self) -> u64 {
        self.sent
    }

    /// Payload octets sent so far (the RTCP sender report's octet count).
    pub fn octets_sent(&self) -> u64 {
        self.octets
    }

    /// The parameters the stream was made with.
    pub fn params(&self) -> &StreamParams {
        &self.params
    }

    /// RTP clock ticks per packet slot.
    pub fn timestamp_step(&self) -> u32 {
        self.prompt.timestamp_step()
    }

    /// The shared prompt.
    pub fn prompt(&self) -> &Arc<Prompt> {
        &self.prompt
    }

    /// Whether every play of the prompt has been sent.
    pub fn is_finished(&self) -> bool {
        self.plays_done >= self.params.play_count.max(1)
    }

    /// Writes the packet for the next 1-ptime slot into `buf` and returns its length;
    /// `Some(0)` for a slot of silence between plays (nothing to send), `None` at the end.
    pub fn next_packet(&mut self, buf: &mut [u8]) -> Option<usize> {
        if self.is_finished() {
            return None;
        }
        let step = self.prompt.timestamp_step();
        if self.gap_left > 0 {
            self.gap_left -= 1;
            self.timestamp = self.timestamp.wrapping_add(step);
            return Some(0);
        }
        let payload = self.prompt.frame(self.frame)?;
        let len = RtpPacketBuilder::new()
            .payload_type(self.params.payload_type)
            .ssrc(self.params.ssrc)
            .sequence(Seq::from(self.seq))
            .timestamp(self.timestamp)
            .marked(self.first)
            .payload(payload)
            .build_into(buf)
            .ok()?;
        self.first = false;
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(step);
        self.sent += 1;
        self.octets += payload.len() as u64;
        self.frame += 1;
        if self.frame >= self.prompt.frame_count() {
            self.frame = 0;
            self.plays_done += 1;
            if !self.is_finished() {
                self.gap_left = self.params.gap_frames;
                // A new talkspurt after silence carries the marker bit again.
                self.first = self.params.gap_frames > 0;
            }
        }
        Some(len)
    }
}
