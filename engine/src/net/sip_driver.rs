//! The SIP driver: one task that owns the [`Endpoint`], a UDP socket and TCP connections.
//!
//! Every input (a datagram, a framed TCP message, a command, a timer) is handed to the
//! endpoint with the current instant; afterwards its transmits are sent and its events
//! forwarded. UDP is read and written in batches (`recvmmsg`/`sendmmsg`, see
//! [`super::sip_udp`]): a pass drains up to [`RECV_PER_PASS`] datagrams, so replies do not
//! queue in the socket behind commands and timers, and the socket's buffers are sized for
//! thousands of calls per second. Every place a datagram can be lost is counted in
//! `dialer_sip_dropped_total{reason}`: `socket_buffer` (the kernel's `SO_RXQ_OVFL`
//! count), `parse_error` and `no_transaction` (in the endpoint), `send_error`. No queue on
//! the path is bounded (commands, events and TCP frames use unbounded channels, a full
//! send buffer is waited on), so none drops for being full. UDP responses go to the source address (symmetric response routing, RFC
//! 3581), so peers behind NAT and SIPp's default setup both work.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::Interest;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

pub use super::sip_tcp::TcpLimits;
use super::sip_tcp::{accept_loop, Tcp, TcpEvent};
pub use super::sip_tls::{TlsError, TlsFiles, TlsSetup};
use crate::sip::endpoint::{
    AnswerError, AnswerParams, CallHandle, CallParams, Cidr, Endpoint, EndpointConfig, Event,
    RegisterParams, RequestHandle, Transport,
};
use crate::sip::sdp::NegotiatedMedia;
use crate::sip::transaction::Wire;

use super::sip_udp::{self, send_batch, RecvBatch, BATCH};

enum Command {
    Place(Box<CallParams>, oneshot::Sender<(CallHandle, String)>),
    PlaceWithId(Box<CallParams>, String, oneshot::Sender<CallHandle>),
    Hangup(CallHandle),
    Options(SocketAddr, String, oneshot::Sender<RequestHandle>),
    Register(Box<RegisterParams>, oneshot::Sender<RequestHandle>),
    Unregister(RequestHandle),
    TcpConnections(oneshot::Sender<usize>),
    AllowSources(Option<Vec<Cidr>>),
    Ring(CallHandle),
    Accept(
        CallHandle,
        Box<AnswerParams>,
        oneshot::Sender<Result<NegotiatedMedia, AnswerError>>,
    ),
    Reject(CallHandle, u16, String),
}

/// A handle to the running driver: place calls and hang them up.
#[derive(Clone)]
pub struct SipDriver {
    cmd: mpsc::UnboundedSender<Command>,
    local_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    tls: Option<Arc<TlsSetup>>,
}

/// How the driver's connection-oriented transports run.
#[derive(Debug, Clone, Default)]
pub struct DriverOptions {
    /// Bounds on SIP over TCP and TLS connections.
    pub limits: TcpLimits,
    /// TLS client (and server) settings; `None`: no TLS at all.
    pub tls: Option<Arc<TlsSetup>>,
    /// Where to listen for TLS (`[sip] tls_listen`); port 0 picks a free one.
    pub tls_listen: Option<SocketAddr>,
}

/// What the driver's task owns besides the endpoint.
struct Sockets {
    udp: Arc<UdpSocket>,
    tcp_listener: Option<TcpListener>,
    tls_listener: Option<TcpListener>,
    tls: Option<Arc<TlsSetup>>,
    limits: TcpLimits,
}

/// Events of the endpoint, in order.
pub type SipEvents = mpsc::UnboundedReceiver<Event>;

impl SipDriver {
    /// Binds UDP and TCP on `bind` (port 0 picks a free port, the same for both when
    /// possible), and starts the driver task. `cfg.local_addr` is replaced by the bound
    /// address.
    pub async fn start(
        bind: SocketAddr,
        cfg: EndpointConfig,
    ) -> io::Result<(SipDriver, SipEvents)> {
        Self::start_with(bind, cfg, TcpLimits::default()).await
    }

    /// [`SipDriver::start`] with limits on SIP over TCP.
    pub async fn start_with(
        bind: SocketAddr,
        cfg: EndpointConfig,
        limits: TcpLimits,
    ) -> io::Result<(SipDriver, SipEvents)> {
        let opts = DriverOptions {
            limits,
            ..DriverOptions::default()
        };
        Self::start_opts(bind, cfg, opts).await
    }

    /// [`SipDriver::start`] with TCP limits and TLS: connections to trunks over TLS, and a
    /// TLS listener when `opts.tls_listen` is set (its bound address goes in Via and Contact
    /// of what we send over TLS).
    pub async fn start_opts(
        bind: SocketAddr,
        mut cfg: EndpointConfig,
        opts: DriverOptions,
    ) -> io::Result<(SipDriver, SipEvents)> {
        let DriverOptions {
            limits,
            tls,
            tls_listen,
        } = opts;
        let udp = UdpSocket::bind(bind).await?;
        let local_addr = udp.local_addr()?;
        match sip_udp::tune(udp.as_raw_fd(), sip_udp::RCVBUF, sip_udp::SNDBUF) {
            Ok((rcv, snd)) => debug!(rcv, snd, "SIP UDP socket buffers"),
            Err(e) => warn!(error = %e, "SIP UDP socket buffers left at their defaults"),
        }
        let tcp = TcpListener::bind(local_addr).await.ok();
        if tcp.is_none() {
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
        let tls_addr = cfg.tls_addr;
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let ep = Endpoint::new(cfg);
        let sockets = Sockets {
            udp: Arc::new(udp),
            tcp_listener: tcp,
            tls_listener,
            tls,
            limits,
        };
        let tls = sockets.tls.clone();
        tokio::spawn(run(ep, sockets, cmd_rx, ev_tx));
        Ok((
            SipDriver {
                cmd: cmd_tx,
                local_addr,
                tls_addr,
                tls,
            },
            ev_rx,
        ))
    }

    /// Records the host name the certificate of the TLS peer at `addr` must carry (a trunk
    /// with `transport = "tls"`); without TLS settings there is nothing to record.
    pub fn expect_tls_name(&self, addr: SocketAddr, host: &str) -> Result<(), TlsError> {
        match &self.tls {
            Some(t) => t.expect_name(addr, host),
            None => Ok(()),
        }
    }

    /// The bound TLS address, when there is a TLS listener.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The bound SIP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Places a call; returns its handle and Call-ID once the INVITE is queued.
    pub async fn place_call(&self, params: CallParams) -> io::Result<(CallHandle, String)> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Place(Box::new(params), tx))
            .map_err(|_| io::Error::other("SIP driver stopped"))?;
        rx.await.map_err(|_| io::Error::other("SIP driver stopped"))
    }

    /// Places a call with a Call-ID the caller already journaled (see
    /// [`Endpoint::place_call_with_id`]); returns its handle once the INVITE has been
    /// handed to the socket (UDP) or the connection's writer (TCP).
    pub async fn place_call_with_id(
        &self,
        params: CallParams,
        call_id: String,
    ) -> io::Result<CallHandle> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::PlaceWithId(Box::new(params), call_id, tx))
            .map_err(|_| io::Error::other("SIP driver stopped"))?;
        rx.await.map_err(|_| io::Error::other("SIP driver stopped"))
    }

    /// Sends an OPTIONS ping; the reply comes as [`Event::OptionsReply`] with this handle.
    pub async fn send_options(&self, dest: SocketAddr, uri: String) -> io::Result<RequestHandle> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Options(dest, uri, tx))
            .map_err(|_| io::Error::other("SIP driver stopped"))?;
        rx.await.map_err(|_| io::Error::other("SIP driver stopped"))
    }

    /// Starts a registration (refreshed and retried by the endpoint); its changes come as
    /// [`Event::Registration`].
    pub async fn register(&self, params: RegisterParams) -> io::Result<RequestHandle> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Register(Box::new(params), tx))
            .map_err(|_| io::Error::other("SIP driver stopped"))?;
        rx.await.map_err(|_| io::Error::other("SIP driver stopped"))
    }

    /// Ends a registration started by [`SipDriver::register`]: REGISTER with expires 0,
    /// no more refreshes.
    pub fn unregister(&self, reg: RequestHandle) {
        let _ = self.cmd.send(Command::Unregister(reg));
    }

    /// TCP connections the driver keeps (open, or opening); closed ones are forgotten.
    pub async fn tcp_connections(&self) -> io::Result<usize> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::TcpConnections(tx))
            .map_err(|_| io::Error::other("SIP driver stopped"))?;
        rx.await.map_err(|_| io::Error::other("SIP driver stopped"))
    }

    /// Replaces the addresses and blocks allowed to send new requests (see
    /// [`Endpoint::set_allowed_sources`]).
    pub fn set_allowed_sources(&self, allowed: Option<Vec<Cidr>>) {
        let _ = self.cmd.send(Command::AllowSources(allowed));
    }

    /// Hangs a call up (BYE or CANCEL; an incoming call not answered yet is refused 480).
    pub fn hangup(&self, call: CallHandle) {
        let _ = self.cmd.send(Command::Hangup(call));
    }

    /// Sends 180 Ringing for an incoming call (see [`Endpoint::ring`]).
    pub fn ring(&self, call: CallHandle) {
        let _ = self.cmd.send(Command::Ring(call));
    }

    /// Answers an incoming call with 200 and our SDP answer (see [`Endpoint::accept`]);
    /// returns what the answer settled once the 200 is queued.
    pub async fn accept(
        &self,
        call: CallHandle,
        params: AnswerParams,
    ) -> io::Result<Result<NegotiatedMedia, AnswerError>> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Accept(call, Box::new(params), tx))
            .map_err(|_| io::Error::other("SIP driver stopped"))?;
        rx.await.map_err(|_| io::Error::other("SIP driver stopped"))
    }

    /// Refuses an incoming call with `status` and `reason` (see [`Endpoint::reject`]).
    pub fn reject(&self, call: CallHandle, status: u16, reason: impl Into<String>) {
        let _ = self.cmd.send(Command::Reject(call, status, reason.into()));
    }
}

/// Datagrams read per wake of the receive arm before the loop turns to commands and
/// timers again (8 `recvmmsg` calls).
const RECV_PER_PASS: usize = 8 * BATCH;

async fn run(
    mut ep: Endpoint,
    sockets: Sockets,
    mut cmds: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
) {
    let Sockets {
        udp,
        tcp_listener,
        tls_listener,
        tls: tls_setup,
        limits,
    } = sockets;
    let (in_tx, mut in_rx) = mpsc::unbounded_channel();
    if let Some(l) = tcp_listener {
        tokio::spawn(accept_loop(l, in_tx.clone(), limits.clone(), None));
    }
    if let Some(l) = tls_listener {
        tokio::spawn(accept_loop(
            l,
            in_tx.clone(),
            limits.clone(),
            tls_setup.clone(),
        ));
    }
    let mut tcp = Tcp::new(in_tx.clone(), limits.clone(), None);
    // No TLS settings, no TLS table: a message for TLS is dropped, never sent in clear.
    let mut tls = tls_setup.map(|t| Tcp::new(in_tx, limits, Some(t)));
    let mut batch = RecvBatch::default();
    let mut out: VecDeque<(SocketAddr, Wire)> = VecDeque::new();
    let mut commands_open = true;
    let mut sent_replies: Vec<(oneshot::Sender<CallHandle>, CallHandle)> = Vec::new();
    loop {
        let deadline = ep.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            r = udp.readable() => {
                if r.is_ok() {
                    recv_udp(&mut ep, &udp, &mut batch);
                }
            }
            Some(ev) = in_rx.recv() => on_stream_event(&mut ep, &mut tcp, tls.as_mut(), ev),
            cmd = cmds.recv(), if commands_open => match cmd {
                Some(c) => {
                    run_command(&mut ep, &tcp, c, &mut sent_replies);
                    // The commands already queued too, in the same pass (at most a batch).
                    for _ in 1..BATCH {
                        match cmds.try_recv() {
                            Ok(c) => run_command(&mut ep, &tcp, c, &mut sent_replies),
                            Err(_) => break,
                        }
                    }
                }
                None => commands_open = false,
            },
            _ = async { tokio::time::sleep_until(deadline.expect("guarded")).await }, if deadline.is_some() => {
                ep.handle_timeout(Instant::now());
            }
        }
        route_transmits(&mut ep, &mut out, &mut tcp, tls.as_mut());
        send_udp(&udp, &mut out).await;
        // Answered once the INVITE is with the kernel: the caller's clock then bounds when
        // it left (the dialer's CPS window is kept on these instants).
        for (reply, h) in sent_replies.drain(..) {
            let _ = reply.send(h);
        }
        while let Some(e) = ep.poll_event() {
            let _ = events.send(e);
        }
        if !commands_open && ep.active_calls() == 0 && events.is_closed() {
            return;
        }
    }
}

/// A message, an accepted connection or a closed one from the TCP/TLS tasks.
fn on_stream_event(ep: &mut Endpoint, tcp: &mut Tcp, tls: Option<&mut Tcp>, ev: TcpEvent) {
    match ev {
        TcpEvent::Message(t, from, msg) => {
            super::hep::mirror(from, ep.config().local_addr, t, &msg);
            ep.handle_datagram(Instant::now(), from, t, &msg);
        }
        TcpEvent::Accepted(Transport::Tls, peer, id, tx) => {
            if let Some(tls) = tls {
                tls.accepted(peer, id, tx);
            }
        }
        TcpEvent::Accepted(_, peer, id, tx) => tcp.accepted(peer, id, tx),
        TcpEvent::Closed(Transport::Tls, peer, id) => {
            if let Some(tls) = tls {
                tls.closed(peer, id);
            }
        }
        TcpEvent::Closed(_, peer, id) => tcp.closed(peer, id),
    }
}

/// Hands every message the endpoint wants sent to its transport: UDP ones queue in `out`
/// for one batched send, TCP and TLS ones go to their connection's task. Without TLS
/// settings a message for TLS is dropped (and counted), never sent in clear.
fn route_transmits(
    ep: &mut Endpoint,
    out: &mut VecDeque<(SocketAddr, Wire)>,
    tcp: &mut Tcp,
    mut tls: Option<&mut Tcp>,
) {
    while let Some(t) = ep.poll_transmit() {
        super::hep::mirror_shared(ep.config().local_addr, t.dest, t.transport, &t.bytes);
        match t.transport {
            Transport::Udp => out.push_back((t.dest, t.bytes)),
            Transport::Tcp => tcp.send(t.dest, t.bytes),
            Transport::Tls => match tls.as_deref_mut() {
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

fn run_command(
    ep: &mut Endpoint,
    tcp: &Tcp,
    cmd: Command,
    sent_replies: &mut Vec<(oneshot::Sender<CallHandle>, CallHandle)>,
) {
    match cmd {
        Command::Place(params, reply) => {
            let h = ep.place_call(Instant::now(), *params);
            let id = ep.call_id(h).unwrap_or_default().to_string();
            let _ = reply.send((h, id));
        }
        Command::PlaceWithId(params, id, reply) => {
            let h = ep.place_call_with_id(Instant::now(), *params, id);
            sent_replies.push((reply, h));
        }
        Command::Hangup(h) => ep.hangup(Instant::now(), h),
        Command::Options(dest, uri, reply) => {
            let _ = reply.send(ep.send_options(Instant::now(), dest, &uri));
        }
        Command::Register(params, reply) => {
            let _ = reply.send(ep.register(Instant::now(), *params));
        }
        Command::Unregister(h) => ep.unregister(Instant::now(), h),
        Command::AllowSources(a) => ep.set_allowed_sources(a),
        Command::Ring(h) => ep.ring(Instant::now(), h),
        Command::Accept(h, params, reply) => {
            let _ = reply.send(ep.accept(Instant::now(), h, &params));
        }
        Command::Reject(h, status, reason) => ep.reject(Instant::now(), h, status, &reason),
        Command::TcpConnections(reply) => {
            let _ = reply.send(tcp.len());
        }
    }
}

/// Reads what the UDP socket holds, a batch per syscall, up to [`RECV_PER_PASS`]
/// datagrams, and feeds each to the endpoint; counts what the socket buffer dropped.
fn recv_udp(ep: &mut Endpoint, udp: &UdpSocket, batch: &mut RecvBatch) {
    let fd = udp.as_raw_fd();
    let mut read = 0;
    while read < RECV_PER_PASS {
        match udp.try_io(Interest::READABLE, || batch.recv(fd)) {
            Ok(drops) => {
                if drops > 0 {
                    warn!(drops, "SIP UDP receive buffer overflowed");
                    metrics::counter!(crate::metrics::SIP_DROPPED, "reason" => "socket_buffer")
                        .increment(u64::from(drops));
                }
                let now = Instant::now();
                let mut n = 0;
                let local = ep.config().local_addr;
                for (from, bytes) in batch.datagrams() {
                    super::hep::mirror(from, local, Transport::Udp, bytes);
                    ep.handle_datagram(now, from, Transport::Udp, bytes);
                    n += 1;
                }
                read += n;
                if n < BATCH {
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

/// Sends every queued UDP datagram, a batch per syscall. A full send buffer waits for
/// room (nothing is dropped for it); a datagram the kernel refuses is dropped and counted.
async fn send_udp(udp: &UdpSocket, out: &mut VecDeque<(SocketAddr, Wire)>) {
    let fd = udp.as_raw_fd();
    while !out.is_empty() {
        let msgs = out.iter().map(|(d, b)| (*d, &b[..]));
        match udp.try_io(Interest::WRITABLE, || send_batch(fd, msgs)) {
            Ok(n) => {
                out.drain(..n.min(out.len()));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if udp.writable().await.is_err() {
                    return;
                }
            }
            Err(e) => {
                if let Some((dest, _)) = out.pop_front() {
                    debug!(%dest, error = %e, "UDP send failed");
                }
                metrics::counter!(crate::metrics::SIP_DROPPED, "reason" => "send_error")
                    .increment(1);
            }
        }
    }
}
