//! The citizens' pages of a town: registration (`/t/{tenant}/`), the privacy notice,
//! the verification page that shows the code and asks for the call, and unsubscription.
//! Registrations are stored with `source = web`, the consent time and the notice version,
//! only once the call confirmed the number.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use engine::dialer::core::{VerifyOutcome, VerifyRequest};
use engine::model::{NewContact, NewRegistration, Source};
use engine::store::Store;
use serde::Deserialize;

use super::abuse::Limited;
use super::config::{Notice, TenantPage};
use super::pages::{
    html, see_other, FieldErrors, MessagePage, PrivacyPage, RegisterPage, RegisterValues,
    UnsubscribePage, VerifyPage,
};
use super::pending::{Pending, Purpose, Step, MAX_CALLS};
use super::{csrf, phone, verify_prompt, WebState};
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
        .route("/t/{tenant}/verifica/{id}", get(verify_page).post(call_me))
}

/// A town as its pages show it.
struct Town {
    id: String,
    name: String,
    page: TenantPage,
}

impl Town {
    fn notice(&self) -> Notice {
        self.page.notice(&self.name)
    }
}

async fn town(web: &WebState, tenant: &str) -> Result<Town, Response> {
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

/// The CSRF token of this browser (its cookie's, else a new one to set).
fn csrf_of(headers: &HeaderMap, path: &str) -> (String, Option<String>) {
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
    let t = match town(&web, &tenant).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    if !csrf_ok(&headers, f.csrf.as_deref()) {
        return refused_csrf(&t, format!("/t/{}/", t.id));
    }
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

fn start(web: &WebState, t: &Town, number: phone::Callable, purpose: Purpose) -> Response {
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
    let t = match town(&web, &tenant).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    if !csrf_ok(&headers, f.csrf.as_deref()) {
        return refused_csrf(&t, format!("/t/{}/cancellazione", t.id));
    }
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

async fn verify_page(
    State(web): State<WebState>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let t = match town(&web, &tenant).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let p = web.pending.lock().expect("lock").get(&t.id, &id).cloned();
    let (csrf, cookie) = csrf_of(&headers, &format!("/t/{}/", t.id));
    match p {
        Some(p) => html(
            StatusCode::OK,
            &verify_view(&t, &id, csrf, &p, None),
            cookie,
        ),
        None => unknown_verification(&t),
    }
}

fn unknown_verification(t: &Town) -> Response {
    let page = MessagePage {
        title: "Verifica non trovata".into(),
        town: t.name.clone(),
        message: "Questa verifica non esiste o è scaduta. Ricomincia dall'iscrizione.".into(),
        back: Some(format!("/t/{}/", t.id)),
    };
    html(StatusCode::NOT_FOUND, &page, None)
}

/// What the verification page says for where the verification is.
fn verify_view(
    t: &Town,
    id: &str,
    csrf: String,
    p: &Pending,
    refusal: Option<String>,
) -> VerifyPage {
    let now = Instant::now();
    let unsubscribe = p.purpose == Purpose::Unsubscribe;
    let calls_left = MAX_CALLS.saturating_sub(p.calls);
    let (title, message, class) = match (&p.step, &p.last) {
        (Step::Done, _) if unsubscribe => (
            "Cancellazione completata",
            "Numero verificato: non riceverai più chiamate e il numero è stato cancellato."
                .to_string(),
            "ok",
        ),
        (Step::Done, _) => (
            "Iscrizione completata",
            "Numero verificato: sei iscritto e riceverai gli avvisi per la tua via.".to_string(),
            "ok",
        ),
        (Step::StoreFailed, _) => (
            "Errore",
            "Il numero è verificato ma non siamo riusciti a salvarlo: riprova più tardi."
                .to_string(),
            "ko",
        ),
        (Step::Calling, _) => (
            "Ti stiamo chiamando",
            "Rispondi e digita sulla tastiera del telefono il codice che vedi sullo schermo."
                .to_string(),
            "",
        ),
        (Step::Ready, _) if p.expired(now) => (
            "Codice scaduto",
            "Il codice è scaduto dopo 10 minuti. Ricomincia.".to_string(),
            "ko",
        ),
        (Step::Ready, last) => {
            let what = last.as_ref().map(outcome_text);
            let msg = match (what, calls_left) {
                (Some(w), 0) => format!("{w} Hai esaurito i tentativi: ricomincia."),
                (Some(w), _) => format!("{w} Puoi chiedere un'altra chiamata."),
                (None, _) => "Tieni a portata di mano il telefono.".to_string(),
            };
            let title = if last.is_some() {
                "Verifica non riuscita"
            } else {
                "Verifica il tuo numero"
            };
            (title, msg, if last.is_some() { "ko" } else { "" })
        }
    };
    let message = refusal.unwrap_or(message);
    let finished = matches!(p.step, Step::Done | Step::StoreFailed);
    let can_call = p.may_call(now);
    VerifyPage {
        title: title.into(),
        town: t.name.clone(),
        tenant: t.id.clone(),
        id: id.to_string(),
        csrf,
        code_spaced: p
            .code
            .chars()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(" "),
        code: p.code.clone(),
        show_code: !finished && !p.expired(now),
        number: p.number.e164.clone(),
        message,
        status_class: class,
        can_call,
        calls_left,
        refresh: p.step == Step::Calling,
        restart: !finished && !can_call && p.step != Step::Calling,
        unsubscribe,
    }
}

fn outcome_text(o: &VerifyOutcome) -> &'static str {
    match o {
        VerifyOutcome::Confirmed => "Numero verificato.",
        VerifyOutcome::WrongCode => "Il codice digitato era errato per tre volte.",
        VerifyOutcome::NotKeyed => "Non abbiamo ricevuto il codice durante la chiamata.",
        VerifyOutcome::NotAnswered(_) => "La chiamata non ha avuto risposta.",
        VerifyOutcome::NoTrunk => "Il servizio di chiamata non è disponibile ora.",
        VerifyOutcome::ShuttingDown => "Il servizio è in manutenzione.",
    }
}

/// The verification page's form field.
#[derive(Debug, Deserialize)]
struct CallForm {
    csrf: Option<String>,
}

async fn call_me(
    State(web): State<WebState>,
    Path((tenant, id)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<CallForm>,
) -> Response {
    let t = match town(&web, &tenant).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    if !csrf_ok(&headers, f.csrf.as_deref()) {
        return refused_csrf(&t, format!("/t/{}/verifica/{id}", t.id));
    }
    let now = Instant::now();
    let granted = {
        let mut pending = web.pending.lock().expect("lock");
        let Some(p) = pending.get_mut(&t.id, &id) else {
            return unknown_verification(&t);
        };
        if !p.may_call(now) {
            return see_other(&format!("/t/{}/verifica/{id}", t.id), None);
        }
        let g = web
            .limits
            .lock()
            .expect("lock")
            .grant(peer.ip(), &p.number.e164, now);
        match g {
            Ok(()) => {
                p.calls += 1;
                p.step = Step::Calling;
                Ok(p.clone())
            }
            Err(why) => Err((p.clone(), why)),
        }
    };
    match granted {
        Ok(p) => {
            tokio::spawn(run_call(web.clone(), Arc::new(t_owned(&t)), id.clone(), p));
            see_other(&format!("/t/{}/verifica/{id}", t.id), None)
        }
        Err((p, why)) => {
            let msg = match why {
                Limited::Ip => {
                    "Troppe richieste di chiamata da questa connessione: al massimo \
                                5 in un'ora. Riprova più tardi."
                }
                Limited::Number => {
                    "Questo numero ha già ricevuto il massimo di chiamate di \
                                    verifica per oggi (3). Riprova domani."
                }
            };
            let csrf = f.csrf.unwrap_or_default();
            let mut page = verify_view(&t, &id, csrf, &p, Some(msg.into()));
            page.status_class = "ko";
            page.can_call = false;
            html(StatusCode::TOO_MANY_REQUESTS, &page, None)
        }
    }
}

fn t_owned(t: &Town) -> Town {
    Town {
        id: t.id.clone(),
        name: t.name.clone(),
        page: t.page.clone(),
    }
}

/// Places the call, waits for its end, and applies a confirmed verification.
async fn run_call(web: WebState, t: Arc<Town>, id: String, p: Pending) {
    let prompt = verify_prompt::path(&web.app.prompt_dir, &t.id, &t.name).await;
    let outcome = match prompt {
        Ok(prompt) => {
            let req = VerifyRequest {
                number: p.number.e164.clone(),
                number_type: p.number.number_type,
                code: p.code.clone(),
                prompt: prompt.to_string_lossy().into_owned(),
                caller_id: t.page.caller_id.clone(),
            };
            web.app
                .dialer
                .verify(req)
                .await
                .unwrap_or(VerifyOutcome::ShuttingDown)
        }
        Err(e) => {
            tracing::error!(error = %e, "verification prompt");
            VerifyOutcome::NoTrunk
        }
    };
    tracing::info!(tenant = %t.id, ?outcome, "verification call ended");
    let step = if outcome == VerifyOutcome::Confirmed {
        match apply(&web, &t.id, &p).await {
            Ok(()) => Step::Done,
            Err(e) => {
                tracing::error!(error = %e, "storing a verified number");
                Step::StoreFailed
            }
        }
    } else {
        Step::Ready
    };
    if let Some(q) = web.pending.lock().expect("lock").get_mut(&t.id, &id) {
        q.step = step;
        q.last = Some(outcome);
    }
}

/// Registers (contact with `source = web`, consent time, notice version) or unsubscribes.
async fn apply(web: &WebState, tenant: &str, p: &Pending) -> Result<(), engine::store::StoreError> {
    let store = &web.app.store;
    let n = &p.number;
    match &p.purpose {
        Purpose::Register {
            street,
            house_number,
            zone,
            consent_ms,
            notice_version,
        } => {
            let r = NewRegistration {
                number: n.e164.clone(),
                number_type: n.number_type,
                source: Source::Web,
                zone: Some(zone.clone()),
                consent_ms: *consent_ms,
                notice_version: notice_version.clone(),
            };
            let reg = store.register(tenant, r, now_ms()).await?;
            if reg == engine::model::Registered::New {
                web.app.events.emit(engine::webhook::Event::registration(
                    tenant,
                    &n.e164,
                    true,
                    "web",
                    now_ms(),
                ));
            }
            let c = NewContact {
                number: n.e164.clone(),
                number_type: n.number_type,
                street: street.clone(),
                house_number: house_number.clone(),
                zone: zone.clone(),
                source: Source::Web,
                opt_out: false,
            };
            store.upsert_contacts(tenant, vec![c]).await?;
        }
        Purpose::Unsubscribe => {
            let gone = store.unregister(tenant, &n.e164, now_ms()).await?;
            if gone != engine::model::Unregistered::Unknown {
                web.app.events.emit(engine::webhook::Event::registration(
                    tenant,
                    &n.e164,
                    false,
                    "web",
                    now_ms(),
                ));
            }
        }
    }
    Ok(())
}
