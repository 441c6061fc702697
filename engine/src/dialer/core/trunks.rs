//! Trunks in the core: added and replaced at run time, removed, registered and pinged.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::info;

use super::invite::{ping_uri, register_params};
use super::io::{Action, DialerError, PutMode, TrunkId};
use super::slot::{publish_limits, TrunkSlot};
use super::timers::Deadline;
use super::DialerCore;
use crate::dialer::trunk::TrunkConfig;
use crate::metrics as m;
use crate::sip::endpoint::RequestHandle;

impl DialerCore {
    /// Adds a trunk slot: registers it and pings it now if its configuration says so.
    pub(super) fn add_slot(&mut self, cfg: TrunkConfig, addr: SocketAddr, now: Instant) -> TrunkId {
        self.trunks.push(TrunkSlot::new(cfg, addr));
        let t = TrunkId(self.trunks.len() - 1);
        self.start_requests(t, now);
        t
    }

    /// Arms the first ping and starts the registration of a trunk.
    fn start_requests(&mut self, t: TrunkId, now: Instant) {
        let cfg = self.trunks[t.0].cfg();
        if cfg.options_ping_interval_s > 0 {
            self.timers.set(Deadline::Ping(t), now);
        } else {
            self.timers.stop(Deadline::Ping(t));
        }
        if cfg.register {
            let params = register_params(cfg, self.trunks[t.0].addr);
            self.actions
                .push_back(Action::Register(t, Box::new(params)));
        }
    }

    fn find_live(&self, name: &str) -> Option<TrunkId> {
        self.trunks
            .iter()
            .position(|s| !s.removed && s.cfg().name == name)
            .map(TrunkId)
    }

    /// Adds or replaces a trunk at run time. A replaced trunk keeps its calls, limiter
    /// window and health; the new limits and routes apply to new attempts.
    pub(super) fn put_trunk(
        &mut self,
        cfg: TrunkConfig,
        addr: SocketAddr,
        mode: PutMode,
        now: Instant,
    ) -> Result<(), DialerError> {
        let name = cfg.name.clone();
        match (self.find_live(&name), mode) {
            (Some(_), PutMode::Create) => return Err(DialerError::TrunkExists(name)),
            (None, PutMode::Replace) => return Err(DialerError::NoTrunk(name)),
            (Some(t), _) => {
                self.forget_requests(t);
                publish_limits(&cfg);
                let slot = &mut self.trunks[t.0];
                slot.trunk.reconfigure(cfg);
                slot.addr = addr;
                self.start_requests(t, now);
            }
            (None, _) => {
                self.add_slot(cfg, addr, now);
            }
        }
        self.allow_sources();
        info!(trunk = %name, "trunk configured at run time");
        Ok(())
    }

    /// Tells the driver which addresses may send new requests: the live trunks' proxies
    /// and their `inbound_from` blocks.
    pub(super) fn allow_sources(&mut self) {
        let nets = self.trunks.iter().filter(|s| !s.removed).flat_map(|s| {
            std::iter::once(s.addr.ip().into()).chain(s.cfg().inbound_from.iter().copied())
        });
        self.actions.push_back(Action::AllowSources(nets.collect()));
    }

    /// Removes a trunk at run time: no new attempts (queued ones go elsewhere), its calls
    /// finish, its registration and pings stop.
    pub(super) fn remove_trunk(&mut self, name: &str) -> Result<(), DialerError> {
        let t = self
            .find_live(name)
            .ok_or_else(|| DialerError::NoTrunk(name.to_string()))?;
        self.trunks[t.0].removed = true;
        self.forget_requests(t);
        self.timers.stop(Deadline::Ping(t));
        self.timers.stop(Deadline::Limiter(t));
        metrics::gauge!(m::TRUNK_UP, "trunk" => name.to_string()).set(0.0);
        self.allow_sources();
        let calls = self.trunks[t.0].trunk.active;
        info!(trunk = %name, calls, "trunk removed at run time");
        Ok(())
    }

    /// Ends a trunk's registration and stops listening to its pings (late replies are
    /// ignored).
    fn forget_requests(&mut self, t: TrunkId) {
        self.pings.retain(|_, x| *x != t);
        self.regs.retain(|_, x| *x != t);
        if let Some(h) = self.trunks[t.0].registration.take() {
            self.actions.push_back(Action::Unregister(h));
        }
    }

    pub(super) fn on_register_started(&mut self, t: TrunkId, h: RequestHandle) {
        self.regs.insert(h, t);
        self.trunks[t.0].registration = Some(h);
    }

    /// Sends a trunk's OPTIONS ping and arms the next.
    pub(super) fn ping(&mut self, now: Instant, t: TrunkId) {
        let s = &self.trunks[t.0];
        let every = s.cfg().options_ping_interval_s;
        if s.removed || every == 0 {
            return;
        }
        let (dest, uri) = (s.addr, ping_uri(s.cfg()));
        self.actions.push_back(Action::Ping {
            trunk: t,
            dest,
            uri,
        });
        self.timers
            .set(Deadline::Ping(t), now + Duration::from_secs(every));
    }
}
