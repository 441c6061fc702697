//! Persistence behind a trait: contacts, campaigns, the attempt journal, and the control
//! API's own data (tenants, prompts, street lists, idempotency keys).
//!
//! The journal is what makes the dialer crash-safe (DESIGN principle 5): an attempt and its
//! Call-ID are durable before the INVITE leaves ([`Store::begin_attempt`] returns only
//! after the commit), the answer is recorded when it happens, the outcome when it is
//! known. [`Store::dangling`] lists what a crash left open. Every read and write of the
//! engine and of the API goes through [`Store`], with typed inputs and outputs, so that
//! another database is one more implementation of this trait. SQLite ([`sqlite`]) is the
//! embedded default; PostgreSQL ([`postgres`]) is for several nodes sharing one database.

use std::future::Future;

use crate::ivr::{PromptKey, Replacement};
use crate::model::{
    CampaignSpec, CampaignState, Did, NewContact, NewRegistration, Outcome, Registered,
    Unregistered,
};

#[macro_use]
mod any;
mod api_records;
mod batch;
mod hook_records;
mod import_runs;
mod ivr_records;
pub mod postgres;
mod records;
mod sql;
pub mod sqlite;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_heard;
#[cfg(test)]
mod tests_hooks;
#[cfg(test)]
mod tests_ivr;
#[cfg(test)]
mod tests_prefix;
mod wiring;

pub use any::AnyStore;
pub use api_records::{
    ContactFilter, ContactGroup, ContactRecord, Loudness, PromptRecord, StoredReply, Street,
    TenantRecord,
};
pub(crate) use batch::Queued;
pub use hook_records::{
    AttemptSubject, DeliveryRecord, DeliveryUpdate, DueDelivery, NewEvent, WebhookRecord,
};
pub use ivr_records::RegistrationRecord;
pub use postgres::{
    is_postgres_url, BeatOutcome, NodeJoin, NodeRecord, NodeState, PeerShare, PgOptions, PgStore,
    TrunkShareRow,
};
pub use records::{
    fold_groups, result_rank_sql, AttemptEnd, AttemptRecord, AttemptStart, CampaignRecord,
    CampaignReport, ContactGroupCount, ContactNext, Dangling, DueContact, GroupRow, ImportReport,
    MessageCounts, Progress, ResultCounts, Tally, ZoneCounts,
};
pub use sqlite::{now_ms, SqliteOptions, SqliteStore};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The database said no to a synchronous write (SQLite's journal writes, which run on
    /// the writer connection's own handle: `store::sqlite::journal_write`).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
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

// The trait is declared through `store_api!` (store/any.rs), which also writes the
// `AnyStore` delegation of every method from this one list of signatures.
store_api! {
    /// Persistence for the dialer and its API. Every method is a future so that the store
    /// may batch and commit on its own writer; implementations are cheap to clone into tasks.
    ///
    /// Writes are ordered by call, not by first poll: a write is queued when its method is
    /// called, so `attempt_answered` then `finish_attempt` apply in that order even when their
    /// futures are awaited elsewhere or dropped.
    pub trait Store {
        // ---- contacts ----

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

        /// A contact by its E.164 number.
        fn contact(
            &self,
            tenant: &str,
            number: &str,
        ) -> impl Future<Output = StoreResult<Option<ContactRecord>>> + Send;

        /// Contacts matching `filter` with id above `after`, by id, at most `limit`.
        fn contacts(
            &self,
            tenant: &str,
            filter: &ContactFilter,
            after: i64,
            limit: u32,
        ) -> impl Future<Output = StoreResult<Vec<ContactRecord>>> + Send;

        /// Right to erasure: deletes the contact and its campaign entries and blanks its
        /// number in the journal, atomically. NotFound if the number is unknown, Conflict
        /// while a call to it is in progress.
        fn erase_contact(
            &self,
            tenant: &str,
            number: &str,
        ) -> impl Future<Output = StoreResult<()>> + Send + use<Self>;

        /// Contacts per (zone, street); only the callable ones (not opted out) when
        /// `callable_only`.
        fn contact_groups(
            &self,
            tenant: &str,
            callable_only: bool,
        ) -> impl Future<Output = StoreResult<Vec<ContactGroup>>> + Send;

        /// Stores a street list (street → zone); returns how many rows were new or moved.
        fn import_streets(
            &self,
            tenant: &str,
            streets: Vec<Street>,
        ) -> impl Future<Output = StoreResult<u64>> + Send + use<Self>;

        /// The tenant's street list.
        fn streets(&self, tenant: &str) -> impl Future<Output = StoreResult<Vec<Street>>> + Send;

        // ---- campaigns ----

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

        /// A tenant's campaigns with id above `after`, by id, at most `limit`.
        fn tenant_campaigns(
            &self,
            tenant: &str,
            after: i64,
            limit: u32,
        ) -> impl Future<Output = StoreResult<Vec<CampaignRecord>>> + Send;

        /// Changes a campaign's state; Conflict if the model's transition table has no way
        /// there. Starting a draft selects its targeted contacts (opted-out ones excluded).
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

        /// Progress counts of a campaign.
        fn progress(&self, campaign: i64) -> impl Future<Output = StoreResult<Progress>> + Send;

        /// Outcome totals, per-zone counts and the attempts started since `since_ms`.
        fn campaign_report(
            &self,
            campaign: i64,
            since_ms: i64,
        ) -> impl Future<Output = StoreResult<CampaignReport>> + Send;

        // ---- the attempt journal ----

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
            outcome: Outcome,
        ) -> impl Future<Output = StoreResult<()>> + Send + use<Self>;

        /// Journals an attempt's end and where its contact goes next.
        fn finish_attempt(
            &self,
            end: AttemptEnd,
            next: ContactNext,
        ) -> impl Future<Output = StoreResult<()>> + Send + use<Self>;

        /// Attempts left `dialing` (by a crash): for the dialer to close by policy.
        fn dangling(&self) -> impl Future<Output = StoreResult<Vec<Dangling>>> + Send;

        /// Journaled attempts of a campaign with id above `after`, by id (cursor pagination).
        fn attempts(
            &self,
            campaign: i64,
            after: i64,
            limit: u32,
        ) -> impl Future<Output = StoreResult<Vec<AttemptRecord>>> + Send;

        // ---- the API's own data ----

        /// Creates a tenant with the hash of its token; Conflict if the id exists.
        fn create_tenant(
            &self,
            tenant: TenantRecord,
            token_sha256: &str,
        ) -> impl Future<Output = StoreResult<()>> + Send + use<Self>;

        /// Tenants with id above `after`, by id, at most `limit`.
        fn tenants(
            &self,
            after: &str,
            limit: u32,
        ) -> impl Future<Output = StoreResult<Vec<TenantRecord>>> + Send;

        /// The tenant whose token hashes to `token_sha256`.
        fn tenant_by_token(
            &self,
            token_sha256: &str,
        ) -> impl Future<Output = StoreResult<Option<String>>> + Send;

        /// The hash of the admin token generated at first start, if any.
        fn admin_token_hash(&self) -> impl Future<Output = StoreResult<Option<String>>> + Send;

        /// Keeps `sha256` as the admin token's hash unless one is already kept; returns the
        /// one kept (another process may have been first).
        fn init_admin_token_hash(
            &self,
            sha256: &str,
        ) -> impl Future<Output = StoreResult<String>> + Send + use<Self>;

        /// Stores a prompt's metadata.
        fn insert_prompt(
            &self,
            p: PromptRecord,
        ) -> impl Future<Output = StoreResult<()>> + Send + use<Self>;

        /// A tenant's prompt.
        fn prompt(
            &self,
            tenant: &str,
            id: &str,
        ) -> impl Future<Output = StoreResult<Option<PromptRecord>>> + Send;

        /// A tenant's prompts with id above `after`, by id, at most `limit`.
        fn prompts(
            &self,
            tenant: &str,
            after: &str,
            limit: u32,
        ) -> impl Future<Output = StoreResult<Vec<PromptRecord>>> + Send;

        /// Deletes a tenant's prompt metadata; false if there was none.
        fn delete_prompt(
            &self,
            tenant: &str,
            id: &str,
        ) -> impl Future<Output = StoreResult<bool>> + Send + use<Self>;

        /// The reply kept for an idempotency key in `scope`.
        fn idempotent_reply(
            &self,
            scope: &str,
            key: &str,
        ) -> impl Future<Output = StoreResult<Option<StoredReply>>> + Send;

        /// Keeps the first reply to an idempotency key (a later one for the same key is
        /// ignored).
        fn save_idempotent_reply(
            &self,
            scope: &str,
            key: &str,
            reply: StoredReply,
            now_ms: i64,
        ) -> impl Future<Output = StoreResult<()>> + Send + use<Self>;

        /// Whether the database answers a trivial read.
        fn ping(&self) -> impl Future<Output = StoreResult<()>> + Send;

        // ---- inbound numbers (DIDs) ----

        /// A tenant by id.
        fn tenant(&self, id: &str) -> impl Future<Output = StoreResult<Option<TenantRecord>>> + Send;

        /// Adds an inbound number; Conflict if the number is taken, NotFound if its tenant
        /// does not exist.
        fn create_did(&self, did: Did) -> impl Future<Output = StoreResult<()>> + Send + use<Self>;

        /// Adds or replaces an inbound number (the configuration file's, at start).
        fn put_did(&self, did: Did) -> impl Future<Output = StoreResult<()>> + Send + use<Self>;

        /// The inbound number with this E.164 key.
        fn did(&self, number: &str) -> impl Future<Output = StoreResult<Option<Did>>> + Send;

        /// Inbound numbers above `after`, by number, at most `limit`.
        fn dids(&self, after: &str, limit: u32) -> impl Future<Output = StoreResult<Vec<Did>>> + Send;

        /// Removes an inbound number; false if there was none.
        fn delete_did(
            &self,
            number: &str,
        ) -> impl Future<Output = StoreResult<bool>> + Send + use<Self>;

        // ---- limits per destination prefix ----

        /// Adds a prefix limit (global when `limit.tenant` is `None`), or replaces the one of
        /// the same scope and prefix.
        fn put_prefix_limit(
            &self,
            limit: crate::model::prefix_limit::PrefixLimit,
            now_ms: i64,
        ) -> impl Future<Output = StoreResult<()>> + Send + use<Self>;

        /// Every stored prefix limit, global ones first.
        fn prefix_limits(
            &self,
        ) -> impl Future<Output = StoreResult<Vec<crate::model::prefix_limit::PrefixLimit>>> + Send;

        /// Removes a scope's limit on `prefix` (`tenant` `None`: the global one); false if
        /// there was none.
        fn delete_prefix_limit(
            &self,
            tenant: Option<&str>,
            prefix: &str,
        ) -> impl Future<Output = StoreResult<bool>> + Send + use<Self>;

        // ---- registrations and the staff line ----

        /// Stores a registration and its contact (new consent clears an opt-out); a number
        /// registered already only changes zone. At most one live registration per number.
        fn register(
            &self,
            tenant: &str,
            r: NewRegistration,
            now_ms: i64,
        ) -> impl Future<Output = StoreResult<Registered>> + Send + use<Self>;

        /// Opt-out and erasure of a number; its live registration ends at `now_ms`.
        fn unregister(
            &self,
            tenant: &str,
            number: &str,
            now_ms: i64,
        ) -> impl Future<Output = StoreResult<Unregistered>> + Send + use<Self>;

        /// The live registration of a number.
        fn registration(
            &self,
            tenant: &str,
            number: &str,
        ) -> impl Future<Output = StoreResult<Option<RegistrationRecord>>> + Send;

        /// A tenant's registrations (live and ended) with id above `after`, by id.
        fn registrations(
            &self,
            tenant: &str,
            after: i64,
            limit: u32,
        ) -> impl Future<Output = StoreResult<Vec<RegistrationRecord>>> + Send;

        /// Sets or rotates a tenant's staff PIN (its hash).
        fn set_staff_pin(
            &self,
            tenant: &str,
            pin_hash: &str,
            now_ms: i64,
        ) -> impl Future<Output = StoreResult<()>> + Send + use<Self>;

        /// A tenant's staff PIN hash.
        fn staff_pin(&self, tenant: &str) -> impl Future<Output = StoreResult<Option<String>>> + Send;

        /// Replaces one of the menus' prompts for a tenant (checked by the caller).
        fn set_ivr_prompt(
            &self,
            tenant: &str,
            key: PromptKey,
            r: Replacement,
            now_ms: i64,
        ) -> impl Future<Output = StoreResult<()>> + Send + use<Self>;

        /// Puts a prompt back to its default; false if it was not replaced.
        fn delete_ivr_prompt(
            &self,
            tenant: &str,
            key: PromptKey,
        ) -> impl Future<Output = StoreResult<bool>> + Send + use<Self>;

        /// A tenant's prompt replacements.
        fn ivr_prompts(
            &self,
            tenant: &str,
        ) -> impl Future<Output = StoreResult<Vec<(PromptKey, Replacement)>>> + Send;

        // ---- webhooks and their outbox (issue 16) ----

        /// Stores a webhook endpoint; Conflict if the id exists.
        fn create_webhook(
            &self,
            w: WebhookRecord,
        ) -> impl Future<Output = StoreResult<()>> + Send + use<Self>;

        /// A tenant's endpoint.
        fn webhook(
            &self,
            tenant: &str,
            id: &str,
        ) -> impl Future<Output = StoreResult<Option<WebhookRecord>>> + Send;

        /// A tenant's endpoints with id above `after`, by id, at most `limit`.
        fn webhooks(
            &self,
            tenant: &str,
            after: &str,
            limit: u32,
        ) -> impl Future<Output = StoreResult<Vec<WebhookRecord>>> + Send;

        /// Deletes an endpoint and its outbox rows; false if there was none.
        fn delete_webhook(
            &self,
            tenant: &str,
            id: &str,
        ) -> impl Future<Output = StoreResult<bool>> + Send + use<Self>;

        /// Puts an event in the outbox of every subscribed endpoint of its tenant; how many rows.
        fn enqueue_event(
            &self,
            e: NewEvent,
        ) -> impl Future<Output = StoreResult<u64>> + Send + use<Self>;

        /// Pending outbox rows due at `now_ms`, at most `per_hook` per endpoint, oldest first.
        fn due_deliveries(
            &self,
            now_ms: i64,
            per_hook: u32,
            limit: u32,
        ) -> impl Future<Output = StoreResult<Vec<DueDelivery>>> + Send;

        /// Forgets delivered outbox rows done before `delivered_before` and dead ones before
        /// `dead_before`; how many.
        fn purge_deliveries(
            &self,
            delivered_before: i64,
            dead_before: i64,
        ) -> impl Future<Output = StoreResult<u64>> + Send + use<Self>;

        /// Writes the result of a delivery attempt.
        fn record_delivery(
            &self,
            u: DeliveryUpdate,
        ) -> impl Future<Output = StoreResult<()>> + Send + use<Self>;

        /// An endpoint's outbox rows with id above `after`, by id.
        fn deliveries(
            &self,
            tenant: &str,
            webhook: &str,
            after: i64,
            limit: u32,
        ) -> impl Future<Output = StoreResult<Vec<DeliveryRecord>>> + Send;

        /// Makes an outbox row due now with a fresh retry window; false if there is none.
        fn retry_delivery(
            &self,
            tenant: &str,
            webhook: &str,
            id: i64,
            now_ms: i64,
        ) -> impl Future<Output = StoreResult<bool>> + Send + use<Self>;

        /// The campaign, tenant and number of an attempt.
        fn attempt_subject(
            &self,
            attempt: i64,
        ) -> impl Future<Output = StoreResult<Option<AttemptSubject>>> + Send;

        // ---- the audit trail (issue 16) ----

        /// Appends an entry to its tenant's chain; Conflict if another writer took its place.
        fn append_audit(
            &self,
            e: crate::audit::NewAuditEntry,
        ) -> impl Future<Output = StoreResult<crate::audit::AuditEntry>> + Send + use<Self>;

        /// A tenant's entries with seq above `after`, in chain order, at most `limit`.
        fn audit(
            &self,
            tenant: &str,
            after: i64,
            limit: u32,
        ) -> impl Future<Output = StoreResult<Vec<crate::audit::AuditEntry>>> + Send;

        /// The tenants that have a chain ('' is the platform's).
        fn audit_tenants(&self) -> impl Future<Output = StoreResult<Vec<String>>> + Send;
}
}
