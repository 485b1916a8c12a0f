//! The bookkeeping every tool's sessions share (code interpreters and browsers): the table of
//! sessions by id, `clientToken` idempotency of Start, the live-session count for the quota,
//! retention of TERMINATED sessions, and List's newest-first paging.
//!
//! Sessions live in memory: they are processes in sandboxes, which do not outlive the server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::ToolsError;

/// What the registry needs to know of a session.
pub(crate) trait RegisteredSession: Send + Sync {
    /// The order of registration (1, 2, …): List is newest first by it.
    fn seq(&self) -> u64;
    /// The tool resource (browser or code interpreter id) the session belongs to.
    fn tool(&self) -> &str;
    fn id(&self) -> &str;
    /// READY (counts against the live-session limit; never forgotten).
    fn is_live(&self) -> bool;
}

/// What [`Registry::register`] did.
pub(crate) enum Registration<S> {
    /// The new session is registered.
    New(Arc<S>),
    /// A concurrent start with the same client token registered first: this is its session
    /// (the caller drops what it prepared).
    Existing(Arc<S>),
}

struct Table<S> {
    next_seq: u64,
    sessions: HashMap<String, Arc<S>>,
    /// (tool, client token) → (request fingerprint, session id).
    tokens: HashMap<(String, String), (String, String)>,
}

pub(crate) struct Registry<S> {
    table: Mutex<Table<S>>,
    /// Sessions (live and TERMINATED) kept; the oldest TERMINATED go first.
    retained: usize,
}

impl<S: RegisteredSession> Registry<S> {
    pub fn new(retained: usize) -> Self {
        Registry {
            table: Mutex::new(Table {
                next_seq: 0,
                sessions: HashMap::new(),
                tokens: HashMap::new(),
            }),
            retained,
        }
    }

    fn table(&self) -> MutexGuard<'_, Table<S>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session a start with this client token was answered with. The same token with a
    /// different request (`fingerprint`) is the idempotency mismatch error.
    pub fn replay(
        &self,
        tool: &str,
        token: Option<&str>,
        fingerprint: &str,
    ) -> Result<Option<Arc<S>>, ToolsError> {
        let Some(token) = token else { return Ok(None) };
        let table = self.table();
        let Some((fp, sid)) = table.tokens.get(&(tool.to_owned(), token.to_owned())) else {
            return Ok(None);
        };
        if fp != fingerprint {
            return Err(hangar_domain::Error::idempotency_mismatch().into());
        }
        Ok(table.sessions.get(sid).cloned())
    }

    /// Live sessions over all tools.
    pub fn live_count(&self) -> usize {
        self.table()
            .sessions
            .values()
            .filter(|s| s.is_live())
            .count()
    }

    /// Registers the session `make` builds from its sequence number, remembering the client
    /// token, unless a concurrent start with the same token got there first.
    pub fn register(
        &self,
        tool: &str,
        token: Option<&str>,
        fingerprint: &str,
        make: impl FnOnce(u64) -> S,
    ) -> Registration<S> {
        let mut table = self.table();
        let key = token.map(|t| (tool.to_owned(), t.to_owned()));
        if let Some(key) = &key {
            if let Some(existing) = table
                .tokens
                .get(key)
                .and_then(|(_, sid)| table.sessions.get(sid))
            {
                return Registration::Existing(existing.clone());
            }
        }
        table.next_seq += 1;
        let session = Arc::new(make(table.next_seq));
        table
            .sessions
            .insert(session.id().to_owned(), session.clone());
        if let Some(key) = key {
            table
                .tokens
                .insert(key, (fingerprint.to_owned(), session.id().to_owned()));
        }
        self.forget_old(&mut table);
        Registration::New(session)
    }

    /// Drops the oldest ended sessions beyond the retention limit, and their tokens.
    fn forget_old(&self, table: &mut Table<S>) {
        if table.sessions.len() <= self.retained {
            return;
        }
        let mut ended: Vec<(u64, String)> = table
            .sessions
            .values()
            .filter(|s| !s.is_live())
            .map(|s| (s.seq(), s.id().to_owned()))
            .collect();
        ended.sort_unstable();
        let excess = table.sessions.len() - self.retained;
        for (_, id) in ended.into_iter().take(excess) {
            table.sessions.remove(&id);
        }
        let sessions = &table.sessions;
        table
            .tokens
            .retain(|_, (_, sid)| sessions.contains_key(sid));
    }

    /// The session `id` of `tool`.
    pub fn get(&self, tool: &str, id: &str) -> Option<Arc<S>> {
        self.table()
            .sessions
            .get(id)
            .filter(|s| s.tool() == tool)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<S>> {
        self.table().sessions.values().cloned().collect()
    }

    /// One page of `tool`'s sessions that `keep`, newest first, and the `nextToken` of the
    /// next page (`s<seq>`, opaque to clients).
    pub fn page(
        &self,
        tool: &str,
        next_token: Option<&str>,
        limit: usize,
        keep: impl Fn(&S) -> bool,
    ) -> Result<(Vec<Arc<S>>, Option<String>), ToolsError> {
        let before = match next_token {
            None => u64::MAX,
            Some(t) => t
                .strip_prefix('s')
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| ToolsError::Validation("Invalid nextToken".into()))?,
        };
        let mut matching: Vec<Arc<S>> = self
            .table()
            .sessions
            .values()
            .filter(|s| s.tool() == tool && s.seq() < before && keep(s))
            .cloned()
            .collect();
        matching.sort_unstable_by_key(|s| std::cmp::Reverse(s.seq()));
        let next = (matching.len() > limit).then(|| format!("s{}", matching[limit - 1].seq()));
        matching.truncate(limit);
        Ok((matching, next))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    struct S {
        seq: u64,
        tool: String,
        id: String,
        live: AtomicBool,
    }

    impl RegisteredSession for S {
        fn seq(&self) -> u64 {
            self.seq
        }
        fn tool(&self) -> &str {
            &self.tool
        }
        fn id(&self) -> &str {
            &self.id
        }
        fn is_live(&self) -> bool {
            self.live.load(Ordering::Relaxed)
        }
    }

    fn add(r: &Registry<S>, tool: &str, id: &str, token: Option<&str>, fp: &str) -> Arc<S> {
        match r.register(tool, token, fp, |seq| S {
            seq,
            tool: tool.into(),
            id: id.into(),
            live: AtomicBool::new(true),
        }) {
            Registration::New(s) | Registration::Existing(s) => s,
        }
    }

    #[test]
    fn tokens_replay_or_mismatch_per_tool() {
        let r = Registry::new(100);
        let a = add(&r, "t1", "A", Some("tok"), "fp");
        assert_eq!(r.replay("t1", Some("tok"), "fp").unwrap().unwrap().id, "A");
        assert!(r.replay("t1", Some("tok"), "other").is_err());
        assert!(r.replay("t2", Some("tok"), "fp").unwrap().is_none());
        // A second registration with the token gets the first session.
        assert!(Arc::ptr_eq(&add(&r, "t1", "B", Some("tok"), "fp"), &a));
        assert_eq!(r.live_count(), 1);
    }

    #[test]
    fn retention_forgets_the_oldest_ended_sessions_and_their_tokens() {
        let r = Registry::new(2);
        let a = add(&r, "t", "A", Some("ta"), "fp");
        add(&r, "t", "B", None, "fp");
        a.live.store(false, Ordering::Relaxed);
        add(&r, "t", "C", None, "fp");
        assert!(r.get("t", "A").is_none());
        assert!(r.replay("t", Some("ta"), "fp").unwrap().is_none());
        // Live sessions are never forgotten, whatever the limit.
        add(&r, "t", "D", None, "fp");
        assert_eq!(r.all().len(), 3);
    }

    #[test]
    fn pages_are_newest_first_and_complete() {
        let r = Registry::new(100);
        for i in 0..5 {
            add(&r, "t", &format!("S{i}"), None, "fp");
        }
        add(&r, "other", "X", None, "fp");
        let (first, next) = r.page("t", None, 2, |_| true).unwrap();
        assert_eq!(
            first.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["S4", "S3"]
        );
        let (second, next) = r.page("t", next.as_deref(), 2, |_| true).unwrap();
        assert_eq!(
            second.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["S2", "S1"]
        );
        let (last, next) = r.page("t", next.as_deref(), 2, |_| true).unwrap();
        assert_eq!(last.len(), 1);
        assert!(next.is_none());
        assert!(r.page("t", Some("bogus"), 2, |_| true).is_err());
        assert!(r.get("t", "X").is_none());
    }
}
