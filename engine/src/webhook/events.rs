// The events the dialer and the API emit, built from what they have at hand.

use serde_json::json;

use super::{Event, EventKind};
use crate::model::{CampaignState, Registered};
use crate::store::{AttemptEnd, AttemptSubject, CampaignRecord};

impl Event {
    /// An attempt ended. Whose it is (`subject`) comes from the dialer, which has it in
    /// hand; without it (the campaign was gone) the outbox writer reads it from the journal.
    pub fn call_completed(end: &AttemptEnd, subject: Option<AttemptSubject>) -> Event {
        let mut e = Event {
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
        };
        if let Some(subj) = subject {
            e.set_subject(subj);
        }
        e
    }

    /// Completes a call's event with whose the attempt is: tenant and campaign for the
    /// outbox, campaign and number in the payload.
    pub fn set_subject(&mut self, subj: AttemptSubject) {
        if let Some(d) = self.data.as_object_mut() {
            d.insert("campaign_id".into(), subj.campaign.into());
            d.insert("number".into(), subj.number.into());
        }
        self.tenant = Some(subj.tenant);
        self.campaign = Some(subj.campaign);
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
