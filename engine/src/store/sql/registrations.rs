// The phone menus' data: registrations (consent records with the contact they create),
// the staff line's PIN hashes and each tenant's prompt replacements.
//
// Written once for both stores (see `store::sql`).

use super::{contacts, corrupt};
use crate::ivr::{PromptKey, Replacement};
use crate::model::{NewRegistration, Registered, Source, Unregistered};
use crate::store::{RegistrationRecord, StoreError, StoreResult};

/// Stores a registration: the contact (created, or moved to the zone, opt-out cleared:
/// this is new consent) and the live registration row, in the batch's transaction.
pub(super) async fn register(
    c: &mut Conn,
    tenant: String,
    r: NewRegistration,
    now_ms: i64,
) -> StoreResult<Registered> {
    let zone = r.zone.clone().unwrap_or_default();
    sqlx::query(
        "INSERT INTO contacts (tenant, number, number_type, zone, source, opt_out, created_ms) \
         VALUES ($1, $2, $3, $4, $5, FALSE, $6) ON CONFLICT (tenant, number) DO UPDATE SET \
         zone = excluded.zone, source = excluded.source, opt_out = FALSE",
    )
    .bind(&tenant)
    .bind(&r.number)
    .bind(r.number_type.as_str())
    .bind(&zone)
    .bind(r.source.as_str())
    .bind(now_ms)
    .execute(&mut *c)
    .await?;
    let changed = sqlx::query(
        "UPDATE registrations SET zone = $1 WHERE tenant = $2 AND number = $3 AND deleted_ms IS NULL",
    )
    .bind(&zone)
    .bind(&tenant)
    .bind(&r.number)
    .execute(&mut *c)
    .await?
    .rows_affected();
    if changed > 0 {
        return Ok(Registered::ZoneChanged);
    }
    sqlx::query(
        "INSERT INTO registrations (tenant, number, source, zone, consent_ms, notice_version, \
         created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&tenant)
    .bind(&r.number)
    .bind(r.source.as_str())
    .bind(&zone)
    .bind(r.consent_ms)
    .bind(&r.notice_version)
    .bind(now_ms)
    .execute(&mut *c)
    .await?;
    Ok(Registered::New)
}

/// Opt-out and erasure of a number, and the end of its live registration.
pub(super) async fn unregister(
    c: &mut Conn,
    tenant: String,
    number: String,
    now_ms: i64,
) -> StoreResult<Unregistered> {
    let ended = sqlx::query(
        "UPDATE registrations SET deleted_ms = $1 WHERE tenant = $2 AND number = $3 \
         AND deleted_ms IS NULL",
    )
    .bind(now_ms)
    .bind(&tenant)
    .bind(&number)
    .execute(&mut *c)
    .await?
    .rows_affected();
    let opted = sqlx::query("UPDATE contacts SET opt_out = TRUE WHERE tenant = $1 AND number = $2")
        .bind(&tenant)
        .bind(&number)
        .execute(&mut *c)
        .await?
        .rows_affected();
    if ended == 0 && opted == 0 {
        return Ok(Unregistered::Unknown);
    }
    match contacts::erase(c, tenant, number).await {
        Ok(()) | Err(StoreError::NotFound) => Ok(Unregistered::Erased),
        Err(StoreError::Conflict(_)) => Ok(Unregistered::OptedOut),
        Err(e) => Err(e),
    }
}

type Row = (i64, String, String, String, i64, String, i64, Option<i64>);

fn record(
    (id, number, source, zone, consent_ms, notice_version, created_ms, deleted_ms): Row,
) -> StoreResult<RegistrationRecord> {
    Ok(RegistrationRecord {
        source: Source::parse(&source).ok_or_else(|| corrupt("source", &source))?,
        zone: (!zone.is_empty()).then_some(zone),
        id,
        number,
        consent_ms,
        notice_version,
        created_ms,
        deleted_ms,
    })
}

const COLS: &str = "id, number, source, zone, consent_ms, notice_version, created_ms, deleted_ms";

/// The live registration of a number.
pub(super) async fn live(
    db: &Pool,
    tenant: &str,
    number: &str,
) -> StoreResult<Option<RegistrationRecord>> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLS} FROM registrations WHERE tenant = $1 AND number = $2 AND deleted_ms IS NULL"
    ))
    .bind(tenant)
    .bind(number)
    .fetch_optional(db)
    .await?;
    row.map(record).transpose()
}

pub(super) async fn list(
    db: &Pool,
    tenant: &str,
    after: i64,
    limit: u32,
) -> StoreResult<Vec<RegistrationRecord>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLS} FROM registrations WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    rows.into_iter().map(record).collect()
}

pub(super) async fn set_pin(
    c: &mut Conn,
    tenant: String,
    hash: String,
    now_ms: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO staff_pins (tenant, pin_hash, updated_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant) DO UPDATE SET pin_hash = excluded.pin_hash, \
         updated_ms = excluded.updated_ms",
    )
    .bind(&tenant)
    .bind(&hash)
    .bind(now_ms)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(super) async fn pin(db: &Pool, tenant: &str) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT pin_hash FROM staff_pins WHERE tenant = $1")
            .bind(tenant)
            .fetch_optional(db)
            .await?,
    )
}

pub(super) async fn set_replacement(
    c: &mut Conn,
    tenant: String,
    key: PromptKey,
    r: Replacement,
    now_ms: i64,
) -> StoreResult<()> {
    let (text, prompt) = match r {
        Replacement::Text(t) => (Some(t), None),
        Replacement::Recording(p) => (None, Some(p)),
    };
    sqlx::query(
        "INSERT INTO ivr_prompts (tenant, key, text, prompt_id, updated_ms) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant, key) DO UPDATE SET text = excluded.text, \
         prompt_id = excluded.prompt_id, updated_ms = excluded.updated_ms",
    )
    .bind(&tenant)
    .bind(key.as_str())
    .bind(text)
    .bind(prompt)
    .bind(now_ms)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(super) async fn delete_replacement(
    c: &mut Conn,
    tenant: String,
    key: PromptKey,
) -> StoreResult<bool> {
    let r = sqlx::query("DELETE FROM ivr_prompts WHERE tenant = $1 AND key = $2")
        .bind(&tenant)
        .bind(key.as_str())
        .execute(&mut *c)
        .await?;
    Ok(r.rows_affected() > 0)
}

pub(super) async fn replacements(
    db: &Pool,
    tenant: &str,
) -> StoreResult<Vec<(PromptKey, Replacement)>> {
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT key, text, prompt_id FROM ivr_prompts WHERE tenant = $1 ORDER BY key",
    )
    .bind(tenant)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|(key, text, prompt)| {
            let k = PromptKey::parse(&key).ok_or_else(|| corrupt("prompt key", &key))?;
            let r = match (text, prompt) {
                (Some(t), None) => Replacement::Text(t),
                (None, Some(p)) => Replacement::Recording(p),
                _ => return Err(corrupt("prompt replacement of", &key)),
            };
            Ok((k, r))
        })
        .collect()
}
