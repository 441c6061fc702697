//! `/v1/numbers` (admin): inbound numbers (DIDs), each answered by one tenant's citizen
//! menu or staff line. A number may be written nationally or in E.164; it is stored and
//! shown in E.164. The configuration file's `[[number]]` tables are applied at start.

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::Json;
use engine::model::dids::{parse_did, Did, DidError};
use engine::model::Flow;
use engine::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::serve::auth::Admin;
use crate::serve::pagination::{Page, PageQuery};
use crate::serve::problem::{parse_query, ApiError, ApiJson, ApiResult, Problem};
use crate::serve::state::{now_ms, AppState};

/// A new inbound number.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNumber {
    /// The number, national (`0771 286891`) or E.164 (`+390771286891`).
    pub number: String,
    /// The tenant whose menu answers (must exist).
    pub tenant: String,
    /// `citizen` (registration menu) or `staff` (record and send).
    #[schema(value_type = String, example = "citizen")]
    pub flow: String,
}

/// An inbound number.
#[derive(Debug, Serialize, ToSchema)]
pub struct NumberOut {
    /// E.164.
    pub number: String,
    /// Tenant.
    pub tenant: String,
    /// `citizen` or `staff`.
    #[schema(value_type = String)]
    pub flow: Flow,
    /// Creation time, Unix ms.
    pub created_ms: i64,
}

impl From<Did> for NumberOut {
    fn from(d: Did) -> Self {
        NumberOut {
            number: d.number,
            tenant: d.tenant,
            flow: d.flow,
            created_ms: d.created_ms,
        }
    }
}

fn invalid(e: DidError) -> ApiError {
    ApiError::invalid(e.to_string())
}

/// Add an inbound number (admin).
#[utoipa::path(post, path = "/v1/numbers", tag = "numbers", request_body = NewNumber,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replay-safe create")),
    responses((status = 201, body = NumberOut), (status = 409, body = Problem),
        (status = 400, body = Problem), (status = 422, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(st): State<AppState>,
    _a: Admin,
    ApiJson(n): ApiJson<NewNumber>,
) -> ApiResult<(StatusCode, Json<NumberOut>)> {
    let region = &st.cfg.default_region;
    let did = parse_did(&n.number, &n.tenant, &n.flow, region, now_ms()).map_err(invalid)?;
    match st.store.create_did(did.clone()).await {
        Err(StoreError::NotFound) => {
            return Err(ApiError::invalid(format!(
                "tenant: no tenant {:?}",
                n.tenant
            )))
        }
        r => r?,
    }
    tracing::info!(number = %did.number, tenant = %did.tenant, flow = %did.flow, "number added");
    Ok((StatusCode::CREATED, Json(did.into())))
}

/// List inbound numbers (admin).
#[utoipa::path(get, path = "/v1/numbers", tag = "numbers", params(PageQuery),
    responses((status = 200, body = Page<NumberOut>), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    _a: Admin,
    uri: Uri,
) -> ApiResult<Json<Page<NumberOut>>> {
    let q: PageQuery = parse_query(&uri)?;
    let limit = q.limit()?;
    let rows = st.store.dids(&q.after()?, limit + 1).await?;
    let items = rows.into_iter().map(NumberOut::from).collect();
    Ok(Json(Page::from_fetched(items, limit, |n| n.number.clone())))
}

/// Remove an inbound number (admin): calls to it are refused (404) from now on.
#[utoipa::path(delete, path = "/v1/numbers/{number}", tag = "numbers",
    params(("number" = String, Path, description = "The number, national or E.164")),
    responses((status = 204), (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(st): State<AppState>,
    _a: Admin,
    Path(number): Path<String>,
) -> ApiResult<StatusCode> {
    let e164 = engine::model::normalize(&number, &st.cfg.default_region)
        .map_err(|e| ApiError::invalid(format!("number: {e}")))?
        .e164;
    if !st.store.delete_did(&e164).await? {
        return Err(ApiError::not_found(format!("no number {e164}")));
    }
    tracing::info!(number = %e164, "number removed");
    Ok(StatusCode::NO_CONTENT)
}
