//! `dialer demo`: the whole thing on one machine with no trunk. Starts the fake carrier
//! (`loadtest carrier`) on loopback, `dialer serve` in process, then drives the HTTP API
//! as an operator would: a tenant, the bundled sample message, a street list and 1,000
//! synthetic contacts over 3 zones, a campaign on 2 zones at a visible pace with a live
//! progress bar per zone, and a summary table (outcomes, rate, post-dial delay).
//!
//! The carrier runs as a child process: `loadtest` has no library target yet, so it
//! cannot run in process.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use control_api::serve::{ServeConfig, Server};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use reqwest::Client;
use serde_json::{json, Value};

/// The message the demo plays (espeak-ng, Italian, 8 kHz, 4.4 s).
const SAMPLE: &[u8] = include_bytes!("../assets/sample-message.wav");

/// Options of `dialer demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// HTTP address of the API (falls back to a free port when taken).
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: String,
    /// Synthetic contacts to create.
    #[arg(long, default_value_t = 1000)]
    contacts: u32,
    /// Calls per second of the demo trunk.
    #[arg(long, default_value_t = 25.0)]
    cps: f64,
    /// Channels of the demo trunk.
    #[arg(long, default_value_t = 120)]
    channels: u32,
    /// Keep serving after the campaign until Ctrl-C (to explore the API and /docs).
    #[arg(long)]
    linger: bool,
    /// The `loadtest` binary (default: beside this one).
    #[arg(long)]
    loadtest: Option<PathBuf>,
}

struct Carrier(Child);

impl Drop for Carrier {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_udp_port() -> Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start_carrier(a: &DemoArgs, port: u16, dir: &std::path::Path) -> Result<Carrier> {
    let bin = match &a.loadtest {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("loadtest"),
    };
    if !bin.exists() {
        bail!(
            "the fake carrier {} is missing: build it with `cargo build -p loadtest` \
             (or pass --loadtest PATH)",
            bin.display()
        );
    }
    let child = Command::new(&bin)
        .args([
            "carrier",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--media",
            "127.0.0.1:0",
            "--answer",
            "85",
            "--busy",
            "8",
            "--no-answer",
            "4",
            "--reject",
            "503:3",
            "--ring-ms",
            "300-1500",
            "--report",
        ])
        .arg(dir.join("carrier-report.json"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(Carrier(child))
}

/// Synthetic residents: 3 zones, 4 streets each, 60% landlines (Rome 06), 40% mobiles.
fn contacts_csv(n: u32) -> (String, String) {
    let zones = [
        (
            "Centro",
            ["Via Roma", "Corso Italia", "Piazza Duomo", "Via Garibaldi"],
        ),
        (
            "Lido",
            [
                "Lungomare Nord",
                "Via del Porto",
                "Via delle Vele",
                "Viale Marina",
            ],
        ),
        (
            "Colline",
            ["Via dei Pini", "Via Belvedere", "Strada Alta", "Via Ulivi"],
        ),
    ];
    let mut streets = String::from("street,zone\n");
    for (z, ss) in &zones {
        for s in ss {
            streets.push_str(&format!("{s},{z}\n"));
        }
    }
    let mut csv = String::from("number,street,house_number,zone\n");
    for i in 0..n {
        let (_, ss) = zones[(i % 3) as usize];
        let street = ss[((i / 3) % 4) as usize];
        let number = if i % 5 < 3 {
            format!("+39064{:07}", 1_000_000 + i)
        } else {
            format!("+39347{:07}", 1_000_000 + i)
        };
        // The zone comes from the street list.
        csv.push_str(&format!("{number},{street},{},\n", i % 120 + 1));
    }
    (streets, csv)
}

struct Api {
    http: Client,
    base: String,
    token: String,
}

impl Api {
    async fn send(&self, r: reqwest::RequestBuilder) -> Result<Value> {
        let r = r.bearer_auth(&self.token).send().await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("API answered {status}: {v}");
        }
        Ok(v)
    }
    async fn post_json(&self, path: &str, body: Value) -> Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }
    async fn post_body(&self, path: &str, ctype: &str, body: Vec<u8>) -> Result<Value> {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", ctype)
                .body(body),
        )
        .await
    }
    async fn get(&self, path: &str) -> Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }
}

/// Runs the demo.
pub async fn run(a: DemoArgs) -> Result<()> {
    let dir = tempfile_dir()?;
    let carrier_port = free_udp_port()?;
    let _carrier = start_carrier(&a, carrier_port, &dir)?;
    let admin = control_api::serve::state::new_token();
    let server = start_server(&a, carrier_port, &dir, &admin).await?;
    let addr: SocketAddr = server.addr;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let serving = tokio::spawn(server.run(rx));
    println!(
        "dialer demo: fake carrier on udp 127.0.0.1:{carrier_port}, data in {}",
        dir.display()
    );
    println!("  API      http://{addr}/v1   (admin token: {admin})");
    println!("  docs     http://{addr}/docs");
    println!("  metrics  http://{addr}/metrics");

    let api = demo_town(&format!("http://{addr}"), &admin).await?;
    let id = demo_campaign(&api, a.contacts).await?;
    let started = Instant::now();
    api.post_json(&format!("/v1/campaigns/{id}/start"), json!({}))
        .await?;
    let last = watch(&api, id).await?;
    let elapsed = started.elapsed().as_secs_f64();
    summary(&api, id, &last, elapsed).await?;

    if a.linger {
        println!("serving until Ctrl-C ...");
        let _ = tokio::signal::ctrl_c().await;
    }
    let _ = stop.send(true);
    let _ = serving.await;
    drop(_carrier);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `dialer serve` on a SQLite file in `dir`, one trunk to the fake carrier, the HTTP
/// address asked for (a free one if it is taken).
async fn start_server(a: &DemoArgs, carrier_port: u16, dir: &Path, admin: &str) -> Result<Server> {
    let http = if std::net::TcpListener::bind(&a.http).is_ok() {
        a.http.clone()
    } else {
        "127.0.0.1:0".to_string()
    };
    let text = format!(
        "admin_token = \"{admin}\"\ndrain_timeout_s = 10\n\
         [http]\nlisten = \"{http}\"\n[sip]\nlisten = \"127.0.0.1:0\"\n\
         [store]\nurl = \"sqlite://{}\"\n\
         [[trunk]]\nname = \"demo-carrier\"\nproxy = \"127.0.0.1:{carrier_port}\"\n\
         max_channels = {}\ncps = {}\nring_timeout_s = 5\n",
        dir.join("demo.db").display(),
        a.channels,
        a.cps
    );
    let cfg = ServeConfig::parse_with(&text, &|k| std::env::var(k).ok())?;
    Server::start(cfg).await.context("starting dialer serve")
}

/// The demo town (its tenant, as the admin) and the API as that tenant.
async fn demo_town(base: &str, admin: &str) -> Result<Api> {
    let client = Client::builder().timeout(Duration::from_secs(60)).build()?;
    let admin_api = Api {
        http: client.clone(),
        base: base.to_string(),
        token: admin.to_string(),
    };
    let t = admin_api
        .post_json(
            "/v1/tenants",
            json!({"id": "demo-town", "name": "Comune di Demo"}),
        )
        .await?;
    let api = Api {
        http: client,
        base: base.to_string(),
        token: t["token"].as_str().context("tenant token")?.to_string(),
    };
    println!("  tenant   demo-town (token: {})", api.token);
    Ok(api)
}

/// Uploads the message, the streets and `contacts` residents, and creates the campaign;
/// its id.
async fn demo_campaign(api: &Api, contacts: u32) -> Result<i64> {
    let p = api
        .post_body("/v1/prompts?name=allerta", "audio/wav", SAMPLE.to_vec())
        .await?;
    let prompt_id = p["id"].as_str().context("prompt id")?.to_string();
    let (streets, contacts) = contacts_csv(contacts);
    api.post_body("/v1/streets", "text/csv", streets.into_bytes())
        .await?;
    let imp = api
        .post_body("/v1/contacts/import", "text/csv", contacts.into_bytes())
        .await?;
    println!(
        "  message  {} ms; contacts imported: {}",
        p["duration_ms"], imp["imported"]
    );
    let c = api
        .post_json(
            "/v1/campaigns",
            json!({
                "name": "allerta meteo (demo)",
                "prompt_id": prompt_id,
                "target": {"zones": ["Centro", "Lido"]},
                "priority": "emergency",
                "ring_timeout_s": 5,
                "retry": {
                    "busy": {"interval_s": 5, "max_attempts": 2},
                    "no_answer": {"interval_s": 5, "max_attempts": 2},
                    "failed": {"interval_s": 5, "max_attempts": 2},
                },
                "window": {"always": true}
            }),
        )
        .await?;
    let id = c["id"].as_i64().context("campaign id")?;
    println!(
        "  campaign {id} on zones Centro and Lido: {} contacts, estimate {} s",
        c["estimate"]["contacts"], c["estimate"]["duration_s"]
    );
    Ok(id)
}

/// Shows the campaign's progress per zone until it ends; its last state.
async fn watch(api: &Api, id: i64) -> Result<Value> {
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>8} [{bar:40.cyan/blue}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let mut bars: BTreeMap<String, ProgressBar> = BTreeMap::new();
    let last = loop {
        let v = api.get(&format!("/v1/campaigns/{id}")).await?;
        if let Some(z) = v["by_zone"].as_object() {
            for (zone, p) in z {
                let bar = bars.entry(zone.clone()).or_insert_with(|| {
                    let b = multi.add(ProgressBar::new(p["targeted"].as_u64().unwrap_or(0)));
                    b.set_style(style.clone());
                    b.set_prefix(zone.clone());
                    b
                });
                bar.set_position(p["done"].as_u64().unwrap_or(0));
                bar.set_message(format!("answered {}", p["answered"]));
            }
        }
        let state = v["state"].as_str().unwrap_or("").to_string();
        if state == "completed" || state == "canceled" {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for b in bars.values() {
        b.finish();
    }
    Ok(last)
}

async fn summary(api: &Api, id: i64, c: &Value, elapsed: f64) -> Result<()> {
    let mut pdd = vec![];
    let mut attempts = 0u64;
    let mut cursor = String::new();
    loop {
        let v = api
            .get(&format!(
                "/v1/campaigns/{id}/calls?limit=500&cursor={cursor}"
            ))
            .await?;
        for call in v["items"].as_array().into_iter().flatten() {
            attempts += 1;
            if let Some(p) = call["pdd_ms"].as_i64() {
                pdd.push(p);
            }
        }
        match v["next_cursor"].as_str() {
            Some(n) => cursor = n.to_string(),
            None => break,
        }
    }
    pdd.sort_unstable();
    let pct = |q: f64| -> String {
        if pdd.is_empty() {
            return "-".into();
        }
        let i = ((pdd.len() as f64 - 1.0) * q).round() as usize;
        format!("{} ms", pdd[i])
    };
    println!();
    println!("campaign {id}: {}", c["state"].as_str().unwrap_or("?"));
    println!("  {:<16} {:>8}", "outcome", "contacts");
    if let Some(t) = c["totals"].as_object() {
        for (k, v) in t {
            println!("  {:<16} {:>8}", k, v);
        }
    }
    println!("  {:<16} {:>8}", "attempts", attempts);
    println!("  {:<16} {:>8.1} s", "elapsed", elapsed);
    println!(
        "  {:<16} {:>8.1} /s",
        "attempt rate",
        attempts as f64 / elapsed.max(0.001)
    );
    println!("  {:<16} {:>8}", "PDD p50", pct(0.5));
    println!("  {:<16} {:>8}", "PDD p95", pct(0.95));
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!(
        "dialer-demo-{}-{}",
        std::process::id(),
        control_api::serve::state::now_ms()
    ));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
