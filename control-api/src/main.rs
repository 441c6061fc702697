//! The `dialer` binary: CLI verbs over the engine.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod call_cmd;
mod campaign_cmd;
mod demo;
mod prompt_cmd;
mod serve_cmd;

/// High-throughput SIP dialer for mass voice notification.
#[derive(Debug, Parser)]
#[command(name = "dialer", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DIALER_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Call(args) => rt.block_on(call_cmd::run(args)),
        Command::Prompt(args) => prompt_cmd::run(args),
        Command::Campaign(args) => rt.block_on(campaign_cmd::run(args)),
        Command::Serve(args) => rt.block_on(serve_cmd::run(args)),
        Command::Demo(args) => rt.block_on(demo::run(args)),
    }
}
