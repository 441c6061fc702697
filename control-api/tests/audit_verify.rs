//! The audit trail end to end, on SQLite and on PostgreSQL: acts through the API land in
//! the tenant's (and the platform's) hash chain with actor, content and hashes, secrets
//! and residents' numbers never in clear; `dialer audit verify` passes on the intact
//! database, and editing any column of one entry in the database (or deleting an entry)
//! makes it fail and name that entry.

mod ops_common;

use ops_common::wav;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use control_api::serve::{ServeConfig, Server};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const ADMIN: &str = "audit-admin-token-0123456789";

fn hex_sha256(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// The database under test, for editing rows behind the dialer's back.
enum Db {
    Lite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Db {
    async fn open(url: &str) -> Db {
        if url.starts_with("postgres") {
            Db::Pg(sqlx::PgPool::connect(url).await.unwrap())
        } else {
            Db::Lite(sqlx::SqlitePool::connect(url).await.unwrap())
        }
    }

    async fn exec(&self, sql: &str) {
        let n = match self {
            Db::Lite(p) => sqlx::query(sql).execute(p).await.unwrap().rows_affected(),
            Db::Pg(p) => sqlx::query(sql).execute(p).await.unwrap().rows_affected(),
        };
        assert_eq!(n, 1, "{sql}");
    }
}

/// Runs `dialer audit verify`; (success, stdout).
fn verify(config: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dialer"))
        .args(["audit", "verify", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    (
        out.status.success(),
        text + &String::from_utf8_lossy(&out.stderr),
    )
}

struct Api {
    base: String,
    http: Client,
}

impl Api {
    async fn send(&self, m: Method, path: &str, tok: &str, body: Option<Value>) -> Value {
        let mut r = self
            .http
            .request(m, format!("{}{path}", self.base))
            .bearer_auth(tok);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let s = r.status();
        let v = r.json().await.unwrap_or(Value::Null);
        assert!(s.is_success(), "{path}: {s} {v}");
        v
    }

    async fn raw(&self, path: &str, tok: &str, ctype: &str, body: Vec<u8>) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(tok)
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }
}

/// Acts through the API; returns the tenant token and the uploaded audio's SHA-256.
async fn acts(api: &Api) -> (String, String) {
    let t = api
        .send(
            Method::POST,
            "/v1/tenants",
            ADMIN,
            Some(json!({"id": "anzio", "name": "Anzio"})),
        )
        .await;
    let tok = t["token"].as_str().unwrap().to_string();
    api.send(
        Method::POST,
        "/v1/trunks",
        ADMIN,
        Some(
            json!({"name": "nowhere", "proxy": "127.0.0.1:9", "cps": 1, "max_channels": 1,
            "username": "u", "password": "carrier-secret-pw"}),
        ),
    )
    .await;
    let audio = wav(0.4);
    let p = api
        .raw("/v1/prompts?name=msg", &tok, "audio/wav", audio.clone())
        .await;
    let p2 = api
        .raw("/v1/prompts?name=spare", &tok, "audio/wav", wav(0.2))
        .await;
    let csv = "number,street,house_number,zone\n+390641234567,Via Roma,1,Lido\n\
               +390641234568,Via Roma,2,Lido\n";
    api.raw(
        "/v1/contacts/import",
        &tok,
        "text/csv",
        csv.as_bytes().to_vec(),
    )
    .await;
    let c = api
        .send(
            Method::POST,
            "/v1/campaigns",
            &tok,
            Some(
                json!({"name": "alluvione", "prompt_id": p["id"], "target": {"zones": ["Lido"]},
                "priority": "emergency", "window": {"always": true}}),
            ),
        )
        .await;
    let id = c["id"].as_i64().unwrap();
    for verb in ["start", "pause", "cancel"] {
        api.send(
            Method::POST,
            &format!("/v1/campaigns/{id}/{verb}"),
            &tok,
            None,
        )
        .await;
    }
    let r = api
        .http
        .delete(format!(
            "{}/v1/prompts/{}",
            api.base,
            p2["id"].as_str().unwrap()
        ))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = api
        .http
        .delete(format!("{}/v1/contacts/%2B390641234568", api.base))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    (tok, hex_sha256(&audio))
}

async fn trail_and_tampering(store: &str, dir: &Path) {
    let text = format!(
        "admin_token = \"{ADMIN}\"\ndrain_timeout_s = 2\ndata_dir = \"{}\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\n[sip]\nlisten = \"127.0.0.1:0\"\n\
         [store]\nurl = \"{store}\"\n",
        dir.display()
    );
    let config = dir.join("dialer.toml");
    std::fs::write(&config, &text).unwrap();
    let server = Server::start(ServeConfig::parse_with(&text, &|_| None).unwrap())
        .await
        .unwrap();
    let api = Api {
        base: format!("http://{}", server.addr),
        http: Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(server.run(rx));
    let (tok, audio_sha) = acts(&api).await;

    // What the tenant sees.
    let page = api
        .send(Method::GET, "/v1/audit?limit=100", &tok, None)
        .await;
    let items = page["items"].as_array().unwrap();
    let actions: Vec<_> = items
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "tenant.create",
            "prompt.upload",
            "prompt.upload",
            "contacts.import",
            "campaign.create",
            "campaign.start",
            "campaign.pause",
            "campaign.cancel",
            "prompt.delete",
            "contacts.erase"
        ]
    );
    assert_eq!(items[0]["actor"], "admin");
    assert!(items[1]["actor"].as_str().unwrap().starts_with("token:"));
    assert_eq!(items[1]["content"]["request_sha256"], audio_sha.as_str());
    let campaign = &items[4]["content"];
    assert!(
        campaign["target_sha256"]
            .as_str()
            .is_some_and(|h| h.len() == 64),
        "{campaign}"
    );
    assert!(
        campaign["prompt_sha256"]
            .as_object()
            .is_some_and(|m| m.len() == 1),
        "{campaign}"
    );
    let all = page.to_string();
    assert!(
        !all.contains("+390641234568") && !all.contains("0641234568"),
        "number in clear"
    );
    for w in items.windows(2) {
        assert_eq!(w[1]["prev_hash"], w[0]["hash"]);
    }
    let r = api
        .http
        .get(format!("{}/v1/audit?tenant=other", api.base))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // The platform's chain: the trunk, its password redacted.
    let platform = api.send(Method::GET, "/v1/audit", ADMIN, None).await;
    let p = platform.to_string();
    assert!(
        p.contains("trunk.create") && !p.contains("carrier-secret-pw"),
        "{p}"
    );
    let _ = stop.send(true);
    let _ = task.await;

    let (ok, out) = verify(&config);
    assert!(ok, "{out}");
    assert!(out.contains("ok anzio: 10 entries"), "{out}");

    // Any column of entry 3, edited in the database, is caught and named.
    let db = Db::open(store).await;
    let at = "tenant = 'anzio' AND seq = 3";
    let mut edits: Vec<(String, String, String)> = vec![(
        "at_ms".into(),
        format!("UPDATE audit_log SET at_ms = at_ms + 1 WHERE {at}"),
        format!("UPDATE audit_log SET at_ms = at_ms - 1 WHERE {at}"),
    )];
    for col in ["actor", "action", "subject", "content", "prev_hash", "hash"] {
        edits.push((
            col.into(),
            format!("UPDATE audit_log SET {col} = {col} || 'x' WHERE {at}"),
            format!("UPDATE audit_log SET {col} = substr({col}, 1, length({col}) - 1) WHERE {at}"),
        ));
    }
    edits.push((
        "seq".into(),
        format!("UPDATE audit_log SET seq = seq + 1000 WHERE {at}"),
        "UPDATE audit_log SET seq = seq - 1000 WHERE tenant = 'anzio' AND seq = 1003".into(),
    ));
    edits.push((
        "tenant".into(),
        format!("UPDATE audit_log SET tenant = 'anziox' WHERE {at}"),
        "UPDATE audit_log SET tenant = 'anzio' WHERE tenant = 'anziox' AND seq = 3".into(),
    ));
    for (col, edit, undo) in &edits {
        db.exec(edit).await;
        let (ok, out) = verify(&config);
        assert!(!ok, "{col} edit not detected: {out}");
        assert!(
            out.contains("BROKEN tenant=\"anzio\" seq=3"),
            "{col}: {out}"
        );
        db.exec(undo).await;
    }
    let (ok, out) = verify(&config);
    assert!(ok, "restored: {out}");
    // A deleted entry is named too.
    db.exec("DELETE FROM audit_log WHERE tenant = 'anzio' AND seq = 5")
        .await;
    let (ok, out) = verify(&config);
    assert!(
        !ok && out.contains("BROKEN tenant=\"anzio\" seq=5"),
        "{out}"
    );
    println!(
        "audit: {} column edits and a deletion each detected at their entry",
        edits.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_chain_catches_every_edit() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    trail_and_tampering(&url, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_chain_catches_every_edit() {
    let Some(url) = engine::store::postgres::test_cluster::new_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    trail_and_tampering(&url, dir.path()).await;
}
