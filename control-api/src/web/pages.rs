//! The templates' data (one struct per page, checked against its template at compile time)
//! and the response every page gets: HTML, the pages' CSP, never cached.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::config::Notice;

/// Renders a page with a status; `cookie` is set when given.
pub fn html(status: StatusCode, page: &impl Template, cookie: Option<String>) -> Response {
    let body = match page.render() {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "template");
            return (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response();
        }
    };
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(super::CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.append(header::SET_COOKIE, c);
    }
    r
}

/// A 303 to `to` (after a POST), with an optional cookie.
pub fn see_other(to: &str, cookie: Option<String>) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

/// What the registration form was given back (to refill it after an error).
#[derive(Debug, Default, Clone)]
pub struct RegisterValues {
    /// As typed.
    pub number: String,
    /// As chosen.
    pub street: String,
    /// As typed.
    pub house_number: String,
    /// Ticked.
    pub consent: bool,
}

/// Errors of the registration form, each shown beside its field.
#[derive(Debug, Default, Clone)]
pub struct FieldErrors {
    /// Under the number.
    pub number: Option<String>,
    /// Under the street.
    pub street: Option<String>,
    /// Under the consent box.
    pub consent: Option<String>,
    /// Not tied to one field (limits, CSRF).
    pub general: Option<String>,
}

impl FieldErrors {
    /// No error at all.
    pub fn is_empty(&self) -> bool {
        self.number.is_none()
            && self.street.is_none()
            && self.consent.is_none()
            && self.general.is_none()
    }
}

/// `/t/{tenant}/`.
#[derive(Template)]
#[template(path = "citizen/register.html")]
pub struct RegisterPage {
    /// Page title.
    pub title: String,
    /// Town name.
    pub town: String,
    /// Tenant id (in links).
    pub tenant: String,
    /// CSRF token.
    pub csrf: String,
    /// The town's streets, sorted.
    pub streets: Vec<String>,
    /// Values to refill.
    pub form: RegisterValues,
    /// Errors.
    pub errors: FieldErrors,
    /// Notice version shown beside the consent box.
    pub notice_version: String,
}

/// `/t/{tenant}/verifica/{id}`.
#[derive(Template)]
#[template(path = "citizen/verify.html")]
pub struct VerifyPage {
    /// Page title.
    pub title: String,
    /// Town name.
    pub town: String,
    /// Tenant id.
    pub tenant: String,
    /// Verification id.
    pub id: String,
    /// CSRF token.
    pub csrf: String,
    /// The code.
    pub code: String,
    /// The code with spaces (screen readers read digits one by one).
    pub code_spaced: String,
    /// Whether the code is still of use.
    pub show_code: bool,
    /// The number being verified, as E.164.
    pub number: String,
    /// What is happening.
    pub message: String,
    /// `ok`, `ko` or empty.
    pub status_class: &'static str,
    /// Whether the "call me" button shows.
    pub can_call: bool,
    /// Calls still allowed.
    pub calls_left: u8,
    /// Whether the page reloads itself (a call in progress).
    pub refresh: bool,
    /// Whether to offer starting again.
    pub restart: bool,
    /// An unsubscription (the restart link goes there).
    pub unsubscribe: bool,
}

/// `/t/{tenant}/privacy`.
#[derive(Template)]
#[template(path = "citizen/privacy.html")]
pub struct PrivacyPage {
    /// Page title.
    pub title: String,
    /// Town name.
    pub town: String,
    /// Tenant id.
    pub tenant: String,
    /// The notice.
    pub notice: Notice,
}

/// `/t/{tenant}/cancellazione`.
#[derive(Template)]
#[template(path = "citizen/unsubscribe.html")]
pub struct UnsubscribePage {
    /// Page title.
    pub title: String,
    /// Town name.
    pub town: String,
    /// Tenant id.
    pub tenant: String,
    /// CSRF token.
    pub csrf: String,
    /// As typed.
    pub number: String,
    /// Why it was refused.
    pub error: Option<String>,
}

/// A message page (unknown town, refused form, limits).
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    /// Page title.
    pub title: String,
    /// Town name (or the service's).
    pub town: String,
    /// The message.
    pub message: String,
    /// Where to go back to.
    pub back: Option<String>,
}
