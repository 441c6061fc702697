//! SQLite's journal writes: begin (before the INVITE), answered, finish (with where the
//! contact goes next) and closing a contact without an attempt.
//!
//! They are the writes of every call (three per attempt, six statements), so they run
//! synchronously on the writer connection's own handle (`RunOne::run_sync`: a run of them
//! in a batch under one lock of it) rather than through sqlx, which hands each statement
//! to the connection's worker thread and each row back: two thread wake-ups per
//! statement, measured at more CPU than SQLite itself spends at 2,000 attempts a second.
//! The statements are cached per run (`prepare_cached`). PostgreSQL's versions are
//! `store::postgres::journal_write`; `store/tests.rs` runs both through one suite.

use std::sync::LazyLock;

use rusqlite::{params, Connection, OptionalExtension};

use crate::model::{AttemptState, ContactState, Outcome};
use crate::store::{
    result_rank_sql, AttemptEnd, AttemptStart, ContactNext, StoreError, StoreResult,
};

/// Journals an attempt before its INVITE leaves: its contact marked dialling and the
/// attempt row.
pub(super) fn begin(c: &mut Connection, a: &AttemptStart) -> StoreResult<i64> {
    c.prepare_cached(
        "UPDATE campaign_contacts SET state = 'dialing' WHERE campaign_id = ?1 AND contact_id = ?2",
    )?
    .execute(params![a.campaign, a.contact])?;
    let id = c
        .prepare_cached(
            "INSERT INTO attempts (campaign_id, contact_id, number, call_id, trunk, state,
               started_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        )?
        .query_row(
            params![
                a.campaign,
                a.contact,
                a.number,
                a.call_id,
                a.trunk,
                AttemptState::Dialing.as_str(),
                a.started_ms
            ],
            |r| r.get(0),
        )?;
    Ok(id)
}

/// Journals an answer, on the attempt and its contact.
pub(super) fn answered(c: &mut Connection, id: i64, at: i64) -> StoreResult<()> {
    let r: Option<(i64, i64)> = c
        .prepare_cached(
            "UPDATE attempts SET answered_ms = ?1 WHERE id = ?2 RETURNING campaign_id, contact_id",
        )?
        .query_row(params![at, id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((campaign, contact)) = r {
        c.prepare_cached(
            "UPDATE campaign_contacts SET answered = TRUE WHERE campaign_id = ?1 AND contact_id = ?2",
        )?
        .execute(params![campaign, contact])?;
    }
    Ok(())
}

/// Closes a contact that gets no attempt (no trunk carries its number, say).
pub(super) fn close_contact(
    c: &mut Connection,
    campaign: i64,
    contact: i64,
    outcome: Outcome,
) -> StoreResult<()> {
    c.prepare_cached(
        "UPDATE campaign_contacts SET state = ?1, last_outcome = ?2
         WHERE campaign_id = ?3 AND contact_id = ?4",
    )?
    .execute(params![
        ContactState::Done.as_str(),
        outcome.as_str(),
        campaign,
        contact
    ])?;
    Ok(())
}

/// The contact's update at an attempt's end: a contact whose campaign's `until` is met
/// stays done whatever a late attempt says, and its result only gets better.
static FINISH_CONTACT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE campaign_contacts SET
           state = CASE WHEN satisfied OR ?1 THEN 'done' ELSE ?2 END,
           answered = answered OR ?8,
           satisfied = satisfied OR ?1,
           result = CASE WHEN ?9 > {} THEN ?10 ELSE result END,
           next_ms = ?3, attempts = attempts + ?4, last_outcome = ?5
         WHERE campaign_id = ?6 AND contact_id = ?7",
        result_rank_sql("result")
    )
});

/// Journals an attempt's end and where its contact goes next.
pub(super) fn finish(c: &mut Connection, e: &AttemptEnd, next: ContactNext) -> StoreResult<()> {
    let result = e.result.map(|r| r.as_str());
    let r: Option<(i64, i64)> = c
        .prepare_cached(
            "UPDATE attempts SET state = 'final', outcome = ?1, sip_status = ?2, sip_reason = ?3,
               counted = ?4, ended_ms = ?5, pdd_ms = ?6, duration_ms = ?7,
               played_permille = ?8, dtmf = ?9, result = ?11, beep_ms = ?12
             WHERE id = ?10 AND state = 'dialing'
             RETURNING campaign_id, contact_id",
        )?
        .query_row(
            params![
                e.outcome.as_str(),
                i64::from(e.sip_status),
                e.sip_reason,
                e.counted,
                e.ended_ms,
                e.pdd_ms,
                e.duration_ms,
                e.played_permille,
                e.dtmf,
                e.attempt,
                result,
                e.beep_ms
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((campaign, contact)) = r else {
        return Err(StoreError::Conflict(format!(
            "attempt {} is not dialing (already final?)",
            e.attempt
        )));
    };
    let (state, next_ms) = next.row();
    c.prepare_cached(&FINISH_CONTACT)?.execute(params![
        e.satisfied,
        state.as_str(),
        next_ms,
        i64::from(e.counted),
        e.outcome.as_str(),
        campaign,
        contact,
        e.outcome == Outcome::Answered,
        i64::from(e.result.map_or(0, |r| r.rank())),
        result
    ])?;
    if e.opt_out {
        c.prepare_cached("UPDATE contacts SET opt_out = TRUE WHERE id = ?1")?
            .execute(params![contact])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::model::CampaignState;
    use crate::store::tests::{attempt, contact, spec};
    use crate::store::{SqliteOptions, SqliteStore, Store, StoreError, TenantRecord};

    /// A synchronous journal write the database refuses (a second attempt with the first
    /// one's Call-ID) aborts its batch as an awaited one does: every write of the batch,
    /// synchronous or not, before or after it, is answered with an error and none lands;
    /// the next batch works. (A current-thread runtime: the writer runs only once the test
    /// awaits, so the writes are one batch.)
    #[tokio::test]
    async fn a_journal_write_the_database_refuses_aborts_its_whole_batch() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("s.db"), SqliteOptions::default())
            .await
            .unwrap();
        s.upsert_contacts("t", vec![contact(1, "a")]).await.unwrap();
        let c = s.create_campaign(spec(&["a"]), 1).await.unwrap();
        s.set_campaign_state(c.id, CampaignState::Running, 2)
            .await
            .unwrap();
        let contact = s.due_contacts(c.id, 10, 10).await.unwrap()[0].contact;
        let before = s.create_tenant(
            TenantRecord {
                id: "early".into(),
                name: "early".into(),
                created_ms: 1,
            },
            "he",
        );
        let good = s.begin_attempt(attempt(c.id, contact, "good"));
        let bad = s.begin_attempt(attempt(c.id, contact, "good"));
        let after = s.attempt_answered(1, 20);
        let bad = bad.await;
        assert!(matches!(bad, Err(StoreError::Sqlite(_))), "{bad:?}");
        let good = good.await;
        assert!(
            matches!(&good, Err(StoreError::Conflict(m)) if m.contains("batch aborted")),
            "{good:?}"
        );
        assert!(before.await.is_err());
        assert!(after.await.is_err());
        assert!(s.attempts(c.id, 0, 10).await.unwrap().is_empty());
        assert!(s.tenants("", 10).await.unwrap().is_empty());
        // The writer goes on with the next batch, synchronous writes and awaited ones.
        let id = s.begin_attempt(attempt(c.id, contact, "again"));
        let tenant = s.create_tenant(
            TenantRecord {
                id: "late".into(),
                name: "late".into(),
                created_ms: 3,
            },
            "hl",
        );
        let id = id.await.unwrap();
        tenant.await.unwrap();
        s.attempt_answered(id, 20).await.unwrap();
        let attempts = s.attempts(c.id, 0, 10).await.unwrap();
        assert_eq!(attempts[0].id, id);
        assert_eq!(attempts[0].answered_ms, Some(20));
    }
}
