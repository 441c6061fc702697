// The audit trail (issue 16 item 4), written once for both stores (see `store::sql`):
// an entry is chained to the tenant's last one inside the writer's transaction; the
// (tenant, seq) key refuses a second entry at the same place (two nodes appending at
// once: the loser gets Conflict and appends again).

use crate::audit::{chain_hash, AuditEntry, NewAuditEntry, GENESIS};
use crate::store::{StoreError, StoreResult};

type Row = (
    String,
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
);

const COLS: &str = "tenant, seq, at_ms, actor, action, subject, content, prev_hash, hash";

fn entry_of(r: Row) -> AuditEntry {
    let (tenant, seq, at_ms, actor, action, subject, content, prev_hash, hash) = r;
    AuditEntry {
        entry: NewAuditEntry {
            tenant,
            at_ms,
            actor,
            action,
            subject,
            content,
        },
        seq,
        prev_hash,
        hash,
    }
}

pub(super) async fn append_audit(c: &mut Conn, e: NewAuditEntry) -> StoreResult<AuditEntry> {
    let last: Option<(i64, String)> = sqlx::query_as(
        "SELECT seq, hash FROM audit_log WHERE tenant = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(&e.tenant)
    .fetch_optional(&mut *c)
    .await?;
    let (seq, prev_hash) = match last {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS.to_string()),
    };
    let hash = chain_hash(&e, seq, &prev_hash);
    let r = sqlx::query(&format!(
        "INSERT INTO audit_log ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(&e.tenant)
    .bind(seq)
    .bind(e.at_ms)
    .bind(&e.actor)
    .bind(&e.action)
    .bind(&e.subject)
    .bind(&e.content)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *c)
    .await;
    match r {
        Ok(_) => Ok(AuditEntry {
            entry: e,
            seq,
            prev_hash,
            hash,
        }),
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Err(StoreError::Conflict(
            format!("audit entry {seq} of {:?} taken", e.tenant),
        )),
        Err(x) => Err(x.into()),
    }
}

/// A tenant's entries with seq above `after`, in chain order.
pub(super) async fn audit(
    db: &Pool,
    tenant: &str,
    after: i64,
    limit: u32,
) -> StoreResult<Vec<AuditEntry>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLS} FROM audit_log WHERE tenant = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(entry_of).collect())
}

/// Every tenant that has a chain ('' is the platform's).
pub(super) async fn audit_tenants(db: &Pool) -> StoreResult<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT DISTINCT tenant FROM audit_log ORDER BY tenant")
            .fetch_all(db)
            .await?,
    )
}
