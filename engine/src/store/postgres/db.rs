//! The PostgreSQL names the shared SQL in `store::sql` is compiled against, and what only
//! PostgreSQL does: row locks, arrays, and a cluster node's claims (fenced runs).

pub(super) use super::ReadPool as Read;
pub(super) use sqlx::postgres::{PgConnection as Conn, PgPool as Pool, PgRow as DbRow};

use super::campaigns::DueRow;
use crate::model::{ContactState, NewContact};
use crate::store::StoreResult;

/// Upserts `rows` (distinct numbers: a statement may not update a row twice) of `tenant`
/// in one statement, the columns passed as arrays; how many were new (`xmax` is 0 on a
/// row this statement inserted). An updated row keeps its opt-out if it had one.
pub(super) async fn upsert_rows(
    c: &mut Conn,
    tenant: &str,
    rows: &[NewContact],
    now: i64,
) -> StoreResult<u64> {
    let col = |f: fn(&NewContact) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    let opt_out: Vec<bool> = rows.iter().map(|k| k.opt_out).collect();
    let fresh: i64 = sqlx::query_scalar(
        "WITH up AS (
           INSERT INTO contacts (tenant, number, number_type, street, house_number, zone,
             source, opt_out, created_ms)
           SELECT $1, n, t, s, h, z, src, o, $2
           FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
             $9::bool[]) AS u(n, t, s, h, z, src, o)
           ON CONFLICT (tenant, number) DO UPDATE SET
             number_type = excluded.number_type, street = excluded.street,
             house_number = excluded.house_number, zone = excluded.zone,
             source = excluded.source, opt_out = contacts.opt_out OR excluded.opt_out
           RETURNING (xmax = 0) AS fresh)
         SELECT count(*) FILTER (WHERE fresh) FROM up",
    )
    .bind(tenant)
    .bind(now)
    .bind(col(|k| &k.number))
    .bind(col(|k| k.number_type.as_str()))
    .bind(col(|k| &k.street))
    .bind(col(|k| &k.house_number))
    .bind(col(|k| &k.zone))
    .bind(col(|k| k.source.as_str()))
    .bind(&opt_out)
    .fetch_one(&mut *c)
    .await?;
    Ok(fresh as u64)
}

/// Row locks: the row is held against other nodes' writers until the commit.
pub(super) const FOR_UPDATE: &str = " FOR UPDATE";

/// The street list's conflict target: the unique index is on `lower(street)`.
pub(super) const STREET_KEY: &str = "lower(street)";

/// Which attempts an answer is journaled on: in a cluster only one still dialling (one
/// another node closed after this node's lease ran out stays as closed).
pub(super) const ANSWER_COUNTS: &str = "(state = 'dialing' OR dialer_my_fence() = 0)";

/// How a finished attempt leaves its contact's claim (a `SET` item): kept for a retry due
/// at once (the node calls it again, on another trunk, say), released otherwise so that a
/// later retry goes to whichever node claims it. `$1` satisfied, `$2` the contact's next
/// state, `$3` when it is due, `$11` when the attempt ended.
pub(super) const RELEASE_CLAIM: &str = ",
           fence = CASE WHEN NOT (satisfied OR $1) AND $2 = 'pending' AND $3 <= $11
                        THEN fence END";

/// Which dialling attempts belong to a run that is gone (`$1` this node's fence): outside
/// a cluster all; in a cluster those of runs whose lease ran out.
pub(super) const GONE_RUN: &str =
    " AND ($1 = 0 OR a.fence IS NULL OR NOT dialer_fence_live(a.fence))";

/// The fence of this node's run; 0 when not clustered.
pub(super) fn fence(db: &Read) -> i64 {
    db.fence()
}

/// Journals an attempt in one statement (binds as in `journal_write::begin`). In a cluster (a
/// fence set on the batch, see `dialer_my_fence`) the contact must be pending, not yet
/// satisfied (`until`) and claimed by this node's live run, or nothing is written and the
/// attempt is refused: a node back from a stall, whose claims others took over, cannot
/// call. Outside a cluster the contact is marked dialling as on SQLite.
pub(super) const BEGIN_ATTEMPT: &str = "WITH me AS (SELECT dialer_my_fence() AS f),
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
         RETURNING id";

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
