//! Data-plane operations that do not fit the buffered JSON path: the agent invocation (raw
//! payload in, streamed agent answer out), stopping a session, an A2A agent's card, a command
//! run inside a session (its output as an event stream) and the `/ws` WebSocket.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use hangar_agents::Invocation;
use hangar_domain::RequestContext;
use hangar_model::{Input, OperationDef, Output};
use http::{HeaderName, HeaderValue};
use serde_json::Value;

use crate::routes::Labels;
use crate::{bind, encode, WireError, WireState};

/// The largest InvokeAgentRuntime payload (the model's `payload` maximum).
pub const MAX_PAYLOAD_BYTES: usize = 100_000_000;

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
    bind::typed_value(def, value)
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
    let answer = sessions
        .invoke(Invocation {
            runtime: request.agent_runtime_arn,
            qualifier: request.qualifier,
            session_id: request.runtime_session_id,
            request_id: ctx.request_id.clone(),
            headers: parts.headers.clone(),
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

fn session_header(response: &mut Response, session_id: &str) {
    if let Ok(v) = HeaderValue::from_str(session_id) {
        response.headers_mut().insert(crate::SESSION_ID_HEADER, v);
    }
}

/// `GET /runtimes/{runtime}/invocations/.well-known/agent-card.json`: the card document is the
/// body, as the agent served it.
pub(crate) async fn get_agent_card(
    state: &WireState,
    def: &'static OperationDef,
    labels: &Labels<'_>,
    parts: &http::request::Parts,
    body: Bytes,
) -> Result<Response, WireError> {
    let sessions = sessions(state)?;
    let Input::GetAgentCard(request) = bind::typed_input(def, labels, parts, body)? else {
        unreachable!("routed by operation");
    };
    let card = sessions
        .agent_card(
            &request.agent_runtime_arn,
            request.qualifier.as_deref(),
            request.runtime_session_id,
        )
        .await?;
    let body = serde_json::to_vec(&card.card)
        .map_err(|e| WireError::Internal(format!("agent card: {e}")))?;
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    session_header(&mut response, &card.session_id);
    Ok(response)
}

/// The longest a command may run (`timeout`, seconds), and the default.
const COMMAND_TIMEOUT_RANGE: std::ops::RangeInclusive<i32> = 1..=3600;
const COMMAND_DEFAULT_TIMEOUT: i32 = 300;

/// `POST /runtimes/{runtime}/commands`: the command's output as
/// `InvokeAgentRuntimeCommandStreamOutput` events (`chunk.contentStart`, `chunk.contentDelta`
/// with stdout/stderr as it is written, `chunk.contentStop` with the exit code), each flushed
/// as it happens.
pub(crate) async fn invoke_agent_runtime_command(
    state: &WireState,
    def: &'static OperationDef,
    labels: &Labels<'_>,
    parts: &http::request::Parts,
    body: Bytes,
) -> Result<Response, WireError> {
    use hangar_agents::CommandEvent;
    use hangar_model::data::{
        CommandExecutionStatus, ContentDeltaEvent, ContentStartEvent, ContentStopEvent,
        InvokeAgentRuntimeCommandStreamOutput as Out, ResponseChunk,
    };

    let sessions = sessions(state)?;
    let Input::InvokeAgentRuntimeCommand(request) = bind::typed_input(def, labels, parts, body)?
    else {
        unreachable!("routed by operation");
    };
    let timeout = request.body.timeout.unwrap_or(COMMAND_DEFAULT_TIMEOUT);
    if !COMMAND_TIMEOUT_RANGE.contains(&timeout) {
        return Err(hangar_domain::Error::invalid_field(
            "body.timeout",
            &format!(
                "Member must have value between {} and {}",
                COMMAND_TIMEOUT_RANGE.start(),
                COMMAND_TIMEOUT_RANGE.end()
            ),
        )
        .into());
    }
    let run = sessions
        .command(
            &request.agent_runtime_arn,
            request.qualifier.as_deref(),
            request.runtime_session_id,
            request.body.command,
            std::time::Duration::from_secs(timeout as u64),
        )
        .await?;
    let chunk = |c: ResponseChunk| crate::eventstream::encode_union(&Out::Chunk(c));
    let frames = futures_util::stream::unfold(run.events, move |mut events| async move {
        let frame = match events.recv().await? {
            CommandEvent::Started => chunk(ResponseChunk {
                content_start: Some(ContentStartEvent {}),
                ..Default::default()
            }),
            CommandEvent::Stdout(text) => chunk(ResponseChunk {
                content_delta: Some(ContentDeltaEvent {
                    stdout: Some(text),
                    stderr: None,
                }),
                ..Default::default()
            }),
            CommandEvent::Stderr(text) => chunk(ResponseChunk {
                content_delta: Some(ContentDeltaEvent {
                    stdout: None,
                    stderr: Some(text),
                }),
                ..Default::default()
            }),
            CommandEvent::Finished {
                exit_code,
                timed_out,
            } => chunk(ResponseChunk {
                content_stop: Some(ContentStopEvent {
                    exit_code,
                    status: if timed_out {
                        CommandExecutionStatus::TimedOut
                    } else {
                        CommandExecutionStatus::Completed
                    },
                }),
                ..Default::default()
            }),
        };
        Some((Ok::<_, std::convert::Infallible>(frame), events))
    });
    let mut response = Response::new(Body::from_stream(frames));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(crate::eventstream::CONTENT_TYPE),
    );
    session_header(&mut response, &run.session_id);
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
    let Input::StopRuntimeSession(request) = bind::typed_input(def, labels, parts, body)? else {
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

/// `GET /runtimes/{runtime}/ws`: the agent's `/ws` WebSocket, proxied frame by frame, with the
/// same authentication and session routing as `/invocations`. (Not an operation of the model:
/// AgentCore serves it beside the API.)
pub(crate) async fn websocket(
    state: &WireState,
    runtime_label: &str,
    parts: &mut http::request::Parts,
) -> Result<Response, WireError> {
    use axum::extract::ws::WebSocketUpgrade;
    use axum::extract::FromRequestParts;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let sessions = sessions(state)?;
    let upgrade = WebSocketUpgrade::from_request_parts(parts, &())
        .await
        .map_err(|e| WireError::cannot_parse(format!("Not a WebSocket upgrade: {e}")))?
        // Browsers send their bearer token as a subprotocol; the plain name is the one agreed.
        .protocols([crate::authn::WS_BEARER_PROTOCOL]);
    let runtime = percent_encoding::percent_decode_str(runtime_label)
        .decode_utf8()
        .map_err(|_| WireError::cannot_parse("The runtime in the path is not valid UTF-8."))?
        .into_owned();
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| {
                    let decode = |s: &str| {
                        percent_encoding::percent_decode_str(s)
                            .decode_utf8_lossy()
                            .into_owned()
                    };
                    (decode(k), decode(v))
                })
                .collect()
        })
        .unwrap_or_default();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    // Presigned URLs carry the session id as a query parameter; header clients send a header.
    let session_id = parts
        .headers
        .get(crate::SESSION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| param(crate::SESSION_ID_HEADER));
    if let Some(id) = &session_id {
        if !(33..=256).contains(&id.len()) {
            return Err(WireError::Validation {
                message: format!("1 validation error detected: Value at 'runtimeSessionId' failed to satisfy constraint: Member must have length between 33 and 256, got {}", id.len()),
                reason: hangar_domain::ValidationReason::FieldValidationFailed,
                fields: vec![hangar_model::FieldViolation {
                    name: "runtimeSessionId".into(),
                    message: "Member must have length between 33 and 256".into(),
                }],
            });
        }
    }
    let qualifier = param("qualifier");
    let connection = sessions
        .connect(&runtime, qualifier.as_deref(), session_id)
        .await?;
    let session_id = connection.session_id.clone();
    let port = connection.port;
    let forwarded = connection.forwarded_headers(&parts.headers);
    let (stream, active) = connection.into_parts();
    let mut request = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .map_err(|e| WireError::Internal(format!("agent WebSocket request: {e}")))?;
    request.headers_mut().extend(forwarded);
    if let Ok(v) = HeaderValue::from_str(&session_id) {
        request.headers_mut().insert(crate::SESSION_ID_HEADER, v);
    }
    let (agent, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .map_err(|e| {
            hangar_domain::Error::RuntimeClient(format!(
                "The agent did not accept a WebSocket on /ws: {e}"
            ))
        })?;
    let mut response = upgrade.on_upgrade(move |client| async move {
        crate::ws_relay::relay(client, agent).await;
        drop(active);
    });
    if let Ok(v) = HeaderValue::from_str(&session_id) {
        response.headers_mut().insert(crate::SESSION_ID_HEADER, v);
    }
    Ok(response)
}
