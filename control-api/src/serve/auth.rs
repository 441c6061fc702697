//! Bearer tokens: the admin's (from the configuration) and one per tenant, stored as
//! SHA-256 hashes. Handlers take [`Admin`] or [`Tenant`]; every tenant query filters on
//! the tenant id, so another tenant's resource is simply not found (404, never 403).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use engine::store::Store;

use super::problem::ApiError;
use super::state::{token_hash, AppState};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The platform admin.
    Admin,
    /// A tenant (town), by id.
    Tenant(String),
}

/// Resolves the `Authorization: Bearer` header.
pub async fn principal(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    let token = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(ApiError::unauthorized)?;
    let h = token_hash(token);
    if h == state.admin_hash {
        return Ok(Principal::Admin);
    }
    let id = state.store.tenant_by_token(&h).await?;
    id.map(Principal::Tenant).ok_or_else(ApiError::unauthorized)
}

/// Extractor: the admin token is required.
#[derive(Debug)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match principal(parts, state).await? {
            Principal::Admin => Ok(Admin),
            Principal::Tenant(_) => Err(ApiError::forbidden("admin token required")),
        }
    }
}

/// Extractor: a tenant token is required; holds the tenant id.
#[derive(Debug)]
pub struct Tenant(pub String);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match principal(parts, state).await? {
            Principal::Tenant(t) => Ok(Tenant(t)),
            Principal::Admin => Err(ApiError::forbidden(
                "tenant token required (the admin manages tenants and trunks)",
            )),
        }
    }
}
