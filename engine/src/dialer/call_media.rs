//! The seam between the orchestrator and the media path: bind a port for the offer, play
//! the campaign's prompt on answer, stop; for menus (inbound lines, keys during the message)
//! start idle, play playlists, prepare prompts from memory and record the callee.
//! [`PumpMedia`] implements it over the batched [`MediaPump`](crate::net::MediaPump);
//! tests or another media engine can implement [`CallMedia`] instead.
//!
//! Prompts are encoded once: [`PumpMedia`] keeps each message as a
//! [`PromptSet`](codecs::PromptSet) whose encodings (every codec, at 20 ms and at each
//! trunk's `ptime_ms`) live in the on-disk [`PromptCache`](codecs::PromptCache); an answer
//! then picks the frames of its negotiated codec and packet time.

mod no_media;
mod pump_media;
mod sounds;

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::media::amd::{AmdConfig, AmdDecision};
use crate::media::MediaLatch;
use crate::sip::sdp::NegotiatedMedia;
pub use no_media::{NoMedia, NO_MEDIA_PORT};
pub use pump_media::{PumpMedia, PumpMediaConfig, PumpTuning};
pub use sounds::PlayItem;

/// Silence between two plays of the message.
const PLAY_GAP_MS: u32 = 500;

/// What the media path tells the orchestrator about a call (by its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaNote {
    /// The prompt played to the end `play_count` times, and the callee has had the time to
    /// play out its jitter buffer: hang up.
    Finished {
        /// Call token.
        token: u64,
        /// RTP packets sent.
        packets: u64,
    },
    /// Media stopped on request.
    Stopped {
        /// Call token.
        token: u64,
        /// RTP packets sent.
        packets: u64,
        /// Share of the message (all its plays) sent, in thousandths.
        played_permille: u32,
    },
    /// A key pressed (RFC 4733), noted at the press's first packet.
    Digit {
        /// Call token.
        token: u64,
        /// The key.
        digit: char,
    },
    /// The last item of the playlist `id` ([`CallMedia::play`]) has played; the call idles.
    Played {
        /// Call token.
        token: u64,
        /// The playlist's id.
        id: u32,
    },
    /// Answering-machine detection ([`CallMedia::analyse`]) decided: once per analysis.
    Amd {
        /// Call token.
        token: u64,
        /// Human, machine or unsure, when (ms of audio since `analyse`) and why.
        decision: AmdDecision,
    },
    /// A beep ended in the callee's audio (a voicemail's "record after the tone").
    Beep {
        /// Call token.
        token: u64,
        /// When the tone ended, in ms of received audio since `analyse`.
        at_ms: u32,
    },
    /// After a `machine` verdict, the machine's greeting stopped (silence from `at_ms`, in
    /// ms of received audio since `analyse`): without a beep, the recording is running.
    GreetingEnd {
        /// Call token.
        token: u64,
        /// Where the greeting's silence began.
        at_ms: u32,
    },
    /// A recording ([`CallMedia::record`]) ended: at its maximum, at
    /// [`CallMedia::stop_record`], or when the call's media stopped.
    Recorded {
        /// Call token.
        token: u64,
        /// The callee's audio, 16-bit mono.
        pcm: Arc<Vec<i16>>,
        /// Its sample rate: the codec's (8 kHz G.711, 16 kHz G.722, 48 kHz Opus).
        rate: u32,
    },
}

fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what}: not supported by this media"),
    )
}

/// Media for dialer calls.
pub trait CallMedia: Send + Sync + 'static {
    /// A reserved RTP port, released when dropped.
    type Port: Send + 'static;

    /// The address written in SDP offers.
    fn local_ip(&self) -> IpAddr;

    /// Reserves an RTP port for an offer.
    fn bind(&self) -> io::Result<Self::Port>;

    /// The port number of a reservation.
    fn port_number(port: &Self::Port) -> u16;

    /// Whether offers ask for media: false makes them `a=inactive` (signalling-only runs,
    /// [`NoMedia`]).
    fn offers_media(&self) -> bool {
        true
    }

    /// Loads (once) the prompt a campaign plays; errors when it cannot be used.
    fn prepare(&self, prompt: &str) -> io::Result<()>;

    /// Starts playing `prompt` to the answered call, in the answer's codec and packet time,
    /// accepting the callee's media by the trunk's `latch` policy.
    fn start(
        &self,
        token: u64,
        port: Self::Port,
        media: &NegotiatedMedia,
        prompt: &str,
        play_count: u32,
        latch: MediaLatch,
    ) -> io::Result<()>;

    /// Stops a call's media; a [`MediaNote::Stopped`] follows.
    fn stop(&self, token: u64);

    /// Starts media for an answered call with nothing playing yet (inbound calls, menus):
    /// encoded silence flows until [`CallMedia::play`]; keys and recordings work as for
    /// [`CallMedia::start`]. It never finishes by itself: [`CallMedia::stop`] ends it.
    fn start_idle(
        &self,
        token: u64,
        port: Self::Port,
        media: &NegotiatedMedia,
        latch: MediaLatch,
    ) -> io::Result<()> {
        let _ = (token, port, media, latch);
        Err(unsupported("start_idle"))
    }

    /// Replaces what the call plays now (within one packet time), from the first frame of the
    /// first item; [`MediaNote::Played`] with `id` when the last item has ended (none if
    /// replaced before), then silence.
    fn play(&self, token: u64, items: Vec<PlayItem>, id: u32) -> io::Result<()> {
        let _ = (token, items, id);
        Err(unsupported("play"))
    }

    /// Loads a prompt from audio in memory (TTS, a recording), levelled like uploads and
    /// encoded for every codec and packet time, under `name` (replacing a prompt of that
    /// name). Encoding costs CPU in proportion to the audio (tens of ms for a few seconds):
    /// call it off the dialer's task.
    fn prepare_pcm(&self, name: &str, pcm: &[i16], rate: u32) -> io::Result<()> {
        let _ = (name, pcm, rate);
        Err(unsupported("prepare_pcm"))
    }

    /// Captures the callee's audio decoded to 16-bit PCM at the codec's rate (PCMA, PCMU,
    /// G.722, Opus) until `max` or [`CallMedia::stop_record`]: then [`MediaNote::Recorded`].
    fn record(&self, token: u64, max: Duration) -> io::Result<()> {
        let _ = (token, max);
        Err(unsupported("record"))
    }

    /// Ends a recording now (its [`MediaNote::Recorded`] follows).
    fn stop_record(&self, token: u64) {
        let _ = token;
    }

    /// Runs answering-machine and beep detection ([`crate::media::amd`]) on the callee's audio
    /// from now: [`MediaNote::Amd`] once, [`MediaNote::Beep`] per beep (for a minute).
    fn analyse(&self, token: u64, cfg: AmdConfig) -> io::Result<()> {
        let _ = (token, cfg);
        Err(unsupported("analyse"))
    }
}
