//! `/v1/contacts`: residents' numbers with their address (street, house number, zone),
//! imported from the directory as CSV or registered one by one; opt-out and erasure.
//!
//! Writes go through the engine's [`Store`]; listing and erasure, which the trait does not
//! offer yet, are SQL over the engine's `contacts` table (see the module doc of `state`).

use std::collections::HashMap;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, Uri};
use axum::Json;
use engine::dialer::contacts::{NewContact, Source};
use engine::dialer::numbers::normalize;
use engine::store::Store;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::streets::{csv_text, street_zones, Rejected};
use crate::serve::auth::Tenant;
use crate::serve::pagination::{Page, PageQuery};
use crate::serve::problem::{parse_query, ApiError, ApiJson, ApiResult, Problem};
use crate::serve::state::AppState;

/// Result of a contacts import.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactsImported {
    /// New contacts.
    pub imported: u64,
    /// Known numbers whose address was updated.
    pub updated: u64,
    /// Rows refused.
    pub rejected: Vec<Rejected>,
}

/// A contact.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactOut {
    /// Internal id.
    #[serde(skip)]
    pub id: i64,
    /// E.164 number.
    pub number: String,
    /// `fixed`, `mobile` or `unknown`.
    pub number_type: String,
    /// Street.
    pub street: String,
    /// House number.
    pub house_number: String,
    /// Zone.
    pub zone: String,
    /// `directory` or `registration`.
    pub source: String,
    /// Opted out: never called.
    pub opt_out: bool,
    /// Unix ms.
    pub created_ms: i64,
}

/// One contact to add or update.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContactIn {
    /// Number, E.164 or national (default region).
    pub number: String,
    /// Street.
    #[serde(default)]
    pub street: String,
    /// House number.
    #[serde(default)]
    pub house_number: String,
    /// Zone; optional when the street list knows the street.
    #[serde(default)]
    pub zone: String,
    /// `directory` or `registration` (default `registration`).
    #[serde(default)]
    pub source: Option<String>,
}

/// Contact list filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    /// Only this zone.
    pub zone: Option<String>,
    /// Only this street.
    pub street: Option<String>,
    /// Only this source.
    pub source: Option<String>,
    /// Cursor.
    pub cursor: Option<String>,
    /// Page size.
    pub limit: Option<u32>,
}

type ContactRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    bool,
    i64,
);

fn contact(r: ContactRow) -> ContactOut {
    ContactOut {
        id: r.0,
        number: r.1,
        number_type: r.2,
        street: r.3,
        house_number: r.4,
        zone: r.5,
        source: r.6,
        opt_out: r.7,
        created_ms: r.8,
    }
}

const COLS: &str =
    "id, number, number_type, street, house_number, zone, source, opt_out != 0 AS opt_out, created_ms";

fn zone_for(zone: &str, street: &str, streets: &HashMap<String, String>) -> Result<String, String> {
    if !zone.is_empty() {
        return Ok(zone.to_string());
    }
    if street.is_empty() {
        return Ok(String::new());
    }
    streets
        .get(&street.to_lowercase())
        .cloned()
        .ok_or_else(|| format!("no zone given and street {street:?} is not in the street list"))
}

/// Import contacts (`text/csv`: `number,street,house_number,zone`, optional `source`,
/// `opt_out`).
#[utoipa::path(post, path = "/v1/contacts/import", tag = "contacts",
    request_body(content = String, content_type = "text/csv",
        description = "Header `number,street,house_number,zone` (+ optional `source`, `opt_out`)"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replay-safe import")),
    responses((status = 200, body = ContactsImported), (status = 400, body = Problem),
        (status = 415, body = Problem), (status = 413, body = Problem)),
    security(("bearer" = [])))]
pub async fn import(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    req: Request,
) -> ApiResult<Json<ContactsImported>> {
    let text = csv_text(req).await?;
    let streets = street_zones(&st, &tenant).await?;
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| ApiError::bad_request(format!("CSV header: {e}")))?
        .clone();
    let col = |n: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(n));
    let Some(nc) = col("number") else {
        return Err(ApiError::bad_request(
            "CSV header must name a `number` column",
        ));
    };
    let (sc, hc, zc, src, oc) = (
        col("street"),
        col("house_number"),
        col("zone"),
        col("source"),
        col("opt_out"),
    );
    let mut ok = vec![];
    let mut rejected = vec![];
    let mut seen = HashMap::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i as u64 + 2;
        let r = match rec {
            Ok(r) => r,
            Err(e) => {
                rejected.push(Rejected {
                    line,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let get = |c: Option<usize>| c.and_then(|c| r.get(c)).unwrap_or("").to_string();
        let row = (|| -> Result<NewContact, String> {
            let n = normalize(&get(Some(nc)), &st.cfg.default_region).map_err(|e| e.to_string())?;
            if let Some(first) = seen.get(&n.e164) {
                return Err(format!("{} repeats line {first}", n.e164));
            }
            let s = get(src);
            let source = if s.is_empty() {
                Source::Directory
            } else {
                Source::parse(&s).ok_or_else(|| format!("unknown source {s:?}"))?
            };
            let street = get(sc);
            let zone = zone_for(&get(zc), &street, &streets)?;
            Ok(NewContact {
                number: n.e164,
                number_type: n.number_type,
                street,
                house_number: get(hc),
                zone,
                source,
                opt_out: matches!(
                    get(oc).to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "y"
                ),
            })
        })();
        match row {
            Ok(c) => {
                seen.insert(c.number.clone(), line);
                ok.push(c);
            }
            Err(reason) => rejected.push(Rejected { line, reason }),
        }
    }
    let rep = if ok.is_empty() {
        Default::default()
    } else {
        st.store.upsert_contacts(&tenant, ok).await?
    };
    Ok(Json(ContactsImported {
        imported: rep.inserted,
        updated: rep.updated,
        rejected,
    }))
}

async fn fetch(st: &AppState, tenant: &str, number: &str) -> ApiResult<Option<ContactOut>> {
    let r: Option<ContactRow> = sqlx::query_as(&format!(
        "SELECT {COLS} FROM contacts WHERE tenant = ? AND number = ?"
    ))
    .bind(tenant)
    .bind(number)
    .fetch_optional(&st.db)
    .await?;
    Ok(r.map(contact))
}

fn path_number(st: &AppState, raw: &str) -> ApiResult<String> {
    normalize(raw, &st.cfg.default_region)
        .map(|n| n.e164)
        .map_err(|_| ApiError::not_found(format!("no contact {raw}")))
}

/// Add (201) or update (200) one contact.
#[utoipa::path(post, path = "/v1/contacts", tag = "contacts", request_body = NewContactIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replay-safe create")),
    responses((status = 201, body = ContactOut), (status = 200, body = ContactOut),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    ApiJson(c): ApiJson<NewContactIn>,
) -> ApiResult<(StatusCode, Json<ContactOut>)> {
    let n = normalize(&c.number, &st.cfg.default_region)
        .map_err(|e| ApiError::invalid(format!("number: {e}")))?;
    let source = match c.source.as_deref() {
        None => Source::Registration,
        Some(s) => Source::parse(s)
            .ok_or_else(|| ApiError::invalid("source: directory or registration"))?,
    };
    if [&c.street, &c.house_number, &c.zone]
        .iter()
        .any(|s| s.len() > 200)
    {
        return Err(ApiError::invalid(
            "street, house_number, zone: at most 200 characters",
        ));
    }
    let streets = street_zones(&st, &tenant).await?;
    let zone = zone_for(c.zone.trim(), c.street.trim(), &streets).map_err(ApiError::invalid)?;
    let rep = st
        .store
        .upsert_contacts(
            &tenant,
            vec![NewContact {
                number: n.e164.clone(),
                number_type: n.number_type,
                street: c.street.trim().to_string(),
                house_number: c.house_number.trim().to_string(),
                zone,
                source,
                opt_out: false,
            }],
        )
        .await?;
    let out = fetch(&st, &tenant, &n.e164)
        .await?
        .ok_or_else(|| ApiError::internal("contact vanished after upsert"))?;
    let status = if rep.inserted > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(out)))
}

/// List contacts, filtered by zone, street or source.
#[utoipa::path(get, path = "/v1/contacts", tag = "contacts", params(ContactQuery),
    responses((status = 200, body = Page<ContactOut>), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    uri: Uri,
) -> ApiResult<Json<Page<ContactOut>>> {
    let q: ContactQuery = parse_query(&uri)?;
    let page = PageQuery {
        cursor: q.cursor.clone(),
        limit: q.limit,
    };
    let limit = page.limit()?;
    let rows: Vec<ContactRow> = sqlx::query_as(&format!(
        "SELECT {COLS} FROM contacts WHERE tenant = ? AND id > ?
         AND (? IS NULL OR zone = ?) AND (? IS NULL OR street = ?) AND (? IS NULL OR source = ?)
         ORDER BY id LIMIT ?"
    ))
    .bind(&tenant)
    .bind(page.after_id()?)
    .bind(&q.zone)
    .bind(&q.zone)
    .bind(&q.street)
    .bind(&q.street)
    .bind(&q.source)
    .bind(&q.source)
    .bind(i64::from(limit) + 1)
    .fetch_all(&st.db)
    .await?;
    let rows = rows.into_iter().map(contact).collect();
    Ok(Json(Page::from_fetched(rows, limit, |c| c.id.to_string())))
}

/// Opt a number out: it is never called again.
#[utoipa::path(post, path = "/v1/contacts/{number}/opt-out", tag = "contacts",
    params(("number" = String, Path, description = "E.164 number (URL-encode the +)")),
    responses((status = 200, body = ContactOut), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn opt_out(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(number): Path<String>,
) -> ApiResult<Json<ContactOut>> {
    let n = path_number(&st, &number)?;
    if !st.store.set_opt_out(&tenant, &n, true).await? {
        return Err(ApiError::not_found(format!("no contact {n}")));
    }
    fetch(&st, &tenant, &n)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no contact {n}")))
}

/// Erase a contact (right to erasure): the contact goes, its number is blanked in the
/// attempt journal. Refused (409) while a call to it is in progress.
#[utoipa::path(delete, path = "/v1/contacts/{number}", tag = "contacts",
    params(("number" = String, Path, description = "E.164 number (URL-encode the +)")),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn erase(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(number): Path<String>,
) -> ApiResult<StatusCode> {
    let n = path_number(&st, &number)?;
    let mut tx = st.db.begin().await?;
    let id: Option<i64> =
        sqlx::query_scalar("SELECT id FROM contacts WHERE tenant = ? AND number = ?")
            .bind(&tenant)
            .bind(&n)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(id) = id else {
        return Err(ApiError::not_found(format!("no contact {n}")));
    };
    let dialing: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM campaign_contacts WHERE contact_id = ? AND state = 'dialing'",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    if dialing > 0 {
        return Err(ApiError::conflict(
            "a call to this contact is in progress; retry later",
        ));
    }
    sqlx::query("UPDATE attempts SET number = '' WHERE contact_id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM campaign_contacts WHERE contact_id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM contacts WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(tenant = %tenant, "contact erased");
    Ok(StatusCode::NO_CONTENT)
}
