//! The two tasks behind webhooks: the outbox writer (events from the bounded queue become
//! outbox rows, one per subscribed endpoint; `campaign.progress` is derived here,
//! throttled) and the delivery loop (due rows POSTed, signed, results written back and
//! failures rescheduled by `engine::webhook::schedule`).
//!
//! Order: rows are created in the order events reach the queue and each endpoint gets
//! one request at a time, oldest due row first, so while a receiver answers 2xx it sees a
//! campaign's events in the order they happened. A failed row waits for its retry while
//! newer rows go on (after the failure, the endpoint's other due rows wait for the next
//! poll); receivers that need strict order sort by the payload's `timestamp` and drop
//! repeats by `webhook-id` (delivery is at least once).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use engine::metrics as m;
use engine::store::{AnyStore, DeliveryUpdate, DueDelivery, NewEvent, Store};
use engine::webhook::schedule::{self, Next};
use engine::webhook::{sign, DeliveryState, Event, EventKind, TargetPolicy};

use super::webhook_guard::{self as guard, PolicyResolver};
use super::webhook_subscriptions::{kinds_of, Subscriptions};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::state::now_ms;

/// Events the queue holds before new ones are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 10_000;
/// At most one `campaign.progress` per campaign per this interval.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// How long a receiver has to answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the delivery loop looks for due rows.
const POLL: Duration = Duration::from_millis(250);
/// Rows read per poll.
const BATCH: u32 = 2000;
/// Rows per endpoint per poll (sent one after the other).
const PER_HOOK: u32 = 50;
/// Endpoints served at once (one request each).
const MAX_IN_FLIGHT: usize = 32;
/// How often old rows are forgotten.
const PURGE_EVERY_MS: i64 = 3600 * 1000;
/// Delivered rows are listed for a week, dead ones for a month (for manual redelivery).
const KEEP_DELIVERED_DAYS: i64 = 7;
const KEEP_DEAD_DAYS: i64 = 30;

/// Starts both tasks on the current runtime; deliveries go only where `targets` allows.
pub fn start(store: AnyStore, rx: mpsc::Receiver<Event>, targets: TargetPolicy) {
    tokio::spawn(write_outbox(store.clone(), rx));
    tokio::spawn(deliver(store, targets));
}

/// A new message id (`webhook-id`).
fn message_id() -> String {
    let b: [u8; 16] = rand::random();
    format!("msg_{}", super::state::hex(&b))
}

/// The JSON body of an event as the Standard Webhooks payload shape suggests.
fn payload(kind: EventKind, at_ms: i64, data: &serde_json::Value) -> String {
    let ts = chrono::DateTime::from_timestamp_millis(at_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({ "type": kind.as_str(), "timestamp": ts, "data": data }).to_string()
}

/// Per campaign: when progress was last sent, and whether calls ended since.
#[derive(Debug, Default)]
struct Throttle {
    last: HashMap<i64, (i64, bool, String)>,
}

impl Throttle {
    /// Whether a progress event is due now for `campaign` after a call ended; marks it
    /// pending otherwise (the tick sends it later).
    fn on_call(&mut self, campaign: i64, tenant: &str, now: i64) -> bool {
        let every = PROGRESS_EVERY.as_millis() as i64;
        let e = self
            .last
            .entry(campaign)
            .or_insert((i64::MIN / 2, false, tenant.to_string()));
        if now - e.0 >= every {
            *e = (now, false, tenant.to_string());
            true
        } else {
            e.1 = true;
            false
        }
    }

    /// Campaigns with calls ended since their last progress, whose interval has passed.
    fn due(&mut self, now: i64) -> Vec<(i64, String)> {
        let every = PROGRESS_EVERY.as_millis() as i64;
        let mut out = vec![];
        self.last.retain(|c, (at, dirty, tenant)| {
            if *dirty && now - *at >= every {
                out.push((*c, tenant.clone()));
                *at = now;
                *dirty = false;
            }
            // Forget campaigns quiet for a minute.
            now - *at < 60_000 || *dirty
        });
        out
    }
}

/// Whether a state event says something new: the dialer may report a campaign's
/// completion more than once (its completion checks race), receivers get one event per
/// change.
fn new_state(seen: &mut HashMap<i64, String>, ev: &Event) -> bool {
    let (EventKind::CampaignStateChanged, Some(c)) = (ev.kind, ev.campaign) else {
        return true;
    };
    let state = ev.data["state"].as_str().unwrap_or_default().to_string();
    // One short string per campaign seen; forget them all now and then (a repeat after
    // that is reported twice, which at-least-once delivery allows).
    if seen.len() >= 100_000 {
        seen.clear();
    }
    seen.insert(c, state.clone()).as_ref() != Some(&state)
}

/// Events taken from the queue at once: their outbox rows are queued on the store's
/// writer together and land in one commit, instead of one commit awaited per event
/// (which could not keep up with a campaign's call.completed events).
const OUTBOX_BATCH: usize = 1024;

async fn write_outbox(store: AnyStore, mut rx: mpsc::Receiver<Event>) {
    let mut throttle = Throttle::default();
    let mut states: HashMap<i64, String> = HashMap::new();
    let mut subs = Subscriptions::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut batch = Vec::with_capacity(OUTBOX_BATCH);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, OUTBOX_BATCH) => {
                if n == 0 {
                    return;
                }
                metrics::gauge!(m::WEBHOOK_QUEUE_DEPTH).set(rx.len() as f64);
                let calls = enqueue_all(&store, &mut states, &mut subs, batch.drain(..)).await;
                let now = now_ms();
                for (campaign, tenant) in calls {
                    if throttle.on_call(campaign, &tenant, now) {
                        progress(&store, campaign, &tenant).await;
                    }
                }
            }
            _ = tick.tick() => {
                for (campaign, tenant) in throttle.due(now_ms()) {
                    progress(&store, campaign, &tenant).await;
                }
            }
        }
    }
}

/// Queues the outbox rows of `events` in their order and waits for them; returns the
/// campaign and tenant of each call among them.
async fn enqueue_all(
    store: &AnyStore,
    states: &mut HashMap<i64, String>,
    subs: &mut Subscriptions,
    events: impl Iterator<Item = Event>,
) -> Vec<(i64, String)> {
    let mut writes = Vec::new();
    let mut calls = Vec::new();
    for ev in events {
        if !new_state(states, &ev) {
            continue;
        }
        let Some(ev) = with_subject(store, ev).await else {
            continue;
        };
        let Some(tenant) = ev.tenant.clone() else {
            continue;
        };
        if let (EventKind::CallCompleted, Some(campaign)) = (ev.kind, ev.campaign) {
            calls.push((campaign, tenant.clone()));
        }
        if !subs.wants(store, &tenant, ev.kind).await {
            continue;
        }
        writes.push((ev.kind, put(store, tenant, ev.kind, ev.at_ms, &ev.data)));
    }
    for (kind, w) in writes {
        if let Err(e) = w.await {
            tracing::warn!(kind = %kind, error = %e, "webhook: outbox write failed");
        }
    }
    calls
}

/// A call's event with whose the attempt is, read from the journal when the dialer did
/// not have it (its campaign was gone); `None` if the attempt is unknown.
async fn with_subject(store: &AnyStore, mut ev: Event) -> Option<Event> {
    let (EventKind::CallCompleted, Some(attempt), None) = (ev.kind, ev.attempt, &ev.tenant) else {
        return Some(ev);
    };
    match store.attempt_subject(attempt).await {
        Ok(Some(subj)) => {
            ev.set_subject(subj);
            Some(ev)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(attempt, error = %e, "webhook: attempt lookup failed");
            None
        }
    }
}

/// Queues an event's outbox rows on the store's writer (now, in call order); the future
/// is its commit.
fn put(
    store: &AnyStore,
    tenant: String,
    kind: EventKind,
    at_ms: i64,
    data: &serde_json::Value,
) -> impl std::future::Future<Output = engine::store::StoreResult<u64>> + use<> {
    store.enqueue_event(NewEvent {
        tenant,
        kind,
        event_id: message_id(),
        payload: payload(kind, at_ms, data),
        now_ms: now_ms(),
    })
}

/// Whether an endpoint of `tenant` takes `campaign.progress`. The progress read scans
/// the campaign's contacts (hundreds of thousands of rows in a town-wide alert), so it is
/// made only when someone will receive it; asked each time (a small table), so an endpoint
/// registered a moment ago gets the next one.
async fn wants_progress(store: &AnyStore, tenant: &str) -> bool {
    kinds_of(store, tenant)
        .await
        .is_some_and(|k| k.contains(&EventKind::CampaignProgress))
}

async fn progress(store: &AnyStore, campaign: i64, tenant: &str) {
    if !wants_progress(store, tenant).await {
        return;
    }
    let p = match store.progress(campaign).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(campaign, error = %e, "webhook: progress read failed");
            return;
        }
    };
    let data = json!({
        "campaign_id": campaign,
        "targeted": p.targeted,
        "pending": p.pending,
        "dialing": p.dialing,
        "done": p.done,
        "answered": p.answered,
        "attempts": p.attempts,
    });
    let w = put(
        store,
        tenant.to_string(),
        EventKind::CampaignProgress,
        now_ms(),
        &data,
    );
    if let Err(e) = w.await {
        tracing::warn!(campaign, error = %e, "webhook: outbox write failed");
    }
}

/// The delivery loop: per endpoint one task at a time sending its due rows in order
/// (stopping at the first failure: the endpoint is unwell, its rows wait for their
/// retries), up to [`MAX_IN_FLIGHT`] endpoints at once.
async fn deliver(store: AnyStore, targets: TargetPolicy) {
    let client = match reqwest::Client::builder()
        .dns_resolver(std::sync::Arc::new(PolicyResolver(targets)))
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("dialer-webhooks")
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook: no HTTP client; deliveries off");
            return;
        }
    };
    let poster = Poster { client, targets };
    let mut busy: HashSet<String> = HashSet::new();
    let mut flights: JoinSet<String> = JoinSet::new();
    let mut tick = tokio::time::interval(POLL);
    let mut purged = 0i64;
    loop {
        tokio::select! {
            done = flights.join_next(), if !flights.is_empty() => {
                if let Some(Ok(hook)) = done {
                    busy.remove(&hook);
                }
            }
            _ = tick.tick() => {
                let now = now_ms();
                if now - purged >= PURGE_EVERY_MS {
                    purged = now;
                    purge(&store, now).await;
                }
                let due = match store.due_deliveries(now, PER_HOOK, BATCH).await {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook: outbox read failed");
                        continue;
                    }
                };
                for (hook, rows) in by_endpoint(due) {
                    if flights.len() >= MAX_IN_FLIGHT {
                        break;
                    }
                    if busy.insert(hook.clone()) {
                        let (store, poster) = (store.clone(), poster.clone());
                        flights.spawn(async move {
                            for d in rows {
                                if !attempt(&store, &poster, d).await {
                                    break;
                                }
                            }
                            hook
                        });
                    }
                }
            }
        }
    }
}

/// Due rows grouped by endpoint, endpoints in the order of their oldest row.
fn by_endpoint(due: Vec<DueDelivery>) -> Vec<(String, Vec<DueDelivery>)> {
    let mut out: Vec<(String, Vec<DueDelivery>)> = vec![];
    for d in due {
        match out.iter_mut().find(|(h, _)| *h == d.delivery.webhook) {
            Some((_, rows)) => rows.push(d),
            None => out.push((d.delivery.webhook.clone(), vec![d])),
        }
    }
    out
}

/// Forgets old delivered and dead rows (the outbox would grow by a row per call).
async fn purge(store: &AnyStore, now: i64) {
    let day = 24 * 3600 * 1000;
    match store
        .purge_deliveries(now - KEEP_DELIVERED_DAYS * day, now - KEEP_DEAD_DAYS * day)
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(rows = n, "webhook: old deliveries forgotten"),
        Err(e) => tracing::warn!(error = %e, "webhook: purge failed"),
    }
}

/// Sends one row and writes the result back; whether it was delivered.
async fn attempt(store: &AnyStore, poster: &Poster, d: DueDelivery) -> bool {
    let row = &d.delivery;
    let result = send(poster, &d).await;
    let now = now_ms();
    let attempts = row.attempts + 1;
    let (state, next_ms, last_status, last_error, label) = match result {
        Ok(status) => (
            DeliveryState::Delivered,
            now,
            Some(status),
            None,
            "delivered",
        ),
        Err((status, why)) => {
            let failures = u32::try_from(attempts).unwrap_or(u32::MAX);
            match schedule::after_failure(failures, row.since_ms, now, rand::random()) {
                Next::RetryAt(at) => (DeliveryState::Pending, at, status, Some(why), "failed"),
                Next::Dead => (DeliveryState::Dead, now, status, Some(why), "dead"),
            }
        }
    };
    metrics::counter!(m::WEBHOOK_DELIVERIES, "result" => label).increment(1);
    let u = DeliveryUpdate {
        id: row.id,
        state,
        attempts,
        next_ms,
        last_status,
        last_error,
        done_ms: (state != DeliveryState::Pending).then_some(now),
    };
    if let Err(e) = store.record_delivery(u).await {
        tracing::warn!(delivery = row.id, error = %e, "webhook: result not stored");
    }
    state == DeliveryState::Delivered
}

/// The delivery client and the address policy it was built with (the resolver applies
/// it to names; literal addresses are checked here, before any connection).
#[derive(Clone)]
struct Poster {
    client: reqwest::Client,
    targets: TargetPolicy,
}

/// POSTs a row: the 2xx status, or the status (if any) and why it failed.
async fn send(poster: &Poster, d: &DueDelivery) -> Result<i64, (Option<i64>, String)> {
    let key = sign::key_of(&d.secret).ok_or((None, "unusable secret".to_string()))?;
    let url = reqwest::Url::parse(&d.url).map_err(|e| (None, format!("bad url: {e}")))?;
    if guard::literal_ip(&url).is_some_and(|ip| !poster.targets.allows(ip)) {
        return Err((None, guard::TargetRefused.to_string()));
    }
    let client = &poster.client;
    let ts = now_ms() / 1000;
    let body = d.delivery.payload.as_bytes().to_vec();
    let sig = sign::signature(&key, &d.delivery.event_id, ts, &body);
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &d.delivery.event_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(body)
        .send()
        .await
        .map_err(|e| (None, short_error(e)))?;
    let status = r.status();
    if status.is_success() {
        Ok(i64::from(status.as_u16()))
    } else {
        Err((
            Some(i64::from(status.as_u16())),
            format!("HTTP {}", status.as_u16()),
        ))
    }
}

/// A transport error without the URL (it may carry credentials in its query).
fn short_error(e: reqwest::Error) -> String {
    if guard::is_refusal(&e) {
        guard::TargetRefused.to_string()
    } else if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        e.without_url().to_string().chars().take(200).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_throttled_per_campaign_and_flushed_later() {
        let mut t = Throttle::default();
        assert!(t.on_call(1, "t", 0));
        assert!(!t.on_call(1, "t", 100));
        assert!(t.on_call(2, "t", 100), "another campaign is not held back");
        assert!(t.due(4_999).is_empty());
        assert_eq!(t.due(5_000), vec![(1, "t".to_string())]);
        assert!(t.due(20_000).is_empty(), "nothing new since");
        assert!(t.on_call(1, "t", 20_000));
    }

    #[test]
    fn a_repeated_state_is_reported_once() {
        let ev = |c, state: &str| Event {
            kind: EventKind::CampaignStateChanged,
            tenant: Some("t".into()),
            campaign: Some(c),
            attempt: None,
            at_ms: 0,
            data: json!({ "state": state }),
        };
        let mut seen = HashMap::new();
        assert!(new_state(&mut seen, &ev(1, "running")));
        assert!(new_state(&mut seen, &ev(1, "completed")));
        assert!(!new_state(&mut seen, &ev(1, "completed")));
        assert!(new_state(&mut seen, &ev(2, "completed")));
        assert!(new_state(&mut seen, &ev(1, "running")), "a restart is news");
    }

    #[test]
    fn payload_has_type_timestamp_and_data() {
        let p: serde_json::Value = serde_json::from_str(&payload(
            EventKind::CallCompleted,
            1_700_000_000_123,
            &json!({"a": 1}),
        ))
        .unwrap();
        assert_eq!(p["type"], "call.completed");
        assert_eq!(p["timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(p["data"]["a"], 1);
    }
}
