//! API tests of the inbound side over real HTTP: `/v1/numbers` (DIDs) and the
//! configuration file's `[[number]]` tables, `/v1/registrations`, and the staff PIN. A
//! server per test on 127.0.0.1:0 with its own SQLite file.

use std::time::Duration;

use control_api::serve::{ServeConfig, Server};
use engine::model::{NewRegistration, NumberType, Source};
use engine::store::{AnyStore, Store};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::watch;

const ADMIN: &str = "test-admin-token-0123456789";

struct Api {
    base: String,
    http: Client,
    store: AnyStore,
    _dir: tempfile::TempDir,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<bool>,
}

impl Api {
    async fn start(extra: &str) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "admin_token = \"{ADMIN}\"\ndrain_timeout_s = 5\n\
             [http]\nlisten = \"127.0.0.1:0\"\n\
             [sip]\nlisten = \"127.0.0.1:0\"\n\
             [store]\nurl = \"sqlite://{}\"\n{extra}\n",
            dir.path().join("t.db").display()
        );
        let cfg = ServeConfig::parse_with(&text, &|_| None).unwrap();
        let server = Server::start(cfg).await.unwrap();
        let base = format!("http://{}", server.addr);
        let store = server.state.store.clone();
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(async move { server.run(rx).await.unwrap() });
        let http = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Api {
            base,
            http,
            store,
            _dir: dir,
            stop,
            task,
        }
    }

    async fn shutdown(self) {
        self.stop.send(true).unwrap();
        let ok = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .unwrap()
            .unwrap();
        assert!(ok, "drain in time");
    }

    fn req(&self, m: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .request(m, format!("{}{path}", self.base))
            .bearer_auth(token)
    }

    async fn post(&self, token: &str, body: Value, key: Option<&str>) -> Response {
        let mut r = self.req(Method::POST, "/v1/numbers", token).json(&body);
        if let Some(k) = key {
            r = r.header("idempotency-key", k);
        }
        r.send().await.unwrap()
    }

    async fn list(&self, query: &str) -> Value {
        let r = self
            .req(Method::GET, &format!("/v1/numbers{query}"), ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    async fn delete(&self, number: &str) -> StatusCode {
        self.req(Method::DELETE, &format!("/v1/numbers/{number}"), ADMIN)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn tenant(&self, id: &str) -> String {
        let r = self
            .req(Method::POST, "/v1/tenants", ADMIN)
            .json(&json!({"id": id, "name": "Itri"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        v["token"].as_str().unwrap().to_string()
    }
}

async fn problem(r: Response, status: StatusCode) -> String {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    v["detail"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn numbers_create_list_delete_with_national_and_e164_writings() {
    let api = Api::start("").await;
    let tok = api.tenant("itri").await;
    let body = json!({"number": "0771 286891", "tenant": "itri", "flow": "citizen"});

    // Tenants may not manage numbers.
    problem(
        api.post(&tok, body.clone(), None).await,
        StatusCode::FORBIDDEN,
    )
    .await;

    let r = api.post(ADMIN, body.clone(), Some("k1")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["number"], "+390771286891");
    assert_eq!(v["flow"], "citizen");
    // The same key and body replay the reply; the E.164 writing of the same number conflicts.
    let r = api.post(ADMIN, body.clone(), Some("k1")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let e164 = json!({"number": "+390771286891", "tenant": "itri", "flow": "staff"});
    let d = problem(api.post(ADMIN, e164, None).await, StatusCode::CONFLICT).await;
    assert!(d.contains("+390771286891"), "{d}");

    for (bad, field) in [
        (
            json!({"number": "12", "tenant": "itri", "flow": "citizen"}),
            "number",
        ),
        (
            json!({"number": "0771286892", "tenant": "itri", "flow": "mayor"}),
            "flow",
        ),
        (
            json!({"number": "0771286892", "tenant": "ghost", "flow": "staff"}),
            "tenant",
        ),
    ] {
        let d = problem(
            api.post(ADMIN, bad, None).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(d.starts_with(field), "{d}");
    }
    let r = api
        .post(
            ADMIN,
            json!({"number": "0771286892", "tenant": "itri"}),
            None,
        )
        .await;
    assert!(r.status().is_client_error());

    let r = api
        .post(
            ADMIN,
            json!({"number": "+39 0771 286892", "tenant": "itri", "flow": "staff"}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let page = api.list("?limit=1").await;
    assert_eq!(page["items"][0]["number"], "+390771286891");
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let page = api.list(&format!("?limit=1&cursor={cursor}")).await;
    assert_eq!(page["items"][0]["number"], "+390771286892");
    assert_eq!(page["items"][0]["flow"], "staff");
    assert!(page["next_cursor"].is_null());

    // Deleted by its national writing; a second delete is 404, a non-number 422.
    assert_eq!(api.delete("0771286891").await, StatusCode::NO_CONTENT);
    assert_eq!(api.delete("%2B390771286891").await, StatusCode::NOT_FOUND);
    assert_eq!(api.delete("abc").await, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(api.list("").await["items"].as_array().unwrap().len(), 1);

    let doc: Value = api
        .http
        .get(format!("{}/openapi.json", api.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/v1/numbers"]["post"].is_object());
    assert!(doc["paths"]["/v1/numbers/{number}"]["delete"].is_object());
    api.shutdown().await;
}

#[tokio::test]
async fn configured_numbers_are_applied_at_start() {
    let api =
        Api::start("[[number]]\nnumber = \"0771 286891\"\ntenant = \"itri\"\nflow = \"staff\"\n")
            .await;
    let page = api.list("").await;
    assert_eq!(page["items"][0]["number"], "+390771286891");
    assert_eq!(page["items"][0]["tenant"], "itri");
    assert_eq!(page["items"][0]["flow"], "staff");
    api.shutdown().await;
}

#[test]
fn a_bad_configured_number_names_its_table() {
    let e = ServeConfig::parse_with(
        "[[number]]\nnumber = \"0771286891\"\ntenant = \"itri\"\nflow = \"night\"\n",
        &|_| None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("number[0].flow"), "{e}");
}

#[tokio::test]
async fn registrations_list_live_and_ended_for_the_tenant_only() {
    let api = Api::start("").await;
    let tok = api.tenant("itri").await;
    let other = api.tenant("fondi").await;
    let reg = |n: &str, zone: Option<&str>| NewRegistration {
        number: n.into(),
        number_type: NumberType::Mobile,
        source: Source::Ivr,
        zone: zone.map(String::from),
        consent_ms: 1234,
        notice_version: "it-2026-1".into(),
    };
    api.store
        .register("itri", reg("+393331234567", Some("Lido")), 2000)
        .await
        .unwrap();
    api.store
        .register("itri", reg("+393331234568", None), 2001)
        .await
        .unwrap();
    api.store
        .unregister("itri", "+393331234567", 3000)
        .await
        .unwrap();
    let get = |tok: String, q: &'static str| {
        let r = api.req(Method::GET, &format!("/v1/registrations{q}"), &tok);
        async move { r.send().await.unwrap() }
    };
    let r = get(tok.clone(), "?limit=1").await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let first = &v["items"][0];
    assert_eq!(first["number"], "+393331234567");
    assert_eq!(first["source"], "ivr");
    assert_eq!(first["zone"], "Lido");
    assert_eq!(first["consent_ms"], 1234);
    assert_eq!(first["deleted_ms"], 3000);
    let cursor = v["next_cursor"].as_str().unwrap().to_string();
    let v: Value = api
        .req(
            Method::GET,
            &format!("/v1/registrations?cursor={cursor}"),
            &tok,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["items"][0]["number"], "+393331234568");
    assert!(v["items"][0]["zone"].is_null());
    assert!(v["items"][0]["deleted_ms"].is_null());
    let v: Value = get(other, "").await.json().await.unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 0);
    problem(get(ADMIN.to_string(), "").await, StatusCode::FORBIDDEN).await;
    api.shutdown().await;
}

#[tokio::test]
async fn staff_pin_by_admin_or_the_tenant_itself_stored_hashed() {
    let api = Api::start("").await;
    let tok = api.tenant("itri").await;
    let other = api.tenant("fondi").await;
    let put = |token: &str, id: &str, pin: &str| {
        api.req(Method::PUT, &format!("/v1/tenants/{id}/staff-pin"), token)
            .json(&json!({ "pin": pin }))
            .send()
    };
    assert_eq!(
        put(&tok, "itri", "2468").await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let h1 = api.store.staff_pin("itri").await.unwrap().unwrap();
    // Stored as a salted hash (a random hash may contain the digits "2468" by chance, so
    // the check is that it is not the PIN and only the PIN verifies).
    assert_ne!(h1, "2468");
    let hash = engine::ivr::PinHash::parse(&h1).unwrap();
    assert!(hash.verify("2468"));
    assert!(!hash.verify("2469"));
    assert_eq!(
        put(ADMIN, "itri", "13579").await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let h2 = api.store.staff_pin("itri").await.unwrap().unwrap();
    assert!(engine::ivr::PinHash::parse(&h2).unwrap().verify("13579"));
    // Another tenant's PIN is not found; an unknown tenant neither; bad PINs are 422.
    problem(
        put(&other, "itri", "1111").await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        put(ADMIN, "ghost", "1111").await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    for bad in ["123", "12a45", "12345678901"] {
        let d = problem(
            put(&tok, "itri", bad).await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(d.starts_with("pin"), "{d}");
    }
    assert_eq!(api.store.staff_pin("itri").await.unwrap().unwrap(), h2);
    api.shutdown().await;
}

fn beep_wav() -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cur = std::io::Cursor::new(vec![]);
    {
        let mut w = hound::WavWriter::new(&mut cur, spec).unwrap();
        for i in 0..4000 {
            let t = i as f32 / 8000.0;
            let s = (t * 1000.0 * std::f32::consts::TAU).sin() * 0.3 * 32767.0;
            w.write_sample(s as i16).unwrap();
        }
        w.finalize().unwrap();
    }
    cur.into_inner()
}

#[tokio::test]
async fn menu_prompts_are_replaced_by_text_or_recording_and_reset() {
    let api = Api::start("").await;
    let tok = api.tenant("itri").await;
    let r = api
        .req(Method::POST, "/v1/prompts?name=beep", &tok)
        .header("content-type", "audio/wav")
        .body(beep_wav())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let beep: Value = r.json().await.unwrap();
    let beep = beep["id"].as_str().unwrap().to_string();

    let put = |key: &str, body: Value| {
        api.req(Method::PUT, &format!("/v1/ivr/prompts/{key}"), &tok)
            .json(&body)
            .send()
    };
    let r = put("greeting", json!({"text": "Ciao da {town}"}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = put("beep", json!({ "prompt": beep })).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for (key, body) in [
        ("greeting", json!({"text": "Ciao {zone}"})),
        ("beep", json!({"text": "bip"})),
        ("playback", json!({ "prompt": beep })),
        ("main_menu", json!({"prompt": "nope"})),
        ("main_menu", json!({"text": "a", "prompt": beep})),
        ("main_menu", json!({})),
    ] {
        problem(
            put(key, body).await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    problem(
        put("jingle", json!({"text": "x"})).await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;

    let list: Value = api
        .req(Method::GET, "/v1/ivr/prompts", &tok)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    let find = |k: &str| items.iter().find(|i| i["key"] == k).unwrap().clone();
    assert_eq!(find("greeting")["text"], "Ciao da {town}");
    assert!(find("greeting")["default_text"]
        .as_str()
        .unwrap()
        .contains("{town}"));
    assert_eq!(find("beep")["prompt"], beep.as_str());
    assert!(find("main_menu")["text"].is_null());

    let del = |key: &'static str| {
        api.req(Method::DELETE, &format!("/v1/ivr/prompts/{key}"), &tok)
            .send()
    };
    assert_eq!(
        del("greeting").await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        del("greeting").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    api.shutdown().await;
}
