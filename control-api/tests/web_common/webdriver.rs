//! A small W3C WebDriver client (the HTTP+JSON protocol chromedriver speaks) over reqwest,
//! which the tests already use: new session, navigate, find, type, click, read, run a
//! script, resize, screenshot. Every call is bounded by the client's timeout.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// The key W3C gives element references in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Debian puts the browser and its driver.
pub fn chromium_paths() -> Option<(String, String)> {
    let driver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let browser = ["/usr/bin/chromium", "/usr/lib/chromium/chromium"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    Some((driver.to_string(), browser.to_string()))
}

/// Chromium and chromedriver are installed, or (outside CI) the test is skipped.
pub fn available() -> Option<(String, String)> {
    let p = chromium_paths();
    if p.is_none() {
        let why = "chromium/chromedriver missing: apt-get install chromium chromium-driver";
        if std::env::var_os("CI").is_some() {
            panic!("{why} (CI is set, so this is a failure, not a skip)");
        }
        eprintln!("SKIPPED: {why}");
    }
    p
}

/// A chromedriver process and one headless Chromium session.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// An element of the page.
#[derive(Debug, Clone)]
pub struct El(String);

impl Browser {
    /// Starts chromedriver on a free port and opens a headless session.
    pub async fn start(width: u32, height: u32) -> Browser {
        let (driver_bin, browser_bin) = chromium_paths().expect("checked by available()");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let t0 = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::TempDir::new().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": browser_bin,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--no-first-run", "--lang=it-IT",
                         "--hide-scrollbars", "--force-device-scale-factor=1",
                         format!("--user-data-dir={}", profile.path().display()),
                         format!("--window-size={width},{height}")]
            }
        }}});
        let mut b = Browser {
            http,
            base,
            driver,
            _profile: profile,
        };
        let v = b.raw("POST", "/session", caps).await;
        let id = v["sessionId"].as_str().expect("session id").to_string();
        b.base = format!("{}/session/{id}", b.base);
        // Finding waits up to 5 s for the element: a click that navigates returns before
        // the next page is there.
        b.raw("POST", "/timeouts", json!({"implicit": 5000})).await;
        b
    }

    async fn raw(&self, method: &str, path: &str, body: Value) -> Value {
        match self.try_raw(method, path, body).await {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    /// A WebDriver command: its value, or what the driver said when it failed.
    async fn try_raw(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        // Chrome's first start on a cold machine (its files not yet in the page cache, the
        // other heavy tests just done) took over 30 s once; chromedriver itself waits 60 s.
        let req = if path == "/session" {
            req.timeout(Duration::from_secs(90))
        } else {
            req
        };
        let r = req.send().await.expect("webdriver request");
        let status = r.status();
        let v: Value = r.json().await.expect("webdriver JSON");
        if !status.is_success() {
            return Err(format!("webdriver {method} {path}: {status} {v}"));
        }
        Ok(v["value"].clone())
    }

    /// Opens a URL and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.raw("POST", "/url", json!({ "url": url })).await;
    }

    /// The page's URL.
    pub async fn url(&self) -> String {
        self.raw("GET", "/url", Value::Null)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits until the page's URL ends with `suffix` (bounded); the URL.
    pub async fn wait_url(&self, suffix: &str) -> String {
        let t0 = Instant::now();
        loop {
            let u = self.url().await;
            if u.ends_with(suffix) {
                return u;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "at {u}, never at *{suffix}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's title.
    pub async fn title(&self) -> String {
        self.raw("GET", "/title", Value::Null)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The first element matching a CSS selector (panics when there is none).
    pub async fn find(&self, css: &str) -> El {
        match self.try_find(css).await {
            Some(e) => e,
            None => {
                let src = self
                    .script("return document.documentElement.outerHTML;")
                    .await;
                panic!("no element {css} at {}:\n{src}", self.url().await)
            }
        }
    }

    /// The first element matching a CSS selector, if any.
    pub async fn try_find(&self, css: &str) -> Option<El> {
        let url = format!("{}/element", self.base);
        let r = self
            .http
            .post(url)
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .await
            .ok()?;
        let ok = r.status().is_success();
        let v: Value = r.json().await.ok()?;
        if !ok {
            eprintln!("find {css}: {}", v["value"]["error"]);
            return None;
        }
        v["value"][ELEMENT].as_str().map(|s| El(s.to_string()))
    }

    /// Types text into an element.
    pub async fn type_in(&self, e: &El, text: &str) {
        let p = format!("/element/{}/value", e.0);
        self.raw("POST", &p, json!({ "text": text })).await;
    }

    /// Clears an input.
    pub async fn clear(&self, e: &El) {
        self.raw("POST", &format!("/element/{}/clear", e.0), json!({}))
            .await;
    }

    /// Clicks an element.
    pub async fn click(&self, e: &El) {
        self.raw("POST", &format!("/element/{}/click", e.0), json!({}))
            .await;
    }

    /// An element's visible text.
    pub async fn text(&self, e: &El) -> String {
        let v = self
            .raw("GET", &format!("/element/{}/text", e.0), Value::Null)
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// Runs a script (its `return` value), awaiting a promise it returns.
    pub async fn script(&self, js: &str) -> Value {
        match self.try_script(js).await {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Browser::script`], or what the driver said when it could not run it (a page that
    /// reloads itself while the script runs makes chromedriver answer "script timeout").
    pub async fn try_script(&self, js: &str) -> Result<Value, String> {
        self.try_raw("POST", "/execute/async", json!({
            "script": format!("const done = arguments[arguments.length - 1];\
                               Promise.resolve((async () => {{ {js} }})()).then(done, e => done({{error: String(e)}}));"),
            "args": []
        }))
        .await
    }

    /// Resizes the window.
    pub async fn resize(&self, width: u32, height: u32) {
        self.raw(
            "POST",
            "/window/rect",
            json!({"width": width, "height": height}),
        )
        .await;
    }

    /// A PNG of the viewport, written to `path`.
    pub async fn screenshot(&self, path: &std::path::Path) {
        let v = self.raw("GET", "/screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Ends the session: Chromium exits.
    pub async fn quit(&self) {
        let _ = self.http.delete(&self.base).send().await;
    }

    /// The text of the first element matching `css` now, read in one script (a page that
    /// reloads itself cannot leave a stale reference). `None` also when the page went away
    /// under the script (a reload): the callers poll, and the next read finds the new page.
    pub async fn text_of(&self, css: &str) -> Option<String> {
        let sel = serde_json::to_string(css).unwrap();
        let js = format!("const e = document.querySelector({sel}); return e ? e.innerText : null;");
        self.try_script(&js)
            .await
            .ok()?
            .as_str()
            .map(str::to_string)
    }

    /// Waits until `css` matches an element whose text contains `needle` (bounded).
    pub async fn wait_text(&self, css: &str, needle: &str, limit: Duration) -> String {
        let t0 = Instant::now();
        loop {
            let t = self.text_of(css).await;
            if let Some(t) = &t {
                if t.contains(needle) {
                    return t.clone();
                }
            }
            if t0.elapsed() > limit {
                panic!("{css} says {t:?}, never {needle:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Browser {
    /// Kills the driver; call [`Browser::quit`] first so Chromium exits too.
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
