//! The SQLite store: WAL mode, embedded migrations, one writer task that commits in
//! batches, and a small pool of readers.
//!
//! Every write goes through the batched writer of `store::batch` (up to
//! [`SqliteOptions::max_batch`] operations per commit): a caller awaiting
//! [`Store::begin_attempt`] is answered only after its commit, so the journal entry is
//! durable before the INVITE leaves.
//!
//! The SQL lives by concern: [`campaigns`], [`journal`], [`contacts`], [`api`] (the control
//! API's own tables); this file holds the connection, the writer and the trait's wiring.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::Connection;

use super::batch::{
    apply_and_commit, fail_all, next_batch, BoxFut, Isolation, Ops, Pending, Queue, RunOne,
    SyncRun, SyncWrite,
};
use super::wiring::JournalWrites;
use super::*;

mod db;
mod journal_write;
// api, campaigns, contacts, dids, journal, registrations, audit_log, webhooks,
// prefix_limits: the SQL in `store/sql/`.
crate::store::sql::shared_concerns!();
mod store_impl;

/// Migrations, in order; each runs once, recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../../migrations/0001_init.sql")),
    (2, include_str!("../../../migrations/0002_api.sql")),
    (3, include_str!("../../../migrations/0003_numbers.sql")),
    (4, include_str!("../../../migrations/0004_ivr.sql")),
    (5, include_str!("../../../migrations/0005_heard.sql")),
    (6, include_str!("../../../migrations/0006_hooks.sql")),
    (
        7,
        include_str!("../../../migrations/0007_prefix_limits.sql"),
    ),
    (8, include_str!("../../../migrations/0008_claim_index.sql")),
    (9, include_str!("../../../migrations/0009_amd.sql")),
];

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

/// The SQLite implementation of [`Store`]. Clones share the writer and the readers.
#[derive(Clone)]
pub struct SqliteStore {
    queue: Queue<SqliteConnection>,
    read: SqlitePool,
}

/// An operation runs directly in the batch's transaction (a failed statement does not
/// abort a SQLite transaction). Synchronous writes run on a rusqlite view of the same
/// connection, taken from sqlx's worker thread for the run (`lock_handle`).
impl RunOne for SqliteConnection {
    type Sync = rusqlite::Connection;

    fn run_one<'c, T, F>(c: &'c mut Self, _: Isolation, run: F) -> BoxFut<'c, StoreResult<T>>
    where
        T: Send + 'static,
        F: for<'x> FnOnce(&'x mut Self) -> BoxFut<'x, StoreResult<T>> + Send + 'static,
    {
        run(c)
    }

    fn run_sync(c: &mut Self, ops: Vec<Box<dyn SyncWrite<Self::Sync>>>) -> BoxFut<'_, SyncRun> {
        Box::pin(async move {
            let mut locked = match c.lock_handle().await {
                Ok(locked) => locked,
                Err(e) => return SyncRun::refused(ops, e.to_string()),
            };
            // SAFETY: the handle is sqlx's open connection, held away from its worker
            // thread for as long as `locked` lives; the view is dropped first (end of this
            // block, before `locked`) and never closes the handle (`from_handle`).
            let view =
                unsafe { rusqlite::Connection::from_handle(locked.as_raw_handle().as_ptr()) };
            match view {
                Ok(mut view) => SyncRun::run(ops, &mut view),
                Err(e) => SyncRun::refused(ops, e.to_string()),
            }
        })
    }
}

impl JournalWrites for SqliteStore {
    fn journal_begin(&self, a: AttemptStart) -> Pending<i64> {
        self.queue.write_sync(move |c| journal_write::begin(c, &a))
    }

    fn journal_answered(&self, attempt: i64, at_ms: i64) -> Pending<()> {
        self.queue
            .write_sync(move |c| journal_write::answered(c, attempt, at_ms))
    }

    fn journal_close_contact(&self, campaign: i64, contact: i64, outcome: Outcome) -> Pending<()> {
        self.queue
            .write_sync(move |c| journal_write::close_contact(c, campaign, contact, outcome))
    }

    fn journal_finish(&self, end: AttemptEnd, next: ContactNext) -> Pending<()> {
        self.queue
            .write_sync(move |c| journal_write::finish(c, &end, next))
    }
}

impl Queued for SqliteStore {
    type Conn = SqliteConnection;
    fn queue(&self) -> &Queue<SqliteConnection> {
        &self.queue
    }
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
        // The WAL is copied back by `checkpointer`, not by the committing writer.
        .pragma("wal_autocheckpoint", "0")
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, runs migrations and starts the
    /// writer task. Must be called inside a tokio runtime.
    pub async fn open(path: &Path, o: SqliteOptions) -> StoreResult<SqliteStore> {
        let conn = open_migrated(path, &o).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(o.readers.max(1))
            .connect_with(
                opts(path, &o)
                    .read_only(true)
                    .pragma("cache_size", READER_CACHE),
            )
            .await?;
        let checkpoints = SqliteConnection::connect_with(&opts(path, &o)).await?;
        let (queue, rx) = Queue::new();
        let (alive, writer_gone) = tokio::sync::watch::channel(());
        tokio::spawn(writer(conn, rx, o.max_batch.max(1), alive));
        tokio::spawn(checkpointer(checkpoints, writer_gone));
        Ok(SqliteStore { queue, read })
    }
}

/// Connects the writer and migrates. Several processes opening a new database at once race
/// to switch it to WAL, and SQLite answers the loser SQLITE_BUSY at once, without waiting
/// for the busy timeout: such an open is tried again, a bounded number of times.
async fn open_migrated(path: &Path, o: &SqliteOptions) -> StoreResult<SqliteConnection> {
    const TRIES: u32 = 50;
    let mut tries = 0;
    loop {
        let r = async {
            let mut conn = SqliteConnection::connect_with(&opts(path, o)).await?;
            migrate(&mut conn).await?;
            Ok::<_, StoreError>(conn)
        }
        .await;
        match r {
            Err(StoreError::Db(e)) if is_busy(&e) && tries < TRIES => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            r => return r,
        }
    }
}

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6).
fn is_busy(e: &sqlx::Error) -> bool {
    let code = e.as_database_error().and_then(|d| d.code());
    matches!(code.as_deref(), Some("5") | Some("6"))
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

/// Commits the queued writes in batches until every handle of the store is gone; `_alive`
/// tells the checkpointer when that is.
async fn writer(
    mut conn: SqliteConnection,
    mut rx: Ops<SqliteConnection>,
    max: usize,
    _alive: tokio::sync::watch::Sender<()>,
) {
    let mut batch = Vec::with_capacity(max);
    while next_batch(&mut rx, &mut batch, max).await {
        let started = std::time::Instant::now();
        match conn.begin().await {
            Ok(tx) => apply_and_commit(tx, &mut batch, started).await,
            Err(e) => fail_all(&mut batch, &e.to_string()),
        }
    }
}

/// Page cache of each reader connection, KiB (as SQLite's negative `cache_size`). Readers
/// run the API's scans, whose pages the kernel's page cache holds anyway; at SQLite's
/// default (2 MiB each) four readers filled 8 MiB more of the server's resident memory
/// over the first half of a 100,000-contact campaign as their scans reached new pages,
/// which read as growth with the campaign. The writer keeps the default: its index
/// updates are what a cache saves.
const READER_CACHE: &str = "-512";

/// How often the WAL is copied back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Copies the WAL back into the database on a connection of its own, every
/// [`CHECKPOINT_EVERY`], until the writer is gone (closing the last connection then
/// checkpoints what is left). SQLite's automatic checkpoint runs inside the commit that
/// crosses 1,000 pages, so the journal writer — whose commits every INVITE waits for —
/// stalled for the whole copy and its fsync; after a long read (a campaign's counts over
/// 200,000 contacts) had held the WAL back, that copy was several megabytes. A PASSIVE
/// checkpoint here never waits for the writer or the readers: it copies what no reader
/// still needs, and the writer starts the WAL over once all of it is copied.
async fn checkpointer(
    mut conn: SqliteConnection,
    mut writer_gone: tokio::sync::watch::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = writer_gone.changed() => return,
            _ = tokio::time::sleep(CHECKPOINT_EVERY) => {}
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut conn)
            .await
        {
            tracing::warn!(error = %e, "store: WAL checkpoint failed");
        }
    }
}

/// Wall clock, Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A corrupt-record error for a stored word the model does not know.
fn corrupt(what: &str, word: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} {word:?}"))
}
