//! `invoke`: the data plane (`bedrock-agentcore`) as `bench/sessions` measures it.
//!
//! - `warm`: one session, N sequential InvokeAgentRuntime calls through Hangar, alternating
//!   one for one with N sequential `POST /invocations` straight to the same agent program
//!   started bare on a host port (`--direct`), so both share the machine's noise. Prints both
//!   latency distributions and Hangar's overhead (p50 difference and ratio).
//! - `cold`: K new session ids, time to the first answer of each (sandbox start, agent start,
//!   first invocation), each session stopped again before the next. With `--bare-dir`, every
//!   Hangar start alternates with a bare start of the agent (`PYTHON main.py` in that
//!   directory, `PORT` set) timed until `GET /ping` answers.
//! - `idle`: opens sessions one after another (`--concurrency` at a time) until `--target`
//!   are open, an open fails (more than `--max-failures` times), too little memory is left
//!   (`--min-available-mib`) or `--max-secs` pass; leaves them open with `--no-cleanup` (the
//!   caller measures their memory, then runs `stop`).
//! - `stop`: StopRuntimeSession for a list of session ids.
//! - `auth`: the cost of the inbound authorizer: N sequential invokes of a SigV4 runtime
//!   alternating one for one with N of a runtime with a JWT authorizer (`Authorization:
//!   Bearer`, warm JWKS cache), both the same agent; prints both distributions and the
//!   difference.
//!
//! Requests to Hangar are signed like every other loadgen request (see `client.rs`):
//! `SignedHeaders=content-type;host;x-amz-date`, payload hash of the body; the session header
//! is sent unsigned (botocore signs it too, but a signature over fewer headers is just as
//! valid, also for a Hangar with `--credentials`). Signing happens before the clock starts:
//! the figures are the server's and the network's, not the client's SigV4 (reported apart as
//! `sign_us_mean`). Latency is to the last byte of the answer; `ttfb` to its headers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::net::TcpStream;

use crate::client::Target;
use crate::{target, Snapshot, TargetArgs};

const SESSION_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-session-id";
const REQUEST_ID_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-request-id";
const USER_AGENT: &str = "hangar-loadgen/0.1 (botocore-compatible SigV4)";
/// Longest wait for one answer: Hangar gives an agent 30 s to start.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_SAMPLES: usize = 8;

#[derive(Args)]
pub struct InvokeArgs {
    #[command(subcommand)]
    mode: Mode,
}

impl InvokeArgs {
    pub fn threads(&self) -> usize {
        self.common().target.threads
    }

    fn common(&self) -> &Common {
        match &self.mode {
            Mode::Warm(a) => &a.common,
            Mode::Cold(a) => &a.common,
            Mode::Idle(a) => &a.common,
            Mode::Stop(a) => &a.common,
            Mode::Auth(a) => &a.common,
        }
    }
}

#[derive(Subcommand)]
enum Mode {
    /// Sequential invokes of one session: Hangar vs the same agent called directly.
    Warm(WarmArgs),
    /// First-invoke latency of new sessions (vs a bare start of the agent).
    Cold(ColdArgs),
    /// Open idle sessions until a target count, a failure or low memory.
    Idle(IdleArgs),
    /// StopRuntimeSession for the given session ids.
    Stop(StopArgs),
    /// Sequential invokes: a SigV4 runtime vs a JWT-authorized one (same agent).
    Auth(AuthArgs),
}

#[derive(Args)]
struct AuthArgs {
    /// The SigV4 runtime is `--runtime-arn`.
    #[command(flatten)]
    common: Common,
    /// The runtime with a `customJWTAuthorizer`.
    #[arg(long)]
    jwt_runtime_arn: String,
    /// A token that runtime accepts, sent as `Authorization: Bearer`.
    #[arg(long)]
    bearer_token: String,
    /// Measured requests per runtime.
    #[arg(long, default_value_t = 2000)]
    requests: u64,
    /// Unmeasured requests per runtime first.
    #[arg(long, default_value_t = 200)]
    warmup_requests: u64,
}

#[derive(Args)]
struct Common {
    #[command(flatten)]
    target: TargetArgs,
    /// The AgentRuntime's ARN (or id), as InvokeAgentRuntime takes it.
    #[arg(long)]
    runtime_arn: String,
    /// Endpoint name (`?qualifier=`); none means DEFAULT.
    #[arg(long)]
    qualifier: Option<String>,
    /// Request body of every invocation (sent as application/json, as botocore does).
    #[arg(long, default_value = r#"{"prompt":"ping"}"#)]
    payload: String,
}

#[derive(Args)]
struct WarmArgs {
    #[command(flatten)]
    common: Common,
    /// Session id (33-256 characters); a new one by default.
    #[arg(long)]
    session_id: Option<String>,
    /// The same agent started bare, e.g. http://127.0.0.1:9001 (loopback only). Without it
    /// only Hangar is measured.
    #[arg(long)]
    direct: Option<String>,
    /// Measured requests per target.
    #[arg(long, default_value_t = 2000)]
    requests: u64,
    /// Unmeasured requests per target first (after the session's first, cold, invoke).
    #[arg(long, default_value_t = 200)]
    warmup_requests: u64,
    /// The agent is an MCP server (Streamable HTTP): both targets get the MCP client's
    /// `Accept` and `Mcp-Session-Id` (the session id), the direct one on `--direct-path`.
    #[arg(long)]
    mcp: bool,
    /// Path of the direct calls (default `/invocations`, `/mcp` with `--mcp`).
    #[arg(long)]
    direct_path: Option<String>,
}

#[derive(Args)]
struct ColdArgs {
    #[command(flatten)]
    common: Common,
    /// New sessions to start (one at a time, each stopped before the next).
    #[arg(long, default_value_t = 10)]
    sessions: usize,
    /// Directory holding the agent's `main.py` (the unpacked code tree): every Hangar start
    /// alternates with a bare start there, timed until `GET /ping` answers.
    #[arg(long)]
    bare_dir: Option<PathBuf>,
    /// Interpreter of the bare start (the one Hangar runs the runtime with).
    #[arg(long, default_value = "/usr/bin/python3.11")]
    bare_python: PathBuf,
    /// Interval between the bare start's `/ping` attempts.
    #[arg(long, default_value_t = 2)]
    bare_poll_ms: u64,
    /// Pause between two starts, to let the previous one's teardown settle.
    #[arg(long, default_value_t = 300)]
    pause_ms: u64,
}

#[derive(Args)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Sessions to open.
    #[arg(long, default_value_t = 300)]
    target: usize,
    /// Sessions being opened at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Stop opening when the machine's MemAvailable falls below this.
    #[arg(long, default_value_t = 2048)]
    min_available_mib: u64,
    /// Stop opening after this long.
    #[arg(long, default_value_t = 600.0)]
    max_secs: f64,
    /// Failed opens tolerated (each is reported); the next one ends the run.
    #[arg(long, default_value_t = 0)]
    max_failures: usize,
}

#[derive(Args)]
struct StopArgs {
    #[command(flatten)]
    common: Common,
    /// File with one session id a line (e.g. written from `idle`'s `session_ids`).
    #[arg(long)]
    ids_file: PathBuf,
    /// Stops in flight at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
}

pub async fn run(a: InvokeArgs) -> Result<()> {
    let out = match a.mode {
        Mode::Warm(a) => warm(a).await?,
        Mode::Cold(a) => cold(a).await?,
        Mode::Idle(a) => idle(a).await?,
        Mode::Stop(a) => stop_all(a).await?,
        Mode::Auth(a) => auth(a).await?,
    };
    println!("{}", serde_json::to_string_pretty(&Value::Object(out))?);
    Ok(())
}

// ------------------------------------------------------------------ HTTP

/// One keep-alive HTTP/1.1 connection to a loopback address; reconnects when closed.
struct Http {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
    connects: u64,
}

struct Answer {
    status: u16,
    /// When the response headers had arrived.
    head: Instant,
    /// When the last byte of the body had arrived.
    done: Instant,
    body: Bytes,
}

impl Answer {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn describe(&self, what: &str) -> String {
        format!(
            "{what} -> {}: {}",
            self.status,
            String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
        )
    }
}

impl Http {
    fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            sender: None,
            connects: 0,
        }
    }

    async fn connect(&mut self) -> Result<()> {
        let stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.connects += 1;
        self.sender = Some(sender);
        Ok(())
    }

    async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Answer> {
        match tokio::time::timeout(ANSWER_TIMEOUT, self.send_inner(req)).await {
            Ok(r) => r,
            Err(_) => {
                self.sender = None;
                bail!("no answer within {}s", ANSWER_TIMEOUT.as_secs())
            }
        }
    }

    async fn send_inner(&mut self, req: Request<Full<Bytes>>) -> Result<Answer> {
        let usable = match self.sender.as_mut() {
            Some(s) => !s.is_closed() && s.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            self.connect().await?;
            self.sender.as_mut().expect("connected").ready().await?;
        }
        self.exchange(req).await
    }

    async fn exchange(&mut self, req: Request<Full<Bytes>>) -> Result<Answer> {
        let sender = self.sender.as_mut().expect("connected");
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(e.into());
            }
        };
        let head = Instant::now();
        let status = resp.status().as_u16();
        let close = resp
            .headers()
            .get(http::header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let body = match resp.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                self.sender = None;
                return Err(e.into());
            }
        };
        let done = Instant::now();
        if close {
            self.sender = None;
        }
        Ok(Answer {
            status,
            head,
            done,
            body,
        })
    }
}

/// `http://HOST:PORT` → a loopback socket address.
fn loopback_addr(url: &str) -> Result<SocketAddr> {
    let uri: http::Uri = url.parse().with_context(|| format!("parsing {url}"))?;
    if uri.scheme_str() != Some("http") {
        bail!("{url}: must be http://HOST:PORT");
    }
    let host = uri.host().ok_or_else(|| anyhow!("{url}: no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?
        .next()
        .ok_or_else(|| anyhow!("{url}: resolves to no address"))?;
    if !addr.ip().is_loopback() {
        bail!("refusing a non-loopback address ({addr}): benchmarks run on this machine only");
    }
    Ok(addr)
}

/// Percent-encoding of one URI label, as botocore encodes `{agentRuntimeArn}`.
fn encode_label(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn new_session_id(tag: &str) -> String {
    // 33+ characters, [a-zA-Z0-9][a-zA-Z0-9-_]*.
    format!("bench-{tag}-{}", uuid::Uuid::new_v4())
}

/// Builds signed data-plane requests for one runtime.
struct DataPlane {
    target: Target,
    arn: String,
    qualifier: Option<String>,
    payload: Bytes,
    /// Headers every request carries besides the signed ones (the MCP client's).
    extra: Vec<(HeaderName, HeaderValue)>,
    sign_nanos: u64,
    signs: u64,
}

impl DataPlane {
    fn new(c: &Common) -> Result<Self> {
        serde_json::from_str::<Value>(&c.payload).context("--payload must be JSON")?;
        Ok(Self {
            target: target(&c.target)?,
            arn: c.runtime_arn.clone(),
            qualifier: c.qualifier.clone(),
            payload: Bytes::from(c.payload.clone()),
            extra: Vec::new(),
            sign_nanos: 0,
            signs: 0,
        })
    }

    fn path(&self, op: &str) -> String {
        let q = self
            .qualifier
            .as_deref()
            .map(|q| format!("?qualifier={}", encode_label(q)))
            .unwrap_or_default();
        format!("/runtimes/{}/{op}{q}", encode_label(&self.arn))
    }

    fn signed(&mut self, op: &str, session_id: &str, body: Bytes) -> Result<Request<Full<Bytes>>> {
        let t0 = Instant::now();
        let pq = self.path(op);
        let signed = self
            .target
            .sign(&Method::POST, &pq, Some(&body), SystemTime::now())?;
        let len = body.len();
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(&pq)
            .body(Full::new(body))?;
        let h = req.headers_mut();
        for (k, v) in signed {
            h.insert(k, HeaderValue::try_from(v)?);
        }
        h.insert("user-agent", HeaderValue::from_static(USER_AGENT));
        h.insert(
            "amz-sdk-invocation-id",
            HeaderValue::try_from(uuid::Uuid::new_v4().to_string())?,
        );
        h.insert(
            "amz-sdk-request",
            HeaderValue::from_static("attempt=1; max=1"),
        );
        h.insert(SESSION_HEADER, HeaderValue::try_from(session_id)?);
        h.insert("content-length", HeaderValue::from(len));
        for (k, v) in &self.extra {
            h.insert(k.clone(), v.clone());
        }
        self.sign_nanos += t0.elapsed().as_nanos() as u64;
        self.signs += 1;
        Ok(req)
    }

    /// InvokeAgentRuntime.
    fn invoke(&mut self, session_id: &str) -> Result<Request<Full<Bytes>>> {
        self.signed("invocations", session_id, self.payload.clone())
    }

    /// StopRuntimeSession (botocore fills `clientToken` itself).
    fn stop(&mut self, session_id: &str) -> Result<Request<Full<Bytes>>> {
        let body = json!({ "clientToken": uuid::Uuid::new_v4().to_string() }).to_string();
        self.signed("stopruntimesession", session_id, Bytes::from(body))
    }
}

/// `POST /invocations` (or `path`) as Hangar forwards it to the agent (no signature, no Hangar
/// in between).
fn direct_request(
    addr: SocketAddr,
    session_id: &str,
    payload: &Bytes,
    path: &str,
    extra: &[(HeaderName, HeaderValue)],
) -> Result<Request<Full<Bytes>>> {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .body(Full::new(payload.clone()))?;
    let h = req.headers_mut();
    h.insert("host", HeaderValue::try_from(addr.to_string())?);
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert(SESSION_HEADER, HeaderValue::try_from(session_id)?);
    h.insert(
        REQUEST_ID_HEADER,
        HeaderValue::try_from(uuid::Uuid::new_v4().to_string())?,
    );
    h.insert("content-length", HeaderValue::from(payload.len()));
    for (k, v) in extra {
        h.insert(k.clone(), v.clone());
    }
    Ok(req)
}

fn ping_request(addr: SocketAddr) -> Result<Request<Full<Bytes>>> {
    let mut req = Request::builder()
        .method(Method::GET)
        .uri("/ping")
        .body(Full::new(Bytes::new()))?;
    req.headers_mut()
        .insert("host", HeaderValue::try_from(addr.to_string())?);
    Ok(req)
}

// ------------------------------------------------------------------ figures

/// Latencies (ns) and failures of one kind of request.
#[derive(Default)]
struct Series {
    total: Vec<u64>,
    ttfb: Vec<u64>,
    errors: u64,
    samples: Vec<String>,
}

impl Series {
    fn ok(&mut self, start: Instant, a: &Answer) {
        self.total.push((a.done - start).as_nanos() as u64);
        self.ttfb.push((a.head - start).as_nanos() as u64);
    }

    fn err(&mut self, sample: String) {
        self.errors += 1;
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(sample);
        }
    }

    /// Records one exchange; true when it answered 2xx.
    fn record(&mut self, start: Instant, r: Result<Answer>, what: &str) -> bool {
        match r {
            Ok(a) if a.ok() => {
                self.ok(start, &a);
                true
            }
            Ok(a) => {
                self.err(a.describe(what));
                false
            }
            Err(e) => {
                self.err(format!("{what} -> {e:#}"));
                false
            }
        }
    }

    fn p(&self, pct: f64) -> Option<f64> {
        let mut v = self.total.clone();
        v.sort_unstable();
        percentile(&v, pct).map(|n| n as f64 / 1e6)
    }

    fn report(&self) -> Value {
        json!({
            "ok": self.total.len(),
            "errors": self.errors,
            "error_samples": self.samples,
            "latency_ms": summary(&self.total),
            "ttfb_ms": summary(&self.ttfb),
        })
    }
}

/// Nearest rank.
fn percentile(sorted: &[u64], pct: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// `count, mean, min, p50, p90, p99, max` in milliseconds.
fn summary(nanos: &[u64]) -> Value {
    let mut v = nanos.to_vec();
    v.sort_unstable();
    let mut m = Map::new();
    m.insert("count".into(), json!(v.len()));
    if v.is_empty() {
        return Value::Object(m);
    }
    let ms = |n: u64| round(n as f64 / 1e6, 4);
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    m.insert("mean".into(), json!(round(mean / 1e6, 4)));
    m.insert("min".into(), json!(ms(v[0])));
    for (k, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0)] {
        m.insert(k.into(), json!(ms(percentile(&v, p).expect("non-empty"))));
    }
    m.insert("max".into(), json!(ms(v[v.len() - 1])));
    Value::Object(m)
}

fn ms(d: Duration) -> f64 {
    round(d.as_secs_f64() * 1e3, 3)
}

/// MemTotal / MemAvailable / MemFree from /proc/meminfo, in MiB.
fn meminfo() -> Value {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let get = |key: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb / 1024)
    };
    json!({
        "total_mib": get("MemTotal"),
        "available_mib": get("MemAvailable"),
        "free_mib": get("MemFree"),
    })
}

fn available_mib() -> Option<u64> {
    meminfo()["available_mib"].as_u64()
}

fn header(mode: &str, c: &Common) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("mode".into(), json!(mode));
    m.insert("label".into(), json!(c.target.label));
    m.insert("endpoint".into(), json!(c.target.endpoint));
    m.insert("runtime_arn".into(), json!(c.runtime_arn));
    m.insert("qualifier".into(), json!(c.qualifier));
    m.insert("payload_bytes".into(), json!(c.payload.len()));
    m
}

async fn stop_session(dp: &mut DataPlane, conn: &mut Http, sid: &str) -> Result<Duration> {
    let req = dp.stop(sid)?;
    let t0 = Instant::now();
    let a = conn.send(req).await?;
    if !a.ok() {
        bail!("{}", a.describe(&format!("StopRuntimeSession {sid}")));
    }
    Ok(a.done - t0)
}

// ------------------------------------------------------------------ warm

async fn warm(a: WarmArgs) -> Result<Map<String, Value>> {
    let mut dp = DataPlane::new(&a.common)?;
    let mut hangar = Http::new(dp.target.addr);
    let direct_addr = a.direct.as_deref().map(loopback_addr).transpose()?;
    let mut direct = direct_addr.map(Http::new);
    let sid = a
        .session_id
        .clone()
        .unwrap_or_else(|| new_session_id("warm"));
    let direct_path = a
        .direct_path
        .clone()
        .unwrap_or_else(|| if a.mcp { "/mcp" } else { "/invocations" }.to_owned());
    if a.mcp {
        dp.extra = vec![
            (
                HeaderName::from_static("accept"),
                HeaderValue::from_static("application/json, text/event-stream"),
            ),
            (
                HeaderName::from_static("mcp-session-id"),
                HeaderValue::try_from(sid.as_str())?,
            ),
        ];
    }

    // The session's first invoke starts its sandbox: not a warm figure.
    let t0 = Instant::now();
    let first = hangar.send(dp.invoke(&sid)?).await?;
    if !first.ok() {
        bail!(
            "first invoke failed: {}",
            first.describe("InvokeAgentRuntime")
        );
    }
    // A JSON-RPC error still answers 200: an MCP run must see a tool result.
    let mcp_result = |body: &Bytes| {
        !a.mcp || {
            const RESULT: &[u8] = b"\"result\"";
            body.windows(RESULT.len()).any(|w| w == RESULT)
        }
    };
    if !mcp_result(&first.body) {
        bail!(
            "first MCP call has no result: {}",
            first.describe("InvokeAgentRuntime")
        );
    }
    let first_ms = ms(first.done - t0);
    let first_body = String::from_utf8_lossy(&first.body[..first.body.len().min(300)]).to_string();
    let direct_first = match (direct.as_mut(), direct_addr) {
        (Some(d), Some(addr)) => {
            let ans = d
                .send(direct_request(
                    addr,
                    &sid,
                    &dp.payload,
                    &direct_path,
                    &dp.extra,
                )?)
                .await?;
            if !ans.ok() || !mcp_result(&ans.body) {
                bail!("direct agent: {}", ans.describe("POST /invocations"));
            }
            Some(String::from_utf8_lossy(&ans.body[..ans.body.len().min(300)]).to_string())
        }
        _ => None,
    };

    for _ in 0..a.warmup_requests {
        let ans = hangar.send(dp.invoke(&sid)?).await?;
        if !ans.ok() {
            bail!(
                "warm-up invoke failed: {}",
                ans.describe("InvokeAgentRuntime")
            );
        }
        if let (Some(d), Some(addr)) = (direct.as_mut(), direct_addr) {
            let ans = d
                .send(direct_request(
                    addr,
                    &sid,
                    &dp.payload,
                    &direct_path,
                    &dp.extra,
                )?)
                .await?;
            if !ans.ok() {
                bail!(
                    "warm-up direct call failed: {}",
                    ans.describe("POST /invocations")
                );
            }
        }
    }
    dp.sign_nanos = 0;
    dp.signs = 0;

    let mut hs = Series::default();
    let mut ds = Series::default();
    let snap0 = Snapshot::take(a.common.target.server_pid);
    let wall0 = Instant::now();
    for i in 0..a.requests {
        // Alternate which goes first, so neither always follows the other.
        for turn in 0..2 {
            let hangar_turn = (turn == 0) == (i % 2 == 0);
            if hangar_turn {
                let req = dp.invoke(&sid)?;
                let start = Instant::now();
                let r = hangar.send(req).await;
                hs.record(start, r, "InvokeAgentRuntime");
            } else if let (Some(d), Some(addr)) = (direct.as_mut(), direct_addr) {
                let req = direct_request(addr, &sid, &dp.payload, &direct_path, &dp.extra)?;
                let start = Instant::now();
                let r = d.send(req).await;
                ds.record(start, r, "direct POST /invocations");
            }
        }
    }
    let wall = wall0.elapsed();
    let snap1 = Snapshot::take(a.common.target.server_pid);

    let stopped = if a.common.target.no_cleanup {
        Value::Null
    } else {
        match stop_session(&mut dp, &mut hangar, &sid).await {
            Ok(d) => json!(ms(d)),
            Err(e) => json!(format!("{e:#}")),
        }
    };

    let mut out = header("invoke-warm", &a.common);
    out.insert("session_id".into(), json!(sid));
    out.insert("mcp".into(), json!(a.mcp));
    out.insert("requests".into(), json!(a.requests));
    out.insert("warmup_requests".into(), json!(a.warmup_requests));
    out.insert("first_invoke_ms".into(), json!(first_ms));
    out.insert("first_answer".into(), json!(first_body));
    out.insert("direct_first_answer".into(), json!(direct_first));
    out.insert("measured_s".into(), json!(round(wall.as_secs_f64(), 3)));
    out.insert("hangar".into(), hs.report());
    if direct.is_some() {
        out.insert("direct".into(), ds.report());
        let diff = |p: f64| match (hs.p(p), ds.p(p)) {
            (Some(h), Some(d)) => {
                json!({ "diff_ms": round(h - d, 4), "ratio": round(h / d.max(1e-9), 3) })
            }
            _ => Value::Null,
        };
        out.insert(
            "overhead".into(),
            json!({ "p50": diff(50.0), "p90": diff(90.0), "p99": diff(99.0) }),
        );
    }
    out.insert(
        "sign_us_mean".into(),
        json!(round(
            dp.sign_nanos as f64 / dp.signs.max(1) as f64 / 1e3,
            2
        )),
    );
    out.insert(
        "connections".into(),
        json!({ "hangar": hangar.connects, "direct": direct.as_ref().map(|d| d.connects) }),
    );
    out.insert("stop_ms".into(), stopped);
    // Server CPU over the measured phase, per Hangar invoke (the direct calls cost it nothing).
    snap0.report(&snap1, hs.total.len() as u64, &mut out);
    Ok(out)
}

// ------------------------------------------------------------------ auth

/// InvokeAgentRuntime of `arn` with a bearer token instead of a signature (the same other
/// headers as a signed invoke).
fn bearer_invoke(
    dp: &DataPlane,
    arn: &str,
    token: &str,
    session_id: &str,
) -> Result<Request<Full<Bytes>>> {
    let q = dp
        .qualifier
        .as_deref()
        .map(|q| format!("?qualifier={}", encode_label(q)))
        .unwrap_or_default();
    let pq = format!("/runtimes/{}/invocations{q}", encode_label(arn));
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(&pq)
        .body(Full::new(dp.payload.clone()))?;
    let h = req.headers_mut();
    h.insert("host", HeaderValue::try_from(dp.target.addr.to_string())?);
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert(
        "authorization",
        HeaderValue::try_from(format!("Bearer {token}"))?,
    );
    h.insert("user-agent", HeaderValue::from_static(USER_AGENT));
    h.insert(SESSION_HEADER, HeaderValue::try_from(session_id)?);
    h.insert("content-length", HeaderValue::from(dp.payload.len()));
    Ok(req)
}

async fn auth(a: AuthArgs) -> Result<Map<String, Value>> {
    let mut dp = DataPlane::new(&a.common)?;
    let mut sig_conn = Http::new(dp.target.addr);
    let mut jwt_conn = Http::new(dp.target.addr);
    let (sig_sid, jwt_sid) = (new_session_id("auth-sigv4"), new_session_id("auth-jwt"));
    let jwt = |dp: &DataPlane| bearer_invoke(dp, &a.jwt_runtime_arn, &a.bearer_token, &jwt_sid);
    // First invokes start the sandboxes (and fill the JWKS cache); then warm-up.
    for i in 0..=a.warmup_requests {
        let s = sig_conn.send(dp.invoke(&sig_sid)?).await?;
        if !s.ok() {
            bail!(
                "SigV4 invoke {i} failed: {}",
                s.describe("InvokeAgentRuntime")
            );
        }
        let j = jwt_conn.send(jwt(&dp)?).await?;
        if !j.ok() {
            bail!(
                "JWT invoke {i} failed: {}",
                j.describe("InvokeAgentRuntime")
            );
        }
    }
    let mut ss = Series::default();
    let mut js = Series::default();
    let snap0 = Snapshot::take(a.common.target.server_pid);
    for i in 0..a.requests {
        for turn in 0..2 {
            if (turn == 0) == (i % 2 == 0) {
                let req = dp.invoke(&sig_sid)?;
                let start = Instant::now();
                let r = sig_conn.send(req).await;
                ss.record(start, r, "InvokeAgentRuntime (SigV4)");
            } else {
                let req = jwt(&dp)?;
                let start = Instant::now();
                let r = jwt_conn.send(req).await;
                js.record(start, r, "InvokeAgentRuntime (JWT)");
            }
        }
    }
    let snap1 = Snapshot::take(a.common.target.server_pid);
    if !a.common.target.no_cleanup {
        let _ = stop_session(&mut dp, &mut sig_conn, &sig_sid).await;
    }
    let mut out = header("invoke-auth", &a.common);
    out.insert("jwt_runtime_arn".into(), json!(a.jwt_runtime_arn));
    out.insert("requests".into(), json!(a.requests));
    out.insert("sigv4".into(), ss.report());
    out.insert("jwt".into(), js.report());
    let diff = |p: f64| match (js.p(p), ss.p(p)) {
        (Some(j), Some(s)) => json!(round(j - s, 4)),
        _ => Value::Null,
    };
    out.insert(
        "jwt_minus_sigv4_ms".into(),
        json!({ "p50": diff(50.0), "p90": diff(90.0), "p99": diff(99.0) }),
    );
    snap0.report(&snap1, (ss.total.len() + js.total.len()) as u64, &mut out);
    Ok(out)
}

// ------------------------------------------------------------------ cold

/// A bare agent process, killed (and reaped) on drop.
struct Bare {
    child: Child,
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

struct BareStart {
    ping: Duration,
    first_invoke: Duration,
}

/// `PYTHON main.py` in `dir` with `PORT` set, timed until `GET /ping` answers; then one
/// invocation; then killed.
async fn bare_start(
    a: &ColdArgs,
    dir: &std::path::Path,
    payload: &Bytes,
    sid: &str,
) -> Result<BareStart> {
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cmd = Command::new(&a.bare_python);
    cmd.arg("main.py")
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("PORT", port.to_string())
        // As Hangar sets it for the sandbox (code at /var/task there).
        .env("PYTHONPATH", dir)
        .env("PYTHONUNBUFFERED", "1")
        // Never write bytecode into the tree (the sandbox cannot either: read-only).
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("AWS_REGION", &a.common.target.region)
        .env("AWS_DEFAULT_REGION", &a.common.target.region)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let t0 = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {} main.py", a.bare_python.display()))?;
    let mut bare = Bare { child };
    let poll = Duration::from_millis(a.bare_poll_ms.max(1));
    let mut conn = Http::new(addr);
    let ping = loop {
        if let Some(st) = bare.child.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = bare.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            bail!(
                "the bare agent exited ({st}) before answering /ping: {}",
                tail(&err)
            );
        }
        if conn.connect().await.is_ok() {
            // Any HTTP answer counts, as in Hangar.
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_secs(2), conn.exchange(ping_request(addr)?))
                    .await
            {
                break t0.elapsed();
            }
        }
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = bare.child.kill();
            let _ = bare.child.wait();
            let mut err = String::new();
            if let Some(mut e) = bare.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            bail!(
                "the bare agent did not answer /ping within 30 s: {}",
                tail(&err)
            );
        }
        tokio::time::sleep(poll).await;
    };
    let t1 = Instant::now();
    let ans = conn
        .send(direct_request(addr, sid, payload, "/invocations", &[])?)
        .await?;
    if !ans.ok() {
        bail!("bare agent: {}", ans.describe("POST /invocations"));
    }
    let first_invoke = ans.done - t1;
    drop(conn);
    drop(bare);
    Ok(BareStart { ping, first_invoke })
}

fn tail(s: &str) -> &str {
    let start = s.len().saturating_sub(1500);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}

async fn cold(a: ColdArgs) -> Result<Map<String, Value>> {
    let mut dp = DataPlane::new(&a.common)?;
    let mut hangar = Http::new(dp.target.addr);
    if let Some(dir) = &a.bare_dir {
        if !dir.join("main.py").is_file() {
            bail!("--bare-dir {}: no main.py there", dir.display());
        }
    }
    let mut hs = Series::default();
    let mut stops: Vec<u64> = Vec::new();
    let mut bare_ping: Vec<u64> = Vec::new();
    let mut bare_first: Vec<u64> = Vec::new();
    let mut bare_errors: Vec<String> = Vec::new();
    let mut samples = Vec::new();
    let pause = Duration::from_millis(a.pause_ms);

    for i in 0..a.sessions {
        let sid = new_session_id(&format!("cold{i}"));
        let mut sample = Map::new();
        sample.insert("session_id".into(), json!(sid));
        let bare_first_turn = i % 2 == 1;
        for turn in 0..2 {
            let bare_turn = (turn == 0) == bare_first_turn;
            if bare_turn {
                let Some(dir) = &a.bare_dir else { continue };
                match bare_start(&a, dir, &dp.payload, &sid).await {
                    Ok(b) => {
                        bare_ping.push(b.ping.as_nanos() as u64);
                        bare_first.push(b.first_invoke.as_nanos() as u64);
                        sample.insert("bare_ping_ms".into(), json!(ms(b.ping)));
                        sample.insert("bare_first_invoke_ms".into(), json!(ms(b.first_invoke)));
                    }
                    Err(e) => {
                        if bare_errors.len() < MAX_SAMPLES {
                            bare_errors.push(format!("{e:#}"));
                        }
                    }
                }
            } else {
                let req = dp.invoke(&sid)?;
                let start = Instant::now();
                let r = hangar.send(req).await;
                if let Ok(ans) = &r {
                    sample.insert("hangar_ms".into(), json!(ms(ans.done - start)));
                    sample.insert("hangar_ttfb_ms".into(), json!(ms(ans.head - start)));
                }
                if hs.record(start, r, &format!("InvokeAgentRuntime (new session {sid})")) {
                    match stop_session(&mut dp, &mut hangar, &sid).await {
                        Ok(d) => stops.push(d.as_nanos() as u64),
                        Err(e) => hs.err(format!("{e:#}")),
                    }
                }
            }
            tokio::time::sleep(pause).await;
        }
        sample.insert(
            "order".into(),
            json!(if a.bare_dir.is_none() {
                "hangar"
            } else if bare_first_turn {
                "bare,hangar"
            } else {
                "hangar,bare"
            }),
        );
        samples.push(Value::Object(sample));
    }

    let mut out = header("invoke-cold", &a.common);
    out.insert("sessions".into(), json!(a.sessions));
    out.insert("hangar".into(), hs.report());
    out.insert("stop_ms".into(), summary(&stops));
    if let Some(dir) = &a.bare_dir {
        let p50 = |v: &[u64]| {
            let mut v = v.to_vec();
            v.sort_unstable();
            percentile(&v, 50.0).map(|n| n as f64 / 1e6)
        };
        out.insert(
            "bare".into(),
            json!({
                "dir": dir,
                "python": a.bare_python,
                "poll_ms": a.bare_poll_ms,
                "ok": bare_ping.len(),
                "errors": bare_errors.len(),
                "error_samples": bare_errors,
                "ping_ms": summary(&bare_ping),
                "first_invoke_ms": summary(&bare_first),
            }),
        );
        if let (Some(h), Some(b)) = (hs.p(50.0), p50(&bare_ping)) {
            out.insert("ratio_p50".into(), json!(round(h / b.max(1e-9), 3)));
        }
    }
    out.insert("samples".into(), Value::Array(samples));
    Ok(out)
}

// ------------------------------------------------------------------ idle

#[derive(Default)]
struct IdleCounts {
    /// Sessions opened (answered 2xx).
    ok: usize,
    /// Opens in progress.
    in_flight: usize,
    /// Attempts started (numbers the session ids).
    attempts: usize,
    failures: usize,
}

enum Claim {
    Open(usize),
    Leave,
    Done,
}

#[derive(Default)]
struct IdleState {
    counts: Mutex<IdleCounts>,
    stop: AtomicBool,
    reason: Mutex<Option<String>>,
    /// Session ids to stop afterwards, with their open time (0: the open failed but the
    /// session may exist, e.g. after a timeout).
    opened: Mutex<Vec<(String, u64)>>,
    errors: Mutex<Vec<String>>,
}

impl IdleState {
    fn halt(&self, reason: String) {
        let mut r = self.reason.lock().expect("poisoned");
        if r.is_none() {
            *r = Some(reason);
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    /// What a task does next: open session number `n`, leave the rest to the opens in flight
    /// (they reach the target unless one fails, and a failed one goes on by itself), or end
    /// the run (the target is reached).
    fn claim(&self, target: usize) -> Claim {
        let mut c = self.counts.lock().expect("poisoned");
        if c.ok >= target {
            return Claim::Done;
        }
        if c.ok + c.in_flight >= target {
            return Claim::Leave;
        }
        c.in_flight += 1;
        c.attempts += 1;
        Claim::Open(c.attempts)
    }

    /// Ends an attempt; true when the caller should go on.
    fn finish(&self, ok: bool, max_failures: usize, msg: Option<String>) -> bool {
        let mut c = self.counts.lock().expect("poisoned");
        c.in_flight -= 1;
        if ok {
            c.ok += 1;
            return true;
        }
        c.failures += 1;
        let msg = msg.unwrap_or_default();
        self.errors.lock().expect("poisoned").push(msg.clone());
        if c.failures > max_failures {
            drop(c);
            self.halt(format!("a session failed to open: {msg}"));
            return false;
        }
        true
    }
}

async fn idle(a: IdleArgs) -> Result<Map<String, Value>> {
    let mem_before = meminfo();
    let state = Arc::new(IdleState::default());
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(a.max_secs);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..a.concurrency.max(1) {
        let mut dp = DataPlane::new(&a.common)?;
        let state = state.clone();
        let (target, min_avail, max_failures) = (a.target, a.min_available_mib, a.max_failures);
        tasks.spawn(async move {
            let mut conn = Http::new(dp.target.addr);
            loop {
                if state.stop.load(Ordering::SeqCst) {
                    return;
                }
                if Instant::now() >= deadline {
                    state.halt("time limit".into());
                    return;
                }
                if let Some(avail) = available_mib().filter(|&m| m < min_avail) {
                    state.halt(format!(
                        "memory: MemAvailable {avail} MiB < {min_avail} MiB"
                    ));
                    return;
                }
                let n = match state.claim(target) {
                    Claim::Open(n) => n,
                    Claim::Leave => return,
                    Claim::Done => {
                        state.halt("target reached".into());
                        return;
                    }
                };
                let sid = new_session_id(&format!("idle{n}"));
                let req = match dp.invoke(&sid) {
                    Ok(r) => r,
                    Err(e) => {
                        state.finish(false, 0, Some(format!("request: {e:#}")));
                        return;
                    }
                };
                let start = Instant::now();
                let (ok, msg) = match conn.send(req).await {
                    Ok(ans) if ans.ok() => {
                        let nanos = (ans.done - start).as_nanos() as u64;
                        state.opened.lock().expect("poisoned").push((sid, nanos));
                        (true, None)
                    }
                    // Hangar answered: the session does not exist.
                    Ok(ans) => (false, Some(ans.describe(&format!("open #{n} ({sid})")))),
                    Err(e) => {
                        // No answer (e.g. a timeout): the session may exist; stop it too.
                        state
                            .opened
                            .lock()
                            .expect("poisoned")
                            .push((sid.clone(), 0));
                        (false, Some(format!("open #{n} ({sid}) -> {e:#}")))
                    }
                };
                if !state.finish(ok, max_failures, msg) {
                    return;
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r?;
    }
    let elapsed = t0.elapsed();
    let opened = state.opened.lock().expect("poisoned").clone();
    let ok: Vec<u64> = opened.iter().map(|(_, n)| *n).filter(|&n| n > 0).collect();
    let (attempts, failures) = {
        let c = state.counts.lock().expect("poisoned");
        (c.attempts, c.failures)
    };
    let mut out = header("invoke-idle", &a.common);
    out.insert("target".into(), json!(a.target));
    out.insert("concurrency".into(), json!(a.concurrency));
    out.insert("max_failures".into(), json!(a.max_failures));
    out.insert("opened".into(), json!(ok.len()));
    out.insert("attempts".into(), json!(attempts));
    out.insert("failures".into(), json!(failures));
    out.insert(
        "stop_reason".into(),
        json!(state.reason.lock().expect("poisoned").clone()),
    );
    out.insert("elapsed_s".into(), json!(round(elapsed.as_secs_f64(), 3)));
    out.insert("open_ms".into(), summary(&ok));
    out.insert(
        "errors".into(),
        json!(state.errors.lock().expect("poisoned").clone()),
    );
    out.insert("meminfo_before".into(), mem_before);
    out.insert("meminfo_after".into(), meminfo());
    out.insert(
        "session_ids".into(),
        json!(opened.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>()),
    );
    if !a.common.target.no_cleanup {
        let ids: Vec<String> = opened.into_iter().map(|(s, _)| s).collect();
        out.insert(
            "cleanup".into(),
            stop_ids(&a.common, ids, a.concurrency).await?,
        );
    }
    Ok(out)
}

// ------------------------------------------------------------------ stop

async fn stop_ids(c: &Common, ids: Vec<String>, concurrency: usize) -> Result<Value> {
    let queue = Arc::new(Mutex::new(ids));
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let mut dp = DataPlane::new(c)?;
        let queue = queue.clone();
        tasks.spawn(async move {
            let mut conn = Http::new(dp.target.addr);
            let mut series = Series::default();
            let mut lat = Vec::new();
            loop {
                let Some(sid) = queue.lock().expect("poisoned").pop() else {
                    break;
                };
                match stop_session(&mut dp, &mut conn, &sid).await {
                    Ok(d) => lat.push(d.as_nanos() as u64),
                    Err(e) => series.err(format!("{e:#}")),
                }
            }
            (lat, series)
        });
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut samples = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (l, s) = r?;
        lat.extend(l);
        errors += s.errors;
        samples.extend(s.samples);
    }
    samples.truncate(MAX_SAMPLES);
    Ok(json!({
        "stopped": lat.len(),
        "errors": errors,
        "error_samples": samples,
        "elapsed_s": round(t0.elapsed().as_secs_f64(), 3),
        "stop_ms": summary(&lat),
    }))
}

async fn stop_all(a: StopArgs) -> Result<Map<String, Value>> {
    let text = std::fs::read_to_string(&a.ids_file)
        .with_context(|| format!("reading {}", a.ids_file.display()))?;
    let ids: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let mut out = header("invoke-stop", &a.common);
    out.insert("requested".into(), json!(ids.len()));
    out.insert(
        "result".into(),
        stop_ids(&a.common, ids, a.concurrency).await?,
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_encoded_like_botocore() {
        assert_eq!(
            encode_label("arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/a_b-01"),
            "arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123456789012%3Aruntime%2Fa_b-01"
        );
    }

    #[test]
    fn session_ids_are_valid() {
        let s = new_session_id("cold12");
        assert!(s.len() >= 33 && s.len() <= 256, "{s}");
        assert!(s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn idle_replaces_a_failed_open_and_ends_at_the_target() {
        let s = IdleState::default();
        assert!(matches!(s.claim(2), Claim::Open(1)));
        assert!(matches!(s.claim(2), Claim::Open(2)));
        // Both in flight: a third task leaves it to them.
        assert!(matches!(s.claim(2), Claim::Leave));
        assert!(s.finish(false, 1, Some("boom".into())));
        // The failed one's place is open again.
        assert!(matches!(s.claim(2), Claim::Open(3)));
        assert!(s.finish(true, 1, None));
        assert!(s.finish(true, 1, None));
        assert!(matches!(s.claim(2), Claim::Done));
        // One failure more than tolerated ends the run.
        let s = IdleState::default();
        assert!(matches!(s.claim(5), Claim::Open(1)));
        assert!(!s.finish(false, 0, Some("boom".into())));
        assert!(s.stop.load(Ordering::SeqCst));
    }

    #[test]
    fn summary_is_nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|x| x * 1_000_000).collect();
        let s = summary(&v);
        assert_eq!(s["p50"], json!(50.0));
        assert_eq!(s["p99"], json!(99.0));
        assert_eq!(s["min"], json!(1.0));
    }
}
