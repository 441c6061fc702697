//! The `dialer` binary's command-line contract: bad usage is a non-zero exit with a message,
//! and `--bind` answers OPTIONS while `dialer call` runs. (Having an integration test here
//! also makes `cargo test --workspace` build the binary that tests/ drives.)

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn dialer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dialer"))
}

#[test]
fn help_lists_the_verbs() {
    let out = dialer().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("call") && text.contains("prompt"), "{text}");
}

#[test]
fn bad_usage_fails_with_a_message() {
    let out = dialer().args(["call", "--to", "100"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--trunk"));
    let out = dialer()
        .args([
            "call",
            "--trunk",
            "not a uri",
            "--to",
            "1",
            "--prompt",
            "/nonexistent.wav",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!out.stderr.is_empty());
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_prompt(path: &std::path::Path) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..8000 {
        let s = (8000.0 * (i as f64 * 440.0 * std::f64::consts::TAU / 8000.0).sin()) as i16;
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn bound_address_answers_options_while_calling() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("p.wav");
    write_prompt(&wav);
    // A "carrier" that never answers: the call rings until the 3 s ring timeout.
    let carrier = UdpSocket::bind("127.0.0.1:0").unwrap();
    let trunk = format!("sip:{}", carrier.local_addr().unwrap());
    let port = free_udp_port();
    let child = dialer()
        .args(["call", "--trunk", &trunk, "--to", "100", "--prompt"])
        .arg(&wav)
        .args([
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--ring-timeout",
            "3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let me = probe.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKprobe1\r\nMax-Forwards: 70\r\nFrom: <sip:probe@{me}>;tag=p1\r\nTo: <sip:127.0.0.1:{port}>\r\nCall-ID: probe1@{me}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut answered = None;
    while Instant::now() < deadline && answered.is_none() {
        probe
            .send_to(options.as_bytes(), ("127.0.0.1", port))
            .unwrap();
        let mut buf = [0u8; 4096];
        if let Ok((n, _)) = probe.recv_from(&mut buf) {
            answered = Some(String::from_utf8_lossy(&buf[..n]).to_string());
        }
    }
    let answered = answered.expect("OPTIONS answered");
    assert!(answered.starts_with("SIP/2.0 200 OK\r\n"), "{answered}");
    // The unanswered call ends (Timer B: no provisional, so no CANCEL) and the tool exits 0.
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string();
    assert!(last.contains("\"summary\""), "{last}");
}
