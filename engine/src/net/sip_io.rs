//! The SIP side a task owns: the [`Endpoint`], its UDP socket, its TCP and TLS
//! connections and the queue of datagrams to send. Whoever owns a [`SipIo`] runs the
//! endpoint in its own loop: the dialer driver does (so a response reaches the dialer core
//! and the core's next request reaches the socket in the same pass, with no task between
//! them), and [`super::SipDriver`] does for callers that want a handle instead.
//!
//! UDP is read and written in batches (`recvmmsg`/`sendmmsg`, see [`super::sip_udp`]): a
//! wake drains up to [`RECV_PER_PASS`] datagrams, so replies do not queue in the socket
//! behind other work, and the socket's buffers are sized for thousands of calls per
//! second. Every place a datagram can be lost is counted in
//! `dialer_sip_dropped_total{reason}`: `socket_buffer` (the kernel's `SO_RXQ_OVFL` count),
//! `parse_error` and `no_transaction` (in the endpoint), `send_error`. No queue on the path
//! is bounded (TCP frames come on an unbounded channel, a full send buffer is waited on),
//! so none drops for being full. UDP responses go to the source address (symmetric
//! response routing, RFC 3581), so peers behind NAT and SIPp's default setup both work.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::sip_tcp::{accept_loop, Tcp, TcpEvent};
use super::sip_tls::{TlsError, TlsSetup};
use super::sip_udp::{self, send_batch, RecvBatch, BATCH};
use super::DriverOptions;
use crate::sip::endpoint::{Endpoint, EndpointConfig, Transport};
use crate::sip::transaction::Wire;

/// Datagrams read per wake of the receive side before the owner's loop turns to its other
/// inputs again (8 `recvmmsg` calls).
const RECV_PER_PASS: usize = 8 * BATCH;

/// The endpoint with its sockets; see the module's documentation.
pub struct SipIo {
    ep: Endpoint,
    /// Registered for reading only. A UDP socket registered for writing too is made ready
    /// by every datagram it sends (the kernel frees the sent buffer and signals room at
    /// once on loopback, soon after elsewhere), which woke a parked runtime thread for
    /// nothing at every message; sending never waits on readiness (see `send_udp`).
    udp: AsyncFd<std::net::UdpSocket>,
    /// Messages, accepted and closed connections from the TCP and TLS tasks.
    streams: mpsc::UnboundedReceiver<TcpEvent>,
    tcp: Tcp,
    /// No TLS settings, no TLS table: a message for TLS is dropped, never sent in clear.
    tls: Option<Tcp>,
    tls_setup: Option<Arc<TlsSetup>>,
    batch: RecvBatch,
    out: VecDeque<(SocketAddr, Wire)>,
}

/// What woke the SIP side: hand it back to [`SipIo::handle`].
pub struct SipWake(Wake);

enum Wake {
    /// The UDP socket has datagrams (or an error to read).
    Udp,
    /// A TCP or TLS task has something.
    Stream(TcpEvent),
}

impl SipIo {
    /// Binds UDP and TCP on `bind` (port 0 picks a free port, the same for both when
    /// possible) and the TLS listener when `opts.tls_listen` is set; `cfg.local_addr` (and
    /// `cfg.tls_addr`) are replaced by the bound addresses. Spawns the listeners' accept
    /// tasks.
    pub async fn bind(
        bind: SocketAddr,
        mut cfg: EndpointConfig,
        opts: DriverOptions,
    ) -> io::Result<SipIo> {
        let DriverOptions {
            limits,
            tls,
            tls_listen,
        } = opts;
        let udp = std::net::UdpSocket::bind(bind)?;
        udp.set_nonblocking(true)?;
        let local_addr = udp.local_addr()?;
        match sip_udp::tune(udp.as_raw_fd(), sip_udp::RCVBUF, sip_udp::SNDBUF) {
            Ok((rcv, snd)) => debug!(rcv, snd, "SIP UDP socket buffers"),
            Err(e) => warn!(error = %e, "SIP UDP socket buffers left at their defaults"),
        }
        let tcp_listener = TcpListener::bind(local_addr).await.ok();
        if tcp_listener.is_none() {
            warn!(%local_addr, "TCP listener unavailable; inbound TCP disabled");
        }
        cfg.local_addr = local_addr;
        let tls_listener = match (tls_listen, &tls) {
            (Some(addr), Some(t)) if t.acceptor.is_some() => Some(TcpListener::bind(addr).await?),
            (Some(_), _) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a TLS listener needs a certificate and key",
                ))
            }
            (None, _) => None,
        };
        cfg.tls_addr = match &tls_listener {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let (in_tx, streams) = mpsc::unbounded_channel();
        if let Some(l) = tcp_listener {
            tokio::spawn(accept_loop(l, in_tx.clone(), limits.clone(), None));
        }
        if let Some(l) = tls_listener {
            tokio::spawn(accept_loop(l, in_tx.clone(), limits.clone(), tls.clone()));
        }
        let tcp = Tcp::new(in_tx.clone(), limits.clone(), None);
        let tls_table = tls.clone().map(|t| Tcp::new(in_tx, limits, Some(t)));
        // SAFETY: the AsyncFd owns the socket, whose descriptor stays open and the same
        // until the AsyncFd is dropped.
        let udp = unsafe { AsyncFd::register_with_interest(udp, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(SipIo {
            ep: Endpoint::new(cfg),
            udp,
            streams,
            tcp,
            tls: tls_table,
            tls_setup: tls,
            batch: RecvBatch::default(),
            out: VecDeque::new(),
        })
    }

    /// The endpoint, to place calls, answer, hang up, poll events and deadlines.
    pub fn ep(&mut self) -> &mut Endpoint {
        &mut self.ep
    }

    /// The bound SIP address (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.ep.config().local_addr
    }

    /// The bound TLS address, when there is a TLS listener.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.ep.config().tls_addr
    }

    /// TLS client and server settings, when TLS is set up.
    pub fn tls_setup(&self) -> Option<&Arc<TlsSetup>> {
        self.tls_setup.as_ref()
    }

    /// Records the host name the certificate of the TLS peer at `addr` must carry (a trunk
    /// with `transport = "tls"`); without TLS settings there is nothing to record.
    pub fn expect_tls_name(&self, addr: SocketAddr, host: &str) -> Result<(), TlsError> {
        match &self.tls_setup {
            Some(t) => t.expect_name(addr, host),
            None => Ok(()),
        }
    }

    /// TCP connections kept (open, or opening); closed ones are forgotten.
    pub fn tcp_connections(&self) -> usize {
        self.tcp.len()
    }

    /// Waits until the UDP socket is readable or a TCP/TLS task has something. Cancel-safe:
    /// nothing is taken from either before it returns.
    pub async fn wake(&mut self) -> SipWake {
        tokio::select! {
            r = self.udp.readable() => {
                match r {
                    // Readiness stays set until a read finds nothing (`recv_udp`).
                    Ok(mut guard) => guard.retain_ready(),
                    Err(e) => debug!(error = %e, "SIP UDP socket not readable"),
                }
                SipWake(Wake::Udp)
            }
            Some(ev) = self.streams.recv() => SipWake(Wake::Stream(ev)),
        }
    }

    /// Feeds what woke the SIP side to the endpoint.
    pub fn handle(&mut self, wake: SipWake) {
        match wake.0 {
            Wake::Udp => self.recv_udp(),
            Wake::Stream(ev) => self.on_stream_event(ev),
        }
    }

    /// Fires the endpoint's timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ep.poll_timeout().is_some_and(|d| d <= now) {
            self.ep.handle_timeout(now);
        }
    }

    /// Sends what the endpoint has to send: UDP in batches (waiting for room in a full
    /// send buffer, never dropping for it), TCP and TLS to their connection's task.
    pub async fn flush(&mut self) {
        self.route_transmits();
        self.send_udp().await;
    }

    /// Runs the endpoint alone until its calls are over (BYEs answered, CANCELs done) or
    /// `bound` has passed, its events dropped: what a stopping owner leaves behind.
    pub async fn linger(mut self, bound: std::time::Duration) {
        let until = tokio::time::Instant::now() + bound;
        loop {
            self.flush().await;
            while self.ep.poll_event().is_some() {}
            if self.ep.active_calls() == 0 {
                return;
            }
            let next = self
                .ep
                .poll_timeout()
                .map_or(until, |d| tokio::time::Instant::from_std(d).min(until));
            tokio::select! {
                w = self.wake() => self.handle(w),
                _ = tokio::time::sleep_until(next) => {
                    if next >= until {
                        return;
                    }
                    self.handle_timeout(Instant::now());
                }
            }
        }
    }

    /// A message, an accepted connection or a closed one from the TCP/TLS tasks.
    fn on_stream_event(&mut self, ev: TcpEvent) {
        match ev {
            TcpEvent::Message(t, from, msg) => {
                super::hep::mirror(from, self.ep.config().local_addr, t, &msg);
                self.ep.handle_datagram(Instant::now(), from, t, &msg);
            }
            TcpEvent::Accepted(Transport::Tls, peer, id, tx) => {
                if let Some(tls) = &mut self.tls {
                    tls.accepted(peer, id, tx);
                }
            }
            TcpEvent::Accepted(_, peer, id, tx) => self.tcp.accepted(peer, id, tx),
            TcpEvent::Closed(Transport::Tls, peer, id) => {
                if let Some(tls) = &mut self.tls {
                    tls.closed(peer, id);
                }
            }
            TcpEvent::Closed(_, peer, id) => self.tcp.closed(peer, id),
        }
    }

    /// Hands every message the endpoint wants sent to its transport: UDP ones queue in
    /// `out` for one batched send, TCP and TLS ones go to their connection's task. Without
    /// TLS settings a message for TLS is dropped (and counted), never sent in clear.
    fn route_transmits(&mut self) {
        while let Some(t) = self.ep.poll_transmit() {
            let local = self.ep.config().local_addr;
            super::hep::mirror_shared(local, t.dest, t.transport, &t.bytes);
            match t.transport {
                Transport::Udp => self.out.push_back((t.dest, t.bytes)),
                Transport::Tcp => self.tcp.send(t.dest, t.bytes),
                Transport::Tls => match &mut self.tls {
                    Some(tls) => tls.send(t.dest, t.bytes),
                    None => {
                        warn!(dest = %t.dest, "SIP over TLS is not set up; message dropped");
                        metrics::counter!(crate::metrics::SIP_DROPPED, "reason" => "no_tls")
                            .increment(1);
                    }
                },
            }
        }
    }

    /// Reads what the UDP socket holds, a batch per syscall, up to [`RECV_PER_PASS`]
    /// datagrams, and feeds each to the endpoint; counts what the socket buffer dropped.
    fn recv_udp(&mut self) {
        let fd = self.udp.as_raw_fd();
        let mut read = 0;
        while read < RECV_PER_PASS {
            let batch = &mut self.batch;
            // A short batch emptied the socket: its readiness is cleared as after a read that
            // finds nothing (a datagram arriving later raises a new epoll event), which saves
            // that read, a third of the receive calls. Its drop count comes back here.
            let mut emptied = None;
            let r = self.udp.try_io(Interest::READABLE, |_| {
                let drops = batch.recv(fd)?;
                if batch.read_count() < BATCH {
                    emptied = Some(drops);
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(drops)
            });
            match emptied.map_or(r, Ok) {
                Ok(drops) => {
                    if drops > 0 {
                        warn!(drops, "SIP UDP receive buffer overflowed");
                        metrics::counter!(crate::metrics::SIP_DROPPED, "reason" => "socket_buffer")
                            .increment(u64::from(drops));
                    }
                    let now = Instant::now();
                    let mut n = 0;
                    let local = self.ep.config().local_addr;
                    for (from, bytes) in self.batch.datagrams() {
                        super::hep::mirror(from, local, Transport::Udp, bytes);
                        self.ep.handle_datagram(now, from, Transport::Udp, bytes);
                        n += 1;
                    }
                    read += n;
                    if emptied.is_some() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    debug!(error = %e, "SIP UDP receive failed");
                    return;
                }
            }
        }
    }

    /// Sends every queued UDP datagram, a batch per syscall. A full send buffer is waited
    /// out in 1 ms steps (nothing is dropped for it; the buffer holds seconds of
    /// signalling, so this is the overload case, not the common one); a datagram the
    /// kernel refuses is dropped and counted.
    async fn send_udp(&mut self) {
        let fd = self.udp.as_raw_fd();
        while !self.out.is_empty() {
            let msgs = self.out.iter().map(|(d, b)| (*d, &b[..]));
            match send_batch(fd, msgs) {
                Ok(n) => {
                    self.out.drain(..n.min(self.out.len()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                Err(e) => {
                    if let Some((dest, _)) = self.out.pop_front() {
                        debug!(%dest, error = %e, "UDP send failed");
                    }
                    metrics::counter!(crate::metrics::SIP_DROPPED, "reason" => "send_error")
                        .increment(1);
                }
            }
        }
    }
}
