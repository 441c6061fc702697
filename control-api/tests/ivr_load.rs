//! Inbound load while a campaign dials (issue 12 acceptance): `dialer serve` runs an
//! emergency campaign at its trunk's CPS ceiling against a SIPp carrier, and meanwhile
//! SIPp callers (`IVR_LOAD_CALLS`, 500 by default, spread over `IVR_LOAD_SECS`, 10 s)
//! each register their own number on the citizens' line with RFC 4733 keys (1, zone 2,
//! 1 to consent). By default the dialer is restarted once the town is set up, so that it
//! renders its lines' prompts at start (`IVR_LOAD_MODE=calls`: three warm-up calls do it
//! instead; `cold`: the burst pays for espeak-ng and the encoding of each text into every
//! codec). Checked: every call ran to the dialer's hang-up, every number is stored
//! exactly once. Measured and printed (not asserted: performance on a shared
//! machine is a figure, not a pass mark): the campaign's CPS before and during the
//! burst, the media send lag p99 (from the dialer's histogram) before and during, the
//! dialer's CPU time and peak RSS.
//!
//! Needs `sipp` and `espeak-ng` (skipped locally without them, a failure in CI).

mod ops_common;
#[path = "rtp_pcap/mod.rs"]
mod rtp_pcap;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ops_common::{free_udp, have, spawn_serve, Api, Sipp, ADMIN};
use serde_json::Value;

const DID: &str = "0692000000";
/// The campaign's trunk ceiling.
const CPS: u32 = 10;

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(dir: &Path, sip: u16, carrier: u16) -> PathBuf {
    let path = dir.join("dialer.toml");
    std::fs::write(
        &path,
        format!(
            "admin_token = \"{ADMIN}\"\ndrain_timeout_s = 5\n\
             [http]\nlisten = \"127.0.0.1:0\"\n[sip]\nlisten = \"127.0.0.1:{sip}\"\n\
             [store]\nurl = \"sqlite://{}\"\n\
             [media]\nrtp_port_min = 20000\nrtp_port_max = 31999\n\
             [[number]]\nnumber = \"{DID}\"\ntenant = \"nettuno\"\nflow = \"citizen\"\n\
             [[trunk]]\nname = \"carrier\"\nproxy = \"127.0.0.1:{carrier}\"\n\
             max_channels = 2000\ncps = {CPS}\nring_timeout_s = 10\n\
             options_ping_interval_s = 0\n",
            dir.join("load.db").display(),
        ),
    )
    .unwrap();
    path
}

/// The callers' scenario: INVITE from the injected number, the three keys from one
/// stream (`keys.pcap`), then the dialer's BYE.
fn scenario(dir: &Path) -> PathBuf {
    let pcap = dir.join("keys.pcap");
    std::fs::write(&pcap, rtp_pcap::RtpStream::new(0x10ad).keys("121", 1500)).unwrap();
    let x = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="ivr load caller">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[field0]@[local_ip]:[local_port]>;tag=[pid]L[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:[field0]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=caller 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[field0]@[local_ip]:[local_port]>;tag=[pid]L[call_number]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:[field0]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <pause milliseconds="1000"/>
  <nop><action><exec play_pcap_audio="{}"/></action></nop>
  <recv request="BYE" timeout="90000"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"#,
        pcap.display()
    );
    let p = dir.join("load.xml");
    std::fs::write(&p, x).unwrap();
    p
}

/// What the dialer's /metrics and /proc say at one moment.
#[derive(Debug, Clone, Default)]
struct Sample {
    at: Option<Instant>,
    attempts: f64,
    /// Cumulative send-lag histogram: (upper bound in seconds, count).
    lag: Vec<(f64, f64)>,
    /// Cumulative journal commit-time histogram, the same way.
    commit: Vec<(f64, f64)>,
    cpu_s: f64,
    /// CPU of its children waited for (espeak-ng renderings).
    child_cpu_s: f64,
    rss_kb: u64,
}

async fn metrics_text(api: &Api) -> String {
    api.http
        .get(format!("{}/metrics", api.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn sample(api: &Api, pid: u32) -> Sample {
    let text = metrics_text(api).await;
    let value = |l: &str| l.rsplit(' ').next()?.parse::<f64>().ok();
    let attempts = text
        .lines()
        .filter(|l| l.starts_with("dialer_call_attempts_total"))
        .filter_map(value)
        .sum();
    let lag = buckets(&text, "dialer_rtp_send_lag_seconds_bucket");
    let commit = buckets(&text, "dialer_store_commit_seconds_bucket");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the ")": state is field 0, utime 11, stime 12 (clock ticks, 100 per second).
    let cpu_s = (ticks(11) + ticks(12)) / 100.0;
    let child_cpu_s = (ticks(13) + ticks(14)) / 100.0;
    let rss_kb = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    Sample {
        at: Some(Instant::now()),
        attempts,
        lag,
        commit,
        cpu_s,
        child_cpu_s,
        rss_kb,
    }
}

/// A histogram's cumulative buckets in the exposition text: (upper bound, count).
fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.parse::<f64>().ok()?))
        })
        .collect()
}

/// The p99 of what a histogram recorded between two samples: the upper bound of the
/// bucket the 99th percentile falls in (seconds), and how many observations.
fn p99(a: &[(f64, f64)], b: &[(f64, f64)]) -> (f64, f64) {
    let before = |le: f64| a.iter().find(|(l, _)| *l == le).map_or(0.0, |(_, c)| *c);
    let delta: Vec<(f64, f64)> = b.iter().map(|(le, c)| (*le, c - before(*le))).collect();
    let total = delta.iter().map(|(_, c)| *c).fold(0.0, f64::max);
    let p99 = delta
        .iter()
        .find(|(_, c)| *c >= 0.99 * total)
        .map_or(f64::NAN, |(le, _)| *le);
    (p99, total)
}

fn cps(a: &Sample, b: &Sample) -> f64 {
    let secs = (b.at.unwrap() - a.at.unwrap()).as_secs_f64();
    (b.attempts - a.attempts) / secs
}

async fn stored_numbers(api: &Api, tok: &str) -> Vec<(String, bool)> {
    let mut out = vec![];
    let mut cursor = String::new();
    for _ in 0..100 {
        let r = api
            .http
            .get(format!(
                "{}/v1/registrations?limit=500&cursor={cursor}",
                api.base
            ))
            .bearer_auth(tok)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        let v: Value = r.json().await.unwrap();
        for i in v["items"].as_array().unwrap() {
            out.push((
                i["number"].as_str().unwrap().to_string(),
                i["deleted_ms"].is_null(),
            ));
        }
        match v["next_cursor"].as_str() {
            Some(c) if !c.is_empty() => cursor = c.to_string(),
            _ => break,
        }
    }
    out
}

/// SIPp callers from `numbers` at `rate` per second, all at once allowed; its exit status.
fn callers(
    dir: &Path,
    name: &str,
    sip: u16,
    numbers: &[String],
    rate: u32,
) -> tokio::task::JoinHandle<std::process::ExitStatus> {
    let mut inf = String::from("SEQUENTIAL\n");
    for n in numbers {
        inf.push_str(&format!("{n};\n"));
    }
    let d = dir.to_path_buf();
    std::fs::write(d.join(format!("{name}.csv")), inf).unwrap();
    let scen = scenario(dir);
    let (calls, name) = (numbers.len(), name.to_string());
    tokio::task::spawn_blocking(move || {
        Command::new("sipp")
            .arg(format!("127.0.0.1:{sip}"))
            .arg("-sf")
            .arg(&scen)
            .arg("-inf")
            .arg(d.join(format!("{name}.csv")))
            .args(["-i", "127.0.0.1", "-p", &free_udp().to_string()])
            .args(["-mp", &free_udp().to_string(), "-s", DID])
            .args(["-r", &rate.to_string(), "-m", &calls.to_string()])
            .args(["-l", &calls.to_string(), "-timeout", "180s", "-nostdin"])
            .args(["-trace_err", "-error_file"])
            .arg(d.join(format!("load-{name}.err")))
            .args(["-trace_screen", "-screen_file"])
            .arg(d.join(format!("load-{name}.screen")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_registrations_while_a_campaign_dials_at_its_ceiling() {
    if !have("sipp", "-v") || !have("espeak-ng", "--version") {
        return;
    }
    let calls = env_or("IVR_LOAD_CALLS", 500);
    let secs = env_or("IVR_LOAD_SECS", 10).max(1);
    let dir = tempfile::tempdir().unwrap();
    let carrier = Sipp::start("uas_answer_ptime.xml");
    let sip = free_udp();
    let cfg = config(dir.path(), sip, carrier.port);
    let (serve, base) = spawn_serve(&cfg, &[]);
    let mut api = Api::new(base);
    // The campaign: 70 s of contacts at the ceiling, 3 s messages.
    let contacts = (CPS * (secs + 60)) as usize;
    let (tok, id) = api.start_campaign(contacts, 3.0).await;
    let r = api
        .http
        .post(format!("{}/v1/streets", api.base))
        .bearer_auth(&tok)
        .header("content-type", "text/csv")
        .body("street,zone\nVia Roma,Centro\nLungomare,Lido\n")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    // How the line's speech gets ready before the burst (IVR_LOAD_MODE):
    // `restart` (default): the dialer restarts with the town set up, as after a deploy,
    // and renders every prompt of its lines at start; `calls`: three calls whose
    // read-backs say every digit have every text synthesised; `cold`: nothing, the burst
    // pays for espeak-ng and the encoding of each text into every codec.
    let mode = std::env::var("IVR_LOAD_MODE").unwrap_or_else(|_| "restart".into());
    let mut serve = Some(serve);
    if mode == "restart" {
        drop(serve.take());
        let (again, base) = spawn_serve(&cfg, &[]);
        serve = Some(again);
        api = Api::new(base);
        // The prompts rendered at start (bounded wait), then the campaign resumed.
        let t0 = Instant::now();
        let ready = |t: &str| {
            t.lines()
                .any(|l| l.starts_with("dialer_ivr_prompts_ready ") && l.ends_with(" 1"))
        };
        while !ready(&metrics_text(&api).await) {
            assert!(t0.elapsed() < Duration::from_secs(300), "prompts not ready");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        eprintln!(
            "ivr load: the restarted dialer rendered its line in {:?}",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let pid = serve.as_ref().unwrap().0.id();
    let warmed: Vec<String> = if mode == "calls" {
        ["3330000123", "3330004567", "3330008901"]
            .map(String::from)
            .to_vec()
    } else {
        vec![]
    };
    if !warmed.is_empty() {
        let w = callers(dir.path(), "warm", sip, &warmed, 3).await.unwrap();
        assert!(w.success(), "warm-up calls: {w}");
    }
    // Baseline: the campaign alone.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s0 = sample(&api, pid).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let s1 = sample(&api, pid).await;

    // The burst.
    let numbers: Vec<String> = (0..calls)
        .map(|i| format!("33{:08}", 40_000_000 + i))
        .collect();
    let rate = calls.div_ceil(secs);
    let started = Instant::now();
    let sipp = callers(dir.path(), "load", sip, &numbers, rate);
    tokio::time::sleep(Duration::from_secs(u64::from(secs))).await;
    let s2 = sample(&api, pid).await;
    let mut peak_rss = s2.rss_kb;
    let mut n = 0;
    while !sipp.is_finished() && n < 1800 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if n % 10 == 0 {
            peak_rss = peak_rss.max(sample(&api, pid).await.rss_kb);
        }
        n += 1;
    }
    let status = sipp.await.unwrap();
    let took = started.elapsed();
    let s3 = sample(&api, pid).await;
    let err = std::fs::read_to_string(dir.path().join("load-load.err")).unwrap_or_default();
    let screen = std::fs::read_to_string(dir.path().join("load-load.screen")).unwrap_or_default();
    assert!(
        status.success(),
        "SIPp callers: {status}\n{screen}\n{}",
        &err[..err.len().min(4000)]
    );

    let stored = stored_numbers(&api, &tok).await;
    let unique: HashSet<&str> = stored.iter().map(|(n, _)| n.as_str()).collect();
    let want = calls as usize + warmed.len();
    assert_eq!(stored.len(), want, "one registration per caller");
    assert_eq!(unique.len(), want, "each number exactly once");
    assert!(numbers
        .iter()
        .all(|n| unique.contains(format!("+39{n}").as_str())));
    assert!(stored.iter().all(|(_, live)| *live));

    let (p99_base, n_base) = p99(&s0.lag, &s1.lag);
    let (p99_burst, n_burst) = p99(&s1.lag, &s2.lag);
    let (commit_base, _) = p99(&s0.commit, &s1.commit);
    let (commit_burst, _) = p99(&s1.commit, &s2.commit);
    let v = api
        .http
        .get(format!("{}/v1/campaigns/{id}", api.base))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    eprintln!(
        "ivr load ({}): {calls} registration calls at {rate}/s, all ended by the dialer in \
         {:.1} s, {} stored once each\n\
         campaign (ceiling {CPS} CPS): {:.2} CPS alone, {:.2} CPS during the burst \
         (state {})\n\
         RTP send lag p99: <= {:.2} ms alone ({n_base} packets), <= {:.2} ms during the burst \
         ({n_burst} packets)\n\
         journal commit p99: <= {:.0} ms alone, <= {:.0} ms during the burst\n\
         dialer CPU: {:.1} s alone over {:.1} s, {:.1} s for the burst and its calls over {:.1} s; \
         espeak-ng children {:.1} s during the burst; RSS {} MB before, peak {} MB",
        match mode.as_str() {
            "restart" => "restarted: prompts rendered at start",
            "calls" => "speech warmed up by three calls",
            _ => "cold: speech rendered during the burst",
        },
        took.as_secs_f64(),
        unique.len(),
        cps(&s0, &s1),
        cps(&s1, &s2),
        v["state"],
        p99_base * 1000.0,
        p99_burst * 1000.0,
        commit_base * 1000.0,
        commit_burst * 1000.0,
        s1.cpu_s - s0.cpu_s,
        (s1.at.unwrap() - s0.at.unwrap()).as_secs_f64(),
        s3.cpu_s - s1.cpu_s,
        (s3.at.unwrap() - s1.at.unwrap()).as_secs_f64(),
        s3.child_cpu_s - s1.child_cpu_s,
        s1.rss_kb / 1024,
        peak_rss / 1024,
    );
    // The limiter holds under the burst (the ceiling is a rule, not a performance figure).
    assert!(cps(&s1, &s2) <= f64::from(CPS) * 1.2, "{}", cps(&s1, &s2));
}
