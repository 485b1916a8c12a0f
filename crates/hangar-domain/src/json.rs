//! Moving between the generated request/response types and JSON objects.
//!
//! Requests are taken apart as JSON objects keyed by the model's member names, so the stored
//! configuration is exactly what the caller sent (every member the model has, now and after a
//! model update), and responses are assembled the same way and checked into the generated
//! output types.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::Error;

pub(crate) type Object = Map<String, Value>;

pub(crate) fn to_object(request: &impl Serialize) -> Object {
    match serde_json::to_value(request).expect("requests serialize") {
        Value::Object(object) => object,
        other => panic!("request serialized to {other}, not an object"),
    }
}

pub(crate) fn take_string(object: &mut Object, member: &str) -> Option<String> {
    match object.remove(member) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

pub(crate) fn get_str<'a>(object: &'a Object, member: &str) -> Option<&'a str> {
    object.get(member).and_then(Value::as_str)
}

/// Builds a generated output type from a JSON object. Every response the domain assembles goes
/// through here, so a mistake is an internal error rather than a malformed answer.
pub(crate) fn output<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|e| Error::Internal(format!("response assembly: {e}")))
}
