//! Tokio drivers: the only code with sockets, tasks and clocks. They feed the sans-IO
//! [`crate::sip::Endpoint`] and carry out what it asks.

pub mod rtp_player;
pub mod sip_driver;

pub use rtp_player::{bind_rtp_port, play};
pub use sip_driver::{SipDriver, SipEvents};
