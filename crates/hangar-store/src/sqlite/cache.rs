//! Point reads served from memory.
//!
//! Only this process writes the database, and every commit passes through the one writer
//! thread, which applies its effects here right after `COMMIT` and before answering — in commit
//! order. So the cache never holds a record older than what a later read from SQLite would
//! return. A miss reads SQLite and fills the cache only if no commit happened since the read
//! began (the generation), so a slow read can never put back a record a commit replaced.

use std::collections::{HashMap, HashSet};
use std::sync::{PoisonError, RwLock};

use crate::{Record, Write};

/// Past this many entries the cache starts over (a bound, not a tuning knob: the control plane
/// holds far fewer records; unbounded growth would come from lookups of random absent keys).
const MAX_ENTRIES: usize = 200_000;

#[derive(Default)]
pub(super) struct RecordCache {
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    generation: u64,
    entries: usize,
    /// Per collection, so a lookup by `&str` needs no allocation.
    collections: HashMap<String, CachedCollection>,
}

#[derive(Default)]
struct CachedCollection {
    /// `None`: known to be absent.
    records: HashMap<String, Option<Record>>,
    /// parent key → keys of cached records with that parent, so removing a parent's children
    /// touches only them (a scan of the whole cache per delete dominated the writer thread).
    children: HashMap<String, HashSet<String>>,
}

impl CachedCollection {
    /// Returns whether `key` is new to the cache.
    fn insert(&mut self, key: String, value: Option<Record>) -> bool {
        let new_parent = value.as_ref().and_then(|r| r.parent.clone());
        let old = self.records.insert(key.clone(), value);
        if let Some(Some(old)) = &old {
            self.unlink(old);
        }
        if let Some(parent) = new_parent {
            self.children.entry(parent).or_default().insert(key);
        }
        old.is_none()
    }

    fn unlink(&mut self, old: &Record) {
        if let Some(parent) = &old.parent {
            if let Some(set) = self.children.get_mut(parent) {
                set.remove(&old.key);
                if set.is_empty() {
                    self.children.remove(parent);
                }
            }
        }
    }
}

/// What a successful commit did, as far as point reads are concerned.
pub(super) enum Effect {
    Put(Record),
    Remove { collection: String, key: String },
    RemoveChildren { collection: String, parent: String },
}

impl RecordCache {
    /// `Some(answer)` on a hit.
    pub(super) fn get(&self, collection: &str, key: &str) -> Option<Option<Record>> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.collections.get(collection)?.records.get(key).cloned()
    }

    pub(super) fn generation(&self) -> u64 {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .generation
    }

    /// Remembers what a read found, unless a commit happened since `generation` was taken.
    pub(super) fn fill(
        &self,
        collection: &str,
        key: &str,
        found: &Option<Record>,
        generation: u64,
    ) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if state.generation != generation {
            return;
        }
        state.insert(collection, key.to_owned(), found.clone());
    }

    /// Called by the writer thread after `COMMIT`, in commit order.
    pub(super) fn apply(&self, effects: Vec<Effect>) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.generation += 1;
        for effect in effects {
            match effect {
                Effect::Put(record) => {
                    let collection = record.collection.clone();
                    let key = record.key.clone();
                    state.insert(&collection, key, Some(record));
                }
                Effect::Remove { collection, key } => {
                    state.insert(&collection, key, None);
                }
                Effect::RemoveChildren { collection, parent } => {
                    let Some(cached) = state.collections.get_mut(&collection) else {
                        continue;
                    };
                    for key in cached.children.remove(&parent).unwrap_or_default() {
                        // Absent now; the entry count is unchanged.
                        cached.records.insert(key, None);
                    }
                }
            }
        }
    }
}

impl State {
    fn insert(&mut self, collection: &str, key: String, value: Option<Record>) {
        if self.entries >= MAX_ENTRIES {
            self.collections.clear();
            self.entries = 0;
        }
        let cached = match self.collections.get_mut(collection) {
            Some(c) => c,
            None => self.collections.entry(collection.to_owned()).or_default(),
        };
        if cached.insert(key, value) {
            self.entries += 1;
        }
    }
}

/// The removals a list of writes will make (taken before the writes are consumed).
pub(super) fn removals(writes: &[Write]) -> Vec<Effect> {
    writes
        .iter()
        .filter_map(|w| match w {
            Write::Delete {
                collection, key, ..
            } => Some(Effect::Remove {
                collection: collection.clone(),
                key: key.clone(),
            }),
            Write::DeleteChildren { collection, parent } => Some(Effect::RemoveChildren {
                collection: collection.clone(),
                parent: parent.clone(),
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, parent: Option<&str>) -> Record {
        Record {
            collection: "c".into(),
            key: key.into(),
            parent: parent.map(Into::into),
            name: None,
            seq: 1,
            revision: 1,
            doc: serde_json::Value::Null,
        }
    }

    fn present(cache: &RecordCache, key: &str) -> Option<bool> {
        cache.get("c", key).map(|r| r.is_some())
    }

    #[test]
    fn removing_children_touches_exactly_that_parents_records() {
        let cache = RecordCache::default();
        cache.apply(vec![
            Effect::Put(rec("p", None)),
            Effect::Put(rec("a", Some("p"))),
            Effect::Put(rec("b", Some("p"))),
            Effect::Put(rec("x", Some("q"))),
        ]);
        cache.apply(vec![Effect::RemoveChildren {
            collection: "c".into(),
            parent: "p".into(),
        }]);
        assert_eq!(present(&cache, "a"), Some(false));
        assert_eq!(present(&cache, "b"), Some(false));
        assert_eq!(present(&cache, "x"), Some(true));
        assert_eq!(present(&cache, "p"), Some(true));

        // A record that moves to another parent follows it.
        cache.apply(vec![Effect::Put(rec("a", Some("q")))]);
        cache.apply(vec![Effect::RemoveChildren {
            collection: "c".into(),
            parent: "q".into(),
        }]);
        assert_eq!(present(&cache, "a"), Some(false));
        assert_eq!(present(&cache, "x"), Some(false));
        assert_eq!(present(&cache, "other"), None);
    }
}
