//! The dialer driver: one task that owns the [`DialerCore`], the SIP endpoint with its
//! sockets ([`SipIo`]), the media path and the store. It feeds every input to the core with
//! the current instant and wall clock, executes the core's actions (store writes and reads
//! run as spawned futures whose results come back as [`StoreReply`]), and sleeps until the
//! core's or the endpoint's next deadline.
//!
//! The endpoint lives in this task rather than behind a SIP driver task of its own: a
//! response read from the socket reaches the core, and the request the core answers with
//! reaches the socket, in the same pass. With a task between them every message cost two
//! wake-ups and channel hand-offs, and every INVITE a round trip to learn it had left; at
//! thousands of calls a second those hops, not the SIP work, were most of the CPU.

mod reply;
mod store_work;

pub use reply::ReplySink;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use crate::dialer::call_media::{CallMedia, MediaNote};
use crate::dialer::core::inbound_io::InboundAction;
use crate::dialer::core::{
    Action, CallToken, Command, CoreConfig, DialerCore, DriverNote, Input, ReplyTo, StoreReply,
};
use crate::dialer::trunk::TrunkConfig;
use crate::dialer::trunk_keys::TrunkTransport;
use crate::dialer::SipSettings;
use crate::id_map::IdMap;
use crate::net::inbound_driver::InboundExec;
use crate::net::{DriverOptions, SipIo, TlsSetup};
use crate::sip::endpoint::{CallHandle, EndpointConfig, SourcePolicy};
use crate::store::sqlite::now_ms;
use crate::store::Store;

/// A command for the driver, with where its reply goes (none for fire-and-forget ones).
pub type CommandMsg = (Command, Option<ReplySink>);

/// What the facade keeps of a running driver.
pub struct DriverHandles {
    /// Commands to the core.
    pub commands: mpsc::UnboundedSender<CommandMsg>,
    /// Ids of the campaigns completed since start.
    pub completed: watch::Receiver<Vec<i64>>,
}

/// How inbound calls are handled: the region their numbers are read in, the voice of
/// the synthesiser, where a staff member's kept takes are written.
#[derive(Debug, Clone)]
pub struct InboundSetup {
    /// Region for national numbers.
    pub region: String,
    /// espeak-ng voice.
    pub voice: String,
    /// The API's prompt directory (takes kept by the staff line go there).
    pub prompt_dir: Option<std::path::PathBuf>,
    /// Where webhook events go (calls ended, campaigns completed); None: not emitted.
    pub events: Option<crate::webhook::EventSink>,
}

impl Default for InboundSetup {
    fn default() -> Self {
        InboundSetup {
            region: "IT".into(),
            voice: "it".into(),
            prompt_dir: None,
            events: None,
        }
    }
}

/// Starts the SIP driver on `bind` and the dialer task with these trunks (proxies
/// resolved), inbound calls handled with the defaults.
pub async fn start<S: Store, M: CallMedia>(
    bind: SocketAddr,
    settings: &SipSettings,
    trunks: Vec<(TrunkConfig, SocketAddr)>,
    store: S,
    (media, notes): (Arc<M>, mpsc::UnboundedReceiver<MediaNote>),
    clustered: bool,
) -> io::Result<DriverHandles> {
    let setup = InboundSetup::default();
    start_with_inbound(
        bind,
        settings,
        &setup,
        trunks,
        store,
        (media, notes),
        clustered,
    )
    .await
}

/// [`start`] with the inbound side's settings.
pub async fn start_with_inbound<S: Store, M: CallMedia>(
    bind: SocketAddr,
    settings: &SipSettings,
    inbound: &InboundSetup,
    trunks: Vec<(TrunkConfig, SocketAddr)>,
    store: S,
    (media, notes): (Arc<M>, mpsc::UnboundedReceiver<MediaNote>),
    clustered: bool,
) -> io::Result<DriverHandles> {
    let ep = endpoint_config(bind, settings, &trunks);
    let tls = tls_setup(settings, &trunks)?;
    let opts = DriverOptions {
        limits: settings.tcp_limits(),
        tls,
        tls_listen: settings.tls_listen,
    };
    for (c, addr) in &trunks {
        expect_tls_name(opts.tls.as_deref(), c, *addr)?;
    }
    let trunk_count = trunks.len();
    let cfg = CoreConfig {
        media_ip: media.local_ip(),
        seed: rand::random(),
    };
    let mut core = DialerCore::new(cfg, trunks, Instant::now());
    if clustered {
        core.hold_for_shares();
    }
    core.set_inbound(crate::dialer::core::InboundConfig {
        region: inbound.region.clone(),
        ..Default::default()
    });
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (store_tx, store_rx) = mpsc::unbounded_channel();
    let (done_tx, done_rx) = watch::channel(vec![]);
    let exec = InboundExec::new(
        store.clone(),
        store_tx.clone(),
        &inbound.voice,
        inbound.prompt_dir.clone(),
    )
    .with_events(inbound.events.clone());
    exec.warm_up(&media);
    let parts = Parts {
        core,
        inbound: exec,
        media,
        store,
        store_tx,
        done_tx,
        events: inbound.events.clone(),
        bg: tokio::runtime::Handle::current(),
    };
    let (bound_tx, bound_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("dialer-signalling".into())
        .spawn(move || {
            signalling_thread(bind, ep, opts, parts, bound_tx, (cmd_rx, store_rx, notes))
        })?;
    let local = bound_rx
        .await
        .map_err(|_| io::Error::other("the signalling thread ended before binding"))??;
    info!(sip = %local, trunks = trunk_count, "dialer started");
    Ok(DriverHandles {
        commands: cmd_tx,
        completed: done_rx,
    })
}

/// What the driver owns besides the SIP side, made on the caller's runtime.
struct Parts<S: Store, M: CallMedia> {
    core: DialerCore,
    inbound: InboundExec<S>,
    media: Arc<M>,
    store: S,
    store_tx: mpsc::UnboundedSender<StoreReply>,
    done_tx: watch::Sender<Vec<i64>>,
    events: Option<crate::webhook::EventSink>,
    bg: tokio::runtime::Handle,
}

/// The inputs of the driver's loop other than the SIP side.
type Inputs = (
    mpsc::UnboundedReceiver<CommandMsg>,
    mpsc::UnboundedReceiver<StoreReply>,
    mpsc::UnboundedReceiver<MediaNote>,
);

/// The signalling thread: a runtime of its own, on one thread, where the SIP socket is
/// registered and the driver runs — the one loop every call's messages go through, as a
/// SIP load generator's single thread. On a shared multi-thread runtime each wake-up of
/// the loop also woke a second thread to look for work it did not have (about a fifth of
/// the CPU per call, measured with `dialer call` at 2,000 calls per second). Store work
/// and webhooks run on the caller's runtime (`Parts::bg`). Sends the bound SIP address
/// (or why binding failed) on `bound`; after the core stops, lingers while the endpoint
/// finishes its calls.
fn signalling_thread<S: Store, M: CallMedia>(
    bind: SocketAddr,
    ep: EndpointConfig,
    opts: DriverOptions,
    parts: Parts<S, M>,
    bound: oneshot::Sender<io::Result<SocketAddr>>,
    (cmds, store_rx, notes): Inputs,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = bound.send(Err(e));
            return;
        }
    };
    rt.block_on(async move {
        let sip = match SipIo::bind(bind, ep, opts).await {
            Ok(sip) => sip,
            Err(e) => {
                let _ = bound.send(Err(e));
                return;
            }
        };
        let _ = bound.send(Ok(sip.local_addr()));
        let Parts {
            core,
            inbound,
            media,
            store,
            store_tx,
            done_tx,
            events,
            bg,
        } = parts;
        let driver = Driver {
            core,
            inbound,
            sip,
            media,
            store,
            ports: IdMap::default(),
            replies: IdMap::default(),
            next_reply: 1,
            store_tx,
            done_tx,
            events,
            bg,
        };
        let sip = driver.run(cmds, store_rx, notes).await;
        sip.linger(LINGER).await;
    });
}

/// The endpoint's settings: inbound INVITEs reach the core, and only the trunks' proxies
/// (and their `inbound_from` blocks) may send new requests.
fn endpoint_config(
    bind: SocketAddr,
    settings: &SipSettings,
    trunks: &[(TrunkConfig, SocketAddr)],
) -> EndpointConfig {
    let mut ep = EndpointConfig::new(bind);
    ep.user_agent = settings.user_agent.clone();
    // Inbound INVITEs reach the core (admission, menus) instead of a flat 480.
    ep.inbound_calls = true;
    ep.sources = SourcePolicy {
        // Only the trunks' proxies (and their `inbound_from` blocks) may send new requests.
        allowed: Some(
            trunks
                .iter()
                .flat_map(|(c, a)| {
                    std::iter::once(a.ip().into()).chain(c.inbound_from.iter().copied())
                })
                .collect(),
        ),
        strangers: settings.strangers,
        options_from_strangers: settings.options_from_strangers,
    };
    ep
}

/// The TLS client and server settings, or `None` when they cannot be built and nothing
/// configured needs them.
fn tls_setup(
    settings: &SipSettings,
    trunks: &[(TrunkConfig, SocketAddr)],
) -> io::Result<Option<Arc<TlsSetup>>> {
    // TLS is set up whenever it can be, so that a TLS trunk added later through the API
    // works; it is an error only when a configured trunk or the listener needs it.
    let needed = settings.tls_listen.is_some()
        || trunks
            .iter()
            .any(|(c, _)| c.transport == TrunkTransport::Tls);
    match TlsSetup::new(&settings.tls_files(), settings.tls_listen.is_some()) {
        Ok(setup) => Ok(Some(Arc::new(setup))),
        Err(e) if needed => Err(io::Error::new(io::ErrorKind::InvalidInput, e.to_string())),
        Err(e) => {
            warn!(error = %e, "SIP over TLS unavailable");
            Ok(None)
        }
    }
}

/// Tells the SIP driver which name a TLS trunk's certificate must carry: the host of its
/// `proxy` (an IP address is checked as such).
fn expect_tls_name(
    tls: Option<&TlsSetup>,
    trunk: &TrunkConfig,
    addr: SocketAddr,
) -> io::Result<()> {
    if trunk.transport != TrunkTransport::Tls {
        return Ok(());
    }
    let host = crate::dialer::core::invite::host_of(&trunk.proxy);
    let Some(tls) = tls else {
        return Ok(());
    };
    tls.expect_name(addr, &host).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("trunk {}: {e}", trunk.name),
        )
    })
}

struct Driver<S: Store, M: CallMedia> {
    core: DialerCore,
    /// Executes the inbound calls' actions.
    inbound: InboundExec<S>,
    sip: SipIo,
    media: Arc<M>,
    store: S,
    /// RTP ports reserved for INVITEs, until media starts or the call ends.
    ports: IdMap<CallToken, M::Port>,
    replies: IdMap<ReplyTo, ReplySink>,
    next_reply: u64,
    store_tx: mpsc::UnboundedSender<StoreReply>,
    done_tx: watch::Sender<Vec<i64>>,
    /// Webhook events (never waits: a full queue drops).
    events: Option<crate::webhook::EventSink>,
    /// The caller's runtime, where store work runs (off the signalling thread).
    bg: tokio::runtime::Handle,
}

/// The INVITEs of one pass, on the stack: a burst (up to 50) grown on the heap reached glibc's
/// large bins, and each such growth consolidated its fast bins (1.2 % of `perf`'s samples).
type Placed = smallvec::SmallVec<[(CallToken, CallHandle); 64]>;

/// Queued inputs of one kind taken in a single pass (the first included), so a burst of
/// media or store notes costs one pass of the loop rather than one each.
const INPUTS_PER_PASS: usize = 64;

/// How long the endpoint is kept running after the core stopped, for the BYEs and CANCELs
/// it sent to be answered (their transactions end within Timer F, 32 s).
const LINGER: std::time::Duration = std::time::Duration::from_secs(32);

impl<S: Store, M: CallMedia> Driver<S, M> {
    async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<CommandMsg>,
        mut store_rx: mpsc::UnboundedReceiver<StoreReply>,
        mut media: mpsc::UnboundedReceiver<MediaNote>,
    ) -> SipIo {
        let mut cmds_open = true;
        // One timer for the loop's life, moved only when the next deadline moves (a fresh
        // one each pass cost 4 % of the thread's instructions in the runtime's timer wheel).
        let far = || tokio::time::Instant::now() + std::time::Duration::from_secs(86_400);
        let sleep = tokio::time::sleep_until(far());
        tokio::pin!(sleep);
        let mut armed = None;
        loop {
            self.settle().await;
            if self.core.is_stopped() {
                return self.sip;
            }
            let deadline = match (self.core.poll_timeout(), self.sip.ep().poll_timeout()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
            .map(tokio::time::Instant::from_std);
            if deadline != armed {
                sleep.as_mut().reset(deadline.unwrap_or_else(far));
                armed = deadline;
            }
            tokio::select! {
                w = self.sip.wake() => self.sip.handle(w),
                Some(n) = media.recv() => {
                    let more = queued(&mut media);
                    self.core.handle_all(Instant::now(), now_ms(), std::iter::once(n).chain(more).map(Input::Media));
                }
                Some(r) = store_rx.recv() => {
                    let more = queued(&mut store_rx);
                    self.core.handle_all(Instant::now(), now_ms(), std::iter::once(r).chain(more).map(Input::Store));
                }
                c = cmds.recv(), if cmds_open => match c {
                    Some(first) => {
                        // Every queued command in one pass of the core.
                        let all: Vec<Input> = std::iter::once(first)
                            .chain(queued(&mut cmds))
                            .map(|(cmd, reply)| self.command_input(cmd, reply))
                            .collect();
                        self.core.handle_all(Instant::now(), now_ms(), all);
                    }
                    None => {
                        // Every Dialer handle is gone: stop as if asked to.
                        cmds_open = false;
                        let stop = self.command_input(Command::Shutdown, None);
                        self.core.handle_all(Instant::now(), now_ms(), [stop]);
                    }
                },
                () = &mut sleep, if armed.is_some() => {
                    // Fired: the next pass sets the timer again, to the same instant too.
                    armed = None;
                    let now = Instant::now();
                    self.sip.handle_timeout(now);
                    if self.core.poll_timeout().is_some_and(|d| d <= now) {
                        self.core.handle_timeout(now, now_ms());
                    }
                }
            }
        }
    }

    /// Runs the core and the endpoint against each other until neither has anything left
    /// to do now: the core's actions executed, the endpoint's events given to the core.
    /// What the endpoint sends goes out in one batch at the end (a 2xx's ACK and the BYE
    /// answering it share a `sendmmsg`), earlier only after INVITEs were placed: the core
    /// keeps its CPS window on the instant they reached the kernel.
    async fn settle(&mut self) {
        loop {
            let mut placed = Placed::new();
            // One reading of the clock for the pass's actions, handed over at once.
            let now = Instant::now();
            while let Some(a) = self.core.poll_action() {
                self.execute(now, a, &mut placed);
            }
            if !placed.is_empty() {
                self.sip.flush().await;
            }
            let now = Instant::now();
            if placed.is_empty() && !self.sip.ep().has_event() {
                self.sip.flush().await;
                return;
            }
            // The INVITEs placed and every event the endpoint has now, in one core pass.
            let notes = placed
                .into_iter()
                .map(|(c, h)| Input::Driver(DriverNote::Placed(c, h)));
            let ep = self.sip.ep();
            let events = std::iter::from_fn(|| ep.poll_event().map(Input::Sip));
            self.core.handle_all(now, now_ms(), notes.chain(events));
        }
    }

    /// A command as the core's input, its reply's sink filed under the id the core answers to.
    fn command_input(&mut self, cmd: Command, reply: Option<ReplySink>) -> Input {
        if let Command::PutTrunk { cfg, addr, .. } = &cmd {
            if let Err(e) = expect_tls_name(self.sip.tls_setup().map(|t| &**t), cfg, *addr) {
                warn!(trunk = %cfg.name, error = %e, "TLS trunk's name not usable");
            }
        }
        let to = ReplyTo(self.next_reply);
        self.next_reply += 1;
        if let Some(tx) = reply {
            self.replies.insert(to, tx);
        }
        Input::Command(to, cmd)
    }

    fn note(&mut self, n: DriverNote) {
        self.core.handle_driver(Instant::now(), now_ms(), n);
    }

    /// Executes one of the core's actions; an INVITE placed goes in `placed`, for the core.
    fn execute(&mut self, now: Instant, a: Action, placed: &mut Placed) {
        match a {
            Action::Invite {
                call,
                call_id,
                mut params,
            } => {
                let port = match self.media.bind() {
                    Ok(p) => p,
                    Err(e) => {
                        warn!(error = %e, "no RTP port");
                        self.note(DriverNote::PlaceFailed(call, format!("no RTP port: {e}")));
                        return;
                    }
                };
                params.offer.rtp_port = M::port_number(&port);
                params.offer.inactive = !self.media.offers_media();
                self.ports.insert(call, port);
                let h = self.sip.ep().place_call_with_id(now, *params, call_id);
                placed.push((call, h));
            }
            Action::Ping { trunk, dest, uri } => {
                // The handle now; the reply is a later event.
                let h = self.sip.ep().send_options(now, dest, &uri);
                self.note(DriverNote::PingSent(trunk, h));
            }
            Action::Inbound(InboundAction::Accept {
                token,
                call,
                answer,
            }) => {
                let r = self.inbound.accept(
                    self.sip.ep(),
                    &self.media,
                    &mut self.ports,
                    token,
                    call,
                    answer,
                );
                if let Err(n) = r {
                    self.note(DriverNote::Inbound(n));
                }
            }
            Action::Register(t, params) => {
                let h = self.sip.ep().register(now, *params);
                self.note(DriverNote::RegisterStarted(t, h));
            }
            other => self.execute_rest(now, other),
        }
    }

    /// The other actions: SIP and media commands, replies, spawned store work.
    fn execute_rest(&mut self, now: Instant, a: Action) {
        match a {
            Action::Hangup(h) => self.sip.ep().hangup(now, h),
            Action::Unregister(h) => self.sip.ep().unregister(now, h),
            Action::AllowSources(ips) => self.sip.ep().set_allowed_sources(Some(ips)),
            Action::StartMedia {
                call,
                media,
                prompt,
                play_count,
                latch,
            } => {
                let r = match self.ports.remove(&call) {
                    Some(port) => self
                        .media
                        .start(call.0, port, &media, &prompt, play_count, latch)
                        .map_err(|e| e.to_string()),
                    None => Err("no RTP port reserved".to_string()),
                };
                if let Err(e) = r {
                    self.note(DriverNote::MediaFailed(call, e));
                }
            }
            Action::StartScreening {
                call,
                media,
                latch,
                amd,
            } => {
                let r = match self.ports.remove(&call) {
                    Some(port) => self
                        .media
                        .start_idle(call.0, port, &media, latch)
                        .and_then(|()| self.media.analyse(call.0, *amd))
                        .map_err(|e| e.to_string()),
                    None => Err("no RTP port reserved".to_string()),
                };
                if let Err(e) = r {
                    self.media.stop(call.0);
                    self.note(DriverNote::MediaFailed(call, e));
                }
            }
            Action::StopMedia(call) => self.media.stop(call.0),
            Action::Play { call, items, id } => {
                // A playlist the media path cannot play (a prompt not loaded, media gone)
                // ends the call rather than leave the callee in silence.
                if let Err(e) = self.media.play(call.0, items, id) {
                    self.media.stop(call.0);
                    self.note(DriverNote::MediaFailed(call, e.to_string()));
                }
            }
            Action::ReleasePort(call) => drop(self.ports.remove(&call)),
            Action::Reply(to, r) => {
                if let Some(tx) = self.replies.remove(&to) {
                    tx.send(r);
                }
            }
            Action::CampaignDone(c) => self.done_tx.send_modify(|v| v.push(c.0)),
            Action::Inbound(a) => {
                let r = self
                    .inbound
                    .execute(a, self.sip.ep(), &self.media, &mut self.ports);
                if let Err(n) = r {
                    self.note(DriverNote::Inbound(n));
                }
            }
            store_work => self.spawn_store(store_work),
        }
    }
}

/// The inputs already queued on `rx` after the one just received, up to
/// [`INPUTS_PER_PASS`] in all, without waiting.
fn queued<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> impl Iterator<Item = T> + '_ {
    std::iter::from_fn(|| rx.try_recv().ok()).take(INPUTS_PER_PASS - 1)
}
