//! The dialer core against the real SQLite store: a crash between the journal and the
//! INVITE (the core is dropped with INVITEs it asked for unsent) is recovered at restart.
//! No socket and no sleep: the store is the only I/O, and the core's clock is passed in.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use engine::dialer::contacts::{NewContact, Source};
use engine::dialer::core::{Action, CoreConfig, DialerCore, StoreReply};
use engine::dialer::recovery::{recover, RECOVERED};
use engine::dialer::{CampaignSpec, CampaignState, DialerConfig, NumberType, Priority, Target};
use engine::model::Outcome;
use engine::store::{SqliteOptions, SqliteStore, Store};

const WALL: i64 = 1_800_000_000_000;

fn spec() -> CampaignSpec {
    CampaignSpec {
        tenant: "anzio".into(),
        name: "flood".into(),
        prompt: "flood.wav".into(),
        target: Target {
            all: true,
            ..Target::default()
        },
        priority: Priority::Emergency,
        window: None,
        caller_id: None,
        ring_timeout_s: None,
        play_count: 1,
        retry: Default::default(),
        delivery: Default::default(),
    }
}

/// Runs the core's store actions on the real store until it asks for INVITEs; returns
/// the journaled attempt ids (the INVITEs are never sent: the process "crashes").
async fn run_until_invites(core: &mut DialerCore, store: &SqliteStore, now: Instant) -> Vec<i64> {
    let mut journaled = vec![];
    let mut invites = 0;
    for _ in 0..100 {
        let Some(a) = core.poll_action() else {
            break;
        };
        match a {
            Action::LoadCampaigns => {
                let list = store.campaigns(&[CampaignState::Running]).await.unwrap();
                core.handle_store(now, WALL, StoreReply::Campaigns(list));
            }
            Action::LoadDue {
                campaign,
                now_ms,
                limit,
            } => {
                let due = store.due_contacts(campaign.0, now_ms, limit).await.unwrap();
                core.handle_store(now, WALL, StoreReply::Due(campaign, due));
            }
            Action::JournalBegin(call, start) => {
                let r = store.begin_attempt(start).await;
                journaled.push(*r.as_ref().unwrap());
                core.handle_store(now, WALL, StoreReply::Journaled(call, r));
            }
            Action::Invite { .. } => invites += 1,
            _ => {}
        }
    }
    assert!(invites > 0, "the core asked for INVITEs");
    journaled
}

#[tokio::test]
async fn a_crash_between_journal_and_invite_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    let contacts = (0..3)
        .map(|i| NewContact {
            number: format!("+39077128{i:04}"),
            number_type: NumberType::Fixed,
            street: "Via Roma".into(),
            house_number: format!("{i}"),
            zone: "z1".into(),
            source: Source::Directory,
            opt_out: false,
        })
        .collect();
    store.upsert_contacts("anzio", contacts).await.unwrap();
    let c = store.create_campaign(spec(), WALL).await.unwrap();
    store
        .set_campaign_state(c.id, CampaignState::Running, WALL)
        .await
        .unwrap();

    let text = "[[trunk]]\nname='a'\nproxy='127.0.0.1:5060'\nmax_channels=10\ncps=10\n";
    let trunk = DialerConfig::load_with(text, &|_| None)
        .unwrap()
        .trunks
        .remove(0);
    let proxy: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let cfg = CoreConfig {
        media_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        seed: 1,
    };
    let now = Instant::now();
    let mut core = DialerCore::new(cfg, vec![(trunk, proxy)], now);
    let journaled = run_until_invites(&mut core, &store, now).await;
    assert_eq!(
        journaled.len(),
        2,
        "cps 10 lets two attempts be picked ahead"
    );
    // The first one was answered just before the crash (its answer is journaled).
    store
        .attempt_answered(journaled[0], WALL + 10)
        .await
        .unwrap();
    drop(core);
    drop(store);

    // Restart.
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    let wall = WALL + 60_000;
    assert_eq!(recover(&store, wall).await.unwrap(), 2);
    let rows = store.attempts(c.id, 0, 10).await.unwrap();
    assert_eq!(rows.len(), 2);
    let answered = rows.iter().find(|r| r.id == journaled[0]).unwrap();
    assert_eq!(answered.outcome, Some(Outcome::Answered));
    let lost = rows.iter().find(|r| r.id == journaled[1]).unwrap();
    assert_eq!(lost.outcome, Some(Outcome::Failed));
    assert_eq!(lost.sip_reason.as_deref(), Some(RECOVERED));
    assert!(!lost.counted, "our fault: it does not use a retry");
    // The unanswered contact is due again at once, with no attempt counted; the answered
    // one is done; the third was never picked and is still due.
    let due = store.due_contacts(c.id, wall, 10).await.unwrap();
    let due_ids: Vec<i64> = due.iter().map(|d| d.contact).collect();
    assert_eq!(due.len(), 2, "{due:?}");
    assert!(due.iter().all(|d| d.attempts == 0));
    assert!(!due_ids.contains(&answered.contact));
    assert!(due_ids.contains(&lost.contact));
    let p = store.progress(c.id).await.unwrap();
    assert_eq!((p.dialing, p.done, p.pending), (0, 1, 2));
    // Nothing is left dialing.
    assert!(store.dangling().await.unwrap().is_empty());
    assert_eq!(recover(&store, wall).await.unwrap(), 0);
}
