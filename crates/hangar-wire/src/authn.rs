//! Who may call a runtime's data plane: every route naming a runtime (`/invocations`,
//! `/stop`, `/commands`, the agent card, `/ws`) authenticates here, by that runtime's
//! authorizer, before anything else happens.
//!
//! The runtime's endpoint (`qualifier`, DEFAULT when absent) is resolved to its live version
//! and that version's `authorizerConfiguration` decides:
//!
//! | runtime | caller presents | answer |
//! |---|---|---|
//! | `customJWTAuthorizer` | a bearer token | validated by `hangar_auth` (401 when invalid) |
//! | `customJWTAuthorizer` | SigV4 (header or presigned) | 403 AccessDenied "Authorization method mismatch" |
//! | `customJWTAuthorizer` | nothing | 401 with `WWW-Authenticate: Bearer resource_metadata=…` |
//! | none (IAM) | SigV4 | verified as on every other route ([`crate::sigv4`]) |
//! | none (IAM) | a bearer token | 403 AccessDenied "Authorization method mismatch" |
//! | none (IAM) | nothing | 403 MissingAuthenticationToken |
//!
//! A runtime or endpoint that cannot be resolved (unknown, not ready yet) is treated as IAM:
//! the caller must present valid SigV4 before learning that it does not exist, and a bearer
//! token never gets further than the mismatch answer.
//!
//! Every rejected token gets the same 401 message — AWS does not say why a token failed —
//! and the reason is logged (`info`) with the request id.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use hangar_auth::JwtRules;
use http::request::Parts;

use crate::sigv4::{AuthError, Presented, Signature};
use crate::{WireError, WireState};

/// The browser WebSocket subprotocol carrying a bearer token (spec §A.9):
/// `Sec-WebSocket-Protocol: base64UrlBearerAuthorization.<b64url(token)>, base64UrlBearerAuthorization`.
pub(crate) const WS_BEARER_PROTOCOL: &str = "base64UrlBearerAuthorization";

/// The message AWS documents for `UnauthorizedException`.
const UNAUTHORIZED_MESSAGE: &str =
    "JWT bearer token is invalid or not found for OAuth bearer token based access";
const MISMATCH_MESSAGE: &str = "Authorization method mismatch. The agent is configured for a different authorization method than what was used in your request. (OAuth or SigV4)";

/// The caller of a data-plane request, once authenticated.
#[derive(Debug, Clone)]
pub(crate) enum Principal {
    Iam { access_key_id: String },
    Jwt(Box<hangar_auth::VerifiedToken>),
}

/// The runtime a request names, resolved far enough to authenticate against it.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeAuth {
    pub runtime_id: String,
    pub runtime_arn: String,
    pub qualifier: String,
    pub rules: Option<Arc<JwtRules>>,
}

/// The outcome of the first step: a validated token, or a SigV4 signature still to verify
/// over the body.
pub(crate) enum Pending {
    Done(Principal),
    SigV4(Signature),
}

/// The raw runtime label of a data-plane route and its `qualifier` query parameter.
pub(crate) fn qualifier(parts: &Parts) -> Option<String> {
    parts.uri.query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "qualifier")
            .map(|(_, v)| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned()
            })
    })
}

/// Resolves the runtime and endpoint a request names; `None` when they do not resolve.
pub(crate) async fn resolve(
    state: &WireState,
    runtime_label: &str,
    qualifier: Option<String>,
) -> Result<Option<RuntimeAuth>, WireError> {
    let Ok(runtime) = percent_encoding::percent_decode_str(runtime_label).decode_utf8() else {
        return Ok(None);
    };
    let Ok(runtime_id) = state.control.runtime_id_from_ref(&runtime, None) else {
        return Ok(None);
    };
    let Ok((endpoint, version)) = state
        .control
        .invocation_target(&runtime_id, qualifier.as_deref())
        .await
    else {
        return Ok(None);
    };
    let rules = state
        .authorizers
        .rules_for(
            &runtime_id,
            version.version,
            version.config.get("authorizerConfiguration"),
        )
        .map_err(auth_error)?;
    Ok(Some(RuntimeAuth {
        runtime_arn: endpoint.runtime_arn,
        qualifier: endpoint.name,
        runtime_id,
        rules,
    }))
}

/// Step 1: decides by the runtime's authorizer; JWTs are validated here, SigV4 signatures
/// are returned for [`finish`] once the body is read.
pub(crate) async fn authenticate(
    state: &WireState,
    parts: &Parts,
    presented: Result<Presented, AuthError>,
    runtime: Option<&RuntimeAuth>,
) -> Result<Pending, WireError> {
    let presented = match presented {
        Ok(p) => Some(p),
        Err(AuthError::MissingAuthenticationToken) => None,
        Err(e) => {
            // Malformed SigV4: for a JWT runtime that is still the wrong method.
            if runtime.is_some_and(|r| r.rules.is_some()) {
                return Err(WireError::AccessDenied(MISMATCH_MESSAGE.into()));
            }
            return Err(e.into());
        }
    };
    let presented = presented.or_else(|| websocket_bearer(parts).map(Presented::Bearer));
    match (
        runtime.and_then(|r| r.rules.as_ref().map(|rules| (r, rules))),
        presented,
    ) {
        (Some((runtime, rules)), Some(Presented::Bearer(token))) => {
            match state.authorizers.authorize(rules, &token).await {
                Ok(verified) => Ok(Pending::Done(Principal::Jwt(Box::new(verified)))),
                Err(hangar_auth::Error::Rejected(reason)) => {
                    tracing::info!(%reason, runtime_id = %runtime.runtime_id, "bearer token rejected");
                    Err(WireError::Unauthorized {
                        message: UNAUTHORIZED_MESSAGE.into(),
                        www_authenticate: Some(format!(
                            "{}, error=\"invalid_token\"",
                            challenge(parts, runtime)
                        )),
                    })
                }
                Err(e) => Err(auth_error(e)),
            }
        }
        (Some(_), Some(Presented::SigV4(_))) | (None, Some(Presented::Bearer(_))) => {
            Err(WireError::AccessDenied(MISMATCH_MESSAGE.into()))
        }
        (Some((runtime, _)), None) => Err(WireError::Unauthorized {
            message: UNAUTHORIZED_MESSAGE.into(),
            www_authenticate: Some(challenge(parts, runtime)),
        }),
        (None, Some(Presented::SigV4(signature))) => Ok(Pending::SigV4(signature)),
        (None, None) => Err(AuthError::MissingAuthenticationToken.into()),
    }
}

/// Step 2: verifies a SigV4 signature over the body (strict mode; permissive accepts it).
pub(crate) fn finish(
    state: &WireState,
    parts: &Parts,
    pending: Pending,
    body: &Bytes,
) -> Result<Principal, WireError> {
    match pending {
        Pending::Done(principal) => Ok(principal),
        Pending::SigV4(signature) => {
            let caller = state
                .auth
                .verify(parts, &signature, body, SystemTime::now())?;
            Ok(Principal::Iam {
                access_key_id: caller.access_key_id,
            })
        }
    }
}

/// A bearer token offered as a WebSocket subprotocol by browsers, which cannot set headers.
pub(crate) fn websocket_bearer(parts: &Parts) -> Option<String> {
    use base64::Engine;
    let offered = parts.headers.get_all(http::header::SEC_WEBSOCKET_PROTOCOL);
    for value in offered {
        for protocol in value.to_str().ok()?.split(',') {
            if let Some(encoded) = protocol
                .trim()
                .strip_prefix(WS_BEARER_PROTOCOL)
                .and_then(|p| p.strip_prefix('.'))
            {
                let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(encoded.trim_end_matches('='))
                    .ok()?;
                return String::from_utf8(token).ok();
            }
        }
    }
    None
}

/// `GET /runtimes/{runtime}/invocations/.well-known/oauth-protected-resource`: the OAuth
/// protected-resource metadata (RFC 9728) that the 401 challenge points JWT clients to. No
/// authentication (clients read it before they have a token); 404 for runtimes without a JWT
/// authorizer. AWS's document is not public (spec §G.8): this one carries the RFC's members.
pub(crate) async fn protected_resource(
    state: &WireState,
    runtime_label: &str,
    parts: &Parts,
) -> Result<axum::response::Response, WireError> {
    use axum::response::IntoResponse;
    let target = resolve(state, runtime_label, qualifier(parts)).await?;
    let Some((runtime, rules)) = target
        .as_ref()
        .and_then(|t| t.rules.as_ref().map(|r| (t, r)))
    else {
        return Err(WireError::NotFound(
            "No OAuth protected resource: the runtime does not exist or does not use a JWT authorizer.".into(),
        ));
    };
    let document = serde_json::json!({
        "resource": format!("{}/invocations?qualifier={}", runtime_url(parts, runtime), runtime.qualifier),
        "authorization_servers": [state.authorizers.issuer_hint(rules)],
        "bearer_methods_supported": ["header"],
        "scopes_supported": rules.allowed_scopes.clone().unwrap_or_default(),
    });
    Ok(axum::Json(document).into_response())
}

/// `http://{host}/runtimes/{escaped arn}` as the caller reached this server.
fn runtime_url(parts: &Parts, runtime: &RuntimeAuth) -> String {
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    // Percent-encoded as SDKs encode a URI label: everything but the unreserved set.
    const LABEL: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let arn = percent_encoding::utf8_percent_encode(&runtime.runtime_arn, LABEL);
    format!("http://{host}/runtimes/{arn}")
}

/// `WWW-Authenticate` for a JWT runtime: where its protected-resource metadata lives (spec §E;
/// AWS names its own https endpoint, Hangar the host the caller reached).
fn challenge(parts: &Parts, runtime: &RuntimeAuth) -> String {
    format!(
        "Bearer resource_metadata=\"{}/invocations/.well-known/oauth-protected-resource?qualifier={}\"",
        runtime_url(parts, runtime),
        runtime.qualifier
    )
}

fn auth_error(e: hangar_auth::Error) -> WireError {
    match e {
        hangar_auth::Error::Rejected(_) => WireError::Unauthorized {
            message: UNAUTHORIZED_MESSAGE.into(),
            www_authenticate: None,
        },
        hangar_auth::Error::ProviderUnavailable(detail) => {
            tracing::warn!(%detail, "JWT authorizer cannot validate tokens");
            WireError::ServiceUnavailable(
                "The runtime's JWT authorizer cannot reach its identity provider (discovery document or JWKS); the token could not be validated. Retry later.".into(),
            )
        }
        other => WireError::Internal(other.to_string()),
    }
}

/// The user a workload access token is minted for, and the caller it is bound to: the JWT's
/// `sub` for OAuth callers; for SigV4 callers the `X-Amzn-Bedrock-AgentCore-Runtime-User-Id`
/// header, without which no token is minted (spec §A.7, INFERRED).
pub(crate) fn workload_subject(principal: &Principal, parts: &Parts) -> Option<(String, String)> {
    match principal {
        Principal::Jwt(token) => {
            let user = token.subject.clone()?;
            let who = token.client_id.as_deref().unwrap_or(user.as_str());
            Some((user.clone(), format!("jwt:{who}@{}", token.issuer)))
        }
        Principal::Iam { access_key_id } => {
            let user = parts
                .headers
                .get("x-amzn-bedrock-agentcore-runtime-user-id")?
                .to_str()
                .ok()?
                .to_owned();
            Some((user, format!("iam:{access_key_id}")))
        }
    }
}
