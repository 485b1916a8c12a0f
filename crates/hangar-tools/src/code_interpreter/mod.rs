//! Code-interpreter sessions: `StartCodeInterpreterSession`, `GetCodeInterpreterSession`,
//! `ListCodeInterpreterSessions`, `StopCodeInterpreterSession` and `InvokeCodeInterpreter`, for
//! the built-in `aws.codeinterpreter.v1` and custom code interpreters.
//!
//! Each session is one sandbox (taken from a [`Pool`]) whose main program is the driver
//! (`driver.py`, embedded): it listens on a port of the sandbox's own loopback and carries out
//! the nine tools; Python runs in a long-lived kernel process beside it, so state persists
//! between `executeCode` calls and a crash in user code costs only the kernel. Hangar keeps one
//! connection per session and sends one tool call at a time (calls of a session are
//! serialized, as on one Jupyter kernel).
//!
//! Decisions (see also README):
//! - Sessions are kept in memory: a restart of Hangar ends them (their sandboxes are reaped
//!   as orphans). TERMINATED sessions stay listable until [`CodeInterpreterConfig::retained`]
//!   newer ones push them out.
//! - The working directory is a private tmpfs (`/workspace`, also `$HOME`) that counts against
//!   the session's memory limit; every file tool is confined to it.
//! - An unknown session, one of another code interpreter, and an ended one are all
//!   `ResourceNotFoundException` (HTTP 404) before the stream starts; a tool's bad arguments
//!   are a `validationException` frame in the stream; failures of the code itself are a
//!   `result` with `isError: true`.
//! - `certificates` and `filesystemConfigurations` are recorded and echoed but not applied:
//!   there is no Secrets Manager, EFS or S3 Files on a single host.
//! - One `result` event per call, sent when the tool has finished (no incremental output).
//!   `executionTime` is in seconds (what AWS's observed values are, whatever the model's
//!   documentation says).
//! - Results: `removeFiles` / `writeFiles` answer one text block; `startCommandExecution`
//!   answers `taskStatus: working` with the `taskId`; `getTask` gives the status (`working`,
//!   `completed` for exit code 0, `failed` otherwise, `canceled` after `stopTask`) with the
//!   output so far; `readFiles` gives a `text` resource for UTF-8 content without NUL bytes and
//!   a base64 `blob` otherwise, URIs `file:///<path relative to the working directory>`;
//!   `listFiles` takes `directoryPath`, else `path`.
//! - JavaScript runs as a fresh Node.js process per call (no state between calls;
//!   `clearContext` only concerns Python, as the SDK documents).
//! - TypeScript runs on deno where it is installed (runtime unset or `deno`). Otherwise, and
//!   always with runtime `nodejs`, the driver transpiles the cell with the TypeScript compiler's
//!   Node.js module (`transpileModule`: CommonJS, ES2022, inline source maps so stack traces
//!   name the cell's lines; Debian's `node-typescript` or a global npm `typescript`, found via
//!   `NODE_PATH`) in a small Node runner, then runs the output like a javascript cell (same
//!   working directory, per-call limit covering both steps, output caps and result shape).
//!   Syntax errors are an `isError` result with the compiler's diagnostics on stderr; no type
//!   checking is done (as with deno's default and Node's type stripping). Runtime `deno`
//!   without deno, or neither deno nor the module, is an `isError` result saying how to fix it.
//! - A session of a custom code interpreter that is not READY cannot start (ConflictException);
//!   more than [`CodeInterpreterConfig::max_live_sessions`] live sessions is
//!   ServiceQuotaExceededException; a reused `clientToken` with another request is a
//!   ValidationException (IdempotentParameterMismatchException).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use hangar_domain::records::{ToolKind, ToolStatus};
use hangar_domain::ControlPlane;
use hangar_model::data::{
    Certificate, CodeInterpreterResult, CodeInterpreterSessionStatus,
    CodeInterpreterSessionSummary, CodeInterpreterStreamOutput, ContentBlock, ContentBlockType,
    GetCodeInterpreterSessionResponse, InternalServerException, InvokeCodeInterpreterRequest,
    ListCodeInterpreterSessionsRequest, ListCodeInterpreterSessionsResponse,
    StartCodeInterpreterSessionRequest, StartCodeInterpreterSessionResponse,
    StopCodeInterpreterSessionResponse, ToolsFileSystemConfiguration, ValidationException,
    ValidationExceptionReason,
};
use hangar_model::Timestamp;
use hangar_sandbox::{Limits, Mount, Sandbox, SandboxBackend, SandboxSpec};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tracing::Instrument;

use crate::pool::{Pool, Pooled, ToolNetwork};
use crate::registry::{RegisteredSession, Registration, Registry};
use crate::ToolsError;

/// The driver program, mounted read-only into every sandbox.
const DRIVER: &str = include_str!("driver.py");
const DRIVER_PATH: &str = "/opt/hangar/code-interpreter-driver.py";
/// The session's working directory (and `$HOME`), inside the sandbox.
pub const WORKDIR: &str = "/workspace";
/// The driver's port on the sandbox's own loopback.
const DRIVER_PORT: u16 = 9700;
/// The model's default and maximum `sessionTimeoutSeconds`.
pub const DEFAULT_SESSION_TIMEOUT_SECS: i32 = 900;
pub const MAX_SESSION_TIMEOUT_SECS: i32 = 28_800;

/// How code-interpreter sessions are run.
#[derive(Debug, Clone)]
pub struct CodeInterpreterConfig {
    /// The Python the driver and kernel run on (inside the sandbox, which sees the host's
    /// system directories read-only). The system Python, not a pyenv shim: the shim costs
    /// 100+ ms per start.
    pub python: PathBuf,
    /// Memory / CPU / process limits of each session.
    pub limits: Limits,
    /// Size limit of the working directory (a tmpfs within the memory limit).
    pub workspace_bytes: u64,
    /// The per-call limit of `executeCode` / `executeCommand`: at it the code is interrupted
    /// (Python: KeyboardInterrupt, then a kernel restart) or the command killed, and the call
    /// answers with `isError`; the session lives on.
    pub call_timeout: Duration,
    /// Bytes of stdout and of stderr kept per call (or background task); the rest is dropped
    /// with a marker saying how much.
    pub output_cap_bytes: usize,
    /// Pre-started sandboxes kept per network mode.
    pub pool_size: usize,
    /// Live (READY) sessions at most, over all code interpreters.
    pub max_live_sessions: usize,
    /// Sessions (live and TERMINATED) kept for Get/List; the oldest TERMINATED go first.
    pub retained: usize,
}

impl Default for CodeInterpreterConfig {
    fn default() -> Self {
        CodeInterpreterConfig {
            python: PathBuf::from("/usr/bin/python3"),
            limits: Limits::default(),
            workspace_bytes: 512 << 20,
            call_timeout: Duration::from_secs(60),
            output_cap_bytes: 1 << 20,
            pool_size: 2,
            max_live_sessions: 64,
            retained: 10_000,
        }
    }
}

/// One tool call's connection to a session's driver: JSON lines each way.
struct Driver {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    line: String,
}

impl Driver {
    async fn call(
        &mut self,
        tool: &str,
        arguments: Value,
        limits: Value,
    ) -> std::io::Result<Value> {
        self.next_id += 1;
        let mut request = serde_json::to_vec(&json!({
            "id": self.next_id, "tool": tool, "arguments": arguments, "limits": limits,
        }))?;
        request.push(b'\n');
        self.writer.write_all(&request).await?;
        self.line.clear();
        if self.reader.read_line(&mut self.line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the driver closed the connection",
            ));
        }
        let answer: Value = serde_json::from_str(&self.line)?;
        if answer.get("id").and_then(Value::as_u64) != Some(self.next_id) {
            return Err(std::io::Error::other("the driver answered out of turn"));
        }
        Ok(answer)
    }
}

/// A started sandbox with its driver answering: what the pool holds.
pub struct WarmSandbox {
    id: String,
    sandbox: Arc<dyn Sandbox>,
    driver: Driver,
}

impl Pooled for WarmSandbox {
    fn usable(&self) -> bool {
        self.sandbox.exited().is_none()
    }
}

async fn launch(
    backend: Arc<dyn SandboxBackend>,
    cfg: Arc<CodeInterpreterConfig>,
    network: ToolNetwork,
) -> Result<WarmSandbox, ToolsError> {
    // The session id is chosen now, so the sandbox's cgroup and logs carry the id the session
    // will have.
    let id = crate::new_session_id();
    let span = tracing::info_span!("code_interpreter_sandbox", session = %id);
    async move {
        let t0 = Instant::now();
        let mut spec = SandboxSpec::new(&id, &cfg.python);
        spec.args = vec!["-I".into(), DRIVER_PATH.into()];
        spec.cwd = WORKDIR.into();
        spec.env = vec![
            ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
            ("HOME".into(), WORKDIR.into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
            ("MPLBACKEND".into(), "Agg".into()),
            ("HANGAR_CI_WORKDIR".into(), WORKDIR.into()),
            ("HANGAR_CI_PORT".into(), DRIVER_PORT.to_string()),
            (
                "HANGAR_CI_OUTPUT_CAP".into(),
                cfg.output_cap_bytes.to_string(),
            ),
            (
                "HANGAR_CI_CALL_TIMEOUT".into(),
                cfg.call_timeout.as_secs_f64().to_string(),
            ),
        ];
        spec.mounts.push(Mount::File {
            inside: DRIVER_PATH.into(),
            contents: DRIVER.as_bytes().to_vec(),
            mode: 0o444,
        });
        spec.mounts.push(Mount::Tmpfs {
            inside: WORKDIR.into(),
            size_bytes: cfg.workspace_bytes,
        });
        spec.limits = cfg.limits;
        spec.network = network.sandbox_mode();
        let sandbox: Arc<dyn Sandbox> = Arc::from(backend.spawn(spec).await?);
        // The driver listens a few milliseconds after the sandbox is up.
        let deadline = Instant::now() + Duration::from_secs(10);
        let stream = loop {
            match sandbox.connect(DRIVER_PORT).await {
                Ok(s) => break s,
                Err(e) => {
                    if sandbox.exited().is_some() || Instant::now() > deadline {
                        let stderr = sandbox.stderr_tail(2000);
                        let _ = sandbox.kill().await;
                        return Err(ToolsError::Internal(format!(
                            "the code-interpreter driver did not start: {e}; stderr: {stderr}"
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let mut driver = Driver {
            reader: BufReader::with_capacity(64 * 1024, r),
            writer: w,
            next_id: 0,
            line: String::new(),
        };
        if let Err(e) = driver.call("ping", json!({}), json!({})).await {
            let _ = sandbox.kill().await;
            return Err(ToolsError::Internal(format!(
                "the code-interpreter driver did not answer: {e}"
            )));
        }
        tracing::debug!(
            elapsed_ms = t0.elapsed().as_millis() as u64,
            ?network,
            "code-interpreter sandbox ready"
        );
        Ok(WarmSandbox {
            id: id.clone(),
            sandbox,
            driver,
        })
    }
    .instrument(span)
    .await
}

struct SessionState {
    status: CodeInterpreterSessionStatus,
    last_updated_at: Timestamp,
    /// Present while READY.
    sandbox: Option<Arc<dyn Sandbox>>,
    /// The session's timeout timer, cancelled when it ends otherwise (so a stopped session
    /// with an 8-hour timeout holds no task).
    timer: Option<tokio::task::AbortHandle>,
}

struct Session {
    seq: u64,
    code_interpreter: String,
    id: String,
    name: Option<String>,
    created_at: Timestamp,
    timeout_secs: i32,
    certificates: Option<Vec<Certificate>>,
    filesystem_configurations: Option<Vec<ToolsFileSystemConfiguration>>,
    state: Mutex<SessionState>,
    /// The driver connection; held for the length of one tool call.
    driver: tokio::sync::Mutex<Option<Driver>>,
}

impl Session {
    fn state(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn summary(&self) -> CodeInterpreterSessionSummary {
        let st = self.state();
        CodeInterpreterSessionSummary {
            code_interpreter_identifier: self.code_interpreter.clone(),
            created_at: self.created_at,
            last_updated_at: Some(st.last_updated_at),
            name: self.name.clone(),
            session_id: self.id.clone(),
            status: st.status,
        }
    }
}

impl RegisteredSession for Session {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn tool(&self) -> &str {
        &self.code_interpreter
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn is_live(&self) -> bool {
        self.state().status == CodeInterpreterSessionStatus::Ready
    }
}

/// The code-interpreter sessions of this server.
pub struct CodeInterpreters {
    control: ControlPlane,
    cfg: Arc<CodeInterpreterConfig>,
    pool: Pool<WarmSandbox>,
    sessions: Registry<Session>,
    this: Weak<CodeInterpreters>,
}

fn not_found(ci: &str, session: &str) -> ToolsError {
    ToolsError::NotFound(format!(
        "Session {session} not found for code interpreter {ci}"
    ))
}

impl CodeInterpreters {
    /// Sessions run in sandboxes of `backend`; the pool of the built-in interpreter's
    /// network mode (SANDBOX) starts filling at once.
    pub fn new(
        control: ControlPlane,
        backend: Arc<dyn SandboxBackend>,
        cfg: CodeInterpreterConfig,
    ) -> Arc<Self> {
        let cfg = Arc::new(cfg);
        let launch_cfg = cfg.clone();
        let pool = Pool::new(cfg.pool_size, move |network| {
            launch(backend.clone(), launch_cfg.clone(), network)
        });
        pool.fill(ToolNetwork::Sandbox);
        let retained = cfg.retained;
        Arc::new_cyclic(|this| CodeInterpreters {
            control,
            cfg,
            pool,
            sessions: Registry::new(retained),
            this: this.clone(),
        })
    }

    pub fn config(&self) -> &CodeInterpreterConfig {
        &self.cfg
    }

    /// Ready sandboxes in the pool of `network`.
    pub fn pooled(&self, network: ToolNetwork) -> usize {
        self.pool.idle(network)
    }

    /// The network of a code interpreter that can start sessions.
    async fn resolve(&self, id: &str) -> Result<ToolNetwork, ToolsError> {
        let tool = self
            .control
            .tool(ToolKind::CodeInterpreter, id)
            .await
            .map_err(|e| match e {
                hangar_domain::Error::NotFound(_) => {
                    ToolsError::NotFound(format!("Code interpreter not found: {id}"))
                }
                e => e.into(),
            })?;
        if tool.status != ToolStatus::Ready {
            return Err(ToolsError::Conflict(format!(
                "Code interpreter {id} is {}; sessions can start only when it is READY",
                serde_json::to_value(tool.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            )));
        }
        let mode = tool
            .config
            .get("networkConfiguration")
            .and_then(|n| n.get("networkMode"))
            .and_then(Value::as_str);
        // VPC: on one host there is no customer VPC to attach to; it behaves like PUBLIC.
        Ok(match mode {
            Some("SANDBOX") => ToolNetwork::Sandbox,
            _ => ToolNetwork::Public,
        })
    }

    pub async fn start(
        &self,
        request: StartCodeInterpreterSessionRequest,
    ) -> Result<StartCodeInterpreterSessionResponse, ToolsError> {
        let ci = request.code_interpreter_identifier.clone();
        let network = self.resolve(&ci).await?;
        let fingerprint = {
            let mut r = request.clone();
            r.client_token = None;
            r.trace_id = None;
            r.trace_parent = None;
            serde_json::to_string(&r).unwrap_or_default()
        };
        let token = request.client_token.as_deref();
        let replay = |s: &Session| StartCodeInterpreterSessionResponse {
            code_interpreter_identifier: s.code_interpreter.clone(),
            created_at: s.created_at,
            session_id: s.id.clone(),
        };
        if let Some(s) = self.sessions.replay(&ci, token, &fingerprint)? {
            return Ok(replay(&s));
        }
        let timeout_secs = request
            .session_timeout_seconds
            .unwrap_or(DEFAULT_SESSION_TIMEOUT_SECS);
        if self.sessions.live_count() >= self.cfg.max_live_sessions {
            return Err(ToolsError::QuotaExceeded(format!(
                "This Hangar runs at most {} code-interpreter sessions at a time; stop one first",
                self.cfg.max_live_sessions
            )));
        }
        let warm = self.pool.take(network).await?;
        let now = Timestamp::now();
        let registration = self
            .sessions
            .register(&ci, token, &fingerprint, |seq| Session {
                seq,
                code_interpreter: ci.clone(),
                id: warm.id.clone(),
                name: request.name.clone(),
                created_at: now,
                timeout_secs,
                certificates: request.certificates.clone(),
                filesystem_configurations: request.filesystem_configurations.clone(),
                state: Mutex::new(SessionState {
                    status: CodeInterpreterSessionStatus::Ready,
                    last_updated_at: now,
                    sandbox: Some(warm.sandbox.clone()),
                    timer: None,
                }),
                driver: tokio::sync::Mutex::new(Some(warm.driver)),
            });
        let session = match registration {
            Registration::New(s) => s,
            // Two concurrent starts with one token: the first one registered wins, the other's
            // sandbox is dropped (killed).
            Registration::Existing(s) => return Ok(replay(&s)),
        };
        tracing::info!(session = %session.id, code_interpreter = %ci, ?network, timeout_secs, "code-interpreter session started");
        // The timeout is a TTL from the start, whatever the activity.
        let this = self.this.clone();
        let reaped = Arc::downgrade(&session);
        let timer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(timeout_secs.max(1) as u64)).await;
            if let (Some(this), Some(session)) = (this.upgrade(), reaped.upgrade()) {
                this.terminate(&session, "timeout");
            }
        });
        {
            let mut st = session.state();
            if st.status == CodeInterpreterSessionStatus::Ready {
                st.timer = Some(timer.abort_handle());
            } else {
                timer.abort();
            }
        }
        Ok(StartCodeInterpreterSessionResponse {
            code_interpreter_identifier: ci,
            created_at: now,
            session_id: session.id.clone(),
        })
    }

    fn session(&self, ci: &str, id: &str) -> Result<Arc<Session>, ToolsError> {
        self.sessions.get(ci, id).ok_or_else(|| not_found(ci, id))
    }

    /// Ends a session: TERMINATED at once, its sandbox killed in the background. Returns
    /// whether this call ended it.
    fn terminate(&self, session: &Session, reason: &str) -> bool {
        let sandbox = {
            let mut st = session.state();
            if st.status == CodeInterpreterSessionStatus::Terminated {
                return false;
            }
            st.status = CodeInterpreterSessionStatus::Terminated;
            st.last_updated_at = Timestamp::now();
            if let Some(timer) = st.timer.take() {
                timer.abort();
            }
            st.sandbox.take()
        };
        tracing::info!(session = %session.id, reason, "code-interpreter session terminated");
        if let Some(sandbox) = sandbox {
            let id = session.id.clone();
            tokio::spawn(async move {
                if let Err(e) = sandbox.kill().await {
                    tracing::warn!(session = %id, error = %e, "could not kill the session's sandbox");
                }
            });
        }
        true
    }

    pub fn get(
        &self,
        ci: &str,
        session_id: &str,
    ) -> Result<GetCodeInterpreterSessionResponse, ToolsError> {
        let s = self.session(ci, session_id)?;
        let status = s.state().status;
        Ok(GetCodeInterpreterSessionResponse {
            certificates: s.certificates.clone(),
            code_interpreter_identifier: s.code_interpreter.clone(),
            created_at: s.created_at,
            filesystem_configurations: s.filesystem_configurations.clone(),
            name: s.name.clone(),
            session_id: s.id.clone(),
            session_timeout_seconds: Some(s.timeout_secs),
            status: Some(status),
        })
    }

    /// Newest first; `nextToken` is the sequence number of the next item.
    pub async fn list(
        &self,
        request: ListCodeInterpreterSessionsRequest,
    ) -> Result<ListCodeInterpreterSessionsResponse, ToolsError> {
        let ci = &request.code_interpreter_identifier;
        // An unknown code interpreter is a 404, as for Get.
        self.control
            .tool(ToolKind::CodeInterpreter, ci)
            .await
            .map_err(|e| match e {
                hangar_domain::Error::NotFound(_) => {
                    ToolsError::NotFound(format!("Code interpreter not found: {ci}"))
                }
                e => e.into(),
            })?;
        let limit = request.max_results.unwrap_or(10).clamp(1, 100) as usize;
        let (page, next_token) =
            self.sessions
                .page(ci, request.next_token.as_deref(), limit, |s| {
                    request.status.is_none_or(|st| s.state().status == st)
                })?;
        Ok(ListCodeInterpreterSessionsResponse {
            items: page.iter().map(|s| s.summary()).collect(),
            next_token,
        })
    }

    /// Stopping an already TERMINATED session succeeds again (Stop is idempotent).
    pub fn stop(
        &self,
        ci: &str,
        session_id: &str,
    ) -> Result<StopCodeInterpreterSessionResponse, ToolsError> {
        let s = self.session(ci, session_id)?;
        self.terminate(&s, "stopped");
        let last_updated_at = s.state().last_updated_at;
        Ok(StopCodeInterpreterSessionResponse {
            code_interpreter_identifier: ci.to_owned(),
            last_updated_at,
            session_id: s.id.clone(),
        })
    }

    /// One tool call. `Err` is an HTTP error (before the stream); `Ok` is the one stream
    /// member to send: a `result`, or a modelled exception frame.
    pub async fn invoke(
        &self,
        request: InvokeCodeInterpreterRequest,
    ) -> Result<(String, CodeInterpreterStreamOutput), ToolsError> {
        let ci = request.code_interpreter_identifier.clone();
        let Some(session_id) = request.session_id.clone() else {
            return Err(ToolsError::Validation(
                "InvokeCodeInterpreter needs the session id (header x-amzn-code-interpreter-session-id); start a session first".into(),
            ));
        };
        let session = self.session(&ci, &session_id)?;
        let span = tracing::info_span!("code_interpreter_call", session = %session_id, tool = %request.name);
        let output = self.call(&session, request).instrument(span).await?;
        Ok((session_id, output))
    }

    async fn call(
        &self,
        session: &Arc<Session>,
        request: InvokeCodeInterpreterRequest,
    ) -> Result<CodeInterpreterStreamOutput, ToolsError> {
        let ended = || {
            ToolsError::NotFound(format!(
                "Session {} of code interpreter {} is TERMINATED",
                session.id, session.code_interpreter
            ))
        };
        if session.state().status != CodeInterpreterSessionStatus::Ready {
            return Err(ended());
        }
        let mut guard = session.driver.lock().await;
        if session.state().status != CodeInterpreterSessionStatus::Ready {
            return Err(ended());
        }
        let Some(driver) = guard.as_mut() else {
            return Err(ended());
        };
        let arguments = serde_json::to_value(request.arguments.unwrap_or_default())
            .map_err(|e| ToolsError::Internal(format!("tool arguments: {e}")))?;
        let limits = json!({"callTimeout": self.cfg.call_timeout.as_secs_f64()});
        // The driver enforces the per-call limit itself; this backstop only catches a driver
        // that stopped answering altogether.
        let backstop = self.cfg.call_timeout + Duration::from_secs(15);
        let answer = tokio::time::timeout(
            backstop,
            driver.call(request.name.as_str(), arguments, limits),
        )
        .await;
        let failure = match answer {
            Ok(Ok(answer)) => return Ok(into_stream_output(answer)),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {}s", backstop.as_secs()),
        };
        // The connection is unusable: the session was stopped or timed out meanwhile, or its
        // sandbox died (e.g. the whole session ran out of memory or processes).
        *guard = None;
        let was_live = self.terminate(session, "sandbox failed");
        let text = if was_live {
            tracing::warn!(error = %failure, "code-interpreter driver failed; session terminated");
            let oom = session_oom_note(&self.cfg);
            format!("The session's sandbox stopped working during the call ({failure}){oom}; the session is now TERMINATED.")
        } else {
            "The session ended (stopped or timed out) during the call; it is TERMINATED.".into()
        };
        Ok(CodeInterpreterStreamOutput::Result(CodeInterpreterResult {
            content: vec![text_block(text)],
            is_error: Some(true),
            structured_content: None,
        }))
    }

    /// Ends every session and empties the pool (server shutdown).
    pub async fn shutdown(&self) {
        let sessions = self.sessions.all();
        let mut sandboxes: Vec<Arc<dyn Sandbox>> = Vec::new();
        for s in sessions {
            let mut st = s.state();
            if st.status == CodeInterpreterSessionStatus::Ready {
                st.status = CodeInterpreterSessionStatus::Terminated;
                st.last_updated_at = Timestamp::now();
            }
            sandboxes.extend(st.sandbox.take());
        }
        sandboxes.extend(self.pool.close().into_iter().map(|w| w.sandbox));
        for sb in sandboxes {
            let _ = sb.kill().await;
        }
    }
}

fn session_oom_note(cfg: &CodeInterpreterConfig) -> String {
    match cfg.limits.memory_bytes {
        Some(m) => format!(
            "; sessions are limited to {} MiB of memory and {} processes",
            m >> 20,
            cfg.limits.max_processes.unwrap_or(0)
        ),
        None => String::new(),
    }
}

fn text_block(text: String) -> ContentBlock {
    ContentBlock {
        data: None,
        description: None,
        mime_type: None,
        name: None,
        resource: None,
        size: None,
        text: Some(text),
        r#type: ContentBlockType::Text,
        uri: None,
    }
}

/// The driver's answer as a stream member.
fn into_stream_output(answer: Value) -> CodeInterpreterStreamOutput {
    if let Some(result) = answer.get("result") {
        return match serde_json::from_value::<CodeInterpreterResult>(result.clone()) {
            Ok(r) => CodeInterpreterStreamOutput::Result(r),
            Err(e) => {
                tracing::error!(error = %e, "the driver's result does not fit the model");
                CodeInterpreterStreamOutput::InternalServerException(InternalServerException {
                    message: Some("The tool produced a malformed result.".into()),
                })
            }
        };
    }
    let error = answer.get("error");
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("tool call failed")
        .to_owned();
    match error.and_then(|e| e.get("kind")).and_then(Value::as_str) {
        Some("validation") => {
            CodeInterpreterStreamOutput::ValidationException(ValidationException {
                field_list: None,
                message,
                reason: ValidationExceptionReason::FieldValidationFailed,
            })
        }
        _ => {
            tracing::error!(error = %message, "code-interpreter driver error");
            CodeInterpreterStreamOutput::InternalServerException(InternalServerException {
                message: Some("The tool failed unexpectedly.".into()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_answers_become_stream_members() {
        let ok = into_stream_output(json!({"id": 1, "result": {
            "content": [{"type": "text", "text": "42\n"}],
            "structuredContent": {"stdout": "42\n", "stderr": "", "exitCode": 0, "executionTime": 0.01},
            "isError": false,
        }}));
        let CodeInterpreterStreamOutput::Result(r) = ok else {
            panic!("{ok:?}")
        };
        assert_eq!(r.content[0].text.as_deref(), Some("42\n"));
        assert_eq!(
            r.structured_content.unwrap().stdout.as_deref(),
            Some("42\n")
        );

        let bad_args = into_stream_output(
            json!({"id": 2, "error": {"kind": "validation", "message": "needs code"}}),
        );
        assert!(
            matches!(&bad_args, CodeInterpreterStreamOutput::ValidationException(v) if v.message == "needs code"),
            "{bad_args:?}"
        );

        // A result that does not fit the model never reaches the client as such.
        let malformed = into_stream_output(json!({"id": 3, "result": {"content": "nope"}}));
        assert!(matches!(
            malformed,
            CodeInterpreterStreamOutput::InternalServerException(_)
        ));
        let broken =
            into_stream_output(json!({"id": 4, "error": {"kind": "internal", "message": "x"}}));
        assert!(matches!(
            broken,
            CodeInterpreterStreamOutput::InternalServerException(_)
        ));
    }

    #[test]
    fn the_driver_is_embedded_and_knows_every_tool() {
        for tool in hangar_model::data::ToolName::ALL {
            assert!(
                DRIVER.contains(&format!("def tool_{}(", tool.as_str())),
                "driver.py lacks {tool}"
            );
        }
    }
}
