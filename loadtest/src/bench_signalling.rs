//! `loadtest bench signalling`: `dialer call` and SIPp's UAC at the same rates, each
//! against a fresh `sipp -sn uas` on loopback, one run at a time (the method of
//! `loadtest/results/signalling.md`). Per run: calls, failed, the rate over the INVITEs'
//! span (from the UAS's per-second statistics, whole intervals inside the ramp),
//! retransmissions the UAS counted (its screen: requests received again plus its own
//! resends), and CPU per call from the UAC's own rusage (`wait4`), for the dialer minus the
//! media pump's loop CPU it reports. `dialer-no-media` is `dialer call --no-media`: the
//! signalling measured apart, its calls placed as SIPp's UAC places its own (answered, then
//! hung up at once, no RTP). Writes `<tag>.json` and `<tag>.png` under `--out`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Value};

use crate::bench::{free_udp_port, wait_usage};
use crate::bench_host::{machine, tone_wav};

/// Arguments of `loadtest bench signalling`.
#[derive(Debug, Args)]
pub struct SignallingArgs {
    /// Calls per second to ask for, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,2000,5000")]
    pub rates: Vec<u64>,
    /// Seconds of calls per run (rate × secs calls).
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    /// UACs to run at each rate, in order: `dialer`, `dialer-no-media`, `sipp`.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "dialer,dialer-no-media,sipp"
    )]
    pub uacs: Vec<UacKind>,
    /// Where `<tag>.json` and `<tag>.png` go.
    #[arg(long, default_value = "loadtest/results")]
    pub out: PathBuf,
    /// File name (without extension) of the results.
    #[arg(long, default_value = "signalling")]
    pub tag: String,
    /// The dialer binary (default: next to this one).
    #[arg(long)]
    pub dialer: Option<PathBuf>,
    /// The SIPp binary.
    #[arg(long, default_value = "sipp")]
    pub sipp: String,
}

/// A UAC the scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UacKind {
    /// `dialer call` with its prompt played on every call.
    Dialer,
    /// `dialer call --no-media`: signalling only.
    DialerNoMedia,
    /// SIPp's built-in UAC.
    Sipp,
}

impl UacKind {
    /// The name in the results and on the chart.
    pub fn as_str(self) -> &'static str {
        match self {
            UacKind::Dialer => "dialer",
            UacKind::DialerNoMedia => "dialer-no-media",
            UacKind::Sipp => "sipp",
        }
    }
}

/// Seconds of a SIPp `HH:MM:SS` (or `HH:MM:SS:mmm`) elapsed time.
fn sipp_secs(v: &str) -> Option<f64> {
    let mut it = v.split(':');
    let h: f64 = it.next()?.trim().parse().ok()?;
    let m: f64 = it.next()?.trim().parse().ok()?;
    let s: f64 = it.next()?.trim().replace(',', ".").parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// The rows of a SIPp `-trace_stat` CSV (`;`-separated) as (header, values).
fn stat_rows(path: &Path) -> Vec<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines();
    let head: Vec<&str> = lines
        .next()
        .map(|l| l.split(';').collect())
        .unwrap_or_default();
    lines
        .map(|l| {
            head.iter()
                .zip(l.split(';'))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn col<'a>(row: &'a [(String, String)], prefix: &str) -> Option<&'a str> {
    row.iter()
        .find(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v.as_str())
}

/// When SIPp wrote a statistics row: the Unix time it puts last in `CurrentTime`
/// (microseconds). `ElapsedTime` has whole seconds only; rows come every 1.00x s, so now and
/// then two rows carry labels two seconds apart (or the same label), which put a 10 s ramp
/// 11 % off in either direction — this bench's "≈ 90 % of the rate" outliers, for SIPp's UAC
/// and the dialer alike, until session 12.
fn row_secs(row: &[(String, String)]) -> Option<f64> {
    col(row, "CurrentTime")
        .and_then(|v| v.split_whitespace().last()?.parse().ok())
        .or_else(|| sipp_secs(col(row, "ElapsedTime(C)")?))
}

/// Calls the UAS saw and the span of their INVITEs, from its per-second statistics.
fn uas_calls_span(path: &Path) -> (u64, Option<f64>) {
    let pts: Vec<(f64, u64)> = stat_rows(path)
        .iter()
        .filter_map(|r| {
            let t = row_secs(r)?;
            let c = col(r, "IncomingCall(C)")?.trim().parse().ok()?;
            Some((t, c))
        })
        .collect();
    let Some(&(_, calls)) = pts.last() else {
        return (0, None);
    };
    let a = pts.iter().position(|&(_, c)| c > 0);
    let b = pts.iter().position(|&(_, c)| c >= calls);
    let span = match (a, b) {
        // Whole sampling intervals inside the ramp only (1 s resolution otherwise).
        (Some(a), Some(b)) if b > a + 1 => {
            let ((ta, ca), (tb, cb)) = (pts[a], pts[b - 1]);
            (cb > ca).then(|| (tb - ta) * calls as f64 / (cb - ca) as f64)
        }
        (Some(a), Some(b)) => Some((pts[b].0 - pts[a].0 + 1.0).max(1.0)),
        _ => None,
    };
    (calls, span)
}

/// Retransmissions in a SIPp screen dump: the second number of each message line.
fn screen_retransmissions(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut n = 0;
    for line in text.lines() {
        let t = line.trim_start();
        let arrow = t.starts_with("<-") || (t.starts_with('-') && t.contains("->"));
        if !arrow {
            continue;
        }
        let mut words = t.split_whitespace();
        words.next(); // the arrow
        words.next(); // the message
        let nums: Vec<u64> = words.filter_map(|w| w.parse().ok()).collect();
        if nums.len() >= 2 {
            n += nums[1];
        }
    }
    n
}

fn start_uas(
    a: &SignallingArgs,
    work: &Path,
    port: u16,
    calls: u64,
) -> Result<std::process::Child> {
    Command::new(&a.sipp)
        .args(["-sn", "uas", "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-buff_size", "4194304", "-m", &calls.to_string()])
        .args(["-timeout", &format!("{}s", a.secs + 50), "-nostdin"])
        .args(["-trace_stat", "-fd", "1", "-stf"])
        .arg(work.join("uas.csv"))
        .args(["-trace_screen", "-screen_file"])
        .arg(work.join("uas_screen.log"))
        .current_dir(work)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("spawning the SIPp UAS")
}

/// One UAC run of `calls` calls at `rate` against the UAS on `port`.
struct Uac<'a> {
    work: &'a Path,
    port: u16,
    calls: u64,
    rate: u64,
    limit: Duration,
}

/// CPU seconds, failed calls, media CPU seconds (the dialer's own report) and the
/// dialer's summary.
type UacFigures = (f64, Option<u64>, f64, Value);

impl Uac<'_> {
    /// `dialer call` with `prompt` played, or signalling only when `prompt` is None.
    fn dialer(&self, dialer: &Path, prompt: Option<&Path>) -> Result<UacFigures> {
        let (work, port, n, rate, limit) =
            (self.work, self.port, self.calls, self.rate, self.limit);
        let out = work.join("dialer.jsonl");
        let mut cmd = Command::new(dialer);
        cmd.args(["call", "--trunk", &format!("sip:127.0.0.1:{port}")])
            .args(["--to", "390771286891"]);
        match prompt {
            Some(p) => cmd.arg("--prompt").arg(p),
            None => cmd.arg("--no-media"),
        };
        let child = cmd
            .args([
                "--calls",
                &n.to_string(),
                "--concurrency",
                &(2 * rate).to_string(),
            ])
            .args(["--cps", &rate.to_string(), "--bind", "127.0.0.1:0"])
            .stdout(std::fs::File::create(&out)?)
            .stderr(std::fs::File::create(work.join("dialer.stderr"))?)
            .spawn()
            .context("spawning dialer call")?;
        let (cpu, _, _) = wait_usage(&child, limit)?;
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let s = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|v| v.get("summary").cloned())
            .unwrap_or(Value::Null);
        let answered = s["outcomes"]["answered"].as_u64().unwrap_or(0);
        let failed = s["calls"].as_u64().map(|c| c.saturating_sub(answered));
        let media = s["media"]["loop_cpu_seconds"].as_f64().unwrap_or(0.0);
        Ok((cpu, failed, media, s))
    }

    fn sipp(&self, sipp: &str, secs: u64) -> Result<UacFigures> {
        let (work, port, n, rate, limit) =
            (self.work, self.port, self.calls, self.rate, self.limit);
        let child = Command::new(sipp)
            .args([
                "-sn",
                "uac",
                "-i",
                "127.0.0.1",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["-r", &rate.to_string(), "-m", &n.to_string()])
            .args([
                "-l",
                &(2 * rate).to_string(),
                "-buff_size",
                "4194304",
                "-nostdin",
            ])
            .args(["-timeout", &format!("{}s", secs + 50)])
            .args(["-trace_stat", "-fd", "1", "-stf"])
            .arg(work.join("uac.csv"))
            .current_dir(work)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning the SIPp UAC")?;
        let (cpu, _, _) = wait_usage(&child, limit)?;
        let rows = stat_rows(&work.join("uac.csv"));
        let failed = rows
            .last()
            .and_then(|r| col(r, "FailedCall(C)")?.trim().parse().ok());
        Ok((cpu, failed, 0.0, Value::Null))
    }
}

/// One UAC at one rate; its figures.
fn one(a: &SignallingArgs, dialer: &Path, prompt: &Path, uac: UacKind, rate: u64) -> Result<Value> {
    let work = std::env::temp_dir().join(format!(
        "loadtest-sig-{}-{}-{rate}",
        std::process::id(),
        uac.as_str()
    ));
    std::fs::create_dir_all(&work)?;
    let port = free_udp_port()?;
    let n = rate * a.secs;
    let limit = Duration::from_secs(a.secs + 60);
    let load = machine()["loadavg"].clone();
    let mut uas = start_uas(a, &work, port, n)?;
    std::thread::sleep(Duration::from_millis(500));
    let t0 = std::time::Instant::now();
    let run = Uac {
        work: &work,
        port,
        calls: n,
        rate,
        limit,
    };
    let (cpu, failed, media_cpu, summary) = match uac {
        UacKind::Dialer => run.dialer(dialer, Some(prompt))?,
        UacKind::DialerNoMedia => run.dialer(dialer, None)?,
        UacKind::Sipp => run.sipp(&a.sipp, a.secs)?,
    };
    let wall = t0.elapsed().as_secs_f64();
    let _ = wait_usage(&uas, limit);
    let _ = uas.kill();
    let (calls, span) = uas_calls_span(&work.join("uas.csv"));
    let retrans = screen_retransmissions(&work.join("uas_screen.log"));
    let _ = std::fs::remove_dir_all(&work);
    Ok(json!({
        "uac": uac.as_str(), "rate_asked": rate, "secs": a.secs, "calls": n, "uas_calls": calls,
        "failed": failed,
        "rate_over_invite_span": span.map(|s| (calls as f64 / s * 10.0).round() / 10.0),
        "uas_retransmissions": retrans, "wall_s": wall,
        "cpu_s": cpu, "media_cpu_s": media_cpu,
        "cpu_us_per_call": ((cpu - media_cpu) * 1e6 / n as f64 * 10.0).round() / 10.0,
        "loadavg_before": load,
        "dialer_summary": summary,
    }))
}

/// Runs the signalling scenario.
pub fn run(a: SignallingArgs) -> Result<()> {
    let dialer = crate::bench_host::dialer_binary(a.dialer.as_ref())?;
    std::fs::create_dir_all(&a.out)?;
    let prompt = std::env::temp_dir().join(format!("loadtest-sig-{}.wav", std::process::id()));
    // A 0.1 s tone: the dialer's prompt (the method's short message).
    tone_wav(&prompt, 0.1)?;
    let mut runs = vec![];
    for &rate in &a.rates {
        for &uac in &a.uacs {
            let r = one(&a, &dialer, &prompt, uac, rate)?;
            eprintln!("bench signalling: {r}");
            runs.push(r);
        }
    }
    let _ = std::fs::remove_file(&prompt);
    let result = json!({
        "scenario": "signalling",
        "machine": machine(),
        "args": {
            "rates": a.rates, "secs": a.secs,
            "uacs": a.uacs.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
        },
        "runs": runs,
    });
    let json_path = a.out.join(format!("{}.json", a.tag));
    std::fs::write(&json_path, serde_json::to_string_pretty(&result)? + "\n")?;
    let png = a.out.join(format!("{}.png", a.tag));
    match crate::bench_chart::signalling(&png, &runs) {
        Ok(()) => eprintln!(
            "bench signalling: wrote {} and {}",
            json_path.display(),
            png.display()
        ),
        Err(e) => eprintln!(
            "bench signalling: no chart ({e:#}); wrote {}",
            json_path.display()
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sipp_elapsed_times_read() {
        assert_eq!(sipp_secs("00:01:02"), Some(62.0));
        assert_eq!(sipp_secs("01:00:00:250"), Some(3600.0));
        assert_eq!(sipp_secs("x"), None);
    }

    #[test]
    fn the_span_follows_the_rows_clock_not_their_whole_second_labels() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("uas.csv");
        // 5,000 calls a second; rows every 1.004 s, so the labels skip from 5 to 7.
        let mut text = String::from("StartTime;CurrentTime;ElapsedTime(C);IncomingCall(C);\n");
        let mut calls = 0u64;
        for (i, label) in [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]
            .into_iter()
            .enumerate()
        {
            let t = 1000.999 + 1.004 * i as f64;
            if i > 0 {
                calls = (calls + 5020).min(50_000);
            }
            text.push_str(&format!(
                "x;2026-12-03\t00:00:00\t{t:.6};00:00:{label:02};{calls};\n"
            ));
        }
        std::fs::write(&p, text).unwrap();
        let (n, span) = uas_calls_span(&p);
        assert_eq!(n, 50_000);
        let rate = n as f64 / span.unwrap();
        assert!((rate - 5000.0).abs() < 5.0, "{rate}");
    }

    #[test]
    fn screen_retransmissions_add_the_second_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("screen");
        std::fs::write(
            &p,
            "  ----------> INVITE   100  3  0\n  <---------- 200   100  5\n\
             noise 1 2 3\n  [   0ms] Pause 7 0\n",
        )
        .unwrap();
        assert_eq!(screen_retransmissions(&p), 8);
    }
}
