//! Tokio drivers: the only code with sockets, tasks and clocks. They feed the sans-IO
//! [`crate::sip::Endpoint`] and the [`crate::dialer::core::DialerCore`] and carry out what
//! they ask.

pub mod dialer_driver;
pub mod hep;
pub mod inbound_driver;
pub mod pump;
pub mod sip_driver;
mod sip_io;

mod sip_tcp;
mod sip_tls;
pub mod sip_udp;

pub use pump::{
    MediaEvent, MediaHandle, MediaPump, MediaStart, PumpConfig, PumpStats, RtpPort, SendMode,
};
pub use sip_driver::{
    DriverOptions, SipDriver, SipEvents, SipIo, SipWake, TcpLimits, TlsError, TlsFiles, TlsSetup,
};
