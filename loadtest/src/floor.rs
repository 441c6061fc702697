//! `loadtest floor`: the cheapest way this machine can send paced RTP-sized datagrams — one
//! thread, one UDP socket, one `sendmmsg` per 1 ms slot, a per-message destination (as a
//! pacer with many calls needs), nothing else. Its CPU per packet is the floor the media pump
//! is compared with (the target: within 1.15×).
//!
//! The datagrams go to a receiving socket set up as the carrier's media port is (a 64 MiB
//! buffer, kernel receive timestamps, a real-time draining thread): on loopback the sender's
//! CPU pays for the receiving side's kernel work too, so the floor's packets must meet the
//! same receiver as the pump's — and none may be dropped there, which would be cheaper.
//!
//! With `--raw` the loop sends as the pump does in its raw mode: one raw IPv4 socket
//! (`IPPROTO_RAW`), the IP and UDP headers written in front of each payload, the source port
//! spread over `--ports` ports (a call's own port each). That variant tells what the socket
//! kind costs apart from what the pump does.

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use serde_json::json;

/// Arguments of `loadtest floor`.
#[derive(Debug, Args)]
pub struct FloorArgs {
    /// Packets per second.
    #[arg(long, default_value_t = 250_000)]
    pub rate: u64,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    /// Datagram size (172 = RTP header + 20 ms of G.711).
    #[arg(long, default_value_t = 172)]
    pub size: usize,
    /// Send through a raw IPv4 socket with the headers written here, as the pump does.
    #[arg(long)]
    pub raw: bool,
    /// With `--raw`: source ports the packets are spread over (one per call).
    #[arg(long, default_value_t = 1)]
    pub ports: u16,
}

fn thread_cpu() -> f64 {
    // SAFETY: getrusage with a pointer to a local struct.
    let r = unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut r);
        r
    };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(r.ru_utime) + s(r.ru_stime)
}

/// Runs the loop and prints one JSON line.
pub fn run(a: FloorArgs) -> Result<()> {
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    carrier_like(&sink);
    let sink_addr = sink.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let drain = spawn_drain(sink, stop.clone(), received.clone());
    let SocketAddr::V4(sink_v4) = sink_addr else {
        unreachable!("bound to 127.0.0.1")
    };
    let per_slot = (a.rate / 1000).max(1) as usize;
    let (tx, packets) = if a.raw {
        let packets = raw_packets(sink_v4, a.size, per_slot, a.ports.max(1));
        (raw_socket()?, packets)
    } else {
        let tx: OwnedFd = UdpSocket::bind("127.0.0.1:0")?.into();
        (tx, vec![vec![0x80u8; a.size]])
    };
    let fd = tx.as_raw_fd();
    let mut iovs: Vec<libc::iovec> = (0..per_slot)
        .map(|i| {
            let p = &packets[i % packets.len()];
            libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            }
        })
        .collect();
    // SAFETY: zeroed mmsghdr is valid; pointers set below.
    let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; per_slot];
    // A raw socket takes the port from the UDP header it is given (0 in the address).
    let to = SocketAddrV4::new(*sink_v4.ip(), if a.raw { 0 } else { sink_v4.port() });
    let mut names = vec![sockaddr_v4(to); per_slot];
    for i in 0..per_slot {
        hdrs[i].msg_hdr.msg_name = &mut names[i] as *mut _ as *mut libc::c_void;
        hdrs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    let sent = send_slots(fd, &mut hdrs, a.secs * 1000, t0);
    let cpu = thread_cpu() - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let _ = drain.join();
    println!(
        "{}",
        json!({"floor": {
            "rate": a.rate, "secs": wall, "size": a.size, "sent": sent,
            "raw": a.raw, "ports": if a.raw { a.ports.max(1) } else { 1 },
            "received": received.load(Ordering::Relaxed),
            "sender_cpu_seconds": cpu,
            "sender_us_per_packet": cpu / sent.max(1) as f64 * 1e6,
        }})
    );
    Ok(())
}

/// Sets `sink` up as the carrier's media port is (see `carrier::receive`): a 64 MiB receive
/// buffer (forced past `rmem_max` when permitted) and kernel receive timestamps.
fn carrier_like(sink: &UdpSocket) {
    let fd = sink.as_raw_fd();
    let set = |opt: libc::c_int, v: libc::c_int| {
        // SAFETY: setsockopt with a pointer to a local int of the stated size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                &v as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ) == 0
        }
    };
    if !set(libc::SO_RCVBUFFORCE, 64 << 20) {
        set(libc::SO_RCVBUF, 64 << 20);
    }
    set(libc::SO_TIMESTAMPNS, 1);
}

/// The pump's raw IPv4 socket (same send buffer), so the bare loop sends as it does.
fn raw_socket() -> Result<OwnedFd> {
    engine::net::pump::open_raw_socket()
        .map_err(|e| anyhow::anyhow!("raw socket (needs CAP_NET_RAW): {e}"))
}

/// One whole datagram (IPv4 and UDP headers, then `size` bytes) per slot place, with source
/// ports 20000, 20002, ... cycling over `ports`, to `sink`.
fn raw_packets(sink: SocketAddrV4, size: usize, per_slot: usize, ports: u16) -> Vec<Vec<u8>> {
    (0..per_slot)
        .map(|i| {
            let mut p = vec![0x80u8; 28 + size];
            let sport = 20000 + 2 * (i % usize::from(ports)) as u16;
            engine::net::pump::write_ipv4_udp(
                &mut p[..28],
                sink.ip().octets(),
                *sink.ip(),
                sport,
                sink.port(),
                size,
            );
            p
        })
        .collect()
}

/// A receiver thread that drains `sink` with `recvmmsg` (so the socket never overflows)
/// and counts what arrives, until `stop`. It runs under `SCHED_FIFO` when permitted, as the
/// carrier's receive thread does.
fn spawn_drain(
    sink: UdpSocket,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let p = libc::sched_param { sched_priority: 10 };
        // SAFETY: sched_setscheduler on the calling thread with a pointer to a local.
        let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) };
        let _ = sink.set_read_timeout(Some(Duration::from_millis(50)));
        let fd = sink.as_raw_fd();
        let mut bufs = vec![0u8; 64 * 2048];
        let mut iovs: Vec<libc::iovec> = (0..64)
            .map(|i| libc::iovec {
                iov_base: bufs[i * 2048..].as_mut_ptr() as *mut libc::c_void,
                iov_len: 2048,
            })
            .collect();
        // SAFETY: zeroed mmsghdr is valid; iov pointers set below.
        let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; 64];
        for (h, iov) in hdrs.iter_mut().zip(iovs.iter_mut()) {
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
        }
        while !stop.load(Ordering::Relaxed) {
            // SAFETY: headers point at live buffers.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    hdrs.as_mut_ptr(),
                    64,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if n > 0 {
                received.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        drop(bufs);
    })
}

/// `d` as the C socket address `sendmmsg` takes.
fn sockaddr_v4(d: std::net::SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: zeroed sockaddr_in is valid; fields set below.
    let mut s: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    s.sin_family = libc::AF_INET as libc::sa_family_t;
    s.sin_port = d.port().to_be();
    s.sin_addr.s_addr = u32::from_ne_bytes(d.ip().octets());
    s
}

/// Sends every prepared message once per 1 ms slot (from `t0`, sleeping to each slot's
/// end) for `slots` slots; returns the datagrams the kernel took.
fn send_slots(fd: std::os::fd::RawFd, hdrs: &mut [libc::mmsghdr], slots: u64, t0: Instant) -> u64 {
    let per_slot = hdrs.len();
    let mut sent = 0u64;
    for slot in 0..slots {
        let mut off = 0;
        while off < per_slot {
            // SAFETY: headers point at live buffers.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    hdrs[off..].as_mut_ptr(),
                    (per_slot - off) as libc::c_uint,
                    0,
                )
            };
            if n <= 0 {
                break;
            }
            off += n as usize;
        }
        sent += off as u64;
        let next = t0 + Duration::from_millis(slot + 1);
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
    }
    sent
}
