//! The verification page of a town's citizens' form: it shows the code, places the call
//! that asks for it (within the abuse limits), and applies a confirmed verification
//! (registration or unsubscription).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use engine::dialer::core::{VerifyOutcome, VerifyRequest};
use engine::model::{NewContact, NewRegistration, Source};
use engine::store::Store;
use serde::Deserialize;

use super::abuse::Limited;
use super::citizen::{csrf_of, posted_town, town, Town};
use super::pages::{html, see_other, MessagePage, VerifyPage};
use super::pending::{Pending, Purpose, Step, MAX_CALLS};
use super::{verify_prompt, WebState};
use crate::serve::state::now_ms;

pub(super) async fn verify_page(
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
    let (title, message, class) = status_text(p, now, calls_left);
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

/// The page's title, message and CSS status class for where the verification is.
fn status_text(p: &Pending, now: Instant, calls_left: u8) -> (&'static str, String, &'static str) {
    let unsubscribe = p.purpose == Purpose::Unsubscribe;
    match (&p.step, &p.last) {
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
pub(super) struct CallForm {
    csrf: Option<String>,
}

pub(super) async fn call_me(
    State(web): State<WebState>,
    Path((tenant, id)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<CallForm>,
) -> Response {
    let back = format!("verifica/{id}");
    let t = match posted_town(&web, &tenant, &headers, f.csrf.as_deref(), &back).await {
        Ok(t) => t,
        Err(r) => return r,
    };
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
            web.app.events.emit(engine::webhook::Event::registered(
                reg,
                tenant,
                &n.e164,
                Some(zone),
                "web",
                now_ms(),
            ));
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
                    engine::webhook::EventKind::RegistrationDeleted,
                    tenant,
                    &n.e164,
                    None,
                    "web",
                    now_ms(),
                ));
            }
        }
    }
    Ok(())
}
