//! The citizens' pages of a town: registration (`/t/{tenant}/`), the privacy notice and
//! unsubscription; the verification page that shows the code and asks for the call is
//! in `citizen_verify.rs`. Registrations are stored with `source = web`, the consent time
//! and the notice version, only once the call confirmed the number.

use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use engine::store::Store;
use serde::Deserialize;

use super::config::{Notice, TenantPage};
use super::pages::{
    html, see_other, FieldErrors, MessagePage, PrivacyPage, RegisterPage, RegisterValues,
    UnsubscribePage,
};
use super::pending::Purpose;
use super::{citizen_verify, csrf, phone, WebState};
use crate::serve::state::now_ms;

/// The routes under `/t/{tenant}/`.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route(
            "/t/{tenant}",
            get(|Path(t): Path<String>| async move { see_other(&format!("/t/{t}/"), None) }),
        )
        .route("/t/{tenant}/", get(register_form).post(register))
        .route("/t/{tenant}/privacy", get(privacy))
        .route(
            "/t/{tenant}/cancellazione",
            get(unsubscribe_form).post(unsubscribe),
        )
        .route(
            "/t/{tenant}/verifica/{id}",
            get(citizen_verify::verify_page).post(citizen_verify::call_me),
        )
}

/// A town as its pages show it.
pub(super) struct Town {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) page: TenantPage,
}

impl Town {
    pub(super) fn notice(&self) -> Notice {
        self.page.notice(&self.name)
    }
}

pub(super) async fn town(web: &WebState, tenant: &str) -> Result<Town, Response> {
    let rec = web.app.store.tenant(tenant).await.ok().flatten();
    let Some(rec) = rec else {
        let page = MessagePage {
            title: "Pagina non trovata".into(),
            town: "Avvisi alla popolazione".into(),
            message: "Questo comune non usa il servizio di avviso.".into(),
            back: None,
        };
        return Err(html(StatusCode::NOT_FOUND, &page, None));
    };
    let page = web
        .app
        .cfg
        .web
        .tenant
        .get(tenant)
        .cloned()
        .unwrap_or_default();
    let name = page.town.clone().unwrap_or(rec.name);
    Ok(Town {
        id: rec.id,
        name,
        page,
    })
}

/// The town of a form post whose CSRF token checks out; otherwise the page to answer
/// (unknown town, or the refusal with a way back to `/t/{tenant}/{back}`).
pub(super) async fn posted_town(
    web: &WebState,
    tenant: &str,
    headers: &HeaderMap,
    csrf: Option<&str>,
    back: &str,
) -> Result<Town, Response> {
    let t = town(web, tenant).await?;
    if !csrf_ok(headers, csrf) {
        return Err(refused_csrf(&t, format!("/t/{}/{back}", t.id)));
    }
    Ok(t)
}

/// The CSRF token of this browser (its cookie's, else a new one to set).
pub(super) fn csrf_of(headers: &HeaderMap, path: &str) -> (String, Option<String>) {
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    match csrf::cookie_value(cookie, csrf::COOKIE) {
        Some(t) if t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) => (t.into(), None),
        _ => {
            let t = csrf::new_token();
            let c = csrf::set_cookie(&t, path);
            (t, Some(c))
        }
    }
}

fn csrf_ok(headers: &HeaderMap, field: Option<&str>) -> bool {
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    csrf::check(csrf::cookie_value(cookie, csrf::COOKIE), field)
}

fn refused_csrf(t: &Town, back: String) -> Response {
    let page = MessagePage {
        title: "Modulo non valido".into(),
        town: t.name.clone(),
        message: "Il modulo è scaduto o non proviene da questo sito. Torna indietro, \
                  ricarica la pagina e riprova."
            .into(),
        back: Some(back),
    };
    html(StatusCode::FORBIDDEN, &page, None)
}

async fn streets(web: &WebState, tenant: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = web
        .app
        .store
        .streets(tenant)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.street, s.zone))
        .collect();
    v.sort();
    v
}

async fn register_form(
    State(web): State<WebState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let t = match town(&web, &tenant).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let (token, cookie) = csrf_of(&headers, &format!("/t/{}/", t.id));
    let page = register_page(
        &web,
        &t,
        token,
        RegisterValues::default(),
        FieldErrors::default(),
    );
    html(StatusCode::OK, &page.await, cookie)
}

async fn register_page(
    web: &WebState,
    t: &Town,
    csrf: String,
    form: RegisterValues,
    errors: FieldErrors,
) -> RegisterPage {
    RegisterPage {
        title: "Iscriviti agli avvisi".into(),
        town: t.name.clone(),
        tenant: t.id.clone(),
        csrf,
        streets: streets(web, &t.id).await.into_iter().map(|s| s.0).collect(),
        form,
        errors,
        notice_version: t.notice().version,
    }
}

/// The registration form's fields.
#[derive(Debug, Deserialize)]
struct RegisterForm {
    csrf: Option<String>,
    number: Option<String>,
    street: Option<String>,
    house_number: Option<String>,
    consent: Option<String>,
}

async fn register(
    State(web): State<WebState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Form(f): Form<RegisterForm>,
) -> Response {
    let t = match posted_town(&web, &tenant, &headers, f.csrf.as_deref(), "").await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let values = RegisterValues {
        number: f.number.clone().unwrap_or_default(),
        street: f.street.clone().unwrap_or_default(),
        house_number: f
            .house_number
            .clone()
            .unwrap_or_default()
            .trim()
            .to_string(),
        consent: f.consent.is_some(),
    };
    let mut errors = FieldErrors::default();
    let number = match phone::callable(&values.number, &web.app.cfg.default_region) {
        Ok(n) => Some(n),
        Err(e) => {
            errors.number = Some(e.to_string());
            None
        }
    };
    let zone = streets(&web, &t.id)
        .await
        .into_iter()
        .find(|(s, _)| *s == values.street)
        .map(|(_, z)| z);
    if zone.is_none() {
        errors.street = Some("Scegli la tua via dall'elenco.".into());
    }
    if !values.consent {
        errors.consent = Some("Per iscriverti devi acconsentire al trattamento dei dati.".into());
    }
    if values.house_number.len() > 20 {
        errors.general = Some("Il numero civico è troppo lungo.".into());
    }
    let (Some(number), Some(zone), true) = (number, zone, errors.is_empty()) else {
        let csrf = f.csrf.unwrap_or_default();
        let page = register_page(&web, &t, csrf, values, errors).await;
        return html(StatusCode::UNPROCESSABLE_ENTITY, &page, None);
    };
    let purpose = Purpose::Register {
        street: values.street,
        house_number: values.house_number,
        zone,
        consent_ms: now_ms(),
        notice_version: t.notice().version,
    };
    start(&web, &t, number, purpose)
}

pub(super) fn start(
    web: &WebState,
    t: &Town,
    number: phone::Callable,
    purpose: Purpose,
) -> Response {
    let id = web
        .pending
        .lock()
        .expect("lock")
        .start(&t.id, number, purpose, Instant::now());
    match id {
        Some(id) => see_other(&format!("/t/{}/verifica/{id}", t.id), None),
        None => {
            let page = MessagePage {
                title: "Servizio occupato".into(),
                town: t.name.clone(),
                message: "Troppe verifiche in corso: riprova tra qualche minuto.".into(),
                back: Some(format!("/t/{}/", t.id)),
            };
            html(StatusCode::SERVICE_UNAVAILABLE, &page, None)
        }
    }
}

async fn privacy(State(web): State<WebState>, Path(tenant): Path<String>) -> Response {
    let t = match town(&web, &tenant).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let page = PrivacyPage {
        title: "Informativa privacy".into(),
        town: t.name.clone(),
        tenant: t.id.clone(),
        notice: t.notice(),
    };
    html(StatusCode::OK, &page, None)
}

async fn unsubscribe_form(
    State(web): State<WebState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let t = match town(&web, &tenant).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let (csrf, cookie) = csrf_of(&headers, &format!("/t/{}/", t.id));
    let page = UnsubscribePage {
        title: "Cancellazione".into(),
        town: t.name.clone(),
        tenant: t.id.clone(),
        csrf,
        number: String::new(),
        error: None,
    };
    html(StatusCode::OK, &page, cookie)
}

/// The unsubscription form's fields.
#[derive(Debug, Deserialize)]
struct UnsubscribeForm {
    csrf: Option<String>,
    number: Option<String>,
}

async fn unsubscribe(
    State(web): State<WebState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Form(f): Form<UnsubscribeForm>,
) -> Response {
    let t = match posted_town(&web, &tenant, &headers, f.csrf.as_deref(), "cancellazione").await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let raw = f.number.unwrap_or_default();
    match phone::callable(&raw, &web.app.cfg.default_region) {
        Ok(n) => start(&web, &t, n, Purpose::Unsubscribe),
        Err(e) => {
            let page = UnsubscribePage {
                title: "Cancellazione".into(),
                town: t.name.clone(),
                tenant: t.id.clone(),
                csrf: f.csrf.unwrap_or_default(),
                number: raw,
                error: Some(e.to_string()),
            };
            html(StatusCode::UNPROCESSABLE_ENTITY, &page, None)
        }
    }
}
