use hangar_model::FieldViolation;
use hangar_store::StoreError;

/// The `reason` member of a `ValidationException`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationReason {
    CannotParse,
    FieldValidationFailed,
    IdempotentParameterMismatch,
    ResourceConflict,
}

impl ValidationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CannotParse => "CannotParse",
            Self::FieldValidationFailed => "FieldValidationFailed",
            Self::IdempotentParameterMismatch => "IdempotentParameterMismatchException",
            Self::ResourceConflict => "ResourceConflict",
        }
    }
}

/// Every way a domain operation can fail. The wire layer maps each variant to one AWS error
/// shape in one place.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    Validation {
        message: String,
        reason: ValidationReason,
        fields: Vec<FieldViolation>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    QuotaExceeded(String),
    /// The agent could not be started or reached, or answered with an error (HTTP 424
    /// `RuntimeClientError`).
    #[error("{0}")]
    RuntimeClient(String),
    /// Retrying later will work, e.g. an endpoint whose first version is still being prepared
    /// (HTTP 409 `RetryableConflictException`).
    #[error("{0}")]
    RetryableConflict(String),
    /// The operation is modelled but not served by this Hangar (yet).
    #[error("{0}")]
    Unsupported(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A rule of the service (not of the model) that one field breaks.
    pub fn invalid_field(field: &str, message: &str) -> Self {
        Error::Validation {
            message: format!("1 validation error detected: Value at '{field}' failed to satisfy constraint: {message}"),
            reason: ValidationReason::FieldValidationFailed,
            fields: vec![FieldViolation {
                name: field.to_owned(),
                message: message.to_owned(),
            }],
        }
    }

    pub fn idempotency_mismatch() -> Self {
        Error::Validation {
            message: "The request uses the same client token as a previous, but non-identical request. Do not reuse a client token with different requests, unless the requests are identical.".into(),
            reason: ValidationReason::IdempotentParameterMismatch,
            fields: vec![FieldViolation {
                name: "clientToken".into(),
                message: "Client token was used with a different request".into(),
            }],
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        // Conflicts the domain expects (name taken, concurrent update) are handled where they
        // occur; whatever reaches this conversion is a storage failure.
        Error::Internal(e.to_string())
    }
}
