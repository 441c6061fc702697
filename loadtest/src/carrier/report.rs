//! The carrier's report: the JSON summary (calls, dispositions, RTP quality, audio
//! correlation, the carrier's own CPU and memory) and the per-call CSV.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

use super::{Books, CallRec, CarrierArgs};
use crate::analysis::{Analyzer, Hist, StreamStats};

/// Writes the JSON report (to `--report` or stdout) and the CSV when `--csv` is given.
pub(super) fn write(
    args: &CarrierArgs,
    books: &Books,
    a: &Analyzer,
    elapsed: Duration,
) -> Result<()> {
    let calls = &books.calls;
    let mut report = build_report(calls, a, books.peak, elapsed);
    report["offered_per_second"] = json!(books.offered_per_s);
    if !args.callee.is_empty() {
        let ids = calls.iter().map(|(k, c)| (*k, c.call_id.clone())).collect();
        report["callees"] = books.callees.report(&streams_by_call(a), &ids);
    }
    let text = serde_json::to_string_pretty(&report)?;
    match &args.report {
        Some(p) => {
            std::fs::write(p, text + "\n").with_context(|| format!("writing {}", p.display()))?
        }
        None => println!("{text}"),
    }
    if let Some(p) = &args.csv {
        write_csv(p, calls, a)?;
    }
    Ok(())
}

/// The stream of each call: the one with the most packets.
fn streams_by_call(a: &Analyzer) -> HashMap<u64, &StreamStats> {
    let mut m: HashMap<u64, &StreamStats> = HashMap::new();
    for s in a.streams.values() {
        if s.call == 0 {
            continue;
        }
        let e = m.entry(s.call).or_insert(s);
        if s.packets > e.packets {
            *e = s;
        }
    }
    m
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

/// CPU seconds (user + system) and peak RSS of this process.
pub fn self_usage() -> (f64, u64) {
    // SAFETY: getrusage with a pointer to a local struct.
    let r = unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut r);
        r
    };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (s(r.ru_utime) + s(r.ru_stime), r.ru_maxrss as u64)
}

fn build_report(
    calls: &BTreeMap<u64, CallRec>,
    a: &Analyzer,
    peak: i64,
    elapsed: Duration,
) -> serde_json::Value {
    let mut dispositions: BTreeMap<String, u64> = BTreeMap::new();
    let mut ended_by: BTreeMap<&str, u64> = BTreeMap::new();
    for c in calls.values() {
        *dispositions.entry(c.disposition.clone()).or_default() += 1;
        *ended_by
            .entry(c.ended_by.map_or("not_ended", |e| e.as_str()))
            .or_default() += 1;
    }
    let joined = streams_by_call(a).len();
    let all: HashMap<usize, &StreamStats> = a.streams.values().enumerate().collect();
    let by_call = all;
    let answered = calls.values().filter(|c| c.answered).count();
    let mut jit: Vec<f64> = by_call.values().map(|s| s.jitter_ms()).collect();
    let mut jit_max: Vec<f64> = by_call.values().map(|s| s.jitter_max / 8.0).collect();
    let lost: u64 = by_call.values().map(|s| s.lost()).sum();
    let packets: u64 = by_call.values().map(|s| s.packets).sum();
    let with_loss = by_call.values().filter(|s| s.lost() > 0).count();
    let marker_bad = by_call
        .values()
        .filter(|s| !(s.first_marked && s.marked == 1))
        .count();
    let ts_errors: u64 = by_call.values().map(|s| s.ts_errors).sum();
    let corr: Vec<f64> = by_call.values().filter_map(|s| s.correlation()).collect();
    let min_corr = corr.iter().copied().fold(f64::INFINITY, f64::min);
    let (cpu, rss) = self_usage();
    let lag: &Hist = &a.lag;
    json!({
        "calls": calls.len(),
        "answered": answered,
        "dispositions": dispositions,
        "ended_by": ended_by,
        "peak_concurrent_answered": peak,
        "elapsed_s": elapsed.as_secs_f64(),
        "rtp": {
            "streams": a.streams.len(),
            "answered_calls_with_media": joined,
            "packets": packets,
            "packets_all_sources": a.packets,
            "malformed": a.malformed,
            "lost": lost,
            "calls_with_loss": with_loss,
            "seq_gaps": by_call.values().map(|s| s.seq_gaps).sum::<u64>(),
            "late_or_dup": by_call.values().map(|s| s.late_or_dup).sum::<u64>(),
            "jitter_ms_p50": pct(&mut jit, 0.5),
            "jitter_ms_p99": pct(&mut jit, 0.99),
            "jitter_ms_max": pct(&mut jit, 1.0),
            "jitter_peak_ms_p99": pct(&mut jit_max, 0.99),
            "arrival_lag_ms_p50": lag.quantile_ms(0.5),
            "arrival_lag_ms_p99": lag.quantile_ms(0.99),
            "arrival_lag_ms_max": lag.max_ms(),
            "marker_errors": marker_bad,
            "timestamp_errors": ts_errors,
            "duration_heard_ms_min": by_call.values().map(|s| s.duration_ms()).min(),
            "duration_heard_ms_max": by_call.values().map(|s| s.duration_ms()).max(),
            "rtcp_sr_streams": by_call.values().filter(|s| s.rtcp_sr > 0).count(),
            "rtcp_bye_streams": by_call.values().filter(|s| s.rtcp_bye).count(),
            "audio": {
                "checked": corr.len(),
                "correlating": corr.iter().filter(|c| **c >= 0.99).count(),
                "min_correlation": if corr.is_empty() { None } else { Some(min_corr) },
                "frames_compared": by_call.values().map(|s| s.frames_compared).sum::<u64>(),
                "frames_exact": by_call.values().map(|s| s.frames_exact).sum::<u64>(),
            },
        },
        "process": {"cpu_seconds": cpu, "max_rss_kib": rss},
    })
}

fn write_csv(path: &PathBuf, calls: &BTreeMap<u64, CallRec>, a: &Analyzer) -> Result<()> {
    let by_call = streams_by_call(a);
    let mut out = String::from(
        "call_id,disposition,answered,ended_by,ssrc,packets,expected,lost,seq_gaps,late_or_dup,\
         jitter_ms,duration_heard_ms,first_marked,marked,timestamp_errors,correlation,\
         frames_exact,rtcp_sr,rtcp_bye\n",
    );
    for (serial, c) in calls {
        let s = by_call.get(serial);
        let f = |g: &dyn Fn(&StreamStats) -> String| s.map(|s| g(s)).unwrap_or_default();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            c.call_id.replace(',', " "),
            c.disposition,
            c.answered,
            c.ended_by.map_or("", |e| e.as_str()),
            f(&|s| format!("{:08x}", s.ssrc)),
            f(&|s| s.packets.to_string()),
            f(&|s| s.expected().to_string()),
            f(&|s| s.lost().to_string()),
            f(&|s| s.seq_gaps.to_string()),
            f(&|s| s.late_or_dup.to_string()),
            f(&|s| format!("{:.3}", s.jitter_ms())),
            f(&|s| s.duration_ms().to_string()),
            f(&|s| s.first_marked.to_string()),
            f(&|s| s.marked.to_string()),
            f(&|s| s.ts_errors.to_string()),
            f(&|s| s
                .correlation()
                .map(|c| format!("{c:.5}"))
                .unwrap_or_default()),
            f(&|s| s.frames_exact.to_string()),
            f(&|s| s.rtcp_sr.to_string()),
            f(&|s| s.rtcp_bye.to_string()),
        ));
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}
