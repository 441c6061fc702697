// Limits per destination prefix (`/v1/prefix-limits`): one row per scope and prefix, the
// scope '' for a global limit, else the tenant's id.
//
// Written once for both stores: each backend includes this file into its own
// `prefix_limits` module with its `Conn` and `Pool` types in scope (see `store::sql`).

use crate::model::prefix_limit::PrefixLimit;
use crate::store::StoreResult;

type Row = (String, String, f64, i64);

fn scope(tenant: &Option<String>) -> &str {
    tenant.as_deref().unwrap_or("")
}

/// Adds a limit, or replaces the one of the same scope and prefix.
pub(super) async fn put_prefix_limit(c: &mut Conn, l: PrefixLimit, now_ms: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO prefix_limits (tenant, prefix, cps, max_channels, created_ms) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, prefix) \
         DO UPDATE SET cps = excluded.cps, max_channels = excluded.max_channels",
    )
    .bind(scope(&l.tenant))
    .bind(&l.prefix)
    .bind(l.cps)
    .bind(i64::from(l.max_channels))
    .bind(now_ms)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Every stored limit, global ones first, then by tenant and prefix.
pub(super) async fn prefix_limits(db: &Pool) -> StoreResult<Vec<PrefixLimit>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT tenant, prefix, cps, CAST(max_channels AS BIGINT) FROM prefix_limits \
         ORDER BY tenant, prefix",
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(tenant, prefix, cps, ch)| PrefixLimit {
            prefix,
            cps,
            max_channels: u32::try_from(ch).unwrap_or(u32::MAX),
            tenant: (!tenant.is_empty()).then_some(tenant),
        })
        .collect())
}

/// Removes a scope's limit on a prefix; false if there was none.
pub(super) async fn delete_prefix_limit(
    c: &mut Conn,
    tenant: Option<String>,
    prefix: String,
) -> StoreResult<bool> {
    let r = sqlx::query("DELETE FROM prefix_limits WHERE tenant = $1 AND prefix = $2")
        .bind(scope(&tenant))
        .bind(&prefix)
        .execute(&mut *c)
        .await?;
    Ok(r.rows_affected() > 0)
}
