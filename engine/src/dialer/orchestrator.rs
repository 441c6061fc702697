//! The call orchestrator and the [`Dialer`] service: joins the decisions (scheduler,
//! routing, limits, retries, windows) to the SIP driver, the media path and the store.
//!
//! One task owns all mutable dialer state (scheduler queues, trunks, calls in progress);
//! everything it waits for (journal commits, store reads, SIP and media events, commands)
//! comes back to it as a message, so decisions never race. One attempt:
//!
//! 1. the scheduler picks a due contact and routing a trunk with a free channel and a
//!    ready CPS limiter; the channel is reserved;
//! 2. the attempt and a fresh Call-ID are journaled; the INVITE waits for the commit;
//! 3. the trunk's limiter gives the CPS token right before the INVITE is handed to the SIP
//!    driver (so commit latency cannot bunch INVITEs up on the wire);
//! 4. on answer the journal records it and the media path plays the prompt; when the
//!    prompt ends we hang up;
//! 5. the end is journaled with outcome, SIP status and reason, PDD, duration, share
//!    played and digits; a carrier fault goes to another trunk without using up the
//!    citizen's retries; otherwise the retry policy says when (if ever) to call again.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::call_media::{CallMedia, MediaNote};
use super::campaign::{CampaignError, CampaignSpec, CampaignState};
use super::config::{ConfigError, DialerConfig};
use super::congestion::Signal;
use super::retry::{Next, RetryPolicy};
use super::routing::{self, Route, TrunkView};
use super::scheduler::{DueItem, Pick, Scheduler};
use super::trunk::{Trunk, TrunkConfig};
use super::window::Window;
use crate::net::SipDriver;
use crate::sip::auth::Credentials;
use crate::sip::endpoint::{
    CallEnd, CallHandle, CallParams, EndpointConfig, Event, RegisterParams, RegistrationState,
    RequestHandle, SourcePolicy, Transport,
};
use crate::sip::outcome::Outcome;
use crate::sip::sdp::{OfferCodec, OfferParams};
use crate::store::sqlite::now_ms;
use crate::store::{AttemptEnd, AttemptStart, CampaignRecord, ContactNext, Store, StoreError};

/// Why the dialer refused something.
#[derive(Debug, thiserror::Error)]
pub enum DialerError {
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Invalid campaign.
    #[error(transparent)]
    Campaign(#[from] CampaignError),
    /// Socket or resolution failure.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Bad configuration.
    #[error("config: {0}")]
    Config(String),
    /// The dialer task has stopped.
    #[error("dialer stopped")]
    Stopped,
    /// A trunk's configuration is invalid (checked as the configuration loader does).
    #[error(transparent)]
    InvalidTrunk(#[from] ConfigError),
    /// A trunk's proxy does not resolve.
    #[error("trunk {name}: proxy {proxy}: {reason}")]
    TrunkProxy {
        /// The trunk.
        name: String,
        /// Its `proxy` key.
        proxy: String,
        /// Why it does not resolve.
        reason: String,
    },
    /// A trunk with this name already exists.
    #[error("trunk {0} exists")]
    TrunkExists(String),
    /// No trunk has this name.
    #[error("no trunk {0}")]
    NoTrunk(String),
}

/// Whether [`Dialer`] trunk changes create, replace or do either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PutMode {
    Create,
    Replace,
    Upsert,
}

/// A trunk as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrunkStatus {
    /// Name.
    pub name: String,
    /// Up by OPTIONS pings.
    pub up: bool,
    /// Calls in progress.
    pub active: u32,
    /// Configured channels.
    pub max_channels: u32,
    /// Configured CPS ceiling.
    pub cps_limit: f64,
    /// CPS now allowed by congestion control.
    pub cps_effective: f64,
    /// Attempts admitted since start.
    pub admitted: u64,
    /// Registered with the proxy now; `None` when the trunk does not register.
    pub registered: Option<bool>,
}

/// What the dialer is doing now.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DialerSnapshot {
    /// Trunks.
    pub trunks: Vec<TrunkStatus>,
    /// Calls from journal to end.
    pub calls_in_progress: usize,
    /// Campaigns being dialled.
    pub running_campaigns: Vec<i64>,
}

enum Cmd {
    Reload,
    PutTrunk {
        cfg: Box<TrunkConfig>,
        addr: SocketAddr,
        mode: PutMode,
        reply: oneshot::Sender<Result<(), DialerError>>,
    },
    RemoveTrunk(String, oneshot::Sender<Result<(), DialerError>>),
    Trunks(oneshot::Sender<Vec<TrunkConfig>>),
    Snapshot(oneshot::Sender<DialerSnapshot>),
    Shutdown(oneshot::Sender<()>),
}

enum Internal {
    Campaigns(Vec<CampaignRecord>),
    Due(i64, Vec<crate::store::DueContact>),
    Journaled(u64, Result<i64, StoreError>),
    Completed(i64),
    Progress(i64, bool),
}

/// The dialer service: create and steer campaigns, watch progress. Cheap to clone; the
/// HTTP API (`dialer serve`) and the CLI (`dialer campaign run`) both drive it.
#[derive(Clone)]
pub struct Dialer<S: Store> {
    store: S,
    cmd: mpsc::UnboundedSender<Cmd>,
    completed: watch::Receiver<Vec<i64>>,
    default_retry: super::retry::RetryPolicy,
}

impl<S: Store> Dialer<S> {
    /// Starts the SIP driver and the orchestrator, recovers what a previous run left
    /// open (attempts left `dialing` are closed: answered ones as `answered`, the others
    /// as `failed`, rescheduled by policy), and resumes running campaigns.
    pub async fn start<M: CallMedia>(
        cfg: DialerConfig,
        store: S,
        media: Arc<M>,
        media_notes: mpsc::UnboundedReceiver<MediaNote>,
    ) -> Result<Dialer<S>, DialerError> {
        let bind: SocketAddr = cfg
            .sip_bind
            .parse()
            .map_err(|e| DialerError::Config(format!("sip_bind {}: {e}", cfg.sip_bind)))?;
        let mut trunks = vec![];
        let mut addrs = vec![];
        for t in &cfg.trunks {
            let addr = tokio::net::lookup_host(&t.proxy)
                .await
                .map_err(|e| {
                    DialerError::Config(format!("trunk {} proxy {}: {e}", t.name, t.proxy))
                })?
                .next()
                .ok_or_else(|| DialerError::Config(format!("trunk {}: no address", t.name)))?;
            addrs.push(addr);
            trunk_gauges(t);
            trunks.push(Trunk::new(t.clone()));
        }
        recover(&store).await?;
        let mut ep_cfg = EndpointConfig::new(bind);
        ep_cfg.user_agent = cfg.sip.user_agent.clone();
        ep_cfg.sources = SourcePolicy {
            // Only the trunks' proxies may send new requests.
            allowed: Some(addrs.iter().map(|a| a.ip()).collect()),
            strangers: cfg.sip.strangers,
            options_from_strangers: cfg.sip.options_from_strangers,
        };
        let (driver, events) = SipDriver::start_with(bind, ep_cfg, cfg.sip.tcp_limits()).await?;
        info!(sip = %driver.local_addr(), trunks = trunks.len(), "dialer started");
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (int_tx, int_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = watch::channel(vec![]);
        let n = trunks.len();
        let core = Core {
            store: store.clone(),
            media,
            driver,
            trunks,
            addrs,
            send_queues: vec![VecDeque::new(); n],
            pending: vec![0; n],
            sched: Scheduler::new(),
            campaigns: HashMap::new(),
            calls: HashMap::new(),
            by_handle: HashMap::new(),
            next_token: 1,
            int_tx,
            refilling: HashMap::new(),
            checking: HashMap::new(),
            done_tx,
            shutting_down: None,
            pings: HashMap::new(),
            next_ping: vec![Instant::now(); n],
            removed: vec![false; n],
            regs: HashMap::new(),
            next_gauges: Instant::now(),
        };
        tokio::spawn(core.run(cmd_rx, int_rx, events, media_notes));
        let _ = cmd_tx.send(Cmd::Reload);
        Ok(Dialer {
            store,
            cmd: cmd_tx,
            completed: done_rx,
            default_retry: cfg.retry,
        })
    }

    /// The store (for reads: progress, attempts, campaigns).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The retry policy of the configuration (for campaigns created without one).
    pub fn default_retry(&self) -> super::retry::RetryPolicy {
        self.default_retry
    }

    /// Validates and stores a new campaign in `draft`.
    pub async fn create_campaign(&self, spec: CampaignSpec) -> Result<CampaignRecord, DialerError> {
        spec.validate()?;
        Ok(self.store.create_campaign(spec, now_ms()).await?)
    }

    async fn transition(&self, id: i64, to: CampaignState) -> Result<CampaignRecord, DialerError> {
        let r = self.store.set_campaign_state(id, to, now_ms()).await?;
        self.cmd
            .send(Cmd::Reload)
            .map_err(|_| DialerError::Stopped)?;
        Ok(r)
    }

    /// draft → running: selects the targeted contacts and starts calling.
    pub async fn start_campaign(&self, id: i64) -> Result<CampaignRecord, DialerError> {
        self.transition(id, CampaignState::Running).await
    }

    /// running → paused: no new attempts; calls in progress finish.
    pub async fn pause(&self, id: i64) -> Result<CampaignRecord, DialerError> {
        self.transition(id, CampaignState::Paused).await
    }

    /// paused → running.
    pub async fn resume(&self, id: i64) -> Result<CampaignRecord, DialerError> {
        self.transition(id, CampaignState::Running).await
    }

    /// → canceled: no new attempts; calls in progress finish.
    pub async fn cancel(&self, id: i64) -> Result<CampaignRecord, DialerError> {
        self.transition(id, CampaignState::Canceled).await
    }

    /// Adds a trunk to the running dialer (validated as the configuration loader does, its
    /// proxy resolved); it takes calls at once, and REGISTERs and pings as its
    /// configuration says. Fails with [`DialerError::TrunkExists`] if the name is taken.
    pub async fn add_trunk(&self, cfg: TrunkConfig) -> Result<(), DialerError> {
        self.put_trunk(cfg, PutMode::Create).await
    }

    /// Replaces the configuration of a running trunk: its calls in progress finish on it,
    /// the new limits (CPS, channels) and routes apply to new attempts. Fails with
    /// [`DialerError::NoTrunk`] if there is no such trunk.
    pub async fn replace_trunk(&self, cfg: TrunkConfig) -> Result<(), DialerError> {
        self.put_trunk(cfg, PutMode::Replace).await
    }

    /// Adds the trunk, or replaces it if one has its name (see [`Dialer::add_trunk`] and
    /// [`Dialer::replace_trunk`]).
    pub async fn upsert_trunk(&self, cfg: TrunkConfig) -> Result<(), DialerError> {
        self.put_trunk(cfg, PutMode::Upsert).await
    }

    async fn put_trunk(&self, cfg: TrunkConfig, mode: PutMode) -> Result<(), DialerError> {
        cfg.validate()?;
        let proxy_err = |reason: String| DialerError::TrunkProxy {
            name: cfg.name.clone(),
            proxy: cfg.proxy.clone(),
            reason,
        };
        let addr = tokio::net::lookup_host(&cfg.proxy)
            .await
            .map_err(|e| proxy_err(e.to_string()))?
            .next()
            .ok_or_else(|| proxy_err("no address".into()))?;
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::PutTrunk {
                cfg: Box::new(cfg),
                addr,
                mode,
                reply: tx,
            })
            .map_err(|_| DialerError::Stopped)?;
        rx.await.map_err(|_| DialerError::Stopped)?
    }

    /// Removes a trunk: it takes no new attempts (attempts queued on it but not yet sent
    /// go to another trunk), its calls in progress finish, its pings stop. Fails with
    /// [`DialerError::NoTrunk`] if there is no such trunk.
    pub async fn remove_trunk(&self, name: &str) -> Result<(), DialerError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::RemoveTrunk(name.to_string(), tx))
            .map_err(|_| DialerError::Stopped)?;
        rx.await.map_err(|_| DialerError::Stopped)?
    }

    /// The configurations of the trunks in use now (as added, replaced or started with).
    pub async fn trunk_configs(&self) -> Result<Vec<TrunkConfig>, DialerError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Trunks(tx))
            .map_err(|_| DialerError::Stopped)?;
        rx.await.map_err(|_| DialerError::Stopped)
    }

    /// Trunks and calls now.
    pub async fn snapshot(&self) -> Result<DialerSnapshot, DialerError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Snapshot(tx))
            .map_err(|_| DialerError::Stopped)?;
        rx.await.map_err(|_| DialerError::Stopped)
    }

    /// Waits until campaign `id` is completed.
    pub async fn wait_completed(&self, id: i64) -> Result<(), DialerError> {
        let mut rx = self.completed.clone();
        loop {
            if rx.borrow_and_update().contains(&id) {
                return Ok(());
            }
            if let Some(c) = self.store.campaign(id).await? {
                if matches!(c.state, CampaignState::Completed | CampaignState::Canceled) {
                    return Ok(());
                }
            }
            rx.changed().await.map_err(|_| DialerError::Stopped)?;
        }
    }

    /// Stops dialling, hangs up calls in progress, journals their ends and stops.
    pub async fn shutdown(&self) -> Result<(), DialerError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Shutdown(tx))
            .map_err(|_| DialerError::Stopped)?;
        rx.await.map_err(|_| DialerError::Stopped)
    }
}

/// Closes attempts a crash left `dialing`: answered ones as `answered` (the contact is
/// done), the others as `failed`, counted and rescheduled by the campaign's policy.
pub async fn recover<S: Store>(store: &S) -> Result<usize, DialerError> {
    let dangling = store.dangling().await?;
    let now = now_ms();
    let mut policies = HashMap::new();
    for d in &dangling {
        if let std::collections::hash_map::Entry::Vacant(e) = policies.entry(d.campaign) {
            let c = store.campaign(d.campaign).await?;
            e.insert(c.map(|c| c.spec.retry).unwrap_or_default());
        }
        let (outcome, next) = if d.answered {
            (Outcome::Answered, ContactNext::Done)
        } else {
            let n = match policies[&d.campaign].decide(None, d.attempts + 1, now) {
                Next::RetryAt(t) => ContactNext::RetryAt(t),
                Next::Done => ContactNext::Done,
            };
            // The outcome is lost; DESIGN has no word for that, and `failed` (our fault, not
            // the resident's) is the nearest.
            (Outcome::Failed, n)
        };
        store
            .finish_attempt(
                AttemptEnd {
                    ended_ms: now,
                    ..AttemptEnd::new(d.attempt, outcome, 0, "recovered after restart")
                },
                next,
            )
            .await?;
    }
    if !dangling.is_empty() {
        warn!(
            attempts = dangling.len(),
            "recovered attempts left dialing by a previous run"
        );
    }
    Ok(dangling.len())
}

struct CampRt {
    rec: CampaignRecord,
    window: Option<Window>,
    last_refill: Option<Instant>,
    exhausted_at: Option<Instant>,
}

struct Call<P> {
    item: DueItem,
    policy: RetryPolicy,
    prompt: String,
    play_count: u32,
    trunk: usize,
    campaign: i64,
    attempt: Option<i64>,
    call_id: String,
    handle: Option<CallHandle>,
    port: Option<P>,
    invited_at: Option<Instant>,
    pdd: Option<Duration>,
    answered_at: Option<Instant>,
    /// Share of the message sent, in thousandths (from the media notes).
    played_permille: u32,
    digits: String,
    media_on: bool,
    ended: Option<CallEnd>,
    ended_at: Option<Instant>,
}

struct Core<S: Store, M: CallMedia> {
    store: S,
    media: Arc<M>,
    driver: SipDriver,
    trunks: Vec<Trunk>,
    addrs: Vec<SocketAddr>,
    /// Journaled attempts waiting for a CPS token, per trunk.
    send_queues: Vec<VecDeque<u64>>,
    /// Attempts picked but not yet sent, per trunk.
    pending: Vec<u32>,
    sched: Scheduler,
    campaigns: HashMap<i64, CampRt>,
    calls: HashMap<u64, Call<M::Port>>,
    by_handle: HashMap<CallHandle, u64>,
    next_token: u64,
    int_tx: mpsc::UnboundedSender<Internal>,
    refilling: HashMap<i64, bool>,
    checking: HashMap<i64, bool>,
    done_tx: watch::Sender<Vec<i64>>,
    shutting_down: Option<oneshot::Sender<()>>,
    pings: HashMap<RequestHandle, usize>,
    next_ping: Vec<Instant>,
    /// Trunks removed at run time: kept (indexes stay valid) until their calls end, but
    /// never routed to, pinged or shown.
    removed: Vec<bool>,
    /// Registrations by trunk; a failed REGISTER counts as a failed ping.
    regs: HashMap<RequestHandle, usize>,
    next_gauges: Instant,
}

const REFILL_BELOW: usize = 200;
const REFILL_BATCH: u32 = 500;

impl<S: Store, M: CallMedia> Core<S, M> {
    async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<Cmd>,
        mut internal: mpsc::UnboundedReceiver<Internal>,
        mut sip: mpsc::UnboundedReceiver<Event>,
        mut media: mpsc::UnboundedReceiver<MediaNote>,
    ) {
        self.start_registrations().await;
        let mut housekeeping = tokio::time::interval(Duration::from_millis(250));
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cmds_open = true;
        loop {
            let wake = self.next_wake(Instant::now());
            tokio::select! {
                biased;
                Some(ev) = sip.recv() => self.on_sip(ev).await,
                Some(n) = media.recv() => self.on_media(n),
                Some(i) = internal.recv() => self.on_internal(i).await,
                c = cmds.recv(), if cmds_open => match c {
                    Some(Cmd::Reload) => self.reload(),
                    Some(Cmd::Snapshot(tx)) => { let _ = tx.send(self.snapshot()); }
                    Some(Cmd::PutTrunk { cfg, addr, mode, reply }) => {
                        let r = self.put_trunk(*cfg, addr, mode).await;
                        let _ = reply.send(r);
                    }
                    Some(Cmd::RemoveTrunk(name, reply)) => {
                        let _ = reply.send(self.remove_trunk(&name));
                    }
                    Some(Cmd::Trunks(tx)) => {
                        let live = self.live_trunks().map(|i| self.trunks[i].cfg.clone());
                        let _ = tx.send(live.collect());
                    }
                    Some(Cmd::Shutdown(tx)) => self.begin_shutdown(tx),
                    None => {
                        // Every Dialer handle is gone: stop as if asked to.
                        cmds_open = false;
                        if self.shutting_down.is_none() {
                            let (tx, _rx) = oneshot::channel();
                            self.begin_shutdown(tx);
                        }
                    }
                },
                _ = housekeeping.tick() => self.housekeeping().await,
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
            }
            self.dispatch().await;
            if self.shutting_down.is_some() && self.calls.is_empty() {
                if let Some(tx) = self.shutting_down.take() {
                    let _ = tx.send(());
                }
                return;
            }
        }
    }

    /// When the loop must look again without an event: when a limiter that holds back
    /// work gets a token. A trunk that is ready now but found no work needs no wake-up:
    /// the events that can create work (a call end, a commit, a refill) wake the loop.
    fn next_wake(&mut self, now: Instant) -> Instant {
        let mut at = now + Duration::from_millis(100);
        let work = self.sched_has_work();
        for (i, t) in self.trunks.iter_mut().enumerate() {
            if self.removed[i] {
                continue;
            }
            let queued = !self.send_queues[i].is_empty();
            let could_pick = work && t.health.is_up() && t.active < t.cfg.max_channels;
            if queued || could_pick {
                let r = t.next_ready(now);
                if r > now {
                    at = at.min(r);
                }
            }
        }
        at
    }

    fn sched_has_work(&self) -> bool {
        self.campaigns.keys().any(|c| self.sched.queued(*c) > 0)
    }

    fn snapshot(&mut self) -> DialerSnapshot {
        let now = Instant::now();
        DialerSnapshot {
            trunks: self
                .trunks
                .iter_mut()
                .zip(&self.removed)
                .filter(|(_, removed)| !**removed)
                .map(|(t, _)| TrunkStatus {
                    name: t.cfg.name.clone(),
                    up: t.health.is_up(),
                    active: t.active,
                    max_channels: t.cfg.max_channels,
                    cps_limit: t.cfg.cps,
                    cps_effective: t.effective_cps(now),
                    admitted: t.admitted,
                    registered: t.cfg.register.then_some(t.registered),
                })
                .collect(),
            calls_in_progress: self.calls.len(),
            running_campaigns: self.campaigns.keys().copied().collect(),
        }
    }

    fn begin_shutdown(&mut self, tx: oneshot::Sender<()>) {
        info!(calls = self.calls.len(), "dialer shutting down");
        for id in self.campaigns.keys().copied().collect::<Vec<_>>() {
            self.sched.remove_campaign(id);
        }
        self.campaigns.clear();
        for c in self.calls.values() {
            if let Some(h) = c.handle {
                self.driver.hangup(h);
            }
        }
        self.shutting_down = Some(tx);
    }

    fn reload(&self) {
        let store = self.store.clone();
        let tx = self.int_tx.clone();
        tokio::spawn(async move {
            match store.campaigns(&[CampaignState::Running]).await {
                Ok(c) => drop(tx.send(Internal::Campaigns(c))),
                Err(e) => warn!(error = %e, "loading campaigns"),
            }
        });
    }

    async fn start_registrations(&mut self) {
        for i in 0..self.trunks.len() {
            self.register_trunk(i).await;
        }
    }

    /// Indexes of the trunks in use (not removed).
    fn live_trunks(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.trunks.len()).filter(|i| !self.removed[*i])
    }

    fn find_trunk(&self, name: &str) -> Option<usize> {
        self.live_trunks()
            .find(|i| self.trunks[*i].cfg.name == name)
    }

    /// Adds or replaces a trunk at run time.
    async fn put_trunk(
        &mut self,
        cfg: TrunkConfig,
        addr: SocketAddr,
        mode: PutMode,
    ) -> Result<(), DialerError> {
        let name = cfg.name.clone();
        let now = Instant::now();
        let i = match (self.find_trunk(&name), mode) {
            (Some(_), PutMode::Create) => return Err(DialerError::TrunkExists(name)),
            (None, PutMode::Replace) => return Err(DialerError::NoTrunk(name)),
            (Some(i), _) => {
                // Calls in progress stay on it; the new limits apply to new attempts.
                self.forget_requests(i);
                self.trunks[i].reconfigure(cfg);
                self.addrs[i] = addr;
                i
            }
            (None, _) => {
                self.trunks.push(Trunk::new(cfg));
                self.addrs.push(addr);
                self.send_queues.push(VecDeque::new());
                self.pending.push(0);
                self.next_ping.push(now);
                self.removed.push(false);
                self.trunks.len() - 1
            }
        };
        self.next_ping[i] = now;
        self.sync_allowed_sources();
        trunk_gauges(&self.trunks[i].cfg);
        self.register_trunk(i).await;
        info!(trunk = %name, "trunk configured at run time");
        Ok(())
    }

    /// Removes a trunk at run time: no new attempts, its calls finish.
    fn remove_trunk(&mut self, name: &str) -> Result<(), DialerError> {
        let i = self
            .find_trunk(name)
            .ok_or_else(|| DialerError::NoTrunk(name.to_string()))?;
        self.removed[i] = true;
        self.forget_requests(i);
        self.sync_allowed_sources();
        metrics::gauge!("dialer_trunk_up", "trunk" => name.to_string()).set(0.0);
        info!(trunk = %name, calls = self.trunks[i].active, "trunk removed at run time");
        Ok(())
    }

    /// Tells the SIP endpoint which addresses may send new requests: the live trunks'
    /// proxies (strangers are dropped or refused, see `[sip] strangers`).
    fn sync_allowed_sources(&self) {
        let ips = self.live_trunks().map(|i| self.addrs[i].ip()).collect();
        self.driver.set_allowed_sources(Some(ips));
    }

    /// Stops a trunk's registration (REGISTER with expires 0) and listening to its pings
    /// (late replies are ignored).
    fn forget_requests(&mut self, i: usize) {
        self.pings.retain(|_, t| *t != i);
        let driver = &self.driver;
        self.regs.retain(|h, t| {
            if *t == i {
                driver.unregister(*h);
            }
            *t != i
        });
    }

    /// Starts the REGISTER of trunk `i` if its configuration asks for it.
    async fn register_trunk(&mut self, i: usize) {
        {
            let t = &self.trunks[i];
            if !t.cfg.register {
                return;
            }
            let domain = t
                .cfg
                .from_domain
                .clone()
                .unwrap_or_else(|| host_of(&t.cfg.proxy));
            let user = t
                .cfg
                .username
                .clone()
                .or_else(|| t.cfg.from_user.clone())
                .unwrap_or_else(|| "dialer".into());
            let params = RegisterParams {
                registrar: self.addrs[i],
                registrar_uri: format!("sip:{domain}"),
                aor: format!("sip:{user}@{domain}"),
                credentials: credentials(t),
                expires: 3600,
                transport: Some(transport(t)),
            };
            match self.driver.register(params).await {
                Ok(h) => {
                    self.regs.insert(h, i);
                }
                Err(e) => warn!(trunk = %t.cfg.name, error = %e, "REGISTER not started"),
            }
        }
    }

    async fn housekeeping(&mut self) {
        let now = Instant::now();
        // Calling windows.
        let utc = chrono::Utc::now();
        for (id, c) in &self.campaigns {
            let open = c.window.is_none_or(|w| w.is_open(utc));
            self.sched.set_open(*id, open);
        }
        // Refill queues from the store.
        let now_wall = now_ms();
        for (id, c) in self.campaigns.iter_mut() {
            let busy = self.refilling.get(id).copied().unwrap_or(false);
            let recent = c
                .last_refill
                .is_some_and(|t| now - t < Duration::from_millis(500));
            if busy || recent || self.sched.queued(*id) >= REFILL_BELOW {
                continue;
            }
            c.last_refill = Some(now);
            self.refilling.insert(*id, true);
            let (store, tx, id) = (self.store.clone(), self.int_tx.clone(), *id);
            let limit = self.sched.queued(id) as u32 + REFILL_BATCH + 64;
            tokio::spawn(async move {
                let due = store
                    .due_contacts(id, now_wall, limit)
                    .await
                    .unwrap_or_else(|e| {
                        warn!(campaign = id, error = %e, "due contacts");
                        vec![]
                    });
                let _ = tx.send(Internal::Due(id, due));
            });
        }
        // Completion: nothing queued, nothing in calls, then ask the store.
        for (id, c) in &self.campaigns {
            let in_calls = self.calls.values().any(|x| x.campaign == *id);
            if in_calls
                || self.sched.queued(*id) > 0
                || self.checking.get(id).copied().unwrap_or(false)
            {
                continue;
            }
            if c.exhausted_at
                .is_none_or(|t| now - t < Duration::from_millis(300))
            {
                continue;
            }
            self.checking.insert(*id, true);
            let (store, tx, id) = (self.store.clone(), self.int_tx.clone(), *id);
            tokio::spawn(async move {
                let done = match store.progress(id).await {
                    Ok(p) => p.pending == 0 && p.dialing == 0,
                    Err(_) => false,
                };
                let _ = tx.send(Internal::Progress(id, done));
            });
        }
        // OPTIONS pings.
        for i in 0..self.trunks.len() {
            let every = self.trunks[i].cfg.options_ping_interval_s;
            if self.removed[i] || every == 0 || now < self.next_ping[i] {
                continue;
            }
            self.next_ping[i] = now + Duration::from_secs(every);
            let (driver, dest, uri) = (
                self.driver.clone(),
                self.addrs[i],
                format!("sip:{}", host_of(&self.trunks[i].cfg.proxy)),
            );
            // The driver answers at once with the handle; the reply is a later SIP event.
            if let Ok(h) = driver.send_options(dest, uri).await {
                self.pings.insert(h, i);
            }
        }
        for i in self.live_trunks() {
            let t = &self.trunks[i];
            metrics::gauge!("dialer_trunk_up", "trunk" => t.cfg.name.clone())
                .set(if t.health.is_up() { 1.0 } else { 0.0 });
        }
        // Contacts of running campaigns by state, every two seconds.
        if now >= self.next_gauges {
            self.next_gauges = now + Duration::from_secs(2);
            let ids: Vec<i64> = self.campaigns.keys().copied().collect();
            let store = self.store.clone();
            tokio::spawn(async move {
                let (mut pending, mut dialing, mut done) = (0u64, 0u64, 0u64);
                for id in ids {
                    if let Ok(p) = store.progress(id).await {
                        pending += p.pending;
                        dialing += p.dialing;
                        done += p.done;
                    }
                }
                for (state, n) in [("pending", pending), ("dialing", dialing), ("done", done)] {
                    metrics::gauge!("dialer_campaign_contacts", "campaign_state" => state)
                        .set(n as f64);
                }
            });
        }
    }

    async fn on_internal(&mut self, i: Internal) {
        match i {
            Internal::Campaigns(list) => {
                let running: HashMap<i64, CampaignRecord> =
                    list.into_iter().map(|c| (c.id, c)).collect();
                for id in self.sched.campaigns() {
                    if !running.contains_key(&id) {
                        self.sched.remove_campaign(id);
                        self.campaigns.remove(&id);
                    }
                }
                if self.shutting_down.is_some() {
                    return;
                }
                for (id, rec) in running {
                    if self.campaigns.contains_key(&id) {
                        continue;
                    }
                    if let Err(e) = self.media.prepare(&rec.spec.prompt) {
                        warn!(campaign = id, error = %e, "prompt unusable; campaign not dialled");
                        continue;
                    }
                    let window = rec.spec.effective_window().ok().flatten();
                    self.sched
                        .add_campaign(id, &rec.spec.tenant, rec.spec.priority);
                    info!(campaign = id, name = %rec.spec.name, "campaign dialling");
                    self.campaigns.insert(
                        id,
                        CampRt {
                            rec,
                            window,
                            last_refill: None,
                            exhausted_at: None,
                        },
                    );
                }
                self.housekeeping().await;
            }
            Internal::Due(id, due) => {
                self.refilling.insert(id, false);
                let Some(c) = self.campaigns.get_mut(&id) else {
                    return;
                };
                let mut added = 0;
                for d in due {
                    if self.sched.push(DueItem {
                        campaign: id,
                        contact: d.contact,
                        number: d.number,
                        number_type: d.number_type,
                        attempts: d.attempts,
                        excluded: vec![],
                    }) {
                        added += 1;
                    }
                }
                if added == 0 && self.sched.queued(id) == 0 {
                    c.exhausted_at.get_or_insert(Instant::now());
                } else {
                    c.exhausted_at = None;
                }
            }
            Internal::Progress(id, done) => {
                self.checking.insert(id, false);
                if done && self.campaigns.contains_key(&id) {
                    let (store, tx) = (self.store.clone(), self.int_tx.clone());
                    tokio::spawn(async move {
                        match store
                            .set_campaign_state(id, CampaignState::Completed, now_ms())
                            .await
                        {
                            Ok(_) => drop(tx.send(Internal::Completed(id))),
                            Err(e) => warn!(campaign = id, error = %e, "completing campaign"),
                        }
                    });
                } else if let Some(c) = self.campaigns.get_mut(&id) {
                    c.exhausted_at = None;
                }
            }
            Internal::Completed(id) => {
                info!(campaign = id, "campaign completed");
                self.sched.remove_campaign(id);
                self.campaigns.remove(&id);
                self.done_tx.send_modify(|v| v.push(id));
            }
            Internal::Journaled(token, r) => {
                let Some(c) = self.calls.get_mut(&token) else {
                    return;
                };
                match r {
                    Ok(id) => {
                        c.attempt = Some(id);
                        self.send_queues[c.trunk].push_back(token);
                    }
                    Err(e) => {
                        warn!(error = %e, "journal write failed; attempt dropped");
                        let c = self.calls.remove(&token).expect("present");
                        self.pending[c.trunk] = self.pending[c.trunk].saturating_sub(1);
                        self.trunks[c.trunk].release(Instant::now(), Signal::Ok);
                        self.sched
                            .finish(c.campaign, c.item.contact, &c.item.number, false);
                    }
                }
            }
        }
    }

    /// Picks attempts while trunks have capacity, then sends journaled INVITEs that the
    /// limiters admit.
    async fn dispatch(&mut self) {
        let now = Instant::now();
        if self.shutting_down.is_none() {
            loop {
                let trunks = &mut self.trunks;
                let pending = &self.pending;
                let removed = &self.removed;
                let mut avail: Vec<bool> = Vec::with_capacity(trunks.len());
                for (i, t) in trunks.iter_mut().enumerate() {
                    // Picked-but-unsent attempts are bounded by ~200 ms of the trunk's rate.
                    let burst = ((t.cfg.cps / 5.0).ceil() as u32).max(1);
                    avail.push(!removed[i] && t.available(now) && pending[i] < burst);
                }
                let trunks = &self.trunks;
                let pick = self.sched.next(|it| {
                    let views: Vec<TrunkView<'_>> = trunks
                        .iter()
                        .enumerate()
                        .map(|(i, t)| TrunkView {
                            routes: &t.cfg.routes,
                            priority: t.cfg.priority,
                            weight: t.cfg.weight,
                            admitted: t.admitted + u64::from(pending[i]),
                            eligible: !removed[i] && !it.excluded.contains(&i),
                            available: avail[i],
                        })
                        .collect();
                    routing::route(&views, &it.number, it.number_type)
                });
                match pick {
                    Pick::Idle => break,
                    Pick::NoRoute(it) => {
                        warn!(
                            campaign = it.campaign,
                            "no trunk carries this number type/prefix"
                        );
                        spawn_logged(self.store.close_contact(
                            it.campaign,
                            it.contact,
                            Outcome::Failed,
                        ));
                        metrics::counter!("dialer_calls_completed_total", "trunk" => "none", "outcome" => "failed").increment(1);
                    }
                    Pick::Dial(it, t) => self.begin(it, t, now),
                }
            }
        }
        // Attempts waiting on a trunk that went down or was told to stay away (Retry-After)
        // go to another trunk instead of waiting.
        for t in 0..self.trunks.len() {
            if self.send_queues[t].is_empty() {
                continue;
            }
            if self.removed[t] || self.trunks[t].held(now) || !self.trunks[t].health.is_up() {
                for token in std::mem::take(&mut self.send_queues[t]) {
                    let end = CallEnd {
                        outcome: Outcome::Failed,
                        status: 0,
                        reason: "trunk unavailable before the INVITE left".into(),
                        hangup: crate::sip::endpoint::Hangup::None,
                        retry_after: None,
                    };
                    self.finish(token, end);
                }
            }
        }
        // Send what the limiters admit, each token stamped with the instant its INVITE
        // was with the kernel.
        for t in 0..self.trunks.len() {
            while let Some(&token) = self.send_queues[t].front() {
                let now = Instant::now();
                if !self.trunks[t].take_token(now) {
                    break;
                }
                self.send_queues[t].pop_front();
                self.pending[t] = self.pending[t].saturating_sub(1);
                self.send_invite(token, now).await;
                self.trunks[t].stamp_sent(Instant::now());
            }
        }
    }

    fn begin(&mut self, it: DueItem, t: usize, now: Instant) {
        let Some(camp) = self.campaigns.get(&it.campaign) else {
            self.sched
                .finish(it.campaign, it.contact, &it.number, false);
            return;
        };
        self.trunks[t].reserve_channel();
        self.pending[t] += 1;
        let token = self.next_token;
        self.next_token += 1;
        let call_id = format!("{:016x}{:08x}@dialer", rand::random::<u64>(), token as u32);
        let start = AttemptStart {
            campaign: it.campaign,
            contact: it.contact,
            number: it.number.clone(),
            call_id: call_id.clone(),
            trunk: self.trunks[t].cfg.name.clone(),
            started_ms: now_ms(),
        };
        let fut = self.store.begin_attempt(start);
        let tx = self.int_tx.clone();
        tokio::spawn(async move {
            let r = fut.await;
            let _ = tx.send(Internal::Journaled(token, r));
        });
        let _ = now;
        self.calls.insert(
            token,
            Call {
                campaign: it.campaign,
                policy: camp.rec.spec.retry,
                prompt: camp.rec.spec.prompt.clone(),
                play_count: camp.rec.spec.play_count,
                item: it,
                trunk: t,
                attempt: None,
                call_id,
                handle: None,
                port: None,
                invited_at: None,
                pdd: None,
                answered_at: None,
                played_permille: 0,
                digits: String::new(),
                media_on: false,
                ended: None,
                ended_at: None,
            },
        );
    }

    async fn send_invite(&mut self, token: u64, now: Instant) {
        let Some(c) = self.calls.get_mut(&token) else {
            return;
        };
        let t = &self.trunks[c.trunk];
        let Some(camp) = self.campaigns.get(&c.campaign) else {
            // Campaign paused or canceled while journaling: close the attempt unsent.
            let end = CallEnd {
                outcome: Outcome::Canceled,
                status: 0,
                reason: "campaign stopped before the INVITE".into(),
                hangup: crate::sip::endpoint::Hangup::None,
                retry_after: None,
            };
            self.finish(token, end);
            return;
        };
        let port = match self.media.bind() {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "no RTP port");
                let end = CallEnd {
                    outcome: Outcome::Failed,
                    status: 0,
                    reason: format!("no RTP port: {e}"),
                    hangup: crate::sip::endpoint::Hangup::None,
                    retry_after: None,
                };
                self.finish(token, end);
                return;
            }
        };
        let domain = t
            .cfg
            .from_domain
            .clone()
            .unwrap_or_else(|| host_of(&t.cfg.proxy));
        let caller = t
            .cfg
            .caller_id
            .clone()
            .or_else(|| camp.rec.spec.caller_id.clone())
            .or_else(|| t.cfg.from_user.clone())
            .unwrap_or_else(|| "anonymous".into());
        let mut offer = OfferParams::g711(
            rand::random::<u32>() as u64,
            self.media.local_ip(),
            M::port_number(&port),
        );
        offer.codecs = codecs(&t.cfg.codecs);
        offer.ptime_ms = t.cfg.ptime_ms;
        let ring = camp
            .rec
            .spec
            .ring_timeout_s
            .map(Duration::from_secs)
            .unwrap_or_else(|| t.ring_timeout());
        let params = CallParams {
            proxy: self.addrs[c.trunk],
            request_uri: format!("sip:{}@{domain}", c.item.number),
            to_uri: format!("sip:{}@{domain}", c.item.number),
            from_uri: format!("sip:{caller}@{domain}"),
            from_display: None,
            offer,
            ring_timeout: ring,
            credentials: credentials(t),
            transport: Some(transport(t)),
            extra_headers: vec![],
            trunk: Some(t.cfg.name.clone()),
        };
        c.port = Some(port);
        c.invited_at = Some(now);
        let name = t.cfg.name.clone();
        let call_id = c.call_id.clone();
        match self.driver.place_call_with_id(params, call_id).await {
            Ok(h) => {
                metrics::counter!("dialer_call_attempts_total", "trunk" => name.clone())
                    .increment(1);
                metrics::gauge!("dialer_calls_active", "trunk" => name, "state" => "ringing")
                    .increment(1.0);
                if let Some(c) = self.calls.get_mut(&token) {
                    c.handle = Some(h);
                }
                self.by_handle.insert(h, token);
            }
            Err(e) => {
                let end = CallEnd {
                    outcome: Outcome::Failed,
                    status: 0,
                    reason: format!("SIP driver: {e}"),
                    hangup: crate::sip::endpoint::Hangup::None,
                    retry_after: None,
                };
                self.finish(token, end);
            }
        }
    }

    async fn on_sip(&mut self, ev: Event) {
        let now = Instant::now();
        match ev {
            Event::Progress { call, .. } => {
                if let Some(c) = self
                    .by_handle
                    .get(&call)
                    .and_then(|t| self.calls.get_mut(t))
                {
                    if c.pdd.is_none() {
                        c.pdd = c.invited_at.map(|t| now - t);
                    }
                }
            }
            Event::Answered { call, media } => {
                let Some(&token) = self.by_handle.get(&call) else {
                    return;
                };
                let Some(c) = self.calls.get_mut(&token) else {
                    return;
                };
                c.answered_at = Some(now);
                if c.pdd.is_none() {
                    c.pdd = c.invited_at.map(|t| now - t);
                }
                let name = self.trunks[c.trunk].cfg.name.clone();
                metrics::gauge!("dialer_calls_active", "trunk" => name.clone(), "state" => "ringing").decrement(1.0);
                metrics::gauge!("dialer_calls_active", "trunk" => name, "state" => "answered")
                    .increment(1.0);
                if let Some(a) = c.attempt {
                    // Durable soon; ordered before the attempt's end by the store.
                    spawn_logged(self.store.attempt_answered(a, now_ms()));
                }
                let (prompt, plays) = (c.prompt.clone(), c.play_count);
                let latch = self.trunks[c.trunk].cfg.media_latch;
                if let Some(port) = c.port.take() {
                    match self.media.start(token, port, &media, &prompt, plays, latch) {
                        Ok(()) => c.media_on = true,
                        Err(e) => {
                            warn!(error = %e, "media did not start; hanging up");
                            self.driver.hangup(call);
                        }
                    }
                } else {
                    self.driver.hangup(call);
                }
            }
            Event::Info { call, body, .. } => {
                if let Some(c) = self
                    .by_handle
                    .get(&call)
                    .and_then(|t| self.calls.get_mut(t))
                {
                    let text = String::from_utf8_lossy(&body);
                    if let Some(d) = text
                        .lines()
                        .find_map(|l| l.trim().strip_prefix("Signal="))
                        .and_then(|s| s.trim().chars().next())
                    {
                        c.digits.push(d);
                    }
                }
            }
            Event::Ended { call, end } => {
                let Some(token) = self.by_handle.remove(&call) else {
                    return;
                };
                let media_on = self.calls.get(&token).is_some_and(|c| c.media_on);
                if media_on {
                    // Wait for the media's packet count, then finish.
                    if let Some(c) = self.calls.get_mut(&token) {
                        c.ended = Some(end);
                        c.ended_at = Some(now);
                    }
                    self.media.stop(token);
                } else {
                    self.finish(token, end);
                }
            }
            Event::OptionsReply { ping, status, .. } => {
                if let Some(t) = self.pings.remove(&ping) {
                    let ok = !matches!(status, 408 | 503) && status < 500;
                    self.trunks[t].on_ping(now, ok);
                }
            }
            Event::Registration { reg, state } => {
                debug!(?reg, ?state, "registration");
                if let Some(&t) = self.regs.get(&reg) {
                    match state {
                        RegistrationState::Registered { .. } => {
                            self.trunks[t].registered = true;
                            self.trunks[t].on_ping(now, true)
                        }
                        RegistrationState::Failed { .. } => {
                            self.trunks[t].registered = false;
                            self.trunks[t].on_ping(now, false)
                        }
                        RegistrationState::Unregistered => self.trunks[t].registered = false,
                    }
                }
            }
        }
    }

    fn on_media(&mut self, n: MediaNote) {
        match n {
            MediaNote::Finished { token, .. } => {
                if let Some(c) = self.calls.get_mut(&token) {
                    c.played_permille = 1000;
                    if let Some(h) = c.handle {
                        self.driver.hangup(h);
                    }
                }
            }
            MediaNote::Stopped {
                token,
                played_permille,
                ..
            } => {
                let end = match self.calls.get_mut(&token) {
                    Some(c) => {
                        c.played_permille = c.played_permille.max(played_permille);
                        c.media_on = false;
                        c.ended.take()
                    }
                    None => None,
                };
                if let Some(end) = end {
                    self.finish(token, end);
                }
            }
            MediaNote::Digit { token, digit } => {
                if let Some(c) = self.calls.get_mut(&token) {
                    c.digits.push(digit);
                }
            }
        }
    }

    /// Journals an attempt's end, frees its trunk channel and number, and decides what
    /// comes next for the contact.
    fn finish(&mut self, token: u64, end: CallEnd) {
        let Some(mut c) = self.calls.remove(&token) else {
            return;
        };
        if let Some(h) = c.handle {
            self.by_handle.remove(&h);
        }
        let now = Instant::now();
        let t = c.trunk;
        let name = self.trunks[t].cfg.name.clone();
        let sent = c.handle.is_some();
        if sent {
            let state = if c.answered_at.is_some() {
                "answered"
            } else {
                "ringing"
            };
            metrics::gauge!("dialer_calls_active", "trunk" => name.clone(), "state" => state)
                .decrement(1.0);
        } else {
            self.pending[t] = self.pending[t].saturating_sub(1);
            self.send_queues[t].retain(|x| *x != token);
        }
        let signal = match (sent, end.status) {
            (false, _) => Signal::Ok,
            (true, 503) => Signal::Overloaded(end.retry_after),
            (true, s) => Signal::from_status(s),
        };
        self.trunks[t].release(now, signal);
        metrics::counter!("dialer_calls_completed_total", "trunk" => name.clone(), "outcome" => end.outcome.as_str()).increment(1);
        if let Some(p) = c.pdd {
            metrics::histogram!("dialer_post_dial_delay_seconds", "trunk" => name.clone())
                .record(p.as_secs_f64());
        }
        let duration = c.answered_at.map(|a| c.ended_at.unwrap_or(now) - a);
        if let Some(d) = duration {
            metrics::histogram!("dialer_call_duration_seconds", "trunk" => name.clone())
                .record(d.as_secs_f64());
        }
        let Some(attempt) = c.attempt else {
            self.sched
                .finish(c.campaign, c.item.contact, &c.item.number, false);
            return;
        };
        let policy = c.policy;
        let outcome = end.outcome;
        // A carrier fault goes to another trunk without using up the citizen's retries.
        let mut failover = false;
        if outcome.is_carrier_fault() && self.campaigns.contains_key(&c.campaign) {
            let mut excluded = c.item.excluded.clone();
            excluded.push(t);
            let views: Vec<TrunkView<'_>> = self
                .trunks
                .iter()
                .enumerate()
                .map(|(i, tr)| TrunkView {
                    routes: &tr.cfg.routes,
                    priority: tr.cfg.priority,
                    weight: tr.cfg.weight,
                    admitted: tr.admitted,
                    eligible: !self.removed[i] && !excluded.contains(&i) && tr.health.is_up(),
                    available: true,
                })
                .collect();
            if routing::route(&views, &c.item.number, c.item.number_type) != Route::NoRoute {
                failover = true;
                c.item.excluded = excluded;
            }
        }
        // We stopped it ourselves (pause, cancel, shutdown) or it never left: the citizen
        // was not reached, so it does not count and stays due.
        let ours = outcome == Outcome::Canceled || !sent;
        let counted = !failover && !ours;
        let attempts = c.item.attempts + u32::from(counted);
        let now_wall = now_ms();
        let next = if failover || ours {
            ContactNext::RetryAt(now_wall)
        } else {
            match policy.decide(Some(outcome), attempts, now_wall) {
                Next::RetryAt(t) => ContactNext::RetryAt(t),
                Next::Done => ContactNext::Done,
            }
        };
        let played = c.answered_at.map(|_| i64::from(c.played_permille));
        let rec = AttemptEnd {
            attempt,
            outcome,
            sip_status: end.status,
            sip_reason: end.reason.clone(),
            counted,
            ended_ms: now_wall,
            pdd_ms: c.pdd.map(|d| d.as_millis() as i64),
            duration_ms: duration.map(|d| d.as_millis() as i64),
            played_permille: played,
            dtmf: (!c.digits.is_empty()).then(|| c.digits.clone()),
        };
        let fut = self.store.finish_attempt(rec, next);
        tokio::spawn(async move {
            if let Err(e) = fut.await {
                warn!(attempt, error = %e, "journaling an attempt's end");
            }
        });
        debug!(attempt, outcome = %outcome, status = end.status, trunk = %name, failover, "attempt ended");
        if failover {
            c.item.attempts = attempts;
            self.sched.requeue_front(c.item);
        } else {
            self.sched.finish(
                c.campaign,
                c.item.contact,
                &c.item.number,
                outcome == Outcome::Answered,
            );
        }
    }
}

/// Publishes a trunk's configured limits as gauges.
fn trunk_gauges(t: &TrunkConfig) {
    metrics::gauge!("dialer_trunk_cps_limit", "trunk" => t.name.clone()).set(t.cps);
    metrics::gauge!("dialer_trunk_channels_limit", "trunk" => t.name.clone())
        .set(f64::from(t.max_channels));
    metrics::gauge!("dialer_trunk_up", "trunk" => t.name.clone()).set(1.0);
}

/// Runs a queued store write to its end, logging a failure.
fn spawn_logged(f: impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static) {
    tokio::spawn(async move {
        if let Err(e) = f.await {
            warn!(error = %e, "journal write failed");
        }
    });
}

fn host_of(proxy: &str) -> String {
    proxy
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(proxy)
        .trim_matches(['[', ']'])
        .to_string()
}

fn credentials(t: &Trunk) -> Option<Credentials> {
    match (&t.cfg.username, &t.cfg.password) {
        (Some(u), Some(p)) => Some(Credentials::new(u.clone(), p.clone())),
        _ => None,
    }
}

fn transport(t: &Trunk) -> Transport {
    if t.cfg.transport.eq_ignore_ascii_case("tcp") {
        Transport::Tcp
    } else {
        Transport::Udp
    }
}

/// The codecs of a trunk's list, in its order (PCMA, PCMU by default).
fn codecs(names: &[String]) -> Vec<OfferCodec> {
    let mut out = vec![];
    for n in names {
        match n.to_ascii_uppercase().as_str() {
            "PCMU" => out.push(OfferCodec::pcmu()),
            "PCMA" => out.push(OfferCodec::pcma()),
            "G722" => out.push(OfferCodec::g722()),
            "OPUS" => out.push(OfferCodec::opus(111)),
            _ => {}
        }
    }
    if out.is_empty() {
        out = vec![OfferCodec::pcma(), OfferCodec::pcmu()];
    }
    out
}
