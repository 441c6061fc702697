// Contacts: import (upsert), opt-out, lookups and listings, erasure, per-street counts,
// and the town's street list.
//
// Written once for both stores (see `store::sql`); where the engines differ the backend's
// `db` names the difference (`INSERTED`, `FOR_UPDATE`, `STREET_KEY`).

use sqlx::Row;

use super::corrupt;
use crate::model::{NewContact, NumberType, Source};
use crate::store::{
    now_ms, ContactFilter, ContactGroup, ContactRecord, ImportReport, StoreError, StoreResult,
    Street,
};

pub(super) async fn upsert(
    c: &mut Conn,
    tenant: String,
    list: Vec<NewContact>,
) -> StoreResult<ImportReport> {
    let mut rep = ImportReport::default();
    let now = now_ms();
    let sql = format!(
        "INSERT INTO contacts (tenant, number, number_type, street, house_number, zone, source, opt_out, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (tenant, number) DO UPDATE SET
               number_type = excluded.number_type, street = excluded.street,
               house_number = excluded.house_number, zone = excluded.zone,
               source = excluded.source, opt_out = contacts.opt_out OR excluded.opt_out
             RETURNING ({INSERTED})"
    );
    for k in list {
        let fresh: bool = sqlx::query_scalar(&sql)
            .bind(&tenant)
            .bind(&k.number)
            .bind(k.number_type.as_str())
            .bind(&k.street)
            .bind(&k.house_number)
            .bind(&k.zone)
            .bind(k.source.as_str())
            .bind(k.opt_out)
            .bind(now)
            .fetch_one(&mut *c)
            .await?;
        if fresh {
            rep.inserted += 1;
        } else {
            rep.updated += 1;
        }
    }
    Ok(rep)
}

pub(super) async fn set_opt_out(
    c: &mut Conn,
    tenant: String,
    number: String,
    opt_out: bool,
) -> StoreResult<bool> {
    let r = sqlx::query("UPDATE contacts SET opt_out = $1 WHERE tenant = $2 AND number = $3")
        .bind(opt_out)
        .bind(&tenant)
        .bind(&number)
        .execute(&mut *c)
        .await?;
    Ok(r.rows_affected() > 0)
}

pub(super) async fn erase(c: &mut Conn, tenant: String, number: String) -> StoreResult<()> {
    // Locked (where the engine has row locks) so that no other node starts a call to it
    // until this commits.
    let id: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT id FROM contacts WHERE tenant = $1 AND number = $2{FOR_UPDATE}"
    ))
    .bind(&tenant)
    .bind(&number)
    .fetch_optional(&mut *c)
    .await?;
    let Some(id) = id else {
        return Err(StoreError::NotFound);
    };
    let dialing: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM campaign_contacts WHERE contact_id = $1 AND state = 'dialing'",
    )
    .bind(id)
    .fetch_one(&mut *c)
    .await?;
    if dialing > 0 {
        return Err(StoreError::Conflict(
            "a call to this contact is in progress; retry later".into(),
        ));
    }
    for sql in [
        "UPDATE attempts SET number = '' WHERE contact_id = $1",
        "DELETE FROM campaign_contacts WHERE contact_id = $1",
        "DELETE FROM contacts WHERE id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *c).await?;
    }
    Ok(())
}

const COLS: &str =
    "id, number, number_type, street, house_number, zone, source, opt_out, created_ms";

fn contact_row(r: &DbRow) -> StoreResult<ContactRecord> {
    let source: String = r.try_get("source")?;
    Ok(ContactRecord {
        id: r.try_get("id")?,
        contact: NewContact {
            number: r.try_get("number")?,
            number_type: NumberType::parse(r.try_get("number_type")?),
            street: r.try_get("street")?,
            house_number: r.try_get("house_number")?,
            zone: r.try_get("zone")?,
            source: Source::parse(&source).ok_or_else(|| corrupt("source", &source))?,
            opt_out: r.try_get("opt_out")?,
        },
        created_ms: r.try_get("created_ms")?,
    })
}

pub(super) async fn one(
    db: &Pool,
    tenant: &str,
    number: &str,
) -> StoreResult<Option<ContactRecord>> {
    let r = sqlx::query(&format!(
        "SELECT {COLS} FROM contacts WHERE tenant = $1 AND number = $2"
    ))
    .bind(tenant)
    .bind(number)
    .fetch_optional(db)
    .await?;
    r.as_ref().map(contact_row).transpose()
}

pub(super) async fn list(
    db: &Pool,
    tenant: &str,
    f: &ContactFilter,
    after: i64,
    limit: u32,
) -> StoreResult<Vec<ContactRecord>> {
    let source = f.source.map(|s| s.as_str());
    let rows = sqlx::query(&format!(
        "SELECT {COLS} FROM contacts WHERE tenant = $1 AND id > $2
         AND (CAST($3 AS TEXT) IS NULL OR zone = $3)
         AND (CAST($4 AS TEXT) IS NULL OR street = $4)
         AND (CAST($5 AS TEXT) IS NULL OR source = $5)
         ORDER BY id LIMIT $6"
    ))
    .bind(tenant)
    .bind(after)
    .bind(&f.zone)
    .bind(&f.street)
    .bind(source)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    rows.iter().map(contact_row).collect()
}

pub(super) async fn groups(
    db: &Pool,
    tenant: &str,
    callable_only: bool,
) -> StoreResult<Vec<ContactGroup>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT zone, street, count(*) FROM contacts WHERE tenant = $1 AND (NOT $2 OR NOT opt_out)
         GROUP BY zone, street",
    )
    .bind(tenant)
    .bind(callable_only)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(zone, street, n)| ContactGroup {
            zone,
            street,
            contacts: n as u64,
        })
        .collect())
}

pub(super) async fn import_streets(
    c: &mut Conn,
    tenant: String,
    streets: Vec<Street>,
) -> StoreResult<u64> {
    let mut imported = 0;
    let sql = format!(
        "INSERT INTO api_streets (tenant, street, zone) VALUES ($1, $2, $3)
         ON CONFLICT (tenant, {STREET_KEY}) DO UPDATE SET zone = excluded.zone
         WHERE api_streets.zone <> excluded.zone"
    );
    for s in &streets {
        let r = sqlx::query(&sql)
            .bind(&tenant)
            .bind(&s.street)
            .bind(&s.zone)
            .execute(&mut *c)
            .await?;
        imported += r.rows_affected();
    }
    Ok(imported)
}

pub(super) async fn streets(db: &Pool, tenant: &str) -> StoreResult<Vec<Street>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT street, zone FROM api_streets WHERE tenant = $1")
            .bind(tenant)
            .fetch_all(db)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(street, zone)| Street { street, zone })
        .collect())
}
