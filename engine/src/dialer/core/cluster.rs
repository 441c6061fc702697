//! The core's side of several nodes sharing trunks: it holds every trunk at a zero share
//! until the cluster task grants one, applies the shares the task computes at each beat,
//! and tells the task what it needs for the next (backlog, calls, congestion per trunk).
//! The shares themselves are decided in `crate::cluster::shares`.

use std::time::Instant;

use serde::Serialize;

use super::DialerCore;
use crate::dialer::trunk::NodeShare;

/// What this node is doing on one trunk, for the cluster's share computation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrunkLoad {
    /// Trunk name.
    pub name: String,
    /// The node has work that could use the trunk (contacts queued or attempts waiting).
    pub wants: bool,
    /// Channels in use.
    pub active: u32,
    /// Its own congestion factor (AIMD rate over the ceiling; 1: none).
    pub factor: f64,
    /// The trunk's CPS ceiling (all nodes together).
    pub cps: f64,
    /// The trunk's channels (all nodes together).
    pub max_channels: u32,
}

/// The node's load at a beat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeLoad {
    /// Calls from journal to end.
    pub live_calls: usize,
    /// Per live trunk.
    pub trunks: Vec<TrunkLoad>,
}

/// A share for the trunk of this name.
pub type ShareUpdate = (String, NodeShare);

impl DialerCore {
    /// Shares trunks with other nodes from now on: every trunk (and every trunk added
    /// later) is held at a zero share until [`DialerCore::apply_shares`] grants one.
    pub fn hold_for_shares(&mut self) {
        self.clustered = true;
        for s in &mut self.trunks {
            s.trunk.set_share(Some(ZERO));
        }
    }

    /// Whether trunks are shared with other nodes.
    pub fn is_clustered(&self) -> bool {
        self.clustered
    }

    /// Applies the shares of a beat and returns the load for the next one.
    pub(super) fn apply_shares(&mut self, now: Instant, shares: Vec<ShareUpdate>) -> NodeLoad {
        for (name, share) in shares {
            let live = self.trunks.iter_mut().filter(|s| !s.removed);
            for s in live.filter(|s| s.cfg().name == name) {
                s.trunk.set_share(Some(share));
            }
        }
        let backlog = self.campaigns.keys().any(|c| self.sched.queued(c.0) > 0);
        let trunks = self
            .trunks
            .iter_mut()
            .filter(|s| !s.removed)
            .map(|s| TrunkLoad {
                name: s.cfg().name.clone(),
                wants: backlog || s.pending > 0 || !s.send_queue.is_empty(),
                active: s.trunk.active,
                factor: s.trunk.congestion_factor(now),
                cps: s.cfg().cps,
                max_channels: s.cfg().max_channels,
            })
            .collect();
        NodeLoad {
            live_calls: self.calls.len(),
            trunks,
        }
    }

    /// A trunk added while clustered starts with no share, like the others did.
    pub(super) fn hold_new_slot(&mut self, i: usize) {
        if self.clustered {
            self.trunks[i].trunk.set_share(Some(ZERO));
        }
    }
}

/// Nothing: a node's share before the cluster grants one.
const ZERO: NodeShare = NodeShare {
    cps: 0.0,
    channels: 0,
    peer_factor: 1.0,
};
