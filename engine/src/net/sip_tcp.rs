//! SIP over TCP for the driver, bounded: a peer on the internet may open connections and
//! never speak, speak one byte every few seconds, declare a gigabyte body or send megabytes
//! of keep-alives. Each connection task frames with [`StreamFramer`] (bounded message
//! size, linear time, double-CRLF pings answered), closes on a header-read or idle timeout,
//! and reports its end so the driver forgets it. The acceptor caps connections in total and
//! per source address, and backs off instead of spinning when the process runs out of file
//! descriptors.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};
use tracing::{debug, warn};

use super::sip_tls::TlsSetup;
use crate::sip::endpoint::Transport;
use crate::sip::stream::{Frame, FrameError, StreamFramer, DEFAULT_MAX_MESSAGE};
use crate::sip::transaction::Wire;

/// Limits on SIP over TCP (the `[sip]` section of the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpLimits {
    /// Largest message (headers and body), bytes; a larger one is answered 413 when its
    /// headers parse, and its connection closed. This also bounds what one connection
    /// buffers.
    pub max_message: usize,
    /// Inbound connections open at once; more are accepted and closed at once.
    pub max_connections: usize,
    /// Inbound connections open at once from one IP address.
    pub max_per_source: usize,
    /// A message must arrive whole within this time of its first byte (slow-loris).
    pub header_timeout: Duration,
    /// A connection that brings no byte for this long is closed.
    pub idle_timeout: Duration,
    /// Messages queued for a peer that does not read; more are dropped.
    pub write_queue: usize,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            max_message: DEFAULT_MAX_MESSAGE,
            max_connections: 512,
            max_per_source: 32,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            write_queue: 256,
        }
    }
}

/// What connection tasks tell the driver's loop; each names its transport (TCP or TLS),
/// whose connection table it belongs to.
pub(super) enum TcpEvent {
    /// A connection was accepted: its id and its write queue.
    Accepted(Transport, SocketAddr, u64, mpsc::Sender<Out>),
    /// A framed message.
    Message(Transport, SocketAddr, Vec<u8>),
    /// The connection with this id ended: forget it.
    Closed(Transport, SocketAddr, u64),
}

/// What a connection's writer is asked to do.
pub(super) enum Out {
    Bytes(Wire),
    /// Flush what is queued, then shut the write side.
    Close,
}

struct Conn {
    id: u64,
    tx: mpsc::Sender<Out>,
}

/// The driver's table of live connections of one transport (TCP, or TLS when it has a
/// [`TlsSetup`]), by peer address.
pub(super) struct Tcp {
    conns: HashMap<SocketAddr, Conn>,
    events: mpsc::UnboundedSender<TcpEvent>,
    limits: Arc<TcpLimits>,
    next_id: u64,
    tls: Option<Arc<TlsSetup>>,
}

impl Tcp {
    pub(super) fn new(
        events: mpsc::UnboundedSender<TcpEvent>,
        limits: TcpLimits,
        tls: Option<Arc<TlsSetup>>,
    ) -> Self {
        Tcp {
            conns: HashMap::new(),
            events,
            limits: Arc::new(limits),
            // Outbound ids are odd, inbound (from the acceptor) even: never equal.
            next_id: 1,
            tls,
        }
    }

    fn transport(&self) -> Transport {
        if self.tls.is_some() {
            Transport::Tls
        } else {
            Transport::Tcp
        }
    }

    /// Connections in the table (tests check that closed ones are forgotten).
    pub(super) fn len(&self) -> usize {
        self.conns.len()
    }

    /// Sends on the connection to `dest`, opening one if there is none.
    pub(super) fn send(&mut self, dest: SocketAddr, bytes: Wire) {
        if let Some(c) = self.conns.get(&dest) {
            match c.tx.try_send(Out::Bytes(bytes)) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    metrics::counter!(crate::metrics::SIP_TCP_DROPPED).increment(1);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(Out::Bytes(b))) => {
                    self.conns.remove(&dest);
                    return self.connect(dest, b);
                }
                Err(mpsc::error::TrySendError::Closed(Out::Close)) => return,
            }
        }
        self.connect(dest, bytes);
    }

    fn connect(&mut self, dest: SocketAddr, first: Wire) {
        let (tx, rx) = mpsc::channel(self.limits.write_queue.max(1));
        let _ = tx.try_send(Out::Bytes(first));
        let id = self.next_id;
        self.next_id += 2;
        self.conns.insert(dest, Conn { id, tx: tx.clone() });
        let events = self.events.clone();
        let limits = self.limits.clone();
        let tls = self.tls.clone();
        let transport = self.transport();
        let conn = Link {
            transport,
            peer: dest,
            id,
        };
        tokio::spawn(async move {
            let s = match TcpStream::connect(dest).await {
                Ok(s) => s,
                Err(e) => {
                    warn!(%dest, error = %e, "SIP TCP connect failed");
                    let _ = events.send(TcpEvent::Closed(transport, dest, id));
                    return;
                }
            };
            let _ = s.set_nodelay(true);
            let Some(tls) = tls else {
                return serve_conn(s, conn, tx, rx, events, limits).await;
            };
            let handshake = tls.connector.connect(tls.name_for(dest), s);
            match tokio::time::timeout(limits.header_timeout, handshake).await {
                Ok(Ok(s)) => serve_conn(s, conn, tx, rx, events, limits).await,
                Ok(Err(e)) => {
                    warn!(%dest, error = %e, "SIP TLS handshake failed");
                    metrics::counter!(crate::metrics::SIP_TLS_HANDSHAKE_FAILED, "side" => "client")
                        .increment(1);
                    let _ = events.send(TcpEvent::Closed(transport, dest, id));
                }
                Err(_) => {
                    warn!(%dest, "SIP TLS handshake timed out");
                    let _ = events.send(TcpEvent::Closed(transport, dest, id));
                }
            }
        });
    }

    /// Records a connection the acceptor admitted.
    pub(super) fn accepted(&mut self, peer: SocketAddr, id: u64, tx: mpsc::Sender<Out>) {
        self.conns.insert(peer, Conn { id, tx });
    }

    /// Forgets a connection that ended (unless the address has a newer one).
    pub(super) fn closed(&mut self, peer: SocketAddr, id: u64) {
        if self.conns.get(&peer).is_some_and(|c| c.id == id) {
            self.conns.remove(&peer);
        }
    }
}

/// Inbound connections open, in total and per source address.
#[derive(Default)]
struct Census {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// Why an inbound connection is refused, if it is.
fn admit(c: &Census, ip: IpAddr, limits: &TcpLimits) -> Result<(), &'static str> {
    if c.total >= limits.max_connections {
        return Err("total");
    }
    if c.by_ip.get(&ip).copied().unwrap_or(0) >= limits.max_per_source {
        return Err("per_source");
    }
    Ok(())
}

/// Decrements the census when an inbound connection's task ends, however it ends.
struct Counted {
    census: Arc<Mutex<Census>>,
    ip: IpAddr,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut c = self.census.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.by_ip.remove(&self.ip);
            }
        }
        metrics::gauge!(crate::metrics::SIP_TCP_CONNECTIONS).set(c.total as f64);
    }
}

/// Whether an accept error means the process (or system) is out of descriptors or
/// buffers: the listener stays readable, so retrying at once would spin.
fn fd_exhausted(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// The `kind` label of a failed accept.
fn accept_error_kind(e: &io::Error) -> &'static str {
    if fd_exhausted(e) {
        "fd_exhausted"
    } else {
        "other"
    }
}

/// Admits a connection from `ip` within the limits and counts it (until the returned guard
/// drops); the refusal's reason otherwise.
fn count_in(
    census: &Arc<Mutex<Census>>,
    ip: IpAddr,
    limits: &TcpLimits,
) -> Result<Counted, &'static str> {
    let mut c = census.lock().unwrap_or_else(|p| p.into_inner());
    admit(&c, ip, limits)?;
    c.total += 1;
    *c.by_ip.entry(ip).or_default() += 1;
    metrics::gauge!(crate::metrics::SIP_TCP_CONNECTIONS).set(c.total as f64);
    Ok(Counted {
        census: census.clone(),
        ip,
    })
}

/// Accepts inbound connections until the driver's loop goes away; with `tls`, each
/// connection's handshake runs in its own task, bounded by the header timeout.
pub(super) async fn accept_loop(
    listener: TcpListener,
    events: mpsc::UnboundedSender<TcpEvent>,
    limits: TcpLimits,
    tls: Option<Arc<TlsSetup>>,
) {
    let transport = if tls.is_some() {
        Transport::Tls
    } else {
        Transport::Tcp
    };
    let limits = Arc::new(limits);
    let census = Arc::new(Mutex::new(Census::default()));
    let mut backoff = Duration::from_millis(10);
    let mut next_id = 2u64;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = events.closed() => return,
        };
        let (s, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                let kind = accept_error_kind(&e);
                metrics::counter!(crate::metrics::SIP_TCP_ACCEPT_ERRORS, "kind" => kind)
                    .increment(1);
                debug!(error = %e, ?backoff, "SIP TCP accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(10);
        let guard = match count_in(&census, peer.ip(), &limits) {
            Ok(g) => g,
            Err(reason) => {
                metrics::counter!(crate::metrics::SIP_TCP_REFUSED, "reason" => reason).increment(1);
                drop(s);
                continue;
            }
        };
        let id = next_id;
        next_id += 2;
        let (tx, rx) = mpsc::channel(limits.write_queue.max(1));
        if events
            .send(TcpEvent::Accepted(transport, peer, id, tx.clone()))
            .is_err()
        {
            return;
        }
        let (events, limits, tls) = (events.clone(), limits.clone(), tls.clone());
        let conn = Link {
            transport,
            peer,
            id,
        };
        tokio::spawn(async move {
            let _guard = guard;
            let _ = s.set_nodelay(true);
            serve_accepted(s, conn, tx, rx, events, limits, tls).await;
        });
    }
}

/// Serves an accepted connection: at once over TCP; over TLS once the handshake is done
/// within the header timeout (a failed one is counted and the connection closed).
async fn serve_accepted(
    s: tokio::net::TcpStream,
    conn: Link,
    tx: mpsc::Sender<Out>,
    rx: mpsc::Receiver<Out>,
    events: mpsc::UnboundedSender<TcpEvent>,
    limits: Arc<TcpLimits>,
    tls: Option<Arc<TlsSetup>>,
) {
    let Some(acceptor) = tls.as_ref().and_then(|t| t.acceptor.clone()) else {
        return serve_conn(s, conn, tx, rx, events, limits).await;
    };
    let (transport, peer, id) = (conn.transport, conn.peer, conn.id);
    match tokio::time::timeout(limits.header_timeout, acceptor.accept(s)).await {
        Ok(Ok(s)) => serve_conn(s, conn, tx, rx, events, limits).await,
        failed => {
            if let Ok(Err(e)) = failed {
                debug!(%peer, error = %e, "SIP TLS handshake refused");
            }
            metrics::counter!(crate::metrics::SIP_TLS_HANDSHAKE_FAILED, "side" => "server")
                .increment(1);
            let _ = events.send(TcpEvent::Closed(transport, peer, id));
        }
    }
}

/// Why a connection ended (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Eof,
    TooLarge,
    Malformed,
    HeaderTimeout,
    Idle,
    DriverGone,
}

impl End {
    fn label(self) -> &'static str {
        match self {
            End::Eof => "eof",
            End::TooLarge => "too_large",
            End::Malformed => "malformed",
            End::HeaderTimeout => "header_timeout",
            End::Idle => "idle",
            End::DriverGone => "driver_gone",
        }
    }
}

/// Which connection a task serves.
#[derive(Debug, Clone, Copy)]
struct Link {
    transport: Transport,
    peer: SocketAddr,
    id: u64,
}

/// Runs one connection (TCP or TLS): a writer task drains `rx`, this task reads and frames.
async fn serve_conn<S>(
    s: S,
    conn: Link,
    tx: mpsc::Sender<Out>,
    rx: mpsc::Receiver<Out>,
    events: mpsc::UnboundedSender<TcpEvent>,
    limits: Arc<TcpLimits>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (r, w) = tokio::io::split(s);
    let mut writer = tokio::spawn(write_loop(w, rx));
    let end = read_loop(r, conn, &tx, &events, &limits).await;
    let peer = conn.peer;
    debug!(%peer, reason = end.label(), "SIP TCP connection closed");
    metrics::counter!(crate::metrics::SIP_TCP_CLOSED, "reason" => end.label()).increment(1);
    let _ = events.send(TcpEvent::Closed(conn.transport, peer, conn.id));
    // Let a final reply (413) leave, briefly; a peer that does not read is not waited for.
    if tx.try_send(Out::Close).is_err()
        || tokio::time::timeout(Duration::from_secs(1), &mut writer)
            .await
            .is_err()
    {
        writer.abort();
    }
}

async fn write_loop<S: AsyncWrite>(mut w: WriteHalf<S>, mut rx: mpsc::Receiver<Out>) {
    while let Some(out) = rx.recv().await {
        match out {
            Out::Bytes(b) => {
                if w.write_all(&b).await.is_err() {
                    return;
                }
            }
            Out::Close => {
                let _ = w.shutdown().await;
                return;
            }
        }
    }
}

async fn read_loop<S: AsyncRead>(
    mut r: ReadHalf<S>,
    conn: Link,
    tx: &mpsc::Sender<Out>,
    events: &mpsc::UnboundedSender<TcpEvent>,
    limits: &TcpLimits,
) -> End {
    let peer = conn.peer;
    let mut framer = StreamFramer::new(limits.max_message);
    let mut chunk = vec![0u8; 8192];
    let mut last_read = Instant::now();
    let mut message_began = last_read;
    let pong: Wire = Arc::from(&b"\r\n"[..]);
    loop {
        let (deadline, on_timeout) = if framer.in_message() {
            (message_began + limits.header_timeout, End::HeaderTimeout)
        } else {
            (last_read + limits.idle_timeout, End::Idle)
        };
        let n = match timeout_at(deadline, r.read(&mut chunk)).await {
            Err(_) => return on_timeout,
            Ok(Ok(0) | Err(_)) => return End::Eof,
            Ok(Ok(n)) => n,
        };
        last_read = Instant::now();
        if !framer.in_message() {
            message_began = last_read;
        }
        framer.push(&chunk[..n]);
        // One CRLF answers all the pings of a read: a flood of them costs one write.
        let mut pinged = false;
        loop {
            match framer.next_frame() {
                Ok(None) => {
                    if pinged {
                        let _ = tx.try_send(Out::Bytes(pong.clone()));
                    }
                    break;
                }
                Ok(Some(Frame::Message(m))) => {
                    if events
                        .send(TcpEvent::Message(conn.transport, peer, m))
                        .is_err()
                    {
                        return End::DriverGone;
                    }
                    // What is left begins the next message now.
                    message_began = last_read;
                }
                Ok(Some(Frame::Ping)) => pinged = true,
                Ok(Some(Frame::Pong)) => {}
                Err(FrameError::TooLarge { reply, .. }) => {
                    if let Some(reply) = reply {
                        let _ = tx.try_send(Out::Bytes(reply.into()));
                    }
                    return End::TooLarge;
                }
                Err(FrameError::Malformed(why)) => {
                    debug!(%peer, why, "unframeable SIP over TCP");
                    return End::Malformed;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_caps_total_and_per_source() {
        let limits = TcpLimits {
            max_connections: 3,
            max_per_source: 2,
            ..TcpLimits::default()
        };
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        let mut c = Census::default();
        assert_eq!(admit(&c, a, &limits), Ok(()));
        c.total = 2;
        c.by_ip.insert(a, 2);
        assert_eq!(admit(&c, a, &limits), Err("per_source"));
        assert_eq!(admit(&c, b, &limits), Ok(()));
        c.total = 3;
        c.by_ip.insert(b, 1);
        assert_eq!(admit(&c, b, &limits), Err("total"));
    }

    #[test]
    fn descriptor_exhaustion_is_recognised() {
        assert!(fd_exhausted(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(fd_exhausted(&io::Error::from_raw_os_error(libc::ENFILE)));
        assert!(!fd_exhausted(&io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
    }
}
