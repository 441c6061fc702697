//! The HTTP routes of `dialer serve`: the `/v1` API grouped by what it manages, the docs,
//! `/metrics`, and the layers every request passes (limits, idempotency, audit, metrics).

use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use axum::Router;

use super::problem::problem_response;
use super::routes::{
    self, audit, campaigns, contacts, ivr_prompts, metrics, nodes, numbers, prompts, registrations,
    streets, tenants, trunks, webhooks,
};
use super::state::AppState;
use super::{audit_trail, idempotency, limits};

/// `/metrics` alone (behind `http.metrics_token` when set), for the API listener or for
/// `http.metrics_listen`.
pub fn metrics_router(st: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            limits::metrics_gate,
        ))
        .with_state(st)
}

/// The router over a state.
pub fn router(st: AppState) -> Router {
    let app = api_router(st.clone()).merge(crate::web::router(st.clone()));
    if st.cfg.http.metrics_listen.is_some() {
        app
    } else {
        app.merge(metrics_router(st))
    }
    .layer(axum::middleware::from_fn(observe))
    .layer(axum::middleware::from_fn(limits::security_headers))
}

/// The `/v1` API and its docs, with their limits (the web console calls it in process).
pub(crate) fn api_router(st: AppState) -> Router {
    let max_body = usize::try_from(st.cfg.http.max_body_bytes).unwrap_or(usize::MAX);
    let guard_state = (st.clone(), limits::Limits::new(&st.cfg.http));
    Router::new()
        .merge(carrier_routes())
        .merge(phone_line_routes())
        .merge(audience_routes())
        .merge(campaign_routes())
        .merge(notification_routes())
        .merge(docs_routes())
        .fallback(|| async {
            problem_response(StatusCode::NOT_FOUND, "not-found", "no such endpoint")
        })
        // After every route: it sets the fallback of the method routers registered so far.
        .method_not_allowed_fallback(|| async {
            problem_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "method not allowed on this endpoint",
            )
            .into_response()
        })
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            audit_trail::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            idempotency::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            guard_state,
            limits::guard,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(st)
}

/// Tenants, trunks, cluster nodes, the town numbers and prefix limits: what the dialer
/// calls through and for whom.
fn carrier_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants", post(tenants::create).get(tenants::list))
        .route("/v1/trunks", post(trunks::create).get(trunks::list))
        .route("/v1/nodes", get(nodes::list))
        .route(
            "/v1/trunks/{name}",
            get(trunks::get).put(trunks::replace).delete(trunks::delete),
        )
        .route("/v1/numbers", post(numbers::create).get(numbers::list))
        .route("/v1/numbers/{number}", delete(numbers::delete))
        .route(
            "/v1/prefix-limits",
            post(routes::prefix_limits::create).get(routes::prefix_limits::list),
        )
        .route(
            "/v1/prefix-limits/{prefix}",
            delete(routes::prefix_limits::delete),
        )
}

/// The inbound phone lines (registrations, staff PIN, IVR prompts) and the message prompts.
fn phone_line_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/registrations", get(registrations::list))
        .route(
            "/v1/tenants/{id}/staff-pin",
            put(registrations::set_staff_pin),
        )
        .route("/v1/ivr/prompts", get(ivr_prompts::list))
        .route(
            "/v1/ivr/prompts/{key}",
            put(ivr_prompts::put).delete(ivr_prompts::reset),
        )
        .route("/v1/prompts", post(prompts::create).get(prompts::list))
        .route(
            "/v1/prompts/{id}",
            get(prompts::get).delete(prompts::delete),
        )
        .route("/v1/prompts/{id}/audio", get(prompts::audio))
}

/// Streets, zones and contacts: who is called.
fn audience_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/streets", post(streets::import))
        .route("/v1/zones", get(streets::zones))
        .route("/v1/contacts/import", post(contacts::import))
        .route("/v1/contacts", post(contacts::create).get(contacts::list))
        .route("/v1/contacts/{number}", delete(contacts::erase))
        .route("/v1/contacts/{number}/opt-out", post(contacts::opt_out))
}

/// Campaigns, their state changes and their call records.
fn campaign_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/campaigns",
            post(campaigns::create).get(campaigns::list),
        )
        .route("/v1/campaigns/{id}", get(campaigns::get))
        .route("/v1/campaigns/{id}/start", post(campaigns::start))
        .route("/v1/campaigns/{id}/pause", post(campaigns::pause))
        .route("/v1/campaigns/{id}/resume", post(campaigns::resume))
        .route("/v1/campaigns/{id}/cancel", post(campaigns::cancel))
        .route("/v1/campaigns/{id}/calls", get(campaigns::calls))
        .route("/v1/campaigns/{id}/calls.csv", get(campaigns::calls_csv))
}

/// Webhooks and their deliveries, and the audit trail.
fn notification_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/webhooks", post(webhooks::create).get(webhooks::list))
        .route(
            "/v1/webhooks/{id}",
            get(webhooks::get).delete(webhooks::delete),
        )
        .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route(
            "/v1/webhooks/{id}/deliveries/{delivery}/retry",
            post(webhooks::retry),
        )
        .route("/v1/audit", get(audit::list))
}

/// Health, readiness, the OpenAPI document and its Swagger UI.
fn docs_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(metrics::healthz))
        .route("/readyz", get(metrics::readyz))
        .route(
            "/openapi.json",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    super::openapi::json(),
                )
            }),
        )
        .route("/docs", get(metrics::docs_index))
        .route("/docs/", get(metrics::docs_index))
        .route("/docs/swagger-ui-bundle.js", get(metrics::docs_js))
        .route("/docs/swagger-ui.css", get(metrics::docs_css))
}

/// Counts requests (`dialer_http_requests_total{method,route,status}`, the route being the
/// matched pattern, so labels stay bounded), times them, and logs each at debug level.
async fn observe(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let t0 = std::time::Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let secs = t0.elapsed().as_secs_f64();
    tracing::debug!(%method, %route, %status, ms = secs * 1000.0, "http");
    ::metrics::counter!("dialer_http_requests_total", "method" => method.clone(),
        "route" => route.clone(), "status" => status)
    .increment(1);
    ::metrics::histogram!("dialer_http_request_duration_seconds", "method" => method, "route" => route)
        .record(secs);
    resp
}
