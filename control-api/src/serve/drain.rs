//! Graceful drain: the first SIGTERM or SIGINT marks the process not ready (`/readyz` 503),
//! stops starting calls and gives live calls `drain_timeout_s` to end before the HTTP
//! server closes; a second signal exits at once. Journal entries already acknowledged are
//! committed (the store acknowledges only after commit), so nothing acknowledged is lost.

use std::sync::atomic::Ordering;
use std::time::Duration;

use engine::dialer::CampaignState;
use engine::store::Store;
use tokio::sync::watch;

use super::state::AppState;

/// Exit status when a second signal cuts the drain short.
pub const FORCED_EXIT: i32 = 130;

/// Resolves on the first SIGTERM/SIGINT; spawns a watcher that, on the second, puts the
/// campaigns the drain paused back to `running` (bounded to one second) and exits.
pub async fn first_signal(state: AppState) {
    wait_signal().await;
    tokio::spawn(async move {
        wait_signal().await;
        tracing::warn!("second signal: exiting now");
        eprintln!("dialer: second signal, exiting now");
        let _ = tokio::time::timeout(Duration::from_secs(1), restore(&state)).await;
        std::process::exit(FORCED_EXIT);
    });
}

/// Puts the campaigns the drain paused back to `running` in the store only.
async fn restore(state: &AppState) {
    let ids: Vec<i64> = state
        .drain_paused
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    for id in ids {
        let r = state
            .store
            .set_campaign_state(id, CampaignState::Running, super::state::now_ms())
            .await;
        if let Err(e) = r {
            tracing::warn!(campaign = id, error = %e, "drain: campaign left paused");
        }
    }
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

/// Drains the dialer, bounded by `drain_timeout_s`: not ready, no new calls, live calls
/// left to finish, then the dialer stops (anything still live at the deadline is hung up
/// and journaled). Returns whether the calls finished in time.
///
/// The engine has no "stop admitting, keep live calls" command yet, so this adapter pauses
/// the running campaigns through the [`engine::dialer::Dialer`] (the scheduler drops them,
/// calls in progress go on), waits until no call is in progress, then puts those campaigns
/// back to `running` in the store only — without waking the dialer — so that the next start
/// resumes them (also on a second signal). A crash between the two leaves them `paused`
/// (resume them by API).
pub async fn drain(state: &AppState) -> bool {
    state.draining.store(true, Ordering::SeqCst);
    let timeout = Duration::from_secs(state.cfg.drain_timeout_s);
    tracing::info!(timeout_s = timeout.as_secs(), "draining");
    let deadline = tokio::time::Instant::now() + timeout;
    if state.cluster.is_some() {
        return drain_node(state, deadline).await;
    }
    let running = match state.store.campaigns(&[CampaignState::Running]).await {
        Ok(r) => r.into_iter().map(|c| c.id).collect::<Vec<_>>(),
        Err(e) => {
            tracing::warn!(error = %e, "drain: listing campaigns");
            vec![]
        }
    };
    let mut paused = vec![];
    for id in &running {
        match state.dialer.pause(*id).await {
            Ok(_) => {
                paused.push(*id);
                if let Ok(mut v) = state.drain_paused.lock() {
                    v.push(*id);
                }
            }
            Err(e) => tracing::warn!(campaign = id, error = %e, "drain: pause"),
        }
    }
    let finished = tokio::time::timeout_at(deadline, async {
        loop {
            match state.dialer.snapshot().await {
                Ok(s)
                    if s.calls_in_progress == 0
                        && !s.running_campaigns.iter().any(|c| paused.contains(c)) =>
                {
                    return
                }
                Ok(_) => {}
                Err(_) => return,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_ok();
    restore(state).await;
    let grace = Duration::from_secs(5);
    match tokio::time::timeout(grace, state.dialer.shutdown()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "dialer stopped with an error"),
        Err(_) => {
            tracing::warn!("dialer did not stop in time; open attempts are recovered at start")
        }
    }
    if !finished {
        tracing::warn!("drain timeout: calls still in progress were hung up");
    }
    finished
}

/// Drains one node of a cluster: the campaigns stay running for the other nodes (they
/// are not paused in the shared store); this node stops admitting calls (its trunk
/// shares go to the others) while it keeps beating, so its calls in progress finish
/// here and are not taken over; then the dialer stops and the node leaves, releasing
/// the contacts it had claimed.
async fn drain_node(state: &AppState, deadline: tokio::time::Instant) -> bool {
    let Some(node) = &state.cluster else {
        return true;
    };
    let task = node.task.lock().ok().and_then(|mut t| t.take());
    if let Some(t) = &task {
        t.drain();
    }
    let finished = tokio::time::timeout_at(deadline, async {
        loop {
            match state.dialer.snapshot().await {
                Ok(s) if s.calls_in_progress == 0 => return,
                Ok(_) => {}
                Err(_) => return,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_ok();
    let grace = Duration::from_secs(5);
    if let Ok(Err(e)) = tokio::time::timeout(grace, state.dialer.shutdown()).await {
        tracing::warn!(error = %e, "dialer stopped with an error");
    }
    if let Some(t) = task {
        t.leave().await;
    }
    finished
}

/// A trigger usable by tests and the demo instead of a signal.
pub fn trigger() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(false)
}
