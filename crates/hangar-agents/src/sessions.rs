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

use crate::launch::{self, Endpoint, LaunchContext, Protocol};
use crate::provisioner::AgentProvisioner;
use crate::proxy::{self, AgentClient, Invocation, InvocationResponse};

pub const SESSION_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-session-id";
pub(crate) const MCP_SESSION_HEADER: &str = "mcp-session-id";
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
    /// The agent's environment, which commands run in the session get too.
    env: Vec<(String, String)>,
    /// `Mcp-Session-Id`s a stateful MCP server issued in this session (keys of
    /// `Inner::mcp_aliases`, dropped with the session).
    mcp_aliases: Mutex<Vec<String>>,
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
    /// (runtime id, `Mcp-Session-Id` a stateful MCP server issued) → the runtime session id
    /// whose sandbox issued it, so that the server's own ids route to it.
    mcp_aliases: Mutex<HashMap<SessionKey, String>>,
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
            mcp_aliases: Mutex::new(HashMap::new()),
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
        // MCP sessions route by `Mcp-Session-Id` (contract §A.4): a server-issued id routes to
        // the sandbox that issued it; any other id names the session itself (the platform's
        // own, generated for stateless servers). The MCP header wins over the runtime session
        // header, which SDKs fill with a fresh uuid on every call.
        let mcp_id = invocation
            .headers
            .get(MCP_SESSION_HEADER)
            .and_then(|v| v.to_str().ok());
        let session_id = match mcp_id {
            Some(mcp) => inner
                .mcp_alias(&runtime_id, mcp)
                .unwrap_or_else(|| mcp.to_owned()),
            None => invocation
                .session_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        };
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
            let mcp = session.endpoint.protocol == Protocol::Mcp;
            // A stateless MCP server is handed the platform's id; an `initialize` goes without
            // one, so that a stateful server issues its own instead of refusing an unknown id.
            if mcp
                && !headers.contains_key(MCP_SESSION_HEADER)
                && !is_mcp_initialize(&invocation.payload)
            {
                headers.insert(MCP_SESSION_HEADER, header_value(&session_id));
            }
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
            let (mut parts, body) = response.into_parts();
            if mcp {
                match parts
                    .headers
                    .get(MCP_SESSION_HEADER)
                    .and_then(|v| v.to_str().ok())
                {
                    Some(issued) if issued != session_id => inner.add_mcp_alias(&session, issued),
                    Some(_) => {}
                    None => {
                        parts
                            .headers
                            .insert(MCP_SESSION_HEADER, header_value(&session_id));
                    }
                }
            }
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
        let protocol = self.protocol(&runtime_id, qualifier).await?;
        if !protocol.has_websocket() {
            return Err(wrong_protocol(
                "The /ws WebSocket is served by HTTP and AGUI runtimes only",
                protocol,
            ));
        }
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

    /// GetAgentCard: the A2A agent's `/.well-known/agent-card.json`, fetched inside a session
    /// (started if needed) under the runtime's invocation path.
    pub async fn agent_card(
        &self,
        runtime: &str,
        qualifier: Option<&str>,
        session_id: Option<String>,
    ) -> Result<AgentCard, Error> {
        let runtime_id = self.inner.control.runtime_id_from_ref(runtime, None)?;
        let protocol = self.protocol(&runtime_id, qualifier).await?;
        if protocol != Protocol::A2a {
            return Err(wrong_protocol(
                "GetAgentCard is served by A2A runtimes only",
                protocol,
            ));
        }
        let session_id = session_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let span =
            tracing::info_span!("agent_card", runtime_id = %runtime_id, session_id = %session_id);
        async {
            let session = self.session(&runtime_id, qualifier, &session_id).await?;
            let _guard = ActivityGuard::new(session.clone());
            let url = format!(
                "http://127.0.0.1:{}{}/.well-known/agent-card.json",
                session.endpoint.port,
                session.endpoint.path.trim_end_matches('/')
            );
            let request = http::Request::get(url)
                .header(SESSION_HEADER, header_value(&session_id))
                .header(http::header::ACCEPT, "application/json")
                .body(http_body_util::Full::new(Bytes::new()))
                .map_err(|e| Error::Internal(format!("building the agent card request: {e}")))?;
            let response = match tokio::time::timeout(
                Duration::from_secs(60),
                session.client.request(request),
            )
            .await
            {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => {
                    return Err(unreachable_agent(&self.inner, &session, &e.to_string()).await)
                }
                Err(_) => {
                    return Err(Error::RuntimeClient(
                        "The agent did not serve its agent card within 60 s".into(),
                    ))
                }
            };
            let status = response.status();
            let body = read_prefix(response.into_body(), MAX_AGENT_CARD_BYTES + 1).await;
            if !status.is_success() {
                return Err(Error::RuntimeClient(format!(
                    "The agent answered HTTP {} for /.well-known/agent-card.json: {}",
                    status.as_u16(),
                    String::from_utf8_lossy(&body[..body.len().min(4096)])
                )));
            }
            if body.len() > MAX_AGENT_CARD_BYTES {
                return Err(Error::RuntimeClient(format!(
                    "The agent's card exceeds {MAX_AGENT_CARD_BYTES} bytes"
                )));
            }
            let card = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .filter(serde_json::Value::is_object)
                .ok_or_else(|| {
                    Error::RuntimeClient(format!(
                        "The agent's card is not a JSON object: {}",
                        String::from_utf8_lossy(&body[..body.len().min(512)])
                    ))
                })?;
            Ok(AgentCard {
                session_id: session_id.clone(),
                card,
            })
        }
        .instrument(span)
        .await
    }

    /// InvokeAgentRuntimeCommand: runs `sh -c command` inside the session's sandbox (started
    /// if needed) with the agent's environment, in its code directory; the output arrives as
    /// [`CommandEvent`]s while it runs. The session counts as active until the command ends;
    /// a command still running at `timeout`, or whose caller went away, is killed.
    pub async fn command(
        &self,
        runtime: &str,
        qualifier: Option<&str>,
        session_id: Option<String>,
        command: String,
        timeout: Duration,
    ) -> Result<CommandRun, Error> {
        let runtime_id = self.inner.control.runtime_id_from_ref(runtime, None)?;
        let session_id = session_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let span =
            tracing::info_span!("command", runtime_id = %runtime_id, session_id = %session_id);
        let session = self
            .session(&runtime_id, qualifier, &session_id)
            .instrument(span.clone())
            .await?;
        let guard = ActivityGuard::new(session.clone());
        let mut request = hangar_sandbox::ExecRequest::new("/bin/sh").args(["-c", &command]);
        request.env = session.env.clone();
        request.cwd = hangar_artifacts::SANDBOX_CODE_DIR.into();
        let mut process = session.sandbox.exec(request).await.map_err(|e| {
            Error::RuntimeClient(format!(
                "The command could not be started in the session: {e}"
            ))
        })?;
        let (tx, rx) = tokio::sync::mpsc::channel(32);
        tokio::spawn(
            async move {
                let _guard = guard;
                if tx.send(CommandEvent::Started).await.is_err() {
                    return;
                }
                let stdout = process.stdout.take();
                let stderr = process.stderr.take();
                let run = async {
                    tokio::join!(
                        relay_output(stdout, &tx, CommandEvent::Stdout),
                        relay_output(stderr, &tx, CommandEvent::Stderr)
                    );
                };
                let timed_out = tokio::select! {
                    finished = tokio::time::timeout(timeout, run) => finished.is_err(),
                    _ = tx.closed() => {
                        tracing::info!("the caller went away; killing the command");
                        let _ = process.start_kill();
                        let _ = process.wait().await;
                        return;
                    }
                };
                if timed_out {
                    let _ = process.start_kill();
                }
                let exit_code = match process.wait().await {
                    Ok(exit) => exit
                        .code
                        .or(exit.signal.map(|signal| 128 + signal))
                        .unwrap_or(-1),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not wait for the command");
                        -1
                    }
                };
                tracing::info!(exit_code, timed_out, "command ended");
                let _ = tx
                    .send(CommandEvent::Finished {
                        exit_code,
                        timed_out,
                    })
                    .await;
            }
            .instrument(span),
        );
        Ok(CommandRun {
            session_id,
            events: rx,
        })
    }

    /// The protocol of the version live on the endpoint: checked before a session is started
    /// for a request only some protocols serve.
    async fn protocol(&self, runtime_id: &str, qualifier: Option<&str>) -> Result<Protocol, Error> {
        let (_, version) = self
            .inner
            .control
            .invocation_target(runtime_id, qualifier)
            .await?;
        Ok(launch::endpoint(&version).protocol)
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
        let lifecycle = Lifecycle::from_config(&version.config)?;
        let endpoint = launch::endpoint(&version);
        let partition = self.control.partition();
        let runtime_arn = version.runtime_arn.clone();
        let spec = launch::session_spec(
            &version,
            &artifact,
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
        )
        .map_err(Error::RuntimeClient)?;
        let env = spec.env.clone();
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
            env,
            mcp_aliases: Mutex::new(Vec::new()),
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

    fn mcp_alias(&self, runtime_id: &str, mcp_session_id: &str) -> Option<String> {
        self.mcp_aliases
            .lock()
            .expect("poisoned")
            .get(&(runtime_id.to_owned(), mcp_session_id.to_owned()))
            .cloned()
    }

    /// Routes a stateful MCP server's own session id to the session that issued it.
    fn add_mcp_alias(&self, session: &AgentSession, issued: &str) {
        let key = (session.runtime_id.clone(), issued.to_owned());
        let mut aliases = self.mcp_aliases.lock().expect("poisoned");
        if aliases.insert(key, session.session_id.clone()).is_none() {
            session
                .mcp_aliases
                .lock()
                .expect("poisoned")
                .push(issued.to_owned());
            tracing::debug!(
                mcp_session_id = issued,
                "MCP server issued its own session id"
            );
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
        {
            let issued = std::mem::take(&mut *session.mcp_aliases.lock().expect("poisoned"));
            let mut aliases = self.mcp_aliases.lock().expect("poisoned");
            for id in issued {
                aliases.remove(&(key.0.clone(), id));
            }
        }
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

/// The largest agent card GetAgentCard passes on.
const MAX_AGENT_CARD_BYTES: usize = 1024 * 1024;
/// The most one output event of a command carries.
const COMMAND_CHUNK_BYTES: usize = 64 * 1024;

/// GetAgentCard's answer.
#[derive(Debug)]
pub struct AgentCard {
    pub session_id: String,
    pub card: serde_json::Value,
}

/// What a command run in a session reports, in order: `Started`, output as it comes,
/// `Finished`.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandEvent {
    Started,
    Stdout(String),
    Stderr(String),
    Finished { exit_code: i32, timed_out: bool },
}

/// A command running in a session; see [`SessionManager::command`]. Dropping `events` kills
/// the command.
pub struct CommandRun {
    pub session_id: String,
    pub events: tokio::sync::mpsc::Receiver<CommandEvent>,
}

/// The error for a request the runtime's protocol does not serve.
fn wrong_protocol(what: &str, protocol: Protocol) -> Error {
    Error::Validation {
        message: format!(
            "{what}; this runtime's serverProtocol is {}.",
            protocol.as_str()
        ),
        reason: hangar_domain::ValidationReason::FieldValidationFailed,
        fields: Vec::new(),
    }
}

/// Whether an MCP request body is (or, in a batch, contains) an `initialize` request. The
/// cheap substring test spares parsing every other request.
fn is_mcp_initialize(payload: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"\"initialize\"";
    if !payload.windows(NEEDLE.len()).any(|w| w == NEEDLE) {
        return false;
    }
    let is_init =
        |v: &serde_json::Value| v.get("method").and_then(|m| m.as_str()) == Some("initialize");
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Array(batch)) => batch.iter().any(is_init),
        Ok(v) => is_init(&v),
        Err(_) => false,
    }
}

/// Forwards one output stream of a command as events of at most [`COMMAND_CHUNK_BYTES`], as
/// UTF-8 (a character split across reads is held back for the next event; invalid bytes are
/// replaced). Stops early when the receiver is gone.
async fn relay_output(
    reader: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
    tx: &tokio::sync::mpsc::Sender<CommandEvent>,
    event: fn(String) -> CommandEvent,
) {
    use tokio::io::AsyncReadExt;
    let Some(mut reader) = reader else { return };
    let mut buf = vec![0u8; COMMAND_CHUNK_BYTES];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        let text = take_utf8(&mut pending);
        if !text.is_empty() && tx.send(event(text)).await.is_err() {
            return;
        }
    }
    if !pending.is_empty() {
        let _ = tx
            .send(event(String::from_utf8_lossy(&pending).into_owned()))
            .await;
    }
}

/// Takes the longest prefix of `bytes` that can be decoded now, leaving an incomplete
/// trailing character in place.
fn take_utf8(bytes: &mut Vec<u8>) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => {
            let s = s.to_owned();
            bytes.clear();
            s
        }
        Err(e) if e.error_len().is_none() => {
            let rest = bytes.split_off(e.valid_up_to());
            String::from_utf8(std::mem::replace(bytes, rest)).expect("valid prefix")
        }
        Err(_) => {
            let s = String::from_utf8_lossy(bytes).into_owned();
            bytes.clear();
            s
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_split_across_reads_is_held_back() {
        let mut pending = "aé".as_bytes().to_vec();
        let last = pending.pop().unwrap();
        assert_eq!(take_utf8(&mut pending), "a");
        assert_eq!(pending.len(), 1);
        pending.push(last);
        assert_eq!(take_utf8(&mut pending), "é");
        assert!(pending.is_empty());
        let mut bad = vec![b'x', 0xff, b'y'];
        assert_eq!(take_utf8(&mut bad), "x\u{fffd}y");
    }

    #[test]
    fn mcp_initialize_is_recognised_alone_and_in_batches() {
        let init = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#;
        assert!(is_mcp_initialize(init));
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"initialize"}]"#;
        assert!(is_mcp_initialize(batch));
        let call =
            br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"initialize"}}"#;
        assert!(!is_mcp_initialize(call));
        assert!(!is_mcp_initialize(b"\"initialize\" garbage"));
    }
}
