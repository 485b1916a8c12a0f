//! Pools of pre-started tool sandboxes.
//!
//! Starting a sandbox (bwrap, cgroup, network helper) and the interpreter inside it costs tens
//! of milliseconds, more than a session start may take. A [`Pool`] keeps a few ready ones per
//! [`ToolNetwork`] and starts a replacement in the background whenever one is taken; when the
//! pool is empty (a burst), `take` starts one on the spot. Pooled sandboxes are plain, unused
//! sandboxes: nothing of a session is in them until they are taken.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ToolsError;

/// A tool session's network, as the sandbox layer implements it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToolNetwork {
    /// `SANDBOX`: no network at all (only the sandbox's own loopback).
    Sandbox,
    /// `PUBLIC` (and `VPC`, which on one host means the same): outbound network, with the
    /// host's loopback reachable at 10.0.2.2.
    Public,
}

impl ToolNetwork {
    pub fn sandbox_mode(self) -> hangar_sandbox::NetworkMode {
        match self {
            ToolNetwork::Sandbox => hangar_sandbox::NetworkMode::None,
            ToolNetwork::Public => hangar_sandbox::NetworkMode::Public {
                host_loopback: true,
            },
        }
    }
}

/// Something the pool holds: a started sandbox that can tell whether it is still usable.
pub trait Pooled: Send + 'static {
    fn usable(&self) -> bool;
}

type LaunchFuture<T> = Pin<Box<dyn Future<Output = Result<T, ToolsError>> + Send>>;
type Launch<T> = Arc<dyn Fn(ToolNetwork) -> LaunchFuture<T> + Send + Sync>;

pub struct Pool<T: Pooled> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    target: usize,
    idle: Mutex<HashMap<ToolNetwork, VecDeque<T>>>,
    filling: Mutex<HashSet<ToolNetwork>>,
    launch: Launch<T>,
    closed: AtomicBool,
}

impl<T: Pooled> Clone for Pool<T> {
    fn clone(&self) -> Self {
        Pool {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Pooled> Pool<T> {
    /// A pool keeping `target` ready sandboxes per network mode in use (0 disables pooling),
    /// started with `launch`.
    pub fn new<F, Fut>(target: usize, launch: F) -> Self
    where
        F: Fn(ToolNetwork) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, ToolsError>> + Send + 'static,
    {
        let launch: Launch<T> = Arc::new(move |n| Box::pin(launch(n)));
        Pool {
            inner: Arc::new(Inner {
                target,
                idle: Mutex::new(HashMap::new()),
                filling: Mutex::new(HashSet::new()),
                launch,
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// A ready sandbox: a pooled one if there is one, else a new one. Either way the pool is
    /// topped up in the background.
    pub async fn take(&self, network: ToolNetwork) -> Result<T, ToolsError> {
        let pooled = {
            let mut idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner());
            let queue = idle.entry(network).or_default();
            let mut found = None;
            while let Some(t) = queue.pop_front() {
                if t.usable() {
                    found = Some(t);
                    break;
                }
                // A pooled sandbox that died while idle is dropped (which kills it).
            }
            found
        };
        self.fill(network);
        match pooled {
            Some(t) => Ok(t),
            None => (self.inner.launch)(network).await,
        }
    }

    /// Start filling the pool of `network` (at server start, for the modes expected first).
    pub fn fill(&self, network: ToolNetwork) {
        let inner = &self.inner;
        if inner.target == 0 || inner.closed.load(Ordering::Relaxed) {
            return;
        }
        if !inner
            .filling
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(network)
        {
            return; // a filler is already running for this mode
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            loop {
                let have = inner
                    .idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&network)
                    .map_or(0, VecDeque::len);
                if have >= inner.target || inner.closed.load(Ordering::Relaxed) {
                    break;
                }
                match (inner.launch)(network).await {
                    Ok(t) => {
                        if inner.closed.load(Ordering::Relaxed) {
                            break; // dropping `t` kills it
                        }
                        inner
                            .idle
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .entry(network)
                            .or_default()
                            .push_back(t);
                    }
                    Err(e) => {
                        // Do not spin on a broken host; the next take tries again.
                        tracing::warn!(error = %e, ?network, "could not pre-start a tool sandbox");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        break;
                    }
                }
            }
            inner
                .filling
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&network);
        });
    }

    /// How many ready sandboxes the pool holds for `network`.
    pub fn idle(&self, network: ToolNetwork) -> usize {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&network)
            .map_or(0, VecDeque::len)
    }

    /// Stop refilling and hand back every pooled sandbox (to be killed).
    pub fn close(&self) -> Vec<T> {
        self.inner.closed.store(true, Ordering::Relaxed);
        let mut idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.drain().flat_map(|(_, q)| q).collect()
    }
}
