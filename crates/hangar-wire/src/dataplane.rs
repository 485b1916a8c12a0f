//! Data-plane operations that do not fit the buffered JSON path: the agent invocation (raw
//! payload in, streamed agent answer out) and stopping a session.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use hangar_agents::Invocation;
use hangar_domain::RequestContext;
use hangar_model::{Input, OperationDef, Output};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::routes::Labels;
use crate::{bind, encode, WireError, WireState};

/// The largest InvokeAgentRuntime payload (the model's `payload` maximum).
pub const MAX_PAYLOAD_BYTES: usize = 100_000_000;

/// Request headers passed on to the agent, besides the ones Hangar sets itself.
const FORWARDED_HEADERS: &[&str] = &[
    "content-type",
    "accept",
    "x-amzn-trace-id",
    "traceparent",
    "tracestate",
    "baggage",
    "mcp-session-id",
    "mcp-protocol-version",
    "x-amzn-bedrock-agentcore-runtime-user-id",
];

fn sessions(state: &WireState) -> Result<&hangar_agents::SessionManager, WireError> {
    state.sessions.as_deref().ok_or_else(|| {
        hangar_domain::Error::Unsupported("This Hangar does not run agent sessions.".into()).into()
    })
}

/// Binds and validates the members of a raw-payload operation; the payload itself is the body,
/// checked only for size, so it is stood in by an empty blob for the model's `required` rule.
fn bind_without_payload(
    def: &'static OperationDef,
    labels: &Labels<'_>,
    parts: &http::request::Parts,
) -> Result<Input, WireError> {
    let mut value = bind::bind_input(def, labels, parts.uri.query(), &parts.headers, Bytes::new())?;
    if let Value::Object(members) = &mut value {
        members.insert("payload".into(), Value::String(String::new()));
    }
    hangar_model::validate_input(def.op, &value)?;
    Input::from_value(def.op, value).map_err(|e| {
        WireError::cannot_parse(format!("Could not parse the {} request: {e}", def.name))
    })
}

pub(crate) async fn invoke_agent_runtime(
    state: &WireState,
    ctx: &RequestContext,
    def: &'static OperationDef,
    labels: &Labels<'_>,
    parts: &http::request::Parts,
    payload: Bytes,
) -> Result<Response, WireError> {
    let sessions = sessions(state)?;
    let Input::InvokeAgentRuntime(request) = bind_without_payload(def, labels, parts)? else {
        unreachable!("routed by operation");
    };
    let mut headers = HeaderMap::new();
    for name in FORWARDED_HEADERS {
        if let Some(value) = parts.headers.get(*name) {
            headers.insert(HeaderName::from_static(name), value.clone());
        }
    }
    let answer = sessions
        .invoke(Invocation {
            runtime: request.agent_runtime_arn,
            qualifier: request.qualifier,
            session_id: request.runtime_session_id,
            request_id: ctx.request_id.clone(),
            headers,
            payload,
        })
        .await?;
    let (agent, body) = answer.response.into_parts();
    let mut response = Response::new(Body::new(body));
    *response.status_mut() = agent.status;
    let out = response.headers_mut();
    out.insert(
        http::header::CONTENT_TYPE,
        agent
            .headers
            .get(http::header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    for name in [
        "mcp-session-id",
        "mcp-protocol-version",
        "traceparent",
        "tracestate",
        "baggage",
    ] {
        if let Some(v) = agent.headers.get(name) {
            out.insert(HeaderName::from_static(name), v.clone());
        }
    }
    if let Ok(v) = HeaderValue::from_str(&answer.session_id) {
        out.insert(crate::SESSION_ID_HEADER, v);
    }
    Ok(response)
}

pub(crate) async fn stop_runtime_session(
    state: &WireState,
    def: &'static OperationDef,
    labels: &Labels<'_>,
    parts: &http::request::Parts,
    body: Bytes,
) -> Result<Response, WireError> {
    let sessions = sessions(state)?;
    let value = bind::bind_input(def, labels, parts.uri.query(), &parts.headers, body)?;
    hangar_model::validate_input(def.op, &value)?;
    let Input::StopRuntimeSession(request) = Input::from_value(def.op, value).map_err(|e| {
        WireError::cannot_parse(format!("Could not parse the {} request: {e}", def.name))
    })?
    else {
        unreachable!("routed by operation");
    };
    sessions
        .stop(
            &request.agent_runtime_arn,
            request.qualifier.as_deref(),
            &request.runtime_session_id,
        )
        .await?;
    let output = Output::from_value(
        def.op,
        serde_json::json!({"runtimeSessionId": request.runtime_session_id}),
    )
    .map_err(|e| WireError::Internal(format!("StopRuntimeSession output: {e}")))?;
    encode::encode_output(&output)
}
