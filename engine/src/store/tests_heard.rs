//! The store suite's tests of whether messages were heard (issue 14): results per
//! attempt and per contact (the best one stays), `until` not met keeping a contact due,
//! opt-out, and per-zone messages with their progress; for both stores.

use super::tests::{contact, fresh, spec, suite, Harness, Pg, Sqlite};
use crate::model::{CallResult, CampaignState, Outcome, ZoneMessage};
use crate::store::{AttemptEnd, AttemptStart, ContactNext, Store};

async fn results_until_opt_out_and_messages<H: Harness>() {
    let Some((_h, s)) = fresh::<H>().await else {
        return;
    };
    s.upsert_contacts(
        "t",
        (0..4)
            .map(|i| contact(i, ["a", "b"][i as usize % 2]))
            .collect(),
    )
    .await
    .unwrap();
    let mut sp = spec(&["a", "b"]);
    sp.delivery.messages = vec![ZoneMessage {
        zones: vec!["B".into()],
        streets: vec![],
        prompt: "b.wav".into(),
    }];
    let c = s.create_campaign(sp, 1).await.unwrap();
    s.set_campaign_state(c.id, CampaignState::Running, 2)
        .await
        .unwrap();
    let mut due = s.due_contacts(c.id, 10, 10).await.unwrap();
    due.sort_by_key(|d| d.contact);
    assert_eq!(due.len(), 4);
    // Contacts 0 and 2 are in zone a (default message), 1 and 3 in b (message 0).
    let msgs: Vec<_> = due.iter().map(|d| d.message).collect();
    assert_eq!(msgs, vec![None, Some(0), None, Some(0)]);
    let (store, campaign) = (&s, c.id);
    let mut n = 0;
    let mut attempt = move |d: &crate::store::DueContact| {
        n += 1;
        let st = AttemptStart {
            campaign,
            contact: d.contact,
            number: d.number.clone(),
            call_id: format!("h{n}"),
            trunk: "x".into(),
            started_ms: 10,
        };
        async move { store.begin_attempt(st).await.unwrap() }
    };
    let end = |id, result, satisfied, opt_out| AttemptEnd {
        result: Some(result),
        satisfied,
        opt_out,
        played_permille: Some(500),
        ..AttemptEnd::new(id, Outcome::Answered, 200, "OK")
    };
    // 0: heard but `until` not met: due again later, its result kept.
    let id = attempt(&due[0]).await;
    s.attempt_answered(id, 11).await.unwrap();
    s.finish_attempt(
        end(id, CallResult::Heard, false, false),
        ContactNext::RetryAt(50),
    )
    .await
    .unwrap();
    assert!(s
        .due_contacts(c.id, 40, 10)
        .await
        .unwrap()
        .iter()
        .all(|d| d.contact != due[0].contact));
    let again = s.due_contacts(c.id, 60, 10).await.unwrap();
    assert!(
        again.iter().any(|d| d.contact == due[0].contact),
        "{again:?}"
    );
    // ... then a partial call does not lower its result; a confirmation raises it.
    let id = attempt(&due[0]).await;
    s.finish_attempt(
        end(id, CallResult::Partial, false, false),
        ContactNext::RetryAt(70),
    )
    .await
    .unwrap();
    let r = s.campaign_report(c.id, 0).await.unwrap();
    assert_eq!((r.results.heard, r.results.partial), (1, 0));
    let id = attempt(&due[0]).await;
    s.finish_attempt(
        end(id, CallResult::Confirmed, true, false),
        ContactNext::Done,
    )
    .await
    .unwrap();
    // 1: a machine whose beep ended 2.9 s after the answer; 3: opted out.
    let id = attempt(&due[1]).await;
    let machine = AttemptEnd {
        beep_ms: Some(2900),
        ..end(id, CallResult::Machine, true, false)
    };
    s.finish_attempt(machine, ContactNext::Done).await.unwrap();
    let id = attempt(&due[3]).await;
    s.finish_attempt(
        end(id, CallResult::Confirmed, true, true),
        ContactNext::Done,
    )
    .await
    .unwrap();
    let out = s.contact("t", &due[3].number).await.unwrap().unwrap();
    assert!(out.contact.opt_out);
    let r = s.campaign_report(c.id, 0).await.unwrap();
    assert_eq!(
        (
            r.results.heard,
            r.results.confirmed,
            r.results.partial,
            r.results.machine
        ),
        (2, 2, 0, 1)
    );
    let zones: Vec<_> = r
        .zones
        .iter()
        .map(|z| {
            let r = z.counts.results;
            (z.zone.as_str(), r.confirmed, r.machine)
        })
        .collect();
    assert_eq!(zones, vec![("a", 1, 0), ("b", 1, 1)]);
    let msgs: Vec<_> = r
        .messages
        .iter()
        .map(|m| {
            (
                m.message,
                m.counts.targeted,
                m.counts.done,
                m.counts.results.heard,
            )
        })
        .collect();
    assert_eq!(msgs, vec![(None, 2, 1, 1), (Some(0), 2, 2, 1)]);
    let rows = s.attempts(c.id, 0, 10).await.unwrap();
    assert_eq!(rows[0].result, Some(CallResult::Heard));
    assert_eq!(rows[2].result, Some(CallResult::Confirmed));
    let m = rows.iter().find(|r| r.result == Some(CallResult::Machine));
    assert_eq!(m.map(|r| r.beep_ms), Some(Some(2900)));
    assert!(rows.iter().filter(|r| r.beep_ms.is_some()).count() == 1);
}

suite!(results_until_opt_out_and_messages);
