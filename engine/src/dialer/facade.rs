//! [`Dialer`]: the async service the HTTP API (`dialer serve`) and the CLI (`dialer
//! campaign run`) drive. Campaign changes go to the store and the core reloads; trunk
//! changes, snapshots and shutdown are commands to the core through the driver.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::call_media::{CallMedia, MediaNote};
use super::campaign::{CampaignSpec, CampaignState};
use super::config::DialerConfig;
use super::core::{
    CallReport, Command, DialerError, DialerSnapshot, DirectCall, NodeLoad, PutMode, Reply,
    ShareUpdate,
};
use super::recovery::recover;
use super::retry::RetryPolicy;
use super::trunk::TrunkConfig;
use crate::net::dialer_driver::InboundSetup;
use crate::net::dialer_driver::{self, CommandMsg, ReplySink};
use crate::store::sqlite::now_ms;
use crate::store::{CampaignRecord, Store};

/// The dialer service: create and steer campaigns, watch progress. Cheap to clone.
#[derive(Clone)]
pub struct Dialer<S: Store> {
    store: S,
    cmd: mpsc::UnboundedSender<CommandMsg>,
    completed: watch::Receiver<Vec<i64>>,
    default_retry: RetryPolicy,
    /// The configuration's `[[prefix_limit]]` tables (the store's are read at each change).
    config_limits: Arc<Vec<super::prefix_limit::PrefixLimit>>,
}

/// The first address `proxy` resolves to.
async fn resolve(proxy: &str) -> Result<SocketAddr, String> {
    tokio::net::lookup_host(proxy)
        .await
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "no address".to_string())
}

impl<S: Store> Dialer<S> {
    /// Recovers what a previous run left open (see [`super::recovery`]), starts the SIP
    /// driver and the dialer core, and resumes running campaigns.
    pub async fn start<M: CallMedia>(
        cfg: DialerConfig,
        store: S,
        media: Arc<M>,
        media_notes: mpsc::UnboundedReceiver<MediaNote>,
    ) -> Result<Dialer<S>, DialerError> {
        let setup = InboundSetup {
            region: cfg.default_region.clone(),
            ..InboundSetup::default()
        };
        Self::start_with(cfg, setup, store, media, media_notes).await
    }

    /// [`Dialer::start`] with the inbound side's settings (prompt directory, voice).
    pub async fn start_with<M: CallMedia>(
        cfg: DialerConfig,
        inbound: InboundSetup,
        store: S,
        media: Arc<M>,
        media_notes: mpsc::UnboundedReceiver<MediaNote>,
    ) -> Result<Dialer<S>, DialerError> {
        let bind: SocketAddr = cfg
            .sip_bind
            .parse()
            .map_err(|e| DialerError::Config(format!("sip_bind {}: {e}", cfg.sip_bind)))?;
        let mut trunks = vec![];
        for t in &cfg.trunks {
            let addr = resolve(&t.proxy).await.map_err(|e| {
                DialerError::Config(format!("trunk {} proxy {}: {e}", t.name, t.proxy))
            })?;
            trunks.push((t.clone(), addr));
        }
        recover(&store, now_ms()).await?;
        let h = dialer_driver::start_with_inbound(
            bind,
            &cfg.sip,
            &inbound,
            trunks,
            store.clone(),
            (media, media_notes),
            cfg.clustered,
        )
        .await?;
        let d = Dialer {
            store,
            cmd: h.commands,
            completed: h.completed,
            default_retry: cfg.retry,
            config_limits: Arc::new(cfg.prefix_limits),
        };
        d.apply_prefix_limits().await?;
        Ok(d)
    }

    /// Applies the prefix limits now in force to the running dialer: the configuration's
    /// and the store's (those set through the API, which replace a configuration limit of
    /// the same scope and prefix). Call it after changing the store's.
    pub async fn apply_prefix_limits(&self) -> Result<(), DialerError> {
        let stored = self.store.prefix_limits().await?;
        let limits = super::prefix_limit::merge(&self.config_limits, stored);
        match self.ask(Command::PrefixLimits(limits)).await? {
            Reply::Done(r) => r,
            _ => Err(DialerError::Stopped),
        }
    }

    /// The store (for reads: progress, attempts, campaigns).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The retry policy of the configuration (for campaigns created without one).
    pub fn default_retry(&self) -> RetryPolicy {
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
            .send((Command::Reload, None))
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
        let addr = resolve(&cfg.proxy)
            .await
            .map_err(|reason| DialerError::TrunkProxy {
                name: cfg.name.clone(),
                proxy: cfg.proxy.clone(),
                reason,
            })?;
        let cfg = Box::new(cfg);
        match self.ask(Command::PutTrunk { cfg, addr, mode }).await? {
            Reply::Done(r) => r,
            _ => Err(DialerError::Stopped),
        }
    }

    /// Removes a trunk: it takes no new attempts (attempts queued on it but not yet sent
    /// go to another trunk), its calls in progress finish, its pings stop. Fails with
    /// [`DialerError::NoTrunk`] if there is no such trunk.
    pub async fn remove_trunk(&self, name: &str) -> Result<(), DialerError> {
        match self.ask(Command::RemoveTrunk(name.to_string())).await? {
            Reply::Done(r) => r,
            _ => Err(DialerError::Stopped),
        }
    }

    /// The configurations of the trunks in use now (as added, replaced or started with).
    pub async fn trunk_configs(&self) -> Result<Vec<TrunkConfig>, DialerError> {
        match self.ask(Command::Trunks).await? {
            Reply::Trunks(t) => Ok(t),
            _ => Err(DialerError::Stopped),
        }
    }

    /// Trunks and calls now.
    pub async fn snapshot(&self) -> Result<DialerSnapshot, DialerError> {
        match self.ask(Command::Snapshot).await? {
            Reply::Snapshot(s) => Ok(s),
            _ => Err(DialerError::Stopped),
        }
    }

    /// Has the core re-read the running campaigns (a state changed on another node).
    pub fn reload(&self) {
        let _ = self.cmd.send((Command::Reload, None));
    }

    /// Applies this node's trunk shares (a cluster beat) and returns its load for the
    /// next one.
    pub async fn shares(&self, shares: Vec<ShareUpdate>) -> Result<NodeLoad, DialerError> {
        match self.ask(Command::Shares(shares)).await? {
            Reply::Load(l) => Ok(l),
            _ => Err(DialerError::Stopped),
        }
    }

    /// Calls a number and waits until the callee keys `req.code` (or the call ends): the
    /// web form's proof that a number is the resident's. Goes before campaigns on the
    /// trunks, within their channels and CPS.
    pub async fn verify(
        &self,
        req: crate::dialer::core::VerifyRequest,
    ) -> Result<crate::dialer::core::VerifyOutcome, DialerError> {
        match self.ask(Command::Verify(Box::new(req))).await? {
            Reply::Verified(o) => Ok(o),
            _ => Err(DialerError::Stopped),
        }
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

    /// Places these calls outside any campaign, each on the trunk named in its request (its
    /// CPS, channel and pick-ahead limits apply, as to campaign calls), all at once; their
    /// reports arrive on the returned stream as the calls end, in the order they end.
    pub fn calls(&self, reqs: impl IntoIterator<Item = DirectCall>) -> CallReports {
        let (tx, rx) = mpsc::unbounded_channel();
        for req in reqs {
            let sink = ReplySink::Stream(tx.clone());
            if self
                .cmd
                .send((Command::Call(Box::new(req)), Some(sink)))
                .is_err()
            {
                break;
            }
        }
        CallReports(rx)
    }

    /// Stops dialling, hangs up calls in progress, journals their ends and stops.
    pub async fn shutdown(&self) -> Result<(), DialerError> {
        self.ask(Command::Shutdown).await.map(drop)
    }

    async fn ask(&self, cmd: Command) -> Result<Reply, DialerError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send((cmd, Some(ReplySink::Once(tx))))
            .map_err(|_| DialerError::Stopped)?;
        rx.await.map_err(|_| DialerError::Stopped)
    }
}

/// The reports of calls placed with [`Dialer::calls`], as they end.
#[derive(Debug)]
pub struct CallReports(mpsc::UnboundedReceiver<Reply>);

impl CallReports {
    /// A report already waiting, without waiting: `Ok(None)` when there is none yet,
    /// [`DialerError::Stopped`] when none will come any more (every call reported, or the
    /// dialer stopped). Polling this on a timer spares the signalling thread a cross-thread
    /// wake-up per call.
    pub fn try_next(&mut self) -> Result<Option<CallReport>, DialerError> {
        loop {
            match self.0.try_recv() {
                Ok(Reply::Called(r)) => return Ok(Some(*r)),
                // No other reply is sent on a calls stream.
                Ok(_) => continue,
                Err(mpsc::error::TryRecvError::Empty) => return Ok(None),
                Err(mpsc::error::TryRecvError::Disconnected) => return Err(DialerError::Stopped),
            }
        }
    }
}
