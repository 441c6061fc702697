//! `/v1/ivr/prompts` (tenant): what the phone menus say. Every prompt has an Italian
//! default text spoken by espeak-ng; a tenant may replace it by its own text (same
//! `{placeholders}`) or by one of its uploaded recordings, and put it back.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use engine::ivr::texts::check_replacement;
use engine::ivr::{PromptKey, Replacement};
use engine::store::Store;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::serve::auth::Tenant;
use crate::serve::pagination::Page;
use crate::serve::problem::{ApiError, ApiJson, ApiResult, Problem};
use crate::serve::state::{now_ms, AppState};

/// A menu prompt as the tenant's callers hear it.
#[derive(Debug, Serialize, ToSchema)]
pub struct IvrPromptOut {
    /// The prompt's key (`greeting`, `main_menu`, ...).
    pub key: String,
    /// The built-in Italian text (null for sounds: the beep, the take, the latest message).
    pub default_text: Option<String>,
    /// The tenant's own text, if it replaced the default.
    pub text: Option<String>,
    /// The tenant's recording (prompt id), if it replaced the default.
    pub prompt: Option<String>,
}

/// A replacement: exactly one of `text` and `prompt`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IvrPromptIn {
    /// A text template (1–1000 characters; the placeholders of the default).
    pub text: Option<String>,
    /// The id of one of the tenant's prompts (an uploaded recording).
    pub prompt: Option<String>,
}

fn key_of(word: &str) -> ApiResult<PromptKey> {
    PromptKey::parse(word).ok_or_else(|| ApiError::not_found(format!("no menu prompt {word}")))
}

fn item(k: PromptKey, r: Option<&Replacement>) -> IvrPromptOut {
    IvrPromptOut {
        key: k.as_str().to_string(),
        default_text: k.default_text().map(String::from),
        text: match r {
            Some(Replacement::Text(t)) => Some(t.clone()),
            _ => None,
        },
        prompt: match r {
            Some(Replacement::Recording(p)) => Some(p.clone()),
            _ => None,
        },
    }
}

/// Every menu prompt of the tenant, with its default and its replacement.
#[utoipa::path(get, path = "/v1/ivr/prompts", tag = "ivr",
    responses((status = 200, body = Page<IvrPromptOut>), (status = 401, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
) -> ApiResult<Json<Page<IvrPromptOut>>> {
    let mine = st.store.ivr_prompts(&tenant).await?;
    let items = PromptKey::ALL
        .into_iter()
        .map(|k| item(k, mine.iter().find(|(m, _)| *m == k).map(|(_, r)| r)))
        .collect();
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

/// Replace a menu prompt by a text or a recording.
#[utoipa::path(put, path = "/v1/ivr/prompts/{key}", tag = "ivr", request_body = IvrPromptIn,
    params(("key" = String, Path, description = "Prompt key (greeting, main_menu, ...)")),
    responses((status = 200, body = IvrPromptOut), (status = 404, body = Problem),
        (status = 422, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn put(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(word): Path<String>,
    ApiJson(body): ApiJson<IvrPromptIn>,
) -> ApiResult<Json<IvrPromptOut>> {
    let k = key_of(&word)?;
    let r = match (body.text, body.prompt) {
        (Some(t), None) => Replacement::Text(t),
        (None, Some(p)) => {
            if st.store.prompt(&tenant, &p).await?.is_none() {
                return Err(ApiError::invalid(format!("prompt: no prompt {p}")));
            }
            Replacement::Recording(p)
        }
        _ => return Err(ApiError::invalid("exactly one of text and prompt")),
    };
    check_replacement(k, &r).map_err(|e| ApiError::invalid(e.to_string()))?;
    st.store
        .set_ivr_prompt(&tenant, k, r.clone(), now_ms())
        .await?;
    tracing::info!(tenant = %tenant, key = k.as_str(), "menu prompt replaced");
    Ok(Json(item(k, Some(&r))))
}

/// Put a menu prompt back to its default.
#[utoipa::path(delete, path = "/v1/ivr/prompts/{key}", tag = "ivr",
    params(("key" = String, Path, description = "Prompt key")),
    responses((status = 204), (status = 404, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn reset(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    Path(word): Path<String>,
) -> ApiResult<StatusCode> {
    let k = key_of(&word)?;
    if !st.store.delete_ivr_prompt(&tenant, k).await? {
        return Err(ApiError::not_found(format!("{word} is not replaced")));
    }
    Ok(StatusCode::NO_CONTENT)
}
