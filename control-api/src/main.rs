//! The `dialer` binary: CLI verbs over the engine.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod audit_cmd;
mod call_cmd;
mod campaign_cmd;
mod check_config_cmd;
mod demo;
mod prompt_cmd;
mod serve_cmd;

/// High-throughput SIP dialer for mass voice notification.
#[derive(Debug, Parser)]
#[command(name = "dialer", version, about)]
struct Cli {
    /// Log format on stderr: `text`, or `json` (one object per line, for journald/Loki).
    /// Default from DIALER_LOG_FORMAT; the level from DIALER_LOG (default `warn`).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Place calls through a trunk, play a prompt on answer, print one JSON line per call.
    Call(call_cmd::CallArgs),
    /// Run a campaign through the configured trunks (create, import contacts, resume).
    Campaign(campaign_cmd::CampaignArgs),
    /// Encode an audio file exactly as a call streams it; print its metadata.
    Prompt(prompt_cmd::PromptArgs),
    /// Run the engine and the HTTP API (tenants, prompts, contacts, campaigns, /metrics).
    Serve(serve_cmd::ServeArgs),
    /// A demo on this machine with no trunk: fake carrier, 1,000 contacts, live progress.
    Demo(demo::DemoArgs),
    /// Validate a `dialer serve` configuration file without starting anything.
    CheckConfig(check_config_cmd::CheckConfigArgs),
    /// The audit trail: `dialer audit verify` checks every hash chain in the database.
    Audit(audit_cmd::AuditArgs),
}

/// Arenas glibc's malloc may keep (see [`limit_malloc_arenas`]).
const MALLOC_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas before any thread starts. glibc gives a thread its own arena
/// when the others are busy, up to 8 per core, and keeps what is freed in an arena for that
/// arena's next allocations: a `dialer serve` has a dozen threads that allocate (runtime
/// workers, the signalling thread, pacing loops, metrics upkeep, one per SQLite
/// connection), so 13 arenas each held the high-water mark of its own threads. Measured on
/// a 100,000-attempt campaign (loadtest/results/campaign.md "Memory"): 30 MiB in use and
/// 60 MiB free but resident, the free part growing with the run. Two arenas (the main one
/// and one shared) reuse each other's free space; small blocks still go through each
/// thread's own cache (tcache) without a lock. False when this is not glibc or it refused.
fn limit_malloc_arenas() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets an allocator parameter; it is called first thing in
        // main, before any other thread exists.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

fn main() -> Result<()> {
    let arenas_limited = limit_malloc_arenas();
    let cli = Cli::parse();
    init_logs(cli.log_format)?;
    if !arenas_limited {
        tracing::debug!("malloc arenas not limited (not glibc)");
    }
    // `dialer call`'s own work (a task per call waiting for its report, printing them) is
    // small next to the calls' signalling, which runs on the dialer's signalling thread:
    // one thread for it saves the hand-offs between runtime threads (14 % of the CPU per
    // call at 2,000 calls per second, measured with both flavours on one binary).
    let rt = match &cli.command {
        Command::Call(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
    };
    match cli.command {
        Command::Call(args) => rt.block_on(async {
            // HEP for `dialer call` comes from DIALER_HEP_* (it reads no config file).
            if std::env::var_os("DIALER_HEP_ADDRESS").is_some() {
                serve_cmd::start_hep(&control_api::serve::ServeConfig::from_env()?.hep)?;
            }
            call_cmd::run(args).await
        }),
        Command::Prompt(args) => prompt_cmd::run(args),
        Command::Campaign(args) => rt.block_on(campaign_cmd::run(args)),
        Command::Serve(args) => rt.block_on(serve_cmd::run(args)),
        Command::Demo(args) => rt.block_on(demo::run(args)),
        Command::CheckConfig(args) => check_config_cmd::run(args),
        Command::Audit(args) => {
            if rt.block_on(audit_cmd::run(args))? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
    }
}

/// Installs the stderr log subscriber in the chosen format.
fn init_logs(flag: Option<LogFormat>) -> Result<()> {
    let format = match (flag, std::env::var("DIALER_LOG_FORMAT").ok().as_deref()) {
        (Some(f), _) => f,
        (None, None | Some("") | Some("text")) => LogFormat::Text,
        (None, Some("json")) => LogFormat::Json,
        (None, Some(other)) => anyhow::bail!("DIALER_LOG_FORMAT={other:?}: use text or json"),
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("DIALER_LOG").unwrap_or_else(|_| "warn".into());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().with_current_span(false).init(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_arena_cap() {
        assert!(super::limit_malloc_arenas());
    }
}
