// The attempt journal: begin (before the INVITE), answered, finish (with where the
// contact goes next), closing a contact without an attempt, and its reads.
//
// Written once for both stores (see `store::sql`); a cluster node's fencing (PostgreSQL
// only) is what the backend's `db` adds: `MARK_DIALING`, `BEGIN_ATTEMPT`, `ANSWER_COUNTS`,
// `RELEASE_CLAIM`, `GONE_RUN` and `fence`.

use sqlx::Row;

use super::corrupt;
use crate::model::{AttemptState, CallResult, ContactState, Outcome};
use crate::store::{
    result_rank_sql, AttemptEnd, AttemptRecord, AttemptStart, ContactNext, Dangling, StoreError,
    StoreResult,
};

/// Journals an attempt before its INVITE leaves: its contact marked dialling and the
/// attempt row. How is the backend's (`MARK_DIALING`, `BEGIN_ATTEMPT`): a node of a
/// cluster journals only a contact it still holds the claim on, or nothing.
pub(super) async fn begin(c: &mut Conn, a: AttemptStart) -> StoreResult<i64> {
    if let Some(sql) = MARK_DIALING {
        sqlx::query(sql)
            .bind(a.campaign)
            .bind(a.contact)
            .execute(&mut *c)
            .await?;
    }
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
    let (state, next_ms) = match next {
        ContactNext::RetryAt(ms) => (ContactState::Pending, ms),
        ContactNext::Done => (ContactState::Done, 0),
    };
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

/// id, campaign, contact, answered_ms, the contact's counted attempts.
type DanglingRow = (i64, i64, i64, Option<i64>, Option<i64>);

/// Attempts left dialling by a run that is gone: outside a cluster every one (this
/// process is the only dialer); in a cluster those of runs whose lease ran out (a dead
/// node's, this node's previous run's), never a live node's (`GONE_RUN`).
pub(super) async fn dangling(db: &Read) -> StoreResult<Vec<Dangling>> {
    let pool: &Pool = db;
    let rows: Vec<DanglingRow> = sqlx::query_as(&format!(
        "SELECT a.id, a.campaign_id, a.contact_id, a.answered_ms, cc.attempts
         FROM attempts a LEFT JOIN campaign_contacts cc
           ON cc.campaign_id = a.campaign_id AND cc.contact_id = a.contact_id
         WHERE a.state = 'dialing'{GONE_RUN}
         ORDER BY a.id"
    ))
    .bind(fence(db))
    .fetch_all(pool)
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

fn attempt_row(r: &DbRow) -> StoreResult<AttemptRecord> {
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
    db: &Pool,
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
