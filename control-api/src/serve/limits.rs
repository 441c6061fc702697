//! Request limits of the HTTP API: a request is authenticated before its body is read,
//! each caller gets a token bucket (429 with `Retry-After` when it is empty), a body must
//! arrive within `http.body_timeout_s`, `/metrics` may ask for its own token, and HTML
//! pages carry security headers.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::{principal, Principal};
use super::problem::ApiError;
use super::state::AppState;

/// Whose budget a request spends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Caller {
    /// The admin token.
    Admin,
    /// A tenant's token.
    Tenant(String),
    /// No valid token: the client's address (so random tokens buy no fresh budget).
    Addr(IpAddr),
}

/// Token buckets per caller: `rate` tokens a second, at most `burst`.
#[derive(Debug)]
pub struct TokenBuckets {
    rate: f64,
    burst: f64,
    buckets: HashMap<Caller, (f64, Instant)>,
    /// When a full table may next be swept (at most once a second, so a flood of new
    /// callers costs one scan a second rather than one per request).
    next_sweep: Option<Instant>,
}

/// Callers remembered; past this, buckets that have refilled are forgotten.
const MAX_CALLERS: usize = 10_000;

impl TokenBuckets {
    /// Buckets of `burst` tokens refilled at `rate` a second.
    pub fn new(rate: u32, burst: u32) -> Self {
        TokenBuckets {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
            next_sweep: None,
        }
    }

    /// Takes a token for `who` at `now`, or says how long until one is available.
    pub fn take(&mut self, now: Instant, who: Caller) -> Result<(), Duration> {
        if self.buckets.len() >= MAX_CALLERS
            && !self.buckets.contains_key(&who)
            && self.next_sweep.is_none_or(|t| now >= t)
        {
            let (rate, burst) = (self.rate, self.burst);
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
            self.next_sweep = Some(now + Duration::from_secs(1));
        }
        if self.buckets.len() >= MAX_CALLERS && !self.buckets.contains_key(&who) {
            // Flooded by more callers than we remember: new ones wait for the sweep.
            return Err(Duration::from_secs(1));
        }
        let (tokens, at) = self.buckets.entry(who).or_insert((self.burst, now));
        let refilled = now.saturating_duration_since(*at).as_secs_f64() * self.rate;
        *tokens = (*tokens + refilled).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

/// What the guard needs besides the app state.
#[derive(Clone)]
pub struct Limits {
    buckets: Arc<Mutex<TokenBuckets>>,
    body_timeout: Duration,
}

impl Limits {
    /// From `[http]`.
    pub fn new(cfg: &super::config::HttpSection) -> Self {
        Limits {
            buckets: Arc::new(Mutex::new(TokenBuckets::new(
                cfg.rate_limit_per_s,
                cfg.rate_limit_burst,
            ))),
            body_timeout: Duration::from_secs(cfg.body_timeout_s),
        }
    }
}

/// Whether a request carries (or may carry) a body.
fn has_body(req: &Request) -> bool {
    let h = req.headers();
    matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH)
        || h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// The guard middleware: rate limit, authenticate before the body, body deadline.
pub async fn guard(
    State((st, limits)): State<(AppState, Limits)>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let who = if parts.headers.contains_key(header::AUTHORIZATION) {
        principal(&parts, &st).await.ok()
    } else {
        None
    };
    let caller = match &who {
        Some(Principal::Admin) => Caller::Admin,
        Some(Principal::Tenant(t)) => Caller::Tenant(t.clone()),
        None => Caller::Addr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
                .unwrap_or(IpAddr::from([0, 0, 0, 0])),
        ),
    };
    let verdict = limits
        .buckets
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take(Instant::now(), caller);
    if let Err(wait) = verdict {
        metrics::counter!("dialer_http_rate_limited_total").increment(1);
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            "request rate limit reached; retry later",
        )
        .into_response();
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return r;
    }
    let req = Request::from_parts(parts, body);
    if who.is_none() && req.uri().path().starts_with("/v1/") && has_body(&req) {
        // Every /v1 endpoint needs a token: refuse before a byte of the body is read.
        return ApiError::unauthorized().into_response();
    }
    let (parts, body) = req.into_parts();
    let body = Body::new(DeadlineBody {
        inner: body,
        deadline: Box::pin(tokio::time::sleep(limits.body_timeout)),
    });
    next.run(Request::from_parts(parts, body)).await
}

/// A request body that fails once its deadline passes (slow uploads hold no handler).
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(r) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(r);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            metrics::counter!("dialer_http_body_timeouts_total").increment(1);
            return Poll::Ready(Some(Err(axum::Error::new("request body timeout"))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The inline script of `/docs` (Swagger UI's start-up), allowed by its hash.
const DOCS_CSP: &str = "default-src 'self'; \
script-src 'self' 'sha256-VLuiJVnvDt18nCUhCe5Flxu5pIK65k9QV4rKxN9JrYI='; \
style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Adds `X-Content-Type-Options: nosniff` to every response, and a content security
/// policy, `X-Frame-Options` and `Referrer-Policy` to HTML.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    // The web pages set their own policy (their forms post to this origin).
    if html && !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CSP),
        );
    }
    if html {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    r
}

/// `/metrics`, behind `http.metrics_token` when one is configured.
pub async fn metrics_gate(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(want) = &st.cfg.http.metrics_token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), want.as_bytes())) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

/// Compares without an early exit, so the time taken does not reveal the prefix matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn buckets_allow_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBuckets::new(10, 20);
        let a = Caller::Tenant("a".into());
        let ok = (0..100).filter(|_| b.take(t0, a.clone()).is_ok()).count();
        assert_eq!(ok, 20);
        let wait = b.take(t0, a.clone()).unwrap_err();
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO);
        // Another caller has its own bucket.
        assert!(b.take(t0, Caller::Admin).is_ok());
        // One second refills ten.
        let t1 = t0 + Duration::from_secs(1);
        let ok = (0..100).filter(|_| b.take(t1, a.clone()).is_ok()).count();
        assert_eq!(ok, 10);
    }

    #[test]
    fn callers_table_is_bounded() {
        let t0 = Instant::now();
        let mut b = TokenBuckets::new(1, 1);
        for i in 0..(MAX_CALLERS as u32 + 500) {
            let _ = b.take(t0, Caller::Addr(IpAddr::from(i.to_be_bytes())));
        }
        let t1 = t0 + Duration::from_secs(5);
        let _ = b.take(t1, Caller::Admin);
        assert!(b.buckets.len() <= MAX_CALLERS + 1, "{}", b.buckets.len());
    }

    fn base64(bytes: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in bytes.chunks(3) {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= c.len() {
                    out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn docs_csp_allows_exactly_the_docs_inline_script() {
        let html = include_str!("../../assets/swagger-ui/index.html");
        let start = html.find("<script>").unwrap() + "<script>".len();
        let end = start + html[start..].find("</script>").unwrap();
        let hash = base64(&Sha256::digest(&html.as_bytes()[start..end]));
        assert!(DOCS_CSP.contains(&format!("'sha256-{hash}'")), "{hash}");
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
