// The control API's own tables: tenants and their token hashes, the admin token's hash,
// prompt metadata, and replies kept for idempotency keys.
//
// Written once for both stores (see `store::sql`): each backend includes this file with
// its `Conn`, `Pool` and `DbRow` in scope.

use sqlx::Row;

use crate::store::{Loudness, PromptRecord, StoreError, StoreResult, StoredReply, TenantRecord};

pub(super) async fn create_tenant(
    c: &mut Conn,
    t: TenantRecord,
    token_sha256: String,
) -> StoreResult<()> {
    let r = sqlx::query(
        "INSERT INTO api_tenants (id, name, token_sha256, created_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(&t.id)
    .bind(&t.name)
    .bind(&token_sha256)
    .bind(t.created_ms)
    .execute(&mut *c)
    .await;
    match r {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::Conflict(format!("tenant {} exists", t.id)))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn tenants(db: &Pool, after: &str, limit: u32) -> StoreResult<Vec<TenantRecord>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT id, name, created_ms FROM api_tenants WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, created_ms)| TenantRecord {
            id,
            name,
            created_ms,
        })
        .collect())
}

pub(super) async fn tenant_by_token(db: &Pool, token_sha256: &str) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM api_tenants WHERE token_sha256 = $1")
            .bind(token_sha256)
            .fetch_optional(db)
            .await?,
    )
}

const ADMIN_KEY: &str = "admin_token_sha256";

pub(super) async fn admin_hash(db: &Pool) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT value FROM api_meta WHERE key = $1")
            .bind(ADMIN_KEY)
            .fetch_optional(db)
            .await?,
    )
}

pub(super) async fn init_admin_hash(c: &mut Conn, h: String) -> StoreResult<String> {
    sqlx::query("INSERT INTO api_meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(ADMIN_KEY)
        .bind(&h)
        .execute(&mut *c)
        .await?;
    Ok(
        sqlx::query_scalar("SELECT value FROM api_meta WHERE key = $1")
            .bind(ADMIN_KEY)
            .fetch_one(&mut *c)
            .await?,
    )
}

pub(super) async fn insert_prompt(c: &mut Conn, p: PromptRecord) -> StoreResult<()> {
    let codecs =
        serde_json::to_string(&p.codecs).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let loud =
        serde_json::to_string(&p.loudness).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO api_prompts (id, tenant, name, path, duration_ms, codecs, loudness, created_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&p.id)
    .bind(&p.tenant)
    .bind(&p.name)
    .bind(&p.path)
    .bind(p.duration_ms)
    .bind(codecs)
    .bind(loud)
    .bind(p.created_ms)
    .execute(&mut *c)
    .await?;
    Ok(())
}

fn prompt_row(r: &DbRow) -> StoreResult<PromptRecord> {
    let codecs: String = r.try_get("codecs")?;
    let loud: String = r.try_get("loudness")?;
    Ok(PromptRecord {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        name: r.try_get("name")?,
        path: r.try_get("path")?,
        duration_ms: r.try_get("duration_ms")?,
        // Display-only figures: a row written by an older version (or that does not parse)
        // shows empty ones.
        codecs: serde_json::from_str(&codecs).unwrap_or_default(),
        loudness: serde_json::from_str::<Loudness>(&loud).unwrap_or_default(),
        created_ms: r.try_get("created_ms")?,
    })
}

pub(super) async fn prompt(db: &Pool, tenant: &str, id: &str) -> StoreResult<Option<PromptRecord>> {
    let r = sqlx::query("SELECT * FROM api_prompts WHERE tenant = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(db)
        .await?;
    r.as_ref().map(prompt_row).transpose()
}

pub(super) async fn prompts(
    db: &Pool,
    tenant: &str,
    after: &str,
    limit: u32,
) -> StoreResult<Vec<PromptRecord>> {
    let rows =
        sqlx::query("SELECT * FROM api_prompts WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3")
            .bind(tenant)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(db)
            .await?;
    rows.iter().map(prompt_row).collect()
}

pub(super) async fn delete_prompt(c: &mut Conn, tenant: String, id: String) -> StoreResult<bool> {
    let r = sqlx::query("DELETE FROM api_prompts WHERE tenant = $1 AND id = $2")
        .bind(&tenant)
        .bind(&id)
        .execute(&mut *c)
        .await?;
    Ok(r.rows_affected() > 0)
}

pub(super) async fn idempotent_reply(
    db: &Pool,
    scope: &str,
    key: &str,
) -> StoreResult<Option<StoredReply>> {
    let r: Option<(String, i64, String, Vec<u8>)> = sqlx::query_as(
        "SELECT request_sha256, status, content_type, body FROM api_idempotency
         WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(db)
    .await?;
    Ok(
        r.map(|(request_sha256, status, content_type, body)| StoredReply {
            request_sha256,
            status: u16::try_from(status).unwrap_or(200),
            content_type,
            body,
        }),
    )
}

pub(super) async fn save_idempotent_reply(
    c: &mut Conn,
    scope: String,
    key: String,
    r: StoredReply,
    now_ms: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO api_idempotency
         (scope, key, request_sha256, status, content_type, body, created_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(&scope)
    .bind(&key)
    .bind(&r.request_sha256)
    .bind(i64::from(r.status))
    .bind(&r.content_type)
    .bind(&r.body)
    .bind(now_ms)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(super) async fn ping(db: &Pool) -> StoreResult<()> {
    let _: i64 = sqlx::query_scalar("SELECT CAST(1 AS BIGINT)")
        .fetch_one(db)
        .await?;
    Ok(())
}
