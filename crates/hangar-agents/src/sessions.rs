//! One sandbox per runtime session: start on first use, forward invocations, enforce the
//! lifecycle, stop.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hangar_domain::records::RuntimeVersionRecord;
use hangar_domain::{ControlPlane, Error, Lifecycle};
use hangar_model::Timestamp;
use hangar_sandbox::{Limits, Sandbox, SandboxBackend};
use http::{HeaderValue, Response};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use serde::Serialize;
use tracing::Instrument;

use crate::launch::{self, Endpoint, LaunchContext};
use crate::provisioner::{AgentProvisioner, Artifact};
use crate::proxy::{self, AgentClient, Invocation, InvocationResponse};

pub const SESSION_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-session-id";
const REQUEST_ID_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-request-id";
/// AgentCore's limit for a synchronous invocation to start answering.
const SYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// How much of an agent's stderr an error message quotes.
const STDERR_QUOTE_BYTES: usize = 2048;

#[derive(Debug, Clone)]
pub struct SessionsConfig {
    /// Limits of every session sandbox.
    pub limits: Limits,
    /// How long an agent may take from spawn to a healthy `GET /ping` (AgentCore: 30 s).
    pub startup_timeout: Duration,
    /// How often sessions are checked against their idle timeout and maximum lifetime.
    pub reap_interval: Duration,
    /// How many ended sessions' output tails are kept for the logs route.
    pub ended_sessions_kept: usize,
    /// The URL prefix agents are told they are reachable at (`AGENTCORE_RUNTIME_URL`).
    pub public_url: String,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            limits: Limits::default(),
            startup_timeout: Duration::from_secs(30),
            reap_interval: Duration::from_millis(500),
            ended_sessions_kept: 256,
            public_url: "http://127.0.0.1:4747".into(),
        }
    }
}

type SessionKey = (String, String);

/// A live session, as Hangar's own `/_hangar/sessions` route shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub agent_runtime_id: String,
    pub runtime_session_id: String,
    pub version: String,
    pub started_at: Timestamp,
    pub last_activity_at: Timestamp,
    pub status: &'static str,
    pub memory_bytes: Option<u64>,
}

/// The bounded tails of a session's agent output.
#[derive(Debug, Clone, Serialize)]
pub struct SessionLogs {
    pub stdout: String,
    pub stderr: String,
}

struct AgentSession {
    runtime_id: String,
    session_id: String,
    version: u32,
    endpoint: Endpoint,
    sandbox: Arc<dyn Sandbox>,
    client: AgentClient,
    started: Instant,
    started_at: Timestamp,
    activity: Mutex<(Instant, Timestamp)>,
    /// Requests in progress, including responses still streaming.
    in_flight: AtomicUsize,
    lifecycle: Lifecycle,
    /// `requestHeaderConfiguration.requestHeaderAllowlist` of the session's version.
    header_allowlist: Vec<String>,
}

impl AgentSession {
    fn touch(&self) {
        *self.activity.lock().expect("poisoned") = (Instant::now(), Timestamp::now());
    }

    fn logs(&self) -> SessionLogs {
        SessionLogs {
            stdout: self.sandbox.stdout_tail(64 * 1024),
            stderr: self.sandbox.stderr_tail(64 * 1024),
        }
    }
}

/// Only one start per session, however many invocations arrive at once.
#[derive(Default)]
struct Slot {
    session: tokio::sync::OnceCell<Arc<AgentSession>>,
}

pub struct SessionManager {
    inner: Arc<Inner>,
}

struct Inner {
    control: ControlPlane,
    provisioner: Arc<AgentProvisioner>,
    backend: Arc<dyn SandboxBackend>,
    config: SessionsConfig,
    sessions: Mutex<HashMap<SessionKey, Arc<Slot>>>,
    ended: Mutex<VecDeque<(SessionKey, SessionLogs)>>,
}

impl SessionManager {
    /// Reaps what a crashed predecessor left and starts the lifecycle reaper.
    pub async fn start(
        control: ControlPlane,
        provisioner: Arc<AgentProvisioner>,
        backend: Arc<dyn SandboxBackend>,
        config: SessionsConfig,
    ) -> Result<Self, Error> {
        let reaped = backend
            .reap_orphans()
            .await
            .map_err(|e| Error::Internal(format!("reaping leftover sandboxes: {e}")))?;
        if reaped > 0 {
            tracing::info!(reaped, "removed sandboxes a previous run left behind");
        }
        let inner = Arc::new(Inner {
            control,
            provisioner,
            backend,
            config,
            sessions: Mutex::new(HashMap::new()),
            ended: Mutex::new(VecDeque::new()),
        });
        tokio::spawn(reaper(Arc::downgrade(&inner)));
        Ok(SessionManager { inner })
    }

    /// InvokeAgentRuntime: route to the session's sandbox (starting it if needed) and stream
    /// the agent's answer back.
    pub async fn invoke(&self, invocation: Invocation) -> Result<InvocationResponse, Error> {
        let inner = &self.inner;
        let runtime_id = inner
            .control
            .runtime_id_from_ref(&invocation.runtime, None)?;
        let session_id = invocation
            .session_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let span =
            tracing::info_span!("invoke", runtime_id = %runtime_id, session_id = %session_id);
        async move {
            let session = self
                .session(&runtime_id, invocation.qualifier.as_deref(), &session_id)
                .await?;
            let guard = ActivityGuard::new(session.clone());
            let mut headers =
                proxy::forwarded_headers(&invocation.headers, &session.header_allowlist);
            headers.insert(SESSION_HEADER, header_value(&session_id));
            headers.insert(REQUEST_ID_HEADER, header_value(&invocation.request_id));
            let request = proxy::build_request(
                session.endpoint.port,
                &session.endpoint.path,
                &headers,
                invocation.payload,
            )
            .map_err(|e| Error::Internal(format!("building the agent request: {e}")))?;
            let response =
                match tokio::time::timeout(SYNC_REQUEST_TIMEOUT, session.client.request(request))
                    .await
                {
                    Ok(Ok(response)) => response,
                    Ok(Err(e)) => {
                        return Err(unreachable_agent(inner, &session, &e.to_string()).await)
                    }
                    Err(_) => {
                        return Err(Error::RuntimeClient(format!(
                            "The agent did not start answering within {} minutes",
                            SYNC_REQUEST_TIMEOUT.as_secs() / 60
                        )))
                    }
                };
            let status = response.status();
            if !status.is_success() {
                // The agent's own error: quote it (bounded) as AgentCore's RuntimeClientError.
                let body = read_prefix(response.into_body(), 4096).await;
                return Err(Error::RuntimeClient(format!(
                    "The agent answered HTTP {}: {}",
                    status.as_u16(),
                    String::from_utf8_lossy(&body)
                )));
            }
            let (parts, body) = response.into_parts();
            Ok(InvocationResponse {
                session_id: session_id.clone(),
                response: Response::from_parts(
                    parts,
                    GuardedBody {
                        inner: body,
                        _guard: guard,
                    },
                ),
            })
        }
        .instrument(span)
        .await
    }

    /// A connection to the agent of a session (started if needed) on its protocol port, for
    /// callers that speak to the agent themselves (the `/ws` WebSocket). The session counts as
    /// active while the connection is held.
    pub async fn connect(
        &self,
        runtime: &str,
        qualifier: Option<&str>,
        session_id: Option<String>,
    ) -> Result<SessionStream, Error> {
        let runtime_id = self.inner.control.runtime_id_from_ref(runtime, None)?;
        let session_id = session_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let session = self.session(&runtime_id, qualifier, &session_id).await?;
        let guard = ActivityGuard::new(session.clone());
        let stream = session
            .sandbox
            .connect(session.endpoint.port)
            .await
            .map_err(|e| Error::RuntimeClient(format!("The agent could not be reached: {e}")))?;
        Ok(SessionStream {
            session_id,
            port: session.endpoint.port,
            stream,
            _guard: guard,
        })
    }

    /// StopRuntimeSession.
    pub async fn stop(
        &self,
        runtime: &str,
        qualifier: Option<&str>,
        session_id: &str,
    ) -> Result<(), Error> {
        let runtime_id = self.inner.control.runtime_id_from_ref(runtime, None)?;
        // The runtime and endpoint must exist even if the session does not.
        if let Err(e @ Error::NotFound(_)) = self
            .inner
            .control
            .invocation_target(&runtime_id, qualifier)
            .await
        {
            return Err(e);
        }
        let key = (runtime_id, session_id.to_owned());
        match self.inner.end(&key, "stopped").await {
            true => Ok(()),
            false => Err(Error::NotFound(format!(
                "Session {session_id} not found or already terminated"
            ))),
        }
    }

    pub fn list(&self) -> Vec<SessionInfo> {
        let slots: Vec<Arc<Slot>> = self
            .inner
            .sessions
            .lock()
            .expect("poisoned")
            .values()
            .cloned()
            .collect();
        slots
            .iter()
            .filter_map(|slot| slot.session.get())
            .map(|s| SessionInfo {
                agent_runtime_id: s.runtime_id.clone(),
                runtime_session_id: s.session_id.clone(),
                version: s.version.to_string(),
                started_at: s.started_at,
                last_activity_at: s.activity.lock().expect("poisoned").1,
                status: if s.in_flight.load(Ordering::Relaxed) > 0 {
                    "ACTIVE"
                } else {
                    "IDLE"
                },
                memory_bytes: s.sandbox.memory_usage_bytes(),
            })
            .collect()
    }

    /// The output tails of a live or recently ended session.
    pub fn logs(&self, runtime_id: &str, session_id: &str) -> Option<SessionLogs> {
        let key = (runtime_id.to_owned(), session_id.to_owned());
        let live = self
            .inner
            .sessions
            .lock()
            .expect("poisoned")
            .get(&key)
            .cloned();
        if let Some(session) = live.as_ref().and_then(|slot| slot.session.get()) {
            return Some(session.logs());
        }
        self.inner
            .ended
            .lock()
            .expect("poisoned")
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, logs)| logs.clone())
    }

    /// Ends every session (server shutdown).
    pub async fn shutdown(&self) {
        let keys: Vec<SessionKey> = self
            .inner
            .sessions
            .lock()
            .expect("poisoned")
            .keys()
            .cloned()
            .collect();
        for key in keys {
            self.inner.end(&key, "server shutdown").await;
        }
    }

    /// The live session for `(runtime, session id)`, started on the endpoint's live version if
    /// there is none (or the previous one died).
    async fn session(
        &self,
        runtime_id: &str,
        qualifier: Option<&str>,
        session_id: &str,
    ) -> Result<Arc<AgentSession>, Error> {
        let inner = &self.inner;
        let key = (runtime_id.to_owned(), session_id.to_owned());
        loop {
            let slot = inner
                .sessions
                .lock()
                .expect("poisoned")
                .entry(key.clone())
                .or_default()
                .clone();
            let started = slot
                .session
                .get_or_try_init(|| async {
                    let (_, version) = inner
                        .control
                        .invocation_target(runtime_id, qualifier)
                        .await?;
                    inner.start(session_id, version).await
                })
                .await;
            match started {
                Ok(session) if session.sandbox.exited().is_some() => {
                    // It died since its last request: that session is over; start afresh.
                    inner.end(&key, "agent exited").await;
                    continue;
                }
                Ok(session) => {
                    session.touch();
                    return Ok(session.clone());
                }
                Err(e) => {
                    inner.forget_slot(&key, &slot);
                    return Err(e);
                }
            }
        }
    }
}

impl Inner {
    async fn start(
        &self,
        session_id: &str,
        version: RuntimeVersionRecord,
    ) -> Result<Arc<AgentSession>, Error> {
        let artifact = self
            .provisioner
            .artifact(&version)
            .await
            .map_err(|reason| Error::RuntimeClient(reason.0))?;
        let code = match artifact {
            Artifact::Code(code) => code,
            Artifact::Container { uri } => {
                return Err(Error::RuntimeClient(format!(
                    "Container image {uri} cannot be run: this server runs code artifacts (codeConfiguration) only"
                )))
            }
        };
        let lifecycle = Lifecycle::from_config(&version.config)?;
        let endpoint = launch::endpoint(&version);
        let partition = self.control.partition();
        let runtime_arn = version.runtime_arn.clone();
        let spec = launch::code_session_spec(
            &version,
            &code,
            &LaunchContext {
                session_id,
                region: &partition.region,
                endpoint_arn: &runtime_arn,
                invocation_url: format!(
                    "{}/runtimes/{}/invocations/",
                    self.config.public_url,
                    percent_encode(&runtime_arn)
                ),
                limits: self.config.limits,
            },
        );
        let sandbox: Arc<dyn Sandbox> = Arc::from(match self.backend.spawn(spec.clone()).await {
            Ok(sandbox) => sandbox,
            Err(first) => {
                // Seen rarely under load (bwrap's loopback set-up racing the network helper);
                // a second start succeeds.
                tracing::warn!(error = %first, "session sandbox failed to start; retrying once");
                self.backend.spawn(spec).await.map_err(|e| {
                    tracing::warn!(error = %e, "session sandbox failed to start");
                    Error::RuntimeClient(format!("The session sandbox could not be started: {e}"))
                })?
            }
        });
        let client = proxy::client(sandbox.clone());
        let now = Instant::now();
        let session = Arc::new(AgentSession {
            runtime_id: version.runtime_id.clone(),
            session_id: session_id.to_owned(),
            version: version.version,
            endpoint,
            sandbox,
            client,
            started: now,
            started_at: Timestamp::now(),
            activity: Mutex::new((now, Timestamp::now())),
            in_flight: AtomicUsize::new(0),
            lifecycle,
            header_allowlist: proxy::effective_allowlist(&version.config),
        });
        if let Err(e) = self.wait_healthy(&session).await {
            let key = (session.runtime_id.clone(), session.session_id.clone());
            self.remember_logs(key, session.logs());
            let _ = session.sandbox.kill().await;
            return Err(e);
        }
        tracing::info!(
            version = version.version,
            elapsed_ms = now.elapsed().as_millis() as u64,
            "session started"
        );
        Ok(session)
    }

    /// Polls `GET /ping` until the agent answers, it exits, or the contract's time runs out.
    async fn wait_healthy(&self, session: &AgentSession) -> Result<(), Error> {
        let deadline = Instant::now() + self.config.startup_timeout;
        let mut pause = Duration::from_millis(2);
        loop {
            if let Some(exit) = session.sandbox.exited() {
                return Err(Error::RuntimeClient(format!(
                    "The agent exited during initialization ({exit}). Its stderr ends with:\n{}",
                    session.sandbox.stderr_tail(STDERR_QUOTE_BYTES)
                )));
            }
            let ping =
                http::Request::get(format!("http://127.0.0.1:{}/ping", session.endpoint.port))
                    .body(http_body_util::Full::new(Bytes::new()))
                    .expect("static request");
            // Any HTTP answer means the server is up (MCP servers need not serve /ping).
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_secs(2), session.client.request(ping)).await
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::RuntimeClient(format!(
                    "Runtime initialization time exceeded. Please make sure that initialization completes in {}s. The agent's stderr ends with:\n{}",
                    self.config.startup_timeout.as_secs(),
                    session.sandbox.stderr_tail(STDERR_QUOTE_BYTES)
                )));
            }
            tokio::time::sleep(pause).await;
            // Agents take ~0.3 s to import: poll often enough that the poll adds little.
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    fn forget_slot(&self, key: &SessionKey, slot: &Arc<Slot>) {
        let mut sessions = self.sessions.lock().expect("poisoned");
        if sessions.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            sessions.remove(key);
        }
    }

    fn remember_logs(&self, key: SessionKey, logs: SessionLogs) {
        let mut ended = self.ended.lock().expect("poisoned");
        ended.push_back((key, logs));
        while ended.len() > self.config.ended_sessions_kept {
            ended.pop_front();
        }
    }

    /// Ends a session: forgets it, keeps its output tails, kills its sandbox. False when there
    /// was no such live session.
    async fn end(&self, key: &SessionKey, why: &str) -> bool {
        let slot = self.sessions.lock().expect("poisoned").remove(key);
        let Some(session) = slot.and_then(|slot| slot.session.get().cloned()) else {
            return false;
        };
        tracing::info!(runtime_id = %key.0, session_id = %key.1, why, "session ended");
        self.remember_logs(key.clone(), session.logs());
        if let Err(e) = session.sandbox.kill().await {
            tracing::warn!(runtime_id = %key.0, session_id = %key.1, error = %e, "could not kill the session sandbox");
        }
        true
    }

    /// `HealthyBusy`: the agent has background work, which keeps its session alive.
    async fn busy(&self, session: &AgentSession) -> bool {
        let ping = http::Request::get(format!("http://127.0.0.1:{}/ping", session.endpoint.port))
            .body(http_body_util::Full::new(Bytes::new()))
            .expect("static request");
        let Ok(Ok(response)) =
            tokio::time::timeout(Duration::from_secs(2), session.client.request(ping)).await
        else {
            return false;
        };
        let body = read_prefix(response.into_body(), 1024).await;
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("status")
                    .and_then(|s| s.as_str())
                    .map(|s| s == "HealthyBusy")
            })
            .unwrap_or(false)
    }
}

/// Ends sessions past their maximum lifetime, idle past their idle timeout (unless the agent
/// reports `HealthyBusy`), or whose agent exited.
async fn reaper(inner: std::sync::Weak<Inner>) {
    loop {
        let Some(inner) = inner.upgrade() else { return };
        tokio::time::sleep(inner.config.reap_interval).await;
        let sessions: Vec<Arc<AgentSession>> = inner
            .sessions
            .lock()
            .expect("poisoned")
            .values()
            .filter_map(|slot| slot.session.get().cloned())
            .collect();
        for session in sessions {
            let key = (session.runtime_id.clone(), session.session_id.clone());
            let max_lifetime = Duration::from_secs(session.lifecycle.max_lifetime as u64);
            let idle_timeout =
                Duration::from_secs(session.lifecycle.idle_runtime_session_timeout as u64);
            if session.sandbox.exited().is_some() {
                inner.end(&key, "agent exited").await;
            } else if session.started.elapsed() >= max_lifetime {
                inner.end(&key, "maximum lifetime reached").await;
            } else if session.in_flight.load(Ordering::Acquire) == 0
                && session.activity.lock().expect("poisoned").0.elapsed() >= idle_timeout
            {
                if inner.busy(&session).await {
                    session.touch();
                } else {
                    inner.end(&key, "idle timeout").await;
                }
            }
        }
    }
}

async fn unreachable_agent(inner: &Inner, session: &AgentSession, error: &str) -> Error {
    // Give a crashing agent a moment to be seen as exited, so the caller learns why.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let key = (session.runtime_id.clone(), session.session_id.clone());
    let message = match session.sandbox.exited() {
        Some(exit) => format!(
            "The agent exited ({exit}). Its stderr ends with:\n{}",
            session.sandbox.stderr_tail(STDERR_QUOTE_BYTES)
        ),
        None => format!("The agent could not be reached: {error}"),
    };
    if session.sandbox.exited().is_some() {
        inner.end(&key, "agent exited").await;
    }
    Error::RuntimeClient(message)
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn read_prefix(mut body: Incoming, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < max {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data[..data.len().min(max - out.len())]);
                }
            }
            _ => break,
        }
    }
    out
}

/// A raw connection to a session's agent; see [`SessionManager::connect`].
pub struct SessionStream {
    pub session_id: String,
    /// The agent's port inside its sandbox.
    pub port: u16,
    pub stream: tokio::net::TcpStream,
    _guard: ActivityGuard,
}

impl SessionStream {
    /// The connection, and what keeps the session counted as active until dropped.
    pub fn into_parts(self) -> (tokio::net::TcpStream, ActiveSession) {
        (self.stream, ActiveSession(self._guard))
    }

    /// What of the caller's headers the agent may see on this connection: the same rules
    /// (and the session version's allowlist) as for invocations.
    pub fn forwarded_headers(&self, caller: &http::HeaderMap) -> http::HeaderMap {
        crate::proxy::forwarded_headers(caller, &self._guard.0.header_allowlist)
    }
}

/// Keeps a session counted as active (not idle) while held.
pub struct ActiveSession(#[allow(dead_code)] ActivityGuard);

/// Counts a request as in flight until its response body has been sent (or dropped).
struct ActivityGuard(Arc<AgentSession>);

impl ActivityGuard {
    fn new(session: Arc<AgentSession>) -> Self {
        session.in_flight.fetch_add(1, Ordering::AcqRel);
        ActivityGuard(session)
    }
}

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The agent's response body, keeping its session active while it streams.
pub struct GuardedBody {
    inner: Incoming,
    _guard: ActivityGuard,
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
