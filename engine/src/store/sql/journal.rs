// The attempt journal's reads. Written once for both stores (see `store::sql`); which
// dialling attempts belong to a run that is gone is the backend's (`GONE_RUN`, `fence`).
// The journal's writes are each backend's own: `postgres/journal_write.rs` (awaited, with
// a cluster node's fencing) and `sqlite/journal_write.rs` (synchronous on the writer's
// handle).

use sqlx::Row;

use super::corrupt;
use crate::model::{AttemptState, CallResult, Outcome};
use crate::store::{
    AttemptRecord, Dangling,
    StoreResult,
};

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
