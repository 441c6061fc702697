//! `loadtest carrier`: the fake carrier. SIP on one UDP socket (the sans-IO [`Uas`]), every
//! call's RTP on one shared port (RTCP on the port above), analysed per stream; a JSON
//! report and a per-call CSV at the end.
//!
//! Why one media port for every call: it lets the receive thread drain thousands of calls
//! with one `recvmmsg` per 64 packets (kernel receive timestamps, `SO_TIMESTAMPNS`, keep the
//! jitter exact), so the carrier costs less per call than the sender it measures. Streams
//! are told apart by source address and SSRC.

mod receive;
mod report;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use codecs::{Codec, EncodeSettings, Prompt};
use engine::sip::timer::TimerConfig;
use serde_json::json;
use tracing::{debug, info};

use crate::analysis::{Analyzer, Expected};
use crate::callee_send::Burst;
use crate::uas::{Disposition, EndedBy, Mix, Uas, UasConfig, UasEvent};
use receive::{bind_media, grow_rtp_buffer, set_buf, Receivers};

/// Arguments of `loadtest carrier`.
#[derive(Debug, Args, Clone)]
pub struct CarrierArgs {
    /// SIP address to listen on (UDP).
    #[arg(long, default_value = "127.0.0.1:5070")]
    pub listen: SocketAddr,
    /// RTP address every call's media goes to (RTCP on the port above).
    #[arg(long, default_value = "127.0.0.1:31000")]
    pub media: SocketAddr,
    /// Weight (percent) of calls answered.
    #[arg(long, default_value_t = 100)]
    pub answer: u32,
    /// Weight of calls answered 486 Busy Here.
    #[arg(long, default_value_t = 0)]
    pub busy: u32,
    /// Weight of calls that ring until cancelled.
    #[arg(long, default_value_t = 0)]
    pub no_answer: u32,
    /// `CODE:WEIGHT` of calls rejected with CODE (repeatable), e.g. `503:3`.
    #[arg(long)]
    pub reject: Vec<String>,
    /// Ring delay range in ms before the final response, `MIN-MAX`.
    #[arg(long, default_value = "0-0")]
    pub ring_ms: String,
    /// Percent of answered callees that hang up first.
    #[arg(long, default_value_t = 0)]
    pub hangup_pct: u32,
    /// When they hang up after the answer, in ms, `MIN-MAX`.
    #[arg(long, default_value = "1000-5000")]
    pub hangup_after_ms: String,
    /// WAV of the prompt the caller plays: decode and correlate every call's audio with it.
    #[arg(long)]
    pub expect_prompt: Option<PathBuf>,
    /// Write the JSON report here (default: stdout).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write one CSV line per call here.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Stop once this many calls have ended.
    #[arg(long)]
    pub exit_after_calls: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<u64>,
    /// Seed of the answer mix.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// What answered callees do, `SPEC:WEIGHT` (repeatable), e.g.
    /// `human;key=1@3.5:8`, `human;key=9@2;key=1@4;info`, `human;hangup@5`,
    /// `machine;greeting=2500;beep:2` (see loadtest/src/callee.rs). The report's `callees`
    /// says what each did and heard, and when.
    #[arg(long)]
    pub callee: Vec<String>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn range_ms(s: &str, what: &str) -> Result<(Duration, Duration)> {
    let (a, b) = s
        .split_once('-')
        .with_context(|| format!("{what} must be MIN-MAX"))?;
    let (a, b): (u64, u64) = (a.trim().parse()?, b.trim().parse()?);
    if b < a {
        bail!("{what}: MAX below MIN");
    }
    Ok((Duration::from_millis(a), Duration::from_millis(b)))
}

/// What the carrier remembers of one call, for the report and the CSV.
#[derive(Debug, Default, Clone)]
struct CallRec {
    call_id: String,
    disposition: String,
    answered: bool,
    ended_by: Option<EndedBy>,
}

/// Every call seen and the counts the report needs, kept from the UAS's events.
struct Books {
    started: Instant,
    /// `started` on the wall clock (Unix ns), to place the kernel's arrival stamps.
    started_wall_ns: i64,
    /// When the datagram being handled reached the socket (Unix ns, from the kernel).
    arrived_ns: Option<i64>,
    /// INVITEs received in each second since the start: the rate on the wire over time.
    offered_per_s: Vec<u32>,
    calls: BTreeMap<u64, CallRec>,
    ended: u64,
    active: i64,
    peak: i64,
    callees: crate::callee_send::Callees,
}

impl Books {
    fn new(started: Instant) -> Books {
        Books {
            started,
            started_wall_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i64),
            arrived_ns: None,
            offered_per_s: vec![],
            calls: BTreeMap::new(),
            ended: 0,
            active: 0,
            peak: 0,
            callees: Default::default(),
        }
    }

    /// Files one UAS event: the call's record, concurrency, the callee's behaviour and the
    /// address its media comes from (for the analyser).
    fn note(&mut self, ev: UasEvent, analyzer: &Mutex<Analyzer>, callee_tx: &Sender<Burst>) {
        match ev {
            UasEvent::Offered {
                call,
                call_id,
                disposition,
            } => {
                // The second the INVITE reached the socket (kernel stamp), not the one this
                // loop got to it in: a loop that falls behind would otherwise show a dip
                // and then a second over the ceiling that the sender never produced.
                let sec = match self.arrived_ns {
                    Some(ns) => {
                        (ns.saturating_sub(self.started_wall_ns) / 1_000_000_000).max(0) as usize
                    }
                    None => self.started.elapsed().as_secs() as usize,
                };
                if self.offered_per_s.len() <= sec {
                    self.offered_per_s.resize(sec + 1, 0);
                }
                self.offered_per_s[sec] += 1;
                self.calls.insert(
                    call,
                    CallRec {
                        call_id,
                        disposition: disposition.name(),
                        ..CallRec::default()
                    },
                );
            }
            UasEvent::Answered { call, rtp_from, .. } => {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.answered = true;
                }
                if let Some(addr) = rtp_from {
                    analyzer
                        .lock()
                        .expect("lock")
                        .expect_from
                        .insert(addr, call);
                }
                self.active += 1;
                self.peak = self.peak.max(self.active);
            }
            UasEvent::Behaves { call, callee } => self.callees.behaves(call, callee),
            UasEvent::Step {
                call,
                step,
                rtp_to,
                payload_type,
            } => self
                .callees
                .step(call, step, rtp_to, payload_type, callee_tx),
            UasEvent::Ended { call, by } => {
                self.callees.ended(call, callee_tx);
                if let Some(c) = self.calls.get_mut(&call) {
                    if c.answered && matches!(by, EndedBy::Caller | EndedBy::Callee) {
                        self.active -= 1;
                    }
                    c.ended_by = Some(by);
                }
                self.ended += 1;
            }
        }
    }
}

/// The answer mix: `--answer`, `--busy`, `--no-answer` and every `--reject CODE:WEIGHT`.
fn dispositions(args: &CarrierArgs) -> Result<Vec<(Disposition, u32)>> {
    let mut choices = vec![
        (Disposition::Answer, args.answer),
        (Disposition::Busy, args.busy),
        (Disposition::NoAnswer, args.no_answer),
    ];
    for r in &args.reject {
        let (c, w) = r.split_once(':').context("--reject must be CODE:WEIGHT")?;
        choices.push((Disposition::Reject(c.parse()?), w.parse()?));
    }
    Ok(choices)
}

/// The prompt every call's audio is correlated with (`--expect-prompt`), encoded in both
/// G.711 laws at 20 ms and keyed by payload type.
fn expected_prompts(path: Option<&Path>) -> Result<Option<Expected>> {
    let Some(p) = path else {
        return Ok(None);
    };
    let mut prompts = HashMap::new();
    for c in [Codec::Pcmu, Codec::Pcma] {
        let pr = Prompt::from_file(p, c, 20, &EncodeSettings::default())
            .with_context(|| format!("loading {}", p.display()))?;
        prompts.insert(c.payload_type(), Arc::new(pr));
    }
    Ok(Some(Expected { prompts }))
}

/// Runs the carrier until stopped; writes the report.
pub fn run(args: CarrierArgs) -> Result<()> {
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let choices = dispositions(&args)?;
    let sip = UdpSocket::bind(args.listen).with_context(|| format!("binding {}", args.listen))?;
    set_buf(&sip, libc::SO_RCVBUF, 8 << 20);
    set_buf(&sip, libc::SO_SNDBUF, 8 << 20);
    receive::enable_timestamps(&sip);
    let local = sip.local_addr()?;
    let (rtp, rtcp) = bind_media(args.media)?;
    grow_rtp_buffer(&rtp);
    let media = rtp.local_addr()?;
    let callee_mix = crate::callee::CalleeMix::parse(&args.callee)?;
    let analyzer = Arc::new(Mutex::new(Analyzer {
        expected: expected_prompts(args.expect_prompt.as_deref())?,
        ..Analyzer::default()
    }));
    let threads_stop = Arc::new(AtomicBool::new(false));
    let rtp_send = rtp.try_clone()?;
    let receivers = Receivers::spawn(rtp, rtcp, &analyzer, &threads_stop)?;
    let (callee_tx, callee_thread) = crate::callee_send::spawn(rtp_send, threads_stop.clone())?;
    let mut uas = Uas::new(UasConfig {
        local,
        media,
        mix: Mix { choices },
        ring: range_ms(&args.ring_ms, "--ring-ms")?,
        hangup_pct: args.hangup_pct,
        hangup_after: range_ms(&args.hangup_after_ms, "--hangup-after-ms")?,
        seed: args.seed,
        timers: TimerConfig::default(),
        callees: callee_mix,
    });
    println!(
        "{}",
        json!({"ready": {"sip": local.to_string(), "media": media.to_string()}})
    );
    let _ = std::io::stdout().flush();
    info!(%local, %media, "carrier ready");

    let started = Instant::now();
    let mut books = Books::new(started);
    serve(
        &args, started, &sip, &mut uas, &mut books, &analyzer, &callee_tx,
    )?;
    // Let the last packets (RTCP BYE) arrive, then stop the receivers.
    std::thread::sleep(Duration::from_millis(300));
    threads_stop.store(true, Ordering::SeqCst);
    receivers.join();
    drop(callee_tx);
    let _ = callee_thread.join();
    let a = analyzer.lock().expect("lock");
    report::write(&args, &books, &a, started.elapsed())
}

/// Answers SIP until a signal, `--duration` or `--exit-after-calls`.
fn serve(
    args: &CarrierArgs,
    started: Instant,
    sip: &UdpSocket,
    uas: &mut Uas,
    books: &mut Books,
    analyzer: &Mutex<Analyzer>,
    callee_tx: &Sender<Burst>,
) -> Result<()> {
    let deadline = args.duration.map(|s| started + Duration::from_secs(s));
    let mut buf = vec![0u8; 65536];
    loop {
        if STOP.load(Ordering::Relaxed)
            || deadline.is_some_and(|d| Instant::now() >= d)
            || args.exit_after_calls.is_some_and(|n| books.ended >= n)
        {
            return Ok(());
        }
        let now = Instant::now();
        let wait = uas
            .poll_timeout()
            .map_or(Duration::from_millis(100), |t| {
                t.saturating_duration_since(now)
            })
            .clamp(Duration::from_micros(200), Duration::from_millis(100));
        sip.set_read_timeout(Some(wait))?;
        match receive::recv_stamped(sip, &mut buf) {
            Ok((n, Some(from), at)) => {
                books.arrived_ns = at;
                uas.handle_datagram(Instant::now(), from, &buf[..n]);
            }
            Ok((_, None, _)) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => debug!(error = %e, "SIP recv"),
        }
        while let Some(ev) = uas.poll_event() {
            books.note(ev, analyzer, callee_tx);
        }
        books.arrived_ns = None;
        uas.handle_timeout(Instant::now());
        while let Some(t) = uas.poll_transmit() {
            let _ = sip.send_to(&t.bytes, t.dest);
        }
        while let Some(ev) = uas.poll_event() {
            books.note(ev, analyzer, callee_tx);
        }
    }
}
