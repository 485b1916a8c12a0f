//! Inbound authorization of agent runtimes.
//!
//! - [`JwtAuthorizers`]: the `customJWTAuthorizer` of a runtime. OpenID discovery and the JWKS
//!   are fetched once per discovery URL and cached ([`oidc`]); validation of a token is then
//!   pure computation (one signature check and a few comparisons), so it never puts I/O on the
//!   invocation path while the cache is warm. See [`jwt`] for the rules.
//! - [`WorkloadTokenIssuer`]: the `WorkloadAccessToken` Hangar hands to an agent — an ES256 JWT
//!   signed by a key of this server, bound to the runtime's workload identity, the end user and
//!   the authenticated caller ([`workload`]).
//!
//! One error type, [`Error`]; the wire layer maps it to AWS's error shapes.

pub mod jwt;
pub mod oidc;
pub mod workload;

mod error;

pub use error::{Error, Rejection};
pub use jwt::{JwtAuthorizers, JwtRules, Settings, VerifiedToken};
pub use workload::{WorkloadClaims, WorkloadTokenIssuer};
