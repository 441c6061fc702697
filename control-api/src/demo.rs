//! `dialer demo`: placeholder, filled below.
use anyhow::Result;
use clap::Args;

/// Options of `dialer demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {}

/// Runs the demo.
pub async fn run(_a: DemoArgs) -> Result<()> {
    anyhow::bail!("not yet")
}
