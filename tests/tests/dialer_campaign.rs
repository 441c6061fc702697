//! End-to-end tests of `dialer campaign run` against two SIPp carriers (issue 5
//! acceptance): a zone-targeted campaign over 2,000 contacts, checked from the journal and
//! from the carriers' own message traces; and a crash (kill -9) in the middle of a campaign
//! followed by a restart.
//!
//! Loopback only, free ports, temporary directories; every child process is bounded in
//! time and killed on failure. Needs `sipp` (skipped locally without it, a failure in CI)
//! and the `dialer` binary (`cargo build -p control-api --bin dialer`, or `DIALER_BIN`).

use e2e::{dialer_bin, free_port, max_per_second, recv_stamped, sipp_available, stamped_socket};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use engine::store::{AttemptRecord, SqliteOptions, SqliteStore, Store};
use tempfile::TempDir;

/// The tests measure rates from the carriers' clocks: run them one at a time so that they
/// do not steal each other's CPU (two cores, three dialers, six SIPps).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sipp")
        .join(name)
}

fn write_prompt(dir: &Path, secs: f32) -> PathBuf {
    let path = dir.join("prompt.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..(8000.0 * secs) as u32 {
        let t = i as f32 / 8000.0;
        w.write_sample(((t * 440.0 * std::f32::consts::TAU).sin() * 12000.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
    path
}

/// Contacts: `n` rows, zones z1..z3 in turn, even rows landlines, odd rows mobiles.
fn write_contacts(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("contacts.csv");
    let mut s = String::from("number,street,house_number,zone,source\n");
    for i in 0..n {
        let number = if i % 2 == 0 {
            format!("0771 {:06}", 200_000 + i)
        } else {
            format!("347 {:07}", 2_000_000 + i)
        };
        let source = if i % 2 == 0 {
            "directory"
        } else {
            "registration"
        };
        s.push_str(&format!(
            "{number},Via {},{},z{},{source}\n",
            i % 7,
            i,
            i % 3 + 1
        ));
    }
    std::fs::write(&path, s).unwrap();
    path
}

/// A UDP relay in front of a carrier that stamps every datagram with the kernel's arrival
/// time (`SO_TIMESTAMPNS`): the carrier's view of the INVITE rate, free of SIPp's own
/// scheduling delays on a loaded machine. Requests from the dialer go on to the carrier;
/// the carrier's answers come back to the dialer. (In-dialog requests go to the carrier's
/// Contact directly.)
struct Tap {
    port: u16,
    invites: Arc<Mutex<Vec<(f64, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Tap {
    fn start(carrier: u16) -> Tap {
        let sock = stamped_socket();
        let port = sock.local_addr().unwrap().port();
        let invites = Arc::new(Mutex::new(vec![]));
        let stop = Arc::new(AtomicBool::new(false));
        let (inv, st) = (invites.clone(), stop.clone());
        let carrier_addr: std::net::SocketAddr = ([127, 0, 0, 1], carrier).into();
        let thread = thread::spawn(move || {
            let mut dialer: Option<std::net::SocketAddr> = None;
            let mut buf = vec![0u8; 65536];
            while !st.load(Ordering::Relaxed) {
                let Some((n, from, ts)) = recv_stamped(&sock, &mut buf) else {
                    continue;
                };
                let data = &buf[..n];
                if from == carrier_addr {
                    if let Some(d) = dialer {
                        let _ = sock.send_to(data, d);
                    }
                    continue;
                }
                dialer = Some(from);
                if data.starts_with(b"INVITE ") {
                    let text = String::from_utf8_lossy(data);
                    if let Some(cid) = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Call-ID:").or_else(|| l.strip_prefix("i:")))
                    {
                        inv.lock().unwrap().push((ts, cid.trim().to_string()));
                    }
                }
                let _ = sock.send_to(data, carrier_addr);
            }
        });
        Tap {
            port,
            invites,
            stop,
            thread: Some(thread),
        }
    }

    /// Arrival time of each distinct INVITE (retransmissions not counted), seconds.
    fn invite_arrivals(&self) -> HashMap<String, f64> {
        let mut out = HashMap::new();
        for (ts, cid) in self.invites.lock().unwrap().iter() {
            out.entry(cid.clone()).or_insert(*ts);
        }
        out
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A SIPp UAS that traces every message with its timestamp. Killed on drop.
struct Carrier {
    child: Child,
    port: u16,
    trace: PathBuf,
    _rtp_sink: UdpSocket,
}

impl Carrier {
    fn start(dir: &Path, name: &str, scen: &str) -> Carrier {
        let port = free_port();
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rtp = sink.local_addr().unwrap().port();
        let trace = dir.join(format!("{name}.msg"));
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(scenario(scen))
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1000000"])
            .args(["-key", "rtp_port", &rtp.to_string()])
            .args(["-mp", &free_port().to_string()])
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(&trace)
            .args(["-nostdin"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sipp");
        thread::sleep(Duration::from_millis(300));
        Carrier {
            child,
            port,
            trace,
            _rtp_sink: sink,
        }
    }

    /// Per Call-ID: when the INVITE arrived and when the call was over for the carrier
    /// (final non-2xx sent, or BYE received), in seconds since the epoch.
    fn calls(&self) -> HashMap<String, (f64, Option<f64>)> {
        let text =
            String::from_utf8_lossy(&std::fs::read(&self.trace).unwrap_or_default()).into_owned();
        let mut out: HashMap<String, (f64, Option<f64>)> = HashMap::new();
        for block in text
            .split("----------------------------------------------- ")
            .skip(1)
        {
            let mut lines = block.lines();
            let Some(ts) = lines.next().and_then(parse_ts) else {
                continue;
            };
            let Some(dir) = lines.next() else { continue };
            let received = dir.contains("received");
            let body: Vec<&str> = lines.skip_while(|l| l.trim().is_empty()).collect();
            let Some(first) = body.first() else { continue };
            let call_id = body
                .iter()
                .find_map(|l| l.strip_prefix("Call-ID:").or_else(|| l.strip_prefix("i:")))
                .map(|v| v.trim().to_string());
            let Some(cid) = call_id else { continue };
            if received && first.starts_with("INVITE ") {
                out.entry(cid).or_insert((ts, None));
            } else if received && first.starts_with("BYE ") {
                if let Some(e) = out.get_mut(&cid) {
                    e.1.get_or_insert(ts);
                }
            } else if !received && first.starts_with("SIP/2.0 ") {
                let code: u16 = first[8..11].parse().unwrap_or(0);
                if code >= 300 {
                    if let Some(e) = out.get_mut(&cid) {
                        e.1.get_or_insert(ts);
                    }
                }
            }
        }
        out
    }
}

impl Drop for Carrier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_ts(s: &str) -> Option<f64> {
    // "2026-11-28 21:23:20.930683" (or with a tab between date and time)
    let s = s.trim();
    let time = s.split_whitespace().nth(1)?;
    let mut it = time.split(':');
    let h: f64 = it.next()?.parse().ok()?;
    let m: f64 = it.next()?.parse().ok()?;
    let sec: f64 = it.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + sec)
}

/// Most calls open at once.
fn max_concurrent(calls: &HashMap<String, (f64, Option<f64>)>) -> usize {
    let mut ev: Vec<(f64, i32)> = vec![];
    for (s, e) in calls.values() {
        ev.push((*s, 1));
        ev.push((e.unwrap_or(f64::MAX), -1));
    }
    // Ends before starts at the same instant.
    ev.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (mut cur, mut best) = (0i32, 0i32);
    for (_, d) in ev {
        cur += d;
        best = best.max(cur);
    }
    best as usize
}

fn write_config(
    dir: &Path,
    a: u16,
    b: u16,
    a_cps: u32,
    a_ch: u32,
    b_cps: u32,
    b_ch: u32,
) -> PathBuf {
    let path = dir.join("dialer.toml");
    let rtp = free_port() / 2 * 2;
    let (lo, hi) = if rtp > 60000 {
        (20000, 29998)
    } else {
        (rtp, rtp + 3000)
    };
    std::fs::write(
        &path,
        format!(
            r#"sip_bind = "127.0.0.1:0"
rtp_ports = "{lo}-{hi}"
[retry]
busy = {{ interval_s = 1, max_attempts = 3 }}
no_answer = {{ interval_s = 1, max_attempts = 2 }}
failed = {{ interval_s = 1, max_attempts = 3 }}
[[trunk]]
name = "landline-carrier"
proxy = "127.0.0.1:{}"
max_channels = {a_ch}
cps = {a_cps}
routes = ["fixed"]
codecs = ["PCMU"]
ring_timeout_s = 10
[[trunk]]
name = "mobile-carrier"
proxy = "127.0.0.1:{}"
max_channels = {b_ch}
cps = {b_cps}
routes = ["mobile"]
codecs = ["PCMU"]
ring_timeout_s = 10
"#,
            a, b
        ),
    )
    .unwrap();
    path
}

fn run_args(dir: &Path, config: &Path, contacts: &Path, prompt: &Path) -> Command {
    let mut c = Command::new(dialer_bin());
    c.args([
        "campaign",
        "run",
        "--tenant",
        "latina",
        "--name",
        "boil-water",
        "--zones",
        "z1,z2",
    ])
    .arg("--db")
    .arg(dir.join("dialer.db"))
    .arg("--config")
    .arg(config)
    .arg("--contacts")
    .arg(contacts)
    .arg("--prompt")
    .arg(prompt)
    .args(["--no-window", "--fast-sync"])
    .env("DIALER_LOG", "warn")
    .stdout(Stdio::piped())
    .stderr(Stdio::from(
        std::fs::File::create(dir.join("dialer.err")).unwrap(),
    ));
    c
}

fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("dialer did not finish within {limit:?}");
        }
        thread::sleep(Duration::from_millis(50));
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
            .campaign_by_name("latina", "boil-water")
            .await
            .unwrap()
            .expect("campaign");
        assert_eq!(c.state.as_str(), "completed");
        let mut all = vec![];
        let mut after = 0;
        loop {
            let page = s.attempts(c.id, after, 1000).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.id;
            all.extend(page);
        }
        all
    })
}

/// Polls the journal (read side, as the dialer writes it) until `n` attempts exist. On
/// time-out it says whether the dialer was still running and what it logged last.
fn wait_for_attempts(dir: &Path, dialer: &mut Child, n: u64, limit: Duration) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = Instant::now() + limit;
    rt.block_on(async {
        // One store for the whole wait: opening one runs the migrations' BEGIN IMMEDIATE
        // against the running dialer's writer, which every 100 ms was needless contention.
        let mut store = None;
        loop {
            if Instant::now() >= deadline {
                let status = dialer.try_wait().unwrap();
                let err = std::fs::read_to_string(dir.join("dialer.err")).unwrap_or_default();
                panic!(
                    "fewer than {n} attempts within {limit:?}; dialer exited: {status:?}\n{}",
                    &err[err.len().saturating_sub(3000)..]
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let path = dir.join("dialer.db");
            if !path.exists() {
                continue;
            }
            if store.is_none() {
                store = SqliteStore::open(&path, SqliteOptions::default())
                    .await
                    .ok();
            }
            let Some(s) = &store else {
                continue;
            };
            let Ok(Some(c)) = s.campaign_by_name("latina", "boil-water").await else {
                continue;
            };
            if s.progress(c.id).await.map(|p| p.attempts).unwrap_or(0) >= n {
                return;
            }
        }
    })
}

/// Expected numbers of the targeted zones (z1, z2), by type.
fn targeted(n: usize) -> (HashSet<String>, HashSet<String>) {
    let (mut fixed, mut mobile) = (HashSet::new(), HashSet::new());
    for i in 0..n {
        if i % 3 + 1 == 3 {
            continue;
        }
        if i % 2 == 0 {
            fixed.insert(format!("+390771{:06}", 200_000 + i));
        } else {
            mobile.insert(format!("+39347{:07}", 2_000_000 + i));
        }
    }
    (fixed, mobile)
}

#[test]
fn campaign_on_two_zones_over_two_carriers() {
    if !sipp_available() {
        return;
    }
    let _serial = serial();
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let fixed_co = Carrier::start(d, "fixed", "uas_answer.xml");
    let mobile_co = Carrier::start(d, "mobile", "uas_busy.xml");
    let (a_cps, a_ch, b_cps, b_ch) = (40, 30, 60, 20);
    // The INVITE rate is measured at the carriers' sockets (kernel arrival stamps).
    let (fixed_tap, mobile_tap) = (Tap::start(fixed_co.port), Tap::start(mobile_co.port));
    let config = write_config(d, fixed_tap.port, mobile_tap.port, a_cps, a_ch, b_cps, b_ch);
    let contacts = write_contacts(d, 2000);
    let prompt = write_prompt(d, 0.3);
    let mut child = run_args(d, &config, &contacts, &prompt).spawn().unwrap();
    let st = wait(&mut child, Duration::from_secs(240));
    let err = std::fs::read_to_string(d.join("dialer.err")).unwrap_or_default();
    assert!(
        st.success(),
        "dialer failed: {st}\n{}",
        &err[err.len().saturating_sub(3000)..]
    );

    let attempts = journal(d);
    let (fixed, mobile) = targeted(2000);
    // Exactly the contacts of zones z1 and z2 were called.
    let called: HashSet<String> = attempts.iter().map(|a| a.number.clone()).collect();
    let expected: HashSet<String> = fixed.union(&mobile).cloned().collect();
    assert_eq!(
        called, expected,
        "called set differs from the two zones' contacts"
    );
    // Every outcome journaled, one final record per attempt.
    assert!(attempts
        .iter()
        .all(|a| a.state.as_str() == "final" && a.outcome.is_some()));
    let mut per: BTreeMap<&str, Vec<&AttemptRecord>> = BTreeMap::new();
    for a in &attempts {
        per.entry(a.number.as_str()).or_default().push(a);
    }
    for (n, list) in &per {
        if fixed.contains(*n) {
            assert_eq!(list.len(), 1, "{n}: answered contacts are called once");
            assert_eq!(list[0].outcome.map(|o| o.as_str()), Some("answered"));
            assert_eq!(list[0].trunk, "landline-carrier");
            assert_eq!(
                list[0].played_permille,
                Some(1000),
                "{n}: whole message played"
            );
        } else {
            // Busy: retried by policy, 3 attempts in all, at least the interval apart.
            assert_eq!(list.len(), 3, "{n}: busy contacts get 3 attempts");
            assert!(list.iter().all(
                |a| a.outcome.map(|o| o.as_str()) == Some("busy") && a.sip_status == Some(486)
            ));
            for w in list.windows(2) {
                let gap = w[1].started_ms - w[0].ended_ms.unwrap();
                assert!(gap >= 1000, "{n}: retried after {gap} ms, policy says 1 s");
            }
        }
    }
    // The carriers' view: each saw exactly the journaled Call-IDs, and no limit exceeded.
    for (co, tap, trunk, cps, ch) in [
        (&fixed_co, &fixed_tap, "landline-carrier", a_cps, a_ch),
        (&mobile_co, &mobile_tap, "mobile-carrier", b_cps, b_ch),
    ] {
        let calls = co.calls();
        let journaled: HashSet<String> = attempts
            .iter()
            .filter(|a| a.trunk == trunk)
            .map(|a| a.call_id.clone())
            .collect();
        let seen: HashSet<String> = calls.keys().cloned().collect();
        assert_eq!(
            seen, journaled,
            "{trunk}: carrier's Call-IDs differ from the journal"
        );
        let arrivals = tap.invite_arrivals();
        assert_eq!(
            arrivals.len(),
            calls.len(),
            "{trunk}: tap and carrier disagree"
        );
        let peak = max_per_second(arrivals.values().copied().collect());
        assert!(
            peak <= cps as usize,
            "{trunk}: {peak} INVITEs in one second, limit {cps}"
        );
        let conc = max_concurrent(&calls);
        assert!(
            conc <= ch as usize,
            "{trunk}: {conc} concurrent calls, limit {ch}"
        );
        eprintln!(
            "{trunk}: {} calls, peak {peak}/s (limit {cps}), peak {conc} channels (limit {ch})",
            calls.len()
        );
    }
}

#[test]
fn crash_mid_campaign_and_restart() {
    if !sipp_available() {
        return;
    }
    let _serial = serial();
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let fixed_co = Carrier::start(d, "fixed", "uas_answer.xml");
    let mobile_co = Carrier::start(d, "mobile", "uas_busy.xml");
    let config = write_config(d, fixed_co.port, mobile_co.port, 20, 15, 30, 10);
    let contacts = write_contacts(d, 450);
    // A long message, so that the crash finds calls being played.
    let prompt = write_prompt(d, 1.5);
    let mut first = run_args(d, &config, &contacts, &prompt).spawn().unwrap();
    // Crash once some 40 attempts are journaled (calls are then ringing and playing).
    wait_for_attempts(d, &mut first, 40, Duration::from_secs(60));
    assert!(
        first.try_wait().unwrap().is_none(),
        "campaign ended before the crash"
    );
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    let mut second = run_args(d, &config, &contacts, &prompt).spawn().unwrap();
    let st = wait(&mut second, Duration::from_secs(180));
    let err = std::fs::read_to_string(d.join("dialer.err")).unwrap_or_default();
    assert!(
        st.success(),
        "restarted dialer failed: {st}\n{}",
        &err[err.len().saturating_sub(3000)..]
    );

    let attempts = journal(d);
    let recovered = attempts
        .iter()
        .filter(|a| a.sip_reason.as_deref() == Some("recovered after restart"))
        .count();
    assert!(
        recovered > 0,
        "the crash left no attempt open: not a mid-campaign crash"
    );
    // Every attempt has exactly one final record.
    assert!(attempts
        .iter()
        .all(|a| a.state.as_str() == "final" && a.outcome.is_some()));
    let ids: HashSet<i64> = attempts.iter().map(|a| a.id).collect();
    assert_eq!(ids.len(), attempts.len());
    // No answered contact called again.
    let mut per: HashMap<&str, Vec<&AttemptRecord>> = HashMap::new();
    for a in &attempts {
        per.entry(a.number.as_str()).or_default().push(a);
    }
    for (n, list) in &per {
        if let Some(pos) = list.iter().position(|a| {
            a.answered_ms.is_some() || a.outcome.map(|o| o.as_str()) == Some("answered")
        }) {
            assert_eq!(
                pos,
                list.len() - 1,
                "{n}: called again after an answer: {list:?}"
            );
        }
    }
    // Every targeted contact reached an end: answered landlines, busy mobiles.
    let (fixed, mobile) = targeted(450);
    for n in &fixed {
        let list = per
            .get(n.as_str())
            .unwrap_or_else(|| panic!("{n} never called"));
        assert_eq!(
            list.last().unwrap().outcome.map(|o| o.as_str()),
            Some("answered"),
            "{n}"
        );
    }
    for n in &mobile {
        assert!(per.contains_key(n.as_str()), "{n} never called");
    }
    // Every INVITE that reached a carrier is in the journal (journal before INVITE).
    let journaled: HashSet<String> = attempts.iter().map(|a| a.call_id.clone()).collect();
    for co in [&fixed_co, &mobile_co] {
        for cid in co.calls().keys() {
            assert!(
                journaled.contains(cid),
                "INVITE {cid} reached the carrier but is not journaled"
            );
        }
    }
    eprintln!(
        "{} attempts, {} recovered after the crash",
        attempts.len(),
        recovered
    );
}

#[test]
fn carrier_fault_fails_over_without_using_retries() {
    if !sipp_available() {
        return;
    }
    let _serial = serial();
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let flaky = Carrier::start(d, "flaky", "uas_503.xml"); // 503 with Retry-After: 30
    let backup = Carrier::start(d, "backup", "uas_answer.xml");
    let rtp = free_port() / 2 * 2;
    let (lo, hi) = if rtp > 60000 {
        (20000, 29998)
    } else {
        (rtp, rtp + 2000)
    };
    let config = d.join("dialer.toml");
    std::fs::write(
        &config,
        format!(
            r#"sip_bind = "127.0.0.1:0"
rtp_ports = "{lo}-{hi}"
[retry]
failed = {{ interval_s = 60, max_attempts = 1 }}
[[trunk]]
name = "flaky"
proxy = "127.0.0.1:{}"
max_channels = 10
cps = 10
priority = 0
[[trunk]]
name = "backup"
proxy = "127.0.0.1:{}"
max_channels = 20
cps = 30
priority = 1
"#,
            flaky.port, backup.port
        ),
    )
    .unwrap();
    let contacts = write_contacts(d, 90);
    let prompt = write_prompt(d, 0.2);
    let mut child = run_args(d, &config, &contacts, &prompt).spawn().unwrap();
    let st = wait(&mut child, Duration::from_secs(120));
    let err = std::fs::read_to_string(d.join("dialer.err")).unwrap_or_default();
    assert!(
        st.success(),
        "dialer failed: {st}\n{}",
        &err[err.len().saturating_sub(3000)..]
    );

    let attempts = journal(d);
    let (fixed, mobile) = targeted(90);
    let mut answered = HashSet::new();
    let mut on_flaky = 0;
    for a in &attempts {
        match a.trunk.as_str() {
            "flaky" => {
                // 503 from the carrier, or (status 0) moved off the trunk while it was
                // held, before its INVITE left.
                if a.sip_status == Some(503) {
                    on_flaky += 1;
                } else {
                    assert_eq!(a.sip_status, Some(0), "{a:?}");
                }
                assert_eq!(a.outcome.map(|o| o.as_str()), Some("failed"));
                assert!(
                    !a.counted,
                    "a carrier fault must not use up the citizen's retries"
                );
            }
            "backup" => {
                assert_eq!(a.outcome.map(|o| o.as_str()), Some("answered"));
                assert!(a.counted);
                assert!(
                    answered.insert(a.number.clone()),
                    "{} answered twice",
                    a.number
                );
            }
            t => panic!("unknown trunk {t}"),
        }
    }
    // Every contact reached, although the failed rule allows a single attempt.
    assert_eq!(answered.len(), fixed.len() + mobile.len());
    // Retry-After: 30 held the flaky trunk after its first 503s.
    assert!(
        (1..12).contains(&on_flaky),
        "{on_flaky} attempts on the flaky trunk"
    );
    assert_eq!(flaky.calls().len(), on_flaky);
}

#[test]
fn trunk_registers_and_is_pinged() {
    if !sipp_available() {
        return;
    }
    let _serial = serial();
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let carrier = Carrier::start(d, "carrier", "uas_register_options.xml");
    let rtp = free_port() / 2 * 2;
    let (lo, hi) = if rtp > 60000 {
        (20000, 29998)
    } else {
        (rtp, rtp + 2000)
    };
    let config = d.join("dialer.toml");
    std::fs::write(
        &config,
        format!(
            r#"sip_bind = "127.0.0.1:0"
rtp_ports = "{lo}-{hi}"
[[trunk]]
name = "registered"
proxy = "127.0.0.1:{}"
register = true
username = "390771000000"
password = "${{E2E_TRUNK_SECRET}}"
options_ping_interval_s = 1
max_channels = 5
cps = 5
"#,
            carrier.port
        ),
    )
    .unwrap();
    let contacts = write_contacts(d, 30);
    let prompt = write_prompt(d, 0.5);
    let mut cmd = run_args(d, &config, &contacts, &prompt);
    cmd.env("E2E_TRUNK_SECRET", "s3cret");
    let mut child = cmd.spawn().unwrap();
    let st = wait(&mut child, Duration::from_secs(120));
    let err = std::fs::read_to_string(d.join("dialer.err")).unwrap_or_default();
    assert!(
        st.success(),
        "dialer failed: {st}\n{}",
        &err[err.len().saturating_sub(3000)..]
    );
    let attempts = journal(d);
    assert_eq!(attempts.len(), 20);
    assert!(attempts
        .iter()
        .all(|a| a.outcome.map(|o| o.as_str()) == Some("answered")));
    let trace = std::fs::read_to_string(&carrier.trace).unwrap_or_default();
    let first_request = trace
        .lines()
        .find(|l| l.ends_with(" SIP/2.0") && !l.starts_with("SIP/2.0"))
        .unwrap_or_default()
        .to_string();
    assert!(
        first_request.starts_with("REGISTER "),
        "first request: {first_request}"
    );
    let options = trace.lines().filter(|l| l.starts_with("OPTIONS ")).count();
    assert!(
        options >= 2,
        "{options} OPTIONS pings in a campaign of several seconds"
    );
}

#[test]
fn failed_pings_mark_a_trunk_down_and_calls_go_elsewhere() {
    if !sipp_available() {
        return;
    }
    let _serial = serial();
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let sick = Carrier::start(d, "sick", "uas_options_down.xml");
    let backup = Carrier::start(d, "backup", "uas_answer.xml");
    let sick_tap = Tap::start(sick.port);
    let rtp = free_port() / 2 * 2;
    let (lo, hi) = if rtp > 60000 {
        (20000, 29998)
    } else {
        (rtp, rtp + 2000)
    };
    let config = d.join("dialer.toml");
    std::fs::write(
        &config,
        format!(
            r#"sip_bind = "127.0.0.1:0"
rtp_ports = "{lo}-{hi}"
[[trunk]]
name = "sick"
proxy = "127.0.0.1:{}"
options_ping_interval_s = 1
max_channels = 5
cps = 4
priority = 0
[[trunk]]
name = "backup"
proxy = "127.0.0.1:{}"
max_channels = 5
cps = 4
priority = 1
"#,
            sick_tap.port, backup.port
        ),
    )
    .unwrap();
    let contacts = write_contacts(d, 60); // 40 targeted: 10 s at 4 cps
    let prompt = write_prompt(d, 0.2);
    let mut child = run_args(d, &config, &contacts, &prompt).spawn().unwrap();
    let st = wait(&mut child, Duration::from_secs(120));
    let err = std::fs::read_to_string(d.join("dialer.err")).unwrap_or_default();
    assert!(
        st.success(),
        "dialer failed: {st}\n{}",
        &err[err.len().saturating_sub(3000)..]
    );
    let attempts = journal(d);
    assert!(attempts
        .iter()
        .all(|a| a.outcome.map(|o| o.as_str()) == Some("answered")));
    let on_sick = attempts.iter().filter(|a| a.trunk == "sick").count();
    let on_backup = attempts.len() - on_sick;
    // Three failed pings (one a second, from the start) mark it down: only the first
    // seconds' calls may have used it.
    assert!(on_sick <= 16, "{on_sick} calls on a trunk whose pings fail");
    assert!(on_backup >= 24, "{on_backup} calls on the backup");
    eprintln!(
        "{on_sick} calls on the sick trunk before it was marked down, {on_backup} on the backup"
    );
    let arrivals = sick_tap.invite_arrivals();
    let first = arrivals.values().copied().fold(f64::MAX, f64::min);
    let last = arrivals.values().copied().fold(0.0, f64::max);
    assert!(
        arrivals.is_empty() || last - first < 4.5,
        "INVITEs reached the sick trunk {:.1} s after the first",
        last - first
    );
}
