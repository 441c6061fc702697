//! `dialer call`: place calls through a trunk, play a prompt on answer, hang up, and print
//! one JSON line per call plus a summary.
//!
//! The calls run on the dialer core like campaign attempts (`Dialer::call`, a one-shot call
//! of `engine::dialer::core`): the command's trunk is a trunk of the core whose `cps` and
//! `max_channels` are `--cps` and `--concurrency`, so the same limiter, burst cap, INVITE
//! placement and media path carry them. The core needs a store for campaigns it never
//! gets here: an empty SQLite file in a temporary directory, removed on exit.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use codecs::Codec;
use engine::dialer::call_media::{
    CallMedia, MediaNote, NoMedia, PumpMedia, PumpMediaConfig, PumpTuning,
};
use engine::dialer::core::{CallReport, DirectCall};
use engine::dialer::facade::CallReports;
use engine::dialer::{Dialer, DialerConfig, DialerError};
use engine::net::{PumpStats, SendMode};
use engine::sip::Uri;
use engine::store::sqlite::{SqliteOptions, SqliteStore};
use serde_json::json;
use tokio::sync::mpsc;

/// Arguments of `dialer call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The trunk: `sip:HOST[:PORT]`.
    #[arg(long)]
    trunk: String,
    /// Numbers to call, comma-separated; cycled through when `--calls` is larger.
    #[arg(long, value_delimiter = ',', required = true)]
    to: Vec<String>,
    /// The WAV prompt to play on answer (not needed with `--no-media`).
    #[arg(long, required_unless_present = "no_media")]
    prompt: Option<PathBuf>,
    /// Local SIP address; while the command runs it also answers OPTIONS there.
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// SIP transport.
    #[arg(long, default_value = "udp", value_parser = ["udp", "tcp"])]
    transport: String,
    /// From URI (default `sip:dialer@TRUNK_HOST`, as campaign calls on a trunk say).
    #[arg(long)]
    from: Option<String>,
    /// Preferred codec (offered first; the other G.711 law is offered too).
    #[arg(long, default_value = "pcmu", value_parser = ["pcmu", "pcma"])]
    codec: String,
    /// Seconds to ring before CANCEL.
    #[arg(long, default_value_t = 30)]
    ring_timeout: u64,
    /// Digest user name.
    #[arg(long, requires = "password")]
    username: Option<String>,
    /// Digest password.
    #[arg(long, requires = "username")]
    password: Option<String>,
    /// Number of calls to place.
    #[arg(long)]
    calls: Option<usize>,
    /// Most calls at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Most new calls per second.
    #[arg(long, default_value_t = 10.0)]
    cps: f64,
    /// RTP port range `MIN-MAX`.
    #[arg(long, default_value = "20000-39999", value_parser = parse_range)]
    rtp_ports: (u16, u16),
    /// How many times the prompt plays.
    #[arg(long, default_value_t = 1)]
    play_count: u32,
    /// Silence between plays, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    play_gap_ms: u32,
    /// Media pacing threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    media_loops: u16,
    /// How RTP leaves: `raw` (one sendmmsg per slot through a raw socket, needs
    /// CAP_NET_RAW), `socket` (sendto on each call's socket), `auto` (raw when permitted).
    #[arg(long, value_enum, default_value_t = SendModeArg::Auto)]
    send_mode: SendModeArg,
    /// Signalling only, as SIPp's built-in UAC calls: offers are `a=inactive` on the
    /// discard port, no RTP port is bound nor packet sent, and an answered call is hung up
    /// right after its ACK (the prompt is not read). For trunk admission tests, and for
    /// measuring the SIP stack's cost apart from the media's.
    #[arg(long)]
    no_media: bool,
}

/// `--send-mode` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SendModeArg {
    Auto,
    Raw,
    Socket,
}

/// Runs the command.
pub async fn run(args: CallArgs) -> Result<()> {
    let trunk =
        Uri::parse(&args.trunk).map_err(|e| anyhow::anyhow!("--trunk {}: {e}", args.trunk))?;
    let host = trunk.host.context("--trunk needs a host")?.to_string();
    let port = trunk.port.unwrap_or(5060);
    let proxy: SocketAddr =
        tokio::net::lookup_host(format!("{}:{port}", host.trim_matches(['[', ']'])))
            .await
            .with_context(|| format!("resolving {host}"))?
            .next()
            .context("trunk host has no address")?;
    if args.concurrency == 0 || args.cps <= 0.0 {
        bail!("--concurrency and --cps must be positive");
    }
    let prompt_path = args.prompt.clone().unwrap_or_default();
    let prompt = prompt_path
        .to_str()
        .with_context(|| format!("prompt path {} is not UTF-8", prompt_path.display()))?
        .to_string();
    let local_ip = match args.bind {
        Some(b) => b.ip(),
        None => local_ip_towards(proxy)?,
    };
    let bind = args.bind.unwrap_or(SocketAddr::new(local_ip, 0));
    let cfg = dialer_config(&args, &host, proxy, bind)?;

    let scratch = Scratch::new()?;
    let store = SqliteStore::open(
        &scratch.0.join("calls.db"),
        SqliteOptions {
            full_sync: false,
            ..Default::default()
        },
    )
    .await
    .context("opening the scratch store")?;
    let run = Run {
        args: &args,
        trunk_name: cfg.trunks[0].name.clone(),
        host: &host,
        port_suffix: trunk.port.map(|p| format!(":{p}")).unwrap_or_default(),
        prompt: &prompt,
    };
    let (records, elapsed, media_stats) = if args.no_media {
        let (media, notes) = NoMedia::new(local_ip);
        let dialer = Dialer::start(cfg, store, media, notes)
            .await
            .context("starting the dialer")?;
        let (records, elapsed) = run.calls(dialer).await?;
        (records, elapsed, serde_json::Value::Null)
    } else {
        let (media, notes) = start_media(&args, local_ip, &prompt)?;
        let dialer = Dialer::start(cfg, store, media.clone(), notes)
            .await
            .context("starting the dialer")?;
        let (records, elapsed) = run.calls(dialer).await?;
        (records, elapsed, media_json(&media.shutdown()))
    };
    let mut summary = summary_json(&records, elapsed);
    summary["summary"]["media"] = media_stats;
    println!("{summary}");
    Ok(())
}

/// What the calls of one run are placed with.
struct Run<'a> {
    args: &'a CallArgs,
    trunk_name: String,
    host: &'a str,
    /// The trunk's port as written (`:5080`), for the Request-URI.
    port_suffix: String,
    prompt: &'a str,
}

impl Run<'_> {
    /// Places the calls, prints their records, stops the dialer: the records and the time
    /// from the first call to the last report.
    async fn calls(&self, dialer: Dialer<SqliteStore>) -> Result<(Vec<CallReport>, Duration)> {
        let args = self.args;
        let total = args.calls.unwrap_or(args.to.len());
        let started = Instant::now();
        let mut reports = dialer.calls((0..total).map(|i| {
            let number = args.to[i % args.to.len()].clone();
            DirectCall {
                trunk: self.trunk_name.clone(),
                request_uri: Some(format!("sip:{number}@{}{}", self.host, self.port_suffix)),
                number,
                prompt: self.prompt.to_string(),
                play_count: args.play_count,
                from_uri: args.from.clone(),
            }
        }));
        let records = print_records(&mut reports, total).await?;
        let elapsed = started.elapsed();
        dialer.shutdown().await.context("stopping the dialer")?;
        Ok((records, elapsed))
    }
}

/// The media pump for this run, with the prompt encoded once, before the first call, for
/// every codec an answer may pick.
fn start_media(
    args: &CallArgs,
    local_ip: std::net::IpAddr,
    prompt: &str,
) -> Result<(Arc<PumpMedia>, mpsc::UnboundedReceiver<MediaNote>)> {
    let (rtp_min, rtp_max) = args.rtp_ports;
    let tuning = PumpTuning {
        loops: usize::from(args.media_loops),
        send_mode: match args.send_mode {
            SendModeArg::Raw => SendMode::Raw,
            SendModeArg::Socket => SendMode::PerSocket,
            SendModeArg::Auto => SendMode::Auto,
        },
        play_gap_ms: args.play_gap_ms,
    };
    let media_cfg = PumpMediaConfig {
        ip: local_ip,
        port_min: rtp_min,
        port_max: rtp_max,
        prompt_cache: None,
        ptimes: vec![20],
    };
    let (media, notes) =
        PumpMedia::start_tuned(media_cfg, tuning).context("starting the media pump")?;
    media
        .prepare(prompt)
        .with_context(|| format!("loading prompt {prompt}"))?;
    Ok((media, notes))
}

/// How often the finished calls' lines are written: the reports are collected in bursts
/// rather than awaited one by one, because each await of an empty stream had the
/// signalling thread wake this one (an eventfd write and a context switch) once per call.
const COLLECT_EVERY: Duration = Duration::from_millis(50);

/// Prints each call's record as a JSON line within [`COLLECT_EVERY`] of its end; the
/// records.
async fn print_records(reports: &mut CallReports, total: usize) -> Result<Vec<CallReport>> {
    let mut records = Vec::with_capacity(total);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut tick = tokio::time::interval(COLLECT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while records.len() < total {
        tick.tick().await;
        loop {
            match reports.try_next() {
                Ok(Some(r)) => {
                    serde_json::to_writer(&mut out, &record_json(&r))?;
                    out.write_all(b"\n")?;
                    records.push(r);
                }
                Ok(None) => break,
                Err(DialerError::Stopped) if records.len() == total => break,
                Err(e) => {
                    out.flush()?;
                    bail!(
                        "{e} before every call ended ({} of {total} reported)",
                        records.len()
                    );
                }
            }
        }
        out.flush()?;
    }
    Ok(records)
}

/// The dialer's configuration for this run: SIP on `bind`, one trunk to `proxy` with the
/// command's limits, codecs, credentials and ring timeout, and no OPTIONS pings (the far
/// end may be a test UAS that knows no OPTIONS).
fn dialer_config(
    args: &CallArgs,
    host: &str,
    proxy: SocketAddr,
    bind: SocketAddr,
) -> Result<DialerConfig> {
    let preferred: Codec = args
        .codec
        .parse()
        .map_err(|e| anyhow::anyhow!("--codec: {e}"))?;
    let other = if preferred == Codec::Pcma {
        Codec::Pcmu
    } else {
        Codec::Pcma
    };
    let mut t = toml::Table::new();
    let mut put = |k: &str, v: toml::Value| drop(t.insert(k.to_string(), v));
    // One trunk per run: its host names the metric label.
    put("name", host.trim_matches(['[', ']']).into());
    put("proxy", proxy.to_string().into());
    put("transport", args.transport.as_str().into());
    put(
        "codecs",
        toml::Value::Array(vec![preferred.sdp_name().into(), other.sdp_name().into()]),
    );
    put("cps", args.cps.into());
    put("max_channels", i64::try_from(args.concurrency)?.into());
    put("ring_timeout_s", i64::try_from(args.ring_timeout)?.into());
    put("options_ping_interval_s", 0.into());
    put("from_user", "dialer".into());
    put("from_domain", host.into());
    if let (Some(u), Some(p)) = (&args.username, &args.password) {
        put("username", u.as_str().into());
        put("password", p.as_str().into());
    }
    let mut top = toml::Table::new();
    top.insert("sip_bind".into(), bind.to_string().into());
    top.insert(
        "trunk".into(),
        toml::Value::Array(vec![toml::Value::Table(t)]),
    );
    // The command's flags are the whole configuration: no DIALER_* overrides.
    DialerConfig::load_with(&top.to_string(), &|_| None).context("trunk settings")
}

/// A temporary directory for the scratch store, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch> {
        let name = format!("dialer-call-{}-{:08x}", std::process::id(), rand_u32());
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn media_json(m: &PumpStats) -> serde_json::Value {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    json!({
        "send_mode": if m.raw { "raw" } else { "socket" },
        "rtp_packets_sent": m.rtp_sent,
        "rtcp_packets_sent": m.rtcp_sent,
        "send_errors": m.send_errors,
        "packets_received": m.received,
        "packets_dropped_source": m.dropped_source,
        "peak_streams": m.peak_streams,
        "send_lag_p50_ms": ms(m.lag.quantile(0.50)),
        "send_lag_p99_ms": ms(m.lag.quantile(0.99)),
        "send_lag_max_ms": ms(m.lag.max()),
        "loop_cpu_seconds": m.loop_cpu.as_secs_f64(),
        "realtime_loops": m.realtime_loops,
        "ports_bound_ahead": m.ports_bound_ahead,
        "ports_bound_on_demand": m.ports_bound_on_demand,
    })
}

/// One call's line of output. Written straight from the report (a `json!` value cost about
/// twenty allocations a call on the process's main thread); the fields in the order
/// `json!` printed them, so the lines read as before.
#[derive(serde::Serialize)]
struct Record<'a> {
    answer_ms: Option<u64>,
    call_id: &'a str,
    dtmf: &'a str,
    duration_ms: Option<u64>,
    outcome: &'static str,
    pdd_ms: Option<u64>,
    rtp_packets_sent: u64,
    sip_reason: &'a str,
    sip_status: u16,
    to: &'a str,
}

fn record_json(r: &CallReport) -> Record<'_> {
    let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
    Record {
        answer_ms: ms(r.answer),
        call_id: &r.call_id,
        dtmf: &r.dtmf,
        duration_ms: ms(r.duration),
        outcome: r.end.outcome.as_str(),
        pdd_ms: ms(r.pdd),
        rtp_packets_sent: r.rtp_packets,
        sip_reason: &r.end.reason,
        sip_status: r.end.status,
        to: &r.number,
    }
}

fn summary_json(records: &[CallReport], elapsed: Duration) -> serde_json::Value {
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for r in records {
        *outcomes.entry(r.end.outcome.as_str()).or_default() += 1;
    }
    let mut pdds: Vec<u64> = records
        .iter()
        .filter_map(|r| r.pdd.map(|d| d.as_millis() as u64))
        .collect();
    pdds.sort_unstable();
    let pct = |p: f64| -> Option<u64> {
        if pdds.is_empty() {
            return None;
        }
        let i = ((p * pdds.len() as f64).ceil() as usize).clamp(1, pdds.len()) - 1;
        Some(pdds[i])
    };
    json!({"summary": {
        "calls": records.len(),
        "outcomes": outcomes,
        "cps": if elapsed.as_secs_f64() > 0.0 { records.len() as f64 / elapsed.as_secs_f64() } else { 0.0 },
        "elapsed_ms": elapsed.as_millis() as u64,
        "pdd_p50_ms": pct(0.50),
        "pdd_p99_ms": pct(0.99),
    }})
}

fn parse_range(s: &str) -> Result<(u16, u16)> {
    let (a, b) = s.split_once('-').context("--rtp-ports must be MIN-MAX")?;
    let (a, b): (u16, u16) = (a.trim().parse()?, b.trim().parse()?);
    if a >= b {
        bail!("--rtp-ports: MIN must be below MAX");
    }
    Ok((a, b))
}

/// The local address the kernel would use to reach `dest` (no packet is sent).
fn local_ip_towards(dest: SocketAddr) -> Result<IpAddr> {
    let bind: SocketAddr = if dest.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let s = std::net::UdpSocket::bind(bind)?;
    s.connect(dest)?;
    Ok(s.local_addr()?.ip())
}

fn rand_u32() -> u32 {
    rand::random()
}
