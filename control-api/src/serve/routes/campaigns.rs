//! `/v1/campaigns`: a message to the whole town or some zones/streets, created as a draft
//! with an estimate, then started, paused, resumed or canceled through the engine's
//! [`engine::dialer::Dialer`]; progress, attempt records and a CSV export.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::model::{
    CallingWindow, CampaignAction, CampaignSpec, Outcome, Priority, RetryPolicy, RetryRule, Target,
};
use engine::store::{CampaignRecord, CampaignReport, ContactGroup, Store, Tally};

use super::campaign_delivery::{delivery_of, messages_out, prompt_id_of, weighted_prompt_ms};
pub use super::campaign_types::{
    CallOut, CampaignOut, Estimate, NewCampaign, RetryIn, RuleIn, TargetIn, WindowIn,
};
use super::prompts::prompt_path;
use crate::serve::auth::Tenant;
use crate::serve::pagination::{Page, PageQuery};
use crate::serve::problem::{parse_query, ApiError, ApiJson, ApiResult, Problem};
use crate::serve::state::AppState;

/// A rule given in the request, or the default; bounds are checked by the model's one
/// campaign validation.
fn rule(r: Option<RuleIn>, d: RetryRule) -> RetryRule {
    r.map_or(d, |r| RetryRule {
        interval_s: r.interval_s,
        max_attempts: r.max_attempts,
    })
}

async fn estimate(
    st: &AppState,
    groups: &[ContactGroup],
    target: &Target,
    prompt_ms: i64,
) -> ApiResult<Estimate> {
    let contacts: u64 = groups
        .iter()
        .filter(|g| target.matches(&g.zone, &g.street))
        .map(|g| g.contacts)
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

/// The view's totals: every outcome (0 when none), the contacts waiting and in calls, and
/// the contacts by best result.
fn totals(report: &CampaignReport) -> BTreeMap<String, u64> {
    let mut totals: BTreeMap<String, u64> = Outcome::ALL
        .iter()
        .map(|o| (o.as_str().to_string(), 0))
        .collect();
    for (o, n) in &report.outcomes {
        totals.insert(o.as_str().to_string(), *n);
    }
    let p = &report.progress;
    totals.insert("pending".into(), p.pending);
    totals.insert("in_progress".into(), p.dialing);
    let r = &report.results;
    for (k, n) in [
        ("heard", r.heard),
        ("confirmed", r.confirmed),
        ("partial", r.partial),
        ("machine", r.machine),
    ] {
        totals.insert(k.into(), n);
    }
    totals
}

async fn render(st: &AppState, c: CampaignRecord) -> ApiResult<CampaignOut> {
    let prompt_id = prompt_id_of(&c.spec.prompt);
    let counts = st.counts.counts(&st.store, &c).await?;
    let report = counts.report.clone();
    let p = &counts.report.progress;
    let messages = messages_out(st, &c.spec, &counts.groups, &report.messages).await?;
    let pms = weighted_prompt_ms(&messages);
    let estimate = estimate(st, &counts.groups, &c.spec.target, pms).await?;
    let totals = totals(&report);
    let by_zone: BTreeMap<String, Tally> = report
        .zones
        .into_iter()
        .map(|z| (z.zone, z.counts))
        .collect();
    let recent = report.recent_attempts;
    let rate = recent as f64 / 60.0;
    let left = p.pending + p.dialing;
    let eta_s = if left == 0 {
        Some(0.0)
    } else if rate > 0.0 {
        Some((left as f64 / rate).round())
    } else {
        None
    };
    let keys = c.spec.keys();
    let d = &c.spec.delivery;
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
        confirm_digit: d.confirm_digit.map(String::from),
        repeat_digit: d.repeat_digit.map(String::from),
        optout_digit: keys.optout.map(String::from),
        max_repeats: d.max_repeats,
        pre_roll_prompt_id: d.pre_roll.as_deref().map(prompt_id_of),
        post_roll_prompt_id: d.post_roll.as_deref().map(prompt_id_of),
        confirmed_prompt_id: d.confirmed_prompt.as_deref().map(prompt_id_of),
        until: d.until.as_str().to_string(),
        amd: d.amd.as_ref().and_then(|a| serde_json::to_value(a).ok()),
        messages,
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
        counted_ms: counts.counted_ms,
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
    let prompt = prompt_path(&st, &tenant, &n.prompt_id)
        .await?
        .ok_or_else(|| ApiError::invalid(format!("prompt_id: no prompt {}", n.prompt_id)))?;
    let delivery = delivery_of(&st, &tenant, &n).await?;
    let priority = match n.priority.as_deref() {
        None => Priority::Normal,
        Some(p) => {
            Priority::parse(p).ok_or_else(|| ApiError::invalid("priority: normal or emergency"))?
        }
    };
    let caller_id = match n.caller_id {
        None => None,
        Some(c) => Some(
            engine::model::normalize(&c, &st.cfg.default_region)
                .map_err(|e| ApiError::invalid(format!("caller_id: {e}")))?
                .e164,
        ),
    };
    let d = st.dialer.default_retry();
    let retry = match n.retry {
        None => d,
        Some(r) => RetryPolicy {
            busy: rule(r.busy, d.busy),
            no_answer: rule(r.no_answer, d.no_answer),
            failed: rule(r.failed, d.failed),
            rejected: rule(r.rejected, d.rejected),
        },
    };
    let window = n.window.map(|w| {
        if w.always {
            return CallingWindow::always();
        }
        let d = CallingWindow::default();
        CallingWindow {
            tz: w.tz.unwrap_or(d.tz),
            days: w.days.unwrap_or(d.days),
            start: w.start.unwrap_or(d.start),
            end: w.end.unwrap_or(d.end),
        }
    });
    let spec = CampaignSpec {
        tenant: tenant.clone(),
        name: n.name.trim().to_string(),
        prompt,
        target: Target {
            all: n.target.all,
            zones: n.target.zones,
            streets: n.target.streets,
        },
        priority,
        window,
        caller_id,
        ring_timeout_s: n.ring_timeout_s,
        play_count: n.play_count.unwrap_or(1),
        retry,
        delivery,
    };
    // THE campaign validation (the engine runs the same one when it creates it).
    spec.validate()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
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
    let mine = st.store.tenant_campaigns(&tenant, after, limit + 1).await?;
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
    action: CampaignAction,
) -> ApiResult<Json<CampaignOut>> {
    let id = parse_id(&id)?;
    let c = owned(&st, &tenant, id).await?;
    if st.draining.load(std::sync::atomic::Ordering::SeqCst)
        && !matches!(action, CampaignAction::Pause | CampaignAction::Cancel)
    {
        return Err(ApiError::unavailable("draining: no campaign starts now"));
    }
    if c.state.after(action).is_none() {
        return Err(ApiError::conflict(format!(
            "cannot {} a campaign that is {}",
            action.as_str(),
            c.state
        )));
    }
    let rec = match action {
        CampaignAction::Start => st.dialer.start_campaign(id).await?,
        CampaignAction::Pause => st.dialer.pause(id).await?,
        CampaignAction::Resume => st.dialer.resume(id).await?,
        CampaignAction::Cancel | CampaignAction::Complete => st.dialer.cancel(id).await?,
    };
    tracing::info!(tenant = %tenant, campaign = id, action = action.as_str(), "campaign state changed");
    Ok(Json(render(&st, rec).await?))
}

macro_rules! transition_handler {
    ($fn:ident, $action:literal, $act:expr, $doc:literal) => {
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
            transition(st, tenant, id, $act).await
        }
    };
}

transition_handler!(
    start,
    "start",
    CampaignAction::Start,
    "draft → running: selects the targeted contacts and calls."
);
transition_handler!(
    pause,
    "pause",
    CampaignAction::Pause,
    "running → paused: no new calls; calls in progress finish."
);
transition_handler!(
    resume,
    "resume",
    CampaignAction::Resume,
    "paused → running."
);
transition_handler!(
    cancel,
    "cancel",
    CampaignAction::Cancel,
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
        "result",
        "beep_ms",
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
                a.state.as_str().to_string(),
                a.outcome
                    .map(|o| o.as_str().to_string())
                    .unwrap_or_default(),
                o(a.sip_status),
                a.sip_reason.unwrap_or_default(),
                a.started_ms.to_string(),
                o(a.answered_ms),
                o(a.ended_ms),
                o(a.pdd_ms),
                o(a.duration_ms),
                o(a.played_permille),
                a.dtmf.unwrap_or_default(),
                a.result.map(|r| r.as_str().to_string()).unwrap_or_default(),
                o(a.beep_ms),
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
