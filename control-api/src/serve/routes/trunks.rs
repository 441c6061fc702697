//! `/v1/trunks` (admin): the configured trunks with their live state.
//!
//! Changing trunks at run time needs an engine API that does not exist yet (the
//! [`engine::dialer::Dialer`] takes its trunks at start); until then POST/PUT/DELETE are
//! not routed (405 problem+json) and trunks are changed in the configuration file,
//! applied at restart.

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::serve::auth::Admin;
use crate::serve::pagination::Page;
use crate::serve::problem::{ApiError, ApiResult, Problem};
use crate::serve::state::AppState;

/// A trunk: its configuration (password hidden) and live state.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrunkOut {
    /// Name.
    pub name: String,
    /// `host:port` of the carrier's proxy.
    pub proxy: String,
    /// `udp` or `tcp`.
    pub transport: String,
    /// Digest realm.
    pub realm: Option<String>,
    /// Digest user.
    pub username: Option<String>,
    /// Whether a password is set (never shown).
    pub password_set: bool,
    /// REGISTER with the carrier.
    pub register: bool,
    /// From user.
    pub from_user: Option<String>,
    /// From domain.
    pub from_domain: Option<String>,
    /// Forced caller ID.
    pub caller_id: Option<String>,
    /// Codecs offered.
    pub codecs: Vec<String>,
    /// Packet time.
    pub ptime_ms: u32,
    /// Concurrent channels.
    pub max_channels: u32,
    /// Calls per second ceiling.
    pub cps: f64,
    /// OPTIONS ping interval.
    pub options_ping_interval_s: u64,
    /// Routing priority.
    pub priority: u32,
    /// Routing weight.
    pub weight: u32,
    /// Ring timeout.
    pub ring_timeout_s: u64,
    /// Number types or E.164 prefixes carried.
    pub routes: Vec<String>,
    /// Live: up by OPTIONS pings.
    pub up: bool,
    /// Live: channels in use.
    pub channels_in_use: u32,
    /// Live: CPS allowed now by congestion control.
    pub cps_effective: f64,
    /// Live: attempts admitted since start.
    pub admitted: u64,
}

async fn all(st: &AppState) -> ApiResult<Vec<TrunkOut>> {
    let cfg = st
        .cfg
        .dialer_config()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let snap = st.dialer.snapshot().await?;
    Ok(cfg
        .trunks
        .into_iter()
        .map(|t| {
            let live = snap.trunks.iter().find(|s| s.name == t.name);
            TrunkOut {
                up: live.map(|l| l.up).unwrap_or(false),
                channels_in_use: live.map(|l| l.active).unwrap_or(0),
                cps_effective: live.map(|l| l.cps_effective).unwrap_or(0.0),
                admitted: live.map(|l| l.admitted).unwrap_or(0),
                name: t.name,
                proxy: t.proxy,
                transport: t.transport,
                realm: t.realm,
                username: t.username,
                password_set: t.password.is_some(),
                register: t.register,
                from_user: t.from_user,
                from_domain: t.from_domain,
                caller_id: t.caller_id,
                codecs: t.codecs,
                ptime_ms: t.ptime_ms,
                max_channels: t.max_channels,
                cps: t.cps,
                options_ping_interval_s: t.options_ping_interval_s,
                priority: t.priority,
                weight: t.weight,
                ring_timeout_s: t.ring_timeout_s,
                routes: t.routes,
            }
        })
        .collect())
}

/// List trunks with live state (admin).
#[utoipa::path(get, path = "/v1/trunks", tag = "trunks",
    responses((status = 200, body = Page<TrunkOut>), (status = 401, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(State(st): State<AppState>, _a: Admin) -> ApiResult<Json<Page<TrunkOut>>> {
    Ok(Json(Page {
        items: all(&st).await?,
        next_cursor: None,
    }))
}

/// One trunk (admin).
#[utoipa::path(get, path = "/v1/trunks/{name}", tag = "trunks",
    params(("name" = String, Path, description = "Trunk name")),
    responses((status = 200, body = TrunkOut), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(st): State<AppState>,
    _a: Admin,
    Path(name): Path<String>,
) -> ApiResult<Json<TrunkOut>> {
    all(&st)
        .await?
        .into_iter()
        .find(|t| t.name == name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no trunk {name}")))
}
