//! `/v1/contacts`: residents' numbers with their address (street, house number, zone),
//! imported from the directory as CSV or registered one by one; opt-out and erasure.
//!
//! Every read and write goes through the engine's [`Store`]; rows are parsed by the
//! model's CSV parser, the one the CLI uses too.

use std::collections::HashMap;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, Uri};
use axum::Json;
use engine::model::contacts::parse_csv;
use engine::model::{normalize, NewContact, Source};
use engine::store::{ContactFilter, ContactRecord, Store, StoreError};
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

impl From<ContactRecord> for ContactOut {
    fn from(r: ContactRecord) -> Self {
        let c = r.contact;
        ContactOut {
            id: r.id,
            number: c.number,
            number_type: c.number_type.as_str().to_string(),
            street: c.street,
            house_number: c.house_number,
            zone: c.zone,
            source: c.source.as_str().to_string(),
            opt_out: c.opt_out,
            created_ms: r.created_ms,
        }
    }
}

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
    let rows = parse_csv(text.as_bytes(), &st.cfg.default_region, |zone, street| {
        zone_for(zone, street, &streets)
    })
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let rejected = rows
        .rejected
        .into_iter()
        .map(|e| Rejected {
            line: e.line,
            reason: e.reason,
        })
        .collect();
    let ok = rows.ok;
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
    Ok(st
        .store
        .contact(tenant, number)
        .await?
        .map(ContactOut::from))
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
    let source = match q.source.as_deref() {
        None => None,
        Some(s) => match Source::parse(s) {
            Some(s) => Some(s),
            // No contact has a source the model does not know.
            None => {
                return Ok(Json(Page::from_fetched(vec![], limit, |c: &ContactOut| {
                    c.id.to_string()
                })))
            }
        },
    };
    let filter = ContactFilter {
        zone: q.zone,
        street: q.street,
        source,
    };
    let rows = st
        .store
        .contacts(&tenant, &filter, page.after_id()?, limit + 1)
        .await?
        .into_iter()
        .map(ContactOut::from)
        .collect();
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
    match st.store.erase_contact(&tenant, &n).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(ApiError::not_found(format!("no contact {n}"))),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(tenant = %tenant, "contact erased");
    Ok(StatusCode::NO_CONTENT)
}
