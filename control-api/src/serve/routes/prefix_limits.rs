//! `/v1/prefix-limits`: CPS and channels per destination prefix, on top of the trunks'
//! limits. The admin's are global (every tenant's calls); a tenant's limit only its own
//! calls. A number falls under the longest global prefix and the longest of its tenant's
//! that it starts with, and both apply. Setting a prefix again replaces its limit. The
//! configuration's `[[prefix_limit]]` tables apply too; a limit set here replaces the
//! configuration's of the same scope and prefix.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use engine::model::prefix_limit::PrefixLimit;
use engine::store::Store;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::serve::auth::{principal, Principal};
use crate::serve::problem::{ApiError, ApiJson, ApiResult, Problem};
use crate::serve::state::{now_ms, AppState};

/// Extractor: the admin (global limits) or a tenant (its own).
#[derive(Debug)]
pub struct Caller(Principal);

impl Caller {
    /// The scope a caller's limits are stored under (`None`: global).
    fn scope(&self) -> Option<String> {
        match &self.0 {
            Principal::Admin => None,
            Principal::Tenant(t) => Some(t.clone()),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        principal(parts, state).await.map(Caller)
    }
}

/// A limit to set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPrefixLimit {
    /// E.164 prefix: `+` and 1 to 15 digits.
    #[schema(example = "+39077")]
    pub prefix: String,
    /// Calls per second towards the prefix (never more in any 1 s window), 0.01 to 10,000.
    #[schema(example = 10.0, minimum = 0.01, maximum = 10000)]
    pub cps: f64,
    /// Calls in progress towards the prefix at once (at least 1).
    #[schema(example = 60, minimum = 1)]
    pub max_channels: u32,
}

/// A limit in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct PrefixLimitOut {
    /// E.164 prefix.
    pub prefix: String,
    /// Calls per second.
    pub cps: f64,
    /// Calls in progress at once.
    pub max_channels: u32,
    /// The tenant whose calls it limits; null for a global (admin) limit.
    pub tenant: Option<String>,
}

impl From<PrefixLimit> for PrefixLimitOut {
    fn from(l: PrefixLimit) -> Self {
        PrefixLimitOut {
            prefix: l.prefix,
            cps: l.cps,
            max_channels: l.max_channels,
            tenant: l.tenant,
        }
    }
}

/// The limits a caller sees.
#[derive(Debug, Serialize, ToSchema)]
pub struct PrefixLimitList {
    /// Global limits first, then tenants'.
    pub items: Vec<PrefixLimitOut>,
}

/// Set a limit for a destination prefix (admin: global; tenant: its own calls).
#[utoipa::path(post, path = "/v1/prefix-limits", tag = "prefix-limits",
    request_body = NewPrefixLimit,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replay-safe create")),
    responses((status = 201, body = PrefixLimitOut), (status = 400, body = Problem),
        (status = 422, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(st): State<AppState>,
    who: Caller,
    ApiJson(n): ApiJson<NewPrefixLimit>,
) -> ApiResult<(StatusCode, Json<PrefixLimitOut>)> {
    let limit = PrefixLimit {
        prefix: n.prefix,
        cps: n.cps,
        max_channels: n.max_channels,
        tenant: who.scope(),
    };
    limit
        .validate()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    st.store.put_prefix_limit(limit.clone(), now_ms()).await?;
    st.dialer.apply_prefix_limits().await?;
    tracing::info!(prefix = %limit.prefix, tenant = ?limit.tenant, cps = limit.cps,
        channels = limit.max_channels, "prefix limit set");
    Ok((StatusCode::CREATED, Json(limit.into())))
}

/// The stored limits: all of them for the admin; the global ones and its own for a tenant.
/// (The configuration file's `[[prefix_limit]]` tables apply too and are not listed.)
#[utoipa::path(get, path = "/v1/prefix-limits", tag = "prefix-limits",
    responses((status = 200, body = PrefixLimitList), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(st): State<AppState>, who: Caller) -> ApiResult<Json<PrefixLimitList>> {
    let scope = who.scope();
    let items = st
        .store
        .prefix_limits()
        .await?
        .into_iter()
        .filter(|l| scope.is_none() || l.tenant.is_none() || l.tenant == scope)
        .map(PrefixLimitOut::from)
        .collect();
    Ok(Json(PrefixLimitList { items }))
}

/// Remove the caller's limit on a prefix (admin: the global one; tenant: its own).
#[utoipa::path(delete, path = "/v1/prefix-limits/{prefix}", tag = "prefix-limits",
    params(("prefix" = String, Path, description = "The E.164 prefix, e.g. +39077")),
    responses((status = 204), (status = 404, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(st): State<AppState>,
    who: Caller,
    Path(prefix): Path<String>,
) -> ApiResult<StatusCode> {
    let scope = who.scope();
    if !st
        .store
        .delete_prefix_limit(scope.as_deref(), &prefix)
        .await?
    {
        return Err(ApiError::not_found(format!("no limit on {prefix}")));
    }
    st.dialer.apply_prefix_limits().await?;
    tracing::info!(prefix = %prefix, tenant = ?scope, "prefix limit removed");
    Ok(StatusCode::NO_CONTENT)
}
