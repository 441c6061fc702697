//! `loadtest`: fake carrier and load scenarios (see issue: media pump).
fn main() -> anyhow::Result<()> {
    anyhow::bail!("loadtest: no verb implemented yet")
}
