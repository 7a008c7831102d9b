//! Group commit: one task owns the write connection; writes queue to it over a channel, and it
//! commits whatever has queued up in one transaction, then answers every waiter.
//!
//! Why: a durable commit costs an fsync (SQLite WAL with `synchronous=FULL`) or a WAL flush
//! (PostgreSQL). One per report is several times slower than one per batch, which lets 64
//! concurrent writers share each flush, and a disk with a slow flush widens the gap: `cargo
//! bench -p mta-sts-store` measures both on this machine's disk (`PG_TEST_COMMAND='cargo bench
//! -p mta-sts-store' bash scripts/pg-test.sh` on PostgreSQL too). Nobody is answered
//! before the commit that holds their write has returned, so an acknowledged write is on disk.
//!
//! A batch that fails is rolled back and its writes are retried one transaction each, so that
//! one bad write (say, a constraint violation) fails alone; a write that fails because the
//! connection is gone (a PostgreSQL restart) is retried once on a new connection. Every write is
//! idempotent (raw bodies are unique by SHA-256, reports by identity, quarantine by raw body),
//! so retrying after a commit of uncertain outcome stores nothing twice.
//!
//! A database that stops answering without closing the socket (a paused or overloaded
//! PostgreSQL, a dead network path) must not hang the writer: every transaction and every
//! connection attempt has a time limit ([`StoreOptions::write_timeout`](crate::StoreOptions)).
//! Past it the connection, whose state is then unknown, is dropped and the batch's waiters get
//! an error; until a new connection opens, writes fail at once (a connection is tried again at
//! most once per [`RETRY_DELAY`]), so callers answer "try later" instead of queueing. Writes
//! whose waiter has gone (its client hung up or timed out) are dropped unapplied: nobody was
//! told they were stored, and they would only hold memory.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::{AnyConnection, Connection};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::error::StoreError;
use crate::model::Ingested;
use crate::writes::StoreIngest;

/// A write the writer task can apply inside its transaction.
pub(crate) trait Write: Send + 'static {
    /// What the waiter gets once the transaction holding the write has committed.
    type Output: Send + 'static;

    /// Applies the write on `conn`, which is inside a transaction. Must be idempotent: after a
    /// failed batch it is applied again, alone.
    fn apply<'c>(
        &'c self,
        conn: &'c mut AnyConnection,
    ) -> impl Future<Output = sqlx::Result<Self::Output>> + Send + 'c;

    /// The database refused the write alone, on a working connection, with `error` (a value
    /// it cannot hold, say): switches to a fallback that keeps what must be kept and returns
    /// true, or returns false when there is none.
    fn refused(&mut self, error: &sqlx::Error) -> bool {
        let _ = error;
        false
    }

    /// What the store was doing, for errors.
    fn operation(&self) -> &'static str;

    /// A report ingest that can be stored together with the others of its batch, in
    /// multi-row statements ([`bulk`](crate::bulk)); `None` for any other write.
    fn batchable(&self) -> Option<&StoreIngest> {
        None
    }

    /// The output for what the multi-row path did with [`Write::batchable`]'s ingest.
    fn batched_output(&self, ingested: Ingested) -> Option<Self::Output> {
        let _ = ingested;
        None
    }
}

/// A queued write with its waiter, its type erased so that one channel carries every kind.
trait Queued: Send {
    fn apply<'c>(
        &'c mut self,
        conn: &'c mut AnyConnection,
    ) -> Pin<Box<dyn Future<Output = sqlx::Result<()>> + Send + 'c>>;
    /// See [`Write::refused`].
    fn refused(&mut self, error: &sqlx::Error) -> bool;
    /// See [`Write::batchable`].
    fn batchable(&self) -> Option<&StoreIngest>;
    /// Takes the outcome of the multi-row path as this write's output; false when the write
    /// has no use for it (then it is applied on its own).
    fn batched(&mut self, ingested: Ingested) -> bool;
    /// True when nobody waits for the answer any more.
    fn abandoned(&self) -> bool;
    /// Answers the waiter with the output of the last successful `apply`.
    fn succeed(self: Box<Self>);
    fn fail(self: Box<Self>, source: sqlx::Error);
}

struct Envelope<W: Write> {
    write: W,
    output: Option<W::Output>,
    reply: oneshot::Sender<Result<W::Output, StoreError>>,
}

impl<W: Write> Queued for Envelope<W> {
    fn apply<'c>(
        &'c mut self,
        conn: &'c mut AnyConnection,
    ) -> Pin<Box<dyn Future<Output = sqlx::Result<()>> + Send + 'c>> {
        Box::pin(async move {
            self.output = Some(self.write.apply(conn).await?);
            Ok(())
        })
    }

    fn refused(&mut self, error: &sqlx::Error) -> bool {
        self.write.refused(error)
    }

    fn batchable(&self) -> Option<&StoreIngest> {
        self.write.batchable()
    }

    fn batched(&mut self, ingested: Ingested) -> bool {
        self.output = self.write.batched_output(ingested);
        self.output.is_some()
    }

    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn succeed(self: Box<Self>) {
        let answer = match self.output {
            Some(output) => Ok(output),
            None => Err(StoreError::WriterStopped),
        };
        // A waiter that gave up (its client went away) is not an error: the write is committed.
        let _ = self.reply.send(answer);
    }

    fn fail(self: Box<Self>, source: sqlx::Error) {
        let _ = self.reply.send(Err(StoreError::Database {
            operation: self.write.operation(),
            source,
        }));
    }
}

/// The sending side of the writer task's queue.
pub(crate) struct Writer {
    queue: mpsc::Sender<Box<dyn Queued>>,
    stats: Arc<Counters>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// What the writer has done since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed.
    pub commits: u64,
    /// Writes committed (one per `ingest…` or `quarantine` call that succeeded); divided by
    /// `commits`, the average group size.
    pub writes: u64,
    /// Times the write connection was lost and opened again.
    pub reconnects: u64,
    /// Transactions or connection attempts given up after the write timeout.
    pub timeouts: u64,
}

#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    writes: AtomicU64,
    reconnects: AtomicU64,
    timeouts: AtomicU64,
}

/// After a failed connection attempt, writes fail at once for this long before the next one.
pub(crate) const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Opens the write connection, set up for writing; the writer calls it again when the
/// connection is lost (a PostgreSQL restart, say).
pub(crate) type Connect = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = sqlx::Result<AnyConnection>> + Send>> + Send + Sync,
>;

impl Writer {
    /// Starts the writer task on `conn`, committing at most `max_batch` writes at a time, each
    /// transaction and connection attempt given at most `timeout`.
    pub(crate) fn start(
        conn: AnyConnection,
        connect: Connect,
        max_batch: usize,
        timeout: Duration,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let max_batch = max_batch.max(1);
        // Room for a few batches: past that, writers wait, which is the backpressure.
        let (queue, receiver) = mpsc::channel(max_batch * 4);
        let stats = Arc::new(Counters::default());
        let task = tokio::spawn(
            Task {
                conn: Some(conn),
                connect,
                stats: Arc::clone(&stats),
                timeout,
                down_until: None,
            }
            .run(receiver, max_batch),
        );
        (Self { queue, stats }, task)
    }

    /// Queues `write` and waits until the transaction holding it has committed.
    pub(crate) async fn submit<W: Write>(&self, write: W) -> Result<W::Output, StoreError> {
        let (reply, answer) = oneshot::channel();
        let envelope: Box<dyn Queued> = Box::new(Envelope {
            write,
            output: None,
            reply,
        });
        self.queue
            .send(envelope)
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            commits: self.stats.commits.load(Ordering::Relaxed),
            writes: self.stats.writes.load(Ordering::Relaxed),
            reconnects: self.stats.reconnects.load(Ordering::Relaxed),
            timeouts: self.stats.timeouts.load(Ordering::Relaxed),
        }
    }
}

/// The writer task: the only user of the write connection.
struct Task {
    /// `None` once the connection was given up (it timed out, or it was lost and could not be
    /// opened again).
    conn: Option<AnyConnection>,
    connect: Connect,
    stats: Arc<Counters>,
    /// The longest a transaction or a connection attempt may take.
    timeout: Duration,
    /// After a failed connection attempt: writes fail at once until then.
    down_until: Option<Instant>,
}

/// What a failed transaction says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The database refused or failed a statement; the connection works.
    Statement,
    /// The connection timed out, is gone, or could not be opened: nothing more can be done on
    /// it now.
    Connection,
}

impl Task {
    async fn run(mut self, mut queue: mpsc::Receiver<Box<dyn Queued>>, max_batch: usize) {
        let mut batch = Vec::with_capacity(max_batch);
        // `recv_many` waits for one write, then takes whatever else has queued meanwhile: under
        // load the batch is what arrived during the previous commit; when idle, a lone write
        // commits at once.
        while queue.recv_many(&mut batch, max_batch).await > 0 {
            self.commit_batch(&mut batch).await;
        }
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }

    async fn commit_batch(&mut self, batch: &mut Vec<Box<dyn Queued>>) {
        // Nobody waits for these: their callers were answered with an error (or hung up).
        batch.retain(|queued| !queued.abandoned());
        if batch.is_empty() {
            return;
        }
        if !self.connected().await {
            return self.fail_all(batch);
        }
        if batch.len() > 1 {
            let mut result = self.commit(batch).await;
            // A failed statement can be a lost connection too (PostgreSQL restarting says so
            // as a database error): `reconnect` checks.
            if result.is_err() && self.reconnect().await {
                result = self.commit(batch).await;
            }
            match result {
                Ok(()) => {
                    for queued in batch.drain(..) {
                        queued.succeed();
                    }
                    return;
                }
                Err((_, Failure::Connection)) => return self.fail_all(batch),
                // A statement failed: find which, one write at a time.
                Err((_, Failure::Statement)) => {}
            }
        }
        // One at a time: a lone write, or the retry of a failed batch.
        for mut queued in batch.drain(..) {
            if !self.connected().await {
                queued.fail(unavailable("the database cannot be reached"));
                continue;
            }
            let write = std::slice::from_mut(&mut queued);
            let mut result = self.commit(write).await;
            if result.is_err() && self.reconnect().await {
                result = self.commit(write).await;
            }
            // Refused by the database itself, on a connection that works: the write's fallback.
            if let Err((error @ sqlx::Error::Database(_), Failure::Statement)) = &result
                && self.conn.is_some()
                && write[0].refused(error)
            {
                result = self.commit(write).await;
            }
            match result {
                Ok(()) => queued.succeed(),
                Err((error, _)) => queued.fail(error),
            }
        }
    }

    /// Answers every write of `batch` with "the database cannot be reached".
    fn fail_all(&mut self, batch: &mut Vec<Box<dyn Queued>>) {
        for queued in batch.drain(..) {
            queued.fail(unavailable("the database cannot be reached"));
        }
    }

    /// Applies `writes` in one transaction and commits it, within the write timeout. A
    /// transaction that times out leaves the connection in an unknown state: it is dropped
    /// (PostgreSQL rolls back what it had not committed when it sees the socket close).
    async fn commit(
        &mut self,
        writes: &mut [Box<dyn Queued>],
    ) -> Result<(), (sqlx::Error, Failure)> {
        let Some(conn) = self.conn.as_mut() else {
            return Err((
                unavailable("the database cannot be reached"),
                Failure::Connection,
            ));
        };
        match tokio::time::timeout(self.timeout, apply_all(conn, writes)).await {
            Ok(Ok(())) => {
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .writes
                    .fetch_add(writes.len() as u64, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(error)) => {
                let failure = if is_connection_error(&error) {
                    Failure::Connection
                } else {
                    Failure::Statement
                };
                Err((error, failure))
            }
            Err(_) => {
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                self.conn = None;
                Err((
                    unavailable(&format!(
                        "the database did not answer within {} s",
                        self.timeout.as_secs_f64()
                    )),
                    Failure::Connection,
                ))
            }
        }
    }

    /// Makes sure there is a connection: opens one when there is none, unless an attempt
    /// failed less than [`RETRY_DELAY`] ago. False when there is none.
    async fn connected(&mut self) -> bool {
        if self.conn.is_some() {
            return true;
        }
        if self.down_until.is_some_and(|until| Instant::now() < until) {
            return false;
        }
        match tokio::time::timeout(self.timeout, (self.connect)()).await {
            Ok(Ok(conn)) => {
                self.conn = Some(conn);
                self.down_until = None;
                self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                true
            }
            Ok(Err(_)) => {
                self.down_until = Some(Instant::now() + RETRY_DELAY);
                false
            }
            Err(_) => {
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                self.down_until = Some(Instant::now() + RETRY_DELAY);
                false
            }
        }
    }

    /// After a failure: opens the write connection again if it no longer answers; true if a
    /// new one is open (false when the old one answers, or none could be opened).
    async fn reconnect(&mut self) -> bool {
        if let Some(conn) = self.conn.as_mut() {
            if matches!(
                tokio::time::timeout(self.timeout, conn.ping()).await,
                Ok(Ok(()))
            ) {
                return false;
            }
            self.conn = None;
        }
        // Straight away: the connection was lost now, not refused a moment ago.
        self.down_until = None;
        self.connected().await
    }
}

/// Begins a transaction on `conn`, applies `writes` and commits. The report ingests among
/// them go first, together, in multi-row statements; what that path leaves (and every other
/// write) is applied on its own.
async fn apply_all(conn: &mut AnyConnection, writes: &mut [Box<dyn Queued>]) -> sqlx::Result<()> {
    let mut transaction = conn.begin().await?;
    let result = apply_in(&mut transaction, writes).await;
    if result.is_err() {
        let _ = transaction.rollback().await;
        return result;
    }
    transaction.commit().await
}

async fn apply_in(conn: &mut AnyConnection, writes: &mut [Box<dyn Queued>]) -> sqlx::Result<()> {
    let mut done = vec![false; writes.len()];
    let batchable: Vec<usize> = (0..writes.len())
        .filter(|&i| writes[i].batchable().is_some())
        .collect();
    if batchable.len() > 1 {
        let ingests: Vec<&StoreIngest> = batchable
            .iter()
            .filter_map(|&i| writes[i].batchable())
            .collect();
        let outcomes = crate::bulk::insert_ingests(conn, &ingests).await?;
        for (&i, outcome) in batchable.iter().zip(outcomes) {
            if let Some(ingested) = outcome {
                done[i] = writes[i].batched(ingested);
            }
        }
    }
    for (write, done) in writes.iter_mut().zip(done) {
        if !done {
            write.apply(conn).await?;
        }
    }
    Ok(())
}

/// Errors that mean the connection (not the statement) failed.
fn is_connection_error(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}

/// The error a write gets when the database cannot take it now.
fn unavailable(message: &str) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        message.to_owned(),
    ))
}
