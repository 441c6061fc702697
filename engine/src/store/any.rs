//! [`AnyStore`]: the store a configuration chose (SQLite or PostgreSQL), for a binary
//! that picks it at run time from `[store] url`.
//!
//! An enum rather than a trait object: [`Store`]'s methods return `impl Future`, so the
//! trait is not object-safe, and keeping it static-dispatch is the point. Each method
//! matches once and returns the chosen store's own future (a write is still queued when
//! the method is called, keeping the trait's call-order rule). The alternative, making
//! the HTTP server generic over `S: Store`, would thread a type parameter through every
//! handler, the router and the OpenAPI wiring, for one `match` saved per call.

use std::future::Future;

use super::*;

/// SQLite or PostgreSQL, as `[store] url` said.
#[derive(Clone)]
pub enum AnyStore {
    /// `sqlite://PATH`: the embedded default.
    Sqlite(SqliteStore),
    /// `postgres://...`: one database for several nodes.
    Postgres(PgStore),
}

impl AnyStore {
    /// Opens the store `url` names: `postgres://` or `postgresql://` (a PostgreSQL
    /// database) or `sqlite://PATH` (a file, created with its directory if missing).
    pub async fn open(url: &str) -> StoreResult<AnyStore> {
        if is_postgres_url(url) {
            return Ok(AnyStore::Postgres(
                PgStore::open(url, PgOptions::default()).await?,
            ));
        }
        let path = url
            .strip_prefix("sqlite://")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "store url {url:?} is not sqlite://PATH or postgres://..."
                ))
            })?;
        Ok(AnyStore::Sqlite(
            SqliteStore::open(std::path::Path::new(path), SqliteOptions::default()).await?,
        ))
    }

    /// The database's name for logs: `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::Postgres(_) => "postgres",
        }
    }
}

/// The future of one store or the other, before it is awaited.
enum Either<A, B> {
    Sqlite(A),
    Postgres(B),
}

/// Calls the method on the chosen store now (a write is queued in call order) and
/// returns a future awaiting that store's own future.
macro_rules! delegate {
    ($s:ident, $m:ident($($a:expr),*)) => {{
        let f = match $s {
            AnyStore::Sqlite(s) => Either::Sqlite(s.$m($($a),*)),
            AnyStore::Postgres(s) => Either::Postgres(s.$m($($a),*)),
        };
        async move {
            match f {
                Either::Sqlite(f) => f.await,
                Either::Postgres(f) => f.await,
            }
        }
    }};
}

impl Store for AnyStore {
    fn upsert_contacts(
        &self,
        tenant: &str,
        contacts: Vec<NewContact>,
    ) -> impl Future<Output = StoreResult<ImportReport>> + Send {
        delegate!(self, upsert_contacts(tenant, contacts))
    }

    fn set_opt_out(
        &self,
        tenant: &str,
        number: &str,
        opt_out: bool,
    ) -> impl Future<Output = StoreResult<bool>> + Send {
        delegate!(self, set_opt_out(tenant, number, opt_out))
    }

    fn contact(
        &self,
        tenant: &str,
        number: &str,
    ) -> impl Future<Output = StoreResult<Option<ContactRecord>>> + Send {
        delegate!(self, contact(tenant, number))
    }

    fn contacts(
        &self,
        tenant: &str,
        filter: &ContactFilter,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<ContactRecord>>> + Send {
        delegate!(self, contacts(tenant, filter, after, limit))
    }

    fn erase_contact(
        &self,
        tenant: &str,
        number: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
        delegate!(self, erase_contact(tenant, number))
    }

    fn contact_groups(
        &self,
        tenant: &str,
        callable_only: bool,
    ) -> impl Future<Output = StoreResult<Vec<ContactGroup>>> + Send {
        delegate!(self, contact_groups(tenant, callable_only))
    }

    fn import_streets(
        &self,
        tenant: &str,
        streets: Vec<Street>,
    ) -> impl Future<Output = StoreResult<u64>> + Send + use<> {
        delegate!(self, import_streets(tenant, streets))
    }

    fn streets(&self, tenant: &str) -> impl Future<Output = StoreResult<Vec<Street>>> + Send {
        delegate!(self, streets(tenant))
    }

    fn create_campaign(
        &self,
        spec: CampaignSpec,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<CampaignRecord>> + Send {
        delegate!(self, create_campaign(spec, now_ms))
    }

    fn campaign(
        &self,
        id: i64,
    ) -> impl Future<Output = StoreResult<Option<CampaignRecord>>> + Send {
        delegate!(self, campaign(id))
    }

    fn campaign_by_name(
        &self,
        tenant: &str,
        name: &str,
    ) -> impl Future<Output = StoreResult<Option<CampaignRecord>>> + Send {
        delegate!(self, campaign_by_name(tenant, name))
    }

    fn campaigns(
        &self,
        states: &[CampaignState],
    ) -> impl Future<Output = StoreResult<Vec<CampaignRecord>>> + Send {
        delegate!(self, campaigns(states))
    }

    fn tenant_campaigns(
        &self,
        tenant: &str,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<CampaignRecord>>> + Send {
        delegate!(self, tenant_campaigns(tenant, after, limit))
    }

    fn set_campaign_state(
        &self,
        id: i64,
        to: CampaignState,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<CampaignRecord>> + Send {
        delegate!(self, set_campaign_state(id, to, now_ms))
    }

    fn due_contacts(
        &self,
        campaign: i64,
        now_ms: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<DueContact>>> + Send {
        delegate!(self, due_contacts(campaign, now_ms, limit))
    }

    fn progress(&self, campaign: i64) -> impl Future<Output = StoreResult<Progress>> + Send {
        delegate!(self, progress(campaign))
    }

    fn campaign_report(
        &self,
        campaign: i64,
        since_ms: i64,
    ) -> impl Future<Output = StoreResult<CampaignReport>> + Send {
        delegate!(self, campaign_report(campaign, since_ms))
    }

    fn begin_attempt(
        &self,
        a: AttemptStart,
    ) -> impl Future<Output = StoreResult<i64>> + Send + use<> {
        delegate!(self, begin_attempt(a))
    }

    fn attempt_answered(
        &self,
        attempt: i64,
        at_ms: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
        delegate!(self, attempt_answered(attempt, at_ms))
    }

    fn close_contact(
        &self,
        campaign: i64,
        contact: i64,
        outcome: Outcome,
    ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
        delegate!(self, close_contact(campaign, contact, outcome))
    }

    fn finish_attempt(
        &self,
        end: AttemptEnd,
        next: ContactNext,
    ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
        delegate!(self, finish_attempt(end, next))
    }

    fn dangling(&self) -> impl Future<Output = StoreResult<Vec<Dangling>>> + Send {
        delegate!(self, dangling())
    }

    fn attempts(
        &self,
        campaign: i64,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<AttemptRecord>>> + Send {
        delegate!(self, attempts(campaign, after, limit))
    }

    fn create_tenant(
        &self,
        tenant: TenantRecord,
        token_sha256: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
        delegate!(self, create_tenant(tenant, token_sha256))
    }

    fn tenants(
        &self,
        after: &str,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<TenantRecord>>> + Send {
        delegate!(self, tenants(after, limit))
    }

    fn tenant_by_token(
        &self,
        token_sha256: &str,
    ) -> impl Future<Output = StoreResult<Option<String>>> + Send {
        delegate!(self, tenant_by_token(token_sha256))
    }

    fn admin_token_hash(&self) -> impl Future<Output = StoreResult<Option<String>>> + Send {
        delegate!(self, admin_token_hash())
    }

    fn init_admin_token_hash(
        &self,
        sha256: &str,
    ) -> impl Future<Output = StoreResult<String>> + Send + use<> {
        delegate!(self, init_admin_token_hash(sha256))
    }

    fn insert_prompt(
        &self,
        p: PromptRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
        delegate!(self, insert_prompt(p))
    }

    fn prompt(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = StoreResult<Option<PromptRecord>>> + Send {
        delegate!(self, prompt(tenant, id))
    }

    fn prompts(
        &self,
        tenant: &str,
        after: &str,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<PromptRecord>>> + Send {
        delegate!(self, prompts(tenant, after, limit))
    }

    fn delete_prompt(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send + use<> {
        delegate!(self, delete_prompt(tenant, id))
    }

    fn idempotent_reply(
        &self,
        scope: &str,
        key: &str,
    ) -> impl Future<Output = StoreResult<Option<StoredReply>>> + Send {
        delegate!(self, idempotent_reply(scope, key))
    }

    fn save_idempotent_reply(
        &self,
        scope: &str,
        key: &str,
        reply: StoredReply,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
        delegate!(self, save_idempotent_reply(scope, key, reply, now_ms))
    }

    fn ping(&self) -> impl Future<Output = StoreResult<()>> + Send {
        delegate!(self, ping())
    }

    fn tenant(&self, id: &str) -> impl Future<Output = StoreResult<Option<TenantRecord>>> + Send {
        delegate!(self, tenant(id))
    }

    fn create_did(&self, did: Did) -> impl Future<Output = StoreResult<()>> + Send + use<> {
        delegate!(self, create_did(did))
    }

    fn put_did(&self, did: Did) -> impl Future<Output = StoreResult<()>> + Send + use<> {
        delegate!(self, put_did(did))
    }

    fn did(&self, number: &str) -> impl Future<Output = StoreResult<Option<Did>>> + Send {
        delegate!(self, did(number))
    }

    fn dids(&self, after: &str, limit: u32) -> impl Future<Output = StoreResult<Vec<Did>>> + Send {
        delegate!(self, dids(after, limit))
    }

    fn delete_did(&self, number: &str) -> impl Future<Output = StoreResult<bool>> + Send + use<> {
        delegate!(self, delete_did(number))
    }

    fn put_prefix_limit(
        &self,
        limit: crate::model::prefix_limit::PrefixLimit,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
        delegate!(self, put_prefix_limit(limit, now_ms))
    }

    fn prefix_limits(
        &self,
    ) -> impl Future<Output = StoreResult<Vec<crate::model::prefix_limit::PrefixLimit>>> + Send
    {
        delegate!(self, prefix_limits())
    }

    fn delete_prefix_limit(
        &self,
        tenant: Option<&str>,
        prefix: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send + use<> {
        delegate!(self, delete_prefix_limit(tenant, prefix))
    }

    fn register(
        &self,
        tenant: &str,
        r: NewRegistration,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Registered>> + Send + use<> {
        delegate!(self, register(tenant, r, now_ms))
    }

    fn unregister(
        &self,
        tenant: &str,
        number: &str,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Unregistered>> + Send + use<> {
        delegate!(self, unregister(tenant, number, now_ms))
    }

    fn registration(
        &self,
        tenant: &str,
        number: &str,
    ) -> impl Future<Output = StoreResult<Option<RegistrationRecord>>> + Send {
        delegate!(self, registration(tenant, number))
    }

    fn registrations(
        &self,
        tenant: &str,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<RegistrationRecord>>> + Send {
        delegate!(self, registrations(tenant, after, limit))
    }

    fn set_staff_pin(
        &self,
        tenant: &str,
        pin_hash: &str,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
        delegate!(self, set_staff_pin(tenant, pin_hash, now_ms))
    }

    fn staff_pin(&self, tenant: &str) -> impl Future<Output = StoreResult<Option<String>>> + Send {
        delegate!(self, staff_pin(tenant))
    }

    fn set_ivr_prompt(
        &self,
        tenant: &str,
        key: PromptKey,
        r: Replacement,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
        delegate!(self, set_ivr_prompt(tenant, key, r, now_ms))
    }

    fn delete_ivr_prompt(
        &self,
        tenant: &str,
        key: PromptKey,
    ) -> impl Future<Output = StoreResult<bool>> + Send + use<> {
        delegate!(self, delete_ivr_prompt(tenant, key))
    }

    fn ivr_prompts(
        &self,
        tenant: &str,
    ) -> impl Future<Output = StoreResult<Vec<(PromptKey, Replacement)>>> + Send {
        delegate!(self, ivr_prompts(tenant))
    }

    fn create_webhook(
        &self,
        w: WebhookRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
        delegate!(self, create_webhook(w))
    }

    fn webhook(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = StoreResult<Option<WebhookRecord>>> + Send {
        delegate!(self, webhook(tenant, id))
    }

    fn webhooks(
        &self,
        tenant: &str,
        after: &str,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<WebhookRecord>>> + Send {
        delegate!(self, webhooks(tenant, after, limit))
    }

    fn delete_webhook(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send + use<> {
        delegate!(self, delete_webhook(tenant, id))
    }

    fn enqueue_event(&self, e: NewEvent) -> impl Future<Output = StoreResult<u64>> + Send + use<> {
        delegate!(self, enqueue_event(e))
    }

    fn due_deliveries(
        &self,
        now_ms: i64,
        per_hook: u32,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<DueDelivery>>> + Send {
        delegate!(self, due_deliveries(now_ms, per_hook, limit))
    }

    fn purge_deliveries(
        &self,
        delivered_before: i64,
        dead_before: i64,
    ) -> impl Future<Output = StoreResult<u64>> + Send + use<> {
        delegate!(self, purge_deliveries(delivered_before, dead_before))
    }

    fn record_delivery(
        &self,
        u: DeliveryUpdate,
    ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
        delegate!(self, record_delivery(u))
    }

    fn deliveries(
        &self,
        tenant: &str,
        webhook: &str,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<DeliveryRecord>>> + Send {
        delegate!(self, deliveries(tenant, webhook, after, limit))
    }

    fn retry_delivery(
        &self,
        tenant: &str,
        webhook: &str,
        id: i64,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send + use<> {
        delegate!(self, retry_delivery(tenant, webhook, id, now_ms))
    }

    fn attempt_subject(
        &self,
        attempt: i64,
    ) -> impl Future<Output = StoreResult<Option<AttemptSubject>>> + Send {
        delegate!(self, attempt_subject(attempt))
    }

    fn append_audit(
        &self,
        e: crate::audit::NewAuditEntry,
    ) -> impl Future<Output = StoreResult<crate::audit::AuditEntry>> + Send + use<> {
        delegate!(self, append_audit(e))
    }

    fn audit(
        &self,
        tenant: &str,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<crate::audit::AuditEntry>>> + Send {
        delegate!(self, audit(tenant, after, limit))
    }

    fn audit_tenants(&self) -> impl Future<Output = StoreResult<Vec<String>>> + Send {
        delegate!(self, audit_tenants())
    }
}
