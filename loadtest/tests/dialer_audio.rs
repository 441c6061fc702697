//! Acceptance of the media pump: 200 concurrent calls of `dialer call` against
//! `loadtest carrier` with the audio check on. Every call must be answered and heard whole:
//! every frame byte-identical to the prompt (so correlation 1), no loss, the marker bit on the
//! first packet only, timestamps advancing by exactly one frame per sequence number, and the
//! RTCP BYE at the end. Loopback only, ports chosen by the kernel, every wait bounded.
//!
//! Needs the dialer binary: `cargo build -p control-api --bin dialer` (or `DIALER_BIN`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn dialer_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DIALER_BIN") {
        return PathBuf::from(p);
    }
    let loadtest = PathBuf::from(env!("CARGO_BIN_EXE_loadtest"));
    let bin = loadtest.with_file_name(format!("dialer{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p control-api --bin dialer` first (or set DIALER_BIN)",
        bin.display()
    );
    bin
}

fn write_prompt(path: &Path, secs: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..8000 * secs {
        let t = f64::from(i) / 8000.0;
        let f = 300.0 + 200.0 * (t * 1.3).sin();
        let v = 0.3 * (2.0 * std::f64::consts::PI * f * t).sin()
            + 0.2 * (2.0 * std::f64::consts::PI * 1170.0 * t).sin() * (t * 3.0).sin();
        w.write_sample((v * 20000.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_hundred_concurrent_calls_heard_whole() {
    const CALLS: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let prompt = dir.path().join("prompt.wav");
    write_prompt(&prompt, 3);
    let report = dir.path().join("carrier.json");
    let csv = dir.path().join("carrier.csv");
    let mut carrier = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args([
            "carrier",
            "--listen",
            "127.0.0.1:0",
            "--media",
            "127.0.0.1:0",
        ])
        .arg("--expect-prompt")
        .arg(&prompt)
        .args(["--exit-after-calls", &CALLS.to_string(), "--duration", "90"])
        .arg("--report")
        .arg(&report)
        .arg("--csv")
        .arg(&csv)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn loadtest carrier");
    let mut ready = String::new();
    BufReader::new(carrier.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let ready: Value = serde_json::from_str(&ready).expect("carrier ready line");
    let sip = ready["ready"]["sip"].as_str().unwrap().to_string();

    let dialer = Command::new(dialer_bin())
        .args(["call", "--trunk", &format!("sip:{sip}"), "--to", "100"])
        .arg("--prompt")
        .arg(&prompt)
        .args([
            "--calls",
            &CALLS.to_string(),
            "--concurrency",
            &CALLS.to_string(),
        ])
        .args(["--cps", "400", "--rtp-ports", "50000-50999"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn dialer");
    let out = {
        let mut d = dialer;
        let mut stdout = d.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
            s
        });
        let status = wait_bounded(&mut d, Duration::from_secs(60), "dialer call");
        assert!(status.success(), "dialer exit {status}");
        reader.join().unwrap()
    };
    let status = wait_bounded(&mut carrier, Duration::from_secs(30), "loadtest carrier");
    assert!(status.success(), "carrier exit {status}");

    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(
        summary["outcomes"]["answered"].as_u64(),
        Some(CALLS),
        "{summary}"
    );
    // The message's 150 packets, then silence through the finish hold (a callee's jitter
    // buffer plays the last word out before the BYE).
    let hold_ms = engine::media::pacer::FINISH_HOLD.as_millis() as u64;
    for c in &lines[..lines.len() - 1] {
        assert_eq!(
            c["rtp_packets_sent"].as_u64(),
            Some(150 + hold_ms / 20),
            "{c}"
        );
    }
    assert!(
        summary["media"]["peak_streams"].as_u64().unwrap() >= 150,
        "{summary}"
    );

    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let rtp = &r["rtp"];
    let ctx = serde_json::to_string_pretty(&r).unwrap();
    assert_eq!(r["answered"].as_u64(), Some(CALLS), "{ctx}");
    assert!(
        r["peak_concurrent_answered"].as_u64().unwrap() >= 150,
        "{ctx}"
    );
    assert_eq!(
        rtp["answered_calls_with_media"].as_u64(),
        Some(CALLS),
        "{ctx}"
    );
    // The message's 150 packets, then silence through the finish hold (a callee's jitter
    // buffer plays the last word out before the BYE).
    let hold_ms = engine::media::pacer::FINISH_HOLD.as_millis() as u64;
    assert_eq!(
        rtp["packets"].as_u64(),
        Some(CALLS * (150 + hold_ms / 20)),
        "{ctx}"
    );
    assert_eq!(rtp["lost"].as_u64(), Some(0), "{ctx}");
    assert_eq!(rtp["calls_with_loss"].as_u64(), Some(0), "{ctx}");
    assert_eq!(rtp["seq_gaps"].as_u64(), Some(0), "{ctx}");
    assert_eq!(rtp["marker_errors"].as_u64(), Some(0), "{ctx}");
    assert_eq!(rtp["timestamp_errors"].as_u64(), Some(0), "{ctx}");
    assert_eq!(
        rtp["duration_heard_ms_min"].as_u64(),
        Some(3000 + hold_ms),
        "{ctx}"
    );
    assert_eq!(rtp["audio"]["correlating"].as_u64(), Some(CALLS), "{ctx}");
    assert_eq!(
        rtp["audio"]["frames_exact"].as_u64(),
        rtp["audio"]["frames_compared"].as_u64(),
        "{ctx}"
    );
    assert!(
        rtp["audio"]["min_correlation"].as_f64().unwrap() > 0.999,
        "{ctx}"
    );
    assert_eq!(rtp["rtcp_bye_streams"].as_u64(), Some(CALLS), "{ctx}");
    // One CSV line per call plus the header.
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(csv.lines().count() as u64, CALLS + 1);
}
