//! The AWS rest-json wire layer of Hangar.
//!
//! [`router`] answers every request on the port:
//! - `GET /_hangar/health` (and anything else under `/_hangar/`): Hangar's own routes, no
//!   signature needed.
//! - Everything else is an AgentCore operation. The request goes through, in order:
//!   1. routing — `(method, raw path)` against the model's `requestUri` templates
//!      (`routes.rs`);
//!   2. SigV4 — the signature must be present and well formed ([`sigv4::parse`]), and in
//!      [`AuthMode::Strict`] must verify ([`AuthMode::verify`]);
//!   3. binding — URI labels, query, headers and JSON body become one JSON object keyed by
//!      member name (`bind.rs`), checked by `hangar_model::validate_input` and turned into a
//!      typed `hangar_model::Input`;
//!   4. the domain — `ControlPlane::execute`;
//!   5. encoding — the `Output`'s members go to headers, status and JSON body (`encode.rs`).
//!
//! Any failure becomes a [`WireError`], rendered in one place ([`error`]) exactly as botocore
//! parses rest-json errors. Every response carries `x-amzn-RequestId`; the same id is in the
//! domain's `RequestContext` and in the `request` tracing span.
//!
//! Decisions worth knowing:
//! - JSON bodies are limited to [`MAX_JSON_BODY_BYTES`] (4 MiB); more is a 400
//!   `ValidationException` (reason `CannotParse`), refused by `Content-Length` before reading.
//! - Unsigned requests get 403 `MissingAuthenticationTokenException` even on unknown paths
//!   (auth runs before the 404), as on AWS; `/_hangar/` is exempt.
//! - Any region in the SigV4 scope is accepted (see [`sigv4`]); the signing name must be
//!   `bedrock-agentcore` in every mode.
//! - URI/query/header values that do not convert to the member's type (`maxResults=abc`) are
//!   400 `ValidationException`, reason `CannotParse`, with the member in `fieldList`; model
//!   constraint violations are reason `FieldValidationFailed`.
//! - In query strings `+` is a literal plus, not a space (opaque tokens are often base64).
//! - `InternalServerException` never carries internal detail; it is logged with the request id.

pub mod error;
pub mod eventstream;
pub mod sigv4;

mod authn;
mod bind;
mod browser;
mod dataplane;
mod encode;
mod panic;
mod routes;
mod tools;
mod ws_relay;

pub use error::WireError;
pub use sigv4::{AuthError, AuthMode, Credentials, CredentialsError};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use hangar_domain::{ControlPlane, RequestContext};
use hangar_model::OperationDef;
use http::HeaderValue;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use routes::{Handler, Labels, RouteTable};
use std::sync::Arc;
use tracing::Instrument;

/// The largest body a JSON operation accepts (4 MiB). AgentCore's largest JSON inputs
/// (runtime definitions with 50 environment variables of 5000 characters) stay well below
/// it; anything bigger is refused before it is buffered.
pub const MAX_JSON_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The response header carrying the request id (botocore's `ResponseMetadata.RequestId`).
pub const REQUEST_ID_HEADER: &str = "x-amzn-requestid";

/// The header carrying a runtime session id, in requests and responses.
pub const SESSION_ID_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-session-id";

/// Hangar's own routes live under this prefix; they are not AgentCore operations.
const HANGAR_PREFIX: &str = "/_hangar/";

/// What the router needs: the domain, how to authenticate, and the version to report.
#[derive(Clone)]
pub struct WireState {
    pub control: Arc<ControlPlane>,
    /// Agent sessions; without it the agent data plane answers UnknownOperationException.
    pub sessions: Option<Arc<hangar_agents::SessionManager>>,
    /// Code-interpreter sessions; without them that data plane answers
    /// UnknownOperationException.
    pub code_interpreters: Option<Arc<hangar_tools::CodeInterpreters>>,
    /// Browser sessions; without them that data plane answers UnknownOperationException.
    pub browsers: Option<Arc<hangar_tools::Browsers>>,
    pub auth: AuthMode,
    /// The runtimes' JWT authorizers (provider caches, compiled rules).
    pub authorizers: Arc<hangar_auth::JwtAuthorizers>,
    /// Issues the `WorkloadAccessToken` agents receive; without it none is sent.
    pub workload_tokens: Option<Arc<hangar_auth::WorkloadTokenIssuer>>,
    /// Reported by `GET /_hangar/health`.
    pub version: String,
}

impl WireState {
    /// A state reporting this crate's version (the workspace version). `control` may be a
    /// `ControlPlane` or an `Arc<ControlPlane>`.
    pub fn new(control: impl Into<Arc<ControlPlane>>, auth: AuthMode) -> Self {
        WireState {
            control: control.into(),
            sessions: None,
            code_interpreters: None,
            browsers: None,
            auth,
            authorizers: Arc::new(hangar_auth::JwtAuthorizers::default()),
            workload_tokens: None,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    pub fn with_authorizers(mut self, authorizers: Arc<hangar_auth::JwtAuthorizers>) -> Self {
        self.authorizers = authorizers;
        self
    }

    pub fn with_workload_tokens(mut self, issuer: Arc<hangar_auth::WorkloadTokenIssuer>) -> Self {
        self.workload_tokens = Some(issuer);
        self
    }

    pub fn with_sessions(mut self, sessions: Arc<hangar_agents::SessionManager>) -> Self {
        self.sessions = Some(sessions);
        self
    }

    pub fn with_code_interpreters(
        mut self,
        code_interpreters: Arc<hangar_tools::CodeInterpreters>,
    ) -> Self {
        self.code_interpreters = Some(code_interpreters);
        self
    }

    pub fn with_browsers(mut self, browsers: Arc<hangar_tools::Browsers>) -> Self {
        self.browsers = Some(browsers);
        self
    }

    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }
}

/// The id of one request, as sent in `x-amzn-RequestId` and given to the domain. The request
/// middleware puts it in the request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    fn new() -> Self {
        RequestId(uuid::Uuid::new_v4().to_string())
    }
}

/// The router serving Hangar's own routes and every AgentCore operation. Serve it with
/// `axum::serve(listener, router(state))`. The request-id and panic middleware covers only
/// the routes defined here: add new Hangar routes in this function, not by merging.
pub fn router(state: WireState) -> Router {
    let state = Arc::new(state);
    Router::new()
        .route("/_hangar/health", get(health).fallback(dispatch))
        .route("/_hangar/sessions", get(list_sessions).fallback(dispatch))
        .route(
            "/_hangar/workload-identity/jwks.json",
            get(workload_jwks).fallback(dispatch),
        )
        .route(
            "/_hangar/runtimes/{runtime_id}/sessions/{session_id}/logs",
            get(session_logs).fallback(dispatch),
        )
        .fallback(dispatch)
        .layer(middleware::from_fn(request_context))
        .with_state(state)
}

/// Assigns the request id, opens the `request` span, catches panics, and stamps
/// `x-amzn-RequestId` on whatever response comes back.
async fn request_context(mut request: Request, next: Next) -> Response {
    let request_id = RequestId::new();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id.0,
        method = %request.method(),
        path = request.uri().path(),
        operation = tracing::field::Empty,
    );
    let header = HeaderValue::from_str(&request_id.0).ok();
    request.extensions_mut().insert(request_id);
    let outcome = panic::CatchUnwind::new(next.run(request))
        .instrument(span.clone())
        .await;
    let mut response = match outcome {
        Ok(response) => response,
        Err(payload) => {
            // Nothing should get here: every failure is supposed to be a `WireError`.
            let _entered = span.enter();
            WireError::Internal(format!("panic: {}", panic::message(&payload))).into_response()
        }
    };
    if let Some(header) = header {
        response.headers_mut().insert(REQUEST_ID_HEADER, header);
    }
    response
}

async fn health(State(state): State<Arc<WireState>>) -> Response {
    Json(serde_json::json!({ "status": "ok", "version": state.version })).into_response()
}

/// The public key of the workload access tokens this server issues.
async fn workload_jwks(State(state): State<Arc<WireState>>) -> Response {
    match &state.workload_tokens {
        Some(issuer) => Json(issuer.jwks()).into_response(),
        None => Json(serde_json::json!({ "keys": [] })).into_response(),
    }
}

/// Live agent sessions.
async fn list_sessions(State(state): State<Arc<WireState>>) -> Response {
    let sessions = state
        .sessions
        .as_ref()
        .map(|s| s.list())
        .unwrap_or_default();
    Json(serde_json::json!({ "sessions": sessions })).into_response()
}

/// The bounded output tails of a live or recently ended agent session.
async fn session_logs(
    State(state): State<Arc<WireState>>,
    axum::extract::Path((runtime_id, session_id)): axum::extract::Path<(String, String)>,
) -> Response {
    match state
        .sessions
        .as_ref()
        .and_then(|s| s.logs(&runtime_id, &session_id))
    {
        Some(logs) => Json(logs).into_response(),
        None => WireError::NotFound(format!(
            "No logs for session {session_id} of runtime {runtime_id}"
        ))
        .into_response(),
    }
}

async fn dispatch(
    State(state): State<Arc<WireState>>,
    Extension(request_id): Extension<RequestId>,
    request: Request,
) -> Response {
    match handle(&state, request_id, request).await {
        Ok(response) => {
            tracing::debug!(status = response.status().as_u16(), "request completed");
            response
        }
        Err(e) => e.into_response(),
    }
}

async fn handle(
    state: &WireState,
    request_id: RequestId,
    request: Request,
) -> Result<Response, WireError> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    if path.starts_with(HANGAR_PREFIX) {
        return Err(WireError::unknown_operation(&parts.method, &path));
    }
    if let Some(runtime) = protected_resource_runtime(&parts.method, &path) {
        return authn::protected_resource(state, runtime, &parts).await;
    }
    if let Some(runtime) = websocket_runtime(&parts.method, &path) {
        let target = authn::resolve(state, runtime, authn::qualifier(&parts)).await?;
        let pending =
            authn::authenticate(state, &parts, sigv4::parse(&parts), target.as_ref()).await?;
        let principal = authn::finish(state, &parts, pending, &Bytes::new())?;
        set_workload_token(state, &principal, target.as_ref(), &mut parts)?;
        return dataplane::websocket(state, runtime, &mut parts).await;
    }
    if let Some((browser, session)) = browser::automation_route(&parts.method, &path) {
        return browser::automation(state, browser, session, &mut parts).await;
    }
    if let Some((browser, session, part)) = browser::live_view_route(&parts.method, &path) {
        return match part {
            browser::LiveViewPart::Page => {
                browser::live_view_page(state, browser, session, &mut parts).await
            }
            browser::LiveViewPart::Stream => {
                browser::live_view_stream(state, browser, session, &mut parts).await
            }
        };
    }
    let path = path.as_str();
    let route = RouteTable::model().find(parts.method.as_str(), path);
    if let Some(m) = &route {
        tracing::Span::current().record("operation", m.target.def.name);
    }

    // Authentication comes before the 404 for unknown routes, as on AWS: an unsigned request
    // learns nothing about which paths exist. Routes naming a runtime authenticate by that
    // runtime's authorizer (`authn`); everything else is SigV4.
    let runtime_label = route.as_ref().and_then(|m| {
        (m.target.def.service == hangar_model::Service::Data)
            .then(|| m.labels.iter().find(|(k, _)| *k == "agentRuntimeArn"))
            .flatten()
            .map(|(_, v)| *v)
    });
    let target = match runtime_label {
        Some(label) => authn::resolve(state, label, authn::qualifier(&parts)).await?,
        None => None,
    };
    let pending = match runtime_label {
        Some(_) => {
            authn::authenticate(state, &parts, sigv4::parse(&parts), target.as_ref()).await?
        }
        None => match sigv4::parse(&parts)? {
            sigv4::Presented::SigV4(signature) => authn::Pending::SigV4(signature),
            sigv4::Presented::Bearer(_) => {
                return Err(AuthError::IncompleteSignature(format!(
                    "This operation requires {} (SigV4) authentication, not a bearer token.",
                    sigv4::ALGORITHM
                ))
                .into())
            }
        },
    };
    let limit = match route.as_ref().map(|m| m.target.handler) {
        Some(Handler::InvokeAgentRuntime) => dataplane::MAX_PAYLOAD_BYTES,
        Some(Handler::CodeInterpreter) => tools::MAX_INVOKE_BODY_BYTES,
        _ => MAX_JSON_BODY_BYTES,
    };
    let body = read_body(body, &parts.headers, limit).await?;
    let principal = authn::finish(state, &parts, pending, &body)?;

    let Some(m) = route else {
        return Err(WireError::unknown_operation(&parts.method, path));
    };
    if runtime_label.is_some() {
        set_workload_token(state, &principal, target.as_ref(), &mut parts)?;
    }
    let ctx = RequestContext {
        request_id: request_id.0,
        access_key_id: match principal {
            authn::Principal::Iam { access_key_id } => Some(access_key_id),
            authn::Principal::Jwt(_) => None,
        },
    };
    match m.target.handler {
        Handler::Control => control(state, &ctx, m.target.def, &m.labels, &parts, body).await,
        Handler::InvokeAgentRuntime => {
            dataplane::invoke_agent_runtime(state, &ctx, m.target.def, &m.labels, &parts, body)
                .await
        }
        Handler::StopRuntimeSession => {
            dataplane::stop_runtime_session(state, m.target.def, &m.labels, &parts, body).await
        }
        Handler::GetAgentCard => {
            dataplane::get_agent_card(state, m.target.def, &m.labels, &parts, body).await
        }
        Handler::InvokeAgentRuntimeCommand => {
            dataplane::invoke_agent_runtime_command(state, m.target.def, &m.labels, &parts, body)
                .await
        }
        Handler::CodeInterpreter => {
            tools::handle(state, m.target.def, &m.labels, &parts, body).await
        }
        Handler::Browser => browser::handle(state, m.target.def, &m.labels, &parts, body).await,
        Handler::NotYetSupported => Err(hangar_domain::Error::Unsupported(format!(
            "{} is not supported by this Hangar yet.",
            m.target.def.name
        ))
        .into()),
    }
}

/// Replaces whatever `WorkloadAccessToken` the caller sent with one this server signs for the
/// runtime's workload identity, the user and the authenticated caller (or none, when there is
/// no user: plain SigV4 without `X-Amzn-Bedrock-AgentCore-Runtime-User-Id`). The proxy passes
/// this header on as one of the platform's own.
fn set_workload_token(
    state: &WireState,
    principal: &authn::Principal,
    target: Option<&authn::RuntimeAuth>,
    parts: &mut http::request::Parts,
) -> Result<(), WireError> {
    parts.headers.remove(hangar_agents::WORKLOAD_TOKEN_HEADER);
    let (Some(issuer), Some(target)) = (&state.workload_tokens, target) else {
        return Ok(());
    };
    let Some((user, caller)) = authn::workload_subject(principal, parts) else {
        return Ok(());
    };
    let workload = state
        .control
        .partition()
        .workload_identity_arn(&target.runtime_id);
    let token = issuer
        .issue(&hangar_auth::WorkloadClaims {
            workload_identity_arn: &workload,
            agent_runtime_arn: &target.runtime_arn,
            user_id: &user,
            caller: &caller,
        })
        .map_err(|e| WireError::Internal(e.to_string()))?;
    if let Ok(value) = HeaderValue::from_str(&token) {
        parts
            .headers
            .insert(hangar_agents::WORKLOAD_TOKEN_HEADER, value);
    }
    Ok(())
}

/// The runtime label of `GET /runtimes/{runtime}/invocations/.well-known/oauth-protected-resource`.
fn protected_resource_runtime<'a>(method: &http::Method, path: &'a str) -> Option<&'a str> {
    if method != http::Method::GET {
        return None;
    }
    let runtime = path
        .strip_prefix("/runtimes/")?
        .strip_suffix("/invocations/.well-known/oauth-protected-resource")?;
    (!runtime.is_empty() && !runtime.contains('/')).then_some(runtime)
}

/// The runtime label of `GET /runtimes/{runtime}/ws`, the agent WebSocket.
fn websocket_runtime<'a>(method: &http::Method, path: &'a str) -> Option<&'a str> {
    if method != http::Method::GET {
        return None;
    }
    let runtime = path.strip_prefix("/runtimes/")?.strip_suffix("/ws")?;
    (!runtime.is_empty() && !runtime.contains('/')).then_some(runtime)
}

/// A buffered JSON operation served by the control plane.
async fn control(
    state: &WireState,
    ctx: &RequestContext,
    def: &'static OperationDef,
    labels: &Labels<'_>,
    parts: &http::request::Parts,
    body: Bytes,
) -> Result<Response, WireError> {
    let input = bind::typed_input(def, labels, parts, body)?;
    let output = state.control.execute(ctx, input).await?;
    encode::encode_output(&output)
}

/// Buffers the body, refusing more than `limit` bytes (by `Content-Length` up front, else
/// while reading).
async fn read_body(
    body: Body,
    headers: &http::HeaderMap,
    limit: usize,
) -> Result<Bytes, WireError> {
    let too_large = || {
        WireError::cannot_parse(format!(
            "The request body exceeds the maximum of {limit} bytes for this operation."
        ))
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        // The client went away or sent a broken chunked body: still a client error.
        Err(e) => Err(WireError::cannot_parse(format!(
            "Could not read the request body: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn panics_become_500_with_a_request_id() {
        let app = Router::new()
            .route(
                "/boom",
                get(|| async {
                    if true {
                        panic!("kaboom");
                    }
                    "unreachable"
                }),
            )
            .layer(middleware::from_fn(request_context));
        let response = app
            .oneshot(http::Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()[error::ERROR_TYPE_HEADER],
            "InternalServerException"
        );
        let id = response.headers()[REQUEST_ID_HEADER].to_str().unwrap();
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    }
}
