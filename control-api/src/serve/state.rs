//! Shared state of `dialer serve`: the engine's store and dialer, the API's own tables,
//! the Prometheus handle and the readiness flags.
//!
//! Every read and write of the API's data (tenants with token hashes, prompt metadata,
//! street lists, idempotency keys) and of the engine's goes through the engine's
//! [`Store`]: the API holds no SQL of its own.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use engine::dialer::Dialer;
use engine::store::{AnyStore, Store, StoreError};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sha2::{Digest, Sha256};

use super::config::ServeConfig;

/// Shared, cheap to clone.
pub type AppState = Arc<Inner>;

/// What every handler can reach.
pub struct Inner {
    /// The configuration in force.
    pub cfg: ServeConfig,
    /// The engine's store (journal, campaigns, contacts).
    pub store: AnyStore,
    /// The dialer service.
    pub dialer: Dialer<AnyStore>,
    /// Prometheus renderer.
    pub metrics: PrometheusHandle,
    /// SHA-256 (hex) of the admin token.
    pub admin_hash: String,
    /// Where prompt files live.
    pub prompt_dir: PathBuf,
    /// Set once everything started; cleared when draining.
    pub ready: AtomicBool,
    /// Set on the first SIGTERM/SIGINT.
    pub draining: AtomicBool,
    /// Campaigns the drain paused, to put back to `running` before exiting.
    pub drain_paused: std::sync::Mutex<Vec<i64>>,
    /// This node of a cluster (PostgreSQL store); None with SQLite.
    pub cluster: Option<ClusterNode>,
    /// Webhook events of the API's own acts (campaign states, web registrations).
    pub events: engine::webhook::EventSink,
    /// The campaigns' last counts, shared by the views of the next moments.
    pub counts: super::routes::campaign_counts::CountCache,
}

/// The server's part in a cluster.
pub struct ClusterNode {
    /// Its node id.
    pub id: String,
    /// Where trunk changes made through the API are shared with the other nodes.
    pub trunks: std::sync::Arc<engine::cluster::TrunkSync>,
    /// Its heartbeat task, taken when it leaves.
    pub task: std::sync::Mutex<Option<engine::cluster::NodeTask>>,
}

impl Inner {
    /// Whether `/readyz` should say yes.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.draining.load(Ordering::SeqCst)
    }
}

/// Lower-case hex SHA-256 of a token: what is stored and compared.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A random token: 32 bytes, hex.
pub fn new_token() -> String {
    let b: [u8; 32] = rand::random();
    hex(&b)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The admin token's hash: from the configuration, else the one generated at first start
/// (kept hashed in `api_meta`), else a new one, returned in clear to be printed once.
pub async fn admin_hash(
    store: &AnyStore,
    configured: Option<&str>,
) -> Result<(String, Option<String>), StoreError> {
    if let Some(t) = configured {
        return Ok((token_hash(t), None));
    }
    if let Some(h) = store.admin_token_hash().await? {
        return Ok((h, None));
    }
    let t = new_token();
    let h = token_hash(&t);
    // Another process opening the same database may have kept its own first.
    let kept = store.init_admin_token_hash(&h).await?;
    if kept == h {
        Ok((h, Some(t)))
    } else {
        Ok((kept, None))
    }
}

/// How often the Prometheus recorder folds pending histogram samples into its buckets.
const METRICS_UPKEEP: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the Prometheus recorder (once per process; later calls get the same handle),
/// with the histogram buckets of DESIGN's histograms.
pub fn metrics_handle() -> PrometheusHandle {
    static H: OnceLock<PrometheusHandle> = OnceLock::new();
    H.get_or_init(|| {
        let b = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("dialer_post_dial_delay_seconds".into()),
                &[0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0],
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("dialer_call_duration_seconds".into()),
                    &[
                        1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 300.0, 600.0,
                    ],
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("dialer_rtp_send_lag_seconds".into()),
                    &[
                        0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
                    ],
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("dialer_rtp_far_end_fraction_lost".into()),
                    &[0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0],
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("dialer_store_batch_size".into()),
                    &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0],
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0],
                )
            })
            .expect("bucket lists are non-empty");
        let recorder = b.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
        }
        // Histogram samples pile up in the recorder until a scrape or an upkeep drains them:
        // without upkeep, memory grew with the traffic whenever nobody read /metrics.
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(METRICS_UPKEEP);
                upkeep.run_upkeep();
            });
        engine::metrics::describe();
        handle
    })
    .clone()
}
