//! The web pages: the citizens' registration form with phone verification under
//! `/t/{tenant}/`, and the town operators' console under `/console`.
//!
//! Server-rendered HTML from askama templates (`control-api/templates/`, checked and
//! compiled with the binary, escaped by default); no JavaScript is needed (the console's
//! browser recording is the one progressive enhancement), no CDN: the stylesheet is served
//! from `/static/`. Forms carry a CSRF token (`csrf.rs`); verification calls are limited
//! per IP and per number (`abuse.rs`) and only go to fixed and mobile numbers of the
//! town's country (`phone.rs`). The console calls the same `/v1` API as any client
//! (`api_call.rs`), with the tenant token kept server-side behind an HttpOnly cookie.

pub mod abuse;
pub mod api_call;
pub mod citizen;
mod citizen_verify;
pub mod config;
pub mod console;
pub mod console_campaign;
pub mod csrf;
pub mod pages;
pub mod pending;
pub mod phone;
pub mod session;
pub mod verify_prompt;
pub mod views;

use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::serve::state::AppState;

pub use config::WebConfig;

/// What the pages share.
pub struct Web {
    /// The API's state (store, dialer, configuration).
    pub app: AppState,
    /// Verifications in progress.
    pub pending: Mutex<pending::Registry>,
    /// Abuse limits of the verification calls.
    pub limits: Mutex<abuse::CallLimits>,
    /// The console's sessions.
    pub sessions: Mutex<session::Sessions>,
    /// The `/v1` router, which the console calls in process.
    pub api: Router,
}

/// Shared, cheap to clone.
pub type WebState = Arc<Web>;

/// The pages' Content-Security-Policy: everything from this origin only, forms post here.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
script-src 'self'; media-src 'self' blob:; connect-src 'self'; form-action 'self'; \
frame-ancestors 'none'; base-uri 'none'";

const SITE_CSS: &str = include_str!("../../static/site.css");
const RECORD_JS: &str = include_str!("../../static/record.js");

/// The routes of the web pages.
pub fn router(app: AppState) -> Router {
    let cfg = &app.cfg.web;
    let web = Arc::new(Web {
        limits: Mutex::new(abuse::CallLimits::new(
            cfg.calls_per_ip_hour,
            cfg.calls_per_number_day,
        )),
        pending: Mutex::new(pending::Registry::default()),
        sessions: Mutex::new(session::Sessions::default()),
        api: crate::serve::api_router(app.clone()),
        app,
    });
    Router::new()
        .route(
            "/static/site.css",
            get(|| asset(SITE_CSS, "text/css; charset=utf-8")),
        )
        .route(
            "/static/record.js",
            get(|| asset(RECORD_JS, "text/javascript; charset=utf-8")),
        )
        .merge(citizen::routes())
        .merge(console::routes())
        .with_state(web)
}

async fn asset(body: &'static str, ct: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}
