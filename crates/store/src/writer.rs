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

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{AnyConnection, Connection};
use tokio::sync::{mpsc, oneshot};

use crate::error::StoreError;

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
}

/// A queued write with its waiter, its type erased so that one channel carries every kind.
trait Queued: Send {
    fn apply<'c>(
        &'c mut self,
        conn: &'c mut AnyConnection,
    ) -> Pin<Box<dyn Future<Output = sqlx::Result<()>> + Send + 'c>>;
    /// See [`Write::refused`].
    fn refused(&mut self, error: &sqlx::Error) -> bool;
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
}

#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    writes: AtomicU64,
    reconnects: AtomicU64,
}

/// Opens the write connection, set up for writing; the writer calls it again when the
/// connection is lost (a PostgreSQL restart, say).
pub(crate) type Connect = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = sqlx::Result<AnyConnection>> + Send>> + Send + Sync,
>;

impl Writer {
    /// Starts the writer task on `conn`, committing at most `max_batch` writes at a time.
    pub(crate) fn start(
        conn: AnyConnection,
        connect: Connect,
        max_batch: usize,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let max_batch = max_batch.max(1);
        // Room for a few batches: past that, writers wait, which is the backpressure.
        let (queue, receiver) = mpsc::channel(max_batch * 4);
        let stats = Arc::new(Counters::default());
        let task = tokio::spawn(
            Task {
                conn,
                connect,
                stats: Arc::clone(&stats),
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
        }
    }
}

/// The writer task: the only user of the write connection.
struct Task {
    conn: AnyConnection,
    connect: Connect,
    stats: Arc<Counters>,
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
        let _ = self.conn.close().await;
    }

    async fn commit_batch(&mut self, batch: &mut Vec<Box<dyn Queued>>) {
        if batch.len() > 1 && self.commit(batch).await.is_ok() {
            for queued in batch.drain(..) {
                queued.succeed();
            }
            return;
        }
        // One at a time: a lone write, or the retry of a failed batch.
        for mut queued in batch.drain(..) {
            let write = std::slice::from_mut(&mut queued);
            let mut result = self.commit(write).await;
            if result.is_err() && self.reconnect().await {
                result = self.commit(write).await;
            }
            // Refused by the database itself (not a lost connection): the write's fallback.
            if let Err(error @ sqlx::Error::Database(_)) = &result
                && write[0].refused(error)
            {
                result = self.commit(write).await;
            }
            match result {
                Ok(()) => queued.succeed(),
                Err(error) => queued.fail(error),
            }
        }
    }

    /// Applies `writes` in one transaction and commits it.
    async fn commit(&mut self, writes: &mut [Box<dyn Queued>]) -> sqlx::Result<()> {
        let mut transaction = self.conn.begin().await?;
        for write in writes.iter_mut() {
            if let Err(error) = write.apply(&mut transaction).await {
                let _ = transaction.rollback().await;
                return Err(error);
            }
        }
        transaction.commit().await?;
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.stats
            .writes
            .fetch_add(writes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Opens the write connection again if it no longer answers; true if it did.
    async fn reconnect(&mut self) -> bool {
        if self.conn.ping().await.is_ok() {
            return false;
        }
        match (self.connect)().await {
            Ok(conn) => {
                self.conn = conn;
                self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }
}
