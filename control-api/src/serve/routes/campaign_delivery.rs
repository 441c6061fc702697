//! The delivery fields of `/v1/campaigns` (keys, pre- and post-roll, `until`, machine
//! detection, per-zone messages): read from a request into the model's [`Delivery`],
//! and a campaign's messages rendered with their estimate and progress.

use engine::model::{AmdSpec, CampaignSpec, Delivery, Until, ZoneMessage};
use engine::store::{ContactGroup, MessageCounts, Store};

use super::campaign_types::{KeyIn, MessageOut, NewCampaign};
use super::prompts::prompt_path;
use crate::serve::problem::{ApiError, ApiResult};
use crate::serve::state::AppState;

/// A key field: left out takes the default, null disables, else exactly one key.
fn key(name: &str, given: Option<Option<KeyIn>>, default: Option<char>) -> ApiResult<Option<char>> {
    match given {
        None => Ok(default),
        Some(None) => Ok(None),
        Some(Some(k)) => k
            .key()
            .map(Some)
            .ok_or_else(|| ApiError::invalid(format!("{name}: one key, 0-9, * or #"))),
    }
}

/// The file of a tenant's prompt named in field `name`, or 422.
async fn prompt(st: &AppState, tenant: &str, name: &str, id: &str) -> ApiResult<String> {
    prompt_path(st, tenant, id)
        .await?
        .ok_or_else(|| ApiError::invalid(format!("{name}: no prompt {id}")))
}

async fn optional_prompt(
    st: &AppState,
    tenant: &str,
    name: &str,
    id: Option<&String>,
) -> ApiResult<Option<String>> {
    match id {
        None => Ok(None),
        Some(id) => Ok(Some(prompt(st, tenant, name, id).await?)),
    }
}

/// The delivery a request asks for (bounds are checked by the model's one validation).
pub async fn delivery_of(st: &AppState, tenant: &str, n: &NewCampaign) -> ApiResult<Delivery> {
    let d = Delivery::default();
    let until = match n.until.as_deref() {
        None => d.until,
        Some(u) => Until::parse(u)
            .ok_or_else(|| ApiError::invalid("until: answered, heard or confirmed"))?,
    };
    let amd = match &n.amd {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            serde_json::from_value::<AmdSpec>(v.clone())
                .map_err(|e| ApiError::invalid(format!("amd: {e}")))?,
        ),
    };
    let mut messages = vec![];
    for (i, m) in n.messages.iter().flatten().enumerate() {
        messages.push(ZoneMessage {
            zones: m.zones.clone(),
            streets: m.streets.clone(),
            prompt: prompt(
                st,
                tenant,
                &format!("messages[{i}].prompt_id"),
                &m.prompt_id,
            )
            .await?,
        });
    }
    Ok(Delivery {
        confirm_digit: key("confirm_digit", n.confirm_digit.clone(), d.confirm_digit)?,
        repeat_digit: key("repeat_digit", n.repeat_digit.clone(), d.repeat_digit)?,
        optout_digit: key("optout_digit", n.optout_digit.clone(), d.optout_digit)?,
        max_repeats: n.max_repeats.unwrap_or(d.max_repeats),
        pre_roll: optional_prompt(
            st,
            tenant,
            "pre_roll_prompt_id",
            n.pre_roll_prompt_id.as_ref(),
        )
        .await?,
        post_roll: optional_prompt(
            st,
            tenant,
            "post_roll_prompt_id",
            n.post_roll_prompt_id.as_ref(),
        )
        .await?,
        confirmed_prompt: optional_prompt(
            st,
            tenant,
            "confirmed_prompt_id",
            n.confirmed_prompt_id.as_ref(),
        )
        .await?,
        until,
        amd,
        messages,
    })
}

/// A prompt's id from its stored path (the file stem).
pub fn prompt_id_of(path: &str) -> String {
    std::path::Path::new(path)
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// The campaign's messages (the default first) with how many contacts each would reach
/// now, its prompt's length and its progress.
pub async fn messages_out(
    st: &AppState,
    spec: &CampaignSpec,
    groups: &[ContactGroup],
    progress: &[MessageCounts],
) -> ApiResult<Vec<MessageOut>> {
    let mut reach = vec![0u64; spec.delivery.messages.len() + 1];
    for g in groups {
        if spec.target.matches(&g.zone, &g.street) {
            let i = spec.message_for(&g.zone, &g.street).map_or(0, |i| i + 1);
            reach[i] += g.contacts;
        }
    }
    let default = ZoneMessage {
        prompt: spec.prompt.clone(),
        ..Default::default()
    };
    let all = std::iter::once(&default).chain(spec.delivery.messages.iter());
    let mut out = vec![];
    for (i, m) in all.enumerate() {
        let index = i.checked_sub(1).map(|x| x as u32);
        let id = prompt_id_of(&m.prompt);
        let duration_ms = st
            .store
            .prompt(&spec.tenant, &id)
            .await?
            .map_or(0, |p| p.duration_ms);
        let p = progress
            .iter()
            .find(|p| p.message == index)
            .cloned()
            .unwrap_or_default();
        out.push(MessageOut {
            prompt_id: id,
            zones: m.zones.clone(),
            streets: m.streets.clone(),
            default: index.is_none(),
            estimate_contacts: reach[i],
            duration_ms,
            counts: p.counts,
        });
    }
    Ok(out)
}

/// The message length a campaign's estimate assumes: the average over its messages,
/// weighted by the contacts each reaches.
pub fn weighted_prompt_ms(messages: &[MessageOut]) -> i64 {
    let contacts: u64 = messages.iter().map(|m| m.estimate_contacts).sum();
    if contacts == 0 {
        return messages.first().map_or(0, |m| m.duration_ms);
    }
    let total: i128 = messages
        .iter()
        .map(|m| i128::from(m.duration_ms) * i128::from(m.estimate_contacts))
        .sum();
    (total / i128::from(contacts)) as i64
}
