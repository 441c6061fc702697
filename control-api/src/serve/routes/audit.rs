//! `GET /v1/audit`: a tenant's audit trail, in chain order (the admin reads the
//! platform's chain, or a tenant's with `?tenant=`). Each entry carries its hash and the
//! previous one's, so a reader can check the chain it was shown; `dialer audit verify`
//! checks the whole database offline.

use axum::extract::State;
use axum::Json;
use engine::audit::{AuditEntry, PLATFORM};
use engine::store::Store;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::serve::auth::{principal, Principal};
use crate::serve::pagination::{Page, PageQuery};
use crate::serve::problem::{parse_query, ApiError, ApiResult, Problem};
use crate::serve::state::AppState;

/// One act in the trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditOut {
    /// Place in the tenant's chain, from 1.
    pub seq: i64,
    /// When, Unix ms.
    pub at_ms: i64,
    /// Who: `token:<first 16 hex of the token's SHA-256>`, `admin` or `staff:<caller>`.
    pub actor: String,
    /// What, e.g. `campaign.start`.
    pub action: String,
    /// On what (ids; residents' numbers only as hashes).
    pub subject: String,
    /// The request's essential content and hashes.
    #[schema(value_type = Object)]
    pub content: serde_json::Value,
    /// SHA-256 of the entry before ("0"×64 for the first).
    pub prev_hash: String,
    /// SHA-256 of this entry (see `engine::audit::chain_hash`).
    pub hash: String,
}

impl From<AuditEntry> for AuditOut {
    fn from(e: AuditEntry) -> Self {
        AuditOut {
            seq: e.seq,
            at_ms: e.entry.at_ms,
            actor: e.entry.actor,
            action: e.entry.action,
            subject: e.entry.subject,
            content: serde_json::from_str(&e.entry.content)
                .unwrap_or(serde_json::Value::String(e.entry.content)),
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

/// Query of `GET /v1/audit`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Items per page, 1..=500 (default 50).
    pub limit: Option<u32>,
    /// Admin only: whose chain (default: the platform's own).
    pub tenant: Option<String>,
}

/// The audit trail, oldest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Page<AuditOut>), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    parts: axum::http::request::Parts,
) -> ApiResult<Json<Page<AuditOut>>> {
    let q: AuditQuery = parse_query(&parts.uri)?;
    let chain = match principal(&parts, &st).await? {
        Principal::Admin => q.tenant.clone().unwrap_or_else(|| PLATFORM.to_string()),
        Principal::Tenant(t) if q.tenant.as_ref().is_none_or(|x| *x == t) => t,
        Principal::Tenant(_) => return Err(ApiError::forbidden("another tenant's trail")),
    };
    let page = PageQuery {
        cursor: q.cursor,
        limit: q.limit,
    };
    let limit = page.limit()?;
    let rows = st.store.audit(&chain, page.after_id()?, limit + 1).await?;
    let items = rows.into_iter().map(AuditOut::from).collect();
    Ok(Json(Page::from_fetched(items, limit, |e| {
        e.seq.to_string()
    })))
}
