//! Issue 14 acceptance, answering machines: `dialer campaign run --amd POLICY` against
//! `loadtest carrier` whose callees are machines (a greeting, then a beep or none, then
//! they record) or people ("Pronto?" then silence). Checked from the dialer's journal
//! (result `machine`, the beep's time) and from what the carrier received: where the
//! message began (the packet carrying the prompt's first frame) against the end of the
//! beep or greeting, and whether it arrived whole (every frame compared with the prompt,
//! correlation of the decoded audio).
//!
//! Loopback only, free ports, temporary directories; every child process is bounded in
//! time and killed on failure. Needs the `dialer` and `loadtest` binaries beside the test
//! executable's directory (`cargo build -p control-api --bin dialer -p loadtest`); skipped
//! locally without them, a failure in CI.

use e2e::{free_port, workspace_bin};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use engine::store::{AttemptRecord, SqliteOptions, SqliteStore, Store};
use tempfile::TempDir;

const TENANT: &str = "sabaudia";
/// The message: a 2 s sweep, so that a misplaced frame cannot correlate.
const PROMPT_SECS: f32 = 2.0;

/// A sweep from 300 Hz to 1.5 kHz over `secs`, with a slow tremolo.
fn write_prompt(dir: &Path, secs: f32) -> PathBuf {
    let path = dir.join("message.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    let (f0, f1) = (300.0f32, 1500.0f32);
    for i in 0..(8000.0 * secs) as u32 {
        let t = i as f32 / 8000.0;
        let phase = std::f32::consts::TAU * (f0 * t + (f1 - f0) * t * t / (2.0 * secs));
        let amp = 9000.0 + 3000.0 * (std::f32::consts::TAU * 3.0 * t).sin();
        w.write_sample((phase.sin() * amp) as i16).unwrap();
    }
    w.finalize().unwrap();
    path
}

fn write_contacts(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("contacts.csv");
    let mut s = String::from("number,street,house_number,zone,source\n");
    for i in 0..n {
        s.push_str(&format!("0773 {:06},Via {i},1,A,directory\n", 500_000 + i));
    }
    std::fs::write(&path, s).unwrap();
    path
}

fn write_config(dir: &Path, carrier: u16) -> PathBuf {
    let path = dir.join("dialer.toml");
    let rtp = free_port() / 2 * 2;
    let (lo, hi) = if rtp > 60000 {
        (20000, 29998)
    } else {
        (rtp, rtp + 2000)
    };
    std::fs::write(
        &path,
        format!(
            r#"sip_bind = "127.0.0.1:0"
rtp_ports = "{lo}-{hi}"
[retry]
no_answer = {{ interval_s = 1, max_attempts = 2 }}
[[trunk]]
name = "carrier"
proxy = "127.0.0.1:{carrier}"
max_channels = 20
cps = 20
codecs = ["PCMU"]
ring_timeout_s = 10
"#
        ),
    )
    .unwrap();
    path
}

/// `loadtest carrier` with one callee behaviour; stops after `calls` calls. Killed on drop.
struct Carrier {
    child: Child,
    port: u16,
    report: PathBuf,
}

impl Carrier {
    fn start(lt: &Path, dir: &Path, callee: &str, prompt: &Path, calls: usize) -> Carrier {
        let port = free_port();
        let report = dir.join("carrier.json");
        let mut child = Command::new(lt)
            .args(["carrier", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--media", "127.0.0.1:0", "--duration", "90"])
            .args(["--exit-after-calls", &calls.to_string()])
            .args(["--callee", callee])
            .arg("--expect-prompt")
            .arg(prompt)
            .arg("--report")
            .arg(&report)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn loadtest carrier");
        let mut line = String::new();
        let out = child.stdout.take().unwrap();
        BufReader::new(out).read_line(&mut line).unwrap();
        assert!(line.contains("ready"), "carrier said {line:?}");
        Carrier {
            child,
            port,
            report,
        }
    }

    /// Waits for the carrier's exit; what each callee heard.
    fn finish(mut self) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "carrier did not finish");
            thread::sleep(Duration::from_millis(50));
        }
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&self.report).unwrap()).unwrap();
        report["callees"].as_array().expect("callees").clone()
    }
}

impl Drop for Carrier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One campaign with `--amd policy` against one callee behaviour, to completion: the
/// journal's attempts and what each callee heard.
fn run(callee: &str, policy: &str, n: usize, calls: usize) -> Option<Ran> {
    let lt = workspace_bin("loadtest")?;
    let dialer = workspace_bin("dialer")?;
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().to_path_buf();
    let prompt = write_prompt(&dir, PROMPT_SECS);
    let contacts = write_contacts(&dir, n);
    let carrier = Carrier::start(&lt, &dir, callee, &prompt, calls);
    let config = write_config(&dir, carrier.port);
    let err = dir.join("dialer.err");
    let mut child = Command::new(&dialer)
        .args([
            "campaign", "run", "--tenant", TENANT, "--name", "amd", "--all",
        ])
        .arg("--db")
        .arg(dir.join("dialer.db"))
        .arg("--config")
        .arg(&config)
        .arg("--contacts")
        .arg(&contacts)
        .arg("--prompt")
        .arg(&prompt)
        .args(["--priority", "emergency", "--amd", policy])
        .args(["--no-window", "--fast-sync"])
        .env("DIALER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
        .spawn()
        .expect("spawn dialer");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(
                st.success(),
                "dialer failed: {:?}",
                std::fs::read_to_string(&err)
            );
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("dialer did not finish within 90 s");
        }
        thread::sleep(Duration::from_millis(50));
    }
    let heard = carrier.finish();
    let attempts = journal(&dir);
    Some(Ran {
        _tmp: tmp,
        attempts,
        heard,
    })
}

struct Ran {
    _tmp: TempDir,
    attempts: Vec<AttemptRecord>,
    heard: Vec<serde_json::Value>,
}

impl Ran {
    /// What the callee of an attempt heard (matched by Call-ID).
    fn heard_by(&self, a: &AttemptRecord) -> &serde_json::Value {
        self.heard
            .iter()
            .find(|h| h["call_id"].as_str() == Some(a.call_id.as_str()))
            .unwrap_or_else(|| panic!("no callee for {}", a.call_id))
    }
}

fn journal(dir: &Path) -> Vec<AttemptRecord> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = SqliteStore::open(&dir.join("dialer.db"), SqliteOptions::default())
            .await
            .unwrap();
        let c = s
            .campaign_by_name(TENANT, "amd")
            .await
            .unwrap()
            .expect("campaign");
        assert_eq!(c.state.as_str(), "completed");
        s.attempts(c.id, 0, 10_000).await.unwrap()
    })
}

fn f(v: &serde_json::Value) -> Option<f64> {
    v.as_f64()
}

/// The message arrived whole: from its first frame to its last, each compared with the
/// prompt, and the decoded audio correlates.
fn assert_whole(h: &serde_json::Value) {
    let frames = h["message_frames"].as_u64().unwrap_or(0);
    let whole = h["prompt_frames"].as_u64().unwrap_or(0);
    assert!(whole >= (PROMPT_SECS * 50.0) as u64 - 1, "{h}");
    assert!(
        frames >= whole,
        "message cut: {frames} of {whole} frames: {h}"
    );
    let corr = f(&h["correlation"]).unwrap_or(0.0);
    assert!(corr > 0.99, "correlation {corr}: {h}");
}

#[test]
fn amd_drop_leaves_the_whole_message_within_500_ms_of_the_beep() {
    let n = 4;
    let Some(r) = run("machine;greeting=3000;beep", "drop", n, n) else {
        return;
    };
    assert_eq!(r.attempts.len(), n, "{:?}", r.attempts);
    let mut after = vec![];
    for a in &r.attempts {
        assert_eq!(a.outcome.map(|o| o.as_str()), Some("answered"), "{a:?}");
        assert_eq!(a.result.map(|x| x.as_str()), Some("machine"), "{a:?}");
        // The beep ends 3.4 s into the callee's audio.
        let beep = a.beep_ms.expect("beep time journaled");
        assert!((3300..=3700).contains(&beep), "beep at {beep} ms: {a:?}");
        let h = r.heard_by(a);
        let late = f(&h["message_after_greeting_ms"]).expect("message heard");
        assert!(
            (0.0..=500.0).contains(&late),
            "message {late} ms after the beep: {h}"
        );
        assert_whole(h);
        after.push(late);
    }
    after.sort_by(f64::total_cmp);
    eprintln!("message start after the beep's end, ms: {after:?}");
}

#[test]
fn amd_drop_without_a_beep_leaves_it_after_the_greeting() {
    let n = 3;
    let Some(r) = run("machine;greeting=3000", "drop", n, n) else {
        return;
    };
    assert_eq!(r.attempts.len(), n);
    let mut after = vec![];
    for a in &r.attempts {
        assert_eq!(a.result.map(|x| x.as_str()), Some("machine"), "{a:?}");
        assert_eq!(a.beep_ms, None, "{a:?}");
        let h = r.heard_by(a);
        let late = f(&h["message_after_greeting_ms"]).expect("message heard");
        // The greeting's end is 800 ms of silence (after_greeting_silence_ms).
        assert!(
            (0.0..=1500.0).contains(&late),
            "{late} ms after the greeting: {h}"
        );
        assert_whole(h);
        after.push(late);
    }
    after.sort_by(f64::total_cmp);
    eprintln!("message start after the greeting's end (no beep), ms: {after:?}");
}

#[test]
fn amd_hangup_plays_nothing_to_machines() {
    let n = 3;
    let Some(r) = run("machine;greeting=3000;beep", "hangup", n, n) else {
        return;
    };
    assert_eq!(r.attempts.len(), n);
    for a in &r.attempts {
        assert_eq!(a.result.map(|x| x.as_str()), Some("machine"), "{a:?}");
        let h = r.heard_by(a);
        assert!(h["message_from_ms"].is_null(), "a message was played: {h}");
        // Hung up at the verdict, before the greeting ended.
        let d = a.duration_ms.unwrap_or(i64::MAX);
        assert!(d < 3000, "call lasted {d} ms: {a:?}");
    }
}

#[test]
fn amd_retry_later_calls_machines_again() {
    let n = 2;
    // no_answer: 2 attempts, 1 s apart.
    let Some(r) = run("machine;greeting=3000;beep", "retry_later", n, 2 * n) else {
        return;
    };
    assert_eq!(r.attempts.len(), 2 * n, "{:?}", r.attempts);
    for a in &r.attempts {
        assert_eq!(a.result.map(|x| x.as_str()), Some("machine"), "{a:?}");
        assert!(r.heard_by(a)["message_from_ms"].is_null());
    }
}

#[test]
fn amd_a_person_hears_the_whole_message_soon_after_hello() {
    let n = 3;
    let Some(r) = run("human;hello=600", "hangup", n, n) else {
        return;
    };
    assert_eq!(r.attempts.len(), n);
    let mut from = vec![];
    for a in &r.attempts {
        assert_eq!(a.result.map(|x| x.as_str()), Some("heard"), "{a:?}");
        let h = r.heard_by(a);
        let at = f(&h["message_from_ms"]).expect("message heard");
        // "Pronto?" (0.6 s) and 0.8 s of silence decide; the message follows at once.
        assert!(at < 2500.0, "message {at} ms after the answer: {h}");
        assert_whole(h);
        from.push(at);
    }
    from.sort_by(f64::total_cmp);
    eprintln!("a person hears the message after, ms: {from:?}");
}
