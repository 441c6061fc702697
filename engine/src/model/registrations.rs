//! Registrations: residents who gave their number themselves (by the phone menu or the
//! web form), with the zone they chose and their consent (when, and which version of the
//! information notice they were read). Unregistering is an opt-out and an erasure of the
//! contact; the registration row keeps when consent was given and withdrawn.

use super::contacts::Source;
use super::numbers::NumberType;

/// A registration to store (the contact is created or updated with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRegistration {
    /// E.164.
    pub number: String,
    /// Fixed, mobile, unknown.
    pub number_type: NumberType,
    /// Where it came from (`ivr`, or the web form's `registration`).
    pub source: Source,
    /// The chosen zone; None: the whole town.
    pub zone: Option<String>,
    /// When consent was given, Unix ms.
    pub consent_ms: i64,
    /// The information notice's version the resident was read.
    pub notice_version: String,
}

/// What storing a registration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// A new registration.
    New,
    /// The number was registered: its zone changed.
    ZoneChanged,
}

/// What unregistering did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unregistered {
    /// Opted out and erased.
    Erased,
    /// Opted out; erasure waits for a call in progress to it to end.
    OptedOut,
    /// The number was not registered or known.
    Unknown,
}

/// The information notice version stated by the default consent sentence.
pub const NOTICE_VERSION: &str = "it-2026-1";
