//! The console's way to the `/v1` API: the same router any client reaches, called in
//! process with the session's tenant token as its bearer, so validation, estimates, state
//! changes and reports have one implementation.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

/// An API reply: status, JSON (Null when the body is not JSON) and the raw bytes.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// The body as JSON.
    pub json: Value,
    /// The body.
    pub bytes: Vec<u8>,
    /// Its Content-Type.
    pub content_type: String,
}

impl Reply {
    /// The problem's `detail` (or the status) for an error message on a page.
    pub fn error(&self) -> String {
        self.json["detail"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| self.status.to_string())
    }
}

/// Calls the API router as `token`, from `peer` (per-address limits apply as usual).
pub async fn call(
    api: &Router,
    peer: SocketAddr,
    token: &str,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    if let Some(ct) = content_type {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    let mut req = match req.body(Body::from(body)) {
        Ok(r) => r,
        Err(e) => return failed(e.to_string()),
    };
    req.extensions_mut().insert(ConnectInfo(peer));
    let resp = match api.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        json,
        bytes,
        content_type,
    }
}

fn failed(why: String) -> Reply {
    Reply {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        json: serde_json::json!({ "detail": why }),
        bytes: vec![],
        content_type: String::new(),
    }
}
