//! A real Prometheus (Debian's `prometheus`) on loopback with the shipped rules
//! (ops/prometheus/dialer.rules.yml) scrapes `dialer serve` while it runs a campaign
//! against a SIPp carrier that answers about 70% of calls and is busy for the rest.
//! Checked through Prometheus's HTTP API: the ASR and NER recording rules agree with the
//! journal (answered / attempts, and answered + busy / attempts); the trunk-down alert is
//! silent while the carrier answers OPTIONS and fires once it stops (SIPp killed).
//!
//! The test's own prometheus.yml scrapes and evaluates every 200 ms, and the rules' `for:`
//! durations are shortened to 2 s in the copy it loads. Bounded: the campaign 120 s, the
//! alert 100 s (the dialer marks a trunk down after three OPTIONS timeouts, 32 s each, one
//! ping a second). Needs `sipp` and `prometheus` (skipped locally without them, a failure
//! in CI).

mod ops_common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ops_common::{free_tcp, free_udp, have, Api, Guard, Sipp};
use serde_json::Value;

/// The shipped rules with every `for:` shortened, so that alerts fire within the test.
fn rules_for_test(dest: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/prometheus/dialer.rules.yml");
    let text = std::fs::read_to_string(src).unwrap();
    let mut out = String::new();
    let mut n = 0;
    for line in text.lines() {
        match line.trim_start().strip_prefix("for:") {
            Some(_) => {
                let indent = line.len() - line.trim_start().len();
                out.push_str(&format!("{}for: 2s\n", " ".repeat(indent)));
                n += 1;
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    assert!(n > 0, "the rules have `for:` durations");
    std::fs::write(dest, out).unwrap();
}

fn start_prometheus(dir: &Path, target: &str) -> (Guard, String) {
    rules_for_test(&dir.join("rules.yml"));
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\n  evaluation_interval: 200ms\n\
             rule_files:\n  - rules.yml\n\
             scrape_configs:\n  - job_name: dialer\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_tcp();
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("prometheus.log")).unwrap(),
        ))
        .spawn()
        .expect("spawn prometheus");
    (Guard(child), format!("http://127.0.0.1:{port}"))
}

/// `GET /api/v1/query`: the instant vector's samples as (labels, value).
async fn query(http: &reqwest::Client, prom: &str, q: &str) -> Vec<(Value, f64)> {
    let v: Value = http
        .get(format!("{prom}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "success", "{q}: {v}");
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let x: f64 = s["value"][1].as_str().unwrap().parse().unwrap();
            (s["metric"].clone(), x)
        })
        .collect()
}

/// Alerts in `state` (`pending`, `firing`) named `name`, as their label sets.
async fn alerts(http: &reqwest::Client, prom: &str, name: &str, state: &str) -> Vec<Value> {
    let v: Value = http
        .get(format!("{prom}/api/v1/alerts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] == name && a["state"] == state)
        .map(|a| a["labels"].clone())
        .collect()
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while !f().await {
        assert!(t0.elapsed() < limit, "{what} not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_rules_match_the_journal_and_trunk_down_fires() {
    if !have("sipp", "-v") || !have("prometheus", "--version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut carrier = Sipp::start("uas_answer_or_busy.xml");
    let cfg = ops_common::config(dir.path(), free_udp(), carrier.port, 20, "");
    let (_dialer, base) = ops_common::spawn_serve(&cfg, &[]);
    let target = base.trim_start_matches("http://").to_string();
    let (_prom, prom) = start_prometheus(dir.path(), &target);
    let api = Api::new(base);
    let http = api.http.clone();
    wait_until("prometheus ready", Duration::from_secs(60), || async {
        http.get(format!("{prom}/-/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    wait_until(
        "prometheus scraping the dialer",
        Duration::from_secs(30),
        || async {
            query(&http, &prom, r#"up{job="dialer"}"#)
                .await
                .first()
                .is_some_and(|(_, v)| *v == 1.0)
        },
    )
    .await;

    let n = 150;
    let (tok, id) = api.start_campaign(n, 1.0).await;
    api.wait_completed(&tok, id, Duration::from_secs(120)).await;
    let calls = api.calls(&tok, id).await;
    let attempts = calls.len() as f64;
    let count = |o: &str| calls.iter().filter(|c| c["outcome"] == o).count() as f64;
    let (answered, busy) = (count("answered"), count("busy"));
    assert_eq!(attempts, n as f64, "one attempt per contact (no retries)");
    assert!(
        answered > 0.0 && busy > 0.0,
        "the carrier answers some calls and is busy for others: {answered} answered, {busy} busy"
    );
    let asr = answered / attempts;
    let ner = (answered + busy + count("no_answer") + count("rejected")) / attempts;

    // Let the last counters be scraped and the rules evaluated on them.
    let total_attempts = || async {
        query(&http, &prom, "sum(dialer_call_attempts_total)")
            .await
            .first()
            .is_some_and(|(_, v)| *v == attempts)
    };
    wait_until(
        "the last attempt scraped",
        Duration::from_secs(20),
        total_attempts,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got_asr = query(
        &http,
        &prom,
        r#"trunk:dialer_asr:ratio_rate5m{trunk="carrier"}"#,
    )
    .await;
    let got_ner = query(
        &http,
        &prom,
        r#"trunk:dialer_ner:ratio_rate5m{trunk="carrier"}"#,
    )
    .await;
    assert_eq!(got_asr.len(), 1, "{got_asr:?}");
    assert_eq!(got_ner.len(), 1, "{got_ner:?}");
    // rate() extrapolates the window's edges and cannot count what a series held at its
    // first scrape (each series appears at its first increment): at 20 CPS and a 200 ms
    // scrape, a few calls out of 150.
    eprintln!(
        "journal ASR {asr:.3} NER {ner:.3}; Prometheus ASR {:.3} NER {:.3}",
        got_asr[0].1, got_ner[0].1
    );
    assert!(
        (got_asr[0].1 - asr).abs() < 0.05,
        "ASR {} vs journal {asr}",
        got_asr[0].1
    );
    assert!(
        (got_ner[0].1 - ner).abs() < 0.05,
        "NER {} vs journal {ner}",
        got_ner[0].1
    );
    let pdd = query(
        &http,
        &prom,
        r#"trunk:dialer_post_dial_delay_seconds:p50_5m{trunk="carrier"}"#,
    )
    .await;
    assert!(
        pdd.first().is_some_and(|(_, v)| *v > 0.0 && *v < 5.0),
        "PDD {pdd:?}"
    );

    // While the carrier answers OPTIONS, the trunk is up and nothing about it alerts.
    assert_eq!(
        query(&http, &prom, r#"dialer_trunk_up{trunk="carrier"}"#).await[0].1,
        1.0
    );
    assert_eq!(query(&http, &prom, "dialer_ready").await[0].1, 1.0);
    assert!(alerts(&http, &prom, "DialerNotReady", "pending")
        .await
        .is_empty());
    assert!(alerts(&http, &prom, "DialerTrunkDown", "pending")
        .await
        .is_empty());
    assert!(alerts(&http, &prom, "DialerTrunkDown", "firing")
        .await
        .is_empty());

    carrier.kill();
    let t0 = Instant::now();
    wait_until(
        "DialerTrunkDown firing",
        Duration::from_secs(100),
        || async {
            alerts(&http, &prom, "DialerTrunkDown", "firing")
                .await
                .iter()
                .any(|l| l["trunk"] == "carrier" && l["severity"] == "critical")
        },
    )
    .await;
    eprintln!(
        "DialerTrunkDown fired {:?} after the carrier stopped",
        t0.elapsed()
    );
}
