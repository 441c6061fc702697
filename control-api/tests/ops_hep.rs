//! HEP v3 capture end to end: `dialer serve` with `[hep]` runs a small campaign against a
//! SIPp carrier and mirrors its SIP to a collector address. A relay in the test receives
//! every HEP packet, decodes it checking every chunk (vendor, type, length, value), and
//! forwards it to `sngrep -N -O file.pcap -L udp:127.0.0.1:PORT` (Debian's sngrep 1.6
//! listening for HEP). The pcap sngrep saves holds the complete dialog of every call
//! (INVITE, 100, 180, 200, ACK, BYE, 200), message for message what the decoder saw, and
//! the dialer's `dialer_hep_packets_sent_total` counts them all.
//!
//! Needs `sipp` and `sngrep` (skipped locally without them, a failure in CI).

mod ops_common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ops_common::{free_udp, have, Api, Guard, Sipp};

/// One decoded HEP packet.
#[derive(Debug, Clone)]
struct Hep {
    src: SocketAddr,
    dst: SocketAddr,
    ip_proto: u8,
    proto_type: u8,
    capture_id: u32,
    auth: Option<String>,
    time_us: u64,
    payload: Vec<u8>,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Decodes a HEP v3 packet, checking the header and every chunk: vendor 0, a length that
/// covers its header and stays inside the packet, a known type at most once, the size
/// each type has, and a complete set (family, protocol, addresses, ports, time, protocol
/// type, capture id, payload) consistent with the address family.
fn decode(p: &[u8]) -> Result<Hep, String> {
    if p.len() < 6 || &p[..4] != b"HEP3" {
        return Err("no HEP3 header".into());
    }
    if be16(&p[4..]) as usize != p.len() {
        return Err(format!(
            "total length {} but {} bytes",
            be16(&p[4..]),
            p.len()
        ));
    }
    let mut chunks: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
    let mut i = 6;
    while i < p.len() {
        if p.len() - i < 6 {
            return Err(format!("truncated chunk header at {i}"));
        }
        let (vendor, kind, len) = (be16(&p[i..]), be16(&p[i + 2..]), be16(&p[i + 4..]) as usize);
        if vendor != 0 {
            return Err(format!("vendor {vendor} at {i}"));
        }
        if len < 6 || i + len > p.len() {
            return Err(format!("chunk {kind} length {len} at {i}"));
        }
        let value = p[i + 6..i + len].to_vec();
        let size_ok = match kind {
            1 | 2 | 11 => value.len() == 1,
            3 | 4 | 9 | 10 | 12 => value.len() == 4,
            5 | 6 => value.len() == 16,
            7 | 8 => value.len() == 2,
            14 | 15 => !value.is_empty(),
            _ => return Err(format!("unexpected chunk type {kind}")),
        };
        if !size_ok {
            return Err(format!("chunk {kind} has {} bytes", value.len()));
        }
        if chunks.insert(kind, value).is_some() {
            return Err(format!("chunk {kind} twice"));
        }
        i += len;
    }
    let get = |k: u16| chunks.get(&k).ok_or(format!("chunk {k} missing"));
    let (src_ip, dst_ip): (IpAddr, IpAddr) = match get(1)?[0] {
        2 => {
            let (s, d) = (get(3)?, get(4)?);
            if chunks.contains_key(&5) || chunks.contains_key(&6) {
                return Err("IPv6 address in an IPv4 packet".into());
            }
            (
                <[u8; 4]>::try_from(&s[..]).unwrap().into(),
                <[u8; 4]>::try_from(&d[..]).unwrap().into(),
            )
        }
        10 => {
            let (s, d) = (get(5)?, get(6)?);
            (
                <[u8; 16]>::try_from(&s[..]).unwrap().into(),
                <[u8; 16]>::try_from(&d[..]).unwrap().into(),
            )
        }
        f => return Err(format!("address family {f}")),
    };
    let usec = be32(get(10)?);
    if usec >= 1_000_000 {
        return Err(format!("microseconds {usec}"));
    }
    Ok(Hep {
        src: SocketAddr::new(src_ip, be16(get(7)?)),
        dst: SocketAddr::new(dst_ip, be16(get(8)?)),
        ip_proto: get(2)?[0],
        proto_type: get(11)?[0],
        capture_id: be32(get(12)?),
        auth: chunks
            .get(&14)
            .map(|a| String::from_utf8_lossy(a).into_owned()),
        time_us: u64::from(be32(get(9)?)) * 1_000_000 + u64::from(usec),
        payload: get(15)?.clone(),
    })
}

/// Receives HEP on a loopback port, decodes every packet, forwards it to `sngrep_port`.
struct Relay {
    port: u16,
    got: Arc<Mutex<Vec<Result<Hep, String>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn start(sngrep_port: u16) -> Relay {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(vec![]));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (got.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 70_000];
            while !s.load(Ordering::Relaxed) {
                let Ok(n) = sock.recv(&mut buf) else { continue };
                g.lock().unwrap().push(decode(&buf[..n]));
                let _ = sock.send_to(&buf[..n], ("127.0.0.1", sngrep_port));
            }
        });
        Relay {
            port,
            got,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<Result<Hep, String>> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

/// UDP payloads of an Ethernet/IPv4 pcap (what sngrep writes): (src port, dst port, bytes).
fn pcap_udp(data: &[u8]) -> Vec<(u16, u16, Vec<u8>)> {
    assert!(data.len() >= 24, "pcap has no header");
    assert_eq!(
        &data[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian microsecond pcap"
    );
    let linktype = u32::from_le_bytes(data[20..24].try_into().unwrap());
    assert_eq!(linktype, 1, "Ethernet link type");
    let mut out = vec![];
    let mut i = 24;
    while i + 16 <= data.len() {
        let incl = u32::from_le_bytes(data[i + 8..i + 12].try_into().unwrap()) as usize;
        let frame = &data[i + 16..(i + 16 + incl).min(data.len())];
        i += 16 + incl;
        if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip[9] != 17 || ip.len() < ihl + 8 {
            continue;
        }
        let udp = &ip[ihl..];
        out.push((be16(udp), be16(&udp[2..]), udp[8..].to_vec()));
    }
    out
}

/// Start line and Call-ID of a SIP message.
fn sip_head(m: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(m);
    let first = text.lines().next().unwrap_or("").to_string();
    let cid = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.eq_ignore_ascii_case("call-id") || k == "i").then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (first, cid)
}

fn cseq_method(m: &[u8]) -> String {
    String::from_utf8_lossy(m)
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("cseq")
                .then(|| v.split_whitespace().nth(1).unwrap_or("").to_string())
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sngrep_and_the_decoder_see_every_dialog_over_hep() {
    if !have("sipp", "-v") || !have("sngrep", "-V") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sngrep_port = free_udp();
    let pcap = dir.path().join("hep.pcap");
    let sngrep = Guard(
        Command::new("sngrep")
            .args(["-N", "-O"])
            .arg(&pcap)
            .args(["-L", &format!("udp:127.0.0.1:{sngrep_port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sngrep"),
    );
    std::thread::sleep(Duration::from_millis(500));
    let relay = Relay::start(sngrep_port);
    let carrier = Sipp::start("uas_answer.xml");
    let sip_port = free_udp();
    let hep = format!(
        "[hep]\naddress = \"udp:127.0.0.1:{}\"\ncapture_id = 4242\npassword = \"${{OPS_HEP_KEY}}\"\n",
        relay.port
    );
    let cfg = ops_common::config(dir.path(), sip_port, carrier.port, 10, &hep);
    let t_start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let (dialer, base) = ops_common::spawn_serve(&cfg, &[("OPS_HEP_KEY", "hep-secret")]);
    let api = Api::new(base);
    let n = 3;
    let (tok, id) = api.start_campaign(n, 0.5).await;
    api.wait_completed(&tok, id, Duration::from_secs(60)).await;
    let calls = api.calls(&tok, id).await;
    assert_eq!(calls.len(), n);
    assert!(
        calls.iter().all(|c| c["outcome"] == "answered"),
        "{calls:?}"
    );
    // The last BYE's 200 is mirrored after the journal says answered: give it a moment.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metrics = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let t_end = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    drop(dialer);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let decoded = relay.finish();
    std::thread::sleep(Duration::from_millis(500));
    drop(sngrep);

    // Every packet decodes, chunk by chunk, with the configured identity.
    let bad: Vec<_> = decoded.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(bad.is_empty(), "undecodable HEP packets: {bad:?}");
    let all: Vec<Hep> = decoded.into_iter().map(Result::unwrap).collect();
    let total = all.len();
    // RTCP reports (protocol type 5) are JSON from the media ports; the rest is SIP.
    let (rtcp, heps): (Vec<Hep>, Vec<Hep>) = all.into_iter().partition(|h| h.proto_type == 5);
    assert!(rtcp.len() >= n, "an RTCP report per call: {rtcp:?}");
    for h in &rtcp {
        assert_eq!((h.ip_proto, h.capture_id), (17, 4242), "{h:?}");
        assert_eq!(h.auth.as_deref(), Some("hep-secret"));
        let v: serde_json::Value = serde_json::from_slice(&h.payload).expect("RTCP as JSON");
        assert!(v["type"] == 200 || v["type"] == 201, "{v}");
        assert!(v["ssrc"].is_u64() && v["report_blocks"].is_array(), "{v}");
        assert_eq!(h.src.ip(), std::net::IpAddr::from([127, 0, 0, 1]), "{h:?}");
    }
    let dialer_addr: SocketAddr = ([127, 0, 0, 1], sip_port).into();
    let carrier_addr: SocketAddr = ([127, 0, 0, 1], carrier.port).into();
    for h in &heps {
        assert_eq!(
            (h.ip_proto, h.proto_type, h.capture_id),
            (17, 1, 4242),
            "{h:?}"
        );
        assert_eq!(h.auth.as_deref(), Some("hep-secret"));
        assert!(
            h.time_us >= t_start && h.time_us <= t_end,
            "capture time {h:?}"
        );
        let pair = (h.src, h.dst);
        assert!(
            pair == (dialer_addr, carrier_addr) || pair == (carrier_addr, dialer_addr),
            "addresses {pair:?}"
        );
    }
    let sent: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("dialer_hep_packets_sent_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(sent, total as f64, "dialer_hep_packets_sent_total");

    // Every call's complete dialog, in order, with the right directions.
    let mut dialogs: BTreeMap<String, Vec<(String, String, bool)>> = BTreeMap::new();
    for h in &heps {
        let (first, cid) = sip_head(&h.payload);
        let from_dialer = h.src == dialer_addr;
        dialogs
            .entry(cid)
            .or_default()
            .push((first, cseq_method(&h.payload), from_dialer));
    }
    assert_eq!(
        dialogs.len(),
        n,
        "one dialog per call: {:?}",
        dialogs.keys()
    );
    for (cid, msgs) in &dialogs {
        let has = |start: &str, cseq: &str, out: bool| {
            msgs.iter()
                .any(|(f, c, o)| f.starts_with(start) && c == cseq && *o == out)
        };
        assert!(
            msgs[0].0.starts_with("INVITE ") && msgs[0].2,
            "{cid}: {msgs:?}"
        );
        for (start, cseq, out) in [
            ("SIP/2.0 100", "INVITE", false),
            ("SIP/2.0 180", "INVITE", false),
            ("SIP/2.0 200", "INVITE", false),
            ("ACK ", "ACK", true),
            ("BYE ", "BYE", true),
            ("SIP/2.0 200", "BYE", false),
        ] {
            assert!(
                has(start, cseq, out),
                "{cid}: no {start} ({cseq}) in {msgs:?}"
            );
        }
    }

    // sngrep saved exactly what the decoder saw, in the same order.
    // (sngrep keeps SIP only; were it to keep the RTCP reports, they are left out here.)
    let saved: Vec<_> = pcap_udp(&std::fs::read(&pcap).expect("sngrep wrote the pcap"))
        .into_iter()
        .filter(|(_, _, p)| !p.starts_with(b"{"))
        .collect();
    let seen: Vec<(u16, u16, Vec<u8>)> = heps
        .iter()
        .map(|h| (h.src.port(), h.dst.port(), h.payload.clone()))
        .collect();
    let heads = |v: &[(u16, u16, Vec<u8>)]| -> Vec<(u16, u16, String)> {
        v.iter().map(|(s, d, p)| (*s, *d, sip_head(p).0)).collect()
    };
    assert_eq!(
        heads(&saved),
        heads(&seen),
        "sngrep's pcap against the decoder"
    );
    assert_eq!(saved, seen, "payload bytes in sngrep's pcap");
    let methods: BTreeSet<String> = saved
        .iter()
        .map(|(_, _, p)| sip_head(p).0.split(' ').next().unwrap_or("").to_string())
        .collect();
    assert!(
        methods.contains("INVITE") && methods.contains("BYE"),
        "{methods:?}"
    );
}
