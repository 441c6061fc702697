//! `/v1/streets` (a town's street list: which zone each street belongs to) and
//! `/v1/zones` (zones with their streets and contact counts).

use std::collections::BTreeMap;

use axum::extract::{Request, State};
use axum::Json;
use engine::store::{Store, Street};
use serde::Serialize;
use utoipa::ToSchema;

use crate::serve::auth::Tenant;
use crate::serve::pagination::Page;
use crate::serve::problem::{body_bytes, media_type, ApiError, ApiResult, Problem};
use crate::serve::state::AppState;

/// A CSV row that was not imported.
#[derive(Debug, Serialize, ToSchema, Clone)]
pub struct Rejected {
    /// 1-based line (the header is line 1).
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// Result of a street list import.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreetsImported {
    /// Streets stored (new or moved to another zone).
    pub imported: u64,
    /// Rows refused.
    pub rejected: Vec<Rejected>,
}

/// A street of a zone.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreetOut {
    /// Street name.
    pub street: String,
    /// Contacts on it (opted-out ones included).
    pub contacts: u64,
}

/// A zone with its streets.
#[derive(Debug, Serialize, ToSchema)]
pub struct ZoneOut {
    /// Zone name.
    pub zone: String,
    /// Contacts in the zone.
    pub contacts: u64,
    /// Streets known in the zone (from the street list and from contacts).
    pub streets: Vec<StreetOut>,
}

/// Requires `text/csv` and UTF-8; returns the text.
pub async fn csv_text(req: Request) -> ApiResult<String> {
    let mt = media_type(req.headers());
    if mt != "text/csv" {
        return Err(ApiError::unsupported_media(
            "expected Content-Type: text/csv",
        ));
    }
    let b = body_bytes(req).await?;
    String::from_utf8(b.to_vec()).map_err(|_| ApiError::bad_request("CSV is not UTF-8"))
}

/// Import the street list (`text/csv` with header `street,zone`).
#[utoipa::path(post, path = "/v1/streets", tag = "streets",
    request_body(content = String, content_type = "text/csv",
        description = "Header `street,zone`, one street per row"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replay-safe import")),
    responses((status = 200, body = StreetsImported), (status = 400, body = Problem),
        (status = 415, body = Problem), (status = 413, body = Problem)),
    security(("bearer" = [])))]
pub async fn import(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    req: Request,
) -> ApiResult<Json<StreetsImported>> {
    let text = csv_text(req).await?;
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| ApiError::bad_request(format!("CSV header: {e}")))?
        .clone();
    let col = |n: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(n));
    let (Some(sc), Some(zc)) = (col("street"), col("zone")) else {
        return Err(ApiError::bad_request(
            "CSV header must name the columns `street` and `zone`",
        ));
    };
    let mut rows = vec![];
    let mut rejected = vec![];
    for (i, rec) in rdr.records().enumerate() {
        let line = i as u64 + 2;
        match rec {
            Err(e) => rejected.push(Rejected {
                line,
                reason: e.to_string(),
            }),
            Ok(r) => {
                let s = r.get(sc).unwrap_or("").to_string();
                let z = r.get(zc).unwrap_or("").to_string();
                if s.is_empty() || z.is_empty() {
                    rejected.push(Rejected {
                        line,
                        reason: "street and zone are required".into(),
                    });
                } else if s.len() > 200 || z.len() > 200 {
                    rejected.push(Rejected {
                        line,
                        reason: "street or zone longer than 200 characters".into(),
                    });
                } else {
                    rows.push(Street { street: s, zone: z });
                }
            }
        }
    }
    let imported = st.store.import_streets(&tenant, rows).await?;
    Ok(Json(StreetsImported { imported, rejected }))
}

/// The tenant's street → zone map (street names compared case-insensitively).
pub async fn street_zones(
    st: &AppState,
    tenant: &str,
) -> ApiResult<std::collections::HashMap<String, String>> {
    Ok(st
        .store
        .streets(tenant)
        .await?
        .into_iter()
        .map(|s| (s.street.to_lowercase(), s.zone))
        .collect())
}

/// Zones with their streets and contact counts.
#[utoipa::path(get, path = "/v1/zones", tag = "streets",
    responses((status = 200, body = Page<ZoneOut>), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn zones(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
) -> ApiResult<Json<Page<ZoneOut>>> {
    let mut zones: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for s in st.store.streets(&tenant).await? {
        zones
            .entry(s.zone)
            .or_default()
            .entry(s.street)
            .or_insert(0);
    }
    for g in st.store.contact_groups(&tenant, false).await? {
        *zones
            .entry(g.zone)
            .or_default()
            .entry(g.street)
            .or_insert(0) += g.contacts;
    }
    let items = zones
        .into_iter()
        .map(|(zone, streets)| ZoneOut {
            zone,
            contacts: streets.values().sum(),
            streets: streets
                .into_iter()
                .map(|(street, contacts)| StreetOut { street, contacts })
                .collect(),
        })
        .collect();
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}
