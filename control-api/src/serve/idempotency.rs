//! `Idempotency-Key` on POST: the first successful (2xx) response to a key is stored with
//! a hash of the request; the same key with the same request replays it (header
//! `Idempotent-Replayed: true`), with a different request is refused (422). Keys are
//! scoped by the caller's token and the path, so tenants cannot see each other's replies.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use engine::store::{Store, StoredReply};
use sha2::{Digest, Sha256};

use super::problem::ApiError;
use super::state::{hex, now_ms, token_hash, AppState};

/// Header name.
pub const HEADER: &str = "idempotency-key";
/// Largest response kept for replay.
const MAX_STORED: usize = 4 * 1024 * 1024;

/// The middleware.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get(HEADER).cloned() else {
        return next.run(req).await;
    };
    match handle(state, key, req, next).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(
    state: AppState,
    key: HeaderValue,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| ApiError::bad_request("Idempotency-Key must be 1..255 visible characters"))?
        .to_string();
    let scope = scope_of(&req);
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (parts, body) = req.into_parts();
    let limit = usize::try_from(state.cfg.http.max_body_bytes).unwrap_or(usize::MAX);
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "request body too large",
        )
    })?;
    let mut h = Sha256::new();
    h.update(ctype.as_bytes());
    h.update([0]);
    h.update(&bytes);
    let req_hash = hex(&h.finalize());

    if let Some(kept) = state.store.idempotent_reply(&scope, &key).await? {
        if kept.request_sha256 != req_hash {
            return Err(ApiError::invalid(
                "Idempotency-Key already used with a different request",
            ));
        }
        return Ok(replay(kept));
    }

    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if !resp.status().is_success() {
        return Ok(resp);
    }
    keep(&state, &scope, &key, req_hash, resp).await
}

/// Whose request to where: the token's hash and the path with its query (a key is
/// scoped to both).
fn scope_of(req: &Request) -> String {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    format!("{}:{path}", token_hash(auth))
}

/// The kept reply, sent again (marked `Idempotent-Replayed: true`).
fn replay(kept: StoredReply) -> Response {
    let mut r = Response::new(Body::from(kept.body));
    *r.status_mut() = StatusCode::from_u16(kept.status).unwrap_or(StatusCode::OK);
    if let Ok(v) = HeaderValue::from_str(&kept.content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    r
}

/// Stores a successful reply under the key, then sends it.
async fn keep(
    state: &AppState,
    scope: &str,
    key: &str,
    req_hash: String,
    resp: Response,
) -> Result<Response, ApiError> {
    let (rparts, rbody) = resp.into_parts();
    let body = axum::body::to_bytes(rbody, MAX_STORED)
        .await
        .map_err(ApiError::internal)?;
    let ct = rparts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let kept = StoredReply {
        request_sha256: req_hash,
        status: rparts.status.as_u16(),
        content_type: ct,
        body: body.to_vec(),
    };
    state
        .store
        .save_idempotent_reply(scope, key, kept, now_ms())
        .await?;
    Ok(Response::from_parts(rparts, Body::from(body)))
}
