//! One suite for every [`Store`]: each test is a generic fn over a [`Harness`] (how to
//! open, and reopen after a "crash", a fresh store), instantiated below for SQLite (a
//! database file in a temporary directory) and for PostgreSQL (a fresh database of the
//! test process's throw-away cluster, see [`super::postgres::test_cluster`]).

use super::postgres::test_cluster;
use super::*;
use crate::model::{AttemptState, NumberType, Priority, RetryPolicy, Source, Target};

/// Where a test's data lives, for one kind of store.
pub(super) trait Harness: Sized + Send + Sync {
    type S: Store;
    /// A new, empty place (nothing opened yet); None when this kind is skipped here
    /// (no PostgreSQL installed).
    async fn new() -> Option<Self>;
    /// A store over this place, as a (re)starting process opens it.
    async fn open(&self) -> Self::S;
}

/// A fresh store of kind `H` and its place.
pub(super) async fn fresh<H: Harness>() -> Option<(H, H::S)> {
    let h = H::new().await?;
    let s = h.open().await;
    Some((h, s))
}

pub(super) struct Sqlite(tempfile::TempDir);

impl Harness for Sqlite {
    type S = SqliteStore;
    async fn new() -> Option<Self> {
        Some(Sqlite(tempfile::tempdir().unwrap()))
    }
    async fn open(&self) -> SqliteStore {
        SqliteStore::open(&self.0.path().join("s.db"), SqliteOptions::default())
            .await
            .unwrap()
    }
}

pub(super) struct Pg(String);

impl Harness for Pg {
    type S = PgStore;
    async fn new() -> Option<Self> {
        Some(Pg(test_cluster::new_database().await?))
    }
    async fn open(&self) -> PgStore {
        PgStore::open(&self.0, PgOptions::default()).await.unwrap()
    }
}

/// Instantiates each generic test for both stores: `sqlite::name` and `postgres::name`.
macro_rules! suite {
    ($($t:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $t() {
                    super::$t::<super::Sqlite>().await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $t() {
                    super::$t::<super::Pg>().await
                }
            )*
        }
    };
}

pub(super) use suite;

suite!(
    concurrent_opens_migrate_once,
    journal_round_trip_and_recovery,
    contacts_listing_erasure_and_groups,
    campaign_report_counts_outcomes_zones_and_recent_attempts,
    api_tables_round_trip,
    writes_keep_call_order_and_a_failed_one_spares_its_batch,
    an_import_repeating_a_number_ends_as_row_by_row,
);

pub(super) fn contact(n: u32, zone: &str) -> NewContact {
    NewContact {
        number: format!("+39077100{n:04}"),
        number_type: NumberType::Fixed,
        street: format!("Via {}", n % 3),
        house_number: n.to_string(),
        zone: zone.into(),
        source: Source::Directory,
        opt_out: false,
    }
}

pub(super) fn spec(zones: &[&str]) -> CampaignSpec {
    CampaignSpec {
        tenant: "t".into(),
        name: "c".into(),
        prompt: "p".into(),
        target: Target {
            zones: zones.iter().map(|z| z.to_string()).collect(),
            ..Default::default()
        },
        priority: Priority::Normal,
        window: None,
        caller_id: None,
        ring_timeout_s: None,
        play_count: 1,
        retry: RetryPolicy::default(),
        delivery: Default::default(),
    }
}

/// Several processes (nodes) opening one new database at once apply each migration
/// once, and later opens find it migrated.
async fn concurrent_opens_migrate_once<H: Harness>() {
    for _ in 0..3 {
        let Some(h) = H::new().await else {
            return;
        };
        let (a, b, c) = tokio::join!(h.open(), h.open(), h.open());
        drop((a, b));
        c.ping().await.unwrap();
        h.open().await.ping().await.unwrap();
    }
}

async fn journal_round_trip_and_recovery<H: Harness>() {
    let Some((h, s)) = fresh::<H>().await else {
        return;
    };
    let mut list: Vec<_> = (0..30)
        .map(|i| contact(i, ["a", "b", "c"][i as usize % 3]))
        .collect();
    list[0].opt_out = true;
    let rep = s.upsert_contacts("t", list.clone()).await.unwrap();
    assert_eq!(rep.inserted, 30);
    // Re-import: updates, and the opt-out is kept even if the new row lacks it.
    list[0].opt_out = false;
    let rep = s.upsert_contacts("t", list).await.unwrap();
    assert_eq!((rep.inserted, rep.updated), (0, 30));

    let c = s.create_campaign(spec(&["a", "b"]), 1).await.unwrap();
    assert!(matches!(
        s.create_campaign(spec(&["a"]), 1).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(s
        .set_campaign_state(c.id, CampaignState::Completed, 2)
        .await
        .is_err());
    s.set_campaign_state(c.id, CampaignState::Running, 2)
        .await
        .unwrap();
    let due = s.due_contacts(c.id, 10, 1000).await.unwrap();
    assert_eq!(due.len(), 19); // 20 in zones a+b, one opted out

    let mut ids = vec![];
    for d in &due[..3] {
        let id = s
            .begin_attempt(AttemptStart {
                campaign: c.id,
                contact: d.contact,
                number: d.number.clone(),
                call_id: format!("cid-{}", d.contact),
                trunk: "a".into(),
                started_ms: 100,
            })
            .await
            .unwrap();
        ids.push(id);
    }
    assert_eq!(s.due_contacts(c.id, 10, 1000).await.unwrap().len(), 16);
    s.attempt_answered(ids[0], 150).await.unwrap();
    s.finish_attempt(
        AttemptEnd {
            ended_ms: 200,
            ..AttemptEnd::new(ids[1], Outcome::Busy, 486, "Busy Here")
        },
        ContactNext::RetryAt(500),
    )
    .await
    .unwrap();
    // A second final record for one attempt is refused.
    assert!(s
        .finish_attempt(
            AttemptEnd::new(ids[1], Outcome::Busy, 0, ""),
            ContactNext::Done
        )
        .await
        .is_err());
    drop(s);

    // "Crash": reopen; two attempts are dangling, one of them answered.
    let s = h.open().await;
    let d = s.dangling().await.unwrap();
    assert_eq!(d.len(), 2);
    assert!(d[0].answered && !d[1].answered);
    let p = s.progress(c.id).await.unwrap();
    assert_eq!(
        (p.targeted, p.dialing, p.answered, p.attempts),
        (19, 2, 1, 3)
    );
    assert_eq!(s.due_contacts(c.id, 10_000, 1000).await.unwrap().len(), 17);
    let a = s.attempts(c.id, 0, 10).await.unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(a[1].outcome, Some(Outcome::Busy));
    assert_eq!(a[0].state, AttemptState::Dialing);
    assert_eq!(a[0].answered_ms, Some(150));
}

async fn contacts_listing_erasure_and_groups<H: Harness>() {
    let Some((_h, s)) = fresh::<H>().await else {
        return;
    };
    let mut list: Vec<_> = (0..6)
        .map(|i| contact(i, ["a", "b"][i as usize % 2]))
        .collect();
    list[5].source = Source::Registration;
    list[3].opt_out = true;
    s.upsert_contacts("t", list).await.unwrap();
    s.upsert_contacts("other", vec![contact(0, "a")])
        .await
        .unwrap();

    let one = s.contact("t", "+390771000002").await.unwrap().unwrap();
    assert_eq!(
        (one.contact.zone.as_str(), one.contact.number_type),
        ("a", NumberType::Fixed)
    );
    assert!(s.contact("t", "+390771009999").await.unwrap().is_none());
    let f = ContactFilter {
        zone: Some("b".into()),
        ..Default::default()
    };
    let b = s.contacts("t", &f, 0, 10).await.unwrap();
    assert_eq!(b.len(), 3);
    assert!(b.windows(2).all(|w| w[0].id < w[1].id));
    let page = s.contacts("t", &f, b[0].id, 1).await.unwrap();
    assert_eq!(page[0].id, b[1].id);
    let f = ContactFilter {
        source: Some(Source::Registration),
        ..Default::default()
    };
    assert_eq!(s.contacts("t", &f, 0, 10).await.unwrap().len(), 1);

    let all: u64 = s
        .contact_groups("t", false)
        .await
        .unwrap()
        .iter()
        .map(|g| g.contacts)
        .sum();
    let callable: u64 = s
        .contact_groups("t", true)
        .await
        .unwrap()
        .iter()
        .map(|g| g.contacts)
        .sum();
    assert_eq!((all, callable), (6, 5));

    // Erasure: refused while dialing, then the contact goes and the journal keeps no number.
    let mut sp = spec(&["a"]);
    sp.target.all = true;
    let c = s.create_campaign(sp, 1).await.unwrap();
    s.set_campaign_state(c.id, CampaignState::Running, 2)
        .await
        .unwrap();
    let target = s.contact("t", "+390771000000").await.unwrap().unwrap();
    let id = s
        .begin_attempt(AttemptStart {
            campaign: c.id,
            contact: target.id,
            number: target.contact.number.clone(),
            call_id: "x@y".into(),
            trunk: "a".into(),
            started_ms: 5,
        })
        .await
        .unwrap();
    assert!(matches!(
        s.erase_contact("t", &target.contact.number).await,
        Err(StoreError::Conflict(_))
    ));
    s.finish_attempt(
        AttemptEnd::new(id, Outcome::NoAnswer, 480, "x"),
        ContactNext::Done,
    )
    .await
    .unwrap();
    s.erase_contact("t", &target.contact.number).await.unwrap();
    assert!(s
        .contact("t", &target.contact.number)
        .await
        .unwrap()
        .is_none());
    assert!(s
        .contact("other", &target.contact.number)
        .await
        .unwrap()
        .is_some());
    assert_eq!(s.attempts(c.id, 0, 10).await.unwrap()[0].number, "");
    assert!(matches!(
        s.erase_contact("t", &target.contact.number).await,
        Err(StoreError::NotFound)
    ));
}

async fn campaign_report_counts_outcomes_zones_and_recent_attempts<H: Harness>() {
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
    let c = s.create_campaign(spec(&["a", "b"]), 1).await.unwrap();
    s.set_campaign_state(c.id, CampaignState::Running, 2)
        .await
        .unwrap();
    let due = s.due_contacts(c.id, 10, 10).await.unwrap();
    for (i, d) in due.iter().enumerate().take(3) {
        let id = s
            .begin_attempt(AttemptStart {
                campaign: c.id,
                contact: d.contact,
                number: d.number.clone(),
                call_id: format!("c{i}"),
                trunk: "a".into(),
                started_ms: 1_000 * i as i64,
            })
            .await
            .unwrap();
        let o = [Outcome::Answered, Outcome::Busy, Outcome::Busy][i];
        s.finish_attempt(AttemptEnd::new(id, o, 0, ""), ContactNext::Done)
            .await
            .unwrap();
    }
    let r = s.campaign_report(c.id, 1_000).await.unwrap();
    // The report's one pass counts contacts by state as `progress` does.
    assert_eq!(r.progress, s.progress(c.id).await.unwrap());
    let p = &r.progress;
    assert_eq!(
        (p.targeted, p.pending, p.dialing, p.done, p.answered, p.attempts),
        (4, 1, 0, 3, 1, 3)
    );
    assert_eq!(r.outcomes, vec![(Outcome::Answered, 1), (Outcome::Busy, 2)]);
    assert_eq!(r.recent_attempts, 2);
    let zones: Vec<_> = r
        .zones
        .iter()
        .map(|z| {
            let c = z.counts;
            (z.zone.as_str(), c.targeted, c.done, c.answered)
        })
        .collect();
    assert_eq!(zones, vec![("a", 2, 2, 1), ("b", 2, 1, 0)]);
    let mine = s.tenant_campaigns("t", 0, 10).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert!(s.tenant_campaigns("t", c.id, 10).await.unwrap().is_empty());
    assert!(s.tenant_campaigns("x", 0, 10).await.unwrap().is_empty());
}

async fn api_tables_round_trip<H: Harness>() {
    let Some((_h, s)) = fresh::<H>().await else {
        return;
    };
    s.ping().await.unwrap();
    let t = |id: &str| TenantRecord {
        id: id.into(),
        name: format!("Town {id}"),
        created_ms: 7,
    };
    s.create_tenant(t("b"), "hb").await.unwrap();
    s.create_tenant(t("a"), "ha").await.unwrap();
    assert!(matches!(
        s.create_tenant(t("a"), "hz").await,
        Err(StoreError::Conflict(_))
    ));
    let ids: Vec<_> = s
        .tenants("", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(s.tenants("a", 10).await.unwrap()[0].id, "b");
    assert_eq!(s.tenant_by_token("hb").await.unwrap().as_deref(), Some("b"));
    assert_eq!(s.tenant_by_token("nope").await.unwrap(), None);

    assert_eq!(s.admin_token_hash().await.unwrap(), None);
    assert_eq!(s.init_admin_token_hash("h1").await.unwrap(), "h1");
    assert_eq!(s.init_admin_token_hash("h2").await.unwrap(), "h1");
    assert_eq!(s.admin_token_hash().await.unwrap().as_deref(), Some("h1"));

    let p = PromptRecord {
        id: "p1".into(),
        tenant: "a".into(),
        name: "alert".into(),
        path: "/x/p1.wav".into(),
        duration_ms: 1500,
        codecs: vec!["PCMU".into(), "PCMA".into()],
        loudness: Loudness {
            before_lufs: -30.0,
            after_lufs: -16.0,
            peak_dbfs: -1.5,
            gain_db: 14.0,
        },
        created_ms: 9,
    };
    s.insert_prompt(p.clone()).await.unwrap();
    assert_eq!(s.prompt("a", "p1").await.unwrap(), Some(p.clone()));
    assert_eq!(s.prompt("b", "p1").await.unwrap(), None);
    assert_eq!(s.prompts("a", "", 10).await.unwrap(), vec![p]);
    assert!(s.prompts("a", "p1", 10).await.unwrap().is_empty());
    assert!(!s.delete_prompt("b", "p1").await.unwrap());
    assert!(s.delete_prompt("a", "p1").await.unwrap());
    assert_eq!(s.prompt("a", "p1").await.unwrap(), None);

    let n = s
        .import_streets(
            "a",
            vec![
                Street {
                    street: "Via Roma".into(),
                    zone: "Centro".into(),
                },
                Street {
                    street: "Via Verdi".into(),
                    zone: "Borgo".into(),
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    // Same zone again: nothing moves; another zone (any case): one row moves.
    let again = vec![
        Street {
            street: "via roma".into(),
            zone: "Centro".into(),
        },
        Street {
            street: "VIA VERDI".into(),
            zone: "Lido".into(),
        },
    ];
    assert_eq!(s.import_streets("a", again).await.unwrap(), 1);
    let mut st = s.streets("a").await.unwrap();
    st.sort_by(|x, y| x.street.cmp(&y.street));
    assert_eq!(st[1].zone, "Lido");
    assert!(s.streets("b").await.unwrap().is_empty());

    let reply = StoredReply {
        request_sha256: "r".into(),
        status: 201,
        content_type: "application/json".into(),
        body: b"{}".to_vec(),
    };
    assert_eq!(s.idempotent_reply("sc", "k").await.unwrap(), None);
    s.save_idempotent_reply("sc", "k", reply.clone(), 1)
        .await
        .unwrap();
    let mut other = reply.clone();
    other.status = 200;
    s.save_idempotent_reply("sc", "k", other, 2).await.unwrap();
    assert_eq!(s.idempotent_reply("sc", "k").await.unwrap(), Some(reply));
    assert_eq!(s.idempotent_reply("sc2", "k").await.unwrap(), None);
}

/// Writes queued without awaiting apply in call order, and one that fails (a duplicate
/// tenant) fails alone: the others of its batch commit (on PostgreSQL, where an error
/// aborts a transaction, this needs each write's savepoint).
async fn writes_keep_call_order_and_a_failed_one_spares_its_batch<H: Harness>() {
    let Some((_h, s)) = fresh::<H>().await else {
        return;
    };
    let t = |id: &str| TenantRecord {
        id: id.into(),
        name: id.into(),
        created_ms: 1,
    };
    let a = s.create_tenant(t("a"), "ha");
    let dup = s.create_tenant(t("a"), "hz");
    let c = s.create_tenant(t("c"), "hc");
    let first = s.init_admin_token_hash("h1");
    let second = s.init_admin_token_hash("h2");
    // Awaited in reverse: the order is the calls', not the awaits'.
    let (second, first, c, dup, a) = (
        second.await.unwrap(),
        first.await.unwrap(),
        c.await,
        dup.await,
        a.await,
    );
    assert_eq!((first.as_str(), second.as_str()), ("h1", "h1"));
    a.unwrap();
    c.unwrap();
    assert!(matches!(dup, Err(StoreError::Conflict(_))));
    let ids: Vec<_> = s
        .tenants("", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, ["a", "c"]);
    assert_eq!(s.tenant_by_token("ha").await.unwrap().as_deref(), Some("a"));
}

/// An import is applied in multi-row statements: a number listed twice in one import
/// (also across the statements' boundary) ends as if the rows were applied one by one
/// (later fields win, an opt-out sticks), and the report counts the repeat as an update.
async fn an_import_repeating_a_number_ends_as_row_by_row<H: Harness>() {
    let Some((_h, s)) = fresh::<H>().await else {
        return;
    };
    let mut list: Vec<_> = (0..7000).map(|i| contact(i, "a")).collect();
    list[10].opt_out = true;
    let mut again = contact(10, "b");
    again.street = "Via Nuova".into();
    list.insert(6000, again);
    list.insert(12, contact(11, "c"));
    let rep = s.upsert_contacts("t", list).await.unwrap();
    assert_eq!((rep.inserted, rep.updated), (7000, 2));
    let ten = s
        .contact("t", &contact(10, "").number)
        .await
        .unwrap()
        .unwrap()
        .contact;
    assert_eq!((ten.zone.as_str(), ten.street.as_str()), ("b", "Via Nuova"));
    assert!(ten.opt_out);
    let eleven = s
        .contact("t", &contact(11, "").number)
        .await
        .unwrap()
        .unwrap()
        .contact;
    assert_eq!(eleven.zone, "c");
    let rep = s
        .upsert_contacts("t", vec![contact(10, "a"), contact(7000, "a")])
        .await
        .unwrap();
    assert_eq!((rep.inserted, rep.updated), (1, 1));
    assert!(
        s.contact("t", &contact(10, "").number)
            .await
            .unwrap()
            .unwrap()
            .contact
            .opt_out
    );
}

/// An attempt of `contact` with Call-ID `call` (the journal tests of each backend).
pub(super) fn attempt(campaign: i64, contact: i64, call: &str) -> AttemptStart {
    AttemptStart {
        campaign,
        contact,
        number: format!("+39077100{contact:04}"),
        call_id: call.into(),
        trunk: "a".into(),
        started_ms: 10,
    }
}
