//! `/v1/trunks` (admin): the trunks in use with their live state, added, replaced and
//! removed on the running dialer without a restart (calls in progress finish on the trunk
//! they started on; new limits apply to new calls).
//!
//! Changes made here are not written back to the configuration file: at restart the
//! file's trunks apply again. On a PostgreSQL store (several nodes) a change is recorded
//! in the store and every node follows it within about half a second
//! (`engine::cluster::trunks`); there the recorded changes also outlive restarts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use engine::dialer::trunk::TrunkConfig;
use engine::dialer::trunk_keys::codec_word;
use engine::dialer::DialerError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::serve::auth::Admin;
use crate::serve::pagination::Page;
use crate::serve::problem::{parse_json, ApiError, ApiJson, ApiResult, Problem};
use crate::serve::routes::tenants::valid_id;
use crate::serve::state::AppState;

/// A trunk to create or replace: the keys of a `[[trunk]]` table of the configuration
/// file, with the same defaults and checks. On PUT `name` may be left out (the path's).
#[allow(dead_code)] // the schema of the body; it is parsed as the engine's TrunkConfig
#[derive(Debug, ToSchema)]
pub struct TrunkIn {
    /// Name: 1–64 of `a-z 0-9 - _`.
    pub name: String,
    /// `host:port` of the carrier's proxy (must resolve).
    pub proxy: String,
    /// `udp` (default) or `tcp`.
    pub transport: Option<String>,
    /// Digest realm.
    pub realm: Option<String>,
    /// Digest user.
    pub username: Option<String>,
    /// Digest password (write-only: never returned).
    pub password: Option<String>,
    /// REGISTER with the carrier (default false).
    pub register: Option<bool>,
    /// From user.
    pub from_user: Option<String>,
    /// From domain (default: the proxy host).
    pub from_domain: Option<String>,
    /// Forced caller ID.
    pub caller_id: Option<String>,
    /// Codecs offered (default `["PCMA", "PCMU"]`).
    pub codecs: Option<Vec<String>>,
    /// Packet time (default 20).
    pub ptime_ms: Option<u32>,
    /// Concurrent channels (positive).
    pub max_channels: u32,
    /// Calls per second ceiling (positive).
    pub cps: f64,
    /// OPTIONS ping interval; 0 (default) disables pings.
    pub options_ping_interval_s: Option<u64>,
    /// Routing priority (lower first; default 0).
    pub priority: Option<u32>,
    /// Routing weight (default 1).
    pub weight: Option<u32>,
    /// Ring timeout (default 40).
    pub ring_timeout_s: Option<u64>,
    /// Number types or E.164 prefixes carried (empty: everything).
    pub routes: Option<Vec<String>>,
}

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
    /// Live: registered with the proxy (`null` when `register` is false).
    pub registered: Option<bool>,
}

fn out(t: TrunkConfig, live: Option<&engine::dialer::TrunkStatus>) -> TrunkOut {
    TrunkOut {
        up: live.map(|l| l.up).unwrap_or(false),
        channels_in_use: live.map(|l| l.active).unwrap_or(0),
        cps_effective: live.map(|l| l.cps_effective).unwrap_or(0.0),
        admitted: live.map(|l| l.admitted).unwrap_or(0),
        registered: live.and_then(|l| l.registered),
        name: t.name,
        proxy: t.proxy,
        transport: t.transport.to_string(),
        realm: t.realm,
        username: t.username,
        password_set: t.password.is_some(),
        register: t.register,
        from_user: t.from_user,
        from_domain: t.from_domain,
        caller_id: t.caller_id,
        codecs: t.codecs.into_iter().map(codec_word).collect(),
        ptime_ms: t.ptime_ms,
        max_channels: t.max_channels,
        cps: t.cps,
        options_ping_interval_s: t.options_ping_interval_s,
        priority: t.priority,
        weight: t.weight,
        ring_timeout_s: t.ring_timeout_s,
        routes: t.routes.iter().map(ToString::to_string).collect(),
    }
}

async fn all(st: &AppState) -> ApiResult<Vec<TrunkOut>> {
    let cfgs = st.dialer.trunk_configs().await?;
    let snap = st.dialer.snapshot().await?;
    Ok(cfgs
        .into_iter()
        .map(|t| {
            let live = snap.trunks.iter().find(|s| s.name == t.name);
            out(t, live)
        })
        .collect())
}

async fn one(st: &AppState, name: &str) -> ApiResult<TrunkOut> {
    all(st)
        .await?
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no trunk {name}")))
}

/// The body as a trunk configuration; on PUT the path's name fills in or must match.
fn parse(
    mut body: serde_json::Map<String, serde_json::Value>,
    path_name: Option<&str>,
) -> ApiResult<TrunkConfig> {
    if let Some(p) = path_name {
        match body.get("name") {
            None => {
                body.insert("name".into(), serde_json::Value::String(p.to_string()));
            }
            Some(n) if n.as_str() == Some(p) => {}
            Some(_) => return Err(ApiError::invalid("name: must be the path's trunk name")),
        }
    }
    let bytes = serde_json::to_vec(&body).map_err(ApiError::internal)?;
    let cfg: TrunkConfig = parse_json(&bytes)?;
    if !valid_id(&cfg.name) {
        return Err(ApiError::invalid("name: 1-64 characters of a-z 0-9 - _"));
    }
    Ok(cfg)
}

/// Engine refusals of a trunk change as problems.
fn refused(e: DialerError) -> ApiError {
    match e {
        DialerError::TrunkExists(n) => ApiError::conflict(format!("trunk {n} exists")),
        DialerError::NoTrunk(n) => ApiError::not_found(format!("no trunk {n}")),
        e @ (DialerError::InvalidTrunk(_) | DialerError::TrunkProxy { .. }) => {
            ApiError::invalid(e.to_string())
        }
        e => e.into(),
    }
}

/// Makes a trunk change on this node (`local`) and, on a cluster, records it for the
/// others (`config`: the trunk's JSON text, `None` for a removal).
async fn change<F>(st: &AppState, name: &str, config: Option<String>, local: F) -> ApiResult<()>
where
    F: std::future::Future<Output = Result<(), DialerError>>,
{
    use engine::cluster::trunks::TrunkChangeError;
    let Some(node) = &st.cluster else {
        return local.await.map_err(refused);
    };
    match node.trunks.change(name, config, local).await {
        Ok(()) => Ok(()),
        Err(TrunkChangeError::Dialer(e)) => Err(refused(e)),
        Err(e @ TrunkChangeError::Store(_)) => Err(ApiError::unavailable(e.to_string())),
    }
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
    one(&st, &name).await.map(Json)
}

/// Add a trunk to the running dialer (admin): it takes calls at once, REGISTERs and pings
/// as configured.
#[utoipa::path(post, path = "/v1/trunks", tag = "trunks", request_body = TrunkIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replay-safe create")),
    responses((status = 201, body = TrunkOut), (status = 409, body = Problem),
        (status = 400, body = Problem), (status = 422, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(st): State<AppState>,
    _a: Admin,
    ApiJson(body): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<(StatusCode, Json<TrunkOut>)> {
    let cfg = parse(body.clone(), None)?;
    let name = cfg.name.clone();
    let recorded = engine::cluster::trunks::recorded(&body, &name);
    change(&st, &name, Some(recorded), st.dialer.add_trunk(cfg)).await?;
    tracing::info!(trunk = %name, "trunk added");
    Ok((StatusCode::CREATED, Json(one(&st, &name).await?)))
}

/// Replace a trunk's configuration (admin): its calls in progress finish on it, the new
/// limits and routes apply to new calls.
#[utoipa::path(put, path = "/v1/trunks/{name}", tag = "trunks", request_body = TrunkIn,
    params(("name" = String, Path, description = "Trunk name")),
    responses((status = 200, body = TrunkOut), (status = 404, body = Problem),
        (status = 400, body = Problem), (status = 422, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn replace(
    State(st): State<AppState>,
    _a: Admin,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<Json<TrunkOut>> {
    let cfg = parse(body.clone(), Some(&name))?;
    let recorded = engine::cluster::trunks::recorded(&body, &name);
    change(&st, &name, Some(recorded), st.dialer.replace_trunk(cfg)).await?;
    tracing::info!(trunk = %name, "trunk replaced");
    one(&st, &name).await.map(Json)
}

/// Remove a trunk (admin): no new calls go to it; its calls in progress finish.
#[utoipa::path(delete, path = "/v1/trunks/{name}", tag = "trunks",
    params(("name" = String, Path, description = "Trunk name")),
    responses((status = 204), (status = 404, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(st): State<AppState>,
    _a: Admin,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    change(&st, &name, None, st.dialer.remove_trunk(&name)).await?;
    tracing::info!(trunk = %name, "trunk removed");
    Ok(StatusCode::NO_CONTENT)
}
