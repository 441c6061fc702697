//! The SQLite names the shared SQL in `store::sql` is compiled against, and the few
//! statements where SQLite's dialect differs from PostgreSQL's.

pub(super) use sqlx::sqlite::{SqliteConnection as Conn, SqlitePool as Pool, SqliteRow as DbRow};

use super::campaigns::DueRow;
use crate::model::{ContactState, NewContact};
use crate::store::StoreResult;

/// The reader pool the store's reads take.
pub(super) type Read = Pool;

/// Upserts `rows` (distinct numbers) of `tenant`, one statement per row (SQLite runs in
/// process: a statement costs no round trip); how many were new. A new row's id is above
/// every id stored before the run (SQLite's upsert does not say whether it inserted, and
/// the creation time cannot: a number listed twice in one import is written twice in one
/// millisecond, in two runs). An updated row keeps its opt-out if it had one.
pub(super) async fn upsert_rows(
    c: &mut Conn,
    tenant: &str,
    rows: &[NewContact],
    now: i64,
) -> StoreResult<u64> {
    let floor: i64 = sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM contacts")
        .fetch_one(&mut *c)
        .await?;
    let mut fresh = 0;
    for k in rows {
        let new: bool = sqlx::query_scalar(
            "INSERT INTO contacts (tenant, number, number_type, street, house_number, zone,
               source, opt_out, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (tenant, number) DO UPDATE SET
               number_type = excluded.number_type, street = excluded.street,
               house_number = excluded.house_number, zone = excluded.zone,
               source = excluded.source, opt_out = contacts.opt_out OR excluded.opt_out
             RETURNING (id > $10)",
        )
        .bind(tenant)
        .bind(&k.number)
        .bind(k.number_type.as_str())
        .bind(&k.street)
        .bind(&k.house_number)
        .bind(&k.zone)
        .bind(k.source.as_str())
        .bind(k.opt_out)
        .bind(now)
        .bind(floor)
        .fetch_one(&mut *c)
        .await?;
        fresh += u64::from(new);
    }
    Ok(fresh)
}

/// Row locks: none (the writer's transaction already holds the database's write lock).
pub(super) const FOR_UPDATE: &str = "";

/// The street list's conflict target: the column is `COLLATE NOCASE`.
pub(super) const STREET_KEY: &str = "street";

/// Which dialling attempts belong to a run that is gone: all (this process is the only
/// dialer).
pub(super) const GONE_RUN: &str = "";

/// The fence of this node's run: never clustered.
pub(super) fn fence(_db: &Read) -> i64 {
    0
}

/// Puts a starting campaign's targets in, one prepared statement per contact (SQLite has
/// no arrays to pass them in one).
pub(super) async fn insert_targets(
    c: &mut Conn,
    campaign: i64,
    state: ContactState,
    ids: &[i64],
    messages: &[Option<i64>],
) -> StoreResult<()> {
    for (id, message) in ids.iter().zip(messages) {
        sqlx::query(
            "INSERT INTO campaign_contacts (campaign_id, contact_id, state, next_ms, message)
             VALUES ($1, $2, $3, 0, $4) ON CONFLICT DO NOTHING",
        )
        .bind(campaign)
        .bind(id)
        .bind(state.as_str())
        .bind(message)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

/// A SQLite store is never a node of a cluster: due contacts are read, not claimed.
pub(super) async fn claim_due(
    _db: &Read,
    _campaign: i64,
    _now_ms: i64,
    _limit: u32,
) -> StoreResult<Option<Vec<DueRow>>> {
    Ok(None)
}
