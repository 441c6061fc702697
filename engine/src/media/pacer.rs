//! The sans-IO pacer: one timing wheel that tells a sending loop which packets of which calls
//! are due now, for thousands of calls at once.
//!
//! Why: one task or timer per call costs a wake-up per packet per call (50 a second for
//! G.711 at 20 ms), and calls answered together would send in bursts. Here a sending loop
//! asks [`Pacer::fill`] once per ~1 ms slot and gets every due packet of every stream written
//! into one [`Batch`], ready for one `sendmmsg`.
//!
//! What it guarantees:
//! - **Absolute schedule.** Packet `n` of a stream is due at `start + n·ptime`, computed in
//!   integer nanoseconds from the stream's start: a late loop iteration delays packets but
//!   never shifts the ones after it, so there is no drift over an hour.
//! - **Phase spreading.** A new stream starts in the least loaded of the next `phases` slots,
//!   so 5,000 calls answered in the same second spread over 20 slots of 1 ms instead of
//!   bursting together every 20 ms.
//! - **No allocation per packet or per call** once the wheel and the stream table have grown
//!   to the peak number of calls: streams live in a slab, slots are reused vectors of indices.
//! - **RTCP** (RFC 3550): a sender report every `rtcp_interval` (randomised ±50 % at the start
//!   so calls do not report in step), and SR + SDES + BYE when the stream ends, to the RTCP
//!   address (the RTP address itself with `rtcp-mux`).
//! - **Events**: the end of a stream is a [`PacerEvent::Finished`], so the call hangs up.
//!
//! Time comes in as an [`Instant`] argument; the pacer never reads a clock, so tests run an
//! hour of media on virtual time in milliseconds.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use codecs::Prompt;

use super::rtcp;
use super::stream::{RtpStream, StreamParams};

/// How the pacer slices time.
#[derive(Debug, Clone)]
pub struct PacerConfig {
    /// Slot length: the loop's tick (1 ms).
    pub slot: Duration,
    /// Number of phase slots new streams are spread over (the ptime in slots: 20).
    pub phases: u32,
    /// Wheel size in slots; must exceed the longest ptime in slots.
    pub wheel_slots: usize,
    /// Mean interval between RTCP sender reports (RFC 3550 suggests 5 s minimum).
    pub rtcp_interval: Duration,
    /// NTP timestamp (RFC 5905 64-bit format) of the pacer's origin instant, for sender reports.
    pub ntp_at_origin: u64,
    /// SDES CNAME sent in RTCP compound packets.
    pub cname: String,
    /// Bytes reserved in front of every packet in a [`Batch`] (a raw-socket sender writes IP
    /// and UDP headers there).
    pub headroom: usize,
    /// Largest number of packets in one batch.
    pub batch_size: usize,
}

impl Default for PacerConfig {
    fn default() -> Self {
        PacerConfig {
            slot: Duration::from_millis(1),
            phases: 20,
            wheel_slots: 512,
            rtcp_interval: Duration::from_secs(5),
            ntp_at_origin: 0,
            cname: "dialer".into(),
            headroom: 0,
            batch_size: 512,
        }
    }
}

/// Identifies a stream in one pacer (index plus generation, so a stale id never stops a newer
/// stream that reuses the slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId {
    index: u32,
    generation: u32,
}

/// Everything a new stream needs.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// The caller's token for this call (returned in events).
    pub token: u64,
    /// The caller's index of the socket (or source port) the stream sends from.
    pub route: u32,
    /// Where RTP goes.
    pub dest: SocketAddr,
    /// Where RTCP goes (`dest` when muxed), or `None` for no RTCP.
    pub rtcp_dest: Option<SocketAddr>,
    /// The prompt, shared by every call playing it.
    pub prompt: Arc<Prompt>,
    /// Sequence, timestamp, SSRC, payload type, play count.
    pub params: StreamParams,
    /// RTP clock rate (Hz) for sender-report timestamps.
    pub clock_rate: u32,
}

/// What kind of packet a batch item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// An RTP media packet.
    Rtp,
    /// An RTCP compound packet (SR, or SR + BYE).
    Rtcp,
}

/// One packet of a batch: where it goes and when it was due.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem {
    /// The stream's `route` (socket index or source port).
    pub route: u32,
    /// Destination.
    pub dest: SocketAddr,
    /// Packet length (after the headroom).
    pub len: u16,
    /// When it was due, in nanoseconds since the pacer's origin.
    pub due_ns: u64,
    /// RTP or RTCP.
    pub kind: PacketKind,
}

/// Preallocated packet buffers: item `i`'s bytes sit at `i * stride + headroom`.
#[derive(Debug)]
pub struct Batch {
    buf: Vec<u8>,
    stride: usize,
    headroom: usize,
    items: Vec<BatchItem>,
    capacity: usize,
}

/// Largest RTP or RTCP packet the pacer writes (payload of 60 ms of G.711 plus header).
pub const MAX_PACKET: usize = 1024;

impl Batch {
    /// A batch of `capacity` packets with `headroom` bytes before each.
    pub fn new(capacity: usize, headroom: usize) -> Batch {
        let stride = (headroom + MAX_PACKET).next_multiple_of(64);
        Batch {
            buf: vec![0; stride * capacity.max(1)],
            stride,
            headroom,
            items: Vec::with_capacity(capacity.max(1)),
            capacity: capacity.max(1),
        }
    }

    /// Number of packets in the batch.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch holds no packet.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether no more packets fit.
    pub fn is_full(&self) -> bool {
        self.items.len() >= self.capacity
    }

    /// Empties the batch (keeps its memory).
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// The items, in order.
    pub fn items(&self) -> &[BatchItem] {
        &self.items
    }

    /// Packet `i`'s bytes.
    pub fn packet(&self, i: usize) -> &[u8] {
        let off = i * self.stride + self.headroom;
        &self.buf[off..off + usize::from(self.items[i].len)]
    }

    /// Packet `i` with its headroom in front, mutable (for a sender that writes headers).
    pub fn with_headroom_mut(&mut self, i: usize) -> &mut [u8] {
        let off = i * self.stride;
        let len = self.headroom + usize::from(self.items[i].len);
        &mut self.buf[off..off + len]
    }

    /// Bytes per slot.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Headroom before each packet.
    pub fn headroom(&self) -> usize {
        self.headroom
    }

    /// Raw base pointer of the buffer (for building `iovec`s).
    pub fn base_ptr(&mut self) -> *mut u8 {
        self.buf.as_mut_ptr()
    }

    fn next_buf(&mut self) -> &mut [u8] {
        let off = self.items.len() * self.stride + self.headroom;
        &mut self.buf[off..off + MAX_PACKET]
    }
}

/// Something a call must know about its media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacerEvent {
    /// Every play of the prompt has been sent (the call should hang up).
    Finished {
        /// The stream.
        id: StreamId,
        /// The caller's token.
        token: u64,
        /// RTP packets sent.
        packets: u64,
    },
}

#[derive(Debug)]
struct Entry {
    stream: RtpStream,
    token: u64,
    route: u32,
    dest: SocketAddr,
    rtcp_dest: Option<SocketAddr>,
    start_ns: u64,
    ptime_ns: u64,
    /// Index of the next packet slot (including silent gap slots).
    n: u64,
    next_sr_ns: u64,
    clock_rate: u32,
    phase: u32,
    generation: u32,
    live: bool,
    /// Whether the entry's index sits in a wheel slot.
    queued: bool,
}

/// The pacer of one sending loop. See the module documentation.
#[derive(Debug)]
pub struct Pacer {
    cfg: PacerConfig,
    origin: Instant,
    slot_ns: u64,
    entries: Vec<Entry>,
    free: Vec<u32>,
    wheel: Vec<Vec<u32>>,
    /// Next slot not yet processed.
    cursor: u64,
    phase_load: Vec<u32>,
    active: usize,
    events: VecDeque<PacerEvent>,
    rng: u64,
}

impl Pacer {
    /// A pacer whose time starts at `origin`.
    pub fn new(cfg: PacerConfig, origin: Instant) -> Pacer {
        let slot_ns = cfg.slot.as_nanos().max(1) as u64;
        Pacer {
            wheel: (0..cfg.wheel_slots.max(2)).map(|_| Vec::new()).collect(),
            phase_load: vec![0; cfg.phases.max(1) as usize],
            slot_ns,
            origin,
            entries: Vec::new(),
            free: Vec::new(),
            cursor: 0,
            active: 0,
            events: VecDeque::new(),
            rng: 0x9e37_79b9_7f4a_7c15,
            cfg,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PacerConfig {
        &self.cfg
    }

    /// The origin instant (time zero of `due_ns`).
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Streams playing.
    pub fn active(&self) -> usize {
        self.active
    }

    fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.origin).as_nanos() as u64
    }

    fn slot_of(&self, due_ns: u64) -> u64 {
        due_ns.div_ceil(self.slot_ns)
    }

    /// Adds a stream at `now`; its first packet goes out in the least loaded of the next
    /// `phases` slots. Returns `None` if the prompt's ptime does not fit the wheel.
    pub fn add(&mut self, now: Instant, spec: StreamSpec) -> Option<StreamId> {
        let ptime_ns = u64::from(spec.prompt.ptime_ms()) * 1_000_000;
        if ptime_ns == 0 || ptime_ns / self.slot_ns >= self.wheel.len() as u64 {
            return None;
        }
        // The wheel must not hold slots before the cursor: start no earlier than it.
        let first = self.slot_of(self.ns(now)).max(self.cursor);
        let phases = self.phase_load.len() as u64;
        let mut best = first;
        let mut best_load = u32::MAX;
        for s in first..first + phases {
            let load = self.phase_load[(s % phases) as usize];
            if load < best_load {
                best = s;
                best_load = load;
            }
        }
        let phase = (best % phases) as u32;
        self.phase_load[phase as usize] += 1;
        let start_ns = best * self.slot_ns;
        // First SR after a random 0.5..1.5 of the interval (RFC 3550 §6.2 randomisation).
        let interval = self.cfg.rtcp_interval.as_nanos() as u64;
        let r = self.next_rand() % 1000;
        let next_sr_ns = start_ns + interval / 2 + interval / 1000 * r;
        let entry = Entry {
            stream: RtpStream::new(spec.prompt, spec.params),
            token: spec.token,
            route: spec.route,
            dest: spec.dest,
            rtcp_dest: spec.rtcp_dest,
            start_ns,
            ptime_ns,
            n: 0,
            next_sr_ns,
            clock_rate: spec.clock_rate,
            phase,
            generation: 0,
            live: true,
            queued: true,
        };
        let index = match self.free.pop() {
            Some(i) => {
                let generation = self.entries[i as usize].generation.wrapping_add(1);
                self.entries[i as usize] = Entry {
                    generation,
                    ..entry
                };
                i
            }
            None => {
                self.entries.push(entry);
                (self.entries.len() - 1) as u32
            }
        };
        let w = self.wheel.len() as u64;
        self.wheel[(best % w) as usize].push(index);
        self.active += 1;
        Some(StreamId {
            index,
            generation: self.entries[index as usize].generation,
        })
    }

    /// Stops a stream now (the callee hung up); returns the RTP packets it sent, or `None`
    /// if the id is stale. No further packet or event comes for it.
    pub fn stop(&mut self, id: StreamId) -> Option<u64> {
        let e = self.entries.get_mut(id.index as usize)?;
        if e.generation != id.generation || !e.live {
            return None;
        }
        e.live = false;
        let sent = e.stream.packets_sent();
        let phase = e.phase as usize;
        self.phase_load[phase] -= 1;
        self.active -= 1;
        // The slab slot is freed when the wheel reaches it (its index is still queued).
        Some(sent)
    }

    /// Packets sent so far by a stream.
    pub fn packets_sent(&self, id: StreamId) -> Option<u64> {
        let e = self.entries.get(id.index as usize)?;
        (e.generation == id.generation && e.live).then(|| e.stream.packets_sent())
    }

    /// When the next slot with work starts (the loop sleeps until then), or `None` when idle.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.active == 0 {
            return None;
        }
        let w = self.wheel.len() as u64;
        for s in self.cursor..self.cursor + w {
            if !self.wheel[(s % w) as usize].is_empty() {
                return Some(self.origin + Duration::from_nanos(s * self.slot_ns));
            }
        }
        None
    }

    /// Next event for a call.
    pub fn poll_event(&mut self) -> Option<PacerEvent> {
        self.events.pop_front()
    }

    /// Writes every packet due at `now` into `batch`, up to its capacity. Returns `true` when
    /// everything due has been written, `false` when the batch filled first (send it, clear
    /// it and call again).
    pub fn fill(&mut self, now: Instant, batch: &mut Batch) -> bool {
        let now_ns = self.ns(now);
        let w = self.wheel.len() as u64;
        while self.cursor * self.slot_ns <= now_ns {
            let b = (self.cursor % w) as usize;
            while let Some(&idx) = self.wheel[b].last() {
                // RTP plus a possible RTCP packet need two places.
                if batch.items.len() + 2 > batch.capacity {
                    return false;
                }
                self.wheel[b].pop();
                if let Some(next_slot) = self.service(idx, now_ns, batch) {
                    self.wheel[(next_slot % w) as usize].push(idx);
                }
            }
            self.cursor += 1;
        }
        true
    }

    /// Sends stream `idx`'s due packet; returns the slot of its next one, or `None` when the
    /// stream is gone (its slab entry is then free).
    fn service(&mut self, idx: u32, now_ns: u64, batch: &mut Batch) -> Option<u64> {
        let e = &mut self.entries[idx as usize];
        if !e.live {
            e.queued = false;
            self.free.push(idx);
            return None;
        }
        let due_ns = e.start_ns + e.n * e.ptime_ns;
        let buf = batch.next_buf();
        match e.stream.next_packet(buf) {
            Some(0) => {}
            Some(len) => {
                batch.items.push(BatchItem {
                    route: e.route,
                    dest: e.dest,
                    len: len as u16,
                    due_ns,
                    kind: PacketKind::Rtp,
                });
            }
            None => {
                // The end: SR + SDES + BYE, then the event.
                if let Some(rtcp_dest) = e.rtcp_dest {
                    queue_sr(&self.cfg, e, rtcp_dest, now_ns, due_ns, true, batch);
                }
                e.live = false;
                e.queued = false;
                let packets = e.stream.packets_sent();
                let ev = PacerEvent::Finished {
                    id: StreamId {
                        index: idx,
                        generation: e.generation,
                    },
                    token: e.token,
                    packets,
                };
                let phase = e.phase as usize;
                self.phase_load[phase] -= 1;
                self.active -= 1;
                self.free.push(idx);
                self.events.push_back(ev);
                return None;
            }
        }
        e.n += 1;
        if now_ns >= e.next_sr_ns {
            if let Some(rtcp_dest) = e.rtcp_dest {
                queue_sr(&self.cfg, e, rtcp_dest, now_ns, due_ns, false, batch);
            }
            e.next_sr_ns += self.cfg.rtcp_interval.as_nanos() as u64;
        }
        let next_due = e.start_ns + e.n * e.ptime_ns;
        Some(next_due.div_ceil(self.slot_ns))
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*: spreading RTCP intervals needs no cryptographic randomness.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Bytes of one stream's entry in the pacer (for the memory-per-call budget).
#[doc(hidden)]
pub fn entry_size() -> usize {
    std::mem::size_of::<Entry>()
}

/// The RTP timestamp that corresponds to `now_ns` (for sender reports).
/// Writes a Sender Report (with SDES, and BYE at the end of the stream) for `e` into the
/// batch, addressed to its RTCP destination.
fn queue_sr(
    cfg: &PacerConfig,
    e: &Entry,
    rtcp_dest: SocketAddr,
    now_ns: u64,
    due_ns: u64,
    bye: bool,
    batch: &mut Batch,
) {
    let len = rtcp::write_sr(
        batch.next_buf(),
        &rtcp::SenderInfo {
            ssrc: e.stream.params().ssrc,
            ntp: ntp_add(cfg.ntp_at_origin, now_ns),
            rtp_ts: rtp_ts_at(e, now_ns),
            packets: e.stream.packets_sent() as u32,
            octets: e.stream.octets_sent() as u32,
        },
        &cfg.cname,
        bye,
    );
    if len > 0 {
        batch.items.push(BatchItem {
            route: e.route,
            dest: rtcp_dest,
            len: len as u16,
            due_ns,
            kind: PacketKind::Rtcp,
        });
    }
}

fn rtp_ts_at(e: &Entry, now_ns: u64) -> u32 {
    let elapsed = now_ns.saturating_sub(e.start_ns);
    let ticks = (u128::from(elapsed) * u128::from(e.clock_rate) / 1_000_000_000) as u32;
    e.stream.params().first_timestamp.wrapping_add(ticks)
}

/// Adds nanoseconds to a 64-bit NTP timestamp (32.32 fixed point seconds).
pub fn ntp_add(ntp: u64, ns: u64) -> u64 {
    let secs = ns / 1_000_000_000;
    let frac = ((ns % 1_000_000_000) << 32) / 1_000_000_000;
    ntp.wrapping_add((secs << 32) | frac)
}

/// The NTP timestamp (RFC 5905 era 0) of a system time.
pub fn ntp_from_system(t: std::time::SystemTime) -> u64 {
    const UNIX_TO_NTP: u64 = 2_208_988_800;
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    ntp_add(UNIX_TO_NTP << 32, d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use codecs::{Codec, EncodeSettings, PreparedAudio};

    fn prompt(ms: u32) -> Arc<Prompt> {
        let rate = 8000u32;
        let n = (rate * ms / 1000) as usize;
        let samples: Vec<i16> = (0..n)
            .map(|i| ((i as f32 * 0.05).sin() * 8000.0) as i16)
            .collect();
        let mut wav = Vec::new();
        {
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: rate,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut w = hound::WavWriter::new(std::io::Cursor::new(&mut wav), spec).unwrap();
            for s in samples {
                w.write_sample(s).unwrap();
            }
            w.finalize().unwrap();
        }
        let settings = EncodeSettings {
            normalize: false,
            ..EncodeSettings::default()
        };
        let prepared = PreparedAudio::from_bytes(&wav, &settings).unwrap();
        Arc::new(prepared.encode(Codec::Pcmu, 20).unwrap())
    }

    fn spec(token: u64, p: &Arc<Prompt>, play_count: u32, gap_frames: u32) -> StreamSpec {
        StreamSpec {
            token,
            route: token as u32,
            dest: "127.0.0.1:4000".parse().unwrap(),
            rtcp_dest: Some("127.0.0.1:4001".parse().unwrap()),
            prompt: p.clone(),
            params: StreamParams {
                payload_type: 0,
                ssrc: 0x1234_0000 + token as u32,
                first_seq: 65530,
                first_timestamp: u32::MAX - 400,
                play_count,
                gap_frames,
            },
            clock_rate: 8000,
        }
    }

    /// Runs the pacer on virtual time, ticking every `tick` (with a jitter pattern), and
    /// collects (send time ns, item, packet bytes).
    fn run(
        pacer: &mut Pacer,
        until: Duration,
        tick_us: u64,
        mut on: impl FnMut(u64, &BatchItem, &[u8]),
    ) {
        let mut batch = Batch::new(64, 0);
        let t0 = pacer.origin();
        let mut t = 0u64;
        let mut k = 0u64;
        while t <= until.as_nanos() as u64 {
            let now = t0 + Duration::from_nanos(t);
            loop {
                let done = pacer.fill(now, &mut batch);
                for (i, it) in batch.items().iter().enumerate() {
                    on(t, it, batch.packet(i));
                }
                batch.clear();
                if done {
                    break;
                }
            }
            // Irregular ticks: the loop wakes late by up to 0.7 ms now and then.
            k += 1;
            t += tick_us * 1000 + (k * 7919 % 7) * 100_000;
        }
    }

    #[test]
    fn an_hour_of_media_without_drift() {
        // A one-minute prompt played 60 times back to back: one hour, 180,000 packets.
        let p = prompt(60_000);
        let t0 = Instant::now();
        let mut pacer = Pacer::new(PacerConfig::default(), t0);
        pacer.add(t0, spec(1, &p, 60, 0)).unwrap();
        let mut n = 0u64;
        let mut first_due = None;
        let mut last_seq = None;
        let mut max_lag = 0u64;
        let mut srs = 0;
        run(&mut pacer, Duration::from_secs(3601), 1, |t, it, pkt| {
            if it.kind == PacketKind::Rtcp {
                srs += 1;
                return;
            }
            let fd = *first_due.get_or_insert(it.due_ns);
            assert_eq!(
                it.due_ns,
                fd + n * 20_000_000,
                "packet {n} due off schedule"
            );
            assert!(t >= it.due_ns, "sent early");
            max_lag = max_lag.max(t - it.due_ns);
            let r = rtp_rs::RtpReader::new(pkt).unwrap();
            assert_eq!(
                r.timestamp(),
                (u32::MAX - 400).wrapping_add(160 * n as u32),
                "timestamp of packet {n}"
            );
            assert_eq!(r.mark(), n == 0);
            if let Some(s) = last_seq {
                assert_eq!(u16::from(r.sequence_number()), u16::wrapping_add(s, 1));
            }
            last_seq = Some(u16::from(r.sequence_number()));
            n += 1;
        });
        assert_eq!(n, 180_000);
        assert!(max_lag < 1_000_000, "lag {max_lag} ns");
        // An SR every ~5 s plus the final SR+BYE.
        assert!((700..=740).contains(&srs), "{srs} RTCP packets");
        let ev = pacer.poll_event().unwrap();
        assert!(matches!(
            ev,
            PacerEvent::Finished {
                token: 1,
                packets: 180_000,
                ..
            }
        ));
        assert_eq!(pacer.active(), 0);
    }

    #[test]
    fn simultaneous_answers_spread_over_phases() {
        let p = prompt(1000);
        let t0 = Instant::now();
        let mut pacer = Pacer::new(PacerConfig::default(), t0);
        for i in 0..5000 {
            pacer.add(t0, spec(i, &p, 1, 0)).unwrap();
        }
        let mut per_slot = std::collections::HashMap::<u64, usize>::new();
        run(&mut pacer, Duration::from_millis(200), 1, |_, it, _| {
            if it.kind == PacketKind::Rtp {
                *per_slot.entry(it.due_ns / 1_000_000).or_default() += 1;
            }
        });
        // 5000 streams over 20 phases: 250 per 1 ms slot, every slot busy.
        assert!(per_slot.values().all(|&c| c == 250), "{per_slot:?}");
        assert_eq!(per_slot.len(), 200);
    }

    #[test]
    fn play_count_with_gap_and_stream_end() {
        let p = prompt(200); // 10 frames
        let t0 = Instant::now();
        let mut pacer = Pacer::new(PacerConfig::default(), t0);
        let id = pacer.add(t0, spec(7, &p, 3, 5)).unwrap();
        let mut rtp = Vec::new();
        let mut rtcp = Vec::new();
        run(
            &mut pacer,
            Duration::from_secs(2),
            1,
            |_, it, pkt| match it.kind {
                PacketKind::Rtp => {
                    let r = rtp_rs::RtpReader::new(pkt).unwrap();
                    rtp.push((it.due_ns, r.timestamp(), r.mark()));
                }
                PacketKind::Rtcp => rtcp.push(pkt.to_vec()),
            },
        );
        assert_eq!(rtp.len(), 30);
        // Plays start at slots 0, 15, 30 (10 frames + 5 gap frames) with the marker bit.
        let marks: Vec<usize> = (0..30).filter(|&i| rtp[i].2).collect();
        assert_eq!(marks, vec![0, 10, 20]);
        let d = |i: usize| (rtp[i].0 - rtp[0].0) / 20_000_000;
        assert_eq!((d(10), d(20), d(29)), (15, 30, 39));
        assert_eq!(rtp[10].1.wrapping_sub(rtp[0].1), 15 * 160);
        // The end: one SR + SDES + BYE compound, then the event; the id is then stale.
        let last = rtcp.last().unwrap();
        let kinds: Vec<u8> = rtcp::Compound::new(last).map(|p| p.unwrap().pt).collect();
        assert_eq!(kinds, vec![200, 202, 203]);
        assert_eq!(
            pacer.poll_event(),
            Some(PacerEvent::Finished {
                id,
                token: 7,
                packets: 30
            })
        );
        assert_eq!(pacer.stop(id), None);
        assert_eq!(pacer.poll_timeout(), None);
    }

    #[test]
    fn stop_midway_counts_exactly_and_frees_the_slot() {
        let p = prompt(1000);
        let t0 = Instant::now();
        let mut pacer = Pacer::new(PacerConfig::default(), t0);
        let a = pacer.add(t0, spec(1, &p, 1, 0)).unwrap();
        let mut batch = Batch::new(64, 0);
        let mut sent = 0;
        for ms in 0..=100u64 {
            pacer.fill(t0 + Duration::from_millis(ms), &mut batch);
            sent += batch.len();
            batch.clear();
        }
        assert_eq!(pacer.stop(a), Some(sent as u64));
        assert_eq!(sent, 6);
        for ms in 101..=200u64 {
            pacer.fill(t0 + Duration::from_millis(ms), &mut batch);
            assert!(batch.is_empty());
        }
        assert!(pacer.poll_event().is_none());
        // The slot is reused with a new generation: the old id stays stale.
        let b = pacer
            .add(t0 + Duration::from_millis(200), spec(2, &p, 1, 0))
            .unwrap();
        assert_ne!(a, b);
        assert_eq!(pacer.stop(a), None);
        assert_eq!(pacer.entries.len(), 1);
    }

    #[test]
    fn a_small_batch_resumes_where_it_stopped() {
        let p = prompt(100);
        let t0 = Instant::now();
        let mut pacer = Pacer::new(
            PacerConfig {
                phases: 1,
                ..PacerConfig::default()
            },
            t0,
        );
        for i in 0..100 {
            pacer.add(t0, spec(i, &p, 1, 0)).unwrap();
        }
        let mut batch = Batch::new(8, 0);
        let mut rounds = 0;
        let mut total = 0;
        while !pacer.fill(t0, &mut batch) {
            total += batch.len();
            batch.clear();
            rounds += 1;
        }
        total += batch.len();
        assert_eq!(total, 100);
        assert!(rounds >= 14);
    }

    #[test]
    fn ntp_conversion() {
        assert_eq!(ntp_add(0, 1_500_000_000), (1 << 32) | (1 << 31));
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1);
        assert_eq!(ntp_from_system(t) >> 32, 2_208_988_801);
    }
}
