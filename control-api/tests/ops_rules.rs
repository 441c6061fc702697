//! The operations files shipped in `ops/` (issue 17): the Prometheus rules pass
//! `promtool check rules` and their unit tests (`promtool test rules`); every expression of
//! the Grafana dashboard and of the rules names only metrics the dialer exports (found in
//! the source: `metrics::counter!/gauge!/histogram!`) or recording rules define; the systemd
//! unit passes `systemd-analyze verify`.
//!
//! promtool comes with Debian's `prometheus` (scripts/setup installs it): missing, the
//! promtool tests are skipped locally and fail in CI. Without `systemd-analyze` the unit
//! test is skipped (said on stderr).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ops(rel: &str) -> PathBuf {
    repo().join("ops").join(rel)
}

/// Whether `tool` runs; a missing tool skips the test, except in CI for `required` ones.
fn have(tool: &str, required: bool) -> bool {
    match Command::new(tool).arg("--version").output() {
        Ok(_) => true,
        Err(e) => {
            let why = format!("{tool} is not runnable ({e})");
            if required && std::env::var_os("CI").is_some() {
                panic!("{why}; CI is set, so this is a failure, not a skip");
            }
            eprintln!("SKIPPED: {why}");
            false
        }
    }
}

#[test]
fn promtool_checks_the_rules() {
    if !have("promtool", true) {
        return;
    }
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(ops("prometheus/dialer.rules.yml"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn promtool_rule_unit_tests_pass() {
    if !have("promtool", true) {
        return;
    }
    let out = Command::new("promtool")
        .args(["test", "rules", "dialer.rules.test.yml"])
        .current_dir(ops("prometheus"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

/// The metric-name constants of `engine/src/metrics.rs` (`pub const NAME: &str = "...";`),
/// by constant name: the engine records through them rather than string literals.
fn metric_consts() -> std::collections::HashMap<String, String> {
    let text = std::fs::read_to_string(repo().join("engine/src/metrics.rs")).expect("metrics.rs");
    text.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("pub const ")?;
            let (name, value) = rest.split_once(": &str = \"")?;
            Some((name.to_string(), value.split('"').next()?.to_string()))
        })
        .collect()
}

/// Metric names the code registers with the `metrics` macros, histograms with their
/// `_bucket`, `_sum` and `_count` series.
fn exported_metrics() -> BTreeSet<String> {
    let consts = metric_consts();
    let mut out = BTreeSet::new();
    for dir in ["engine/src", "control-api/src", "codecs/src"] {
        walk(&repo().join(dir), &mut |text| {
            for kind in ["counter!(", "gauge!(", "histogram!("] {
                let mut rest = text;
                while let Some(i) = rest.find(kind) {
                    // `describe_counter!(` documents a metric; it does not emit one.
                    let emits = !rest[..i].ends_with('_');
                    rest = &rest[i + kind.len()..];
                    let arg = rest.trim_start();
                    let name = match arg.strip_prefix('"') {
                        Some(lit) => &lit[..lit.find('"').unwrap_or(0)],
                        // A constant of engine::metrics (`m::CALLS_COMPLETED`): its value.
                        None => {
                            let end = arg
                                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                                .unwrap_or(arg.len());
                            let ident = arg[..end].rsplit("::").next().unwrap_or("");
                            consts.get(ident).map(String::as_str).unwrap_or("")
                        }
                    };
                    if !emits || name.is_empty() {
                        continue;
                    }
                    out.insert(name.to_string());
                    if kind == "histogram!(" {
                        for s in ["_bucket", "_sum", "_count"] {
                            out.insert(format!("{name}{s}"));
                        }
                    }
                }
            }
        });
    }
    out
}

fn walk(dir: &Path, f: &mut dyn FnMut(&str)) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, f);
        } else if p.extension().is_some_and(|x| x == "rs") {
            f(&std::fs::read_to_string(&p).unwrap());
        }
    }
}

/// Removes `open ... close` spans (nesting-aware) and quoted strings from a PromQL
/// expression.
fn strip(expr: &str, open: char, close: char) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in expr.chars() {
        if c == open {
            depth += 1;
        } else if c == close && depth > 0 {
            depth -= 1;
        } else if depth == 0 {
            out.push(c);
        }
    }
    out
}

/// The metric names (and recording rule names) a PromQL expression selects: what is
/// left after removing strings, label matchers, ranges, grouping clauses, functions,
/// operators, keywords and numbers.
fn metric_names(expr: &str) -> Vec<String> {
    let mut e = String::new();
    let mut in_str = false;
    for c in expr.chars() {
        if c == '"' {
            in_str = !in_str;
        } else if !in_str {
            e.push(c);
        }
    }
    let e = strip(&strip(&e, '{', '}'), '[', ']');
    let chars: Vec<char> = e.chars().collect();
    let mut names = vec![];
    let mut i = 0;
    let mut skip_group = false;
    while i < chars.len() {
        let c = chars[i];
        if !(c.is_ascii_alphabetic() || c == '_' || c == ':') || (i > 0 && chars[i - 1] == '$') {
            if c == '(' && skip_group {
                // A grouping label list: skip to its closing parenthesis.
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                skip_group = false;
            }
            i += 1;
            // Digits glued to a name were taken with it; lone numbers are skipped here.
            continue;
        }
        let start = i;
        while i < chars.len()
            && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
        {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let next = chars[i..].iter().find(|c| !c.is_whitespace());
        const GROUPING: &[&str] = &[
            "by",
            "without",
            "on",
            "ignoring",
            "group_left",
            "group_right",
        ];
        const KEYWORDS: &[&str] = &[
            "and",
            "or",
            "unless",
            "bool",
            "offset",
            "Inf",
            "NaN",
            "inf",
            "nan",
            // Aggregations written `sum by (x) (...)`: the word after them is not `(`.
            "sum",
            "min",
            "max",
            "avg",
            "count",
            "group",
            "stddev",
            "stdvar",
            "topk",
            "bottomk",
            "quantile",
            "count_values",
        ];
        if GROUPING.contains(&word.as_str()) {
            skip_group = true;
        } else if next == Some(&'(') || KEYWORDS.contains(&word.as_str()) {
            // A function or aggregation, or an operator word.
        } else if start > 0 && chars[start - 1].is_ascii_digit() {
            // A duration or exponent suffix.
        } else {
            names.push(word);
        }
    }
    names
}

/// `expr:` values of a rules file (inline or `|` blocks) and the `record:` names.
fn rules() -> (Vec<String>, BTreeSet<String>) {
    let text = std::fs::read_to_string(ops("prometheus/dialer.rules.yml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (mut exprs, mut records) = (vec![], BTreeSet::new());
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        if let Some(r) = t.strip_prefix("- record:") {
            records.insert(r.trim().to_string());
        } else if let Some(v) = t.strip_prefix("expr:") {
            let v = v.trim();
            if v == "|" || v == ">" {
                let indent = lines[i].len() - t.len();
                let mut block = String::new();
                while i + 1 < lines.len() {
                    let l = lines[i + 1];
                    if !l.trim().is_empty() && l.len() - l.trim_start().len() <= indent {
                        break;
                    }
                    block.push_str(l);
                    block.push('\n');
                    i += 1;
                }
                exprs.push(block);
            } else {
                exprs.push(v.to_string());
            }
        }
        i += 1;
    }
    (exprs, records)
}

fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(ops("grafana/dialer.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let mut out = vec![];
    fn visit(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                        // Template variable queries: label_values(METRIC, LABEL).
                        ("definition", serde_json::Value::String(s)) => {
                            if let Some(inner) = s
                                .strip_prefix("label_values(")
                                .and_then(|r| r.strip_suffix(')'))
                            {
                                out.push(inner.split(',').next().unwrap_or("").to_string());
                            }
                        }
                        _ => visit(x, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| visit(x, out)),
            _ => {}
        }
    }
    visit(&v, &mut out);
    out
}

#[test]
fn the_name_extractor_finds_metrics_and_nothing_else() {
    assert_eq!(
        metric_names(
            r#"sum by (trunk, le) (rate(a_total{x="y",z=~"b|c"}[5m])) / on (trunk) group_left (q) (b:c:rate5m > 0) or vector(0) and up{job="dialer"} == 0"#
        ),
        vec!["a_total", "b:c:rate5m", "up"]
    );
    assert_eq!(
        metric_names("histogram_quantile(0.99, sum by (le) (rate(h_bucket[$__rate_interval])))"),
        vec!["h_bucket"]
    );
    assert_eq!(metric_names(r#"x{trunk=~"$trunk"} offset 1m"#), vec!["x"]);
}

#[test]
fn dashboard_and_rules_name_only_exported_metrics_or_recording_rules() {
    let exported = exported_metrics();
    // The DESIGN core set must be found, or the source scan is broken.
    for m in [
        "dialer_call_attempts_total",
        "dialer_trunk_up",
        "dialer_rtp_send_lag_seconds_bucket",
    ] {
        assert!(exported.contains(m), "{m} not found among {exported:?}");
    }
    let (rule_exprs, records) = rules();
    assert!(records.len() >= 10, "{records:?}");
    let dash = dashboard_exprs();
    assert!(dash.len() >= 20, "{dash:?}");
    // Series Prometheus itself makes: scrape health and the alerts it evaluates.
    let builtin: BTreeSet<String> = ["up", "ALERTS"].iter().map(|s| s.to_string()).collect();
    let mut bad = vec![];
    let mut used = BTreeSet::new();
    for (origin, e) in rule_exprs
        .iter()
        .map(|e| ("rules", e))
        .chain(dash.iter().map(|e| ("dashboard", e)))
    {
        let names = metric_names(e);
        assert!(!names.is_empty(), "{origin}: no metric in {e:?}");
        for n in names {
            if !(exported.contains(&n) || records.contains(&n) || builtin.contains(&n)) {
                bad.push(format!("{origin}: {n} in {e:?}"));
            }
            used.insert(n);
        }
    }
    assert!(
        bad.is_empty(),
        "names neither exported nor recorded:\n{}",
        bad.join("\n")
    );
    // Every recording rule is shown or used somewhere.
    let unused: Vec<_> = records.iter().filter(|r| !used.contains(*r)).collect();
    assert!(
        unused.is_empty(),
        "recording rules used nowhere: {unused:?}"
    );
}

#[test]
fn systemd_unit_verifies() {
    if !have("systemd-analyze", false) {
        return;
    }
    // verify wants ExecStart's binary to exist: point it at the built one.
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_dialer");
    let unit = std::fs::read_to_string(ops("systemd/dialer.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/dialer serve"));
    std::fs::write(
        dir.path().join("dialer.service"),
        unit.replace("/usr/local/bin/dialer", bin),
    )
    .unwrap();
    let dropin = dir.path().join("dialer.service.d");
    std::fs::create_dir(&dropin).unwrap();
    std::fs::copy(
        ops("systemd/dialer.service.d/raw-send.conf"),
        dropin.join("raw-send.conf"),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("dialer.service"))
        .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.path().display()))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    // Clean: no warning about unknown keys or values, in the unit or the drop-in.
    assert!(
        text.trim().is_empty(),
        "systemd-analyze verify is not clean:\n{text}"
    );
}
