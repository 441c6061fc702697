//! The SQLite store: WAL mode, embedded migrations, one writer task that commits in
//! batches, and a small pool of readers.
//!
//! Every write goes through the writer: it takes the first waiting operation, then every
//! other already queued (up to [`SqliteOptions::max_batch`]), applies them in one
//! transaction and commits once. Thousands of attempt updates a second thus cost a few
//! commits (fsyncs) a second, and a caller awaiting [`Store::begin_attempt`] is answered
//! only after its commit: the journal entry is durable before the INVITE leaves.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Row};
use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::dialer::campaign::{CampaignSpec, CampaignState};

/// Migrations, in order; each runs once, recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../../migrations/0001_init.sql"))];

/// Tuning of the SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// `synchronous=FULL` (durable across power loss) when true, `NORMAL` (durable across
    /// a process crash, which is what kill -9 tests) when false.
    pub full_sync: bool,
    /// Most operations per commit.
    pub max_batch: usize,
    /// Reader connections.
    pub readers: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            full_sync: true,
            max_batch: 2048,
            readers: 4,
        }
    }
}

type Reply<T> = oneshot::Sender<StoreResult<T>>;

enum Op {
    Upsert(String, Vec<NewContact>, Reply<ImportReport>),
    OptOut(String, String, bool, Reply<bool>),
    Create(Box<CampaignSpec>, i64, Reply<CampaignRecord>),
    SetState(i64, CampaignState, i64, Reply<CampaignRecord>),
    Begin(AttemptStart, Reply<i64>),
    Answered(i64, i64, Reply<()>),
    Finish(AttemptEnd, ContactNext, Reply<()>),
    Close(i64, i64, String, Reply<()>),
}

/// The SQLite implementation of [`Store`]. Clones share the writer and the readers.
#[derive(Clone)]
pub struct SqliteStore {
    tx: mpsc::UnboundedSender<Op>,
    read: SqlitePool,
}

fn opts(path: &Path, o: &SqliteOptions) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(if o.full_sync {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Normal
        })
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, runs migrations and starts the
    /// writer task. Must be called inside a tokio runtime.
    pub async fn open(path: &Path, o: SqliteOptions) -> StoreResult<SqliteStore> {
        let mut conn = SqliteConnection::connect_with(&opts(path, &o)).await?;
        migrate(&mut conn).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(o.readers.max(1))
            .connect_with(opts(path, &o).read_only(true))
            .await?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(conn, rx, o.max_batch.max(1)));
        Ok(SqliteStore { tx, read })
    }

    /// Opens a database given as a path string (`sqlite:` prefix optional).
    pub async fn open_str(path: &str, o: SqliteOptions) -> StoreResult<SqliteStore> {
        let p = path.strip_prefix("sqlite:").unwrap_or(path);
        Self::open(Path::new(p), o).await
    }

    /// Queues `op` on the writer now (so that operations keep their call order) and
    /// returns the future of its reply.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(Reply<T>) -> Op,
    ) -> impl Future<Output = StoreResult<T>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = self.tx.send(f(tx)).is_ok();
        async move {
            if !sent {
                return Err(StoreError::Closed);
            }
            rx.await.map_err(|_| StoreError::Closed)?
        }
    }
}

async fn migrate(conn: &mut SqliteConnection) -> StoreResult<()> {
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
        .execute(&mut *conn)
        .await?;
    for (v, sql) in MIGRATIONS {
        // IMMEDIATE: two processes opening one database apply each migration once.
        sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        let r = apply_migration(conn, *v, sql).await;
        let end = if r.is_ok() { "COMMIT" } else { "ROLLBACK" };
        sqlx::raw_sql(end).execute(&mut *conn).await?;
        if r? {
            tracing::info!(version = v, "store: migration applied");
        }
    }
    Ok(())
}

async fn apply_migration(conn: &mut SqliteConnection, v: i64, sql: &str) -> StoreResult<bool> {
    let done: Option<i64> =
        sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
            .bind(v)
            .fetch_optional(&mut *conn)
            .await?;
    if done.is_some() {
        return Ok(false);
    }
    sqlx::raw_sql(sql).execute(&mut *conn).await?;
    sqlx::query("INSERT INTO schema_migrations (version) VALUES (?)")
        .bind(v)
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

/// A reply to send once the batch's commit is known.
type Deferred = Box<dyn FnOnce(Option<&str>) + Send>;

fn defer<T: Send + 'static>(reply: Reply<T>, r: StoreResult<T>) -> Deferred {
    Box::new(move |commit_err| {
        let r = match (r, commit_err) {
            (Ok(_), Some(e)) => Err(StoreError::Conflict(format!("commit failed: {e}"))),
            (r, _) => r,
        };
        let _ = reply.send(r);
    })
}

async fn writer(mut conn: SqliteConnection, mut rx: mpsc::UnboundedReceiver<Op>, max: usize) {
    let mut batch = Vec::with_capacity(max);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < max {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let n = batch.len();
        let mut replies: Vec<Deferred> = Vec::with_capacity(n);
        let started = std::time::Instant::now();
        let mut tx = match conn.begin().await {
            Ok(tx) => tx,
            Err(e) => {
                let msg = e.to_string();
                for op in batch.drain(..) {
                    fail(op, &msg);
                }
                continue;
            }
        };
        for op in batch.drain(..) {
            replies.push(apply(&mut tx, op).await);
        }
        let err = tx.commit().await.err().map(|e| e.to_string());
        if let Some(e) = &err {
            tracing::error!(error = %e, "store: batch commit failed");
        }
        metrics::histogram!("dialer_store_batch_size").record(n as f64);
        metrics::histogram!("dialer_store_commit_seconds").record(started.elapsed());
        for r in replies {
            r(err.as_deref());
        }
    }
}

fn fail(op: Op, msg: &str) {
    let e = || StoreError::Conflict(format!("begin failed: {msg}"));
    match op {
        Op::Upsert(_, _, r) => drop(r.send(Err(e()))),
        Op::OptOut(_, _, _, r) => drop(r.send(Err(e()))),
        Op::Create(_, _, r) => drop(r.send(Err(e()))),
        Op::SetState(_, _, _, r) => drop(r.send(Err(e()))),
        Op::Begin(_, r) => drop(r.send(Err(e()))),
        Op::Answered(_, _, r) => drop(r.send(Err(e()))),
        Op::Finish(_, _, r) => drop(r.send(Err(e()))),
        Op::Close(_, _, _, r) => drop(r.send(Err(e()))),
    }
}

async fn apply(c: &mut SqliteConnection, op: Op) -> Deferred {
    match op {
        Op::Upsert(t, list, r) => defer(r, upsert(c, &t, list).await),
        Op::OptOut(t, n, o, r) => {
            let res =
                sqlx::query("UPDATE contacts SET opt_out = ? WHERE tenant = ? AND number = ?")
                    .bind(o)
                    .bind(&t)
                    .bind(&n)
                    .execute(&mut *c)
                    .await
                    .map(|x| x.rows_affected() > 0)
                    .map_err(StoreError::from);
            defer(r, res)
        }
        Op::Create(spec, now, r) => defer(r, create(c, *spec, now).await),
        Op::SetState(id, to, now, r) => defer(r, set_state(c, id, to, now).await),
        Op::Begin(a, r) => defer(r, begin(c, a).await),
        Op::Answered(id, at, r) => defer(r, answered(c, id, at).await),
        Op::Finish(e, n, r) => defer(r, finish(c, e, n).await),
        Op::Close(camp, contact, o, r) => {
            let res = sqlx::query(
                "UPDATE campaign_contacts SET state = 'done', last_outcome = ?
                 WHERE campaign_id = ? AND contact_id = ?",
            )
            .bind(&o)
            .bind(camp)
            .bind(contact)
            .execute(&mut *c)
            .await
            .map(|_| ())
            .map_err(StoreError::from);
            defer(r, res)
        }
    }
}

async fn upsert(
    c: &mut SqliteConnection,
    tenant: &str,
    list: Vec<NewContact>,
) -> StoreResult<ImportReport> {
    let mut rep = ImportReport::default();
    let now = now_ms();
    for k in list {
        let res = sqlx::query(
            "INSERT INTO contacts (tenant, number, number_type, street, house_number, zone, source, opt_out, created_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (tenant, number) DO UPDATE SET
               number_type = excluded.number_type, street = excluded.street,
               house_number = excluded.house_number, zone = excluded.zone,
               source = excluded.source, opt_out = max(contacts.opt_out, excluded.opt_out)
             RETURNING (created_ms = ?) AS fresh",
        )
        .bind(tenant)
        .bind(&k.number)
        .bind(k.number_type.as_str())
        .bind(&k.street)
        .bind(&k.house_number)
        .bind(&k.zone)
        .bind(k.source.as_str())
        .bind(k.opt_out)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *c)
        .await?;
        if res.try_get::<bool, _>("fresh")? {
            rep.inserted += 1;
        } else {
            rep.updated += 1;
        }
    }
    Ok(rep)
}

fn campaign_row(r: &SqliteRow) -> StoreResult<CampaignRecord> {
    let spec: String = r.try_get("spec")?;
    let state: String = r.try_get("state")?;
    Ok(CampaignRecord {
        id: r.try_get("id")?,
        spec: serde_json::from_str(&spec).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        state: CampaignState::parse(&state).ok_or(StoreError::Corrupt(state))?,
        created_ms: r.try_get("created_ms")?,
    })
}

async fn get_campaign(c: &mut SqliteConnection, id: i64) -> StoreResult<CampaignRecord> {
    let r = sqlx::query("SELECT * FROM campaigns WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NotFound)?;
    campaign_row(&r)
}

async fn create(
    c: &mut SqliteConnection,
    spec: CampaignSpec,
    now: i64,
) -> StoreResult<CampaignRecord> {
    let json = serde_json::to_string(&spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let res = sqlx::query(
        "INSERT INTO campaigns (tenant, name, spec, priority, state, created_ms, updated_ms)
         VALUES (?, ?, ?, ?, 'draft', ?, ?) RETURNING id",
    )
    .bind(&spec.tenant)
    .bind(&spec.name)
    .bind(json)
    .bind(spec.priority.as_str())
    .bind(now)
    .bind(now)
    .fetch_one(&mut *c)
    .await;
    match res {
        Ok(r) => get_campaign(c, r.try_get("id")?).await,
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict(
            format!("campaign {} exists for {}", spec.name, spec.tenant),
        )),
        Err(e) => Err(e.into()),
    }
}

async fn set_state(
    c: &mut SqliteConnection,
    id: i64,
    to: CampaignState,
    now: i64,
) -> StoreResult<CampaignRecord> {
    let cur = get_campaign(c, id).await?;
    if cur.state == to {
        return Ok(cur);
    }
    if !cur.state.can_go(to) {
        return Err(StoreError::Conflict(format!(
            "campaign cannot go from {} to {to}",
            cur.state
        )));
    }
    if cur.state == CampaignState::Draft && to == CampaignState::Running {
        // Select the targeted contacts now: the target is a union of zones and streets.
        let rows =
            sqlx::query("SELECT id, zone, street FROM contacts WHERE tenant = ? AND opt_out = 0")
                .bind(&cur.spec.tenant)
                .fetch_all(&mut *c)
                .await?;
        for r in rows {
            let zone: String = r.try_get("zone")?;
            let street: String = r.try_get("street")?;
            if cur.spec.target.matches(&zone, &street) {
                sqlx::query(
                    "INSERT OR IGNORE INTO campaign_contacts (campaign_id, contact_id, state, next_ms)
                     VALUES (?, ?, 'pending', 0)",
                )
                .bind(id)
                .bind(r.try_get::<i64, _>("id")?)
                .execute(&mut *c)
                .await?;
            }
        }
    }
    sqlx::query("UPDATE campaigns SET state = ?, updated_ms = ? WHERE id = ?")
        .bind(to.as_str())
        .bind(now)
        .bind(id)
        .execute(&mut *c)
        .await?;
    get_campaign(c, id).await
}

async fn begin(c: &mut SqliteConnection, a: AttemptStart) -> StoreResult<i64> {
    let r = sqlx::query(
        "INSERT INTO attempts (campaign_id, contact_id, number, call_id, trunk, state, started_ms)
         VALUES (?, ?, ?, ?, ?, 'dialing', ?) RETURNING id",
    )
    .bind(a.campaign)
    .bind(a.contact)
    .bind(&a.number)
    .bind(&a.call_id)
    .bind(&a.trunk)
    .bind(a.started_ms)
    .fetch_one(&mut *c)
    .await?;
    sqlx::query(
        "UPDATE campaign_contacts SET state = 'dialing' WHERE campaign_id = ? AND contact_id = ?",
    )
    .bind(a.campaign)
    .bind(a.contact)
    .execute(&mut *c)
    .await?;
    Ok(r.try_get("id")?)
}

async fn answered(c: &mut SqliteConnection, id: i64, at: i64) -> StoreResult<()> {
    sqlx::query("UPDATE attempts SET answered_ms = ? WHERE id = ?")
        .bind(at)
        .bind(id)
        .execute(&mut *c)
        .await?;
    sqlx::query(
        "UPDATE campaign_contacts SET answered = 1
         WHERE (campaign_id, contact_id) = (SELECT campaign_id, contact_id FROM attempts WHERE id = ?)",
    )
    .bind(id)
    .execute(&mut *c)
    .await?;
    Ok(())
}

async fn finish(c: &mut SqliteConnection, e: AttemptEnd, next: ContactNext) -> StoreResult<()> {
    let r = sqlx::query(
        "UPDATE attempts SET state = 'final', outcome = ?, sip_status = ?, sip_reason = ?,
           counted = ?, ended_ms = ?, pdd_ms = ?, duration_ms = ?, played_permille = ?, dtmf = ?
         WHERE id = ? AND state = 'dialing'
         RETURNING campaign_id, contact_id",
    )
    .bind(&e.outcome)
    .bind(i64::from(e.sip_status))
    .bind(&e.sip_reason)
    .bind(e.counted)
    .bind(e.ended_ms)
    .bind(e.pdd_ms)
    .bind(e.duration_ms)
    .bind(e.played_permille)
    .bind(&e.dtmf)
    .bind(e.attempt)
    .fetch_optional(&mut *c)
    .await?;
    let Some(r) = r else {
        return Err(StoreError::Conflict(format!(
            "attempt {} is not dialing (already final?)",
            e.attempt
        )));
    };
    let (camp, contact): (i64, i64) = (r.try_get("campaign_id")?, r.try_get("contact_id")?);
    let (state, next_ms) = match next {
        ContactNext::RetryAt(ms) => ("pending", ms),
        ContactNext::Done => ("done", 0),
    };
    // An answered contact stays done whatever a late attempt says.
    sqlx::query(
        "UPDATE campaign_contacts SET
           state = CASE WHEN answered = 1 OR ? = 'answered' THEN 'done' ELSE ? END,
           answered = CASE WHEN ? = 'answered' THEN 1 ELSE answered END,
           next_ms = ?, attempts = attempts + ?, last_outcome = ?
         WHERE campaign_id = ? AND contact_id = ?",
    )
    .bind(&e.outcome)
    .bind(state)
    .bind(&e.outcome)
    .bind(next_ms)
    .bind(i64::from(e.counted))
    .bind(&e.outcome)
    .bind(camp)
    .bind(contact)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Wall clock, Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn attempt_row(r: &SqliteRow) -> StoreResult<AttemptRecord> {
    Ok(AttemptRecord {
        id: r.try_get("id")?,
        campaign: r.try_get("campaign_id")?,
        contact: r.try_get("contact_id")?,
        number: r.try_get("number")?,
        call_id: r.try_get("call_id")?,
        trunk: r.try_get("trunk")?,
        state: r.try_get("state")?,
        outcome: r.try_get("outcome")?,
        sip_status: r.try_get("sip_status")?,
        sip_reason: r.try_get("sip_reason")?,
        counted: r.try_get("counted")?,
        started_ms: r.try_get("started_ms")?,
        answered_ms: r.try_get("answered_ms")?,
        ended_ms: r.try_get("ended_ms")?,
        pdd_ms: r.try_get("pdd_ms")?,
        duration_ms: r.try_get("duration_ms")?,
        played_permille: r.try_get("played_permille")?,
        dtmf: r.try_get("dtmf")?,
    })
}

impl Store for SqliteStore {
    fn upsert_contacts(
        &self,
        tenant: &str,
        contacts: Vec<NewContact>,
    ) -> impl Future<Output = StoreResult<ImportReport>> + Send {
        let t = tenant.to_string();
        self.call(move |r| Op::Upsert(t, contacts, r))
    }

    fn set_opt_out(
        &self,
        tenant: &str,
        number: &str,
        opt_out: bool,
    ) -> impl Future<Output = StoreResult<bool>> + Send {
        let (t, n) = (tenant.to_string(), number.to_string());
        self.call(move |r| Op::OptOut(t, n, opt_out, r))
    }

    fn create_campaign(
        &self,
        spec: CampaignSpec,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<CampaignRecord>> + Send {
        self.call(move |r| Op::Create(Box::new(spec), now_ms, r))
    }

    async fn campaign(&self, id: i64) -> StoreResult<Option<CampaignRecord>> {
        let r = sqlx::query("SELECT * FROM campaigns WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        r.as_ref().map(campaign_row).transpose()
    }

    async fn campaign_by_name(
        &self,
        tenant: &str,
        name: &str,
    ) -> StoreResult<Option<CampaignRecord>> {
        let r = sqlx::query("SELECT * FROM campaigns WHERE tenant = ? AND name = ?")
            .bind(tenant)
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        r.as_ref().map(campaign_row).transpose()
    }

    async fn campaigns(&self, states: &[CampaignState]) -> StoreResult<Vec<CampaignRecord>> {
        let rows = sqlx::query("SELECT * FROM campaigns ORDER BY id")
            .fetch_all(&self.read)
            .await?;
        let mut out = vec![];
        for r in &rows {
            let c = campaign_row(r)?;
            if states.is_empty() || states.contains(&c.state) {
                out.push(c);
            }
        }
        Ok(out)
    }

    fn set_campaign_state(
        &self,
        id: i64,
        to: CampaignState,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<CampaignRecord>> + Send {
        self.call(move |r| Op::SetState(id, to, now_ms, r))
    }

    async fn due_contacts(
        &self,
        campaign: i64,
        now_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<DueContact>> {
        let rows = sqlx::query(
            "SELECT cc.contact_id, c.number, c.number_type, cc.attempts
             FROM campaign_contacts cc JOIN contacts c ON c.id = cc.contact_id
             WHERE cc.campaign_id = ? AND cc.state = 'pending' AND cc.next_ms <= ?
               AND cc.answered = 0 AND c.opt_out = 0
             ORDER BY cc.next_ms, cc.contact_id LIMIT ?",
        )
        .bind(campaign)
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DueContact {
                    contact: r.try_get("contact_id")?,
                    number: r.try_get("number")?,
                    number_type: NumberType::parse(r.try_get("number_type")?),
                    attempts: r.try_get::<i64, _>("attempts")? as u32,
                })
            })
            .collect()
    }

    fn begin_attempt(
        &self,
        a: AttemptStart,
    ) -> impl Future<Output = StoreResult<i64>> + Send + use<> {
        self.call(move |r| Op::Begin(a, r))
    }

    fn attempt_answered(
        &self,
        attempt: i64,
        at_ms: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
        self.call(move |r| Op::Answered(attempt, at_ms, r))
    }

    fn close_contact(
        &self,
        campaign: i64,
        contact: i64,
        outcome: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
        let o = outcome.to_string();
        self.call(move |r| Op::Close(campaign, contact, o, r))
    }

    fn finish_attempt(
        &self,
        end: AttemptEnd,
        next: ContactNext,
    ) -> impl Future<Output = StoreResult<()>> + Send + use<> {
        self.call(move |r| Op::Finish(end, next, r))
    }

    async fn dangling(&self) -> StoreResult<Vec<Dangling>> {
        let rows = sqlx::query(
            "SELECT a.id, a.campaign_id, a.contact_id, a.answered_ms, cc.attempts
             FROM attempts a LEFT JOIN campaign_contacts cc
               ON cc.campaign_id = a.campaign_id AND cc.contact_id = a.contact_id
             WHERE a.state = 'dialing' ORDER BY a.id",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Dangling {
                    attempt: r.try_get("id")?,
                    campaign: r.try_get("campaign_id")?,
                    contact: r.try_get("contact_id")?,
                    answered: r.try_get::<Option<i64>, _>("answered_ms")?.is_some(),
                    attempts: r.try_get::<Option<i64>, _>("attempts")?.unwrap_or(0) as u32,
                })
            })
            .collect()
    }

    async fn progress(&self, campaign: i64) -> StoreResult<Progress> {
        let r = sqlx::query(
            "SELECT count(*) AS targeted,
               coalesce(sum(cc.state = 'pending' AND c.opt_out = 0), 0) AS pending,
               coalesce(sum(cc.state = 'dialing'), 0) AS dialing,
               coalesce(sum(cc.state = 'done' OR (cc.state = 'pending' AND c.opt_out = 1)), 0) AS done,
               coalesce(sum(cc.answered), 0) AS answered
             FROM campaign_contacts cc JOIN contacts c ON c.id = cc.contact_id
             WHERE cc.campaign_id = ?",
        )
        .bind(campaign)
        .fetch_one(&self.read)
        .await?;
        let attempts: i64 =
            sqlx::query_scalar("SELECT count(*) FROM attempts WHERE campaign_id = ?")
                .bind(campaign)
                .fetch_one(&self.read)
                .await?;
        let g = |k: &str| -> StoreResult<u64> { Ok(r.try_get::<i64, _>(k)? as u64) };
        Ok(Progress {
            targeted: g("targeted")?,
            pending: g("pending")?,
            dialing: g("dialing")?,
            done: g("done")?,
            answered: g("answered")?,
            attempts: attempts as u64,
        })
    }

    async fn attempts(
        &self,
        campaign: i64,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<AttemptRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM attempts WHERE campaign_id = ? AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(campaign)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(attempt_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialer::campaign::{Priority, Target};
    use crate::dialer::contacts::Source;
    use crate::dialer::retry::RetryPolicy;

    fn contact(n: u32, zone: &str) -> NewContact {
        NewContact {
            number: format!("+39077100{n:04}"),
            number_type: NumberType::Fixed,
            street: format!("Via {}", n % 3),
            house_number: n.to_string(),
            zone: zone.into(),
            source: Source::Directory,
            opt_out: false,
        }
    }

    fn spec(zones: &[&str]) -> CampaignSpec {
        CampaignSpec {
            tenant: "t".into(),
            name: "c".into(),
            prompt: "p".into(),
            target: Target {
                zones: zones.iter().map(|z| z.to_string()).collect(),
                ..Default::default()
            },
            priority: Priority::Normal,
            window: None,
            caller_id: None,
            ring_timeout_s: None,
            play_count: 1,
            retry: RetryPolicy::default(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_opens_migrate_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.db");
        for _ in 0..3 {
            let (a, b) = tokio::join!(
                SqliteStore::open(&p, SqliteOptions::default()),
                SqliteStore::open(&p, SqliteOptions::default())
            );
            a.unwrap();
            b.unwrap();
        }
    }

    #[tokio::test]
    async fn journal_round_trip_and_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        let s = SqliteStore::open(&path, SqliteOptions::default())
            .await
            .unwrap();
        let mut list: Vec<_> = (0..30)
            .map(|i| contact(i, ["a", "b", "c"][i as usize % 3]))
            .collect();
        list[0].opt_out = true;
        let rep = s.upsert_contacts("t", list.clone()).await.unwrap();
        assert_eq!(rep.inserted, 30);
        // Re-import: updates, and the opt-out is kept even if the new row lacks it.
        list[0].opt_out = false;
        let rep = s.upsert_contacts("t", list).await.unwrap();
        assert_eq!((rep.inserted, rep.updated), (0, 30));

        let c = s.create_campaign(spec(&["a", "b"]), 1).await.unwrap();
        assert!(matches!(
            s.create_campaign(spec(&["a"]), 1).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(s
            .set_campaign_state(c.id, CampaignState::Completed, 2)
            .await
            .is_err());
        s.set_campaign_state(c.id, CampaignState::Running, 2)
            .await
            .unwrap();
        let due = s.due_contacts(c.id, 10, 1000).await.unwrap();
        assert_eq!(due.len(), 19); // 20 in zones a+b, one opted out

        let mut ids = vec![];
        for d in &due[..3] {
            let id = s
                .begin_attempt(AttemptStart {
                    campaign: c.id,
                    contact: d.contact,
                    number: d.number.clone(),
                    call_id: format!("cid-{}", d.contact),
                    trunk: "a".into(),
                    started_ms: 100,
                })
                .await
                .unwrap();
            ids.push(id);
        }
        assert_eq!(s.due_contacts(c.id, 10, 1000).await.unwrap().len(), 16);
        s.attempt_answered(ids[0], 150).await.unwrap();
        s.finish_attempt(
            AttemptEnd {
                attempt: ids[1],
                outcome: "busy".into(),
                sip_status: 486,
                sip_reason: "Busy Here".into(),
                counted: true,
                ended_ms: 200,
                ..Default::default()
            },
            ContactNext::RetryAt(500),
        )
        .await
        .unwrap();
        // A second final record for one attempt is refused.
        assert!(s
            .finish_attempt(
                AttemptEnd {
                    attempt: ids[1],
                    outcome: "busy".into(),
                    ..Default::default()
                },
                ContactNext::Done
            )
            .await
            .is_err());
        drop(s);

        // "Crash": reopen; two attempts are dangling, one of them answered.
        let s = SqliteStore::open(&path, SqliteOptions::default())
            .await
            .unwrap();
        let d = s.dangling().await.unwrap();
        assert_eq!(d.len(), 2);
        assert!(d[0].answered && !d[1].answered);
        let p = s.progress(c.id).await.unwrap();
        assert_eq!(
            (p.targeted, p.dialing, p.answered, p.attempts),
            (19, 2, 1, 3)
        );
        assert_eq!(s.due_contacts(c.id, 10_000, 1000).await.unwrap().len(), 17);
        let a = s.attempts(c.id, 0, 10).await.unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a[1].outcome.as_deref(), Some("busy"));
        assert_eq!(a[0].answered_ms, Some(150));
    }
}
