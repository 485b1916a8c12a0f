//! Durability against `kill -9`: a child process commits as fast as it can and reports each
//! acknowledged commit on stdout; it is killed mid-stream, and every commit it reported must be
//! in the reopened database, whole.
//!
//! The child is this same test binary, re-run with only `crash_child_writer` selected and
//! [`CHILD_DIR`] set; in a normal test run that test does nothing.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{insert_doc, update};
use hangar_store::{SqliteStore, Store};
use serde_json::json;

const CHILD_DIR: &str = "HANGAR_STORE_CRASH_CHILD_DIR";
/// Concurrent committers in the child, so that commits are group-committed when killed.
const CHILD_TASKS: usize = 4;
/// Acknowledgements to wait for before killing the child.
const KILL_AFTER: usize = 2000;

#[test]
fn crash_child_writer() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = std::sync::Arc::new(SqliteStore::open(std::path::Path::new(&dir)).unwrap());
        store
            .commit(vec![insert_doc("meta", "counter", None, None, json!(0))])
            .await
            .unwrap();
        let tasks: Vec<_> = (0..CHILD_TASKS)
            .map(|task| {
                let store = std::sync::Arc::clone(&store);
                tokio::spawn(async move {
                    for i in 0.. {
                        let key = format!("{task}-{i}");
                        // Three writes per commit: a parent, a child and an update, so a torn
                        // commit would show up as a record without its partner or a counter
                        // out of step with the records.
                        store
                            .commit(vec![
                                insert_doc("parents", &key, None, Some(&key), json!({ "i": i })),
                                insert_doc("children", &key, Some(&key), None, json!({})),
                                update("meta", "counter", None, json!(key)),
                            ])
                            .await
                            .unwrap();
                        // Written straight to the (unbuffered) pipe, after the commit returned.
                        println!("ACK {key}");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[test]
fn acknowledged_commits_survive_kill_9() {
    if std::env::var_os(CHILD_DIR).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child_writer",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();

    // Read on a thread so that a child that hangs fails the test instead of hanging it.
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(key) = line.strip_prefix("ACK ") {
                if lines_tx.send(key.to_owned()).is_err() {
                    break;
                }
            }
        }
    });

    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.len() < KILL_AFTER {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(key) => acked.push(key),
            Err(e) => {
                let _ = child.kill();
                panic!(
                    "the child stopped acknowledging after {} commits: {e}",
                    acked.len()
                );
            }
        }
    }
    // SIGKILL: no destructors, no final checkpoint, no flushing of anything.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was supposed to die: {status}");
    // Lines already in the pipe were acknowledged before the kill too.
    reader.join().unwrap();
    acked.extend(lines_rx.try_iter());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = SqliteStore::open(dir.path()).unwrap();
        for key in &acked {
            let parent = store.get("parents", key).await.unwrap();
            assert!(parent.is_some(), "acknowledged commit {key} was lost");
            assert_eq!(
                store.get_by_name("parents", key).await.unwrap(),
                parent,
                "the name index disagrees for {key}"
            );
            assert!(
                store.get("children", key).await.unwrap().is_some(),
                "acknowledged commit {key} lost its child"
            );
        }
        // Every commit that made it (acknowledged or not) made it whole.
        let parents = store.list("parents", None, None, usize::MAX).await.unwrap();
        let children = store
            .list("children", None, None, usize::MAX)
            .await
            .unwrap();
        assert_eq!(parents.len(), children.len());
        for (parent, child) in parents.iter().zip(&children) {
            assert_eq!(child.parent.as_deref(), Some(parent.key.as_str()));
        }
        let counter = store.get("meta", "counter").await.unwrap().unwrap();
        assert_eq!(counter.revision as usize, parents.len() + 1);
        assert!(parents.len() >= acked.len());
        eprintln!(
            "{} commits acknowledged before kill -9, {} found after reopening",
            acked.len(),
            parents.len()
        );
    });
}
