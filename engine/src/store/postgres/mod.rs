//! The PostgreSQL store, for several dialer nodes sharing one database: sqlx's migrator
//! (under a PostgreSQL advisory lock, so nodes starting together migrate once), one
//! writer connection that commits in batches, and a pool of readers.
//!
//! Writes go through the batched writer of `store::batch`, as on SQLite (up to
//! [`PgOptions::max_batch`] per commit; a caller awaiting [`Store::begin_attempt`] is
//! answered only after that commit). Unlike SQLite, a failed statement aborts a
//! PostgreSQL transaction, so each operation runs inside its own savepoint: one that
//! fails (a name conflict, say) is rolled back alone and the rest of the batch commits.
//! If the writer's connection breaks (a database restart), the next batch reconnects.
//!
//! The SQL lives by concern as in the SQLite store: [`campaigns`], [`journal`],
//! [`contacts`], [`api`]; this file holds the connection, migrations and the writer.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::Connection;

use super::batch::{
    apply_and_commit, fail_all, next_batch, BoxFut, Isolation, Ops, Pending, Queue, Queued, RunOne,
    SyncRun, SyncWrite,
};
use super::wiring::JournalWrites;
use super::*;

mod cluster;
mod cluster_trunks;
mod db;
mod journal_write;
// api, campaigns, contacts, dids, journal, registrations, audit_log, webhooks,
// prefix_limits: the SQL in `store/sql/`.
crate::store::sql::shared_concerns!();
mod sizes;
mod store_impl;
#[cfg(any(test, feature = "pg-test-cluster"))]
pub mod test_cluster;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cluster;

pub use cluster::{BeatOutcome, NodeJoin, NodeRecord, NodeState, PeerShare, TrunkShareRow};
pub use cluster_trunks::TrunkChange;
pub use sizes::{IndexUse, TableSize};

/// The schema's migrations, in order (engine/migrations-pg). Applied by sqlx's migrator,
/// which records them in `_sqlx_migrations` with a checksum.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations-pg/0001_init.sql"),
    ),
    (
        2,
        "numbers and ivr",
        include_str!("../../../migrations-pg/0002_numbers_ivr.sql"),
    ),
    (
        3,
        "heard",
        include_str!("../../../migrations-pg/0003_heard.sql"),
    ),
    (
        4,
        "cluster",
        include_str!("../../../migrations-pg/0004_cluster.sql"),
    ),
    (
        5,
        "webhooks and audit",
        include_str!("../../../migrations-pg/0005_hooks.sql"),
    ),
    (
        6,
        "prefix limits",
        include_str!("../../../migrations-pg/0006_prefix_limits.sql"),
    ),
    (
        7,
        "cluster trunks",
        include_str!("../../../migrations-pg/0007_cluster_trunks.sql"),
    ),
    (
        8,
        "claim index",
        include_str!("../../../migrations-pg/0008_claim_index.sql"),
    ),
    (
        9,
        "amd",
        include_str!("../../../migrations-pg/0009_amd.sql"),
    ),
];

/// The migrator over [`MIGRATIONS`], built the way `sqlx::migrate!` builds one (without
/// the macros feature and its build-time directory scan).
fn migrator() -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|(v, desc, sql)| {
            Migration::new(
                *v,
                Cow::Borrowed(*desc),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// Tuning of the PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Most operations per commit.
    pub max_batch: usize,
    /// Reader connections.
    pub readers: u32,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_batch: 2048,
            readers: 4,
        }
    }
}

/// An operation runs in a savepoint of its own: a failed statement aborts a PostgreSQL
/// transaction, so one that fails (a name conflict, say) is rolled back alone and the rest
/// of the batch commits. The journal's all-or-nothing writes ([`Isolation::Shared`]) skip
/// the savepoint's two round trips.
/// No write of PostgreSQL's has a synchronous form (its journal writes are awaited in the
/// batch like the others): the handle type has no value.
pub(crate) enum NoSync {}

impl RunOne for PgConnection {
    type Sync = NoSync;

    fn run_sync(_: &mut Self, ops: Vec<Box<dyn SyncWrite<NoSync>>>) -> BoxFut<'_, SyncRun> {
        Box::pin(async move { SyncRun::refused(ops, "no synchronous writes".into()) })
    }

    fn run_one<'c, T, F>(c: &'c mut Self, iso: Isolation, run: F) -> BoxFut<'c, StoreResult<T>>
    where
        T: Send + 'static,
        F: for<'x> FnOnce(&'x mut Self) -> BoxFut<'x, StoreResult<T>> + Send + 'static,
    {
        match iso {
            Isolation::Own => Box::pin(in_savepoint(c, run)),
            Isolation::Shared => run(c),
        }
    }
}

/// Runs `run` in a savepoint: released when it succeeds, rolled back when it fails, so
/// that its failure leaves the batch's transaction usable.
async fn in_savepoint<T, F>(c: &mut PgConnection, run: F) -> StoreResult<T>
where
    F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFut<'c, StoreResult<T>>,
{
    // Inside a transaction, sqlx's `begin` issues SAVEPOINT and commit/rollback release
    // or roll back to it.
    let mut sp = c.begin().await?;
    match run(&mut sp).await {
        Ok(v) => {
            sp.commit().await?;
            Ok(v)
        }
        Err(e) => {
            sp.rollback().await?;
            Err(e)
        }
    }
}

/// The PostgreSQL implementation of [`Store`]. Clones share the writer, the readers and
/// the fence of the node's run.
#[derive(Clone)]
pub struct PgStore {
    queue: Queue<PgConnection>,
    read: ReadPool,
    /// The heartbeat's own connection (opened at the first beat, again after an error):
    /// a lease renewal must not wait for a reader behind claims and API reads.
    beat: Arc<tokio::sync::Mutex<Option<PgConnection>>>,
    opts: Arc<PgConnectOptions>,
}

impl JournalWrites for PgStore {
    fn journal_begin(&self, a: AttemptStart) -> Pending<i64> {
        self.write_shared(move |c| Box::pin(journal_write::begin(c, a)))
    }

    fn journal_answered(&self, attempt: i64, at_ms: i64) -> Pending<()> {
        self.write_shared(move |c| Box::pin(journal_write::answered(c, attempt, at_ms)))
    }

    fn journal_close_contact(&self, campaign: i64, contact: i64, outcome: Outcome) -> Pending<()> {
        self.write_shared(move |c| {
            Box::pin(journal_write::close_contact(c, campaign, contact, outcome))
        })
    }

    fn journal_finish(&self, end: AttemptEnd, next: ContactNext) -> Pending<()> {
        self.write_shared(move |c| Box::pin(journal_write::finish(c, end, next)))
    }
}

impl Queued for PgStore {
    type Conn = PgConnection;
    fn queue(&self) -> &Queue<PgConnection> {
        &self.queue
    }
}

/// The reader pool with the fencing token of this node's run (0 until the node joins a
/// cluster, [`PgStore::join`]): reads that claim (due contacts) or judge other runs
/// (dangling attempts) need it, the others see a plain pool through `Deref`.
#[derive(Clone)]
pub struct ReadPool {
    pool: PgPool,
    fence: Arc<AtomicI64>,
}

impl ReadPool {
    /// The fence of this node's run; 0 when not clustered.
    fn fence(&self) -> i64 {
        self.fence.load(Ordering::Acquire)
    }
}

impl std::ops::Deref for ReadPool {
    type Target = PgPool;
    fn deref(&self) -> &PgPool {
        &self.pool
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`), runs the
    /// migrations (under the migrator's advisory lock) and starts the writer task. Must be
    /// called inside a tokio runtime.
    pub async fn open(url: &str, o: PgOptions) -> StoreResult<PgStore> {
        let opts = PgConnectOptions::from_str(url)?;
        migrate(&opts).await?;
        let conn = PgConnection::connect_with(&opts).await?;
        let read = PgPoolOptions::new()
            .max_connections(o.readers.max(1))
            .connect_with(opts.clone())
            .await?;
        let (queue, rx) = Queue::new();
        let fence = Arc::new(AtomicI64::new(0));
        let w = Writer {
            opts: opts.clone(),
            max: o.max_batch.max(1),
            fence: fence.clone(),
        };
        tokio::spawn(writer(w, conn, rx));
        Ok(PgStore {
            queue,
            read: ReadPool { pool: read, fence },
            beat: Arc::default(),
            opts: Arc::new(opts),
        })
    }
}

/// Applies the pending migrations on a connection of its own, closed afterwards (which
/// also frees the advisory lock should the migrator have stopped on an error).
async fn migrate(opts: &PgConnectOptions) -> StoreResult<()> {
    let mut conn = PgConnection::connect_with(opts).await?;
    let r = migrator().run_direct(&mut conn).await;
    let _ = conn.close().await;
    r.map_err(|e| StoreError::Db(e.into()))
}

/// What the writer task knows besides its connection.
struct Writer {
    opts: PgConnectOptions,
    max: usize,
    /// The node's fence, written into each batch's transaction (`dialer.fence`) for the
    /// journal's claim checks.
    fence: Arc<AtomicI64>,
}

async fn writer(w: Writer, mut conn: PgConnection, mut rx: Ops<PgConnection>) {
    let mut batch = Vec::with_capacity(w.max);
    while next_batch(&mut rx, &mut batch, w.max).await {
        let started = std::time::Instant::now();
        let fence = w.fence.load(Ordering::Acquire);
        match begin_tx(&w.opts, &mut conn, fence).await {
            Ok(tx) => apply_and_commit(tx, &mut batch, started).await,
            Err(e) => fail_all(&mut batch, &e.to_string()),
        }
    }
}

/// Opens the batch's transaction, reconnecting once if the connection is broken (the
/// database restarted since the last batch).
async fn begin_tx<'c>(
    opts: &PgConnectOptions,
    conn: &'c mut PgConnection,
    fence: i64,
) -> Result<sqlx::Transaction<'c, sqlx::Postgres>, sqlx::Error> {
    if let Err(e) = conn.ping().await {
        tracing::warn!(error = %e, "store: writer connection lost; reconnecting");
        *conn = PgConnection::connect_with(opts).await?;
    }
    let mut tx = conn.begin().await?;
    if fence != 0 {
        // Transaction-local: the journal's statements read it through dialer_my_fence().
        sqlx::query("SELECT set_config('dialer.fence', $1, true)")
            .bind(fence.to_string())
            .execute(&mut *tx)
            .await?;
    }
    Ok(tx)
}

/// Whether `url` names a PostgreSQL database (rather than a SQLite file).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A corrupt-record error for a stored word the model does not know.
fn corrupt(what: &str, word: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} {word:?}"))
}
