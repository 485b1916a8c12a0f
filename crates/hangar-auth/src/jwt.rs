//! Validation of bearer tokens against a runtime's `customJWTAuthorizer`.
//!
//! In order, each step failing closed:
//! 1. Shape: a compact JWS of three base64url parts; the header's `alg` must be one OIDC
//!    providers sign with — RS256/384/512, PS256/384/512, ES256, ES384, EdDSA. `none` and every
//!    HMAC algorithm are refused before any key is looked at (an HMAC "signed" with a public
//!    key is the classic confusion attack). A `crit` header is refused (no extension is
//!    implemented). `kid` is required: every mainstream provider sends it, and without it key
//!    rotation could not be told from a forged key.
//! 2. Key: the JWKS key with that `kid` ([`crate::oidc`]; an unknown `kid` triggers one
//!    rate-limited refetch). The key must allow the token's `alg`: its type and curve decide
//!    the family, and a JWK `alg` narrows it to exactly that algorithm.
//! 3. Signature, over `header.payload` as sent.
//! 4. Time, with [`Settings::leeway`] (30 s) either way: `exp` is required, `nbf` and `iat`
//!    are checked when present (`iat` must not be in the future).
//! 5. `iss` must equal the discovery document's `issuer` exactly.
//! 6. The runtime's rules, each an any-of list, all AND-ed: `allowedAudience` against `aud`
//!    (string or array), `allowedClients` against the `client_id` claim (only that claim: an
//!    `azp` or `cid` is not taken as a substitute), `allowedScopes` against `scope`
//!    (space-delimited string, also `scp` as Okta/Entra send it) — at least one allowed scope
//!    present; then every `customClaims` rule (see [`claim_matches`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hangar_model::control::{
    AuthorizerConfiguration, ClaimMatchOperatorType, ClaimMatchValueType,
    CustomClaimValidationType, InboundTokenClaimValueType,
};
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::oidc::{Fetcher, Providers};
use crate::{Error, Rejection};

/// Tunables of the authorizer. The defaults are what `hangar serve` uses.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// The least time between two fetches of one provider's keys (unknown `kid`s, failures).
    pub min_refetch_interval: Duration,
    /// Cached keys older than this are refreshed in the background.
    pub refresh_after: Duration,
    /// Cached keys older than this are not used: without a successful refetch, tokens fail.
    pub max_key_age: Duration,
    /// Timeout of one discovery or JWKS request.
    pub fetch_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            leeway: Duration::from_secs(30),
            min_refetch_interval: Duration::from_secs(10),
            refresh_after: Duration::from_secs(15 * 60),
            max_key_age: Duration::from_secs(24 * 60 * 60),
            fetch_timeout: Duration::from_secs(5),
        }
    }
}

/// A runtime's `customJWTAuthorizer`, ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtRules {
    pub discovery_url: String,
    pub allowed_audience: Option<Vec<String>>,
    pub allowed_clients: Option<Vec<String>>,
    pub allowed_scopes: Option<Vec<String>>,
    pub custom_claims: Vec<CustomClaimValidationType>,
}

impl JwtRules {
    /// The rules of an `authorizerConfiguration` as stored (camelCase JSON); `None` when the
    /// runtime has no JWT authorizer (SigV4).
    pub fn from_authorizer_json(value: Option<&Value>) -> Result<Option<Self>, Error> {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let config: AuthorizerConfiguration = serde_json::from_value(value.clone())
            .map_err(|e| Error::Configuration(format!("authorizerConfiguration: {e}")))?;
        let AuthorizerConfiguration::CustomJWTAuthorizer(c) = config;
        Ok(Some(JwtRules {
            discovery_url: c.discovery_url,
            allowed_audience: c.allowed_audience,
            allowed_clients: c.allowed_clients,
            allowed_scopes: c.allowed_scopes,
            custom_claims: c.custom_claims.unwrap_or_default(),
        }))
    }
}

/// What a valid token says about its bearer.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub issuer: String,
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub claims: Map<String, Value>,
}

/// Compiled rules by (runtime id, version); `None`: the version has no JWT authorizer.
type RulesCache = HashMap<(String, u32), Option<Arc<JwtRules>>>;

/// The most tokens whose signature check is remembered; the cache is emptied when full.
const MAX_VERIFIED: usize = 4096;

/// A token whose signature verified against one key set: callers repeating a token (an agent
/// conversation) pay the asymmetric check once. Valid only while that exact key set is the
/// provider's current one — a refetch (rotation) or an old set forces a full check again. The
/// time, issuer and rule checks still run on every request.
struct Verified {
    discovery_url: String,
    keys: Arc<crate::oidc::KeySet>,
    claims: Map<String, Value>,
}

/// Every JWT authorizer of the server: the provider caches and the compiled rules of each
/// runtime version.
pub struct JwtAuthorizers {
    settings: Settings,
    fetcher: Fetcher,
    providers: Providers,
    /// Rules by (runtime id, version): versions are immutable, so an entry never goes stale.
    rules: RwLock<RulesCache>,
    /// Tokens whose signature verified, by SHA-256 of the token.
    verified: RwLock<HashMap<[u8; 32], Arc<Verified>>>,
}

impl Default for JwtAuthorizers {
    fn default() -> Self {
        Self::new(Settings::default())
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

/// The algorithms accepted at all, whatever the key.
fn accepted_algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "RS256" => Some(Algorithm::RS256),
        "RS384" => Some(Algorithm::RS384),
        "RS512" => Some(Algorithm::RS512),
        "PS256" => Some(Algorithm::PS256),
        "PS384" => Some(Algorithm::PS384),
        "PS512" => Some(Algorithm::PS512),
        "ES256" => Some(Algorithm::ES256),
        "ES384" => Some(Algorithm::ES384),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

impl JwtAuthorizers {
    pub fn new(settings: Settings) -> Self {
        JwtAuthorizers {
            fetcher: Fetcher::new(settings.fetch_timeout),
            settings,
            providers: Providers::default(),
            rules: RwLock::new(HashMap::new()),
            verified: RwLock::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// The authorization server a runtime's clients should get tokens from: the provider's
    /// issuer once its discovery document was fetched, else the discovery URL without its
    /// `/.well-known/…` part (what the issuer is by OpenID Discovery's rules).
    pub fn issuer_hint(&self, rules: &JwtRules) -> String {
        if let Some(set) = self.providers.get(&rules.discovery_url).current() {
            return set.issuer.clone();
        }
        match rules.discovery_url.find("/.well-known/") {
            Some(i) => rules.discovery_url[..i].to_owned(),
            None => rules.discovery_url.clone(),
        }
    }

    /// The compiled rules of one runtime version, parsed once from its `authorizerConfiguration`.
    pub fn rules_for(
        &self,
        runtime_id: &str,
        version: u32,
        authorizer: Option<&Value>,
    ) -> Result<Option<Arc<JwtRules>>, Error> {
        let key = (runtime_id.to_owned(), version);
        if let Some(rules) = self.rules.read().expect("poisoned").get(&key) {
            return Ok(rules.clone());
        }
        let rules = JwtRules::from_authorizer_json(authorizer)?.map(Arc::new);
        self.rules
            .write()
            .expect("poisoned")
            .insert(key, rules.clone());
        Ok(rules)
    }

    /// Validates `token` against `rules` now.
    pub async fn authorize(&self, rules: &JwtRules, token: &str) -> Result<VerifiedToken, Error> {
        self.authorize_at(rules, token, SystemTime::now()).await
    }

    pub async fn authorize_at(
        &self,
        rules: &JwtRules,
        token: &str,
        now: SystemTime,
    ) -> Result<VerifiedToken, Error> {
        use sha2::{Digest, Sha256};
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let provider = self.providers.get(&rules.discovery_url);
        let cached = self
            .verified
            .read()
            .expect("poisoned")
            .get(&digest)
            .cloned();
        let (keys, claims) = match (cached, provider.current()) {
            (Some(v), Some(current))
                if v.discovery_url == rules.discovery_url
                    && Arc::ptr_eq(&v.keys, &current)
                    && current.fetched_at.elapsed() < self.settings.refresh_after =>
            {
                (v.keys.clone(), v.claims.clone())
            }
            _ => {
                let (keys, claims) = self.verify_signature(rules, token).await?;
                let mut verified = self.verified.write().expect("poisoned");
                if verified.len() >= MAX_VERIFIED {
                    verified.clear();
                }
                verified.insert(
                    digest,
                    Arc::new(Verified {
                        discovery_url: rules.discovery_url.clone(),
                        keys: keys.clone(),
                        claims: claims.clone(),
                    }),
                );
                (keys, claims)
            }
        };
        check_claims(&self.settings, rules, &keys.issuer, claims, now)
    }

    /// Steps 1–3: shape, key, signature; the verified claims.
    async fn verify_signature(
        &self,
        rules: &JwtRules,
        token: &str,
    ) -> Result<(Arc<crate::oidc::KeySet>, Map<String, Value>), Error> {
        // 1. Shape and header.
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Rejection::Malformed.into());
        };
        if header_b64.is_empty() || payload_b64.is_empty() || signature_b64.is_empty() {
            return Err(Rejection::Malformed.into());
        }
        let header: Header = URL_SAFE_NO_PAD
            .decode(header_b64)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or(Rejection::Malformed)?;
        let alg = accepted_algorithm(&header.alg)
            .ok_or_else(|| Rejection::UnsupportedAlgorithm(header.alg.clone()))?;
        if let Some(crit) = header.crit {
            return Err(Rejection::CriticalHeader(crit.to_string()).into());
        }
        let kid = header.kid.ok_or(Rejection::MissingKeyId)?;

        // 2. Key.
        let provider = self.providers.get(&rules.discovery_url);
        let (keys, key) = provider.key(&self.fetcher, &self.settings, &kid).await?;
        let key = key.ok_or_else(|| Rejection::UnknownKey(kid.clone()))?;
        if !key.algorithms.contains(&alg) {
            return Err(Rejection::KeyAlgorithmMismatch {
                kid,
                alg: header.alg,
            }
            .into());
        }

        // 3. Signature.
        let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
        let valid =
            jsonwebtoken::crypto::verify(signature_b64, signed.as_bytes(), &key.decoding, alg)
                .unwrap_or(false);
        if !valid {
            return Err(Rejection::BadSignature.into());
        }
        let claims: Map<String, Value> = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or(Rejection::Malformed)?;
        Ok((keys, claims))
    }
}

/// Steps 4–6 on verified claims.
fn check_claims(
    settings: &Settings,
    rules: &JwtRules,
    issuer: &str,
    claims: Map<String, Value>,
    now: SystemTime,
) -> Result<VerifiedToken, Error> {
    {
        // 4. Time.
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let leeway = settings.leeway.as_secs_f64();
        let number = |name: &str| claims.get(name).and_then(Value::as_f64);
        let exp = number("exp").ok_or(Rejection::MissingExpiry)?;
        if now >= exp + leeway {
            return Err(Rejection::Expired.into());
        }
        if number("nbf").is_some_and(|nbf| now + leeway < nbf) {
            return Err(Rejection::NotYetValid.into());
        }
        if number("iat").is_some_and(|iat| now + leeway < iat) {
            return Err(Rejection::IssuedInFuture.into());
        }

        // 5. Issuer.
        let iss = claims.get("iss").and_then(Value::as_str);
        if iss != Some(issuer) {
            return Err(Rejection::WrongIssuer(iss.map(str::to_owned)).into());
        }

        // 6. The runtime's rules.
        check_rules(rules, &claims)?;
        Ok(VerifiedToken {
            issuer: issuer.to_owned(),
            subject: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
            client_id: claims
                .get("client_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            claims,
        })
    }
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Step 6 of the module doc.
pub fn check_rules(rules: &JwtRules, claims: &Map<String, Value>) -> Result<(), Rejection> {
    if let Some(allowed) = &rules.allowed_audience {
        let aud = strings(claims.get("aud"));
        if !aud.iter().any(|a| allowed.iter().any(|x| x == a)) {
            return Err(Rejection::AudienceNotAllowed);
        }
    }
    if let Some(allowed) = &rules.allowed_clients {
        let client = claims.get("client_id").and_then(Value::as_str);
        if !client.is_some_and(|c| allowed.iter().any(|x| x == c)) {
            return Err(Rejection::ClientNotAllowed(client.map(str::to_owned)));
        }
    }
    if let Some(allowed) = &rules.allowed_scopes {
        let mut scopes: Vec<&str> = claims
            .get("scope")
            .and_then(Value::as_str)
            .map(|s| s.split_ascii_whitespace().collect())
            .unwrap_or_default();
        scopes.extend(strings(claims.get("scp")));
        if !scopes.iter().any(|s| allowed.iter().any(|x| x == s)) {
            return Err(Rejection::ScopeNotAllowed);
        }
    }
    for rule in &rules.custom_claims {
        if !claim_matches(rule, claims.get(&rule.inbound_token_claim_name)) {
            return Err(Rejection::ClaimRule(rule.inbound_token_claim_name.clone()));
        }
    }
    Ok(())
}

/// One `customClaims` rule. AWS documents only the operators' intent, so the strict reading
/// (spec §E, INFERRED) is implemented; any other combination of value type, operator and
/// match value never matches (a rule Hangar cannot evaluate must not admit anyone):
///
/// | claim type | operator | match value | matches when |
/// |---|---|---|---|
/// | STRING | EQUALS | string | the claim is a string equal to it |
/// | STRING | CONTAINS_ANY | list | the claim is a string equal to one of the list |
/// | STRING_ARRAY | CONTAINS | string | the claim is an array of strings containing it |
/// | STRING_ARRAY | CONTAINS_ANY | list | the claim is an array of strings sharing an element with the list |
/// | STRING_ARRAY | EQUALS | list | the claim is an array of strings with exactly the list's elements (as sets) |
///
/// A claim of the wrong JSON type (a number, an array where a string is declared, an array
/// with a non-string element) never matches.
pub fn claim_matches(rule: &CustomClaimValidationType, claim: Option<&Value>) -> bool {
    use ClaimMatchOperatorType as Op;
    use ClaimMatchValueType as V;
    use InboundTokenClaimValueType as T;
    let m = &rule.authorizing_claim_match_value;
    let Some(claim) = claim else {
        return false;
    };
    let array = || -> Option<Vec<&str>> {
        claim
            .as_array()?
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<&str>>>()
    };
    match (
        rule.inbound_token_claim_value_type,
        m.claim_match_operator,
        &m.claim_match_value,
    ) {
        (T::String, Op::Equals, V::MatchValueString(v)) => claim.as_str() == Some(v.as_str()),
        (T::String, Op::ContainsAny, V::MatchValueStringList(list)) => {
            claim.as_str().is_some_and(|c| list.iter().any(|v| v == c))
        }
        (T::StringArray, Op::Contains, V::MatchValueString(v)) => {
            array().is_some_and(|a| a.contains(&v.as_str()))
        }
        (T::StringArray, Op::ContainsAny, V::MatchValueStringList(list)) => {
            array().is_some_and(|a| a.iter().any(|c| list.iter().any(|v| v == c)))
        }
        (T::StringArray, Op::Equals, V::MatchValueStringList(list)) => array().is_some_and(|a| {
            a.iter().all(|c| list.iter().any(|v| v == c))
                && list.iter().all(|v| a.contains(&v.as_str()))
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
