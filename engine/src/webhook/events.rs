// The events the dialer and the API emit, built from what they have at hand.

use serde_json::json;

use super::{Event, EventKind};
use crate::model::{CampaignState, Registered};
use crate::store::{AttemptEnd, CampaignRecord};

impl Event {
    /// An attempt ended. Its tenant, campaign and number are looked up by the outbox
    /// writer (the journal knows them; the dialer's finish action carries only the id).
    pub fn call_completed(end: &AttemptEnd) -> Event {
        Event {
            kind: EventKind::CallCompleted,
            tenant: None,
            campaign: None,
            attempt: Some(end.attempt),
            at_ms: end.ended_ms,
            data: json!({
                "attempt_id": end.attempt,
                "outcome": end.outcome.as_str(),
                "sip_status": end.sip_status,
                "sip_reason": end.sip_reason,
                "counted": end.counted,
                "ended_ms": end.ended_ms,
                "duration_ms": end.duration_ms,
                "played_permille": end.played_permille,
                "result": end.result.map(|r| r.as_str()),
            }),
        }
    }

    /// A campaign is now in `state` (the record may still show the state before).
    pub fn campaign_state(c: &CampaignRecord, state: CampaignState, at_ms: i64) -> Event {
        Event {
            kind: EventKind::CampaignStateChanged,
            tenant: Some(c.spec.tenant.clone()),
            campaign: Some(c.id),
            attempt: None,
            at_ms,
            data: json!({
                "campaign_id": c.id,
                "name": c.spec.name,
                "state": state.as_str(),
            }),
        }
    }

    /// A resident registered, changed zone or unregistered (`kind`), through `source`
    /// (`web`, `ivr`); `zone` where the resident has one.
    pub fn registration(
        kind: EventKind,
        tenant: &str,
        number: &str,
        zone: Option<&str>,
        source: &str,
        at_ms: i64,
    ) -> Event {
        Event {
            kind,
            tenant: Some(tenant.to_string()),
            campaign: None,
            attempt: None,
            at_ms,
            data: json!({ "number": number, "zone": zone, "source": source }),
        }
    }

    /// The event a stored registration makes: a new one, or a zone change.
    pub fn registered(
        outcome: Registered,
        tenant: &str,
        number: &str,
        zone: Option<&str>,
        source: &str,
        at_ms: i64,
    ) -> Event {
        let kind = match outcome {
            Registered::New => EventKind::RegistrationCreated,
            Registered::ZoneChanged => EventKind::RegistrationUpdated,
        };
        Event::registration(kind, tenant, number, zone, source, at_ms)
    }
}
