//! The SIP driver: a task that runs a [`SipIo`] (the endpoint, its UDP socket and TCP/TLS
//! connections) for callers that want a handle: commands go in on a channel, the
//! endpoint's events come out on another. The dialer does not use it (its driver owns a
//! [`SipIo`] itself, so no task stands between a response and the dialer core); tools and
//! tests that drive SIP alone do.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

pub use super::sip_io::{SipIo, SipWake};
pub use super::sip_tcp::TcpLimits;
pub use super::sip_tls::{TlsError, TlsFiles, TlsSetup};
use super::sip_udp::BATCH;
use crate::sip::endpoint::{
    AnswerError, AnswerParams, CallHandle, CallParams, Cidr, EndpointConfig, Event, RegisterParams,
    RequestHandle,
};
use crate::sip::sdp::NegotiatedMedia;

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
        cfg: EndpointConfig,
        opts: DriverOptions,
    ) -> io::Result<(SipDriver, SipEvents)> {
        let io = SipIo::bind(bind, cfg, opts).await?;
        let (local_addr, tls_addr) = (io.local_addr(), io.tls_addr());
        let tls = io.tls_setup().cloned();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        tokio::spawn(run(io, cmd_rx, ev_tx));
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

async fn run(
    mut io: SipIo,
    mut cmds: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut commands_open = true;
    let mut sent_replies: Vec<(oneshot::Sender<CallHandle>, CallHandle)> = Vec::new();
    loop {
        let deadline = io.ep().poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            w = io.wake() => io.handle(w),
            cmd = cmds.recv(), if commands_open => match cmd {
                Some(c) => {
                    run_command(&mut io, c, &mut sent_replies);
                    // The commands already queued too, in the same pass (at most a batch).
                    for _ in 1..BATCH {
                        match cmds.try_recv() {
                            Ok(c) => run_command(&mut io, c, &mut sent_replies),
                            Err(_) => break,
                        }
                    }
                }
                None => commands_open = false,
            },
            _ = async { tokio::time::sleep_until(deadline.expect("guarded")).await }, if deadline.is_some() => {
                io.handle_timeout(Instant::now());
            }
        }
        io.flush().await;
        // Answered once the INVITE is with the kernel: the caller's clock then bounds when
        // it left.
        for (reply, h) in sent_replies.drain(..) {
            let _ = reply.send(h);
        }
        while let Some(e) = io.ep().poll_event() {
            let _ = events.send(e);
        }
        if !commands_open && io.ep().active_calls() == 0 && events.is_closed() {
            return;
        }
    }
}

fn run_command(
    io: &mut SipIo,
    cmd: Command,
    sent_replies: &mut Vec<(oneshot::Sender<CallHandle>, CallHandle)>,
) {
    if let Command::TcpConnections(reply) = cmd {
        let _ = reply.send(io.tcp_connections());
        return;
    }
    let ep = io.ep();
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
        Command::TcpConnections(_) => {}
    }
}
