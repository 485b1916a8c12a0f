//! The one error type of the tools layer; `hangar-wire` maps it to AWS errors.

use hangar_sandbox::SandboxError;

#[derive(Debug, thiserror::Error)]
pub enum ToolsError {
    /// The tool resource or the session does not exist, belongs to another tool, or has
    /// ended (404 `ResourceNotFoundException`).
    #[error("{0}")]
    NotFound(String),
    /// A request the service refuses on its own rules (400 `ValidationException`).
    #[error("{0}")]
    Validation(String),
    /// The resource is not in a state that allows this (409 `ConflictException`).
    #[error("{0}")]
    Conflict(String),
    /// Too many live sessions (402 `ServiceQuotaExceededException`).
    #[error("{0}")]
    QuotaExceeded(String),
    /// This Hangar cannot run tool sessions (no sandbox backend).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Domain(#[from] hangar_domain::Error),
    /// A sandbox could not be created or used (500; the detail is logged, not sent).
    #[error("sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    /// Anything else that is Hangar's fault (500).
    #[error("{0}")]
    Internal(String),
}
