//! Final responses map to the dialer's outcome words (DESIGN, conventions): the one
//! definition lives in [`crate::model::outcome`]; this path stays for the SIP layer's
//! callers.

pub use crate::model::outcome::Outcome;
