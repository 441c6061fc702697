//! The batched writer both stores share: writes are queued in call order on one task,
//! which takes the first waiting operation and every other already queued (up to a
//! maximum), applies them in one transaction and commits once; each caller is answered
//! only after that commit. Thousands of attempt updates a second thus cost a few commits
//! (fsyncs) a second, and a caller awaiting [`super::Store::begin_attempt`] knows its
//! journal entry is durable before the INVITE leaves.
//!
//! A write may also have a synchronous form ([`SyncWrite`]): SQLite's journal writes run on
//! the writer connection's own handle, a run of them in a batch under one lock of it, instead
//! of a hand-off to sqlx's worker thread and back for every statement.
//!
//! What differs per backend is how one operation runs inside the batch ([`RunOne`]:
//! PostgreSQL puts each in a savepoint, since a failed statement aborts its transaction,
//! except the journal's all-or-nothing writes, [`Isolation::Shared`])
//! and how the batch's transaction is opened (reconnecting, setting the node's fence):
//! each backend's writer task opens it and hands it to [`apply_and_commit`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};

use super::{StoreError, StoreResult};

type Reply<T> = oneshot::Sender<StoreResult<T>>;

/// A boxed future borrowing the connection for `'a`.
pub(crate) type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A reply to send once the batch's commit is known.
pub(crate) type Deferred = Box<dyn FnOnce(Option<&str>) + Send>;

/// An operation that ran: its reply, and the database error that aborted the batch's
/// transaction if it did (an [`Isolation::Shared`] operation's).
pub(crate) struct Applied {
    reply: Deferred,
    aborted: Option<String>,
}

/// How an operation is kept apart from the others of its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isolation {
    /// In a savepoint of its own where the backend needs one (PostgreSQL): its failure,
    /// a name conflict say, is rolled back alone and the rest of the batch commits.
    Own,
    /// Straight in the batch's transaction, without the savepoint's two round trips: for
    /// writes that do all or nothing (a guarded statement; a first statement whose empty
    /// result ends the operation before it writes). A database error in one aborts the
    /// whole batch, whose operations are all answered with it, as after a failed commit.
    Shared,
}

/// How one queued operation runs on a backend's connection inside the batch.
pub(crate) trait RunOne: Send + 'static {
    /// The handle synchronous writes run on (SQLite: a rusqlite view of the connection);
    /// a backend without them names a type no write is ever queued for.
    type Sync: 'static;

    /// Runs `run` on `c`; the backend may wrap it (a savepoint) as `iso` asks.
    fn run_one<'c, T, F>(c: &'c mut Self, iso: Isolation, run: F) -> BoxFut<'c, StoreResult<T>>
    where
        T: Send + 'static,
        F: for<'x> FnOnce(&'x mut Self) -> BoxFut<'x, StoreResult<T>> + Send + 'static;

    /// Runs a run of consecutive synchronous writes in order on the handle of `c`, inside
    /// the batch's transaction; stops at the first that aborts it, failing the rest.
    fn run_sync(c: &mut Self, ops: Vec<Box<dyn SyncWrite<Self::Sync>>>) -> BoxFut<'_, SyncRun>;
}

/// What a run of synchronous writes did: the replies of those that ran, and the error
/// that aborted the batch's transaction if one did.
pub(crate) struct SyncRun {
    pub(crate) applied: Vec<Applied>,
    pub(crate) aborted: Option<String>,
}

impl SyncRun {
    /// The run could not start (the handle could not be had): every write is failed and
    /// the batch aborted with `msg`.
    pub(crate) fn refused<H>(ops: Vec<Box<dyn SyncWrite<H>>>, msg: String) -> SyncRun {
        ops.into_iter().for_each(|op| op.fail(&msg));
        SyncRun {
            applied: Vec::new(),
            aborted: Some(msg),
        }
    }

    /// Runs `ops` in order on `h`, stopping at the first that aborts.
    pub(crate) fn run<H>(ops: Vec<Box<dyn SyncWrite<H>>>, h: &mut H) -> SyncRun {
        let mut applied = Vec::with_capacity(ops.len());
        let mut aborted: Option<String> = None;
        for op in ops {
            match &aborted {
                Some(e) => op.fail(&format!("batch aborted: {e}")),
                None => {
                    let mut a = op.apply(h);
                    aborted = a.aborted.take();
                    applied.push(a);
                }
            }
        }
        SyncRun { applied, aborted }
    }
}

/// A write with a synchronous form, run on a backend's handle `H` without awaiting; it is
/// all-or-nothing ([`Isolation::Shared`]): a database error aborts its batch.
pub(crate) trait SyncWrite<H>: Send {
    /// Runs the operation; the returned reply is sent once the commit is known.
    fn apply(self: Box<Self>, h: &mut H) -> Applied;
    /// The operation will not run: answers the caller with the reason.
    fn fail(self: Box<Self>, msg: &str);
}

struct SyncJob<T, F> {
    reply: Reply<T>,
    run: F,
}

impl<H, T, F> SyncWrite<H> for SyncJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut H) -> StoreResult<T> + Send,
{
    fn apply(self: Box<Self>, h: &mut H) -> Applied {
        let SyncJob { reply, run } = *self;
        let r = run(h);
        let aborted = match &r {
            Err(e @ (StoreError::Db(_) | StoreError::Sqlite(_))) => Some(e.to_string()),
            _ => None,
        };
        Applied {
            reply: defer(reply, r),
            aborted,
        }
    }

    fn fail(self: Box<Self>, msg: &str) {
        let _ = self.reply.send(Err(StoreError::Conflict(msg.to_string())));
    }
}

/// One queued operation: awaited on the connection, or synchronous on its handle.
pub(crate) enum Op<C: RunOne> {
    Async(Box<dyn Write<C>>),
    Sync(Box<dyn SyncWrite<C::Sync>>),
}

impl<C: RunOne> Op<C> {
    fn fail(self, msg: &str) {
        match self {
            Op::Async(op) => op.fail(msg),
            Op::Sync(op) => op.fail(msg),
        }
    }
}

/// One queued write: it runs inside the batch's transaction, and its reply waits for the
/// commit.
pub(crate) trait Write<C>: Send {
    /// Runs the operation; the returned reply is sent once the commit is known.
    fn apply<'c>(self: Box<Self>, c: &'c mut C) -> BoxFut<'c, Applied>;
    /// The operation will not run (the batch could not start, or was aborted): answers
    /// the caller with the reason.
    fn fail(self: Box<Self>, msg: &str);
}

struct Job<T, F> {
    reply: Reply<T>,
    iso: Isolation,
    run: F,
}

impl<C, T, F> Write<C> for Job<T, F>
where
    C: RunOne,
    T: Send + 'static,
    F: for<'x> FnOnce(&'x mut C) -> BoxFut<'x, StoreResult<T>> + Send + 'static,
{
    fn apply<'c>(self: Box<Self>, c: &'c mut C) -> BoxFut<'c, Applied> {
        let Job { reply, iso, run } = *self;
        Box::pin(async move {
            let r = C::run_one(c, iso, run).await;
            let aborted = match (&r, iso) {
                (Err(StoreError::Db(e)), Isolation::Shared) => Some(e.to_string()),
                _ => None,
            };
            Applied {
                reply: defer(reply, r),
                aborted,
            }
        })
    }

    fn fail(self: Box<Self>, msg: &str) {
        let _ = self.reply.send(Err(StoreError::Conflict(msg.to_string())));
    }
}

/// The reply of an operation that ran: its own result unless the commit failed.
fn defer<T: Send + 'static>(reply: Reply<T>, r: StoreResult<T>) -> Deferred {
    Box::new(move |commit_err| {
        let r = match (r, commit_err) {
            (Ok(_), Some(e)) => Err(StoreError::Conflict(format!("commit failed: {e}"))),
            (r, _) => r,
        };
        let _ = reply.send(r);
    })
}

/// The sending side of a store's writer: clones share the writer task.
pub(crate) struct Queue<C: RunOne> {
    tx: mpsc::UnboundedSender<Op<C>>,
}

impl<C: RunOne> Clone for Queue<C> {
    fn clone(&self) -> Self {
        Queue {
            tx: self.tx.clone(),
        }
    }
}

/// The writer task's side of a [`Queue`].
pub(crate) type Ops<C> = mpsc::UnboundedReceiver<Op<C>>;

impl<C: RunOne> Queue<C> {
    /// A queue and the receiver its writer task drains.
    pub(crate) fn new() -> (Queue<C>, Ops<C>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Queue { tx }, rx)
    }

    /// Queues `run` on the writer now (so that writes keep their call order) and returns
    /// the future of its reply.
    pub(crate) fn write<T, F>(&self, iso: Isolation, run: F) -> Pending<T>
    where
        T: Send + 'static,
        F: for<'x> FnOnce(&'x mut C) -> BoxFut<'x, StoreResult<T>> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(Op::Async(Box::new(Job { reply, iso, run })));
        Pending {
            rx: sent.is_ok().then_some(rx),
        }
    }

    /// Queues `run`, a write with a synchronous form ([`SyncWrite`]), on the writer now and
    /// returns the future of its reply.
    pub(crate) fn write_sync<T, F>(&self, run: F) -> Pending<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut C::Sync) -> StoreResult<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(Op::Sync(Box::new(SyncJob { reply, run })));
        Pending {
            rx: sent.is_ok().then_some(rx),
        }
    }
}

/// The reply of a queued write, after its batch's commit; [`StoreError::Closed`] if the
/// writer is gone. It borrows nothing: callers may hold it past the store.
pub(crate) struct Pending<T> {
    rx: Option<oneshot::Receiver<StoreResult<T>>>,
}

impl<T> Future for Pending<T> {
    type Output = StoreResult<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<StoreResult<T>> {
        match self.rx.as_mut() {
            None => Poll::Ready(Err(StoreError::Closed)),
            Some(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(StoreError::Closed))),
        }
    }
}

/// A store with a writer: `write` queues an operation on it (the stores' wiring calls
/// `self.write(..)`).
pub(crate) trait Queued {
    /// The backend's connection the operations run on.
    type Conn: RunOne;

    /// The store's queue.
    fn queue(&self) -> &Queue<Self::Conn>;

    /// Queues `run` on the writer now and returns the future of its reply.
    fn write<T, F>(&self, run: F) -> Pending<T>
    where
        T: Send + 'static,
        F: for<'x> FnOnce(&'x mut Self::Conn) -> BoxFut<'x, StoreResult<T>> + Send + 'static,
    {
        self.queue().write(Isolation::Own, run)
    }

    /// Queues an all-or-nothing `run` that needs no savepoint ([`Isolation::Shared`]).
    fn write_shared<T, F>(&self, run: F) -> Pending<T>
    where
        T: Send + 'static,
        F: for<'x> FnOnce(&'x mut Self::Conn) -> BoxFut<'x, StoreResult<T>> + Send + 'static,
    {
        self.queue().write(Isolation::Shared, run)
    }
}

/// Waits for the next operation and takes every other already queued, up to `max`;
/// false once every sender is gone.
pub(crate) async fn next_batch<C: RunOne>(
    rx: &mut Ops<C>,
    batch: &mut Vec<Op<C>>,
    max: usize,
) -> bool {
    let Some(first) = rx.recv().await else {
        return false;
    };
    batch.push(first);
    while batch.len() < max {
        match rx.try_recv() {
            Ok(op) => batch.push(op),
            Err(_) => break,
        }
    }
    true
}

/// Answers every operation of a batch whose transaction could not be opened.
pub(crate) fn fail_all<C: RunOne>(batch: &mut Vec<Op<C>>, msg: &str) {
    let msg = format!("begin failed: {msg}");
    batch.drain(..).for_each(|op| op.fail(&msg));
}

/// Applies `batch` in `tx`, commits once, records the batch's size and commit time, and
/// answers each operation. An operation that aborted the transaction (a database error
/// without a savepoint) rolls the batch back: the operations after it are not run, and
/// every one is answered with the error.
pub(crate) async fn apply_and_commit<DB>(
    mut tx: sqlx::Transaction<'_, DB>,
    batch: &mut Vec<Op<DB::Connection>>,
    started: std::time::Instant,
) where
    DB: sqlx::Database,
    DB::Connection: RunOne,
{
    let n = batch.len();
    let mut replies: Vec<Deferred> = Vec::with_capacity(n);
    let mut aborted: Option<String> = None;
    let mut ops = batch.drain(..).peekable();
    while let Some(op) = ops.next() {
        if let Some(e) = &aborted {
            op.fail(&format!("batch aborted: {e}"));
            continue;
        }
        match op {
            Op::Async(op) => {
                let a = op.apply(&mut *tx).await;
                replies.push(a.reply);
                aborted = a.aborted;
            }
            Op::Sync(first) => {
                let mut run = vec![first];
                while let Some(Op::Sync(_)) = ops.peek() {
                    if let Some(Op::Sync(op)) = ops.next() {
                        run.push(op);
                    }
                }
                let done = DB::Connection::run_sync(&mut *tx, run).await;
                replies.extend(done.applied.into_iter().map(|a| a.reply));
                aborted = done.aborted;
            }
        }
    }
    let err = match aborted {
        // PostgreSQL would answer COMMIT with a rollback and no error.
        Some(e) => {
            let _ = tx.rollback().await;
            Some(format!("batch aborted: {e}"))
        }
        None => tx.commit().await.err().map(|e| e.to_string()),
    };
    if let Some(e) = &err {
        tracing::error!(error = %e, "store: batch commit failed");
    }
    metrics::histogram!(crate::metrics::STORE_BATCH_SIZE).record(n as f64);
    metrics::histogram!(crate::metrics::STORE_COMMIT).record(started.elapsed());
    for r in replies {
        r(err.as_deref());
    }
}
