//! The attempt journal: begin (before the INVITE), answered, finish (with where the
//! contact goes next), closing a contact without an attempt, and its reads.

use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::Row;

use super::corrupt;
use crate::model::{AttemptState, CallResult, ContactState, Outcome};
use crate::store::{
    result_rank_sql, AttemptEnd, AttemptRecord, AttemptStart, ContactNext, Dangling, StoreError,
    StoreResult,
};

pub(super) async fn begin(c: &mut SqliteConnection, a: AttemptStart) -> StoreResult<i64> {
    let r = sqlx::query(
        "INSERT INTO attempts (campaign_id, contact_id, number, call_id, trunk, state, started_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(a.campaign)
    .bind(a.contact)
    .bind(&a.number)
    .bind(&a.call_id)
    .bind(&a.trunk)
    .bind(AttemptState::Dialing.as_str())
    .bind(a.started_ms)
    .fetch_one(&mut *c)
    .await?;
    sqlx::query("UPDATE campaign_contacts SET state = ? WHERE campaign_id = ? AND contact_id = ?")
        .bind(ContactState::Dialing.as_str())
        .bind(a.campaign)
        .bind(a.contact)
        .execute(&mut *c)
        .await?;
    Ok(r.try_get("id")?)
}

pub(super) async fn answered(c: &mut SqliteConnection, id: i64, at: i64) -> StoreResult<()> {
    sqlx::query("UPDATE attempts SET answered_ms = ? WHERE id = ?")
        .bind(at)
        .bind(id)
        .execute(&mut *c)
        .await?;
    sqlx::query(
        "UPDATE campaign_contacts SET answered = 1
         WHERE (campaign_id, contact_id) = (SELECT campaign_id, contact_id FROM attempts WHERE id = ?)",
    )
    .bind(id)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(super) async fn close_contact(
    c: &mut SqliteConnection,
    campaign: i64,
    contact: i64,
    outcome: Outcome,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE campaign_contacts SET state = ?, last_outcome = ?
         WHERE campaign_id = ? AND contact_id = ?",
    )
    .bind(ContactState::Done.as_str())
    .bind(outcome.as_str())
    .bind(campaign)
    .bind(contact)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(super) async fn finish(
    c: &mut SqliteConnection,
    e: AttemptEnd,
    next: ContactNext,
) -> StoreResult<()> {
    let r = sqlx::query(
        "UPDATE attempts SET state = 'final', outcome = ?, sip_status = ?, sip_reason = ?,
           counted = ?, ended_ms = ?, pdd_ms = ?, duration_ms = ?, played_permille = ?, dtmf = ?,
           result = ?, beep_ms = ?
         WHERE id = ? AND state = 'dialing'
         RETURNING campaign_id, contact_id",
    )
    .bind(e.outcome.as_str())
    .bind(i64::from(e.sip_status))
    .bind(&e.sip_reason)
    .bind(e.counted)
    .bind(e.ended_ms)
    .bind(e.pdd_ms)
    .bind(e.duration_ms)
    .bind(e.played_permille)
    .bind(&e.dtmf)
    .bind(e.result.map(|r| r.as_str()))
    .bind(e.beep_ms)
    .bind(e.attempt)
    .fetch_optional(&mut *c)
    .await?;
    let Some(r) = r else {
        return Err(StoreError::Conflict(format!(
            "attempt {} is not dialing (already final?)",
            e.attempt
        )));
    };
    let (camp, contact): (i64, i64) = (r.try_get("campaign_id")?, r.try_get("contact_id")?);
    let (state, next_ms) = match next {
        ContactNext::RetryAt(ms) => (ContactState::Pending, ms),
        ContactNext::Done => (ContactState::Done, 0),
    };
    let answered = e.outcome == Outcome::Answered;
    let result = e.result.map(|r| r.as_str());
    let rank = i64::from(e.result.map_or(0, |r| r.rank()));
    // A contact whose campaign's `until` is met stays done whatever a late attempt says;
    // its result only gets better.
    let sql = format!(
        "UPDATE campaign_contacts SET
           state = CASE WHEN satisfied = 1 OR ? THEN 'done' ELSE ? END,
           answered = CASE WHEN ? THEN 1 ELSE answered END,
           satisfied = CASE WHEN ? THEN 1 ELSE satisfied END,
           result = CASE WHEN ? > {} THEN ? ELSE result END,
           next_ms = ?, attempts = attempts + ?, last_outcome = ?
         WHERE campaign_id = ? AND contact_id = ?",
        result_rank_sql("result")
    );
    sqlx::query(&sql)
        .bind(e.satisfied)
        .bind(state.as_str())
        .bind(answered)
        .bind(e.satisfied)
        .bind(rank)
        .bind(result)
        .bind(next_ms)
        .bind(i64::from(e.counted))
        .bind(e.outcome.as_str())
        .bind(camp)
        .bind(contact)
        .execute(&mut *c)
        .await?;
    if e.opt_out {
        sqlx::query("UPDATE contacts SET opt_out = 1 WHERE id = ?")
            .bind(contact)
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

pub(super) async fn dangling(db: &SqlitePool) -> StoreResult<Vec<Dangling>> {
    let rows = sqlx::query(
        "SELECT a.id, a.campaign_id, a.contact_id, a.answered_ms, cc.attempts
         FROM attempts a LEFT JOIN campaign_contacts cc
           ON cc.campaign_id = a.campaign_id AND cc.contact_id = a.contact_id
         WHERE a.state = 'dialing' ORDER BY a.id",
    )
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Dangling {
                attempt: r.try_get("id")?,
                campaign: r.try_get("campaign_id")?,
                contact: r.try_get("contact_id")?,
                answered: r.try_get::<Option<i64>, _>("answered_ms")?.is_some(),
                attempts: r.try_get::<Option<i64>, _>("attempts")?.unwrap_or(0) as u32,
            })
        })
        .collect()
}

fn attempt_row(r: &SqliteRow) -> StoreResult<AttemptRecord> {
    let state: String = r.try_get("state")?;
    let outcome: Option<String> = r.try_get("outcome")?;
    let result: Option<String> = r.try_get("result")?;
    Ok(AttemptRecord {
        id: r.try_get("id")?,
        campaign: r.try_get("campaign_id")?,
        contact: r.try_get("contact_id")?,
        number: r.try_get("number")?,
        call_id: r.try_get("call_id")?,
        trunk: r.try_get("trunk")?,
        state: AttemptState::parse(&state).ok_or_else(|| corrupt("attempt state", &state))?,
        outcome: outcome
            .map(|w| Outcome::parse(&w).ok_or_else(|| corrupt("outcome", &w)))
            .transpose()?,
        sip_status: r.try_get("sip_status")?,
        sip_reason: r.try_get("sip_reason")?,
        counted: r.try_get("counted")?,
        started_ms: r.try_get("started_ms")?,
        answered_ms: r.try_get("answered_ms")?,
        ended_ms: r.try_get("ended_ms")?,
        pdd_ms: r.try_get("pdd_ms")?,
        duration_ms: r.try_get("duration_ms")?,
        played_permille: r.try_get("played_permille")?,
        dtmf: r.try_get("dtmf")?,
        result: result
            .map(|w| CallResult::parse(&w).ok_or_else(|| corrupt("result", &w)))
            .transpose()?,
        beep_ms: r.try_get("beep_ms")?,
    })
}

pub(super) async fn attempts(
    db: &SqlitePool,
    campaign: i64,
    after: i64,
    limit: u32,
) -> StoreResult<Vec<AttemptRecord>> {
    let rows =
        sqlx::query("SELECT * FROM attempts WHERE campaign_id = ? AND id > ? ORDER BY id LIMIT ?")
            .bind(campaign)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(db)
            .await?;
    rows.iter().map(attempt_row).collect()
}
