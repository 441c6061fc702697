//! End-to-end media of `dialer campaign run` against SIPp (issue 9, "prompts encoded once"):
//! the trunk's `ptime_ms` and codec list reach the wire. SIPp answers (the offer's first
//! payload type and its `a=ptime`) and points the media at a UDP socket of this test, which
//! records every RTP packet; the payloads are compared byte for byte with the prompt encoded by
//! the `codecs` crate for the negotiated codec and packet time.
//!
//! Loopback only, free ports, temporary directories; every child process is bounded in time
//! and killed on failure. Needs `sipp` (skipped locally without it, a failure in CI) and the
//! `dialer` binary (`cargo build -p control-api --bin dialer`, or `DIALER_BIN`).

use e2e::{dialer_bin, free_port, sipp_available};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use codecs::{Codec, EncodeSettings, PreparedAudio};
use tempfile::TempDir;

/// A 1 s tone at 8 kHz: the message.
fn write_prompt(dir: &Path) -> (PathBuf, Vec<u8>) {
    let path = dir.join("prompt.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..8000u32 {
        let t = i as f32 / 8000.0;
        w.write_sample(((t * 440.0 * std::f32::consts::TAU).sin() * 12000.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

/// One RTP packet as the carrier's media address received it.
#[derive(Debug, Clone)]
struct Rtp {
    at: Instant,
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: Vec<u8>,
}

/// The carrier's media address: records every RTP packet until dropped.
struct Sink {
    port: u16,
    packets: Arc<std::sync::Mutex<Vec<Rtp>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Sink {
    fn start() -> Sink {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let packets = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, st) = (packets.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !st.load(Ordering::Relaxed) {
                let Ok(n) = sock.recv(&mut buf) else { continue };
                let b = &buf[..n];
                // RTP only (RTCP has a second byte of 192-223).
                if n < 12 || b[0] >> 6 != 2 || (192..=223).contains(&b[1]) {
                    continue;
                }
                p.lock().unwrap().push(Rtp {
                    at: Instant::now(),
                    pt: b[1] & 0x7f,
                    seq: u16::from_be_bytes([b[2], b[3]]),
                    ts: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                    ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
                    payload: b[12..].to_vec(),
                });
            }
        });
        Sink {
            port,
            packets,
            stop,
            thread: Some(thread),
        }
    }

    fn packets(&self) -> Vec<Rtp> {
        self.packets.lock().unwrap().clone()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// SIPp as the carrier, answering with the offer's first codec and its `a=ptime`.
struct Carrier {
    child: Child,
    port: u16,
}

impl Carrier {
    fn start(rtp_port: u16) -> Carrier {
        let port = free_port();
        let scen = Path::new(env!("CARGO_MANIFEST_DIR")).join("sipp/uas_answer_ptime.xml");
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(scen)
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1000"])
            .args(["-key", "rtp_port", &rtp_port.to_string()])
            .args(["-mp", &free_port().to_string(), "-nostdin"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sipp");
        thread::sleep(Duration::from_millis(300));
        Carrier { child, port }
    }
}

impl Drop for Carrier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a two-contact campaign on one trunk with these extra trunk keys; returns the RTP the
/// carrier's media address received.
fn campaign(trunk_keys: &str) -> (Vec<Rtp>, Vec<u8>, PathBuf, TempDir) {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let sink = Sink::start();
    let carrier = Carrier::start(sink.port);
    let rtp = free_port() / 2 * 2;
    let (lo, hi) = if rtp > 60000 {
        (20000, 29998)
    } else {
        (rtp, rtp + 200)
    };
    let config = d.join("dialer.toml");
    std::fs::write(
        &config,
        format!(
            "sip_bind = \"127.0.0.1:0\"\nrtp_ports = \"{lo}-{hi}\"\n[[trunk]]\nname = \"t\"\n\
             proxy = \"127.0.0.1:{}\"\nmax_channels = 4\ncps = 10\nring_timeout_s = 10\n{trunk_keys}\n",
            carrier.port
        ),
    )
    .unwrap();
    let contacts = d.join("contacts.csv");
    std::fs::write(
        &contacts,
        "number,street,house_number,zone,source\n0771 200001,Via Roma,1,z1,directory\n\
         0771 200002,Via Roma,2,z1,directory\n",
    )
    .unwrap();
    let (prompt, bytes) = write_prompt(d);
    let db = d.join("dialer.db");
    let mut child = Command::new(dialer_bin())
        .args([
            "campaign", "run", "--tenant", "t", "--name", "media", "--all",
        ])
        .arg("--db")
        .arg(&db)
        .arg("--config")
        .arg(&config)
        .arg("--contacts")
        .arg(&contacts)
        .arg("--prompt")
        .arg(&prompt)
        .args(["--no-window", "--fast-sync"])
        .env("DIALER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(d.join("dialer.err")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("dialer did not finish within 60 s");
        }
        thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(d.join("dialer.err")).unwrap_or_default();
    assert!(status.success(), "dialer failed: {status}\n{err}");
    thread::sleep(Duration::from_millis(100));
    let mut cache = db.into_os_string();
    cache.push(".prompt-cache");
    (sink.packets(), bytes, cache.into(), dir)
}

/// Checks that the packets are two whole streams of `codec` at `ptime_ms`, with payload type
/// `pt`, each payload identical to the prompt's encoding, paced at `ptime_ms`.
fn check_streams(packets: &[Rtp], source: &[u8], codec: Codec, pt: u8, ptime_ms: u32) {
    let expected = PreparedAudio::from_bytes(source, &EncodeSettings::default())
        .unwrap()
        .encode(codec, ptime_ms)
        .unwrap();
    let mut ssrcs: Vec<u32> = packets.iter().map(|p| p.ssrc).collect();
    ssrcs.sort_unstable();
    ssrcs.dedup();
    assert_eq!(ssrcs.len(), 2, "one stream per contact");
    // After the message, silence through the finish hold (so a callee's jitter buffer plays
    // the last word before the BYE): packets of one repeated silence payload.
    let tail = engine::media::pacer::FINISH_HOLD.as_millis() as usize / ptime_ms as usize;
    for ssrc in ssrcs {
        let all: Vec<&Rtp> = packets.iter().filter(|p| p.ssrc == ssrc).collect();
        assert_eq!(
            all.len(),
            expected.frame_count() + tail,
            "every frame of the message, then the silence tail"
        );
        let (s, silence) = all.split_at(expected.frame_count());
        assert!(
            silence
                .iter()
                .all(|p| p.payload == silence[0].payload && p.pt == pt),
            "the tail is one silence packet repeated"
        );
        for (n, p) in s.iter().enumerate() {
            assert_eq!(p.pt, pt, "payload type of packet {n}");
            assert_eq!(
                p.payload.as_slice(),
                expected.frame(n).unwrap(),
                "payload of packet {n} is the prompt's frame {n}"
            );
            if n > 0 {
                assert_eq!(p.seq, s[n - 1].seq.wrapping_add(1), "in sequence");
                assert_eq!(
                    p.ts.wrapping_sub(s[n - 1].ts),
                    codec.timestamp_step(ptime_ms),
                    "timestamp step"
                );
            }
        }
        // Paced at the packet time: the mean interval over the stream, on our clock.
        let span = s[s.len() - 1].at - s[0].at;
        let mean_ms = span.as_secs_f64() * 1000.0 / (s.len() - 1) as f64;
        eprintln!(
            "{codec} {ptime_ms} ms: {} packets of {} bytes, mean interval {mean_ms:.2} ms",
            s.len(),
            s[0].payload.len()
        );
        assert!(
            (mean_ms - f64::from(ptime_ms)).abs() < 3.0,
            "mean interval {mean_ms:.2} ms, ptime {ptime_ms} ms"
        );
    }
}

#[test]
fn trunk_ptime_30_sends_240_byte_pcma_every_30_ms() {
    if !sipp_available() {
        return;
    }
    let (packets, source, cache, _dir) = campaign("codecs = [\"PCMA\"]\nptime_ms = 30");
    assert!(!packets.is_empty(), "no RTP reached the carrier");
    assert!(packets.iter().all(|p| p.payload.len() == 240));
    check_streams(&packets, &source, Codec::Pcma, 8, 30);
    // The encodings were stored once in the prompt cache (every codec at 20 and 30 ms where
    // it can packetise them: Opus has no 30 ms frame).
    let stored = std::fs::read_dir(&cache)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "prompt")
        })
        .count();
    assert_eq!(stored, codecs::wanted_encodings(&[30]).len());
}

#[test]
fn trunk_offering_g722_streams_g722_when_answered() {
    if !sipp_available() {
        return;
    }
    let (packets, source, _cache, _dir) = campaign("codecs = [\"G722\", \"PCMA\"]");
    assert!(!packets.is_empty(), "no RTP reached the carrier");
    assert!(packets.iter().all(|p| p.payload.len() == 160));
    check_streams(&packets, &source, Codec::G722, 9, 20);
}
