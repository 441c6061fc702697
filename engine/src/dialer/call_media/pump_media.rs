//! [`CallMedia`] over the batched [`MediaPump`]: prompts encoded once per codec and packet
//! time into the prompt cache, calls started on an answer or idle, pump events turned into
//! [`MediaNote`]s.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codecs::{wanted_encodings, Codec, EncodeSettings, Prompt, PromptCache, PromptSet};
use rand::Rng;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::sounds::{self, Generated, MemoryNames, PlayItem};
use super::{CallMedia, MediaNote, PLAY_GAP_MS};
use crate::id_map::IdMap;
use crate::media::amd::AmdConfig;
use crate::media::{MediaLatch, StreamParams};
use crate::net::pump::{EventTx, Playlist, RecordSpec};
use crate::net::{
    MediaEvent, MediaHandle, MediaPump, MediaStart, PumpConfig, PumpStats, RtpPort, SendMode,
};
use crate::sip::sdp::NegotiatedMedia;

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

/// How [`PumpMedia`] paces, for tools that choose (`dialer call`); [`PumpMedia::start`]
/// uses the defaults.
#[derive(Debug, Clone, Copy)]
pub struct PumpTuning {
    /// Pacing threads (0: one per core).
    pub loops: usize,
    /// How RTP leaves (raw socket batches or per-socket sends).
    pub send_mode: SendMode,
    /// Silence between two plays of the message, in milliseconds.
    pub play_gap_ms: u32,
}

impl Default for PumpTuning {
    fn default() -> Self {
        PumpTuning {
            loops: 0,
            send_mode: SendMode::Auto,
            play_gap_ms: PLAY_GAP_MS,
        }
    }
}

/// One call being played: its pump handle, how many packets all its plays take, and the
/// codec and packet time its stream runs at (what playlists are resolved to).
struct Playing {
    handle: MediaHandle,
    total_packets: u64,
    codec: Codec,
    ptime: u32,
    payload_type: u8,
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
    /// Calls with media, shared with the pump's event function (a stopped call's
    /// share played is figured from its total packets there).
    playing: Arc<Mutex<IdMap<u64, Playing>>>,
    play_gap_ms: u32,
    generated: Generated,
    memory_names: Mutex<MemoryNames>,
}

impl PumpMedia {
    /// Starts the pump; notes arrive on the returned receiver.
    pub fn start(
        cfg: PumpMediaConfig,
    ) -> io::Result<(Arc<PumpMedia>, mpsc::UnboundedReceiver<MediaNote>)> {
        PumpMedia::start_tuned(cfg, PumpTuning::default())
    }

    /// Starts the pump paced as `tuning` says; notes arrive on the returned receiver.
    pub fn start_tuned(
        cfg: PumpMediaConfig,
        tuning: PumpTuning,
    ) -> io::Result<(Arc<PumpMedia>, mpsc::UnboundedReceiver<MediaNote>)> {
        let mut pc = PumpConfig::new(cfg.ip);
        pc.port_min = cfg.port_min;
        pc.port_max = cfg.port_max;
        pc.loops = tuning.loops;
        pc.send_mode = tuning.send_mode;
        let cache = match &cfg.prompt_cache {
            Some(dir) => Some(PromptCache::new(dir).map_err(|e| io::Error::other(e.to_string()))?),
            None => None,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let playing = Arc::new(Mutex::new(IdMap::default()));
        let events = {
            let playing = playing.clone();
            EventTx::new(move |e| {
                let _ = tx.send(note_of(e, &playing));
            })
        };
        let pump = MediaPump::start_with(pc, events)?;
        let me = Arc::new(PumpMedia {
            pump,
            ip: cfg.ip,
            cache,
            ptimes: cfg.ptimes,
            prompts: Mutex::new(HashMap::new()),
            encoding: Arc::new(Mutex::new(HashSet::new())),
            playing,
            play_gap_ms: tuning.play_gap_ms,
            generated: Generated::default(),
            memory_names: Mutex::new(MemoryNames::default()),
        });
        Ok((me, rx))
    }

    /// Stops the pacing loops and returns what they did (sends, lag, loop CPU).
    pub fn shutdown(&self) -> PumpStats {
        self.pump.shutdown()
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

    /// A prompt's frames at exactly `codec` and `ptime` (a playlist joins a running stream):
    /// loaded or encoded now if it was not prepared for that packet time.
    fn frames_exact(&self, prompt: &str, codec: Codec, ptime: u32) -> io::Result<Arc<Prompt>> {
        let set = self.set(prompt)?;
        if let Some(p) = set.get(codec, ptime) {
            return Ok(p);
        }
        set.ensure(codec, ptime)
            .map_err(|e| io::Error::other(format!("prompt {prompt}: {e}")))
    }

    /// The pump handle, codec, packet time and payload type of a call's media.
    fn call(&self, token: u64) -> io::Result<(MediaHandle, Codec, u32, u8)> {
        self.playing
            .lock()
            .expect("lock")
            .get(&token)
            .map(|p| (p.handle, p.codec, p.ptime, p.payload_type))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no media for call {token}"),
                )
            })
    }

    /// Starts a stream on the pump and remembers it.
    fn launch(&self, start: MediaStart, port: RtpPort, codec: Codec, total_packets: u64) {
        let (token, ptime, payload_type) = (
            start.token,
            start.prompt.ptime_ms(),
            start.params.payload_type,
        );
        let handle = self.pump.start_media(start, port);
        self.playing.lock().expect("lock").insert(
            token,
            Playing {
                handle,
                total_packets,
                codec,
                ptime,
                payload_type,
            },
        );
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

/// The dialer's note of a pump event, made on the pacing loop's thread and sent from there
/// straight to the dialer's (a task in between would be one more thread wake-up per event).
fn note_of(e: MediaEvent, playing: &Mutex<IdMap<u64, Playing>>) -> MediaNote {
    match e {
        MediaEvent::Finished { token, packets } => MediaNote::Finished { token, packets },
        MediaEvent::Stopped { token, packets } => {
            let total = playing
                .lock()
                .expect("lock")
                .remove(&token)
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
        MediaEvent::Played { token, id } => MediaNote::Played { token, id },
        MediaEvent::Recorded { token, pcm, rate } => MediaNote::Recorded { token, pcm, rate },
        MediaEvent::Amd { token, decision } => MediaNote::Amd { token, decision },
        MediaEvent::Beep { token, at_ms } => MediaNote::Beep { token, at_ms },
        MediaEvent::GreetingEnd { token, at_ms } => MediaNote::GreetingEnd { token, at_ms },
    }
}

/// The codec an answer settled on, as the encoder knows it.
fn negotiated_codec(m: &NegotiatedMedia) -> io::Result<Codec> {
    m.codec
        .parse()
        .map_err(|e| io::Error::other(format!("codec {}: {e}", m.codec)))
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
        let codec = negotiated_codec(m)?;
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
            gap_frames: self.play_gap_ms / p.ptime_ms().max(1),
        };
        let start = MediaStart {
            token,
            remote_rtp: m.remote_rtp,
            remote_rtcp: m.remote_rtcp,
            rtcp_mux: m.rtcp_mux,
            prompt: p,
            params,
            clock_rate: m.clock_rate,
            telephone_event_pt: Some(crate::sip::sdp::TELEPHONE_EVENT_PT),
            latch,
            srtp: m.srtp.clone(),
            idle: false,
        };
        self.launch(start, port, codec, total_packets);
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

    fn start_idle(
        &self,
        token: u64,
        port: RtpPort,
        m: &NegotiatedMedia,
        latch: MediaLatch,
    ) -> io::Result<()> {
        let codec = negotiated_codec(m)?;
        let ptime = codec.stream_ptime(m.ptime_ms, m.maxptime_ms);
        let silence = self.generated.silence(codec, ptime)?;
        let mut rng = rand::rng();
        let start = MediaStart {
            token,
            remote_rtp: m.remote_rtp,
            remote_rtcp: m.remote_rtcp,
            rtcp_mux: m.rtcp_mux,
            prompt: silence,
            params: StreamParams {
                payload_type: m.payload_type,
                ssrc: rng.random(),
                first_seq: rng.random(),
                first_timestamp: rng.random(),
                play_count: 1,
                gap_frames: 0,
            },
            clock_rate: m.clock_rate,
            // The number the answer gave (ours on an inbound call echoes the caller's).
            telephone_event_pt: Some(
                m.telephone_event_pt
                    .unwrap_or(crate::sip::sdp::TELEPHONE_EVENT_PT),
            ),
            latch,
            srtp: m.srtp.clone(),
            idle: true,
        };
        self.launch(start, port, codec, 0);
        Ok(())
    }

    fn play(&self, token: u64, items: Vec<PlayItem>, id: u32) -> io::Result<()> {
        let (handle, codec, ptime, _) = self.call(token)?;
        let items = sounds::segments(&items, codec, ptime, &self.generated, |name| {
            self.frames_exact(name, codec, ptime)
        })?;
        let silence = self.generated.silence(codec, ptime)?;
        self.pump.play(handle, Playlist { items, silence, id });
        Ok(())
    }

    fn prepare_pcm(&self, name: &str, pcm: &[i16], rate: u32) -> io::Result<()> {
        let set = PromptSet::from_pcm(name, pcm, rate, EncodeSettings::default(), None)
            .map_err(|e| io::Error::other(format!("prompt {name}: {e}")))?;
        set.load(&wanted_encodings(&self.ptimes))
            .map_err(|e| io::Error::other(format!("prompt {name}: {e}")))?;
        let forget = self.memory_names.lock().expect("lock").add(name);
        let mut prompts = self.prompts.lock().expect("lock");
        if let Some(old) = forget {
            prompts.remove(&old);
        }
        prompts.insert(name.to_string(), Arc::new(set));
        Ok(())
    }

    fn record(&self, token: u64, max: Duration) -> io::Result<()> {
        let (handle, codec, _, payload_type) = self.call(token)?;
        let max_ms = u32::try_from(max.as_millis()).unwrap_or(u32::MAX);
        self.pump.record(
            handle,
            RecordSpec {
                codec,
                payload_type,
                max_ms,
            },
        );
        Ok(())
    }

    fn stop_record(&self, token: u64) {
        if let Ok((handle, ..)) = self.call(token) {
            self.pump.stop_record(handle);
        }
    }

    fn analyse(&self, token: u64, cfg: AmdConfig) -> io::Result<()> {
        cfg.validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let (handle, codec, _, payload_type) = self.call(token)?;
        self.pump.analyse(handle, cfg, codec, payload_type);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
