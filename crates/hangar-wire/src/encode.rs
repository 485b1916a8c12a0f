//! Response encoding: an operation's `Output` → status, headers and body.
//!
//! Each output member goes where its `Location` says: a header (scalars stringified), the
//! status code, the raw body (payload) or a member of the JSON body object. Absent members are
//! omitted. The status is the operation's modelled success code unless a `StatusCode` member
//! overrides it; 204 has no body.

use crate::error::WireError;
use axum::body::Body;
use axum::response::Response;
use hangar_model::{shape, Blob, Location, Output, ShapeKind};
use http::{header, HeaderName, HeaderValue, StatusCode};
use serde_json::{Map, Value};

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

pub(crate) fn encode_output(output: &Output) -> Result<Response, WireError> {
    let def = output.operation().def();
    let mut status = StatusCode::from_u16(def.success_code).unwrap_or(StatusCode::OK);
    let mut fields = match output.to_value() {
        Value::Object(map) => map,
        other => {
            return Err(WireError::Internal(format!(
                "{} output serialized to {other}, not an object",
                def.name
            )))
        }
    };
    let members = match def.output.map(|id| &shape(id).kind) {
        Some(ShapeKind::Structure { members, .. }) => *members,
        _ => &[],
    };

    let mut headers = Vec::new();
    let mut body_members = Map::new();
    let mut payload: Option<(Value, &'static ShapeKind)> = None;
    for member in members {
        let Some(value) = fields.remove(member.name).filter(|v| !v.is_null()) else {
            continue;
        };
        match member.location {
            Location::Body => {
                body_members.insert(member.name.to_string(), value);
            }
            Location::Header(name) => headers.push((name, value)),
            Location::StatusCode => match value.as_u64().and_then(|n| u16::try_from(n).ok()) {
                Some(code) => {
                    status = StatusCode::from_u16(code).map_err(|_| {
                        WireError::Internal(format!("{} returned status code {code}", def.name))
                    })?;
                }
                None => {
                    return Err(WireError::Internal(format!(
                        "{} returned a non-numeric status code {value}",
                        def.name
                    )))
                }
            },
            Location::Payload => payload = Some((value, &shape(member.shape).kind)),
            // Not valid on outputs.
            Location::Uri(_) | Location::Query(_) => {}
        }
    }

    let mut builder = Response::builder().status(status);
    let body = if status == StatusCode::NO_CONTENT {
        Body::empty()
    } else {
        match payload {
            Some((Value::String(s), ShapeKind::Blob { .. })) => match Blob::from_base64(&s) {
                Some(blob) => Body::from(blob.into_inner()),
                None => {
                    return Err(WireError::Internal(format!(
                        "{} payload is not valid base64",
                        def.name
                    )))
                }
            },
            Some((Value::String(s), ShapeKind::String { .. })) => Body::from(s),
            Some((value, _)) => {
                builder = builder.header(header::CONTENT_TYPE, APPLICATION_JSON);
                Body::from(to_json(&value, def.name)?)
            }
            None => {
                builder = builder.header(header::CONTENT_TYPE, APPLICATION_JSON);
                Body::from(to_json(&Value::Object(body_members), def.name)?)
            }
        }
    };
    let mut response = builder
        .body(body)
        .map_err(|e| WireError::Internal(format!("building the {} response: {e}", def.name)))?;
    // After the default Content-Type, so an output member bound to Content-Type wins.
    let response_headers = response.headers_mut();
    for (name, value) in headers {
        let Some(text) = header_text(&value) else {
            tracing::error!(
                header = name,
                "output header member is not a scalar; dropped"
            );
            continue;
        };
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&text),
        ) {
            (Ok(name), Ok(value)) => {
                response_headers.insert(name, value);
            }
            // A value with control characters would break the response framing; dropping it
            // is better than failing a request whose work is already done.
            _ => tracing::error!(
                header = name,
                "output header value is not valid in HTTP; dropped"
            ),
        }
    }
    Ok(response)
}

fn to_json(value: &Value, operation: &str) -> Result<Vec<u8>, WireError> {
    serde_json::to_vec(value)
        .map_err(|e| WireError::Internal(format!("serializing the {operation} response: {e}")))
}

/// The header form of a scalar; lists are comma-joined (rest-json list headers).
fn header_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => items
            .iter()
            .map(header_text)
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        Value::Null | Value::Object(_) => None,
    }
}
