//! Issue 14 acceptance with real softphones from Debian as the callees: baresip (answers
//! at once, keys sent by its `sndcode` command over its ctrl_tcp control socket, what it
//! decodes recorded by its sndfile module) and linphonec (scripted on stdin: wav files
//! instead of a soundcard, the call recorded, auto-answer, a key typed as a digit line).
//! Keys pressed on a real phone reach the dialer (the confirmation works), and what the
//! phone played out holds the message to its last syllable (the BYE waits for its jitter
//! buffer). Plain UDP SIP and RTP on loopback; free ports; children killed on drop.
//!
//! Needs `baresip` (Debian baresip-core) and `linphonec` (Debian linphone-cli) — a failure
//! with CI set, a skip otherwise — and the `dialer` binary
//! (`cargo build -p control-api --bin dialer`).

use e2e::{dialer_bin, free_port, tone_power, tool_available};
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use engine::store::{AttemptRecord, SqliteOptions, SqliteStore, Store};
use tempfile::TempDir;

const NUMBER: &str = "+390773100001";
const TENANT: &str = "terracina";
/// The message: 2 s at 440 Hz, then its "last syllable", 300 ms at 1 kHz.
const BODY_MS: u32 = 2000;
const LAST_MS: u32 = 300;

/// baresip answering at once on a UDP port, recording what it decodes into its directory;
/// keys sent with its `sndcode` command (ctrl_tcp) go out as RFC 4733 events.
struct Baresip {
    child: Child,
    port: u16,
    ctrl: u16,
    dir: PathBuf,
}

impl Baresip {
    /// Starts baresip on fresh ports. The ports are free when picked but another test may
    /// take one before baresip binds it (its SIP listener needs the UDP and the TCP port),
    /// and then baresip gives up: that start is retried on new ports, three times at most.
    fn start(dir: &Path) -> Baresip {
        let mut logs = String::new();
        for attempt in 0..3 {
            match Baresip::try_start(&dir.join(format!("baresip-{attempt}"))) {
                Ok(b) => return b,
                Err(log) => logs.push_str(&log),
            }
        }
        panic!("baresip did not listen in three starts; its logs:\n{logs}");
    }

    /// One start: Ok once baresip listens, Err with its log when it exited or did not
    /// listen within 10 s (it is killed then).
    fn try_start(conf: &Path) -> Result<Baresip, String> {
        let port = free_port();
        let ctrl = free_port();
        std::fs::create_dir_all(conf).unwrap();
        std::fs::write(
            conf.join("config"),
            format!(
                "poll_method epoll\nsip_listen 127.0.0.1:{port}\n\
                 module_path /usr/lib/baresip/modules\nmodule g711.so\n\
                 module aubridge.so\nmodule sndfile.so\nmodule_app account.so\n\
                 module_app menu.so\nmodule_app ctrl_tcp.so\nctrl_tcp_listen 127.0.0.1:{ctrl}\n\
                 audio_player aubridge,x\naudio_source aubridge,x\nsnd_path {}\n",
                conf.display()
            ),
        )
        .unwrap();
        std::fs::write(
            conf.join("accounts"),
            format!("<sip:{NUMBER}@127.0.0.1>;answermode=auto;regint=0\n"),
        )
        .unwrap();
        let log = std::fs::File::create(conf.join("out.log")).unwrap();
        let mut child = Command::new("baresip")
            .arg("-f")
            .arg(conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(conf.join("out.log")).unwrap_or_default();
                return Err(format!(
                    "--- ports {port}/{ctrl}, exited: {exited}\n{log}\n"
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(Baresip {
            child,
            port,
            ctrl,
            dir: conf.to_path_buf(),
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("out.log")).unwrap_or_default()
    }

    /// Waits for the call to be established (baresip's log), at most `wait`.
    fn established(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if self.log().contains("Call established") {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Presses `keys` on the phone: baresip's `sndcode` command, a netstring of JSON on
    /// its control socket.
    fn press(&mut self, keys: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.ctrl)).expect("baresip ctrl_tcp");
        let cmd = format!(r#"{{"command":"sndcode","params":"{keys}","token":"k"}}"#);
        s.write_all(format!("{}:{cmd},", cmd.len()).as_bytes())
            .unwrap();
        s.flush().unwrap();
        // Its answer says the command ran.
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap_or(0);
        assert!(n > 0, "baresip did not answer sndcode\n{}", self.log());
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

fn write_prompt(path: &Path) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(BODY_MS + LAST_MS) * 8 {
        let t = f64::from(i) / 8000.0;
        let hz = if i < BODY_MS * 8 { 440.0 } else { 1000.0 };
        w.write_sample(((t * hz * std::f64::consts::TAU).sin() * 12000.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

/// A one-contact campaign to the softphone at `port`, run in the background; the trunk
/// accepts the phone's media by `latch` (`sdp` or `symmetric`).
fn start_campaign(dir: &Path, port: u16, until: &str, latch: &str) -> Child {
    let config = dir.join("dialer.toml");
    std::fs::write(
        &config,
        format!(
            "sip_bind = \"127.0.0.1:0\"\n[retry]\nno_answer = {{ interval_s = 1, max_attempts = 1 }}\n\
             [[trunk]]\nname = \"phone\"\nproxy = \"127.0.0.1:{port}\"\nmax_channels = 2\n\
             cps = 5\nring_timeout_s = 10\ncodecs = [\"PCMU\"]\nmedia_latch = \"{latch}\"\n"
        ),
    )
    .unwrap();
    let contacts = dir.join("contacts.csv");
    std::fs::write(
        &contacts,
        "number,street,house_number,zone,source\n0773 100001,Via Appia,1,z1,directory\n",
    )
    .unwrap();
    let prompt = dir.join("message.wav");
    write_prompt(&prompt);
    Command::new(dialer_bin())
        .args([
            "campaign", "run", "--tenant", TENANT, "--name", "phone", "--all",
        ])
        .arg("--db")
        .arg(dir.join("dialer.db"))
        .arg("--config")
        .arg(&config)
        .arg("--contacts")
        .arg(&contacts)
        .arg("--prompt")
        .arg(&prompt)
        .args(["--priority", "emergency", "--until", until])
        .args(["--no-window", "--fast-sync"])
        .env("DIALER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("dialer.err")).unwrap(),
        ))
        .spawn()
        .unwrap()
}

/// Waits (at most 60 s) for the campaign to end; its attempts.
fn finish(mut child: Child, dir: &Path, callee_log: &dyn Fn() -> String) -> Vec<AttemptRecord> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let err = std::fs::read_to_string(dir.join("dialer.err")).unwrap_or_default();
            assert!(st.success(), "dialer failed: {err}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the campaign did not finish in 60 s\n{}", callee_log());
        }
        thread::sleep(Duration::from_millis(50));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = SqliteStore::open(&dir.join("dialer.db"), SqliteOptions::default())
            .await
            .unwrap();
        let c = s
            .campaign_by_name(TENANT, "phone")
            .await
            .unwrap()
            .expect("campaign");
        s.attempts(c.id, 0, 100).await.unwrap()
    })
}

/// How much of the last syllable (1 kHz) the phone played out: 10 ms windows after the
/// last 440 Hz one where 1 kHz dominates, in ms.
fn last_syllable_ms(x: &[i16]) -> u32 {
    let windows: Vec<(f64, f64)> = x
        .chunks_exact(80)
        .map(|w| (tone_power(w, 440.0), tone_power(w, 1000.0)))
        .collect();
    let Some(last_body) = windows
        .iter()
        .rposition(|(a, b)| a > &(10.0 * b) && *a > 1e9)
    else {
        return 0;
    };
    let tail = windows[last_body + 1..]
        .iter()
        .filter(|(a, b)| b > &(10.0 * a) && *b > 1e9)
        .count();
    tail as u32 * 10
}

#[test]
fn baresip_keys_reach_the_dialer_and_confirm() {
    if !tool_available("baresip", &["-h"], "baresip-core") {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let mut phone = Baresip::start(dir);
    let run = start_campaign(dir, phone.port, "confirmed", "symmetric");
    assert!(
        phone.established(Duration::from_secs(20)),
        "no call reached baresip\n{}",
        phone.log()
    );
    // A resident who listens for a second, then presses 1.
    thread::sleep(Duration::from_millis(1000));
    phone.press("1");
    let attempts = finish(run, dir, &|| phone.log());
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    let a = &attempts[0];
    assert_eq!(a.dtmf.as_deref(), Some("1"), "{a:?}\n{}", phone.log());
    assert_eq!(a.result.map(|r| r.as_str()), Some("confirmed"), "{a:?}");
}

#[test]
fn baresip_plays_out_the_whole_message() {
    if !tool_available("baresip", &["-h"], "baresip-core") {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let phone = Baresip::start(dir);
    let run = start_campaign(dir, phone.port, "heard", "sdp");
    let attempts = finish(run, dir, &|| phone.log());
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].result.map(|r| r.as_str()), Some("heard"));
    let heard = phone
        .heard()
        .unwrap_or_else(|| panic!("baresip recorded nothing\n{}", phone.log()));
    let got = last_syllable_ms(&heard);
    if std::env::var_os("AMD_DEBUG").is_some() {
        let w: Vec<String> = heard
            .chunks_exact(80)
            .map(|w| {
                format!(
                    "{:.0}/{:.0}",
                    tone_power(w, 440.0).log10() * 10.0,
                    tone_power(w, 1000.0).log10() * 10.0
                )
            })
            .collect();
        eprintln!(
            "{} samples; last windows 440/1k dB: {:?}",
            heard.len(),
            &w[w.len().saturating_sub(50)..]
        );
        eprintln!("{}", phone.log());
    }
    eprintln!("baresip played {got} ms of the {LAST_MS} ms last syllable");
    // The whole last syllable, give or take one 20 ms packet's edge.
    assert!(
        got + 20 >= LAST_MS,
        "last syllable cut: {got} of {LAST_MS} ms"
    );
}

/// linphonec answering on a UDP port, scripted on its stdin: wav files instead of a
/// soundcard, the call's received audio recorded, auto-answer; a digit line sends a key.
struct Linphone {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    port: u16,
    dir: PathBuf,
}

impl Linphone {
    fn start(dir: &Path) -> Linphone {
        let port = free_port();
        let rtp = free_port() / 2 * 2;
        let conf = dir.join("linphone");
        std::fs::create_dir_all(conf.join("home/.local/share/linphone")).unwrap();
        std::fs::write(
            conf.join("rc"),
            format!(
                "[sip]\nsip_port={port}\nsip_tcp_port=0\nuse_rfc2833=1\nuse_info=0\n\
                 [rtp]\naudio_rtp_port={rtp}\n[sound]\nechocancellation=0\n"
            ),
        )
        .unwrap();
        let out = std::fs::File::create(conf.join("out.log")).unwrap();
        let mut child = Command::new("linphonec")
            .arg("-c")
            .arg(conf.join("rc"))
            .args(["-d", "3", "-l"])
            .arg(conf.join("debug.log"))
            .env("HOME", conf.join("home"))
            .stdin(Stdio::piped())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let mut l = Linphone {
            child,
            stdin,
            port,
            dir: conf.clone(),
        };
        let rec = conf.join("heard.wav");
        l.say(&format!(
            "soundcard use files\nrecord {}\nautoanswer enable\n",
            rec.display()
        ));
        let deadline = Instant::now() + Duration::from_secs(15);
        while !l.log().contains("Auto answer enabled")
            || UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            assert!(
                Instant::now() < deadline,
                "linphonec did not start\n{}",
                l.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
        l
    }

    fn say(&mut self, line: &str) {
        let s = self.stdin.as_mut().expect("stdin");
        s.write_all(line.as_bytes()).unwrap();
        s.flush().unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("out.log")).unwrap_or_default()
    }

    /// Waits for the call to be connected (its stdout), at most `wait`.
    fn connected(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if self.log().contains("connected.") {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The call's received audio (8 kHz, 16-bit) as linphone recorded it.
    fn heard(&self) -> Option<Vec<i16>> {
        let mut r = hound::WavReader::open(self.dir.join("heard.wav")).ok()?;
        Some(r.samples::<i16>().map_while(Result::ok).collect())
    }
}

impl Drop for Linphone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn linphone_keys_reach_the_dialer_and_confirm() {
    if !tool_available("linphonec", &["-v"], "linphone-cli") {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let mut phone = Linphone::start(dir);
    let run = start_campaign(dir, phone.port, "confirmed", "symmetric");
    assert!(
        phone.connected(Duration::from_secs(20)),
        "no call reached linphonec\n{}",
        phone.log()
    );
    thread::sleep(Duration::from_millis(1000));
    phone.say("1\n");
    let attempts = finish(run, dir, &|| phone.log());
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    let a = &attempts[0];
    assert_eq!(a.dtmf.as_deref(), Some("1"), "{a:?}\n{}", phone.log());
    assert_eq!(a.result.map(|r| r.as_str()), Some("confirmed"), "{a:?}");
}

#[test]
fn linphone_plays_out_the_whole_message() {
    if !tool_available("linphonec", &["-v"], "linphone-cli") {
        return;
    }
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let phone = Linphone::start(dir);
    let run = start_campaign(dir, phone.port, "heard", "sdp");
    let attempts = finish(run, dir, &|| phone.log());
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].result.map(|r| r.as_str()), Some("heard"));
    // linphone writes its recording when the call closes.
    let deadline = Instant::now() + Duration::from_secs(5);
    let heard = loop {
        match phone.heard() {
            Some(h) if !h.is_empty() => break h,
            _ if Instant::now() > deadline => panic!("linphonec recorded nothing\n{}", phone.log()),
            _ => thread::sleep(Duration::from_millis(100)),
        }
    };
    let got = last_syllable_ms(&heard);
    eprintln!("linphone played {got} ms of the {LAST_MS} ms last syllable");
    assert!(
        got + 20 >= LAST_MS,
        "last syllable cut: {got} of {LAST_MS} ms"
    );
}
