//! Campaigns: creation, the state change (selecting the targeted contacts on start),
//! reads, due contacts, progress and the report figures.

use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::Row;

use super::corrupt;
use crate::model::{CampaignSpec, CampaignState, ContactState, NumberType, Outcome};
use crate::store::{
    fold_groups, CampaignRecord, CampaignReport, ContactGroupCount, DueContact, GroupRow, Progress,
    StoreError, StoreResult,
};

fn campaign_row(r: &SqliteRow) -> StoreResult<CampaignRecord> {
    let spec: String = r.try_get("spec")?;
    let state: String = r.try_get("state")?;
    Ok(CampaignRecord {
        id: r.try_get("id")?,
        spec: serde_json::from_str(&spec).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        state: CampaignState::parse(&state).ok_or_else(|| corrupt("campaign state", &state))?,
        created_ms: r.try_get("created_ms")?,
    })
}

async fn get_campaign(c: &mut SqliteConnection, id: i64) -> StoreResult<CampaignRecord> {
    let r = sqlx::query("SELECT * FROM campaigns WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NotFound)?;
    campaign_row(&r)
}

pub(super) async fn create(
    c: &mut SqliteConnection,
    spec: CampaignSpec,
    now: i64,
) -> StoreResult<CampaignRecord> {
    let json = serde_json::to_string(&spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let res = sqlx::query(
        "INSERT INTO campaigns (tenant, name, spec, priority, state, created_ms, updated_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&spec.tenant)
    .bind(&spec.name)
    .bind(json)
    .bind(spec.priority.as_str())
    .bind(CampaignState::Draft.as_str())
    .bind(now)
    .bind(now)
    .fetch_one(&mut *c)
    .await;
    match res {
        Ok(r) => get_campaign(c, r.try_get("id")?).await,
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict(
            format!("campaign {} exists for {}", spec.name, spec.tenant),
        )),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn set_state(
    c: &mut SqliteConnection,
    id: i64,
    to: CampaignState,
    now: i64,
) -> StoreResult<CampaignRecord> {
    let cur = get_campaign(c, id).await?;
    if cur.state == to {
        return Ok(cur);
    }
    if !cur.state.can_go(to) {
        return Err(StoreError::Conflict(format!(
            "campaign cannot go from {} to {to}",
            cur.state
        )));
    }
    if cur.state == CampaignState::Draft && to == CampaignState::Running {
        select_targets(c, &cur).await?;
    }
    sqlx::query("UPDATE campaigns SET state = ?, updated_ms = ? WHERE id = ?")
        .bind(to.as_str())
        .bind(now)
        .bind(id)
        .execute(&mut *c)
        .await?;
    get_campaign(c, id).await
}

/// Selects a starting campaign's contacts (the target is a union of zones and streets),
/// each with the per-zone message it hears.
async fn select_targets(c: &mut SqliteConnection, cur: &CampaignRecord) -> StoreResult<()> {
    let rows =
        sqlx::query("SELECT id, zone, street FROM contacts WHERE tenant = ? AND opt_out = 0")
            .bind(&cur.spec.tenant)
            .fetch_all(&mut *c)
            .await?;
    for r in rows {
        let zone: String = r.try_get("zone")?;
        let street: String = r.try_get("street")?;
        if cur.spec.target.matches(&zone, &street) {
            let message = cur.spec.message_for(&zone, &street).map(|i| i as i64);
            sqlx::query(
                "INSERT OR IGNORE INTO campaign_contacts
                   (campaign_id, contact_id, state, next_ms, message)
                 VALUES (?, ?, ?, 0, ?)",
            )
            .bind(cur.id)
            .bind(r.try_get::<i64, _>("id")?)
            .bind(ContactState::Pending.as_str())
            .bind(message)
            .execute(&mut *c)
            .await?;
        }
    }
    Ok(())
}

pub(super) async fn by_id(db: &SqlitePool, id: i64) -> StoreResult<Option<CampaignRecord>> {
    let r = sqlx::query("SELECT * FROM campaigns WHERE id = ?")
        .bind(id)
        .fetch_optional(db)
        .await?;
    r.as_ref().map(campaign_row).transpose()
}

pub(super) async fn by_name(
    db: &SqlitePool,
    tenant: &str,
    name: &str,
) -> StoreResult<Option<CampaignRecord>> {
    let r = sqlx::query("SELECT * FROM campaigns WHERE tenant = ? AND name = ?")
        .bind(tenant)
        .bind(name)
        .fetch_optional(db)
        .await?;
    r.as_ref().map(campaign_row).transpose()
}

pub(super) async fn in_states(
    db: &SqlitePool,
    states: &[CampaignState],
) -> StoreResult<Vec<CampaignRecord>> {
    let rows = sqlx::query("SELECT * FROM campaigns ORDER BY id")
        .fetch_all(db)
        .await?;
    let mut out = vec![];
    for r in &rows {
        let c = campaign_row(r)?;
        if states.is_empty() || states.contains(&c.state) {
            out.push(c);
        }
    }
    Ok(out)
}

pub(super) async fn of_tenant(
    db: &SqlitePool,
    tenant: &str,
    after: i64,
    limit: u32,
) -> StoreResult<Vec<CampaignRecord>> {
    let rows =
        sqlx::query("SELECT * FROM campaigns WHERE tenant = ? AND id > ? ORDER BY id LIMIT ?")
            .bind(tenant)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(db)
            .await?;
    rows.iter().map(campaign_row).collect()
}

pub(super) async fn due(
    db: &SqlitePool,
    campaign: i64,
    now_ms: i64,
    limit: u32,
) -> StoreResult<Vec<DueContact>> {
    let rows = sqlx::query(
        "SELECT cc.contact_id, c.number, c.number_type, cc.attempts, cc.message
         FROM campaign_contacts cc JOIN contacts c ON c.id = cc.contact_id
         WHERE cc.campaign_id = ? AND cc.state = 'pending' AND cc.next_ms <= ?
           AND cc.satisfied = 0 AND c.opt_out = 0
         ORDER BY cc.next_ms, cc.contact_id LIMIT ?",
    )
    .bind(campaign)
    .bind(now_ms)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DueContact {
                contact: r.try_get("contact_id")?,
                number: r.try_get("number")?,
                number_type: NumberType::parse(r.try_get("number_type")?),
                attempts: r.try_get::<i64, _>("attempts")? as u32,
                message: r.try_get::<Option<i64>, _>("message")?.map(|m| m as u32),
            })
        })
        .collect()
}

pub(super) async fn progress(db: &SqlitePool, campaign: i64) -> StoreResult<Progress> {
    let r = sqlx::query(
        "SELECT count(*) AS targeted,
           coalesce(sum(cc.state = 'pending' AND c.opt_out = 0), 0) AS pending,
           coalesce(sum(cc.state = 'dialing'), 0) AS dialing,
           coalesce(sum(cc.state = 'done' OR (cc.state = 'pending' AND c.opt_out = 1)), 0) AS done,
           coalesce(sum(cc.answered), 0) AS answered
         FROM campaign_contacts cc JOIN contacts c ON c.id = cc.contact_id
         WHERE cc.campaign_id = ?",
    )
    .bind(campaign)
    .fetch_one(db)
    .await?;
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM attempts WHERE campaign_id = ?")
        .bind(campaign)
        .fetch_one(db)
        .await?;
    let g = |k: &str| -> StoreResult<u64> { Ok(r.try_get::<i64, _>(k)? as u64) };
    Ok(Progress {
        targeted: g("targeted")?,
        pending: g("pending")?,
        dialing: g("dialing")?,
        done: g("done")?,
        answered: g("answered")?,
        attempts: attempts as u64,
    })
}

pub(super) async fn report(
    db: &SqlitePool,
    campaign: i64,
    since_ms: i64,
) -> StoreResult<CampaignReport> {
    let rows: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT last_outcome, COUNT(*) FROM campaign_contacts
         WHERE campaign_id = ? AND state = 'done' GROUP BY 1",
    )
    .bind(campaign)
    .fetch_all(db)
    .await?;
    let mut outcomes: Vec<(Outcome, u64)> = vec![];
    for (word, n) in rows {
        // A finished contact always has its last outcome; one without is not counted.
        let Some(word) = word else { continue };
        let o = Outcome::parse(&word).ok_or_else(|| corrupt("outcome", &word))?;
        match outcomes.iter_mut().find(|(k, _)| *k == o) {
            Some((_, total)) => *total += n as u64,
            None => outcomes.push((o, n as u64)),
        }
    }
    outcomes.sort();
    let grows: Vec<GroupRow> = sqlx::query_as(
        "SELECT ct.zone, cc.message, cc.result, cc.state = 'done', cc.answered != 0, COUNT(*)
         FROM campaign_contacts cc JOIN contacts ct ON ct.id = cc.contact_id
         WHERE cc.campaign_id = ? GROUP BY 1, 2, 3, 4, 5",
    )
    .bind(campaign)
    .fetch_all(db)
    .await?;
    let groups = grows
        .into_iter()
        .map(ContactGroupCount::from_row)
        .collect::<StoreResult<Vec<_>>>()?;
    let (zones, messages, results) = fold_groups(&groups);
    let recent: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM attempts WHERE campaign_id = ? AND started_ms >= ?",
    )
    .bind(campaign)
    .bind(since_ms)
    .fetch_one(db)
    .await?;
    Ok(CampaignReport {
        outcomes,
        zones,
        messages,
        results,
        recent_attempts: recent as u64,
    })
}
