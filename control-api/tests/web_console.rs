//! The operators' console in real headless Chromium against `dialer serve`, SIPp answering
//! every call: log in with the tenant token, build a campaign on two zones, see the
//! estimate, launch it behind the confirmation, watch it complete and download the report.

mod web_common;

use std::time::{Duration, Instant};

use reqwest::Method;
use web_common::webdriver::{available, Browser};
use web_common::{free_udp, shots_dir, sipp_available, Serve};

/// SIPp answering every call (the repository's `uas_answer.xml`).
struct Answerer(std::process::Child);

impl Answerer {
    fn start(port: u16) -> Answerer {
        let scen =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/sipp/uas_answer.xml");
        let child = std::process::Command::new("sipp")
            .arg("-sf")
            .arg(scen)
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "100"])
            .args(["-mp", &(free_udp() / 2 * 2).to_string(), "-nostdin"])
            .args(["-key", "rtp_port", &free_udp().to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn sipp");
        std::thread::sleep(Duration::from_millis(300));
        Answerer(child)
    }
}

impl Drop for Answerer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn shots(b: &Browser, dir: &std::path::Path, name: &str) {
    b.resize(390, 844).await;
    b.screenshot(&dir.join(format!("{name}-phone.png"))).await;
    b.resize(1280, 900).await;
    b.screenshot(&dir.join(format!("{name}-desktop.png"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_builds_launches_and_follows_a_two_zone_campaign() {
    if available().is_none() || !sipp_available() {
        return;
    }
    let sip_port = free_udp();
    let _carrier = Answerer::start(sip_port);
    let serve = Serve::start(sip_port, "");
    let tok = serve.town().await;
    let csv = "number,street,house_number,zone\n\
               +390771200001,Via Roma,1,Centro\n+390771200002,Via Roma,2,Centro\n\
               +390771200003,Piazza Municipio,3,Centro\n+390771200004,Via Appia,4,Lido\n\
               +390771200005,Lungomare,5,Lido\n+390771200006,Via dei Monti,6,Monte\n";
    let r = serve
        .http
        .post(format!("{}/v1/contacts/import", serve.base))
        .bearer_auth(&tok)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let shots_to = shots_dir(serve.dir.path());
    let b = Browser::start(1280, 900).await;

    // Log in: the console sends us to the login page first.
    b.goto(&format!("{}/console", serve.base)).await;
    b.wait_url("/console/accesso").await;
    shots(&b, &shots_to, "console-login").await;
    b.type_in(&b.find("#token").await, &tok).await;
    b.click(&b.find("form button[type=submit]").await).await;
    b.wait_url("/console/campagne").await;

    // A campaign on two zones, by TTS text.
    b.goto(&format!("{}/console/campagne/nuova", serve.base))
        .await;
    let page = b.text(&b.find("main").await).await;
    assert!(page.contains("Centro (3 residenti)"), "live counts: {page}");
    assert!(page.contains("Lido (2 residenti)"), "{page}");
    b.type_in(&b.find("#name").await, "Allerta meteo").await;
    b.type_in(&b.find("#text").await, "Allerta meteo: restate in casa.")
        .await;
    b.click(&b.find("input[name=zone][value='Centro']").await)
        .await;
    b.click(&b.find("input[name=zone][value='Lido']").await)
        .await;
    shots(&b, &shots_to, "console-new-campaign").await;
    b.click(&b.find("form[enctype] button[type=submit]").await)
        .await;

    // The estimate, and nothing is called before the confirmation.
    let est = b.text(&b.find("#estimate").await).await;
    assert!(est.contains("5 residenti da chiamare"), "{est}");
    let launch = b.find("#launch").await;
    assert_eq!(b.text(&launch).await, "Invia a 5 residenti");
    shots(&b, &shots_to, "console-estimate").await;
    let url = b.url().await;
    let id: i64 = url.rsplit('/').next().unwrap().parse().unwrap();
    let c = serve
        .api(Method::GET, &format!("/v1/campaigns/{id}"), &tok, None)
        .await;
    assert_eq!(c["state"], "draft");
    b.click(&launch).await;
    shots(&b, &shots_to, "console-progress").await;

    // Progress until completed (the page reloads itself while running).
    let t0 = Instant::now();
    loop {
        let state = b.text(&b.find("#state").await).await;
        if state == "completata" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "still {state}\n{}",
            serve.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.goto(&url).await;
    }
    let summary = b.text(&b.find("main table").await).await;
    assert!(summary.contains("Centro 3 3 3"), "{summary}");
    assert!(summary.contains("Lido 2 2 2"), "{summary}");
    shots(&b, &shots_to, "console-completed").await;

    // The CSV report through the console (the browser's own session cookie).
    let csv = b
        .script(&format!(
            "const r = await fetch('/console/campagne/{id}/report.csv'); return await r.text();"
        ))
        .await;
    let csv = csv.as_str().unwrap_or_default().to_string();
    assert_eq!(csv.lines().count(), 6, "header and 5 calls: {csv}");
    assert!(csv.contains("+390771200004"));

    b.goto(&format!("{}/console/iscrizioni", serve.base)).await;
    shots(&b, &shots_to, "console-registrations").await;
    b.click(&b.find("nav form button").await).await;
    b.wait_url("/console/accesso").await;
    b.goto(&format!("{}/console/campagne", serve.base)).await;
    b.wait_url("/console/accesso").await;
    b.quit().await;
}

#[tokio::test]
async fn the_console_session_cookie_is_httponly_secure_and_samesite() {
    let serve = Serve::start(free_udp(), "");
    let tok = serve.town().await;
    let r = serve
        .http
        .get(format!("{}/console/accesso", serve.base))
        .send()
        .await
        .unwrap();
    let csrf = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("csrf="))
        .map(|v| v.split(';').next().unwrap().to_string())
        .unwrap();
    let login = |token: String| {
        serve
            .http
            .post(format!("{}/console/accesso", serve.base))
            .header("cookie", format!("csrf={csrf}"))
            .form(&[("csrf", csrf.clone()), ("token", token)])
            .send()
    };
    let bad = login("nope".into()).await.unwrap();
    assert_eq!(bad.status(), 401);
    let ok = login(tok).await.unwrap();
    assert_eq!(ok.status(), 303);
    let cookie = ok
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("console="), "{cookie}");
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert!(!cookie.contains(&csrf), "the token is not in the cookie");
    // Without the session cookie, the console sends to the login page.
    let r = serve
        .http
        .get(format!("{}/console/campagne", serve.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
}
