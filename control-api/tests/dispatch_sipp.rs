//! Issue 16's acceptance against SIPp, through `dialer serve`'s API:
//! - preemption: a normal campaign fills a 20-channel trunk; an emergency campaign starts;
//!   within 1 s normal calls end and emergency calls take their channels, the carrier never
//!   sees more than 20 calls, and the preempted contacts are called again later, each
//!   counting one attempt;
//! - prefix pacing: 2,000 numbers, half under +39077 limited to 5 CPS through
//!   `/v1/prefix-limits`: never more than 5 INVITEs to it in any 1 s window at the carrier
//!   (kernel arrival stamps on a relay in front of SIPp), while the other half uses the rest
//!   of the trunk.
//!
//! Needs `sipp` (skipped locally without it, a failure when `CI` is set).

mod ops_common;

use e2e::{max_per_second, recv_stamped, stamped_socket};

use ops_common::{free_udp, have, wav};
use std::collections::HashMap;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use control_api::serve::{ServeConfig, Server};
use engine::store::Store;
use reqwest::{Client, Method};
use serde_json::{json, Value};
use tokio::sync::watch;

const ADMIN: &str = "dispatch-admin-token-0123456789";

/// One SIPp-heavy test at a time (two shared cores).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A SIPp UAS tracing every message. Killed on drop.
struct Sipp {
    child: Child,
    port: u16,
    trace: PathBuf,
    _rtp: UdpSocket,
}

impl Sipp {
    fn start(dir: &Path, scen: &str) -> Sipp {
        let port = free_udp();
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let scen = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/sipp/{scen}"));
        let trace = dir.join("carrier.msg");
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(scen)
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1000000"])
            .args(["-key", "rtp_port"])
            .arg(rtp.local_addr().unwrap().port().to_string())
            .args(["-mp", &free_udp().to_string(), "-nostdin", "-trace_msg"])
            .arg("-message_file")
            .arg(&trace)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sipp");
        std::thread::sleep(Duration::from_millis(300));
        Sipp {
            child,
            port,
            trace,
            _rtp: rtp,
        }
    }

    /// Per Call-ID: the INVITE's Request-URI, when it arrived and when the call was over
    /// for the carrier (BYE or CANCEL received, or a final non-2xx sent), seconds.
    fn calls(&self) -> HashMap<String, (String, f64, Option<f64>)> {
        let text =
            String::from_utf8_lossy(&std::fs::read(&self.trace).unwrap_or_default()).into_owned();
        let mut out: HashMap<String, (String, f64, Option<f64>)> = HashMap::new();
        for block in text
            .split("----------------------------------------------- ")
            .skip(1)
        {
            let mut lines = block.lines();
            let Some(ts) = lines.next().and_then(parse_ts) else {
                continue;
            };
            let received = lines.next().is_some_and(|d| d.contains("received"));
            let body: Vec<&str> = lines.skip_while(|l| l.trim().is_empty()).collect();
            let Some(first) = body.first() else { continue };
            let Some(cid) = body
                .iter()
                .find_map(|l| l.strip_prefix("Call-ID:").or_else(|| l.strip_prefix("i:")))
                .map(|v| v.trim().to_string())
            else {
                continue;
            };
            let end = if received {
                first.starts_with("BYE ") || first.starts_with("CANCEL ")
            } else {
                first.starts_with("SIP/2.0 ") && first[8..11].parse::<u16>().unwrap_or(0) >= 300
            };
            if received && first.starts_with("INVITE ") {
                let uri = first.split_whitespace().nth(1).unwrap_or("").to_string();
                out.entry(cid).or_insert((uri, ts, None));
            } else if end {
                if let Some(e) = out.get_mut(&cid) {
                    e.2.get_or_insert(ts);
                }
            }
        }
        out
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_ts(s: &str) -> Option<f64> {
    let time = s.split_whitespace().nth(1)?;
    let mut it = time.split(':');
    let h: f64 = it.next()?.parse().ok()?;
    let m: f64 = it.next()?.parse().ok()?;
    let sec: f64 = it.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + sec)
}

/// Most calls open at once at the carrier.
fn max_concurrent(calls: &HashMap<String, (String, f64, Option<f64>)>) -> usize {
    let mut ev: Vec<(f64, i32)> = vec![];
    for (_, s, e) in calls.values() {
        ev.push((*s, 1));
        ev.push((e.unwrap_or(f64::MAX), -1));
    }
    ev.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (mut cur, mut best) = (0i32, 0i32);
    for (_, d) in ev {
        cur += d;
        best = best.max(cur);
    }
    best as usize
}

/// A UDP relay in front of the carrier that stamps each INVITE with the kernel's arrival
/// time (`SO_TIMESTAMPNS`): the carrier's view of the rate, free of SIPp's own scheduling.
struct Tap {
    port: u16,
    invites: Arc<Mutex<Vec<(f64, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Tap {
    fn start(carrier: u16) -> Tap {
        let sock = stamped_socket();
        let port = sock.local_addr().unwrap().port();
        let invites = Arc::new(Mutex::new(vec![]));
        let stop = Arc::new(AtomicBool::new(false));
        let (inv, st) = (invites.clone(), stop.clone());
        let carrier_addr: std::net::SocketAddr = ([127, 0, 0, 1], carrier).into();
        let thread = std::thread::spawn(move || {
            let mut dialer = None;
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
                    let uri = text.split_whitespace().nth(1).unwrap_or("").to_string();
                    let cid = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Call-ID:").or_else(|| l.strip_prefix("i:")))
                        .unwrap_or("")
                        .trim()
                        .to_string();
                    inv.lock().unwrap().push((ts, format!("{cid} {uri}")));
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

    /// First arrival of each INVITE (retransmissions not counted) whose Request-URI
    /// contains `part`.
    fn arrivals(&self, part: &str) -> Vec<f64> {
        let mut first: HashMap<String, f64> = HashMap::new();
        for (ts, key) in self.invites.lock().unwrap().iter() {
            if key.contains(part) {
                first.entry(key.clone()).or_insert(*ts);
            }
        }
        first.into_values().collect()
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

/// `dialer serve` in process with one trunk to `proxy_port`.
struct Serve {
    base: String,
    http: Client,
    store: engine::store::AnyStore,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<bool>,
    _dir: tempfile::TempDir,
}

impl Serve {
    async fn start(proxy_port: u16, cps: u32, channels: u32) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "admin_token = \"{ADMIN}\"\ndrain_timeout_s = 5\n\
             [http]\nlisten = \"127.0.0.1:0\"\n[sip]\nlisten = \"127.0.0.1:0\"\n\
             [store]\nurl = \"sqlite://{}\"\n\
             [[trunk]]\nname = \"sipp\"\nproxy = \"127.0.0.1:{proxy_port}\"\n\
             max_channels = {channels}\ncps = {cps}\nring_timeout_s = 10\n",
            dir.path().join("d.db").display()
        );
        let cfg = ServeConfig::parse_with(&text, &|_| None).unwrap();
        let server = Server::start(cfg).await.unwrap();
        let base = format!("http://{}", server.addr);
        let store = server.state.store.clone();
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(async move { server.run(rx).await.unwrap() });
        let http = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Serve {
            base,
            http,
            store,
            stop,
            task,
            _dir: dir,
        }
    }

    async fn shutdown(self) {
        self.stop.send(true).unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.task).await;
    }

    async fn ok(&self, m: Method, path: &str, tok: &str, body: Option<Value>) -> Value {
        let mut r = self
            .http
            .request(m, format!("{}{path}", self.base))
            .bearer_auth(tok);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let s = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(s.is_success(), "{path}: {s}: {v}");
        v
    }

    /// A tenant with its prompt and these numbers in zone "Lido"; returns (token, prompt).
    async fn tenant(&self, id: &str, prompt_s: f32, numbers: &[String]) -> (String, Value) {
        let t = self
            .ok(
                Method::POST,
                "/v1/tenants",
                ADMIN,
                Some(json!({"id": id, "name": id})),
            )
            .await;
        let tok = t["token"].as_str().unwrap().to_string();
        let r = self
            .http
            .post(format!("{}/v1/prompts?name=msg", self.base))
            .bearer_auth(&tok)
            .header("content-type", "audio/wav")
            .body(wav(prompt_s))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let p: Value = r.json().await.unwrap();
        let mut csv = String::from("number,street,house_number,zone\n");
        for (i, n) in numbers.iter().enumerate() {
            csv.push_str(&format!("{n},Via Lido,{i},Lido\n"));
        }
        let r = self
            .http
            .post(format!("{}/v1/contacts/import", self.base))
            .bearer_auth(&tok)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["imported"], numbers.len() as u64, "{v}");
        (tok, p["id"].clone())
    }

    /// Creates and starts a campaign on zone "Lido"; returns its id.
    async fn campaign(&self, tok: &str, prompt: &Value, priority: &str, busy_max: u32) -> i64 {
        let rule = json!({"interval_s": 1, "max_attempts": busy_max});
        let c = self
            .ok(
                Method::POST,
                "/v1/campaigns",
                tok,
                Some(json!({
                    "name": priority,
                    "prompt_id": prompt,
                    "target": {"zones": ["Lido"]},
                    "priority": priority,
                    "window": {"always": true},
                    "retry": {"busy": rule, "no_answer": rule, "failed": rule, "rejected": rule}
                })),
            )
            .await;
        let id = c["id"].as_i64().unwrap();
        self.ok(
            Method::POST,
            &format!("/v1/campaigns/{id}/start"),
            tok,
            None,
        )
        .await;
        id
    }

    async fn state(&self, tok: &str, id: i64) -> String {
        let v = self
            .ok(Method::GET, &format!("/v1/campaigns/{id}"), tok, None)
            .await;
        v["state"].as_str().unwrap_or("").to_string()
    }

    async fn wait_completed(&self, tok: &str, id: i64, limit: Duration) {
        let t0 = Instant::now();
        while self.state(tok, id).await != "completed" {
            assert!(
                t0.elapsed() < limit,
                "campaign {id} not completed in {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn calls(&self, tok: &str, id: i64) -> Vec<Value> {
        let mut out = vec![];
        let mut cursor = String::new();
        loop {
            let path = format!("/v1/campaigns/{id}/calls?limit=500&cursor={cursor}");
            let v = self.ok(Method::GET, &path, tok, None).await;
            out.extend(v["items"].as_array().unwrap().iter().cloned());
            match v["next_cursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => return out,
            }
        }
    }
}

fn now_s() -> f64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    // SIPp's trace stamps local time of day; the machine runs in UTC.
    (d.as_secs() % 86_400) as f64 + f64::from(d.subsec_nanos()) * 1e-9
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emergency_preempts_a_full_trunk_within_a_second() {
    if !have("sipp", "-v") {
        return;
    }
    let _g = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let sipp = Sipp::start(dir.path(), "uas_answer.xml");
    let serve = Serve::start(sipp.port, 10, 20).await;
    let school: Vec<String> = (0..40).map(|i| format!("+3906411{i:05}")).collect();
    let town: Vec<String> = (0..20).map(|i| format!("+3906422{i:05}")).collect();
    let (stok, sprompt) = serve.tenant("school", 8.0, &school).await;
    let (ttok, tprompt) = serve.tenant("town", 1.0, &town).await;
    let normal = serve.campaign(&stok, &sprompt, "normal", 3).await;
    // The normal campaign fills the 20 channels (10 CPS: about 2 s).
    let t0 = Instant::now();
    loop {
        let open = sipp.calls().values().filter(|c| c.2.is_none()).count();
        if open >= 20 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "trunk not full: {open}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = now_s();
    let emergency = serve.campaign(&ttok, &tprompt, "emergency", 3).await;
    serve
        .wait_completed(&ttok, emergency, Duration::from_secs(60))
        .await;
    serve
        .wait_completed(&stok, normal, Duration::from_secs(120))
        .await;
    let calls = sipp.calls();
    // Within 1 s of the start: normal calls ended (BYE) and emergency INVITEs arrived.
    let cut = calls
        .values()
        .filter(|c| c.0.contains("+3906411"))
        .filter(|c| c.2.is_some_and(|e| e >= started && e < started + 1.0))
        .count();
    let first_em = calls
        .values()
        .filter(|c| c.0.contains("+3906422"))
        .map(|c| c.1)
        .fold(f64::MAX, f64::min);
    eprintln!(
        "preempted in the first second: {cut}; first emergency INVITE after {:.3} s; \
         most calls at once at the carrier: {}",
        first_em - started,
        max_concurrent(&calls)
    );
    assert!(cut >= 10, "{cut} normal calls ended in the first second");
    assert!(first_em - started < 1.0, "{}", first_em - started);
    assert!(max_concurrent(&calls) <= 20, "{}", max_concurrent(&calls));
    // Every emergency contact answered; the preempted attempts are canceled with the
    // preemption's reason; every school contact was answered in the end, and each counts
    // exactly one attempt.
    let em = serve.calls(&ttok, emergency).await;
    assert_eq!(em.len(), 20);
    assert!(em.iter().all(|c| c["outcome"] == "answered"), "{em:?}");
    let sc = serve.calls(&stok, normal).await;
    let preempted: Vec<&Value> = sc.iter().filter(|c| c["outcome"] == "canceled").collect();
    assert!(preempted.len() >= 10, "{}", preempted.len());
    assert!(preempted
        .iter()
        .all(|c| c["sip_reason"] == "preempted by an emergency campaign"));
    let answered = sc.iter().filter(|c| c["outcome"] == "answered").count();
    assert_eq!(answered, 40);
    let journal = serve.store.attempts(normal, 0, 10_000).await.unwrap();
    for n in &school {
        let counted = journal
            .iter()
            .filter(|a| &a.number == n && a.counted)
            .count();
        assert_eq!(counted, 1, "{n}");
    }
    assert!(journal
        .iter()
        .all(|a| a.outcome != Some(engine::model::Outcome::Canceled) || !a.counted));
    let m = serve
        .http
        .get(format!("{}/metrics", serve.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("dialer_preemptions_total"), "metric missing");
    serve.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_limited_to_5_cps_never_exceeds_it_at_the_carrier() {
    if !have("sipp", "-v") {
        return;
    }
    let _g = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let sipp = Sipp::start(dir.path(), "uas_busy.xml");
    let tap = Tap::start(sipp.port);
    let serve = Serve::start(tap.port, 50, 100).await;
    // 2,000 numbers, the limited half first (bunched at the head of the store's order).
    let mut numbers: Vec<String> = (0..1000).map(|i| format!("+39077120{i:04}")).collect();
    numbers.extend((0..1000).map(|i| format!("+3906400{i:05}")));
    let (tok, prompt) = serve.tenant("town", 1.0, &numbers).await;
    serve
        .ok(
            Method::POST,
            "/v1/prefix-limits",
            ADMIN,
            Some(json!({"prefix": "+39077", "cps": 5, "max_channels": 50})),
        )
        .await;
    let id = serve.campaign(&tok, &prompt, "normal", 1).await;
    // The other 1,000 take about 1000 / 45 = 22 s; then 5 s more of the limited prefix.
    let t0 = Instant::now();
    while tap.arrivals("+3906400").len() < 1000 {
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "{} of the other half in 90 s",
            tap.arrivals("+3906400").len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    serve
        .ok(
            Method::POST,
            &format!("/v1/campaigns/{id}/cancel"),
            &tok,
            None,
        )
        .await;
    let slow = tap.arrivals("+39077");
    let rest = tap.arrivals("+3906400");
    let span = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::MAX, f64::min);
        let hi = v.iter().copied().fold(f64::MIN, f64::max);
        hi - lo
    };
    let (peak_slow, peak_all) = (max_per_second(slow.clone()), {
        let mut all = slow.clone();
        all.extend(&rest);
        max_per_second(all)
    });
    eprintln!(
        "+39077: {} INVITEs over {:.1} s, busiest second {peak_slow}; other half: 1000 in \
         {:.1} s; busiest second of the trunk {peak_all}",
        slow.len(),
        span(&slow),
        span(&rest)
    );
    assert!(
        peak_slow <= 5,
        "{peak_slow} INVITEs to +39077 in one second"
    );
    assert!(
        peak_all <= 50,
        "{peak_all} INVITEs in one second on a 50 CPS trunk"
    );
    // The limited prefix ran at its rate all along, and the rest used the trunk's other
    // 45 CPS (1,000 in under 30 s).
    assert!(slow.len() as f64 >= 4.0 * span(&rest), "{}", slow.len());
    assert!(span(&rest) < 30.0, "{:.1} s", span(&rest));
    serve.shutdown().await;
}
