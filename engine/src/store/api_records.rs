//! What the store takes and gives for the control API's own data (tenants, prompts,
//! street lists, idempotency keys) and for contact listings.

use serde::{Deserialize, Serialize};

use crate::model::{NewContact, Source};

/// A stored contact: what was imported, with its row id and when it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRecord {
    /// Internal id (the listing cursor).
    pub id: i64,
    /// The contact as imported (number, type, street, zone, source, opt-out).
    pub contact: NewContact,
    /// Unix ms.
    pub created_ms: i64,
}

/// Which contacts a listing returns (every given field must match exactly).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactFilter {
    /// Only this zone.
    pub zone: Option<String>,
    /// Only this street.
    pub street: Option<String>,
    /// Only this source.
    pub source: Option<Source>,
}

/// How many contacts live on one street of one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactGroup {
    /// Zone.
    pub zone: String,
    /// Street.
    pub street: String,
    /// Contacts.
    pub contacts: u64,
}

/// One row of a town's street list: which zone a street belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Street {
    /// Street name (compared case-insensitively).
    pub street: String,
    /// Zone.
    pub zone: String,
}

/// A tenant (town).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    /// Identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time, Unix ms.
    pub created_ms: i64,
}

/// Loudness figures of a prompt, as measured at upload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Loudness {
    /// Integrated loudness of the upload, LUFS.
    pub before_lufs: f64,
    /// After levelling, LUFS.
    pub after_lufs: f64,
    /// Sample peak after levelling, dBFS.
    pub peak_dbfs: f64,
    /// Gain applied, dB.
    pub gain_db: f64,
}

/// A prompt's metadata (the audio is a file at `path`).
#[derive(Debug, Clone, PartialEq)]
pub struct PromptRecord {
    /// Identifier.
    pub id: String,
    /// Owner.
    pub tenant: String,
    /// Name.
    pub name: String,
    /// File path of the audio.
    pub path: String,
    /// Duration, ms.
    pub duration_ms: i64,
    /// Codecs it is ready for.
    pub codecs: Vec<String>,
    /// Loudness.
    pub loudness: Loudness,
    /// Unix ms.
    pub created_ms: i64,
}

/// The first successful reply to an `Idempotency-Key`, kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReply {
    /// SHA-256 (hex) of the request it answered.
    pub request_sha256: String,
    /// HTTP status.
    pub status: u16,
    /// Content type.
    pub content_type: String,
    /// Body.
    pub body: Vec<u8>,
}
