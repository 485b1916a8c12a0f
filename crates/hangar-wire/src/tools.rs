//! The code-interpreter data plane: Start/Get/List/Stop of sessions and
//! `InvokeCodeInterpreter`, whose answer is an `application/vnd.amazon.eventstream` body with
//! exactly one member of `CodeInterpreterStreamOutput` (a `result` event, or a modelled
//! exception frame for a tool's bad arguments). Failures found before the tool runs (unknown
//! or ended session, unknown code interpreter) are ordinary JSON errors with an HTTP status,
//! through [`WireError`].

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use hangar_model::{Input, OperationDef, Output};
use hangar_tools::CodeInterpreters;
use http::HeaderValue;

use crate::routes::Labels;
use crate::{bind, encode, eventstream, WireError, WireState};

/// The header carrying the code-interpreter session id, in requests and responses.
pub const CODE_INTERPRETER_SESSION_HEADER: &str = "x-amzn-code-interpreter-session-id";

/// The largest InvokeCodeInterpreter body: `writeFiles` uploads travel inline (AgentCore
/// documents 100 MB), base64-encoded in the JSON.
pub const MAX_INVOKE_BODY_BYTES: usize = 140 * 1024 * 1024;

fn code_interpreters(state: &WireState) -> Result<&CodeInterpreters, WireError> {
    state.code_interpreters.as_deref().ok_or_else(|| {
        hangar_domain::Error::Unsupported(
            "This Hangar does not run code-interpreter sessions (no sandbox backend).".into(),
        )
        .into()
    })
}

pub(crate) async fn handle(
    state: &WireState,
    def: &'static OperationDef,
    labels: &Labels<'_>,
    parts: &http::request::Parts,
    body: Bytes,
) -> Result<Response, WireError> {
    let tools = code_interpreters(state)?;
    let output = match bind::typed_input(def, labels, parts, body)? {
        Input::StartCodeInterpreterSession(r) => {
            Output::StartCodeInterpreterSession(tools.start(r).await?)
        }
        Input::GetCodeInterpreterSession(r) => Output::GetCodeInterpreterSession(
            tools.get(&r.code_interpreter_identifier, &r.session_id)?,
        ),
        Input::ListCodeInterpreterSessions(r) => {
            Output::ListCodeInterpreterSessions(tools.list(r).await?)
        }
        Input::StopCodeInterpreterSession(r) => Output::StopCodeInterpreterSession(
            tools.stop(&r.code_interpreter_identifier, &r.session_id)?,
        ),
        Input::InvokeCodeInterpreter(r) => {
            let (session_id, member) = tools.invoke(r).await?;
            let mut response = Response::new(Body::from(eventstream::encode_union(&member)));
            let headers = response.headers_mut();
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(eventstream::CONTENT_TYPE),
            );
            if let Ok(v) = HeaderValue::from_str(&session_id) {
                headers.insert(CODE_INTERPRETER_SESSION_HEADER, v);
            }
            return Ok(response);
        }
        _ => unreachable!("routed by operation"),
    };
    encode::encode_output(&output)
}
