//! HEP v3 (Homer Encapsulation Protocol) mirroring of SIP traffic and RTCP reports to a
//! capture collector (Homer, `sngrep -L`, heplify-server).
//!
//! Ops debug SIP from a collector, not from a shell on the dialer. Every SIP message the
//! driver sends or receives is copied here with its addresses and a wall-clock timestamp,
//! encoded as one HEP v3 packet and sent over UDP.
//!
//! The call path never waits for the collector: [`mirror`] puts the message on a bounded
//! queue with `try_send` and returns; when the queue is full the message is dropped and
//! counted (`dialer_hep_dropped_total{reason="queue_full"}`). A background task drains
//! the queue, encodes and sends; send errors (collector down: ICMP port unreachable) and
//! an unresolvable collector name are counted, never retried.
//!
//! RTCP reports the media pump sends and receives ([`mirror_rtcp`]) go as HEP protocol type
//! 5 with the report written as JSON ([`rtcp_json`]), which is what Homer indexes for its
//! call-quality view (a raw RTCP payload there is not read).
//!
//! The process-wide sender is installed once ([`install`]) by the binary; until then
//! [`mirror`] costs one atomic load.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::media::rtcp;
use crate::sip::endpoint::Transport;

/// HEP v3 chunk types (vendor 0, the generic set) this encoder writes.
mod chunk {
    pub const IP_FAMILY: u16 = 1;
    pub const IP_PROTO: u16 = 2;
    pub const IPV4_SRC: u16 = 3;
    pub const IPV4_DST: u16 = 4;
    pub const IPV6_SRC: u16 = 5;
    pub const IPV6_DST: u16 = 6;
    pub const SRC_PORT: u16 = 7;
    pub const DST_PORT: u16 = 8;
    pub const TS_SEC: u16 = 9;
    pub const TS_USEC: u16 = 10;
    pub const PROTO_TYPE: u16 = 11;
    pub const CAPTURE_ID: u16 = 12;
    pub const AUTH_KEY: u16 = 14;
    pub const PAYLOAD: u16 = 15;
}

/// What a capture carries: HEP's protocol type chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// A SIP message as it was on the wire (type 1).
    Sip,
    /// An RTCP report written as JSON (type 5).
    RtcpJson,
}

impl Proto {
    fn code(self) -> u8 {
        match self {
            Proto::Sip => 1,
            Proto::RtcpJson => 5,
        }
    }
}

/// One captured message: who sent it to whom, over what, when, and its bytes.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Sender of the message.
    pub src: SocketAddr,
    /// Receiver of the message.
    pub dst: SocketAddr,
    /// Transport it travelled on.
    pub transport: Transport,
    /// Wall-clock capture time (HEP carries Unix seconds and microseconds).
    pub time: SystemTime,
    /// What the payload is.
    pub proto: Proto,
    /// The whole SIP message as on the wire.
    pub payload: Arc<[u8]>,
}

/// Why a packet cannot be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HepError {
    /// Source and destination are of different address families.
    #[error("source and destination address families differ")]
    MixedFamilies,
    /// The packet would exceed HEP's 16-bit length field.
    #[error("message of {0} bytes does not fit a HEP packet")]
    TooLong(usize),
}

fn put_chunk(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    // Callers keep every value under 64 KiB (checked for the payload by `encode`).
    out.extend_from_slice(&((value.len() + 6) as u16).to_be_bytes());
    out.extend_from_slice(value);
}

/// Encodes `c` as one HEP v3 packet into `out` (cleared first): the addresses, ports,
/// timestamp, protocol (SIP), capture agent id, optional auth key, and the payload.
pub fn encode(
    c: &Captured,
    capture_id: u32,
    password: Option<&str>,
    out: &mut Vec<u8>,
) -> Result<(), HepError> {
    out.clear();
    out.extend_from_slice(b"HEP3\0\0");
    let (family, src, dst): (u8, Vec<u8>, Vec<u8>) = match (c.src.ip(), c.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (2, s.octets().to_vec(), d.octets().to_vec()),
        (IpAddr::V6(s), IpAddr::V6(d)) => (10, s.octets().to_vec(), d.octets().to_vec()),
        _ => return Err(HepError::MixedFamilies),
    };
    let (src_kind, dst_kind) = if family == 2 {
        (chunk::IPV4_SRC, chunk::IPV4_DST)
    } else {
        (chunk::IPV6_SRC, chunk::IPV6_DST)
    };
    let proto = match c.transport {
        Transport::Udp => 17u8,
        Transport::Tcp | Transport::Tls => 6u8,
    };
    let since = c.time.duration_since(UNIX_EPOCH).unwrap_or_default();
    put_chunk(out, chunk::IP_FAMILY, &[family]);
    put_chunk(out, chunk::IP_PROTO, &[proto]);
    put_chunk(out, src_kind, &src);
    put_chunk(out, dst_kind, &dst);
    put_chunk(out, chunk::SRC_PORT, &c.src.port().to_be_bytes());
    put_chunk(out, chunk::DST_PORT, &c.dst.port().to_be_bytes());
    put_chunk(out, chunk::TS_SEC, &(since.as_secs() as u32).to_be_bytes());
    put_chunk(out, chunk::TS_USEC, &since.subsec_micros().to_be_bytes());
    put_chunk(out, chunk::PROTO_TYPE, &[c.proto.code()]);
    put_chunk(out, chunk::CAPTURE_ID, &capture_id.to_be_bytes());
    if let Some(p) = password {
        if p.len() > 1024 {
            return Err(HepError::TooLong(p.len()));
        }
        put_chunk(out, chunk::AUTH_KEY, p.as_bytes());
    }
    if out.len() + 6 + c.payload.len() > u16::MAX as usize {
        return Err(HepError::TooLong(c.payload.len()));
    }
    put_chunk(out, chunk::PAYLOAD, &c.payload);
    let total = out.len() as u16;
    out[4..6].copy_from_slice(&total.to_be_bytes());
    Ok(())
}

/// Where and how to send captures.
#[derive(Debug, Clone)]
pub struct HepConfig {
    /// Collector `host:port` (resolved by the sender task, again after a failure).
    pub collector: String,
    /// Capture agent id written in every packet (tells several dialers apart in Homer).
    pub capture_id: u32,
    /// Optional auth key the collector may require.
    pub password: Option<String>,
    /// Messages that may wait for the sender task; beyond this they are dropped.
    pub queue: usize,
}

/// Handle to the sender task: a bounded queue in front of it.
#[derive(Debug, Clone)]
pub struct HepSender {
    tx: mpsc::Sender<Captured>,
}

impl HepSender {
    /// Starts the sender task on the current tokio runtime.
    pub fn start(cfg: HepConfig) -> HepSender {
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        tokio::spawn(send_loop(cfg, rx));
        HepSender { tx }
    }

    /// Queues a capture without waiting; a full queue or a stopped task drops it (counted).
    pub fn offer(&self, c: Captured) {
        if self.tx.try_send(c).is_err() {
            metrics::counter!(crate::metrics::HEP_DROPPED, "reason" => "queue_full").increment(1);
        }
    }
}

static SENDER: OnceLock<HepSender> = OnceLock::new();

/// Makes `s` the process-wide sender used by [`mirror`]; false if one was installed.
pub fn install(s: HepSender) -> bool {
    SENDER.set(s).is_ok()
}

/// Mirrors one SIP message to the collector when HEP is configured; never blocks.
/// The SIP driver calls it for every message it sends and receives.
pub fn mirror(src: SocketAddr, dst: SocketAddr, transport: Transport, payload: &[u8]) {
    offer_sip(src, dst, transport, || payload.into());
}

/// Whether a collector is configured: callers on hot paths (the pump's send batches) test
/// this once before doing any per-packet work for HEP.
pub fn enabled() -> bool {
    SENDER.get().is_some()
}

/// Mirrors one RTCP datagram the media pump sent or received, as the JSON report Homer
/// reads; never blocks. A datagram with no sender or receiver report is not mirrored.
pub fn mirror_rtcp(src: SocketAddr, dst: SocketAddr, datagram: &[u8]) {
    let Some(s) = SENDER.get() else {
        return;
    };
    if let Some(json) = rtcp_json(datagram) {
        s.offer(Captured {
            src,
            dst,
            transport: Transport::Udp,
            time: SystemTime::now(),
            payload: json.into_bytes().into(),
            proto: Proto::RtcpJson,
        });
    }
}

/// The first sender or receiver report of a compound RTCP datagram as JSON, with the
/// field names of Homer's RTCP view (`sender_information`, `report_blocks`, ...).
pub fn rtcp_json(datagram: &[u8]) -> Option<String> {
    let p = rtcp::Compound::new(datagram)
        .map_while(Result::ok)
        .find(|p| p.pt == 200 || p.pt == 201)?;
    let w = |i: usize| -> Option<u32> {
        let b = p.body.get(i..i + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut v = serde_json::json!({
        "type": p.pt,
        "ssrc": w(0)?,
        "report_count": p.count,
    });
    if p.pt == 200 {
        v["sender_information"] = serde_json::json!({
            "ntp_timestamp_sec": w(4)?,
            "ntp_timestamp_usec": w(8)?,
            "rtp_timestamp": w(12)?,
            "packets": w(16)?,
            "octets": w(20)?,
        });
    }
    let blocks: Vec<_> = p
        .report_blocks()
        .map(|b| {
            serde_json::json!({
                "source_ssrc": b.ssrc,
                "fraction_lost": b.fraction_lost,
                "packets_lost": b.cumulative_lost,
                "highest_seq_no": b.highest_seq,
                "ia_jitter": b.jitter,
            })
        })
        .collect();
    v["report_blocks"] = blocks.into();
    Some(v.to_string())
}

/// Like [`mirror`] for a message already held in shared bytes (no copy).
pub fn mirror_shared(src: SocketAddr, dst: SocketAddr, transport: Transport, payload: &Arc<[u8]>) {
    offer_sip(src, dst, transport, || payload.clone());
}

/// Queues a SIP capture when HEP is configured; `payload` runs only then, so an unset
/// collector costs no copy.
fn offer_sip(
    src: SocketAddr,
    dst: SocketAddr,
    transport: Transport,
    payload: impl FnOnce() -> Arc<[u8]>,
) {
    if let Some(s) = SENDER.get() {
        s.offer(Captured {
            src,
            dst,
            transport,
            time: SystemTime::now(),
            payload: payload(),
            proto: Proto::Sip,
        });
    }
}

/// How long an unresolvable collector name is left alone before the next lookup.
const RESOLVE_BACKOFF: Duration = Duration::from_secs(10);

async fn connect(collector: &str) -> std::io::Result<UdpSocket> {
    let addr = tokio::net::lookup_host(collector)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let bind: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = UdpSocket::bind(bind).await?;
    // Connected: the kernel reports an absent collector (ICMP) as a send error we count.
    s.connect(addr).await?;
    Ok(s)
}

async fn send_loop(cfg: HepConfig, mut rx: mpsc::Receiver<Captured>) {
    let mut sock: Option<UdpSocket> = None;
    let mut retry_at = tokio::time::Instant::now();
    let mut buf = Vec::with_capacity(2048);
    while let Some(c) = rx.recv().await {
        if sock.is_none() && tokio::time::Instant::now() >= retry_at {
            match connect(&cfg.collector).await {
                Ok(s) => sock = Some(s),
                Err(e) => {
                    warn!(collector = %cfg.collector, error = %e, "HEP collector unavailable");
                    retry_at = tokio::time::Instant::now() + RESOLVE_BACKOFF;
                }
            }
        }
        let Some(s) = &sock else {
            metrics::counter!(crate::metrics::HEP_DROPPED, "reason" => "unresolved").increment(1);
            continue;
        };
        if let Err(e) = encode(&c, cfg.capture_id, cfg.password.as_deref(), &mut buf) {
            debug!(error = %e, "HEP: message not encodable");
            metrics::counter!(crate::metrics::HEP_DROPPED, "reason" => "encode").increment(1);
            continue;
        }
        // Waiting here (a full socket buffer) only backs the queue up; the SIP driver's
        // `offer` never waits.
        match s.send(&buf).await {
            Ok(_) => metrics::counter!(crate::metrics::HEP_PACKETS_SENT).increment(1),
            Err(_) => metrics::counter!(crate::metrics::HEP_DROPPED, "reason" => "send_error")
                .increment(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(payload: &[u8]) -> Captured {
        Captured {
            src: "10.0.0.1:5060".parse().unwrap(),
            dst: "10.0.0.2:5070".parse().unwrap(),
            transport: Transport::Udp,
            time: UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
            payload: payload.into(),
            proto: Proto::Sip,
        }
    }

    /// Splits a packet into (type, value) chunks, checking every length on the way.
    fn chunks(p: &[u8]) -> Vec<(u16, Vec<u8>)> {
        assert_eq!(&p[..4], b"HEP3");
        assert_eq!(u16::from_be_bytes([p[4], p[5]]) as usize, p.len());
        let mut out = vec![];
        let mut i = 6;
        while i < p.len() {
            assert_eq!(u16::from_be_bytes([p[i], p[i + 1]]), 0, "vendor");
            let kind = u16::from_be_bytes([p[i + 2], p[i + 3]]);
            let len = u16::from_be_bytes([p[i + 4], p[i + 5]]) as usize;
            assert!(len >= 6 && i + len <= p.len());
            out.push((kind, p[i + 6..i + len].to_vec()));
            i += len;
        }
        out
    }

    #[test]
    fn ipv4_sip_packet_has_every_chunk() {
        let mut out = vec![];
        encode(
            &sample(b"OPTIONS sip:x SIP/2.0\r\n\r\n"),
            2001,
            Some("pw"),
            &mut out,
        )
        .unwrap();
        let c = chunks(&out);
        let kinds: Vec<u16> = c.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, vec![1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 14, 15]);
        assert_eq!(c[0].1, vec![2]);
        assert_eq!(c[1].1, vec![17]);
        assert_eq!(c[2].1, vec![10, 0, 0, 1]);
        assert_eq!(c[3].1, vec![10, 0, 0, 2]);
        assert_eq!(c[4].1, 5060u16.to_be_bytes());
        assert_eq!(c[5].1, 5070u16.to_be_bytes());
        assert_eq!(c[6].1, 1_700_000_000u32.to_be_bytes());
        assert_eq!(c[7].1, 123_456u32.to_be_bytes());
        assert_eq!(c[8].1, vec![1]);
        assert_eq!(c[9].1, 2001u32.to_be_bytes());
        assert_eq!(c[10].1, b"pw");
        assert_eq!(c[11].1, b"OPTIONS sip:x SIP/2.0\r\n\r\n");
    }

    #[test]
    fn ipv6_and_tcp_use_their_chunks() {
        let mut s = sample(b"BYE");
        s.src = "[::1]:5060".parse().unwrap();
        s.dst = "[::2]:5061".parse().unwrap();
        s.transport = Transport::Tcp;
        let mut out = vec![];
        encode(&s, 7, None, &mut out).unwrap();
        let c = chunks(&out);
        assert_eq!(c[0].1, vec![10]);
        assert_eq!(c[1].1, vec![6]);
        assert_eq!((c[2].0, c[2].1.len()), (5, 16));
        assert_eq!((c[3].0, c[3].1.len()), (6, 16));
        assert!(
            c.iter().all(|(k, _)| *k != 14),
            "no auth chunk without password"
        );
    }

    #[test]
    fn refuses_what_it_cannot_encode() {
        let mut s = sample(b"x");
        s.dst = "[::2]:5061".parse().unwrap();
        assert_eq!(
            encode(&s, 1, None, &mut vec![]),
            Err(HepError::MixedFamilies)
        );
        let big = vec![b'a'; 70_000];
        assert_eq!(
            encode(&sample(&big), 1, None, &mut vec![]),
            Err(HepError::TooLong(70_000))
        );
    }

    #[tokio::test]
    async fn full_queue_drops_instead_of_waiting() {
        // 1,000 offers on a queue of one return at once (the extra ones are dropped), and
        // what was queued reaches the collector intact.
        let collector = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let s = HepSender::start(HepConfig {
            collector: collector.local_addr().unwrap().to_string(),
            capture_id: 9,
            password: None,
            queue: 1,
        });
        for _ in 0..1000 {
            s.offer(sample(b"INVITE"));
        }
        let mut buf = [0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(5), collector.recv(&mut buf))
            .await
            .expect("a capture within 5 s")
            .unwrap();
        let c = chunks(&buf[..n]);
        assert_eq!(c.last().unwrap().1, b"INVITE");
    }

    #[test]
    fn rtcp_reports_go_as_json_with_type_5() {
        let info = rtcp::SenderInfo {
            ssrc: 0x1234_5678,
            ntp: (7u64 << 32) | 9,
            rtp_ts: 160,
            packets: 50,
            octets: 8000,
        };
        let mut buf = [0u8; 256];
        let n = rtcp::write_sr(&mut buf, &info, "dialer", false);
        let json: serde_json::Value =
            serde_json::from_str(&rtcp_json(&buf[..n]).expect("an SR")).unwrap();
        assert_eq!(json["type"], 200);
        assert_eq!(json["ssrc"], 0x1234_5678);
        assert_eq!(json["sender_information"]["packets"], 50);
        assert_eq!(json["sender_information"]["octets"], 8000);
        assert_eq!(json["sender_information"]["rtp_timestamp"], 160);
        assert_eq!(rtcp_json(b"\x80\x00garbage"), None);
        let c = Captured {
            proto: Proto::RtcpJson,
            ..sample(json.to_string().as_bytes())
        };
        let mut out = vec![];
        encode(&c, 1, None, &mut out).unwrap();
        // The protocol type chunk (vendor 0, type 11, length 7) says RTCP.
        let at = out.windows(4).position(|w| w == [0, 0, 0, 11]).unwrap();
        assert_eq!(out[at + 6], 5);
    }
}
