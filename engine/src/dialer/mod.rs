//! The dialer: trunks, routing, per-trunk limits with congestion control, campaigns with
//! retries and calling windows, the scheduler, and the orchestrator that joins them to the
//! SIP core, the media path and the store.
//!
//! Decisions (which contact, which trunk, whether a limit admits a call, whether to retry)
//! are plain synchronous code over data with `now` passed in, unit-tested on virtual time;
//! only [`orchestrator`] has tasks, sockets and clocks.

pub mod call_media;
pub mod config;
pub mod congestion;
pub mod limiter;
pub mod orchestrator;
pub mod retry;
pub mod routing;
pub mod scheduler;
pub mod sip_settings;
pub mod trunk;

// The domain types moved to `crate::model`; these paths stay for existing callers.
pub use crate::model::NumberType;
pub use crate::model::{campaign, contacts, numbers, window};
pub use crate::model::{CampaignSpec, CampaignState, Priority, Target};
pub use config::DialerConfig;
pub use orchestrator::{Dialer, DialerError, DialerSnapshot, TrunkStatus};
pub use retry::RetryPolicy;
pub use sip_settings::SipSettings;
