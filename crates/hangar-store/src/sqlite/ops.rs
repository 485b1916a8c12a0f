//! The SQL behind each store operation. Every function takes a plain connection and runs on a
//! storage thread; transactions are managed by the caller (see `workers`).

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row};

use super::backend;
use crate::{Record, StoreError, Write};

/// A complete statement selecting whole records, as a literal so that the statement cache is
/// keyed without building a string per call.
macro_rules! select_record {
    ($where:literal) => {
        concat!(
            "SELECT collection, key, parent, name, seq, revision, doc FROM records ",
            $where
        )
    };
}

/// Decodes a row selected by [`select_record!`].
fn record_from_row(row: &Row<'_>) -> rusqlite::Result<Record> {
    // Parse straight from SQLite's buffer rather than copying the text into a String first.
    let doc_text = row.get_ref(6)?.as_str()?;
    let doc = serde_json::from_str(doc_text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Record {
        collection: row.get(0)?,
        key: row.get(1)?,
        parent: row.get(2)?,
        name: row.get(3)?,
        seq: row.get(4)?,
        revision: row.get(5)?,
        doc,
    })
}

pub(super) fn get(
    conn: &Connection,
    collection: &str,
    key: &str,
) -> Result<Option<Record>, StoreError> {
    conn.prepare_cached(select_record!("WHERE collection = ?1 AND key = ?2"))
        .and_then(|mut stmt| {
            stmt.query_row(params![collection, key], record_from_row)
                .optional()
        })
        .map_err(|e| backend(&format!("reading {collection}/{key}"), e))
}

pub(super) fn get_by_name(
    conn: &Connection,
    collection: &str,
    name: &str,
) -> Result<Option<Record>, StoreError> {
    conn.prepare_cached(select_record!("WHERE collection = ?1 AND name = ?2"))
        .and_then(|mut stmt| {
            stmt.query_row(params![collection, name], record_from_row)
                .optional()
        })
        .map_err(|e| backend(&format!("reading {collection} named {name:?}"), e))
}

pub(super) fn list(
    conn: &Connection,
    collection: &str,
    parent: Option<&str>,
    after_seq: Option<i64>,
    limit: usize,
) -> Result<Vec<Record>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let after = after_seq.unwrap_or(i64::MIN);
    let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
    // One statement is one read snapshot, so a page never mixes states of the database.
    let result = match parent {
        Some(parent) => conn
            .prepare_cached(select_record!(
                "WHERE collection = ?1 AND parent = ?2 AND seq > ?3 ORDER BY seq LIMIT ?4"
            ))
            .and_then(|mut stmt| {
                stmt.query_map(
                    params![collection, parent, after, limit_sql],
                    record_from_row,
                )?
                .collect()
            }),
        None => conn
            .prepare_cached(select_record!(
                "WHERE collection = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
            ))
            .and_then(|mut stmt| {
                stmt.query_map(params![collection, after, limit_sql], record_from_row)?
                    .collect()
            }),
    };
    result.map_err(|e| backend(&format!("listing {collection}"), e))
}

/// Applies `writes` in order inside the caller's open transaction. On error the caller must
/// roll the transaction (or savepoint) back: earlier writes of the batch have been applied.
pub(super) fn apply(
    conn: &Connection,
    writes: Vec<Write>,
) -> Result<Vec<Option<Record>>, StoreError> {
    let mut results = Vec::with_capacity(writes.len());
    for write in writes {
        results.push(apply_one(conn, write)?);
    }
    Ok(results)
}

fn apply_one(conn: &Connection, write: Write) -> Result<Option<Record>, StoreError> {
    match write {
        Write::Insert {
            collection,
            key,
            parent,
            name,
            doc,
        } => {
            let seq = next_seq(conn)?;
            let text = doc_text(&collection, &key, &doc)?;
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO records (seq, collection, key, parent, name, revision, doc) \
                     VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![seq, collection, key, parent, name, text])
                });
            match inserted {
                Ok(_) => Ok(Some(Record {
                    collection,
                    key,
                    parent,
                    name,
                    seq,
                    revision: 1,
                    doc,
                })),
                // Trying the insert first and finding out why it failed afterwards keeps the
                // common path at one statement; we hold the write lock, so the answer is exact.
                Err(e) if is_constraint_violation(&e) => {
                    Err(explain_conflict(conn, collection, key, name, e))
                }
                Err(e) => Err(backend(&format!("inserting {collection}/{key}"), e)),
            }
        }
        Write::Update {
            collection,
            key,
            expected_revision,
            doc,
        } => {
            let text = doc_text(&collection, &key, &doc)?;
            let updated = conn
                .prepare_cached(
                    "UPDATE records SET doc = ?3, revision = revision + 1 \
                     WHERE collection = ?1 AND key = ?2 AND (?4 IS NULL OR revision = ?4) \
                     RETURNING parent, name, seq, revision",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(params![collection, key, text, expected_revision], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })
                    .optional()
                })
                .map_err(|e| backend(&format!("updating {collection}/{key}"), e))?;
            match updated {
                Some((parent, name, seq, revision)) => Ok(Some(Record {
                    collection,
                    key,
                    parent,
                    name,
                    seq,
                    revision,
                    doc,
                })),
                None => Err(explain_miss(conn, collection, key, expected_revision)),
            }
        }
        Write::Delete {
            collection,
            key,
            expected_revision,
            must_exist,
        } => {
            let deleted = conn
                .prepare_cached(
                    "DELETE FROM records \
                     WHERE collection = ?1 AND key = ?2 AND (?3 IS NULL OR revision = ?3)",
                )
                .and_then(|mut stmt| stmt.execute(params![collection, key, expected_revision]))
                .map_err(|e| backend(&format!("deleting {collection}/{key}"), e))?;
            if deleted > 0 {
                return Ok(None);
            }
            match explain_miss(conn, collection, key, expected_revision) {
                StoreError::NotFound { .. } if !must_exist => Ok(None),
                err => Err(err),
            }
        }
        Write::DeleteChildren { collection, parent } => {
            conn.prepare_cached("DELETE FROM records WHERE collection = ?1 AND parent = ?2")
                .and_then(|mut stmt| stmt.execute(params![collection, parent]))
                .map_err(|e| backend(&format!("deleting the {collection} of {parent}"), e))?;
            Ok(None)
        }
    }
}

/// Takes the next store-wide sequence number. The counter row lives in the same transaction as
/// the insert, so a rolled-back insert gives its number back and a committed one never reuses it
/// — even after the record is deleted, since the counter never goes down.
fn next_seq(conn: &Connection) -> Result<i64, StoreError> {
    conn.prepare_cached("UPDATE counters SET value = value + 1 WHERE name = 'seq' RETURNING value")
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
        .map_err(|e| backend("advancing the sequence counter", e))
}

fn doc_text(collection: &str, key: &str, doc: &serde_json::Value) -> Result<String, StoreError> {
    serde_json::to_string(doc).map_err(|e| {
        StoreError::Backend(format!("encoding the document of {collection}/{key}: {e}"))
    })
}

fn is_constraint_violation(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
}

/// Turns a failed insert's constraint violation into KeyExists or NameTaken.
fn explain_conflict(
    conn: &Connection,
    collection: String,
    key: String,
    name: Option<String>,
    original: rusqlite::Error,
) -> StoreError {
    match current_revision(conn, &collection, &key) {
        Ok(Some(_)) => return StoreError::KeyExists { collection, key },
        Ok(None) => {}
        Err(e) => return e,
    }
    if let Some(name) = name {
        let taken = conn
            .prepare_cached("SELECT 1 FROM records WHERE collection = ?1 AND name = ?2")
            .and_then(|mut stmt| stmt.exists(params![collection, name]));
        match taken {
            Ok(true) => return StoreError::NameTaken { collection, name },
            Ok(false) => {}
            Err(e) => return backend(&format!("checking the name {name:?} in {collection}"), e),
        }
    }
    // Neither the key nor the name clashes, so the seq did: the counter is behind the data.
    backend(&format!("inserting {collection}/{key}"), original)
}

/// Explains why an update or delete matched no row: the record is absent, or at another revision.
fn explain_miss(
    conn: &Connection,
    collection: String,
    key: String,
    expected_revision: Option<i64>,
) -> StoreError {
    match (current_revision(conn, &collection, &key), expected_revision) {
        (Err(e), _) => e,
        (Ok(None), _) => StoreError::NotFound { collection, key },
        (Ok(Some(actual)), Some(expected)) => StoreError::RevisionMismatch {
            collection,
            key,
            expected,
            actual,
        },
        (Ok(Some(_)), None) => StoreError::Backend(format!(
            "{collection}/{key} exists but its statement matched no row"
        )),
    }
}

fn current_revision(
    conn: &Connection,
    collection: &str,
    key: &str,
) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("SELECT revision FROM records WHERE collection = ?1 AND key = ?2")
        .and_then(|mut stmt| {
            stmt.query_row(params![collection, key], |row| row.get(0))
                .optional()
        })
        .map_err(|e| backend(&format!("reading the revision of {collection}/{key}"), e))
}
