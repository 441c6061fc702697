//! Attempt-journal throughput of the SQLite store: how many attempts a second can be
//! journaled (begin with Call-ID, then end with outcome: two writes each) while many calls
//! wait on their commits, as the orchestrator does.
//!
//! A plain bench binary (`harness = false`): `cargo bench -p engine --bench store_journal`
//! (add `--profile dev` to avoid an optimised build; the figures then understate).
//! `STORE_BENCH_SECS` (default 3) and `STORE_BENCH_TASKS` (default 256) tune it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::dialer::campaign::{CampaignSpec, CampaignState, Priority, Target};
use engine::dialer::contacts::{NewContact, Source};
use engine::dialer::numbers::NumberType;
use engine::dialer::retry::RetryPolicy;
use engine::model::Outcome;
use engine::store::{AttemptEnd, AttemptStart, ContactNext, SqliteOptions, SqliteStore, Store};

async fn run(full_sync: bool, secs: u64, tasks: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        &dir.path().join("bench.db"),
        SqliteOptions {
            full_sync,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let contacts: Vec<NewContact> = (0..tasks)
        .map(|i| NewContact {
            number: format!("+39077100{i:04}"),
            number_type: NumberType::Fixed,
            street: "Via Roma".into(),
            house_number: i.to_string(),
            zone: "z".into(),
            source: Source::Directory,
            opt_out: false,
        })
        .collect();
    store.upsert_contacts("t", contacts).await.unwrap();
    let c = store
        .create_campaign(
            CampaignSpec {
                tenant: "t".into(),
                name: "bench".into(),
                prompt: "p".into(),
                target: Target {
                    all: true,
                    ..Default::default()
                },
                priority: Priority::Normal,
                window: None,
                caller_id: None,
                ring_timeout_s: None,
                play_count: 1,
                retry: RetryPolicy::default(),
                delivery: Default::default(),
            },
            0,
        )
        .await
        .unwrap();
    store
        .set_campaign_state(c.id, CampaignState::Running, 0)
        .await
        .unwrap();
    let due = store.due_contacts(c.id, 0, tasks as u32).await.unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let lat = Arc::new(std::sync::Mutex::new(Vec::<u32>::new()));
    let mut handles = vec![];
    for (w, d) in due.into_iter().enumerate() {
        let (store, done, stop, lat) = (store.clone(), done.clone(), stop.clone(), lat.clone());
        handles.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut mine = vec![];
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let id = store
                    .begin_attempt(AttemptStart {
                        campaign: c.id,
                        contact: d.contact,
                        number: d.number.clone(),
                        call_id: format!("{w}-{n}@bench"),
                        trunk: "a".into(),
                        started_ms: 0,
                    })
                    .await
                    .unwrap();
                mine.push(t.elapsed().as_micros() as u32);
                store
                    .finish_attempt(
                        AttemptEnd {
                            ended_ms: 1,
                            ..AttemptEnd::new(id, Outcome::Busy, 486, "Busy Here")
                        },
                        ContactNext::RetryAt(0),
                    )
                    .await
                    .unwrap();
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
            lat.lock().unwrap().extend(mine);
        }));
    }
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let n = done.load(Ordering::Relaxed);
    let el = t0.elapsed().as_secs_f64();
    for h in handles {
        h.await.unwrap();
    }
    let mut l = lat.lock().unwrap().clone();
    l.sort_unstable();
    let q = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "store_journal synchronous={} tasks={tasks}: {:.0} attempts/s = {:.0} journal writes/s; begin_attempt commit latency p50 {} us, p99 {} us",
        if full_sync { "FULL" } else { "NORMAL" },
        n as f64 / el,
        2.0 * n as f64 / el,
        q(0.5),
        q(0.99)
    );
}

fn main() {
    let secs = std::env::var("STORE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let tasks = std::env::var("STORE_BENCH_TASKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        run(true, secs, tasks).await;
        run(false, secs, tasks).await;
    });
}
