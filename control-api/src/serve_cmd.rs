//! `dialer serve [--config FILE]`: the engine and the HTTP API in one process, until
//! SIGTERM/SIGINT (drained, exit 0) or a second signal (exit at once).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use control_api::serve::config::HepSection;
use control_api::serve::{ServeConfig, Server};

/// Options of `dialer serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration (see README, "Configuration"); without it the built-in defaults
    /// apply, overridable by DIALER_<SECTION>_<KEY> variables.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Runs the command.
pub async fn run(a: ServeArgs) -> Result<()> {
    let cfg = match &a.config {
        Some(p) => ServeConfig::load(p)?,
        None => ServeConfig::from_env()?,
    };
    start_hep(&cfg.hep)?;
    let server = Server::start(cfg).await.context("starting dialer serve")?;
    if let Some(t) = &server.generated_admin_token {
        eprintln!(
            "dialer: generated admin token (shown once, only its hash is kept): {t}\n\
             dialer: set DIALER_ADMIN_TOKEN or admin_token to choose your own"
        );
    }
    eprintln!(
        "dialer: API http://{0}/v1  docs http://{0}/docs  metrics http://{0}/metrics",
        server.addr
    );
    let in_time = server.run_until_signal().await?;
    if !in_time {
        eprintln!("dialer: drain timeout reached; unfinished calls are recovered at next start");
    }
    Ok(())
}

/// Starts mirroring SIP to the `[hep]` collector, when one is configured (on the current
/// tokio runtime). `dialer call` uses it too, from the `DIALER_HEP_*` variables.
pub fn start_hep(hep: &HepSection) -> Result<()> {
    let Some(collector) = hep.collector()? else {
        return Ok(());
    };
    let sender = engine::net::hep::HepSender::start(engine::net::hep::HepConfig {
        collector,
        capture_id: hep.capture_id,
        password: hep.password.clone(),
        queue: hep.queue as usize,
    });
    engine::net::hep::install(sender);
    Ok(())
}
