//! Webhooks (issue 16 item 3): events a tenant's systems subscribe to, pushed signed
//! (Standard Webhooks) from a persistent outbox in the store, retried with backoff.
//!
//! The path of an event: the dialer (or the API) hands an [`Event`] to an [`EventSink`],
//! a bounded in-memory queue whose `emit` never waits (a full queue drops and counts, so
//! a slow outbox or receiver can never hold a call up); a writer task turns each event
//! into one outbox row per subscribed endpoint (`Store::enqueue_event`); a delivery task
//! posts due rows, records the result and reschedules failures by [`schedule`] until
//! 24 h have passed (then the row is `dead`, kept for manual redelivery).

mod events;
pub mod schedule;
pub mod sign;
mod sink;
pub mod target;

pub use sink::{Event, EventSink};
pub use target::TargetPolicy;

/// What happened, as subscribed to and as written in a payload's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// An attempt ended (any outcome).
    CallCompleted,
    /// A campaign moved to another state (start, pause, resume, cancel, completion).
    CampaignStateChanged,
    /// A campaign's counts, at most once per throttle interval while calls end.
    CampaignProgress,
    /// A resident registered.
    RegistrationCreated,
    /// A registered resident chose another zone (by phone or on the web form).
    RegistrationUpdated,
    /// A resident unregistered (opt-out and erasure).
    RegistrationDeleted,
}

impl EventKind {
    /// Every kind, in the order the API documents them.
    pub const ALL: [EventKind; 6] = [
        EventKind::CallCompleted,
        EventKind::CampaignStateChanged,
        EventKind::CampaignProgress,
        EventKind::RegistrationCreated,
        EventKind::RegistrationUpdated,
        EventKind::RegistrationDeleted,
    ];

    /// The wire name (`call.completed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::CallCompleted => "call.completed",
            EventKind::CampaignStateChanged => "campaign.state_changed",
            EventKind::CampaignProgress => "campaign.progress",
            EventKind::RegistrationCreated => "registration.created",
            EventKind::RegistrationUpdated => "registration.updated",
            EventKind::RegistrationDeleted => "registration.deleted",
        }
    }

    /// The kind a wire name names.
    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an outbox row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt (`next_ms`).
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Retried for 24 h without success; only a manual redelivery sends it again.
    Dead,
}

impl DeliveryState {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    /// The state a stored word names.
    pub fn parse(s: &str) -> Option<DeliveryState> {
        [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Dead,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(EventKind::parse("call.started"), None);
        for s in ["pending", "delivered", "dead"] {
            assert_eq!(DeliveryState::parse(s).map(|d| d.as_str()), Some(s));
        }
        assert_eq!(DeliveryState::parse("gone"), None);
    }
}
