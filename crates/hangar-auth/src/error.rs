/// Why a bearer token was not accepted. The wire layer answers every rejection with the same
/// generic 401 (AWS does not say why a token failed); the reason is logged with the request id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the token is not a compact JWS (header.payload.signature)")]
    Malformed,
    #[error("algorithm {0} is not accepted (only RS*, PS*, ES256, ES384 and EdDSA)")]
    UnsupportedAlgorithm(String),
    #[error(
        "the token names a critical header extension ({0}) this authorizer does not implement"
    )]
    CriticalHeader(String),
    #[error("the token header has no kid")]
    MissingKeyId,
    #[error("no key {0} in the provider's JWKS (after a refetch)")]
    UnknownKey(String),
    #[error("key {kid} does not allow algorithm {alg}")]
    KeyAlgorithmMismatch { kid: String, alg: String },
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the token has no numeric exp claim")]
    MissingExpiry,
    #[error("the token expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token was issued in the future (iat)")]
    IssuedInFuture,
    #[error("issuer {0:?} is not the discovery document's issuer")]
    WrongIssuer(Option<String>),
    #[error("no audience of the token is in allowedAudience")]
    AudienceNotAllowed,
    #[error("client_id {0:?} is not in allowedClients")]
    ClientNotAllowed(Option<String>),
    #[error("none of the token's scopes is in allowedScopes")]
    ScopeNotAllowed,
    #[error("custom claim rule on {0:?} does not match")]
    ClaimRule(String),
}

/// Every failure of this crate.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The token was presented and is not acceptable (401).
    #[error("invalid bearer token: {0}")]
    Rejected(#[from] Rejection),
    /// The identity provider's discovery document or JWKS could not be obtained and no usable
    /// cached keys exist: fail closed, retryable (the next fetch is attempted after the
    /// refetch interval).
    #[error("the authorizer's identity provider is unavailable: {0}")]
    ProviderUnavailable(String),
    /// The runtime's authorizer configuration cannot be used.
    #[error("the runtime's authorizer configuration is unusable: {0}")]
    Configuration(String),
    /// Signing a workload access token failed (a key problem of this server).
    #[error("signing failed: {0}")]
    Signing(String),
}
