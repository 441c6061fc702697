//! `loadtest bench campaign`: the campaign path at speed. `dialer serve` (a child process,
//! SQLite store in a temporary directory) with one trunk at `--cps` and `--channels`
//! against a fresh `loadtest carrier` that answers every call at once; the bench drives the
//! HTTP API as an operator would (tenant, a `--message-secs` tone as the prompt, `--contacts`
//! synthetic residents, one campaign on all of them, start) and samples once a second the
//! campaign's progress and the server's CPU and RSS from /proc. The rate over time is the
//! carrier's count of INVITEs received per second. Writes `campaign.json` and
//! `campaign.png` under `--out`.
//!
//! Loopback only; every wait is bounded (`--max-secs` for the campaign, 60 s for start-up).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};

use crate::bench::{finish_carrier, start_carrier};
use crate::bench_host::{machine, proc_cpu_rss, tone_wav};

/// Arguments of `loadtest bench campaign`.
#[derive(Debug, Args)]
pub struct CampaignArgs {
    /// Contacts of the campaign (each answered once: one attempt each).
    #[arg(long, default_value_t = 200_000)]
    pub contacts: u64,
    /// The trunk's `cps`.
    #[arg(long, default_value_t = 2000.0)]
    pub cps: f64,
    /// The trunk's `max_channels`.
    #[arg(long, default_value_t = 20_000)]
    pub channels: u64,
    /// Length of the message (a tone), seconds.
    #[arg(long, default_value_t = 1.0)]
    pub message_secs: f64,
    /// Quick mode: 20,000 contacts instead of `--contacts`.
    #[arg(long)]
    pub quick: bool,
    /// Longest the campaign may take, seconds (then the run stops and says so).
    #[arg(long, default_value_t = 1800)]
    pub max_secs: u64,
    /// Seconds between two samples: each one GETs the campaign as a dashboard would.
    #[arg(long, default_value_t = 1.0)]
    pub poll_secs: f64,
    /// Where `<tag>.json` and `<tag>.png` go.
    #[arg(long, default_value = "loadtest/results")]
    pub out: PathBuf,
    /// File name (without extension) of the results.
    #[arg(long, default_value = "campaign")]
    pub tag: String,
    /// The dialer binary (default: next to this one).
    #[arg(long)]
    pub dialer: Option<PathBuf>,
}

/// One sample of the server and the campaign.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sample {
    /// Seconds since the campaign's start.
    pub t: f64,
    /// Contacts finished.
    pub done: u64,
    /// Server CPU seconds (user + system) since its start.
    pub cpu_s: f64,
    /// Server resident set, KiB.
    pub rss_kib: u64,
    /// How long the campaign's GET took (what a dashboard polling it waits, and what its
    /// counting costs the server as the campaign grows), ms.
    pub get_ms: f64,
}

/// The dialer process; killed on drop.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_tcp_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start_serve(
    dialer: &Path,
    work: &Path,
    a: &CampaignArgs,
    sip: &str,
    admin: &str,
) -> Result<(Serve, String)> {
    let http = format!("127.0.0.1:{}", free_tcp_port()?);
    let cfg = work.join("serve.toml");
    std::fs::write(
        &cfg,
        format!(
            "admin_token = \"{admin}\"\ndrain_timeout_s = 5\n\
             [http]\nlisten = \"{http}\"\nrate_limit_per_s = 1000\nrate_limit_burst = 1000\n\
             [sip]\nlisten = \"127.0.0.1:0\"\n\
             [media]\nrtp_port_min = 20000\nrtp_port_max = 59999\n\
             [store]\nurl = \"sqlite://{}\"\n\
             [[trunk]]\nname = \"carrier\"\nproxy = \"{sip}\"\n\
             max_channels = {}\ncps = {}\nring_timeout_s = 30\n",
            work.join("bench.db").display(),
            a.channels,
            a.cps
        ),
    )?;
    let child = Command::new(dialer)
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.join("serve.log"))?)
        .spawn()
        .context("spawning dialer serve")?;
    Ok((Serve(child), format!("http://{http}")))
}

/// The API as one bearer token.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(&self, r: reqwest::RequestBuilder) -> Result<Value> {
        let r = r.bearer_auth(&self.token).send().await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("API answered {status}: {v}");
        }
        Ok(v)
    }
    async fn post(&self, path: &str, ctype: &str, body: Vec<u8>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        self.call(self.http.post(url).header("content-type", ctype).body(body))
            .await
    }
    async fn get(&self, path: &str) -> Result<Value> {
        self.call(self.http.get(format!("{}{path}", self.base)))
            .await
    }
}

/// Waits for `/readyz`, creates the tenant; the API as that tenant.
async fn town(base: &str, admin: &str) -> Result<Api> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let t0 = Instant::now();
    while http.get(format!("{base}/readyz")).send().await.is_err() {
        if t0.elapsed() > Duration::from_secs(60) {
            bail!("dialer serve did not answer on {base} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let admin = Api {
        http: http.clone(),
        base: base.to_string(),
        token: admin.to_string(),
    };
    let body = json!({"id": "bench", "name": "Comune di Bench"}).to_string();
    let t = admin
        .post("/v1/tenants", "application/json", body.into_bytes())
        .await?;
    Ok(Api {
        http,
        base: base.to_string(),
        token: t["token"].as_str().context("tenant token")?.to_string(),
    })
}

/// Prompt, contacts and the campaign on all of them; its id.
async fn campaign(api: &Api, work: &Path, contacts: u64, secs: f64) -> Result<i64> {
    let wav = work.join("message.wav");
    tone_wav(&wav, secs)?;
    let p = api
        .post("/v1/prompts?name=bench", "audio/wav", std::fs::read(&wav)?)
        .await?;
    let prompt = p["id"].as_str().context("prompt id")?.to_string();
    let mut csv = String::from("number,street,house_number,zone\n");
    for i in 0..contacts {
        csv.push_str(&format!("+39347{:07},Via Roma,{},Centro\n", i, i % 200 + 1));
    }
    let imp = api
        .post("/v1/contacts/import", "text/csv", csv.into_bytes())
        .await?;
    eprintln!("bench campaign: imported {}", imp["imported"]);
    let body = json!({
        "name": "bench",
        "prompt_id": prompt,
        "target": {"all": true},
        "priority": "emergency",
        "window": {"always": true},
    });
    let c = api
        .post(
            "/v1/campaigns",
            "application/json",
            body.to_string().into_bytes(),
        )
        .await?;
    c["id"].as_i64().context("campaign id")
}

/// Samples the campaign every `every` until it completes or `limit` passes.
async fn watch(
    api: &Api,
    id: i64,
    pid: u32,
    (every, limit): (Duration, Duration),
) -> Result<(Vec<Sample>, bool)> {
    let t0 = Instant::now();
    let mut samples = vec![];
    let mut next = t0;
    loop {
        next += every;
        tokio::time::sleep_until(next.into()).await;
        let asked = Instant::now();
        let v = api.get(&format!("/v1/campaigns/{id}")).await?;
        let get_ms = asked.elapsed().as_secs_f64() * 1e3;
        let done: u64 = v["by_zone"]
            .as_object()
            .map(|z| z.values().map(|t| t["done"].as_u64().unwrap_or(0)).sum())
            .unwrap_or(0);
        let (cpu_s, rss_kib) = proc_cpu_rss(pid)?;
        let s = Sample {
            t: t0.elapsed().as_secs_f64(),
            done,
            cpu_s,
            rss_kib,
            get_ms,
        };
        eprintln!(
            "bench campaign: t={:.0}s done={} cpu={:.1}s rss={} MiB get={:.0} ms",
            s.t,
            s.done,
            s.cpu_s,
            s.rss_kib / 1024,
            s.get_ms
        );
        samples.push(s);
        if v["state"] == "completed" {
            return Ok((samples, true));
        }
        if t0.elapsed() > limit {
            return Ok((samples, false));
        }
    }
}

/// Runs the campaign scenario.
pub fn run(mut a: CampaignArgs) -> Result<()> {
    if a.quick {
        a.contacts = 20_000;
    }
    let me = std::env::current_exe()?;
    let dialer = crate::bench_host::dialer_binary(a.dialer.as_ref())?;
    std::fs::create_dir_all(&a.out)?;
    let work = std::env::temp_dir().join(format!("loadtest-campaign-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let load_before = machine()["loadavg"].clone();
    let carrier = start_carrier(&me, work.join("carrier.json"), a.contacts, a.max_secs + 300)?;
    let admin = format!(
        "bench-admin-{:016x}",
        std::process::id() as u64 * 0x9e37_79b9
    );
    let (serve, base) = start_serve(&dialer, &work, &a, &carrier.sip, &admin)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let pid = serve.0.id();
    let every = Duration::from_secs_f64(a.poll_secs.max(0.1));
    let (samples, completed, start_sample) = rt.block_on(async {
        let api = town(&base, &admin).await?;
        let id = campaign(&api, &work, a.contacts, a.message_secs).await?;
        let start_sample = {
            let (cpu_s, rss_kib) = proc_cpu_rss(pid)?;
            Sample {
                t: 0.0,
                done: 0,
                cpu_s,
                rss_kib,
                get_ms: 0.0,
            }
        };
        api.post(
            &format!("/v1/campaigns/{id}/start"),
            "application/json",
            b"{}".to_vec(),
        )
        .await?;
        let (s, done) = watch(&api, id, pid, (every, Duration::from_secs(a.max_secs))).await?;
        anyhow::Ok((s, done, start_sample))
    })?;
    drop(serve);
    // SAFETY: signalling our own child; it writes its report on SIGTERM.
    unsafe { libc::kill(carrier.child.id() as libc::pid_t, libc::SIGTERM) };
    let rep = finish_carrier(carrier)?;
    let per_s: Vec<u64> = rep["offered_per_second"]
        .as_array()
        .map(|v| v.iter().map(|x| x.as_u64().unwrap_or(0)).collect())
        .unwrap_or_default();
    let run = Run {
        samples,
        start: start_sample,
        per_s,
        completed,
        load_before,
    };
    write_results(&a, &run, &rep)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// What one campaign run measured.
struct Run {
    samples: Vec<Sample>,
    start: Sample,
    per_s: Vec<u64>,
    completed: bool,
    load_before: Value,
}

/// Writes `<tag>.json` and `<tag>.png` and prints the summary.
fn write_results(a: &CampaignArgs, run: &Run, rep: &Value) -> Result<()> {
    let summary = summarise(a, &run.samples, run.start, &run.per_s, run.completed);
    let result = json!({
        "scenario": "campaign",
        "machine": machine(),
        "loadavg_before": run.load_before,
        "args": {"contacts": a.contacts, "cps": a.cps, "channels": a.channels,
                 "message_secs": a.message_secs},
        "summary": summary,
        "invites_per_second": run.per_s,
        "samples": run.samples.iter().map(|s| json!({"t": s.t, "done": s.done,
            "cpu_s": s.cpu_s, "rss_kib": s.rss_kib, "get_ms": s.get_ms})).collect::<Vec<_>>(),
        "carrier": {"answered": rep["answered"], "offered": rep["offered"],
                    "peak_concurrent_answered": rep["peak_concurrent_answered"],
                    "rtp": {"lost": rep["rtp"]["lost"], "packets": rep["rtp"]["packets"]}},
    });
    let json_path = a.out.join(format!("{}.json", a.tag));
    std::fs::write(&json_path, serde_json::to_string_pretty(&result)? + "\n")?;
    eprintln!(
        "bench campaign: {}",
        serde_json::to_string_pretty(&summary)?
    );
    let png = a.out.join(format!("{}.png", a.tag));
    match crate::bench_chart::campaign(&png, a, &run.per_s, &run.samples) {
        Ok(()) => eprintln!(
            "bench campaign: wrote {} and {}",
            json_path.display(),
            png.display()
        ),
        Err(e) => eprintln!(
            "bench campaign: no chart ({e:#}); wrote {}",
            json_path.display()
        ),
    }
    Ok(())
}

/// The figures: rate while there was a backlog, CPU per attempt, RSS along the way.
fn summarise(
    a: &CampaignArgs,
    samples: &[Sample],
    start: Sample,
    per_s: &[u64],
    completed: bool,
) -> Value {
    let first = per_s.iter().position(|&n| n > 0);
    let last = per_s.iter().rposition(|&n| n > 0);
    // Whole seconds between the first and the last second with INVITEs: both ends are
    // partial seconds, and past the last INVITE there is no backlog.
    let (mut full, mut at95, mut sum) = (0u64, 0u64, 0u64);
    if let (Some(f), Some(l)) = (first, last) {
        for &n in per_s.iter().take(l).skip(f + 1) {
            full += 1;
            sum += n;
            at95 += u64::from(n as f64 >= 0.95 * a.cps);
        }
    }
    let invites: u64 = per_s.iter().sum();
    let end = samples.last().copied().unwrap_or(start);
    let rss_at = |frac: f64| {
        let goal = (frac * a.contacts as f64).ceil() as u64;
        samples.iter().find(|s| s.done >= goal).map(|s| s.rss_kib)
    };
    let (r10, r50, r100) = (rss_at(0.1), rss_at(0.5), rss_at(1.0));
    let spread = match (r10, r50, r100) {
        (Some(x), Some(y), Some(z)) => {
            let (lo, hi) = (x.min(y).min(z) as f64, x.max(y).max(z) as f64);
            Some((hi - lo) / lo)
        }
        _ => None,
    };
    json!({
        "completed": completed,
        "elapsed_s": end.t,
        "contacts_done": end.done,
        "invites": invites,
        "ceiling_cps": a.cps,
        "backlog_full_seconds": full,
        "rate_while_backlog": if full > 0 { sum as f64 / full as f64 } else { 0.0 },
        "share_of_ceiling": if full > 0 { sum as f64 / full as f64 / a.cps } else { 0.0 },
        "seconds_at_95pct": at95,
        "busiest_second": per_s.iter().max(),
        "cpu_s": end.cpu_s - start.cpu_s,
        "cpu_us_per_attempt": if invites > 0 { (end.cpu_s - start.cpu_s) / invites as f64 * 1e6 } else { 0.0 },
        "rss_kib_before_start": start.rss_kib,
        "rss_kib_at_10pct": r10,
        "rss_kib_at_50pct": r50,
        "rss_kib_at_100pct": r100,
        "rss_spread_10_50_100": spread,
        "rss_kib_peak": samples.iter().map(|s| s.rss_kib).max(),
        "get_ms_max": samples.iter().map(|s| s.get_ms).fold(0.0, f64::max),
    })
}
