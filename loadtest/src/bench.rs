//! `loadtest bench`: the side-by-side benchmark. For each size N it runs, one after the other,
//! `dialer call --calls N --concurrency N` and SIPp (`rtp_stream` UAC) against a fresh
//! `loadtest carrier`, with calls of the same length, and records for each sender: calls the
//! carrier held at once, failed calls, sender CPU (user + system, from `wait4`, i.e. the
//! kernel's accounting also shown in /proc) per call-minute and per packet, peak RSS, the
//! dialer's own send lag, and the carrier's view (arrival lag, RFC 3550 jitter, loss). It also
//! runs `loadtest floor` at the same packet rate, through a UDP socket (the floor the pump is
//! held to) and through a raw socket from N source ports as the pump sends (what the socket
//! kind costs). Raw results go to `--out` as JSON, and a Markdown table is printed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};

/// Arguments of `loadtest bench`: without a scenario, the media benchmark.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BenchArgs {
    /// Another scenario than the media benchmark.
    #[command(subcommand)]
    pub scenario: Option<Scenario>,
    /// Concurrent calls to try, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,2000,5000,8000")]
    pub sizes: Vec<u64>,
    /// Length of every call in seconds (the prompt must be at least this long).
    #[arg(long, default_value_t = 30)]
    pub secs: u64,
    /// Seconds over which the N calls are placed (cps = N / ramp).
    #[arg(long, default_value_t = 20)]
    pub ramp_secs: u64,
    /// The prompt WAV (the dialer imports it; SIPp gets a PCMU copy made with sox).
    #[arg(long, required = true)]
    pub prompt: Option<PathBuf>,
    /// Where raw results go.
    #[arg(long, default_value = "loadtest/results")]
    pub out: PathBuf,
    /// The dialer binary (default: next to this one).
    #[arg(long)]
    pub dialer: Option<PathBuf>,
    /// The SIPp binary.
    #[arg(long, default_value = "sipp")]
    pub sipp: String,
    /// Senders to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "dialer,sipp")]
    pub senders: Vec<String>,
    /// The dialer's `--send-mode`.
    #[arg(long, default_value = "raw")]
    pub send_mode: String,
    /// Seconds of the bare sendmmsg loop per size (0: skip).
    #[arg(long, default_value_t = 10)]
    pub floor_secs: u64,
    /// Run SIPp under `chrt -f 10` (SCHED_FIFO), as the dialer's pacing threads and the
    /// carrier's receive thread run, so a shared machine treats both senders alike.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub sipp_rt: bool,
}

/// CPU seconds, peak RSS (KiB) and exit code of a child, reaped with `wait4`.
/// The scenarios beside the media benchmark.
#[derive(Debug, clap::Subcommand)]
pub enum Scenario {
    /// `dialer serve` running one campaign against the carrier: rate over time against the
    /// trunk's ceiling, CPU per attempt, RSS.
    Campaign(Box<crate::bench_campaign::CampaignArgs>),
    /// `dialer call` and SIPp's UAC at the same rates against the same SIPp UAS.
    Signalling(crate::bench_signalling::SignallingArgs),
}

pub(crate) fn wait_usage(child: &Child, limit: Duration) -> Result<(f64, u64, i32)> {
    let pid = child.id() as libc::pid_t;
    let t0 = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: wait4 on our own child with pointers to locals.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                -1
            };
            return Ok((s(ru.ru_utime) + s(ru.ru_stime), ru.ru_maxrss as u64, code));
        }
        if r < 0 {
            bail!("wait4: {}", std::io::Error::last_os_error());
        }
        if t0.elapsed() > limit {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn free_udp_port() -> Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) struct Carrier {
    pub child: Child,
    pub sip: String,
    pub report: PathBuf,
}

/// Starts `loadtest carrier` on loopback, answering `calls` calls for at most `limit_s`
/// seconds and writing its report to `report`; returns once it printed its ready line.
pub(crate) fn start_carrier(
    exe: &Path,
    report: PathBuf,
    calls: u64,
    limit_s: u64,
) -> Result<Carrier> {
    let mut child = Command::new(exe)
        .args([
            "carrier",
            "--listen",
            "127.0.0.1:0",
            "--media",
            "127.0.0.1:0",
        ])
        .args(["--exit-after-calls", &calls.to_string()])
        .args(["--duration", &limit_s.to_string()])
        .arg("--report")
        .arg(&report)
        .stdout(Stdio::piped())
        .spawn()
        .context("spawning the carrier")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("carrier stdout")?).read_line(&mut line)?;
    let v: Value = serde_json::from_str(&line).context("carrier ready line")?;
    let sip = v["ready"]["sip"].as_str().context("ready.sip")?.to_string();
    Ok(Carrier { child, sip, report })
}

pub(crate) fn finish_carrier(mut c: Carrier) -> Result<Value> {
    let t0 = Instant::now();
    loop {
        if c.child.try_wait()?.is_some() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            // SAFETY: signalling our own child; it writes its report on SIGTERM.
            unsafe { libc::kill(c.child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = c.child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&c.report)
        .with_context(|| format!("reading {}", c.report.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// Runs the benchmark.
pub fn run(a: BenchArgs) -> Result<()> {
    match a.scenario {
        Some(Scenario::Campaign(c)) => return crate::bench_campaign::run(*c),
        Some(Scenario::Signalling(s)) => return crate::bench_signalling::run(s),
        None => {}
    }
    let prompt = a.prompt.clone().context("--prompt is required")?;
    let me = std::env::current_exe()?;
    let dialer = crate::bench_host::dialer_binary(a.dialer.as_ref())?;
    std::fs::create_dir_all(&a.out)?;
    let work = std::env::temp_dir().join(format!("loadtest-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let bench = Bench {
        scenario: sipp_scenario(&a, &prompt, &work)?,
        prompt,
        limit: a.ramp_secs + a.secs + 120,
        a: &a,
        me,
        dialer,
        work,
    };
    let mut runs = Vec::new();
    for &n in &a.sizes {
        let cps = (n as f64 / a.ramp_secs.max(1) as f64).max(1.0);
        for sender in &a.senders {
            runs.push(bench.one(sender, n, cps)?);
        }
        if a.floor_secs > 0 {
            runs.push(bench.floor(n, false)?);
            runs.push(bench.floor(n, true)?);
        }
    }
    write_results(&a, runs)?;
    let _ = std::fs::remove_dir_all(&bench.work);
    Ok(())
}

/// SIPp's UAC scenario for the prompt: a PCMU copy of it (made with sox) streamed for the
/// calls' length; returns the scenario file's path.
fn sipp_scenario(a: &BenchArgs, prompt: &Path, work: &Path) -> Result<PathBuf> {
    let wav_u = work.join("prompt-pcmu.wav");
    let st = Command::new("sox")
        .arg(prompt)
        .args(["-e", "mu-law", "-r", "8000", "-c", "1"])
        .arg(&wav_u)
        .status()
        .context("running sox (needed for SIPp's PCMU WAV)")?;
    if !st.success() {
        bail!("sox failed");
    }
    let scenario = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sipp/uac_rtp_stream.xml"),
    )?
    .replace("@WAV@", &wav_u.display().to_string())
    .replace("@HOLD_MS@", &(a.secs * 1000).to_string());
    let scen = work.join("uac_rtp_stream.xml");
    std::fs::write(&scen, scenario)?;
    Ok(scen)
}

/// One benchmark's settings and paths, shared by its runs.
struct Bench<'a> {
    a: &'a BenchArgs,
    /// This binary (the carrier and the floor loop).
    me: PathBuf,
    dialer: PathBuf,
    prompt: PathBuf,
    /// Scratch directory (dialer output, SIPp's files).
    work: PathBuf,
    /// SIPp's UAC scenario.
    scenario: PathBuf,
    /// Seconds any process of a run may take.
    limit: u64,
}

/// What a sender's run cost: CPU seconds, peak RSS (KiB), exit code, and its own summary
/// (the dialer's; null for SIPp).
type Usage = (f64, u64, i32, Value);

impl Bench<'_> {
    /// `n` calls from `sender` at `cps` against a fresh carrier: the run's record.
    fn one(&self, sender: &str, n: u64, cps: f64) -> Result<Value> {
        let a = self.a;
        let tag = format!("{sender}-{n}");
        eprintln!("bench: {tag} ({cps:.0} cps, {}s calls)", a.secs);
        let carrier = start_carrier(
            &self.me,
            a.out.join(format!("carrier-{tag}.json")),
            n,
            self.limit,
        )?;
        let t0 = Instant::now();
        let usage = match sender {
            "dialer" => self.dialer_calls(&tag, &carrier.sip, n, cps)?,
            "sipp" => self.sipp_calls(&carrier.sip, n, cps)?,
            other => bail!("unknown sender {other}"),
        };
        let wall = t0.elapsed().as_secs_f64();
        let rep = finish_carrier(carrier)?;
        let run = run_record(a, sender, n, cps, wall, usage, &rep);
        eprintln!("bench: {run}");
        Ok(run)
    }

    /// `dialer call` with every call at once (concurrency `n`).
    fn dialer_calls(&self, tag: &str, sip: &str, n: u64, cps: f64) -> Result<Usage> {
        let stdout_path = self.work.join(format!("{tag}.jsonl"));
        let child = Command::new(&self.dialer)
            .args(["call", "--trunk", &format!("sip:{sip}"), "--to", "100"])
            .arg("--prompt")
            .arg(&self.prompt)
            .args(["--calls", &n.to_string(), "--concurrency", &n.to_string()])
            .args(["--cps", &format!("{cps}"), "--rtp-ports", "20000-39999"])
            .args(["--send-mode", &self.a.send_mode])
            .stdout(std::fs::File::create(&stdout_path)?)
            .spawn()
            .context("spawning the dialer")?;
        let (cpu, rss, code) = wait_usage(&child, Duration::from_secs(self.limit))?;
        let text = std::fs::read_to_string(&stdout_path)?;
        let summary = text
            .lines()
            .last()
            .and_then(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| v["summary"].clone())
            .unwrap_or(Value::Null);
        Ok((cpu, rss, code, summary))
    }

    /// SIPp's UAC (under `chrt -f 10` when asked) with the same calls.
    fn sipp_calls(&self, sip: &str, n: u64, cps: f64) -> Result<Usage> {
        let a = self.a;
        let limit = self.limit;
        let port = free_udp_port()?;
        let mut cmd = if a.sipp_rt {
            let mut c = Command::new("chrt");
            c.args(["-f", "10"]).arg(&a.sipp);
            c
        } else {
            Command::new(&a.sipp)
        };
        let child = cmd
            .arg(sip)
            .arg("-sf")
            .arg(&self.scenario)
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &port.to_string(), "-mp", "40000"])
            .args(["-m", &n.to_string(), "-l", &n.to_string()])
            .args(["-r", &format!("{}", cps.round() as u64), "-rp", "1000"])
            .args(["-timeout", &format!("{limit}s"), "-nostdin"])
            .current_dir(&self.work)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning sipp")?;
        let (cpu, rss, code) = wait_usage(&child, Duration::from_secs(limit))?;
        Ok((cpu, rss, code, Value::Null))
    }

    /// `loadtest floor` at the packet rate of `n` calls (20 ms packets); with `raw`, through a
    /// raw socket from `n` source ports.
    fn floor(&self, n: u64, raw: bool) -> Result<Value> {
        let rate = n * 1000 / 20;
        let mut cmd = Command::new(&self.me);
        cmd.args(["floor", "--rate", &rate.to_string()])
            .args(["--secs", &self.a.floor_secs.to_string()]);
        if raw {
            cmd.args([
                "--raw",
                "--ports",
                &n.min(u64::from(u16::MAX / 4)).to_string(),
            ]);
        }
        let out = cmd.output()?;
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        Ok(json!({"sender": "floor", "calls": n, "floor": v["floor"]}))
    }
}

/// One run's record: the sender's cost and the carrier's view (`rep`) of what it sent.
fn run_record(
    a: &BenchArgs,
    sender: &str,
    n: u64,
    cps: f64,
    wall: f64,
    (cpu, rss, code, sender_out): Usage,
    rep: &Value,
) -> Value {
    let call_min = a.secs as f64 / 60.0;
    let packets = rep["rtp"]["packets"].as_u64().unwrap_or(0);
    let answered = rep["answered"].as_u64().unwrap_or(0);
    let caller_bye = rep["ended_by"]["caller_bye"].as_u64().unwrap_or(0);
    let media = &sender_out["media"];
    json!({
        "sender": sender,
        "calls": n,
        "cps": cps,
        "call_secs": a.secs,
        "exit_code": code,
        "wall_s": wall,
        "held": rep["peak_concurrent_answered"],
        "answered": answered,
        "failed": n.saturating_sub(caller_bye),
        "cpu_s": cpu,
        "cpu_s_per_call_min": cpu / (n as f64 * call_min),
        "cpu_us_per_packet": if packets > 0 { cpu / packets as f64 * 1e6 } else { 0.0 },
        "max_rss_kib": rss,
        "rss_kib_per_call": rss as f64 / n as f64,
        "send_lag_p50_ms": media["send_lag_p50_ms"],
        "send_lag_p99_ms": media["send_lag_p99_ms"],
        "send_lag_max_ms": media["send_lag_max_ms"],
        "pump_cpu_s": media["loop_cpu_seconds"],
        "pump_us_per_packet": media["loop_cpu_seconds"].as_f64().map(|c| {
            c / media["rtp_packets_sent"].as_f64().unwrap_or(1.0).max(1.0) * 1e6
        }),
        "packets_received": packets,
        "lost": rep["rtp"]["lost"],
        "calls_with_loss": rep["rtp"]["calls_with_loss"],
        "arrival_lag_p50_ms": rep["rtp"]["arrival_lag_ms_p50"],
        "arrival_lag_p99_ms": rep["rtp"]["arrival_lag_ms_p99"],
        "arrival_lag_max_ms": rep["rtp"]["arrival_lag_ms_max"],
        "jitter_p99_ms": rep["rtp"]["jitter_ms_p99"],
        "carrier_cpu_s": rep["process"]["cpu_seconds"],
        "dialer_summary": sender_out,
    })
}

/// Writes `bench.json` (the machine, the arguments, every run) under `--out` and prints
/// the Markdown table.
fn write_results(a: &BenchArgs, runs: Vec<Value>) -> Result<()> {
    let uname = Command::new("uname")
        .arg("-r")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let result = json!({
        "machine": {
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "kernel": uname,
        },
        "args": {"sizes": a.sizes, "secs": a.secs, "ramp_secs": a.ramp_secs, "send_mode": a.send_mode, "sipp_rt": a.sipp_rt},
        "runs": runs,
    });
    let path = a.out.join("bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&result)? + "\n")?;
    println!("{}", table(&result));
    eprintln!("raw results: {}", path.display());
    Ok(())
}

/// The Markdown results table.
pub fn table(result: &Value) -> String {
    let f = |v: &Value, d: usize| v.as_f64().map_or("–".into(), |x| format!("{x:.d$}"));
    let mut s = String::from(
        "| sender | calls | held | failed | CPU s / call-min | CPU µs / pkt | pump µs / pkt | RSS MiB | send lag p50 / p99 / max ms | arrival lag p99 ms | jitter p99 ms | lost |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in result["runs"].as_array().into_iter().flatten() {
        if r["sender"] == "floor" {
            let fl = &r["floor"];
            let kind = if fl["raw"] == true {
                format!("bare sendmmsg, raw socket, {} ports", fl["ports"])
            } else {
                "bare sendmmsg".to_string()
            };
            s.push_str(&format!(
                "| {kind} | {} pps | | | | {} | | | | | | {} |\n",
                fl["rate"],
                f(&fl["sender_us_per_packet"], 2),
                fl["sent"]
                    .as_u64()
                    .unwrap_or(0)
                    .saturating_sub(fl["received"].as_u64().unwrap_or(0)),
            ));
            continue;
        }
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} | {} | {} | {} |\n",
            r["sender"].as_str().unwrap_or(""),
            r["calls"],
            r["held"],
            r["failed"],
            f(&r["cpu_s_per_call_min"], 3),
            f(&r["cpu_us_per_packet"], 2),
            f(&r["pump_us_per_packet"], 2),
            r["max_rss_kib"]
                .as_f64()
                .map_or("–".into(), |k| format!("{:.0}", k / 1024.0)),
            f(&r["send_lag_p50_ms"], 2),
            f(&r["send_lag_p99_ms"], 2),
            f(&r["send_lag_max_ms"], 2),
            f(&r["arrival_lag_p99_ms"], 2),
            f(&r["jitter_p99_ms"], 2),
            r["lost"],
        ));
    }
    s
}
