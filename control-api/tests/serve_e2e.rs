//! `dialer serve` end to end against a SIPp carrier (`tests/sipp/uas_answer.xml`):
//! a one-zone campaign through the API completes and `/metrics` counters match the
//! journal; SIGTERM during a campaign exits 0 within the drain timeout with no attempt
//! left open, and a restart resumes the campaign to completion.
//!
//! Needs `sipp` (skipped locally without it, a failure when `CI` is set).

mod ops_common;

use ops_common::{free_udp, have, wav};
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const ADMIN: &str = "e2e-admin-token-0123456789";

/// One SIPp-heavy test at a time (two shared cores).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Sipp {
    child: Child,
    port: u16,
    _rtp: UdpSocket,
}

impl Sipp {
    fn start() -> Sipp {
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
        Sipp {
            child,
            port,
            _rtp: rtp,
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, sipp_port: u16, cps: u32) -> String {
    format!(
        "admin_token = \"{ADMIN}\"\ndrain_timeout_s = 10\n\
         [http]\nlisten = \"127.0.0.1:0\"\n[sip]\nlisten = \"127.0.0.1:0\"\n\
         [store]\nurl = \"sqlite://{}\"\n\
         [[trunk]]\nname = \"sipp\"\nproxy = \"127.0.0.1:{sipp_port}\"\n\
         max_channels = 20\ncps = {cps}\nring_timeout_s = 10\n",
        dir.join("e2e.db").display()
    )
}

struct Api {
    http: Client,
    base: String,
}

impl Api {
    async fn call(&self, m: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .request(m, format!("{}{path}", self.base))
            .bearer_auth(token)
    }

    async fn ok(&self, r: reqwest::RequestBuilder) -> Value {
        let r = r.send().await.unwrap();
        let s = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(s.is_success(), "{s}: {v}");
        v
    }

    /// Tenant, prompt, contacts in two zones, a campaign on zone "Lido"; returns
    /// (tenant token, campaign id, targeted).
    async fn setup(&self, n: usize, prompt_s: f32) -> (String, i64, usize) {
        use reqwest::Method;
        let t = self
            .ok(self
                .call(Method::POST, "/v1/tenants", ADMIN)
                .await
                .json(&json!({"id": "anzio", "name": "Anzio"})))
            .await;
        let tok = t["token"].as_str().unwrap().to_string();
        let p = self
            .ok(self
                .call(Method::POST, "/v1/prompts?name=msg", &tok)
                .await
                .header("content-type", "audio/wav")
                .body(wav(prompt_s)))
            .await;
        let mut csv = String::from("number,street,house_number,zone\n");
        for i in 0..n {
            let zone = if i % 2 == 0 { "Lido" } else { "Centro" };
            csv.push_str(&format!(
                "+39064{:07},Via {zone},{i},{zone}\n",
                2_000_000 + i
            ));
        }
        let imp = self
            .ok(self
                .call(Method::POST, "/v1/contacts/import", &tok)
                .await
                .header("content-type", "text/csv")
                .body(csv))
            .await;
        assert_eq!(imp["imported"], n as u64);
        let c = self
            .ok(self
                .call(Method::POST, "/v1/campaigns", &tok)
                .await
                .json(&json!({
                    "name": "e2e",
                    "prompt_id": p["id"],
                    "target": {"zones": ["Lido"]},
                    "priority": "emergency",
                    "window": {"always": true},
                    // Should a drain cut a call, it is retried soon after the restart.
                    "retry": {
                        "busy": {"interval_s": 1, "max_attempts": 3},
                        "no_answer": {"interval_s": 1, "max_attempts": 3},
                        "failed": {"interval_s": 1, "max_attempts": 3},
                        "rejected": {"interval_s": 1, "max_attempts": 3}
                    }
                })))
            .await;
        let id = c["id"].as_i64().unwrap();
        let targeted = c["estimate"]["contacts"].as_u64().unwrap() as usize;
        assert_eq!(targeted, n.div_ceil(2));
        (tok, id, targeted)
    }

    async fn campaign(&self, tok: &str, id: i64) -> Value {
        self.ok(self
            .call(reqwest::Method::GET, &format!("/v1/campaigns/{id}"), tok)
            .await)
            .await
    }

    async fn calls(&self, tok: &str, id: i64) -> Vec<Value> {
        let mut out = vec![];
        let mut cursor = String::new();
        loop {
            let v = self
                .ok(self
                    .call(
                        reqwest::Method::GET,
                        &format!("/v1/campaigns/{id}/calls?limit=500&cursor={cursor}"),
                        tok,
                    )
                    .await)
                .await;
            out.extend(v["items"].as_array().unwrap().iter().cloned());
            match v["next_cursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => return out,
            }
        }
    }

    async fn wait_state(&self, tok: &str, id: i64, state: &str, limit: Duration) -> Value {
        let t0 = Instant::now();
        loop {
            let v = self.campaign(tok, id).await;
            if v["state"] == state {
                return v;
            }
            assert!(
                t0.elapsed() < limit,
                "campaign not {state} in {limit:?}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Sum of a counter's series in Prometheus text.
fn counter_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_zone_campaign_completes_and_metrics_match_the_journal() {
    if !have("sipp", "-v") {
        return;
    }
    let _g = SERIAL.lock().await;
    let sipp = Sipp::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        control_api::serve::ServeConfig::parse_with(&config(dir.path(), sipp.port, 20), &|_| None)
            .unwrap();
    let server = control_api::serve::Server::start(cfg).await.unwrap();
    let api = Api {
        http: Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        base: format!("http://{}", server.addr),
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(server.run(rx));
    let (tok, id, targeted) = api.setup(40, 0.5).await;
    api.ok(api
        .call(
            reqwest::Method::POST,
            &format!("/v1/campaigns/{id}/start"),
            &tok,
        )
        .await)
        .await;
    let done = api
        .wait_state(&tok, id, "completed", Duration::from_secs(90))
        .await;
    assert_eq!(done["totals"]["answered"], targeted as u64, "{done}");
    assert_eq!(done["by_zone"]["Lido"]["answered"], targeted as u64);
    let calls = api.calls(&tok, id).await;
    assert_eq!(calls.len(), targeted);
    assert!(calls
        .iter()
        .all(|c| c["state"] == "final" && c["outcome"] == "answered"));

    let text = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        counter_sum(&text, "dialer_call_attempts_total"),
        calls.len() as f64,
        "{text}"
    );
    assert_eq!(
        counter_sum(&text, "dialer_calls_completed_total"),
        calls.len() as f64
    );
    assert!(
        text.contains("dialer_post_dial_delay_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains("dialer_trunk_cps_limit{trunk=\"sipp\"} 20"),
        "{text}"
    );
    let csv = api
        .call(
            reqwest::Method::GET,
            &format!("/v1/campaigns/{id}/calls.csv"),
            &tok,
        )
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    assert_eq!(csv.text().await.unwrap().lines().count(), targeted + 1);
    stop.send(true).unwrap();
    assert!(task.await.unwrap().unwrap());
}

fn dialer_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dialer"))
}

/// Starts `dialer serve --config`, returns the child and the API base URL (from stderr).
fn spawn_serve(config: &Path) -> (Child, String) {
    let mut child = Command::new(dialer_bin())
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent {
                if let Some(rest) = line.strip_prefix("dialer: API http://") {
                    let addr = rest.split('/').next().unwrap().to_string();
                    let _ = tx.send(format!("http://{addr}"));
                    sent = true;
                }
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("dialer serve printed its address");
    (child, base)
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("dialer serve did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_a_restart_resumes_the_campaign() {
    if !have("sipp", "-v") {
        return;
    }
    let _g = SERIAL.lock().await;
    let sipp = Sipp::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("dialer.toml");
    // 2 calls a second: the campaign is still running when SIGTERM comes.
    std::fs::write(&cfg_path, config(dir.path(), sipp.port, 2)).unwrap();
    let (mut child, base) = spawn_serve(&cfg_path);
    let api = Api {
        http: Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        base,
    };
    let (tok, id, targeted) = api.setup(60, 0.5).await;
    api.ok(api
        .call(
            reqwest::Method::POST,
            &format!("/v1/campaigns/{id}/start"),
            &tok,
        )
        .await)
        .await;
    let t0 = Instant::now();
    while api.calls(&tok, id).await.len() < 4 {
        assert!(t0.elapsed() < Duration::from_secs(30), "no attempts");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = wait_exit(&mut child, Duration::from_secs(10 + 5));
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    // The journal is complete: no attempt left open, every attempt with its outcome.
    {
        use engine::store::{SqliteOptions, SqliteStore, Store};
        let store = SqliteStore::open(&dir.path().join("e2e.db"), SqliteOptions::default())
            .await
            .unwrap();
        let all = store.attempts(id, 0, u32::MAX).await.unwrap();
        let open = all
            .iter()
            .filter(|a| a.state.as_str() != "final" || a.outcome.is_none())
            .count();
        assert_eq!(open, 0, "attempts left open by the drain");
        assert!(all.len() >= 4);
        let state = store.campaign(id).await.unwrap().unwrap().state.as_str();
        assert_eq!(
            state, "running",
            "the drain leaves the campaign running for the restart"
        );
    }

    // Restart: the campaign is still running and ends with every contact called once.
    let (mut child, base) = spawn_serve(&cfg_path);
    let api = Api { base, ..api };
    let before = api.calls(&tok, id).await;
    assert!(
        before.len() < targeted,
        "SIGTERM came too late to test a resume"
    );
    let done = api
        .wait_state(&tok, id, "completed", Duration::from_secs(90))
        .await;
    let calls = api.calls(&tok, id).await;
    assert_eq!(
        done["totals"]["answered"], targeted as u64,
        "{done} {calls:?}"
    );
    assert!(calls.iter().all(|c| c["state"] == "final"));
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(15)).code(),
        Some(0)
    );
}

#[test]
fn a_bad_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "[media]\nrtp_port_min = 70000\n").unwrap();
    let out = Command::new(dialer_bin())
        .args(["serve", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("media.rtp_port_min"), "{err}");
    let out = Command::new(dialer_bin())
        .args(["serve"])
        .env("DIALER_HTTP_LISTEN", "not-an-address")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http.listen"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once_and_the_restart_recovers() {
    if !have("sipp", "-v") {
        return;
    }
    let _g = SERIAL.lock().await;
    let sipp = Sipp::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("dialer.toml");
    std::fs::write(&cfg_path, config(dir.path(), sipp.port, 5)).unwrap();
    let (mut child, base) = spawn_serve(&cfg_path);
    let api = Api {
        http: Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        base,
    };
    // 5-second messages: calls are live when the signals come.
    let (tok, id, _) = api.setup(20, 5.0).await;
    api.ok(api
        .call(
            reqwest::Method::POST,
            &format!("/v1/campaigns/{id}/start"),
            &tok,
        )
        .await)
        .await;
    let t0 = Instant::now();
    while api.calls(&tok, id).await.len() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(30), "no attempts");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let term = || {
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
    };
    assert!(term().success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(term().success());
    let t1 = Instant::now();
    let status = wait_exit(&mut child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(t1.elapsed() < Duration::from_secs(3));

    // The restart closes what was left open; nothing acknowledged is lost. The restarted
    // server resumes the campaign at once, so attempts it starts may already be `dialing`:
    // only those started before the restart must be closed.
    let restart_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (mut child, base) = spawn_serve(&cfg_path);
    let api = Api { base, ..api };
    let calls = api.calls(&tok, id).await;
    let before: Vec<_> = calls
        .iter()
        .filter(|c| c["started_ms"].as_i64().unwrap_or(i64::MAX) < restart_ms)
        .collect();
    assert!(before.len() >= 2, "{calls:?}");
    assert!(before.iter().all(|c| c["state"] == "final"), "{calls:?}");
    // The campaign was put back to running and goes on.
    let v = api.campaign(&tok, id).await;
    assert_eq!(v["state"], "running", "{v}");
    let t0 = Instant::now();
    while api.calls(&tok, id).await.len() <= calls.len() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no new attempt after restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(term_child(&child));
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(20)).code(),
        Some(0)
    );
}

fn term_child(child: &Child) -> bool {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success()
}
