//! Request binding: one HTTP request → the JSON object of the operation's input members.
//!
//! The input shape's members say where each value lives (`Location`): a URI label, a query
//! parameter, a header, the JSON body, or the whole body (payload). The result is keyed by
//! member name, so the model's validator and `Input::from_value` never need to know about HTTP.
//! Strings from the URI, query and headers are converted to the member's JSON type here; a
//! value that does not convert is a `ValidationException` naming the member.
//!
//! Body members are moved out of the parsed body, never cloned; keys of the body that are not
//! body members of the input (including members bound elsewhere) are ignored, as AWS does.

use crate::error::WireError;
use crate::routes::Labels;
use crate::sigv4::query_pairs;
use bytes::Bytes;
use hangar_domain::ValidationReason;
use hangar_model::{
    shape, FieldViolation, Location, Member, OperationDef, ShapeId, ShapeKind, ValidationError,
};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Longest slice of a rejected value echoed back in an error message.
const MAX_ECHOED_VALUE: usize = 256;

/// A request as the operation's typed `Input`: bound, validated against the model, parsed.
pub(crate) fn typed_input(
    def: &'static OperationDef,
    labels: &Labels<'_>,
    parts: &http::request::Parts,
    body: Bytes,
) -> Result<hangar_model::Input, WireError> {
    let value = bind_input(def, labels, parts.uri.query(), &parts.headers, body)?;
    typed_value(def, value)
}

/// An already-bound input object, validated and parsed.
pub(crate) fn typed_value(
    def: &'static OperationDef,
    value: Value,
) -> Result<hangar_model::Input, WireError> {
    hangar_model::validate_input(def.op, &value)?;
    hangar_model::Input::from_value(def.op, value).map_err(|e| {
        WireError::cannot_parse(format!("Could not parse the {} request: {e}", def.name))
    })
}

/// Binds the request parts of `def`'s input. `labels` are the raw URI labels the route
/// matched; `query` is the raw query string.
pub(crate) fn bind_input(
    def: &OperationDef,
    labels: &Labels<'_>,
    query: Option<&str>,
    headers: &http::HeaderMap,
    body: Bytes,
) -> Result<Value, WireError> {
    let Some(input) = def.input else {
        return Ok(Value::Object(Map::new()));
    };
    let members = structure_members(input);
    let payload_member = members.iter().find(|m| m.location == Location::Payload);

    // With a payload member the body *is* that member; otherwise it is the object of body
    // members.
    let mut payload = None;
    let mut body_members = Map::new();
    match payload_member {
        Some(member) => payload = bind_payload(member, body)?,
        None => body_members = parse_body_object(&body)?,
    }

    let query_params: Vec<(Cow<'_, str>, Cow<'_, str>)> = if members
        .iter()
        .any(|m| matches!(m.location, Location::Query(_)))
    {
        query_pairs(query.unwrap_or("")).collect()
    } else {
        Vec::new()
    };

    let mut out = Map::with_capacity(members.len());
    for member in members {
        let value = match member.location {
            Location::Body => body_members.remove(member.name),
            Location::Payload => payload.take(),
            Location::Uri(label) => match labels.iter().find(|(name, _)| *name == label) {
                Some((_, raw)) => {
                    let decoded = percent_decode_str(raw).decode_utf8().map_err(|_| {
                        WireError::cannot_parse(format!(
                            "The URI label '{label}' is not valid percent-encoded UTF-8."
                        ))
                    })?;
                    Some(convert(member, member.shape, &decoded)?)
                }
                None => None,
            },
            Location::Query(name) => bind_query(member, name, &query_params)?,
            Location::Header(name) => bind_header(member, name, headers)?,
            Location::StatusCode => None,
        };
        if let Some(value) = value {
            out.insert(member.name.to_string(), value);
        }
    }
    Ok(Value::Object(out))
}

fn structure_members(id: ShapeId) -> &'static [Member] {
    match &shape(id).kind {
        ShapeKind::Structure { members, .. } => members,
        _ => &[],
    }
}

/// Parses a JSON body that must be an object. botocore sends List operations as `POST` with
/// an empty body and no `Content-Type`, so an empty (or all-whitespace) body is `{}`.
fn parse_body_object(body: &[u8]) -> Result<Map<String, Value>, WireError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(WireError::cannot_parse(
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(WireError::cannot_parse(format!(
            "Could not parse the request body as JSON: {e}"
        ))),
    }
}

fn bind_payload(member: &Member, body: Bytes) -> Result<Option<Value>, WireError> {
    match &shape(member.shape).kind {
        // A structure (or document) payload is the JSON body itself.
        ShapeKind::Structure { .. } => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(None);
            }
            serde_json::from_slice::<Value>(&body)
                .map(Some)
                .map_err(|e| {
                    WireError::cannot_parse(format!(
                        "Could not parse the request body as JSON: {e}"
                    ))
                })
        }
        ShapeKind::String { .. } => match String::from_utf8(body.to_vec()) {
            Ok(s) if s.is_empty() => Ok(None),
            Ok(s) => Ok(Some(Value::String(s))),
            Err(_) => Err(WireError::cannot_parse(
                "The request body is not valid UTF-8.",
            )),
        },
        // Raw blob payloads (InvokeAgentRuntime) are taken by their own handlers, which bind
        // the other members with an empty body.
        _ => Ok(None),
    }
}

fn bind_query(
    member: &Member,
    name: &str,
    params: &[(Cow<'_, str>, Cow<'_, str>)],
) -> Result<Option<Value>, WireError> {
    let mut values = params
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_ref());
    match &shape(member.shape).kind {
        // Lists repeat the key: `?tagKeys=a&tagKeys=b`.
        ShapeKind::List { member: item, .. } => {
            let items = values
                .map(|v| convert(member, *item, v))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((!items.is_empty()).then_some(Value::Array(items)))
        }
        // A map bound to the query string takes every parameter (botocore: "all other
        // query parameters"); no AgentCore operation has one yet.
        ShapeKind::Map { value, .. } => {
            let mut map = Map::new();
            for (k, v) in params {
                map.insert(k.to_string(), convert(member, *value, v)?);
            }
            Ok((!map.is_empty()).then_some(Value::Object(map)))
        }
        // A repeated scalar takes its first value.
        _ => values
            .next()
            .map(|v| convert(member, member.shape, v))
            .transpose(),
    }
}

fn bind_header(
    member: &Member,
    name: &str,
    headers: &http::HeaderMap,
) -> Result<Option<Value>, WireError> {
    // `HeaderMap::get` with a `&str` is case-insensitive.
    let Some(raw) = headers.get(name) else {
        return Ok(None);
    };
    let text = raw.to_str().map_err(|_| {
        WireError::cannot_parse(format!("The value of header '{name}' is not valid text."))
    })?;
    match &shape(member.shape).kind {
        // rest-json sends list headers comma-separated.
        ShapeKind::List { member: item, .. } => {
            let items = text
                .split(',')
                .map(|v| convert(member, *item, v.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(Value::Array(items)))
        }
        _ => convert(member, member.shape, text).map(Some),
    }
}

/// Converts a string from the URI, query or headers to the JSON type of shape `id`.
fn convert(member: &Member, id: ShapeId, raw: &str) -> Result<Value, WireError> {
    let kind = &shape(id).kind;
    let parsed = match kind {
        ShapeKind::Integer { .. } => raw.parse::<i32>().ok().map(Value::from),
        ShapeKind::Long { .. } => raw.parse::<i64>().ok().map(Value::from),
        ShapeKind::Double { .. } => raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        ShapeKind::Boolean => match raw {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        // Strings, enums, timestamps (kept as sent; the model parses them) and base64 blobs.
        _ => Some(Value::String(raw.to_string())),
    };
    parsed.ok_or_else(|| {
        let expected = match kind {
            ShapeKind::Integer { .. } => "Member must be an integer",
            ShapeKind::Long { .. } => "Member must be a long integer",
            ShapeKind::Double { .. } => "Member must be a number",
            _ => "Member must be a boolean ('true' or 'false')",
        };
        let rendered = format!("'{}'", truncate(raw));
        let sensitive = shape(id).sensitive || shape(member.shape).sensitive;
        let violation = FieldViolation::new(
            member.name,
            (!sensitive).then_some(rendered.as_str()),
            expected,
        );
        let error = ValidationError {
            fields: vec![violation],
        };
        WireError::Validation {
            message: error.message(),
            reason: ValidationReason::CannotParse,
            fields: error.fields,
        }
    })
}

fn truncate(s: &str) -> &str {
    if s.len() <= MAX_ECHOED_VALUE {
        return s;
    }
    let mut end = MAX_ECHOED_VALUE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangar_model::Operation;
    use serde_json::json;

    fn bind(
        op: Operation,
        labels: &[(&'static str, &str)],
        query: Option<&str>,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Value, WireError> {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let labels: Labels<'_> = labels.to_vec();
        bind_input(
            op.def(),
            &labels,
            query,
            &map,
            Bytes::from(body.to_string()),
        )
    }

    fn validation(r: Result<Value, WireError>) -> (String, ValidationReason, Vec<FieldViolation>) {
        match r {
            Err(WireError::Validation {
                message,
                reason,
                fields,
            }) => (message, reason, fields),
            other => panic!("expected a ValidationException, got {other:?}"),
        }
    }

    #[test]
    fn uri_labels_are_decoded_and_query_lists_repeat() {
        let v = bind(
            Operation::UntagResource,
            &[(
                "resourceArn",
                "arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123456789012%3Aruntime%2Fa-1234567890",
            )],
            Some("tagKeys=env&tagKeys=a%20b%2Fc&unrelated=1"),
            &[],
            "",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({
                "resourceArn": "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/a-1234567890",
                "tagKeys": ["env", "a b/c"],
            })
        );
    }

    #[test]
    fn query_integers_are_converted() {
        let v = bind(
            Operation::ListAgentRuntimes,
            &[],
            Some("maxResults=5&nextToken=a%2Bb"),
            &[],
            "",
        )
        .unwrap();
        assert_eq!(v, json!({"maxResults": 5, "nextToken": "a+b"}));
        // A raw plus is a literal plus (opaque pagination tokens are often base64).
        let v = bind(
            Operation::ListAgentRuntimes,
            &[],
            Some("nextToken=a+b"),
            &[],
            "",
        )
        .unwrap();
        assert_eq!(v, json!({"nextToken": "a+b"}));
        let v = bind(Operation::ListAgentRuntimes, &[], None, &[], "").unwrap();
        assert_eq!(v, json!({}));
    }

    #[test]
    fn unparseable_scalars_name_the_member() {
        for bad in ["abc", "1.5", "99999999999", ""] {
            let (message, reason, fields) = validation(bind(
                Operation::ListAgentRuntimes,
                &[],
                Some(&format!("maxResults={bad}")),
                &[],
                "",
            ));
            assert_eq!(reason, ValidationReason::CannotParse);
            assert_eq!(
                message,
                format!("1 validation error detected: Value '{bad}' at 'maxResults' failed to satisfy constraint: Member must be an integer")
            );
            assert_eq!(fields.len(), 1);
            assert_eq!(fields[0].name, "maxResults");
        }
    }

    #[test]
    fn headers_are_case_insensitive() {
        let v = bind(
            Operation::StopRuntimeSession,
            &[("agentRuntimeArn", "arn%3Ax")],
            Some("qualifier=DEFAULT"),
            &[("x-amzn-bedrock-agentcore-runtime-session-id", "s-1")],
            "",
        )
        .unwrap();
        assert_eq!(v["runtimeSessionId"], "s-1");
        assert_eq!(v["qualifier"], "DEFAULT");
        assert_eq!(v["agentRuntimeArn"], "arn:x");
    }

    #[test]
    fn body_members_are_taken_and_everything_else_ignored() {
        let v = bind(
            Operation::UpdateAgentRuntimeEndpoint,
            &[
                ("agentRuntimeId", "rt-1234567890"),
                ("endpointName", "prod"),
            ],
            None,
            &[],
            r#"{"agentRuntimeVersion":"2","agentRuntimeId":"from-body","unknown":1}"#,
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"agentRuntimeId": "rt-1234567890", "endpointName": "prod", "agentRuntimeVersion": "2"})
        );
    }

    #[test]
    fn bodies_must_be_json_objects() {
        assert_eq!(
            bind(Operation::CreateBrowser, &[], None, &[], " \n").unwrap(),
            json!({})
        );
        for body in ["[1]", "\"x\"", "{", "{\"a\":}", "nul"] {
            let (_, reason, fields) =
                validation(bind(Operation::CreateBrowser, &[], None, &[], body));
            assert_eq!(reason, ValidationReason::CannotParse, "{body}");
            assert!(fields.is_empty());
        }
    }

    #[test]
    fn structure_payloads_are_the_whole_body() {
        let v = bind(
            Operation::InvokeAgentRuntimeCommand,
            &[("agentRuntimeArn", "arn")],
            None,
            &[],
            r#"{"command":"ls"}"#,
        )
        .unwrap();
        assert_eq!(v["body"], json!({"command": "ls"}));
    }

    #[test]
    fn labels_must_be_utf8() {
        let (_, reason, _) = validation(bind(
            Operation::GetAgentRuntime,
            &[("agentRuntimeId", "%FF%FE")],
            None,
            &[],
            "",
        ));
        assert_eq!(reason, ValidationReason::CannotParse);
    }
}
