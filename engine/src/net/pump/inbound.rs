//! The receiving half of a pacing loop: drain every ready socket with `recvmmsg`, tell RTP
//! from RTCP, STUN and garbage, accept only the call's locked source, decode key presses.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use super::event_loop::{CallSlot, Listen, Loop, RX_BATCH, RX_BUF};
use super::sys::{point_hdr, sockaddr_to_std};
use super::MediaEvent;
use crate::media::srtp::SrtpError;
use crate::media::{classify, rtcp, Datagram, Verdict};

impl Loop {
    pub(super) fn receive(&mut self) {
        // SAFETY: ep_events is a live buffer of the stated length.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.ep_events.as_mut_ptr(),
                self.ep_events.len() as libc::c_int,
                0,
            )
        };
        for k in 0..n.max(0) as usize {
            let tag = self.ep_events[k].u64;
            let route = (tag >> 1) as usize;
            let is_rtcp_port = tag & 1 == 1;
            let fd = match self.slots.get(route).and_then(|s| s.as_ref()) {
                Some(s) if is_rtcp_port => s.rtcp.as_raw_fd(),
                Some(s) => s.rtp.as_raw_fd(),
                None => continue,
            };
            loop {
                let got = self.recv_batch(fd);
                for m in 0..got {
                    self.handle_inbound(route, is_rtcp_port, m);
                }
                if got < RX_BATCH {
                    break;
                }
            }
        }
    }

    fn recv_batch(&mut self, fd: RawFd) -> usize {
        for i in 0..RX_BATCH {
            self.rx_iov[i] = libc::iovec {
                iov_base: self.rx_bufs[i * RX_BUF..].as_mut_ptr() as *mut libc::c_void,
                iov_len: RX_BUF,
            };
            point_hdr(
                &mut self.rx_hdrs[i],
                &mut self.rx_names[i] as *mut _ as *mut libc::c_void,
                std::mem::size_of::<libc::sockaddr_storage>(),
                &mut self.rx_iov[i],
            );
        }
        // SAFETY: the headers point at buffers owned by self, alive during the call.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.rx_hdrs.as_mut_ptr(),
                RX_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            0
        } else {
            r as usize
        }
    }

    fn handle_inbound(&mut self, route: usize, on_rtcp_port: bool, m: usize) {
        let len = self.rx_hdrs[m].msg_len as usize;
        let Some(from) = sockaddr_to_std(&self.rx_names[m]) else {
            return;
        };
        let data = &mut self.rx_bufs[m * RX_BUF..m * RX_BUF + len.min(RX_BUF)];
        let Some(slot) = self.slots[route].as_mut() else {
            return;
        };
        let kind = if on_rtcp_port && rtcp::is_rtcp(data) {
            Datagram::Rtcp
        } else {
            classify(data)
        };
        // An encrypted call: the tag is checked and the packet decrypted in place before
        // anything trusts it (the latch included), so forged packets neither play nor move
        // our media.
        let len = match (slot.srtp.as_mut(), kind) {
            (Some(pair), Datagram::Rtcp) => pair.rx.unprotect_rtcp(data),
            (Some(pair), Datagram::Rtp { .. }) if !on_rtcp_port => pair.rx.unprotect_rtp(data),
            _ => Ok(data.len()),
        };
        let len = match len {
            Ok(n) => n,
            Err(e) => {
                // Counted here, published with the loop's other drops: a flood of forged
                // packets costs no metrics-registry lookup per packet.
                self.local.srtp_refused[srtp_refusal(e)] += 1;
                return;
            }
        };
        let data = &data[..len];
        let ssrc = match kind {
            Datagram::Rtcp => {
                if slot.latch.allows_rtcp(from) {
                    far_end_report(slot, data);
                    if crate::net::hep::enabled() {
                        let local = SocketAddr::new(self.src_ip.into(), slot.rtcp_port());
                        crate::net::hep::mirror_rtcp(from, local, data);
                    }
                    self.local.received += 1;
                } else {
                    self.local.dropped_source += 1;
                }
                return;
            }
            // Only RTP arrives on the RTP port of a call without rtcp-mux, and nothing but
            // RTCP on the RTCP port: STUN, DTLS and garbage are counted and never lock a source.
            Datagram::Rtp { ssrc, .. } if !on_rtcp_port => ssrc,
            _ => {
                self.local.not_rtp += 1;
                return;
            }
        };
        match slot.latch.on_rtp(Instant::now(), from, ssrc) {
            Verdict::Accept => {}
            Verdict::AcceptAndSendTo(addr) => {
                // Symmetric RTP: our media follows the callee's to where its NAT opened.
                if let Some(id) = slot.stream {
                    self.pacer
                        .set_dest(id, addr, rtcp_beside(addr, slot.rtcp_mux));
                }
                self.local.relatched += 1;
            }
            Verdict::Drop => {
                self.local.dropped_source += 1;
                return;
            }
        }
        self.local.received += 1;
        if key_press(slot, data, &self.events) {
            return;
        }
        if slot.listen.is_some() {
            self.listen(route, m, len);
        }
    }

    /// Feeds a received audio packet to what listens to the call (recording, machine and beep
    /// detection): decoded once.
    fn listen(&mut self, route: usize, m: usize, len: usize) {
        let data = &self.rx_bufs[m * RX_BUF..m * RX_BUF + len.min(RX_BUF)];
        let Some(slot) = self.slots[route].as_mut() else {
            return;
        };
        let token = slot.token;
        let Some(l) = slot.listen.as_deref_mut() else {
            return;
        };
        let Listen {
            tap,
            recording,
            detectors,
        } = l;
        let Some(d) = tap.push(data) else {
            return;
        };
        let full = recording.as_mut().is_some_and(|r| r.push(&d));
        if detectors.running() {
            detectors.feed(&self.events, token, d.gap, d.pcm);
        }
        let rec = if full { recording.take() } else { None };
        let rate = tap.rate();
        if l.idle() {
            slot.listen = None;
        }
        if let Some(rec) = rec {
            self.report_recording(token, rec, rate);
        }
    }
}

/// Where a refused SRTP/SRTCP packet is counted in `srtp_refused` (`auth`, `replay`,
/// `short`).
fn srtp_refusal(e: SrtpError) -> usize {
    match e {
        SrtpError::Auth => 0,
        SrtpError::Replay => 1,
        SrtpError::Short | SrtpError::NoRoom => 2,
    }
}

/// Where RTCP goes when RTP moves to `rtp`: the same address with rtcp-mux, else the port
/// above.
fn rtcp_beside(rtp: SocketAddr, rtcp_mux: bool) -> Option<SocketAddr> {
    if rtcp_mux {
        Some(rtp)
    } else {
        rtp.port()
            .checked_add(1)
            .map(|p| SocketAddr::new(rtp.ip(), p))
    }
}

/// Feeds an accepted RTP packet to the call's RFC 4733 decoder; true when it was a
/// telephone-event (its key presses are sent as events), which is not audio.
fn key_press(slot: &mut CallSlot, data: &[u8], events: &super::EventTx) -> bool {
    let Some(d) = slot.dtmf.as_mut() else {
        return false;
    };
    if !d.handle_rtp(data) {
        return false;
    }
    while let Some(event) = d.poll_event() {
        events.send(MediaEvent::Dtmf {
            token: slot.token,
            event,
        });
    }
    true
}

/// Records the far end's loss and jitter for our stream from its RTCP receiver reports.
fn far_end_report(slot: &CallSlot, data: &[u8]) {
    for p in rtcp::Compound::new(data).flatten() {
        for b in p.report_blocks() {
            if b.ssrc == slot.ssrc {
                metrics::histogram!(crate::metrics::RTP_FAR_END_FRACTION_LOST)
                    .record(f64::from(b.fraction_lost) / 256.0);
                metrics::histogram!(crate::metrics::RTP_FAR_END_JITTER)
                    .record(f64::from(b.jitter) / f64::from(slot.clock_rate.max(1)));
            }
        }
    }
}
