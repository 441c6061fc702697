//! Shared test data: a trunk and a campaign as a test wants them.

use crate::dialer::campaign::{CampaignSpec, Priority, Target};
use crate::dialer::retry::RetryPolicy;
use crate::dialer::trunk::TrunkConfig;
use crate::dialer::DialerConfig;

/// A trunk on loopback with these limits and the configuration's defaults.
pub fn trunk_cfg(name: &str, cps: f64, channels: u32) -> TrunkConfig {
    let text = format!(
        "[[trunk]]\nname = \"{name}\"\nproxy = \"127.0.0.1:5060\"\n\
         max_channels = {channels}\ncps = {cps}\n"
    );
    DialerConfig::load_with(&text, &|_| None)
        .expect("test trunk")
        .trunks
        .remove(0)
}

/// An emergency campaign (no calling window) with the default retry policy.
pub fn spec() -> CampaignSpec {
    CampaignSpec {
        tenant: "town".into(),
        name: "flood".into(),
        prompt: "flood.wav".into(),
        target: Target {
            all: true,
            ..Target::default()
        },
        priority: Priority::Emergency,
        window: None,
        caller_id: None,
        ring_timeout_s: None,
        play_count: 1,
        retry: RetryPolicy::default(),
        delivery: Default::default(),
    }
}
