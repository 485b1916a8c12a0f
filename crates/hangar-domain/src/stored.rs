//! Typed access to the store's documents.

use hangar_store::{Store, StoreError, Write};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Error;

/// A record read from the store, with the revision to write it back against.
pub(crate) struct Stored<T> {
    pub doc: T,
    pub revision: i64,
    pub seq: i64,
}

pub(crate) async fn load<T: DeserializeOwned>(
    store: &dyn Store,
    collection: &str,
    key: &str,
) -> Result<Option<Stored<T>>, Error> {
    match store.get(collection, key).await? {
        None => Ok(None),
        Some(record) => Ok(Some(Stored {
            doc: decode(collection, record.doc)?,
            revision: record.revision,
            seq: record.seq,
        })),
    }
}

/// One page of a collection in sequence order, decoded, with the sequence number of the last
/// record read (matching or not) so the next page can continue after it.
pub(crate) async fn list<T: DeserializeOwned>(
    store: &dyn Store,
    collection: &str,
    parent: Option<&str>,
    after_seq: Option<i64>,
    limit: usize,
) -> Result<Vec<Stored<T>>, Error> {
    store
        .list(collection, parent, after_seq, limit)
        .await?
        .into_iter()
        .map(|record| {
            Ok(Stored {
                revision: record.revision,
                seq: record.seq,
                doc: decode(collection, record.doc)?,
            })
        })
        .collect()
}

fn decode<T: DeserializeOwned>(collection: &str, doc: serde_json::Value) -> Result<T, Error> {
    serde_json::from_value(doc)
        .map_err(|e| Error::Internal(format!("corrupt {collection} record: {e}")))
}

pub(crate) fn to_doc<T: Serialize>(doc: &T) -> serde_json::Value {
    serde_json::to_value(doc).expect("domain records serialize to JSON")
}

pub(crate) fn insert<T: Serialize>(
    collection: &str,
    key: &str,
    parent: Option<&str>,
    name: Option<&str>,
    doc: &T,
) -> Write {
    Write::Insert {
        collection: collection.to_owned(),
        key: key.to_owned(),
        parent: parent.map(str::to_owned),
        name: name.map(str::to_owned),
        doc: to_doc(doc),
    }
}

pub(crate) fn update<T: Serialize>(collection: &str, key: &str, revision: i64, doc: &T) -> Write {
    Write::Update {
        collection: collection.to_owned(),
        key: key.to_owned(),
        expected_revision: Some(revision),
        doc: to_doc(doc),
    }
}

pub(crate) fn delete(collection: &str, key: &str, revision: Option<i64>) -> Write {
    Write::Delete {
        collection: collection.to_owned(),
        key: key.to_owned(),
        expected_revision: revision,
        must_exist: revision.is_some(),
    }
}

pub(crate) fn delete_children(collection: &str, parent: &str) -> Write {
    Write::DeleteChildren {
        collection: collection.to_owned(),
        parent: parent.to_owned(),
    }
}

/// A concurrent writer got there first: re-read and try again.
pub(crate) fn is_race(e: &StoreError) -> bool {
    matches!(e, StoreError::RevisionMismatch { .. }) || matches!(e, StoreError::NotFound { .. })
}

/// Up to `limit + 1` records matching `keep`, in sequence order after `after_seq`: a page plus
/// one to tell whether another page exists. Filtering happens above the store, so it reads
/// batches until the page is filled or the collection ends.
pub(crate) async fn filtered_page<T: DeserializeOwned>(
    store: &dyn Store,
    collection: &str,
    mut after_seq: Option<i64>,
    limit: usize,
    keep: impl Fn(&T) -> bool,
) -> Result<Vec<Stored<T>>, Error> {
    const BATCH: usize = 100;
    let mut matching = Vec::new();
    loop {
        let batch = list::<T>(store, collection, None, after_seq, BATCH).await?;
        let exhausted = batch.len() < BATCH;
        after_seq = batch.last().map(|r| r.seq).or(after_seq);
        matching.extend(batch.into_iter().filter(|r| keep(&r.doc)));
        if matching.len() > limit || exhausted {
            return Ok(matching);
        }
    }
}
