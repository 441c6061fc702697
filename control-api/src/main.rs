//! The `dialer` binary.
fn main() -> anyhow::Result<()> {
    Ok(())
}
