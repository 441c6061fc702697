//! The operators' console under `/console`: log in with the tenant token (kept
//! server-side; the browser holds an `HttpOnly; Secure; SameSite=Strict` session cookie),
//! campaigns, registrations and opt-outs, log out. Every read and change goes through the
//! `/v1` API ([`super::api_call`]); the campaign pages are in `console_campaign.rs`.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use engine::store::Store;
use serde::Deserialize;
use serde_json::Value;

use super::api_call::{call, Reply};
use super::pages::{html, see_other};
use super::session::{self, Session};
use super::views::{CampaignRow, CampaignsPage, LoginPage, RegistrationRow, RegistrationsPage};
use super::{csrf, WebState};

/// The console's routes.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route(
            "/console",
            get(|| async { see_other("/console/campagne", None) }),
        )
        .route("/console/accesso", get(login_form).post(login))
        .route("/console/esci", post(logout))
        .route("/console/campagne", get(campaigns))
        .route("/console/iscrizioni", get(registrations))
        .merge(super::console_campaign::routes())
}

/// The session of a request, or the redirect to the login page.
pub fn session_of(web: &WebState, headers: &HeaderMap) -> Result<(String, Session), Box<Response>> {
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let id = csrf::cookie_value(cookie, session::COOKIE).unwrap_or_default();
    let s = web
        .sessions
        .lock()
        .expect("lock")
        .get(id, Instant::now())
        .cloned();
    match s {
        Some(s) => Ok((id.to_string(), s)),
        None => Err(Box::new(see_other("/console/accesso", None))),
    }
}

/// A GET on the API as the signed-in operator: the session and the API's reply, or (boxed)
/// the redirect to the sign-in page when the browser has no session.
pub async fn get_signed_in(
    web: &WebState,
    headers: &HeaderMap,
    peer: SocketAddr,
    path: &str,
) -> Result<(Session, Reply), Box<Response>> {
    let (_, s) = session_of(web, headers)?;
    let r = api(web, &s, peer, Method::GET, path, None).await;
    Ok((s, r))
}

/// Calls the API as the session's tenant.
pub async fn api(
    web: &WebState,
    s: &Session,
    peer: SocketAddr,
    method: Method,
    path: &str,
    body: Option<(&str, Vec<u8>)>,
) -> Reply {
    let (ct, bytes) = match body {
        Some((ct, b)) => (Some(ct), b),
        None => (None, vec![]),
    };
    call(&web.api, peer, &s.token, method, path, ct, bytes).await
}

/// A POST's CSRF check against the session's token.
pub fn csrf_ok(s: &Session, field: Option<&str>) -> bool {
    csrf::check(Some(&s.csrf), field)
}

async fn login_form(State(web): State<WebState>, headers: HeaderMap) -> Response {
    if session_of(&web, &headers).is_ok() {
        return see_other("/console/campagne", None);
    }
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let (token, set) = match csrf::cookie_value(cookie, csrf::COOKIE) {
        Some(t) if t.len() == 32 => (t.to_string(), None),
        _ => {
            let t = csrf::new_token();
            let c = csrf::set_cookie(&t, "/console");
            (t, Some(c))
        }
    };
    html(StatusCode::OK, &login_page(token, None), set)
}

fn login_page(csrf: String, error: Option<String>) -> LoginPage {
    LoginPage {
        title: "Accesso".into(),
        town: "Console avvisi".into(),
        csrf,
        error,
    }
}

/// The login form.
#[derive(Debug, Deserialize)]
struct LoginForm {
    csrf: Option<String>,
    token: Option<String>,
}

async fn login(
    State(web): State<WebState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let field = f.csrf.clone().unwrap_or_default();
    if !csrf::check(csrf::cookie_value(cookie, csrf::COOKIE), Some(&field)) {
        let page = login_page(field, Some("Modulo scaduto: ricarica la pagina.".into()));
        return html(StatusCode::FORBIDDEN, &page, None);
    }
    let token = f.token.unwrap_or_default().trim().to_string();
    let hash = crate::serve::state::token_hash(&token);
    let tenant = web.app.store.tenant_by_token(&hash).await.ok().flatten();
    let Some(tenant) = tenant.filter(|_| !token.is_empty()) else {
        let page = login_page(field, Some("Token non valido.".into()));
        return html(StatusCode::UNAUTHORIZED, &page, None);
    };
    let id = web
        .sessions
        .lock()
        .expect("lock")
        .open(&tenant, &token, Instant::now());
    see_other("/console/campagne", Some(session::cookie(Some(&id))))
}

/// A form with only its CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    /// The token.
    pub csrf: Option<String>,
}

async fn logout(
    State(web): State<WebState>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Ok((id, s)) = session_of(&web, &headers) {
        if csrf_ok(&s, f.csrf.as_deref()) {
            web.sessions.lock().expect("lock").close(&id);
        }
    }
    see_other("/console/accesso", Some(session::cookie(None)))
}

async fn campaigns(
    State(web): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let path = "/v1/campaigns?limit=200";
    let (s, r) = match get_signed_in(&web, &headers, peer, path).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let mut rows: Vec<CampaignRow> = items(&r.json).iter().map(CampaignRow::from_json).collect();
    rows.reverse();
    let page = CampaignsPage {
        title: "Campagne".into(),
        town: s.tenant.clone(),
        csrf: s.csrf.clone(),
        rows,
    };
    html(StatusCode::OK, &page, None)
}

/// The `items` of a page of the API.
pub fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

async fn registrations(
    State(web): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let path = "/v1/registrations?limit=500";
    let (s, r) = match get_signed_in(&web, &headers, peer, path).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let rows = items(&r.json)
        .iter()
        .map(RegistrationRow::from_json)
        .collect();
    let page = RegistrationsPage {
        title: "Iscrizioni".into(),
        town: s.tenant.clone(),
        csrf: s.csrf.clone(),
        rows,
    };
    html(StatusCode::OK, &page, None)
}
