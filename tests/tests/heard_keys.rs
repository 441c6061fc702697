//! Issue 14 acceptance, keys and per-zone messages: `dialer campaign run` against
//! `loadtest carrier` whose callees key digits at a given second, by RFC 4733 on the media
//! and by SIP INFO. Checked from the dialer's journal (result, digits, opt-out, retries)
//! and from what the carrier received (which message each contact heard).
//!
//! Loopback only, free ports, temporary directories; every child process is bounded in
//! time and killed on failure. Needs the `dialer` and `loadtest` binaries beside the test
//! executable's directory (`cargo build -p control-api --bin dialer -p loadtest`); skipped
//! locally without `loadtest`, a failure in CI.

use e2e::{free_port, workspace_bin};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use engine::store::{AttemptRecord, SqliteOptions, SqliteStore, Store};
use tempfile::TempDir;

const TENANT: &str = "latina";

/// A tone of `secs` at `hz`: a message whose length tells it apart.
fn write_prompt(dir: &Path, name: &str, secs: f32, hz: f32) -> PathBuf {
    let path = dir.join(name);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..(8000.0 * secs) as u32 {
        let t = i as f32 / 8000.0;
        w.write_sample(((t * hz * std::f32::consts::TAU).sin() * 12000.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
    path
}

/// `n` contacts, alternately in zones A and B.
fn write_contacts(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("contacts.csv");
    let mut s = String::from("number,street,house_number,zone,source\n");
    for i in 0..n {
        let zone = if i % 2 == 0 { "A" } else { "B" };
        s.push_str(&format!(
            "0771 {:06},Via {i},1,{zone},directory\n",
            300_000 + i
        ));
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

/// `loadtest carrier` with these callees; stops after `calls` calls. Killed on drop.
struct Carrier {
    child: Child,
    port: u16,
    report: PathBuf,
    csv: PathBuf,
}

impl Carrier {
    fn start(lt: &Path, dir: &Path, callees: &[&str], calls: usize) -> Carrier {
        let port = free_port();
        let (report, csv) = (dir.join("carrier.json"), dir.join("carrier.csv"));
        let mut cmd = Command::new(lt);
        cmd.args(["carrier", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--media", "127.0.0.1:0", "--duration", "90"])
            .args(["--exit-after-calls", &calls.to_string()])
            .arg("--report")
            .arg(&report)
            .arg("--csv")
            .arg(&csv);
        for c in callees {
            cmd.args(["--callee", c]);
        }
        let mut child = cmd
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
            csv,
        }
    }

    /// Waits for the carrier's exit and reads its report.
    fn finish(mut self) -> (serde_json::Value, Vec<HashMap<String, String>>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "carrier did not finish");
            thread::sleep(Duration::from_millis(50));
        }
        let report = serde_json::from_slice(&std::fs::read(&self.report).unwrap()).unwrap();
        let text = std::fs::read_to_string(&self.csv).unwrap();
        let mut lines = text.lines();
        let head: Vec<&str> = lines.next().unwrap().split(',').collect();
        let rows = lines
            .map(|l| {
                head.iter()
                    .zip(l.split(','))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .collect();
        (report, rows)
    }
}

impl Drop for Carrier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Run<'a> {
    dir: &'a Path,
    name: &'a str,
    priority: &'a str,
    until: &'a str,
    messages: Vec<String>,
}

/// Runs `dialer campaign run` to completion.
fn run_campaign(dialer: &Path, r: &Run, config: &Path, contacts: &Path, prompt: &Path) {
    let mut c = Command::new(dialer);
    c.args([
        "campaign", "run", "--tenant", TENANT, "--name", r.name, "--all",
    ])
    .arg("--db")
    .arg(r.dir.join("dialer.db"))
    .arg("--config")
    .arg(config)
    .arg("--contacts")
    .arg(contacts)
    .arg("--prompt")
    .arg(prompt)
    .args(["--priority", r.priority, "--until", r.until])
    .args(["--no-window", "--fast-sync"])
    .env("DIALER_LOG", "warn")
    .stdout(Stdio::null())
    .stderr(Stdio::from(
        std::fs::File::create(r.dir.join(format!("{}.err", r.name))).unwrap(),
    ));
    for m in &r.messages {
        c.args(["--message", m]);
    }
    let mut child = c.spawn().expect("spawn dialer");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let err = std::fs::read_to_string(r.dir.join(format!("{}.err", r.name)));
            assert!(st.success(), "dialer failed: {err:?}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("dialer did not finish within 90 s");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The campaign's attempts and, per contact id, its zone and whether it opted out.
fn journal(dir: &Path, name: &str) -> (Vec<AttemptRecord>, HashMap<i64, (String, bool)>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = SqliteStore::open(&dir.join("dialer.db"), SqliteOptions::default())
            .await
            .unwrap();
        let c = s
            .campaign_by_name(TENANT, name)
            .await
            .unwrap()
            .expect("campaign");
        assert_eq!(c.state.as_str(), "completed");
        let attempts = s.attempts(c.id, 0, 10_000).await.unwrap();
        let mut contacts = HashMap::new();
        for a in &attempts {
            if let Some(ct) = s.contact(TENANT, &a.number).await.unwrap() {
                contacts.insert(a.contact, (ct.contact.zone.clone(), ct.contact.opt_out));
            }
        }
        (attempts, contacts)
    })
}

struct Setup {
    _tmp: TempDir,
    dir: PathBuf,
    dialer: PathBuf,
    lt: PathBuf,
    prompt: PathBuf,
    contacts: PathBuf,
}

fn setup(n: usize, prompt_secs: f32) -> Option<Setup> {
    let lt = workspace_bin("loadtest")?;
    let dialer = workspace_bin("dialer")?;
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().to_path_buf();
    let prompt = write_prompt(&dir, "a.wav", prompt_secs, 440.0);
    let contacts = write_contacts(&dir, n);
    Some(Setup {
        _tmp: tmp,
        dir,
        dialer,
        lt,
        prompt,
        contacts,
    })
}

fn confirm_by(via_info: bool) {
    let n = 6;
    let Some(s) = setup(n, 4.0) else { return };
    let spec = if via_info {
        "human;key=1@1.2;info"
    } else {
        "human;key=1@1.2"
    };
    let carrier = Carrier::start(&s.lt, &s.dir, &[spec], n);
    let config = write_config(&s.dir, carrier.port);
    let r = Run {
        dir: &s.dir,
        name: "confirm",
        priority: "emergency",
        until: "confirmed",
        messages: vec![],
    };
    run_campaign(&s.dialer, &r, &config, &s.contacts, &s.prompt);
    let (report, _) = carrier.finish();
    let (attempts, _) = journal(&s.dir, "confirm");
    assert_eq!(attempts.len(), n, "one call each: {attempts:?}");
    for a in &attempts {
        assert_eq!(a.dtmf.as_deref(), Some("1"), "{a:?}");
        assert_eq!(a.result.map(|r| r.as_str()), Some("confirmed"), "{a:?}");
        // The message stopped at the key: well before its 4 s end.
        assert!(a.played_permille.unwrap_or(1000) < 900, "{a:?}");
    }
    let callees = report["callees"].as_array().expect("callees in the report");
    assert_eq!(callees.len(), n);
    // Measured, not asserted: from the key (1.2 s after the answer) to the call's end.
    let mut after: Vec<i64> = attempts
        .iter()
        .filter_map(|a| a.duration_ms)
        .map(|d| d - 1200)
        .collect();
    after.sort();
    eprintln!("key to end of call, ms (via_info={via_info}): {after:?}");
}

#[test]
fn heard_confirm_by_rfc4733_stops_the_message_and_records_confirmed() {
    confirm_by(false);
}

#[test]
fn heard_confirm_by_info_stops_the_message_and_records_confirmed() {
    confirm_by(true);
}

#[test]
fn heard_until_confirmed_retries_unconfirmed_answers_by_policy() {
    let n = 4;
    let Some(s) = setup(n, 1.0) else { return };
    // Listeners who never key: every contact answered twice (no_answer: 2 attempts).
    let carrier = Carrier::start(&s.lt, &s.dir, &["human"], 2 * n);
    let config = write_config(&s.dir, carrier.port);
    let r = Run {
        dir: &s.dir,
        name: "until",
        priority: "emergency",
        until: "confirmed",
        messages: vec![],
    };
    run_campaign(&s.dialer, &r, &config, &s.contacts, &s.prompt);
    drop(carrier);
    let (attempts, _) = journal(&s.dir, "until");
    assert_eq!(attempts.len(), 2 * n, "{attempts:?}");
    let mut per: HashMap<i64, usize> = HashMap::new();
    for a in &attempts {
        assert_eq!(a.outcome.map(|o| o.as_str()), Some("answered"));
        assert_eq!(a.result.map(|r| r.as_str()), Some("heard"), "{a:?}");
        *per.entry(a.contact).or_default() += 1;
    }
    assert!(per.values().all(|c| *c == 2), "{per:?}");
}

#[test]
fn heard_optout_needs_the_confirm_key_then_the_number_is_never_called_again() {
    let n = 2;
    let Some(s) = setup(n, 4.0) else { return };
    let carrier = Carrier::start(&s.lt, &s.dir, &["human;key=9@1;key=1@1.6"], n);
    let config = write_config(&s.dir, carrier.port);
    let r = Run {
        dir: &s.dir,
        name: "optout",
        priority: "normal",
        until: "answered",
        messages: vec![],
    };
    run_campaign(&s.dialer, &r, &config, &s.contacts, &s.prompt);
    drop(carrier);
    let (attempts, contacts) = journal(&s.dir, "optout");
    assert_eq!(attempts.len(), n);
    for a in &attempts {
        assert_eq!(a.dtmf.as_deref(), Some("91"), "{a:?}");
        assert!(contacts[&a.contact].1, "contact {} opted out", a.contact);
    }
    // A later campaign of the town does not call them.
    let carrier = Carrier::start(&s.lt, &s.dir, &["human"], 1);
    let config = write_config(&s.dir, carrier.port);
    let r = Run { name: "later", ..r };
    run_campaign(&s.dialer, &r, &config, &s.contacts, &s.prompt);
    let (later, _) = journal(&s.dir, "later");
    assert!(
        later.is_empty(),
        "opted-out numbers called again: {later:?}"
    );
}

#[test]
fn heard_two_zones_two_messages_in_one_launch() {
    let n = 8;
    let Some(s) = setup(n, 1.0) else { return };
    let b = write_prompt(&s.dir, "b.wav", 2.5, 660.0);
    let carrier = Carrier::start(&s.lt, &s.dir, &["human"], n);
    let config = write_config(&s.dir, carrier.port);
    let r = Run {
        dir: &s.dir,
        name: "zones",
        priority: "emergency",
        until: "heard",
        messages: vec![format!("B={}", b.display())],
    };
    run_campaign(&s.dialer, &r, &config, &s.contacts, &s.prompt);
    let (_, rows) = carrier.finish();
    let (attempts, contacts) = journal(&s.dir, "zones");
    assert_eq!(attempts.len(), n);
    let heard: HashMap<&str, u64> = rows
        .iter()
        .map(|r| {
            let ms = r["duration_heard_ms"].parse().unwrap_or(0);
            (r["call_id"].as_str(), ms)
        })
        .collect();
    for a in &attempts {
        let zone = &contacts[&a.contact].0;
        let ms = heard[a.call_id.as_str()];
        // The message, then the silence the stream sends through the finish hold.
        let hold = engine::media::pacer::FINISH_HOLD.as_millis() as u64;
        let want = if zone == "A" { 1000 } else { 2500 } + hold;
        assert!(
            ms.abs_diff(want) <= 100,
            "zone {zone} heard {ms} ms, its message is {want} ms ({a:?})"
        );
        assert_eq!(a.result.map(|r| r.as_str()), Some("heard"), "{a:?}");
    }
}
