//! The attempt journal on PostgreSQL: begin (before the INVITE), answered, finish (with
//! where the contact goes next), closing a contact without an attempt, and its reads.

use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::Row;

use super::{corrupt, ReadPool};
use crate::model::{AttemptState, CallResult, ContactState, Outcome};
use crate::store::{
    result_rank_sql, AttemptEnd, AttemptRecord, AttemptStart, ContactNext, Dangling, StoreError,
    StoreResult,
};

/// Journals an attempt. In a cluster (a fence set on the batch, see `dialer_my_fence`)
/// the contact must be pending, not yet satisfied (`until`) and claimed by this node's live run, or
/// nothing is written and the attempt is refused: a node back from a stall, whose claims
/// others took over, cannot call. Outside a cluster the contact is marked dialling as
/// the SQLite store does.
pub(super) async fn begin(c: &mut PgConnection, a: AttemptStart) -> StoreResult<i64> {
    let id: Option<i64> = sqlx::query_scalar(
        "WITH me AS (SELECT dialer_my_fence() AS f),
         claimed AS (
           UPDATE campaign_contacts cc SET state = 'dialing' FROM me
           WHERE me.f <> 0 AND cc.campaign_id = $1 AND cc.contact_id = $2
             AND cc.fence = me.f AND cc.state = 'pending' AND NOT cc.satisfied
             AND dialer_fence_live(me.f)
           RETURNING me.f),
         plain AS (
           UPDATE campaign_contacts cc SET state = 'dialing' FROM me
           WHERE me.f = 0 AND cc.campaign_id = $1 AND cc.contact_id = $2
           RETURNING 0::bigint AS f)
         INSERT INTO attempts (campaign_id, contact_id, number, call_id, trunk, state,
           started_ms, fence)
         SELECT $1, $2, $3, $4, $5, $6, $7, NULLIF(go.f, 0)
         FROM (SELECT f FROM claimed UNION ALL SELECT f FROM me WHERE f = 0) AS go
         RETURNING id",
    )
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

/// Journals an answer. In a cluster only an attempt still dialling counts (one another
/// node closed after this node's lease ran out stays as closed).
pub(super) async fn answered(c: &mut PgConnection, id: i64, at: i64) -> StoreResult<()> {
    sqlx::query(
        "WITH a AS (
           UPDATE attempts SET answered_ms = $1
           WHERE id = $2 AND (state = 'dialing' OR dialer_my_fence() = 0)
           RETURNING campaign_id, contact_id)
         UPDATE campaign_contacts cc SET answered = TRUE FROM a
         WHERE cc.campaign_id = a.campaign_id AND cc.contact_id = a.contact_id",
    )
    .bind(at)
    .bind(id)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(super) async fn close_contact(
    c: &mut PgConnection,
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

pub(super) async fn finish(
    c: &mut PgConnection,
    e: AttemptEnd,
    next: ContactNext,
) -> StoreResult<()> {
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
    let (state, next_ms) = match next {
        ContactNext::RetryAt(ms) => (ContactState::Pending, ms),
        ContactNext::Done => (ContactState::Done, 0),
    };
    let answered = e.outcome == Outcome::Answered;
    let result = e.result.map(|r| r.as_str());
    let rank = i64::from(e.result.map_or(0, |r| r.rank()));
    // A contact whose campaign's `until` is met stays done whatever a late attempt says;
    // its result only gets better. The claim is kept for a retry due at once (the node
    // calls it again, on another trunk, say) and released otherwise, so that a later
    // retry goes to whichever node claims it.
    let sql = format!(
        "UPDATE campaign_contacts SET
           state = CASE WHEN satisfied OR $1 THEN 'done' ELSE $2 END,
           answered = answered OR $8,
           satisfied = satisfied OR $1,
           result = CASE WHEN $9 > {} THEN $10 ELSE result END,
           next_ms = $3, attempts = attempts + $4, last_outcome = $5,
           fence = CASE WHEN NOT (satisfied OR $1) AND $2 = 'pending' AND $3 <= $11
                        THEN fence END
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

/// id, campaign, contact, answered_ms, the contact's counted attempts.
type DanglingRow = (i64, i64, i64, Option<i64>, Option<i64>);

/// Attempts left dialling by a run that is gone: outside a cluster every one (this
/// process is the only dialer); in a cluster those of runs whose lease ran out (a dead
/// node's, this node's previous run's), never a live node's.
pub(super) async fn dangling(db: &ReadPool) -> StoreResult<Vec<Dangling>> {
    let rows: Vec<DanglingRow> = sqlx::query_as(
        "SELECT a.id, a.campaign_id, a.contact_id, a.answered_ms, cc.attempts
         FROM attempts a LEFT JOIN campaign_contacts cc
           ON cc.campaign_id = a.campaign_id AND cc.contact_id = a.contact_id
         WHERE a.state = 'dialing'
           AND ($1 = 0 OR a.fence IS NULL OR NOT dialer_fence_live(a.fence))
         ORDER BY a.id",
    )
    .bind(db.fence())
    .fetch_all(&**db)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(attempt, campaign, contact, answered_ms, attempts)| Dangling {
                attempt,
                campaign,
                contact,
                answered: answered_ms.is_some(),
                attempts: attempts.unwrap_or(0) as u32,
            },
        )
        .collect())
}

fn attempt_row(r: &PgRow) -> StoreResult<AttemptRecord> {
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
    db: &PgPool,
    campaign: i64,
    after: i64,
    limit: u32,
) -> StoreResult<Vec<AttemptRecord>> {
    let rows = sqlx::query(
        "SELECT * FROM attempts WHERE campaign_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(campaign)
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    rows.iter().map(attempt_row).collect()
}
