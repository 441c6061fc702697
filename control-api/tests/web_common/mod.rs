//! What the web tests share: `dialer serve` with one trunk to SIPp, a town with a street
//! list, SIPp as the resident's phone keying a code by RFC 4733, and the browser.

#![allow(dead_code)] // each test file uses a part

#[path = "../rtp_pcap/mod.rs"]
pub mod rtp_pcap;
pub mod webdriver;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

pub const ADMIN: &str = "web-admin-token-0123456789";
pub const TENANT: &str = "fondi";

pub fn sipp_available() -> bool {
    let ok = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        let why = "sipp is not runnable; install the Debian package sip-tester";
        if std::env::var_os("CI").is_some() {
            panic!("{why} (CI is set, so this is a failure, not a skip)");
        }
        eprintln!("SKIPPED: {why}");
    }
    ok
}

pub fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `dialer serve` (killed on drop).
pub struct Serve {
    pub child: Child,
    pub base: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

impl Serve {
    /// Starts the server with one trunk to `127.0.0.1:sip_port` (SIPp).
    pub fn start(sip_port: u16, extra: &str) -> Serve {
        let dir = tempfile::TempDir::new().unwrap();
        let cfg = format!(
            "admin_token = \"{ADMIN}\"\ndrain_timeout_s = 2\ndefault_region = \"IT\"\n\
             [http]\nlisten = \"127.0.0.1:0\"\n[sip]\nlisten = \"127.0.0.1:0\"\n\
             [store]\nurl = \"sqlite://{}\"\n{extra}\n\
             [[trunk]]\nname = \"sipp\"\nproxy = \"127.0.0.1:{sip_port}\"\n\
             max_channels = 4\ncps = 5\nring_timeout_s = 15\ncodecs = [\"PCMA\"]\n\
             media_latch = \"symmetric\"\noptions_ping_interval_s = 0\n",
            dir.path().join("web.db").display()
        );
        let path = dir.path().join("dialer.toml");
        std::fs::write(&path, cfg).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_dialer"))
            .args(["serve", "--config"])
            .arg(&path)
            .env(
                "DIALER_LOG",
                std::env::var("WEB_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = dir.path().join("serve.log");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut out = std::fs::File::create(log).unwrap();
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                use std::io::Write;
                let _ = writeln!(out, "{line}");
                if !sent {
                    if let Some(rest) = line.strip_prefix("dialer: API http://") {
                        let addr = rest.split('/').next().unwrap().to_string();
                        let _ = tx.send(format!("http://{addr}"));
                        sent = true;
                    }
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("dialer serve printed its address");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Serve {
            child,
            base,
            http,
            dir,
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// A JSON API call that must succeed.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
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

    /// The town `fondi` with two zones of streets; returns its token.
    pub async fn town(&self) -> String {
        use reqwest::Method;
        let t = self
            .api(
                Method::POST,
                "/v1/tenants",
                ADMIN,
                Some(json!({"id": TENANT, "name": "Comune di Fondi"})),
            )
            .await;
        let tok = t["token"].as_str().unwrap().to_string();
        let r = self
            .http
            .post(format!("{}/v1/streets", self.base))
            .bearer_auth(&tok)
            .header("content-type", "text/csv")
            .body("street,zone\nVia Roma,Centro\nPiazza Municipio,Centro\nVia Appia,Lido\nLungomare,Lido\n")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "streets: {}", r.status());
        tok
    }

    /// The tenant's contacts.
    pub async fn contacts(&self, tok: &str) -> Vec<Value> {
        let v = self
            .api(reqwest::Method::GET, "/v1/contacts?limit=500", tok, None)
            .await;
        v["items"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- dialer serve log ---\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SIPp as the resident's phone: answers (PCMA, telephone-event 101), waits, keys `digits`
/// as RFC 4733 events (Debian's `dtmf_2833_N.pcap`, one per digit), then waits for the BYE.
pub struct Phone {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Phone {
    /// Listens on `port` (the trunk's proxy) and keys `digits` after each answer, `calls`
    /// calls at most.
    pub fn start(port: u16, digits: &str) -> Phone {
        let dir = tempfile::TempDir::new().unwrap();
        let scen = dir.path().join("keyer.xml");
        let pcap = dir.path().join("keys.pcap");
        std::fs::write(&pcap, rfc4733_pcap(digits)).unwrap();
        let ms = digits.len() as u64 * 400 + 600;
        std::fs::write(&scen, keyer_scenario(&pcap, ms)).unwrap();
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(&scen)
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1"])
            .args(["-mp", &(free_udp() / 2 * 2).to_string(), "-nostdin"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sipp");
        std::thread::sleep(Duration::from_millis(300));
        Phone {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The code keyed as one RFC 4733 stream, in a pcap that SIPp plays: one SSRC,
/// consecutive sequence numbers, one timestamp per press, presses 400 ms apart (see
/// rtp_pcap). (Debian's `dtmf_2833_N.pcap` are one file per digit with unrelated
/// timestamps: played in a row they are older presses to a receiver.)
pub fn rfc4733_pcap(digits: &str) -> Vec<u8> {
    rtp_pcap::RtpStream::new(0x1234_5678).keys(digits, 400)
}

/// The SIPp scenario of a callee who plays `pcap` (the keys) after answering and waits
/// `ms` for it to end.
pub fn keyer_scenario(pcap: &Path, ms: u64) -> String {
    let keys = format!(
        "  <nop><action><exec play_pcap_audio=\"{}\"/></action></nop>\n  <pause milliseconds=\"{ms}\"/>\n",
        pcap.display()
    );
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="keyer">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]Keyer[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

  ]]></send>
  <pause milliseconds="300"/>
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]Keyer[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=phone 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=ptime:20
      a=sendrecv

  ]]></send>
  <recv request="ACK" crlf="true"/>
  <pause milliseconds="1500"/>
{keys}  <recv request="BYE"/>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
  <timewait milliseconds="1000"/>
</scenario>
"#
    )
}

/// Where screenshots go: `$WEB_SCREENSHOTS` (the docs' folder when refreshing them), else
/// a temporary folder.
pub fn shots_dir(tmp: &Path) -> PathBuf {
    std::env::var_os("WEB_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.join("shots"))
}
