//! Records of the webhooks' endpoints and outbox, and what call.completed needs to know
//! about an attempt (issue 16 item 3). The audit trail's records are `crate::audit`'s.

use crate::webhook::{DeliveryState, EventKind};

/// A tenant's webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRecord {
    /// Identifier (`wh_…`).
    pub id: String,
    /// Owner.
    pub tenant: String,
    /// Where events are POSTed.
    pub url: String,
    /// The kinds subscribed to.
    pub events: Vec<EventKind>,
    /// The signing secret (`whsec_…`); shown to the tenant only when created.
    pub secret: String,
    /// Creation time, Unix ms.
    pub created_ms: i64,
}

/// One event for one endpoint in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// Row id (delivery order among due rows).
    pub id: i64,
    /// The endpoint.
    pub webhook: String,
    /// Its tenant.
    pub tenant: String,
    /// The message id (`webhook-id`), the same for every attempt.
    pub event_id: String,
    /// The event's kind.
    pub event: EventKind,
    /// The JSON body sent.
    pub payload: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due, Unix ms (pending rows).
    pub next_ms: i64,
    /// Start of its 24 h retry window (creation, or the last manual redelivery).
    pub since_ms: i64,
    /// HTTP status of the last attempt, if the receiver answered.
    pub last_status: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Enqueued, Unix ms.
    pub created_ms: i64,
    /// Delivered or given up, Unix ms.
    pub done_ms: Option<i64>,
}

/// A due outbox row with what is needed to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    /// The row.
    pub delivery: DeliveryRecord,
    /// The endpoint's URL.
    pub url: String,
    /// The endpoint's secret.
    pub secret: String,
}

/// The result of one attempt, written back to its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryUpdate {
    /// Row id.
    pub id: i64,
    /// The new state.
    pub state: DeliveryState,
    /// Attempts made, this one included.
    pub attempts: i64,
    /// The next attempt (pending rows).
    pub next_ms: i64,
    /// HTTP status, if any.
    pub last_status: Option<i64>,
    /// Why it failed, if it did.
    pub last_error: Option<String>,
    /// Delivered or dead at, Unix ms.
    pub done_ms: Option<i64>,
}

/// An event to put in the outbox of every endpoint of `tenant` subscribed to `kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Whose.
    pub tenant: String,
    /// What.
    pub kind: EventKind,
    /// Message id (`msg_…`).
    pub event_id: String,
    /// The JSON body.
    pub payload: String,
    /// Now, Unix ms: the rows are due at once.
    pub now_ms: i64,
}

/// Whose an attempt is (call.completed carries it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptSubject {
    /// Campaign id.
    pub campaign: i64,
    /// The campaign's tenant.
    pub tenant: String,
    /// The number called (blank after an erasure).
    pub number: String,
}
