//! The citizens' pages in real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, through WebDriver) against `dialer serve`, with SIPp as the
//! resident's phone keying the code it reads from the page by RFC 4733.
//!
//! Loopback only, free ports, temporary directories; each wait is bounded. Skipped
//! locally without chromium or sipp, a failure in CI.

mod web_common;

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use web_common::webdriver::{available, Browser};
use web_common::{free_udp, shots_dir, sipp_available, Phone, Serve, TENANT};

const PHONE: (u32, u32) = (390, 844);
const DESKTOP: (u32, u32) = (1280, 900);

/// Fills and sends the registration form; returns the code the verification page shows.
async fn register(b: &Browser, base: &str, number: &str, street: &str) -> String {
    b.goto(&format!("{base}/t/{TENANT}/")).await;
    b.type_in(&b.find("#number").await, number).await;
    b.click(&b.find(&format!("#street option[value='{street}']")).await)
        .await;
    b.type_in(&b.find("#house_number").await, "12").await;
    b.click(&b.find("#consent").await).await;
    b.click(&b.find("form button[type=submit]").await).await;
    let code = b.text(&b.find("#code").await).await;
    assert_eq!(code.len(), 4, "a 4-digit code: {code:?}");
    code
}

/// The same page at both widths.
async fn shots(b: &Browser, dir: &std::path::Path, name: &str) {
    b.resize(PHONE.0, PHONE.1).await;
    b.screenshot(&dir.join(format!("{name}-phone.png"))).await;
    b.resize(DESKTOP.0, DESKTOP.1).await;
    b.screenshot(&dir.join(format!("{name}-desktop.png"))).await;
    b.resize(PHONE.0, PHONE.1).await;
}

fn find<'a>(list: &'a [Value], number: &str) -> Option<&'a Value> {
    list.iter().find(|c| c["number"] == number)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_registers_is_verified_by_keying_the_code_then_unsubscribes() {
    if available().is_none() || !sipp_available() {
        return;
    }
    let sip_port = free_udp();
    let serve = Serve::start(sip_port, "");
    let tok = serve.town().await;
    let shots_to = shots_dir(serve.dir.path());
    let b = Browser::start(PHONE.0, PHONE.1).await;

    b.goto(&format!("{}/t/{TENANT}/", serve.base)).await;
    shots(&b, &shots_to, "registration").await;
    b.goto(&format!("{}/t/{TENANT}/privacy", serve.base)).await;
    assert!(b.text(&b.find("#notice-version").await).await.len() > 2);
    shots(&b, &shots_to, "privacy").await;

    let code = register(&b, &serve.base, "333 123 4567", "Via Appia").await;
    shots(&b, &shots_to, "verification").await;
    assert!(
        find(&serve.contacts(&tok).await, "+393331234567").is_none(),
        "not before the call"
    );
    let phone = Phone::start(sip_port, &code);
    b.click(&b.find("#call").await).await;
    b.wait_text("#status", "sei iscritto", Duration::from_secs(40))
        .await;
    shots(&b, &shots_to, "verified").await;
    drop(phone);

    let contacts = serve.contacts(&tok).await;
    let c =
        find(&contacts, "+393331234567").unwrap_or_else(|| panic!("{contacts:?}\n{}", serve.log()));
    assert_eq!(c["source"], "web");
    assert_eq!(c["street"], "Via Appia");
    assert_eq!(c["zone"], "Lido");
    assert_eq!(c["house_number"], "12");
    let regs = serve
        .api(Method::GET, "/v1/registrations", &tok, None)
        .await;
    let r = &regs["items"][0];
    assert_eq!(r["source"], "web");
    assert_eq!(r["notice_version"], "it-2026-1");
    assert!(r["consent_ms"].as_i64().unwrap() > 1_700_000_000_000);

    // Unsubscribe: the same verification, then opt-out and erasure.
    b.goto(&format!("{}/t/{TENANT}/cancellazione", serve.base))
        .await;
    shots(&b, &shots_to, "unsubscribe").await;
    b.type_in(&b.find("#number").await, "+39 333 1234567").await;
    b.click(&b.find("form button[type=submit]").await).await;
    let code = b.text(&b.find("#code").await).await;
    let phone = Phone::start(sip_port, &code);
    b.click(&b.find("#call").await).await;
    b.wait_text("#status", "cancellato", Duration::from_secs(40))
        .await;
    drop(phone);
    assert!(
        find(&serve.contacts(&tok).await, "+393331234567").is_none(),
        "the contact is erased"
    );
    let regs = serve
        .api(Method::GET, "/v1/registrations", &tok, None)
        .await;
    assert!(regs["items"][0]["deleted_ms"].as_i64().is_some());
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_code_keyed_three_times_fails_the_verification() {
    if available().is_none() || !sipp_available() {
        return;
    }
    let sip_port = free_udp();
    let serve = Serve::start(sip_port, "");
    let tok = serve.town().await;
    let b = Browser::start(PHONE.0, PHONE.1).await;
    let code = register(&b, &serve.base, "0771 286891", "Via Roma").await;
    // Three wrong codes: each digit of the right one, plus one, modulo 10.
    let wrong: String = code
        .chars()
        .map(|c| char::from(b'0' + (c as u8 - b'0' + 1) % 10))
        .collect();
    let phone = Phone::start(sip_port, &wrong.repeat(3));
    b.click(&b.find("#call").await).await;
    b.wait_text("#status", "errato per tre volte", Duration::from_secs(40))
        .await;
    drop(phone);
    assert!(find(&serve.contacts(&tok).await, "+390771286891").is_none());
    // The page offers another call (2 left).
    assert!(b.try_find("#call").await.is_some());
    b.quit().await;
}
