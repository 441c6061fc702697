//! `/v1/tenants`: towns, created by the admin, each with its own bearer token (returned
//! once, stored hashed).

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Json;
use engine::store::{Store, TenantRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::serve::auth::Admin;
use crate::serve::pagination::{Page, PageQuery};
use crate::serve::problem::{parse_query, ApiError, ApiJson, ApiResult, Problem};
use crate::serve::state::{new_token, now_ms, token_hash, AppState};

/// A new tenant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// Identifier: 1–64 of `a-z 0-9 - _`.
    pub id: String,
    /// Display name (the town).
    pub name: String,
}

/// A created tenant with its token (shown only here).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTenant {
    /// Identifier.
    pub id: String,
    /// Name.
    pub name: String,
    /// Bearer token of the tenant; not retrievable later.
    pub token: String,
}

/// A tenant as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantOut {
    /// Identifier.
    pub id: String,
    /// Name.
    pub name: String,
    /// Creation time, Unix ms.
    pub created_ms: i64,
}

/// Checks an identifier (tenant id, names used in paths).
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Create a tenant (admin).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = NewTenant,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replay-safe create")),
    responses((status = 201, body = CreatedTenant), (status = 409, body = Problem),
        (status = 422, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(st): State<AppState>,
    _a: Admin,
    ApiJson(t): ApiJson<NewTenant>,
) -> ApiResult<(StatusCode, Json<CreatedTenant>)> {
    if !valid_id(&t.id) {
        return Err(ApiError::invalid("id: 1-64 characters of a-z 0-9 - _"));
    }
    let name = t.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::invalid("name: 1-200 characters"));
    }
    let token = new_token();
    let rec = TenantRecord {
        id: t.id.clone(),
        name: name.to_string(),
        created_ms: now_ms(),
    };
    // A taken id is a Conflict naming the tenant (409).
    st.store.create_tenant(rec, &token_hash(&token)).await?;
    tracing::info!(tenant = %t.id, "tenant created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedTenant {
            id: t.id,
            name: name.to_string(),
            token,
        }),
    ))
}

/// List tenants (admin).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(PageQuery),
    responses((status = 200, body = Page<TenantOut>), (status = 400, body = Problem),
        (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    _a: Admin,
    uri: Uri,
) -> ApiResult<Json<Page<TenantOut>>> {
    let q: PageQuery = parse_query(&uri)?;
    let limit = q.limit()?;
    let rows = st
        .store
        .tenants(&q.after()?, limit + 1)
        .await?
        .into_iter()
        .map(|t| TenantOut {
            id: t.id,
            name: t.name,
            created_ms: t.created_ms,
        })
        .collect();
    Ok(Json(Page::from_fetched(rows, limit, |t| t.id.clone())))
}
