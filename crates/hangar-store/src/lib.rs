//! Durable storage for Hangar: one [`Store`] trait, implemented on SQLite by [`SqliteStore`].
//!
//! The store knows nothing about AgentCore. It keeps [`Record`]s — JSON documents the domain
//! owns — in named collections, and indexes only what the domain needs to find and order them:
//! a key, an optional parent, an optional unique name and a store-wide sequence number. All
//! mutations go through [`Store::commit`], which applies a batch of [`Write`]s atomically, so
//! the domain can keep a resource, its children, its tags and its idempotency record consistent
//! without knowing how the backend does transactions.
//!
//! Nothing backend-specific appears in this API on purpose: a PostgreSQL implementation is
//! meant to slot in beside the SQLite one without the domain noticing.

mod sqlite;

pub use sqlite::{SqliteOptions, SqliteStore};

/// A stored document. The domain owns the meaning of `doc`; the store only indexes the other fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub collection: String,
    /// Unique within the collection.
    pub key: String,
    /// E.g. the runtime id for runtime versions and endpoints.
    pub parent: Option<String>,
    /// When `Some`: unique within the collection (names are unique per kind).
    pub name: Option<String>,
    /// Assigned by the store on insert; strictly increasing across the whole store, never
    /// reused; orders listings.
    pub seq: i64,
    /// 1 on insert, +1 on every update (optimistic concurrency).
    pub revision: i64,
    pub doc: serde_json::Value,
}

/// One mutation inside a [`Store::commit`].
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Fails the whole commit with KeyExists / NameTaken.
    Insert {
        collection: String,
        key: String,
        parent: Option<String>,
        name: Option<String>,
        doc: serde_json::Value,
    },
    /// Replaces doc (parent/name unchanged). Fails with NotFound, or RevisionMismatch when
    /// expected_revision is Some and differs.
    Update {
        collection: String,
        key: String,
        expected_revision: Option<i64>,
        doc: serde_json::Value,
    },
    /// Fails with NotFound when the record is absent and must_exist; RevisionMismatch as above.
    Delete {
        collection: String,
        key: String,
        expected_revision: Option<i64>,
        must_exist: bool,
    },
    /// Deletes every record of `collection` whose parent is `parent` (no error when none).
    DeleteChildren { collection: String, parent: String },
}

impl Write {
    /// The collection this write touches.
    pub fn collection(&self) -> &str {
        match self {
            Write::Insert { collection, .. }
            | Write::Update { collection, .. }
            | Write::Delete { collection, .. }
            | Write::DeleteChildren { collection, .. } => collection,
        }
    }
}

/// Why a store operation failed. Every variant but `Backend` is a normal outcome the domain
/// maps to an API error; `Backend` means the storage itself is in trouble.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{collection}/{key} already exists")]
    KeyExists { collection: String, key: String },
    #[error("the name {name:?} is already taken in {collection}")]
    NameTaken { collection: String, name: String },
    #[error("{collection}/{key} does not exist")]
    NotFound { collection: String, key: String },
    #[error("{collection}/{key} is at revision {actual}, not the expected {expected}")]
    RevisionMismatch {
        collection: String,
        key: String,
        expected: i64,
        actual: i64,
    },
    /// I/O, corruption, SQL errors — with a useful message.
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// The storage contract the domain is written against.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    async fn get(&self, collection: &str, key: &str) -> Result<Option<Record>, StoreError>;

    async fn get_by_name(&self, collection: &str, name: &str)
        -> Result<Option<Record>, StoreError>;

    /// Records of `collection` (only those with this parent when `parent` is Some), ordered by
    /// seq ascending, with seq > after_seq when given, at most `limit`.
    ///
    /// Each call reads one consistent snapshot. Because seq only grows, paging with `after_seq`
    /// set to the last seq seen yields every record that existed throughout exactly once, even
    /// while others insert and delete.
    async fn list(
        &self,
        collection: &str,
        parent: Option<&str>,
        after_seq: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError>;

    /// Applies all writes atomically, in order, in one transaction: all or nothing. Returns, per
    /// write, the resulting record for Insert/Update (with its seq and revision) and None for
    /// deletes. When this returns Ok the writes are durable: they survive `kill -9` of the
    /// process.
    async fn commit(&self, writes: Vec<Write>) -> Result<Vec<Option<Record>>, StoreError>;
}
