//! The seam between the orchestrator and the media path: bind a port for the offer, play
//! the campaign's prompt on answer, stop. [`PumpMedia`] implements it over the batched
//! [`MediaPump`]; tests or another media engine can implement [`CallMedia`] instead.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use codecs::{Codec, EncodeSettings, Prompt};
use rand::Rng;
use tokio::sync::mpsc;

use crate::media::StreamParams;
use crate::net::{MediaEvent, MediaHandle, MediaPump, MediaStart, PumpConfig, RtpPort};
use crate::sip::sdp::NegotiatedMedia;

/// What the media path tells the orchestrator about a call (by its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaNote {
    /// The prompt played to the end `play_count` times: hang up.
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

    /// Packets one play of the prompt takes (for the share of the message played).
    fn packets_per_play(&self, prompt: &str) -> Option<u64>;

    /// Starts playing `prompt` to the answered call.
    fn start(
        &self,
        token: u64,
        port: Self::Port,
        media: &NegotiatedMedia,
        prompt: &str,
        play_count: u32,
    ) -> io::Result<()>;

    /// Stops a call's media; a [`MediaNote::Stopped`] follows.
    fn stop(&self, token: u64);
}

/// [`CallMedia`] over the batched [`MediaPump`], prompts loaded from WAV/MP3 files and
/// encoded once per codec (PCMU, PCMA).
pub struct PumpMedia {
    pump: MediaPump,
    ip: IpAddr,
    prompts: Mutex<HashMap<(String, u8), Arc<Prompt>>>,
    playing: Mutex<HashMap<u64, MediaHandle>>,
}

impl PumpMedia {
    /// Starts the pump on `ip` with RTP ports in `[min, max]`; notes arrive on the
    /// returned receiver.
    pub fn start(
        ip: IpAddr,
        min: u16,
        max: u16,
    ) -> io::Result<(Arc<PumpMedia>, mpsc::UnboundedReceiver<MediaNote>)> {
        let mut cfg = PumpConfig::new(ip);
        cfg.port_min = min;
        cfg.port_max = max;
        let (pump, mut events) = MediaPump::start(cfg)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let me = Arc::new(PumpMedia {
            pump,
            ip,
            prompts: Mutex::new(HashMap::new()),
            playing: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&me);
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                let note = match e {
                    MediaEvent::Finished { token, packets } => {
                        MediaNote::Finished { token, packets }
                    }
                    MediaEvent::Stopped { token, packets } => {
                        if let Some(m) = weak.upgrade() {
                            m.playing.lock().expect("lock").remove(&token);
                        }
                        MediaNote::Stopped { token, packets }
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
        });
        Ok((me, rx))
    }

    fn prompt(&self, prompt: &str, codec: Codec) -> io::Result<Arc<Prompt>> {
        let key = (prompt.to_string(), codec.payload_type());
        if let Some(p) = self.prompts.lock().expect("lock").get(&key) {
            return Ok(p.clone());
        }
        let p = Prompt::from_file(Path::new(prompt), codec, 20, &EncodeSettings::default())
            .map_err(|e| io::Error::other(format!("prompt {prompt}: {e}")))?;
        let p = Arc::new(p);
        self.prompts.lock().expect("lock").insert(key, p.clone());
        Ok(p)
    }
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
        for c in [Codec::Pcma, Codec::Pcmu] {
            self.prompt(prompt, c)?;
        }
        Ok(())
    }

    fn packets_per_play(&self, prompt: &str) -> Option<u64> {
        self.prompts
            .lock()
            .expect("lock")
            .get(&(prompt.to_string(), Codec::Pcmu.payload_type()))
            .map(|p| p.frame_count() as u64)
    }

    fn start(
        &self,
        token: u64,
        port: RtpPort,
        m: &NegotiatedMedia,
        prompt: &str,
        play_count: u32,
    ) -> io::Result<()> {
        let codec: Codec = m
            .codec
            .parse()
            .map_err(|e| io::Error::other(format!("codec {}: {e}", m.codec)))?;
        let p = self.prompt(prompt, codec)?;
        let mut rng = rand::rng();
        let h = self.pump.start_media(
            MediaStart {
                token,
                remote_rtp: m.remote_rtp,
                remote_rtcp: m.remote_rtcp,
                rtcp_mux: m.rtcp_mux,
                prompt: p,
                params: StreamParams {
                    payload_type: m.payload_type,
                    ssrc: rng.random(),
                    first_seq: rng.random(),
                    first_timestamp: rng.random(),
                    play_count: play_count.max(1),
                    gap_frames: 25,
                },
                clock_rate: m.clock_rate,
                telephone_event_pt: Some(crate::sip::sdp::TELEPHONE_EVENT_PT),
            },
            port,
        );
        self.playing.lock().expect("lock").insert(token, h);
        Ok(())
    }

    fn stop(&self, token: u64) {
        let h = self.playing.lock().expect("lock").get(&token).copied();
        if let Some(h) = h {
            self.pump.stop(h);
        }
    }
}
