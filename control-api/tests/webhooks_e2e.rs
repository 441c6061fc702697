//! Webhooks end to end: `dialer serve` dials a SIPp carrier while a receiver written with
//! the `standardwebhooks` package (PyPI, the specification's own implementation; a venv at
//! /opt/standardwebhooks made by scripts/setup) verifies every signature.
//!
//! 1. The receiver is down when the campaign runs, then comes up: every event arrives
//!    (one call.completed per attempt, the campaign's states, its progress), each
//!    signature verifies and a tampered body does not; a manual redelivery arrives again
//!    with the same webhook-id.
//! 2. A receiver that reads requests and never answers does not slow the calls: the
//!    campaign completes with every call answered while its deliveries are stuck.
//!
//! Needs `sipp` and the venv (skipped locally without them, a failure when `CI` is set).

mod ops_common;

use ops_common::{free_tcp, free_udp, wav};
use std::collections::HashMap;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Client, Method};
use serde_json::{json, Value};

const ADMIN: &str = "webhooks-admin-token-0123456789";

/// One SIPp test of this file at a time (two shared cores).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn python() -> Option<PathBuf> {
    let p = std::env::var_os("DIALER_STANDARDWEBHOOKS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/opt/standardwebhooks/bin/python".into());
    let ok = Command::new(&p)
        .args(["-c", "import standardwebhooks"])
        .status()
        .is_ok_and(|s| s.success());
    let sipp = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .status()
        .is_ok();
    if ok && sipp {
        return Some(p);
    }
    let reason = "needs sipp and the standardwebhooks venv (scripts/setup)";
    assert!(std::env::var_os("CI").is_none(), "{reason}");
    eprintln!("SKIPPED: {reason}");
    None
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The SIPp carrier answering every call; its port.
fn sipp() -> (Proc, u16, UdpSocket) {
    let port = free_udp();
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let scen = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/sipp/uas_answer.xml");
    let child = Command::new("sipp")
        .arg("-sf")
        .arg(scen)
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1000000"])
        .args([
            "-key",
            "rtp_port",
            &rtp.local_addr().unwrap().port().to_string(),
        ])
        .args(["-mp", &free_udp().to_string(), "-nostdin"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sipp");
    std::thread::sleep(Duration::from_millis(300));
    (Proc(child), port, rtp)
}

/// The Python receiver on `port`, writing to `out`; returns once it listens.
fn receiver(py: &Path, port: u16, out: &Path, secret: &str, hang: bool) -> Proc {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/webhooks/receiver.py");
    let mut c = Command::new(py);
    c.arg(script)
        .arg(port.to_string())
        .arg(out)
        .arg(secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if hang {
        c.arg("hang");
    }
    let mut child = c.spawn().expect("spawn receiver");
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    Proc(child)
}

struct Api {
    http: Client,
    base: String,
}

impl Api {
    async fn ok(&self, m: Method, path: &str, token: &str, body: Option<Value>) -> Value {
        let mut r = self
            .http
            .request(m, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let s = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(s.is_success(), "{path}: {s}: {v}");
        v
    }

    /// Tenant, prompt, `n` contacts, a draft campaign; (token, campaign id).
    async fn setup(&self, n: usize) -> (String, i64) {
        let t = self
            .ok(
                Method::POST,
                "/v1/tenants",
                ADMIN,
                Some(json!({"id": "anzio", "name": "Anzio"})),
            )
            .await;
        let tok = t["token"].as_str().unwrap().to_string();
        let p: Value = self
            .http
            .post(format!("{}/v1/prompts?name=msg", self.base))
            .bearer_auth(&tok)
            .header("content-type", "audio/wav")
            .body(wav(0.3))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut csv = String::from("number,street,house_number,zone\n");
        for i in 0..n {
            csv.push_str(&format!("+39064{:07},Via Roma,{i},Lido\n", 3_000_000 + i));
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
        assert!(r.status().is_success());
        let c = self
            .ok(
                Method::POST,
                "/v1/campaigns",
                &tok,
                Some(
                    json!({"name": "hooks", "prompt_id": p["id"], "target": {"all": true},
                    "priority": "emergency", "window": {"always": true}}),
                ),
            )
            .await;
        (tok, c["id"].as_i64().unwrap())
    }

    async fn wait_completed(&self, tok: &str, id: i64) -> Value {
        let t0 = Instant::now();
        loop {
            let v = self
                .ok(Method::GET, &format!("/v1/campaigns/{id}"), tok, None)
                .await;
            if v["state"] == "completed" {
                return v;
            }
            assert!(t0.elapsed() < Duration::from_secs(90), "not completed: {v}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn deliveries(&self, tok: &str, hook: &str) -> Vec<Value> {
        let v = self
            .ok(
                Method::GET,
                &format!("/v1/webhooks/{hook}/deliveries?limit=500"),
                tok,
                None,
            )
            .await;
        v["items"].as_array().unwrap().clone()
    }
}

/// A server whose trunk is the SIPp at `sipp_port`; `private_targets`: whether webhooks
/// may be delivered to loopback (this test's receivers) at all.
async fn server(
    dir: &Path,
    sipp_port: u16,
    private_targets: bool,
) -> (Api, tokio::sync::watch::Sender<bool>) {
    let cfg = format!(
        "admin_token = \"{ADMIN}\"\ndrain_timeout_s = 5\n\
         [webhooks]\nallow_private_targets = {private_targets}\n\
         [http]\nlisten = \"127.0.0.1:0\"\n[sip]\nlisten = \"127.0.0.1:0\"\n\
         [store]\nurl = \"sqlite://{}\"\n\
         [[trunk]]\nname = \"sipp\"\nproxy = \"127.0.0.1:{sipp_port}\"\n\
         max_channels = 20\ncps = 20\nring_timeout_s = 10\n",
        dir.join("hooks.db").display()
    );
    let cfg = control_api::serve::ServeConfig::parse_with(&cfg, &|_| None).unwrap();
    let server = control_api::serve::Server::start(cfg).await.unwrap();
    let api = Api {
        http: Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        base: format!("http://{}", server.addr),
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(server.run(rx));
    (api, stop)
}

fn lines(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_then_up_gets_every_event_signed() {
    let Some(py) = python() else { return };
    let _g = SERIAL.lock().await;
    let (_sipp, sipp_port, _rtp) = sipp();
    let dir = tempfile::tempdir().unwrap();
    let (api, _stop) = server(dir.path(), sipp_port, true).await;
    let (tok, id) = api.setup(30).await;
    let port = free_tcp(); // nobody listens yet: connection refused
    let events = [
        "call.completed",
        "campaign.state_changed",
        "campaign.progress",
    ];
    let hook = api
        .ok(
            Method::POST,
            "/v1/webhooks",
            &tok,
            Some(json!({"url": format!("http://127.0.0.1:{port}/in"), "events": events})),
        )
        .await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let hook_id = hook["id"].as_str().unwrap().to_string();
    let shown = api
        .ok(Method::GET, &format!("/v1/webhooks/{hook_id}"), &tok, None)
        .await;
    assert!(shown.get("secret").is_none(), "secret shown once: {shown}");

    api.ok(
        Method::POST,
        &format!("/v1/campaigns/{id}/start"),
        &tok,
        None,
    )
    .await;
    let done = api.wait_completed(&tok, id).await;
    let answered = done["totals"]["answered"].as_u64().unwrap();
    assert_eq!(answered, 30, "{done}");
    // Down for a while: every delivery so far failed and waits for its retry.
    let ds = api.deliveries(&tok, &hook_id).await;
    assert!(!ds.is_empty());
    assert!(ds.iter().all(|d| d["state"] == "pending"), "{ds:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;

    let out = dir.path().join("received.jsonl");
    let _rx = receiver(&py, port, &out, &secret, false);
    let t0 = Instant::now();
    let delivered = loop {
        let ds = api.deliveries(&tok, &hook_id).await;
        if ds.iter().all(|d| d["state"] == "delivered") {
            break ds;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "not all delivered: {ds:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let got = lines(&out);
    assert!(got.iter().all(|l| l.get("error").is_none()), "{got:?}");
    assert!(got.iter().all(|l| l["tampered_accepted"] == false));
    let mut by_type: HashMap<String, Vec<Value>> = HashMap::new();
    let mut ids = std::collections::HashSet::new();
    for l in &got {
        ids.insert(l["id"].as_str().unwrap().to_string());
        let p = &l["payload"];
        by_type
            .entry(p["type"].as_str().unwrap().into())
            .or_default()
            .push(p["data"].clone());
    }
    for d in &delivered {
        assert!(
            ids.contains(d["event_id"].as_str().unwrap()),
            "{d} never arrived"
        );
    }
    let calls = &by_type["call.completed"];
    assert_eq!(
        calls.len() as u64,
        answered,
        "one call.completed per attempt"
    );
    assert!(calls
        .iter()
        .all(|c| c["campaign_id"] == id && c["outcome"] == "answered"));
    let states: Vec<_> = by_type["campaign.state_changed"]
        .iter()
        .map(|d| d["state"].clone())
        .collect();
    println!("states: {states:?}");
    assert!(
        states.contains(&json!("running")) && states.contains(&json!("completed")),
        "{states:?}"
    );
    let last = by_type["campaign.progress"]
        .iter()
        .map(|p| p["done"].as_u64().unwrap())
        .max();
    assert!(last.is_some());
    let retried = delivered
        .iter()
        .filter(|d| d["attempts"].as_i64() > Some(1))
        .count();
    println!(
        "down-then-up: {} events delivered ({} after retries), {:?} per type, \
         first all-delivered {:.1} s after the receiver came up",
        delivered.len(),
        retried,
        by_type
            .iter()
            .map(|(k, v)| (k.as_str(), v.len()))
            .collect::<Vec<_>>(),
        t0.elapsed().as_secs_f64()
    );
    assert!(retried > 0);

    // Manual redelivery: the same message again.
    let one = &delivered[0];
    let r = api
        .http
        .post(format!(
            "{}/v1/webhooks/{hook_id}/deliveries/{}/retry",
            api.base, one["id"]
        ))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
    let t0 = Instant::now();
    loop {
        let n = lines(&out)
            .iter()
            .filter(|l| l["id"] == one["event_id"])
            .count();
        if n >= 2 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "redelivery not received"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_slow_calls() {
    let Some(py) = python() else { return };
    let _g = SERIAL.lock().await;
    let (_sipp, sipp_port, _rtp) = sipp();
    let dir = tempfile::tempdir().unwrap();
    let (api, _stop) = server(dir.path(), sipp_port, true).await;
    let (tok, id) = api.setup(60).await;
    let port = free_tcp();
    let out = dir.path().join("hung.jsonl");
    let hook = api
        .ok(
            Method::POST,
            "/v1/webhooks",
            &tok,
            Some(json!({"url": format!("http://127.0.0.1:{port}/"), "events": ["call.completed", "campaign.progress"]})),
        )
        .await;
    let _rx = receiver(&py, port, &out, hook["secret"].as_str().unwrap(), true);
    let t0 = Instant::now();
    api.ok(
        Method::POST,
        &format!("/v1/campaigns/{id}/start"),
        &tok,
        None,
    )
    .await;
    let done = api.wait_completed(&tok, id).await;
    let took = t0.elapsed();
    assert_eq!(done["totals"]["answered"], 60, "{done}");
    let ds = api.deliveries(&tok, hook["id"].as_str().unwrap()).await;
    let delivered = ds.iter().filter(|d| d["state"] == "delivered").count();
    assert_eq!(delivered, 0, "the receiver never answers");
    assert!(
        !lines(&out).is_empty(),
        "requests reached the hanging receiver"
    );
    // The same campaign again with no webhook at all, for comparison (figures only: the
    // assertion is that the calls completed, not a wall-clock bound).
    let hook_id = hook["id"].as_str().unwrap();
    let r = api
        .http
        .delete(format!("{}/v1/webhooks/{hook_id}", api.base))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::NO_CONTENT);
    let first = api
        .ok(Method::GET, &format!("/v1/campaigns/{id}"), &tok, None)
        .await;
    let again = api
        .ok(
            Method::POST,
            "/v1/campaigns",
            &tok,
            Some(json!({"name": "baseline", "prompt_id": first["prompt_id"],
                "target": {"all": true}, "priority": "emergency", "window": {"always": true}})),
        )
        .await;
    let id2 = again["id"].as_i64().unwrap();
    let t1 = Instant::now();
    api.ok(
        Method::POST,
        &format!("/v1/campaigns/{id2}/start"),
        &tok,
        None,
    )
    .await;
    let done2 = api.wait_completed(&tok, id2).await;
    assert_eq!(done2["totals"]["answered"], 60, "{done2}");
    println!(
        "hanging receiver: 60 calls answered in {:.1} s at 20 CPS ({} deliveries stuck); \
         without any webhook: {:.1} s",
        took.as_secs_f64(),
        ds.len(),
        t1.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_addresses_get_no_webhooks_by_default() {
    let _g = SERIAL.lock().await;
    let (_sipp, sipp_port, _rtp) = sipp();
    let dir = tempfile::tempdir().unwrap();
    let (api, _stop) = server(dir.path(), sipp_port, false).await;
    let (tok, id) = api.setup(3).await;
    // A literal internal address is refused when it is registered...
    for url in [
        "http://127.0.0.1:9/in",
        "http://169.254.169.254/latest",
        "http://[::1]/",
    ] {
        let r = api
            .http
            .post(format!("{}/v1/webhooks", api.base))
            .bearer_auth(&tok)
            .json(&json!({"url": url, "events": ["call.completed"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 422, "{url}");
    }
    // ...and a name that resolves to one gets no connection when it is delivered to.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let hook = api
        .ok(
            Method::POST,
            "/v1/webhooks",
            &tok,
            Some(
                json!({"url": format!("http://localhost:{port}/in"), "events": ["call.completed"]}),
            ),
        )
        .await;
    let hook_id = hook["id"].as_str().unwrap().to_string();
    api.ok(
        Method::POST,
        &format!("/v1/campaigns/{id}/start"),
        &tok,
        None,
    )
    .await;
    api.wait_completed(&tok, id).await;
    let t0 = Instant::now();
    let ds = loop {
        let ds = api.deliveries(&tok, &hook_id).await;
        if ds.len() == 3 && ds.iter().all(|d| d["attempts"].as_i64() >= Some(1)) {
            break ds;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{ds:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for d in &ds {
        assert_eq!(d["state"], "pending", "retried later, never delivered: {d}");
        let why = d["last_error"].as_str().unwrap_or("");
        assert!(why.contains("webhooks.allow_private_targets"), "{d}");
    }
    assert_eq!(
        listener.accept().err().map(|e| e.kind()),
        Some(std::io::ErrorKind::WouldBlock),
        "the receiver on loopback was never connected to"
    );
}
