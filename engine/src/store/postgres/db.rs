//! The PostgreSQL names the shared SQL in `store::sql` is compiled against, and what only
//! PostgreSQL does: row locks, arrays, and a cluster node's claims (fenced runs).

pub(super) use super::ReadPool as Read;
pub(super) use sqlx::postgres::{PgConnection as Conn, PgPool as Pool, PgRow as DbRow};

use super::campaigns::DueRow;
use crate::model::ContactState;
use crate::store::StoreResult;

/// What an upsert's `RETURNING` reads to tell a row it inserted from one it updated:
/// `xmax` is 0 on a row this statement inserted.
pub(super) const INSERTED: &str = "xmax = 0";

/// Row locks: the row is held against other nodes' writers until the commit.
pub(super) const FOR_UPDATE: &str = " FOR UPDATE";

/// The street list's conflict target: the unique index is on `lower(street)`.
pub(super) const STREET_KEY: &str = "lower(street)";

/// Puts a starting campaign's targets in with one statement (the ids and messages passed
/// as two arrays).
pub(super) async fn insert_targets(
    c: &mut Conn,
    campaign: i64,
    state: ContactState,
    ids: &[i64],
    messages: &[Option<i64>],
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO campaign_contacts (campaign_id, contact_id, state, next_ms, message)
         SELECT $1, id, $2, 0, message FROM unnest($3::bigint[], $4::bigint[]) AS t(id, message)
         ON CONFLICT DO NOTHING",
    )
    .bind(campaign)
    .bind(state.as_str())
    .bind(ids)
    .bind(messages)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// In a cluster (the node has joined: a fence is set), claims a campaign's due contacts
/// for this node's run: due contacts that are free, claimed by a run whose lease ran out,
/// or already this run's are marked with its fence (`FOR UPDATE SKIP LOCKED`: nodes
/// claiming at once take different rows without waiting on each other). None outside a
/// cluster, where due contacts are only read.
pub(super) async fn claim_due(
    db: &Read,
    campaign: i64,
    now_ms: i64,
    limit: u32,
) -> StoreResult<Option<Vec<DueRow>>> {
    let fence = db.fence();
    if fence == 0 {
        return Ok(None);
    }
    let rows: Vec<DueRow> = sqlx::query_as(
        "WITH live AS (
           SELECT fence FROM cluster_nodes
           WHERE state = 'up' AND beat_ms >= dialer_now_ms() - lease_ms),
         pick AS (
           SELECT cc.contact_id FROM campaign_contacts cc JOIN contacts c ON c.id = cc.contact_id
           WHERE cc.campaign_id = $1 AND cc.state = 'pending' AND cc.next_ms <= $2
             AND NOT cc.satisfied AND NOT c.opt_out
             AND (cc.fence IS NULL OR cc.fence = $4 OR cc.fence NOT IN (SELECT fence FROM live))
           ORDER BY cc.next_ms, cc.contact_id LIMIT $3
           FOR UPDATE OF cc SKIP LOCKED),
         took AS (
           UPDATE campaign_contacts cc SET fence = $4 FROM pick
           WHERE cc.campaign_id = $1 AND cc.contact_id = pick.contact_id
           RETURNING cc.contact_id, cc.attempts, cc.next_ms, cc.message)
         SELECT took.contact_id, c.number, c.number_type, took.attempts, took.message
         FROM took JOIN contacts c ON c.id = took.contact_id
         ORDER BY took.next_ms, took.contact_id",
    )
    .bind(campaign)
    .bind(now_ms)
    .bind(i64::from(limit))
    .bind(fence)
    .fetch_all(&**db)
    .await?;
    Ok(Some(rows))
}
