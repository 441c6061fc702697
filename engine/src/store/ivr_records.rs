//! What the store gives back for the inbound side: registrations as listed.

/// A registration as stored: live (`deleted_ms` None) or ended by an unregistration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationRecord {
    /// Internal id (the listing cursor).
    pub id: i64,
    /// E.164. Kept after erasure of the contact: it is the record of the consent and of
    /// its withdrawal.
    pub number: String,
    /// `ivr` or `registration` (web form).
    pub source: crate::model::Source,
    /// The chosen zone; None: the whole town.
    pub zone: Option<String>,
    /// When consent was given, Unix ms.
    pub consent_ms: i64,
    /// The information notice's version.
    pub notice_version: String,
    /// Unix ms.
    pub created_ms: i64,
    /// When it was unregistered, Unix ms.
    pub deleted_ms: Option<i64>,
}
