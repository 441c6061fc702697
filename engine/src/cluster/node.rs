//! The task that makes a `dialer serve` process one node of a cluster: every beat it
//! renews the node's lease and trunk shares in the store, applies the shares to the
//! dialer core, closes the attempts of nodes whose lease ran out, and has the core
//! re-read the running campaigns (so a pause or cancel given to any node stops every
//! node within a beat).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::shares::{applied_cps, my_share, peer_factor, rank};
use super::trunks::TrunkSync;
use super::ClusterSettings;
use crate::dialer::core::{NodeLoad, ShareUpdate};
use crate::dialer::recovery::recovered_end;
use crate::dialer::trunk::NodeShare;
use crate::dialer::{Dialer, DialerError};
use crate::store::postgres::{BeatOutcome, NodeJoin, PgStore, TrunkShareRow};
use crate::store::{now_ms, Store, StoreError};

/// The reason journaled on attempts a dead node left open.
pub const TAKEN_OVER: &str = "recovered: its node lost the lease";

/// A running node task.
pub struct NodeTask {
    stop: watch::Sender<bool>,
    draining: watch::Sender<bool>,
    task: JoinHandle<()>,
    store: PgStore,
    id: String,
    trunks: Arc<TrunkSync>,
}

impl NodeTask {
    /// Starts beating for a node that already joined (its store holds the fence).
    pub fn start<S: Store>(
        store: PgStore,
        dialer: Dialer<S>,
        settings: ClusterSettings,
        join: NodeJoin,
    ) -> NodeTask {
        let (stop, stop_rx) = watch::channel(false);
        let (draining, draining_rx) = watch::channel(false);
        let id = join.id.clone();
        let trunks = Arc::new(TrunkSync::new(store.clone()));
        let node = Node {
            trunks: trunks.clone(),
            store: store.clone(),
            dialer,
            settings,
            join,
            committed: HashMap::new(),
            draining: draining_rx,
        };
        let task = tokio::spawn(node.run(stop_rx));
        NodeTask {
            stop,
            draining,
            task,
            store,
            id,
            trunks,
        }
    }

    /// Where this node makes trunk changes the other nodes follow.
    pub fn trunks(&self) -> Arc<TrunkSync> {
        self.trunks.clone()
    }

    /// Starts no new call from the next beat on (its CPS shares go to the other nodes)
    /// while it keeps beating, so that its calls in progress are not taken over.
    pub fn drain(&self) {
        let _ = self.draining.send(true);
    }

    /// Stops beating and leaves the cluster: the node's row says it left, its claims on
    /// contacts not being dialled are released. Call after the dialer has drained.
    pub async fn leave(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        if let Err(e) = self.store.leave(&self.id).await {
            warn!(error = %e, "cluster: leaving");
        }
    }
}

struct Node<S: Store> {
    store: PgStore,
    dialer: Dialer<S>,
    settings: ClusterSettings,
    join: NodeJoin,
    /// Each trunk's CPS share committed at the previous beat (a rise applies a beat late).
    committed: HashMap<String, f64>,
    /// Shutting down: no backlog claimed, no CPS used.
    draining: watch::Receiver<bool>,
    /// Trunk changes recorded by the nodes, followed at each reload tick.
    trunks: Arc<TrunkSync>,
}

impl<S: Store> Node<S> {
    /// The beat loop, with the upkeep (reload, trunk changes, take-over) on tasks of
    /// their own: nothing but the beat itself stands between two lease renewals.
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let upkeep = [
            tokio::spawn(reload_loop(
                self.dialer.clone(),
                self.trunks.clone(),
                self.settings.reload,
                stop.clone(),
            )),
            tokio::spawn(take_over_loop(
                self.store.clone(),
                self.settings.beat,
                stop.clone(),
            )),
        ];
        let mut beat = tokio::time::interval(self.settings.beat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                Ok(()) = self.draining.changed() => {
                    // Stop admitting at once, then beat as usual with nothing wanted.
                    if let Ok(load) = self.dialer.shares(vec![]).await {
                        let _ = self.dialer.shares(zero_shares(&load)).await;
                    }
                }
                _ = beat.tick() => {
                    if let Err(e) = self.timed_beat().await {
                        if matches!(e, DialerError::Stopped) {
                            break;
                        }
                        error!(error = %e, "cluster: beat failed");
                    }
                }
            }
        }
        for t in upkeep {
            t.abort();
            let _ = t.await;
        }
    }

    /// A beat, with a warning naming the slow part when it took a good share of the
    /// lease (the margin a live node has before the others take its work).
    async fn timed_beat(&mut self) -> Result<(), DialerError> {
        let t0 = std::time::Instant::now();
        let r = self.beat().await;
        let took = t0.elapsed();
        if took * 3 > self.settings.lease {
            warn!(
                node = %self.join.id,
                took_ms = took.as_millis() as u64,
                lease_ms = self.settings.lease.as_millis() as u64,
                "cluster: slow beat"
            );
        }
        r
    }

    /// One beat: the core's load, the lease and shares in the store, the shares applied.
    async fn beat(&mut self) -> Result<(), DialerError> {
        let mut load = self.dialer.shares(vec![]).await?;
        if *self.draining.borrow() {
            load.trunks.iter_mut().for_each(|t| t.wants = false);
        }
        let names: Vec<String> = load.trunks.iter().map(|t| t.name.clone()).collect();
        let live = u32::try_from(load.live_calls).unwrap_or(u32::MAX);
        let me = self.join.id.clone();
        let rule = |peers: &[crate::store::postgres::PeerShare]| rows_for(&me, &load, peers);
        let outcome = self.store.beat(&self.join.id, live, &names, rule).await?;
        match outcome {
            BeatOutcome::Held { mine, peers } => {
                let updates = self.shares_to_apply(&mine, &peers);
                self.dialer.shares(updates).await?;
            }
            BeatOutcome::Lost => {
                // Stalled past the lease: others may have taken this run's contacts.
                // Nothing new starts under the old fence; a new run begins.
                warn!(node = %self.join.id, "cluster: lease lost; joining again with a new fence");
                let zero = zero_shares(&load);
                self.dialer.shares(zero).await?;
                self.committed.clear();
                let fence = self.store.join(&self.join).await?;
                info!(node = %self.join.id, fence, "cluster: joined again");
            }
        }
        Ok(())
    }

    /// The shares to apply now from the rows this beat committed.
    fn shares_to_apply(
        &mut self,
        mine: &[TrunkShareRow],
        peers: &[crate::store::postgres::PeerShare],
    ) -> Vec<ShareUpdate> {
        let mut out = vec![];
        for row in mine {
            let theirs: Vec<&TrunkShareRow> = peers
                .iter()
                .filter(|p| p.row.trunk == row.trunk)
                .map(|p| &p.row)
                .collect();
            let prev = self.committed.insert(row.trunk.clone(), row.cps);
            let cps = applied_cps(prev, row.cps, theirs.is_empty());
            let share = NodeShare {
                cps: if *self.draining.borrow() { 0.0 } else { cps },
                channels: row.channels,
                peer_factor: peer_factor(&theirs),
            };
            out.push((row.trunk.clone(), share));
        }
        out
    }
}

/// Closes the attempts that runs whose lease ran out left dialling: answered ones
/// stay answered, the others become `failed`, not counted, due again at once (the
/// contacts those runs had claimed are free already: claims honour live runs only).
async fn take_over(store: &PgStore) {
    let dangling = match store.dangling().await {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "cluster: listing dangling attempts");
            return;
        }
    };
    if dangling.is_empty() {
        return;
    }
    let wall = now_ms();
    // Queued all at once (the writer takes them in one batch, one commit), then awaited.
    let closing: Vec<_> = dangling
        .iter()
        .map(|d| {
            let (mut end, next) = recovered_end(d, wall);
            end.sip_reason = TAKEN_OVER.into();
            (d.attempt, store.finish_attempt(end, next))
        })
        .collect();
    let mut closed = 0;
    for (attempt, done) in closing {
        match done.await {
            Ok(()) => closed += 1,
            // Another node closed it first.
            Err(StoreError::Conflict(_)) => {}
            Err(e) => warn!(attempt, error = %e, "cluster: closing"),
        }
    }
    if closed > 0 {
        warn!(
            attempts = closed,
            "cluster: closed attempts of a node whose lease ran out"
        );
        metrics::counter!(crate::metrics::CLUSTER_TAKEN_OVER).increment(closed);
    }
}

/// Re-reads the running campaigns and follows trunk changes every `every`.
async fn reload_loop<S: Store>(
    dialer: Dialer<S>,
    trunks: Arc<TrunkSync>,
    every: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {
                dialer.reload();
                if let Err(DialerError::Stopped) = trunks.follow(&dialer).await {
                    return;
                }
            }
        }
    }
}

/// Closes dead runs' attempts every `every` (a beat).
async fn take_over_loop(
    store: PgStore,
    every: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => take_over(&store).await,
        }
    }
}

/// This node's rows for every trunk, from its load and the peers' rows.
fn rows_for(
    me: &str,
    load: &NodeLoad,
    peers: &[crate::store::postgres::PeerShare],
) -> Vec<TrunkShareRow> {
    load.trunks
        .iter()
        .map(|t| {
            let on_trunk = || peers.iter().filter(|p| p.row.trunk == t.name);
            let theirs: Vec<&TrunkShareRow> = on_trunk().map(|p| &p.row).collect();
            let wanting = on_trunk().filter(|p| p.row.wants).map(|p| p.node.clone());
            my_share(t, &theirs, rank(me, wanting))
        })
        .collect()
}

/// No new calls on any trunk (the channels of calls in progress stay theirs).
fn zero_shares(load: &NodeLoad) -> Vec<ShareUpdate> {
    load.trunks
        .iter()
        .map(|t| {
            let z = NodeShare {
                cps: 0.0,
                channels: t.active,
                peer_factor: 1.0,
            };
            (t.name.clone(), z)
        })
        .collect()
}
