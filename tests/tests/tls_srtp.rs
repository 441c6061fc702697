//! SIP over TLS with SRTP (issue 11, item 5) against baresip, a real softphone from Debian:
//! `dialer campaign run` calls baresip over TLS (its certificate signed by a CA this test
//! makes, the name checked), baresip answers with `srtp-mand` media encryption, decrypts our
//! SRTP and records what it heard (its `sndfile` module); the recording must be our 440 Hz
//! message. Then what must fail fails closed: a carrier whose certificate our CA did not sign
//! gets no call (no fallback to clear text), and a callee that will not encrypt ends the call
//! of a trunk with `srtp = "required"`.
//!
//! Loopback only, free ports, temporary directories, every child bounded in time. Needs
//! `baresip` (Debian package baresip-core; a failure with CI set, a skip otherwise) and the
//! `dialer` binary.

use e2e::{dialer_bin, missing, tone_power, tool_available};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

const NUMBER: &str = "+390771200001";

fn baresip_available() -> bool {
    if !tool_available("baresip", &["-h"], "baresip-core") {
        return false;
    }
    let ok = Path::new("/usr/lib/baresip/modules/srtp.so").is_file();
    if !ok {
        missing("baresip's srtp module is not installed (Debian: baresip-core)");
    }
    ok
}

/// A port free for UDP and TCP, and the next one free for TCP (baresip listens for TLS on
/// its SIP port + 1).
fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if port < 65535
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 1)).is_ok()
        {
            return port;
        }
    }
    panic!("no free loopback ports");
}

/// A CA and a certificate it signs for 127.0.0.1 and localhost (baresip's), as PEM files.
struct Pki {
    ca: PathBuf,
    leaf_and_key: PathBuf,
}

fn make_pki(dir: &Path, name: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} test CA"));
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let leaf = params.signed_by(&key, &ca, &ca_key).unwrap();
    let pki = Pki {
        ca: dir.join(format!("{name}-ca.pem")),
        leaf_and_key: dir.join(format!("{name}-leaf.pem")),
    };
    std::fs::write(&pki.ca, ca.pem()).unwrap();
    std::fs::write(
        &pki.leaf_and_key,
        format!("{}{}", leaf.pem(), key.serialize_pem()),
    )
    .unwrap();
    pki
}

/// baresip answering `NUMBER` at once, over TLS with this certificate, recording what it
/// decodes into `dir`.
struct Baresip {
    child: Child,
    tls_port: u16,
    dir: PathBuf,
}

impl Baresip {
    fn start(dir: &Path, cert: &Path, mediaenc: &str) -> Baresip {
        let port = free_port_pair();
        let conf = dir.join("baresip");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(
            conf.join("config"),
            format!(
                "poll_method epoll\nsip_listen 127.0.0.1:{port}\nsip_certificate {}\n\
                 module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aubridge.so\n\
                 module srtp.so\nmodule sndfile.so\nmodule_app account.so\n\
                 audio_player aubridge,x\naudio_source aubridge,x\nsnd_path {}\n",
                cert.display(),
                conf.display()
            ),
        )
        .unwrap();
        let enc = match mediaenc {
            "none" => String::new(),
            m => format!(";mediaenc={m}"),
        };
        std::fs::write(
            conf.join("accounts"),
            format!("<sip:{NUMBER}@127.0.0.1>;answermode=auto{enc};regint=0\n"),
        )
        .unwrap();
        let log = std::fs::File::create(conf.join("out.log")).unwrap();
        let child = Command::new("baresip")
            .arg("-f")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            assert!(Instant::now() < deadline, "baresip did not listen for TLS");
            thread::sleep(Duration::from_millis(50));
        }
        Baresip {
            child,
            tls_port: port + 1,
            dir: conf,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("out.log")).unwrap_or_default()
    }

    /// The samples baresip decoded from our media (its `*-dec.wav`), if it recorded any.
    fn heard(&self) -> Option<Vec<i16>> {
        let wav = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with("-dec.wav"))?;
        let mut r = hound::WavReader::open(wav).ok()?;
        Some(r.samples::<i16>().map_while(Result::ok).collect())
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a one-contact campaign on a TLS trunk to `port` for at most `wait`; returns its last
/// JSON line (`None` when it was stopped unfinished) and the dialer's log.
fn campaign(
    dir: &Path,
    port: u16,
    ca: &Path,
    srtp: &str,
    wait: Duration,
) -> (Option<serde_json::Value>, String) {
    let config = dir.join("dialer.toml");
    std::fs::write(
        &config,
        format!(
            "sip_bind = \"127.0.0.1:0\"\n[sip]\ntls_ca = \"{}\"\n[[trunk]]\nname = \"t\"\n\
             proxy = \"127.0.0.1:{port}\"\ntransport = \"tls\"\nsrtp = \"{srtp}\"\n\
             max_channels = 2\ncps = 5\nring_timeout_s = 10\n",
            ca.display()
        ),
    )
    .unwrap();
    let contacts = dir.join("contacts.csv");
    std::fs::write(
        &contacts,
        "number,street,house_number,zone,source\n0771 200001,Via Roma,1,z1,directory\n",
    )
    .unwrap();
    let prompt = dir.join("prompt.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&prompt, spec).unwrap();
    for i in 0..16000u32 {
        let t = f64::from(i) / 8000.0;
        w.write_sample(((t * 440.0 * std::f64::consts::TAU).sin() * 12000.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
    let err = dir.join("dialer.err");
    let mut child = Command::new(dialer_bin())
        .args(["campaign", "run", "--tenant", "t", "--name", "tls", "--all"])
        .arg("--db")
        .arg(dir.join("dialer.db"))
        .arg("--config")
        .arg(&config)
        .arg("--contacts")
        .arg(&contacts)
        .arg("--prompt")
        .arg(&prompt)
        .args(["--no-window", "--fast-sync"])
        .env("DIALER_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + wait;
    let mut finished = true;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            finished = false;
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let log = std::fs::read_to_string(&err).unwrap_or_default();
    let last = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("state").is_some());
    (last.filter(|_| finished), log)
}

/// The campaign's final line, or a failure naming what the dialer and the callee said.
fn finished(
    run: (Option<serde_json::Value>, String),
    callee: &Baresip,
) -> (serde_json::Value, String) {
    match run {
        (Some(v), log) => (v, log),
        (None, log) => panic!(
            "the campaign did not finish within 90 s\n{log}\n{}",
            callee.log()
        ),
    }
}

#[test]
fn baresip_hears_our_srtp_over_tls() {
    if !baresip_available() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let pki = make_pki(dir.path(), "carrier");
    let callee = Baresip::start(dir.path(), &pki.leaf_and_key, "srtp-mand");
    let run = campaign(
        dir.path(),
        callee.tls_port,
        &pki.ca,
        "required",
        Duration::from_secs(90),
    );
    let (last, log) = finished(run, &callee);
    assert_eq!(
        last["progress"]["answered"],
        1,
        "{last}\n{log}\n{}",
        callee.log()
    );
    thread::sleep(Duration::from_millis(300));
    let heard = callee
        .heard()
        .unwrap_or_else(|| panic!("baresip recorded nothing\n{}", callee.log()));
    assert!(heard.len() > 8000, "only {} samples heard", heard.len());
    // Our message is a 440 Hz tone: baresip decrypted it (a wrong key or tag would give
    // noise or nothing at all).
    let ratio = tone_power(&heard, 440.0) / tone_power(&heard, 1000.0).max(1.0);
    assert!(
        ratio > 1000.0,
        "440 Hz not dominant in what baresip heard ({ratio})"
    );
    assert!(
        callee.log().contains("srtp"),
        "baresip did not use SRTP:\n{}",
        callee.log()
    );
}

#[test]
fn a_carrier_our_ca_did_not_sign_gets_no_call() {
    if !baresip_available() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let carrier = make_pki(dir.path(), "carrier");
    let other = make_pki(dir.path(), "other");
    let callee = Baresip::start(dir.path(), &carrier.leaf_and_key, "srtp-mand");
    // The INVITE never leaves: no answer can come, so the run is stopped after a few seconds.
    let (_, log) = campaign(
        dir.path(),
        callee.tls_port,
        &other.ca,
        "required",
        Duration::from_secs(6),
    );
    assert!(
        !callee.log().contains("Call established"),
        "a call went through to an unverified peer:\n{}",
        callee.log()
    );
    assert!(log.contains("TLS handshake failed"), "{log}");
}

#[test]
fn required_srtp_ends_a_call_the_callee_will_not_encrypt() {
    if !baresip_available() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let pki = make_pki(dir.path(), "carrier");
    // No media encryption on baresip's side: it answers RTP/AVP without a key (or refuses
    // our RTP/SAVP offer); either way no audio may flow in clear.
    let callee = Baresip::start(dir.path(), &pki.leaf_and_key, "none");
    let run = campaign(
        dir.path(),
        callee.tls_port,
        &pki.ca,
        "required",
        Duration::from_secs(90),
    );
    let (last, log) = finished(run, &callee);
    assert_eq!(
        last["progress"]["answered"],
        0,
        "{last}\n{log}\n{}",
        callee.log()
    );
    assert!(callee
        .heard()
        .is_none_or(|h| h.iter().all(|&s| s.abs() < 64)));
}
