//! Shared pieces of the operations end-to-end tests: a SIPp carrier, `dialer serve` as a
//! child process, and the API calls that run a one-zone campaign.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Client, Method};
use serde_json::{json, Value};

pub const ADMIN: &str = "ops-admin-token-0123456789";

/// Whether `tool` runs: missing, the test is skipped locally and fails in CI.
pub fn have(tool: &str, probe: &str) -> bool {
    match Command::new(tool)
        .arg(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => true,
        Err(e) => {
            let why = format!("{tool} is not runnable ({e}); scripts/setup installs it");
            if std::env::var_os("CI").is_some() {
                panic!("{why} (CI is set, so this is a failure, not a skip)");
            }
            eprintln!("SKIPPED: {why}");
            false
        }
    }
}

/// A free loopback UDP port.
pub fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free loopback TCP port.
pub fn free_tcp() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A SIPp UAS from tests/sipp/, killed on drop.
pub struct Sipp {
    child: Option<Child>,
    pub port: u16,
    _rtp: UdpSocket,
}

impl Sipp {
    /// Starts the UAS on fresh ports, again (three tries at most) when it exits or does not
    /// hold its port: a port found free may be taken by another test before SIPp binds it,
    /// and a carrier that never listened fails every call of the test that uses it.
    pub fn start(scenario: &str) -> Sipp {
        for _ in 0..3 {
            if let Some(s) = Sipp::try_start(scenario) {
                return s;
            }
        }
        panic!("sipp ({scenario}) did not start: three tries on fresh ports");
    }

    fn try_start(scenario: &str) -> Option<Sipp> {
        let port = free_udp();
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let scen = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/sipp")
            .join(scenario);
        let mut child = Command::new("sipp")
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
        // Listening: still running, and the port is its (we cannot bind it ourselves).
        let exited = !matches!(child.try_wait(), Ok(None));
        if exited || UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        Some(Sipp {
            child: Some(child),
            port,
            _rtp: rtp,
        })
    }

    /// The carrier dies: nothing answers on its port any more.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A child process killed on drop.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `dialer serve` configuration: loopback listeners, a database in `dir`, one trunk
/// `carrier` pinged every second, and `extra` TOML appended (e.g. a `[hep]` table).
pub fn config(dir: &Path, sip_port: u16, carrier: u16, cps: u32, extra: &str) -> PathBuf {
    let path = dir.join("dialer.toml");
    std::fs::write(
        &path,
        format!(
            "admin_token = \"{ADMIN}\"\ndrain_timeout_s = 5\n\
             [http]\nlisten = \"127.0.0.1:0\"\n[sip]\nlisten = \"127.0.0.1:{sip_port}\"\n\
             [store]\nurl = \"sqlite://{}\"\n{extra}\n\
             [[trunk]]\nname = \"carrier\"\nproxy = \"127.0.0.1:{carrier}\"\n\
             max_channels = 40\ncps = {cps}\nring_timeout_s = 10\n\
             options_ping_interval_s = {}\n",
            dir.join("ops.db").display(),
            if extra.contains("[hep]") { 0 } else { 1 },
        ),
    )
    .unwrap();
    path
}

/// Starts `dialer serve --config`; returns the child and the API base URL (from stderr).
pub fn spawn_serve(config: &Path, env: &[(&str, &str)]) -> (Guard, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dialer"))
        .args(["serve", "--config"])
        .arg(config)
        .envs(env.iter().copied())
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
            } else if std::env::var_os("OPS_TEST_VERBOSE").is_some() {
                eprintln!("dialer: {line}");
            }
        }
    });
    let guard = Guard(child);
    let base = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("dialer serve printed its address");
    (guard, base)
}

/// `seconds` of a 440 Hz tone as an 8 kHz 16-bit WAV file: the prompt the tests upload.
pub fn wav(seconds: f32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cur = std::io::Cursor::new(vec![]);
    {
        let mut w = hound::WavWriter::new(&mut cur, spec).unwrap();
        for i in 0..(8000.0 * seconds) as usize {
            let s = ((i as f32 / 8000.0) * 440.0 * std::f32::consts::TAU).sin() * 9000.0;
            w.write_sample(s as i16).unwrap();
        }
        w.finalize().unwrap();
    }
    cur.into_inner()
}

/// The dialer's HTTP API as a tenant uses it.
pub struct Api {
    pub http: Client,
    pub base: String,
}

impl Api {
    pub fn new(base: String) -> Api {
        Api {
            http: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base,
        }
    }

    fn req(&self, m: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
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

    /// Tenant, prompt, `n` contacts in one zone, a campaign over them with no retries,
    /// started; returns (tenant token, campaign id).
    pub async fn start_campaign(&self, n: usize, prompt_s: f32) -> (String, i64) {
        let t = self
            .ok(self
                .req(Method::POST, "/v1/tenants", ADMIN)
                .json(&json!({"id": "nettuno", "name": "Nettuno"})))
            .await;
        let tok = t["token"].as_str().unwrap().to_string();
        let p = self
            .ok(self
                .req(Method::POST, "/v1/prompts?name=msg", &tok)
                .header("content-type", "audio/wav")
                .body(wav(prompt_s)))
            .await;
        let mut csv = String::from("number,street,house_number,zone\n");
        for i in 0..n {
            csv.push_str(&format!("+39069{:07},Via Roma,{i},Centro\n", 3_000_000 + i));
        }
        let imp = self
            .ok(self
                .req(Method::POST, "/v1/contacts/import", &tok)
                .header("content-type", "text/csv")
                .body(csv))
            .await;
        assert_eq!(imp["imported"], n as u64, "{imp}");
        let once = json!({"interval_s": 1, "max_attempts": 1});
        let c = self
            .ok(self.req(Method::POST, "/v1/campaigns", &tok).json(&json!({
                "name": "ops",
                "prompt_id": p["id"],
                "target": {"zones": ["Centro"]},
                "priority": "emergency",
                "window": {"always": true},
                "retry": {"busy": once, "no_answer": once, "failed": once, "rejected": once}
            })))
            .await;
        let id = c["id"].as_i64().unwrap();
        self.ok(self.req(Method::POST, &format!("/v1/campaigns/{id}/start"), &tok))
            .await;
        (tok, id)
    }

    pub async fn wait_completed(&self, tok: &str, id: i64, limit: Duration) -> Value {
        let t0 = Instant::now();
        loop {
            let v = self
                .ok(self.req(Method::GET, &format!("/v1/campaigns/{id}"), tok))
                .await;
            if v["state"] == "completed" {
                return v;
            }
            assert!(
                t0.elapsed() < limit,
                "campaign not completed in {limit:?}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every attempt of the campaign, from the journal.
    pub async fn calls(&self, tok: &str, id: i64) -> Vec<Value> {
        let mut out = vec![];
        let mut cursor = String::new();
        loop {
            let v = self
                .ok(self.req(
                    Method::GET,
                    &format!("/v1/campaigns/{id}/calls?limit=500&cursor={cursor}"),
                    tok,
                ))
                .await;
            out.extend(v["items"].as_array().unwrap().iter().cloned());
            match v["next_cursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => return out,
            }
        }
    }
}
