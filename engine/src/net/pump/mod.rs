//! The media pump: a few pacing threads (one per core by default) that send every call's RTP
//! in batches and read what the far ends send, with no task, timer or allocation per call
//! or per packet.
//!
//! # Per-call ports that still batch
//!
//! SBCs expect each call's media on its own even port (RTP) with RTCP on the odd port above,
//! and many latch onto the source port of what we send, so every call's packets must *leave*
//! from its own port too. `sendmmsg` batches datagrams of one socket only, so one socket per
//! call would mean one system call per packet. The pump therefore separates receiving from
//! sending:
//!
//! - **Receiving and reserving:** each call binds its own UDP sockets (even RTP port, RTCP
//!   port + 1) from the configured range. They reserve the ports, receive the far end's
//!   packets (registered in the loop's `epoll`, drained with `recvmmsg`) and stop the kernel
//!   from answering with ICMP port-unreachable.
//! - **Sending ([`SendMode::Raw`]):** each loop owns one raw IPv4 socket (`IPPROTO_RAW`, so
//!   the pump writes the IP and UDP headers itself, with the call's port as the source port)
//!   and hands a whole slot's packets to the kernel in one `sendmmsg`, whatever call they
//!   belong to. It needs `CAP_NET_RAW` and an IPv4 media address; the UDP checksum is left 0,
//!   which RFC 768 allows over IPv4; DSCP is EF (46) as voice should be.
//! - **Fallback ([`SendMode::PerSocket`]):** without the capability (or for IPv6) the loop
//!   sends each packet with `sendto` on the call's own socket: still one loop per core, no task
//!   or timer per call, but one system call per packet.
//!
//! [`SendMode::Auto`] tries raw and falls back. The cost of each mode is measured by
//! `loadtest` (see `loadtest/README.md`).
//!
//! File descriptors: two per call, plus the pairs the pacing threads bound ahead for the next
//! calls (`port_stock`: 50 ms of the recent call rate, at most 500 pairs, none when idle).
//! [`MediaPump::start`] raises `RLIMIT_NOFILE` to its hard limit; when binding still fails
//! for lack of descriptors the error names the limit.

mod detectors;
mod event_loop;
mod event_tx;
mod inbound;
mod lag;
mod port_stock;
mod send;
mod sys;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use codecs::{Codec, Prompt};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::media::amd::{AmdConfig, AmdDecision};
use crate::media::pacer::PacerConfig;
use crate::media::{DtmfEvent, MediaLatch, Segment, StreamParams};
use event_loop::{Loop, LoopShared};
pub use event_tx::EventTx;
pub use lag::LagHistogram;
use port_stock::PortStock;
pub use sys::{open_raw_socket, raise_fd_limit, write_ipv4_udp};

/// How packets leave. See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendMode {
    /// Raw IPv4 socket with `sendmmsg` when permitted, else per-socket `sendto`.
    Auto,
    /// Raw IPv4 socket with `sendmmsg` (fails to start without `CAP_NET_RAW`).
    Raw,
    /// `sendto` on each call's socket.
    PerSocket,
}

/// Pump settings.
#[derive(Debug, Clone)]
pub struct PumpConfig {
    /// Pacing threads (0: one per available core).
    pub loops: usize,
    /// Address media sockets bind to (and the source address of raw sends).
    pub bind_ip: IpAddr,
    /// Lowest port of the RTP range (rounded up to even).
    pub port_min: u16,
    /// Highest port of the range.
    pub port_max: u16,
    /// How packets leave.
    pub send_mode: SendMode,
    /// Slot, phases, RTCP interval, batch size (headroom and NTP origin are set by the pump).
    pub pacer: PacerConfig,
    /// Run the pacing threads under `SCHED_FIFO` (priority 10) when permitted, so that a busy
    /// machine delays other work rather than the voice. Each loop sleeps between slots, and
    /// the kernel's real-time throttling still bounds it.
    pub realtime: bool,
    /// Pin each pacing thread to its own CPU. A thread that migrates between CPUs puts one
    /// stream's packets on two CPUs' transmit paths (per-CPU loopback backlogs, per-CPU NIC
    /// queues with XPS), where a later packet can overtake an earlier one: a stream's packets
    /// must leave in sequence.
    pub pin_cpus: bool,
}

impl PumpConfig {
    /// Defaults for media bound on `bind_ip`: ports 20000–39999, automatic send mode.
    pub fn new(bind_ip: IpAddr) -> Self {
        PumpConfig {
            loops: 0,
            bind_ip,
            port_min: 20000,
            port_max: 39999,
            send_mode: SendMode::Auto,
            pacer: PacerConfig::default(),
            realtime: true,
            pin_cpus: true,
        }
    }
}

/// A call's reserved media ports, bound before the offer is sent.
#[derive(Debug)]
pub struct RtpPort {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    port: u16,
}

impl RtpPort {
    /// The even RTP port to put in the SDP offer (RTCP is on the port above).
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// What a call needs to start its media.
#[derive(Debug, Clone)]
pub struct MediaStart {
    /// The caller's token for the call (returned in every event).
    pub token: u64,
    /// Where RTP goes (the answer's address).
    pub remote_rtp: SocketAddr,
    /// Where RTCP goes, if anywhere.
    pub remote_rtcp: Option<SocketAddr>,
    /// The answer has `a=rtcp-mux`.
    pub rtcp_mux: bool,
    /// The prompt.
    pub prompt: Arc<Prompt>,
    /// RTP parameters (payload type from the answer, random SSRC/seq/timestamp, plays).
    pub params: StreamParams,
    /// RTP clock rate of the codec.
    pub clock_rate: u32,
    /// Payload type of telephone-events the far end sends (what our offer numbered), if any.
    pub telephone_event_pt: Option<u8>,
    /// Whom the callee's media is accepted from (the trunk's `media_latch`).
    pub latch: MediaLatch,
    /// SRTP keys (ours, theirs) when the call is encrypted: the loop protects every packet
    /// in its batch and refuses received packets whose tag does not check.
    pub srtp: Option<crate::sip::sdp::crypto::SrtpKeys>,
    /// Nothing plays yet: `prompt` is one packet of silence, streamed until
    /// [`MediaPump::play`] gives the call a playlist (inbound calls, menus); the media never
    /// finishes by itself.
    pub idle: bool,
}

/// Something a call must know about its media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// The prompt has played `play_count` times: hang up.
    Finished {
        /// The call's token.
        token: u64,
        /// RTP packets sent.
        packets: u64,
    },
    /// Answer to [`MediaPump::stop`]: the media is stopped and its ports released.
    Stopped {
        /// The call's token.
        token: u64,
        /// RTP packets sent in all.
        packets: u64,
    },
    /// The callee pressed a key (RFC 4733), noted at the press's first packet.
    Dtmf {
        /// The call's token.
        token: u64,
        /// The key.
        event: DtmfEvent,
    },
    /// The last item of a playlist ([`MediaPump::play`]) has been sent; the call idles.
    Played {
        /// The call's token.
        token: u64,
        /// The playlist's id.
        id: u32,
    },
    /// Answering-machine detection ([`MediaPump::analyse`]) decided (once per analysis).
    Amd {
        /// The call's token.
        token: u64,
        /// Human, machine or unsure, when and why.
        decision: AmdDecision,
    },
    /// A beep ended in the callee's audio, `at_ms` after the analysis started.
    Beep {
        /// The call's token.
        token: u64,
        /// When the tone ended, in ms of received audio since [`MediaPump::analyse`].
        at_ms: u32,
    },
    /// After a `machine` verdict, the greeting stopped: silence from `at_ms` (ms of received
    /// audio since [`MediaPump::analyse`]) for the configured after-greeting silence.
    GreetingEnd {
        /// The call's token.
        token: u64,
        /// Where the silence began.
        at_ms: u32,
    },
    /// A recording ([`MediaPump::record`]) ended: full, stopped, or the call's media stopped.
    Recorded {
        /// The call's token.
        token: u64,
        /// The callee's audio as 16-bit samples.
        pcm: Arc<Vec<i16>>,
        /// Their sample rate (the codec's).
        rate: u32,
    },
}

/// A playlist for [`MediaPump::play`], in the call's codec and packet time.
#[derive(Debug, Clone)]
pub struct Playlist {
    /// What plays, in order.
    pub items: Vec<Segment>,
    /// One packet of silence, streamed once the items have played.
    pub silence: Arc<Prompt>,
    /// Returned in [`MediaEvent::Played`].
    pub id: u32,
}

/// What [`MediaPump::record`] captures.
#[derive(Debug, Clone, Copy)]
pub struct RecordSpec {
    /// The call's codec (what its audio is decoded from).
    pub codec: Codec,
    /// The payload type of that codec in the answer.
    pub payload_type: u8,
    /// Longest recording, in milliseconds (capped at [`crate::media::tap::MAX_RECORD_MS`]).
    pub max_ms: u32,
}

/// Which loop plays a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaHandle {
    loop_index: usize,
    token: u64,
}

/// Totals over every loop, for reports.
#[derive(Debug, Clone, Default)]
pub struct PumpStats {
    /// RTP packets handed to the kernel.
    pub rtp_sent: u64,
    /// RTCP packets handed to the kernel.
    pub rtcp_sent: u64,
    /// Packets the kernel refused.
    pub send_errors: u64,
    /// Packets received and accepted (from the locked source).
    pub received: u64,
    /// Packets received and dropped because of their source or SSRC.
    pub dropped_source: u64,
    /// Datagrams received that are not RTP or RTCP (STUN, DTLS, garbage): dropped, and never
    /// allowed to lock a call's source.
    pub not_rtp: u64,
    /// Calls whose media latched onto an address other than their SDP's (symmetric RTP).
    pub relatched: u64,
    /// Received SRTP/SRTCP packets refused, by reason: bad tag, replay, too short.
    pub srtp_refused: [u64; 3],
    /// Send lag (actual send time minus schedule) of every RTP packet.
    pub lag: LagHistogram,
    /// Whether the loops send through raw sockets.
    pub raw: bool,
    /// Most streams playing at once (sum of each loop's peak).
    pub peak_streams: usize,
    /// CPU time of the pacing threads (user + system), published at shutdown.
    pub loop_cpu: Duration,
    /// Pacing threads that run under `SCHED_FIFO`.
    pub realtime_loops: usize,
    /// Pacing threads pinned to one CPU each.
    pub pinned_loops: usize,
    /// RTP/RTCP port pairs the pacing threads bound ahead of the calls that took them.
    pub ports_bound_ahead: u64,
    /// Pairs bound on the caller's thread because none was ready (the stock follows the
    /// recent rate of calls, so these are the first calls of a burst).
    pub ports_bound_on_demand: u64,
}

enum Cmd {
    Start(Box<(MediaStart, RtpPort)>),
    Stop(u64),
    Play(u64, Box<Playlist>),
    Record(u64, RecordSpec),
    Analyse(u64, Box<(AmdConfig, Codec, u8)>),
    StopRecord(u64),
    Shutdown,
}

struct LoopCtl {
    tx: std_mpsc::Sender<Cmd>,
    load: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

/// The running pump. Cheap to share behind an `Arc`; every method is `&self`.
pub struct MediaPump {
    loops: Vec<Mutex<LoopCtl>>,
    loads: Vec<Arc<AtomicUsize>>,
    ports: Arc<PortStock>,
    stats: Arc<Mutex<PumpStats>>,
}

impl std::fmt::Debug for MediaPump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaPump")
            .field("loops", &self.loops.len())
            .finish()
    }
}

/// Whether the loops send through a raw socket, for this mode and media address.
fn use_raw(mode: SendMode, v4: Option<Ipv4Addr>) -> io::Result<bool> {
    Ok(match (mode, v4) {
        (SendMode::PerSocket, _) => false,
        (SendMode::Raw, None) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "raw send mode needs a concrete IPv4 media address",
            ))
        }
        (SendMode::Raw, Some(_)) => {
            open_raw_socket().map_err(|e| {
                io::Error::new(e.kind(), format!("raw socket (needs CAP_NET_RAW): {e}"))
            })?;
            true
        }
        (SendMode::Auto, Some(_)) => match open_raw_socket() {
            Ok(_) => true,
            Err(e) => {
                debug!(error = %e, "no raw socket; sending per socket");
                false
            }
        },
        (SendMode::Auto, None) => false,
    })
}

/// Starts pacing thread `i`, on `cpu` when given.
fn spawn_loop(
    cfg: &PumpConfig,
    shared: &LoopShared,
    raw: bool,
    i: usize,
    cpu: Option<usize>,
) -> io::Result<LoopCtl> {
    let (tx, rx) = std_mpsc::channel();
    let load = Arc::new(AtomicUsize::new(0));
    let raw_fd = if raw { Some(open_raw_socket()?) } else { None };
    let realtime = cfg.realtime;
    let mut l = Loop::new(cfg.pacer.clone(), shared.clone(), raw_fd, rx, load.clone())?;
    let thread = std::thread::Builder::new()
        .name(format!("media-pump-{i}"))
        .spawn(move || {
            if let Some(cpu) = cpu {
                l.pin(cpu);
            }
            if realtime {
                l.make_realtime();
            }
            l.run()
        })?;
    Ok(LoopCtl {
        tx,
        load,
        thread: Some(thread),
    })
}

impl MediaPump {
    /// Starts the pacing threads; media events arrive on the returned receiver.
    pub fn start(cfg: PumpConfig) -> io::Result<(MediaPump, mpsc::UnboundedReceiver<MediaEvent>)> {
        let (events, rx) = EventTx::channel();
        Ok((MediaPump::start_with(cfg, events)?, rx))
    }

    /// Starts the pacing threads; media events go to `events`, on the loops' threads.
    pub fn start_with(mut cfg: PumpConfig, events: EventTx) -> io::Result<MediaPump> {
        match raise_fd_limit() {
            Ok(n) => debug!(limit = n, "RLIMIT_NOFILE"),
            Err(e) => warn!(error = %e, "could not raise RLIMIT_NOFILE"),
        }
        let loops = if cfg.loops == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            cfg.loops
        };
        let v4 = match cfg.bind_ip {
            IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
            _ => None,
        };
        let raw = use_raw(cfg.send_mode, v4)?;
        cfg.pacer.headroom = 28;
        cfg.pacer.ntp_at_origin =
            crate::media::pacer::ntp_from_system(std::time::SystemTime::now());
        let shared = LoopShared {
            origin: Instant::now(),
            src_ip: v4.unwrap_or(Ipv4Addr::UNSPECIFIED),
            events,
            ports: Arc::new(PortStock::new(cfg.bind_ip, cfg.port_min, cfg.port_max)),
            stats: Arc::new(Mutex::new(PumpStats {
                raw,
                ..PumpStats::default()
            })),
        };
        let cpus = if cfg.pin_cpus {
            sys::allowed_cpus()
        } else {
            Vec::new()
        };
        let mut ctls = Vec::new();
        let mut loads = Vec::new();
        for i in 0..loops {
            let ctl = spawn_loop(&cfg, &shared, raw, i, sys::loop_cpu(&cpus, i))?;
            loads.push(ctl.load.clone());
            ctls.push(Mutex::new(ctl));
        }
        Ok(MediaPump {
            loops: ctls,
            loads,
            ports: shared.ports,
            stats: shared.stats,
        })
    }

    /// A free even RTP port and the RTCP port above it, from the configured range: one the
    /// pacing threads bound ahead, or one bound now when none is ready (see `port_stock`).
    pub fn bind_port(&self) -> io::Result<RtpPort> {
        self.ports.take()
    }

    /// Starts a call's media on the least loaded loop.
    pub fn start_media(&self, start: MediaStart, port: RtpPort) -> MediaHandle {
        let loop_index = self
            .loads
            .iter()
            .enumerate()
            .min_by_key(|(_, l)| l.load(Ordering::Relaxed))
            .map_or(0, |(i, _)| i);
        self.loads[loop_index].fetch_add(1, Ordering::Relaxed);
        let token = start.token;
        let ctl = self.loops[loop_index].lock().expect("pump lock");
        let _ = ctl.tx.send(Cmd::Start(Box::new((start, port))));
        MediaHandle { loop_index, token }
    }

    /// Stops a call's media (whether it finished or not) and releases its ports; a
    /// [`MediaEvent::Stopped`] with the exact packet count follows.
    pub fn stop(&self, h: MediaHandle) {
        let ctl = self.loops[h.loop_index].lock().expect("pump lock");
        let _ = ctl.tx.send(Cmd::Stop(h.token));
    }

    /// Replaces what the call plays by `list`, from its first frame at the call's next packet;
    /// a [`MediaEvent::Played`] follows when it has played (none when replaced before).
    pub fn play(&self, h: MediaHandle, list: Playlist) {
        self.send(h, Cmd::Play(h.token, Box::new(list)));
    }

    /// Starts capturing the callee's audio (replacing a capture in progress, which is
    /// reported); a [`MediaEvent::Recorded`] follows at `max_ms`, at
    /// [`MediaPump::stop_record`] or when the call's media stops.
    pub fn record(&self, h: MediaHandle, spec: RecordSpec) {
        self.send(h, Cmd::Record(h.token, spec));
    }

    /// Runs answering-machine and beep detection on the callee's audio (of `codec` under
    /// `payload_type`) from now: a [`MediaEvent::Amd`] once, a [`MediaEvent::Beep`] per beep
    /// within [`crate::media::tap::MAX_BEEP_WATCH_MS`]. A second call restarts both.
    pub fn analyse(&self, h: MediaHandle, cfg: AmdConfig, codec: Codec, payload_type: u8) {
        self.send(
            h,
            Cmd::Analyse(h.token, Box::new((cfg, codec, payload_type))),
        );
    }

    /// Ends a capture now (its [`MediaEvent::Recorded`] follows); nothing when none runs.
    pub fn stop_record(&self, h: MediaHandle) {
        self.send(h, Cmd::StopRecord(h.token));
    }

    fn send(&self, h: MediaHandle, cmd: Cmd) {
        let ctl = self.loops[h.loop_index].lock().expect("pump lock");
        let _ = ctl.tx.send(cmd);
    }

    /// Stops the loops and returns the totals.
    pub fn shutdown(&self) -> PumpStats {
        for l in &self.loops {
            let mut ctl = l.lock().expect("pump lock");
            let _ = ctl.tx.send(Cmd::Shutdown);
            if let Some(t) = ctl.thread.take() {
                let _ = t.join();
            }
            let _ = ctl.load.load(Ordering::Relaxed);
        }
        self.stats()
    }

    /// Totals so far (loops publish about once a second, and at shutdown).
    pub fn stats(&self) -> PumpStats {
        let mut s = self.stats.lock().expect("stats lock").clone();
        (s.ports_bound_ahead, s.ports_bound_on_demand) = self.ports.counts();
        s
    }
}
