//! The store suite's tests of inbound numbers, registrations, staff PINs and phone-menu
//! prompt replacements, for both stores (the harness is in tests.rs).

use super::tests::{fresh, suite, Harness, Pg, Sqlite};
use crate::ivr::{PromptKey, Replacement};
use crate::model::{Did, Flow, NewRegistration, NumberType, Registered, Source, Unregistered};
use crate::store::{ContactFilter, Store, StoreError, TenantRecord};

fn reg(number: &str, zone: Option<&str>) -> NewRegistration {
    NewRegistration {
        number: number.into(),
        number_type: NumberType::Mobile,
        source: Source::Ivr,
        zone: zone.map(String::from),
        consent_ms: 1000,
        notice_version: "it-2026-1".into(),
    }
}

async fn register_change_zone_unregister_and_list<H: Harness>() {
    let Some((_h, s)) = fresh::<H>().await else {
        return;
    };
    let n = "+393331234567";
    assert_eq!(
        s.register("itri", reg(n, Some("Lido")), 10).await.unwrap(),
        Registered::New
    );
    let c = s.contact("itri", n).await.unwrap().unwrap();
    assert_eq!(
        (c.contact.source, c.contact.zone.as_str(), c.contact.opt_out),
        (Source::Ivr, "Lido", false)
    );
    // A second registration of the same number changes its zone: still one row.
    assert_eq!(
        s.register("itri", reg(n, None), 20).await.unwrap(),
        Registered::ZoneChanged
    );
    let live = s.registration("itri", n).await.unwrap().unwrap();
    assert_eq!(live.zone, None);
    assert_eq!(live.consent_ms, 1000);
    assert_eq!(s.registrations("itri", 0, 10).await.unwrap().len(), 1);
    assert!(s.registration("fondi", n).await.unwrap().is_none());

    assert_eq!(
        s.unregister("itri", n, 30).await.unwrap(),
        Unregistered::Erased
    );
    assert!(s.contact("itri", n).await.unwrap().is_none(), "erased");
    assert!(s.registration("itri", n).await.unwrap().is_none());
    assert_eq!(
        s.unregister("itri", n, 31).await.unwrap(),
        Unregistered::Unknown
    );
    // Registering again makes a new consent record.
    s.register("itri", reg(n, Some("Centro")), 40)
        .await
        .unwrap();
    let all = s.registrations("itri", 0, 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].deleted_ms, Some(30));
    assert_eq!(all[1].deleted_ms, None);
    assert_eq!(all[1].zone.as_deref(), Some("Centro"));
    assert_eq!(
        s.registrations("itri", all[0].id, 10).await.unwrap().len(),
        1
    );
    let f = ContactFilter {
        source: Some(Source::Ivr),
        ..Default::default()
    };
    assert_eq!(s.contacts("itri", &f, 0, 10).await.unwrap().len(), 1);
}

async fn concurrent_registrations_of_one_number_store_one_row<H: Harness>() {
    let Some((_h, s)) = fresh::<H>().await else {
        return;
    };
    let futs: Vec<_> = (0..20)
        .map(|_| s.register("itri", reg("+393331234567", Some("Lido")), 5))
        .collect();
    for f in futs {
        f.await.unwrap();
    }
    assert_eq!(s.registrations("itri", 0, 100).await.unwrap().len(), 1);
}

async fn staff_pin_is_set_and_rotated<H: Harness>() {
    let Some((_h, s)) = fresh::<H>().await else {
        return;
    };
    assert_eq!(s.staff_pin("itri").await.unwrap(), None);
    s.set_staff_pin("itri", "h1", 1).await.unwrap();
    s.set_staff_pin("itri", "h2", 2).await.unwrap();
    assert_eq!(s.staff_pin("itri").await.unwrap().as_deref(), Some("h2"));
    assert_eq!(s.staff_pin("fondi").await.unwrap(), None);
}

async fn prompt_replacements_are_set_replaced_and_reset<H: Harness>() {
    let Some((_h, s)) = fresh::<H>().await else {
        return;
    };
    let text = Replacement::Text("Ciao {town}".into());
    let rec = Replacement::Recording("p1".into());
    s.set_ivr_prompt("itri", PromptKey::Greeting, text.clone(), 1)
        .await
        .unwrap();
    s.set_ivr_prompt("itri", PromptKey::MainMenu, text, 1)
        .await
        .unwrap();
    s.set_ivr_prompt("itri", PromptKey::MainMenu, rec.clone(), 2)
        .await
        .unwrap();
    let got = s.ivr_prompts("itri").await.unwrap();
    assert_eq!(got.len(), 2);
    assert!(got.contains(&(PromptKey::MainMenu, rec)));
    assert!(s.ivr_prompts("fondi").await.unwrap().is_empty());
    assert!(s
        .delete_ivr_prompt("itri", PromptKey::Greeting)
        .await
        .unwrap());
    assert!(!s
        .delete_ivr_prompt("itri", PromptKey::Greeting)
        .await
        .unwrap());
    assert_eq!(s.ivr_prompts("itri").await.unwrap().len(), 1);
}

fn did(n: &str, tenant: &str, flow: Flow) -> Did {
    Did {
        number: n.into(),
        tenant: tenant.into(),
        flow,
        created_ms: 7,
    }
}

async fn dids_create_conflict_put_list_delete<H: Harness>() {
    let Some((_h, s)) = fresh::<H>().await else {
        return;
    };
    let t = TenantRecord {
        id: "itri".into(),
        name: "Itri".into(),
        created_ms: 1,
    };
    s.create_tenant(t.clone(), "h").await.unwrap();
    assert_eq!(s.tenant("itri").await.unwrap(), Some(t));
    assert_eq!(s.tenant("nope").await.unwrap(), None);

    let a = did("+390771286891", "itri", Flow::Citizen);
    s.create_did(a.clone()).await.unwrap();
    assert!(matches!(
        s.create_did(a.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.create_did(did("+390771286892", "ghost", Flow::Staff))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.did("+390771286891").await.unwrap(), Some(a));

    // The configuration's put replaces tenant and flow, keeps the creation time.
    let mut b = did("+390771286891", "itri", Flow::Staff);
    b.created_ms = 99;
    s.put_did(b).await.unwrap();
    s.put_did(did("+390771000000", "fondi", Flow::Citizen))
        .await
        .unwrap();
    let all = s.dids("", 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].number, "+390771000000");
    assert_eq!(all[1].flow, Flow::Staff);
    assert_eq!(all[1].created_ms, 7);
    let page = s.dids("+390771000000", 10).await.unwrap();
    assert_eq!(page.len(), 1);

    assert!(s.delete_did("+390771286891").await.unwrap());
    assert!(!s.delete_did("+390771286891").await.unwrap());
    assert_eq!(s.did("+390771286891").await.unwrap(), None);
}

suite!(
    register_change_zone_unregister_and_list,
    concurrent_registrations_of_one_number_store_one_row,
    staff_pin_is_set_and_rotated,
    prompt_replacements_are_set_replaced_and_reset,
    dids_create_conflict_put_list_delete,
);
