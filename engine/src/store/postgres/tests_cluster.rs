//! Several nodes on one PostgreSQL database: claims are disjoint, a run whose lease ran
//! out is fenced (its claims taken over, its attempts refused and closed by others, its
//! beat told so), and shares written under the lock add up to at most the trunk.
//! Expiry is simulated by moving a node's last beat back, not by waiting.

use super::test_cluster::new_database;
use super::*;
use crate::model::{CampaignSpec, NewContact, NumberType, Outcome, Priority, Source, Target};
use crate::store::{AttemptEnd, AttemptStart, ContactNext};

async fn node(url: &str, id: &str) -> PgStore {
    let s = PgStore::open(url, PgOptions::default()).await.unwrap();
    let j = NodeJoin {
        id: id.into(),
        sip_addr: format!("127.0.0.1:{}", 5060 + id.len()),
        media_ip: "127.0.0.1".into(),
        http_addr: "127.0.0.1:8080".into(),
        lease_ms: 5_000,
    };
    assert!(s.join(&j).await.unwrap() > 0);
    s
}

/// A running campaign of `n` contacts; its id.
async fn campaign(s: &PgStore, n: u32) -> i64 {
    let list = (0..n)
        .map(|i| NewContact {
            number: format!("+39077100{i:04}"),
            number_type: NumberType::Fixed,
            street: String::new(),
            house_number: String::new(),
            zone: "a".into(),
            source: Source::Directory,
            opt_out: false,
        })
        .collect();
    s.upsert_contacts("t", list).await.unwrap();
    let spec = CampaignSpec {
        tenant: "t".into(),
        name: "c".into(),
        prompt: "p".into(),
        target: Target {
            all: true,
            ..Target::default()
        },
        priority: Priority::Normal,
        window: None,
        caller_id: None,
        ring_timeout_s: None,
        play_count: 1,
        retry: Default::default(),
        delivery: Default::default(),
    };
    let c = s.create_campaign(spec, 1).await.unwrap();
    s.set_campaign_state(c.id, CampaignState::Running, 2)
        .await
        .unwrap();
    c.id
}

fn start(c: i64, contact: i64) -> AttemptStart {
    AttemptStart {
        campaign: c,
        contact,
        number: format!("n{contact}"),
        call_id: format!("cid-{contact}-{}", rand::random::<u32>()),
        trunk: "a".into(),
        started_ms: 10,
    }
}

async fn expire(s: &PgStore, id: &str) {
    sqlx::query("UPDATE cluster_nodes SET beat_ms = beat_ms - 60000 WHERE id = $1")
        .bind(id)
        .execute(&*s.read)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_claim_disjoint_contacts_and_only_call_their_own() {
    let Some(url) = new_database().await else {
        return;
    };
    let (a, b) = (node(&url, "a").await, node(&url, "b").await);
    let c = campaign(&a, 100).await;
    let (da, db) = tokio::join!(a.due_contacts(c, 10, 60), b.due_contacts(c, 10, 60));
    let (da, db) = (da.unwrap(), db.unwrap());
    assert_eq!(da.len() + db.len(), 100, "{} + {}", da.len(), db.len());
    let ia: std::collections::HashSet<i64> = da.iter().map(|d| d.contact).collect();
    assert!(
        db.iter().all(|d| !ia.contains(&d.contact)),
        "a contact claimed twice"
    );
    // A node asking again gets its own claims back (the core's queue dedupes them).
    assert_eq!(a.due_contacts(c, 10, 1000).await.unwrap().len(), da.len());
    // B cannot journal an attempt on A's claim; A can.
    let theirs = da[0].contact;
    assert!(matches!(
        b.begin_attempt(start(c, theirs)).await,
        Err(StoreError::Conflict(_))
    ));
    a.begin_attempt(start(c, theirs)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_past_its_lease_is_fenced_and_its_work_taken_over() {
    let Some(url) = new_database().await else {
        return;
    };
    let (a, b) = (node(&url, "a").await, node(&url, "b").await);
    let c = campaign(&a, 10).await;
    let due = a.due_contacts(c, 10, 10).await.unwrap();
    assert_eq!(due.len(), 10);
    let open = a.begin_attempt(start(c, due[0].contact)).await.unwrap();
    let answered = a.begin_attempt(start(c, due[1].contact)).await.unwrap();
    a.attempt_answered(answered, 20).await.unwrap();
    // While A lives, its attempts are not B's to close, nor its claims B's to take.
    assert!(b.dangling().await.unwrap().is_empty());
    assert!(b.due_contacts(c, 10, 100).await.unwrap().is_empty());

    expire(&a, "a").await;
    let d = b.dangling().await.unwrap();
    assert_eq!(
        d.iter().map(|d| d.attempt).collect::<Vec<_>>(),
        vec![open, answered]
    );
    for x in &d {
        let (end, next) = crate::dialer::recovery::recovered_end(x, 30);
        b.finish_attempt(end, next).await.unwrap();
    }
    // B takes over every unanswered contact (the one whose attempt was open included).
    let taken = b.due_contacts(c, 100, 100).await.unwrap();
    assert_eq!(taken.len(), 9);
    assert!(taken.iter().all(|t| t.contact != due[1].contact));
    // A, back from its stall, may not call on its old claims nor close the attempt B
    // closed, and its beat says the lease is gone.
    assert!(a.begin_attempt(start(c, due[2].contact)).await.is_err());
    let end = AttemptEnd::new(open, Outcome::Busy, 486, "Busy Here");
    assert!(a
        .finish_attempt(end, ContactNext::RetryAt(0))
        .await
        .is_err());
    let lost = a.beat("a", 0, &[], |_| vec![]).await.unwrap();
    assert_eq!(lost, BeatOutcome::Lost);
    let states: Vec<(String, NodeState)> = a
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.id, n.state))
        .collect();
    assert_eq!(
        states,
        vec![("a".into(), NodeState::Dead), ("b".into(), NodeState::Up)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_written_under_the_lock_never_exceed_the_trunk() {
    let Some(url) = new_database().await else {
        return;
    };
    let nodes = [
        node(&url, "a").await,
        node(&url, "b").await,
        node(&url, "c").await,
    ];
    let trunks = vec!["t".to_string()];
    let load = crate::dialer::core::TrunkLoad {
        name: "t".into(),
        wants: true,
        active: 0,
        factor: 1.0,
        cps: 30.0,
        max_channels: 60,
    };
    for _round in 0..3 {
        for (rank, (s, id)) in nodes.iter().zip(["a", "b", "c"]).enumerate() {
            let o = s
                .beat(id, 0, &trunks, |peers| {
                    let theirs: Vec<&TrunkShareRow> = peers.iter().map(|p| &p.row).collect();
                    vec![crate::cluster::shares::my_share(&load, &theirs, rank)]
                })
                .await
                .unwrap();
            assert!(matches!(o, BeatOutcome::Held { .. }));
            // What the nodes committed is what the others read: its sum holds.
            let rows: Vec<(f64, i64)> =
                sqlx::query_as("SELECT cps, reserved FROM cluster_trunk_shares")
                    .fetch_all(&*nodes[0].read)
                    .await
                    .unwrap();
            let cps: f64 = rows.iter().map(|r| r.0).sum();
            assert!(cps <= 30.0 + 1e-9, "{cps} CPS");
            assert!(rows.iter().map(|r| r.1).sum::<i64>() <= 60);
        }
    }
    // After a few beats each wanting node holds a third.
    let rows: Vec<(f64,)> = sqlx::query_as("SELECT cps FROM cluster_trunk_shares")
        .fetch_all(&*nodes[0].read)
        .await
        .unwrap();
    assert!(rows.iter().all(|r| (r.0 - 10.0).abs() < 1e-9), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trunk_changes_are_read_by_version_with_their_author() {
    let Some(url) = new_database().await else {
        return;
    };
    let (a, b) = (node(&url, "a").await, node(&url, "b").await);
    assert!(b.cluster_trunk_changes(0).await.unwrap().is_empty());
    let cfg = r#"{"name":"x","proxy":"127.0.0.1:5060","cps":10,"max_channels":20}"#;
    let v1 = a.put_cluster_trunk("x", Some(cfg)).await.unwrap();
    let v2 = b.put_cluster_trunk("y", Some(cfg)).await.unwrap();
    assert!(v2 > v1);
    let all = b.cluster_trunk_changes(0).await.unwrap();
    let names: Vec<(&str, i64)> = all.iter().map(|c| (c.name.as_str(), c.fence)).collect();
    assert_eq!(names, vec![("x", a.fence()), ("y", b.fence())]);
    let back: serde_json::Value = serde_json::from_str(all[0].config.as_deref().unwrap()).unwrap();
    assert_eq!(back["cps"], 10);
    // Only what is newer than a version is read again; a removal keeps the row, empty.
    let v3 = b.put_cluster_trunk("x", None).await.unwrap();
    let after = a.cluster_trunk_changes(v2).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!((after[0].version, after[0].config.as_deref()), (v3, None));
    assert!(a.cluster_trunk_changes(v3).await.unwrap().is_empty());
}

/// The node's last beat on the database's clock.
async fn beat_ms(c: &mut sqlx::PgConnection, id: &str) -> i64 {
    sqlx::query_scalar("SELECT beat_ms FROM cluster_nodes WHERE id = $1")
        .bind(id)
        .fetch_one(c)
        .await
        .unwrap()
}

/// The lease is renewed on the beat's own connection and before the shares lock: with
/// every reader connection taken (claims and API reads under load) and the shares lock
/// held by another node's beat, the lease still moves on at once; the shares follow once
/// the lock is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_beat_renews_the_lease_with_the_readers_busy_and_the_shares_locked() {
    use sqlx::Connection;
    let Some(url) = new_database().await else {
        return;
    };
    let s = node(&url, "a").await;
    let mut busy = vec![];
    for _ in 0..PgOptions::default().readers {
        busy.push(s.read.acquire().await.unwrap());
    }
    let mut other = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut tx = other.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(super::cluster::SHARES_LOCK)
        .execute(&mut *tx)
        .await
        .unwrap();
    let before = beat_ms(&mut tx, "a").await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let beat = tokio::spawn({
        let s = s.clone();
        async move { s.beat("a", 3, &["t".into()], |_| vec![]).await }
    });
    let mut renewed = false;
    for _ in 0..100 {
        if beat_ms(&mut tx, "a").await > before {
            renewed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        renewed,
        "the lease waited for the readers or the shares lock"
    );
    assert!(!beat.is_finished(), "the shares did not wait for the lock");
    tx.commit().await.unwrap();
    let out = tokio::time::timeout(std::time::Duration::from_secs(10), beat)
        .await
        .expect("the beat finishes once the lock is free")
        .unwrap()
        .unwrap();
    assert!(matches!(out, BeatOutcome::Held { .. }));
    drop(busy);
}
