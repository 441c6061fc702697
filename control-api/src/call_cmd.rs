//! `dialer call`: place calls through a trunk, play a prompt on answer, hang up, and print
//! one JSON line per call plus a summary.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use codecs::{Codec, EncodeSettings, PreparedAudio, Prompt};
use engine::media::{dtmf, StreamParams};
use engine::net::{
    MediaEvent, MediaHandle, MediaPump, MediaStart, PumpConfig, PumpStats, RtpPort, SendMode,
    SipDriver,
};
use engine::sip::auth::Credentials;
use engine::sip::endpoint::{CallEnd, CallHandle, CallParams, EndpointConfig, Event, Transport};
use engine::sip::sdp::{OfferCodec, OfferParams};
use engine::sip::Uri;
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};

/// Arguments of `dialer call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The trunk: `sip:HOST[:PORT]`.
    #[arg(long)]
    trunk: String,
    /// Numbers to call, comma-separated; cycled through when `--calls` is larger.
    #[arg(long, value_delimiter = ',', required = true)]
    to: Vec<String>,
    /// The WAV prompt to play on answer.
    #[arg(long)]
    prompt: PathBuf,
    /// Local SIP address; while the command runs it also answers OPTIONS there.
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// SIP transport.
    #[arg(long, default_value = "udp", value_parser = ["udp", "tcp"])]
    transport: String,
    /// From URI (default `sip:dialer@LOCAL_IP`).
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
}

/// `--send-mode` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SendModeArg {
    Auto,
    Raw,
    Socket,
}

/// What a call's task hears: its SIP events and its media events.
enum Input {
    Sip(Event),
    Media(MediaEvent),
}

/// An input with the instant the dispatcher received it.
/// (Boxed: a channel allocates its slots in blocks of 32, and an unboxed `Event` would make
/// each call's block several KiB.)
type TimedInput = Box<(Instant, Input)>;
/// Where each call's inputs go.
type Routes = Arc<std::sync::Mutex<HashMap<CallHandle, mpsc::UnboundedSender<TimedInput>>>>;

struct CallRecord {
    to: String,
    call_id: String,
    end: CallEnd,
    pdd: Option<Duration>,
    answer: Option<Duration>,
    duration: Option<Duration>,
    rtp_packets_sent: u64,
    dtmf: String,
}

/// Runs the command.
pub async fn run(args: CallArgs) -> Result<()> {
    let trunk =
        Uri::parse(&args.trunk).map_err(|e| anyhow::anyhow!("--trunk {}: {e}", args.trunk))?;
    let host = trunk.host.context("--trunk needs a host")?;
    let port = trunk.port.unwrap_or(5060);
    let proxy: SocketAddr = tokio::net::lookup_host(format!(
        "{}:{port}",
        host.to_string().trim_matches(['[', ']'])
    ))
    .await
    .with_context(|| format!("resolving {host}"))?
    .next()
    .context("trunk host has no address")?;
    if args.concurrency == 0 || args.cps <= 0.0 {
        bail!("--concurrency and --cps must be positive");
    }
    let (rtp_min, rtp_max) = args.rtp_ports;
    let transport = if args.transport == "tcp" {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let preferred: Codec = args
        .codec
        .parse()
        .map_err(|e| anyhow::anyhow!("--codec: {e}"))?;
    let other = if preferred == Codec::Pcma {
        Codec::Pcmu
    } else {
        Codec::Pcma
    };
    let settings = EncodeSettings::default();
    let bytes = std::fs::read(&args.prompt)
        .with_context(|| format!("reading prompt {}", args.prompt.display()))?;
    let prepared = PreparedAudio::from_bytes(&bytes, &settings)
        .with_context(|| format!("loading prompt {}", args.prompt.display()))?;
    let prompts = Arc::new(Prompts {
        prepared,
        codecs: vec![preferred, other],
        cache: Default::default(),
    });
    for c in [preferred, other] {
        // Encode the offered 20 ms up front; other packet times when an answer asks for them.
        prompts
            .get(c.sdp_name(), 20)
            .with_context(|| format!("encoding prompt {} as {c:?}", args.prompt.display()))?;
    }

    let local_ip = match args.bind {
        Some(b) => b.ip(),
        None => local_ip_towards(proxy)?,
    };
    let bind = args.bind.unwrap_or(SocketAddr::new(local_ip, 0));
    let mut pump_cfg = PumpConfig::new(local_ip);
    pump_cfg.port_min = rtp_min;
    pump_cfg.port_max = rtp_max;
    pump_cfg.loops = usize::from(args.media_loops);
    pump_cfg.send_mode = match args.send_mode {
        SendModeArg::Raw => SendMode::Raw,
        SendModeArg::Socket => SendMode::PerSocket,
        SendModeArg::Auto => SendMode::Auto,
    };
    let (pump, mut media_events) = MediaPump::start(pump_cfg).context("starting the media pump")?;
    let pump = Arc::new(pump);
    let mut cfg = EndpointConfig::new(bind);
    cfg.transport = transport;
    let (driver, mut events) = SipDriver::start(bind, cfg)
        .await
        .context("binding SIP socket")?;
    let local = driver.local_addr();
    let from = args
        .from
        .clone()
        .unwrap_or_else(|| format!("sip:dialer@{}", host_port(local)));

    // Route endpoint and media events to each call's task (a media token is the call's
    // handle number).
    let routes: Routes = Default::default();
    let early: Arc<std::sync::Mutex<HashMap<CallHandle, Vec<TimedInput>>>> = Default::default();
    let route = {
        let (routes, early) = (routes.clone(), early.clone());
        move |h: CallHandle, input: Input| {
            let now = Instant::now();
            let tx = routes.lock().expect("lock").get(&h).cloned();
            match tx {
                Some(tx) => {
                    let _ = tx.send(Box::new((now, input)));
                }
                None => early
                    .lock()
                    .expect("lock")
                    .entry(h)
                    .or_default()
                    .push(Box::new((now, input))),
            }
        }
    };
    {
        let sip_route = route.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if let Some(h) = ev.call() {
                    sip_route(h, Input::Sip(ev));
                }
            }
        });
        tokio::spawn(async move {
            while let Some(ev) = media_events.recv().await {
                let token = match ev {
                    MediaEvent::Finished { token, .. }
                    | MediaEvent::Stopped { token, .. }
                    | MediaEvent::Dtmf { token, .. }
                    | MediaEvent::Played { token, .. }
                    | MediaEvent::Recorded { token, .. } => token,
                };
                route(CallHandle(token), Input::Media(ev));
            }
        });
    }

    let total = args.calls.unwrap_or(args.to.len());
    let sem = Arc::new(Semaphore::new(args.concurrency));
    let (rec_tx, mut rec_rx) = mpsc::unbounded_channel::<CallRecord>();
    let printer = tokio::spawn(async move {
        let mut records = Vec::new();
        while let Some(r) = rec_rx.recv().await {
            println!("{}", record_json(&r));
            records.push(r);
        }
        records
    });
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.cps);
    let offer_codecs: Vec<OfferCodec> = [preferred, other]
        .iter()
        .map(|c| OfferCodec {
            payload_type: c.payload_type(),
            name: c.sdp_name(),
            clock_rate: c.clock_rate(),
            channels: None,
            fmtp: None,
        })
        .collect();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        tokio::time::sleep_until((started + interval * i as u32).into()).await;
        let number = args.to[i % args.to.len()].clone();
        let rtp = pump.bind_port().context("allocating an RTP port")?;
        let rtp_port = rtp.port();
        let offer = OfferParams {
            session_id: rand_u32() as u64,
            version: 1,
            addr: local_ip,
            rtp_port,
            codecs: offer_codecs.clone(),
            ptime_ms: 20,
            telephone_event_pt: Some(101),
        };
        let target_host = host.to_string();
        let ruri = format!(
            "sip:{number}@{target_host}{}",
            trunk.port.map(|p| format!(":{p}")).unwrap_or_default()
        );
        let params = CallParams {
            proxy,
            request_uri: ruri.clone(),
            to_uri: ruri,
            from_uri: from.clone(),
            from_display: None,
            offer,
            ring_timeout: Duration::from_secs(args.ring_timeout),
            credentials: match (&args.username, &args.password) {
                (Some(u), Some(p)) => Some(Credentials {
                    username: u.clone(),
                    password: p.clone(),
                }),
                _ => None,
            },
            transport: Some(transport),
            extra_headers: Vec::new(),
            // One trunk per run: its host names the metric label.
            trunk: Some(host.to_string()),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let invited = Instant::now();
        let (handle, call_id) = driver.place_call(params).await?;
        {
            routes.lock().expect("lock").insert(handle, tx.clone());
            for ev in early
                .lock()
                .expect("lock")
                .remove(&handle)
                .unwrap_or_default()
            {
                let _ = tx.send(ev);
            }
        }
        let driver = driver.clone();
        let prompts = prompts.clone();
        let rec_tx = rec_tx.clone();
        let routes = routes.clone();
        let pump = pump.clone();
        let play = Play {
            count: args.play_count,
            gap_ms: args.play_gap_ms,
            telephone_event_pt: Some(101),
        };
        tasks.push(tokio::spawn(async move {
            let rec = follow_call(
                driver, pump, handle, number, call_id, invited, rx, rtp, prompts, play,
            )
            .await;
            routes.lock().expect("lock").remove(&handle);
            let _ = rec_tx.send(rec);
            drop(permit);
        }));
    }
    for t in tasks {
        t.await?;
    }
    drop(rec_tx);
    let records = printer.await?;
    let elapsed = started.elapsed();
    let media = pump.shutdown();
    let mut summary = summary_json(&records, elapsed);
    summary["summary"]["media"] = media_json(&media);
    println!("{summary}");
    Ok(())
}

/// The prompt per codec and packet time, encoded once each and shared by every call.
struct Prompts {
    prepared: PreparedAudio,
    codecs: Vec<Codec>,
    cache: std::sync::Mutex<HashMap<(Codec, u32), Arc<Prompt>>>,
}

impl Prompts {
    /// The prompt for the answer's codec (by the name we offered) and `a=ptime` (20 ms when the
    /// codec cannot packetise at that time).
    fn get(&self, codec: &str, ptime_ms: u32) -> Option<Arc<Prompt>> {
        let c = *self
            .codecs
            .iter()
            .find(|c| c.sdp_name().eq_ignore_ascii_case(codec))?;
        let ptime = if c.supports_ptime(ptime_ms) {
            ptime_ms
        } else {
            20
        };
        let mut cache = self.cache.lock().expect("prompt cache");
        if let Some(p) = cache.get(&(c, ptime)) {
            return Some(p.clone());
        }
        let p = Arc::new(self.prepared.encode(c, ptime).ok()?);
        cache.insert((c, ptime), p.clone());
        Some(p)
    }
}

/// How the prompt plays on every call.
#[derive(Debug, Clone, Copy)]
struct Play {
    count: u32,
    gap_ms: u32,
    telephone_event_pt: Option<u8>,
}

#[allow(clippy::too_many_arguments)]
async fn follow_call(
    driver: SipDriver,
    pump: Arc<MediaPump>,
    handle: CallHandle,
    to: String,
    call_id: String,
    invited: Instant,
    mut rx: mpsc::UnboundedReceiver<TimedInput>,
    rtp: RtpPort,
    prompts: Arc<Prompts>,
    play: Play,
) -> CallRecord {
    let mut pdd = None;
    let mut answered_at = None;
    let mut media: Option<MediaHandle> = None;
    let mut rtp = Some(rtp);
    let mut digits = String::new();
    loop {
        let Some((at, input)) = rx.recv().await.map(|b| *b) else {
            // The driver stopped: report what we know.
            return CallRecord {
                to,
                call_id,
                end: CallEnd {
                    outcome: engine::sip::outcome::Outcome::Failed,
                    status: 0,
                    reason: "SIP driver stopped".into(),
                    hangup: engine::sip::endpoint::Hangup::None,
                    retry_after: None,
                },
                pdd,
                answer: None,
                duration: None,
                rtp_packets_sent: 0,
                dtmf: digits,
            };
        };
        match input {
            Input::Sip(Event::Progress { .. }) => {
                pdd.get_or_insert(at - invited);
            }
            Input::Sip(Event::Answered { media: m, .. }) => {
                pdd.get_or_insert(at - invited);
                answered_at = Some(at);
                let (Some(prompt), Some(port)) = (prompts.get(m.codec, m.ptime_ms), rtp.take())
                else {
                    driver.hangup(handle);
                    continue;
                };
                let gap_frames = play.gap_ms / prompt.ptime_ms().max(1);
                let params = StreamParams {
                    payload_type: m.payload_type,
                    ssrc: rand_u32(),
                    first_seq: rand_u32() as u16,
                    first_timestamp: rand_u32(),
                    play_count: play.count,
                    gap_frames,
                };
                media = Some(pump.start_media(
                    MediaStart {
                        token: handle.0,
                        remote_rtp: m.remote_rtp,
                        remote_rtcp: m.remote_rtcp,
                        rtcp_mux: m.rtcp_mux,
                        clock_rate: m.clock_rate,
                        prompt,
                        params,
                        telephone_event_pt: m.telephone_event_pt.and(play.telephone_event_pt),
                        latch: Default::default(),
                        idle: false,
                    },
                    port,
                ));
            }
            Input::Sip(Event::Info {
                content_type, body, ..
            }) => {
                if let Some(d) = dtmf::parse_info(&content_type, &body) {
                    digits.push(d.digit);
                }
            }
            Input::Media(MediaEvent::Finished { .. }) => driver.hangup(handle),
            Input::Media(MediaEvent::Dtmf { event, .. }) => digits.push(event.digit),
            Input::Sip(Event::Ended { end, .. }) => {
                // The callee may hang up mid-prompt: stop sending at once, and count exactly.
                let mut packets = 0;
                if let Some(h) = media.take() {
                    pump.stop(h);
                    while let Some((_, input)) = rx.recv().await.map(|b| *b) {
                        match input {
                            Input::Media(MediaEvent::Stopped { packets: p, .. }) => {
                                packets = p;
                                break;
                            }
                            Input::Media(MediaEvent::Dtmf { event, .. }) => {
                                digits.push(event.digit)
                            }
                            _ => {}
                        }
                    }
                }
                if pdd.is_none() && end.status != 0 {
                    pdd = Some(at - invited);
                }
                return CallRecord {
                    to,
                    call_id,
                    pdd,
                    answer: answered_at.map(|a| a - invited),
                    duration: answered_at.map(|a| at - a),
                    rtp_packets_sent: packets,
                    dtmf: digits,
                    end,
                };
            }
            // `dialer call` plays no playlist and records nothing.
            Input::Sip(_)
            | Input::Media(
                MediaEvent::Stopped { .. }
                | MediaEvent::Played { .. }
                | MediaEvent::Recorded { .. },
            ) => {}
        }
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
    })
}

fn record_json(r: &CallRecord) -> serde_json::Value {
    let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
    json!({
        "to": r.to,
        "call_id": r.call_id,
        "outcome": r.end.outcome.as_str(),
        "sip_status": r.end.status,
        "sip_reason": r.end.reason,
        "pdd_ms": ms(r.pdd),
        "answer_ms": ms(r.answer),
        "duration_ms": ms(r.duration),
        "rtp_packets_sent": r.rtp_packets_sent,
        "dtmf": r.dtmf,
    })
}

fn summary_json(records: &[CallRecord], elapsed: Duration) -> serde_json::Value {
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

fn host_port(a: SocketAddr) -> String {
    match a.ip() {
        IpAddr::V4(ip) => format!("{ip}:{}", a.port()),
        IpAddr::V6(ip) => format!("[{ip}]:{}", a.port()),
    }
}

fn rand_u32() -> u32 {
    rand::random()
}
