//! Connection settings and schema migrations.
//!
//! The schema is deliberately plain so it ports to PostgreSQL as is: one table of records,
//! ordinary and partial unique indexes, and a counter row for `seq` that the write transaction
//! bumps itself (no AUTOINCREMENT, no rowid tricks the store relies on).

use std::time::Duration;

use rusqlite::Connection;

use super::backend;
use crate::StoreError;

/// Migrations, applied in order; migration `i` brings `PRAGMA user_version` from `i` to `i + 1`.
/// Never edit a shipped migration: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: records and the seq counter.
    "CREATE TABLE records (
        -- Assigned from counters('seq') by the write transaction; the primary key so that rows
        -- are stored in seq order and listings read them sequentially.
        seq        INTEGER NOT NULL PRIMARY KEY,
        collection TEXT    NOT NULL,
        key        TEXT    NOT NULL,
        parent     TEXT,
        name       TEXT,
        revision   INTEGER NOT NULL,
        doc        TEXT    NOT NULL
    );
    CREATE UNIQUE INDEX records_key ON records (collection, key);
    CREATE UNIQUE INDEX records_name ON records (collection, name) WHERE name IS NOT NULL;
    CREATE INDEX records_parent_seq ON records (collection, parent, seq);
    CREATE INDEX records_collection_seq ON records (collection, seq);
    CREATE TABLE counters (
        name  TEXT    NOT NULL PRIMARY KEY,
        value INTEGER NOT NULL
    );
    INSERT INTO counters (name, value) VALUES ('seq', 0);",
];

/// Settings every connection gets.
pub(super) fn configure_common(
    conn: &Connection,
    busy_timeout: Duration,
) -> Result<(), StoreError> {
    // Readers only wait here while a checkpoint or WAL recovery holds a lock; the writer waits
    // if some other process (a backup, the sqlite3 shell) holds the write lock.
    conn.busy_timeout(busy_timeout)
        .map_err(|e| backend("setting busy_timeout", e))?;
    // The domain keeps its own references consistent inside one commit; foreign keys would only
    // cost lookups and make the schema harder to port.
    conn.pragma_update(None, "foreign_keys", false)
        .map_err(|e| backend("disabling foreign keys", e))?;
    // 16 MiB of page cache per connection keeps a control plane's working set in memory.
    conn.pragma_update(None, "cache_size", -16_384)
        .map_err(|e| backend("setting cache_size", e))?;
    // Sorting for listings needs scratch space: keep it in memory rather than creating and
    // deleting temporary files per query.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(|e| backend("setting temp_store", e))?;
    // Our handful of statements are re-run constantly: keep them all prepared.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Settings for the one connection that writes.
pub(super) fn configure_writer(
    conn: &Connection,
    synchronous_full: bool,
) -> Result<(), StoreError> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|e| backend("enabling WAL", e))?;
    // An in-memory database answers "memory"; it has no WAL and needs none.
    if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
        return Err(StoreError::Backend(format!(
            "could not enable WAL journaling (the database reports journal_mode={mode})"
        )));
    }
    // In WAL mode, NORMAL writes every committed transaction to the WAL file before COMMIT
    // returns but only fsyncs at checkpoints. The data is then in the OS page cache, so it
    // survives the process being killed (kill -9, panic, OOM kill) — which is the durability
    // Store::commit promises. A power loss or kernel crash can lose the last transactions
    // before the next checkpoint (never corrupt the database); FULL fsyncs the WAL on every
    // commit to survive that too, at the price of one fsync per commit (group commit in the
    // writer amortises it across concurrent commits).
    let synchronous = if synchronous_full { "FULL" } else { "NORMAL" };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(|e| backend("setting synchronous", e))?;
    // Checkpoints run on their own thread (see `workers::spawn_checkpointer`) so that commits
    // never wait for one; the writer checkpoints itself only as a backstop if that thread
    // falls far behind (10,000 pages, ~40 MiB of WAL).
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)
        .map_err(|e| backend("setting wal_autocheckpoint", e))?;
    // Checkpoints leave the WAL file at its largest size; cap what stays on disk afterwards.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(|e| backend("setting journal_size_limit", e))?;
    Ok(())
}

/// Settings for a connection that only reads.
pub(super) fn configure_reader(conn: &Connection) -> Result<(), StoreError> {
    // A reader must never take the write lock, even by mistake: writes are serialized through
    // the writer connection.
    conn.pragma_update(None, "query_only", true)
        .map_err(|e| backend("setting query_only", e))
}

/// Brings the schema up to date. Runs on the writer connection before any other connection is
/// opened, each migration in its own transaction together with its version bump.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| backend("reading the schema version", e))?;
    let latest = MIGRATIONS.len() as i64;
    if current > latest {
        return Err(StoreError::Backend(format!(
            "the database has schema version {current}, newer than this build supports ({latest}); \
             refusing to open it with an older Hangar"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as i64 + 1;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| backend("starting a migration", e))?;
        tx.execute_batch(sql)
            .map_err(|e| backend(&format!("applying schema migration {version}"), e))?;
        tx.pragma_update(None, "user_version", version)
            .map_err(|e| backend("recording the schema version", e))?;
        tx.commit()
            .map_err(|e| backend(&format!("committing schema migration {version}"), e))?;
        tracing::info!(version, "applied storage schema migration");
    }
    Ok(())
}
