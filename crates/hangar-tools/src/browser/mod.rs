//! Browser sessions: `StartBrowserSession`, `GetBrowserSession`, `ListBrowserSessions`,
//! `StopBrowserSession`, `UpdateBrowserStream` and `InvokeBrowser`, for the built-in `aws.browser.v1` and custom
//! browsers, plus the target of each session's automation stream (CDP over WebSocket; the wire
//! layer authenticates and relays the frames) and each session's live view (`live_view.rs`).
//!
//! Each session is one sandbox whose main program is a headless Chromium listening for the
//! DevTools protocol on port 9222 of the sandbox's own loopback (reached with
//! [`Sandbox::connect`], never exposed on the host). The sandbox has PUBLIC network with the
//! host's loopback at 10.0.2.2, so developers can point the browser at their local sites. The
//! profile (`--user-data-dir`) is a private tmpfs of the session, so two sessions share no
//! cookies or storage, and everything is gone when the session ends.
//!
//! Decisions (see also README):
//! - Browsers with the default viewport (1456×819) come from a [`Pool`] of pre-started
//!   Chromiums: Chromium needs ~300 ms (more on a busy host) until DevTools answers, more than a
//!   start should cost. A session asking for another viewport gets a fresh Chromium started
//!   with that window size (slower, but its viewport is what was asked for).
//! - Sessions are kept in memory, as code-interpreter sessions are; TERMINATED ones stay
//!   listable until [`BrowserConfig::retained`] newer ones push them out.
//! - `sessionTimeoutSeconds` defaults to 3600 (the model's documentation; the SDK always sends
//!   3600) and is a TTL from the start.
//! - Browser profiles hold cookies and the local and session storage of the tabs open at the
//!   save (Playwright's `storageState` shape, see [`profile`]); `SaveBrowserSessionProfile`
//!   replaces what the profile held, and a session started with `profileConfiguration` gets
//!   them before it is handed out. Browsing history is not kept.
//! - `proxyConfiguration` routes by domain through a PAC script (see [`proxy`]); a session
//!   with proxies gets a freshly started browser, as one with another viewport does. Proxy
//!   credentials (a Secrets Manager secret) are refused.
//! - `extensions` and `enterprisePolicies` (the session's and the custom browser's) come from
//!   the artifact cache's object store into the sandbox (see [`customize`]); such a session
//!   also gets a freshly started browser.
//! - `certificates` and `filesystemConfigurations` are recorded and echoed but not applied.
//! - `UpdateBrowserStream` DISABLED refuses new automation connections and closes the open
//!   ones (so a person can take control); ENABLED lets them connect again.
//! - The live view ([`LiveView`], `live_view.rs`) is Hangar's own, not Amazon DCV (whose
//!   protocol is proprietary): a CDP screencast of the foreground page plus `Input.*` events,
//!   over Hangar's own DevTools connection, relayed by the wire layer to its viewer page. It does
//!   not depend on the automation stream's status (DISABLED is when a person uses it) and
//!   closes when the session ends.
//! - Recording ([`recording`]): a session of a custom browser whose record has
//!   `recording.enabled` is recorded by Hangar's own DevTools connection (rrweb events from an
//!   injected script of ours, console and network from CDP) to
//!   `s3://<bucket>/<prefix>/<sessionId>/` (`batch-NNNNNN.ndjson.gz` and `metadata.json`), through
//!   the store code artifacts come from (the S3 client of `--s3-endpoint`, or the directory
//!   standing in for S3). `sessionReplayArtifact` is that folder's URI (AgentCore's exact format
//!   is unknown; a folder URI is what a replay tool needs to find the batches). The built-in
//!   `aws.browser.v1` never records; `Browsers` built without a store records nothing (a
//!   warning at start, no `sessionReplayArtifact`). Stop waits for the last batch and the final
//!   `metadata.json` (at most 15 s) before the sandbox goes, so the recording is complete when
//!   Stop answers. Recording failures never fail the session: they are logged at warn with the
//!   session id and noted as `recordingError` in `metadata.json` when it can still be written
//!   (the session model has no field for them).

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use hangar_artifacts::Artifacts;
use hangar_domain::records::{ToolKind, ToolStatus};
use hangar_domain::ControlPlane;
use hangar_model::data::{
    AutomationStream, AutomationStreamStatus, BrowserEnterprisePolicy, BrowserExtension,
    BrowserProfileConfiguration, BrowserSessionStatus, BrowserSessionStream, BrowserSessionSummary,
    Certificate, GetBrowserSessionResponse, InvokeBrowserRequest, InvokeBrowserResponse,
    ListBrowserSessionsRequest, ListBrowserSessionsResponse, LiveViewStream, ProxyConfiguration,
    StartBrowserSessionRequest, StartBrowserSessionResponse, StopBrowserSessionResponse,
    StreamUpdate, ToolsFileSystemConfiguration, UpdateBrowserStreamRequest,
    UpdateBrowserStreamResponse, ViewPort,
};
use hangar_model::data::{SaveBrowserSessionProfileRequest, SaveBrowserSessionProfileResponse};
use hangar_model::Timestamp;
use hangar_sandbox::{Limits, Mount, Sandbox, SandboxBackend, SandboxSpec};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tracing::Instrument;

mod customize;
mod invoke;
mod live_view;
mod profile;
mod proxy;
pub mod recording;

pub use live_view::{LiveView, LiveViewEnd, ViewerInput};
use recording::{Recorder, RecordingTarget, ReplayStore};

use crate::pool::{Pool, Pooled, ToolNetwork};
use crate::registry::{RegisteredSession, Registration, Registry};
use crate::ToolsError;

/// Chromium's DevTools port on the sandbox's own loopback.
pub const CDP_PORT: u16 = 9222;
/// The session's profile directory (also `$HOME`), inside the sandbox: a private tmpfs.
pub const PROFILE_DIR: &str = "/profile";
/// The viewport of a session that asks for none ("default viewport size is 1456×819").
pub const DEFAULT_VIEWPORT: (i32, i32) = (1456, 819);
/// The model documentation's default `sessionTimeoutSeconds` (the SDK always sends 3600).
pub const DEFAULT_SESSION_TIMEOUT_SECS: i32 = 3600;

/// How browser sessions are run.
#[derive(Debug, Clone)]
pub struct BrowserConfig {
    /// The Chromium binary (inside the sandbox, which sees the host's system directories
    /// read-only). Debian's `/usr/lib/chromium/chromium`, not the `/usr/bin/chromium` shell
    /// wrapper, which only adds a shell start and flags from `/etc/chromium.d`.
    pub chromium: PathBuf,
    /// Memory / CPU / process limits of each session. Chromium needs more than an agent: about
    /// 400 MiB idle, a gigabyte and more on heavy pages, and many threads.
    pub limits: Limits,
    /// Size limit of the profile directory (a tmpfs within the memory limit).
    pub profile_bytes: u64,
    /// Pre-started browsers kept ready (default viewport).
    pub pool_size: usize,
    /// Live (READY) sessions at most, over all browsers.
    pub max_live_sessions: usize,
    /// Sessions (live and TERMINATED) kept for Get/List; the oldest TERMINATED go first.
    pub retained: usize,
    /// How long Chromium may take until DevTools answers (the first start after an install
    /// takes seconds).
    pub start_timeout: Duration,
}

impl Default for BrowserConfig {
    fn default() -> Self {
        let debian = PathBuf::from("/usr/lib/chromium/chromium");
        BrowserConfig {
            chromium: if debian.exists() {
                debian
            } else {
                PathBuf::from("/usr/bin/chromium")
            },
            limits: Limits {
                memory_bytes: Some(2 << 30),
                cpu_millis: Some(2000),
                max_processes: Some(1024),
                tmp_bytes: 256 << 20,
            },
            profile_bytes: 512 << 20,
            pool_size: 1,
            max_live_sessions: 16,
            retained: 10_000,
            start_timeout: Duration::from_secs(30),
        }
    }
}

/// A started Chromium whose DevTools endpoint answers: what the pool holds.
pub struct WarmBrowser {
    id: String,
    sandbox: Arc<dyn Sandbox>,
    /// The browser-level DevTools WebSocket path (`/devtools/browser/<uuid>`).
    ws_path: String,
}

impl Pooled for WarmBrowser {
    fn usable(&self) -> bool {
        self.sandbox.exited().is_none()
    }
}

/// `GET path` on the sandbox's DevTools HTTP endpoint; the JSON body.
async fn devtools_get(stream: &mut TcpStream, path: &str) -> std::io::Result<Value> {
    // Chromium refuses DevTools HTTP requests whose Host is not an IP or `localhost` (DNS
    // rebinding protection), so the Host is the sandbox-side address.
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{CDP_PORT}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    // Read the header, then exactly Content-Length bytes: the answer is complete then, whether
    // or not Chromium closes the connection.
    let mut raw = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let (head_len, body_len) = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "DevTools closed the connection",
            ));
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            if !head.starts_with("HTTP/1.1 200") {
                return Err(std::io::Error::other(format!(
                    "DevTools answered {}",
                    head.lines().next().unwrap_or_default()
                )));
            }
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())
                        .flatten()
                })
                .ok_or_else(|| std::io::Error::other("DevTools answered without a length"))?;
            break (end + 4, len);
        }
    };
    while raw.len() < head_len + body_len {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&raw[head_len..]);
    serde_json::from_str(&body).map_err(std::io::Error::other)
}

async fn launch(
    backend: Arc<dyn SandboxBackend>,
    cfg: Arc<BrowserConfig>,
    network: ToolNetwork,
    viewport: (i32, i32),
    extras: customize::Customization,
) -> Result<WarmBrowser, ToolsError> {
    // The session id is chosen now, so the sandbox's cgroup and logs carry the id the session
    // will have.
    let id = crate::new_session_id();
    let span = tracing::info_span!("browser_sandbox", session = %id);
    async move {
        let t0 = Instant::now();
        let window_height = viewport.1 + WINDOW_UI_HEIGHT.load(Ordering::Relaxed);
        let mut spec = SandboxSpec::new(&id, &cfg.chromium);
        spec.args = vec![
            "--headless".into(),
            "--no-sandbox".into(), // the bwrap sandbox is the sandbox; no user namespaces inside
            "--disable-gpu".into(),
            format!("--remote-debugging-port={CDP_PORT}"),
            format!("--user-data-dir={PROFILE_DIR}"),
            // Headless Chromium still draws a (simulated) tab strip and toolbar: the window is
            // taller than the viewport by their height, so that pages get the viewport asked for.
            format!("--window-size={},{}", viewport.0, window_height),
            // The screen of a real desktop holds the window (headless defaults to 800×600).
            format!("--screen-info={{{}x{}}}", viewport.0, window_height),
            // No "unsupported command-line flag" bar (for --no-sandbox) taking page height.
            "--test-type".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-breakpad".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--disable-quic".into(),
            "--password-store=basic".into(),
        ];
        spec.args.extend(extras.args);
        spec.args.push("about:blank".into());
        spec.cwd = PROFILE_DIR.into();
        spec.env = vec![
            ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
            ("HOME".into(), PROFILE_DIR.into()),
            ("XDG_CACHE_HOME".into(), format!("{PROFILE_DIR}/.cache")),
            ("XDG_CONFIG_HOME".into(), format!("{PROFILE_DIR}/.config")),
            ("LANG".into(), "C.UTF-8".into()),
        ];
        // Fontconfig's configuration: without it pages render no text in screenshots.
        if std::path::Path::new("/etc/fonts").is_dir() {
            spec.mounts.push(Mount::ReadOnly {
                host: "/etc/fonts".into(),
                inside: "/etc/fonts".into(),
            });
        }
        spec.mounts.push(Mount::Tmpfs {
            inside: PROFILE_DIR.into(),
            size_bytes: cfg.profile_bytes,
        });
        spec.mounts.extend(extras.mounts);
        spec.limits = cfg.limits;
        spec.network = network.sandbox_mode();
        let sandbox: Arc<dyn Sandbox> = Arc::from(backend.spawn(spec).await?);
        let deadline = Instant::now() + cfg.start_timeout;
        let version = loop {
            let attempt = async {
                let mut s = sandbox
                    .connect(CDP_PORT)
                    .await
                    .map_err(std::io::Error::other)?;
                devtools_get(&mut s, "/json/version").await
            };
            // A connection accepted before DevTools is ready may never be answered.
            let attempt = tokio::time::timeout(Duration::from_secs(2), attempt)
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("no answer within 2 s")));
            match attempt {
                Ok(v) => break v,
                Err(e) => {
                    if sandbox.exited().is_some() || Instant::now() > deadline {
                        let stderr = sandbox.stderr_tail(2000);
                        let _ = sandbox.kill().await;
                        return Err(ToolsError::Internal(format!(
                            "Chromium did not start: {e}; stderr: {stderr}"
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        let ws_path = version
            .get("webSocketDebuggerUrl")
            .and_then(Value::as_str)
            .and_then(|u| u.strip_prefix("ws://"))
            .and_then(|rest| rest.find('/').map(|i| rest[i..].to_owned()))
            .ok_or_else(|| {
                ToolsError::Internal(format!(
                    "Chromium's /json/version lacks a WebSocket URL: {version}"
                ))
            })?;
        if let Err(e) = fit_window(&sandbox, &ws_path, viewport).await {
            // A browser whose page is not the size asked for still works; say so.
            tracing::warn!(error = %e, "could not check the browser's viewport");
        }
        let product = version.get("Browser").and_then(Value::as_str).unwrap_or("");
        tracing::debug!(
            elapsed_ms = t0.elapsed().as_millis() as u64,
            browser = product,
            "browser sandbox ready"
        );
        Ok(WarmBrowser {
            id: id.clone(),
            sandbox,
            ws_path,
        })
    }
    .instrument(span)
    .await
}

/// The height of headless Chromium's simulated browser UI (tab strip, toolbar) above the page:
/// 87 px in Chromium 156. Measured again at every launch (see [`fit_window`]), so another
/// Chromium version corrects it from its second launch on.
static WINDOW_UI_HEIGHT: AtomicI32 = AtomicI32::new(87);

/// Makes the first page of a fresh browser exactly `viewport` high: measures the page, and when
/// the UI height guess was wrong, resizes the window and remembers the right height for the
/// next launches (tabs opened later get the window size of the command line).
async fn fit_window(
    sandbox: &Arc<dyn Sandbox>,
    ws_path: &str,
    viewport: (i32, i32),
) -> Result<(), ToolsError> {
    let stream = sandbox.connect(CDP_PORT).await?;
    let url = format!("ws://127.0.0.1:{CDP_PORT}{ws_path}");
    let mut cdp = invoke::Cdp::connect(stream, &url).await?;
    let page = cdp.page_session().to_owned();
    let inner = cdp
        .call(
            Some(&page),
            "Runtime.evaluate",
            serde_json::json!({"expression": "[innerHeight, outerHeight]", "returnByValue": true}),
        )
        .await?;
    let dims = inner["result"]["value"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let (Some(inner), Some(outer)) = (
        dims.first().and_then(Value::as_i64),
        dims.get(1).and_then(Value::as_i64),
    ) else {
        return Err(ToolsError::Internal(format!(
            "unexpected page size {dims:?}"
        )));
    };
    if inner == viewport.1 as i64 {
        return Ok(());
    }
    let ui = (outer - inner).clamp(0, 1000) as i32;
    WINDOW_UI_HEIGHT.store(ui, Ordering::Relaxed);
    let window = cdp
        .call(
            Some(&page),
            "Browser.getWindowForTarget",
            serde_json::json!({}),
        )
        .await?;
    cdp.call(
        None,
        "Browser.setWindowBounds",
        serde_json::json!({
            "windowId": window["windowId"],
            "bounds": {"width": viewport.0, "height": viewport.1 + ui},
        }),
    )
    .await?;
    tracing::info!(ui_height = ui, "browser UI height re-measured");
    Ok(())
}

struct SessionState {
    status: BrowserSessionStatus,
    last_updated_at: Timestamp,
    /// Present while READY.
    sandbox: Option<Arc<dyn Sandbox>>,
    timer: Option<tokio::task::AbortHandle>,
    stream_status: AutomationStreamStatus,
    /// The session's recorder while READY (recorded sessions only).
    recorder: Option<Recorder>,
}

struct Session {
    seq: u64,
    browser: String,
    id: String,
    name: Option<String>,
    created_at: Timestamp,
    timeout_secs: i32,
    view_port: ViewPort,
    /// The stream endpoints, built from the Host the session was started through.
    streams_host: String,
    ws_path: String,
    certificates: Option<Vec<Certificate>>,
    extensions: Option<Vec<BrowserExtension>>,
    enterprise_policies: Option<Vec<BrowserEnterprisePolicy>>,
    profile_configuration: Option<BrowserProfileConfiguration>,
    proxy_configuration: Option<ProxyConfiguration>,
    filesystem_configurations: Option<Vec<ToolsFileSystemConfiguration>>,
    /// Where the session is recorded to (custom browsers with recording enabled, on a Hangar
    /// with a store for recordings).
    recording: Option<RecordingTarget>,
    state: Mutex<SessionState>,
    /// Tells open automation connections whether they may go on (false: DISABLED or ended).
    automation: watch::Sender<bool>,
    /// Becomes true when the session ends: open live views close. (Separate from
    /// `automation`, because a live view outlives a DISABLED automation stream.)
    ended: watch::Sender<bool>,
}

impl Session {
    fn state(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn streams(&self) -> BrowserSessionStream {
        let base = format!("/browser-streams/{}/sessions/{}", self.browser, self.id);
        BrowserSessionStream {
            automation_stream: AutomationStream {
                stream_endpoint: format!("ws://{}{base}/automation", self.streams_host),
                stream_status: self.state().stream_status,
            },
            // The URL AWS's SDKs build; Hangar serves its own viewer page there (AWS's is DCV,
            // which cannot be reproduced), see `live_view.rs`.
            live_view_stream: Some(LiveViewStream {
                stream_endpoint: Some(format!("http://{}{base}/live-view", self.streams_host)),
            }),
        }
    }

    fn summary(&self) -> BrowserSessionSummary {
        let st = self.state();
        BrowserSessionSummary {
            browser_identifier: self.browser.clone(),
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
        &self.browser
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn is_live(&self) -> bool {
        self.state().status == BrowserSessionStatus::Ready
    }
}

/// A connection to a session's browser-level DevTools WebSocket, not yet upgraded.
pub struct AutomationTarget {
    /// A TCP connection to Chromium's DevTools port inside the session's sandbox.
    pub stream: TcpStream,
    /// The WebSocket URL to request over it (`ws://127.0.0.1:9222/devtools/browser/<id>`).
    pub url: String,
    /// Becomes false when the stream is DISABLED or the session ends: the relay must close.
    pub allowed: watch::Receiver<bool>,
}

/// Where browser sessions get objects from and put them.
#[derive(Default)]
pub struct BrowserStores {
    /// Where `extensions` and `enterprisePolicies` are fetched through (the artifact cache).
    pub artifacts: Option<Arc<Artifacts>>,
    /// Where session recordings are written (the S3 client of `--s3-endpoint`, or the
    /// directory standing in for S3).
    pub replays: Option<Arc<dyn ReplayStore>>,
}

/// The browser sessions of this server.
pub struct Browsers {
    control: ControlPlane,
    cfg: Arc<BrowserConfig>,
    backend: Arc<dyn SandboxBackend>,
    pool: Pool<WarmBrowser>,
    sessions: Registry<Session>,
    /// Where extensions and policy files come from.
    artifacts: Option<Arc<Artifacts>>,
    /// Where session recordings are written; `None`: recording is not possible here.
    replay_store: Option<Arc<dyn ReplayStore>>,
    this: Weak<Browsers>,
}

fn not_found(browser: &str, session: &str) -> ToolsError {
    ToolsError::NotFound(format!("Session {session} not found for browser {browser}"))
}

fn status_name<T: serde::Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Browsers {
    /// Sessions run in sandboxes of `backend`; the pool of pre-started browsers starts filling
    /// at once.
    pub fn new(
        control: ControlPlane,
        backend: Arc<dyn SandboxBackend>,
        cfg: BrowserConfig,
    ) -> Arc<Self> {
        Browsers::with_stores(control, backend, cfg, BrowserStores::default())
    }

    /// As [`Browsers::new`], with the stores sessions read from and write to (without an
    /// artifact cache, sessions asking for extensions or policies are refused; without a
    /// replay store, sessions of browsers with recording enabled run unrecorded, with a
    /// warning).
    pub fn with_stores(
        control: ControlPlane,
        backend: Arc<dyn SandboxBackend>,
        cfg: BrowserConfig,
        stores: BrowserStores,
    ) -> Arc<Self> {
        let cfg = Arc::new(cfg);
        let (launch_cfg, launch_backend) = (cfg.clone(), backend.clone());
        let pool = Pool::new(cfg.pool_size, move |network| {
            launch(
                launch_backend.clone(),
                launch_cfg.clone(),
                network,
                DEFAULT_VIEWPORT,
                customize::Customization::default(),
            )
        });
        pool.fill(ToolNetwork::Public);
        let retained = cfg.retained;
        Arc::new_cyclic(|this| Browsers {
            control,
            cfg,
            backend,
            pool,
            sessions: Registry::new(retained),
            artifacts: stores.artifacts,
            replay_store: stores.replays,
            this: this.clone(),
        })
    }

    pub fn config(&self) -> &BrowserConfig {
        &self.cfg
    }

    /// Ready browsers in the pool.
    pub fn pooled(&self) -> usize {
        self.pool.idle(ToolNetwork::Public)
    }

    async fn browser_record(
        &self,
        id: &str,
    ) -> Result<hangar_domain::records::ToolRecord, ToolsError> {
        self.control
            .tool(ToolKind::Browser, id)
            .await
            .map_err(|e| match e {
                hangar_domain::Error::NotFound(_) => {
                    ToolsError::NotFound(format!("Browser not found: {id}"))
                }
                e => e.into(),
            })
    }

    /// Starts a session. `host` is the `Host` the request came through: the stream endpoints
    /// are built on it, so clients reach them the way they reached Hangar.
    pub async fn start(
        &self,
        request: StartBrowserSessionRequest,
        host: &str,
    ) -> Result<StartBrowserSessionResponse, ToolsError> {
        let browser = request.browser_identifier.clone();
        let tool = self.browser_record(&browser).await?;
        if tool.status != ToolStatus::Ready {
            return Err(ToolsError::Conflict(format!(
                "Browser {browser} is {}; sessions can start only when it is READY",
                status_name(tool.status)
            )));
        }
        // The built-in browser never records; a custom one does when its record says so and
        // there is somewhere to write to.
        let recording = if tool.system {
            None
        } else {
            RecordingTarget::from_config(&tool.config)
        };
        let recording = match (recording, &self.replay_store) {
            (Some(t), None) => {
                tracing::warn!(browser = %browser, bucket = %t.bucket, "browser has recording enabled but this Hangar has nowhere to write recordings; its sessions are not recorded");
                None
            }
            (t, _) => t,
        };
        let fingerprint = {
            let mut r = request.clone();
            r.client_token = None;
            r.trace_id = None;
            r.trace_parent = None;
            serde_json::to_string(&r).unwrap_or_default()
        };
        let token = request.client_token.as_deref();
        let replay = |s: &Session| StartBrowserSessionResponse {
            browser_identifier: s.browser.clone(),
            created_at: s.created_at,
            session_id: s.id.clone(),
            streams: Some(s.streams()),
        };
        if let Some(s) = self.sessions.replay(&browser, token, &fingerprint)? {
            return Ok(replay(&s));
        }
        let timeout_secs = request
            .session_timeout_seconds
            .unwrap_or(DEFAULT_SESSION_TIMEOUT_SECS);
        {
            let live = self.sessions.live_count();
            if live >= self.cfg.max_live_sessions {
                return Err(ToolsError::QuotaExceeded(format!(
                    "This Hangar runs at most {} browser sessions at a time; stop one first",
                    self.cfg.max_live_sessions
                )));
            }
        }
        // A profile to start from must exist (404 otherwise) before a browser is taken.
        let profile_state = match &request.profile_configuration {
            Some(p) => self
                .control
                .browser_profile(&p.profile_identifier)
                .await?
                .saved_state
                .clone(),
            None => None,
        };
        let view_port = request.view_port.clone().unwrap_or(ViewPort {
            width: DEFAULT_VIEWPORT.0,
            height: DEFAULT_VIEWPORT.1,
        });
        // What a pre-started browser cannot have: its command line and files are fixed.
        let browser_policies: Vec<BrowserEnterprisePolicy> = tool
            .config
            .get("enterprisePolicies")
            .and_then(|p| serde_json::from_value(p.clone()).ok())
            .unwrap_or_default();
        let mut extras = customize::prepare(
            self.artifacts.as_deref(),
            request.extensions.as_deref().unwrap_or_default(),
            &browser_policies,
            request.enterprise_policies.as_deref().unwrap_or_default(),
        )
        .await?;
        if let Some(proxies) = &request.proxy_configuration {
            extras.args.extend(proxy::chromium_args(proxies)?);
        }
        let warm = if (view_port.width, view_port.height) == DEFAULT_VIEWPORT && extras.is_empty() {
            self.pool.take(ToolNetwork::Public).await?
        } else {
            launch(
                self.backend.clone(),
                self.cfg.clone(),
                ToolNetwork::Public,
                (view_port.width, view_port.height),
                extras,
            )
            .await?
        };
        if let Some(state) = &profile_state {
            // A browser that did not take the profile is dropped (killed), not handed out.
            self.apply_profile(&warm, state).await?;
        }
        let now = Timestamp::now();
        let registration = self
            .sessions
            .register(&browser, token, &fingerprint, |seq| Session {
                seq,
                browser: browser.clone(),
                id: warm.id.clone(),
                name: request.name.clone(),
                created_at: now,
                timeout_secs,
                view_port,
                streams_host: host.to_owned(),
                ws_path: warm.ws_path.clone(),
                certificates: request.certificates.clone(),
                extensions: request.extensions.clone(),
                enterprise_policies: request.enterprise_policies.clone(),
                profile_configuration: request.profile_configuration.clone(),
                proxy_configuration: request.proxy_configuration.clone(),
                filesystem_configurations: request.filesystem_configurations.clone(),
                recording: recording.clone(),
                state: Mutex::new(SessionState {
                    status: BrowserSessionStatus::Ready,
                    last_updated_at: now,
                    sandbox: Some(warm.sandbox.clone()),
                    timer: None,
                    stream_status: AutomationStreamStatus::Enabled,
                    recorder: None,
                }),
                automation: watch::Sender::new(true),
                ended: watch::Sender::new(false),
            });
        let session = match registration {
            Registration::New(s) => s,
            // Two concurrent starts with one token: the first one registered wins, the other's
            // sandbox is dropped (killed).
            Registration::Existing(s) => return Ok(replay(&s)),
        };
        tracing::info!(session = %session.id, browser = %browser, timeout_secs, "browser session started");
        if let (Some(target), Some(store)) = (recording, &self.replay_store) {
            // Attached before the session is handed out, so the client's first page is
            // recorded from its first document. A recorder that fails only logs.
            let recorder = Recorder::start(
                recording::SessionInfo {
                    session_id: session.id.clone(),
                    browser_id: browser.clone(),
                    viewport: (session.view_port.width, session.view_port.height),
                    started_at: now,
                },
                target,
                store.clone(),
                warm.sandbox.clone(),
                warm.ws_path.clone(),
            )
            .await;
            let mut st = session.state();
            if st.status == BrowserSessionStatus::Ready {
                st.recorder = Some(recorder);
            } else {
                drop(st);
                tokio::spawn(recorder.stop());
            }
        }
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
            if st.status == BrowserSessionStatus::Ready {
                st.timer = Some(timer.abort_handle());
            } else {
                timer.abort();
            }
        }
        Ok(StartBrowserSessionResponse {
            browser_identifier: browser,
            created_at: now,
            session_id: session.id.clone(),
            streams: Some(session.streams()),
        })
    }

    fn session(&self, browser: &str, id: &str) -> Result<Arc<Session>, ToolsError> {
        self.sessions
            .get(browser, id)
            .ok_or_else(|| not_found(browser, id))
    }

    /// Ends a session: TERMINATED at once, automation connections closed, its recording
    /// flushed and its sandbox killed in the background. The receiver (recorded sessions only)
    /// answers once the recording is written, before the sandbox goes.
    fn terminate(&self, session: &Session, reason: &str) -> Option<oneshot::Receiver<()>> {
        let (sandbox, recorder) = {
            let mut st = session.state();
            if st.status == BrowserSessionStatus::Terminated {
                return None;
            }
            st.status = BrowserSessionStatus::Terminated;
            st.last_updated_at = Timestamp::now();
            if let Some(timer) = st.timer.take() {
                timer.abort();
            }
            (st.sandbox.take(), st.recorder.take())
        };
        session.automation.send_replace(false);
        session.ended.send_replace(true);
        tracing::info!(session = %session.id, reason, "browser session terminated");
        let (done_tx, done_rx) = oneshot::channel();
        let recorded = recorder.is_some();
        let id = session.id.clone();
        tokio::spawn(async move {
            // The recorder needs the browser for the pages' last events.
            if let Some(recorder) = recorder {
                recorder.stop().await;
            }
            let _ = done_tx.send(());
            if let Some(sandbox) = sandbox {
                if let Err(e) = sandbox.kill().await {
                    tracing::warn!(session = %id, error = %e, "could not kill the session's sandbox");
                }
            }
        });
        recorded.then_some(done_rx)
    }

    pub fn get(
        &self,
        browser: &str,
        session_id: &str,
    ) -> Result<GetBrowserSessionResponse, ToolsError> {
        let s = self.session(browser, session_id)?;
        let (status, last_updated_at) = {
            let st = s.state();
            (st.status, st.last_updated_at)
        };
        Ok(GetBrowserSessionResponse {
            browser_identifier: s.browser.clone(),
            certificates: s.certificates.clone(),
            created_at: s.created_at,
            enterprise_policies: s.enterprise_policies.clone(),
            extensions: s.extensions.clone(),
            filesystem_configurations: s.filesystem_configurations.clone(),
            last_updated_at: Some(last_updated_at),
            name: s.name.clone(),
            profile_configuration: s.profile_configuration.clone(),
            proxy_configuration: s.proxy_configuration.clone(),
            session_id: s.id.clone(),
            session_replay_artifact: s.recording.as_ref().map(|t| t.artifact_uri(&s.id)),
            session_timeout_seconds: Some(s.timeout_secs),
            status: Some(status),
            streams: Some(s.streams()),
            view_port: Some(s.view_port.clone()),
        })
    }

    /// Newest first; `nextToken` is the sequence number of the next item.
    pub async fn list(
        &self,
        request: ListBrowserSessionsRequest,
    ) -> Result<ListBrowserSessionsResponse, ToolsError> {
        let browser = &request.browser_identifier;
        // An unknown browser is a 404, as for Get.
        self.browser_record(browser).await?;
        let limit = request.max_results.unwrap_or(10).clamp(1, 100) as usize;
        let (page, next_token) =
            self.sessions
                .page(browser, request.next_token.as_deref(), limit, |s| {
                    request.status.is_none_or(|st| s.state().status == st)
                })?;
        Ok(ListBrowserSessionsResponse {
            items: page.iter().map(|s| s.summary()).collect(),
            next_token,
        })
    }

    /// Stopping an already TERMINATED session succeeds again (Stop is idempotent). A recorded
    /// session answers once its recording is complete in S3 (or given up on), so a client
    /// that reads it right after Stop finds all of it.
    pub async fn stop(
        &self,
        browser: &str,
        session_id: &str,
    ) -> Result<StopBrowserSessionResponse, ToolsError> {
        let s = self.session(browser, session_id)?;
        if let Some(done) = self.terminate(&s, "stopped") {
            let _ = done.await;
        }
        let last_updated_at = s.state().last_updated_at;
        Ok(StopBrowserSessionResponse {
            browser_identifier: browser.to_owned(),
            last_updated_at,
            session_id: s.id.clone(),
        })
    }

    /// ENABLED / DISABLED of the automation stream. DISABLED closes the open automation
    /// connections and refuses new ones until ENABLED again.
    pub fn update_stream(
        &self,
        request: UpdateBrowserStreamRequest,
    ) -> Result<UpdateBrowserStreamResponse, ToolsError> {
        let s = self.session(&request.browser_identifier, &request.session_id)?;
        let StreamUpdate::AutomationStreamUpdate(update) = &request.stream_update;
        let now = Timestamp::now();
        {
            let mut st = s.state();
            if st.status != BrowserSessionStatus::Ready {
                return Err(ToolsError::Conflict(format!(
                    "Session {} of browser {} is TERMINATED",
                    s.id, s.browser
                )));
            }
            if let Some(status) = update.stream_status {
                st.stream_status = status;
                st.last_updated_at = now;
                s.automation
                    .send_replace(status == AutomationStreamStatus::Enabled);
            }
        }
        tracing::info!(session = %s.id, status = %status_name(s.state().stream_status), "automation stream updated");
        Ok(UpdateBrowserStreamResponse {
            browser_identifier: s.browser.clone(),
            session_id: s.id.clone(),
            streams: s.streams(),
            updated_at: now,
        })
    }

    /// A connection to a live session's DevTools endpoint, for the automation stream. A
    /// session that has ended or whose stream is DISABLED is refused.
    pub async fn automation(
        &self,
        browser: &str,
        session_id: &str,
    ) -> Result<AutomationTarget, ToolsError> {
        let s = self.session(browser, session_id)?;
        let sandbox = {
            let st = s.state();
            if st.status != BrowserSessionStatus::Ready {
                return Err(ToolsError::NotFound(format!(
                    "Session {session_id} of browser {browser} is TERMINATED"
                )));
            }
            if st.stream_status != AutomationStreamStatus::Enabled {
                return Err(ToolsError::Conflict(format!(
                    "The automation stream of session {session_id} is DISABLED (a person has control); enable it with UpdateBrowserStream"
                )));
            }
            st.sandbox.clone()
        };
        let sandbox = sandbox.ok_or_else(|| not_found(browser, session_id))?;
        let stream = sandbox.connect(CDP_PORT).await?;
        let _ = stream.set_nodelay(true);
        Ok(AutomationTarget {
            stream,
            url: format!("ws://127.0.0.1:{CDP_PORT}{}", s.ws_path),
            allowed: s.automation.subscribe(),
        })
    }

    /// The sandbox of a READY session (404 for an ended one).
    fn live_sandbox(&self, s: &Session) -> Result<Arc<dyn Sandbox>, ToolsError> {
        let st = s.state();
        if st.status != BrowserSessionStatus::Ready {
            return Err(ToolsError::NotFound(format!(
                "Session {} of browser {} is TERMINATED",
                s.id, s.browser
            )));
        }
        st.sandbox
            .clone()
            .ok_or_else(|| not_found(&s.browser, &s.id))
    }

    /// Whether the session can be viewed live (it exists and is READY): what the live-view
    /// page checks before it is served.
    pub fn live_view_available(&self, browser: &str, session_id: &str) -> Result<(), ToolsError> {
        let s = self.session(browser, session_id)?;
        self.live_sandbox(&s).map(drop)
    }

    /// A live view of the session: Hangar's own DevTools connection, attached to the
    /// foreground page (the one InvokeBrowser acts on). Unlike [`Browsers::automation`] it
    /// does not depend on the automation stream's status: DISABLED is exactly when a person
    /// uses the live view.
    pub async fn live_view(&self, browser: &str, session_id: &str) -> Result<LiveView, ToolsError> {
        let s = self.session(browser, session_id)?;
        let sandbox = self.live_sandbox(&s)?;
        let stream = sandbox.connect(CDP_PORT).await?;
        let _ = stream.set_nodelay(true);
        let url = format!("ws://127.0.0.1:{CDP_PORT}{}", s.ws_path);
        let cdp = invoke::Cdp::connect(stream, &url).await?;
        let viewport = (s.view_port.width, s.view_port.height);
        LiveView::new(cdp, viewport, s.ended.subscribe(), s.id.clone()).await
    }

    /// Captures the session's cookies and its open tabs' local and session storage into a
    /// browser profile, replacing what it held (see [`profile`]).
    pub async fn save_profile(
        &self,
        request: SaveBrowserSessionProfileRequest,
    ) -> Result<SaveBrowserSessionProfileResponse, ToolsError> {
        let s = self.session(&request.browser_identifier, &request.session_id)?;
        // The profile must exist before anything is captured.
        self.control
            .browser_profile(&request.profile_identifier)
            .await?;
        let sandbox = {
            let st = s.state();
            if st.status != BrowserSessionStatus::Ready {
                return Err(ToolsError::Conflict(format!(
                    "Session {} of browser {} is TERMINATED; only a live session can be saved",
                    s.id, s.browser
                )));
            }
            st.sandbox.clone()
        };
        let sandbox = sandbox.ok_or_else(|| not_found(&s.browser, &s.id))?;
        let stream = sandbox.connect(CDP_PORT).await?;
        let url = format!("ws://127.0.0.1:{CDP_PORT}{}", s.ws_path);
        let mut cdp = invoke::Cdp::browser(stream, &url).await?;
        let state = profile::capture(&mut cdp).await?;
        let saved = self
            .control
            .save_browser_profile(&request.profile_identifier, &s.browser, &s.id, state)
            .await?;
        tracing::info!(session = %s.id, profile = %request.profile_identifier, "browser profile saved");
        Ok(SaveBrowserSessionProfileResponse {
            browser_identifier: s.browser.clone(),
            last_updated_at: saved,
            profile_identifier: request.profile_identifier,
            session_id: s.id.clone(),
        })
    }

    /// Puts a saved profile's cookies and storage into a freshly taken browser.
    async fn apply_profile(&self, warm: &WarmBrowser, state: &Value) -> Result<(), ToolsError> {
        let cookies = profile::cookie_params(state);
        let storage = profile::has_storage(state);
        if cookies.is_empty() && !storage {
            return Ok(());
        }
        let stream = warm.sandbox.connect(CDP_PORT).await?;
        let url = format!("ws://127.0.0.1:{CDP_PORT}{}", warm.ws_path);
        let mut cdp = invoke::Cdp::connect(stream, &url).await?;
        if !cookies.is_empty() {
            cdp.call(
                None,
                "Storage.setCookies",
                serde_json::json!({ "cookies": cookies }),
            )
            .await?;
        }
        if storage {
            profile::restore_storage(&mut cdp, state).await?;
        }
        Ok(())
    }

    /// One OS-level action on the session's foreground page. Bad arguments (coordinates
    /// outside the viewport, unknown keys) are a ValidationException; a failure while carrying
    /// it out is a `FAILED` result.
    pub async fn invoke(
        &self,
        request: InvokeBrowserRequest,
    ) -> Result<InvokeBrowserResponse, ToolsError> {
        let s = self.session(&request.browser_identifier, &request.session_id)?;
        invoke::validate(&request.action, (s.view_port.width, s.view_port.height))?;
        let sandbox = {
            let st = s.state();
            if st.status != BrowserSessionStatus::Ready {
                return Err(ToolsError::NotFound(format!(
                    "Session {} of browser {} is TERMINATED",
                    s.id, s.browser
                )));
            }
            st.sandbox.clone()
        };
        let sandbox = sandbox.ok_or_else(|| not_found(&s.browser, &s.id))?;
        let span = tracing::info_span!("browser_invoke", session = %s.id);
        let outcome = async {
            let stream = sandbox.connect(CDP_PORT).await?;
            let url = format!("ws://127.0.0.1:{CDP_PORT}{}", s.ws_path);
            let mut cdp = invoke::Cdp::connect(stream, &url).await?;
            invoke::perform(&mut cdp, &request.action).await
        }
        .instrument(span)
        .await;
        let outcome = match outcome {
            Ok(data) => Ok(data),
            Err(e @ ToolsError::Validation(_)) => return Err(e),
            Err(e) => {
                tracing::warn!(session = %s.id, error = %e, "browser action failed");
                Err(e.to_string())
            }
        };
        Ok(InvokeBrowserResponse {
            result: invoke::result(&request.action, outcome),
            session_id: s.id.clone(),
        })
    }

    /// Ends every session and empties the pool (server shutdown).
    pub async fn shutdown(&self) {
        let sessions = self.sessions.all();
        let mut sandboxes: Vec<Arc<dyn Sandbox>> = Vec::new();
        let mut recorders = Vec::new();
        for s in sessions {
            let mut st = s.state();
            if st.status == BrowserSessionStatus::Ready {
                st.status = BrowserSessionStatus::Terminated;
                st.last_updated_at = Timestamp::now();
            }
            sandboxes.extend(st.sandbox.take());
            recorders.extend(st.recorder.take().map(|r| tokio::spawn(r.stop())));
            s.automation.send_replace(false);
        }
        // Recordings are finished (each within its own time limit) before the browsers go.
        for r in recorders {
            let _ = r.await;
        }
        sandboxes.extend(self.pool.close().into_iter().map(|w| w.sandbox));
        for sb in sandboxes {
            let _ = sb.kill().await;
        }
    }
}
