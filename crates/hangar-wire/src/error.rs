//! The one place where failures become AWS rest-json error responses.
//!
//! Every layer has its own error type (`hangar_domain::Error`, `hangar_model::ValidationError`,
//! [`AuthError`]); each converts into [`WireError`], and only [`WireError::into_response`]
//! knows status codes, `x-amzn-ErrorType` values and body layouts. That is also where errors
//! are logged, exactly once: 5xx at `error`, 4xx at `debug`.
//!
//! Wire format, as botocore's `RestJSONParser` reads it: status = the error shape's
//! `httpStatusCode`; header `x-amzn-ErrorType: <ShapeName>`; body
//! `{"message": "..."}`, plus `reason` and `fieldList` for `ValidationException`. The
//! `x-amzn-RequestId` header is added by the request middleware to every response.

use crate::sigv4::AuthError;
use axum::response::{IntoResponse, Response};
use hangar_domain::ValidationReason;
use hangar_model::{FieldViolation, ValidationError};
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

/// The header botocore reads the error code from.
pub const ERROR_TYPE_HEADER: &str = "x-amzn-errortype";

/// Every error the wire layer can answer with.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// 400 `ValidationException`.
    #[error("{message}")]
    Validation {
        message: String,
        reason: ValidationReason,
        fields: Vec<FieldViolation>,
    },
    /// 404 `UnknownOperationException`: no operation at this method and path, or an operation
    /// this Hangar does not serve.
    #[error("{0}")]
    UnknownOperation(String),
    /// 401 `UnauthorizedException`: a JWT runtime called without a valid bearer token. The
    /// challenge goes out as `WWW-Authenticate`.
    #[error("{message}")]
    Unauthorized {
        message: String,
        www_authenticate: Option<String>,
    },
    /// 503 `ServiceUnavailableException`: a dependency Hangar cannot do without (a JWT
    /// authorizer's identity provider) is unreachable; retryable.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// 403 `AccessDeniedException`.
    #[error("{0}")]
    AccessDenied(String),
    /// 404 `ResourceNotFoundException`.
    #[error("{0}")]
    NotFound(String),
    /// 409 `ConflictException`.
    #[error("{0}")]
    Conflict(String),
    /// 402 `ServiceQuotaExceededException` (402 is what the model says, not a typo).
    #[error("{0}")]
    QuotaExceeded(String),
    /// 429 `ThrottlingException`.
    #[error("{0}")]
    Throttling(String),
    /// 424 `RuntimeClientError`: the agent failed to start, crashed or answered an error.
    #[error("{0}")]
    RuntimeClient(String),
    /// 409 `RetryableConflictException`.
    #[error("{0}")]
    RetryableConflict(String),
    /// 403, one of the SigV4 exceptions.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// 500 `InternalServerException`. The detail is logged, never sent: it may name files or
    /// storage internals.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The message sent for every `InternalServerException`.
const INTERNAL_MESSAGE: &str = "The server encountered an internal error. Retry the request; if it keeps failing, check the Hangar log for this request id.";

impl WireError {
    /// A 400 `ValidationException` with reason `CannotParse` and no field list.
    pub fn cannot_parse(message: impl Into<String>) -> Self {
        WireError::Validation {
            message: message.into(),
            reason: ValidationReason::CannotParse,
            fields: Vec::new(),
        }
    }

    /// The 404 for a method and path that name no operation.
    pub fn unknown_operation(method: &http::Method, path: &str) -> Self {
        WireError::UnknownOperation(format!(
            "Unknown operation: no AgentCore operation matches {method} {path}"
        ))
    }

    /// The modelled error shape name, sent as `x-amzn-ErrorType`.
    pub fn code(&self) -> &'static str {
        match self {
            WireError::Validation { .. } => "ValidationException",
            WireError::UnknownOperation(_) => "UnknownOperationException",
            WireError::Unauthorized { .. } => "UnauthorizedException",
            WireError::ServiceUnavailable(_) => "ServiceUnavailableException",
            WireError::AccessDenied(_) => "AccessDeniedException",
            WireError::NotFound(_) => "ResourceNotFoundException",
            WireError::Conflict(_) => "ConflictException",
            WireError::QuotaExceeded(_) => "ServiceQuotaExceededException",
            WireError::Throttling(_) => "ThrottlingException",
            WireError::RuntimeClient(_) => "RuntimeClientError",
            WireError::RetryableConflict(_) => "RetryableConflictException",
            WireError::Auth(e) => e.code(),
            WireError::Internal(_) => "InternalServerException",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            WireError::Validation { .. } => StatusCode::BAD_REQUEST,
            WireError::UnknownOperation(_) | WireError::NotFound(_) => StatusCode::NOT_FOUND,
            WireError::AccessDenied(_) | WireError::Auth(_) => StatusCode::FORBIDDEN,
            WireError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            WireError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            WireError::Conflict(_) | WireError::RetryableConflict(_) => StatusCode::CONFLICT,
            WireError::RuntimeClient(_) => StatusCode::FAILED_DEPENDENCY,
            WireError::QuotaExceeded(_) => StatusCode::PAYMENT_REQUIRED,
            WireError::Throttling(_) => StatusCode::TOO_MANY_REQUESTS,
            WireError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(rename = "fieldList", skip_serializing_if = "Option::is_none")]
    field_list: Option<&'a [FieldViolation]>,
}

impl IntoResponse for WireError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        if status.is_server_error() {
            tracing::error!(error.code = code, error = %self, "request failed");
        } else {
            tracing::debug!(error.code = code, error = %self, status = status.as_u16(), "request rejected");
        }
        let message = self.to_string();
        let body = match &self {
            WireError::Validation { reason, fields, .. } => ErrorBody {
                message: &message,
                reason: Some(reason.as_str()),
                field_list: (!fields.is_empty()).then_some(fields.as_slice()),
            },
            WireError::Internal(_) => ErrorBody {
                message: INTERNAL_MESSAGE,
                reason: None,
                field_list: None,
            },
            _ => ErrorBody {
                message: &message,
                reason: None,
                field_list: None,
            },
        };
        // Serializing two strings and a list of string pairs cannot fail.
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(ERROR_TYPE_HEADER, HeaderValue::from_static(code));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let WireError::Unauthorized {
            www_authenticate: Some(challenge),
            ..
        } = &self
        {
            if let Ok(v) = HeaderValue::from_str(challenge) {
                headers.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        response
    }
}

impl From<hangar_domain::Error> for WireError {
    fn from(e: hangar_domain::Error) -> Self {
        use hangar_domain::Error as E;
        match e {
            E::Validation {
                message,
                reason,
                fields,
            } => WireError::Validation {
                message,
                reason,
                fields,
            },
            E::NotFound(m) => WireError::NotFound(m),
            E::Conflict(m) => WireError::Conflict(m),
            E::AccessDenied(m) => WireError::AccessDenied(m),
            E::QuotaExceeded(m) => WireError::QuotaExceeded(m),
            E::Unsupported(m) => WireError::UnknownOperation(m),
            E::RuntimeClient(m) => WireError::RuntimeClient(m),
            E::RetryableConflict(m) => WireError::RetryableConflict(m),
            E::Internal(m) => WireError::Internal(m),
        }
    }
}

impl From<hangar_tools::ToolsError> for WireError {
    fn from(e: hangar_tools::ToolsError) -> Self {
        use hangar_tools::ToolsError as E;
        match e {
            E::NotFound(m) => WireError::NotFound(m),
            E::Validation(m) => WireError::Validation {
                message: m,
                reason: ValidationReason::FieldValidationFailed,
                fields: Vec::new(),
            },
            E::Conflict(m) => WireError::Conflict(m),
            E::QuotaExceeded(m) => WireError::QuotaExceeded(m),
            E::Unavailable(m) => WireError::UnknownOperation(m),
            E::Domain(e) => e.into(),
            E::Sandbox(e) => WireError::Internal(format!("sandbox: {e}")),
            E::Internal(m) => WireError::Internal(m),
        }
    }
}

impl From<ValidationError> for WireError {
    fn from(e: ValidationError) -> Self {
        WireError::Validation {
            message: e.message(),
            reason: ValidationReason::FieldValidationFailed,
            fields: e.fields,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use serde_json::{json, Value};

    async fn render(e: impl Into<WireError>) -> (StatusCode, String, Value) {
        let response = e.into().into_response();
        let status = response.status();
        let code = response.headers()[ERROR_TYPE_HEADER]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, code, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn domain_errors_map_to_modelled_shapes() {
        use hangar_domain::Error as E;
        let cases = [
            (E::NotFound("nf".into()), 404, "ResourceNotFoundException"),
            (E::Conflict("c".into()), 409, "ConflictException"),
            (E::AccessDenied("ad".into()), 403, "AccessDeniedException"),
            (
                E::QuotaExceeded("q".into()),
                402,
                "ServiceQuotaExceededException",
            ),
            (E::Unsupported("u".into()), 404, "UnknownOperationException"),
        ];
        for (e, status, code) in cases {
            let message = e.to_string();
            let (s, c, body) = render(e).await;
            assert_eq!((s.as_u16(), c.as_str()), (status, code));
            assert_eq!(body, json!({ "message": message }));
        }
        let (s, c, body) = render(WireError::Throttling("slow down".into())).await;
        assert_eq!((s.as_u16(), c.as_str()), (429, "ThrottlingException"));
        assert_eq!(body, json!({"message": "slow down"}));
    }

    #[tokio::test]
    async fn internal_errors_do_not_leak_details() {
        let (s, c, body) =
            render(hangar_domain::Error::Internal("disk /var/x is full".into())).await;
        assert_eq!((s.as_u16(), c.as_str()), (500, "InternalServerException"));
        assert_eq!(body, json!({ "message": INTERNAL_MESSAGE }));
    }

    #[tokio::test]
    async fn validation_errors_carry_reason_and_field_list() {
        let e = ValidationError {
            fields: vec![FieldViolation::new(
                "agentRuntimeName",
                Some("'a-b'"),
                "Member must satisfy regular expression pattern: [a-zA-Z][a-zA-Z0-9_]{0,47}",
            )],
        };
        let (s, c, body) = render(e).await;
        assert_eq!((s.as_u16(), c.as_str()), (400, "ValidationException"));
        let sentence = "Value 'a-b' at 'agentRuntimeName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z][a-zA-Z0-9_]{0,47}";
        assert_eq!(
            body,
            json!({
                "message": format!("1 validation error detected: {sentence}"),
                "reason": "FieldValidationFailed",
                "fieldList": [{"name": "agentRuntimeName", "message": sentence}],
            })
        );
        // Without fields there is no fieldList.
        let (_, _, body) = render(WireError::cannot_parse("bad json")).await;
        assert_eq!(
            body,
            json!({"message": "bad json", "reason": "CannotParse"})
        );
        let (_, _, body) = render(hangar_domain::Error::idempotency_mismatch()).await;
        assert_eq!(body["reason"], "IdempotentParameterMismatchException");
    }

    #[tokio::test]
    async fn auth_errors_are_403_with_their_own_codes() {
        let cases = [
            (
                AuthError::MissingAuthenticationToken,
                "MissingAuthenticationTokenException",
            ),
            (
                AuthError::IncompleteSignature("x".into()),
                "IncompleteSignatureException",
            ),
            (AuthError::UnrecognizedClient, "UnrecognizedClientException"),
            (
                AuthError::InvalidSignature("y".into()),
                "InvalidSignatureException",
            ),
        ];
        for (e, code) in cases {
            let message = e.to_string();
            let (s, c, body) = render(e).await;
            assert_eq!((s.as_u16(), c.as_str()), (403, code));
            assert_eq!(body, json!({ "message": message }));
        }
    }
}
