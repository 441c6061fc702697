//! `dialer audit verify [--config FILE]`: checks every tenant's audit chain in the
//! database the configuration names, offline (no server needed): exit 0 when every chain
//! is intact, 1 naming the first broken entry otherwise.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use control_api::serve::ServeConfig;
use engine::audit::Check;
use engine::store::{AnyStore, Store};

/// Options of `dialer audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Recompute every chain's hashes; name the first broken entry.
    Verify {
        /// The `dialer serve` configuration (its `[store] url`); without it the defaults
        /// and DIALER_* variables apply, as for `dialer serve`.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Entries read per query.
const PAGE: u32 = 1000;

/// Runs the command; Ok(false) when a chain is broken.
pub async fn run(a: AuditArgs) -> Result<bool> {
    let AuditCommand::Verify { config } = a.command;
    let cfg = match &config {
        Some(p) => ServeConfig::load(p)?,
        None => ServeConfig::from_env()?,
    };
    let store = AnyStore::open(&cfg.store.url)
        .await
        .with_context(|| format!("opening {}", cfg.store.url))?;
    let tenants = store.audit_tenants().await?;
    let mut total = 0;
    for t in &tenants {
        let mut check = Check::new(t);
        loop {
            let page = store.audit(t, check.count, PAGE).await?;
            for e in &page {
                if let Err(b) = check.push(e) {
                    eprintln!("dialer: {b}");
                    println!("BROKEN tenant={t:?} seq={} ({})", b.seq, b.why);
                    return Ok(false);
                }
            }
            if page.len() < PAGE as usize {
                break;
            }
        }
        let name = if t.is_empty() { "(platform)" } else { t };
        println!("ok {name}: {} entries, head {}", check.count, check.head);
        total += check.count;
    }
    println!("audit: {} chains, {total} entries intact", tenants.len());
    Ok(true)
}
