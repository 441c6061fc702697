//! `/v1/prompts`: the recorded message (WAV or MP3 upload, or text spoken by espeak-ng),
//! checked and encoded once when uploaded, for every codec and for 20 ms and each trunk's
//! `ptime_ms`, into the prompt cache the media path reads (so no call and no campaign start
//! encodes it again). The file is kept as the source of the cache.

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::path::PathBuf;

use codecs::{
    prompt_set, wanted_encodings, Codec, CodecError, EncodeSettings, PreparedAudio, PromptCache,
    PromptSet,
};
use engine::model::CampaignState;
use engine::store::{Loudness, PromptRecord, Store};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::serve::auth::Tenant;
use crate::serve::pagination::{Page, PageQuery};
use crate::serve::problem::{
    body_bytes, media_type, parse_json, parse_query, ApiError, ApiResult, Problem,
};
use crate::serve::state::{hex, now_ms, AppState};

/// Where the encoded prompts of the messages in `prompt_dir` are kept.
pub fn cache_dir(prompt_dir: &std::path::Path) -> PathBuf {
    prompt_dir.join("cache")
}

/// Loudness figures of a prompt.
#[derive(Debug, Serialize, Deserialize, ToSchema, Clone)]
pub struct LoudnessOut {
    /// Integrated loudness of the upload, LUFS.
    pub before_lufs: f64,
    /// After levelling, LUFS.
    pub after_lufs: f64,
    /// Sample peak after levelling, dBFS.
    pub peak_dbfs: f64,
    /// Gain applied, dB.
    pub gain_db: f64,
}

/// A prompt.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromptOut {
    /// Identifier.
    pub id: String,
    /// Name.
    pub name: String,
    /// Duration, ms.
    pub duration_ms: i64,
    /// Codecs it is ready for.
    pub codecs: Vec<String>,
    /// Loudness.
    pub loudness: LoudnessOut,
    /// Unix ms.
    pub created_ms: i64,
}

/// Text to speak.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextPrompt {
    /// The message.
    pub text: String,
    /// espeak-ng voice (`it`, `en`, ...).
    #[serde(default)]
    pub voice: Option<String>,
}

/// `?name=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NameQuery {
    /// Prompt name (1–200 characters).
    pub name: String,
}

impl From<Loudness> for LoudnessOut {
    fn from(l: Loudness) -> Self {
        LoudnessOut {
            before_lufs: l.before_lufs,
            after_lufs: l.after_lufs,
            peak_dbfs: l.peak_dbfs,
            gain_db: l.gain_db,
        }
    }
}

fn out(p: PromptRecord) -> PromptOut {
    PromptOut {
        id: p.id,
        name: p.name,
        duration_ms: p.duration_ms,
        codecs: p.codecs,
        loudness: p.loudness.into(),
        created_ms: p.created_ms,
    }
}

fn codec_error(e: CodecError) -> ApiError {
    match e {
        CodecError::TtsUnavailable(m) => ApiError::unavailable(m),
        other => ApiError::invalid(other.to_string()),
    }
}

/// Upload a prompt: `audio/wav`, `audio/mpeg`, or `application/json` `{"text","voice"}`.
#[utoipa::path(post, path = "/v1/prompts", tag = "prompts", params(NameQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "Replay-safe create")),
    request_body(content(
        (Vec<u8> = "audio/wav"), (Vec<u8> = "audio/mpeg"), (TextPrompt = "application/json"))),
    responses((status = 201, body = PromptOut), (status = 400, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    uri: Uri,
    req: Request,
) -> ApiResult<(StatusCode, Json<PromptOut>)> {
    let q: NameQuery = parse_query(&uri)?;
    let name = q.name.trim().to_string();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::invalid("name: 1-200 characters"));
    }
    let mt = media_type(req.headers());
    let (bytes, ext) = match mt.as_str() {
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => {
            (body_bytes(req).await?.to_vec(), "wav")
        }
        "audio/mpeg" | "audio/mp3" => (body_bytes(req).await?.to_vec(), "mp3"),
        "application/json" => {
            let t: TextPrompt = parse_json(&body_bytes(req).await?)?;
            let wav = tokio::task::spawn_blocking(move || {
                codecs::tts::synthesize_wav(&t.text, t.voice.as_deref())
            })
            .await
            .map_err(ApiError::internal)?
            .map_err(codec_error)?;
            (wav, "wav")
        }
        _ => {
            return Err(ApiError::unsupported_media(
                "expected audio/wav, audio/mpeg or application/json",
            ))
        }
    };
    // The packet times of the trunks configured now; one met later is encoded when first used.
    let ptimes: Vec<u32> = st
        .dialer
        .trunk_configs()
        .await
        .map(|ts| ts.iter().map(|t| t.ptime_ms).collect())
        .unwrap_or_default();
    let cache = cache_dir(&st.prompt_dir);
    let (bytes, duration_ms, loud) =
        tokio::task::spawn_blocking(move || encode_upload(bytes, &cache, &ptimes))
            .await
            .map_err(ApiError::internal)?
            .map_err(codec_error)?;

    let id = hex(&rand::random::<[u8; 8]>());
    std::fs::create_dir_all(&st.prompt_dir).map_err(ApiError::internal)?;
    let path = st.prompt_dir.join(format!("{id}.{ext}"));
    std::fs::write(&path, &bytes).map_err(ApiError::internal)?;
    let codecs: Vec<String> = Codec::ALL.iter().map(|c| c.name().to_string()).collect();
    let rec = PromptRecord {
        id,
        tenant: tenant.clone(),
        name,
        path: path.to_string_lossy().to_string(),
        duration_ms: duration_ms as i64,
        codecs,
        loudness: loud,
        created_ms: now_ms(),
    };
    if let Err(e) = st.store.insert_prompt(rec.clone()).await {
        let _ = std::fs::remove_file(&path);
        return Err(e.into());
    }
    Ok((StatusCode::CREATED, Json(out(rec))))
}

/// Imports and levels an upload once, encodes it for every codec at 20 ms and at each of
/// `ptimes` into the prompt cache; returns the upload, its duration (ms) and loudness.
fn encode_upload(
    bytes: Vec<u8>,
    cache: &std::path::Path,
    ptimes: &[u32],
) -> Result<(Vec<u8>, u64, Loudness), CodecError> {
    let prep = PreparedAudio::from_bytes(&bytes, &EncodeSettings::default())?;
    let cache = PromptCache::new(cache)?;
    let encoded = prompt_set::encode_into_cache(&prep, &cache, &wanted_encodings(ptimes))?;
    let duration = encoded
        .iter()
        .find(|p| p.ptime_ms() == codecs::DEFAULT_PTIME_MS)
        .map_or(0, |p| p.duration_ms());
    let i = prep.info();
    let loud = Loudness {
        before_lufs: finite(i.loudness_before_lufs),
        after_lufs: finite(i.loudness_after_lufs),
        peak_dbfs: finite(i.peak_after_dbfs),
        gain_db: finite(i.gain_db),
    };
    Ok((bytes, duration, loud))
}

fn finite(x: f64) -> f64 {
    if x.is_finite() {
        (x * 100.0).round() / 100.0
    } else {
        -99.0
    }
}

/// The prompt's file path, if it belongs to `tenant`.
pub async fn prompt_path(st: &AppState, tenant: &str, id: &str) -> ApiResult<Option<String>> {
    Ok(st.store.prompt(tenant, id).await?.map(|p| p.path))
}

/// List prompts.
#[utoipa::path(get, path = "/v1/prompts", tag = "prompts", params(PageQuery),
    responses((status = 200, body = Page<PromptOut>), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    uri: Uri,
) -> ApiResult<Json<Page<PromptOut>>> {
    let q: PageQuery = parse_query(&uri)?;
    let limit = q.limit()?;
    let rows = st.store.prompts(&tenant, &q.after()?, limit + 1).await?;
    Ok(Json(Page::from_fetched(
        rows.into_iter().map(out).collect(),
        limit,
        |p| p.id.clone(),
    )))
}

async fn one(st: &AppState, tenant: &str, id: &str) -> ApiResult<PromptOut> {
    st.store
        .prompt(tenant, id)
        .await?
        .map(out)
        .ok_or_else(|| ApiError::not_found(format!("no prompt {id}")))
}

/// One prompt.
#[utoipa::path(get, path = "/v1/prompts/{id}", tag = "prompts",
    params(("id" = String, Path, description = "Prompt id")),
    responses((status = 200, body = PromptOut), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<PromptOut>> {
    one(&st, &tenant, &id).await.map(Json)
}

/// Delete a prompt; 409 while a running or paused campaign uses it.
#[utoipa::path(delete, path = "/v1/prompts/{id}", tag = "prompts",
    params(("id" = String, Path, description = "Prompt id")),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let path = prompt_path(&st, &tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no prompt {id}")))?;
    let live = st
        .store
        .campaigns(&[CampaignState::Running, CampaignState::Paused])
        .await?;
    if let Some(c) = live
        .iter()
        .find(|c| c.spec.tenant == tenant && c.spec.prompt == path)
    {
        return Err(ApiError::conflict(format!(
            "campaign {} ({}) uses this prompt",
            c.id, c.state
        )));
    }
    st.store.delete_prompt(&tenant, &id).await?;
    // Its encodings go with it (best effort: the cache is only an optimisation).
    if let Ok(set) = PromptSet::open(
        &path,
        EncodeSettings::default(),
        PromptCache::new(cache_dir(&st.prompt_dir)).ok(),
    ) {
        set.forget();
    }
    let _ = std::fs::remove_file(&path);
    Ok(StatusCode::NO_CONTENT)
}

/// The 8 kHz WAV a callee hears (the message levelled, through A-law).
#[utoipa::path(get, path = "/v1/prompts/{id}/audio", tag = "prompts",
    params(("id" = String, Path, description = "Prompt id")),
    responses((status = 200, content_type = "audio/wav", body = Vec<u8>),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn audio(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let path = prompt_path(&st, &tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no prompt {id}")))?;
    let cache = PromptCache::new(cache_dir(&st.prompt_dir)).ok();
    let wav = tokio::task::spawn_blocking(move || {
        let p = PromptSet::open(&path, EncodeSettings::default(), cache)?
            .ensure(Codec::Pcma, codecs::DEFAULT_PTIME_MS)?;
        codecs::wav::to_wav_bytes(&p.decode()?, 8000)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, "audio/wav")], wav).into_response())
}
