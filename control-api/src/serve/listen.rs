//! The HTTP listener: hyper's HTTP/1 server with a header-read timeout (a half-open
//! request, or a keep-alive connection that sends nothing, is closed when it runs out), a
//! cap on open connections (more wait in the kernel's backlog), and accept errors such as
//! running out of file descriptors met with a back-off rather than a spin.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::Layer;

/// Connection limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time a request's headers may take (and a keep-alive connection may stay silent).
    pub header_timeout: Duration,
}

/// Serves `app` on `listener` until `stop` turns true; then lets requests in progress
/// finish (connections close after their current response) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (close_tx, close_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut backoff = Duration::from_millis(10);
    loop {
        while conns.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.wait_for(|v| *v) => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|v| *v) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                let kind = match e.raw_os_error() {
                    Some(n) if is_fd_exhaustion(n) => "fd_exhausted",
                    _ => "other",
                };
                metrics::counter!("dialer_http_accept_errors_total", "kind" => kind).increment(1);
                tracing::debug!(error = %e, ?backoff, "HTTP accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(10);
        let app = app.clone();
        let close = close_rx.clone();
        conns.spawn(async move {
            let _slot = permit;
            serve_conn(stream, peer, app, limits.header_timeout, close).await;
        });
    }
    let _ = close_tx.send(true);
    while conns.join_next().await.is_some() {}
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM (Linux numbering).
fn is_fd_exhaustion(errno: i32) -> bool {
    matches!(errno, 24 | 23 | 105 | 12)
}

async fn serve_conn(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    header_timeout: Duration,
    mut close: watch::Receiver<bool>,
) {
    let svc = TowerToHyperService::new(axum::Extension(ConnectInfo(peer)).layer(app));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    let mut conn = std::pin::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended");
                }
                return;
            }
            _ = close.wait_for(|v| *v), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_exhaustion_errnos() {
        for e in [24, 23, 105, 12] {
            assert!(is_fd_exhaustion(e));
        }
        assert!(!is_fd_exhaustion(103)); // ECONNABORTED
    }
}
