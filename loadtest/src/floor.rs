//! `loadtest floor`: the cheapest way this machine can send paced RTP-sized datagrams — one
//! thread, one UDP socket, one `sendmmsg` per 1 ms slot, a per-message destination (as a
//! pacer with many calls needs), nothing else. Its CPU per packet is the floor the media pump
//! is compared with (the target: within 1.25×).

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
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
    /// Destination ports to spread over (distinct destinations, like many calls).
    #[arg(long, default_value_t = 1)]
    pub dests: u16,
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
    let sink_addr = sink.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let drain = spawn_drain(sink, stop.clone(), received.clone());
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    let fd = tx.as_raw_fd();
    let per_slot = (a.rate / 1000).max(1) as usize;
    let payload = vec![0x80u8; a.size];
    let SocketAddr::V4(sink_v4) = sink_addr else {
        unreachable!("bound to 127.0.0.1")
    };
    let dests: Vec<libc::sockaddr_in> = vec![sockaddr_v4(sink_v4); usize::from(a.dests.max(1))];
    let mut iovs: Vec<libc::iovec> = (0..per_slot)
        .map(|_| libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: payload.len(),
        })
        .collect();
    // SAFETY: zeroed mmsghdr is valid; pointers set below.
    let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; per_slot];
    let mut names = dests.clone();
    names.resize(per_slot, dests[0]);
    for i in 0..per_slot {
        names[i] = dests[i % dests.len()];
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
            "received": received.load(Ordering::Relaxed),
            "sender_cpu_seconds": cpu,
            "sender_us_per_packet": cpu / sent.max(1) as f64 * 1e6,
        }})
    );
    Ok(())
}

/// A receiver thread that drains `sink` with `recvmmsg` (so the socket never overflows)
/// and counts what arrives, until `stop`.
fn spawn_drain(
    sink: UdpSocket,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
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
