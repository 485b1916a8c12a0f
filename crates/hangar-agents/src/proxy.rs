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

/// The `WorkloadAccessToken` header (lowercase). The wire layer removes any the caller sent
/// and, after authenticating the call, puts in one this server signed; the proxy forwards it
/// as one of the platform's own headers.
pub const WORKLOAD_TOKEN_HEADER: &str = "workloadaccesstoken";

/// Request headers the contract passes to the agent (spec §A.7: content negotiation, trace
/// context, MCP), besides the ones Hangar sets itself (session id, request id, workload
/// access token). `X-Amzn-Bedrock-AgentCore-Runtime-User-Id` is not among them: it is
/// consumed to mint the workload access token.
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
];

/// Names an allowlist can never let through (spec §A.7, mirrored from the SDK's
/// `RESTRICTED_HEADERS`), plus the platform's own headers, which only Hangar sets.
const RESTRICTED: &[&str] = &[
    "proxy-authorization",
    "www-authenticate",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "content-type",
    "content-length",
    "content-encoding",
    "content-language",
    "content-location",
    "content-range",
    "cache-control",
    "etag",
    "expires",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "pragma",
    "vary",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "host",
    "user-agent",
    "referer",
    "from",
    "range",
    "accept-ranges",
    "transfer-encoding",
    "te",
    "trailer",
    "server",
    "date",
    "location",
    "retry-after",
    "set-cookie",
    "cookie",
    "content-security-policy",
    "content-security-policy-report-only",
    "strict-transport-security",
    "x-content-type-options",
    "x-frame-options",
    "x-xss-protection",
    "referrer-policy",
    "permissions-policy",
    "cross-origin-embedder-policy",
    "cross-origin-opener-policy",
    "cross-origin-resource-policy",
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-allow-credentials",
    "access-control-expose-headers",
    "access-control-max-age",
    "access-control-request-method",
    "access-control-request-headers",
    "origin",
    "accept-ch",
    "accept-ch-lifetime",
    "dpr",
    "width",
    "viewport-width",
    "downlink",
    "ect",
    "rtt",
    "save-data",
    "clear-site-data",
    "feature-policy",
    "expect-ct",
    "public-key-pins",
    "public-key-pins-report-only",
    "via",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "x-requested-with",
    "x-csrf-token",
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "x-originating-ip",
    "x-source-ip",
    "x-original-url",
    "x-original-host",
    "x-rewrite-url",
    "cf-ray",
    "cf-connecting-ip",
    "x-amz-cf-id",
    "x-cache",
    "x-served-by",
    "link",
    "sec-websocket-key",
    "sec-websocket-accept",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    // The platform's own.
    WORKLOAD_TOKEN_HEADER,
    "oauth2callbackurl",
];

/// The legacy custom-header prefix: the only `x-amzn-` names an allowlist may name.
const CUSTOM_PREFIX: &str = "x-amzn-bedrock-agentcore-runtime-custom-";

/// The largest header value an allowlist lets through (spec §A.7: 4 KB).
pub const MAX_ALLOWLISTED_VALUE: usize = 4096;

/// Whether an allowlist entry may let `name` (lowercase) through at all.
fn allowlistable(name: &str) -> bool {
    !RESTRICTED.contains(&name)
        && !name.starts_with("x-amz-")
        && (!name.starts_with("x-amzn-") || name.starts_with(CUSTOM_PREFIX))
}

/// The effective allowlist of a runtime version: its `requestHeaderAllowlist`, lowercased,
/// without the entries the rules forbid, and without `Authorization` unless the version has
/// a `customJWTAuthorizer` (a SigV4 caller's signature is not the agent's business).
pub(crate) fn effective_allowlist(
    config: &serde_json::Map<String, serde_json::Value>,
) -> Vec<String> {
    let jwt = config
        .get("authorizerConfiguration")
        .and_then(|a| a.get("customJWTAuthorizer"))
        .is_some();
    let mut out: Vec<String> = Vec::new();
    let entries = config
        .get("requestHeaderConfiguration")
        .and_then(|c| c.get("requestHeaderAllowlist"))
        .and_then(|l| l.as_array());
    for name in entries.into_iter().flatten().filter_map(|h| h.as_str()) {
        let name = name.to_ascii_lowercase();
        let allowed = if name == "authorization" {
            jwt
        } else {
            allowlistable(&name)
        };
        if allowed && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// What of the caller's headers reaches the agent: the contract's fixed set, the platform's
/// workload access token, and the names on the (effective, lowercase) allowlist with values
/// of at most [`MAX_ALLOWLISTED_VALUE`] bytes. Everything else the caller sent is dropped.
pub(crate) fn forwarded_headers(caller: &HeaderMap, allowlist: &[String]) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in caller {
        let n = name.as_str();
        let allowed = FORWARDED_HEADERS.contains(&n)
            || n == WORKLOAD_TOKEN_HEADER
            || (allowlist.iter().any(|a| a == n) && value.len() <= MAX_ALLOWLISTED_VALUE);
        if allowed {
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

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};
    use serde_json::json;

    fn config(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_allowlist_follows_agentcores_rules() {
        let entries = json!([
            "Authorization",
            "X-Tenant-Id",
            "x-tenant-id",
            "Cookie",
            "Content-Type",
            "Host",
            "X-Amz-Date",
            "X-Amz-Foo",
            "X-Amzn-Trace-Other",
            "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant",
            "WorkloadAccessToken",
            "X-Forwarded-For",
            "Sec-WebSocket-Protocol",
        ]);
        let sigv4 =
            config(json!({"requestHeaderConfiguration": {"requestHeaderAllowlist": entries}}));
        assert_eq!(
            effective_allowlist(&sigv4),
            [
                "x-tenant-id",
                "x-amzn-bedrock-agentcore-runtime-custom-tenant"
            ]
        );
        let jwt = config(json!({
            "requestHeaderConfiguration": {"requestHeaderAllowlist": entries},
            "authorizerConfiguration": {"customJWTAuthorizer": {"discoveryUrl": "https://x/.well-known/openid-configuration"}},
        }));
        assert_eq!(
            effective_allowlist(&jwt),
            [
                "authorization",
                "x-tenant-id",
                "x-amzn-bedrock-agentcore-runtime-custom-tenant"
            ]
        );
        assert!(effective_allowlist(&config(json!({}))).is_empty());
    }

    #[test]
    fn only_allowed_headers_are_forwarded() {
        let mut caller = HeaderMap::new();
        for (k, v) in [
            ("content-type", "application/json"),
            ("accept", "*/*"),
            ("traceparent", "00-abc-def-01"),
            ("x-tenant-id", "t"),
            ("x-junk", "j"),
            ("cookie", "c=1"),
            ("authorization", "Bearer t"),
            ("workloadaccesstoken", "from-the-wire-layer"),
            ("x-amzn-bedrock-agentcore-runtime-user-id", "u"),
            ("x-amzn-bedrock-agentcore-runtime-custom-unlisted", "u"),
        ] {
            caller.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        caller.append(
            HeaderName::from_static("x-big"),
            HeaderValue::from_str(&"x".repeat(MAX_ALLOWLISTED_VALUE + 1)).unwrap(),
        );
        let allow = vec!["x-tenant-id".to_string(), "x-big".to_string()];
        let out = forwarded_headers(&caller, &allow);
        let mut names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "accept",
                "content-type",
                "traceparent",
                "workloadaccesstoken",
                "x-tenant-id"
            ]
        );
    }
}
