//! One outbound RTP stream of shared, pre-encoded prompts (RFC 3550).
//!
//! The state is a handful of integers and the segments still to play: which frame comes next,
//! the sequence number, the timestamp, the SSRC. A campaign call plays one prompt `play_count`
//! times with silent gaps and ends; a call driven by a menu plays a playlist (prompts, tones,
//! silence) that can be replaced at any packet, and streams encoded silence between playlists
//! ("idle") until it is stopped. The sender (the batched pump) asks for the next packet, written
//! into its own buffer.

use std::collections::VecDeque;
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

/// A run of one prompt: played `plays` times, with `gap_frames` unsent frames between plays.
/// A tone is a prompt played once; a silence item is a one-packet silence prompt played once
/// per packet time.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Frames in the stream's codec and packet time.
    pub prompt: Arc<Prompt>,
    /// Plays (at least one).
    pub plays: u32,
    /// Frames left unsent between two plays.
    pub gap_frames: u32,
}

impl Segment {
    /// One play of `prompt`.
    pub fn once(prompt: Arc<Prompt>) -> Segment {
        Segment {
            prompt,
            plays: 1,
            gap_frames: 0,
        }
    }
}

/// The sending state of one call's media.
#[derive(Debug, Clone)]
pub struct RtpStream {
    params: StreamParams,
    /// What plays now.
    cur: Segment,
    /// What plays after it (empty for a campaign message).
    queue: VecDeque<Segment>,
    /// Streamed when everything else has played: a one-packet silence prompt (the stream never
    /// ends by itself), or `None` (the stream ends: a campaign message).
    idle: Option<Arc<Prompt>>,
    /// Whether `cur` is the idle silence.
    idling: bool,
    /// Index of the next frame within the current play.
    frame: usize,
    /// Plays of `cur` finished so far.
    plays_done: u32,
    /// Frames of gap still to skip before the next play.
    gap_left: u32,
    /// The playlist playing now, reported once its last item has been sent.
    play_id: Option<u32>,
    /// A playlist that has just ended (taken by [`RtpStream::take_played`]).
    played: Option<u32>,
    seq: u16,
    timestamp: u32,
    first: bool,
    sent: u64,
    octets: u64,
    /// Silence sent after the message's last play (one-frame prompt, frames left), so that
    /// a callee whose jitter buffer moves only as packets arrive plays the message out.
    tail: Option<(Arc<Prompt>, u32)>,
    /// Tail packets sent (not part of the message's count).
    tail_sent: u64,
}

impl RtpStream {
    /// A stream at the start of the prompt, played `params.play_count` times, then ending.
    pub fn new(prompt: Arc<Prompt>, params: StreamParams) -> Self {
        let cur = Segment {
            prompt,
            plays: params.play_count.max(1),
            gap_frames: params.gap_frames,
        };
        Self::with(cur, None, false, params)
    }

    /// A stream that plays nothing yet: it sends `silence` (one packet of encoded silence) every
    /// packet time until [`RtpStream::play`] gives it something, and never ends by itself.
    pub fn idle(silence: Arc<Prompt>, params: StreamParams) -> Self {
        let cur = Segment::once(silence.clone());
        Self::with(cur, Some(silence), true, params)
    }

    fn with(cur: Segment, idle: Option<Arc<Prompt>>, idling: bool, p: StreamParams) -> Self {
        RtpStream {
            cur,
            queue: VecDeque::new(),
            idle,
            idling,
            frame: 0,
            plays_done: 0,
            gap_left: 0,
            play_id: None,
            played: None,
            seq: p.first_seq,
            timestamp: p.first_timestamp,
            first: true,
            sent: 0,
            octets: 0,
            tail: None,
            tail_sent: 0,
            params: p,
        }
    }

    /// After its last play the stream sends `frames` packets of `silence` (a one-frame
    /// prompt in the stream's codec and packet time) before it ends: a jitter buffer that
    /// advances only when packets arrive (baresip's) would otherwise keep the message's last
    /// packets unplayed when the BYE comes.
    pub fn with_tail(mut self, silence: Arc<Prompt>, frames: u32) -> Self {
        self.tail = (frames > 0).then_some((silence, frames));
        self
    }

    /// Replaces whatever plays with `items` from the first frame of the first, from the next
    /// packet on; `silence` streams once they have played (and [`RtpStream::take_played`] then
    /// says `id`). Sequence numbers and timestamps run on; the first packet carries the marker
    /// bit. A playlist replaced before its end is never reported. Every prompt must be in the
    /// stream's codec and packet time.
    pub fn play(
        &mut self,
        items: impl IntoIterator<Item = Segment>,
        silence: Arc<Prompt>,
        id: u32,
    ) {
        self.queue.clear();
        self.queue.extend(items);
        self.idle = Some(silence);
        self.play_id = Some(id);
        self.played = None;
        self.first = true;
        self.next_segment();
    }

    /// The id of a playlist whose last packet has just been produced, once.
    pub fn take_played(&mut self) -> Option<u32> {
        self.played.take()
    }

    /// Moves to the next queued segment, or to the idle silence (reporting the playlist), or
    /// leaves the stream finished.
    fn next_segment(&mut self) {
        self.frame = 0;
        self.plays_done = 0;
        self.gap_left = 0;
        if let Some(s) = self.queue.pop_front() {
            self.cur = s;
            self.idling = false;
            return;
        }
        if let Some(id) = self.play_id.take() {
            self.played = Some(id);
        }
        if let Some(silence) = &self.idle {
            self.cur = Segment::once(silence.clone());
            self.idling = true;
        }
    }

    /// RTP packets produced so far, the silence tail included.
    pub fn packets_sent(&self) -> u64 {
        self.sent + self.tail_sent
    }

    /// Packets of the silence tail produced so far.
    pub fn tail_sent(&self) -> u64 {
        self.tail_sent
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
        self.cur.prompt.timestamp_step()
    }

    /// The prompt playing now.
    pub fn prompt(&self) -> &Arc<Prompt> {
        &self.cur.prompt
    }

    /// Whether every play has been sent and nothing follows (never for an idle stream).
    pub fn is_finished(&self) -> bool {
        !self.idling && self.queue.is_empty() && self.plays_done >= self.cur.plays.max(1)
    }

    /// Writes the packet for the next 1-ptime slot into `buf` and returns its length;
    /// `Some(0)` for a slot of silence between plays (nothing to send), `None` at the end.
    pub fn next_packet(&mut self, buf: &mut [u8]) -> Option<usize> {
        if self.is_finished() {
            return self.next_tail(buf);
        }
        let step = self.cur.prompt.timestamp_step();
        if self.gap_left > 0 {
            self.gap_left -= 1;
            self.timestamp = self.timestamp.wrapping_add(step);
            return Some(0);
        }
        let payload = self.cur.prompt.frame(self.frame)?;
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
        if self.frame >= self.cur.prompt.frame_count() {
            self.frame = 0;
            if self.idling {
                return Some(len);
            }
            self.plays_done += 1;
            if self.plays_done < self.cur.plays.max(1) {
                self.gap_left = self.cur.gap_frames;
                // A new talkspurt after silence carries the marker bit again.
                self.first = self.cur.gap_frames > 0;
            } else if !self.queue.is_empty() || self.idle.is_some() {
                self.next_segment();
            }
        }
        Some(len)
    }

    /// The next packet of the silence tail, `None` once it is spent.
    fn next_tail(&mut self, buf: &mut [u8]) -> Option<usize> {
        let (silence, left) = self.tail.as_mut()?;
        if *left == 0 {
            return None;
        }
        *left -= 1;
        let payload = silence.frame(0)?;
        let len = RtpPacketBuilder::new()
            .payload_type(self.params.payload_type)
            .ssrc(self.params.ssrc)
            .sequence(Seq::from(self.seq))
            .timestamp(self.timestamp)
            .payload(payload)
            .build_into(buf)
            .ok()?;
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(silence.timestamp_step());
        self.tail_sent += 1;
        self.octets += payload.len() as u64;
        Some(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codecs::Codec;

    fn tone(hz: u16, ms: u32) -> Arc<Prompt> {
        Arc::new(Prompt::tone(Codec::Pcma, 20, hz, ms).unwrap())
    }

    fn params() -> StreamParams {
        StreamParams {
            payload_type: 8,
            ssrc: 7,
            first_seq: 65534,
            first_timestamp: u32::MAX - 200,
            play_count: 1,
            gap_frames: 0,
        }
    }

    /// (seq, timestamp, marker, payload) of the next `n` packets.
    fn take(s: &mut RtpStream, n: usize) -> Vec<(u16, u32, bool, Vec<u8>)> {
        let mut buf = [0u8; 1024];
        (0..n)
            .map(|_| {
                let len = s.next_packet(&mut buf).unwrap();
                let r = rtp_rs::RtpReader::new(&buf[..len]).unwrap();
                (
                    r.sequence_number().into(),
                    r.timestamp(),
                    r.mark(),
                    r.payload().to_vec(),
                )
            })
            .collect()
    }

    /// Idle streams silence; a playlist starts at its first frame on the next packet with the
    /// marker bit, sequence and timestamp running on; its end is reported once and silence
    /// follows; a playlist replaced mid-way is never reported.
    #[test]
    fn playlists_replace_at_the_next_packet_and_report_their_end() {
        let silence = Arc::new(Prompt::silence(Codec::Pcma, 20, 20).unwrap());
        let (a, b) = (tone(440, 100), tone(1000, 60));
        let mut s = RtpStream::idle(silence.clone(), params());
        let idle = take(&mut s, 3);
        assert!(idle.iter().all(|p| p.3 == silence.frame(0).unwrap()));
        assert!(idle[0].2 && !idle[1].2);
        s.play(
            [Segment::once(a.clone()), Segment::once(b.clone())],
            silence.clone(),
            7,
        );
        let got = take(&mut s, 7);
        assert_eq!(got[0].0, idle[2].0.wrapping_add(1));
        assert_eq!(got[0].1, idle[2].1.wrapping_add(160));
        assert!(got[0].2, "new talkspurt");
        assert_eq!(got[0].3, a.frame(0).unwrap());
        assert_eq!(got[5].3, b.frame(0).unwrap());
        assert_eq!(s.take_played(), None, "one packet of b still to go");
        assert_eq!(take(&mut s, 1)[0].3, b.frame(2).unwrap());
        assert_eq!(s.take_played(), Some(7));
        assert_eq!(s.take_played(), None);
        assert_eq!(take(&mut s, 1)[0].3, silence.frame(0).unwrap());
        assert!(!s.is_finished());

        // Replaced after two packets: the old id is never reported.
        s.play([Segment::once(a.clone())], silence.clone(), 8);
        take(&mut s, 2);
        s.play([Segment::once(b.clone())], silence.clone(), 9);
        let got = take(&mut s, 3);
        assert_eq!(got[0].3, b.frame(0).unwrap());
        assert_eq!(s.take_played(), Some(9));
        // An empty playlist is played at once.
        s.play([], silence, 10);
        assert_eq!(s.take_played(), Some(10));
    }

    /// A campaign message plays its plays with gaps and ends; a replay from frame 0 (play)
    /// turns it into an idle stream once the new playlist has played.
    #[test]
    fn campaign_message_ends_unless_replaced() {
        let a = tone(440, 60);
        let mut s = RtpStream::new(
            a.clone(),
            StreamParams {
                play_count: 2,
                gap_frames: 2,
                ..params()
            },
        );
        let mut buf = [0u8; 1024];
        let lens: Vec<_> = std::iter::from_fn(|| s.next_packet(&mut buf)).collect();
        assert_eq!(lens.iter().filter(|&&l| l > 0).count(), 6);
        assert_eq!(lens.iter().filter(|&&l| l == 0).count(), 2);
        assert!(s.is_finished());

        let silence = Arc::new(Prompt::silence(Codec::Pcma, 20, 20).unwrap());
        let mut s = RtpStream::new(a.clone(), params());
        take(&mut s, 2);
        s.play([Segment::once(a.clone())], silence, 1);
        let got = take(&mut s, 4);
        assert_eq!(got[0].3, a.frame(0).unwrap());
        assert_eq!(s.take_played(), Some(1));
        assert!(!s.is_finished());
    }
}
