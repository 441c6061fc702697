//! `dialer check-config FILE`: validates a `dialer serve` configuration without starting
//! anything (no socket, no database), so that ops can check an edit before a restart
//! (`ExecStartPre=` in the systemd unit runs it).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use control_api::serve::ServeConfig;

/// Options of `dialer check-config`.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The TOML file `dialer serve --config` would read (environment overrides apply).
    file: PathBuf,
}

/// Parses and checks the file; prints a summary and warnings, fails on the first error.
pub fn run(a: CheckConfigArgs) -> Result<()> {
    let cfg = ServeConfig::load(&a.file)?;
    let dialer = cfg.dialer_config()?;
    let ports = u32::from(cfg.media.rtp_port_max) - u32::from(cfg.media.rtp_port_min) + 1;
    let channels: u64 = dialer
        .trunks
        .iter()
        .map(|t| u64::from(t.max_channels))
        .sum();
    println!("{}: OK", a.file.display());
    println!(
        "  http {}  sip {}  store {}",
        cfg.http.listen, cfg.sip.listen, cfg.store.url
    );
    for t in &dialer.trunks {
        println!(
            "  trunk {}: proxy {} cps {} channels {}",
            t.name, t.proxy, t.cps, t.max_channels
        );
    }
    match cfg.hep.collector()? {
        Some(c) => println!("  hep udp:{c} capture_id {}", cfg.hep.capture_id),
        None => println!("  hep off"),
    }
    for w in warnings(ports, channels, dialer.trunks.is_empty()) {
        println!("  warning: {w}");
    }
    Ok(())
}

/// What is valid but probably not meant: too few RTP ports for the channels (each call
/// holds an even RTP port and the odd RTCP port above it), or no trunk at all.
fn warnings(ports: u32, channels: u64, no_trunk: bool) -> Vec<String> {
    let mut w = vec![];
    if u64::from(ports / 2) < channels {
        w.push(format!(
            "media port range holds {} calls (two ports each) but the trunks allow {channels} channels",
            ports / 2
        ));
    }
    if no_trunk {
        w.push("no [[trunk]]: campaigns cannot place calls".into());
    }
    w
}

#[cfg(test)]
mod tests {
    use super::warnings;

    #[test]
    fn warns_when_ports_are_short_of_channels() {
        assert!(warnings(20000, 500, false).is_empty());
        assert_eq!(warnings(100, 60, false).len(), 1);
        assert_eq!(warnings(100, 50, true).len(), 1);
    }
}
