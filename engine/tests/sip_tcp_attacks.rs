//! Findings 1–4 of issue 11 as attacks on the SIP driver's TCP side, on loopback, with
//! bounded figures measured here: a `Content-Length: 999999999` is refused with a 413
//! and its bytes are never buffered; 16 MB of CRLF keep-alives cost linear CPU; 80,000
//! closed connections leave nothing behind; connections are capped in total and per
//! source; idle and slow connections are closed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use engine::net::{SipDriver, TcpLimits};
use engine::sip::endpoint::EndpointConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn driver(limits: TcpLimits) -> (SipDriver, engine::net::SipEvents) {
    let bind = SocketAddr::new(LOOPBACK, 0);
    SipDriver::start_with(bind, EndpointConfig::new(bind), limits)
        .await
        .unwrap()
}

fn options(cl: &str, n: u32) -> Vec<u8> {
    format!(
        "OPTIONS sip:dialer@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKatk{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=a{n}\r\nTo: <sip:dialer@127.0.0.1>\r\n\
         Call-ID: attack-{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: {cl}\r\n\r\n"
    )
    .into_bytes()
}

/// Resident memory of this process, bytes (Linux).
fn rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// CPU time (user + system) this process has used, seconds (Linux).
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted from the state field (3).
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Reads until `want` appears or the peer closes; what was read.
async fn read_until(s: &mut TcpStream, want: &[u8], limit: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    let deadline = tokio::time::Instant::now() + limit;
    while !got.windows(want.len()).any(|w| w == want) {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// Whether the peer closed the connection within `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn huge_content_length_is_refused_with_413_and_nothing_is_buffered() {
    let (d, _ev) = driver(TcpLimits::default()).await;
    let mut s = TcpStream::connect(d.local_addr()).await.unwrap();
    let before = rss();
    s.write_all(&options("999999999", 1)).await.unwrap();
    // Send the "body" as an attacker would: 48 MB, until the dialer hangs up.
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0usize;
    while sent < 48 * 1024 * 1024 {
        match tokio::time::timeout(Duration::from_secs(5), s.write_all(&chunk)).await {
            Ok(Ok(())) => sent += chunk.len(),
            _ => break,
        }
    }
    let grown = rss().saturating_sub(before);
    let reply = read_until(&mut s, b"\r\n\r\n", Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("SIP/2.0 413 "), "{text:?}");
    assert!(text.contains("Call-ID: attack-1"), "{text:?}");
    println!(
        "sent {} MB before the close, RSS +{} MB",
        sent >> 20,
        grown >> 20
    );
    assert!(
        sent < 48 * 1024 * 1024,
        "the dialer kept reading a refused body"
    );
    assert!(grown < 16 << 20, "RSS grew by {} MB", grown >> 20);
}

#[tokio::test]
async fn crlf_keep_alives_cost_linear_cpu_and_get_pongs() {
    let (d, _ev) = driver(TcpLimits::default()).await;
    let s = TcpStream::connect(d.local_addr()).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let reader = tokio::spawn(async move {
        let mut got = 0usize;
        let mut tail = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            match tokio::time::timeout(Duration::from_secs(60), r.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {
                    got += n;
                    tail.extend_from_slice(&buf[..n]);
                    if let Some(i) = tail.windows(7).position(|x| x == b"SIP/2.0") {
                        return (got, tail[i..].starts_with(b"SIP/2.0 200"));
                    }
                    let keep = tail.len().saturating_sub(8);
                    tail.drain(..keep);
                }
                _ => return (got, false),
            }
        }
    });
    let cpu0 = cpu_seconds();
    let chunk = b"\r\n".repeat(32 * 1024);
    for _ in 0..(16 * 1024 * 1024 / chunk.len()) {
        w.write_all(&chunk).await.unwrap();
    }
    w.write_all(&options("0", 2)).await.unwrap();
    let (pong_bytes, answered) = reader.await.unwrap();
    let cpu = cpu_seconds() - cpu0;
    println!("16 MB of CRLF: {cpu:.2} s CPU, {pong_bytes} bytes back");
    assert!(
        answered,
        "the OPTIONS after the keep-alives was answered 200"
    );
    assert!(pong_bytes >= 2, "double CRLF answered with CRLF");
    assert!(cpu < 4.0, "16 MB of CRLF cost {cpu:.2} s of CPU");
}

#[tokio::test]
async fn eighty_thousand_closed_connections_are_forgotten() {
    let limits = TcpLimits {
        max_per_source: 10_000,
        ..TcpLimits::default()
    };
    let (d, _ev) = driver(limits).await;
    let addr = d.local_addr();
    let before = rss();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..32u32 {
        tasks.spawn(async move {
            let mut ok = 0u32;
            for _ in 0..2500 {
                let sock = TcpSocket::new_v4().unwrap();
                if let Ok(s) = sock.connect(addr).await {
                    // RST on close: no TIME_WAIT, so 80,000 fit in the port range.
                    let _ = s.set_zero_linger();
                    ok += 1;
                }
            }
            let _ = w;
            ok
        });
    }
    let mut opened = 0;
    while let Some(n) = tasks.join_next().await {
        opened += n.unwrap();
    }
    assert!(opened >= 79_000, "only {opened} connections opened");
    let mut left = usize::MAX;
    for _ in 0..200 {
        left = d.tcp_connections().await.unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let grown = rss().saturating_sub(before);
    println!(
        "{opened} connections opened and closed: {left} kept, RSS +{} MB",
        grown >> 20
    );
    assert_eq!(left, 0, "closed connections still in the table");
    assert!(grown < 32 << 20, "RSS grew by {} MB", grown >> 20);
}

async fn connect_from(src: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(src.into(), 0)).unwrap();
    sock.connect(to).await.unwrap()
}

#[tokio::test]
async fn connections_are_capped_in_total_and_per_source() {
    let limits = TcpLimits {
        max_connections: 6,
        max_per_source: 4,
        ..TcpLimits::default()
    };
    let (d, _ev) = driver(limits).await;
    let to = d.local_addr();
    let a = Ipv4Addr::new(127, 0, 0, 1);
    let b = Ipv4Addr::new(127, 0, 0, 2);
    let c = Ipv4Addr::new(127, 0, 0, 3);
    let mut kept = Vec::new();
    for _ in 0..4 {
        kept.push(connect_from(a, to).await);
    }
    let mut fifth = connect_from(a, to).await;
    assert!(
        closed_within(&mut fifth, Duration::from_secs(5)).await,
        "5th from one source"
    );
    for _ in 0..2 {
        kept.push(connect_from(b, to).await);
    }
    let mut over = connect_from(c, to).await;
    assert!(
        closed_within(&mut over, Duration::from_secs(5)).await,
        "7th in total"
    );
    for s in &mut kept {
        assert!(
            !closed_within(s, Duration::from_millis(100)).await,
            "admitted ones stay"
        );
    }
    // A closed connection frees its slot.
    drop(kept.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from(c, to).await;
    assert!(!closed_within(&mut again, Duration::from_millis(300)).await);
}

#[tokio::test]
async fn idle_and_slow_connections_are_closed() {
    let limits = TcpLimits {
        header_timeout: Duration::from_millis(600),
        idle_timeout: Duration::from_millis(600),
        ..TcpLimits::default()
    };
    let (d, _ev) = driver(limits).await;
    let mut idle = TcpStream::connect(d.local_addr()).await.unwrap();
    let mut slow = TcpStream::connect(d.local_addr()).await.unwrap();
    let msg = options("0", 3);
    // One byte every 100 ms: a message would take 20 s, the header timeout is 0.6 s.
    let mut closed = false;
    for b in msg.iter().take(40) {
        if slow.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        closed || closed_within(&mut slow, Duration::from_secs(5)).await,
        "slow-loris"
    );
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)).await,
        "idle"
    );
    // A prompt message on a fresh connection is still served.
    let mut s = TcpStream::connect(d.local_addr()).await.unwrap();
    s.write_all(&options("0", 4)).await.unwrap();
    let reply = read_until(&mut s, b"\r\n\r\n", Duration::from_secs(5)).await;
    assert!(
        reply.starts_with(b"SIP/2.0 200"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
}
