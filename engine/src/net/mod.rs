//! Tokio drivers: the only code with sockets, tasks and clocks. They feed the sans-IO
//! [`crate::sip::Endpoint`] and carry out what it asks.

pub mod hep;
pub mod pump;
pub mod sip_driver;
mod sip_tcp;

pub use pump::{
    MediaEvent, MediaHandle, MediaPump, MediaStart, PumpConfig, PumpStats, RtpPort, SendMode,
};
pub use sip_driver::{SipDriver, SipEvents, TcpLimits};
