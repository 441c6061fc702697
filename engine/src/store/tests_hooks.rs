//! The store suite's tests of webhooks (endpoints, outbox, redelivery) and of the audit
//! chain (append, read back, verified), for both stores.

use super::tests::{contact, fresh, spec, suite, Harness, Pg, Sqlite};
use crate::audit::{self, NewAuditEntry};
use crate::model::{CampaignState, Outcome};
use crate::store::{
    AttemptEnd, AttemptStart, ContactNext, DeliveryUpdate, NewEvent, Store, WebhookRecord,
};
use crate::webhook::{DeliveryState, EventKind};

fn hook(id: &str, tenant: &str, events: &[EventKind]) -> WebhookRecord {
    WebhookRecord {
        id: id.into(),
        tenant: tenant.into(),
        url: format!("http://127.0.0.1:9/{id}"),
        events: events.to_vec(),
        secret: "whsec_AAAA".into(),
        created_ms: 1,
    }
}

fn event(tenant: &str, kind: EventKind, n: u32) -> NewEvent {
    NewEvent {
        tenant: tenant.into(),
        kind,
        event_id: format!("msg_{n}"),
        payload: format!("{{\"n\":{n}}}"),
        now_ms: 100 + i64::from(n),
    }
}

async fn outbox_fans_out_retries_and_redelivers<H: Harness>() {
    let Some((_h, s)) = fresh::<H>().await else {
        return;
    };
    let (call, state) = (EventKind::CallCompleted, EventKind::CampaignStateChanged);
    s.create_webhook(hook("wh_a", "t", &[call, state]))
        .await
        .unwrap();
    s.create_webhook(hook("wh_b", "t", &[state])).await.unwrap();
    s.create_webhook(hook("wh_c", "u", &[call])).await.unwrap();
    assert!(s.create_webhook(hook("wh_a", "t", &[call])).await.is_err());
    assert_eq!(
        s.webhook("t", "wh_a").await.unwrap().unwrap().events,
        vec![call, state]
    );
    assert!(
        s.webhook("u", "wh_a").await.unwrap().is_none(),
        "another tenant's"
    );
    let ids: Vec<_> = s
        .webhooks("t", "", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, vec!["wh_a", "wh_b"]);

    // Each event reaches the tenant's subscribers only.
    assert_eq!(s.enqueue_event(event("t", call, 1)).await.unwrap(), 1);
    assert_eq!(s.enqueue_event(event("t", state, 2)).await.unwrap(), 2);
    assert_eq!(
        s.enqueue_event(event("t", EventKind::CampaignProgress, 3))
            .await
            .unwrap(),
        0
    );
    // One per endpoint at most when asked so: wh_a's backlog does not hide wh_b.
    let firsts = s.due_deliveries(1_000, 1, 10).await.unwrap();
    let seen: Vec<_> = firsts
        .iter()
        .map(|d| d.delivery.event_id.as_str())
        .collect();
    assert_eq!(seen, vec!["msg_1", "msg_2"]);
    assert_eq!(firsts[1].delivery.webhook, "wh_b");
    let due = s.due_deliveries(1_000, 10, 10).await.unwrap();
    let seen: Vec<_> = due
        .iter()
        .map(|d| (d.delivery.webhook.as_str(), d.delivery.event_id.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![("wh_a", "msg_1"), ("wh_a", "msg_2"), ("wh_b", "msg_2")]
    );
    assert_eq!(due[0].url, "http://127.0.0.1:9/wh_a");
    assert_eq!(due[0].secret, "whsec_AAAA");
    assert!(
        s.due_deliveries(100, 10, 10).await.unwrap().is_empty(),
        "not due yet"
    );

    // One delivered, one failing (later), one dead.
    let upd = |id, state, next_ms| DeliveryUpdate {
        id,
        state,
        attempts: 1,
        next_ms,
        last_status: Some(500),
        last_error: Some("HTTP 500".into()),
        done_ms: None,
    };
    let (d0, d1, d2) = (due[0].delivery.id, due[1].delivery.id, due[2].delivery.id);
    s.record_delivery(upd(d0, DeliveryState::Delivered, 0))
        .await
        .unwrap();
    s.record_delivery(upd(d1, DeliveryState::Pending, 5_000))
        .await
        .unwrap();
    s.record_delivery(upd(d2, DeliveryState::Dead, 0))
        .await
        .unwrap();
    assert!(s.due_deliveries(4_999, 10, 10).await.unwrap().is_empty());
    assert_eq!(
        s.due_deliveries(5_000, 10, 10).await.unwrap()[0]
            .delivery
            .id,
        d1
    );
    let listed = s.deliveries("t", "wh_b", 0, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, DeliveryState::Dead);
    assert_eq!(listed[0].last_status, Some(500));

    // Manual redelivery: due now, new window; not across tenants.
    assert!(!s.retry_delivery("u", "wh_b", d2, 9_000).await.unwrap());
    assert!(s.retry_delivery("t", "wh_b", d2, 9_000).await.unwrap());
    let again = s.deliveries("t", "wh_b", 0, 10).await.unwrap();
    assert_eq!(
        (again[0].state, again[0].next_ms, again[0].since_ms),
        (DeliveryState::Pending, 9_000, 9_000)
    );

    // Old delivered and dead rows are forgotten; pending ones never.
    s.record_delivery(DeliveryUpdate {
        done_ms: Some(50),
        ..upd(d0, DeliveryState::Delivered, 0)
    })
    .await
    .unwrap();
    assert_eq!(s.purge_deliveries(100, 100).await.unwrap(), 1);
    assert_eq!(s.deliveries("t", "wh_a", 0, 10).await.unwrap().len(), 1);

    // Deleting an endpoint drops its outbox.
    assert!(s.delete_webhook("t", "wh_b").await.unwrap());
    assert!(!s.delete_webhook("t", "wh_b").await.unwrap());
    assert!(s.deliveries("t", "wh_b", 0, 10).await.unwrap().is_empty());
}

async fn attempts_name_their_campaign_and_tenant<H: Harness>() {
    let Some((_h, s)) = fresh::<H>().await else {
        return;
    };
    s.upsert_contacts("t", vec![contact(0, "a")]).await.unwrap();
    let c = s.create_campaign(spec(&["a"]), 1).await.unwrap();
    s.set_campaign_state(c.id, CampaignState::Running, 2)
        .await
        .unwrap();
    let d = s.due_contacts(c.id, 10, 10).await.unwrap().remove(0);
    let id = s
        .begin_attempt(AttemptStart {
            campaign: c.id,
            contact: d.contact,
            number: d.number.clone(),
            call_id: "x1".into(),
            trunk: "x".into(),
            started_ms: 10,
        })
        .await
        .unwrap();
    s.finish_attempt(
        AttemptEnd::new(id, Outcome::Busy, 486, "Busy"),
        ContactNext::Done,
    )
    .await
    .unwrap();
    let subj = s.attempt_subject(id).await.unwrap().unwrap();
    assert_eq!((subj.campaign, subj.tenant.as_str()), (c.id, "t"));
    assert_eq!(subj.number, d.number);
    assert!(s.attempt_subject(id + 100).await.unwrap().is_none());
}

fn act(tenant: &str, n: i64) -> NewAuditEntry {
    NewAuditEntry {
        tenant: tenant.into(),
        at_ms: 1_000 + n,
        actor: "token:0123".into(),
        action: "campaign.start".into(),
        subject: n.to_string(),
        content: format!("{{\"n\":{n}}}"),
    }
}

async fn audit_chains_per_tenant<H: Harness>() {
    let Some((_h, s)) = fresh::<H>().await else {
        return;
    };
    for n in 0..5 {
        s.append_audit(act("t", n)).await.unwrap();
        if n % 2 == 0 {
            s.append_audit(act(audit::PLATFORM, n)).await.unwrap();
        }
    }
    assert_eq!(
        s.audit_tenants().await.unwrap(),
        vec!["".to_string(), "t".into()]
    );
    let t = s.audit("t", 0, 100).await.unwrap();
    assert_eq!(
        t.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(t[0].prev_hash, audit::GENESIS);
    assert_eq!(audit::verify("t", &t).unwrap().count, 5);
    assert_eq!(
        audit::verify("", &s.audit("", 0, 100).await.unwrap())
            .unwrap()
            .count,
        3
    );
    // Pages continue the chain.
    assert_eq!(s.audit("t", 3, 100).await.unwrap()[0].prev_hash, t[2].hash);
    // Reopening (a restart) appends after the head.
    let again = s.append_audit(act("t", 9)).await.unwrap();
    assert_eq!(
        (again.seq, again.prev_hash.as_str()),
        (6, t[4].hash.as_str())
    );
}

suite!(
    outbox_fans_out_retries_and_redelivers,
    attempts_name_their_campaign_and_tenant,
    audit_chains_per_tenant
);
