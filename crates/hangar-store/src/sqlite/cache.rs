//! Point reads served from memory.
//!
//! Only this process writes the database, and every commit passes through the one writer
//! thread, which applies its effects here right after `COMMIT` and before answering — in commit
//! order. So the cache never holds a record older than what a later read from SQLite would
//! return. A miss reads SQLite and fills the cache only if no commit happened since the read
//! began (the generation), so a slow read can never put back a record a commit replaced.

use std::collections::HashMap;
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
    /// `None`: known to be absent.
    records: HashMap<(String, String), Option<Record>>,
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
        state
            .records
            .get(&(collection.to_owned(), key.to_owned()))
            .cloned()
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
        if state.records.len() >= MAX_ENTRIES {
            state.records.clear();
        }
        state
            .records
            .insert((collection.to_owned(), key.to_owned()), found.clone());
    }

    /// Called by the writer thread after `COMMIT`, in commit order.
    pub(super) fn apply(&self, effects: Vec<Effect>) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.generation += 1;
        for effect in effects {
            match effect {
                Effect::Put(record) => {
                    let key = (record.collection.clone(), record.key.clone());
                    state.records.insert(key, Some(record));
                }
                Effect::Remove { collection, key } => {
                    state.records.insert((collection, key), None);
                }
                Effect::RemoveChildren { collection, parent } => {
                    state.records.retain(|(c, _), r| {
                        !(c == &collection
                            && r.as_ref()
                                .is_some_and(|r| r.parent.as_deref() == Some(&parent)))
                    });
                }
            }
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
