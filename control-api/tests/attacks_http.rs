//! Findings 5 and 6 of issue 11, and the HTTP limits, as attacks on a server on loopback:
//! a request with `Idempotency-Key` and a 20 MB body is refused before its body; 500
//! half-open requests are cut by the header timeout; a token that floods gets 429 with
//! `Retry-After`; `/metrics` can ask for a token or move to its own address; HTML carries
//! security headers; a carrier's reason phrase `=HYPERLINK(…)` does not become a formula
//! in `calls.csv`.

use std::time::{Duration, Instant};

use control_api::serve::{ServeConfig, Server};
use engine::store::{AttemptEnd, AttemptStart, ContactNext, Store};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

const ADMIN: &str = "attack-admin-token-0123456789";

struct Api {
    addr: std::net::SocketAddr,
    metrics_addr: Option<std::net::SocketAddr>,
    state: control_api::serve::state::AppState,
    http: Client,
    _dir: tempfile::TempDir,
    _stop: watch::Sender<bool>,
}

impl Api {
    async fn start(http_extra: &str) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "admin_token = \"{ADMIN}\"\ndrain_timeout_s = 5\n\
             [http]\nlisten = \"127.0.0.1:0\"\n{http_extra}\n\
             [sip]\nlisten = \"127.0.0.1:0\"\n\
             [store]\nurl = \"sqlite://{}\"\n",
            dir.path().join("t.db").display()
        );
        let cfg = ServeConfig::parse_with(&text, &|_| None).unwrap();
        let server = Server::start(cfg).await.unwrap();
        let (addr, metrics_addr, state) = (server.addr, server.metrics_addr, server.state.clone());
        let (stop, rx) = watch::channel(false);
        tokio::spawn(async move { server.run(rx).await.unwrap() });
        Api {
            addr,
            metrics_addr,
            state,
            http: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            _dir: dir,
            _stop: stop,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Reads until the end of the response head, or until the server closes.
async fn head(s: &mut TcpStream, limit: Duration) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn unauthenticated_post_is_refused_before_its_body() {
    let api = Api::start("").await;
    let mut s = TcpStream::connect(api.addr).await.unwrap();
    // 20 MB announced, not one byte sent: the 401 must not wait for it.
    s.write_all(
        b"POST /v1/campaigns HTTP/1.1\r\nHost: x\r\nIdempotency-Key: k1\r\n\
          Content-Type: application/json\r\nContent-Length: 20000000\r\n\r\n",
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    let h = head(&mut s, Duration::from_secs(10)).await;
    assert!(h.starts_with("HTTP/1.1 401"), "{h:?}");
    println!("401 after {:?}, body unread", t0.elapsed());
}

#[tokio::test]
async fn half_open_requests_are_cut_by_the_header_timeout() {
    let api = Api::start("header_timeout_s = 1\nmax_connections = 200").await;
    let mut conns = Vec::new();
    for _ in 0..500 {
        let mut s = TcpStream::connect(api.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        conns.push(s);
    }
    let t0 = Instant::now();
    let mut open = conns.len();
    for s in &mut conns {
        let left = Duration::from_secs(30).saturating_sub(t0.elapsed());
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(left, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    open -= 1;
                    break;
                }
                Ok(Ok(_)) => continue,
                Err(_) => break,
            }
        }
    }
    println!("500 half-open requests closed in {:?}", t0.elapsed());
    assert_eq!(open, 0, "{open} half-open requests still held after 30 s");
    let r = api.http.get(api.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_flooding_token_gets_429_with_retry_after() {
    let api = Api::start("rate_limit_per_s = 5\nrate_limit_burst = 10").await;
    let mut limited = None;
    let mut ok = 0;
    for _ in 0..40 {
        let r = api
            .http
            .get(api.url("/v1/tenants"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        match r.status() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited = Some(r);
                break;
            }
            s => panic!("{s}"),
        }
    }
    let r = limited.expect("no 429 in 40 requests");
    assert!(ok >= 10, "the burst was served: {ok}");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Another caller (no token, by address) has its own budget.
    let r = api.http.get(api.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_can_ask_for_a_token() {
    let api = Api::start("metrics_token = \"metrics-token-0123456789\"").await;
    let r = api.http.get(api.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = api
        .http
        .get(api.url("/metrics"))
        .bearer_auth("metrics-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_can_move_to_their_own_address() {
    let api = Api::start("metrics_listen = \"127.0.0.1:0\"").await;
    let r = api.http.get(api.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let m = api.metrics_addr.expect("metrics address");
    let r = api
        .http
        .get(format!("http://{m}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn html_carries_security_headers() {
    let api = Api::start("").await;
    let r = api.http.get(api.url("/docs")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers();
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
}

#[tokio::test]
async fn a_reason_phrase_formula_is_text_in_calls_csv() {
    let api = Api::start("").await;
    let r = api
        .http
        .post(api.url("/v1/tenants"))
        .bearer_auth(ADMIN)
        .json(&json!({"id": "anzio", "name": "Anzio"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let tok = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    // The attempt a hostile carrier leaves behind, journaled as the dialer would.
    let store = &api.state.store;
    let contact = engine::dialer::contacts::NewContact {
        number: "+390771286891".into(),
        number_type: engine::dialer::NumberType::Fixed,
        street: "Via Roma".into(),
        house_number: "1".into(),
        zone: "Lido".into(),
        source: engine::dialer::contacts::Source::Directory,
        opt_out: false,
    };
    store.upsert_contacts("anzio", vec![contact]).await.unwrap();
    let spec = serde_json::from_value(json!({
        "tenant": "anzio", "name": "flood", "prompt": "p",
        "target": {"zones": ["Lido"]}, "priority": "emergency"
    }))
    .unwrap();
    let c = store.create_campaign(spec, 0).await.unwrap();
    store
        .set_campaign_state(c.id, engine::dialer::CampaignState::Running, 0)
        .await
        .unwrap();
    let due = store.due_contacts(c.id, i64::MAX / 2, 10).await.unwrap();
    let attempt = store
        .begin_attempt(AttemptStart {
            campaign: c.id,
            contact: due[0].contact,
            number: due[0].number.clone(),
            call_id: "x@y".into(),
            trunk: "@evil".into(),
            started_ms: 1,
        })
        .await
        .unwrap();
    store
        .finish_attempt(
            AttemptEnd {
                ended_ms: 2,
                ..AttemptEnd::new(
                    attempt,
                    engine::model::Outcome::Rejected,
                    603,
                    "=HYPERLINK(\"http://evil.example/\",\"Click\")",
                )
            },
            ContactNext::Done,
        )
        .await
        .unwrap();
    let csv = api
        .http
        .get(api.url(&format!("/v1/campaigns/{}/calls.csv", c.id)))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut rdr = csv::Reader::from_reader(csv.as_bytes());
    let row = rdr.records().next().unwrap().unwrap();
    let cells: Vec<&str> = row.iter().collect();
    assert_eq!(cells[1], "+390771286891", "E.164 numbers stay usable");
    assert_eq!(cells[2], "'@evil");
    assert_eq!(cells[6], "'=HYPERLINK(\"http://evil.example/\",\"Click\")");
    for c in cells {
        assert!(
            !c.starts_with(['=', '@', '\t', '\r']),
            "a cell opens as a formula: {c:?}"
        );
    }
}
