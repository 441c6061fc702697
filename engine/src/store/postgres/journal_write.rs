//! PostgreSQL's journal writes: begin (before the INVITE), answered, finish (with where
//! the contact goes next) and closing a contact without an attempt, each awaited in the
//! writer's batch. A cluster node's fencing is in the statements of `db` (`BEGIN_ATTEMPT`,
//! `ANSWER_COUNTS`, `RELEASE_CLAIM`). SQLite runs the same writes synchronously on its
//! writer's handle (`store::sqlite::journal_write`); `store/tests.rs` runs both through one
//! suite, so they cannot drift apart in what they do.

use super::db::*;
use crate::model::{AttemptState, ContactState, Outcome};
use crate::store::{
    result_rank_sql, AttemptEnd, AttemptStart, ContactNext, StoreError, StoreResult,
};

/// Journals an attempt before its INVITE leaves: its contact marked dialling and the
/// attempt row, in one statement (`BEGIN_ATTEMPT`): a node of a cluster journals only a contact it still holds the claim on, or nothing.
pub(super) async fn begin(c: &mut Conn, a: AttemptStart) -> StoreResult<i64> {
    let id: Option<i64> = sqlx::query_scalar(BEGIN_ATTEMPT)
        .bind(a.campaign)
        .bind(a.contact)
        .bind(&a.number)
        .bind(&a.call_id)
        .bind(&a.trunk)
        .bind(AttemptState::Dialing.as_str())
        .bind(a.started_ms)
        .fetch_optional(&mut *c)
        .await?;
    id.ok_or_else(|| {
        StoreError::Conflict(format!(
            "contact {} of campaign {} is not claimed by this node (claim lost)",
            a.contact, a.campaign
        ))
    })
}

/// Journals an answer, on the attempt and its contact. In a cluster only an attempt
/// still dialling counts (one another node closed after this node's lease ran out stays
/// as closed): `ANSWER_COUNTS`.
pub(super) async fn answered(c: &mut Conn, id: i64, at: i64) -> StoreResult<()> {
    let r: Option<(i64, i64)> = sqlx::query_as(&format!(
        "UPDATE attempts SET answered_ms = $1 WHERE id = $2 AND {ANSWER_COUNTS}
         RETURNING campaign_id, contact_id"
    ))
    .bind(at)
    .bind(id)
    .fetch_optional(&mut *c)
    .await?;
    if let Some((campaign, contact)) = r {
        sqlx::query(
            "UPDATE campaign_contacts SET answered = TRUE WHERE campaign_id = $1 AND contact_id = $2",
        )
        .bind(campaign)
        .bind(contact)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

pub(super) async fn close_contact(
    c: &mut Conn,
    campaign: i64,
    contact: i64,
    outcome: Outcome,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE campaign_contacts SET state = $1, last_outcome = $2
         WHERE campaign_id = $3 AND contact_id = $4",
    )
    .bind(ContactState::Done.as_str())
    .bind(outcome.as_str())
    .bind(campaign)
    .bind(contact)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(super) async fn finish(c: &mut Conn, e: AttemptEnd, next: ContactNext) -> StoreResult<()> {
    let r: Option<(i64, i64)> = sqlx::query_as(
        "UPDATE attempts SET state = 'final', outcome = $1, sip_status = $2, sip_reason = $3,
           counted = $4, ended_ms = $5, pdd_ms = $6, duration_ms = $7, played_permille = $8,
           dtmf = $9, result = $11, beep_ms = $12
         WHERE id = $10 AND state = 'dialing'
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
    .bind(e.attempt)
    .bind(e.result.map(|r| r.as_str()))
    .bind(e.beep_ms)
    .fetch_optional(&mut *c)
    .await?;
    let Some((camp, contact)) = r else {
        return Err(StoreError::Conflict(format!(
            "attempt {} is not dialing (already final?)",
            e.attempt
        )));
    };
    let (state, next_ms) = next.row();
    let answered = e.outcome == Outcome::Answered;
    let result = e.result.map(|r| r.as_str());
    let rank = i64::from(e.result.map_or(0, |r| r.rank()));
    // A contact whose campaign's `until` is met stays done whatever a late attempt says;
    // its result only gets better. In a cluster the claim is kept for a retry due at once
    // and released otherwise (`RELEASE_CLAIM`).
    let sql = format!(
        "UPDATE campaign_contacts SET
           state = CASE WHEN satisfied OR $1 THEN 'done' ELSE $2 END,
           answered = answered OR $8,
           satisfied = satisfied OR $1,
           result = CASE WHEN $9 > {} THEN $10 ELSE result END,
           next_ms = $3, attempts = attempts + $4, last_outcome = $5{RELEASE_CLAIM}
         WHERE campaign_id = $6 AND contact_id = $7",
        result_rank_sql("result")
    );
    sqlx::query(&sql)
        .bind(e.satisfied)
        .bind(state.as_str())
        .bind(next_ms)
        .bind(i64::from(e.counted))
        .bind(e.outcome.as_str())
        .bind(camp)
        .bind(contact)
        .bind(answered)
        .bind(rank)
        .bind(result)
        .bind(e.ended_ms)
        .execute(&mut *c)
        .await?;
    if e.opt_out {
        sqlx::query("UPDATE contacts SET opt_out = TRUE WHERE id = $1")
            .bind(contact)
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}
