//! Interop tests: `dialer call` against SIPp playing the carrier (issue 2, Acceptance).
//!
//! Each test starts SIPp (`sipp`, Debian package `sip-tester`) as a UAS with one of the scenarios in
//! `tests/sipp/` on free loopback ports, runs the `dialer` binary against it, and asserts both
//! SIPp's exit code (0: every call went through the scenario) and the dialer's JSON line per call.
//! The scenarios' SDP answers point the media to an RTP sink owned by the test
//! (`-key rtp_port N`), which checks the packets the dialer sends.
//!
//! The `dialer` binary is not a dependency Cargo can build for this package: build it first,
//! `cargo build -p control-api --bin dialer` (or set `DIALER_BIN` to its path). The test looks for
//! it next to this test executable (`<target>/<profile>/dialer`).
//!
//! Without `sipp` on PATH the tests print why and pass, unless `CI` is set: then they fail.
//! The `scenario_selftest_*` tests run each scenario against a SIPp UAC (`tests/sipp/selftest/`),
//! so a broken scenario shows up even when the dialer is not at fault.

use e2e::{dialer_bin, free_media_port, free_port, sipp_available, wait_bounded};
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// The number every test dials (the dialer cycles through `--to`).
const NUMBER: &str = "+390771286891";
/// SIPp's own deadline (`-timeout`): it always exits by then.
const SIPP_TIMEOUT_S: u64 = 60;
/// Our deadline for any child process before we kill it.
const CHILD_DEADLINE: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------------------------
// Preconditions
// ---------------------------------------------------------------------------------------------

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sipp")
        .join(name)
}

fn selftest_scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sipp")
        .join("selftest")
        .join(name)
}

// ---------------------------------------------------------------------------------------------
// Ports, prompt, processes
// ---------------------------------------------------------------------------------------------

/// An 8 kHz, 16-bit, mono sine (440 Hz) WAV of `secs` seconds.
fn write_prompt(dir: &Path, secs: f32) -> PathBuf {
    let path = dir.join("prompt.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("create prompt WAV");
    let n = (8000.0 * secs) as u32;
    for i in 0..n {
        let t = i as f32 / 8000.0;
        let s = (t * 440.0 * std::f32::consts::TAU).sin() * 0.5 * f32::from(i16::MAX);
        w.write_sample(s as i16).expect("write sample");
    }
    w.finalize().expect("finalize prompt WAV");
    path
}

fn read_file_lossy(p: &Path) -> String {
    std::fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `max` bytes of a text, for failure messages.
fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    fn sipp_flag(self) -> &'static str {
        match self {
            Transport::Udp => "u1",
            Transport::Tcp => "t1",
        }
    }
    fn dialer_word(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// What SIPp plays.
enum Scen<'a> {
    /// A file under `tests/sipp/`.
    File(&'a str),
    /// A built-in scenario (`-sn`).
    Builtin(&'a str),
}

/// A running SIPp UAS, its files in `dir`.
struct Sipp {
    child: Child,
    port: u16,
    dir: PathBuf,
    name: String,
}

impl Sipp {
    /// Starts SIPp as the carrier for `calls` calls. `extra`: more SIPp flags (e.g. `-lost 10`).
    /// `rtp_port`: the `-key rtp_port` the scenario's SDP answers point to.
    fn start(
        dir: &Path,
        scen: &Scen<'_>,
        calls: u32,
        transport: Transport,
        rtp_port: u16,
        extra: &[&str],
    ) -> Sipp {
        // Ports are picked free, then handed to SIPp: another process can take one in between.
        // SIPp then exits at once (bind error): try again with new ports.
        let mut last_err = String::new();
        for attempt in 0..5 {
            let port = free_port();
            let media = free_media_port();
            let name = format!("sipp-uas-{attempt}");
            let mut cmd = Command::new("sipp");
            match scen {
                Scen::File(f) => cmd.arg("-sf").arg(scenario(f)),
                Scen::Builtin(b) => cmd.arg("-sn").arg(b),
            };
            cmd.args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
                .args(["-p", &port.to_string(), "-mp", &media.to_string()])
                .args(["-t", transport.sipp_flag()])
                .args(["-m", &calls.to_string()])
                .args(["-timeout", &format!("{SIPP_TIMEOUT_S}s"), "-timeout_error"])
                .args(["-key", "rtp_port", &rtp_port.to_string()])
                .arg("-trace_err")
                .arg("-error_file")
                .arg(dir.join(format!("{name}-errors.log")))
                .arg("-trace_screen")
                .arg("-screen_file")
                .arg(dir.join(format!("{name}-screen.log")))
                .arg("-nostdin")
                .args(extra)
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(Stdio::from(
                    std::fs::File::create(dir.join(format!("{name}.stdout"))).unwrap(),
                ))
                .stderr(Stdio::from(
                    std::fs::File::create(dir.join(format!("{name}.stderr"))).unwrap(),
                ));
            // Over TCP the dialer closes its connection when it exits, while SIPp's call may
            // still be in its timewait: by default SIPp then counts the call as failed.
            if transport == Transport::Tcp {
                cmd.args(["-reconnect_close", "false"]);
            }
            // Full message traces help when a call fails, but cost too much at load.
            if calls <= 50 {
                cmd.arg("-trace_msg")
                    .arg("-message_file")
                    .arg(dir.join(format!("{name}-messages.log")));
            }
            let mut child = cmd.spawn().expect("spawn sipp");
            // Let it bind its sockets; a bind failure ends it within this window.
            let settle = Instant::now() + Duration::from_millis(400);
            let mut exited = None;
            while Instant::now() < settle {
                if let Some(st) = child.try_wait().expect("try_wait sipp") {
                    exited = Some(st);
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
            match exited {
                None => {
                    return Sipp {
                        child,
                        port,
                        dir: dir.to_path_buf(),
                        name,
                    }
                }
                Some(st) => {
                    last_err = format!(
                        "sipp exited at start ({st}): {}",
                        read_file_lossy(&dir.join(format!("{name}.stderr")))
                    );
                }
            }
        }
        panic!("could not start SIPp: {last_err}");
    }

    /// Waits (bounded) for SIPp to end; its exit code, with its logs on failure.
    fn finish(mut self) -> (Option<i32>, String) {
        let st = wait_bounded(&mut self.child, Instant::now() + CHILD_DEADLINE);
        let logs = self.logs();
        (st.and_then(|s| s.code()), logs)
    }

    fn logs(&self) -> String {
        let n = &self.name;
        let mut out = String::new();
        for suffix in ["-screen.log", ".stderr", "-errors.log", "-messages.log"] {
            let p = self.dir.join(format!("{n}{suffix}"));
            let text = read_file_lossy(&p);
            if !text.is_empty() {
                out.push_str(&format!(
                    "----- {} (tail) -----\n{}\n",
                    p.display(),
                    tail(&text, 6000)
                ));
            }
        }
        out
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        // Only on panic paths: finish() has already reaped it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// RTP sink
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct RtpPacket {
    payload_type: u8,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    payload_len: usize,
}

/// A UDP socket on loopback that records the RTP headers it receives until stopped.
struct RtpSink {
    port: u16,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(Vec<RtpPacket>, usize)>,
}

impl RtpSink {
    fn start() -> RtpSink {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind RTP sink");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = thread::spawn(move || {
            let mut pkts = Vec::new();
            let mut not_rtp = 0usize;
            let mut buf = [0u8; 2048];
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => match parse_rtp(&buf[..n]) {
                        Some(p) => pkts.push(p),
                        None => not_rtp += 1,
                    },
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        if stop2.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                    Err(_) => {
                        // ICMP errors and the like: keep listening.
                        if stop2.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                }
            }
            (pkts, not_rtp)
        });
        RtpSink { port, stop, handle }
    }

    /// Stops after the socket has been drained; the packets, and the count of non-RTP datagrams.
    fn finish(self) -> (Vec<RtpPacket>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("RTP sink thread")
    }
}

fn parse_rtp(b: &[u8]) -> Option<RtpPacket> {
    if b.len() < 12 || b[0] >> 6 != 2 {
        return None;
    }
    let cc = usize::from(b[0] & 0x0f);
    let mut hdr = 12 + 4 * cc;
    if b[0] & 0x10 != 0 {
        if b.len() < hdr + 4 {
            return None;
        }
        let words = usize::from(u16::from_be_bytes([b[hdr + 2], b[hdr + 3]]));
        hdr += 4 + 4 * words;
    }
    let mut end = b.len();
    if b[0] & 0x20 != 0 {
        let pad = usize::from(*b.last()?);
        end = end.checked_sub(pad)?;
    }
    if end < hdr {
        return None;
    }
    Some(RtpPacket {
        payload_type: b[1] & 0x7f,
        seq: u16::from_be_bytes([b[2], b[3]]),
        timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        payload_len: end - hdr,
    })
}

/// Checks one call's stream: a G.711 payload type, 20 ms frames (160 bytes, timestamp + 160),
/// consecutive sequence numbers (loopback neither drops nor reorders).
fn check_stream(pkts: &[RtpPacket], expected_pt: u8) {
    assert!(
        !pkts.is_empty(),
        "no RTP packet reached the carrier's media address"
    );
    let ssrc = pkts[0].ssrc;
    let audio: Vec<&RtpPacket> = pkts
        .iter()
        .filter(|p| p.ssrc == ssrc && p.payload_type == expected_pt)
        .collect();
    assert_eq!(
        audio.len(),
        pkts.len(),
        "every packet of the call should be payload type {expected_pt} from one SSRC; got {:?}",
        pkts.iter()
            .map(|p| (p.payload_type, p.ssrc))
            .collect::<std::collections::BTreeSet<_>>()
    );
    for w in audio.windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq.wrapping_add(1),
            "RTP sequence numbers must be consecutive"
        );
        assert_eq!(
            w[1].timestamp,
            w[0].timestamp.wrapping_add(160),
            "RTP timestamps must advance by 160 (20 ms at 8 kHz)"
        );
    }
    for p in &audio {
        assert_eq!(p.payload_len, 160, "G.711 at ptime 20 carries 160 bytes");
    }
}

// ---------------------------------------------------------------------------------------------
// The dialer
// ---------------------------------------------------------------------------------------------

/// The fields every per-call line carries (issue 2, item 9).
const CALL_KEYS: [&str; 9] = [
    "to",
    "call_id",
    "outcome",
    "sip_status",
    "sip_reason",
    "pdd_ms",
    "answer_ms",
    "duration_ms",
    "rtp_packets_sent",
];

struct DialerRun {
    calls: Vec<Value>,
    summary: Value,
}

/// Runs `dialer call` against `sipp` and parses its output; panics (with both sides' logs) when
/// it overruns, exits non-zero or prints something else than the contract.
fn run_dialer(dir: &Path, sipp: &Sipp, transport: Transport, args: &[&str]) -> DialerRun {
    let bind = format!("127.0.0.1:{}", free_port());
    let trunk = format!("sip:127.0.0.1:{}", sipp.port);
    let stdout_path = dir.join("dialer.stdout");
    let stderr_path = dir.join("dialer.stderr");
    let mut cmd = Command::new(dialer_bin());
    cmd.arg("call")
        .args(["--trunk", &trunk])
        .args(["--bind", &bind])
        .args(["--transport", transport.dialer_word()])
        .args(args)
        .current_dir(dir)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or("info".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&stdout_path).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&stderr_path).unwrap()));
    let shown = format!("{cmd:?}");
    let mut child = cmd.spawn().expect("spawn dialer");
    let st = wait_bounded(&mut child, Instant::now() + CHILD_DEADLINE);
    let out = read_file_lossy(&stdout_path);
    let err = read_file_lossy(&stderr_path);
    let context = || {
        format!(
            "command: {shown}\n----- dialer stdout -----\n{}\n----- dialer stderr (tail) -----\n{}\n{}",
            tail(&out, 6000),
            tail(&err, 6000),
            sipp.logs()
        )
    };
    let st = st.unwrap_or_else(|| {
        panic!(
            "dialer did not end within {CHILD_DEADLINE:?} and was killed\n{}",
            context()
        )
    });
    assert!(
        st.success(),
        "dialer exited with {st}, expected 0 (every call reached an outcome)\n{}",
        context()
    );
    let mut calls = Vec::new();
    let mut summary = None;
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "dialer stdout line is not JSON ({e}): {line:?}\n{}",
                context()
            )
        });
        assert!(
            summary.is_none(),
            "the summary must be the last line\n{}",
            context()
        );
        if let Some(s) = v.get("summary") {
            summary = Some(s.clone());
        } else {
            for k in CALL_KEYS {
                assert!(
                    v.get(k).is_some(),
                    "call line lacks {k:?}: {line}\n{}",
                    context()
                );
            }
            calls.push(v);
        }
    }
    let summary = summary.unwrap_or_else(|| panic!("no {{\"summary\": ...}} line\n{}", context()));
    DialerRun { calls, summary }
}

impl DialerRun {
    fn outcomes(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for c in &self.calls {
            *m.entry(c["outcome"].as_str().unwrap_or("?").to_string())
                .or_insert(0) += 1;
        }
        m
    }

    /// Every call has `outcome` and `sip_status`; the summary agrees; Call-IDs are distinct.
    fn assert_all(&self, n: usize, outcome: &str, status: u64) {
        assert_eq!(
            self.calls.len(),
            n,
            "expected {n} call lines: {:#?}",
            self.calls
        );
        // The tally first: one readable line when many calls go wrong.
        assert_eq!(
            self.outcomes(),
            BTreeMap::from([(outcome.to_string(), n as u64)]),
            "outcomes of the {n} calls"
        );
        for c in &self.calls {
            assert_eq!(c["to"], NUMBER, "to: {c}");
            assert_eq!(c["outcome"], outcome, "outcome: {c}");
            assert_eq!(c["sip_status"].as_u64(), Some(status), "sip_status: {c}");
            assert!(
                c["call_id"].as_str().is_some_and(|s| !s.is_empty()),
                "call_id: {c}"
            );
        }
        let ids: std::collections::HashSet<&str> = self
            .calls
            .iter()
            .filter_map(|c| c["call_id"].as_str())
            .collect();
        assert_eq!(ids.len(), n, "Call-IDs must be distinct");
        assert_eq!(
            self.summary["calls"].as_u64(),
            Some(n as u64),
            "summary.calls: {}",
            self.summary
        );
        assert_eq!(
            self.summary["outcomes"][outcome].as_u64(),
            Some(n as u64),
            "summary.outcomes: {}",
            self.summary
        );
        for k in ["cps", "pdd_p50_ms", "pdd_p99_ms"] {
            assert!(
                self.summary.get(k).is_some(),
                "summary lacks {k}: {}",
                self.summary
            );
        }
    }

    fn rtp_sent(&self) -> u64 {
        self.calls
            .iter()
            .map(|c| c["rtp_packets_sent"].as_u64().unwrap_or(0))
            .sum()
    }
}

// ---------------------------------------------------------------------------------------------
// One scenario, end to end
// ---------------------------------------------------------------------------------------------

struct Case {
    scen: Scen<'static>,
    calls: u32,
    transport: Transport,
    sipp_extra: &'static [&'static str],
    prompt_secs: f32,
    dialer_extra: Vec<String>,
}

struct CaseResult {
    run: DialerRun,
    rtp: Vec<RtpPacket>,
    not_rtp: usize,
    _dir: TempDir,
}

fn run_case(case: Case) -> Option<CaseResult> {
    if !sipp_available() {
        return None;
    }
    dialer_bin(); // fail early, before SIPp runs, when it is missing
    let dir = tempfile::Builder::new()
        .prefix("e2e-sipp-")
        .tempdir()
        .expect("temp dir");
    let prompt = write_prompt(dir.path(), case.prompt_secs);
    let sink = RtpSink::start();
    let sipp = Sipp::start(
        dir.path(),
        &case.scen,
        case.calls,
        case.transport,
        sink.port,
        case.sipp_extra,
    );
    let mut args: Vec<String> = vec![
        "--to".into(),
        NUMBER.into(),
        "--prompt".into(),
        prompt.display().to_string(),
    ];
    args.extend(case.dialer_extra.iter().cloned());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = run_dialer(dir.path(), &sipp, case.transport, &argv);
    let (code, logs) = sipp.finish();
    assert_eq!(
        code,
        Some(0),
        "SIPp (the carrier) did not see every call through its scenario; dialer said:\n{}\n{}",
        run.calls
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        logs
    );
    let (rtp, not_rtp) = sink.finish();
    Some(CaseResult {
        run,
        rtp,
        not_rtp,
        _dir: dir,
    })
}

fn one_call(scen: &'static str, prompt_secs: f32, extra: &[&str]) -> Case {
    Case {
        scen: Scen::File(scen),
        calls: 1,
        transport: Transport::Udp,
        sipp_extra: &[],
        prompt_secs,
        dialer_extra: extra.iter().map(|s| s.to_string()).collect(),
    }
}

/// Answered call: all RTP the dialer counted arrived, in order, as one G.711 stream.
fn assert_answered_with_audio(r: &CaseResult, pt: u8) {
    let c = &r.run.calls[0];
    let sent = c["rtp_packets_sent"].as_u64().unwrap_or(0);
    assert!(sent > 0, "an answered call plays the prompt: {c}");
    assert_eq!(
        r.rtp.len() as u64,
        sent,
        "the carrier's media address got {} RTP packets, the dialer says it sent {sent}",
        r.rtp.len()
    );
    assert_eq!(r.not_rtp, 0, "non-RTP datagrams reached the media address");
    check_stream(&r.rtp, pt);
    assert!(
        c["pdd_ms"].as_u64().is_some(),
        "pdd_ms of an answered call: {c}"
    );
    assert!(
        c["answer_ms"].as_u64().is_some(),
        "answer_ms of an answered call: {c}"
    );
}

// ---------------------------------------------------------------------------------------------
// Tests: the dialer against SIPp
// ---------------------------------------------------------------------------------------------

/// 100, 180, 200 with SDP; the dialer ACKs, plays the whole prompt as PCMU, sends BYE.
#[test]
fn answer_plays_prompt_then_our_bye() {
    let Some(r) = run_case(one_call("uas_answer.xml", 1.0, &[])) else {
        return;
    };
    r.run.assert_all(1, "answered", 200);
    assert_answered_with_audio(&r, 0);
    let c = &r.run.calls[0];
    // 1 s of audio is 50 frames of 20 ms (allow for a partial last frame), then the finish
    // hold's silence so that the callee's jitter buffer plays it out before our BYE.
    let tail = engine::media::pacer::FINISH_HOLD.as_millis() as u64 / 20;
    let sent = c["rtp_packets_sent"].as_u64().unwrap() - tail;
    assert!((49..=51).contains(&sent), "1 s prompt = 50 frames: {c}");
    // The call lasts about the prompt; only a loose bound on wall-clock.
    let d = c["duration_ms"]
        .as_u64()
        .expect("duration_ms of an answered call");
    assert!(
        (700..=10_000).contains(&d),
        "duration about the prompt's 1 s: {c}"
    );
}

/// `--no-media`: signalling only, as SIPp's own UAC calls. The offer is `a=inactive` on the
/// discard port, the call is answered, acknowledged and hung up, and no RTP is sent.
#[test]
fn no_media_call_is_answered_and_hung_up_without_rtp() {
    let mut case = one_call("uas_answer.xml", 1.0, &["--no-media"]);
    case.sipp_extra = &["-trace_msg"];
    let Some(r) = run_case(case) else {
        return;
    };
    r.run.assert_all(1, "answered", 200);
    let c = &r.run.calls[0];
    assert_eq!(c["rtp_packets_sent"].as_u64(), Some(0), "{c}");
    assert!(
        r.rtp.is_empty(),
        "RTP reached the carrier: {} packets",
        r.rtp.len()
    );
    assert!(r.run.summary["media"].is_null(), "{}", r.run.summary);
    let log = std::fs::read_dir(r._dir.path())
        .expect("the run's directory")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with("messages.log"))
        .map(|e| read_file_lossy(&e.path()))
        .unwrap_or_else(|| {
            let names: Vec<_> = std::fs::read_dir(r._dir.path())
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .collect();
            panic!("no SIPp message trace among {names:?}")
        });
    // The INVITE as SIPp received it, up to the trace's next entry.
    let invite = &log[log.find("INVITE sip:").expect("the INVITE in the trace")..];
    let invite = &invite[..invite.find("\n-----").unwrap_or(invite.len())];
    assert!(invite.contains("m=audio 9 RTP/AVP"), "{}", tail(&log, 3000));
    assert!(invite.contains("a=inactive"), "{}", tail(&log, 3000));
    assert!(!invite.contains("a=sendrecv"), "{}", tail(&log, 3000));
    assert!(
        log.contains("BYE sip:"),
        "the dialer hung up: {}",
        tail(&log, 2000)
    );
}

/// `--codec pcma`: the offer lists PCMA first, the carrier takes it, the RTP is payload type 8.
#[test]
fn answer_with_pcma() {
    let Some(r) = run_case(one_call("uas_answer.xml", 0.5, &["--codec", "pcma"])) else {
        return;
    };
    r.run.assert_all(1, "answered", 200);
    assert_answered_with_audio(&r, 8);
}

/// The same answered call over TCP (`-t t1` on SIPp, `--transport tcp`).
#[test]
fn answer_over_tcp() {
    let mut case = one_call("uas_answer.xml", 0.5, &[]);
    case.transport = Transport::Tcp;
    let Some(r) = run_case(case) else {
        return;
    };
    r.run.assert_all(1, "answered", 200);
    assert_answered_with_audio(&r, 0);
}

/// 486 Busy Here → busy; the dialer ACKs the 486 (SIPp waits for it) and sends no media.
#[test]
fn busy_486() {
    let Some(r) = run_case(one_call("uas_busy.xml", 0.5, &[])) else {
        return;
    };
    r.run.assert_all(1, "busy", 486);
    assert_eq!(r.run.rtp_sent(), 0, "no media on a rejected call");
    assert!(r.rtp.is_empty(), "no media on a rejected call");
}

/// 503 Service Unavailable (Retry-After) → failed.
#[test]
fn unavailable_503() {
    let Some(r) = run_case(one_call("uas_503.xml", 0.5, &[])) else {
        return;
    };
    r.run.assert_all(1, "failed", 503);
    assert_eq!(r.run.rtp_sent(), 0, "no media on a failed call");
}

/// 401 with a Digest challenge (MD5, qop=auth); SIPp's `<verifyauth>` checks the retried INVITE
/// (and that its CSeq is one higher, same Call-ID); then answered.
#[test]
fn digest_challenge_401_verified_by_sipp() {
    let Some(r) = run_case(one_call(
        "uas_auth.xml",
        0.5,
        &["--username", "alice", "--password", "secret"],
    )) else {
        return;
    };
    r.run.assert_all(1, "answered", 200);
    assert_answered_with_audio(&r, 0);
}

/// 180 and nobody answers: after `--ring-timeout 2` the dialer CANCELs, gets 200 (CANCEL) and
/// 487 (INVITE), ACKs the 487 → no_answer.
#[test]
fn no_answer_cancel_487() {
    let Some(r) = run_case(one_call("uas_noanswer.xml", 0.5, &["--ring-timeout", "2"])) else {
        return;
    };
    r.run.assert_all(1, "no_answer", 487);
    assert_eq!(r.run.rtp_sent(), 0, "no media on an unanswered call");
}

/// The callee hangs up 1 s after the answer, long before the 6 s prompt ends: the dialer
/// answers SIPp's BYE with 200 (SIPp checks), stops the media, and reports answered.
#[test]
fn callee_hangs_up_first() {
    let Some(r) = run_case(one_call("uas_callee_hangup.xml", 6.0, &[])) else {
        return;
    };
    r.run.assert_all(1, "answered", 200);
    assert_answered_with_audio(&r, 0);
    let c = &r.run.calls[0];
    let sent = c["rtp_packets_sent"].as_u64().unwrap();
    // The whole prompt is 300 frames; the BYE comes after about 50.
    assert!(sent < 250, "media must stop when the callee hangs up: {c}");
    let d = c["duration_ms"].as_u64().expect("duration_ms");
    assert!(
        d < 5_000,
        "the call ends with the callee's BYE, not the prompt: {c}"
    );
}

/// 183 Session Progress with SDP (early media), 1.5 s later 200 with SDP → answered (not at 183).
#[test]
fn early_media_183_then_200() {
    let Some(r) = run_case(one_call("uas_early_media.xml", 0.5, &[])) else {
        return;
    };
    r.run.assert_all(1, "answered", 200);
    let c = &r.run.calls[0];
    assert!(c["rtp_packets_sent"].as_u64().unwrap_or(0) > 0, "{c}");
    assert!(!r.rtp.is_empty(), "the prompt reaches the SDP address");
    // The answer comes 1.5 s after the 183: answer_ms counts to the 200, not to the 183.
    let answer_ms = c["answer_ms"].as_u64().expect("answer_ms");
    assert!(
        answer_ms >= 1_000,
        "answered at the 200, not at the 183: {c}"
    );
}

/// SIPp drops 10 % of what it sends and receives (`-lost 10`); 20 calls, every one answered.
/// Needs retransmissions on our side (INVITE, BYE, a new ACK for each retransmitted 200).
#[test]
fn lossy_carrier_20_calls_all_answered() {
    let case = Case {
        scen: Scen::File("uas_lossy.xml"),
        calls: 20,
        transport: Transport::Udp,
        sipp_extra: &["-lost", "10"],
        prompt_secs: 0.5,
        dialer_extra: ["--calls", "20", "--concurrency", "10", "--cps", "10"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let Some(r) = run_case(case) else {
        return;
    };
    r.run.assert_all(20, "answered", 200);
    // RTP does not go through SIPp, so no loss there.
    assert_eq!(
        r.rtp.len() as u64,
        r.run.rtp_sent(),
        "RTP packets received vs sent"
    );
}

/// Load: 1000 calls, at most 200 at once and 100 new a second, against `sipp -sn uas`:
/// all answered, in about 10 s (+ prompt + SIPp's 4 s timewait). Filter with `load_`.
#[test]
fn load_1000_calls_against_builtin_uas() {
    let case = Case {
        scen: Scen::Builtin("uas"),
        calls: 1000,
        transport: Transport::Udp,
        sipp_extra: &[],
        prompt_secs: 0.5,
        dialer_extra: ["--calls", "1000", "--concurrency", "200", "--cps", "100"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let started = Instant::now();
    let Some(r) = run_case(case) else {
        return;
    };
    r.run.assert_all(1000, "answered", 200);
    let cps = r.run.summary["cps"].as_f64().expect("summary.cps");
    assert!(
        cps > 0.0 && cps <= 100.0 * 1.2,
        "achieved cps must respect --cps 100: {}",
        r.run.summary
    );
    assert!(
        r.run
            .calls
            .iter()
            .all(|c| c["rtp_packets_sent"].as_u64() > Some(0)),
        "every answered call plays the prompt"
    );
    eprintln!(
        "1000 calls in {:?}; summary {}",
        started.elapsed(),
        r.run.summary
    );
}

// ---------------------------------------------------------------------------------------------
// Tests: the scenarios against a SIPp UAC (no dialer needed)
// ---------------------------------------------------------------------------------------------

/// Runs `uas` against the SIPp UAC `uac` for `calls` calls; both must exit 0.
fn selftest(uas: &str, uac: &str, calls: u32, uas_extra: &[&str], uac_extra: &[&str]) {
    selftest_expect(uas, uac, calls, uas_extra, uac_extra, 0);
}

/// As `selftest`, the UAS to exit with `uas_expected` (SIPp: 0 all calls passed, 1 some failed).
fn selftest_expect(
    uas: &str,
    uac: &str,
    calls: u32,
    uas_extra: &[&str],
    uac_extra: &[&str],
    uas_expected: i32,
) {
    if !sipp_available() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("e2e-sipp-selftest-")
        .tempdir()
        .expect("temp dir");
    let sink = RtpSink::start();
    let uas_sipp = Sipp::start(
        dir.path(),
        &Scen::File(uas),
        calls,
        Transport::Udp,
        sink.port,
        uas_extra,
    );
    let uac_port = free_port();
    let uac_media = free_media_port();
    let mut child = Command::new("sipp")
        .arg("-sf")
        .arg(selftest_scenario(uac))
        .arg(format!("127.0.0.1:{}", uas_sipp.port))
        .args(["-s", "390771286891", "-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args(["-p", &uac_port.to_string(), "-mp", &uac_media.to_string()])
        .args(["-m", &calls.to_string(), "-r", "10", "-l", "10"])
        .args(["-timeout", &format!("{SIPP_TIMEOUT_S}s"), "-timeout_error"])
        .args(["-trace_err", "-nostdin"])
        .args(uac_extra)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sipp UAC");
    let uac_status = wait_bounded(&mut child, Instant::now() + CHILD_DEADLINE);
    let mut uac_err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut uac_err);
    }
    let (uas_code, logs) = uas_sipp.finish();
    let _ = sink.finish();
    if uas_expected == 0 {
        assert_eq!(
            uac_status.and_then(|s| s.code()),
            Some(0),
            "SIPp UAC {uac} failed: {uac_err}\n{logs}"
        );
    }
    assert_eq!(
        uas_code,
        Some(uas_expected),
        "SIPp UAS {uas}: unexpected exit code\n{logs}"
    );
}

#[test]
fn scenario_selftest_answer() {
    selftest("uas_answer.xml", "uac_answer.xml", 1, &[], &[]);
}

#[test]
fn scenario_selftest_busy() {
    selftest("uas_busy.xml", "uac_reject.xml", 1, &[], &[]);
}

#[test]
fn scenario_selftest_503() {
    selftest("uas_503.xml", "uac_reject.xml", 1, &[], &[]);
}

#[test]
fn scenario_selftest_auth() {
    selftest(
        "uas_auth.xml",
        "uac_auth.xml",
        1,
        &[],
        &["-au", "alice", "-ap", "secret"],
    );
}

/// `<verifyauth>` really checks: a wrong password fails the carrier's call.
#[test]
fn scenario_selftest_auth_rejects_wrong_password() {
    selftest_expect(
        "uas_auth.xml",
        "uac_auth.xml",
        1,
        &[],
        &["-au", "alice", "-ap", "wrong"],
        1,
    );
}

#[test]
fn scenario_selftest_noanswer() {
    selftest("uas_noanswer.xml", "uac_cancel.xml", 1, &[], &[]);
}

#[test]
fn scenario_selftest_callee_hangup() {
    selftest(
        "uas_callee_hangup.xml",
        "uac_callee_hangup.xml",
        1,
        &[],
        &[],
    );
}

#[test]
fn scenario_selftest_early_media() {
    selftest("uas_early_media.xml", "uac_answer.xml", 1, &[], &[]);
}

/// Without `-lost`: SIPp as the UAC is no full SIP stack (after its ACK or BYE is lost it does
/// not always recover), so with loss this pair fails now and then through no fault of the
/// scenario. The dialer test runs it with `-lost 10`.
#[test]
fn scenario_selftest_lossy() {
    selftest("uas_lossy.xml", "uac_answer.xml", 20, &[], &[]);
}
