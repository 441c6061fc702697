//! A trunk in the core: its configuration and run-time state in one struct (limiter,
//! congestion control and health inside [`Trunk`]; the send queue, picked-but-unsent
//! count, registration and removal beside it).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::super::pick_ahead;
use super::super::routing::TrunkView;
use super::super::trunk::{Trunk, TrunkConfig};
use super::io::{CallToken, TrunkStatus};
use crate::metrics as m;
use crate::sip::endpoint::RequestHandle;

/// One trunk of the core.
#[derive(Debug)]
pub struct TrunkSlot {
    /// Configuration, limiter, congestion control, health, channels in use.
    pub trunk: Trunk,
    /// Its proxy's resolved address.
    pub addr: SocketAddr,
    /// Journaled attempts waiting for a CPS token, oldest first.
    pub send_queue: VecDeque<CallToken>,
    /// Attempts picked but not yet sent (journaling or queued).
    pub pending: u32,
    /// Removed at run time: kept (tokens stay valid) until its calls end, never routed
    /// to, pinged or shown.
    pub removed: bool,
    /// Its registration, when it registers.
    pub registration: Option<RequestHandle>,
}

impl TrunkSlot {
    /// A new trunk at full rate, up, idle; its limits published as gauges.
    pub fn new(cfg: TrunkConfig, addr: SocketAddr) -> TrunkSlot {
        publish_limits(&cfg);
        TrunkSlot {
            trunk: Trunk::new(cfg),
            addr,
            send_queue: VecDeque::new(),
            pending: 0,
            removed: false,
            registration: None,
        }
    }

    /// Its configuration.
    pub fn cfg(&self) -> &TrunkConfig {
        &self.trunk.cfg
    }

    /// Whether a new attempt may be picked for it now: live, up, a channel free, the
    /// limiter ready, and fewer attempts picked but unsent than its rate over `horizon`
    /// (see [`pick_ahead`]).
    pub fn can_take(&mut self, now: Instant, horizon: Duration) -> bool {
        let cap = pick_ahead::cap(self.trunk.cfg.cps, horizon);
        !self.removed && self.trunk.available(now) && self.pending < cap
    }

    /// What routing sees of it.
    pub fn view(&self, excluded: bool, available: bool) -> TrunkView<'_> {
        TrunkView {
            routes: &self.trunk.cfg.routes,
            priority: self.trunk.cfg.priority,
            weight: self.trunk.cfg.weight,
            admitted: self.trunk.admitted + u64::from(self.pending),
            eligible: !self.removed && !excluded,
            available,
        }
    }

    /// Its line of the snapshot.
    pub fn status(&mut self, now: Instant) -> TrunkStatus {
        let t = &mut self.trunk;
        TrunkStatus {
            name: t.cfg.name.clone(),
            up: t.health.is_up(),
            active: t.active,
            max_channels: t.cfg.max_channels,
            cps_limit: t.cfg.cps,
            cps_effective: t.effective_cps(now),
            admitted: t.admitted,
            registered: t.cfg.register.then_some(t.registered),
        }
    }
}

/// Publishes a trunk's configured limits (and that it starts up) as gauges.
pub fn publish_limits(t: &TrunkConfig) {
    metrics::gauge!(m::TRUNK_CPS_LIMIT, "trunk" => t.name.clone()).set(t.cps);
    metrics::gauge!(m::TRUNK_CHANNELS_LIMIT, "trunk" => t.name.clone())
        .set(f64::from(t.max_channels));
    metrics::gauge!(m::TRUNK_UP, "trunk" => t.name.clone()).set(1.0);
}
