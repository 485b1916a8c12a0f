//! `application/vnd.amazon.eventstream` encoding of the model's event-stream unions
//! (`CodeInterpreterStreamOutput`, `InvokeAgentRuntimeCommandStreamOutput`, ...).
//!
//! Framing (prelude, headers, CRCs) is `aws-smithy-eventstream`'s; this module only decides the
//! headers, as botocore's `EventStreamJSONParser` reads them:
//! - an event member (`result`, `chunk`): `:message-type: event`, `:event-type: <member>`,
//!   `:content-type: application/json`, payload = the member's structure as JSON (these events
//!   have no `eventpayload` member, so the whole structure is the payload);
//! - a modelled exception member (`validationException`, `runtimeClientError`, ...):
//!   `:message-type: exception`, `:exception-type: <member>`, payload = its JSON;
//! - anything unmodelled: `:message-type: error` with `:error-code` / `:error-message`.
//!
//! Which members are exceptions is not marked on the union in the model; in every AgentCore
//! stream union the exception members are exactly those whose names end in `Exception` or
//! `Error`, so that is the rule used here.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use serde::Serialize;

/// The `Content-Type` of an event-stream response body.
pub const CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// Encode one member of a stream union (any generated `*StreamOutput` enum) as one frame.
pub fn encode_union<T: Serialize>(member: &T) -> Bytes {
    match serde_json::to_value(member) {
        Ok(serde_json::Value::Object(map)) if map.len() == 1 => {
            let (name, value) = map.into_iter().next().expect("one member");
            encode_member(&name, &value)
        }
        _ => encode_error(
            "InternalServerException",
            "event could not be encoded as a stream union member",
        ),
    }
}

/// Encode `value` as union member `name` (event or modelled exception, by the rule above).
pub fn encode_member(name: &str, value: &serde_json::Value) -> Bytes {
    let payload = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let kind = if is_exception_member(name) {
        ":exception-type"
    } else {
        ":event-type"
    };
    let message_type = if is_exception_member(name) {
        "exception"
    } else {
        "event"
    };
    let msg = Message::new(payload)
        .add_header(header(kind, name))
        .add_header(header(":content-type", "application/json"))
        .add_header(header(":message-type", message_type));
    write(&msg)
}

/// An unmodelled error frame (`:message-type: error`), for failures no union member describes.
pub fn encode_error(code: &str, message: &str) -> Bytes {
    let msg = Message::new(Bytes::new())
        .add_header(header(":message-type", "error"))
        .add_header(header(":error-code", code))
        .add_header(header(":error-message", message));
    write(&msg)
}

/// Whether a stream-union member is a modelled exception rather than an event.
pub fn is_exception_member(name: &str) -> bool {
    name.ends_with("Exception") || name.ends_with("Error")
}

fn header(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_owned().into()))
}

fn write(msg: &Message) -> Bytes {
    let mut buf = Vec::with_capacity(msg.payload().len() + 128);
    // Writing to a Vec fails only for headers or payloads beyond the format's limits (16 MiB);
    // callers bound what they put in one event well below that.
    match write_message_to(msg, &mut buf) {
        Ok(()) => Bytes::from(buf),
        Err(_) => {
            let mut fallback = Vec::new();
            let err = Message::new(Bytes::new())
                .add_header(header(":message-type", "error"))
                .add_header(header(":error-code", "InternalServerException"))
                .add_header(header(":error-message", "event too large to encode"));
            write_message_to(&err, &mut fallback).expect("small frame encodes");
            Bytes::from(fallback)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::read_message_from;
    use hangar_model::data;

    fn headers(frame: &[u8]) -> Vec<(String, String)> {
        let mut buf = frame;
        let msg = read_message_from(&mut buf).expect("valid frame");
        msg.headers()
            .iter()
            .map(|h| {
                (
                    h.name().as_str().to_owned(),
                    h.value().as_string().unwrap().as_str().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn matches_the_spec_test_vector() {
        // The 246-byte frame botocore accepts (tools-contract §2.8), built from the same payload.
        let payload = br#"{"content": [{"type": "text", "text": "42"}], "structuredContent": {"stdout": "42", "stderr": "", "exitCode": 0, "executionTime": 0.01}, "isError": false}"#;
        let msg = Message::new(&payload[..])
            .add_header(header(":event-type", "result"))
            .add_header(header(":content-type", "application/json"))
            .add_header(header(":message-type", "event"));
        let frame = write(&msg);
        assert_eq!(frame.len(), 246);
        assert_eq!(&frame[frame.len() - 4..], &[0xd8, 0x68, 0xde, 0x8b]);
    }

    #[test]
    fn events_and_exceptions_get_their_headers() {
        let ev = data::CodeInterpreterStreamOutput::Result(data::CodeInterpreterResult {
            content: vec![],
            is_error: Some(false),
            structured_content: None,
        });
        let h = headers(&encode_union(&ev));
        assert!(h.contains(&(":event-type".into(), "result".into())));
        assert!(h.contains(&(":message-type".into(), "event".into())));

        let ex =
            data::CodeInterpreterStreamOutput::ValidationException(data::ValidationException {
                field_list: None,
                message: "bad".into(),
                reason: data::ValidationExceptionReason::CannotParse,
            });
        let h = headers(&encode_union(&ex));
        assert!(h.contains(&(":exception-type".into(), "validationException".into())));
        assert!(h.contains(&(":message-type".into(), "exception".into())));

        let h = headers(&encode_error("X", "y"));
        assert!(h.contains(&(":message-type".into(), "error".into())));
        assert!(is_exception_member("runtimeClientError"));
        assert!(!is_exception_member("chunk"));
    }
}
