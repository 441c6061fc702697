//! `loadtest`: the fake carrier that measures the dialer (`carrier`), a bare `sendmmsg`
//! loop that measures the machine's floor (`floor`), and the side-by-side benchmark of the
//! dialer and SIPp (`bench`), and the store benchmark (`store`). See `loadtest/README.md`.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod analysis;
mod bench;
mod bench_campaign;
mod bench_chart;
mod bench_host;
mod bench_signalling;
mod callee;
mod callee_send;
mod carrier;
mod floor;
mod store_bench;
mod uas;

/// Load tools for the dialer.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A fake carrier: answers a configurable mix, analyses every call's RTP, reports.
    Carrier(Box<carrier::CarrierArgs>),
    /// A bare sendmmsg loop at a given packet rate: CPU per packet, the machine's floor.
    Floor(floor::FloorArgs),
    /// The side-by-side benchmark: dialer and SIPp against the carrier at several sizes.
    Bench(Box<bench::BenchArgs>),
    /// The store benchmark: import, claims and journal on PostgreSQL (1 and 3 nodes) and
    /// SQLite, rows and bytes per million.
    Store(store_bench::StoreArgs),
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOADTEST_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Carrier(a) => carrier::run(*a),
        Command::Floor(a) => floor::run(a),
        Command::Bench(a) => bench::run(*a),
        Command::Store(a) => store_bench::run(a),
    }
}
