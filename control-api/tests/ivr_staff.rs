//! The staff line end to end (issue 12 acceptance): a SIPp caller enters the PIN by RFC
//! 4733 keys, speaks a 5 s message (a chirp written into a pcap by this test, in PCMA and
//! in G.722), stops with `#`, hears it back, keeps it (1) and sends it now (1); keys and
//! message are one continuous RTP stream (see rtp_pcap). The test then finds the campaign
//! the call created (who, when and the audio's SHA-256 in its name), checks that the kept
//! prompt's audio correlates with what the caller sent, and that the town's residents
//! (SIPp callees answering in the same codec, their RTP recorded by the test) received
//! that audio, and that a resident calling the citizens' line and pressing 3 (by INFO)
//! hears it as the town's latest message.
//!
//! Needs `sipp` and `espeak-ng` (skipped locally without them, a failure in CI).

mod ops_common;
#[path = "rtp_pcap/mod.rs"]
mod rtp_pcap;

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ops_common::{free_udp, have, spawn_serve, Api, ADMIN};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Digest;

const STAFF_DID: &str = "0771286800";
const CITIZEN_DID: &str = "0771286891";
const CALLER: &str = "3471112222";

/// The caller's message: a 300 → 3000 Hz sweep, 5 s, at `rate`.
fn chirp(rate: u32) -> Vec<i16> {
    let n = rate as usize * 5;
    let (f0, f1, secs) = (300.0f64, 3000.0f64, 5.0f64);
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let phase = std::f64::consts::TAU * (f0 * t + (f1 - f0) * t * t / (2.0 * secs));
            (phase.sin() * 12000.0) as i16
        })
        .collect()
}

/// The message as the caller sends it, 20 ms frames of PCMA (8 kHz), G.722 (16 kHz) or
/// Opus (48 kHz, encoded by the codecs crate as prompts are):
/// (payload type, frames, the samples, their rate).
fn message(codec: &str) -> (u8, Vec<Vec<u8>>, Vec<i16>, u32) {
    match codec {
        "PCMA" => {
            let s = chirp(8000);
            let frames = s
                .chunks(160)
                .map(|c| c.iter().map(|x| codecs::g711::encode_alaw(*x)).collect())
                .collect();
            (8, frames, s, 8000)
        }
        "opus" => {
            let s = chirp(48000);
            let wav = codecs::wav::to_wav_bytes(&s, 48000).unwrap();
            let prep = codecs::PreparedAudio::from_bytes(&wav, &codecs::EncodeSettings::default())
                .unwrap();
            let enc = prep.encode(codecs::Codec::Opus, 20).unwrap();
            let frames = (0..enc.frame_count())
                .map(|i| enc.frame(i).unwrap().to_vec())
                .collect();
            (111, frames, s, 48000)
        }
        _ => {
            let s = chirp(16000);
            let mut enc = codecs::g722::Encoder::new();
            let frames = s
                .chunks(320)
                .map(|c| {
                    let mut out = vec![];
                    enc.encode(c, &mut out);
                    out
                })
                .collect();
            (9, frames, s, 16000)
        }
    }
}

/// The caller's stream up to here, the scenario written so far and where its pcaps go.
struct Script<'a> {
    stream: rtp_pcap::RtpStream,
    xml: String,
    dir: &'a Path,
    files: usize,
}

impl Script<'_> {
    fn play(&mut self, pcap: Vec<u8>, pause_ms: u32) {
        let path = self.dir.join(format!("staff-{}.pcap", self.files));
        self.files += 1;
        std::fs::write(&path, pcap).unwrap();
        self.xml.push_str(&format!(
            "  <nop><action><exec play_pcap_audio=\"{}\"/></action></nop>\n",
            path.display()
        ));
        self.pause(pause_ms);
    }

    /// Keys 300 ms apart, then `pause_ms` more.
    fn keys(&mut self, digits: &str, pause_ms: u32) {
        let pcap = self.stream.keys(digits, 300);
        self.play(pcap, 0);
        self.pause(digits.len() as u32 * 300 + pause_ms);
        self.stream.skip_ms(pause_ms);
    }

    fn pause(&mut self, ms: u32) {
        if ms > 0 {
            self.xml
                .push_str(&format!("  <pause milliseconds=\"{ms}\"/>\n"));
        }
    }
}

/// PIN, wait for the beep, the message, `#`, hear it, keep (1), send now (1).
fn scenario(dir: &Path, codec: &str, pt: u8, frames: &[Vec<u8>]) -> PathBuf {
    let rtpmap = rtpmap(codec);
    let mut sc = Script {
        stream: rtp_pcap::RtpStream::new(0x57af_f000 | u32::from(pt)),
        xml: String::new(),
        dir,
        files: 0,
    };
    sc.stream.skip_ms(1500);
    sc.keys("2468#", 600);
    // The prompt and the beep play before recording starts.
    sc.pause(9000);
    sc.stream.skip_ms(9000);
    // RTP clocks: 8 kHz for PCMA and G.722 (RFC 3551), 48 kHz for Opus (RFC 7587).
    let step = if codec == "opus" { 960 } else { 160 };
    let audio = sc.stream.audio(pt, frames, step);
    sc.play(audio, 5600);
    sc.stream.skip_ms(600);
    sc.keys("#", 600);
    // Playback of the take, then the question.
    sc.pause(6000);
    sc.stream.skip_ms(6000);
    sc.keys("1", 1500);
    sc.keys("1", 600);
    let body = sc.xml;
    let x = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="staff caller">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:{CALLER}@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=staff 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP {pt} 101
a=rtpmap:{pt} {rtpmap}
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <pause milliseconds="1500"/>
{body}  <recv request="BYE" timeout="60000"/>
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
"#
    );
    let p = dir.join(format!("staff-{codec}.xml"));
    std::fs::write(&p, x).unwrap();
    p
}

/// The best normalised cross-correlation of `sent` against `got` over all lags.
fn correlation(sent: &[i16], got: &[i16]) -> f64 {
    let a: Vec<f64> = sent.iter().map(|x| f64::from(*x)).collect();
    let b: Vec<f64> = got.iter().map(|x| f64::from(*x)).collect();
    let ea: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let mut best = 0.0f64;
    if b.len() < a.len() {
        return 0.0;
    }
    for lag in 0..=b.len() - a.len() {
        let w = &b[lag..lag + a.len()];
        let eb: f64 = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        if eb < 1.0 {
            continue;
        }
        let dot: f64 = a.iter().zip(w).map(|(x, y)| x * y).sum();
        best = best.max(dot / (ea * eb));
    }
    best
}

/// Waits (bounded) until the dialer has rendered its lines' prompts at start: the
/// scenarios' pauses assume the prompts play at once, not after a synthesis that the
/// start-up rendering (and parallel tests) slow down.
async fn prompts_ready(api: &Api) {
    let t0 = Instant::now();
    loop {
        let text = api
            .http
            .get(format!("{}/metrics", api.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text
            .lines()
            .any(|l| l.starts_with("dialer_ivr_prompts_ready ") && l.ends_with(" 1"))
        {
            return;
        }
        assert!(t0.elapsed() < 300 * SEC, "prompts not rendered in 300 s");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

async fn send(api: &Api, m: Method, path: &str, token: &str, body: Option<Value>) -> Value {
    let mut r = api
        .http
        .request(m, format!("{}{path}", api.base))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let s = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(s.is_success(), "{path}: {s}: {v}");
    v
}

fn config(dir: &Path, sip: u16, carrier: u16, codecs: &str) -> PathBuf {
    let path = dir.join("dialer.toml");
    std::fs::write(
        &path,
        format!(
            "admin_token = \"{ADMIN}\"\ndrain_timeout_s = 5\n\
             [http]\nlisten = \"127.0.0.1:0\"\n[sip]\nlisten = \"127.0.0.1:{sip}\"\n\
             [store]\nurl = \"sqlite://{}\"\n\
             [[number]]\nnumber = \"{STAFF_DID}\"\ntenant = \"itri\"\nflow = \"staff\"\n\
             [[number]]\nnumber = \"{CITIZEN_DID}\"\ntenant = \"itri\"\nflow = \"citizen\"\n\
             [[trunk]]\nname = \"carrier\"\nproxy = \"127.0.0.1:{carrier}\"\n\
             codecs = {codecs}\n\
             max_channels = 10\ncps = 10\noptions_ping_interval_s = 0\n",
            dir.join("staff.db").display(),
        ),
    )
    .unwrap();
    path
}

/// Runs one SIPp caller `scen` from this test to the dialer's SIP port `sip`, dialling
/// `did`, bounded by `timeout`; whether the scenario ran to its end (SIPp's errors, from
/// `<name>.err`, are printed when it did not).
async fn sipp_call(
    dir: &Path,
    sip: u16,
    scen: PathBuf,
    did: &'static str,
    timeout: &str,
    name: &str,
) -> bool {
    let err = dir.join(format!("{name}.err"));
    let timeout = timeout.to_string();
    tokio::task::spawn_blocking(move || {
        let st = Command::new("sipp")
            .arg(format!("127.0.0.1:{sip}"))
            .arg("-sf")
            .arg(&scen)
            .args(["-i", "127.0.0.1", "-p", &free_udp().to_string()])
            .args(["-mp", &free_udp().to_string(), "-s", did])
            .args([
                "-m",
                "1",
                "-timeout",
                &timeout,
                "-nostdin",
                "-trace_err",
                "-error_file",
            ])
            .arg(&err)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        if !st.success() {
            eprintln!("{}", std::fs::read_to_string(&err).unwrap_or_default());
        }
        st.success()
    })
    .await
    .unwrap()
}

/// The town of Itri with the staff PIN 2468; its tenant token.
async fn staff_tenant(api: &Api) -> String {
    let t = send(
        api,
        Method::POST,
        "/v1/tenants",
        ADMIN,
        Some(json!({"id": "itri", "name": "Itri"})),
    )
    .await;
    send(
        api,
        Method::PUT,
        "/v1/tenants/itri/staff-pin",
        ADMIN,
        Some(json!({"pin": "2468"})),
    )
    .await;
    t["token"].as_str().unwrap().to_string()
}

async fn staff_call(codec: &str) {
    if !have("sipp", "-v") || !have("espeak-ng", "--version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sip = free_udp();
    let sink = Sink::start();
    let carrier = Carrier::start(sink.port);
    // The residents answer in the trunk's first codec: the caller's, or PCMA for an Opus
    // caller (the take transcoded).
    let (codecs, callee, callee_pt) = match codec {
        "PCMA" => (r#"["PCMA", "G722"]"#, "PCMA", 8),
        "G722" => (r#"["G722", "PCMA"]"#, "G722", 9),
        _ => (r#"["PCMA", "opus"]"#, "PCMA", 8),
    };
    let cfg = config(dir.path(), sip, carrier.port, codecs);
    let (_serve, base) = spawn_serve(&cfg, &[]);
    let api = Api::new(base);
    prompts_ready(&api).await;
    let tok = staff_tenant(&api).await;
    // Two residents; the carrier (SIPp callees) answers in the trunk's first codec.
    let r = api
        .http
        .post(format!("{}/v1/contacts/import", api.base))
        .bearer_auth(&tok)
        .header("content-type", "text/csv")
        .body("number,street,house_number,zone\n0771 200001,Via Roma,1,Centro\n0771 200002,Via Roma,2,Centro\n")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let (pt, frames, sent, rate) = message(codec);
    let scen = scenario(dir.path(), codec, pt, &frames);
    let ok = sipp_call(dir.path(), sip, scen, STAFF_DID, "120s", "sipp").await;
    assert!(ok, "the staff call's scenario ran to its end");
    // The campaign the call created: who, when and the SHA-256 in its name.
    let mut found = None;
    for _ in 0..50 {
        let v = send(&api, Method::GET, "/v1/campaigns", &tok, None).await;
        if let Some(c) = v["items"].as_array().and_then(|a| a.first()).cloned() {
            found = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let c = found.expect("a campaign was created by the staff line");
    let name = c["name"].as_str().unwrap();
    assert!(name.contains("+393471112222"), "{c}");
    let sha = name.split("sha256:").nth(1).expect("sha256 in the name");
    assert_eq!(sha.len(), 64, "{name}");
    assert_eq!(c["priority"], "emergency", "{c}");
    // The kept prompt's file: its digest is the one recorded, its audio the caller's.
    let pid = c["prompt_id"].as_str().unwrap().to_string();
    let wav_path = dir
        .path()
        .join("staff.db.prompts")
        .join(format!("{pid}.wav"));
    let bytes = std::fs::read(&wav_path).expect("kept prompt file");
    let digest: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(digest, sha);
    let mut r = hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap();
    let spec = r.spec();
    let got: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
    assert_eq!(spec.sample_rate, rate, "decoded at the codec's rate");
    // 100 ms from the middle of the sweep matches one place of the take only.
    let (sent, got, rate) = if rate == 48000 {
        (decimate(&sent, 6), decimate(&got, 6), 8000)
    } else {
        (sent, got, rate)
    };
    let r10 = rate as usize / 10;
    let mid = &sent[r10 * 25..r10 * 26];
    let corr = correlation(mid, &got);
    eprintln!(
        "{codec}: take {} samples at {rate} Hz, correlation {corr:.5}",
        got.len()
    );
    assert!(corr > 0.8, "{codec}: correlation {corr}");

    // The residents' calls: each callee received the take, in its codec.
    let id = c["id"].as_i64().unwrap();
    let mut state = Value::Null;
    for _ in 0..600 {
        let v = send(
            &api,
            Method::GET,
            &format!("/v1/campaigns/{id}"),
            &tok,
            None,
        )
        .await;
        state = v["state"].clone();
        if state == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(state, "completed", "the emergency campaign ran to its end");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let streams = sink.streams();
    assert_eq!(
        streams.len(),
        2,
        "one stream per resident: {:?}",
        streams.keys()
    );
    // What the residents heard, at their codec's rate.
    let sent = chirp(if callee == "G722" { 16000 } else { 8000 });
    let r10 = sent.len() / 50;
    let mid = &sent[r10 * 25..r10 * 26];
    for (ssrc, packets) in streams {
        assert!(
            packets.iter().all(|p| p.0 == callee_pt),
            "{callee}: payload type {callee_pt}"
        );
        let heard = decode(callee, &packets);
        let corr = correlation(mid, &heard);
        eprintln!(
            "{codec}: resident stream {ssrc:08x}: {} samples, correlation {corr:.5}",
            heard.len()
        );
        assert!(
            corr > 0.8,
            "{codec}: resident {ssrc:08x}: correlation {corr}"
        );
    }
    drop(carrier);

    // A resident calls the citizens' line and presses 3 (by INFO: its media address is a
    // socket of this test that only listens): the town's latest message is the take.
    let ear = Sink::start();
    let scen = listener_scenario(dir.path(), callee_pt, callee, ear.port);
    let ok = sipp_call(dir.path(), sip, scen, CITIZEN_DID, "60s", "listener").await;
    assert!(ok, "the listener's scenario ran to its end");
    let streams = ear.streams();
    assert_eq!(streams.len(), 1, "{:?}", streams.keys());
    let heard = decode(callee, streams.values().next().unwrap());
    let corr = correlation(mid, &heard);
    eprintln!(
        "{codec}: latest message on the citizens' line: {} samples, correlation {corr:.5}",
        heard.len()
    );
    assert!(corr > 0.8, "{codec}: latest message: correlation {corr}");
}

fn rtpmap(codec: &str) -> &'static str {
    match codec {
        "PCMA" => "PCMA/8000",
        "opus" => "opus/48000/2",
        _ => "G722/8000",
    }
}

/// Every `k`-th sample, averaged over its `k` neighbours: a 48 kHz take compared at 8 kHz.
fn decimate(x: &[i16], k: usize) -> Vec<i16> {
    x.chunks(k)
        .map(|c| (c.iter().map(|v| i32::from(*v)).sum::<i32>() / c.len() as i32) as i16)
        .collect()
}

/// A resident on the citizens' line pressing 3 by SIP INFO, media to `port` (a socket
/// that records what the dialer plays), hanging up after the message.
fn listener_scenario(dir: &Path, pt: u8, codec: &str, port: u16) -> PathBuf {
    let rtpmap = rtpmap(codec);
    let x = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="listener">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:3470001111@[local_ip]:[local_port]>;tag=[pid]Ear[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:3470001111@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=ear 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio {port} RTP/AVP {pt} 101
a=rtpmap:{pt} {rtpmap}
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
From: <sip:3470001111@[local_ip]:[local_port]>;tag=[pid]Ear[call_number]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <pause milliseconds="1500"/>
  <send retrans="500"><![CDATA[
INFO [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:3470001111@[local_ip]:[local_port]>;tag=[pid]Ear[call_number]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 2 INFO
Max-Forwards: 70
Content-Type: application/dtmf-relay
Content-Length: [len]

Signal=3
Duration=160
]]></send>
  <recv response="200"/>
  <pause milliseconds="9000"/>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:3470001111@[local_ip]:[local_port]>;tag=[pid]Ear[call_number]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 3 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"#
    );
    let p = dir.join(format!("listener-{codec}.xml"));
    std::fs::write(&p, x).unwrap();
    p
}

/// A stream's audio, packets in sequence order, decoded as the callee would.
fn decode(codec: &str, packets: &[Packet]) -> Vec<i16> {
    let mut p: Vec<_> = packets.iter().collect();
    p.sort_by_key(|x| x.1);
    let mut out = vec![];
    let mut g722 = codecs::g722::Decoder::new();
    for (_, _, payload) in p {
        match codec {
            "PCMA" => out.extend(payload.iter().map(|b| codecs::g711::decode_alaw(*b))),
            _ => g722.decode(payload, &mut out),
        }
    }
    out
}

/// One RTP packet as recorded: payload type, sequence number, payload.
type Packet = (u8, u16, Vec<u8>);

/// The residents' media address: records every RTP packet by SSRC until dropped.
struct Sink {
    port: u16,
    packets: Arc<Mutex<BTreeMap<u32, Vec<Packet>>>>,
    stop: Arc<AtomicBool>,
}

impl Sink {
    fn start() -> Sink {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_millis(50)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let packets = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, st) = (packets.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !st.load(Ordering::Relaxed) {
                let Ok(n) = sock.recv(&mut buf) else { continue };
                let b = &buf[..n];
                // RTP only (RTCP has a second byte of 192-223).
                if n < 12 || b[0] >> 6 != 2 || (192..=223).contains(&b[1]) {
                    continue;
                }
                let ssrc = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
                p.lock()
                    .unwrap()
                    .entry(ssrc)
                    .or_insert_with(Vec::new)
                    .push((
                        b[1] & 0x7f,
                        u16::from_be_bytes([b[2], b[3]]),
                        b[12..].to_vec(),
                    ));
            }
        });
        Sink {
            port,
            packets,
            stop,
        }
    }

    fn streams(&self) -> BTreeMap<u32, Vec<Packet>> {
        self.packets.lock().unwrap().clone()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// SIPp as the residents' carrier: answers in the offer's first codec, media to the sink.
struct Carrier {
    child: std::process::Child,
    port: u16,
}

impl Carrier {
    fn start(rtp_port: u16) -> Carrier {
        let port = free_udp();
        let scen = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/sipp/uas_answer_ptime.xml");
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(scen)
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "100"])
            .args(["-key", "rtp_port", &rtp_port.to_string()])
            .args(["-mp", &free_udp().to_string(), "-nostdin"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sipp");
        std::thread::sleep(std::time::Duration::from_millis(300));
        Carrier { child, port }
    }
}

impl Drop for Carrier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_line_records_pcma_and_launches() {
    staff_call("PCMA").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_line_records_g722_and_launches() {
    staff_call("G722").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_line_records_opus_and_launches() {
    staff_call("opus").await;
}

/// The staff member's phone as the test's own RTP socket (its port is the SDP's media
/// address): records every packet the dialer sends, and from `start_ms` after the first
/// of them sends `frames` (PCMA, 20 ms apart) back from the same socket.
struct Handset {
    port: u16,
    heard: Arc<Mutex<Vec<Packet>>>,
    stop: Arc<AtomicBool>,
}

impl Handset {
    fn start(frames: Vec<Vec<u8>>, start_ms: u64) -> Handset {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_millis(5)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let heard = Arc::new(Mutex::new(vec![]));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, st) = (heard.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut peer = None;
            let mut first = None;
            let (mut sent, mut seq, deadline) = (0usize, 0u16, Instant::now() + 120 * SEC);
            while !st.load(Ordering::Relaxed) && Instant::now() < deadline {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    let b = &buf[..n];
                    if n >= 12 && b[0] >> 6 == 2 && !(192..=223).contains(&b[1]) {
                        peer.get_or_insert(from);
                        first.get_or_insert_with(Instant::now);
                        let seq = u16::from_be_bytes([b[2], b[3]]);
                        h.lock().unwrap().push((b[1] & 0x7f, seq, b[12..].to_vec()));
                    }
                }
                let (Some(to), Some(t0)) = (peer, first) else {
                    continue;
                };
                // Paced by the clock: frame i leaves at start + 20 ms * i.
                let due = t0 + std::time::Duration::from_millis(start_ms + 20 * sent as u64);
                if sent < frames.len() && Instant::now() >= due {
                    let mut rtp = vec![0x80, 8];
                    rtp.extend_from_slice(&seq.to_be_bytes());
                    rtp.extend_from_slice(&(160 * sent as u32).to_be_bytes());
                    rtp.extend_from_slice(&0x4a4d_5e7fu32.to_be_bytes());
                    rtp.extend_from_slice(&frames[sent]);
                    let _ = sock.send_to(&rtp, to);
                    sent += 1;
                    seq = seq.wrapping_add(1);
                }
            }
        });
        Handset { port, heard, stop }
    }
}

impl Drop for Handset {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

const SEC: std::time::Duration = std::time::Duration::from_secs(1);

/// SIPp as the staff member's signalling: the PIN, `#` after the message and nothing
/// else by INFO; media to and from `port` (the test's handset); hangs up after the
/// playback.
fn playback_scenario(dir: &Path, port: u16) -> PathBuf {
    let info = |k: char, cseq: u32, pause: u32| {
        format!(
            r#"  <send retrans="500"><![CDATA[
INFO [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]Pb[call_number]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: {cseq} INFO
Max-Forwards: 70
Content-Type: application/dtmf
Content-Length: [len]

{k}
]]></send>
  <recv response="200"/>
  <pause milliseconds="{pause}"/>
"#
        )
    };
    let mut body = String::from("  <pause milliseconds=\"1500\"/>\n");
    for (i, k) in "2468#".chars().enumerate() {
        body.push_str(&info(k, 2 + i as u32, 300));
    }
    // The message plays from the handset 12.5 s to 17.5 s after the answer.
    body.push_str("  <pause milliseconds=\"14700\"/>\n");
    body.push_str(&info('#', 7, 9000));
    let x = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="staff playback">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]Pb[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:{CALLER}@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=staff 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio {port} RTP/AVP 8 101
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
From: <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]Pb[call_number]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
{body}  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]Pb[call_number]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 8 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"#
    );
    let p = dir.join("playback.xml");
    std::fs::write(&p, x).unwrap();
    p
}

/// Acceptance "playback heard": the staff member records (keys by INFO, the message from
/// the handset socket) and hears the take played back after `#`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_line_plays_the_take_back_to_the_caller() {
    if !have("sipp", "-v") || !have("espeak-ng", "--version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sip = free_udp();
    let cfg = config(dir.path(), sip, free_udp(), r#"["PCMA"]"#);
    let (_serve, base) = spawn_serve(&cfg, &[]);
    let api = Api::new(base);
    prompts_ready(&api).await;
    staff_tenant(&api).await;
    let (_, frames, sent, _) = message("PCMA");
    let handset = Handset::start(frames, 12_500);
    let scen = playback_scenario(dir.path(), handset.port);
    let ok = sipp_call(dir.path(), sip, scen, STAFF_DID, "90s", "playback").await;
    assert!(ok, "the playback scenario ran to its end");
    let heard = handset.heard.lock().unwrap().clone();
    assert!(heard.iter().all(|p| p.0 == 8), "PCMA only");
    let audio = decode("PCMA", &heard);
    let mid = &sent[800 * 25..800 * 26];
    let corr = correlation(mid, &audio);
    eprintln!(
        "PCMA: the caller heard {} samples; the take in them: correlation {corr:.5}",
        audio.len()
    );
    assert!(corr > 0.8, "the playback: correlation {corr}");
}
