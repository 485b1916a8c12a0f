//! Ad-hoc latency and throughput figures for `SqliteStore` through the `Store` trait.
//!
//! `cargo run --release -p hangar-store --example store_bench [-- --full]`
//! (`--full` measures with `synchronous=FULL`). Not a test: numbers depend on the machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hangar_store::{SqliteOptions, SqliteStore, Store, Write};
use serde_json::json;

const RECORDS: usize = 10_000;
const SAMPLES: usize = 20_000;
const CLIENTS: usize = 8;
const MIXED_FOR: Duration = Duration::from_secs(3);

/// Roughly the size and shape of a stored agent runtime.
fn doc(i: usize) -> serde_json::Value {
    json!({
        "agentRuntimeId": format!("rt-{i:010}"),
        "agentRuntimeName": format!("runtime_{i}"),
        "agentRuntimeArn": format!("arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/rt-{i:010}"),
        "status": "READY",
        "description": "d".repeat(200),
        "roleArn": "arn:aws:iam::123456789012:role/AgentRuntimeRole",
        "agentRuntimeArtifact": { "containerConfiguration": { "containerUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent:latest" } },
        "networkConfiguration": { "networkMode": "PUBLIC" },
        "environmentVariables": { "LOG_LEVEL": "info", "MODEL": "some-model" },
        "createdAt": "2025-01-01T00:00:00Z",
        "lastUpdatedAt": "2025-01-01T00:00:00Z",
        "agentRuntimeVersion": "1",
    })
}

fn insert(i: usize) -> Write {
    Write::Insert {
        collection: "runtimes".into(),
        key: format!("rt-{i:010}"),
        parent: None,
        name: Some(format!("runtime_{i}")),
        doc: doc(i),
    }
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{what:<34} p50 {:>7.1?}  p90 {:>7.1?}  p99 {:>7.1?}  mean {:>7.1?}",
        at(0.5),
        at(0.9),
        at(0.99),
        mean
    );
}

async fn time<F, Fut>(count: usize, mut op: F) -> Vec<Duration>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let start = Instant::now();
        op(i).await;
        samples.push(start.elapsed());
    }
    samples
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = std::env::args().any(|a| a == "--full");
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        synchronous_full: full,
        ..SqliteOptions::default()
    };
    let store = Arc::new(SqliteStore::open_with(dir.path(), options).unwrap());
    println!("synchronous={}", if full { "FULL" } else { "NORMAL" });

    for chunk in (0..RECORDS).collect::<Vec<_>>().chunks(500) {
        store
            .commit(chunk.iter().map(|&i| insert(i)).collect())
            .await
            .unwrap();
    }
    let key = |i: usize| format!("rt-{:010}", (i * 7919) % RECORDS);

    // Warm up caches and the statement cache of every reader connection.
    for i in 0..2_000 {
        store.get("runtimes", &key(i)).await.unwrap().unwrap();
    }

    let samples = time(SAMPLES, |i| {
        let store = &store;
        let key = key(i);
        async move {
            store.get("runtimes", &key).await.unwrap().unwrap();
        }
    })
    .await;
    report("get (hit)", samples);

    let samples = time(SAMPLES, |i| {
        let store = &store;
        async move {
            let name = format!("runtime_{}", (i * 7919) % RECORDS);
            store.get_by_name("runtimes", &name).await.unwrap().unwrap();
        }
    })
    .await;
    report("get_by_name (hit)", samples);

    let samples = time(SAMPLES / 4, |i| {
        let store = &store;
        async move {
            let page = store
                .list("runtimes", None, Some((i % RECORDS) as i64), 20)
                .await
                .unwrap();
            assert!(!page.is_empty());
        }
    })
    .await;
    report("list (page of 20)", samples);

    let samples = time(SAMPLES / 4, |i| {
        let store = &store;
        async move {
            store.commit(vec![insert(RECORDS + i)]).await.unwrap();
        }
    })
    .await;
    report("commit (1 insert)", samples);

    let samples = time(SAMPLES / 4, |i| {
        let store = &store;
        async move {
            store
                .commit(vec![Write::Update {
                    collection: "runtimes".into(),
                    key: format!("rt-{:010}", i % RECORDS),
                    expected_revision: None,
                    doc: doc(i),
                }])
                .await
                .unwrap();
        }
    })
    .await;
    report("commit (1 update)", samples);

    // Mixed load from concurrent clients: 80% get, 10% list, 10% commit.
    let next_key = Arc::new(std::sync::atomic::AtomicUsize::new(RECORDS * 10));
    let deadline = Instant::now() + MIXED_FOR;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let store = Arc::clone(&store);
            let next_key = Arc::clone(&next_key);
            tokio::spawn(async move {
                let mut ops = 0_u64;
                let mut i = c * 7;
                while Instant::now() < deadline {
                    match i % 10 {
                        0 => {
                            let n = next_key.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            store.commit(vec![insert(n)]).await.unwrap();
                        }
                        1 => {
                            store
                                .list("runtimes", None, Some((i % RECORDS) as i64), 20)
                                .await
                                .unwrap();
                        }
                        _ => {
                            store
                                .get("runtimes", &format!("rt-{:010}", (i * 7919) % RECORDS))
                                .await
                                .unwrap()
                                .unwrap();
                        }
                    }
                    ops += 1;
                    i += 1;
                }
                ops
            })
        })
        .collect();
    let mut total = 0;
    for client in clients {
        total += client.await.unwrap();
    }
    println!(
        "mixed, {CLIENTS} clients (80% get / 10% list / 10% commit): {:.0} ops/s",
        total as f64 / MIXED_FOR.as_secs_f64()
    );

    // Concurrent commits only, where group commit matters.
    let deadline = Instant::now() + MIXED_FOR;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let store = Arc::clone(&store);
            let next_key = Arc::clone(&next_key);
            tokio::spawn(async move {
                let mut ops = 0_u64;
                while Instant::now() < deadline {
                    let n = next_key.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    store.commit(vec![insert(n)]).await.unwrap();
                    ops += 1;
                }
                ops
            })
        })
        .collect();
    let mut total = 0;
    for client in clients {
        total += client.await.unwrap();
    }
    println!(
        "commits only, {CLIENTS} clients: {:.0} commits/s",
        total as f64 / MIXED_FOR.as_secs_f64()
    );
}
