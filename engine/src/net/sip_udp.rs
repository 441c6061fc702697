//! Batched UDP for the SIP driver: `recvmmsg` / `sendmmsg` on one socket, buffers sized for
//! thousands of calls per second, and the kernel's own drop count (`SO_RXQ_OVFL`).
//!
//! Why the raw syscalls and not a `try_recv_from` drain loop: at 5,000 calls per second the
//! SIP socket carries ~20,000 datagrams a second each way; one syscall per 32 of them
//! instead of one each takes the per-datagram syscall cost out of the driver's loop, and
//! `recvmmsg` hands over the `SO_RXQ_OVFL` control message with every datagram, which is
//! the only exact count of what the socket buffer threw away. `libc` is already a
//! dependency (the media pump uses `sendmmsg` too); the buffers are allocated once.

use std::io;
use std::mem::{size_of, zeroed, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams per syscall.
pub const BATCH: usize = 32;
/// Largest datagram read (a UDP payload cannot be larger).
const MAX_DATAGRAM: usize = 65_535;
/// Room for one `SO_RXQ_OVFL` control message (a `u32`) per datagram.
const CTRL_LEN: usize = 64;

/// Receive and send buffer sizes for the SIP socket. At 5,000 calls per second about
/// 20,000 datagrams arrive per second; the default 208 KiB holds ~11 ms of them, 8 MiB
/// holds ~300 ms (a datagram's kernel truesize on loopback is ~1.3 KiB for ~800 bytes
/// of SIP), enough to ride out a scheduling stall of the driver's task.
pub const RCVBUF: usize = 8 << 20;
/// See [`RCVBUF`]; bursts of INVITEs leave faster than the NIC drains them.
pub const SNDBUF: usize = 4 << 20;

fn setsockopt_int(fd: RawFd, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: `v` is a live c_int and its size is passed; fd is a socket we own.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&v as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn getsockopt_int(fd: RawFd, opt: libc::c_int) -> io::Result<usize> {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are live and sized for a c_int.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r == 0 {
        Ok(usize::try_from(v).unwrap_or(0))
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sizes a socket's buffers (the privileged `*BUFFORCE` first, past `rmem_max`, then the
/// capped ordinary option) and turns the drop-count control message on. Returns the
/// effective (kernel-doubled) receive and send sizes.
pub fn tune(fd: RawFd, rcvbuf: usize, sndbuf: usize) -> io::Result<(usize, usize)> {
    let want = |n: usize| libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX);
    if setsockopt_int(fd, libc::SO_RCVBUFFORCE, want(rcvbuf)).is_err() {
        setsockopt_int(fd, libc::SO_RCVBUF, want(rcvbuf))?;
    }
    if setsockopt_int(fd, libc::SO_SNDBUFFORCE, want(sndbuf)).is_err() {
        setsockopt_int(fd, libc::SO_SNDBUF, want(sndbuf))?;
    }
    setsockopt_int(fd, libc::SO_RXQ_OVFL, 1)?;
    Ok((
        getsockopt_int(fd, libc::SO_RCVBUF)?,
        getsockopt_int(fd, libc::SO_SNDBUF)?,
    ))
}

fn from_storage(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(s as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(s as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn to_storage(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid; we fill the variant's fields below.
    let mut s: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is larger and more aligned than sockaddr_in.
            let sin = unsafe { &mut *(&mut s as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: sockaddr_storage is larger and more aligned than sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut s as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            sin6.sin6_flowinfo = v6.flowinfo();
            sin6.sin6_scope_id = v6.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (s, len as libc::socklen_t)
}

/// Reusable buffers for `recvmmsg`: [`BATCH`] datagrams per call, allocated once.
pub struct RecvBatch {
    buf: Box<[u8]>,
    addrs: Box<[libc::sockaddr_storage]>,
    ctrl: Box<[[u64; CTRL_LEN / 8]]>,
    lens: [usize; BATCH],
    from: [Option<SocketAddr>; BATCH],
    n: usize,
    /// The socket's cumulative receive-buffer drop count, as last reported.
    drops: u32,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            buf: vec![0u8; BATCH * MAX_DATAGRAM].into_boxed_slice(),
            // SAFETY: all-zero sockaddr_storage values are valid.
            addrs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            ctrl: vec![[0u64; CTRL_LEN / 8]; BATCH].into_boxed_slice(),
            lens: [0; BATCH],
            from: [None; BATCH],
            n: 0,
            drops: 0,
        }
    }
}

impl RecvBatch {
    /// Reads up to [`BATCH`] datagrams without blocking (`WouldBlock` when none wait).
    /// Returns how many more datagrams the socket buffer dropped since the last call.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<u32> {
        // SAFETY: zeroed iovec/mmsghdr are valid; every pointer set below points into
        // buffers owned by `self`, alive and unmoved for the duration of the call.
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for i in 0..BATCH {
            iovs[i].iov_base = self.buf[i * MAX_DATAGRAM..].as_mut_ptr().cast();
            iovs[i].iov_len = MAX_DATAGRAM;
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.ctrl[i].as_mut_ptr().cast();
            h.msg_controllen = CTRL_LEN as _;
        }
        // SAFETY: hdrs describes BATCH valid, writable messages (see above).
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.n = 0;
            return Err(io::Error::last_os_error());
        }
        self.n = n as usize;
        let before = self.drops;
        for (i, hdr) in hdrs.iter().enumerate().take(self.n) {
            self.lens[i] = hdr.msg_len as usize;
            self.from[i] = from_storage(&self.addrs[i]);
            if let Some(d) = rxq_ovfl(&hdr.msg_hdr) {
                self.drops = self.drops.max(d);
            }
        }
        Ok(self.drops.wrapping_sub(before))
    }

    /// How many datagrams the last [`RecvBatch::recv`] read.
    pub fn read_count(&self) -> usize {
        self.n
    }

    /// The datagrams the last [`RecvBatch::recv`] read, with their sources.
    pub fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        (0..self.n).filter_map(|i| {
            let from = self.from[i]?;
            let start = i * MAX_DATAGRAM;
            Some((from, &self.buf[start..start + self.lens[i]]))
        })
    }
}

/// The `SO_RXQ_OVFL` count in a received message's control data, if any.
fn rxq_ovfl(h: &libc::msghdr) -> Option<u32> {
    // SAFETY: `h` was filled by recvmmsg; the CMSG macros walk within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_RXQ_OVFL {
                return Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u32>()));
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

/// Sends up to [`BATCH`] datagrams in one `sendmmsg` without blocking; returns how many
/// the kernel took (the first failing one's error when it took none).
pub fn send_batch<'a>(
    fd: RawFd,
    msgs: impl Iterator<Item = (SocketAddr, &'a [u8])>,
) -> io::Result<usize> {
    // Only the entries in use are written: zeroing the whole arrays (6.6 KB) cost more
    // than the rest of the function when a pass sends one or two datagrams.
    let mut names = [const { MaybeUninit::<libc::sockaddr_storage>::uninit() }; BATCH];
    let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; BATCH];
    let mut hdrs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; BATCH];
    let mut n = 0;
    for (dest, bytes) in msgs.take(BATCH) {
        let (s, len) = to_storage(dest);
        let name = names[n].write(s);
        let iov = iovs[n].write(libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        });
        // SAFETY: an all-zero mmsghdr is valid (null pointers, zero lengths).
        let h = hdrs[n].write(unsafe { zeroed() });
        h.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
        h.msg_hdr.msg_namelen = len;
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
        n += 1;
    }
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: hdrs[..n] are initialised and point into names[..n], iovs[..n] and the
    // callers' byte slices, all alive during the call; the kernel reads n entries only
    // (and writes their msg_len).
    let r = unsafe {
        libc::sendmmsg(
            fd,
            hdrs.as_mut_ptr().cast::<libc::mmsghdr>(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn addresses_round_trip() {
        for a in ["127.0.0.1:5060", "[::1]:5080", "[fe80::1%3]:7"] {
            let a: SocketAddr = a.parse().expect("addr");
            let (s, _) = to_storage(a);
            assert_eq!(from_storage(&s), Some(a));
        }
    }

    #[test]
    fn batches_both_ways_and_reports_socket_buffer_drops() {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        // A tiny receive buffer that is not read while 400 datagrams arrive: most drop.
        let (rcv, _) = tune(rx.as_raw_fd(), 4096, 1 << 20).expect("tune");
        assert!(rcv < 64 << 10, "buffer stayed small: {rcv}");
        let dest = rx.local_addr().expect("addr");
        let payload = [7u8; 500];
        let mut sent = 0;
        for _ in 0..200 {
            let msgs = std::iter::repeat_n((dest, &payload[..]), BATCH);
            sent += send_batch(tx.as_raw_fd(), msgs).unwrap_or(0);
            if sent >= 400 {
                break;
            }
        }
        assert!(sent >= 400, "sendmmsg took {sent}");
        let mut batch = RecvBatch::default();
        let (mut got, mut drops) = (0u32, 0u32);
        // A drop is reported on the next datagram queued after it: send one once drained.
        let mut last_sent = false;
        for _ in 0..100 {
            match batch.recv(rx.as_raw_fd()) {
                Ok(d) => {
                    drops += d;
                    for (from, bytes) in batch.datagrams() {
                        assert_eq!(from, tx.local_addr().expect("addr"));
                        assert_eq!(bytes, &payload[..]);
                        got += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !last_sent => {
                    last_sent = true;
                    sent += send_batch(tx.as_raw_fd(), std::iter::once((dest, &payload[..])))
                        .expect("send");
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("recvmmsg: {e}"),
            }
        }
        assert!(got > 1 && drops > 0, "read {got}, {drops} dropped");
        assert_eq!(got + drops, sent as u32, "every datagram read or counted");
    }
}
