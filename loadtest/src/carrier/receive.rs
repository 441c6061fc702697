//! The carrier's receivers: every call's RTP on one shared port drained by
//! `recvmmsg` with kernel timestamps, RTCP on the port above, both into the [`Analyzer`];
//! and the SIP socket's kernel arrival stamps, which date each INVITE for the per-second
//! counts.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use tracing::debug;

use crate::analysis::Analyzer;

/// The RTP and RTCP receive threads.
pub(super) struct Receivers {
    rtp: JoinHandle<()>,
    rtcp: JoinHandle<()>,
}

impl Receivers {
    /// Starts both threads; they run until `stop` turns true.
    pub(super) fn spawn(
        rtp: UdpSocket,
        rtcp: UdpSocket,
        analyzer: &Arc<Mutex<Analyzer>>,
        stop: &Arc<AtomicBool>,
    ) -> std::io::Result<Receivers> {
        let rtp = {
            let (a, stop) = (analyzer.clone(), stop.clone());
            std::thread::Builder::new()
                .name("carrier-rtp".into())
                .spawn(move || rtp_loop(rtp, a, stop))?
        };
        let rtcp = {
            let (a, stop) = (analyzer.clone(), stop.clone());
            std::thread::Builder::new()
                .name("carrier-rtcp".into())
                .spawn(move || rtcp_loop(rtcp, a, stop))?
        };
        Ok(Receivers { rtp, rtcp })
    }

    /// Waits for both threads (after `stop` was set).
    pub(super) fn join(self) {
        let _ = self.rtp.join();
        let _ = self.rtcp.join();
    }
}

/// Binds the RTP port and the RTCP port above it; with port 0, tries free pairs.
pub(super) fn bind_media(addr: SocketAddr) -> Result<(UdpSocket, UdpSocket)> {
    for _ in 0..if addr.port() == 0 { 100 } else { 1 } {
        let rtp = UdpSocket::bind(addr).with_context(|| format!("binding {addr}"))?;
        let a = rtp.local_addr()?;
        if a.port() == u16::MAX {
            continue;
        }
        match UdpSocket::bind(SocketAddr::new(a.ip(), a.port() + 1)) {
            Ok(rtcp) => return Ok((rtp, rtcp)),
            Err(e) if addr.port() != 0 => {
                return Err(e).with_context(|| format!("binding RTCP port {}", a.port() + 1))
            }
            Err(_) => continue,
        }
    }
    bail!("no free RTP/RTCP port pair on {}", addr.ip())
}

/// Lets the shared RTP port queue 64 MiB. SO_RCVBUF is capped by net.core.rmem_max
/// (208 KiB by default: 4 ms of 5,000 streams); SO_RCVBUFFORCE (CAP_NET_ADMIN) is not, so
/// a stalled carrier does not count loss.
pub(super) fn grow_rtp_buffer(rtp: &UdpSocket) {
    if !set_buf(rtp, libc::SO_RCVBUFFORCE, 64 << 20) {
        set_buf(rtp, libc::SO_RCVBUF, 64 << 20);
    }
}

pub(super) fn set_buf(s: &UdpSocket, opt: libc::c_int, size: libc::c_int) -> bool {
    // SAFETY: setsockopt with a pointer to a local int of the stated size.
    unsafe {
        0 == libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    }
}

const BATCH: usize = 64;
const MTU: usize = 1500;

fn rtp_loop(sock: UdpSocket, analyzer: Arc<Mutex<Analyzer>>, stop: Arc<AtomicBool>) {
    // The receiver must not be what a busy machine delays: real-time priority when permitted
    // (arrival times come from the kernel either way).
    let p = libc::sched_param { sched_priority: 10 };
    // SAFETY: sched_setscheduler on the calling thread with a pointer to a local.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) } != 0 {
        debug!("carrier RTP thread: no SCHED_FIFO");
    }
    let fd = sock.as_raw_fd();
    enable_timestamps(&sock);
    // A receive timeout so the loop can stop.
    let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
    let mut bufs = vec![0u8; BATCH * MTU];
    // 64 bytes of control messages per datagram, aligned for `cmsghdr`.
    let mut ctrl = vec![0u64; BATCH * 8];
    // SAFETY: zeroed libc structs are valid empty values; pointers are set before each call.
    let mut names: Vec<libc::sockaddr_in6> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut iovs: Vec<libc::iovec> = vec![
        libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0
        };
        BATCH
    ];
    let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
    while !stop.load(Ordering::Relaxed) {
        for i in 0..BATCH {
            iovs[i] = libc::iovec {
                iov_base: bufs[i * MTU..].as_mut_ptr() as *mut libc::c_void,
                iov_len: MTU,
            };
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = &mut names[i] as *mut _ as *mut libc::c_void;
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = ctrl[i * 8..].as_mut_ptr() as *mut libc::c_void;
            h.msg_controllen = 64;
            h.msg_flags = 0;
        }
        // SAFETY: every header points at buffers owned by this frame.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            continue;
        }
        let fallback = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as i64;
        let mut a = analyzer.lock().expect("lock");
        for i in 0..n as usize {
            let len = hdrs[i].msg_len as usize;
            let ts = kernel_timestamp(&hdrs[i].msg_hdr).unwrap_or(fallback);
            let Some(from) = sockaddr(&names[i]) else {
                continue;
            };
            a.packet(from, ts, &bufs[i * MTU..i * MTU + len.min(MTU)]);
        }
    }
}

/// Asks the kernel to stamp each datagram `sock` receives with its arrival time.
pub(super) fn enable_timestamps(sock: &UdpSocket) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on an open socket with a pointer to a local int.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// One datagram into `buf`: its length, source and the kernel's arrival time (Unix ns;
/// `None` when the socket does not stamp). Honours the socket's read timeout.
pub(super) fn recv_stamped(
    sock: &UdpSocket,
    buf: &mut [u8],
) -> std::io::Result<(usize, Option<SocketAddr>, Option<i64>)> {
    // Control messages are read as `cmsghdr`s: the buffer must have their alignment.
    let mut ctrl = [0u64; 8];
    // SAFETY: a zeroed sockaddr_in6 and msghdr are valid empty values; every pointer set
    // below refers to a local or to `buf`, all alive for the call.
    let mut name: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
    h.msg_name = &mut name as *mut _ as *mut libc::c_void;
    h.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    h.msg_iov = &mut iov;
    h.msg_iovlen = 1;
    h.msg_control = ctrl.as_mut_ptr() as *mut libc::c_void;
    h.msg_controllen = std::mem::size_of_val(&ctrl);
    // SAFETY: `h` points at buffers owned by this frame.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut h, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((n as usize, sockaddr(&name), kernel_timestamp(&h)))
}

fn kernel_timestamp(h: &libc::msghdr) -> Option<i64> {
    // SAFETY: walking the control messages the kernel wrote into our buffer.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                return Some(ts.tv_sec * 1_000_000_000 + ts.tv_nsec);
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

fn sockaddr(s: &libc::sockaddr_in6) -> Option<SocketAddr> {
    match i32::from(s.sin6_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a = unsafe { &*(s as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::new(
                std::net::Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes()).into(),
                u16::from_be(a.sin_port),
            ))
        }
        libc::AF_INET6 => Some(SocketAddr::new(
            std::net::Ipv6Addr::from(s.sin6_addr.s6_addr).into(),
            u16::from_be(s.sin6_port),
        )),
        _ => None,
    }
}

fn rtcp_loop(sock: UdpSocket, analyzer: Arc<Mutex<Analyzer>>, stop: Arc<AtomicBool>) {
    let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            analyzer.lock().expect("lock").rtcp(from, &buf[..n]);
        }
    }
}
