//! `/v1/prefix-limits` over real HTTP: the admin's global limits and a tenant's own, the
//! views each gets, replacement, deletion per scope, bad input, and the configuration's
//! `[[prefix_limit]]` tables. A server per test on 127.0.0.1:0 with its own SQLite file.

use std::time::Duration;

use control_api::serve::{ServeConfig, Server};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::watch;

const ADMIN: &str = "test-admin-token-0123456789";

struct Api {
    base: String,
    http: Client,
    _dir: tempfile::TempDir,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<bool>,
}

impl Api {
    async fn start(extra: &str) -> Result<Api, String> {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "admin_token = \"{ADMIN}\"\ndrain_timeout_s = 5\n\
             [http]\nlisten = \"127.0.0.1:0\"\n\
             [sip]\nlisten = \"127.0.0.1:0\"\n\
             [store]\nurl = \"sqlite://{}\"\n{extra}\n",
            dir.path().join("t.db").display()
        );
        let cfg = ServeConfig::parse_with(&text, &|_| None).map_err(|e| e.to_string())?;
        let server = Server::start(cfg).await.map_err(|e| e.to_string())?;
        let base = format!("http://{}", server.addr);
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(async move { server.run(rx).await.unwrap() });
        let http = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Ok(Api {
            base,
            http,
            _dir: dir,
            stop,
            task,
        })
    }

    async fn shutdown(self) {
        self.stop.send(true).unwrap();
        let ok = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .unwrap()
            .unwrap();
        assert!(ok, "drain in time");
    }

    async fn send(&self, m: Method, path: &str, token: &str, body: Option<Value>) -> Response {
        let mut r = self
            .http
            .request(m, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    async fn list(&self, token: &str) -> Vec<Value> {
        let r = self
            .send(Method::GET, "/v1/prefix-limits", token, None)
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        v["items"].as_array().unwrap().clone()
    }

    async fn tenant(&self, id: &str) -> String {
        let body = json!({"id": id, "name": id});
        let r = self
            .send(Method::POST, "/v1/tenants", ADMIN, Some(body))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        v["token"].as_str().unwrap().to_string()
    }
}

fn prefixes(items: &[Value]) -> Vec<(String, Value)> {
    items
        .iter()
        .map(|i| {
            (
                i["prefix"].as_str().unwrap().to_string(),
                i["tenant"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn global_and_tenant_limits_set_listed_replaced_and_deleted() {
    let api = Api::start("").await.unwrap();
    let sora = api.tenant("sora").await;
    let itri = api.tenant("itri").await;
    let post = |tok: &str, body: Value| {
        let tok = tok.to_string();
        let api = &api;
        async move {
            api.send(Method::POST, "/v1/prefix-limits", &tok, Some(body))
                .await
        }
    };
    let r = post(
        ADMIN,
        json!({"prefix": "+39077", "cps": 10, "max_channels": 60}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"prefix": "+39077", "cps": 10.0, "max_channels": 60, "tenant": null})
    );
    let r = post(
        &sora,
        json!({"prefix": "+390776", "cps": 2.5, "max_channels": 4}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["tenant"], "sora");
    // Setting a prefix again replaces its limit.
    let r = post(
        ADMIN,
        json!({"prefix": "+39077", "cps": 5, "max_channels": 30}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // The admin sees all; a tenant the global ones and its own, not another's.
    let all = api.list(ADMIN).await;
    assert_eq!(
        prefixes(&all),
        [
            ("+39077".to_string(), Value::Null),
            ("+390776".to_string(), json!("sora"))
        ]
    );
    assert_eq!(all[0]["cps"], 5.0);
    assert_eq!(prefixes(&api.list(&sora).await).len(), 2);
    assert_eq!(
        prefixes(&api.list(&itri).await),
        [("+39077".to_string(), Value::Null)]
    );
    // A tenant deletes its own limits only: the global +39077 is not its to remove.
    let del = |tok: &str, p: &str| {
        let (tok, path) = (tok.to_string(), format!("/v1/prefix-limits/{p}"));
        let api = &api;
        async move { api.send(Method::DELETE, &path, &tok, None).await.status() }
    };
    assert_eq!(del(&itri, "+39077").await, StatusCode::NOT_FOUND);
    assert_eq!(del(&itri, "+390776").await, StatusCode::NOT_FOUND);
    assert_eq!(del(&sora, "+390776").await, StatusCode::NO_CONTENT);
    assert_eq!(del(&sora, "%2B390776").await, StatusCode::NOT_FOUND);
    assert_eq!(del(ADMIN, "%2B39077").await, StatusCode::NO_CONTENT);
    assert!(api.list(ADMIN).await.is_empty());
    api.shutdown().await;
}

#[tokio::test]
async fn bad_limits_are_refused_and_nothing_is_stored() {
    let api = Api::start("").await.unwrap();
    for (body, status) in [
        (json!({"prefix": "39077", "cps": 5, "max_channels": 1}), 422),
        (json!({"prefix": "+39a", "cps": 5, "max_channels": 1}), 422),
        (json!({"prefix": "+39", "cps": 0, "max_channels": 1}), 422),
        (
            json!({"prefix": "+39", "cps": 1e-300, "max_channels": 1}),
            422,
        ),
        (
            json!({"prefix": "+39", "cps": 20000, "max_channels": 1}),
            422,
        ),
        (json!({"prefix": "+39", "cps": 5, "max_channels": 0}), 422),
        (json!({"prefix": "+39", "cps": 5}), 422),
        (
            json!({"prefix": "+39", "cps": 5, "max_channels": 1, "x": 1}),
            422,
        ),
    ] {
        let r = api
            .send(Method::POST, "/v1/prefix-limits", ADMIN, Some(body.clone()))
            .await;
        assert!(
            r.status().as_u16() == status || r.status() == StatusCode::BAD_REQUEST,
            "{body}: {}",
            r.status()
        );
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    assert!(api.list(ADMIN).await.is_empty());
    let r = api
        .send(Method::GET, "/v1/prefix-limits", "nope", None)
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    api.shutdown().await;
}

#[tokio::test]
async fn configuration_tables_are_checked_at_start() {
    let ok = "[[prefix_limit]]\nprefix = \"+39077\"\ncps = 10\nmax_channels = 60\n";
    let api = Api::start(ok).await.unwrap();
    // The configuration's limits apply but are not the API's to list or delete.
    assert!(api.list(ADMIN).await.is_empty());
    api.shutdown().await;
    let bad = "[[prefix_limit]]\nprefix = \"0771\"\ncps = 10\nmax_channels = 60\n";
    let e = Api::start(bad)
        .await
        .err()
        .expect("a bad prefix refuses to start");
    assert!(e.contains("prefix_limit[0]"), "{e}");
}
