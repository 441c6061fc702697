//! The seam between the orchestrator and the media path: bind a port for the offer, play
//! the campaign's prompt on answer, stop. [`PumpMedia`] implements it over the batched
//! [`MediaPump`]; tests or another media engine can implement [`CallMedia`] instead.
//!
//! Prompts are encoded once: [`PumpMedia`] keeps each message as a [`PromptSet`] whose
//! encodings (every codec, at 20 ms and at each trunk's `ptime_ms`) live in the on-disk
//! [`PromptCache`]; an answer then picks the frames of its negotiated codec and packet time.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use codecs::{wanted_encodings, Codec, EncodeSettings, Prompt, PromptCache, PromptSet};
use rand::Rng;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::media::{MediaLatch, StreamParams};
use crate::net::{MediaEvent, MediaHandle, MediaPump, MediaStart, PumpConfig, RtpPort};
use crate::sip::sdp::NegotiatedMedia;

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
    /// A playlist given to `play` played to its end (none when replaced before).
    Played {
        /// Call token.
        token: u64,
        /// The playlist's id.
        id: u32,
    },
    /// A key pressed (RFC 4733).
    Digit {
        /// Call token.
        token: u64,
        /// The key.
        digit: char,
    },
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
}

/// How [`PumpMedia`] runs.
#[derive(Debug, Clone)]
pub struct PumpMediaConfig {
    /// Media address (SDP and sockets).
    pub ip: IpAddr,
    /// Lowest RTP port.
    pub port_min: u16,
    /// Highest RTP port.
    pub port_max: u16,
    /// Directory of encoded prompts (next to the data directory); `None` keeps them in memory
    /// only (encoded again after a restart).
    pub prompt_cache: Option<PathBuf>,
    /// Packet times the trunks use (`ptime_ms`); every prompt is encoded for these and 20 ms.
    pub ptimes: Vec<u32>,
}

/// One call being played: its pump handle and how many packets all its plays take.
struct Playing {
    handle: MediaHandle,
    total_packets: u64,
}

/// [`CallMedia`] over the batched [`MediaPump`], prompts from WAV/MP3 files encoded once per
/// codec and packet time (PCMU, PCMA, G.722, Opus) into the prompt cache.
pub struct PumpMedia {
    pump: MediaPump,
    ip: IpAddr,
    cache: Option<PromptCache>,
    ptimes: Vec<u32>,
    prompts: Mutex<HashMap<String, Arc<PromptSet>>>,
    encoding: Arc<Mutex<HashSet<(String, Codec, u32)>>>,
    playing: Mutex<HashMap<u64, Playing>>,
}

impl PumpMedia {
    /// Starts the pump; notes arrive on the returned receiver.
    pub fn start(
        cfg: PumpMediaConfig,
    ) -> io::Result<(Arc<PumpMedia>, mpsc::UnboundedReceiver<MediaNote>)> {
        let mut pc = PumpConfig::new(cfg.ip);
        pc.port_min = cfg.port_min;
        pc.port_max = cfg.port_max;
        let cache = match &cfg.prompt_cache {
            Some(dir) => Some(PromptCache::new(dir).map_err(|e| io::Error::other(e.to_string()))?),
            None => None,
        };
        let (pump, events) = MediaPump::start(pc)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let me = Arc::new(PumpMedia {
            pump,
            ip: cfg.ip,
            cache,
            ptimes: cfg.ptimes,
            prompts: Mutex::new(HashMap::new()),
            encoding: Arc::new(Mutex::new(HashSet::new())),
            playing: Mutex::new(HashMap::new()),
        });
        tokio::spawn(forward_notes(Arc::downgrade(&me), events, tx));
        Ok((me, rx))
    }

    /// The message of `prompt` (a file path), opened once.
    fn set(&self, prompt: &str) -> io::Result<Arc<PromptSet>> {
        if let Some(s) = self.prompts.lock().expect("lock").get(prompt) {
            return Ok(s.clone());
        }
        let set = PromptSet::open(prompt, EncodeSettings::default(), self.cache.clone())
            .map_err(|e| io::Error::other(format!("prompt {prompt}: {e}")))?;
        let set = Arc::new(set);
        self.prompts
            .lock()
            .expect("lock")
            .insert(prompt.to_string(), set.clone());
        Ok(set)
    }

    /// The frames to stream for this answer: its codec at its packet time when encoded, else
    /// (while that packet time is encoded in the background, once) the codec at 20 ms.
    fn frames_for(
        &self,
        prompt: &str,
        codec: Codec,
        m: &NegotiatedMedia,
    ) -> io::Result<Arc<Prompt>> {
        let set = self.set(prompt)?;
        let ptime = codec.stream_ptime(m.ptime_ms, m.maxptime_ms);
        if let Some(p) = set.get(codec, ptime) {
            return Ok(p);
        }
        self.encode_later(prompt, &set, codec, ptime);
        let fallback = codec.stream_ptime(codecs::DEFAULT_PTIME_MS, m.maxptime_ms);
        set.ensure(codec, fallback)
            .map_err(|e| io::Error::other(format!("prompt {prompt}: {e}")))
    }

    /// Encodes `codec` at `ptime` on a thread of its own (once), for the next calls.
    fn encode_later(&self, prompt: &str, set: &Arc<PromptSet>, codec: Codec, ptime: u32) {
        let key = (prompt.to_string(), codec, ptime);
        if !self.encoding.lock().expect("lock").insert(key.clone()) {
            return;
        }
        let (set, encoding) = (set.clone(), self.encoding.clone());
        std::thread::spawn(move || {
            match set.ensure(codec, ptime) {
                Ok(_) => debug!(prompt = %key.0, %codec, ptime, "prompt encoded for a new ptime"),
                Err(e) => warn!(prompt = %key.0, %codec, ptime, error = %e, "prompt encoding"),
            }
            encoding.lock().expect("lock").remove(&key);
        });
    }
}

/// Turns pump events into notes until either side closes.
async fn forward_notes(
    me: std::sync::Weak<PumpMedia>,
    mut events: mpsc::UnboundedReceiver<MediaEvent>,
    tx: mpsc::UnboundedSender<MediaNote>,
) {
    while let Some(e) = events.recv().await {
        let note = match e {
            MediaEvent::Finished { token, packets } => MediaNote::Finished { token, packets },
            MediaEvent::Stopped { token, packets } => {
                let total = me
                    .upgrade()
                    .and_then(|m| m.playing.lock().expect("lock").remove(&token))
                    .map_or(0, |p| p.total_packets);
                MediaNote::Stopped {
                    token,
                    packets,
                    played_permille: played_permille(packets, total),
                }
            }
            MediaEvent::Dtmf { token, event } => MediaNote::Digit {
                token,
                digit: event.digit,
            },
        };
        if tx.send(note).is_err() {
            break;
        }
    }
}

/// Thousandths of `total` that `sent` is (0 when nothing was to be sent).
fn played_permille(sent: u64, total: u64) -> u32 {
    if total == 0 {
        return 0;
    }
    (sent.saturating_mul(1000) / total).min(1000) as u32
}

impl CallMedia for PumpMedia {
    type Port = RtpPort;

    fn local_ip(&self) -> IpAddr {
        self.ip
    }

    fn bind(&self) -> io::Result<RtpPort> {
        self.pump.bind_port()
    }

    fn port_number(port: &RtpPort) -> u16 {
        port.port()
    }

    fn prepare(&self, prompt: &str) -> io::Result<()> {
        self.set(prompt)?
            .load(&wanted_encodings(&self.ptimes))
            .map_err(|e| io::Error::other(format!("prompt {prompt}: {e}")))
    }

    fn start(
        &self,
        token: u64,
        port: RtpPort,
        m: &NegotiatedMedia,
        prompt: &str,
        play_count: u32,
        latch: MediaLatch,
    ) -> io::Result<()> {
        let codec: Codec = m
            .codec
            .parse()
            .map_err(|e| io::Error::other(format!("codec {}: {e}", m.codec)))?;
        let p = self.frames_for(prompt, codec, m)?;
        let plays = play_count.max(1);
        let total_packets = p.frame_count() as u64 * u64::from(plays);
        let mut rng = rand::rng();
        let params = StreamParams {
            payload_type: m.payload_type,
            ssrc: rng.random(),
            first_seq: rng.random(),
            first_timestamp: rng.random(),
            play_count: plays,
            gap_frames: PLAY_GAP_MS / p.ptime_ms().max(1),
        };
        let handle = self.pump.start_media(
            MediaStart {
                token,
                remote_rtp: m.remote_rtp,
                remote_rtcp: m.remote_rtcp,
                rtcp_mux: m.rtcp_mux,
                prompt: p,
                params,
                clock_rate: m.clock_rate,
                telephone_event_pt: Some(crate::sip::sdp::TELEPHONE_EVENT_PT),
                latch,
            },
            port,
        );
        self.playing.lock().expect("lock").insert(
            token,
            Playing {
                handle,
                total_packets,
            },
        );
        Ok(())
    }

    fn stop(&self, token: u64) {
        let h = self
            .playing
            .lock()
            .expect("lock")
            .get(&token)
            .map(|p| p.handle);
        if let Some(h) = h {
            self.pump.stop(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::sdp::Direction;

    fn answer(codec: &'static str, pt: u8, clock: u32, ptime: u32) -> NegotiatedMedia {
        NegotiatedMedia {
            remote_rtp: "127.0.0.1:9".parse().unwrap(),
            remote_rtcp: None,
            rtcp_mux: true,
            payload_type: pt,
            codec,
            clock_rate: clock,
            fmtp: None,
            ptime_ms: ptime,
            maxptime_ms: None,
            telephone_event_pt: None,
            direction: Direction::SendRecv,
        }
    }

    /// The answer's codec and packet time pick the frames: prepared ones from the cache, a
    /// packet time the codec cannot do falls back to 20 ms, one not prepared is streamed at
    /// 20 ms while it is encoded once in the background.
    #[tokio::test]
    async fn frames_follow_the_negotiated_codec_and_ptime() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("m.wav");
        let s: Vec<i16> = (0..8000)
            .map(|i| ((i as f32 * 0.2).sin() * 8000.0) as i16)
            .collect();
        std::fs::write(&wav, codecs::wav::to_wav_bytes(&s, 8000).unwrap()).unwrap();
        let (media, _notes) = PumpMedia::start(PumpMediaConfig {
            ip: "127.0.0.1".parse().unwrap(),
            port_min: 47000,
            port_max: 47999,
            prompt_cache: Some(dir.path().join("cache")),
            ptimes: vec![30],
        })
        .unwrap();
        let prompt = wav.to_str().unwrap();
        media.prepare(prompt).unwrap();
        let f = |m: NegotiatedMedia| {
            media
                .frames_for(prompt, m.codec.parse().unwrap(), &m)
                .unwrap()
        };
        let p = f(answer("PCMA", 8, 8000, 30));
        assert_eq!(
            (p.codec(), p.ptime_ms(), p.frame(0).unwrap().len()),
            (Codec::Pcma, 30, 240)
        );
        let p = f(answer("G722", 9, 8000, 20));
        assert_eq!((p.codec(), p.frame(0).unwrap().len()), (Codec::G722, 160));
        let p = f(answer("opus", 111, 48000, 30));
        assert_eq!(
            (p.codec(), p.ptime_ms()),
            (Codec::Opus, 20),
            "no 30 ms Opus frame"
        );
        // 40 ms was not prepared: 20 ms now, 40 ms once the background encoding is done.
        let p = f(answer("PCMU", 0, 8000, 40));
        assert_eq!(p.ptime_ms(), 20);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if f(answer("PCMU", 0, 8000, 40)).ptime_ms() == 40 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "40 ms never encoded");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn share_played() {
        assert_eq!(played_permille(0, 0), 0);
        assert_eq!(played_permille(50, 200), 250);
        assert_eq!(played_permille(300, 200), 1000);
    }
}
