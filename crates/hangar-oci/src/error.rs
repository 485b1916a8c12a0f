//! The one error type of this layer. Its text is what a runtime's `failureReason` says, so each
//! variant's message names the image and what to fix.

/// Why an image could not be resolved, pulled, verified or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("Invalid container image reference {0}")]
    InvalidReference(String),
    #[error("{0}")]
    InvalidConfig(String),
    /// The registry has no such repository, tag or digest.
    #[error("Container image {0}")]
    NotFound(String),
    /// No credentials, or credentials the registry refused.
    #[error("Access to container image {0}")]
    Unauthorized(String),
    /// A manifest or blob whose bytes do not hash to the digest that names it.
    #[error("Digest mismatch in container image {0}")]
    DigestMismatch(String),
    /// Over AgentCore's image size limit (or the unpacked-size guard).
    #[error("Container image {0}")]
    TooLarge(String),
    /// The registry could not be reached or is not spoken to by this build.
    #[error("Container image registry unreachable: {0}")]
    Unreachable(String),
    /// Built for another CPU architecture and no emulator is registered.
    #[error("{0}")]
    Architecture(String),
    /// A media type or manifest form this server does not handle.
    #[error("Unsupported container image {0}")]
    Unsupported(String),
    /// A layer tried to write outside the image root.
    #[error("Container image {0}")]
    UnsafeLayer(String),
    /// Any other answer from the registry.
    #[error("Container image registry error: {0}")]
    Registry(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl OciError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        OciError::Io {
            context: context.into(),
            source,
        }
    }
}
