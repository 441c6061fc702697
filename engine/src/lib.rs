//! The dialer engine: a sans-IO SIP core ([`sip`]), the RTP media path ([`media`]) and the
//! tokio drivers that connect them to sockets and clocks ([`net`]).
//!
//! Only [`net`] touches sockets, tasks or clocks; everything else is plain data-in/data-out
//! code that tests drive on virtual time.

pub mod audit;
pub mod cluster;
pub mod dialer;
pub mod id_map;
pub mod ivr;
pub mod media;
pub mod metrics;
pub mod model;
pub mod net;
pub mod sip;
pub mod store;
pub mod webhook;
