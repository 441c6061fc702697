//! The citizens' line end to end (issue 12 acceptance): `dialer serve` answers SIPp
//! callers who press keys as RFC 4733 events (one continuous RTP stream per call written
//! by this test, see rtp_pcap, played by SIPp's `play_pcap_audio`) and by SIP INFO
//! (`application/dtmf-relay` and `application/dtmf`). Registration with a zone choice, an already-registered
//! number changing zone, an unregistration, a withheld number, wrong keys, a call from a
//! non-trunk address (403, nothing stored) and a call to an unknown number (404), each
//! checked from the API's registrations and the dialer's metrics, and each change of a
//! registration seen by a webhook receiver (`registration.created` / `.updated` / `.deleted`).
//!
//! Needs `sipp` and `espeak-ng` (skipped locally without them, a failure in CI).

mod ops_common;
#[path = "rtp_pcap/mod.rs"]
mod rtp_pcap;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use ops_common::{free_udp, have, spawn_serve, Api, Guard, ADMIN};
use reqwest::Method;
use serde_json::{json, Value};

const DID: &str = "0771286891";

/// What the caller does after the answer: keys with a pause after each.
#[derive(Debug, Clone)]
enum Step {
    /// A key as RFC 4733 packets in the call's RTP stream.
    Key(char, u32),
    /// A key by SIP INFO, `application/dtmf-relay` (`Signal=`/`Duration=` lines).
    Info(char, u32),
    /// A key by SIP INFO, `application/dtmf` (the key alone).
    InfoPlain(char, u32),
}

/// How the call should end.
#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    /// Answered; the dialer hangs up (BYE) when the menu is done.
    ByeFromDialer,
    /// Refused with this status.
    Refused(u16),
}

/// A SIPp UAC scenario: INVITE (PCMA + telephone-event 101) from `caller`, then the keys.
fn scenario(dir: &Path, name: &str, caller: &str, steps: &[Step], end: End) -> PathBuf {
    let mut x = String::from(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="ivr caller">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:CALLER@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:CALLER@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=caller 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
"#,
    )
    .replace("CALLER", caller);
    match end {
        End::Refused(status) => x.push_str(&format!(
            r#"  <recv response="{status}"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
</scenario>
"#
        )),
        End::ByeFromDialer => {
            x.push_str(
                r#"  <recv response="200" rtd="true" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:CALLER@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:CALLER@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <pause milliseconds="1500"/>
"#
                .replace("CALLER", caller)
                .as_str(),
            );
            let mut stream = rtp_pcap::RtpStream::new(0x5eed_0000 ^ name.len() as u32);
            stream.skip_ms(1500);
            for (i, s) in steps.iter().enumerate() {
                let (ms, content_type, body) = match s {
                    Step::Key(k, ms) => {
                        let pcap = dir.join(format!("{name}-{i}.pcap"));
                        std::fs::write(&pcap, stream.keys(&k.to_string(), 200)).unwrap();
                        stream.skip_ms(ms.saturating_sub(200));
                        x.push_str(&format!(
                            "  <nop><action><exec play_pcap_audio=\"{}\"/></action></nop>\n  <pause milliseconds=\"{ms}\"/>\n",
                            pcap.display()
                        ));
                        continue;
                    }
                    Step::Info(k, ms) => (
                        ms,
                        "application/dtmf-relay",
                        format!("Signal={k}\nDuration=160\n"),
                    ),
                    Step::InfoPlain(k, ms) => (ms, "application/dtmf", format!("{k}\n")),
                };
                stream.skip_ms(*ms);
                x.push_str(&format!(
                    r#"  <send retrans="500"><![CDATA[
INFO [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: {cseq} INFO
Max-Forwards: 70
Content-Type: {content_type}
Content-Length: [len]

{body}]]></send>
  <recv response="200"/>
  <pause milliseconds="{ms}"/>
"#,
                    cseq = i + 2
                ));
            }
            x.push_str(
                r#"  <recv request="BYE" timeout="90000"/>
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
"#,
            );
        }
    }
    let p = dir.join(format!("{name}.xml"));
    std::fs::write(&p, x).unwrap();
    p
}

/// Runs one SIPp call from `ip` to `number`; whether the scenario passed.
fn call(dir: &Path, ip: &str, sip: u16, scen: &Path, number: &str) -> bool {
    let out = Command::new("sipp")
        .arg(format!("127.0.0.1:{sip}"))
        .arg("-sf")
        .arg(scen)
        .args(["-i", ip, "-p", &free_udp().to_string(), "-mi", ip])
        .args(["-mp", &free_udp().to_string(), "-s", number])
        .args(["-m", "1", "-l", "1", "-timeout", "120s", "-nostdin"])
        .args(["-trace_err", "-error_file"])
        .arg(dir.join(format!(
            "{}.err",
            scen.file_stem().unwrap().to_string_lossy()
        )))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run sipp");
    if !out.success() {
        let err = std::fs::read_to_string(dir.join(format!(
            "{}.err",
            scen.file_stem().unwrap().to_string_lossy()
        )))
        .unwrap_or_default();
        eprintln!("sipp {}: {out}\n{err}", scen.display());
    }
    out.success()
}

fn config(dir: &Path, sip: u16, carrier: u16) -> PathBuf {
    let path = dir.join("dialer.toml");
    std::fs::write(
        &path,
        format!(
            "admin_token = \"{ADMIN}\"\ndrain_timeout_s = 5\n\
             [http]\nlisten = \"127.0.0.1:0\"\n\
             [webhooks]\nallow_private_targets = true\n\
             [sip]\nlisten = \"127.0.0.1:{sip}\"\nstrangers = \"reject\"\n\
             [store]\nurl = \"sqlite://{}\"\n\
             [[number]]\nnumber = \"{DID}\"\ntenant = \"itri\"\nflow = \"citizen\"\n\
             [[trunk]]\nname = \"carrier\"\nproxy = \"127.0.0.1:{carrier}\"\n\
             max_channels = 40\ncps = 10\noptions_ping_interval_s = 0\n",
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

async fn registrations(api: &Api, tok: &str) -> Vec<Value> {
    let v = send(api, Method::GET, "/v1/registrations?limit=100", tok, None).await;
    v["items"].as_array().cloned().unwrap_or_default()
}

async fn has_contact(api: &Api, tok: &str, number: &str) -> bool {
    let v = send(api, Method::GET, "/v1/contacts?limit=500", tok, None).await;
    v["items"]
        .as_array()
        .is_some_and(|a| a.iter().any(|c| c["number"] == number))
}

async fn metric(api: &Api, name: &str) -> f64 {
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
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A webhook receiver on loopback: every JSON body POSTed to it, in arrival order.
async fn receiver() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use std::sync::{Arc, Mutex};
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/in",
        axum::routing::post(move |body: axum::body::Bytes| {
            let keep = keep.clone();
            async move {
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    keep.lock().unwrap().push(v);
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(l, app).await });
    (port, got)
}

/// Waits (bounded) for the receiver to hold an event of `kind` for `number`; its data.
async fn event(got: &std::sync::Mutex<Vec<Value>>, kind: &str, number: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let found = got.lock().unwrap().iter().find_map(|e| {
            (e["type"] == kind && e["data"]["number"] == number).then(|| e["data"].clone())
        });
        if let Some(d) = found {
            return d;
        }
        let seen = got.lock().unwrap().clone();
        assert!(t0.elapsed().as_secs() < 15, "no {kind}: {seen:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citizens_line_against_sipp_callers() {
    if !have("sipp", "-v") || !have("espeak-ng", "--version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sip = free_udp();
    let cfg = config(dir.path(), sip, free_udp());
    let (_serve, base): (Guard, String) = spawn_serve(&cfg, &[]);
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
    let streets = "street,zone\nVia Roma,Centro\nLungomare,Lido\n";
    let r = api
        .http
        .post(format!("{}/v1/streets", api.base))
        .bearer_auth(&tok)
        .header("content-type", "text/csv")
        .body(streets)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let (hook_port, hooked) = receiver().await;
    let kinds = [
        "registration.created",
        "registration.updated",
        "registration.deleted",
    ];
    let url = format!("http://127.0.0.1:{hook_port}/in");
    send(
        &api,
        Method::POST,
        "/v1/webhooks",
        &tok,
        Some(json!({"url": url, "events": kinds})),
    )
    .await;
    let d = dir.path().to_path_buf();
    let run = |name: &'static str,
               ip: &'static str,
               caller: &'static str,
               number: &'static str,
               steps: Vec<Step>,
               end: End| {
        let d = d.clone();
        tokio::task::spawn_blocking(move || {
            let s = scenario(&d, name, caller, &steps, end);
            call(&d, ip, sip, &s, number)
        })
    };
    let t0 = Instant::now();
    // 0. Silence (in parallel with the others, a number of its own): the menu asks again
    //    after each digit timeout and says goodbye after the third, storing nothing.
    let silent = run(
        "silent",
        "127.0.0.1",
        "3335550000",
        DID,
        vec![],
        End::ByeFromDialer,
    );

    // 1. Register with zone 2 (Lido): 1, 2, then 1 for consent.
    let keys = vec![
        Step::Key('1', 1500),
        Step::Key('2', 1500),
        Step::Key('1', 500),
    ];
    assert!(run(
        "register",
        "127.0.0.1",
        "3331234567",
        DID,
        keys,
        End::ByeFromDialer
    )
    .await
    .unwrap());
    let regs = registrations(&api, &tok).await;
    assert_eq!(regs.len(), 1, "{regs:?}");
    assert_eq!(regs[0]["number"], "+393331234567");
    assert_eq!(regs[0]["source"], "ivr");
    assert_eq!(regs[0]["zone"], "Lido");
    let e = event(&hooked, "registration.created", "+393331234567").await;
    assert_eq!((&e["zone"], &e["source"]), (&json!("Lido"), &json!("ivr")));

    // 2. The same number again: already registered, zone 1 (Centro), the second key by
    //    INFO application/dtmf-relay.
    let keys = vec![Step::Key('1', 1500), Step::Info('1', 500)];
    assert!(run(
        "change",
        "127.0.0.1",
        "3331234567",
        "+390771286891",
        keys,
        End::ByeFromDialer
    )
    .await
    .unwrap());
    let regs = registrations(&api, &tok).await;
    let live: Vec<_> = regs.iter().filter(|r| r["deleted_ms"].is_null()).collect();
    assert_eq!(live.len(), 1, "{regs:?}");
    assert_eq!(live[0]["zone"], "Centro", "{regs:?}");
    let e = event(&hooked, "registration.updated", "+393331234567").await;
    assert_eq!(
        e["zone"], "Centro",
        "a zone change is not a new registration"
    );

    // 3. Unregister: 2, then 1 (by INFO application/dtmf) to confirm the erasure.
    assert!(has_contact(&api, &tok, "+393331234567").await);
    let keys = vec![Step::Key('2', 1500), Step::InfoPlain('1', 500)];
    assert!(run(
        "unregister",
        "127.0.0.1",
        "3331234567",
        DID,
        keys,
        End::ByeFromDialer
    )
    .await
    .unwrap());
    let regs = registrations(&api, &tok).await;
    assert!(regs.iter().all(|r| !r["deleted_ms"].is_null()), "{regs:?}");
    assert!(
        !has_contact(&api, &tok, "+393331234567").await,
        "the contact is erased"
    );
    event(&hooked, "registration.deleted", "+393331234567").await;
    let created = hooked
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "registration.created")
        .count();
    assert_eq!(created, 1, "one registration, one created event");

    // 4. A withheld number: told, hung up, nothing stored.
    assert!(run(
        "withheld",
        "127.0.0.1",
        "anonymous",
        DID,
        vec![],
        End::ByeFromDialer
    )
    .await
    .unwrap());
    // 5. Wrong keys: three mistakes, goodbye.
    let keys = vec![
        Step::Key('9', 1200),
        Step::Key('7', 1200),
        Step::Key('8', 500),
    ];
    assert!(run(
        "wrong",
        "127.0.0.1",
        "3339990000",
        DID,
        keys,
        End::ByeFromDialer
    )
    .await
    .unwrap());
    // 6. The latest message (none sent yet): 3, then # to leave.
    let keys = vec![Step::Key('3', 1500), Step::Key('#', 500)];
    assert!(run(
        "latest",
        "127.0.0.1",
        "3338887777",
        DID,
        keys,
        End::ByeFromDialer
    )
    .await
    .unwrap());
    assert!(silent.await.unwrap(), "a silent caller is hung up on");
    let n = registrations(&api, &tok).await.len();
    assert_eq!(
        n, 1,
        "withheld, wrong keys, silence and listening store nothing"
    );

    // 7. Not from a trunk: 403, nothing kept. 8. An unknown number: 404.
    assert!(run(
        "stranger",
        "127.0.0.2",
        "3331112222",
        DID,
        vec![],
        End::Refused(403)
    )
    .await
    .unwrap());
    assert!(run(
        "unknown",
        "127.0.0.1",
        "3331112222",
        "0771999999",
        vec![],
        End::Refused(404)
    )
    .await
    .unwrap());
    assert_eq!(registrations(&api, &tok).await.len(), 1);
    assert!(
        metric(
            &api,
            "dialer_inbound_refused_total{reason=\"unknown_number\""
        )
        .await
            >= 1.0
    );
    assert!(metric(&api, "dialer_inbound_calls_total").await >= 6.0);
    eprintln!("citizens' line flows took {:?}", t0.elapsed());
}
