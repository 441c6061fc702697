//! `dialer serve`: the engine and the HTTP API in one process.
//!
//! [`Server::start`] opens the store, starts the media pump and the dialer, and binds the
//! API; [`Server::run_until_signal`] serves until SIGTERM/SIGINT and drains. Tests start a
//! server on `127.0.0.1:0` and talk to it over real HTTP.

pub mod audit_trail;
pub mod auth;
pub mod config;
pub mod config_numbers;
pub mod csv_safe;
pub mod drain;
pub mod idempotency;
pub mod limits;
pub mod listen;
pub mod openapi;
pub mod pagination;
pub mod problem;
pub mod router;
pub mod routes;
pub mod state;
pub mod webhook_guard;
pub mod webhook_subscriptions;
pub mod webhook_worker;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use engine::dialer::call_media::{PumpMedia, PumpMediaConfig};
use engine::dialer::Dialer;
use engine::net::dialer_driver::InboundSetup;
use engine::store::AnyStore;
use tokio::sync::watch;

pub use config::{ConfigError, ServeConfig};
pub(crate) use router::api_router;
pub use router::{metrics_router, router};
use state::{AppState, Inner};

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] engine::store::StoreError),
    /// The dialer did not start.
    #[error("dialer: {0}")]
    Dialer(#[from] engine::dialer::DialerError),
    /// Sockets.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

/// What this node tells the cluster about itself.
fn cluster_join(cfg: &ServeConfig, media_ip: IpAddr, http: SocketAddr) -> engine::store::NodeJoin {
    engine::store::NodeJoin {
        id: cfg.cluster.node_id(&cfg.sip.listen),
        sip_addr: cfg.sip.listen.clone(),
        media_ip: media_ip.to_string(),
        http_addr: http.to_string(),
        lease_ms: i64::try_from(cfg.cluster.lease_ms).unwrap_or(i64::MAX),
    }
}

/// A running server.
pub struct Server {
    /// Shared state (tests read it).
    pub state: AppState,
    /// The bound HTTP address.
    pub addr: SocketAddr,
    /// The admin token generated at first start, to print once (None when configured).
    pub generated_admin_token: Option<String>,
    /// The bound `/metrics` address when `http.metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    listener: Option<tokio::net::TcpListener>,
    metrics_listener: Option<tokio::net::TcpListener>,
}

/// The address for SDP offers.
async fn media_ip(cfg: &ServeConfig, dc: &engine::dialer::DialerConfig) -> IpAddr {
    if let Some(ip) = cfg.media.ip.as_deref().and_then(|s| s.parse().ok()) {
        return ip;
    }
    let sip: SocketAddr = cfg
        .sip
        .listen
        .parse()
        .unwrap_or_else(|_| ([127, 0, 0, 1], 0).into());
    if !sip.ip().is_unspecified() {
        return sip.ip();
    }
    if let Some(t) = dc.trunks.first() {
        if let Ok(mut addrs) = tokio::net::lookup_host(&t.proxy).await {
            if let Some(dest) = addrs.next() {
                if let Ok(s) = std::net::UdpSocket::bind(("0.0.0.0", 0)) {
                    if s.connect(dest).is_ok() {
                        if let Ok(a) = s.local_addr() {
                            return a.ip();
                        }
                    }
                }
            }
        }
    }
    IpAddr::from([127, 0, 0, 1])
}

/// Opens the configured store, first making the SQLite file's directory.
async fn open_store(cfg: &ServeConfig) -> Result<AnyStore, ServeError> {
    if let config::StoreUrl::Sqlite(db_path) = cfg.store_url()? {
        if let Some(dir) = db_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| ServeError::Io {
                what: format!("creating {}", dir.display()),
                source,
            })?;
        }
    }
    let store = AnyStore::open(&cfg.store.url).await?;
    tracing::info!(store = store.kind(), "store open");
    Ok(store)
}

/// Binds a TCP listener; `key` names the setting in the error.
async fn bind(addr: &str, key: &str) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Io {
            what: format!("binding {key} {addr}"),
            source,
        })
}

/// On PostgreSQL, joins the cluster (a node row with its fence) before the dialer starts;
/// SQLite is one node and joins nothing.
async fn join_cluster(
    store: &AnyStore,
    cfg: &ServeConfig,
    ip: IpAddr,
    http: SocketAddr,
) -> Result<Option<(engine::store::PgStore, engine::store::NodeJoin)>, ServeError> {
    match store {
        AnyStore::Postgres(pg) => {
            let join = cluster_join(cfg, ip, http);
            let fence = pg.join(&join).await?;
            tracing::info!(node = %join.id, fence, "joined the cluster");
            Ok(Some((pg.clone(), join)))
        }
        AnyStore::Sqlite(_) => Ok(None),
    }
}

/// Starts the node's heartbeat and trunk-following task.
fn cluster_node(
    cfg: &ServeConfig,
    pg: engine::store::PgStore,
    join: engine::store::NodeJoin,
    dialer: &Dialer<AnyStore>,
) -> state::ClusterNode {
    let mut settings = engine::cluster::ClusterSettings::new(join.id.clone());
    settings.beat = std::time::Duration::from_millis(cfg.cluster.beat_ms);
    settings.lease = std::time::Duration::from_millis(cfg.cluster.lease_ms);
    let id = join.id.clone();
    let task = engine::cluster::NodeTask::start(pg, dialer.clone(), settings, join);
    state::ClusterNode {
        id,
        trunks: task.trunks(),
        task: std::sync::Mutex::new(Some(task)),
    }
}

impl Server {
    /// Opens the store, starts media and dialer, binds HTTP. Must run inside tokio.
    pub async fn start(cfg: ServeConfig) -> Result<Server, ServeError> {
        let metrics = state::metrics_handle();
        let mut dc = cfg.dialer_config()?;
        let store = open_store(&cfg).await?;
        let (admin_hash, generated) = state::admin_hash(&store, cfg.admin_token.as_deref()).await?;
        let dids = config_numbers::parse(&cfg.numbers, &cfg.default_region, state::now_ms())?;
        config_numbers::apply(&store, dids).await?;
        let ip = media_ip(&cfg, &dc).await;
        let (media, notes) = PumpMedia::start(PumpMediaConfig {
            ip,
            port_min: cfg.media.rtp_port_min,
            port_max: cfg.media.rtp_port_max,
            prompt_cache: Some(routes::prompts::cache_dir(&cfg.prompt_dir())),
            ptimes: dc.trunks.iter().map(|t| t.ptime_ms).collect(),
        })
        .map_err(|source| ServeError::Io {
            what: "starting the media pump".into(),
            source,
        })?;
        let listener = bind(&cfg.http.listen, "http.listen").await?;
        let addr = listener.local_addr().map_err(|source| ServeError::Io {
            what: "http address".into(),
            source,
        })?;
        let joined = join_cluster(&store, &cfg, ip, addr).await?;
        if joined.is_some() {
            dc.clustered = true;
        }
        let (events, event_rx) = engine::webhook::EventSink::new(webhook_worker::QUEUE_CAPACITY);
        webhook_worker::start(store.clone(), event_rx, cfg.webhooks.policy());
        let inbound = InboundSetup {
            region: cfg.default_region.clone(),
            prompt_dir: Some(cfg.prompt_dir()),
            events: Some(events.clone()),
            ..InboundSetup::default()
        };
        let dialer = Dialer::start_with(dc, inbound, store.clone(), media, notes).await?;
        let cluster = joined.map(|(pg, join)| cluster_node(&cfg, pg, join, &dialer));
        let metrics_listener = match &cfg.http.metrics_listen {
            Some(a) => Some(bind(a, "http.metrics_listen").await?),
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let prompt_dir = cfg.prompt_dir();
        let state = Arc::new(Inner {
            cfg,
            store,
            dialer,
            metrics,
            admin_hash,
            prompt_dir,
            ready: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            drain_paused: Default::default(),
            cluster,
            events,
            counts: Default::default(),
        });
        tracing::info!(http = %addr, "dialer serve started");
        Ok(Server {
            state,
            addr,
            generated_admin_token: generated,
            metrics_addr,
            listener: Some(listener),
            metrics_listener,
        })
    }

    /// Serves until `stop` turns true, then drains the dialer (bounded by
    /// `drain_timeout_s`) while still answering HTTP (`/readyz` says 503), then closes the
    /// HTTP server. Returns whether the drain finished in time.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<bool, ServeError> {
        let listener = self.listener.take().ok_or_else(|| ServeError::Io {
            what: "server already running".into(),
            source: std::io::ErrorKind::Other.into(),
        })?;
        let app = router(self.state.clone());
        let http_cfg = &self.state.cfg.http;
        let conn_limits = listen::ConnLimits {
            max_connections: http_cfg.max_connections,
            header_timeout: std::time::Duration::from_secs(http_cfg.header_timeout_s),
        };
        let (http_stop_tx, http_stop_rx) = watch::channel(false);
        if let Some(l) = self.metrics_listener.take() {
            let app = metrics_router(self.state.clone())
                .layer(axum::middleware::from_fn(limits::security_headers));
            tokio::spawn(listen::serve(l, app, conn_limits, http_stop_rx.clone()));
        }
        let http = tokio::spawn(listen::serve(listener, app, conn_limits, http_stop_rx));
        let _ = stop.wait_for(|v| *v).await;
        let in_time = drain::drain(&self.state).await;
        self.state.ready.store(false, Ordering::SeqCst);
        let _ = http_stop_tx.send(true);
        if let Err(e) = http.await {
            tracing::error!(error = %e, "http task");
        }
        tracing::info!(in_time, "dialer serve stopped");
        Ok(in_time)
    }

    /// Serves until SIGTERM/SIGINT, then drains (see [`drain`]).
    pub async fn run_until_signal(self) -> Result<bool, ServeError> {
        let (tx, rx) = drain::trigger();
        let state = self.state.clone();
        tokio::spawn(async move {
            drain::first_signal(state).await;
            tracing::info!("signal received: draining");
            let _ = tx.send(true);
        });
        self.run(rx).await
    }
}
