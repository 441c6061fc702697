//! The sending half of a pacing loop: one batch of due packets handed to the kernel, through
//! the raw socket (one `sendmmsg` for every call) or each call's own socket.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;

use tracing::debug;

use super::event_loop::Loop;
use super::sys::{point_hdr, send_to, sockaddr_in, write_ipv4_udp};
use crate::media::PacketKind;

impl Loop {
    pub(super) fn send_batch(&mut self) {
        let n = self.batch.len();
        if n == 0 {
            return;
        }
        self.protect_batch();
        if self.raw.is_some() {
            self.send_raw(n);
        } else {
            self.send_per_socket(n);
        }
        // One clock read per batch: every packet in it left at about this instant.
        let sent_ns = self.pacer.origin().elapsed().as_nanos() as u64;
        let mut rtp = 0u64;
        let mut worst = 0u64;
        for it in self.batch.items() {
            if it.kind == PacketKind::Rtp {
                let lag = sent_ns.saturating_sub(it.due_ns);
                self.local.lag.record(lag);
                worst = worst.max(lag);
                rtp += 1;
            } else {
                self.local.rtcp_sent += 1;
            }
        }
        if crate::net::hep::enabled() {
            self.mirror_rtcp_batch();
        }
        if rtp > 0 {
            // One sample per batch (at most one per slot and loop), not one per packet: the
            // Prometheus recorder keeps every sample until a scrape or its upkeep drains them,
            // so per-packet samples grew memory with the packet rate when nobody scraped.
            self.lag_metric.record(worst as f64 * 1e-9);
        }
        self.local.rtp_sent += rtp;
        self.sent_metric.increment(rtp);
        self.batch.clear();
    }

    /// Encrypts the packets of encrypted calls where they lie in the batch (SRTP, SRTCP).
    /// HEP mirrors RTCP after this, so the collector sees what went on the wire.
    fn protect_batch(&mut self) {
        if self.srtp_calls == 0 {
            return;
        }
        for i in 0..self.batch.len() {
            let it = self.batch.items()[i];
            if !self.routes.get(it.route as usize).is_some_and(|r| r.srtp) {
                continue;
            }
            let Some(pair) = self
                .slots
                .get_mut(it.route as usize)
                .and_then(|s| s.as_mut())
                .and_then(|s| s.srtp.as_mut())
            else {
                continue;
            };
            let r = self.batch.rewrite(i, |buf, len| match it.kind {
                PacketKind::Rtp => pair.tx.protect_rtp(buf, len),
                PacketKind::Rtcp => pair.tx.protect_rtcp(buf, len),
            });
            if let Err(e) = r {
                debug!(error = %e, "SRTP protection failed; packet emptied");
            }
        }
    }

    /// Mirrors the batch's RTCP reports to the HEP collector (only called when one is set).
    fn mirror_rtcp_batch(&self) {
        for (i, it) in self.batch.items().iter().enumerate() {
            if it.kind != PacketKind::Rtcp {
                continue;
            }
            let Some(slot) = self.slots.get(it.route as usize).and_then(|s| s.as_ref()) else {
                continue;
            };
            let local = SocketAddr::new(self.src_ip.into(), slot.rtcp_port());
            crate::net::hep::mirror_rtcp(local, it.dest, self.batch.packet(i));
        }
    }

    fn send_raw(&mut self, n: usize) {
        let src = self.src_ip.octets();
        let mut v4 = 0usize;
        for i in 0..n {
            let it = self.batch.items()[i];
            let Some(route) = self
                .routes
                .get(it.route as usize)
                .filter(|r| r.rtp_port != 0)
            else {
                continue;
            };
            let sport = if it.kind == PacketKind::Rtcp {
                route.rtcp_port
            } else {
                route.rtp_port
            };
            let SocketAddr::V4(dest) = it.dest else {
                // IPv6 peer: its own socket.
                if let Some(slot) = self.slots.get(it.route as usize).and_then(|s| s.as_ref()) {
                    if send_to(slot.rtp.as_raw_fd(), self.batch.packet(i), it.dest).is_err() {
                        self.local.send_errors += 1;
                    }
                }
                continue;
            };
            let len = usize::from(it.len);
            let p = self.batch.with_headroom_mut(i);
            write_ipv4_udp(&mut p[..28], src, *dest.ip(), sport, dest.port(), len);
            self.iov[v4] = libc::iovec {
                iov_base: p.as_mut_ptr() as *mut libc::c_void,
                iov_len: 28 + len,
            };
            self.names[v4] = sockaddr_in(SocketAddrV4::new(*dest.ip(), 0));
            v4 += 1;
        }
        let fd = self.raw.as_ref().expect("raw").as_raw_fd();
        for i in 0..v4 {
            point_hdr(
                &mut self.hdrs[i],
                &mut self.names[i] as *mut _ as *mut libc::c_void,
                std::mem::size_of::<libc::sockaddr_in>(),
                &mut self.iov[i],
            );
        }
        let mut off = 0;
        while off < v4 {
            // SAFETY: hdrs[off..v4] point at names/iovs/batch buffers alive for this call.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs[off..].as_mut_ptr(),
                    (v4 - off) as libc::c_uint,
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // Skip the packet that failed and go on with the rest.
                debug!(error = %e, "sendmmsg");
                self.local.send_errors += 1;
                off += 1;
            } else {
                off += r as usize;
            }
        }
    }

    fn send_per_socket(&mut self, n: usize) {
        for i in 0..n {
            let it = self.batch.items()[i];
            let Some(slot) = self.slots.get(it.route as usize).and_then(|s| s.as_ref()) else {
                continue;
            };
            let fd = if it.kind == PacketKind::Rtcp && !slot.rtcp_mux {
                slot.rtcp.as_raw_fd()
            } else {
                slot.rtp.as_raw_fd()
            };
            if send_to(fd, self.batch.packet(i), it.dest).is_err() {
                self.local.send_errors += 1;
            }
        }
    }
}
