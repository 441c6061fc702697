// Inbound numbers (DIDs) and the tenant lookup the inbound side needs (the town's name
// for its greeting, and whether a DID's tenant exists).
//
// Written once for both stores: each backend includes this file into its own `dids`
// module with its `Conn` and `Pool` types in scope (see `store::sql`). Placeholders are
// `$N` and the SQL is what SQLite and PostgreSQL both accept.

use super::corrupt;
use crate::model::{Did, Flow};
use crate::store::{StoreError, StoreResult, TenantRecord};

type Row = (String, String, String, i64);

fn did_of((number, tenant, flow, created_ms): Row) -> StoreResult<Did> {
    Ok(Did {
        flow: Flow::parse(&flow).ok_or_else(|| corrupt("flow", &flow))?,
        number,
        tenant,
        created_ms,
    })
}

/// Inserts a DID; Conflict if the number is taken, NotFound if the tenant is unknown.
pub(super) async fn create_did(c: &mut Conn, d: Did) -> StoreResult<()> {
    let known: Option<i64> =
        sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM api_tenants WHERE id = $1")
            .bind(&d.tenant)
            .fetch_optional(&mut *c)
            .await?;
    if known.is_none() {
        return Err(StoreError::NotFound);
    }
    let r =
        sqlx::query("INSERT INTO dids (number, tenant, flow, created_ms) VALUES ($1, $2, $3, $4)")
            .bind(&d.number)
            .bind(&d.tenant)
            .bind(d.flow.as_str())
            .bind(d.created_ms)
            .execute(&mut *c)
            .await;
    match r {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::Conflict(format!("number {} exists", d.number)))
        }
        Err(e) => Err(e.into()),
    }
}

/// Inserts or replaces a DID (the configuration file's numbers, applied at start); the
/// creation time of an existing row is kept.
pub(super) async fn put_did(c: &mut Conn, d: Did) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO dids (number, tenant, flow, created_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (number) DO UPDATE SET tenant = excluded.tenant, flow = excluded.flow",
    )
    .bind(&d.number)
    .bind(&d.tenant)
    .bind(d.flow.as_str())
    .bind(d.created_ms)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(super) async fn did(db: &Pool, number: &str) -> StoreResult<Option<Did>> {
    let row: Option<Row> =
        sqlx::query_as("SELECT number, tenant, flow, created_ms FROM dids WHERE number = $1")
            .bind(number)
            .fetch_optional(db)
            .await?;
    row.map(did_of).transpose()
}

pub(super) async fn dids(db: &Pool, after: &str, limit: u32) -> StoreResult<Vec<Did>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT number, tenant, flow, created_ms FROM dids WHERE number > $1 \
         ORDER BY number LIMIT $2",
    )
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    rows.into_iter().map(did_of).collect()
}

pub(super) async fn delete_did(c: &mut Conn, number: String) -> StoreResult<bool> {
    let r = sqlx::query("DELETE FROM dids WHERE number = $1")
        .bind(&number)
        .execute(&mut *c)
        .await?;
    Ok(r.rows_affected() > 0)
}

pub(super) async fn tenant(db: &Pool, id: &str) -> StoreResult<Option<TenantRecord>> {
    let row: Option<(String, String, i64)> =
        sqlx::query_as("SELECT id, name, created_ms FROM api_tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(id, name, created_ms)| TenantRecord {
        id,
        name,
        created_ms,
    }))
}
