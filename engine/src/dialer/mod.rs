//! The dialer: trunks, routing, per-trunk limits with congestion control, retries, the
//! scheduler, and the sans-IO [`core`] that joins them to the SIP core, the media path and
//! the store.
//!
//! Decisions (which contact, which trunk, whether a limit admits a call, whether to retry,
//! how an attempt settles) are plain synchronous functions over data with `now` passed in,
//! unit-tested on virtual time; the core is a state machine with the same contract. Only
//! `crate::net::dialer_driver` has tasks, sockets and clocks; [`Dialer`] is its async
//! facade and [`recovery`] closes what a crash left open.

pub mod call_media;
pub mod config;
pub mod congestion;
pub mod core;
pub mod facade;
pub mod limiter;
pub mod pick_ahead;
pub mod prefix_limit;
pub mod recovery;
pub mod retry;
pub mod routing;
pub mod scheduler;
pub mod sip_settings;
pub mod trunk;
pub mod trunk_keys;
pub mod trunk_metrics;

// The domain types moved to `crate::model`; these paths stay for existing callers.
pub use self::core::{DialerError, DialerSnapshot, TrunkStatus};
pub use crate::model::NumberType;
pub use crate::model::{campaign, contacts, numbers, window};
pub use crate::model::{CampaignSpec, CampaignState, Priority, Target};
pub use config::DialerConfig;
pub use facade::Dialer;
pub use retry::RetryPolicy;
pub use sip_settings::SipSettings;
