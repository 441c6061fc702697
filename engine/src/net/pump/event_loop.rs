//! One pacing loop: a thread that owns its calls' sockets and a [`Pacer`], sends what is due
//! each slot, reads what arrived, and reports stream ends and key presses.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::detectors::Detectors;
use super::port_stock::PortStock;
use super::sys::{pin_to_cpu, thread_cpu};
use super::{Cmd, EventTx, MediaEvent, MediaStart, Playlist, PumpStats, RecordSpec, RtpPort};
use crate::media::amd::AmdConfig;
use crate::media::pacer::{Pacer, PacerConfig, PacerEvent, StreamId, StreamSpec};
use crate::media::srtp::{SrtpReceiver, SrtpSender};
use crate::media::{AudioTap, Batch, DtmfDecoder, Latch, Recording};

/// A loop tops up the port stock only in a gap between slots, and stops binding this long
/// before its next packets are due, so the top-up never makes them late.
const TOP_UP_MARGIN: Duration = Duration::from_micros(250);
/// What every loop of a pump shares: the time origin, the raw-send source address, the event
/// channel and the totals.
#[derive(Clone)]
pub(super) struct LoopShared {
    pub(super) origin: Instant,
    pub(super) src_ip: Ipv4Addr,
    pub(super) events: EventTx,
    /// Port pairs for new calls, topped up by the loops between slots.
    pub(super) ports: Arc<PortStock>,
    pub(super) stats: Arc<Mutex<PumpStats>>,
}

/// A call's sockets and receive state, owned by its loop.
pub(super) struct CallSlot {
    pub(super) token: u64,
    pub(super) stream: Option<StreamId>,
    pub(super) final_packets: u64,
    pub(super) rtp: UdpSocket,
    pub(super) rtcp: UdpSocket,
    pub(super) port: u16,
    pub(super) rtcp_mux: bool,
    pub(super) ssrc: u32,
    pub(super) latch: Latch,
    pub(super) dtmf: Option<DtmfDecoder>,
    pub(super) clock_rate: u32,
    /// Decoding of the callee's audio, only while something listens (boxed: most calls never
    /// have one, and the slot stays a few words).
    pub(super) listen: Option<Box<Listen>>,
    /// SRTP contexts of an encrypted call (boxed: most calls are plain).
    pub(super) srtp: Option<Box<SrtpPair>>,
}

/// An encrypted call's two directions.
pub(super) struct SrtpPair {
    pub(super) tx: SrtpSender,
    pub(super) rx: SrtpReceiver,
}

/// What listens to a call's received audio: its decoder, the capture in progress and the
/// answering-machine and beep detectors.
pub(super) struct Listen {
    pub(super) tap: AudioTap,
    pub(super) recording: Option<Recording>,
    pub(super) detectors: Detectors,
}

impl Listen {
    fn new(tap: AudioTap) -> Listen {
        Listen {
            tap,
            recording: None,
            detectors: Detectors::default(),
        }
    }

    /// Whether nothing listens any more (the decoder can go).
    pub(super) fn idle(&self) -> bool {
        self.recording.is_none() && !self.detectors.running()
    }
}

impl CallSlot {
    /// Our local port for RTCP: the RTP port with rtcp-mux, the next odd one without.
    pub(super) fn rtcp_port(&self) -> u16 {
        if self.rtcp_mux {
            self.port
        } else {
            self.port + 1
        }
    }
}

/// What the send path needs of a call, kept apart from its [`CallSlot`] in a dense table
/// indexed by route: sending a packet reads a few bytes here instead of the slot's cache
/// lines (sockets, latch, decoders), which are cold after a packet time of other calls.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RouteInfo {
    /// Source port of the call's RTP.
    pub(super) rtp_port: u16,
    /// Source port of its RTCP (the RTP port with rtcp-mux).
    pub(super) rtcp_port: u16,
    /// Whether its packets are SRTP-protected before they leave.
    pub(super) srtp: bool,
}

pub(super) const RX_BATCH: usize = 32;
pub(super) const RX_BUF: usize = 2048;

pub(super) struct Loop {
    pub(super) pacer: Pacer,
    pub(super) batch: Batch,
    pub(super) raw: Option<OwnedFd>,
    pub(super) src_ip: Ipv4Addr,
    rx: std_mpsc::Receiver<Cmd>,
    pub(super) events: EventTx,
    load: Arc<AtomicUsize>,
    shared: Arc<Mutex<PumpStats>>,
    ports: Arc<PortStock>,
    /// Route (pacer `route`) -> call slot.
    pub(super) slots: Vec<Option<CallSlot>>,
    /// Route -> what sending needs (see [`RouteInfo`]).
    pub(super) routes: Vec<RouteInfo>,
    /// Calls of this loop whose packets are encrypted (none: the batch skips SRTP at once).
    pub(super) srtp_calls: usize,
    free: Vec<u32>,
    by_token: HashMap<u64, u32>,
    pub(super) epoll: OwnedFd,
    // Preallocated system-call arrays.
    pub(super) iov: Vec<libc::iovec>,
    pub(super) names: Vec<libc::sockaddr_in>,
    pub(super) hdrs: Vec<libc::mmsghdr>,
    pub(super) rx_bufs: Vec<u8>,
    pub(super) rx_iov: Vec<libc::iovec>,
    pub(super) rx_names: Vec<libc::sockaddr_storage>,
    pub(super) rx_hdrs: Vec<libc::mmsghdr>,
    pub(super) ep_events: Vec<libc::epoll_event>,
    pub(super) local: PumpStats,
    peak: usize,
    pub(super) lag_metric: metrics::Histogram,
    pub(super) sent_metric: metrics::Counter,
}

// SAFETY: the raw pointers inside the preallocated libc arrays only ever point into buffers
// owned by the same `Loop`, which moves to its thread once and is used only there.
unsafe impl Send for Loop {}

impl Loop {
    pub(super) fn new(
        pacer_cfg: PacerConfig,
        shared: LoopShared,
        raw: Option<OwnedFd>,
        rx: std_mpsc::Receiver<Cmd>,
        load: Arc<AtomicUsize>,
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
            pacer: Pacer::new(pacer_cfg, shared.origin),
            batch: Batch::new(cap, headroom),
            raw,
            src_ip: shared.src_ip,
            rx,
            events: shared.events,
            load,
            shared: shared.stats,
            ports: shared.ports,
            slots: Vec::new(),
            routes: Vec::new(),
            srtp_calls: 0,
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
            lag_metric: metrics::histogram!(crate::metrics::RTP_SEND_LAG),
            sent_metric: metrics::counter!(crate::metrics::RTP_PACKETS_SENT),
        })
    }

    /// Keeps this loop's thread on `cpu`, so its packets always take that CPU's transmit path
    /// and a stream's packets cannot overtake each other (see `PumpConfig::pin_cpus`).
    pub(super) fn pin(&mut self, cpu: usize) {
        match pin_to_cpu(cpu) {
            Ok(()) => self.shared.lock().expect("stats lock").pinned_loops += 1,
            Err(e) => debug!(error = %e, cpu, "media loop not pinned"),
        }
    }

    pub(super) fn make_realtime(&mut self) {
        let p = libc::sched_param { sched_priority: 10 };
        // SAFETY: sched_setscheduler on the calling thread with a pointer to a local.
        let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) };
        if r == 0 {
            self.shared.lock().expect("stats lock").realtime_loops += 1;
        } else {
            debug!(error = %io::Error::last_os_error(), "no SCHED_FIFO for the media loop");
        }
    }

    pub(super) fn run(&mut self) {
        // Ask for precise sleeps: the default 50 µs timer slack is a twentieth of a slot.
        // SAFETY: prctl with integer arguments only.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1000u64, 0, 0, 0);
        }
        let mut last_publish = Instant::now();
        loop {
            // Commands first: new calls, stops.
            loop {
                match self.rx.try_recv() {
                    Ok(Cmd::Start(b)) => {
                        let (start, port) = *b;
                        self.start(start, port);
                    }
                    Ok(Cmd::Stop(token)) => self.stop(token),
                    Ok(Cmd::Play(token, list)) => self.play(token, *list),
                    Ok(Cmd::Record(token, spec)) => self.record(token, spec),
                    Ok(Cmd::StopRecord(token)) => self.stop_record(token),
                    Ok(Cmd::Analyse(token, a)) => {
                        let (cfg, codec, pt) = *a;
                        self.analyse(token, &cfg, codec, pt);
                    }
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
            self.finished_streams();
            self.peak = self.peak.max(self.pacer.active());
            // Read what arrived.
            self.receive();
            if last_publish.elapsed() >= Duration::from_secs(1) {
                self.publish();
                last_publish = Instant::now();
            }
            // Sleep to the next slot with work (at most 2 ms, to pick up commands).
            let now = Instant::now();
            let cap = now + Duration::from_millis(2);
            let wake = self.pacer.poll_timeout().map_or(cap, |t| t.min(cap));
            let now = match wake.checked_sub(TOP_UP_MARGIN).filter(|u| *u > now) {
                Some(until) => {
                    self.ports.top_up(now, until);
                    Instant::now()
                }
                None => now,
            };
            if wake > now {
                std::thread::sleep(wake - now);
            }
        }
    }

    /// Streams played to the end (and held for the callee's playout): the call hangs up.
    /// Playlists played: the call's menu goes on.
    fn finished_streams(&mut self) {
        while let Some(ev) = self.pacer.poll_event() {
            match ev {
                PacerEvent::Finished { token, packets, .. } => {
                    if let Some(&r) = self.by_token.get(&token) {
                        if let Some(s) = self.slots[r as usize].as_mut() {
                            s.stream = None;
                            s.final_packets = packets;
                        }
                    }
                    self.events.send(MediaEvent::Finished { token, packets });
                }
                PacerEvent::Played { token, play_id, .. } => {
                    self.events.send(MediaEvent::Played { token, id: play_id });
                }
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
        s.not_rtp += self.local.not_rtp;
        s.relatched += self.local.relatched;
        for (t, n) in s.srtp_refused.iter_mut().zip(self.local.srtp_refused) {
            *t += n;
        }
        s.lag.merge(&self.local.lag);
        s.peak_streams += self.peak.saturating_sub(self.local.peak_streams);
        let peak = self.peak;
        let dropped = self.local.dropped_source;
        let not_rtp = self.local.not_rtp;
        let errors = self.local.send_errors;
        let srtp = self.local.srtp_refused;
        self.local = PumpStats {
            peak_streams: peak,
            ..PumpStats::default()
        };
        drop(s);
        if dropped > 0 {
            metrics::counter!(crate::metrics::RTP_DROPPED, "reason" => "source").increment(dropped);
        }
        if not_rtp > 0 {
            metrics::counter!(crate::metrics::RTP_DROPPED, "reason" => "not_rtp")
                .increment(not_rtp);
        }
        if errors > 0 {
            metrics::counter!(crate::metrics::RTP_DROPPED, "reason" => "send_error")
                .increment(errors);
        }
        for (reason, n) in ["auth", "replay", "short"].into_iter().zip(srtp) {
            if n > 0 {
                metrics::counter!(crate::metrics::SRTP_REFUSED, "reason" => reason).increment(n);
            }
        }
    }

    pub(super) fn start(&mut self, start: MediaStart, port: RtpPort) {
        let route = match self.free.pop() {
            Some(r) => r,
            None => {
                self.slots.push(None);
                self.routes.push(RouteInfo::default());
                (self.slots.len() - 1) as u32
            }
        };
        self.watch(route, &port);
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
                idle: start.idle,
            },
        );
        if stream.is_none() {
            warn!(
                token = start.token,
                "ptime too long for the pacer; no media"
            );
            self.events.send(MediaEvent::Finished {
                token: start.token,
                packets: 0,
            });
        }
        let slot = CallSlot {
            token: start.token,
            stream,
            final_packets: 0,
            rtp: port.rtp,
            rtcp: port.rtcp,
            port: port.port,
            rtcp_mux: start.rtcp_mux,
            ssrc: start.params.ssrc,
            latch: Latch::new(start.latch, start.remote_rtp, Instant::now()),
            dtmf: start.telephone_event_pt.map(DtmfDecoder::new),
            clock_rate: start.clock_rate,
            listen: None,
            srtp: start.srtp.map(|k| {
                Box::new(SrtpPair {
                    tx: SrtpSender::new(&k.local),
                    rx: SrtpReceiver::new(&k.remote),
                })
            }),
        };
        self.routes[route as usize] = RouteInfo {
            rtp_port: slot.port,
            rtcp_port: slot.rtcp_port(),
            srtp: slot.srtp.is_some(),
        };
        self.srtp_calls += usize::from(slot.srtp.is_some());
        self.slots[route as usize] = Some(slot);
        self.by_token.insert(start.token, route);
    }

    /// Registers a call's two sockets in the loop's epoll, tagged with its route and which
    /// port (RTP or RTCP) each is.
    fn watch(&self, route: u32, port: &RtpPort) {
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
    }

    fn stop(&mut self, token: u64) {
        let Some(route) = self.by_token.remove(&token) else {
            self.events.send(MediaEvent::Stopped { token, packets: 0 });
            return;
        };
        let mut slot = self.slots[route as usize].take().expect("slot of a token");
        if let Some(rec) = slot.listen.as_mut().and_then(|l| l.recording.take()) {
            let rate = slot.listen.as_ref().map_or(0, |l| l.tap.rate());
            self.report_recording(token, rec, rate);
        }
        let packets = match slot.stream {
            Some(id) => self.pacer.stop(id).unwrap_or(slot.final_packets),
            None => slot.final_packets,
        };
        self.srtp_calls -= usize::from(slot.srtp.is_some());
        self.routes[route as usize] = RouteInfo::default();
        // Dropping the sockets closes them (and removes them from epoll).
        drop(slot);
        self.free.push(route);
        self.load.fetch_sub(1, Ordering::Relaxed);
        self.events.send(MediaEvent::Stopped { token, packets });
    }
}

impl Loop {
    fn slot_mut(&mut self, token: u64) -> Option<&mut CallSlot> {
        let &route = self.by_token.get(&token)?;
        self.slots[route as usize].as_mut()
    }

    fn play(&mut self, token: u64, list: Playlist) {
        let Some(id) = self.slot_mut(token).and_then(|s| s.stream) else {
            // The call's message has ended (the call is hanging up) or the call is gone.
            debug!(token, "playlist for a call without a stream");
            return;
        };
        if !self.pacer.play(id, list.items, list.silence, list.id) {
            warn!(token, "playlist not in the call's packet time; not played");
        }
    }

    fn record(&mut self, token: u64, spec: RecordSpec) {
        let Some(slot) = self.slot_mut(token) else {
            return;
        };
        let previous = slot.listen.as_mut().and_then(|l| l.recording.take());
        let rate = slot.listen.as_ref().map_or(0, |l| l.tap.rate());
        if let Some(l) = listener(slot, spec.codec, spec.payload_type) {
            l.recording = Some(Recording::new(l.tap.rate(), spec.max_ms));
        }
        if let Some(rec) = previous {
            self.report_recording(token, rec, rate);
        }
    }

    fn analyse(&mut self, token: u64, cfg: &AmdConfig, codec: codecs::Codec, pt: u8) {
        let Some(slot) = self.slot_mut(token) else {
            return;
        };
        if let Some(l) = listener(slot, codec, pt) {
            let rate = l.tap.rate();
            l.detectors.start(cfg, rate);
        }
    }

    fn stop_record(&mut self, token: u64) {
        let Some(slot) = self.slot_mut(token) else {
            return;
        };
        let Some(l) = slot.listen.as_mut() else {
            return;
        };
        let (rec, rate) = (l.recording.take(), l.tap.rate());
        if l.idle() {
            slot.listen = None;
        }
        if let Some(rec) = rec {
            self.report_recording(token, rec, rate);
        }
    }

    pub(super) fn report_recording(&self, token: u64, rec: Recording, rate: u32) {
        self.events.send(MediaEvent::Recorded {
            token,
            pcm: Arc::new(rec.into_pcm()),
            rate,
        });
    }
}

/// The call's listener, made (with its decoder) when nothing listened yet; `None` when the
/// codec has no decoder.
fn listener(slot: &mut CallSlot, codec: codecs::Codec, pt: u8) -> Option<&mut Listen> {
    if slot.listen.is_none() {
        match AudioTap::new(codec, pt) {
            Ok(tap) => slot.listen = Some(Box::new(Listen::new(tap))),
            Err(e) => warn!(token = slot.token, error = %e, "no decoder for the callee's audio"),
        }
    }
    slot.listen.as_deref_mut()
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
}
