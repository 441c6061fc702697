//! `/v1/webhooks` (tenant): endpoints that receive the tenant's events, signed as the
//! Standard Webhooks specification says; their outbox (`/deliveries`) and manual
//! redelivery. The secret is shown once, in the creation's answer.

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::Json;
use engine::store::{DeliveryRecord, Store, WebhookRecord};
use engine::webhook::{sign, EventKind, TargetPolicy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::serve::auth::Tenant;
use crate::serve::pagination::{Page, PageQuery};
use crate::serve::problem::{parse_query, ApiError, ApiJson, ApiResult, Problem};
use crate::serve::state::{hex, now_ms, AppState};
use crate::serve::webhook_guard::literal_ip;

/// Longest accepted URL.
const MAX_URL: usize = 2048;
/// Most endpoints per tenant.
const MAX_HOOKS: u32 = 20;

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where events are POSTed (`http://` or `https://`).
    #[schema(example = "https://example.org/hooks/dialer")]
    pub url: String,
    /// Events to receive: `call.completed`, `campaign.state_changed`, `campaign.progress`,
    /// `registration.created`, `registration.updated` (a zone change), `registration.deleted`.
    #[schema(example = json!(["call.completed", "campaign.state_changed"]))]
    pub events: Vec<String>,
}

/// An endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOut {
    /// Identifier.
    pub id: String,
    /// Where events go.
    pub url: String,
    /// Subscribed events.
    pub events: Vec<String>,
    /// Creation time, Unix ms.
    pub created_ms: i64,
}

/// A created endpoint, with its signing secret (shown only here).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// Identifier.
    pub id: String,
    /// Where events go.
    pub url: String,
    /// Subscribed events.
    pub events: Vec<String>,
    /// Creation time, Unix ms.
    pub created_ms: i64,
    /// `whsec_…`: the key of the `webhook-signature` HMAC. Not shown again.
    pub secret: String,
}

/// One event for this endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    /// Identifier (retry it with `POST …/deliveries/{id}/retry`).
    pub id: i64,
    /// `webhook-id` of the requests.
    pub event_id: String,
    /// Event type.
    pub event: String,
    /// `pending`, `delivered` or `dead` (retried for 24 h without success).
    pub state: String,
    /// Attempts so far.
    pub attempts: i64,
    /// Next attempt, Unix ms (pending only).
    pub next_ms: Option<i64>,
    /// HTTP status of the last attempt.
    pub last_status: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Enqueued, Unix ms.
    pub created_ms: i64,
    /// Delivered or given up, Unix ms.
    pub done_ms: Option<i64>,
    /// The JSON body sent.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

fn names(events: &[EventKind]) -> Vec<String> {
    events.iter().map(|e| e.as_str().to_string()).collect()
}

impl From<WebhookRecord> for WebhookOut {
    fn from(w: WebhookRecord) -> Self {
        WebhookOut {
            events: names(&w.events),
            id: w.id,
            url: w.url,
            created_ms: w.created_ms,
        }
    }
}

impl From<DeliveryRecord> for DeliveryOut {
    fn from(d: DeliveryRecord) -> Self {
        let pending = d.state == engine::webhook::DeliveryState::Pending;
        DeliveryOut {
            id: d.id,
            event_id: d.event_id,
            event: d.event.as_str().into(),
            state: d.state.as_str().into(),
            attempts: d.attempts,
            next_ms: pending.then_some(d.next_ms),
            last_status: d.last_status,
            last_error: d.last_error,
            created_ms: d.created_ms,
            done_ms: d.done_ms,
            payload: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// Checks a URL: http(s), a host, no credentials, bounded, and a literal address only
/// where the `[webhooks]` policy allows deliveries to it (names are checked at each
/// delivery, when they are resolved).
fn check_url(u: &str, targets: TargetPolicy) -> Result<String, ApiError> {
    if u.len() > MAX_URL {
        return Err(ApiError::invalid(format!("url: longer than {MAX_URL}")));
    }
    let p = reqwest::Url::parse(u).map_err(|e| ApiError::invalid(format!("url: {e}")))?;
    if !matches!(p.scheme(), "http" | "https") {
        return Err(ApiError::invalid("url: http:// or https:// only"));
    }
    if p.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::invalid("url: no host"));
    }
    if !p.username().is_empty() || p.password().is_some() {
        return Err(ApiError::invalid("url: no credentials in the URL"));
    }
    if let Some(ip) = literal_ip(&p).filter(|ip| !targets.allows(*ip)) {
        return Err(ApiError::invalid(format!(
            "url: {ip} is not a public address (webhooks.allow_private_targets is off)"
        )));
    }
    Ok(p.to_string())
}

/// Parses the subscription list: known names, at least one, no repeats.
fn check_events(list: &[String]) -> Result<Vec<EventKind>, ApiError> {
    let mut out: Vec<EventKind> = vec![];
    for (i, s) in list.iter().enumerate() {
        let k = EventKind::parse(s)
            .ok_or_else(|| ApiError::invalid(format!("events[{i}]: unknown event {s:?}")))?;
        if !out.contains(&k) {
            out.push(k);
        }
    }
    if out.is_empty() {
        return Err(ApiError::invalid("events: at least one"));
    }
    Ok(out)
}

/// Subscribe an endpoint to events.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = NewWebhook,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replay-safe create")),
    responses((status = 201, body = CreatedWebhook), (status = 400, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    ApiJson(n): ApiJson<NewWebhook>,
) -> ApiResult<(StatusCode, Json<CreatedWebhook>)> {
    let url = check_url(&n.url, st.cfg.webhooks.policy())?;
    let events = check_events(&n.events)?;
    if st.store.webhooks(&tenant, "", MAX_HOOKS).await?.len() >= MAX_HOOKS as usize {
        return Err(ApiError::conflict(format!("at most {MAX_HOOKS} webhooks")));
    }
    let id: [u8; 12] = rand::random();
    let w = WebhookRecord {
        id: format!("wh_{}", hex(&id)),
        tenant,
        url,
        events,
        secret: sign::new_secret(),
        created_ms: now_ms(),
    };
    st.store.create_webhook(w.clone()).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook {
            events: names(&w.events),
            id: w.id,
            url: w.url,
            created_ms: w.created_ms,
            secret: w.secret,
        }),
    ))
}

/// List the tenant's endpoints.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(PageQuery),
    responses((status = 200, body = Page<WebhookOut>), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    uri: Uri,
) -> ApiResult<Json<Page<WebhookOut>>> {
    let q: PageQuery = parse_query(&uri)?;
    let limit = q.limit()?;
    let rows = st.store.webhooks(&tenant, &q.after()?, limit + 1).await?;
    let items = rows.into_iter().map(WebhookOut::from).collect();
    Ok(Json(Page::from_fetched(items, limit, |w| w.id.clone())))
}

/// An endpoint (without its secret).
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = WebhookOut), (status = 404, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookOut>> {
    let w = st.store.webhook(&tenant, &id).await?;
    let w = w.ok_or_else(|| ApiError::not_found(format!("no webhook {id}")))?;
    Ok(Json(w.into()))
}

/// Remove an endpoint and its outbox.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 204), (status = 404, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if !st.store.delete_webhook(&tenant, &id).await? {
        return Err(ApiError::not_found(format!("no webhook {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The endpoint's deliveries, oldest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), PageQuery),
    responses((status = 200, body = Page<DeliveryOut>), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn deliveries(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Json<Page<DeliveryOut>>> {
    let q: PageQuery = parse_query(&uri)?;
    let limit = q.limit()?;
    if st.store.webhook(&tenant, &id).await?.is_none() {
        return Err(ApiError::not_found(format!("no webhook {id}")));
    }
    let rows = st
        .store
        .deliveries(&tenant, &id, q.after_id()?, limit + 1)
        .await?;
    let items = rows.into_iter().map(DeliveryOut::from).collect();
    Ok(Json(Page::from_fetched(items, limit, |d| d.id.to_string())))
}

/// Send a delivery again now (any state), with a new 24 h retry window.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery}/retry", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"),
        ("delivery" = i64, Path, description = "Delivery id")),
    responses((status = 202), (status = 404, body = Problem), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn retry(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path((id, delivery)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let delivery: i64 = delivery
        .parse()
        .map_err(|_| ApiError::not_found(format!("no delivery {delivery}")))?;
    if !st
        .store
        .retry_delivery(&tenant, &id, delivery, now_ms())
        .await?
    {
        return Err(ApiError::not_found(format!("no delivery {delivery}")));
    }
    Ok(StatusCode::ACCEPTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_events_are_checked() {
        let any = TargetPolicy::Any;
        assert!(check_url("https://example.org/h?x=1", TargetPolicy::PublicOnly).is_ok());
        assert!(check_url("http://8.8.8.8/h", TargetPolicy::PublicOnly).is_ok());
        assert!(check_url("http://127.0.0.1:9000/", any).is_ok());
        for internal in [
            "http://127.0.0.1:9000/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/",
            "http://10.0.0.5/admin",
        ] {
            assert!(
                check_url(internal, TargetPolicy::PublicOnly).is_err(),
                "{internal}"
            );
        }
        for bad in [
            "ftp://x/",
            "not a url",
            "https://u:p@example.org/",
            "file:///etc/passwd",
        ] {
            assert!(check_url(bad, any).is_err(), "{bad}");
        }
        assert!(check_url(&format!("https://e.org/{}", "a".repeat(MAX_URL)), any).is_err());
        let ok = check_events(&["call.completed".into(), "call.completed".into()]).unwrap();
        assert_eq!(ok, vec![EventKind::CallCompleted]);
        assert!(check_events(&[]).is_err());
        assert!(check_events(&["call.started".into()]).is_err());
    }
}
