//! The SQLite implementation of [`Store`]: one file, WAL journaling, one writer thread and a
//! pool of reader threads (see `workers` for why threads, and `schema` for durability).

mod cache;
mod ops;
mod schema;
mod workers;

use std::path::Path;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::{Record, Store, StoreError, Write};
use workers::{ReadJob, ReaderPool, WriterJob};

/// The database file's name inside the directory given to [`SqliteStore::open`].
const DATABASE_FILE: &str = "hangar.db";

/// How [`SqliteStore::open_with`] sets up the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// `false` (the default): `synchronous=NORMAL`. Every acknowledged commit survives the
    /// process being killed (`kill -9`, a crash), but a power loss or OS crash can lose the
    /// last transactions committed before the next WAL checkpoint (the database stays intact).
    /// `true`: `synchronous=FULL`, which fsyncs the WAL on every commit so acknowledged commits
    /// survive power loss too, at the cost of an fsync per (group of) commit(s).
    pub synchronous_full: bool,
    /// Connections serving reads while the writer writes; at most this many reads run at once.
    /// At least 1.
    pub readers: usize,
    /// How long a connection waits for a lock held by another connection or process before
    /// failing with a backend error.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous_full: false,
            // Enough to keep two cores busy with reads while others wait on I/O or the writer.
            readers: 4,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// The SQLite [`Store`]. Dropping it finishes the queued work and closes the database.
pub struct SqliteStore {
    /// `Option` only so that `drop` can close the channel before joining the threads.
    writer: Option<mpsc::Sender<WriterJob>>,
    /// `None` for an in-memory store, whose reads go to the writer's connection.
    readers: Option<Arc<ReaderPool>>,
    reader_count: usize,
    writer_thread: Option<JoinHandle<()>>,
    /// Dropping the sender stops the checkpoint thread (on-disk stores only).
    checkpointer: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    location: String,
    cache: Arc<cache::RecordCache>,
}

impl SqliteStore {
    /// Opens (creating if needed) `<dir>/hangar.db` (create the directory), WAL mode, schema
    /// migrations via PRAGMA user_version.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, SqliteOptions::default())
    }

    /// [`SqliteStore::open`] with explicit options.
    pub fn open_with(dir: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = dir.join(DATABASE_FILE);
        let location = path.display().to_string();
        let in_context =
            |e: StoreError| StoreError::Backend(format!("opening {location}: {}", message_of(e)));
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!("creating the directory {}: {e}", dir.display()))
        })?;

        let mut writer = Connection::open(&path)
            .map_err(|e| in_context(backend("opening the writer connection", e)))?;
        schema::configure_common(&writer, options.busy_timeout).map_err(in_context)?;
        schema::configure_writer(&writer, options.synchronous_full).map_err(in_context)?;
        schema::migrate(&mut writer).map_err(in_context)?;

        // Readers open after the writer has switched the file to WAL and migrated it, so they
        // never see a half-built schema.
        let mut reader_connections = Vec::with_capacity(options.readers.max(1));
        for _ in 0..options.readers.max(1) {
            let conn = Connection::open(&path)
                .map_err(|e| in_context(backend("opening a reader connection", e)))?;
            schema::configure_common(&conn, options.busy_timeout).map_err(in_context)?;
            schema::configure_reader(&conn).map_err(in_context)?;
            reader_connections.push(conn);
        }

        let checkpoint_conn = Connection::open(&path)
            .map_err(|e| in_context(backend("opening the checkpoint connection", e)))?;
        schema::configure_common(&checkpoint_conn, options.busy_timeout).map_err(in_context)?;

        let mut store = Self::start(writer, location)?;
        let (stop, stopped) = mpsc::channel();
        store.checkpointer = Some((stop, workers::spawn_checkpointer(checkpoint_conn, stopped)?));
        store.reader_count = reader_connections.len();
        store.readers = Some(ReaderPool::new(reader_connections));
        tracing::info!(
            path = %store.location,
            synchronous_full = options.synchronous_full,
            readers = store.reader_count,
            "opened the SQLite store"
        );
        Ok(store)
    }

    /// A private, empty database that lives as long as the store; for unit tests above the store.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let in_context = |e: StoreError| {
            StoreError::Backend(format!("opening an in-memory database: {}", message_of(e)))
        };
        let mut conn = Connection::open_in_memory()
            .map_err(|e| in_context(backend("opening the connection", e)))?;
        schema::configure_common(&conn, SqliteOptions::default().busy_timeout)
            .map_err(in_context)?;
        schema::configure_writer(&conn, false).map_err(in_context)?;
        schema::migrate(&mut conn).map_err(in_context)?;
        // Another connection cannot see this database, so the writer serves the reads too.
        Self::start(conn, ":memory:".into())
    }

    fn start(writer: Connection, location: String) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel();
        let cache = Arc::new(cache::RecordCache::default());
        let thread = workers::spawn_writer(writer, rx, cache.clone())?;
        Ok(SqliteStore {
            cache,
            writer: Some(tx),
            readers: None,
            reader_count: 0,
            writer_thread: Some(thread),
            checkpointer: None,
            location,
        })
    }

    /// Runs `read` on a reader connection (or the writer's, in memory).
    async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if let Some(readers) = &self.readers {
            return readers.run(read).await;
        }
        let (reply, answer) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            // The caller may have stopped waiting; then no one needs the answer.
            let _ = reply.send(read(conn));
        });
        let writer = self.writer.as_ref().ok_or_else(stopped)?;
        writer.send(WriterJob::Read(job)).map_err(|_| stopped())?;
        answer.await.map_err(|_| {
            StoreError::Backend("a storage read was abandoned (the log says why)".into())
        })?
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn get(&self, collection: &str, key: &str) -> Result<Option<Record>, StoreError> {
        if let Some(hit) = self.cache.get(collection, key) {
            return Ok(hit);
        }
        let generation = self.cache.generation();
        let (c, k) = (collection.to_owned(), key.to_owned());
        let found = self.read(move |conn| ops::get(conn, &c, &k)).await?;
        self.cache.fill(collection, key, &found, generation);
        Ok(found)
    }

    async fn get_by_name(
        &self,
        collection: &str,
        name: &str,
    ) -> Result<Option<Record>, StoreError> {
        let (collection, name) = (collection.to_owned(), name.to_owned());
        self.read(move |conn| ops::get_by_name(conn, &collection, &name))
            .await
    }

    async fn list(
        &self,
        collection: &str,
        parent: Option<&str>,
        after_seq: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let (collection, parent) = (collection.to_owned(), parent.map(str::to_owned));
        self.read(move |conn| ops::list(conn, &collection, parent.as_deref(), after_seq, limit))
            .await
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<Vec<Option<Record>>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        let writer = self.writer.as_ref().ok_or_else(stopped)?;
        writer
            .send(WriterJob::Commit { writes, reply })
            .map_err(|_| stopped())?;
        // If this future is dropped now the commit still happens: it is already queued, and
        // a half-applied commit is not possible either way.
        answer.await.map_err(|_| {
            StoreError::Backend("a storage commit was abandoned (the log says why)".into())
        })?
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("location", &self.location)
            .field("readers", &self.reader_count)
            .finish()
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish the commits already queued and exit; joining
        // it closes the writing connection before the store is gone. (A reader connection
        // still checked out by a read whose caller gave up closes when that read ends.)
        if let Some((stop, thread)) = self.checkpointer.take() {
            drop(stop);
            let _ = thread.join();
        }
        self.readers = None;
        self.writer = None;
        if let Some(thread) = self.writer_thread.take() {
            if thread.join().is_err() {
                tracing::error!(location = %self.location, "the storage writer thread panicked");
            }
        }
    }
}

/// Wraps a SQLite error with what the store was doing; the only way rusqlite errors leave this
/// module, so nothing SQLite-specific reaches the trait's users.
fn backend(context: &str, error: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("{context}: {error}"))
}

fn message_of(error: StoreError) -> String {
    match error {
        StoreError::Backend(message) => message,
        other => other.to_string(),
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("the storage threads have stopped".into())
}
