//! The dialer core, sans-IO: campaigns, trunks and calls as plain data driven by inputs
//! with the time passed in, and outputs drained by a driver.
//!
//! Inputs: [`DialerCore::handle_sip`] (endpoint events), [`DialerCore::handle_media`]
//! (media notes), [`DialerCore::handle_store`] (store replies, each with the token of its
//! request), [`DialerCore::handle_command`] (the facade's commands),
//! [`DialerCore::handle_driver`] (what the driver did with an action) and
//! [`DialerCore::handle_timeout`]. Each takes `now` (a monotonic instant: limiters, timers,
//! durations) and `wall` (Unix ms: the journal, retry times, calling windows).
//! Outputs: [`DialerCore::poll_action`] until `None`, then sleep until
//! [`DialerCore::poll_timeout`], the exact minimum of the armed deadlines.
//!
//! No task, socket, channel, clock or global random source is inside: Call-IDs and SDP
//! session ids come from a generator seeded by the caller, so a test is deterministic.
//! The tokio driver is `crate::net::dialer_driver`.
//!
//! One attempt ([`Phase`]): picked by the scheduler and routed (`dispatch.rs`) → journaled → queued for its trunk's CPS token → INVITE →
//! ringing → answered (prompt plays) → ended → settled ([`settle::settle`]): journaled with
//! its outcome, failed over to another trunk, retried later or done.

pub mod amd;
mod attempt;
mod campaigns;
mod cluster;
mod direct;
mod dispatch;
mod held;
mod inbound;
pub mod inbound_io;
mod inbound_menu;
pub mod invite;
pub mod io;
pub mod listen;
pub mod preempt;
pub mod settle;
mod signals;
mod slot;
mod timers;
mod trunks;
pub mod verify;

#[cfg(test)]
mod preempt_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_amd;
#[cfg(test)]
mod tests_heard;
#[cfg(test)]
mod tests_pick_ahead;
#[cfg(test)]
pub(crate) mod tests_support;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use tracing::info;

pub use attempt::Phase;
pub use cluster::{NodeLoad, ShareUpdate, TrunkLoad};
pub use direct::{CallReport, DirectCall};
pub use inbound::InboundConfig;
pub use io::{
    Action, CallToken, CampaignId, Command, DialerError, DialerSnapshot, DriverNote, Input,
    PutMode, Reply, ReplyTo, StoreReply, TrunkId, TrunkStatus,
};
pub use timers::Deadline;
pub use verify::{VerifyOutcome, VerifyRequest};

use self::attempt::Attempt;
use self::campaigns::CampaignRt;
use self::slot::TrunkSlot;
use self::timers::Timers;
use super::scheduler::Scheduler;
use super::trunk::TrunkConfig;
use crate::dialer::call_media::MediaNote;
use crate::id_map::IdMap;
use crate::sip::endpoint::{CallHandle, Event, RequestHandle};

/// What the core is told once.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Address written in SDP offers.
    pub media_ip: IpAddr,
    /// Seed of the Call-ID and SDP session id generator.
    pub seed: u64,
}

/// Call-IDs and SDP session ids: ChaCha12 (`StdRng`), a CSPRNG, so that strangers cannot
/// guess the Call-ID of a call in progress from the ones they saw; seeded by the caller, so a
/// test with a fixed seed is deterministic.
#[derive(Debug, Clone)]
struct Ids(pub(super) rand::rngs::StdRng);

impl Ids {
    fn new(seed: u64) -> Ids {
        Ids(rand::SeedableRng::seed_from_u64(seed))
    }

    fn next(&mut self) -> u64 {
        rand::RngCore::next_u64(&mut self.0)
    }
}

/// The sans-IO dialer. See the module documentation.
#[derive(Debug)]
pub struct DialerCore {
    cfg: CoreConfig,
    ids: Ids,
    trunks: Vec<TrunkSlot>,
    sched: Scheduler,
    campaigns: IdMap<CampaignId, CampaignRt>,
    calls: IdMap<CallToken, Attempt>,
    by_handle: IdMap<CallHandle, CallToken>,
    pings: IdMap<RequestHandle, TrunkId>,
    /// Verification calls of the web form (not campaign attempts).
    verifies: verify::Verifications,
    regs: IdMap<RequestHandle, TrunkId>,
    /// One-shot calls (`dialer call`) waiting for their trunk to take them.
    direct_waiting: VecDeque<(ReplyTo, DirectCall)>,
    /// One-shot calls in progress: what their report needs beyond the attempt.
    direct: IdMap<CallToken, direct::Direct>,
    next_token: u64,
    timers: Timers,
    /// Inbound calls (their own map; channels shared through the trunks).
    inbound: inbound::Inbound,
    actions: VecDeque<Action>,
    /// Shutting down: where to reply once every call has ended.
    draining: Option<ReplyTo>,
    stopped: bool,
    /// Trunks are shared with other nodes (see `cluster.rs`).
    clustered: bool,
    /// Normal calls being ended for an emergency (see `preempt.rs`).
    preempts: preempt::Preemptions,
    /// Limits per destination prefix (see `crate::dialer::prefix_limit`).
    pacers: crate::dialer::prefix_limit::pacer::Pacers,
    /// The slowest recent journal commits: how far ahead trunks pick (see
    /// [`crate::dialer::pick_ahead`]).
    journals: crate::dialer::pick_ahead::CommitWatch,
}

impl DialerCore {
    /// A core with these trunks (proxies resolved); it starts their registrations and
    /// pings and loads the running campaigns.
    pub fn new(cfg: CoreConfig, trunks: Vec<(TrunkConfig, SocketAddr)>, now: Instant) -> Self {
        let mut core = DialerCore {
            ids: Ids::new(cfg.seed),
            cfg,
            trunks: vec![],
            sched: Scheduler::new(),
            campaigns: IdMap::default(),
            calls: IdMap::default(),
            by_handle: IdMap::default(),
            pings: IdMap::default(),
            verifies: Default::default(),
            regs: IdMap::default(),
            direct_waiting: VecDeque::new(),
            direct: IdMap::default(),
            next_token: 1,
            timers: Timers::default(),
            inbound: inbound::Inbound::default(),
            actions: VecDeque::new(),
            draining: None,
            stopped: false,
            clustered: false,
            preempts: Default::default(),
            pacers: Default::default(),
            journals: crate::dialer::pick_ahead::CommitWatch::new(now),
        };
        for (t, addr) in trunks {
            core.add_slot(t, addr, now);
        }
        core.actions.push_back(Action::LoadCampaigns);
        core
    }

    /// A SIP endpoint event.
    pub fn handle_sip(&mut self, now: Instant, wall: i64, ev: Event) {
        self.handle_all(now, wall, [Input::Sip(ev)]);
    }

    /// A media note.
    pub fn handle_media(&mut self, now: Instant, wall: i64, note: MediaNote) {
        self.handle_all(now, wall, [Input::Media(note)]);
    }

    /// A store reply.
    pub fn handle_store(&mut self, now: Instant, wall: i64, reply: StoreReply) {
        self.handle_all(now, wall, [Input::Store(reply)]);
    }

    /// Several inputs at one instant, then one pass of the core: what one wake of the
    /// driver brought in. The same as handling each alone, since a pass only does what can
    /// be done at `now`, but one pass over the trunks, queues and limiters instead of one
    /// per input (those passes were 12 % of the signalling thread's instructions).
    pub fn handle_all(&mut self, now: Instant, wall: i64, inputs: impl IntoIterator<Item = Input>) {
        for input in inputs {
            match input {
                Input::Sip(ev) => {
                    if !self.verify_sip(now, &ev) {
                        self.on_sip(now, wall, ev);
                    }
                }
                Input::Media(note) => {
                    if !self.verify_media(&note) {
                        self.on_media(now, wall, note);
                    }
                }
                Input::Store(reply) => self.on_store(now, wall, reply),
                Input::Driver(note) => self.on_driver(now, wall, note),
                Input::Command(reply, cmd) => self.on_command(now, reply, cmd),
            }
        }
        self.settle_loop(now, wall);
    }

    fn on_store(&mut self, now: Instant, wall: i64, reply: StoreReply) {
        match reply {
            StoreReply::Journaled(call, r) => self.on_journaled(now, wall, call, r),
            StoreReply::Campaigns(list) => self.on_campaigns(now, wall, list),
            StoreReply::Due(c, due) => self.on_due(now, c, due),
            StoreReply::Progress(c, done) => self.on_progress(wall, c, done),
            StoreReply::Completed(c) => self.on_completed(c),
            StoreReply::Inbound(r) => self.on_inbound_reply(now, wall, r),
        }
    }

    /// A command of the facade; its reply comes as [`Action::Reply`] to `reply`.
    pub fn handle_command(&mut self, now: Instant, wall: i64, reply: ReplyTo, cmd: Command) {
        self.handle_all(now, wall, [Input::Command(reply, cmd)]);
    }

    fn on_command(&mut self, now: Instant, reply: ReplyTo, cmd: Command) {
        match cmd {
            Command::Reload => self.actions.push_back(Action::LoadCampaigns),
            Command::PutTrunk { cfg, addr, mode } => {
                let r = self.put_trunk(*cfg, addr, mode, now);
                self.reply(reply, Reply::Done(r));
            }
            Command::RemoveTrunk(name) => {
                let r = self.remove_trunk(&name);
                self.reply(reply, Reply::Done(r));
            }
            Command::Trunks => {
                let live = self.trunks.iter().filter(|s| !s.removed);
                let cfgs = live.map(|s| s.cfg().clone()).collect();
                self.reply(reply, Reply::Trunks(cfgs));
            }
            Command::Snapshot => {
                let snap = self.snapshot(now);
                self.reply(reply, Reply::Snapshot(snap));
            }
            Command::Shutdown => self.begin_shutdown(reply),
            Command::Call(req) => self.queue_direct(reply, *req),
            Command::Shares(shares) => {
                let load = self.apply_shares(now, shares);
                self.reply(reply, Reply::Load(load));
            }
            Command::Verify(req) => self.verify(now, reply, *req),
            Command::PrefixLimits(limits) => {
                self.sched.set_limits(limits.clone());
                self.pacers.set(limits);
                self.reply(reply, Reply::Done(Ok(())));
            }
        }
    }

    /// The result of an action the driver executed.
    pub fn handle_driver(&mut self, now: Instant, wall: i64, note: DriverNote) {
        self.handle_all(now, wall, [Input::Driver(note)]);
    }

    fn on_driver(&mut self, now: Instant, wall: i64, note: DriverNote) {
        match note {
            DriverNote::Placed(call, handle) => {
                if !self.verify_placed(now, call, Ok(handle)) {
                    self.on_placed(now, call, handle)
                }
            }
            DriverNote::PlaceFailed(call, why) => {
                if !self.verify_placed(now, call, Err(why.clone())) {
                    self.on_place_failed(now, wall, call, why)
                }
            }
            DriverNote::MediaFailed(call, why) => self.on_media_failed(call, &why),
            DriverNote::PingSent(t, h) => {
                self.pings.insert(h, t);
            }
            DriverNote::RegisterStarted(t, h) => self.on_register_started(t, h),
            DriverNote::Inbound(n) => self.on_inbound_note(n),
        }
    }

    /// Deadlines due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, wall: i64) {
        for d in self.timers.expired(now) {
            match d {
                Deadline::Refill(c) => self.refill(now, wall, c),
                Deadline::Completion(c) => self.check_completion(now, c),
                Deadline::Windows => self.update_windows(now, wall),
                Deadline::Ping(t) => self.ping(now, t),
                Deadline::Limiter(_) => {}
                Deadline::Gauges => self.gauges(now),
                Deadline::Inbound(t) => self.on_inbound_timeout(now, wall, t),
                Deadline::Verify(call) => self.verify_expired(call),
                Deadline::VerifyWake => {}
                Deadline::Amd(t) => self.on_screen(now, t, amd::Heard::TimedOut),
            }
        }
        self.settle_loop(now, wall);
    }

    /// The next thing for the driver to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to call [`DialerCore::handle_timeout`]: the earliest armed deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        self.timers.next()
    }

    /// Whether the core has shut down (its last reply is queued).
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Calls from journal to end.
    pub fn calls_in_progress(&self) -> usize {
        self.calls.len()
    }

    /// The phase of a call, for tests and diagnostics.
    pub fn phase(&self, call: CallToken) -> Option<&Phase> {
        self.calls.get(&call).map(|a| &a.phase)
    }

    /// After every input: start and send what capacity allows, plan the wake-ups, and
    /// finish a shutdown whose calls have all ended.
    fn settle_loop(&mut self, now: Instant, wall: i64) {
        if self.stopped {
            return;
        }
        self.dispatch(now, wall);
        self.plan_campaigns(now, wall);
        self.plan_limiters(now);
        if self.calls.is_empty() && self.verifies.is_empty() {
            if let Some(to) = self.draining.take() {
                info!("dialer stopped: every call ended");
                self.timers = Timers::default();
                self.reply(to, Reply::ShutDown);
                self.stopped = true;
            }
        }
    }

    fn reply(&mut self, to: ReplyTo, r: Reply) {
        self.actions.push_back(Action::Reply(to, r));
    }

    fn snapshot(&mut self, now: Instant) -> DialerSnapshot {
        DialerSnapshot {
            trunks: self
                .trunks
                .iter_mut()
                .filter(|s| !s.removed)
                .map(|s| s.status(now))
                .collect(),
            calls_in_progress: self.calls.len(),
            running_campaigns: self.campaigns.keys().map(|c| c.0).collect(),
        }
    }

    fn begin_shutdown(&mut self, reply: ReplyTo) {
        info!(calls = self.calls.len(), "dialer shutting down");
        let ids: Vec<CampaignId> = self.campaigns.keys().copied().collect();
        for c in ids {
            self.drop_campaign(c);
        }
        let handles: Vec<CallHandle> = self.calls.values().filter_map(|a| a.phase.call()).collect();
        for h in handles {
            self.actions.push_back(Action::Hangup(h));
        }
        self.hangup_inbound();
        self.stop_verifies();
        self.draining = Some(reply);
    }

    fn new_token(&mut self) -> CallToken {
        let t = CallToken(self.next_token);
        self.next_token += 1;
        t
    }
}
