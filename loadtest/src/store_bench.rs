//! `loadtest store`: the store benchmark of issue 15, through the same `Store` methods the
//! dialer uses. On a throw-away PostgreSQL with durable commits (or `--pg-url`):
//! importing N contacts (the API's import path), creating a campaign over all of them,
//! `ANALYZE`, then claims and the journal with one node and with three (each claimed
//! contact gets the dialer's three journal writes: attempt begun, answered, finished), and
//! the rows and bytes of each table, per million. The same journal run on SQLite for comparison.
//! Every phase is bounded in contacts and seconds. Prints a Markdown summary and writes
//! the raw figures as JSON to `--out`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use engine::model::{
    CampaignSpec, CampaignState, NewContact, NumberType, Outcome, Priority, Source, Target,
};
use engine::store::postgres::test_cluster;
use engine::store::{
    now_ms, AttemptEnd, AttemptStart, ContactNext, NodeJoin, PgOptions, PgStore, SqliteOptions,
    SqliteStore, Store,
};
use serde_json::{json, Value};
use tokio::task::JoinSet;

/// Arguments of `loadtest store`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Contacts imported into PostgreSQL (and targeted by one campaign).
    #[arg(long, default_value_t = 1_000_000)]
    pub contacts: usize,
    /// Contacts imported into SQLite for its journal run.
    #[arg(long, default_value_t = 200_000)]
    pub sqlite_contacts: usize,
    /// Most contacts claimed and journaled by each claim run.
    #[arg(long, default_value_t = 60_000)]
    pub claims: usize,
    /// Most seconds of each claim run.
    #[arg(long, default_value_t = 30)]
    pub secs: u64,
    /// Attempts in flight per node (calls being journaled at once).
    #[arg(long, default_value_t = 256)]
    pub in_flight: usize,
    /// Contacts per claim (the dialer claims a batch per trunk's worth of work).
    #[arg(long, default_value_t = 200)]
    pub batch: u32,
    /// An existing PostgreSQL database to use (default: a throw-away cluster with fsync on).
    #[arg(long)]
    pub pg_url: Option<String>,
    /// Where the raw figures go.
    #[arg(long, default_value = "loadtest/results/store.json")]
    pub out: PathBuf,
}

/// Runs the benchmark.
pub fn run(a: StoreArgs) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(bench(a))
}

async fn bench(a: StoreArgs) -> Result<()> {
    let _cluster;
    let url = match &a.pg_url {
        Some(u) => u.clone(),
        None => {
            let c = test_cluster::start_durable().map_err(anyhow::Error::msg)?;
            let u = c.url("postgres");
            _cluster = c;
            u
        }
    };
    let pg = PgStore::open(&url, PgOptions::default())
        .await
        .context("opening PostgreSQL")?;
    let mut out = json!({ "contacts": a.contacts, "in_flight": a.in_flight, "batch": a.batch });
    let (mut import, c) = import_and_target(&pg, a.contacts).await?;
    // What an operator does after a big import (README): without statistics the planner
    // reads due contacts by a sequential scan until autovacuum analyses the tables.
    let t = Instant::now();
    pg.analyze().await?;
    import["analyze_s"] = json!(t.elapsed().as_secs_f64());
    println!("PostgreSQL: {import}");
    out["pg_import"] = import;
    let r = drive(pg.clone(), c, &a).await?;
    let single = json!({
        "attempts": r.attempts, "secs": r.secs, "attempts_per_s": r.attempts as f64 / r.secs,
        "journal_writes_per_s": 3.0 * r.attempts as f64 / r.secs,
    });
    println!("PostgreSQL, one node without cluster: {single}");
    out["pg_journal_single"] = single;
    let one = claim_run(&url, c, &["b1"], &a).await?;
    println!("PostgreSQL, 1 node: {one}");
    out["pg_claims_1"] = one;
    let three = claim_run(&url, c, &["b2", "b3", "b4"], &a).await?;
    println!("PostgreSQL, 3 nodes: {three}");
    out["pg_claims_3"] = three;
    let sizes = pg_sizes(&pg, a.contacts).await?;
    println!("PostgreSQL sizes: {sizes}");
    out["pg_sizes"] = sizes;

    let dir = tempfile_dir()?;
    let path = dir.join("bench.db");
    let lite = SqliteStore::open(&path, SqliteOptions::default()).await?;
    let (import, c) = import_and_target(&lite, a.sqlite_contacts).await?;
    println!("SQLite: {import}");
    out["sqlite_import"] = import;
    let before = file_bytes(&path);
    let r = drive(lite.clone(), c, &a).await?;
    let after = file_bytes(&path);
    let per_m = (after.saturating_sub(before)) as f64 / r.attempts.max(1) as f64 * 1e6;
    let sq = json!({
        "attempts": r.attempts, "secs": r.secs, "attempts_per_s": r.attempts as f64 / r.secs,
        "journal_writes_per_s": 3.0 * r.attempts as f64 / r.secs,
        "bytes_per_million_attempts": per_m,
    });
    println!("SQLite journal: {sq}");
    out["sqlite_journal"] = sq;
    let _ = std::fs::remove_dir_all(&dir);

    if let Some(p) = a.out.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::write(&a.out, serde_json::to_string_pretty(&out)?)?;
    println!("raw figures: {}", a.out.display());
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("store-bench-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// The database file and its WAL.
fn file_bytes(p: &std::path::Path) -> u64 {
    let wal = p.with_extension("db-wal");
    [p.to_path_buf(), wal]
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

/// The i-th synthetic contact: fixed and mobile numbers, a few streets and zones.
fn contact(i: usize) -> NewContact {
    let mobile = i % 2 == 1;
    NewContact {
        number: if mobile {
            format!("+39347{:07}", i)
        } else {
            format!("+390771{:06}", i % 1_000_000)
        },
        number_type: if mobile {
            NumberType::Mobile
        } else {
            NumberType::Fixed
        },
        street: format!("Via {}", i % 500),
        house_number: (i % 200).to_string(),
        zone: format!("z{}", i % 20),
        source: Source::Directory,
        opt_out: false,
    }
}

/// Imports `n` contacts (batches of 10,000, as an API import would) and creates a running
/// campaign over all of them. The figures and the campaign.
async fn import_and_target<S: Store>(s: &S, n: usize) -> Result<(Value, i64)> {
    // Distinct numbers for every i below 2,000,000 (fixed ones use the even i only).
    let t0 = Instant::now();
    let mut done = 0usize;
    while done < n {
        let k = (n - done).min(10_000);
        let list: Vec<NewContact> = (done..done + k).map(contact).collect();
        s.upsert_contacts("bench", list).await?;
        done += k;
        if done.is_multiple_of(200_000) {
            eprintln!("  imported {done} in {:.0?}", t0.elapsed());
        }
    }
    let import_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let spec = CampaignSpec {
        tenant: "bench".into(),
        name: format!("bench-{}", now_ms()),
        prompt: "p".into(),
        target: Target {
            all: true,
            ..Target::default()
        },
        priority: Priority::Emergency,
        window: None,
        caller_id: None,
        ring_timeout_s: None,
        play_count: 1,
        retry: Default::default(),
        delivery: Default::default(),
    };
    let c = s.create_campaign(spec, now_ms()).await?;
    s.set_campaign_state(c.id, CampaignState::Running, now_ms())
        .await?;
    let target_s = t1.elapsed().as_secs_f64();
    let v = json!({
        "contacts": n, "import_s": import_s, "contacts_per_s": n as f64 / import_s,
        "campaign_create_s": target_s,
    });
    Ok((v, c.id))
}

/// One claim run: `ids` nodes join, each claims and journals for itself, all at once.
async fn claim_run(url: &str, c: i64, ids: &[&str], a: &StoreArgs) -> Result<Value> {
    let mut nodes = vec![];
    for id in ids {
        let s = PgStore::open(url, PgOptions::default()).await?;
        s.join(&NodeJoin {
            id: id.to_string(),
            sip_addr: format!("127.0.0.1:{}", 5060 + nodes.len()),
            media_ip: "127.0.0.1".into(),
            http_addr: "127.0.0.1:0".into(),
            // Longer than a run: no beats in the benchmark.
            lease_ms: (a.secs as i64 + 120) * 1000,
        })
        .await?;
        nodes.push(s);
    }
    let mut runs = JoinSet::new();
    for s in &nodes {
        let (s, args) = (s.clone(), Limits::from(a, ids.len()));
        runs.spawn(async move { drive_limited(s, c, args).await });
    }
    let mut per_node = vec![];
    while let Some(r) = runs.join_next().await {
        per_node.push(r??);
    }
    for (s, id) in nodes.iter().zip(ids) {
        s.leave(id).await?;
    }
    let secs = per_node.iter().map(|r| r.secs).fold(0.0, f64::max);
    let attempts: usize = per_node.iter().map(|r| r.attempts).sum();
    let claim_s: f64 = per_node.iter().map(|r| r.claim_s).sum();
    Ok(json!({
        "nodes": ids.len(), "attempts": attempts, "secs": secs,
        "contacts_per_s": attempts as f64 / secs,
        "journal_writes_per_s": 3.0 * attempts as f64 / secs,
        "claim_query_ms_per_contact": claim_s * 1000.0 / attempts.max(1) as f64,
        "per_node": per_node.iter().map(|r| r.attempts).collect::<Vec<_>>(),
    }))
}

/// What one node's run may do.
#[derive(Debug, Clone, Copy)]
struct Limits {
    claims: usize,
    secs: u64,
    in_flight: usize,
    batch: u32,
}

impl Limits {
    /// The run's limits, the claims split among `nodes`.
    fn from(a: &StoreArgs, nodes: usize) -> Limits {
        Limits {
            claims: a.claims / nodes.max(1),
            secs: a.secs,
            in_flight: a.in_flight,
            batch: a.batch,
        }
    }
}

/// What a node's run did.
#[derive(Debug)]
struct Driven {
    attempts: usize,
    secs: f64,
    /// Seconds spent waiting for claims.
    claim_s: f64,
}

async fn drive<S: Store>(s: S, c: i64, a: &StoreArgs) -> Result<Driven> {
    drive_limited(s, c, Limits::from(a, 1)).await
}

/// Claims due contacts in batches and journals each as the dialer does (begun, answered,
/// finished), `in_flight` at a time, until `claims` contacts or `secs` seconds.
async fn drive_limited<S: Store>(s: S, c: i64, l: Limits) -> Result<Driven> {
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs(l.secs);
    let mut seen = HashSet::new();
    let mut calls = JoinSet::new();
    let mut claim_s = 0.0;
    let mut started = 0usize;
    'claims: while started < l.claims && Instant::now() < until {
        // Ask again only when the batch could be new work (own claims come back).
        while calls.len() + l.batch as usize > l.in_flight.max(l.batch as usize) {
            if let Some(r) = calls.join_next().await {
                r??;
            }
        }
        let t = Instant::now();
        let due = s.due_contacts(c, now_ms(), l.batch).await?;
        claim_s += t.elapsed().as_secs_f64();
        let fresh: Vec<_> = due.into_iter().filter(|d| seen.insert(d.contact)).collect();
        if fresh.is_empty() {
            if calls.is_empty() {
                break 'claims;
            }
            if let Some(r) = calls.join_next().await {
                r??;
            }
            continue;
        }
        for d in fresh {
            if started >= l.claims {
                break;
            }
            started += 1;
            calls.spawn(journal_one(s.clone(), c, d.contact, d.number));
        }
    }
    while let Some(r) = calls.join_next().await {
        r??;
    }
    Ok(Driven {
        attempts: started,
        secs: t0.elapsed().as_secs_f64(),
        claim_s,
    })
}

/// The three journal writes of one answered call.
async fn journal_one<S: Store>(s: S, c: i64, contact: i64, number: String) -> Result<()> {
    let t = now_ms();
    let id = s
        .begin_attempt(AttemptStart {
            campaign: c,
            contact,
            number,
            call_id: format!("bench-{c}-{contact}-{t}@127.0.0.1"),
            trunk: "a".into(),
            started_ms: t,
        })
        .await?;
    s.attempt_answered(id, t + 1200).await?;
    s.finish_attempt(
        AttemptEnd {
            attempt: id,
            outcome: Outcome::Answered,
            sip_status: 200,
            sip_reason: "OK".into(),
            counted: true,
            ended_ms: t + 16_000,
            pdd_ms: Some(1200),
            duration_ms: Some(14_800),
            played_permille: Some(1000),
            dtmf: None,
            result: None,
            satisfied: true,
            opt_out: false,
            beep_ms: None,
        },
        ContactNext::Done,
    )
    .await?;
    Ok(())
}

/// Rows and bytes of the big tables, per million rows, and the indexes by use.
async fn pg_sizes(pg: &PgStore, contacts: usize) -> Result<Value> {
    let tables = pg
        .table_sizes(&["contacts", "campaign_contacts", "attempts"])
        .await?;
    let per_million = |bytes: i64, rows: i64| bytes as f64 / rows.max(1) as f64 * 1e6;
    let t: Vec<Value> = tables
        .iter()
        .map(|t| {
            json!({
                "table": t.table, "rows": t.rows, "table_bytes": t.table_bytes,
                "index_bytes": t.index_bytes,
                "bytes_per_million_rows": per_million(t.table_bytes + t.index_bytes, t.rows),
            })
        })
        .collect();
    let idx: Vec<Value> = pg
        .index_use()
        .await?
        .into_iter()
        .filter(|i| ["contacts", "campaign_contacts", "attempts"].contains(&i.table.as_str()))
        .map(|i| json!({"table": i.table, "index": i.index, "scans": i.scans, "bytes": i.bytes}))
        .collect();
    Ok(json!({ "contacts": contacts, "tables": t, "indexes": idx }))
}
