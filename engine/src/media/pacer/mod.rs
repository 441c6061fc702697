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
//! - **Events**: the end of a stream is a [`PacerEvent::Finished`], so the call hangs up; it
//!   comes `finish_hold` after the last packet's audio has been sent (see [`FINISH_HOLD`]).
//!
//! Time comes in as an [`Instant`] argument; the pacer never reads a clock, so tests run an
//! hour of media on virtual time in milliseconds.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use codecs::{Codec, Prompt};

mod sender_report;

use super::batch::{Batch, BatchItem, PacketKind};
use super::stream::{RtpStream, Segment, StreamParams};
use sender_report::queue_sr;
pub use sender_report::{ntp_add, ntp_from_system};

/// How long the end of a stream is held back after its last packet's audio: the callee's jitter
/// buffer still has to play what it holds (softphones keep 40–250 ms; baresip lost the last
/// 80 ms and linphone 40–250 ms of the message when the BYE followed 20 ms after the last
/// packet), and the BYE that the [`PacerEvent::Finished`] triggers makes it stop at once.
/// 400 ms covers the deepest buffer seen with margin and is short beside a message's length.
pub const FINISH_HOLD: Duration = Duration::from_millis(400);

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
    /// Delay between the end of a stream's last packet and its [`PacerEvent::Finished`].
    pub finish_hold: Duration,
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
            finish_hold: FINISH_HOLD,
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
    /// The stream idles: `prompt` is one packet of silence, streamed every packet time until
    /// [`Pacer::play`] gives it a playlist; it never finishes by itself.
    pub idle: bool,
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
    /// The last item of a playlist ([`Pacer::play`]) has been sent; the stream idles.
    Played {
        /// The stream.
        id: StreamId,
        /// The caller's token.
        token: u64,
        /// The playlist's id.
        play_id: u32,
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
    /// Streams sent to the end whose event waits for the callee's playout (due order).
    held: VecDeque<(u64, PacerEvent)>,
    events: VecDeque<PacerEvent>,
    rng: u64,
    /// One packet of silence per codec and packet time, for the streams' tails (encoded once).
    silences: HashMap<(Codec, u32), Arc<Prompt>>,
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
            held: VecDeque::new(),
            events: VecDeque::new(),
            rng: 0x9e37_79b9_7f4a_7c15,
            silences: HashMap::new(),
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

    /// The silence a message stream sends during the finish hold, in packets of its ptime
    /// (none when the hold is shorter than a packet or silence cannot be encoded).
    fn tail_of(&mut self, prompt: &Prompt, ptime_ns: u64) -> Option<(Arc<Prompt>, u32)> {
        let frames = (self.cfg.finish_hold.as_nanos() as u64 / ptime_ns) as u32;
        if frames == 0 {
            return None;
        }
        let (codec, ptime) = (prompt.codec(), prompt.ptime_ms());
        let silence = match self.silences.get(&(codec, ptime)) {
            Some(s) => s.clone(),
            None => {
                let s = Arc::new(Prompt::silence(codec, ptime, ptime).ok()?);
                self.silences.insert((codec, ptime), s.clone());
                s
            }
        };
        Some((silence, frames))
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
        let stream = if spec.idle {
            RtpStream::idle(spec.prompt, spec.params)
        } else {
            let tail = self.tail_of(&spec.prompt, ptime_ns);
            let s = RtpStream::new(spec.prompt, spec.params);
            match tail {
                Some((silence, frames)) => s.with_tail(silence, frames),
                None => s,
            }
        };
        let entry = Entry {
            stream,
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
        if let Some(i) = self.held.iter().position(|(_, ev)| ev.id() == id) {
            let (_, ev) = self.held.remove(i)?;
            return ev.packets();
        }
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

    /// Sends a stream's RTP (and RTCP) to new addresses from its next packet on: the callee's
    /// media came from elsewhere than its SDP said and the call latches (RFC 4961). Returns
    /// whether the stream is still playing.
    pub fn set_dest(
        &mut self,
        id: StreamId,
        dest: SocketAddr,
        rtcp_dest: Option<SocketAddr>,
    ) -> bool {
        match self.entries.get_mut(id.index as usize) {
            Some(e) if e.generation == id.generation && e.live => {
                e.dest = dest;
                e.rtcp_dest = rtcp_dest;
                true
            }
            _ => false,
        }
    }

    /// Replaces what a stream plays by `items` from the first frame of the first, at its next
    /// packet (within one packet time); `silence` (one packet) streams once they have played,
    /// and a [`PacerEvent::Played`] with `play_id` says when. Returns `false` (nothing changes)
    /// when the stream is gone or an item is not in the stream's packet time.
    pub fn play(
        &mut self,
        id: StreamId,
        items: Vec<Segment>,
        silence: Arc<Prompt>,
        play_id: u32,
    ) -> bool {
        let Some(e) = self.entries.get_mut(id.index as usize) else {
            return false;
        };
        let ptime_ok = |p: &Prompt| u64::from(p.ptime_ms()) * 1_000_000 == e.ptime_ns;
        if e.generation != id.generation
            || !e.live
            || !ptime_ok(&silence)
            || !items.iter().all(|s| ptime_ok(&s.prompt))
        {
            return false;
        }
        e.stream.play(items, silence, play_id);
        if let Some(play_id) = e.stream.take_played() {
            self.events.push_back(PacerEvent::Played {
                id,
                token: e.token,
                play_id,
            });
        }
        true
    }

    /// Packets sent so far by a stream.
    pub fn packets_sent(&self, id: StreamId) -> Option<u64> {
        let e = self.entries.get(id.index as usize)?;
        (e.generation == id.generation && e.live).then(|| e.stream.packets_sent())
    }

    /// When the next slot with work starts (the loop sleeps until then), or `None` when idle.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let held = self
            .held
            .front()
            .map(|&(due, _)| self.origin + Duration::from_nanos(due));
        if self.active == 0 {
            return held;
        }
        let w = self.wheel.len() as u64;
        let slot = (self.cursor..self.cursor + w)
            .find(|&s| !self.wheel[(s % w) as usize].is_empty())
            .map(|s| self.origin + Duration::from_nanos(s * self.slot_ns));
        match (slot, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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
                if !batch.has_room(2) {
                    return false;
                }
                self.wheel[b].pop();
                // A stream's entry was last touched a packet time ago (and thousands of other
                // packets since): ask for the one serviced a few places later now, so its
                // cache miss overlaps with this one's work instead of stalling it.
                let slot_len = self.wheel[b].len();
                if let Some(&ahead) = self.wheel[b].get(slot_len.wrapping_sub(PREFETCH_AHEAD)) {
                    prefetch_entry(&self.entries, ahead);
                }
                if let Some(next_slot) = self.service(idx, now_ns, batch) {
                    self.wheel[(next_slot % w) as usize].push(idx);
                }
            }
            self.cursor += 1;
        }
        while self.held.front().is_some_and(|&(due, _)| due <= now_ns) {
            if let Some((_, ev)) = self.held.pop_front() {
                self.events.push_back(ev);
            }
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
                batch.push(BatchItem {
                    route: e.route,
                    dest: e.dest,
                    len: len as u16,
                    due_ns,
                    kind: PacketKind::Rtp,
                });
                if let Some(play_id) = e.stream.take_played() {
                    self.events.push_back(PacerEvent::Played {
                        id: StreamId {
                            index: idx,
                            generation: e.generation,
                        },
                        token: e.token,
                        play_id,
                    });
                }
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
                // `due_ns` is the slot after the last packet: its audio has just been sent.
                // The silence tail already took most of the hold.
                let tail = e.stream.tail_sent();
                let hold =
                    (self.cfg.finish_hold.as_nanos() as u64).saturating_sub(tail * e.ptime_ns);
                let release = due_ns + hold;
                self.held.push_back((release, ev));
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
        // Spreading RTCP intervals needs no cryptographic randomness.
        super::xorshift64_star(&mut self.rng)
    }
}

impl PacerEvent {
    /// The stream the event is about.
    pub fn id(&self) -> StreamId {
        match *self {
            PacerEvent::Finished { id, .. } | PacerEvent::Played { id, .. } => id,
        }
    }

    /// RTP packets the stream sent in all, for the end of a stream.
    pub fn packets(&self) -> Option<u64> {
        match *self {
            PacerEvent::Finished { packets, .. } => Some(packets),
            PacerEvent::Played { .. } => None,
        }
    }
}

/// How many streams ahead of the one being serviced [`Pacer::fill`] prefetches.
const PREFETCH_AHEAD: usize = 8;

/// Asks the CPU to bring entry `idx` (every cache line of it) into the cache.
#[inline]
fn prefetch_entry(entries: &[Entry], idx: u32) {
    #[cfg(target_arch = "x86_64")]
    if let Some(e) = entries.get(idx as usize) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = e as *const Entry as *const i8;
        let size = std::mem::size_of::<Entry>();
        for off in (0..size).step_by(64).chain(std::iter::once(size - 1)) {
            // SAFETY: a prefetch is a hint that never faults and reads nothing into the
            // program; the address (computed with wrapping_add) lies within `e` anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(off)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (entries, idx);
}

/// Bytes of one stream's entry in the pacer (for the memory-per-call budget).
#[doc(hidden)]
pub fn entry_size() -> usize {
    std::mem::size_of::<Entry>()
}

#[cfg(test)]
mod tests;
