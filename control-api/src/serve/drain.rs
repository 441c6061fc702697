//! Graceful drain: the first SIGTERM or SIGINT marks the process not ready (`/readyz` 503),
//! stops starting calls and gives live calls `drain_timeout_s` to end before the HTTP
//! server closes; a second signal exits at once. Journal entries already acknowledged are
//! committed (the store acknowledges only after commit), so nothing acknowledged is lost.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;

use super::state::AppState;

/// Exit status when a second signal cuts the drain short.
pub const FORCED_EXIT: i32 = 130;

/// Resolves on the first SIGTERM/SIGINT; spawns a watcher that exits on the second.
pub async fn first_signal() {
    wait_signal().await;
    tokio::spawn(async {
        wait_signal().await;
        tracing::warn!("second signal: exiting now");
        eprintln!("dialer: second signal, exiting now");
        std::process::exit(FORCED_EXIT);
    });
}

async fn wait_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot watch SIGTERM");
                std::future::pending::<()>().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Drains the dialer: not ready, no new calls, live calls hung up and journaled, bounded
/// by `drain_timeout_s`. Returns whether it finished in time.
///
/// The engine has no "stop admitting but let calls finish" command yet, so this uses
/// [`engine::dialer::Dialer::shutdown`], which stops dialling and ends live calls
/// cleanly (BYE, outcome journaled); running campaigns stay `running` in the store and
/// resume at the next start.
pub async fn drain(state: &AppState) -> bool {
    state.draining.store(true, Ordering::SeqCst);
    let timeout = Duration::from_secs(state.cfg.drain_timeout_s);
    tracing::info!(timeout_s = timeout.as_secs(), "draining");
    match tokio::time::timeout(timeout, state.dialer.shutdown()).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "dialer stopped with an error");
            true
        }
        Err(_) => {
            tracing::warn!("drain timeout: calls still in progress are left to recovery");
            false
        }
    }
}

/// A trigger usable by tests and the demo instead of a signal.
pub fn trigger() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(false)
}
