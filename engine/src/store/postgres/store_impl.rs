//! [`Store`] for [`PgStore`]: writes are queued on the writer (in call order), reads
//! go to the reader pool. Each method only wires; the SQL is in the concern's file.

use std::future::Future;

use super::{
    api, audit_log, campaigns, contacts, dids, journal, prefix_limits, registrations, webhooks,
    PgStore,
};
use crate::ivr::{PromptKey, Replacement};
use crate::model::{
    CampaignSpec, CampaignState, Did, NewContact, NewRegistration, Outcome, Registered,
    Unregistered,
};
use crate::store::*;

crate::store::wiring::impl_store!(PgStore);
