//! Forwarding invocations to the agent in a session's sandbox over HTTP/1.1.
//!
//! Each session has its own pooled hyper client whose connector opens connections inside the
//! sandbox's network namespace, so every agent listens on its contract port (8080 for HTTP)
//! without being told a port. Responses are streamed back as they arrive (SSE chunks reach the
//! caller as the agent writes them).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hangar_sandbox::Sandbox;
use http::{HeaderMap, Request, Response, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Opens connections to one sandbox's port, whatever host the URI names.
#[derive(Clone)]
pub(crate) struct SandboxConnector {
    pub sandbox: Arc<dyn Sandbox>,
}

impl tower::Service<Uri> for SandboxConnector {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = hangar_sandbox::SandboxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let sandbox = self.sandbox.clone();
        let port = uri.port_u16().unwrap_or(80);
        Box::pin(async move {
            let stream = sandbox.connect(port).await?;
            stream.set_nodelay(true).ok();
            Ok(TokioIo::new(stream))
        })
    }
}

pub(crate) type AgentClient = Client<SandboxConnector, Full<Bytes>>;

pub(crate) fn client(sandbox: Arc<dyn Sandbox>) -> AgentClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(300))
        .build(SandboxConnector { sandbox })
}

/// One InvokeAgentRuntime call, as the wire layer parsed it.
#[derive(Debug)]
pub struct Invocation {
    /// The runtime's id or ARN, as the caller named it.
    pub runtime: String,
    /// Endpoint name; `DEFAULT` when absent.
    pub qualifier: Option<String>,
    /// `X-Amzn-Bedrock-AgentCore-Runtime-Session-Id`; generated when absent.
    pub session_id: Option<String>,
    /// `X-Amzn-RequestId` of the call, forwarded as the agent's request id.
    pub request_id: String,
    /// The caller's request headers; [`forwarded_headers`] picks what reaches the agent.
    pub headers: HeaderMap,
    pub payload: Bytes,
}

/// The agent's answer, streaming.
pub struct InvocationResponse {
    pub session_id: String,
    pub response: Response<crate::sessions::GuardedBody>,
}

/// Request headers the contract passes to the agent, besides the ones Hangar sets itself
/// (session id, request id).
const FORWARDED_HEADERS: &[&str] = &[
    "content-type",
    "accept",
    "x-amzn-trace-id",
    "traceparent",
    "tracestate",
    "baggage",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "x-amzn-bedrock-agentcore-runtime-user-id",
];

/// Headers that are never the caller's to pass on: they belong to this hop or carry the
/// caller's credentials for Hangar.
const NEVER_FORWARDED: &[&str] = &[
    "authorization",
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "upgrade",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// What of the caller's headers reaches the agent: the contract's fixed set plus the runtime's
/// `requestHeaderConfiguration.requestHeaderAllowlist` (names compared case-insensitively).
pub(crate) fn forwarded_headers(caller: &HeaderMap, allowlist: &[String]) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in caller {
        let n = name.as_str();
        let allowed =
            FORWARDED_HEADERS.contains(&n) || allowlist.iter().any(|a| a.eq_ignore_ascii_case(n));
        if allowed && !NEVER_FORWARDED.contains(&n) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

pub(crate) fn build_request(
    port: u16,
    path: &str,
    headers: &HeaderMap,
    payload: Bytes,
) -> Result<Request<Full<Bytes>>, http::Error> {
    let mut request = Request::post(format!("http://127.0.0.1:{port}{path}"));
    if let Some(h) = request.headers_mut() {
        h.extend(headers.clone());
    }
    request.body(Full::new(payload))
}
