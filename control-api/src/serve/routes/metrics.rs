//! Operational endpoints: `/metrics` (Prometheus text), `/healthz` (the process runs),
//! `/readyz` (store and dialer answer, not draining).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::store::Store;
use serde::Serialize;
use utoipa::ToSchema;

use crate::serve::problem::{ApiError, Problem};
use crate::serve::state::AppState;

/// Health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(st): State<AppState>) -> Response {
    ::metrics::gauge!("dialer_ready").set(if st.is_ready() { 1.0 } else { 0.0 });
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(),
    )
        .into_response()
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: store and dialer answer and the process is not draining.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Health), (status = 503, body = Problem)))]
pub async fn readyz(State(st): State<AppState>) -> Result<Json<Health>, ApiError> {
    if !st.is_ready() {
        return Err(ApiError::unavailable("not ready (starting or draining)"));
    }
    if st.store.ping().await.is_err() {
        return Err(ApiError::unavailable("store does not answer"));
    }
    if st.dialer.snapshot().await.is_err() {
        return Err(ApiError::unavailable("dialer stopped"));
    }
    Ok(Json(Health {
        status: "ready".into(),
    }))
}

/// `/docs` and its assets: Swagger UI, vendored from the npm package `swagger-ui-dist`.
pub async fn docs_index() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("../../../assets/swagger-ui/index.html"),
    )
        .into_response()
}

/// `swagger-ui-bundle.js`.
pub async fn docs_js() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/javascript"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        &include_bytes!("../../../assets/swagger-ui/swagger-ui-bundle.js")[..],
    )
        .into_response()
}

/// `swagger-ui.css`.
pub async fn docs_css() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/css"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        &include_bytes!("../../../assets/swagger-ui/swagger-ui.css")[..],
    )
        .into_response()
}
