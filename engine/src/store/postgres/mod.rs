//! The PostgreSQL store, for several dialer nodes sharing one database: sqlx's migrator
//! (under a PostgreSQL advisory lock, so nodes starting together migrate once), one
//! writer connection that commits in batches, and a pool of readers.
//!
//! Writes keep the SQLite store's contract: queued in call order on one writer task,
//! which takes every operation already waiting (up to [`PgOptions::max_batch`]), applies
//! them in one transaction and commits once; a caller awaiting [`Store::begin_attempt`]
//! is answered only after that commit. Unlike SQLite, a failed statement aborts a
//! PostgreSQL transaction, so each operation runs inside its own savepoint: one that
//! fails (a name conflict, say) is rolled back alone and the rest of the batch commits.
//! If the writer's connection breaks (a database restart), the next batch reconnects.
//!
//! The SQL lives by concern as in the SQLite store: [`campaigns`], [`journal`],
//! [`contacts`], [`api`]; this file holds the connection, migrations and the writer.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::Connection;
use tokio::sync::{mpsc, oneshot};

use super::*;

/// The control API's own tables: the shared SQL in `store/sql/api.rs`.
mod api {
    use super::db::*;
    include!("../sql/api.rs");
}
/// Campaigns, due contacts and reports: the shared SQL in `store/sql/campaigns.rs`.
mod campaigns {
    use super::db::*;
    include!("../sql/campaigns.rs");
}
mod cluster;
/// Contacts and the street list: the shared SQL in `store/sql/contacts.rs`.
mod contacts {
    use super::db::*;
    include!("../sql/contacts.rs");
}
mod db;
/// DIDs: the shared SQL in `store/sql/dids.rs`.
mod dids {
    use super::db::*;
    include!("../sql/dids.rs");
}
/// The attempt journal: the shared SQL in `store/sql/journal.rs`.
mod journal {
    use super::db::*;
    include!("../sql/journal.rs");
}
/// Registrations, staff PINs and prompt replacements: `store/sql/registrations.rs`.
mod registrations {
    use super::db::*;
    include!("../sql/registrations.rs");
}
mod store_impl;
#[cfg(any(test, feature = "pg-test-cluster"))]
pub mod test_cluster;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cluster;

pub use cluster::{BeatOutcome, NodeJoin, NodeRecord, NodeState, PeerShare, TrunkShareRow};

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

type Reply<T> = oneshot::Sender<StoreResult<T>>;
type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A reply to send once the batch's commit is known.
type Deferred = Box<dyn FnOnce(Option<&str>) + Send>;

/// One queued write: it runs inside the batch's transaction (in a savepoint of its own),
/// and its reply waits for the commit.
trait Write: Send {
    fn apply<'c>(self: Box<Self>, c: &'c mut PgConnection) -> BoxFut<'c, Deferred>;
    fn fail(self: Box<Self>, msg: &str);
}

struct Job<T, F> {
    reply: Reply<T>,
    run: F,
}

impl<T, F> Write for Job<T, F>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFut<'c, StoreResult<T>> + Send + 'static,
{
    fn apply<'c>(self: Box<Self>, c: &'c mut PgConnection) -> BoxFut<'c, Deferred> {
        let Job { reply, run } = *self;
        Box::pin(async move {
            let r = in_savepoint(c, run).await;
            defer(reply, r)
        })
    }

    fn fail(self: Box<Self>, msg: &str) {
        let _ = self
            .reply
            .send(Err(StoreError::Conflict(format!("begin failed: {msg}"))));
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

fn defer<T: Send + 'static>(reply: Reply<T>, r: StoreResult<T>) -> Deferred {
    Box::new(move |commit_err| {
        let r = match (r, commit_err) {
            (Ok(_), Some(e)) => Err(StoreError::Conflict(format!("commit failed: {e}"))),
            (r, _) => r,
        };
        let _ = reply.send(r);
    })
}

/// The PostgreSQL implementation of [`Store`]. Clones share the writer, the readers and
/// the fence of the node's run.
#[derive(Clone)]
pub struct PgStore {
    tx: mpsc::UnboundedSender<Box<dyn Write>>,
    read: ReadPool,
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
        let (tx, rx) = mpsc::unbounded_channel();
        let fence = Arc::new(AtomicI64::new(0));
        let w = Writer {
            opts,
            max: o.max_batch.max(1),
            fence: fence.clone(),
        };
        tokio::spawn(writer(w, conn, rx));
        Ok(PgStore {
            tx,
            read: ReadPool { pool: read, fence },
        })
    }

    /// Queues `run` on the writer now (so that writes keep their call order) and returns
    /// the future of its reply.
    fn write<T, F>(&self, run: F) -> impl Future<Output = StoreResult<T>> + Send + 'static
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFut<'c, StoreResult<T>> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(Box::new(Job { reply, run })).is_ok();
        async move {
            if !sent {
                return Err(StoreError::Closed);
            }
            rx.await.map_err(|_| StoreError::Closed)?
        }
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

async fn writer(
    w: Writer,
    mut conn: PgConnection,
    mut rx: mpsc::UnboundedReceiver<Box<dyn Write>>,
) {
    let mut batch = Vec::with_capacity(w.max);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < w.max {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        commit_batch(&w, &mut conn, &mut batch).await;
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

/// Applies `batch` in one transaction and answers each operation after the commit.
async fn commit_batch(w: &Writer, conn: &mut PgConnection, batch: &mut Vec<Box<dyn Write>>) {
    let n = batch.len();
    let started = std::time::Instant::now();
    let fence = w.fence.load(Ordering::Acquire);
    let mut tx = match begin_tx(&w.opts, conn, fence).await {
        Ok(tx) => tx,
        Err(e) => {
            let msg = e.to_string();
            batch.drain(..).for_each(|op| op.fail(&msg));
            return;
        }
    };
    let mut replies: Vec<Deferred> = Vec::with_capacity(n);
    for op in batch.drain(..) {
        replies.push(op.apply(&mut tx).await);
    }
    let err = tx.commit().await.err().map(|e| e.to_string());
    if let Some(e) = &err {
        tracing::error!(error = %e, "store: batch commit failed");
    }
    metrics::histogram!(crate::metrics::STORE_BATCH_SIZE).record(n as f64);
    metrics::histogram!(crate::metrics::STORE_COMMIT).record(started.elapsed());
    for r in replies {
        r(err.as_deref());
    }
}

/// Whether `url` names a PostgreSQL database (rather than a SQLite file).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A corrupt-record error for a stored word the model does not know.
fn corrupt(what: &str, word: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} {word:?}"))
}
