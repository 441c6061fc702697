//! Operations verbs and options of the `dialer` binary: `dialer check-config FILE` accepts a
//! good configuration (printing a summary) and rejects a bad one naming the key, without
//! starting anything; `--log-format json` writes one JSON object per log line.

use std::process::Command;

fn dialer() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dialer"));
    c.env_remove("DIALER_LOG_FORMAT").env("RUST_BACKTRACE", "0");
    c
}

#[test]
fn check_config_accepts_a_good_file_and_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[sip]\nlisten = \"127.0.0.1:5099\"\n[hep]\naddress = \"udp:127.0.0.1:9060\"\n\
         [[trunk]]\nname = \"a\"\nproxy = \"127.0.0.1:5070\"\nmax_channels = 30000\ncps = 5\n",
    )
    .unwrap();
    let out = dialer()
        .arg("check-config")
        .arg(&good)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(": OK"), "{stdout}");
    assert!(
        stdout.contains("trunk a: proxy 127.0.0.1:5070 cps 5 channels 30000"),
        "{stdout}"
    );
    assert!(stdout.contains("hep udp:127.0.0.1:9060"), "{stdout}");
    // 30,000 channels do not fit the default 20,000 RTP ports (two per call).
    assert!(stdout.contains("warning: media port range"), "{stdout}");
    // Nothing was started: no database appeared in the working directory.
    assert!(!dir.path().join("dialer.db").exists());

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[hep]\naddress = \"tcp:127.0.0.1:9060\"\n").unwrap();
    let out = dialer()
        .arg("check-config")
        .arg(&bad)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("hep.address"), "{stderr}");
    assert!(!dir.path().join("dialer.db").exists());
}

#[test]
fn json_log_format_writes_one_object_per_line() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "admin_token = \"ops-cli-token-0123456789\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [sip]\nlisten = \"127.0.0.1:0\"\n[store]\nurl = \"sqlite://{}\"\n",
            dir.path().join("d.db").display()
        ),
    )
    .unwrap();
    let mut child = dialer()
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&cfg)
        .env("DIALER_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut logs = vec![];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // Log lines come before the banner `dialer serve` prints once it listens.
    while let Ok(line) = rx.recv_timeout(deadline - std::time::Instant::now()) {
        if line.starts_with("dialer: API") {
            break;
        }
        if !line.starts_with("dialer:") {
            logs.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(!logs.is_empty(), "no log line at info level");
    for l in &logs {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{l}"
        );
    }

    let out = dialer()
        .args(["--log-format", "yaml", "check-config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unknown log format is refused");
    let out = dialer()
        .args(["check-config"])
        .arg(&cfg)
        .env("DIALER_LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "an unknown DIALER_LOG_FORMAT is refused"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("DIALER_LOG_FORMAT"));
}
