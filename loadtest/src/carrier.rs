//! `loadtest carrier`: the fake carrier. SIP on one UDP socket (the sans-IO [`Uas`]), every
//! call's RTP on one shared port (RTCP on the port above), analysed per stream; a JSON
//! report and a per-call CSV at the end.
//!
//! Why one media port for every call: it lets the receive thread drain thousands of calls
//! with one `recvmmsg` per 64 packets (kernel receive timestamps, `SO_TIMESTAMPNS`, keep the
//! jitter exact), so the carrier costs less per call than the sender it measures. Streams
//! are told apart by source address and SSRC.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use clap::Args;
use codecs::{Codec, EncodeSettings, Prompt};
use engine::sip::timer::TimerConfig;
use serde_json::json;
use tracing::{debug, info};

use crate::analysis::{Analyzer, Expected, Hist, StreamStats};
use crate::uas::{Disposition, EndedBy, Mix, Uas, UasConfig, UasEvent};

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

#[derive(Debug, Default, Clone)]
struct CallRec {
    call_id: String,
    disposition: String,
    answered: bool,
    ended_by: Option<EndedBy>,
}

/// Runs the carrier until stopped; writes the report.
pub fn run(args: CarrierArgs) -> Result<()> {
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let mut choices = vec![
        (Disposition::Answer, args.answer),
        (Disposition::Busy, args.busy),
        (Disposition::NoAnswer, args.no_answer),
    ];
    for r in &args.reject {
        let (c, w) = r.split_once(':').context("--reject must be CODE:WEIGHT")?;
        choices.push((Disposition::Reject(c.parse()?), w.parse()?));
    }
    let sip = UdpSocket::bind(args.listen).with_context(|| format!("binding {}", args.listen))?;
    set_buf(&sip, libc::SO_RCVBUF, 8 << 20);
    set_buf(&sip, libc::SO_SNDBUF, 8 << 20);
    let local = sip.local_addr()?;
    let (rtp, rtcp) = bind_media(args.media)?;
    let media = rtp.local_addr()?;
    let callee_mix = crate::callee::CalleeMix::parse(&args.callee)?;
    // SO_RCVBUF is capped by net.core.rmem_max (208 KiB by default: 4 ms of 5,000 streams);
    // SO_RCVBUFFORCE (CAP_NET_ADMIN) is not, so a stalled carrier does not count loss.
    if !set_buf(&rtp, libc::SO_RCVBUFFORCE, 64 << 20) {
        set_buf(&rtp, libc::SO_RCVBUF, 64 << 20);
    }
    let expected = match &args.expect_prompt {
        Some(p) => {
            let mut prompts = HashMap::new();
            for c in [Codec::Pcmu, Codec::Pcma] {
                let pr = Prompt::from_file(p, c, 20, &EncodeSettings::default())
                    .with_context(|| format!("loading {}", p.display()))?;
                prompts.insert(c.payload_type(), Arc::new(pr));
            }
            Some(Expected { prompts })
        }
        None => None,
    };
    let analyzer = Arc::new(Mutex::new(Analyzer {
        expected,
        ..Analyzer::default()
    }));
    let threads_stop = Arc::new(AtomicBool::new(false));
    let rtp_send = rtp.try_clone()?;
    let rtp_thread = {
        let (a, stop) = (analyzer.clone(), threads_stop.clone());
        std::thread::Builder::new()
            .name("carrier-rtp".into())
            .spawn(move || rtp_loop(rtp, a, stop))?
    };
    let (callee_tx, callee_thread) = crate::callee_send::spawn(rtp_send, threads_stop.clone())?;
    let mut callees = crate::callee_send::Callees::default();
    let rtcp_thread = {
        let (a, stop) = (analyzer.clone(), threads_stop.clone());
        std::thread::Builder::new()
            .name("carrier-rtcp".into())
            .spawn(move || rtcp_loop(rtcp, a, stop))?
    };
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
    let deadline = args.duration.map(|s| started + Duration::from_secs(s));
    let mut calls: BTreeMap<u64, CallRec> = BTreeMap::new();
    let mut ended = 0u64;
    let mut active = 0i64;
    let mut peak = 0i64;
    // INVITEs received in each second since the start: the rate on the wire over time.
    let mut offered_per_s: Vec<u32> = vec![];
    let mut buf = vec![0u8; 65536];
    loop {
        if STOP.load(Ordering::Relaxed)
            || deadline.is_some_and(|d| Instant::now() >= d)
            || args.exit_after_calls.is_some_and(|n| ended >= n)
        {
            break;
        }
        let now = Instant::now();
        let wait = uas
            .poll_timeout()
            .map_or(Duration::from_millis(100), |t| {
                t.saturating_duration_since(now)
            })
            .clamp(Duration::from_micros(200), Duration::from_millis(100));
        sip.set_read_timeout(Some(wait))?;
        match sip.recv_from(&mut buf) {
            Ok((n, from)) => uas.handle_datagram(Instant::now(), from, &buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => debug!(error = %e, "SIP recv"),
        }
        uas.handle_timeout(Instant::now());
        while let Some(t) = uas.poll_transmit() {
            let _ = sip.send_to(&t.bytes, t.dest);
        }
        while let Some(ev) = uas.poll_event() {
            match ev {
                UasEvent::Offered {
                    call,
                    call_id,
                    disposition,
                } => {
                    let sec = started.elapsed().as_secs() as usize;
                    if offered_per_s.len() <= sec {
                        offered_per_s.resize(sec + 1, 0);
                    }
                    offered_per_s[sec] += 1;
                    calls.insert(
                        call,
                        CallRec {
                            call_id,
                            disposition: disposition.name(),
                            ..CallRec::default()
                        },
                    );
                }
                UasEvent::Answered { call, rtp_from, .. } => {
                    if let Some(c) = calls.get_mut(&call) {
                        c.answered = true;
                    }
                    if let Some(addr) = rtp_from {
                        analyzer
                            .lock()
                            .expect("lock")
                            .expect_from
                            .insert(addr, call);
                    }
                    active += 1;
                    peak = peak.max(active);
                }
                UasEvent::Behaves { call, callee } => callees.behaves(call, callee),
                UasEvent::Step {
                    call,
                    step,
                    rtp_to,
                    payload_type,
                } => callees.step(call, step, rtp_to, payload_type, &callee_tx),
                UasEvent::Ended { call, by } => {
                    callees.ended(call, &callee_tx);
                    if let Some(c) = calls.get_mut(&call) {
                        if c.answered && matches!(by, EndedBy::Caller | EndedBy::Callee) {
                            active -= 1;
                        }
                        c.ended_by = Some(by);
                    }
                    ended += 1;
                }
            }
        }
    }
    // Let the last packets (RTCP BYE) arrive, then stop the receivers.
    std::thread::sleep(Duration::from_millis(300));
    threads_stop.store(true, Ordering::SeqCst);
    let _ = rtp_thread.join();
    let _ = rtcp_thread.join();
    drop(callee_tx);
    let _ = callee_thread.join();
    let a = analyzer.lock().expect("lock");
    let mut report = build_report(&calls, &a, peak, started.elapsed());
    report["offered_per_second"] = json!(offered_per_s);
    if !args.callee.is_empty() {
        let ids = calls.iter().map(|(k, c)| (*k, c.call_id.clone())).collect();
        report["callees"] = callees.report(&streams_by_call(&a), &ids);
    }
    let text = serde_json::to_string_pretty(&report)?;
    match &args.report {
        Some(p) => {
            std::fs::write(p, text + "\n").with_context(|| format!("writing {}", p.display()))?
        }
        None => println!("{text}"),
    }
    if let Some(p) = &args.csv {
        write_csv(p, &calls, &a)?;
    }
    Ok(())
}

/// Binds the RTP port and the RTCP port above it; with port 0, tries free pairs.
fn bind_media(addr: SocketAddr) -> Result<(UdpSocket, UdpSocket)> {
    for _ in 0..if addr.port() == 0 { 100 } else { 1 } {
        let rtp = UdpSocket::bind(addr).with_context(|| format!("binding {addr}"))?;
        let a = rtp.local_addr()?;
        if a.port() == u16::MAX {
            continue;
        }
        match UdpSocket::bind(SocketAddr::new(a.ip(), a.port() + 1)) {
            Ok(rtcp) => return Ok((rtp, rtcp)),
            Err(e) if addr.port() != 0 => {
                return Err(e).with_context(|| format!("binding RTCP port {}", a.port() + 1))
            }
            Err(_) => continue,
        }
    }
    bail!("no free RTP/RTCP port pair on {}", addr.ip())
}

fn set_buf(s: &UdpSocket, opt: libc::c_int, size: libc::c_int) -> bool {
    // SAFETY: setsockopt with a pointer to a local int of the stated size.
    unsafe {
        0 == libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    }
}

const BATCH: usize = 64;
const MTU: usize = 1500;

fn rtp_loop(sock: UdpSocket, analyzer: Arc<Mutex<Analyzer>>, stop: Arc<AtomicBool>) {
    // The receiver must not be what a busy machine delays: real-time priority when permitted
    // (arrival times come from the kernel either way).
    let p = libc::sched_param { sched_priority: 10 };
    // SAFETY: sched_setscheduler on the calling thread with a pointer to a local.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) } != 0 {
        debug!("carrier RTP thread: no SCHED_FIFO");
    }
    let fd = sock.as_raw_fd();
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a pointer to a local int; a receive timeout so the loop can stop.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
    let mut bufs = vec![0u8; BATCH * MTU];
    let mut ctrl = vec![0u8; BATCH * 64];
    // SAFETY: zeroed libc structs are valid empty values; pointers are set before each call.
    let mut names: Vec<libc::sockaddr_in6> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut iovs: Vec<libc::iovec> = vec![
        libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0
        };
        BATCH
    ];
    let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
    while !stop.load(Ordering::Relaxed) {
        for i in 0..BATCH {
            iovs[i] = libc::iovec {
                iov_base: bufs[i * MTU..].as_mut_ptr() as *mut libc::c_void,
                iov_len: MTU,
            };
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = &mut names[i] as *mut _ as *mut libc::c_void;
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = ctrl[i * 64..].as_mut_ptr() as *mut libc::c_void;
            h.msg_controllen = 64;
            h.msg_flags = 0;
        }
        // SAFETY: every header points at buffers owned by this frame.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            continue;
        }
        let fallback = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as i64;
        let mut a = analyzer.lock().expect("lock");
        for i in 0..n as usize {
            let len = hdrs[i].msg_len as usize;
            let ts = kernel_timestamp(&hdrs[i].msg_hdr).unwrap_or(fallback);
            let Some(from) = sockaddr(&names[i]) else {
                continue;
            };
            a.packet(from, ts, &bufs[i * MTU..i * MTU + len.min(MTU)]);
        }
    }
}

fn kernel_timestamp(h: &libc::msghdr) -> Option<i64> {
    // SAFETY: walking the control messages the kernel wrote into our buffer.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                return Some(ts.tv_sec * 1_000_000_000 + ts.tv_nsec);
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

fn sockaddr(s: &libc::sockaddr_in6) -> Option<SocketAddr> {
    match i32::from(s.sin6_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a = unsafe { &*(s as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::new(
                std::net::Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes()).into(),
                u16::from_be(a.sin_port),
            ))
        }
        libc::AF_INET6 => Some(SocketAddr::new(
            std::net::Ipv6Addr::from(s.sin6_addr.s6_addr).into(),
            u16::from_be(s.sin6_port),
        )),
        _ => None,
    }
}

fn rtcp_loop(sock: UdpSocket, analyzer: Arc<Mutex<Analyzer>>, stop: Arc<AtomicBool>) {
    let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            analyzer.lock().expect("lock").rtcp(from, &buf[..n]);
        }
    }
}

/// The stream of each call: the one with the most packets.
fn streams_by_call(a: &Analyzer) -> HashMap<u64, &StreamStats> {
    let mut m: HashMap<u64, &StreamStats> = HashMap::new();
    for s in a.streams.values() {
        if s.call == 0 {
            continue;
        }
        let e = m.entry(s.call).or_insert(s);
        if s.packets > e.packets {
            *e = s;
        }
    }
    m
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

/// CPU seconds (user + system) and peak RSS of this process.
pub fn self_usage() -> (f64, u64) {
    // SAFETY: getrusage with a pointer to a local struct.
    let r = unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut r);
        r
    };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (s(r.ru_utime) + s(r.ru_stime), r.ru_maxrss as u64)
}

fn build_report(
    calls: &BTreeMap<u64, CallRec>,
    a: &Analyzer,
    peak: i64,
    elapsed: Duration,
) -> serde_json::Value {
    let mut dispositions: BTreeMap<String, u64> = BTreeMap::new();
    let mut ended_by: BTreeMap<&str, u64> = BTreeMap::new();
    for c in calls.values() {
        *dispositions.entry(c.disposition.clone()).or_default() += 1;
        *ended_by
            .entry(c.ended_by.map_or("not_ended", |e| e.as_str()))
            .or_default() += 1;
    }
    let joined = streams_by_call(a).len();
    let all: HashMap<usize, &StreamStats> = a.streams.values().enumerate().collect();
    let by_call = all;
    let answered = calls.values().filter(|c| c.answered).count();
    let mut jit: Vec<f64> = by_call.values().map(|s| s.jitter_ms()).collect();
    let mut jit_max: Vec<f64> = by_call.values().map(|s| s.jitter_max / 8.0).collect();
    let lost: u64 = by_call.values().map(|s| s.lost()).sum();
    let packets: u64 = by_call.values().map(|s| s.packets).sum();
    let with_loss = by_call.values().filter(|s| s.lost() > 0).count();
    let marker_bad = by_call
        .values()
        .filter(|s| !(s.first_marked && s.marked == 1))
        .count();
    let ts_errors: u64 = by_call.values().map(|s| s.ts_errors).sum();
    let corr: Vec<f64> = by_call.values().filter_map(|s| s.correlation()).collect();
    let min_corr = corr.iter().copied().fold(f64::INFINITY, f64::min);
    let (cpu, rss) = self_usage();
    let lag: &Hist = &a.lag;
    json!({
        "calls": calls.len(),
        "answered": answered,
        "dispositions": dispositions,
        "ended_by": ended_by,
        "peak_concurrent_answered": peak,
        "elapsed_s": elapsed.as_secs_f64(),
        "rtp": {
            "streams": a.streams.len(),
            "answered_calls_with_media": joined,
            "packets": packets,
            "packets_all_sources": a.packets,
            "malformed": a.malformed,
            "lost": lost,
            "calls_with_loss": with_loss,
            "seq_gaps": by_call.values().map(|s| s.seq_gaps).sum::<u64>(),
            "late_or_dup": by_call.values().map(|s| s.late_or_dup).sum::<u64>(),
            "jitter_ms_p50": pct(&mut jit, 0.5),
            "jitter_ms_p99": pct(&mut jit, 0.99),
            "jitter_ms_max": pct(&mut jit, 1.0),
            "jitter_peak_ms_p99": pct(&mut jit_max, 0.99),
            "arrival_lag_ms_p50": lag.quantile_ms(0.5),
            "arrival_lag_ms_p99": lag.quantile_ms(0.99),
            "arrival_lag_ms_max": lag.max_ms(),
            "marker_errors": marker_bad,
            "timestamp_errors": ts_errors,
            "duration_heard_ms_min": by_call.values().map(|s| s.duration_ms()).min(),
            "duration_heard_ms_max": by_call.values().map(|s| s.duration_ms()).max(),
            "rtcp_sr_streams": by_call.values().filter(|s| s.rtcp_sr > 0).count(),
            "rtcp_bye_streams": by_call.values().filter(|s| s.rtcp_bye).count(),
            "audio": {
                "checked": corr.len(),
                "correlating": corr.iter().filter(|c| **c >= 0.99).count(),
                "min_correlation": if corr.is_empty() { None } else { Some(min_corr) },
                "frames_compared": by_call.values().map(|s| s.frames_compared).sum::<u64>(),
                "frames_exact": by_call.values().map(|s| s.frames_exact).sum::<u64>(),
            },
        },
        "process": {"cpu_seconds": cpu, "max_rss_kib": rss},
    })
}

fn write_csv(path: &PathBuf, calls: &BTreeMap<u64, CallRec>, a: &Analyzer) -> Result<()> {
    let by_call = streams_by_call(a);
    let mut out = String::from(
        "call_id,disposition,answered,ended_by,ssrc,packets,expected,lost,seq_gaps,late_or_dup,\
         jitter_ms,duration_heard_ms,first_marked,marked,timestamp_errors,correlation,\
         frames_exact,rtcp_sr,rtcp_bye\n",
    );
    for (serial, c) in calls {
        let s = by_call.get(serial);
        let f = |g: &dyn Fn(&StreamStats) -> String| s.map(|s| g(s)).unwrap_or_default();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            c.call_id.replace(',', " "),
            c.disposition,
            c.answered,
            c.ended_by.map_or("", |e| e.as_str()),
            f(&|s| format!("{:08x}", s.ssrc)),
            f(&|s| s.packets.to_string()),
            f(&|s| s.expected().to_string()),
            f(&|s| s.lost().to_string()),
            f(&|s| s.seq_gaps.to_string()),
            f(&|s| s.late_or_dup.to_string()),
            f(&|s| format!("{:.3}", s.jitter_ms())),
            f(&|s| s.duration_ms().to_string()),
            f(&|s| s.first_marked.to_string()),
            f(&|s| s.marked.to_string()),
            f(&|s| s.ts_errors.to_string()),
            f(&|s| s
                .correlation()
                .map(|c| format!("{c:.5}"))
                .unwrap_or_default()),
            f(&|s| s.frames_exact.to_string()),
            f(&|s| s.rtcp_sr.to_string()),
            f(&|s| s.rtcp_bye.to_string()),
        ));
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}
