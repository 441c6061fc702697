//! PostgreSQL-only behaviour (the shared suite is in store/tests.rs): the migrator's
//! advisory lock, and the writer's reconnection.

use std::time::Duration;

use sqlx::migrate::Migrate;
use sqlx::{Connection, PgConnection};

use super::test_cluster::new_database;
use super::*;

/// Backends of this database waiting on an advisory lock.
async fn advisory_waiters(c: &mut PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
           AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
    )
    .fetch_one(c)
    .await
    .unwrap()
}

async fn has_table(c: &mut PgConnection, name: &str) -> bool {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(name)
        .fetch_one(c)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrator_waits_while_another_holds_the_advisory_lock() {
    let Some(url) = new_database().await else {
        return;
    };
    // Take the lock the way sqlx's migrator does (as another node migrating would).
    let mut other = PgConnection::connect(&url).await.unwrap();
    other.lock().await.unwrap();
    let opening = tokio::spawn({
        let url = url.clone();
        async move { PgStore::open(&url, PgOptions::default()).await.map(drop) }
    });
    let mut seen = false;
    for _ in 0..400 {
        if advisory_waiters(&mut other).await > 0 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(seen, "the opening store never waited on the advisory lock");
    assert!(!opening.is_finished());
    assert!(!has_table(&mut other, "attempts").await);
    other.unlock().await.unwrap();
    opening.await.unwrap().unwrap();
    assert!(has_table(&mut other, "attempts").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_on_after_the_database_drops_the_connections() {
    let Some(url) = new_database().await else {
        return;
    };
    let s = PgStore::open(&url, PgOptions::default()).await.unwrap();
    let t = |id: &str| TenantRecord {
        id: id.into(),
        name: id.into(),
        created_ms: 1,
    };
    s.create_tenant(t("a"), "ha").await.unwrap();
    let mut admin = PgConnection::connect(&url).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!killed.is_empty());
    s.create_tenant(t("b"), "hb").await.unwrap();
    let ids: Vec<_> = s
        .tenants("", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, ["a", "b"]);
}

/// Journal writes run without a savepoint each: one the database refuses (here a second
/// attempt with the first one's Call-ID) aborts its batch. Every write of that batch
/// is answered with an error and none lands, as after a failed commit; the next batch
/// works. (A current-thread runtime: the writer runs only once the test awaits, so the
/// three writes are one batch.)
#[tokio::test]
async fn a_journal_write_the_database_refuses_aborts_its_whole_batch() {
    let Some(url) = new_database().await else {
        return;
    };
    let s = PgStore::open(&url, PgOptions::default()).await.unwrap();
    s.upsert_contacts("t", vec![crate::store::tests::contact(1, "a")])
        .await
        .unwrap();
    let c = s
        .create_campaign(crate::store::tests::spec(&["a"]), 1)
        .await
        .unwrap();
    s.set_campaign_state(c.id, CampaignState::Running, 2)
        .await
        .unwrap();
    let contact = s.due_contacts(c.id, 10, 10).await.unwrap()[0].contact;
    let good = s.begin_attempt(crate::store::tests::attempt(c.id, contact, "good"));
    let bad = s.begin_attempt(crate::store::tests::attempt(c.id, contact, "good"));
    let after = s.create_tenant(
        TenantRecord {
            id: "late".into(),
            name: "late".into(),
            created_ms: 1,
        },
        "hl",
    );
    let bad = bad.await;
    assert!(matches!(bad, Err(StoreError::Db(_))), "{bad:?}");
    let good = good.await;
    assert!(
        matches!(&good, Err(StoreError::Conflict(m)) if m.contains("batch aborted")),
        "{good:?}"
    );
    assert!(after.await.is_err());
    assert!(s.attempts(c.id, 0, 10).await.unwrap().is_empty());
    assert!(s.tenants("", 10).await.unwrap().is_empty());
    // The writer goes on with the next batch.
    let id = s
        .begin_attempt(crate::store::tests::attempt(c.id, contact, "again"))
        .await
        .unwrap();
    assert_eq!(s.attempts(c.id, 0, 10).await.unwrap()[0].id, id);
}
