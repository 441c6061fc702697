// Webhook endpoints and their outbox (issue 16 item 3), written once for both stores
// (see `store::sql`).

use sqlx::Row;

use super::corrupt;
use crate::store::{
    AttemptSubject, DeliveryRecord, DeliveryUpdate, DueDelivery, NewEvent, StoreError, StoreResult,
    WebhookRecord,
};
use crate::webhook::{DeliveryState, EventKind};

type HookRow = (String, String, String, String, String, i64);

fn hook_of((id, tenant, url, events, secret, created_ms): HookRow) -> StoreResult<WebhookRecord> {
    let events = events
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| EventKind::parse(s).ok_or_else(|| corrupt("webhook event", s)))
        .collect::<StoreResult<_>>()?;
    Ok(WebhookRecord {
        id,
        tenant,
        url,
        events,
        secret,
        created_ms,
    })
}

/// The stored form of a subscription list: `,a,b,` (matched with LIKE '%,a,%').
fn events_text(events: &[EventKind]) -> String {
    let mut s = String::from(",");
    for e in events {
        s.push_str(e.as_str());
        s.push(',');
    }
    s
}

const HOOK_COLS: &str = "id, tenant, url, events, secret, created_ms";

pub(super) async fn create_webhook(c: &mut Conn, w: WebhookRecord) -> StoreResult<()> {
    let r = sqlx::query(
        "INSERT INTO webhooks (id, tenant, url, events, secret, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&w.id)
    .bind(&w.tenant)
    .bind(&w.url)
    .bind(events_text(&w.events))
    .bind(&w.secret)
    .bind(w.created_ms)
    .execute(&mut *c)
    .await;
    match r {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::Conflict(format!("webhook {} exists", w.id)))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn webhook(
    db: &Pool,
    tenant: &str,
    id: &str,
) -> StoreResult<Option<WebhookRecord>> {
    let row: Option<HookRow> = sqlx::query_as(&format!(
        "SELECT {HOOK_COLS} FROM webhooks WHERE tenant = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(db)
    .await?;
    row.map(hook_of).transpose()
}

pub(super) async fn webhooks(
    db: &Pool,
    tenant: &str,
    after: &str,
    limit: u32,
) -> StoreResult<Vec<WebhookRecord>> {
    let rows: Vec<HookRow> = sqlx::query_as(&format!(
        "SELECT {HOOK_COLS} FROM webhooks WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    rows.into_iter().map(hook_of).collect()
}

/// Deletes an endpoint and its outbox rows; false if there was none.
pub(super) async fn delete_webhook(c: &mut Conn, tenant: String, id: String) -> StoreResult<bool> {
    let r = sqlx::query("DELETE FROM webhooks WHERE tenant = $1 AND id = $2")
        .bind(&tenant)
        .bind(&id)
        .execute(&mut *c)
        .await?;
    sqlx::query("DELETE FROM webhook_deliveries WHERE tenant = $1 AND webhook = $2")
        .bind(&tenant)
        .bind(&id)
        .execute(&mut *c)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// One outbox row per endpoint of the tenant subscribed to the event; how many.
pub(super) async fn enqueue_event(c: &mut Conn, e: NewEvent) -> StoreResult<u64> {
    let r = sqlx::query(
        "INSERT INTO webhook_deliveries (webhook, tenant, event_id, event, payload, state, \
         attempts, next_ms, since_ms, created_ms) \
         SELECT id, tenant, $2, $3, $4, 'pending', 0, $5, $5, $5 FROM webhooks \
         WHERE tenant = $1 AND events LIKE $6 ORDER BY id",
    )
    .bind(&e.tenant)
    .bind(&e.event_id)
    .bind(e.kind.as_str())
    .bind(&e.payload)
    .bind(e.now_ms)
    .bind(format!("%,{},%", e.kind.as_str()))
    .execute(&mut *c)
    .await?;
    Ok(r.rows_affected())
}

const DELIVERY_COLS: &str = "d.id, d.webhook, d.tenant, d.event_id, d.event, d.payload, \
     d.state, d.attempts, d.next_ms, d.since_ms, d.last_status, d.last_error, d.created_ms, \
     d.done_ms";

fn delivery_of(r: &DbRow) -> StoreResult<DeliveryRecord> {
    let event: String = r.try_get("event")?;
    let state: String = r.try_get("state")?;
    Ok(DeliveryRecord {
        event: EventKind::parse(&event).ok_or_else(|| corrupt("webhook event", &event))?,
        state: DeliveryState::parse(&state).ok_or_else(|| corrupt("delivery state", &state))?,
        id: r.try_get("id")?,
        webhook: r.try_get("webhook")?,
        tenant: r.try_get("tenant")?,
        event_id: r.try_get("event_id")?,
        payload: r.try_get("payload")?,
        attempts: r.try_get("attempts")?,
        next_ms: r.try_get("next_ms")?,
        since_ms: r.try_get("since_ms")?,
        last_status: r.try_get("last_status")?,
        last_error: r.try_get("last_error")?,
        created_ms: r.try_get("created_ms")?,
        done_ms: r.try_get("done_ms")?,
    })
}

/// Pending rows due at `now_ms`, at most `per_hook` per endpoint (its oldest), oldest
/// first, with their endpoint: one endpoint's backlog cannot crowd the others out.
pub(super) async fn due_deliveries(
    db: &Pool,
    now_ms: i64,
    per_hook: u32,
    limit: u32,
) -> StoreResult<Vec<DueDelivery>> {
    let rows: Vec<DbRow> = sqlx::query(&format!(
        "SELECT {DELIVERY_COLS}, w.url, w.secret FROM \
         (SELECT *, ROW_NUMBER() OVER (PARTITION BY webhook ORDER BY id) AS rn \
          FROM webhook_deliveries WHERE state = 'pending' AND next_ms <= $1) d \
         JOIN webhooks w ON w.id = d.webhook WHERE d.rn <= $2 ORDER BY d.id LIMIT $3"
    ))
    .bind(now_ms)
    .bind(i64::from(per_hook))
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DueDelivery {
                delivery: delivery_of(r)?,
                url: r.try_get("url")?,
                secret: r.try_get("secret")?,
            })
        })
        .collect()
}

/// Forgets delivered rows done before `delivered_before` and dead ones before
/// `dead_before`; how many.
pub(super) async fn purge_deliveries(
    c: &mut Conn,
    delivered_before: i64,
    dead_before: i64,
) -> StoreResult<u64> {
    let r = sqlx::query(
        "DELETE FROM webhook_deliveries WHERE (state = 'delivered' AND done_ms < $1) \
         OR (state = 'dead' AND done_ms < $2)",
    )
    .bind(delivered_before)
    .bind(dead_before)
    .execute(&mut *c)
    .await?;
    Ok(r.rows_affected())
}

pub(super) async fn record_delivery(c: &mut Conn, u: DeliveryUpdate) -> StoreResult<()> {
    sqlx::query(
        "UPDATE webhook_deliveries SET state = $2, attempts = $3, next_ms = $4, \
         last_status = $5, last_error = $6, done_ms = $7 WHERE id = $1",
    )
    .bind(u.id)
    .bind(u.state.as_str())
    .bind(u.attempts)
    .bind(u.next_ms)
    .bind(u.last_status)
    .bind(&u.last_error)
    .bind(u.done_ms)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(super) async fn deliveries(
    db: &Pool,
    tenant: &str,
    webhook: &str,
    after: i64,
    limit: u32,
) -> StoreResult<Vec<DeliveryRecord>> {
    let rows: Vec<DbRow> = sqlx::query(&format!(
        "SELECT {DELIVERY_COLS} FROM webhook_deliveries d \
         WHERE d.tenant = $1 AND d.webhook = $2 AND d.id > $3 ORDER BY d.id LIMIT $4"
    ))
    .bind(tenant)
    .bind(webhook)
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    rows.iter().map(delivery_of).collect()
}

/// Makes a row due now with a fresh 24 h window (whatever its state); false if the tenant
/// has no such row for that endpoint.
pub(super) async fn retry_delivery(
    c: &mut Conn,
    tenant: String,
    webhook: String,
    id: i64,
    now_ms: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE webhook_deliveries SET state = 'pending', next_ms = $4, since_ms = $4, \
         done_ms = NULL WHERE tenant = $1 AND webhook = $2 AND id = $3",
    )
    .bind(&tenant)
    .bind(&webhook)
    .bind(id)
    .bind(now_ms)
    .execute(&mut *c)
    .await?;
    Ok(r.rows_affected() > 0)
}

pub(super) async fn attempt_subject(
    db: &Pool,
    attempt: i64,
) -> StoreResult<Option<AttemptSubject>> {
    let row: Option<(i64, String, String)> = sqlx::query_as(
        "SELECT a.campaign_id, c.tenant, a.number FROM attempts a \
         JOIN campaigns c ON c.id = a.campaign_id WHERE a.id = $1",
    )
    .bind(attempt)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(campaign, tenant, number)| AttemptSubject {
        campaign,
        tenant,
        number,
    }))
}
