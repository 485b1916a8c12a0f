//! Where SQLite calls run. They block, so they never run on an async worker thread.
//!
//! Writes: one dedicated thread owns the only writing connection and takes commits from a
//! queue, so writes are serialized without contention inside SQLite and can be group-committed.
//!
//! Reads: a fixed pool of connections, each checked out by a `spawn_blocking` task. In WAL mode
//! the readers see the last committed state and never wait for the writer. (Measured against
//! dedicated reader threads fed by a shared queue, `spawn_blocking` answered a point read
//! faster: tokio's blocking pool wakes exactly one idle thread per task.)

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::cache::{self, Effect, RecordCache};
use super::{backend, ops};
use crate::{Record, StoreError, Write};

/// A read to run on some connection; it sends its own result back.
pub(super) type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

pub(super) type CommitResult = Result<Vec<Option<Record>>, StoreError>;

pub(super) enum WriterJob {
    Commit {
        writes: Vec<Write>,
        reply: oneshot::Sender<CommitResult>,
    },
    /// Only for stores without reader connections (in memory), where the writer's connection
    /// is the only one that sees the data.
    Read(ReadJob),
}

/// The most commits folded into one SQLite transaction. Bounded so that a flood of writers
/// cannot delay the first commit of a group indefinitely.
const MAX_GROUP: usize = 128;

pub(super) fn spawn_writer(
    conn: Connection,
    jobs: mpsc::Receiver<WriterJob>,
    cache: Arc<RecordCache>,
) -> Result<JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name("hangar-store-writer".into())
        .spawn(move || writer_loop(conn, jobs, &cache))
        .map_err(|e| StoreError::Backend(format!("starting the storage writer thread: {e}")))
}

/// How often the checkpointer copies the WAL back into the database file.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Runs passive checkpoints on a connection of its own until `stop` is dropped. A passive
/// checkpoint never blocks the writer or readers, so the fsyncs a checkpoint does stay off the
/// commit path (with the writer checkpointing itself, an occasional commit waited tens of ms).
pub(super) fn spawn_checkpointer(
    conn: Connection,
    stop: mpsc::Receiver<()>,
) -> Result<JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name("hangar-store-checkpointer".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_INTERVAL) {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed; the writer's own checkpoints take over");
                }
            }
        })
        .map_err(|e| StoreError::Backend(format!("starting the checkpoint thread: {e}")))
}

/// The reader connections. A semaphore with one permit per connection makes callers queue
/// asynchronously (not on blocking threads) when all connections are busy.
pub(super) struct ReaderPool {
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl ReaderPool {
    pub(super) fn new(connections: Vec<Connection>) -> Arc<Self> {
        Arc::new(ReaderPool {
            permits: Arc::new(Semaphore::new(connections.len())),
            idle: Mutex::new(connections),
        })
    }

    /// Runs `read` on an idle reader connection, on tokio's blocking pool.
    pub(super) async fn run<T, F>(self: &Arc<Self>, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Backend("the reader pool is closed".into()))?;
        let pool = Arc::clone(self);
        // The permit moves into the task, so a caller that stops waiting does not free its
        // connection's permit before the connection is back in the pool.
        let task = tokio::task::spawn_blocking(move || {
            let checkout = Checkout::take(&pool, permit);
            read(checkout.connection())
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => {
                tracing::error!("a storage read panicked; its caller got an error");
                Err(StoreError::Backend("a storage read panicked".into()))
            }
            Err(_) => Err(StoreError::Backend("a storage read was cancelled".into())),
        }
    }
}

/// A connection taken from the pool; back on drop, even when the read panicked (statements are
/// reset when they return to the statement cache, so the connection stays usable).
struct Checkout<'a> {
    pool: &'a ReaderPool,
    conn: Option<Connection>,
    _permit: OwnedSemaphorePermit,
}

impl<'a> Checkout<'a> {
    fn take(pool: &'a ReaderPool, permit: OwnedSemaphorePermit) -> Self {
        let conn = pool
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        Checkout {
            pool,
            // A permit guarantees an idle connection: there are as many permits as connections
            // and each is given back only after its connection is.
            conn: Some(conn.expect("a reader permit without an idle connection")),
            _permit: permit,
        }
    }

    fn connection(&self) -> &Connection {
        self.conn.as_ref().expect("present until drop")
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // `drop` runs before the fields are dropped: the connection is back in the pool
            // before the permit that lets the next reader take it is released.
            self.pool
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        }
    }
}

fn run_read(conn: &Connection, job: ReadJob) {
    // A panic drops the job's reply sender, so its caller gets an error; the connection is
    // untouched by a read and stays usable for the next one.
    if catch_unwind(AssertUnwindSafe(|| job(conn))).is_err() {
        tracing::error!("a storage read panicked; its caller got an error");
    }
}

struct PendingCommit {
    writes: Vec<Write>,
    reply: oneshot::Sender<CommitResult>,
}

fn writer_loop(conn: Connection, jobs: mpsc::Receiver<WriterJob>, cache: &RecordCache) {
    let mut group = Vec::new();
    while let Ok(first) = jobs.recv() {
        // Group commit: whatever commits queued up while the previous group was being written
        // go into one transaction (each in its own savepoint, so they still succeed or fail
        // independently). That saves a transaction per commit under load — and an fsync per
        // commit with synchronous=FULL — while a lone commit is written immediately.
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                // No transaction is open here, so a read sees only committed data.
                WriterJob::Read(read) => run_read(&conn, read),
                WriterJob::Commit { writes, reply } => group.push(PendingCommit { writes, reply }),
            }
            if group.len() < MAX_GROUP {
                next = jobs.try_recv().ok();
            }
        }
        if group.is_empty() {
            continue;
        }
        let pending = std::mem::take(&mut group);
        if catch_unwind(AssertUnwindSafe(|| commit_group(&conn, pending, cache))).is_err() {
            // The unwinding dropped the group's reply senders, so each of its callers got an
            // error. Leave the connection clean for the next group.
            tracing::error!("a storage commit panicked; rolling its group back");
            if !conn.is_autocommit() {
                if let Err(e) = conn.execute_batch("ROLLBACK") {
                    tracing::error!(error = %e, "rolling back after a panicked commit failed");
                }
            }
        }
    }
}

/// Writes a group of commits in one transaction and answers each caller.
fn commit_group(conn: &Connection, group: Vec<PendingCommit>, cache: &RecordCache) {
    // Commits that succeeded inside the open transaction; answered once it is committed.
    let mut applied: Vec<(oneshot::Sender<CommitResult>, Vec<Option<Record>>)> =
        Vec::with_capacity(group.len());
    // What the applied commits did, for the point-read cache, in commit order.
    let mut effects: Vec<Effect> = Vec::new();
    let mut in_transaction = false;
    for PendingCommit { writes, reply } in group {
        if !in_transaction {
            if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
                let _ = reply.send(Err(backend("starting a write transaction", e)));
                continue;
            }
            in_transaction = true;
        }
        if let Err(e) = exec(conn, "SAVEPOINT hangar_commit") {
            let _ = reply.send(Err(backend("starting a savepoint", e)));
            continue;
        }
        let removals = cache::removals(&writes);
        let failure = match ops::apply(conn, writes) {
            Ok(results) => match exec(conn, "RELEASE hangar_commit") {
                Ok(()) => {
                    effects.extend(removals);
                    effects.extend(results.iter().flatten().cloned().map(Effect::Put));
                    applied.push((reply, results));
                    continue;
                }
                Err(e) => backend("releasing a savepoint", e),
            },
            Err(failure) => failure,
        };
        // This commit failed: undo exactly its writes and keep the others of the group.
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back by itself (it does so on I/O errors,
            // a full disk, out of memory): the group's earlier commits are gone too.
            tracing::warn!(error = %failure, "a storage error aborted a group of commits");
            let error = StoreError::Backend(format!(
                "the transaction was rolled back by a storage error: {failure}"
            ));
            fail_all(&mut applied, &error);
            in_transaction = false;
        } else if let Err(e) = exec(conn, "ROLLBACK TO hangar_commit")
            .and_then(|()| exec(conn, "RELEASE hangar_commit"))
        {
            tracing::error!(error = %e, "rolling back a failed commit failed; abandoning its group");
            let error = backend("rolling back a savepoint", e);
            fail_all(&mut applied, &error);
            if let Err(e) = exec(conn, "ROLLBACK") {
                tracing::error!(error = %e, "rolling back the abandoned group failed");
            }
            in_transaction = false;
        }
        let _ = reply.send(Err(failure));
    }
    if !in_transaction {
        return;
    }
    match exec(conn, "COMMIT") {
        Ok(()) => {
            // Before anyone hears of the commit, so no one can read what it replaced.
            cache.apply(effects);
            for (reply, results) in applied {
                // A caller that stopped waiting has no one to tell; its writes stand.
                let _ = reply.send(Ok(results));
            }
        }
        Err(e) => {
            let error = backend("committing", e);
            if !conn.is_autocommit() {
                if let Err(e) = exec(conn, "ROLLBACK") {
                    tracing::error!(error = %e, "rolling back a failed commit failed");
                }
            }
            fail_all(&mut applied, &error);
        }
    }
}

fn fail_all(
    applied: &mut Vec<(oneshot::Sender<CommitResult>, Vec<Option<Record>>)>,
    error: &StoreError,
) {
    for (reply, _) in applied.drain(..) {
        let _ = reply.send(Err(error.clone()));
    }
}

/// Runs a parameterless statement through the statement cache (these run on every commit).
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}
