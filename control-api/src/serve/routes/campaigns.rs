//! `/v1/campaigns`: a message to the whole town or some zones/streets, created as a draft
//! with an estimate, then started, paused, resumed or canceled through the engine's
//! [`engine::dialer::Dialer`]; progress, attempt records and a CSV export.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::dialer::campaign::{CampaignSpec, Priority, Target};
use engine::dialer::retry::{RetryPolicy, RetryRule};
use engine::dialer::window::CallingWindow;
use engine::dialer::CampaignState;
use engine::store::{AttemptRecord, CampaignRecord, Store};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::prompts::prompt_path;
use super::streets::contact_groups;
use crate::serve::auth::Tenant;
use crate::serve::pagination::{Page, PageQuery};
use crate::serve::problem::{parse_query, ApiError, ApiJson, ApiResult, Problem};
use crate::serve::state::{now_ms, AppState};

/// Who is called: `{"all": true}` or zones and/or streets.
#[derive(Debug, Deserialize, Serialize, ToSchema, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct TargetIn {
    /// Every contact of the town.
    #[serde(default)]
    pub all: bool,
    /// Zones.
    #[serde(default)]
    pub zones: Vec<String>,
    /// Streets.
    #[serde(default)]
    pub streets: Vec<String>,
}

/// A retry rule.
#[derive(Debug, Deserialize, Serialize, ToSchema, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RuleIn {
    /// Seconds before the next attempt.
    pub interval_s: u64,
    /// Attempts in all, the first included (1..=10).
    pub max_attempts: u32,
}

/// Retry rules per outcome (absent: the configuration's).
#[derive(Debug, Deserialize, Serialize, ToSchema, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RetryIn {
    /// After `busy`.
    pub busy: Option<RuleIn>,
    /// After `no_answer`.
    pub no_answer: Option<RuleIn>,
    /// After `failed`.
    pub failed: Option<RuleIn>,
    /// After `rejected`.
    pub rejected: Option<RuleIn>,
}

/// Calling window (normal campaigns; emergency ones ignore it).
#[derive(Debug, Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct WindowIn {
    /// Call at any hour.
    #[serde(default)]
    pub always: bool,
    /// IANA time zone (default Europe/Rome).
    pub tz: Option<String>,
    /// Days `mon`..`sun` (default mon–sat).
    pub days: Option<Vec<String>>,
    /// `HH:MM` (default 09:00).
    pub start: Option<String>,
    /// `HH:MM` (default 20:00).
    pub end: Option<String>,
}

/// A new campaign.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// Unique per tenant.
    pub name: String,
    /// Prompt id.
    pub prompt_id: String,
    /// Who is called.
    pub target: TargetIn,
    /// `normal` (default) or `emergency`.
    #[serde(default)]
    pub priority: Option<String>,
    /// Caller ID (E.164) unless the trunk forces one.
    #[serde(default)]
    pub caller_id: Option<String>,
    /// Ring timeout, seconds.
    #[serde(default)]
    pub ring_timeout_s: Option<u64>,
    /// Times the message plays.
    #[serde(default)]
    pub play_count: Option<u32>,
    /// Retry rules.
    #[serde(default)]
    pub retry: Option<RetryIn>,
    /// Calling window.
    #[serde(default)]
    pub window: Option<WindowIn>,
}

/// How long a campaign should take.
#[derive(Debug, Serialize, ToSchema)]
pub struct Estimate {
    /// Contacts targeted now (opted-out excluded).
    pub contacts: u64,
    /// Seconds at the current trunk capacity (null without trunks).
    pub duration_s: Option<f64>,
}

/// Per-zone counts.
#[derive(Debug, Serialize, ToSchema, Default)]
pub struct ZoneProgress {
    /// Targeted contacts.
    pub targeted: u64,
    /// Finished contacts.
    pub done: u64,
    /// Answered contacts.
    pub answered: u64,
}

/// A campaign.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignOut {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// `draft`, `running`, `paused`, `completed`, `canceled`.
    pub state: String,
    /// Prompt id.
    pub prompt_id: String,
    /// Target.
    pub target: TargetIn,
    /// Priority.
    pub priority: String,
    /// Caller ID.
    pub caller_id: Option<String>,
    /// Ring timeout.
    pub ring_timeout_s: Option<u64>,
    /// Plays.
    pub play_count: u32,
    /// Unix ms.
    pub created_ms: i64,
    /// Estimate at the current trunk capacity.
    pub estimate: Estimate,
    /// Contacts finished per last outcome, plus `pending` and `in_progress`.
    pub totals: BTreeMap<String, u64>,
    /// Per zone.
    pub by_zone: BTreeMap<String, ZoneProgress>,
    /// Finished share, 0..1.
    pub progress: f64,
    /// Attempts per second over the last minute.
    pub rate_cps: f64,
    /// Seconds left at the current rate (null when unknown).
    pub eta_s: Option<f64>,
}

/// An attempt record.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallOut {
    /// Attempt id.
    pub id: i64,
    /// Number (empty after erasure).
    pub number: String,
    /// Trunk.
    pub trunk: String,
    /// `dialing` or `final`.
    pub state: String,
    /// Outcome word.
    pub outcome: Option<String>,
    /// SIP status.
    pub sip_status: Option<i64>,
    /// SIP reason.
    pub sip_reason: Option<String>,
    /// Unix ms.
    pub started_ms: i64,
    /// Unix ms.
    pub answered_ms: Option<i64>,
    /// Unix ms.
    pub ended_ms: Option<i64>,
    /// Post-dial delay, ms.
    pub pdd_ms: Option<i64>,
    /// Duration, ms.
    pub duration_ms: Option<i64>,
    /// Share of the message played, per mille.
    pub played_permille: Option<i64>,
    /// Digits pressed.
    pub dtmf: Option<String>,
}

impl From<AttemptRecord> for CallOut {
    fn from(a: AttemptRecord) -> Self {
        CallOut {
            id: a.id,
            number: a.number,
            trunk: a.trunk,
            state: a.state,
            outcome: a.outcome,
            sip_status: a.sip_status,
            sip_reason: a.sip_reason,
            started_ms: a.started_ms,
            answered_ms: a.answered_ms,
            ended_ms: a.ended_ms,
            pdd_ms: a.pdd_ms,
            duration_ms: a.duration_ms,
            played_permille: a.played_permille,
            dtmf: a.dtmf,
        }
    }
}

fn prompt_id_of(path: &str) -> String {
    std::path::Path::new(path)
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default()
}

fn rule(r: Option<RuleIn>, d: RetryRule, what: &str) -> ApiResult<RetryRule> {
    match r {
        None => Ok(d),
        Some(r) if (1..=10).contains(&r.max_attempts) && r.interval_s <= 7 * 86400 => {
            Ok(RetryRule {
                interval_s: r.interval_s,
                max_attempts: r.max_attempts,
            })
        }
        Some(_) => Err(ApiError::invalid(format!(
            "retry.{what}: max_attempts 1..=10, interval_s at most a week"
        ))),
    }
}

async fn estimate(
    st: &AppState,
    tenant: &str,
    target: &Target,
    prompt_ms: i64,
) -> ApiResult<Estimate> {
    let contacts: u64 = contact_groups(st, tenant, true)
        .await?
        .into_iter()
        .filter(|(z, s, _)| target.matches(z, s))
        .map(|(_, _, n)| n as u64)
        .sum();
    let snap = st.dialer.snapshot().await?;
    let cps: f64 = snap.trunks.iter().map(|t| t.cps_limit).sum();
    let channels: u32 = snap.trunks.iter().map(|t| t.max_channels).sum();
    let duration_s = (cps > 0.0 && channels > 0).then(|| {
        // The slower of the CPS ceiling and the channels busy for ring + message.
        let per_call_s = 10.0 + prompt_ms as f64 / 1000.0;
        let by_cps = contacts as f64 / cps;
        let by_channels = contacts as f64 * per_call_s / f64::from(channels);
        (by_cps.max(by_channels) * 10.0).round() / 10.0
    });
    Ok(Estimate {
        contacts,
        duration_s,
    })
}

async fn prompt_ms(st: &AppState, tenant: &str, id: &str) -> ApiResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT duration_ms FROM api_prompts WHERE tenant = ? AND id = ?")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&st.db)
            .await?
            .unwrap_or(0),
    )
}

async fn render(st: &AppState, c: CampaignRecord) -> ApiResult<CampaignOut> {
    let prompt_id = prompt_id_of(&c.spec.prompt);
    let pms = prompt_ms(st, &c.spec.tenant, &prompt_id).await?;
    let estimate = estimate(st, &c.spec.tenant, &c.spec.target, pms).await?;
    let p = st.store.progress(c.id).await?;
    let mut totals = BTreeMap::new();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT COALESCE(last_outcome, 'unknown'), COUNT(*) FROM campaign_contacts
         WHERE campaign_id = ? AND state = 'done' GROUP BY 1",
    )
    .bind(c.id)
    .fetch_all(&st.db)
    .await?;
    for o in [
        "answered",
        "busy",
        "no_answer",
        "rejected",
        "invalid_number",
        "failed",
        "canceled",
    ] {
        totals.insert(o.to_string(), 0);
    }
    for (o, n) in rows {
        totals.insert(o, n as u64);
    }
    totals.insert("pending".into(), p.pending);
    totals.insert("in_progress".into(), p.dialing);
    let mut by_zone: BTreeMap<String, ZoneProgress> = BTreeMap::new();
    let zrows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT ct.zone, cc.state, cc.answered, COUNT(*) FROM campaign_contacts cc
         JOIN contacts ct ON ct.id = cc.contact_id WHERE cc.campaign_id = ? GROUP BY 1, 2, 3",
    )
    .bind(c.id)
    .fetch_all(&st.db)
    .await?;
    for (z, s, a, n) in zrows {
        let e = by_zone.entry(z).or_default();
        e.targeted += n as u64;
        if s == "done" {
            e.done += n as u64;
        }
        if a != 0 {
            e.answered += n as u64;
        }
    }
    let since = now_ms() - 60_000;
    let recent: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM attempts WHERE campaign_id = ? AND started_ms >= ?",
    )
    .bind(c.id)
    .bind(since)
    .fetch_one(&st.db)
    .await?;
    let rate = recent as f64 / 60.0;
    let left = p.pending + p.dialing;
    let eta_s = if left == 0 {
        Some(0.0)
    } else if rate > 0.0 {
        Some((left as f64 / rate).round())
    } else {
        None
    };
    Ok(CampaignOut {
        id: c.id,
        name: c.spec.name,
        state: c.state.as_str().to_string(),
        prompt_id,
        target: TargetIn {
            all: c.spec.target.all,
            zones: c.spec.target.zones,
            streets: c.spec.target.streets,
        },
        priority: c.spec.priority.as_str().to_string(),
        caller_id: c.spec.caller_id,
        ring_timeout_s: c.spec.ring_timeout_s,
        play_count: c.spec.play_count,
        created_ms: c.created_ms,
        estimate,
        totals,
        by_zone,
        progress: if p.targeted == 0 {
            0.0
        } else {
            p.done as f64 / p.targeted as f64
        },
        rate_cps: (rate * 100.0).round() / 100.0,
        eta_s,
    })
}

/// The tenant's campaign `id`, or 404.
async fn owned(st: &AppState, tenant: &str, id: i64) -> ApiResult<CampaignRecord> {
    match st.store.campaign(id).await? {
        Some(c) if c.spec.tenant == tenant => Ok(c),
        _ => Err(ApiError::not_found(format!("no campaign {id}"))),
    }
}

/// Create a campaign (draft) with an estimate.
#[utoipa::path(post, path = "/v1/campaigns", tag = "campaigns", request_body = NewCampaign,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replay-safe create")),
    responses((status = 201, body = CampaignOut), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    ApiJson(n): ApiJson<NewCampaign>,
) -> ApiResult<(StatusCode, Json<CampaignOut>)> {
    let name = n.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::invalid("name: 1-200 characters"));
    }
    let prompt = prompt_path(&st, &tenant, &n.prompt_id)
        .await?
        .ok_or_else(|| ApiError::invalid(format!("prompt_id: no prompt {}", n.prompt_id)))?;
    let target = Target {
        all: n.target.all,
        zones: n.target.zones,
        streets: n.target.streets,
    };
    if target.is_empty() {
        return Err(ApiError::invalid(
            "target: {\"all\": true} or some zones or streets",
        ));
    }
    let priority = match n.priority.as_deref() {
        None => Priority::Normal,
        Some(p) => {
            Priority::parse(p).ok_or_else(|| ApiError::invalid("priority: normal or emergency"))?
        }
    };
    let caller_id = match n.caller_id {
        None => None,
        Some(c) => Some(
            engine::dialer::numbers::normalize(&c, &st.cfg.default_region)
                .map_err(|e| ApiError::invalid(format!("caller_id: {e}")))?
                .e164,
        ),
    };
    if let Some(r) = n.ring_timeout_s {
        if !(5..=120).contains(&r) {
            return Err(ApiError::invalid("ring_timeout_s: 5..=120"));
        }
    }
    let play_count = n.play_count.unwrap_or(1);
    if !(1..=5).contains(&play_count) {
        return Err(ApiError::invalid("play_count: 1..=5"));
    }
    let d = st.dialer.default_retry();
    let retry = match n.retry {
        None => d,
        Some(r) => RetryPolicy {
            busy: rule(r.busy, d.busy, "busy")?,
            no_answer: rule(r.no_answer, d.no_answer, "no_answer")?,
            failed: rule(r.failed, d.failed, "failed")?,
            rejected: rule(r.rejected, d.rejected, "rejected")?,
        },
    };
    let window = match n.window {
        None => None,
        Some(w) if w.always => Some(CallingWindow::always()),
        Some(w) => {
            let d = CallingWindow::default();
            let cw = CallingWindow {
                tz: w.tz.unwrap_or(d.tz),
                days: w.days.unwrap_or(d.days),
                start: w.start.unwrap_or(d.start),
                end: w.end.unwrap_or(d.end),
            };
            cw.compile()
                .map_err(|e| ApiError::invalid(format!("window: {e}")))?;
            Some(cw)
        }
    };
    let spec = CampaignSpec {
        tenant: tenant.clone(),
        name: name.to_string(),
        prompt,
        target,
        priority,
        window,
        caller_id,
        ring_timeout_s: n.ring_timeout_s,
        play_count,
        retry,
    };
    let rec = st.dialer.create_campaign(spec).await?;
    tracing::info!(tenant = %tenant, campaign = rec.id, "campaign created");
    Ok((StatusCode::CREATED, Json(render(&st, rec).await?)))
}

/// List campaigns, newest last.
#[utoipa::path(get, path = "/v1/campaigns", tag = "campaigns", params(PageQuery),
    responses((status = 200, body = Page<CampaignOut>), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    uri: Uri,
) -> ApiResult<Json<Page<CampaignOut>>> {
    let q: PageQuery = parse_query(&uri)?;
    let limit = q.limit()?;
    let after = q.after_id()?;
    let mut mine: Vec<CampaignRecord> = st
        .store
        .campaigns(&[])
        .await?
        .into_iter()
        .filter(|c| c.spec.tenant == tenant && c.id > after)
        .collect();
    mine.sort_by_key(|c| c.id);
    mine.truncate(limit as usize + 1);
    let mut items = vec![];
    for c in mine {
        items.push(render(&st, c).await?);
    }
    Ok(Json(Page::from_fetched(items, limit, |c| c.id.to_string())))
}

/// One campaign with progress.
#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses((status = 200, body = CampaignOut), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignOut>> {
    let id = parse_id(&id)?;
    let c = owned(&st, &tenant, id).await?;
    Ok(Json(render(&st, c).await?))
}

fn parse_id(s: &str) -> ApiResult<i64> {
    s.parse()
        .map_err(|_| ApiError::not_found(format!("no campaign {s}")))
}

async fn transition(
    st: AppState,
    tenant: String,
    id: String,
    action: &str,
) -> ApiResult<Json<CampaignOut>> {
    let id = parse_id(&id)?;
    let c = owned(&st, &tenant, id).await?;
    if st.draining.load(std::sync::atomic::Ordering::SeqCst)
        && action != "pause"
        && action != "cancel"
    {
        return Err(ApiError::unavailable("draining: no campaign starts now"));
    }
    let want_from: &[CampaignState] = match action {
        "start" => &[CampaignState::Draft],
        "pause" => &[CampaignState::Running],
        "resume" => &[CampaignState::Paused],
        _ => &[
            CampaignState::Draft,
            CampaignState::Running,
            CampaignState::Paused,
        ],
    };
    if !want_from.contains(&c.state) {
        return Err(ApiError::conflict(format!(
            "cannot {action} a campaign that is {}",
            c.state
        )));
    }
    let rec = match action {
        "start" => st.dialer.start_campaign(id).await?,
        "pause" => st.dialer.pause(id).await?,
        "resume" => st.dialer.resume(id).await?,
        _ => st.dialer.cancel(id).await?,
    };
    tracing::info!(tenant = %tenant, campaign = id, %action, "campaign state changed");
    Ok(Json(render(&st, rec).await?))
}

macro_rules! transition_handler {
    ($fn:ident, $action:literal, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = concat!("/v1/campaigns/{id}/", $action), tag = "campaigns",
                    params(("id" = i64, Path, description = "Campaign id")),
                    responses((status = 200, body = CampaignOut), (status = 404, body = Problem),
                        (status = 409, body = Problem), (status = 503, body = Problem)),
                    security(("bearer" = [])))]
        pub async fn $fn(
            State(st): State<AppState>,
            Tenant(tenant): Tenant,
            Path(id): Path<String>,
        ) -> ApiResult<Json<CampaignOut>> {
            transition(st, tenant, id, $action).await
        }
    };
}

transition_handler!(
    start,
    "start",
    "draft → running: selects the targeted contacts and calls."
);
transition_handler!(
    pause,
    "pause",
    "running → paused: no new calls; calls in progress finish."
);
transition_handler!(resume, "resume", "paused → running.");
transition_handler!(
    cancel,
    "cancel",
    "→ canceled: no new calls; calls in progress finish."
);

/// Attempt records of a campaign.
#[utoipa::path(get, path = "/v1/campaigns/{id}/calls", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id"), PageQuery),
    responses((status = 200, body = Page<CallOut>), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn calls(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Json<Page<CallOut>>> {
    let id = parse_id(&id)?;
    owned(&st, &tenant, id).await?;
    let q: PageQuery = parse_query(&uri)?;
    let limit = q.limit()?;
    let rows = st.store.attempts(id, q.after_id()?, limit + 1).await?;
    Ok(Json(Page::from_fetched(
        rows.into_iter().map(CallOut::from).collect(),
        limit,
        |c| c.id.to_string(),
    )))
}

/// All attempt records as CSV.
#[utoipa::path(get, path = "/v1/campaigns/{id}/calls.csv", tag = "campaigns",
    params(("id" = i64, Path, description = "Campaign id")),
    responses((status = 200, content_type = "text/csv", body = String),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn calls_csv(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_id(id.strip_suffix(".csv").unwrap_or(&id))?;
    owned(&st, &tenant, id).await?;
    let mut w = crate::serve::csv_safe::SafeWriter::new(csv::Writer::from_writer(vec![]));
    let _ = w.write_record([
        "id",
        "number",
        "trunk",
        "state",
        "outcome",
        "sip_status",
        "sip_reason",
        "started_ms",
        "answered_ms",
        "ended_ms",
        "pdd_ms",
        "duration_ms",
        "played_permille",
        "dtmf",
    ]);
    let mut after = 0;
    loop {
        let rows = st.store.attempts(id, after, 1000).await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        for a in rows {
            let o = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
            let _ = w.write_record([
                a.id.to_string(),
                a.number,
                a.trunk,
                a.state,
                a.outcome.unwrap_or_default(),
                o(a.sip_status),
                a.sip_reason.unwrap_or_default(),
                a.started_ms.to_string(),
                o(a.answered_ms),
                o(a.ended_ms),
                o(a.pdd_ms),
                o(a.duration_ms),
                o(a.played_permille),
                a.dtmf.unwrap_or_default(),
            ]);
        }
    }
    let body = w.into_inner().map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"campaign-{id}-calls.csv\""),
            ),
        ],
        body,
    )
        .into_response())
}
