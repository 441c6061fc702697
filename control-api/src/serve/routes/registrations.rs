//! `/v1/registrations` (tenant): residents who registered their own number (by the phone
//! menu or the web form) and those who unregistered; and the staff line's PIN,
//! `PUT /v1/tenants/{id}/staff-pin` (the admin or the tenant itself).

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use axum::Json;
use engine::ivr::PinHash;
use engine::store::{RegistrationRecord, Store};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::serve::auth::{principal, Principal, Tenant};
use crate::serve::pagination::{Page, PageQuery};
use crate::serve::problem::{parse_query, ApiError, ApiJson, ApiResult, Problem};
use crate::serve::state::{now_ms, AppState};

/// A registration, live or ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationOut {
    /// E.164.
    pub number: String,
    /// `ivr` (phone menu) or `registration` (web form).
    pub source: String,
    /// The chosen zone; null: the whole town.
    pub zone: Option<String>,
    /// When consent was given, Unix ms.
    pub consent_ms: i64,
    /// The information notice's version the resident was read.
    pub notice_version: String,
    /// Unix ms.
    pub created_ms: i64,
    /// When the number was unregistered (and its contact erased), Unix ms.
    pub deleted_ms: Option<i64>,
    #[serde(skip)]
    id: i64,
}

impl From<RegistrationRecord> for RegistrationOut {
    fn from(r: RegistrationRecord) -> Self {
        RegistrationOut {
            id: r.id,
            number: r.number,
            source: r.source.as_str().to_string(),
            zone: r.zone,
            consent_ms: r.consent_ms,
            notice_version: r.notice_version,
            created_ms: r.created_ms,
            deleted_ms: r.deleted_ms,
        }
    }
}

/// List the tenant's registrations and unregistrations, oldest first.
#[utoipa::path(get, path = "/v1/registrations", tag = "registrations", params(PageQuery),
    responses((status = 200, body = Page<RegistrationOut>), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    uri: Uri,
) -> ApiResult<Json<Page<RegistrationOut>>> {
    let q: PageQuery = parse_query(&uri)?;
    let limit = q.limit()?;
    let rows = st
        .store
        .registrations(&tenant, q.after_id()?, limit + 1)
        .await?;
    let items = rows.into_iter().map(RegistrationOut::from).collect();
    Ok(Json(Page::from_fetched(items, limit, |r| r.id.to_string())))
}

/// A new staff PIN.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffPin {
    /// 4 to 10 digits. Stored salted and hashed; never shown again.
    pub pin: String,
}

/// Extractor: the admin or any tenant.
pub struct Anyone(Principal);

impl FromRequestParts<AppState> for Anyone {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        principal(parts, state).await.map(Anyone)
    }
}

/// Set or rotate the tenant's staff-line PIN (the admin, or the tenant itself).
#[utoipa::path(put, path = "/v1/tenants/{id}/staff-pin", tag = "tenants", request_body = StaffPin,
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 204), (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn set_staff_pin(
    State(st): State<AppState>,
    Anyone(who): Anyone,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StaffPin>,
) -> ApiResult<StatusCode> {
    let allowed = match &who {
        Principal::Admin => st.store.tenant(&id).await?.is_some(),
        Principal::Tenant(t) => *t == id,
    };
    if !allowed {
        return Err(ApiError::not_found(format!("no tenant {id}")));
    }
    let hash = PinHash::new(&body.pin).map_err(|e| ApiError::invalid(format!("pin: {e}")))?;
    st.store.set_staff_pin(&id, hash.as_str(), now_ms()).await?;
    metrics::counter!("dialer_ivr_staff_pin_changes_total").increment(1);
    tracing::info!(tenant = %id, "staff PIN set");
    Ok(StatusCode::NO_CONTENT)
}
