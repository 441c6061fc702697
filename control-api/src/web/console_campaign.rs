//! The console's campaign pages: a new campaign (message by upload, TTS text or browser
//! recording; zones and streets with live counts), its estimate behind an explicit
//! confirmation, live progress per zone with pause, resume and cancel, the CSV report and
//! the message to hear back. Each step is a `/v1` call.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Multipart, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::{json, Value};

use super::console::{api, csrf_ok, get_signed_in, items, session_of, CsrfForm};
use super::pages::{html, see_other};
use super::session::Session;
use super::views::{
    duration, percent, state_it, thousands, CampaignPage, NewCampaignPage, ZoneCount, ZoneRow,
};
use super::WebState;

/// The campaign routes of the console.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/console/campagne/nuova", get(new_form).post(create))
        .route("/console/campagne/{id}", get(show))
        .route("/console/campagne/{id}/report.csv", get(report))
        .route("/console/campagne/{id}/{action}", post(act))
        .route("/console/messaggi/{id}/audio", get(audio))
}

async fn zones(web: &WebState, s: &Session, peer: SocketAddr) -> Vec<ZoneCount> {
    let r = api(web, s, peer, Method::GET, "/v1/zones", None).await;
    items(&r.json).iter().map(ZoneCount::from_json).collect()
}

async fn new_page(
    web: &WebState,
    s: &Session,
    peer: SocketAddr,
    name: String,
    text: String,
    error: Option<String>,
) -> NewCampaignPage {
    NewCampaignPage {
        title: "Nuova campagna".into(),
        town: s.tenant.clone(),
        csrf: s.csrf.clone(),
        zones: zones(web, s, peer).await,
        name,
        text,
        error,
    }
}

async fn new_form(
    State(web): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let (_, s) = match session_of(&web, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let page = new_page(&web, &s, peer, String::new(), String::new(), None).await;
    html(StatusCode::OK, &page, None)
}

/// What the new-campaign form sent.
#[derive(Debug, Default)]
struct NewForm {
    csrf: String,
    name: String,
    priority: String,
    text: String,
    audio: Option<(String, Vec<u8>)>,
    zones: Vec<String>,
    streets: Vec<String>,
}

async fn read_form(mut m: Multipart) -> Result<NewForm, String> {
    let mut f = NewForm::default();
    while let Some(field) = m.next_field().await.map_err(|e| e.to_string())? {
        let name = field.name().unwrap_or_default().to_string();
        let ct = field.content_type().unwrap_or_default().to_string();
        let file = field.file_name().map(str::to_string);
        let bytes = field.bytes().await.map_err(|e| e.to_string())?;
        let text = || String::from_utf8_lossy(&bytes).trim().to_string();
        match name.as_str() {
            "csrf" => f.csrf = text(),
            "name" => f.name = text(),
            "priority" => f.priority = text(),
            "text" => f.text = text(),
            "zone" => f.zones.push(text()),
            "street" => f.streets.push(text()),
            "audio" if !bytes.is_empty() => {
                let ct = audio_type(&ct, file.as_deref().unwrap_or_default());
                f.audio = Some((ct, bytes.to_vec()));
            }
            _ => {}
        }
    }
    Ok(f)
}

/// The media type of an upload, from its part's type or its file name.
fn audio_type(ct: &str, file: &str) -> String {
    let lower = file.to_ascii_lowercase();
    if ct == "audio/mpeg" || lower.ends_with(".mp3") {
        "audio/mpeg".into()
    } else {
        "audio/wav".into()
    }
}

async fn create(
    State(web): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    m: Multipart,
) -> Response {
    let (_, s) = match session_of(&web, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let f = match read_form(m).await {
        Ok(f) => f,
        Err(e) => {
            let page = new_page(&web, &s, peer, String::new(), String::new(), Some(e)).await;
            return html(StatusCode::BAD_REQUEST, &page, None);
        }
    };
    if !csrf_ok(&s, Some(&f.csrf)) {
        return see_other("/console/campagne/nuova", None);
    }
    match launch_draft(&web, &s, peer, &f).await {
        Ok(id) => see_other(&format!("/console/campagne/{id}"), None),
        Err(e) => {
            let page = new_page(&web, &s, peer, f.name, f.text, Some(e)).await;
            html(StatusCode::UNPROCESSABLE_ENTITY, &page, None)
        }
    }
}

/// Creates the message and the campaign (a draft: nothing is called before the
/// confirmation); the campaign's id.
async fn launch_draft(
    web: &WebState,
    s: &Session,
    peer: SocketAddr,
    f: &NewForm,
) -> Result<i64, String> {
    if f.zones.is_empty() && f.streets.is_empty() {
        return Err("Scegli almeno una zona o una via.".into());
    }
    let name = enc(&f.name);
    let path = format!("/v1/prompts?name={name}");
    let body = match (&f.audio, f.text.is_empty()) {
        (Some((ct, bytes)), _) => (ct.as_str(), bytes.clone()),
        (None, false) => {
            let j = json!({"text": f.text, "voice": "it"});
            (
                "application/json",
                serde_json::to_vec(&j).unwrap_or_default(),
            )
        }
        (None, true) => return Err("Scrivi il testo del messaggio o carica un file audio.".into()),
    };
    let p = api(web, s, peer, Method::POST, &path, Some(body)).await;
    if !p.status.is_success() {
        return Err(format!("Messaggio non accettato: {}", p.error()));
    }
    let priority = if f.priority == "normal" {
        "normal"
    } else {
        "emergency"
    };
    let c = json!({
        "name": f.name,
        "prompt_id": p.json["id"],
        "target": {"zones": f.zones, "streets": f.streets},
        "priority": priority,
    });
    let body = serde_json::to_vec(&c).unwrap_or_default();
    let r = api(
        web,
        s,
        peer,
        Method::POST,
        "/v1/campaigns",
        Some(("application/json", body)),
    )
    .await;
    if !r.status.is_success() {
        return Err(format!("Campagna non creata: {}", r.error()));
    }
    r.json["id"]
        .as_i64()
        .ok_or_else(|| "Campagna senza id".to_string())
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn show(
    State(web): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/campaigns/{id}");
    let (s, r) = match get_signed_in(&web, &headers, peer, &path).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    if !r.status.is_success() {
        return see_other("/console/campagne", None);
    }
    html(StatusCode::OK, &campaign_page(&s, &r.json, None), None)
}

fn campaign_page(s: &Session, c: &Value, error: Option<String>) -> CampaignPage {
    let state = c["state"].as_str().unwrap_or_default();
    let contacts = c["estimate"]["contacts"].as_u64().unwrap_or_default();
    let zones = c["by_zone"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(zone, z)| ZoneRow {
                    zone: zone.clone(),
                    targeted: z["targeted"].as_u64().unwrap_or_default(),
                    done: z["done"].as_u64().unwrap_or_default(),
                    answered: z["answered"].as_u64().unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let actions: Vec<(&'static str, &'static str)> = match state {
        "running" => vec![("pausa", "Metti in pausa"), ("annulla", "Annulla")],
        "paused" => vec![("riprendi", "Riprendi"), ("annulla", "Annulla")],
        _ => vec![],
    };
    CampaignPage {
        title: c["name"].as_str().unwrap_or_default().to_string(),
        town: s.tenant.clone(),
        csrf: s.csrf.clone(),
        id: c["id"].as_i64().unwrap_or_default(),
        name: c["name"].as_str().unwrap_or_default().to_string(),
        state: state_it(state),
        priority: if c["priority"] == "emergency" {
            "emergenza"
        } else {
            "normale"
        }
        .into(),
        prompt_id: c["prompt_id"].as_str().unwrap_or_default().to_string(),
        draft: state == "draft",
        contacts_it: thousands(contacts),
        duration: c["estimate"]["duration_s"].as_f64().map(duration),
        percent: percent(c),
        eta: c["eta_s"]
            .as_f64()
            .filter(|_| state == "running")
            .map(duration),
        zones,
        actions,
        refresh: state == "running",
        error,
    }
}

async fn act(
    State(web): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((id, action)): Path<(i64, String)>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let (_, s) = match session_of(&web, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let verb = match action.as_str() {
        "avvia" => "start",
        "pausa" => "pause",
        "riprendi" => "resume",
        "annulla" => "cancel",
        _ => return see_other(&format!("/console/campagne/{id}"), None),
    };
    if !csrf_ok(&s, f.csrf.as_deref()) {
        return see_other(&format!("/console/campagne/{id}"), None);
    }
    let path = format!("/v1/campaigns/{id}/{verb}");
    let r = api(&web, &s, peer, Method::POST, &path, None).await;
    if r.status.is_success() {
        return see_other(&format!("/console/campagne/{id}"), None);
    }
    let c = api(
        &web,
        &s,
        peer,
        Method::GET,
        &format!("/v1/campaigns/{id}"),
        None,
    )
    .await;
    let page = campaign_page(&s, &c.json, Some(r.error()));
    html(StatusCode::CONFLICT, &page, None)
}

/// Passes an API download through (CSV report, message audio).
async fn pass(
    web: &WebState,
    headers: &HeaderMap,
    peer: SocketAddr,
    path: &str,
    name: Option<&str>,
) -> Response {
    let r = match get_signed_in(web, headers, peer, path).await {
        Ok((_, r)) => r,
        Err(r) => return *r,
    };
    let mut resp = (r.status, r.bytes).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&r.content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(n) =
        name.and_then(|n| HeaderValue::from_str(&format!("attachment; filename=\"{n}\"")).ok())
    {
        h.insert(header::CONTENT_DISPOSITION, n);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn report(
    State(web): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/campaigns/{id}/calls.csv");
    pass(
        &web,
        &headers,
        peer,
        &path,
        Some(&format!("campagna-{id}.csv")),
    )
    .await
}

async fn audio(
    State(web): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    pass(
        &web,
        &headers,
        peer,
        &format!("/v1/prompts/{}/audio", enc(&id)),
        None,
    )
    .await
}
