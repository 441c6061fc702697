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
//! File descriptors: two per call. [`MediaPump::start`] raises `RLIMIT_NOFILE` to its hard
//! limit; when binding still fails for lack of descriptors the error names the limit.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use codecs::Prompt;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::media::pacer::{
    Batch, Pacer, PacerConfig, PacerEvent, PacketKind, StreamId, StreamSpec,
};
use crate::media::{rtcp, DtmfDecoder, DtmfEvent, StreamParams};

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
}

/// Something a call must know about its media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// The callee pressed a key (RFC 4733).
    Dtmf {
        /// The call's token.
        token: u64,
        /// The key.
        event: DtmfEvent,
    },
}

/// Which loop plays a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaHandle {
    loop_index: usize,
    token: u64,
}

/// Send-lag histogram: 10 µs buckets up to 100 ms, and an overflow bucket.
#[derive(Debug, Clone)]
pub struct LagHistogram {
    buckets: Vec<u64>,
    max_ns: u64,
    count: u64,
}

const LAG_BUCKET_NS: u64 = 10_000;
const LAG_BUCKETS: usize = 10_000;

impl Default for LagHistogram {
    fn default() -> Self {
        LagHistogram {
            buckets: vec![0; LAG_BUCKETS + 1],
            max_ns: 0,
            count: 0,
        }
    }
}

impl LagHistogram {
    /// Adds one lag.
    pub fn record(&mut self, ns: u64) {
        let b = ((ns / LAG_BUCKET_NS) as usize).min(LAG_BUCKETS);
        self.buckets[b] += 1;
        self.max_ns = self.max_ns.max(ns);
        self.count += 1;
    }

    /// Adds another histogram.
    pub fn merge(&mut self, other: &LagHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.max_ns = self.max_ns.max(other.max_ns);
        self.count += other.count;
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest lag.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max_ns)
    }

    /// The `q` quantile (upper edge of its bucket).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let target = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= target {
                if i == LAG_BUCKETS {
                    return self.max();
                }
                return Duration::from_nanos((i as u64 + 1) * LAG_BUCKET_NS).min(self.max());
            }
        }
        self.max()
    }
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
}

enum Cmd {
    Start(Box<(MediaStart, RtpPort)>),
    Stop(u64),
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
    cfg: PumpConfig,
    next_port: AtomicU32,
    stats: Arc<Mutex<PumpStats>>,
    raw: bool,
}

impl std::fmt::Debug for MediaPump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaPump")
            .field("loops", &self.loops.len())
            .field("raw", &self.raw)
            .finish()
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return Err(io::Error::last_os_error());
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) != 0 {
                return Err(io::Error::last_os_error());
            }
            return Ok(want.rlim_cur);
        }
        Ok(r.rlim_cur)
    }
}

fn open_raw_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let size: libc::c_int = 4 << 20;
    // SAFETY: setsockopt with a pointer to a local int of the stated size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    Ok(owned)
}

impl MediaPump {
    /// Starts the pacing threads; media events arrive on the returned receiver.
    pub fn start(
        mut cfg: PumpConfig,
    ) -> io::Result<(MediaPump, mpsc::UnboundedReceiver<MediaEvent>)> {
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
        let raw = match (cfg.send_mode, v4) {
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
        };
        cfg.pacer.headroom = 28;
        cfg.pacer.ntp_at_origin =
            crate::media::pacer::ntp_from_system(std::time::SystemTime::now());
        let origin = Instant::now();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(PumpStats {
            raw,
            ..PumpStats::default()
        }));
        let mut ctls = Vec::new();
        let mut loads = Vec::new();
        for i in 0..loops {
            let (tx, rx) = std_mpsc::channel();
            let load = Arc::new(AtomicUsize::new(0));
            let raw_fd = if raw { Some(open_raw_socket()?) } else { None };
            let realtime = cfg.realtime;
            let mut l = Loop::new(
                cfg.pacer.clone(),
                origin,
                raw_fd,
                v4.unwrap_or(Ipv4Addr::UNSPECIFIED),
                rx,
                ev_tx.clone(),
                load.clone(),
                stats.clone(),
            )?;
            let thread = std::thread::Builder::new()
                .name(format!("media-pump-{i}"))
                .spawn(move || {
                    if realtime {
                        l.make_realtime();
                    }
                    l.run()
                })?;
            loads.push(load.clone());
            ctls.push(Mutex::new(LoopCtl {
                tx,
                load,
                thread: Some(thread),
            }));
        }
        let min = cfg.port_min + cfg.port_min % 2;
        Ok((
            MediaPump {
                loops: ctls,
                loads,
                next_port: AtomicU32::new(u32::from(min)),
                cfg,
                stats,
                raw,
            },
            ev_rx,
        ))
    }

    /// Whether packets leave through raw sockets (one `sendmmsg` per slot).
    pub fn is_raw(&self) -> bool {
        self.raw
    }

    /// Binds a free even RTP port and the RTCP port above it, from the configured range.
    pub fn bind_port(&self) -> io::Result<RtpPort> {
        let min = u32::from(self.cfg.port_min + self.cfg.port_min % 2);
        let max = u32::from(self.cfg.port_max);
        let span = (max.saturating_sub(min) / 2).max(1);
        for _ in 0..span {
            let n = self.next_port.fetch_add(2, Ordering::Relaxed);
            let port = (min + (n.wrapping_sub(min) % (span * 2))) as u16;
            let rtp = match UdpSocket::bind(SocketAddr::new(self.cfg.bind_ip, port)) {
                Ok(s) => s,
                Err(e) if is_fd_exhaustion(&e) => return Err(fd_error(e)),
                Err(_) => continue,
            };
            let rtcp = match UdpSocket::bind(SocketAddr::new(self.cfg.bind_ip, port + 1)) {
                Ok(s) => s,
                Err(e) if is_fd_exhaustion(&e) => return Err(fd_error(e)),
                Err(_) => continue,
            };
            rtp.set_nonblocking(true)?;
            rtcp.set_nonblocking(true)?;
            return Ok(RtpPort { rtp, rtcp, port });
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "no free even RTP port pair in {}-{}",
                self.cfg.port_min, self.cfg.port_max
            ),
        ))
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
        self.stats.lock().expect("stats lock").clone()
    }
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage with a pointer to a local struct.
    let r = unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut r);
        r
    };
    let d = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    d(r.ru_utime) + d(r.ru_stime)
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

fn fd_error(e: io::Error) -> io::Error {
    // SAFETY: getrlimit with a valid pointer to a local struct.
    let (soft, hard) = unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        (r.rlim_cur, r.rlim_max)
    };
    io::Error::new(
        e.kind(),
        format!(
            "out of file descriptors binding RTP ports ({e}); RLIMIT_NOFILE is {soft} (hard {hard}), \
             each call needs 2: raise `ulimit -n` or LimitNOFILE"
        ),
    )
}

/// A call's sockets and receive state, owned by its loop.
struct CallSlot {
    token: u64,
    stream: Option<StreamId>,
    final_packets: u64,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    port: u16,
    rtcp_mux: bool,
    ssrc: u32,
    remote: SocketAddr,
    latched: Option<(SocketAddr, u32)>,
    dtmf: Option<DtmfDecoder>,
    clock_rate: u32,
}

const RX_BATCH: usize = 32;
const RX_BUF: usize = 2048;

struct Loop {
    pacer: Pacer,
    batch: Batch,
    raw: Option<OwnedFd>,
    src_ip: Ipv4Addr,
    rx: std_mpsc::Receiver<Cmd>,
    events: mpsc::UnboundedSender<MediaEvent>,
    load: Arc<AtomicUsize>,
    shared: Arc<Mutex<PumpStats>>,
    /// Route (pacer `route`) -> call slot.
    slots: Vec<Option<CallSlot>>,
    free: Vec<u32>,
    by_token: HashMap<u64, u32>,
    epoll: OwnedFd,
    // Preallocated system-call arrays.
    iov: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_in>,
    hdrs: Vec<libc::mmsghdr>,
    rx_bufs: Vec<u8>,
    rx_iov: Vec<libc::iovec>,
    rx_names: Vec<libc::sockaddr_storage>,
    rx_hdrs: Vec<libc::mmsghdr>,
    ep_events: Vec<libc::epoll_event>,
    local: PumpStats,
    peak: usize,
    lag_metric: metrics::Histogram,
    sent_metric: metrics::Counter,
}

// SAFETY: the raw pointers inside the preallocated libc arrays only ever point into buffers
// owned by the same `Loop`, which moves to its thread once and is used only there.
unsafe impl Send for Loop {}

impl Loop {
    #[allow(clippy::too_many_arguments)]
    fn new(
        pacer_cfg: PacerConfig,
        origin: Instant,
        raw: Option<OwnedFd>,
        src_ip: Ipv4Addr,
        rx: std_mpsc::Receiver<Cmd>,
        events: mpsc::UnboundedSender<MediaEvent>,
        load: Arc<AtomicUsize>,
        shared: Arc<Mutex<PumpStats>>,
    ) -> io::Result<Loop> {
        let cap = pacer_cfg.batch_size.max(2);
        let headroom = pacer_cfg.headroom;
        // SAFETY: epoll_create1 returns a fresh descriptor we own.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: zeroed libc structs are valid "empty" values.
        let zero_iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        let zero_in: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let zero_hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
        let zero_ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let zero_ev = libc::epoll_event { events: 0, u64: 0 };
        Ok(Loop {
            pacer: Pacer::new(pacer_cfg, origin),
            batch: Batch::new(cap, headroom),
            raw,
            src_ip,
            rx,
            events,
            load,
            shared,
            slots: Vec::new(),
            free: Vec::new(),
            by_token: HashMap::new(),
            // SAFETY: `ep` is a fresh descriptor.
            epoll: unsafe { OwnedFd::from_raw_fd(ep) },
            iov: vec![zero_iov; cap],
            names: vec![zero_in; cap],
            hdrs: vec![zero_hdr; cap],
            rx_bufs: vec![0; RX_BATCH * RX_BUF],
            rx_iov: vec![zero_iov; RX_BATCH],
            rx_names: vec![zero_ss; RX_BATCH],
            rx_hdrs: vec![zero_hdr; RX_BATCH],
            ep_events: vec![zero_ev; 256],
            local: PumpStats::default(),
            peak: 0,
            lag_metric: metrics::histogram!("dialer_rtp_send_lag_seconds"),
            sent_metric: metrics::counter!("dialer_rtp_packets_sent_total"),
        })
    }

    fn make_realtime(&mut self) {
        let p = libc::sched_param { sched_priority: 10 };
        // SAFETY: sched_setscheduler on the calling thread with a pointer to a local.
        let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) };
        if r == 0 {
            self.shared.lock().expect("stats lock").realtime_loops += 1;
        } else {
            debug!(error = %io::Error::last_os_error(), "no SCHED_FIFO for the media loop");
        }
    }

    fn run(&mut self) {
        // Ask for precise sleeps: the default 50 µs timer slack is a twentieth of a slot.
        // SAFETY: prctl with integer arguments only.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1000u64, 0, 0, 0);
        }
        let mut last_publish = Instant::now();
        let mut last_dtmf_scan = Instant::now();
        loop {
            // Commands first: new calls, stops.
            loop {
                match self.rx.try_recv() {
                    Ok(Cmd::Start(b)) => {
                        let (start, port) = *b;
                        self.start(start, port);
                    }
                    Ok(Cmd::Stop(token)) => self.stop(token),
                    Ok(Cmd::Shutdown) | Err(std_mpsc::TryRecvError::Disconnected) => {
                        self.publish();
                        self.shared.lock().expect("stats lock").loop_cpu += thread_cpu();
                        return;
                    }
                    Err(std_mpsc::TryRecvError::Empty) => break,
                }
            }
            // Send everything due.
            let now = Instant::now();
            loop {
                let done = self.pacer.fill(now, &mut self.batch);
                self.send_batch();
                if done {
                    break;
                }
            }
            while let Some(PacerEvent::Finished { token, packets, .. }) = self.pacer.poll_event() {
                if let Some(&r) = self.by_token.get(&token) {
                    if let Some(s) = self.slots[r as usize].as_mut() {
                        s.stream = None;
                        s.final_packets = packets;
                    }
                }
                let _ = self.events.send(MediaEvent::Finished { token, packets });
            }
            self.peak = self.peak.max(self.pacer.active());
            // Read what arrived.
            self.receive();
            if last_dtmf_scan.elapsed() >= Duration::from_millis(50) {
                self.dtmf_timeouts();
                last_dtmf_scan = Instant::now();
            }
            if last_publish.elapsed() >= Duration::from_secs(1) {
                self.publish();
                last_publish = Instant::now();
            }
            // Sleep to the next slot with work (at most 2 ms, to pick up commands).
            let now = Instant::now();
            let cap = now + Duration::from_millis(2);
            let wake = self.pacer.poll_timeout().map_or(cap, |t| t.min(cap));
            if wake > now {
                std::thread::sleep(wake - now);
            }
        }
    }

    fn publish(&mut self) {
        let mut s = self.shared.lock().expect("stats lock");
        s.rtp_sent += self.local.rtp_sent;
        s.rtcp_sent += self.local.rtcp_sent;
        s.send_errors += self.local.send_errors;
        s.received += self.local.received;
        s.dropped_source += self.local.dropped_source;
        s.lag.merge(&self.local.lag);
        s.peak_streams += self.peak.saturating_sub(self.local.peak_streams);
        let peak = self.peak;
        let dropped = self.local.dropped_source;
        let errors = self.local.send_errors;
        self.local = PumpStats {
            peak_streams: peak,
            ..PumpStats::default()
        };
        drop(s);
        if dropped > 0 {
            metrics::counter!("dialer_rtp_dropped_packets_total", "reason" => "source")
                .increment(dropped);
        }
        if errors > 0 {
            metrics::counter!("dialer_rtp_dropped_packets_total", "reason" => "send_error")
                .increment(errors);
        }
    }

    fn start(&mut self, start: MediaStart, port: RtpPort) {
        let route = match self.free.pop() {
            Some(r) => r,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        for (sock, tag) in [(&port.rtp, 0u64), (&port.rtcp, 1u64)] {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: (u64::from(route) << 1) | tag,
            };
            // SAFETY: valid epoll and socket descriptors, pointer to a local event.
            unsafe {
                libc::epoll_ctl(
                    self.epoll.as_raw_fd(),
                    libc::EPOLL_CTL_ADD,
                    sock.as_raw_fd(),
                    &mut ev,
                );
            }
        }
        let rtcp_dest = if start.rtcp_mux {
            Some(start.remote_rtp)
        } else {
            start.remote_rtcp
        };
        let stream = self.pacer.add(
            Instant::now(),
            StreamSpec {
                token: start.token,
                route,
                dest: start.remote_rtp,
                rtcp_dest,
                prompt: start.prompt,
                params: start.params,
                clock_rate: start.clock_rate,
            },
        );
        if stream.is_none() {
            warn!(
                token = start.token,
                "ptime too long for the pacer; no media"
            );
            let _ = self.events.send(MediaEvent::Finished {
                token: start.token,
                packets: 0,
            });
        }
        self.slots[route as usize] = Some(CallSlot {
            token: start.token,
            stream,
            final_packets: 0,
            rtp: port.rtp,
            rtcp: port.rtcp,
            port: port.port,
            rtcp_mux: start.rtcp_mux,
            ssrc: start.params.ssrc,
            remote: start.remote_rtp,
            latched: None,
            dtmf: start.telephone_event_pt.map(DtmfDecoder::new),
            clock_rate: start.clock_rate,
        });
        self.by_token.insert(start.token, route);
    }

    fn stop(&mut self, token: u64) {
        let Some(route) = self.by_token.remove(&token) else {
            let _ = self.events.send(MediaEvent::Stopped { token, packets: 0 });
            return;
        };
        let slot = self.slots[route as usize].take().expect("slot of a token");
        let packets = match slot.stream {
            Some(id) => self.pacer.stop(id).unwrap_or(slot.final_packets),
            None => slot.final_packets,
        };
        // Dropping the sockets closes them (and removes them from epoll).
        drop(slot);
        self.free.push(route);
        self.load.fetch_sub(1, Ordering::Relaxed);
        let _ = self.events.send(MediaEvent::Stopped { token, packets });
    }

    fn send_batch(&mut self) {
        let n = self.batch.len();
        if n == 0 {
            return;
        }
        if self.raw.is_some() {
            self.send_raw(n);
        } else {
            self.send_per_socket(n);
        }
        // One clock read per batch: every packet in it left at about this instant.
        let sent_ns = self.pacer.origin().elapsed().as_nanos() as u64;
        let mut rtp = 0u64;
        for it in self.batch.items() {
            if it.kind == PacketKind::Rtp {
                let lag = sent_ns.saturating_sub(it.due_ns);
                self.local.lag.record(lag);
                self.lag_metric.record(lag as f64 * 1e-9);
                rtp += 1;
            } else {
                self.local.rtcp_sent += 1;
            }
        }
        self.local.rtp_sent += rtp;
        self.sent_metric.increment(rtp);
        self.batch.clear();
    }

    fn send_raw(&mut self, n: usize) {
        let src = self.src_ip.octets();
        let mut v4 = 0usize;
        for i in 0..n {
            let it = self.batch.items()[i];
            let Some(slot) = self.slots.get(it.route as usize).and_then(|s| s.as_ref()) else {
                continue;
            };
            let SocketAddr::V4(dest) = it.dest else {
                // IPv6 peer: its own socket.
                let fd = slot.rtp.as_raw_fd();
                let pkt = self.batch.packet(i);
                if send_to(fd, pkt, it.dest).is_err() {
                    self.local.send_errors += 1;
                }
                continue;
            };
            let sport = if it.kind == PacketKind::Rtcp && !slot.rtcp_mux {
                slot.port + 1
            } else {
                slot.port
            };
            let len = usize::from(it.len);
            let p = self.batch.with_headroom_mut(i);
            write_ipv4_udp(&mut p[..28], src, *dest.ip(), sport, dest.port(), len);
            self.iov[v4] = libc::iovec {
                iov_base: p.as_mut_ptr() as *mut libc::c_void,
                iov_len: 28 + len,
            };
            self.names[v4] = sockaddr_in(SocketAddrV4::new(*dest.ip(), 0));
            v4 += 1;
        }
        let fd = self.raw.as_ref().expect("raw").as_raw_fd();
        for i in 0..v4 {
            let h = &mut self.hdrs[i];
            h.msg_hdr.msg_name = &mut self.names[i] as *mut _ as *mut libc::c_void;
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut self.iov[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = std::ptr::null_mut();
            h.msg_hdr.msg_controllen = 0;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        let mut off = 0;
        while off < v4 {
            // SAFETY: hdrs[off..v4] point at names/iovs/batch buffers alive for this call.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs[off..].as_mut_ptr(),
                    (v4 - off) as libc::c_uint,
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // Skip the packet that failed and go on with the rest.
                debug!(error = %e, "sendmmsg");
                self.local.send_errors += 1;
                off += 1;
            } else {
                off += r as usize;
            }
        }
    }

    fn send_per_socket(&mut self, n: usize) {
        for i in 0..n {
            let it = self.batch.items()[i];
            let Some(slot) = self.slots.get(it.route as usize).and_then(|s| s.as_ref()) else {
                continue;
            };
            let fd = if it.kind == PacketKind::Rtcp && !slot.rtcp_mux {
                slot.rtcp.as_raw_fd()
            } else {
                slot.rtp.as_raw_fd()
            };
            if send_to(fd, self.batch.packet(i), it.dest).is_err() {
                self.local.send_errors += 1;
            }
        }
    }

    fn receive(&mut self) {
        // SAFETY: ep_events is a live buffer of the stated length.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.ep_events.as_mut_ptr(),
                self.ep_events.len() as libc::c_int,
                0,
            )
        };
        for k in 0..n.max(0) as usize {
            let tag = self.ep_events[k].u64;
            let route = (tag >> 1) as usize;
            let is_rtcp_port = tag & 1 == 1;
            let fd = match self.slots.get(route).and_then(|s| s.as_ref()) {
                Some(s) if is_rtcp_port => s.rtcp.as_raw_fd(),
                Some(s) => s.rtp.as_raw_fd(),
                None => continue,
            };
            loop {
                let got = self.recv_batch(fd);
                for m in 0..got {
                    self.handle_inbound(route, is_rtcp_port, m);
                }
                if got < RX_BATCH {
                    break;
                }
            }
        }
    }

    /// Reports presses whose end packets were all lost.
    fn dtmf_timeouts(&mut self) {
        let now = Instant::now();
        for s in self.slots.iter_mut().flatten() {
            if let Some(d) = s.dtmf.as_mut() {
                if d.poll_timeout().is_some_and(|t| t <= now) {
                    d.handle_timeout(now);
                    while let Some(event) = d.poll_event() {
                        let _ = self.events.send(MediaEvent::Dtmf {
                            token: s.token,
                            event,
                        });
                    }
                }
            }
        }
    }

    fn recv_batch(&mut self, fd: RawFd) -> usize {
        for i in 0..RX_BATCH {
            self.rx_iov[i] = libc::iovec {
                iov_base: self.rx_bufs[i * RX_BUF..].as_mut_ptr() as *mut libc::c_void,
                iov_len: RX_BUF,
            };
            let h = &mut self.rx_hdrs[i];
            h.msg_hdr.msg_name = &mut self.rx_names[i] as *mut _ as *mut libc::c_void;
            h.msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut self.rx_iov[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = std::ptr::null_mut();
            h.msg_hdr.msg_controllen = 0;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        // SAFETY: the headers point at buffers owned by self, alive during the call.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.rx_hdrs.as_mut_ptr(),
                RX_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            0
        } else {
            r as usize
        }
    }

    fn handle_inbound(&mut self, route: usize, on_rtcp_port: bool, m: usize) {
        let len = self.rx_hdrs[m].msg_len as usize;
        let from = sockaddr_to_std(&self.rx_names[m]);
        let data = &self.rx_bufs[m * RX_BUF..m * RX_BUF + len.min(RX_BUF)];
        let Some(slot) = self.slots[route].as_mut() else {
            return;
        };
        let Some(from) = from else {
            return;
        };
        // Source locking: the SDP peer's address, or one latched (address, SSRC) from its IP.
        if from.ip() != slot.remote.ip() {
            self.local.dropped_source += 1;
            return;
        }
        if on_rtcp_port || rtcp::is_rtcp(data) {
            for p in rtcp::Compound::new(data).flatten() {
                for b in p.report_blocks() {
                    if b.ssrc == slot.ssrc {
                        metrics::histogram!("dialer_rtp_far_end_fraction_lost")
                            .record(f64::from(b.fraction_lost) / 256.0);
                        metrics::histogram!("dialer_rtp_far_end_jitter_seconds")
                            .record(f64::from(b.jitter) / f64::from(slot.clock_rate.max(1)));
                    }
                }
            }
            self.local.received += 1;
            return;
        }
        let ssrc = if len >= 12 {
            u32::from_be_bytes([data[8], data[9], data[10], data[11]])
        } else {
            self.local.dropped_source += 1;
            return;
        };
        match slot.latched {
            None if from == slot.remote || from.ip() == slot.remote.ip() => {
                slot.latched = Some((from, ssrc));
            }
            Some((addr, s)) if addr == from && s == ssrc => {}
            _ => {
                self.local.dropped_source += 1;
                return;
            }
        }
        self.local.received += 1;
        if let Some(d) = slot.dtmf.as_mut() {
            if d.handle_rtp(Instant::now(), data) {
                while let Some(event) = d.poll_event() {
                    let _ = self.events.send(MediaEvent::Dtmf {
                        token: slot.token,
                        event,
                    });
                }
            }
        }
    }
}

fn sockaddr_in(a: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: zeroed sockaddr_in is valid; fields set below.
    let mut s: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    s.sin_family = libc::AF_INET as libc::sa_family_t;
    s.sin_port = a.port().to_be();
    s.sin_addr = libc::in_addr {
        s_addr: u32::from_ne_bytes(a.ip().octets()),
    };
    s
}

fn sockaddr_to_std(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
            Some(SocketAddr::new(ip, u16::from_be(a.sin6_port)))
        }
        _ => None,
    }
}

fn send_to(fd: RawFd, pkt: &[u8], dest: SocketAddr) -> io::Result<()> {
    let r = match dest {
        SocketAddr::V4(d) => {
            let sa = sockaddr_in(d);
            // SAFETY: valid buffer and address pointers for the duration of the call.
            unsafe {
                libc::sendto(
                    fd,
                    pkt.as_ptr() as *const libc::c_void,
                    pkt.len(),
                    libc::MSG_DONTWAIT,
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        SocketAddr::V6(d) => {
            // SAFETY: zeroed sockaddr_in6 is valid; fields set below.
            let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_port = d.port().to_be();
            sa.sin6_addr = libc::in6_addr {
                s6_addr: d.ip().octets(),
            };
            sa.sin6_scope_id = d.scope_id();
            // SAFETY: as above.
            unsafe {
                libc::sendto(
                    fd,
                    pkt.as_ptr() as *const libc::c_void,
                    pkt.len(),
                    libc::MSG_DONTWAIT,
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Writes a 20-byte IPv4 header and an 8-byte UDP header (checksum 0, allowed over IPv4) for
/// a payload of `len` bytes. The kernel fills the IP checksum and ID (`IPPROTO_RAW`).
pub fn write_ipv4_udp(
    h: &mut [u8],
    src: [u8; 4],
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    len: usize,
) {
    let total = (28 + len) as u16;
    h[0] = 0x45;
    h[1] = 46 << 2; // DSCP EF
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[4..6].copy_from_slice(&[0, 0]);
    h[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
    h[8] = 64;
    h[9] = 17;
    h[10..12].copy_from_slice(&[0, 0]);
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst.octets());
    h[20..22].copy_from_slice(&sport.to_be_bytes());
    h[22..24].copy_from_slice(&dport.to_be_bytes());
    h[24..26].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    h[26..28].copy_from_slice(&[0, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call's media state in a loop is a few integers plus its two sockets: keep it so.
    #[test]
    fn per_call_state_stays_small() {
        let slot = std::mem::size_of::<CallSlot>();
        let entry = crate::media::pacer::entry_size();
        println!("CallSlot {slot} B, pacer entry {entry} B");
        assert!(slot + entry <= 512, "{slot} + {entry} bytes per call");
    }

    #[test]
    fn lag_histogram_quantiles() {
        let mut h = LagHistogram::default();
        for us in 0..1000u64 {
            h.record(us * 1000);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.quantile(0.5), Duration::from_micros(500));
        assert_eq!(h.quantile(0.99), Duration::from_micros(990));
        assert_eq!(h.max(), Duration::from_micros(999));
        h.record(5_000_000_000);
        assert_eq!(h.quantile(1.0), Duration::from_secs(5));
    }

    #[test]
    fn ipv4_udp_header() {
        let mut h = [0u8; 28];
        write_ipv4_udp(
            &mut h,
            [127, 0, 0, 1],
            Ipv4Addr::new(10, 0, 0, 2),
            20000,
            4000,
            172,
        );
        assert_eq!(h[0], 0x45);
        assert_eq!(u16::from_be_bytes([h[2], h[3]]), 200);
        assert_eq!(h[9], 17);
        assert_eq!(&h[16..20], &[10, 0, 0, 2]);
        assert_eq!(u16::from_be_bytes([h[20], h[21]]), 20000);
        assert_eq!(u16::from_be_bytes([h[22], h[23]]), 4000);
        assert_eq!(u16::from_be_bytes([h[24], h[25]]), 180);
    }
}
