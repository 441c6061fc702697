//! The system calls of the pump, each wrapped once: descriptor limits, the raw socket, socket
//! addresses in and out of libc form, one-datagram sends, the IPv4/UDP header a raw send
//! writes, thread CPU time and CPU pinning.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return Err(io::Error::last_os_error());
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) != 0 {
                return Err(io::Error::last_os_error());
            }
            return Ok(want.rlim_cur);
        }
        Ok(r.rlim_cur)
    }
}

/// A raw IPv4 socket for sends with our own IP and UDP headers (needs CAP_NET_RAW), with a
/// 4 MiB send buffer: what each pacing loop sends through (and `loadtest floor --raw`).
pub fn open_raw_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let size: libc::c_int = 4 << 20;
    // SAFETY: setsockopt with a pointer to a local int of the stated size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    Ok(owned)
}

/// CPU time of the calling thread.
pub(super) fn thread_cpu() -> Duration {
    // SAFETY: getrusage with a pointer to a local struct.
    let r = unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut r);
        r
    };
    let d = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    d(r.ru_utime) + d(r.ru_stime)
}

pub(super) fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

pub(super) fn fd_error(e: io::Error) -> io::Error {
    // SAFETY: getrlimit with a valid pointer to a local struct.
    let (soft, hard) = unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        (r.rlim_cur, r.rlim_max)
    };
    io::Error::new(
        e.kind(),
        format!(
            "out of file descriptors binding RTP ports ({e}); RLIMIT_NOFILE is {soft} (hard {hard}), \
             each call needs 2: raise `ulimit -n` or LimitNOFILE"
        ),
    )
}

pub(super) fn sockaddr_in(a: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: zeroed sockaddr_in is valid; fields set below.
    let mut s: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    s.sin_family = libc::AF_INET as libc::sa_family_t;
    s.sin_port = a.port().to_be();
    s.sin_addr = libc::in_addr {
        s_addr: u32::from_ne_bytes(a.ip().octets()),
    };
    s
}

pub(super) fn sockaddr_to_std(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
            Some(SocketAddr::new(ip, u16::from_be(a.sin6_port)))
        }
        _ => None,
    }
}

/// `dest` as a libc socket address, with its length.
fn sockaddr_of(dest: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: a zeroed sockaddr_storage is valid; the family-specific view is filled below.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match dest {
        SocketAddr::V4(d) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            unsafe { *(&mut ss as *mut _ as *mut libc::sockaddr_in) = sockaddr_in(d) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(d) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in6.
            let sa = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_port = d.port().to_be();
            sa.sin6_addr = libc::in6_addr {
                s6_addr: d.ip().octets(),
            };
            sa.sin6_scope_id = d.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// Sends one datagram without blocking.
pub(super) fn send_to(fd: RawFd, pkt: &[u8], dest: SocketAddr) -> io::Result<()> {
    let (sa, len) = sockaddr_of(dest);
    // SAFETY: valid buffer and address pointers for the duration of the call.
    let r = unsafe {
        libc::sendto(
            fd,
            pkt.as_ptr() as *const libc::c_void,
            pkt.len(),
            libc::MSG_DONTWAIT,
            &sa as *const _ as *const libc::sockaddr,
            len,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Points a `sendmmsg`/`recvmmsg` header at one address buffer and one `iovec`, with no
/// control data.
pub(super) fn point_hdr(
    h: &mut libc::mmsghdr,
    name: *mut libc::c_void,
    namelen: usize,
    iov: *mut libc::iovec,
) {
    h.msg_hdr.msg_name = name;
    h.msg_hdr.msg_namelen = namelen as libc::socklen_t;
    h.msg_hdr.msg_iov = iov;
    h.msg_hdr.msg_iovlen = 1;
    h.msg_hdr.msg_control = std::ptr::null_mut();
    h.msg_hdr.msg_controllen = 0;
    h.msg_hdr.msg_flags = 0;
    h.msg_len = 0;
}

/// Writes a 20-byte IPv4 header and an 8-byte UDP header (checksum 0, allowed over IPv4) for
/// a payload of `len` bytes. The kernel fills the IP checksum and ID (`IPPROTO_RAW`).
pub fn write_ipv4_udp(
    h: &mut [u8],
    src: [u8; 4],
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    len: usize,
) {
    let total = (28 + len) as u16;
    h[0] = 0x45;
    h[1] = 46 << 2; // DSCP EF
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[4..6].copy_from_slice(&[0, 0]);
    h[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
    h[8] = 64;
    h[9] = 17;
    h[10..12].copy_from_slice(&[0, 0]);
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst.octets());
    h[20..22].copy_from_slice(&sport.to_be_bytes());
    h[22..24].copy_from_slice(&dport.to_be_bytes());
    h[24..26].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    h[26..28].copy_from_slice(&[0, 0]);
}

/// The CPUs this process may run on, in order (empty if the kernel does not say).
pub(super) fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is an empty set; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pointer to a local set of the stated size; pid 0 is the calling thread.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Vec::new();
    }
    // SAFETY: CPU_ISSET reads the set filled above, for indexes within its size.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// The CPU pacing loop `index` of `loops` stays on: loops spread over the allowed CPUs, from
/// the last one down (CPU 0 takes most device interrupts), `None` when nothing is known.
pub(super) fn loop_cpu(allowed: &[usize], index: usize) -> Option<usize> {
    if allowed.is_empty() {
        return None;
    }
    Some(allowed[allowed.len() - 1 - index % allowed.len()])
}

/// Pins the calling thread to `cpu`.
pub(super) fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET adds one index within its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pointer to a local set of the stated size; pid 0 is the calling thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_udp_header() {
        let mut h = [0u8; 28];
        write_ipv4_udp(
            &mut h,
            [127, 0, 0, 1],
            Ipv4Addr::new(10, 0, 0, 2),
            20000,
            4000,
            172,
        );
        assert_eq!(h[0], 0x45);
        assert_eq!(u16::from_be_bytes([h[2], h[3]]), 200);
        assert_eq!(h[9], 17);
        assert_eq!(&h[16..20], &[10, 0, 0, 2]);
        assert_eq!(u16::from_be_bytes([h[20], h[21]]), 20000);
        assert_eq!(u16::from_be_bytes([h[22], h[23]]), 4000);
        assert_eq!(u16::from_be_bytes([h[24], h[25]]), 180);
    }

    #[test]
    fn loops_get_distinct_cpus_while_there_are_enough() {
        assert_eq!(loop_cpu(&[], 0), None);
        assert_eq!(loop_cpu(&[0, 1], 0), Some(1));
        assert_eq!(loop_cpu(&[0, 1], 1), Some(0));
        assert_eq!(loop_cpu(&[0, 1], 2), Some(1));
        assert_eq!(loop_cpu(&[2, 5, 7], 1), Some(5));
        assert!(!allowed_cpus().is_empty());
    }
}
