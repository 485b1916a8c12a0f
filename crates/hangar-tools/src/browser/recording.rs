//! Session recording to S3 (`recording{enabled, s3Location}` of a custom browser).
//!
//! A recorded session gets a [`Recorder`]: a task with its own DevTools connection to the
//! session's browser (beside any automation stream), which
//! - auto-attaches (flatten) to every page target, and in each one registers the binding
//!   [`BINDING`], injects `recorder.js` (an rrweb-compatible event source of our own) for every
//!   new document and evaluates it in the current one, and enables the Runtime, Network and Page
//!   domains;
//! - turns what arrives into rrweb events: the page's own events come through the binding as
//!   JSON arrays; console calls and exceptions become rrweb console-plugin events (type 6,
//!   `rrweb/console@1`); requests, responses, failed loads and main-frame navigations become
//!   custom events (type 5, tags `network` and `navigation`);
//! - hands batches (every [`FLUSH_EVERY`] or [`BATCH_EVENTS`] events) to an uploader task, which
//!   writes `batch-NNNNNN.ndjson.gz` (gzip NDJSON, one event per line) and rewrites
//!   `metadata.json` under `s3://<bucket>/<prefix>/<sessionId>/`.
//!
//! Why an uploader task of its own: S3 may be slow or down; the DevTools connection must keep
//! being read meanwhile, or Chromium buffers events for us without bound.
//!
//! Failures never reach the session: a recorder that cannot connect, a page that refuses the
//! script, an upload that fails — each is logged at warn with the session id and noted as
//! `recordingError` in `metadata.json` (when that can still be written), and the session stays
//! READY and usable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hangar_model::Timestamp;
use hangar_sandbox::Sandbox;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tracing::Instrument;

use super::CDP_PORT;

/// The recorder script injected into every page (no external assets; rrweb itself is not
/// vendored, the script emits rrweb's event model).
const RECORDER_JS: &str = include_str!("recorder.js");
/// The CDP binding through which `recorder.js` hands its events to Hangar.
pub const BINDING: &str = "__hangarRecord";
/// A batch is uploaded at least this often while events arrive…
pub const FLUSH_EVERY: Duration = Duration::from_secs(3);
/// …or once it holds this many events…
pub const BATCH_EVENTS: usize = 500;
/// …or about this many bytes of page events (full snapshots of big pages are megabytes).
pub const BATCH_BYTES: usize = 8 << 20;
/// Batches waiting for the uploader at most; beyond that (S3 slower than the page) batches are
/// dropped and counted rather than held in memory or slowing the DevTools connection down.
const UPLOAD_QUEUE: usize = 16;
/// Largest DevTools message accepted (a full snapshot of a huge page comes as one message).
const MAX_MESSAGE: usize = 128 << 20;
/// How long a session start waits for the recorder to attach to the open pages.
pub const ATTACH_WAIT: Duration = Duration::from_secs(3);
/// How long stopping waits for the last events and uploads before giving up on them (the
/// session's sandbox is torn down afterwards either way).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest URL kept in a network or navigation event (data: URLs can be megabytes).
const MAX_URL: usize = 2048;

/// What can go wrong while recording; never surfaced to API callers, only logged and noted in
/// `metadata.json`.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The recorder's DevTools connection failed (connect, handshake, closed early).
    #[error("DevTools connection: {0}")]
    Cdp(String),
    /// An object could not be written.
    #[error("could not upload s3://{bucket}/{key}: {detail}")]
    Upload {
        bucket: String,
        key: String,
        detail: String,
    },
}

/// Where a store puts objects: the S3 client the code artifacts use, or a stand-in in tests.
#[async_trait::async_trait]
pub trait ReplayStore: Send + Sync + 'static {
    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), String>;
}

#[async_trait::async_trait]
impl ReplayStore for hangar_artifacts::S3Source {
    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), String> {
        use hangar_artifacts::ArtifactError as E;
        // The artifact errors speak of fetching code zips; say what matters for a recording.
        self.put_object(bucket, key, body.into())
            .await
            .map(drop)
            .map_err(|e| match e {
                E::BucketNotFound { bucket, endpoint, .. } => format!(
                    "bucket '{bucket}' does not exist at {endpoint}; create it or fix the browser's recording.s3Location"
                ),
                E::AccessDenied { endpoint, code, message, .. } => format!(
                    "access denied at {endpoint} ({code}: {message}); check the AWS credentials Hangar uses and the bucket's policy"
                ),
                E::EndpointUnreachable { endpoint, detail, .. } => {
                    format!("cannot reach the S3 endpoint {endpoint} ({detail})")
                }
                e => e.to_string(),
            })
    }
}

/// The directory standing in for S3 (`--s3-dir`, or `DATA_DIR/s3` without an S3 endpoint):
/// `s3://bucket/key` is `DIR/bucket/key`, as for code artifacts. The bucket must exist (a
/// directory), as an S3 bucket must; the key's folders are created.
#[async_trait::async_trait]
impl ReplayStore for hangar_artifacts::DirSource {
    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), String> {
        let bad = |p: &str| p.is_empty() || p.split('/').any(|c| c == ".." || c == ".");
        if bad(bucket) || bucket.contains('/') || bad(key) || key.starts_with('/') {
            return Err(format!(
                "s3://{bucket}/{key} is not a usable object name here"
            ));
        }
        let dir = self.root().join(bucket);
        if !tokio::fs::metadata(&dir).await.is_ok_and(|m| m.is_dir()) {
            return Err(format!(
                "bucket '{bucket}' does not exist (no directory {}); create it or fix the browser's recording.s3Location",
                dir.display()
            ));
        }
        let path = dir.join(key);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        // Written aside and renamed, so a reader never sees half an object.
        let tmp = path.with_extension("part");
        tokio::fs::write(&tmp, body)
            .await
            .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }
}

/// The recording configuration of a browser, read from its control-plane record
/// (`recording{enabled, s3Location{bucket, prefix}}` as sent to CreateBrowser).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingTarget {
    pub bucket: String,
    /// The prefix without leading or trailing `/`.
    pub prefix: String,
}

impl RecordingTarget {
    /// `None` unless recording is enabled with a bucket.
    pub fn from_config(config: &Map<String, Value>) -> Option<RecordingTarget> {
        let rec = config.get("recording")?;
        if rec.get("enabled").and_then(Value::as_bool) != Some(true) {
            return None;
        }
        let loc = rec.get("s3Location")?;
        let bucket = loc.get("bucket").and_then(Value::as_str)?.to_owned();
        let prefix = loc
            .get("prefix")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim_matches('/')
            .to_owned();
        Some(RecordingTarget { bucket, prefix })
    }

    /// The key prefix of one session's objects, ending in `/`.
    pub fn session_prefix(&self, session_id: &str) -> String {
        if self.prefix.is_empty() {
            format!("{session_id}/")
        } else {
            format!("{}/{session_id}/", self.prefix)
        }
    }

    /// `GetBrowserSession.sessionReplayArtifact`: the S3 URI of the session's folder.
    pub fn artifact_uri(&self, session_id: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.session_prefix(session_id))
    }
}

/// A running recording; [`Recorder::stop`] flushes it.
pub struct Recorder {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    session_id: String,
}

/// Fixed facts about the recorded session, for the metadata.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub session_id: String,
    pub browser_id: String,
    pub viewport: (i32, i32),
    pub started_at: Timestamp,
}

impl Recorder {
    /// Starts recording the browser behind `sandbox` (`ws_path`: its browser-level DevTools
    /// path). Returns once the recorder is attached to the open pages, or after
    /// [`ATTACH_WAIT`] (then it goes on attaching in the background, or gives up and logs).
    pub async fn start(
        info: SessionInfo,
        target: RecordingTarget,
        store: Arc<dyn ReplayStore>,
        sandbox: Arc<dyn Sandbox>,
        ws_path: String,
    ) -> Recorder {
        let (stop_tx, stop_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        // A root span: the recorder outlives the StartBrowserSession request that started it.
        let span = tracing::info_span!(parent: None, "recording", session = %info.session_id);
        let session_id = info.session_id.clone();
        let task = tokio::spawn(
            async move {
                let (tx, rx) = mpsc::channel(UPLOAD_QUEUE);
                let uploader = tokio::spawn(upload(info, target, store, rx).in_current_span());
                if let Err(e) = capture(sandbox, &ws_path, &tx, stop_rx, ready_tx).await {
                    tracing::warn!(error = %e, "session recording stopped capturing");
                    let _ = tx.send(ToUploader::Error(e.to_string())).await;
                }
                drop(tx);
                let _ = uploader.await;
            }
            .instrument(span),
        );
        let _ = tokio::time::timeout(ATTACH_WAIT, ready_rx).await;
        Recorder {
            stop: Some(stop_tx),
            task,
            session_id,
        }
    }

    /// Collects the pages' last events, uploads the last batch and the final `metadata.json`;
    /// gives up after [`STOP_TIMEOUT`]. Call before the sandbox is torn down.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(STOP_TIMEOUT, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
            tracing::warn!(session = %self.session_id, "session recording did not finish in time; the last events are lost");
        }
    }
}

enum ToUploader {
    Batch(Vec<Value>),
    Error(String),
    /// Events of batches the uploader could not keep up with.
    Dropped(u64),
}

/// The batch being filled, and what was dropped.
#[derive(Default)]
struct Batcher {
    events: Vec<Value>,
    bytes: usize,
    dropped: u64,
}

impl Batcher {
    fn full(&self) -> bool {
        self.events.len() >= BATCH_EVENTS || self.bytes >= BATCH_BYTES
    }

    /// Hands the batch over without waiting: reading DevTools must not stall on S3.
    fn send(&mut self, out: &mpsc::Sender<ToUploader>) {
        if self.events.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.events);
        self.bytes = 0;
        let n = events.len() as u64;
        if out.try_send(ToUploader::Batch(events)).is_err() {
            if self.dropped == 0 {
                tracing::warn!("session recording: the upload queue is full; dropping events");
            }
            self.dropped += n;
        }
    }
}

fn now_ms() -> i64 {
    Timestamp::now().unix_millis()
}

/// Reads the session's DevTools events until told to stop; sends batches to the uploader.
async fn capture(
    sandbox: Arc<dyn Sandbox>,
    ws_path: &str,
    out: &mpsc::Sender<ToUploader>,
    mut stop: oneshot::Receiver<()>,
    ready: oneshot::Sender<()>,
) -> Result<(), RecordingError> {
    let mut ready = Some(ready);
    let cdp_err = |e: &dyn std::fmt::Display| RecordingError::Cdp(e.to_string());
    let stream = sandbox.connect(CDP_PORT).await.map_err(|e| cdp_err(&e))?;
    let url = format!("ws://127.0.0.1:{CDP_PORT}{ws_path}");
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let (ws, _) = tokio_tungstenite::client_async_with_config(&url, stream, Some(config))
        .await
        .map_err(|e| cdp_err(&e))?;
    let (mut sink, mut source) = ws.split();
    let mut cdp = Commands::default();
    // Browser-level auto-attach reaches the pages already open and every new one; waiting for
    // the debugger lets the script be registered before a new page's first document runs.
    let auto_attach = cdp.push(
        None,
        "Target.setAutoAttach",
        json!({"autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true}),
    );
    let mut batch = Batcher::default();
    let mut pages: Vec<String> = Vec::new();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut attached = false;
    loop {
        for m in cdp.drain() {
            sink.send(Message::Text(m.into()))
                .await
                .map_err(|e| cdp_err(&e))?;
        }
        // Chromium announces the open pages before it answers setAutoAttach; once their
        // set-up commands are sent, the session may be handed out.
        if attached {
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
        }
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => batch.send(out),
            m = source.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(cdp_err(&e)),
                    None => return Err(RecordingError::Cdp("the browser closed the connection".into())),
                };
                let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                if v.get("id").and_then(Value::as_u64) == Some(auto_attach) {
                    if let Some(err) = v.get("error") {
                        return Err(RecordingError::Cdp(format!("Target.setAutoAttach: {err}")));
                    }
                    attached = true;
                }
                batch.bytes += text.len();
                handle(&v, &mut cdp, &mut pages, &mut batch.events);
                if batch.full() {
                    batch.send(out);
                }
            }
        }
    }
    // Stopping: ask every page to hand over what it still holds, and read until each has
    // answered (or a second has passed).
    let mut waiting = Vec::new();
    for p in &pages {
        waiting.push(cdp.push(
            Some(p),
            "Runtime.evaluate",
            json!({"expression": "window.__hangarRecorder && window.__hangarRecorder.flush()"}),
        ));
    }
    for m in cdp.drain() {
        let _ = sink.send(Message::Text(m.into())).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while !waiting.is_empty() {
        let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout_at(deadline, source.next()).await
        else {
            break;
        };
        let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        if let Some(id) = v.get("id").and_then(Value::as_u64) {
            waiting.retain(|w| *w != id);
        }
        handle(&v, &mut cdp, &mut pages, &mut batch.events);
    }
    // The last batch waits for room: the session is ending, nothing else is slowed down.
    if !batch.events.is_empty() {
        let _ = out.send(ToUploader::Batch(batch.events)).await;
    }
    if batch.dropped > 0 {
        let _ = out.send(ToUploader::Dropped(batch.dropped)).await;
    }
    let _ = sink.close().await;
    Ok(())
}

/// CDP commands to send, fire and forget (answers are only looked at for errors).
#[derive(Default)]
struct Commands {
    next_id: u64,
    pending: Vec<String>,
}

impl Commands {
    fn push(&mut self, session: Option<&str>, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let mut m = json!({"id": self.next_id, "method": method, "params": params});
        if let Some(s) = session {
            m["sessionId"] = json!(s);
        }
        self.pending.push(m.to_string());
        self.next_id
    }

    fn drain(&mut self) -> Vec<String> {
        std::mem::take(&mut self.pending)
    }
}

fn clip(s: &str) -> String {
    if s.len() <= MAX_URL {
        return s.to_owned();
    }
    let mut end = MAX_URL;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// One DevTools message: commands to send in answer, events to record.
fn handle(v: &Value, cdp: &mut Commands, pages: &mut Vec<String>, batch: &mut Vec<Value>) {
    let Some(method) = v.get("method").and_then(Value::as_str) else {
        if let Some(err) = v.get("error") {
            // A page that refuses one command still records what it can.
            tracing::debug!(error = %err, "recorder CDP command failed");
        }
        return;
    };
    let p = &v["params"];
    let session = v.get("sessionId").and_then(Value::as_str);
    match method {
        "Target.attachedToTarget" => {
            let Some(sid) = p["sessionId"].as_str() else {
                return;
            };
            if p["targetInfo"]["type"].as_str() == Some("page") {
                pages.push(sid.to_owned());
                cdp.push(Some(sid), "Runtime.addBinding", json!({"name": BINDING}));
                cdp.push(
                    Some(sid),
                    "Page.addScriptToEvaluateOnNewDocument",
                    json!({"source": RECORDER_JS}),
                );
                cdp.push(Some(sid), "Page.enable", json!({}));
                cdp.push(Some(sid), "Runtime.enable", json!({}));
                cdp.push(Some(sid), "Network.enable", json!({}));
                // The document already open (the script guards against running twice).
                cdp.push(
                    Some(sid),
                    "Runtime.evaluate",
                    json!({"expression": RECORDER_JS}),
                );
            }
            // Every target we were attached to waits for us: let it run (after the commands
            // above, which CDP carries out in order).
            if p["waitingForDebugger"].as_bool() == Some(true) {
                cdp.push(Some(sid), "Runtime.runIfWaitingForDebugger", json!({}));
            }
        }
        "Target.detachedFromTarget" => {
            if let Some(sid) = p["sessionId"].as_str() {
                pages.retain(|s| s != sid);
            }
        }
        "Runtime.bindingCalled" if p["name"].as_str() == Some(BINDING) => {
            let Some(payload) = p["payload"].as_str() else {
                return;
            };
            // Only well-formed events are kept: the binding is reachable by page scripts too.
            if let Ok(Value::Array(events)) = serde_json::from_str::<Value>(payload) {
                batch.extend(events.into_iter().filter(|e| {
                    e.get("type").is_some_and(Value::is_u64)
                        && e.get("timestamp").is_some_and(Value::is_number)
                }));
            }
        }
        "Runtime.consoleAPICalled" => {
            let level = match p["type"].as_str().unwrap_or("log") {
                "warning" => "warn",
                other => other,
            };
            let args: Vec<Value> = p["args"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(remote_object_text)
                        .map(Value::String)
                        .collect()
                })
                .unwrap_or_default();
            let trace: Vec<Value> = p["stackTrace"]["callFrames"]
                .as_array()
                .map(|fs| {
                    fs.iter()
                        .take(10)
                        .map(|f| {
                            json!(format!(
                                "{}@{}:{}:{}",
                                f["functionName"].as_str().unwrap_or(""),
                                f["url"].as_str().unwrap_or(""),
                                f["lineNumber"].as_i64().unwrap_or(0) + 1,
                                f["columnNumber"].as_i64().unwrap_or(0) + 1
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            batch.push(json!({
                "type": 6,
                "data": {"plugin": "rrweb/console@1", "payload": {"level": level, "trace": trace, "payload": args}},
                "timestamp": p["timestamp"].as_f64().map(|t| t as i64).unwrap_or_else(now_ms),
            }));
        }
        "Runtime.exceptionThrown" => {
            let d = &p["exceptionDetails"];
            let text = d["exception"]["description"]
                .as_str()
                .or(d["text"].as_str())
                .unwrap_or("Uncaught exception");
            batch.push(json!({
                "type": 6,
                "data": {"plugin": "rrweb/console@1", "payload": {"level": "error", "trace": [], "payload": [text]}},
                "timestamp": p["timestamp"].as_f64().map(|t| t as i64).unwrap_or_else(now_ms),
            }));
        }
        "Network.requestWillBeSent" => {
            batch.push(json!({
                "type": 5,
                "data": {"tag": "network", "payload": {
                    "phase": "request",
                    "requestId": p["requestId"],
                    "url": clip(p["request"]["url"].as_str().unwrap_or("")),
                    "method": p["request"]["method"],
                    "resourceType": p["type"],
                    "page": session,
                }},
                "timestamp": p["wallTime"].as_f64().map(|t| (t * 1000.0) as i64).unwrap_or_else(now_ms),
            }));
        }
        "Network.responseReceived" => {
            let r = &p["response"];
            batch.push(json!({
                "type": 5,
                "data": {"tag": "network", "payload": {
                    "phase": "response",
                    "requestId": p["requestId"],
                    "url": clip(r["url"].as_str().unwrap_or("")),
                    "status": r["status"],
                    "mimeType": r["mimeType"],
                    "resourceType": p["type"],
                    "page": session,
                }},
                "timestamp": now_ms(),
            }));
        }
        "Network.loadingFailed" => {
            batch.push(json!({
                "type": 5,
                "data": {"tag": "network", "payload": {
                    "phase": "failed",
                    "requestId": p["requestId"],
                    "errorText": p["errorText"],
                    "canceled": p["canceled"],
                    "resourceType": p["type"],
                    "page": session,
                }},
                "timestamp": now_ms(),
            }));
        }
        "Page.frameNavigated" if p["frame"].get("parentId").is_none() => {
            batch.push(json!({
                "type": 5,
                "data": {"tag": "navigation", "payload": {
                    "url": clip(p["frame"]["url"].as_str().unwrap_or("")),
                    "page": session,
                }},
                "timestamp": now_ms(),
            }));
        }
        _ => {}
    }
}

/// A console argument as text, as DevTools would print it.
fn remote_object_text(o: &Value) -> String {
    if let Some(s) = o["value"].as_str() {
        return s.to_owned();
    }
    if let Some(v) = o.get("value") {
        return v.to_string();
    }
    o["unserializableValue"]
        .as_str()
        .or(o["description"].as_str())
        .unwrap_or(o["type"].as_str().unwrap_or(""))
        .to_owned()
}

/// What `metadata.json` says; rewritten after every batch and at the end.
struct Metadata {
    info: SessionInfo,
    target: RecordingTarget,
    batches: Vec<Value>,
    event_count: u64,
    dropped_events: u64,
    errors: Vec<String>,
    end: Option<Timestamp>,
}

impl Metadata {
    fn to_json(&self) -> Value {
        let mut m = json!({
            "sessionId": self.info.session_id,
            "browserIdentifier": self.info.browser_id,
            "format": "rrweb",
            "formatNote": "Each batch-NNNNNN.ndjson.gz is gzip-compressed NDJSON, one rrweb event ({type, data, timestamp}) per line, in batch order. Types: 0 DomContentLoaded, 1 Load, 2 FullSnapshot, 3 IncrementalSnapshot, 4 Meta, 5 Custom (tags network, navigation), 6 Plugin (rrweb/console@1). Recorded by Hangar's own rrweb-compatible recorder; network and console events come from the DevTools protocol.",
            "location": self.target.artifact_uri(&self.info.session_id),
            "startTime": self.info.started_at.to_iso8601(),
            "startTimeMs": self.info.started_at.unix_millis(),
            "status": if self.end.is_some() { "COMPLETE" } else { "RECORDING" },
            "eventCount": self.event_count,
            "batches": self.batches,
            "viewport": {"width": self.info.viewport.0, "height": self.info.viewport.1},
        });
        if let Some(end) = self.end {
            m["endTime"] = json!(end.to_iso8601());
            m["durationMs"] = json!(end.unix_millis() - self.info.started_at.unix_millis());
        }
        if self.dropped_events > 0 {
            m["droppedEvents"] = json!(self.dropped_events);
        }
        if let Some(last) = self.errors.last() {
            // The last problem, and how many there were.
            m["recordingError"] = json!(last);
            m["recordingErrorCount"] = json!(self.errors.len());
        }
        m
    }
}

/// gzip NDJSON of one batch.
fn encode_batch(events: &[Value]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for e in events {
        // Writing into memory cannot fail.
        let _ = serde_json::to_writer(&mut gz, e);
        let _ = gz.write_all(b"\n");
    }
    gz.finish().unwrap_or_default()
}

/// The uploader: batches in, objects out. Failures are noted, never returned.
async fn upload(
    info: SessionInfo,
    target: RecordingTarget,
    store: Arc<dyn ReplayStore>,
    mut rx: mpsc::Receiver<ToUploader>,
) {
    let prefix = target.session_prefix(&info.session_id);
    let mut meta = Metadata {
        info,
        target: target.clone(),
        batches: Vec::new(),
        event_count: 0,
        dropped_events: 0,
        errors: Vec::new(),
        end: None,
    };
    let mut seq = 0u32;
    let mut upload_time = Duration::ZERO;
    let put = |key: String, body: Vec<u8>| {
        let store = store.clone();
        let bucket = target.bucket.clone();
        async move {
            store
                .put(&bucket, &key, body)
                .await
                .map_err(|detail| RecordingError::Upload {
                    bucket,
                    key,
                    detail,
                })
        }
    };
    let note = |meta: &mut Metadata, e: RecordingError| {
        // The first failure is a warning; repeats (every batch to a missing bucket) are not.
        if meta.errors.is_empty() {
            tracing::warn!(error = %e, "session recording upload failed; the session goes on unrecorded");
        } else {
            tracing::debug!(error = %e, "session recording upload failed");
        }
        meta.errors.push(e.to_string());
    };
    while let Some(msg) = rx.recv().await {
        let mut events = match msg {
            ToUploader::Batch(events) => events,
            ToUploader::Error(e) => {
                meta.errors.push(e);
                continue;
            }
            ToUploader::Dropped(n) => {
                meta.dropped_events += n;
                meta.errors
                    .push(format!("{n} events dropped: the uploads could not keep up"));
                continue;
            }
        };
        // Pages and DevTools stamp their own clocks; players want time order.
        events.sort_by_key(|e| e["timestamp"].as_f64().unwrap_or(0.0) as i64);
        seq += 1;
        let file = format!("batch-{seq:06}.ndjson.gz");
        let t0 = Instant::now();
        let body = encode_batch(&events);
        let key = format!("{prefix}{file}");
        // One retry, for a passing S3 hiccup; a missing bucket fails both times.
        let mut outcome = put(key.clone(), body.clone()).await;
        if outcome.is_err() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            outcome = put(key, body).await;
        }
        match outcome {
            Ok(()) => {
                meta.event_count += events.len() as u64;
                meta.batches.push(json!({
                    "file": file,
                    "eventCount": events.len(),
                    "firstTimestamp": events.first().map(|e| e["timestamp"].clone()),
                    "lastTimestamp": events.last().map(|e| e["timestamp"].clone()),
                }));
                let body = serde_json::to_vec_pretty(&meta.to_json()).unwrap_or_default();
                if let Err(e) = put(format!("{prefix}metadata.json"), body).await {
                    note(&mut meta, e);
                }
            }
            Err(e) => {
                meta.dropped_events += events.len() as u64;
                note(&mut meta, e);
            }
        }
        upload_time += t0.elapsed();
    }
    meta.end = Some(Timestamp::now());
    let body = serde_json::to_vec_pretty(&meta.to_json()).unwrap_or_default();
    if let Err(e) = put(format!("{prefix}metadata.json"), body).await {
        note(&mut meta, e);
    }
    if meta.errors.is_empty() {
        tracing::info!(
            events = meta.event_count,
            batches = meta.batches.len(),
            upload_ms = upload_time.as_millis() as u64,
            location = %target.artifact_uri(&meta.info.session_id),
            "session recording written"
        );
    } else {
        tracing::warn!(
            events = meta.event_count,
            dropped = meta.dropped_events,
            failures = meta.errors.len(),
            last_error = %meta.errors.last().map(String::as_str).unwrap_or(""),
            "session recording incomplete"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Read;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Memory {
        objects: Mutex<BTreeMap<String, Vec<u8>>>,
        fail: bool,
    }

    #[async_trait::async_trait]
    impl ReplayStore for Memory {
        async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), String> {
            if self.fail {
                return Err("NoSuchBucket".into());
            }
            self.objects
                .lock()
                .unwrap()
                .insert(format!("{bucket}/{key}"), body);
            Ok(())
        }
    }

    fn info() -> SessionInfo {
        SessionInfo {
            session_id: "S1".into(),
            browser_id: "b-0123456789".into(),
            viewport: (1456, 819),
            started_at: Timestamp::now(),
        }
    }

    #[test]
    fn target_from_config() {
        let cfg: Map<String, Value> = serde_json::from_value(json!({
            "recording": {"enabled": true, "s3Location": {"bucket": "bk", "prefix": "/replays/x/"}}
        }))
        .unwrap();
        let t = RecordingTarget::from_config(&cfg).unwrap();
        assert_eq!(t.artifact_uri("S1"), "s3://bk/replays/x/S1/");
        let off: Map<String, Value> = serde_json::from_value(json!({
            "recording": {"enabled": false, "s3Location": {"bucket": "bk", "prefix": "p"}}
        }))
        .unwrap();
        assert!(RecordingTarget::from_config(&off).is_none());
        assert!(RecordingTarget::from_config(&Map::new()).is_none());
    }

    #[test]
    fn cdp_events_become_rrweb_events() {
        let mut cdp = Commands::default();
        let mut pages = Vec::new();
        let mut batch = Vec::new();
        handle(
            &json!({"method": "Target.attachedToTarget", "params": {"sessionId": "P1", "targetInfo": {"type": "page"}, "waitingForDebugger": true}}),
            &mut cdp,
            &mut pages,
            &mut batch,
        );
        let sent = cdp.drain().join("\n");
        assert!(sent.contains("Page.addScriptToEvaluateOnNewDocument"));
        assert!(sent.contains("Runtime.addBinding"));
        // The page is let run only after the script is registered.
        let inject = sent.find("addScriptToEvaluateOnNewDocument").unwrap();
        assert!(sent.find("runIfWaitingForDebugger").unwrap() > inject);
        assert_eq!(pages, vec!["P1".to_string()]);
        let payload =
            json!([{"type": 4, "data": {"href": "http://x/"}, "timestamp": 1}, {"bogus": 1}])
                .to_string();
        handle(
            &json!({"method": "Runtime.bindingCalled", "sessionId": "P1", "params": {"name": BINDING, "payload": payload}}),
            &mut cdp,
            &mut pages,
            &mut batch,
        );
        handle(
            &json!({"method": "Runtime.consoleAPICalled", "sessionId": "P1", "params": {"type": "warning", "timestamp": 5.0, "args": [{"type": "string", "value": "hi"}, {"type": "number", "value": 3}]}}),
            &mut cdp,
            &mut pages,
            &mut batch,
        );
        assert_eq!(batch.len(), 2, "the malformed event is dropped: {batch:?}");
        assert_eq!(batch[1]["type"], 6);
        assert_eq!(batch[1]["data"]["payload"]["level"], "warn");
        assert_eq!(batch[1]["data"]["payload"]["payload"], json!(["hi", "3"]));
    }

    #[tokio::test]
    async fn batches_and_metadata() {
        let store = Arc::new(Memory::default());
        let (tx, rx) = mpsc::channel(4);
        let target = RecordingTarget {
            bucket: "bk".into(),
            prefix: "p".into(),
        };
        let up = tokio::spawn(upload(info(), target, store.clone(), rx));
        tx.send(ToUploader::Batch(vec![
            json!({"type": 3, "data": {}, "timestamp": 20}),
            json!({"type": 4, "data": {}, "timestamp": 10}),
        ]))
        .await
        .unwrap();
        drop(tx);
        up.await.unwrap();
        let objects = store.objects.lock().unwrap();
        let mut lines = String::new();
        flate2::read::GzDecoder::new(&objects["bk/p/S1/batch-000001.ndjson.gz"][..])
            .read_to_string(&mut lines)
            .unwrap();
        let ts: Vec<i64> = lines
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["timestamp"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        assert_eq!(ts, vec![10, 20]);
        let meta: Value = serde_json::from_slice(&objects["bk/p/S1/metadata.json"]).unwrap();
        assert_eq!(meta["eventCount"], 2);
        assert_eq!(meta["status"], "COMPLETE");
        assert_eq!(meta["batches"][0]["firstTimestamp"], 10);
        assert!(meta.get("recordingError").is_none());
    }

    #[tokio::test]
    async fn directory_store_needs_the_bucket() {
        let root = std::env::temp_dir().join(format!("hangar-rec-{}", crate::new_session_id()));
        let store = hangar_artifacts::DirSource::new(&root);
        assert!(store
            .put("bk", "p/S1/metadata.json", b"{}".to_vec())
            .await
            .is_err());
        std::fs::create_dir_all(root.join("bk")).unwrap();
        store
            .put("bk", "p/S1/metadata.json", b"{}".to_vec())
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(root.join("bk/p/S1/metadata.json")).unwrap(),
            b"{}"
        );
        assert!(store.put("bk", "../escape", vec![]).await.is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn failures_are_noted_not_returned() {
        let store = Arc::new(Memory {
            fail: true,
            ..Memory::default()
        });
        let (tx, rx) = mpsc::channel(4);
        let target = RecordingTarget {
            bucket: "nope".into(),
            prefix: "p".into(),
        };
        let up = tokio::spawn(upload(info(), target, store.clone(), rx));
        tx.send(ToUploader::Batch(vec![
            json!({"type": 4, "data": {}, "timestamp": 1}),
        ]))
        .await
        .unwrap();
        drop(tx);
        up.await.unwrap();
        assert!(store.objects.lock().unwrap().is_empty());
    }
}
