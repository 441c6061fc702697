//! Persistence behind a trait: contacts, campaigns, and the attempt journal.
//!
//! The journal is what makes the dialer crash-safe (DESIGN principle 5): an attempt and its
//! Call-ID are durable before the INVITE leaves ([`Store::begin_attempt`] returns only
//! after the commit), the answer is recorded when it happens, the outcome when it is
//! known. [`Store::recover`] closes what a crash left open. SQLite ([`sqlite`]) is the
//! embedded default; a PostgreSQL implementation can follow for several nodes.

use std::future::Future;

use serde::Serialize;

use crate::dialer::campaign::{CampaignSpec, CampaignState};
use crate::dialer::contacts::NewContact;
use crate::dialer::numbers::NumberType;

pub mod sqlite;

pub use sqlite::{SqliteOptions, SqliteStore};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// No such record.
    #[error("not found")]
    NotFound,
    /// A uniqueness or state rule was broken.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Stored data that does not parse (a newer schema, or corruption).
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The writer task is gone.
    #[error("store closed")]
    Closed,
}

/// Result alias.
pub type StoreResult<T> = Result<T, StoreError>;

/// A stored campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignRecord {
    /// Id.
    pub id: i64,
    /// Its definition.
    pub spec: CampaignSpec,
    /// Current state.
    pub state: CampaignState,
    /// Creation time, Unix ms.
    pub created_ms: i64,
}

/// A contact due for an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueContact {
    /// Contact id.
    pub contact: i64,
    /// E.164.
    pub number: String,
    /// Type.
    pub number_type: NumberType,
    /// Counted attempts so far.
    pub attempts: u32,
}

/// What is journaled before the INVITE leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptStart {
    /// Campaign.
    pub campaign: i64,
    /// Contact.
    pub contact: i64,
    /// E.164 number dialled.
    pub number: String,
    /// The INVITE's Call-ID.
    pub call_id: String,
    /// Trunk name.
    pub trunk: String,
    /// Unix ms.
    pub started_ms: i64,
}

/// What is journaled when an attempt ends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttemptEnd {
    /// Attempt id from [`Store::begin_attempt`].
    pub attempt: i64,
    /// Outcome word (`unknown` for attempts recovered after a crash).
    pub outcome: String,
    /// Final SIP status (0: none).
    pub sip_status: u16,
    /// Reason phrase.
    pub sip_reason: String,
    /// Whether it counts against the citizen's retry allowance.
    pub counted: bool,
    /// Unix ms.
    pub ended_ms: i64,
    /// Post-dial delay (INVITE to first ringing or answer), ms.
    pub pdd_ms: Option<i64>,
    /// Answered call duration, ms.
    pub duration_ms: Option<i64>,
    /// Share of the message played, per mille.
    pub played_permille: Option<i64>,
    /// DTMF digits pressed.
    pub dtmf: Option<String>,
}

/// Where the contact goes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactNext {
    /// Due again at this Unix ms.
    RetryAt(i64),
    /// Finished in this campaign.
    Done,
}

/// An attempt left `dialing` by a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dangling {
    /// Attempt id.
    pub attempt: i64,
    /// Campaign.
    pub campaign: i64,
    /// Contact.
    pub contact: i64,
    /// Whether its answer was journaled (the message was being played).
    pub answered: bool,
    /// Counted attempts of the contact before this one.
    pub attempts: u32,
}

/// A journaled attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptRecord {
    /// Id.
    pub id: i64,
    /// Campaign.
    pub campaign: i64,
    /// Contact.
    pub contact: i64,
    /// Number.
    pub number: String,
    /// Call-ID.
    pub call_id: String,
    /// Trunk.
    pub trunk: String,
    /// `dialing` or `final`.
    pub state: String,
    /// Outcome word.
    pub outcome: Option<String>,
    /// SIP status.
    pub sip_status: Option<i64>,
    /// SIP reason.
    pub sip_reason: Option<String>,
    /// Counted against the allowance.
    pub counted: bool,
    /// Unix ms.
    pub started_ms: i64,
    /// Unix ms.
    pub answered_ms: Option<i64>,
    /// Unix ms.
    pub ended_ms: Option<i64>,
    /// ms.
    pub pdd_ms: Option<i64>,
    /// ms.
    pub duration_ms: Option<i64>,
    /// Per mille.
    pub played_permille: Option<i64>,
    /// Digits.
    pub dtmf: Option<String>,
}

/// Counts for a campaign's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Targeted contacts.
    pub targeted: u64,
    /// Waiting for a (next) attempt.
    pub pending: u64,
    /// In a call now.
    pub dialing: u64,
    /// Finished.
    pub done: u64,
    /// Contacts whose message was answered.
    pub answered: u64,
    /// Attempts journaled.
    pub attempts: u64,
}

/// Result of a contacts import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// New contacts.
    pub inserted: u64,
    /// Existing numbers whose address or opt-out was updated.
    pub updated: u64,
}

/// Persistence for the dialer. Every method is a future so that the store may batch and
/// commit on its own writer; implementations are cheap to clone into tasks.
///
/// Writes are ordered by call, not by first poll: a write is queued when its method is
/// called, so `attempt_answered` then `finish_attempt` apply in that order even when their
/// futures are awaited elsewhere or dropped.
pub trait Store: Clone + Send + Sync + 'static {
    /// Inserts or updates contacts (one per number per tenant). An opt-out given here is
    /// kept; a later import without it does not clear it.
    fn upsert_contacts(
        &self,
        tenant: &str,
        contacts: Vec<NewContact>,
    ) -> impl Future<Output = StoreResult<ImportReport>> + Send;

    /// Sets or clears a contact's opt-out; false if the number is unknown.
    fn set_opt_out(
        &self,
        tenant: &str,
        number: &str,
        opt_out: bool,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Creates a campaign in `draft` (validated by the caller). Conflict if the name
    /// exists for the tenant.
    fn create_campaign(
        &self,
        spec: CampaignSpec,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<CampaignRecord>> + Send;

    /// A campaign by id.
    fn campaign(&self, id: i64)
        -> impl Future<Output = StoreResult<Option<CampaignRecord>>> + Send;

    /// A campaign by tenant and name.
    fn campaign_by_name(
        &self,
        tenant: &str,
        name: &str,
    ) -> impl Future<Output = StoreResult<Option<CampaignRecord>>> + Send;

    /// Campaigns in one of `states` (all when empty), by id.
    fn campaigns(
        &self,
        states: &[CampaignState],
    ) -> impl Future<Output = StoreResult<Vec<CampaignRecord>>> + Send;

    /// Changes a campaign's state; Conflict if the transition is illegal. Starting a
    /// draft selects its targeted contacts (opted-out ones excluded).
    fn set_campaign_state(
        &self,
        id: i64,
        to: CampaignState,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<CampaignRecord>> + Send;

    /// Up to `limit` contacts of a campaign due at `now_ms`, not opted out, oldest first.
    fn due_contacts(
        &self,
        campaign: i64,
        now_ms: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<DueContact>>> + Send;

    /// Journals an attempt; resolves once it is durable. Returns its id.
    fn begin_attempt(
        &self,
        a: AttemptStart,
    ) -> impl Future<Output = StoreResult<i64>> + Send + use<Self>;

    /// Journals that an attempt was answered: its contact is done in this campaign even if
    /// the process dies before the call ends.
    fn attempt_answered(
        &self,
        attempt: i64,
        at_ms: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send + use<Self>;

    /// Closes a contact without an attempt (no trunk carries its number).
    fn close_contact(
        &self,
        campaign: i64,
        contact: i64,
        outcome: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send + use<Self>;

    /// Journals an attempt's end and where its contact goes next.
    fn finish_attempt(
        &self,
        end: AttemptEnd,
        next: ContactNext,
    ) -> impl Future<Output = StoreResult<()>> + Send + use<Self>;

    /// Attempts left `dialing` (by a crash): for the orchestrator to close by policy.
    fn dangling(&self) -> impl Future<Output = StoreResult<Vec<Dangling>>> + Send;

    /// Progress counts of a campaign.
    fn progress(&self, campaign: i64) -> impl Future<Output = StoreResult<Progress>> + Send;

    /// Journaled attempts of a campaign with id above `after`, by id (cursor pagination).
    fn attempts(
        &self,
        campaign: i64,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<AttemptRecord>>> + Send;
}
