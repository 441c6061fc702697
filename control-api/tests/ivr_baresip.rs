//! The citizens' line with a real softphone as the caller (issue 12 acceptance): Debian's
//! baresip dials the town's number, and once the call is up its keys are pressed through
//! baresip's console module (`cons`, a UDP socket taking key presses as the keyboard
//! would); baresip sends them as RFC 4733 telephone-events. The resident registers with a
//! zone choice, then a second call unregisters; both are checked in the API.
//!
//! baresip sends telephone-events from its audio transmit path, so it needs a source that
//! produces frames (`ausine`, a tone the menu ignores); `net_interface 127.0.0.1` keeps its
//! SDP and media on loopback.
//!
//! Needs `baresip` (Debian package baresip-core) and `espeak-ng`: skipped locally without
//! them, a failure in CI.

mod ops_common;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ops_common::{free_udp, have, spawn_serve, Api, ADMIN};
use reqwest::Method;
use serde_json::{json, Value};

const DID: &str = "0771286891";
const CALLER: &str = "3331234567";

/// baresip calling `DID` at the dialer with the caller's number as its user.
struct Phone {
    child: Child,
    cons: u16,
    dir: PathBuf,
}

impl Phone {
    fn call(dir: &Path, name: &str, dialer_sip: u16) -> Phone {
        let conf = dir.join(name);
        std::fs::create_dir_all(&conf).unwrap();
        let (sip, cons) = (free_udp(), free_udp());
        std::fs::write(
            conf.join("config"),
            format!(
                "poll_method epoll\nnet_interface 127.0.0.1\nsip_listen 127.0.0.1:{sip}\n\
                 module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aubridge.so\nmodule ausine.so\n\
                 module cons.so\nmodule_app account.so\nmodule_app menu.so\n\
                 cons_listen 127.0.0.1:{cons}\n\
                 audio_player aubridge,x\naudio_source ausine,1000\nausrc_srate 48000\nausrc_channels 2\n"
            ),
        )
        .unwrap();
        std::fs::write(
            conf.join("accounts"),
            format!("<sip:{CALLER}@127.0.0.1>;regint=0;audio_codecs=PCMA\n"),
        )
        .unwrap();
        let log = std::fs::File::create(conf.join("out.log")).unwrap();
        let child = Command::new("baresip")
            .arg("-f")
            .arg(&conf)
            .arg("-e")
            .arg(format!("/dial sip:{DID}@127.0.0.1:{dialer_sip}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Phone {
            child,
            cons,
            dir: conf,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("out.log")).unwrap_or_default()
    }

    /// Waits (bounded) for the log to say `what`.
    fn wait_for(&self, what: &str, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.log().to_lowercase().contains(what) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Presses `keys` in the call, `gap_ms` apart: baresip's in-call command `/sndcode`,
    /// typed on its console.
    fn press(&self, keys: &str, gap_ms: u64) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        for k in keys.chars() {
            let line = format!("/sndcode {k}\n");
            sock.send_to(line.as_bytes(), ("127.0.0.1", self.cons))
                .unwrap();
            std::thread::sleep(Duration::from_millis(gap_ms));
        }
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, sip: u16, carrier: u16) -> PathBuf {
    let path = dir.join("dialer.toml");
    std::fs::write(
        &path,
        format!(
            "admin_token = \"{ADMIN}\"\ndrain_timeout_s = 5\n\
             [http]\nlisten = \"127.0.0.1:0\"\n\
             [sip]\nlisten = \"127.0.0.1:{sip}\"\nstrangers = \"reject\"\n\
             [store]\nurl = \"sqlite://{}\"\n\
             [[number]]\nnumber = \"{DID}\"\ntenant = \"itri\"\nflow = \"citizen\"\n\
             [[trunk]]\nname = \"carrier\"\nproxy = \"127.0.0.1:{carrier}\"\n\
             max_channels = 10\ncps = 10\noptions_ping_interval_s = 0\n",
            dir.join("ivr.db").display(),
        ),
    )
    .unwrap();
    path
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

/// One call: wait for the answer, the greeting's start, press `keys`, wait for the
/// dialer's hang-up. Whether the call was answered and ended by the dialer.
async fn call(dir: &Path, name: &'static str, sip: u16, keys: &'static str) -> (bool, String) {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let phone = Phone::call(&dir, name, sip);
        if !phone.wait_for("call established", 20) {
            return (false, phone.log());
        }
        std::thread::sleep(Duration::from_millis(1500));
        phone.press(keys, 1500);
        let ended = phone.wait_for("terminated", 60);
        (ended, phone.log())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_registers_by_rfc4733_then_unregisters() {
    if !have("baresip", "-h") || !have("espeak-ng", "--version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sip = free_udp();
    let cfg = config(dir.path(), sip, free_udp());
    let (_serve, base) = spawn_serve(&cfg, &[]);
    let api = Api::new(base);
    let t = send(
        &api,
        Method::POST,
        "/v1/tenants",
        ADMIN,
        Some(json!({"id": "itri", "name": "Itri"})),
    )
    .await;
    let tok = t["token"].as_str().unwrap().to_string();
    let r = api
        .http
        .post(format!("{}/v1/streets", api.base))
        .bearer_auth(&tok)
        .header("content-type", "text/csv")
        .body("street,zone\nVia Roma,Centro\nLungomare,Lido\n")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    // Register: 1, zone 2 (Lido), 1 to consent.
    let (ended, log) = call(dir.path(), "register", sip, "121").await;
    assert!(ended, "baresip's registration call:\n{log}");
    let v = send(&api, Method::GET, "/v1/registrations", &tok, None).await;
    let items = v["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{v}\n{log}");
    assert_eq!(items[0]["number"], "+393331234567");
    assert_eq!(items[0]["source"], "ivr");
    assert_eq!(items[0]["zone"], "Lido");
    assert!(items[0]["deleted_ms"].is_null());

    // Unregister: 2, then 1 to confirm the erasure.
    let (ended, log) = call(dir.path(), "unregister", sip, "21").await;
    assert!(ended, "baresip's unregistration call:\n{log}");
    let v = send(&api, Method::GET, "/v1/registrations", &tok, None).await;
    let items = v["items"].as_array().cloned().unwrap_or_default();
    assert!(
        !items.is_empty() && items.iter().all(|r| !r["deleted_ms"].is_null()),
        "{v}\n{log}"
    );
}
