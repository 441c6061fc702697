//! The carrier's side of callee behaviours: a thread that sends their RTP (keys by
//! RFC 4733, a machine's greeting and beep) paced at 20 ms from the carrier's media port
//! (the address of its SDP answer, so a dialer latching by SDP accepts it), and the
//! per-call record of what each callee did and heard for the report.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use crate::analysis::StreamStats;
use crate::callee::{
    beep_packets, greeting_packets, key_packets, silence_packets, Callee, Step, Timed, Via, LISTEN,
};

/// Payload type of telephone-events in the carrier's answer (`a=rtpmap:101`).
pub const EVENT_PT: u8 = 101;

/// Packets to send to `dest`, each `at` after `start`; or, with `cancel`, the end of a
/// call: what is still due to `dest` is dropped (a new call may get its port).
pub struct Burst {
    dest: SocketAddr,
    start: Instant,
    packets: Vec<Timed>,
    cancel: bool,
}

/// Starts the sender thread on (a clone of) the media socket.
pub fn spawn(
    sock: UdpSocket,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(mpsc::Sender<Burst>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel::<Burst>();
    let h = std::thread::Builder::new()
        .name("carrier-callee".into())
        .spawn(move || send_loop(sock, rx, stop))?;
    Ok((tx, h))
}

/// A packet waiting for its time: when, an order among equals, where, the bytes.
type Due = Reverse<(Instant, u64, SocketAddr, Vec<u8>)>;

fn send_loop(sock: UdpSocket, rx: mpsc::Receiver<Burst>, stop: Arc<AtomicBool>) {
    let mut due: BinaryHeap<Due> = BinaryHeap::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let wait = due
            .peek()
            .map_or(Duration::from_millis(50), |Reverse((t, ..))| {
                t.saturating_duration_since(Instant::now())
            });
        match rx.recv_timeout(wait.min(Duration::from_millis(50))) {
            Ok(b) if b.cancel => due.retain(|Reverse((_, _, d, _))| *d != b.dest),
            Ok(b) => {
                for p in b.packets {
                    n += 1;
                    due.push(Reverse((b.start + p.at, n, b.dest, p.bytes)));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        while due.peek().is_some_and(|Reverse((t, ..))| *t <= now) {
            let Reverse((_, _, dest, bytes)) = due.pop().expect("peeked");
            let _ = sock.send_to(&bytes, dest);
        }
    }
}

/// What one callee with a behaviour did, and its RTP numbering.
#[derive(Debug, Clone)]
pub struct CalleeRec {
    callee: Callee,
    /// When the call was answered (ACK), wall-clock ns.
    answered_ns: i64,
    /// Steps taken, ms after the answer.
    steps: Vec<(u64, String)>,
    ssrc: u32,
    seq: u16,
    ts: u32,
    /// Where its RTP goes (the dialer's media address), once it sent some.
    dest: Option<SocketAddr>,
}

fn wall_ns() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as i64
}

/// Every callee with a behaviour, by call serial.
#[derive(Debug, Default)]
pub struct Callees {
    calls: HashMap<u64, CalleeRec>,
}

impl Callees {
    /// A call answered by a callee with this behaviour.
    pub fn behaves(&mut self, call: u64, callee: Callee) {
        let rec = CalleeRec {
            callee,
            answered_ns: wall_ns(),
            steps: vec![],
            ssrc: 0x4341_0000 ^ call as u32,
            seq: (call as u16).wrapping_mul(7919),
            ts: (call as u32).wrapping_mul(104_729),
            dest: None,
        };
        self.calls.insert(call, rec);
    }

    /// A step of a call's callee: recorded, and its RTP (if any) handed to the sender.
    pub fn step(
        &mut self,
        call: u64,
        step: Step,
        rtp_to: Option<SocketAddr>,
        pt: u8,
        sender: &mpsc::Sender<Burst>,
    ) {
        let Some(r) = self.calls.get_mut(&call) else {
            return;
        };
        let at_ms = ((wall_ns() - r.answered_ns).max(0) / 1_000_000) as u64;
        let (name, mut packets) = match step {
            Step::Key(d, Via::Rtp) => (
                format!("key {d} rtp"),
                key_packets(d, EVENT_PT, r.ssrc, r.seq, r.ts),
            ),
            Step::Key(d, Via::Info) => (format!("key {d} info"), vec![]),
            Step::HangUp => ("hangup".into(), vec![]),
            Step::Greeting(len) => (
                format!("greeting {}ms", len.as_millis()),
                greeting_packets(len, pt, r.ssrc, r.seq, r.ts),
            ),
            Step::Beep => ("beep".into(), beep_packets(pt, r.ssrc, r.seq, r.ts)),
        };
        r.steps.push((at_ms, name));
        let sound_span = packets
            .last()
            .map_or(Duration::ZERO, |p| p.at + Duration::from_millis(20));
        if r.callee.last_sound() == Some(step) {
            // It listens (or records) now: silence follows its last sound.
            let (seq, ts) = (r.seq.wrapping_add(packets.len() as u16), r.ts);
            let ts = ts.wrapping_add(sound_span.as_millis() as u32 * 8);
            let tail = silence_packets(LISTEN, pt, r.ssrc, seq, ts);
            packets.extend(tail.into_iter().map(|mut p| {
                p.at += sound_span;
                p
            }));
        }
        r.seq = r.seq.wrapping_add(packets.len() as u16);
        let span = packets.last().map_or(0, |p| p.at.as_millis() as u32 + 20);
        r.ts = r.ts.wrapping_add(span * 8);
        if rtp_to.is_some() {
            r.dest = rtp_to;
        }
        if let (Some(dest), false) = (rtp_to, packets.is_empty()) {
            let _ = sender.send(Burst {
                dest,
                start: Instant::now(),
                packets,
                cancel: false,
            });
        }
    }

    /// The call ended: its callee falls silent (what is still due to it is dropped).
    pub fn ended(&mut self, call: u64, sender: &mpsc::Sender<Burst>) {
        if let Some(dest) = self.calls.get(&call).and_then(|r| r.dest) {
            let _ = sender.send(Burst {
                dest,
                start: Instant::now(),
                packets: vec![],
                cancel: true,
            });
        }
    }

    /// What each callee did and heard, and when (ms after the answer): the first and last
    /// audio received, and for machines how long after the greeting's (or beep's) end the
    /// message began.
    pub fn report(
        &self,
        streams: &HashMap<u64, &StreamStats>,
        call_ids: &HashMap<u64, String>,
    ) -> serde_json::Value {
        let mut calls: Vec<_> = self.calls.iter().collect();
        calls.sort_by_key(|(c, _)| **c);
        let list: Vec<_> = calls
            .into_iter()
            .map(|(call, r)| {
                let s = streams.get(call);
                let rel = |ns: i64| (ns - r.answered_ns) as f64 / 1e6;
                let from = s.map(|s| rel(s.first_arrival_ns));
                let greeting_end = r.callee.greeting_end().map(|d| d.as_millis() as f64);
                let message = s.and_then(|s| s.onset_arrival_ns).map(rel);
                json!({
                    "call": call,
                    "call_id": call_ids.get(call),
                    "callee": r.callee.name(),
                    "steps": r.steps.iter().map(|(ms, s)| json!({"at_ms": ms, "did": s})).collect::<Vec<_>>(),
                    "heard_from_ms": from,
                    "heard_until_ms": s.map(|s| rel(s.last_arrival_ns)),
                    "heard_ms": s.map(|s| s.duration_ms()),
                    "correlation": s.and_then(|s| s.correlation()),
                    "greeting_end_ms": greeting_end,
                    "message_from_ms": message,
                    "message_after_greeting_ms": message.zip(greeting_end).map(|(f, g)| f - g),
                    "message_frames": s.map(|s| s.frames_compared),
                    "message_frames_exact": s.map(|s| s.frames_exact),
                    "prompt_frames": s.map(|s| s.prompt_frames),
                })
            })
            .collect();
        serde_json::Value::Array(list)
    }
}
