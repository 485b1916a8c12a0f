//! The `Store` contract, exercised on `SqliteStore`.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use common::{delete, delete_children, insert, insert_doc, update};
use hangar_store::{SqliteOptions, SqliteStore, Store, StoreError};
use serde_json::json;

fn on_disk() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    (dir, store)
}

#[tokio::test]
async fn crud_round_trip() {
    let (_dir, store) = on_disk();

    let inserted = store
        .commit(vec![insert_doc(
            "runtimes",
            "rt-1",
            None,
            Some("alpha"),
            json!({ "status": "CREATING", "n": 1 }),
        )])
        .await
        .unwrap();
    let record = inserted[0].clone().expect("an insert returns its record");
    assert_eq!(record.collection, "runtimes");
    assert_eq!(record.key, "rt-1");
    assert_eq!(record.parent, None);
    assert_eq!(record.name.as_deref(), Some("alpha"));
    assert_eq!(record.revision, 1);
    assert!(record.seq > 0);
    assert_eq!(record.doc, json!({ "status": "CREATING", "n": 1 }));

    assert_eq!(
        store.get("runtimes", "rt-1").await.unwrap(),
        Some(record.clone())
    );
    assert_eq!(
        store.get_by_name("runtimes", "alpha").await.unwrap(),
        Some(record.clone())
    );
    assert_eq!(store.get("runtimes", "rt-2").await.unwrap(), None);
    assert_eq!(store.get("endpoints", "rt-1").await.unwrap(), None);
    assert_eq!(store.get_by_name("runtimes", "beta").await.unwrap(), None);

    let updated = store
        .commit(vec![update(
            "runtimes",
            "rt-1",
            None,
            json!({ "status": "READY" }),
        )])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    // Update replaces the doc and bumps the revision; everything else stays.
    assert_eq!(updated.revision, 2);
    assert_eq!(updated.seq, record.seq);
    assert_eq!(updated.name.as_deref(), Some("alpha"));
    assert_eq!(updated.parent, None);
    assert_eq!(updated.doc, json!({ "status": "READY" }));
    assert_eq!(
        store.get("runtimes", "rt-1").await.unwrap(),
        Some(updated.clone())
    );
    assert_eq!(
        store.get_by_name("runtimes", "alpha").await.unwrap(),
        Some(updated)
    );

    let deleted = store
        .commit(vec![delete("runtimes", "rt-1", None, true)])
        .await
        .unwrap();
    assert_eq!(deleted, vec![None]);
    assert_eq!(store.get("runtimes", "rt-1").await.unwrap(), None);
    assert_eq!(store.get_by_name("runtimes", "alpha").await.unwrap(), None);
}

#[tokio::test]
async fn missing_records() {
    let (_dir, store) = on_disk();
    let not_found = StoreError::NotFound {
        collection: "runtimes".into(),
        key: "nope".into(),
    };
    assert_eq!(
        store
            .commit(vec![update("runtimes", "nope", None, json!({}))])
            .await,
        Err(not_found.clone())
    );
    assert_eq!(
        store
            .commit(vec![update("runtimes", "nope", Some(1), json!({}))])
            .await,
        Err(not_found.clone())
    );
    assert_eq!(
        store
            .commit(vec![delete("runtimes", "nope", None, true)])
            .await,
        Err(not_found.clone())
    );
    assert_eq!(
        store
            .commit(vec![delete("runtimes", "nope", Some(3), true)])
            .await,
        Err(not_found)
    );
    // Deleting what may already be gone is fine when the caller says so.
    assert_eq!(
        store
            .commit(vec![delete("runtimes", "nope", None, false)])
            .await,
        Ok(vec![None])
    );
    assert_eq!(
        store
            .commit(vec![delete("runtimes", "nope", Some(3), false)])
            .await,
        Ok(vec![None])
    );
    assert_eq!(store.commit(vec![]).await, Ok(vec![]));
}

#[tokio::test]
async fn keys_and_names_are_unique_per_collection() {
    let (_dir, store) = on_disk();
    store
        .commit(vec![insert("runtimes", "rt-1", None, Some("alpha"))])
        .await
        .unwrap();

    assert_eq!(
        store
            .commit(vec![insert("runtimes", "rt-1", None, Some("other"))])
            .await,
        Err(StoreError::KeyExists {
            collection: "runtimes".into(),
            key: "rt-1".into()
        })
    );
    assert_eq!(
        store
            .commit(vec![insert("runtimes", "rt-2", None, Some("alpha"))])
            .await,
        Err(StoreError::NameTaken {
            collection: "runtimes".into(),
            name: "alpha".into()
        })
    );
    // Same key and name in another collection, and any number of unnamed records.
    store
        .commit(vec![
            insert("browsers", "rt-1", None, Some("alpha")),
            insert("runtimes", "rt-3", None, None),
            insert("runtimes", "rt-4", None, None),
        ])
        .await
        .unwrap();
    // A name is free again once its holder is deleted.
    store
        .commit(vec![
            delete("runtimes", "rt-1", None, true),
            insert("runtimes", "rt-5", None, Some("alpha")),
        ])
        .await
        .unwrap();
    assert_eq!(
        store
            .get_by_name("runtimes", "alpha")
            .await
            .unwrap()
            .unwrap()
            .key,
        "rt-5"
    );
}

#[tokio::test]
async fn a_failing_write_leaves_nothing() {
    let (_dir, store) = on_disk();
    let base = store
        .commit(vec![insert("runtimes", "rt-0", None, Some("taken"))])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();

    // Each batch fails at its last write; none of its earlier writes may remain.
    let failing = vec![
        (
            vec![
                insert("runtimes", "rt-1", None, Some("one")),
                insert("versions", "v-1", Some("rt-1"), None),
                insert("runtimes", "rt-2", None, Some("taken")),
            ],
            StoreError::NameTaken {
                collection: "runtimes".into(),
                name: "taken".into(),
            },
        ),
        (
            vec![
                insert("runtimes", "rt-1", None, Some("one")),
                update("runtimes", "rt-0", None, json!({ "changed": true })),
                update("runtimes", "ghost", None, json!({})),
            ],
            StoreError::NotFound {
                collection: "runtimes".into(),
                key: "ghost".into(),
            },
        ),
        (
            vec![
                delete("runtimes", "rt-0", None, true),
                insert("runtimes", "rt-1", None, Some("one")),
                insert("runtimes", "rt-1", None, None),
            ],
            StoreError::KeyExists {
                collection: "runtimes".into(),
                key: "rt-1".into(),
            },
        ),
        (
            vec![
                delete_children("versions", "rt-0"),
                update("runtimes", "rt-0", Some(1), json!({ "changed": true })),
                delete("runtimes", "rt-0", Some(1), true),
            ],
            StoreError::RevisionMismatch {
                collection: "runtimes".into(),
                key: "rt-0".into(),
                expected: 1,
                actual: 2,
            },
        ),
    ];
    store
        .commit(vec![insert("versions", "v-0", Some("rt-0"), None)])
        .await
        .unwrap();
    for (writes, expected) in failing {
        assert_eq!(store.commit(writes).await, Err(expected));
        assert_eq!(
            store.get("runtimes", "rt-0").await.unwrap(),
            Some(base.clone())
        );
        assert_eq!(store.get("runtimes", "rt-1").await.unwrap(), None);
        assert_eq!(store.get("versions", "v-1").await.unwrap(), None);
        assert!(store.get("versions", "v-0").await.unwrap().is_some());
        assert_eq!(store.get_by_name("runtimes", "one").await.unwrap(), None);
    }

    // The store is still writable afterwards.
    store
        .commit(vec![insert("runtimes", "rt-1", None, Some("one"))])
        .await
        .unwrap();
}

#[tokio::test]
async fn writes_apply_in_order_within_a_commit() {
    let (_dir, store) = on_disk();
    let results = store
        .commit(vec![
            insert("runtimes", "rt-1", None, Some("alpha")),
            update("runtimes", "rt-1", Some(1), json!({ "step": 2 })),
            update("runtimes", "rt-1", Some(2), json!({ "step": 3 })),
            delete("runtimes", "rt-1", Some(3), true),
            insert("runtimes", "rt-1", None, Some("alpha")),
            delete("runtimes", "absent", None, false),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 6);
    let revisions: Vec<Option<i64>> = results
        .iter()
        .map(|r| r.as_ref().map(|r| r.revision))
        .collect();
    assert_eq!(
        revisions,
        vec![Some(1), Some(2), Some(3), None, Some(1), None]
    );
    assert_eq!(results[2].as_ref().unwrap().doc, json!({ "step": 3 }));
    // The re-inserted record is a new record with a new seq.
    let first_seq = results[0].as_ref().unwrap().seq;
    let second = results[4].clone().unwrap();
    assert!(second.seq > first_seq);
    assert_eq!(store.get("runtimes", "rt-1").await.unwrap(), Some(second));
}

#[tokio::test]
async fn revision_checks() {
    let (_dir, store) = on_disk();
    store
        .commit(vec![insert("runtimes", "rt-1", None, None)])
        .await
        .unwrap();
    let r2 = store
        .commit(vec![update("runtimes", "rt-1", Some(1), json!({ "v": 2 }))])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(r2.revision, 2);

    let stale = StoreError::RevisionMismatch {
        collection: "runtimes".into(),
        key: "rt-1".into(),
        expected: 1,
        actual: 2,
    };
    assert_eq!(
        store
            .commit(vec![update("runtimes", "rt-1", Some(1), json!({ "v": 3 }))])
            .await,
        Err(stale.clone())
    );
    assert_eq!(
        store
            .commit(vec![delete("runtimes", "rt-1", Some(1), true)])
            .await,
        Err(stale.clone())
    );
    // must_exist does not excuse a revision mismatch on a record that does exist.
    assert_eq!(
        store
            .commit(vec![delete("runtimes", "rt-1", Some(1), false)])
            .await,
        Err(stale)
    );
    assert_eq!(store.get("runtimes", "rt-1").await.unwrap(), Some(r2));

    // Unconditional updates always apply and still count revisions.
    let r3 = store
        .commit(vec![update("runtimes", "rt-1", None, json!({ "v": 3 }))])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(r3.revision, 3);
    store
        .commit(vec![delete("runtimes", "rt-1", Some(3), true)])
        .await
        .unwrap();
    assert_eq!(store.get("runtimes", "rt-1").await.unwrap(), None);
}

#[tokio::test]
async fn seq_increases_across_the_store_and_is_never_reused() {
    let (_dir, store) = on_disk();
    let mut last = 0;
    for (collection, key) in [("a", "1"), ("b", "1"), ("a", "2"), ("c", "9")] {
        let record = store
            .commit(vec![insert(collection, key, None, None)])
            .await
            .unwrap()[0]
            .clone()
            .unwrap();
        assert!(record.seq > last, "{} after {last}", record.seq);
        last = record.seq;
    }
    store
        .commit(vec![delete("c", "9", None, true)])
        .await
        .unwrap();
    // A failed commit's insert does not hold a number hostage either, but numbers handed out
    // to committed records are never handed out again.
    let _ = store
        .commit(vec![
            insert("c", "x", None, None),
            insert("a", "1", None, None),
        ])
        .await
        .unwrap_err();
    let next = store
        .commit(vec![insert("c", "9", None, None)])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    assert!(next.seq > last);
}

#[tokio::test]
async fn list_orders_filters_and_pages() {
    let (_dir, store) = on_disk();
    let mut writes = Vec::new();
    for i in 0..10 {
        let parent = if i % 2 == 0 { "rt-even" } else { "rt-odd" };
        writes.push(insert("versions", &format!("v-{i}"), Some(parent), None));
        // Interleave another collection so seqs are not contiguous.
        writes.push(insert("endpoints", &format!("e-{i}"), Some(parent), None));
    }
    store.commit(writes).await.unwrap();

    let all = store.list("versions", None, None, 100).await.unwrap();
    let keys: Vec<_> = all.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        ["v-0", "v-1", "v-2", "v-3", "v-4", "v-5", "v-6", "v-7", "v-8", "v-9"]
    );
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));

    let odd = store
        .list("versions", Some("rt-odd"), None, 100)
        .await
        .unwrap();
    let keys: Vec<_> = odd.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["v-1", "v-3", "v-5", "v-7", "v-9"]);

    let page = store
        .list("versions", Some("rt-odd"), Some(odd[1].seq), 2)
        .await
        .unwrap();
    let keys: Vec<_> = page.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["v-5", "v-7"]);

    let page = store
        .list("versions", None, Some(all[7].seq), 10)
        .await
        .unwrap();
    let keys: Vec<_> = page.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["v-8", "v-9"]);

    assert!(store
        .list("versions", None, Some(all[9].seq), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list("versions", None, None, 0)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list("nothing", None, None, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list("versions", Some("rt-none"), None, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .list("versions", None, None, usize::MAX)
            .await
            .unwrap(),
        all
    );
}

#[tokio::test]
async fn delete_children_removes_exactly_the_children() {
    let (_dir, store) = on_disk();
    store
        .commit(vec![
            insert("versions", "v-1", Some("rt-1"), None),
            insert("versions", "v-2", Some("rt-1"), Some("named")),
            insert("versions", "v-3", Some("rt-2"), None),
            insert("versions", "v-4", None, None),
            insert("endpoints", "e-1", Some("rt-1"), None),
        ])
        .await
        .unwrap();
    let result = store
        .commit(vec![delete_children("versions", "rt-1")])
        .await
        .unwrap();
    assert_eq!(result, vec![None]);

    let left: Vec<_> = store
        .list("versions", None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(left, ["v-3", "v-4"]);
    assert!(store.get("endpoints", "e-1").await.unwrap().is_some());
    assert_eq!(store.get_by_name("versions", "named").await.unwrap(), None);

    // Nothing to delete is not an error.
    assert_eq!(
        store
            .commit(vec![delete_children("versions", "rt-1")])
            .await
            .unwrap(),
        vec![None]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_of_one_name_have_one_winner() {
    let (_dir, store) = on_disk();
    let store = Arc::new(store);
    for round in 0..20 {
        let name = format!("contested-{round}");
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = Arc::clone(&store);
                let name = name.clone();
                tokio::spawn(async move {
                    store
                        .commit(vec![insert(
                            "runtimes",
                            &format!("rt-{round}-{i}"),
                            None,
                            Some(&name),
                        )])
                        .await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(records) => winners.push(records[0].clone().unwrap().key),
                Err(StoreError::NameTaken {
                    collection,
                    name: taken,
                }) => {
                    assert_eq!(
                        (collection.as_str(), taken.as_str()),
                        ("runtimes", name.as_str())
                    );
                }
                Err(other) => panic!("unexpected error {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let holder = store.get_by_name("runtimes", &name).await.unwrap().unwrap();
        assert_eq!(holder.key, winners[0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_of_one_key_have_one_winner() {
    let (_dir, store) = on_disk();
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .commit(vec![insert_doc(
                        "runtimes",
                        "rt",
                        None,
                        None,
                        json!({ "by": i }),
                    )])
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(records) => winners.push(records[0].clone().unwrap()),
            Err(StoreError::KeyExists { .. }) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(
        store.get("runtimes", "rt").await.unwrap(),
        Some(winners[0].clone())
    );
}

/// Many commits in flight at once end up in shared transactions (group commit): the failing
/// ones must not take the succeeding ones down with them, nor leave anything behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_fail_independently() {
    let (_dir, store) = on_disk();
    let store = Arc::new(store);
    store
        .commit(vec![insert("runtimes", "existing", None, Some("existing"))])
        .await
        .unwrap();
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut writes = vec![
                    insert(
                        "runtimes",
                        &format!("rt-{i}"),
                        None,
                        Some(&format!("n-{i}")),
                    ),
                    insert(
                        "versions",
                        &format!("v-{i}"),
                        Some(&format!("rt-{i}")),
                        None,
                    ),
                ];
                if i % 3 == 0 {
                    writes.push(insert(
                        "runtimes",
                        &format!("x-{i}"),
                        None,
                        Some("existing"),
                    ));
                }
                (i, store.commit(writes).await)
            })
        })
        .collect();
    for task in tasks {
        let (i, result) = task.await.unwrap();
        let present = store
            .get("runtimes", &format!("rt-{i}"))
            .await
            .unwrap()
            .is_some();
        let child = store
            .get("versions", &format!("v-{i}"))
            .await
            .unwrap()
            .is_some();
        if i % 3 == 0 {
            assert!(
                matches!(result, Err(StoreError::NameTaken { .. })),
                "{i}: {result:?}"
            );
            assert!(!present && !child, "{i} left writes behind");
        } else {
            assert!(result.is_ok(), "{i}: {result:?}");
            assert!(present && child, "{i} lost writes");
        }
    }
    let listed = store.list("versions", None, None, 10_000).await.unwrap();
    assert_eq!(listed.len(), 400 - 400_usize.div_ceil(3));
}

/// Pages through a collection while writers insert and delete: every record that exists for the
/// whole walk shows up exactly once, nothing shows up twice, and seqs only go up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paging_sees_every_surviving_record_once_under_concurrent_writes() {
    let (_dir, store) = on_disk();
    let store = Arc::new(store);
    const STABLE: usize = 300;
    const DOOMED: usize = 300;
    let mut writes = Vec::new();
    for i in 0..STABLE.max(DOOMED) {
        if i < STABLE {
            writes.push(insert("items", &format!("stable-{i}"), Some("p"), None));
        }
        if i < DOOMED {
            writes.push(insert("items", &format!("doomed-{i}"), Some("p"), None));
        }
    }
    store.commit(writes).await.unwrap();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3 {
        let store = Arc::clone(&store);
        let stop = Arc::clone(&stop);
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut writes = vec![insert("items", &format!("new-{w}-{n}"), Some("p"), None)];
                // Delete the doomed records (spread across the whole range) and some of the
                // newcomers, so the walk sees rows vanish ahead of and behind it.
                let doomed = (n * 7 + w * 101) % DOOMED;
                writes.push(delete("items", &format!("doomed-{doomed}"), None, false));
                if n % 2 == 1 {
                    writes.push(delete("items", &format!("new-{w}-{}", n - 1), None, false));
                }
                store.commit(writes).await.unwrap();
                n += 1;
                tokio::task::yield_now().await;
            }
            n
        }));
    }

    for parent in [None, Some("p")] {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut after = None;
        let mut last_seq = i64::MIN;
        loop {
            let page = store.list("items", parent, after, 7).await.unwrap();
            let Some(tail) = page.last() else { break };
            after = Some(tail.seq);
            for record in &page {
                assert!(record.seq > last_seq, "seq went backwards");
                last_seq = record.seq;
                *seen.entry(record.key.clone()).or_default() += 1;
            }
            tokio::task::yield_now().await;
        }
        let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(duplicates.is_empty(), "seen twice: {duplicates:?}");
        for i in 0..STABLE {
            assert!(
                seen.contains_key(&format!("stable-{i}")),
                "missed stable-{i}"
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for writer in writers {
        total += writer.await.unwrap();
    }
    assert!(total > 0, "the writers never ran during the walk");
}

#[tokio::test]
async fn reopening_keeps_everything() {
    let root = tempfile::tempdir().unwrap();
    // `open` creates missing directories.
    let dir = root.path().join("nested").join("state");
    let (first, deleted_seq) = {
        let store = SqliteStore::open(&dir).unwrap();
        let results = store
            .commit(vec![
                insert_doc(
                    "runtimes",
                    "rt-1",
                    None,
                    Some("alpha"),
                    json!({ "x": [1, 2] }),
                ),
                insert("versions", "v-1", Some("rt-1"), None),
                insert("versions", "gone", Some("rt-1"), None),
            ])
            .await
            .unwrap();
        store
            .commit(vec![
                update("runtimes", "rt-1", Some(1), json!({ "x": [3] })),
                delete("versions", "gone", None, true),
            ])
            .await
            .unwrap();
        (results[0].clone().unwrap(), results[2].clone().unwrap().seq)
    };
    assert!(dir.join("hangar.db").is_file());

    let store = SqliteStore::open(&dir).unwrap();
    let rt = store.get("runtimes", "rt-1").await.unwrap().unwrap();
    assert_eq!(rt.revision, 2);
    assert_eq!(rt.seq, first.seq);
    assert_eq!(rt.doc, json!({ "x": [3] }));
    assert_eq!(
        store.get_by_name("runtimes", "alpha").await.unwrap(),
        Some(rt)
    );
    let versions: Vec<_> = store
        .list("versions", Some("rt-1"), None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(versions, ["v-1"]);
    // The counter survives too: the deleted record's seq is not handed out again.
    let fresh = store
        .commit(vec![insert("versions", "v-2", Some("rt-1"), None)])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    assert!(fresh.seq > deleted_seq);
}

#[tokio::test]
async fn full_synchronous_mode_works() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        synchronous_full: true,
        readers: 1,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(dir.path(), options).unwrap();
    store
        .commit(vec![insert("runtimes", "rt-1", None, None)])
        .await
        .unwrap();
    assert!(store.get("runtimes", "rt-1").await.unwrap().is_some());
}

#[tokio::test]
async fn in_memory_stores_are_private_and_complete() {
    let a = SqliteStore::open_in_memory().unwrap();
    let b = SqliteStore::open_in_memory().unwrap();
    a.commit(vec![insert("runtimes", "rt-1", Some("p"), Some("alpha"))])
        .await
        .unwrap();
    assert!(a.get("runtimes", "rt-1").await.unwrap().is_some());
    assert!(a.get_by_name("runtimes", "alpha").await.unwrap().is_some());
    assert_eq!(
        a.list("runtimes", Some("p"), None, 10).await.unwrap().len(),
        1
    );
    assert!(b.get("runtimes", "rt-1").await.unwrap().is_none());
    assert!(matches!(
        a.commit(vec![insert("runtimes", "rt-2", None, Some("alpha"))])
            .await,
        Err(StoreError::NameTaken { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_store_handles_concurrent_use() {
    let store = Arc::new(SqliteStore::open_in_memory().unwrap());
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .commit(vec![insert("items", &format!("k-{i}"), None, None)])
                    .await
                    .unwrap();
                store
                    .get("items", &format!("k-{i}"))
                    .await
                    .unwrap()
                    .unwrap()
            })
        })
        .collect();
    let mut seqs = HashSet::new();
    for task in tasks {
        assert!(seqs.insert(task.await.unwrap().seq));
    }
    assert_eq!(
        store.list("items", None, None, 100).await.unwrap().len(),
        50
    );
}

#[test]
fn a_corrupt_database_is_a_backend_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hangar.db"), vec![0x5a_u8; 8192]).unwrap();
    let error = SqliteStore::open(dir.path()).unwrap_err();
    let StoreError::Backend(message) = error else {
        panic!("expected a backend error, got {error:?}")
    };
    assert!(message.contains("hangar.db"), "{message}");
    assert!(message.contains("not a database"), "{message}");
}

#[test]
fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join("hangar.db")).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let error = SqliteStore::open(dir.path()).unwrap_err();
    let StoreError::Backend(message) = error else {
        panic!("expected a backend error, got {error:?}")
    };
    assert!(message.contains("schema version 99"), "{message}");
}

#[test]
fn an_unusable_directory_is_a_backend_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let error = SqliteStore::open(&file.join("below")).unwrap_err();
    assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
}

/// Point reads are served from a cache: whatever readers race with, a get after a commit
/// returned sees that commit (and never an older revision later).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gets_see_every_acknowledged_commit_while_readers_race() {
    let (_dir, store) = on_disk();
    let store = Arc::new(store);
    store
        .commit(vec![insert("c", "k", Some("p"), None)])
        .await
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (store, stop) = (store.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut last = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(r) = store.get("c", "k").await.unwrap() {
                    assert!(
                        r.revision >= last,
                        "revision went back from {last} to {}",
                        r.revision
                    );
                    last = r.revision;
                }
            }
        }));
    }
    for i in 1..200 {
        let done = store
            .commit(vec![update("c", "k", Some(i), json!({"i": i}))])
            .await
            .unwrap();
        let revision = done[0].as_ref().unwrap().revision;
        assert_eq!(
            store.get("c", "k").await.unwrap().unwrap().revision,
            revision
        );
    }
    store.commit(vec![delete_children("c", "p")]).await.unwrap();
    assert_eq!(store.get("c", "k").await.unwrap(), None);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
}
