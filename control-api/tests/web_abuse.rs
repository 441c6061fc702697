//! The citizens' forms refuse abuse, over real HTTP against `dialer serve`: a form without
//! its CSRF token, a foreign or premium number, the sixth verification call from one
//! address in an hour, the fourth to one number in a day.

mod web_common;

use reqwest::StatusCode;
use web_common::{free_udp, Serve, TENANT};

/// A form page's CSRF cookie and hidden field (the same token).
async fn csrf(s: &Serve, path: &str) -> String {
    let r = s
        .http
        .get(format!("{}{path}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("csrf="))
        .map(|v| v.split(';').next().unwrap().to_string());
    let html = r.text().await.unwrap();
    let field = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("hidden csrf field")
        .to_string();
    assert_eq!(cookie.as_deref(), Some(field.as_str()), "double submit");
    field
}

async fn post(
    s: &Serve,
    path: &str,
    token: Option<&str>,
    form: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let mut f: Vec<(&str, &str)> = form.to_vec();
    let mut r = s.http.post(format!("{}{path}", s.base));
    if let Some(t) = token {
        f.push(("csrf", t));
        r = r.header("cookie", format!("csrf={t}"));
    }
    let r = r.form(&f).send().await.unwrap();
    let status = r.status();
    let loc = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, loc, r.text().await.unwrap())
}

/// Registers `number` and asks for the call; the call request's status and page.
async fn ask_call(s: &Serve, tok: &str, number: &str) -> (StatusCode, String) {
    let home = format!("/t/{TENANT}/");
    let form = [
        ("number", number),
        ("street", "Via Roma"),
        ("consent", "yes"),
    ];
    let (st, loc, body) = post(s, &home, Some(tok), &form).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{body}");
    let (st, _, body) = post(s, &loc, Some(tok), &[]).await;
    (st, body)
}

#[tokio::test]
async fn forms_without_csrf_and_foreign_or_premium_numbers_are_refused() {
    // Nobody answers on the trunk: these tests place no call that matters.
    let serve = Serve::start(free_udp(), "");
    serve.town().await;
    let home = format!("/t/{TENANT}/");
    let form = [
        ("number", "3331234567"),
        ("street", "Via Roma"),
        ("consent", "yes"),
    ];
    let (st, _, body) = post(&serve, &home, None, &form).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(body.contains("Modulo non valido"), "{body}");
    let (st, _, _) = post(&serve, &home, Some(&"a".repeat(31)), &form).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "a short token is no token");

    let tok = csrf(&serve, &home).await;
    let foreign = [
        ("number", "+44 7911 123456"),
        ("street", "Via Roma"),
        ("consent", "yes"),
    ];
    let (st, _, body) = post(&serve, &home, Some(&tok), &foreign).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("solo numeri italiani"), "{body}");
    assert!(
        body.contains("aria-invalid=\"true\""),
        "the error is tied to its field"
    );
    let premium = [
        ("number", "899 123 456"),
        ("street", "Via Roma"),
        ("consent", "yes"),
    ];
    let (st, _, body) = post(&serve, &home, Some(&tok), &premium).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("non numeri speciali"), "{body}");
    let no_consent = [("number", "3331234567"), ("street", "Via Roma")];
    let (st, _, body) = post(&serve, &home, Some(&tok), &no_consent).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("id=\"consent-error\""), "{body}");
    let bad_street = [
        ("number", "3331234567"),
        ("street", "Via Nessuna"),
        ("consent", "yes"),
    ];
    let (st, _, body) = post(&serve, &home, Some(&tok), &bad_street).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("id=\"street-error\""), "{body}");
}

#[tokio::test]
async fn the_sixth_verification_call_from_one_address_in_an_hour_is_refused() {
    let serve = Serve::start(free_udp(), "");
    serve.town().await;
    let tok = csrf(&serve, &format!("/t/{TENANT}/")).await;
    for i in 1..=5 {
        let (st, body) = ask_call(&serve, &tok, &format!("333 000 000{i}")).await;
        assert_eq!(st, StatusCode::SEE_OTHER, "call {i}: {body}");
    }
    let (st, body) = ask_call(&serve, &tok, "333 000 0006").await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        body.contains("al massimo 5 in un&#x27;ora") || body.contains("al massimo 5 in un"),
        "{body}"
    );
}

#[tokio::test]
async fn the_fourth_verification_call_to_one_number_in_a_day_is_refused() {
    let serve = Serve::start(free_udp(), "[web]\ncalls_per_ip_hour = 100\n");
    serve.town().await;
    let tok = csrf(&serve, &format!("/t/{TENANT}/")).await;
    for i in 1..=3 {
        let (st, body) = ask_call(&serve, &tok, "333 000 0009").await;
        assert_eq!(st, StatusCode::SEE_OTHER, "call {i}: {body}");
    }
    let (st, body) = ask_call(&serve, &tok, "333 000 0009").await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    assert!(body.contains("massimo di chiamate"), "{body}");
}
