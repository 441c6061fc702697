//! The audit trail's entry point in the API: a layer that, for every request that changes
//! who is called or what they hear and succeeded (2xx), appends an entry to the tenant's
//! hash chain before the answer leaves (`engine::audit`), and emits the webhook event of
//! a campaign's state change.
//!
//! An entry holds the actor (`token:` and the first 16 hex digits of the token's SHA-256,
//! or `admin`), the action, its subject (path parameters or the created id) and the
//! request's essential content: the JSON body with secrets redacted, the SHA-256 of the
//! body (the target set of an import), the SHA-256 of every prompt file the act names.
//! Residents' numbers are never written in clear (an erasure must stay an erasure): the
//! contact routes keep only hashes.

use axum::body::{to_bytes, Body};
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use engine::audit::{sha256_hex, NewAuditEntry, PLATFORM};
use engine::store::Store;
use engine::webhook::{Event, EventKind};
use serde_json::{json, Map, Value};

use super::problem::ApiError;
use super::state::{now_ms, token_hash, AppState};

/// Largest JSON kept in an entry; a larger body is kept as its hash only.
const MAX_JSON: usize = 16 * 1024;
/// Largest answer read back for the entry.
const MAX_ANSWER: usize = 256 * 1024;

/// How much of a request goes into its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// The JSON body and answer, secrets redacted.
    Json,
    /// Hashes only (residents' personal data, audio).
    Hashes,
}

/// Whose chain an act joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chain {
    /// The caller's tenant (the platform's chain for the admin).
    Caller,
    /// The tenant named by the path's `{id}` (admin acts on a tenant).
    PathId,
    /// The tenant created (its `id` in the answer).
    Created,
}

/// The audited routes: method, route pattern, action, what to keep, whose chain.
const ROUTES: &[(&str, &str, &str, Keep, Chain)] = &[
    (
        "POST",
        "/v1/tenants",
        "tenant.create",
        Keep::Json,
        Chain::Created,
    ),
    (
        "PUT",
        "/v1/tenants/{id}/staff-pin",
        "staff_pin.set",
        Keep::Hashes,
        Chain::PathId,
    ),
    (
        "POST",
        "/v1/trunks",
        "trunk.create",
        Keep::Json,
        Chain::Caller,
    ),
    (
        "PUT",
        "/v1/trunks/{name}",
        "trunk.replace",
        Keep::Json,
        Chain::Caller,
    ),
    (
        "DELETE",
        "/v1/trunks/{name}",
        "trunk.delete",
        Keep::Json,
        Chain::Caller,
    ),
    (
        "POST",
        "/v1/numbers",
        "number.create",
        Keep::Json,
        Chain::Caller,
    ),
    (
        "DELETE",
        "/v1/numbers/{number}",
        "number.delete",
        Keep::Json,
        Chain::Caller,
    ),
    (
        "PUT",
        "/v1/ivr/prompts/{key}",
        "ivr_prompt.set",
        Keep::Hashes,
        Chain::Caller,
    ),
    (
        "DELETE",
        "/v1/ivr/prompts/{key}",
        "ivr_prompt.reset",
        Keep::Json,
        Chain::Caller,
    ),
    (
        "POST",
        "/v1/prompts",
        "prompt.upload",
        Keep::Hashes,
        Chain::Caller,
    ),
    (
        "DELETE",
        "/v1/prompts/{id}",
        "prompt.delete",
        Keep::Json,
        Chain::Caller,
    ),
    (
        "POST",
        "/v1/streets",
        "streets.import",
        Keep::Hashes,
        Chain::Caller,
    ),
    (
        "POST",
        "/v1/contacts/import",
        "contacts.import",
        Keep::Hashes,
        Chain::Caller,
    ),
    (
        "POST",
        "/v1/contacts",
        "contacts.create",
        Keep::Hashes,
        Chain::Caller,
    ),
    (
        "DELETE",
        "/v1/contacts/{number}",
        "contacts.erase",
        Keep::Hashes,
        Chain::Caller,
    ),
    (
        "POST",
        "/v1/contacts/{number}/opt-out",
        "contacts.opt_out",
        Keep::Hashes,
        Chain::Caller,
    ),
    (
        "POST",
        "/v1/campaigns",
        "campaign.create",
        Keep::Json,
        Chain::Caller,
    ),
    (
        "POST",
        "/v1/campaigns/{id}/start",
        "campaign.start",
        Keep::Json,
        Chain::Caller,
    ),
    (
        "POST",
        "/v1/campaigns/{id}/pause",
        "campaign.pause",
        Keep::Json,
        Chain::Caller,
    ),
    (
        "POST",
        "/v1/campaigns/{id}/resume",
        "campaign.resume",
        Keep::Json,
        Chain::Caller,
    ),
    (
        "POST",
        "/v1/campaigns/{id}/cancel",
        "campaign.cancel",
        Keep::Json,
        Chain::Caller,
    ),
    (
        "POST",
        "/v1/webhooks",
        "webhook.create",
        Keep::Json,
        Chain::Caller,
    ),
    (
        "DELETE",
        "/v1/webhooks/{id}",
        "webhook.delete",
        Keep::Json,
        Chain::Caller,
    ),
];

/// Keys whose values never enter the trail.
fn secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    ["password", "secret", "token", "pin"]
        .iter()
        .any(|s| k.contains(s))
}

/// The JSON with secret values replaced.
fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if secret_key(k) && !x.is_null() {
                    *x = Value::String("[redacted]".into());
                } else {
                    redact(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The route's path parameters, by comparing the pattern with the path.
fn path_params(pattern: &str, path: &str) -> Vec<(String, String)> {
    pattern
        .split('/')
        .zip(path.split('/'))
        .filter_map(|(p, v)| {
            let name = p.strip_prefix('{')?.strip_suffix('}')?;
            Some((name.to_string(), v.to_string()))
        })
        .collect()
}

/// Who called: `admin`, or the tenant and `token:<16 hex>`.
async fn caller(st: &AppState, token: Option<&str>) -> Option<(Option<String>, String)> {
    let h = token_hash(token?);
    if h == st.admin_hash {
        return Some((None, "admin".into()));
    }
    let t = st.store.tenant_by_token(&h).await.ok()??;
    Some((Some(t), format!("token:{}", &h[..16])))
}

/// Values of keys ending in `prompt_id` anywhere in the JSON.
fn prompt_ids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::String(s) if k.ends_with("prompt_id") => out.push(s.clone()),
                    _ => prompt_ids(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| prompt_ids(x, out)),
        _ => {}
    }
}

/// SHA-256 of each named prompt's audio file (the tenant's own only).
async fn prompt_hashes(st: &AppState, tenant: &str, ids: Vec<String>) -> Map<String, Value> {
    let mut m = Map::new();
    for id in ids {
        let Ok(Some(p)) = st.store.prompt(tenant, &id).await else {
            continue;
        };
        let h = match tokio::fs::read(&p.path).await {
            Ok(b) => Value::String(sha256_hex(&b)),
            Err(_) => Value::Null,
        };
        m.insert(id, h);
    }
    m
}

/// What is known of one audited request once it succeeded.
struct Act<'a> {
    action: &'a str,
    keep: Keep,
    params: Vec<(String, String)>,
    body: &'a [u8],
    answer: Option<Value>,
}

/// The entry's subject and content.
async fn describe(st: &AppState, tenant: &str, a: &Act<'_>) -> (String, Value) {
    let mut c = Map::new();
    if !a.body.is_empty() {
        c.insert("request_sha256".into(), sha256_hex(a.body).into());
        c.insert("request_bytes".into(), a.body.len().into());
    }
    let mut request: Option<Value> = serde_json::from_slice(a.body).ok();
    let mut subject: Vec<String> = a
        .params
        .iter()
        .map(|(_, v)| match a.keep {
            Keep::Json => v.clone(),
            Keep::Hashes => format!("sha256:{}", sha256_hex(v.as_bytes())),
        })
        .collect();
    let created = a.answer.as_ref().and_then(|x| x.get("id")).cloned();
    if subject.is_empty() {
        if let Some(id) = &created {
            subject.push(id.as_str().map_or_else(|| id.to_string(), str::to_string));
        }
    }
    let mut ids = vec![];
    for v in [&request, &a.answer].into_iter().flatten() {
        prompt_ids(v, &mut ids);
    }
    if a.action == "prompt.upload" {
        if let Some(Value::String(id)) = &created {
            ids.push(id.clone());
        }
    }
    ids.sort();
    ids.dedup();
    let hashes = prompt_hashes(st, tenant, ids).await;
    if !hashes.is_empty() {
        c.insert("prompt_sha256".into(), Value::Object(hashes));
    }
    if let Some(t) = request.as_ref().and_then(|r| r.get("target")) {
        c.insert(
            "target_sha256".into(),
            sha256_hex(t.to_string().as_bytes()).into(),
        );
    }
    if a.keep == Keep::Json {
        if let Some(r) = request.as_mut().filter(|_| a.body.len() <= MAX_JSON) {
            redact(r);
            c.insert("request".into(), r.clone());
        }
        if let Some(mut ans) = a.answer.clone() {
            redact(&mut ans);
            if ans.to_string().len() <= MAX_JSON {
                c.insert("answer".into(), ans);
            }
        }
    }
    (subject.join("/"), Value::Object(c))
}

/// The layer (on the `/v1` router).
pub async fn layer(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let method = req.method().clone();
    let found = route.as_deref().and_then(|r| {
        ROUTES
            .iter()
            .find(|(m, p, ..)| *p == r && method.as_str() == *m)
    });
    let Some(&(_, pattern, action, keep, chain)) = found else {
        return next.run(req).await;
    };
    let path = req.uri().path().to_string();
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let (parts, body) = req.into_parts();
    let max = usize::try_from(st.cfg.http.max_body_bytes).unwrap_or(usize::MAX);
    let Ok(bytes) = to_bytes(body, max).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "request body too large",
        )
        .into_response();
    };
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes.clone())))
        .await;
    if !resp.status().is_success() {
        return resp;
    }
    let Some((tenant, actor)) = caller(&st, token.as_deref()).await else {
        return resp;
    };
    let (rparts, rbody) = resp.into_parts();
    let answer_bytes = to_bytes(rbody, MAX_ANSWER).await.unwrap_or_default();
    let answer: Option<Value> = serde_json::from_slice(&answer_bytes).ok();
    let params = path_params(pattern, &path);
    let chain_tenant = match chain {
        Chain::Caller => tenant.clone().unwrap_or_else(|| PLATFORM.to_string()),
        Chain::PathId => params.first().map(|p| p.1.clone()).unwrap_or_default(),
        Chain::Created => answer
            .as_ref()
            .and_then(|a| a.get("id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    };
    let act = Act {
        action,
        keep,
        params,
        body: &bytes,
        answer,
    };
    let (subject, content) = describe(&st, &chain_tenant, &act).await;
    let at_ms = now_ms();
    let entry = NewAuditEntry {
        tenant: chain_tenant.clone(),
        at_ms,
        actor,
        action: action.to_string(),
        subject,
        content: content.to_string(),
    };
    if let Err(e) = engine::audit::append(&st.store, entry).await {
        tracing::error!(action, error = %e, "audit entry not appended");
        metrics::counter!(engine::metrics::AUDIT_FAILURES, "reason" => "store").increment(1);
    }
    state_event(&st, &chain_tenant, action, act.answer.as_ref(), at_ms);
    Response::from_parts(rparts, Body::from(answer_bytes))
}

/// `campaign.state_changed` for the API's campaign acts (completion comes from the dialer).
fn state_event(st: &AppState, tenant: &str, action: &str, answer: Option<&Value>, at_ms: i64) {
    if !action.starts_with("campaign.") || action == "campaign.create" {
        return;
    }
    let Some(a) = answer else { return };
    let id = a.get("id").and_then(Value::as_i64);
    st.events.emit(Event {
        kind: EventKind::CampaignStateChanged,
        tenant: Some(tenant.to_string()),
        campaign: id,
        attempt: None,
        at_ms,
        data: json!({
            "campaign_id": id,
            "name": a.get("name"),
            "state": a.get("state"),
        }),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let mut v = json!({"name": "a", "password": "p", "auth": {"Secret": "s", "user": "u"},
            "list": [{"token": "t"}], "staff_pin": null});
        redact(&mut v);
        assert_eq!(
            v,
            json!({"name": "a", "password": "[redacted]", "auth": {"Secret": "[redacted]",
                "user": "u"}, "list": [{"token": "[redacted]"}], "staff_pin": null})
        );
    }

    #[test]
    fn path_parameters_come_from_the_pattern() {
        assert_eq!(
            path_params("/v1/campaigns/{id}/start", "/v1/campaigns/42/start"),
            vec![("id".to_string(), "42".to_string())]
        );
        assert!(path_params("/v1/campaigns", "/v1/campaigns").is_empty());
    }

    #[test]
    fn prompt_ids_are_found_anywhere() {
        let v = json!({"prompt_id": "a", "pre_roll_prompt_id": "b", "messages": [{"prompt_id": "c"}],
            "confirmed_prompt_id": null});
        let mut ids = vec![];
        prompt_ids(&v, &mut ids);
        ids.sort();
        assert_eq!(ids, vec!["a", "b", "c"]);
    }

    #[test]
    fn every_audited_route_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for (m, p, a, ..) in ROUTES {
            assert!(seen.insert((m, p)), "{m} {p}");
            assert!(a.contains('.'));
        }
    }
}
