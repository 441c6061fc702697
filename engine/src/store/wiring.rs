//! The wiring of [`Store`](super::Store) for a backend, written once: every method queues
//! a write on the backend's writer (in call order) or reads from its pool, calling the
//! function of the same name in the backend's concern module (`api`, `campaigns`,
//! `contacts`, `dids`, `journal`, `registrations`). Both backends invoke [`impl_store`] with
//! those modules in scope, so the SQLite and PostgreSQL stores cannot drift apart in what
//! each method does, only in their SQL. The journal's writes go through each backend's
//! [`JournalWrites`].

use super::batch::Pending;
use super::{AttemptEnd, AttemptStart, ContactNext};
use crate::model::Outcome;

/// The journal's writes, which each backend queues its own way: SQLite synchronously on
/// its writer's handle (`sqlite/journal_write.rs`), PostgreSQL awaited in the batch with a
/// cluster node's fencing (`postgres/journal_write.rs`). Queued when called, like every
/// write, so they keep their call order.
pub(crate) trait JournalWrites {
    /// Journals an attempt before its INVITE leaves; its id.
    fn journal_begin(&self, a: AttemptStart) -> Pending<i64>;
    /// Journals an answer.
    fn journal_answered(&self, attempt: i64, at_ms: i64) -> Pending<()>;
    /// Closes a contact that gets no attempt.
    fn journal_close_contact(&self, campaign: i64, contact: i64, outcome: Outcome) -> Pending<()>;
    /// Journals an attempt's end and where its contact goes next.
    fn journal_finish(&self, end: AttemptEnd, next: ContactNext) -> Pending<()>;
}

/// Implements `Store` for `$ty` over the concern modules in scope at the call site.
macro_rules! impl_store {
    ($ty:ty) => {
        impl Store for $ty {
            fn upsert_contacts(
                &self,
                tenant: &str,
                list: Vec<NewContact>,
            ) -> impl Future<Output = StoreResult<ImportReport>> + Send {
                let t = tenant.to_string();
                self.write(move |c| Box::pin(contacts::upsert(c, t, list)))
            }

            fn set_opt_out(
                &self,
                tenant: &str,
                number: &str,
                opt_out: bool,
            ) -> impl Future<Output = StoreResult<bool>> + Send {
                let (t, n) = (tenant.to_string(), number.to_string());
                self.write(move |c| Box::pin(contacts::set_opt_out(c, t, n, opt_out)))
            }

            async fn contact(
                &self,
                tenant: &str,
                number: &str,
            ) -> StoreResult<Option<ContactRecord>> {
                contacts::one(&self.read, tenant, number).await
            }

            async fn contacts(
                &self,
                tenant: &str,
                filter: &ContactFilter,
                after: i64,
                limit: u32,
            ) -> StoreResult<Vec<ContactRecord>> {
                contacts::list(&self.read, tenant, filter, after, limit).await
            }

            fn erase_contact(
                &self,
                tenant: &str,
                number: &str,
            ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
                let (t, n) = (tenant.to_string(), number.to_string());
                self.write(move |c| Box::pin(contacts::erase(c, t, n)))
            }

            async fn contact_groups(
                &self,
                tenant: &str,
                callable_only: bool,
            ) -> StoreResult<Vec<ContactGroup>> {
                contacts::groups(&self.read, tenant, callable_only).await
            }

            fn import_streets(
                &self,
                tenant: &str,
                streets: Vec<Street>,
            ) -> impl Future<Output = StoreResult<u64>> + Send + use<> {
                let t = tenant.to_string();
                self.write(move |c| Box::pin(contacts::import_streets(c, t, streets)))
            }

            async fn streets(&self, tenant: &str) -> StoreResult<Vec<Street>> {
                contacts::streets(&self.read, tenant).await
            }

            fn create_campaign(
                &self,
                spec: CampaignSpec,
                now_ms: i64,
            ) -> impl Future<Output = StoreResult<CampaignRecord>> + Send {
                self.write(move |c| Box::pin(campaigns::create(c, spec, now_ms)))
            }

            async fn campaign(&self, id: i64) -> StoreResult<Option<CampaignRecord>> {
                campaigns::by_id(&self.read, id).await
            }

            async fn campaign_by_name(
                &self,
                tenant: &str,
                name: &str,
            ) -> StoreResult<Option<CampaignRecord>> {
                campaigns::by_name(&self.read, tenant, name).await
            }

            async fn campaigns(
                &self,
                states: &[CampaignState],
            ) -> StoreResult<Vec<CampaignRecord>> {
                campaigns::in_states(&self.read, states).await
            }

            async fn tenant_campaigns(
                &self,
                tenant: &str,
                after: i64,
                limit: u32,
            ) -> StoreResult<Vec<CampaignRecord>> {
                campaigns::of_tenant(&self.read, tenant, after, limit).await
            }

            fn set_campaign_state(
                &self,
                id: i64,
                to: CampaignState,
                now_ms: i64,
            ) -> impl Future<Output = StoreResult<CampaignRecord>> + Send {
                self.write(move |c| Box::pin(campaigns::set_state(c, id, to, now_ms)))
            }

            async fn due_contacts(
                &self,
                campaign: i64,
                now_ms: i64,
                limit: u32,
            ) -> StoreResult<Vec<DueContact>> {
                campaigns::due(&self.read, campaign, now_ms, limit).await
            }

            async fn progress(&self, campaign: i64) -> StoreResult<Progress> {
                campaigns::progress(&self.read, campaign).await
            }

            async fn campaign_report(
                &self,
                campaign: i64,
                since_ms: i64,
            ) -> StoreResult<CampaignReport> {
                campaigns::report(&self.read, campaign, since_ms).await
            }

            fn begin_attempt(
                &self,
                a: AttemptStart,
            ) -> impl Future<Output = StoreResult<i64>> + Send + use<> {
                $crate::store::wiring::JournalWrites::journal_begin(self, a)
            }

            fn attempt_answered(
                &self,
                attempt: i64,
                at_ms: i64,
            ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
                $crate::store::wiring::JournalWrites::journal_answered(self, attempt, at_ms)
            }

            fn close_contact(
                &self,
                campaign: i64,
                contact: i64,
                outcome: Outcome,
            ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
                $crate::store::wiring::JournalWrites::journal_close_contact(
                    self, campaign, contact, outcome,
                )
            }

            fn finish_attempt(
                &self,
                end: AttemptEnd,
                next: ContactNext,
            ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
                $crate::store::wiring::JournalWrites::journal_finish(self, end, next)
            }

            async fn dangling(&self) -> StoreResult<Vec<Dangling>> {
                journal::dangling(&self.read).await
            }

            async fn attempts(
                &self,
                campaign: i64,
                after: i64,
                limit: u32,
            ) -> StoreResult<Vec<AttemptRecord>> {
                journal::attempts(&self.read, campaign, after, limit).await
            }

            fn create_tenant(
                &self,
                tenant: TenantRecord,
                token_sha256: &str,
            ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
                let h = token_sha256.to_string();
                self.write(move |c| Box::pin(api::create_tenant(c, tenant, h)))
            }

            async fn tenants(&self, after: &str, limit: u32) -> StoreResult<Vec<TenantRecord>> {
                api::tenants(&self.read, after, limit).await
            }

            async fn tenant_by_token(&self, token_sha256: &str) -> StoreResult<Option<String>> {
                api::tenant_by_token(&self.read, token_sha256).await
            }

            async fn admin_token_hash(&self) -> StoreResult<Option<String>> {
                api::admin_hash(&self.read).await
            }

            fn init_admin_token_hash(
                &self,
                sha256: &str,
            ) -> impl Future<Output = StoreResult<String>> + Send + use<> {
                let h = sha256.to_string();
                self.write(move |c| Box::pin(api::init_admin_hash(c, h)))
            }

            fn insert_prompt(
                &self,
                p: PromptRecord,
            ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
                self.write(move |c| Box::pin(api::insert_prompt(c, p)))
            }

            async fn prompt(&self, tenant: &str, id: &str) -> StoreResult<Option<PromptRecord>> {
                api::prompt(&self.read, tenant, id).await
            }

            async fn prompts(
                &self,
                tenant: &str,
                after: &str,
                limit: u32,
            ) -> StoreResult<Vec<PromptRecord>> {
                api::prompts(&self.read, tenant, after, limit).await
            }

            fn delete_prompt(
                &self,
                tenant: &str,
                id: &str,
            ) -> impl Future<Output = StoreResult<bool>> + Send + use<> {
                let (t, i) = (tenant.to_string(), id.to_string());
                self.write(move |c| Box::pin(api::delete_prompt(c, t, i)))
            }

            async fn idempotent_reply(
                &self,
                scope: &str,
                key: &str,
            ) -> StoreResult<Option<StoredReply>> {
                api::idempotent_reply(&self.read, scope, key).await
            }

            fn save_idempotent_reply(
                &self,
                scope: &str,
                key: &str,
                reply: StoredReply,
                now_ms: i64,
            ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
                let (s, k) = (scope.to_string(), key.to_string());
                self.write(move |c| Box::pin(api::save_idempotent_reply(c, s, k, reply, now_ms)))
            }

            async fn ping(&self) -> StoreResult<()> {
                api::ping(&self.read).await
            }

            async fn tenant(&self, id: &str) -> StoreResult<Option<TenantRecord>> {
                dids::tenant(&self.read, id).await
            }

            fn create_did(&self, did: Did) -> impl Future<Output = StoreResult<()>> + Send + use<> {
                self.write(move |c| Box::pin(dids::create_did(c, did)))
            }

            fn put_did(&self, did: Did) -> impl Future<Output = StoreResult<()>> + Send + use<> {
                self.write(move |c| Box::pin(dids::put_did(c, did)))
            }

            async fn did(&self, number: &str) -> StoreResult<Option<Did>> {
                dids::did(&self.read, number).await
            }

            async fn dids(&self, after: &str, limit: u32) -> StoreResult<Vec<Did>> {
                dids::dids(&self.read, after, limit).await
            }

            fn delete_did(
                &self,
                number: &str,
            ) -> impl Future<Output = StoreResult<bool>> + Send + use<> {
                let n = number.to_string();
                self.write(move |c| Box::pin(dids::delete_did(c, n)))
            }

            fn put_prefix_limit(
                &self,
                limit: crate::model::prefix_limit::PrefixLimit,
                now_ms: i64,
            ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
                self.write(move |c| Box::pin(prefix_limits::put_prefix_limit(c, limit, now_ms)))
            }

            async fn prefix_limits(
                &self,
            ) -> StoreResult<Vec<crate::model::prefix_limit::PrefixLimit>> {
                prefix_limits::prefix_limits(&self.read).await
            }

            fn delete_prefix_limit(
                &self,
                tenant: Option<&str>,
                prefix: &str,
            ) -> impl Future<Output = StoreResult<bool>> + Send + use<> {
                let (t, p) = (tenant.map(str::to_string), prefix.to_string());
                self.write(move |c| Box::pin(prefix_limits::delete_prefix_limit(c, t, p)))
            }

            fn register(
                &self,
                tenant: &str,
                r: NewRegistration,
                now_ms: i64,
            ) -> impl Future<Output = StoreResult<Registered>> + Send + use<> {
                let t = tenant.to_string();
                self.write(move |c| Box::pin(registrations::register(c, t, r, now_ms)))
            }

            fn unregister(
                &self,
                tenant: &str,
                number: &str,
                now_ms: i64,
            ) -> impl Future<Output = StoreResult<Unregistered>> + Send + use<> {
                let (t, n) = (tenant.to_string(), number.to_string());
                self.write(move |c| Box::pin(registrations::unregister(c, t, n, now_ms)))
            }

            async fn registration(
                &self,
                tenant: &str,
                number: &str,
            ) -> StoreResult<Option<RegistrationRecord>> {
                registrations::live(&self.read, tenant, number).await
            }

            async fn registrations(
                &self,
                tenant: &str,
                after: i64,
                limit: u32,
            ) -> StoreResult<Vec<RegistrationRecord>> {
                registrations::list(&self.read, tenant, after, limit).await
            }

            fn set_staff_pin(
                &self,
                tenant: &str,
                pin_hash: &str,
                now_ms: i64,
            ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
                let (t, h) = (tenant.to_string(), pin_hash.to_string());
                self.write(move |c| Box::pin(registrations::set_pin(c, t, h, now_ms)))
            }

            async fn staff_pin(&self, tenant: &str) -> StoreResult<Option<String>> {
                registrations::pin(&self.read, tenant).await
            }

            fn set_ivr_prompt(
                &self,
                tenant: &str,
                key: PromptKey,
                r: Replacement,
                now_ms: i64,
            ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
                let t = tenant.to_string();
                self.write(move |c| Box::pin(registrations::set_replacement(c, t, key, r, now_ms)))
            }

            fn delete_ivr_prompt(
                &self,
                tenant: &str,
                key: PromptKey,
            ) -> impl Future<Output = StoreResult<bool>> + Send + use<> {
                let t = tenant.to_string();
                self.write(move |c| Box::pin(registrations::delete_replacement(c, t, key)))
            }

            async fn ivr_prompts(
                &self,
                tenant: &str,
            ) -> StoreResult<Vec<(PromptKey, Replacement)>> {
                registrations::replacements(&self.read, tenant).await
            }
            fn create_webhook(
                &self,
                w: WebhookRecord,
            ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
                self.write(move |c| Box::pin(webhooks::create_webhook(c, w)))
            }

            async fn webhook(&self, tenant: &str, id: &str) -> StoreResult<Option<WebhookRecord>> {
                webhooks::webhook(&self.read, tenant, id).await
            }

            async fn webhooks(
                &self,
                tenant: &str,
                after: &str,
                limit: u32,
            ) -> StoreResult<Vec<WebhookRecord>> {
                webhooks::webhooks(&self.read, tenant, after, limit).await
            }

            fn delete_webhook(
                &self,
                tenant: &str,
                id: &str,
            ) -> impl Future<Output = StoreResult<bool>> + Send + use<> {
                let (t, i) = (tenant.to_string(), id.to_string());
                self.write(move |c| Box::pin(webhooks::delete_webhook(c, t, i)))
            }

            fn enqueue_event(
                &self,
                e: NewEvent,
            ) -> impl Future<Output = StoreResult<u64>> + Send + use<> {
                self.write(move |c| Box::pin(webhooks::enqueue_event(c, e)))
            }

            async fn due_deliveries(
                &self,
                now_ms: i64,
                per_hook: u32,
                limit: u32,
            ) -> StoreResult<Vec<DueDelivery>> {
                webhooks::due_deliveries(&self.read, now_ms, per_hook, limit).await
            }

            fn purge_deliveries(
                &self,
                delivered_before: i64,
                dead_before: i64,
            ) -> impl Future<Output = StoreResult<u64>> + Send + use<> {
                self.write(move |c| {
                    Box::pin(webhooks::purge_deliveries(c, delivered_before, dead_before))
                })
            }

            fn record_delivery(
                &self,
                u: DeliveryUpdate,
            ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
                self.write(move |c| Box::pin(webhooks::record_delivery(c, u)))
            }

            async fn deliveries(
                &self,
                tenant: &str,
                webhook: &str,
                after: i64,
                limit: u32,
            ) -> StoreResult<Vec<DeliveryRecord>> {
                webhooks::deliveries(&self.read, tenant, webhook, after, limit).await
            }

            fn retry_delivery(
                &self,
                tenant: &str,
                webhook: &str,
                id: i64,
                now_ms: i64,
            ) -> impl Future<Output = StoreResult<bool>> + Send + use<> {
                let (t, w) = (tenant.to_string(), webhook.to_string());
                self.write(move |c| Box::pin(webhooks::retry_delivery(c, t, w, id, now_ms)))
            }

            async fn attempt_subject(&self, attempt: i64) -> StoreResult<Option<AttemptSubject>> {
                webhooks::attempt_subject(&self.read, attempt).await
            }

            fn append_audit(
                &self,
                e: crate::audit::NewAuditEntry,
            ) -> impl Future<Output = StoreResult<crate::audit::AuditEntry>> + Send + use<> {
                self.write(move |c| Box::pin(audit_log::append_audit(c, e)))
            }

            async fn audit(
                &self,
                tenant: &str,
                after: i64,
                limit: u32,
            ) -> StoreResult<Vec<crate::audit::AuditEntry>> {
                audit_log::audit(&self.read, tenant, after, limit).await
            }

            async fn audit_tenants(&self) -> StoreResult<Vec<String>> {
                audit_log::audit_tenants(&self.read).await
            }
        }
    };
}

pub(crate) use impl_store;
