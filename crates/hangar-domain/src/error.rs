use hangar_model::FieldViolation;

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
    /// The operation is modelled but not served by this Hangar (yet).
    #[error("{0}")]
    Unsupported(String),
    #[error("internal error: {0}")]
    Internal(String),
}
