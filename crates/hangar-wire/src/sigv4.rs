//! AWS Signature Version 4 verification, as AgentCore's front door does it.
//!
//! Two steps, because the body is needed only for the second:
//! 1. [`parse`] finds the signature — the `Authorization` header, or presigned query
//!    parameters (`X-Amz-Algorithm`, `X-Amz-Credential`, ...), which WebSocket clients use —
//!    and checks that it is well formed and scoped to `bedrock-agentcore`. This runs in every
//!    [`AuthMode`]: an unsigned or malformed request is a client bug we want to surface.
//! 2. [`AuthMode::verify`] (strict mode only) looks up the secret key, checks the clock and
//!    recomputes the signature over the canonical request.
//!
//! The canonical request is built exactly as botocore's `SigV4Auth` builds it for rest-json
//! (non-S3) services:
//! - URI: the path as received (already percent-encoded by the client), dot segments and
//!   duplicate slashes removed, then percent-encoded once more — so an ARN label `%3A`
//!   is signed as `%253A`.
//! - Query: every parameter but `X-Amz-Signature`, decoded and re-encoded with the SigV4
//!   unreserved set, sorted by key then value. (`+` is a literal plus, not a space: botocore
//!   and the AWS SDKs encode spaces as `%20`.)
//! - Headers: the `SignedHeaders` list, values trimmed with inner whitespace runs collapsed,
//!   repeated headers joined with `,`.
//! - Payload: `x-amz-content-sha256` when the client sent it (including `UNSIGNED-PAYLOAD`),
//!   else the hex SHA-256 of the body (botocore sends no such header for these services).
//!
//! Region: any well-formed region in the credential scope is accepted. Hangar forms ARNs in
//! its own configured region whatever the client signs with; rejecting other regions would
//! only make a mismatched `region_name` fail with a confusing auth error.

use percent_encoding::{percent_decode_str, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// The SigV4 signing name of both AgentCore APIs.
pub const SIGNING_NAME: &str = "bedrock-agentcore";
/// The only algorithm AWS accepts for SigV4.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a signature's date may be from the server clock (AWS: 15 minutes).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);
/// The longest `X-Amz-Expires` AWS accepts on a presigned request (7 days).
pub const MAX_PRESIGNED_EXPIRES: u64 = 7 * 24 * 60 * 60;

const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Everything SigV4 URI-encodes: all but `A-Z a-z 0-9 - _ . ~`.
const SIGV4_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// The same, but `/` kept (canonical URI).
const SIGV4_ENCODE_PATH: &AsciiSet = &SIGV4_ENCODE.remove(b'/');

/// How strictly requests are authenticated.
#[derive(Debug, Clone, Default)]
pub enum AuthMode {
    /// Any access key and any signature value are accepted, but the request must carry a
    /// well-formed SigV4 signature scoped to `bedrock-agentcore` (what an SDK always sends).
    /// The default: Hangar embedded in a developer's machine or a test suite.
    #[default]
    Permissive,
    /// Additionally: the access key must be one of these, the signature must verify, and the
    /// signing date must be within [`MAX_CLOCK_SKEW`] (presigned: within `X-Amz-Expires`).
    Strict(Credentials),
}

/// A set of access keys and their secrets.
#[derive(Clone, Default)]
pub struct Credentials {
    // Behind an Arc: the map is cloned into every router clone and never changes.
    keys: Arc<HashMap<String, String>>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secrets; the key ids are enough to debug a configuration.
        let mut ids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        ids.sort_unstable();
        f.debug_struct("Credentials")
            .field("access_key_ids", &ids)
            .finish()
    }
}

/// Why a credentials file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("profile [{profile}] has no {missing}")]
    Incomplete {
        profile: String,
        missing: &'static str,
    },
    #[error("access key id {0} is defined twice with different secrets")]
    Conflict(String),
    #[error("no credentials found (expected [profile] sections with aws_access_key_id and aws_secret_access_key)")]
    Empty,
}

impl Credentials {
    /// Builds a set from `(access key id, secret access key)` pairs.
    pub fn from_pairs<I, K, S>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, S)>,
        K: Into<String>,
        S: Into<String>,
    {
        let keys = pairs
            .into_iter()
            .map(|(k, s)| (k.into(), s.into()))
            .collect();
        Credentials {
            keys: Arc::new(keys),
        }
    }

    /// Parses an AWS shared-credentials style file: `[profile]` sections with
    /// `aws_access_key_id` and `aws_secret_access_key` (`aws_session_token` and any other key
    /// are ignored; `#` and `;` start comment lines). Every profile contributes one key.
    pub fn from_ini(text: &str) -> Result<Self, CredentialsError> {
        struct Profile {
            name: String,
            access_key_id: Option<String>,
            secret: Option<String>,
        }
        let mut profiles: Vec<Profile> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let name = rest
                    .strip_suffix(']')
                    .ok_or_else(|| CredentialsError::Syntax {
                        line: line_no,
                        message: "section header without closing ']'".into(),
                    })?;
                profiles.push(Profile {
                    name: name.trim().to_string(),
                    access_key_id: None,
                    secret: None,
                });
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| CredentialsError::Syntax {
                    line: line_no,
                    message: "expected 'key = value'".into(),
                })?;
            let profile = profiles
                .last_mut()
                .ok_or_else(|| CredentialsError::Syntax {
                    line: line_no,
                    message: "key outside of a [profile] section".into(),
                })?;
            let value = value.trim().to_string();
            match key.trim() {
                "aws_access_key_id" => profile.access_key_id = Some(value),
                "aws_secret_access_key" => profile.secret = Some(value),
                _ => {}
            }
        }
        let mut keys = HashMap::new();
        for p in profiles {
            match (p.access_key_id, p.secret) {
                (None, None) => continue, // e.g. a profile that only sets `region`
                (None, Some(_)) => {
                    return Err(CredentialsError::Incomplete {
                        profile: p.name,
                        missing: "aws_access_key_id",
                    })
                }
                (Some(_), None) => {
                    return Err(CredentialsError::Incomplete {
                        profile: p.name,
                        missing: "aws_secret_access_key",
                    })
                }
                (Some(id), Some(secret)) => {
                    if let Some(previous) = keys.get(&id) {
                        if previous != &secret {
                            return Err(CredentialsError::Conflict(id));
                        }
                    }
                    keys.insert(id, secret);
                }
            }
        }
        if keys.is_empty() {
            return Err(CredentialsError::Empty);
        }
        Ok(Credentials {
            keys: Arc::new(keys),
        })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn contains(&self, access_key_id: &str) -> bool {
        self.keys.contains_key(access_key_id)
    }

    fn secret(&self, access_key_id: &str) -> Option<&str> {
        self.keys.get(access_key_id).map(String::as_str)
    }
}

/// Why a request was not authenticated. Each variant is one AWS error code (all 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No signature at all.
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    /// A signature is present but malformed; the message says what is wrong.
    #[error("{0}")]
    IncompleteSignature(String),
    /// Strict mode: the access key id is not configured.
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    /// Wrong signing name, wrong signature, or a date outside the allowed window.
    #[error("{0}")]
    InvalidSignature(String),
}

impl AuthError {
    /// The AWS error code (`x-amzn-ErrorType`).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            AuthError::IncompleteSignature(_) => "IncompleteSignatureException",
            AuthError::UnrecognizedClient => "UnrecognizedClientException",
            AuthError::InvalidSignature(_) => "InvalidSignatureException",
        }
    }

    fn signature_mismatch() -> Self {
        AuthError::InvalidSignature(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
                .into(),
        )
    }
}

/// Where the signature was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureLocation {
    Header,
    /// Presigned: query parameters, with an expiry.
    Query {
        expires: u64,
    },
}

/// A well-formed SigV4 signature, as presented by the client.
#[derive(Debug, Clone)]
pub struct Signature {
    pub location: SignatureLocation,
    pub access_key_id: String,
    /// The credential scope after the key id: `date/region/service/aws4_request`.
    scope: String,
    pub region: String,
    /// `X-Amz-Date`, ISO-8601 basic format, as sent (it is part of the string to sign).
    amz_date: String,
    date: OffsetDateTime,
    /// Lowercased signed header names, in the order given.
    signed_headers: Vec<String>,
    signature: String,
}

/// What [`parse`] found in a request.
#[derive(Debug, Clone)]
pub enum Presented {
    SigV4(Signature),
    /// `Authorization: Bearer ...`: accepted only by the data-plane routes of runtimes with a
    /// JWT authorizer (`authn.rs`).
    Bearer(String),
}

/// The caller a verified request is attributed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub access_key_id: String,
}

/// Finds and checks the shape of the request's signature (step 1, every mode).
pub fn parse(parts: &http::request::Parts) -> Result<Presented, AuthError> {
    if let Some(value) = parts.headers.get(http::header::AUTHORIZATION) {
        let value = String::from_utf8_lossy(value.as_bytes());
        let value = value.trim();
        if let Some(token) = strip_prefix_ignore_case(value, "Bearer ") {
            return Ok(Presented::Bearer(token.trim().to_string()));
        }
        return parse_header(value, &parts.headers).map(Presented::SigV4);
    }
    let query = parts.uri.query().unwrap_or("");
    let has_presign_params = query_pairs(query).any(|(k, _)| {
        k.eq_ignore_ascii_case("X-Amz-Algorithm")
            || k.eq_ignore_ascii_case("X-Amz-Credential")
            || k.eq_ignore_ascii_case("X-Amz-Signature")
    });
    if has_presign_params {
        return parse_query(query).map(Presented::SigV4);
    }
    Err(AuthError::MissingAuthenticationToken)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn parse_header(value: &str, headers: &http::HeaderMap) -> Result<Signature, AuthError> {
    let Some(params) = value.strip_prefix(ALGORITHM).filter(|p| p.starts_with(' ')) else {
        let algorithm = value.split_whitespace().next().unwrap_or("");
        return Err(AuthError::IncompleteSignature(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'. Only {ALGORITHM} is supported."
        )));
    };
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for pair in params.split(',') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let Some((key, val)) = pair.split_once('=') else {
            return Err(AuthError::IncompleteSignature(format!(
                "Invalid key=value pair (missing equal-sign) in Authorization header: '{pair}'"
            )));
        };
        match key.trim() {
            "Credential" => credential = Some(val.trim()),
            "SignedHeaders" => signed_headers = Some(val.trim()),
            "Signature" => signature = Some(val.trim()),
            _ => {}
        }
    }
    let amz_date = headers
        .get("x-amz-date")
        .map(|v| String::from_utf8_lossy(v.as_bytes()));
    let mut missing = Vec::new();
    if credential.is_none() {
        missing.push("Authorization header requires 'Credential' parameter.");
    }
    if signature.is_none() {
        missing.push("Authorization header requires 'Signature' parameter.");
    }
    if signed_headers.is_none() {
        missing.push("Authorization header requires 'SignedHeaders' parameter.");
    }
    if amz_date.is_none() {
        // AWS also accepts a `Date` header; no AWS SDK sends one, so Hangar does not.
        missing.push("Authorization header requires existence of an 'X-Amz-Date' header.");
    }
    if !missing.is_empty() {
        return Err(AuthError::IncompleteSignature(format!(
            "{} Authorization={value}",
            missing.join(" ")
        )));
    }
    build_signature(
        SignatureLocation::Header,
        credential.unwrap_or_default(),
        signed_headers.unwrap_or_default(),
        signature.unwrap_or_default(),
        amz_date.as_deref().unwrap_or_default().trim(),
    )
}

fn parse_query(query: &str) -> Result<Signature, AuthError> {
    let get = |name: &str| -> Option<String> {
        query_pairs(query)
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| v.into_owned())
    };
    let algorithm = get("X-Amz-Algorithm");
    let credential = get("X-Amz-Credential");
    let signature = get("X-Amz-Signature");
    let amz_date = get("X-Amz-Date");
    let signed_headers = get("X-Amz-SignedHeaders");
    let expires = get("X-Amz-Expires");
    let (
        Some(algorithm),
        Some(credential),
        Some(signature),
        Some(amz_date),
        Some(signed_headers),
        Some(expires),
    ) = (
        algorithm,
        credential,
        signature,
        amz_date,
        signed_headers,
        expires,
    )
    else {
        return Err(AuthError::IncompleteSignature(
            "AWS query-string parameters must include 'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Signature', 'X-Amz-Date', 'X-Amz-SignedHeaders', 'X-Amz-Expires'. Re-examine the query-string parameters.".into(),
        ));
    };
    if algorithm != ALGORITHM {
        return Err(AuthError::IncompleteSignature(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'. Only {ALGORITHM} is supported."
        )));
    }
    let expires = match expires.parse::<u64>() {
        Ok(n) if (1..=MAX_PRESIGNED_EXPIRES).contains(&n) => n,
        _ => {
            return Err(AuthError::IncompleteSignature(format!(
                "X-Amz-Expires must be a whole number of seconds from 1 to {MAX_PRESIGNED_EXPIRES}, got '{expires}'."
            )))
        }
    };
    build_signature(
        SignatureLocation::Query { expires },
        &credential,
        &signed_headers,
        &signature,
        &amz_date,
    )
}

fn build_signature(
    location: SignatureLocation,
    credential: &str,
    signed_headers: &str,
    signature: &str,
    amz_date: &str,
) -> Result<Signature, AuthError> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, scope_date, region, service, terminator] = parts[..] else {
        return Err(AuthError::IncompleteSignature(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
        )));
    };
    if access_key_id.is_empty() {
        return Err(AuthError::IncompleteSignature(format!(
            "Credential must name an access key id, got '{credential}'"
        )));
    }
    let date = parse_amz_date(amz_date).ok_or_else(|| {
        AuthError::IncompleteSignature(format!(
            "Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See http://en.wikipedia.org/wiki/ISO_8601"
        ))
    })?;
    if scope_date.len() != 8 || !scope_date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthError::IncompleteSignature(format!(
            "Credential should be scoped to a valid date (YYYYMMDD), not '{scope_date}'."
        )));
    }
    if region.is_empty()
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(AuthError::IncompleteSignature(format!(
            "Credential should be scoped to a valid region, not '{region}'."
        )));
    }
    if terminator != "aws4_request" {
        return Err(AuthError::IncompleteSignature(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
        )));
    }
    if service != SIGNING_NAME {
        return Err(AuthError::InvalidSignature(format!(
            "Credential should be scoped to correct service: '{SIGNING_NAME}'."
        )));
    }
    let signed_headers: Vec<String> = signed_headers
        .split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if signed_headers.iter().any(String::is_empty) {
        return Err(AuthError::IncompleteSignature(
            "SignedHeaders must be a non-empty, semicolon-separated list of header names.".into(),
        ));
    }
    if signature.is_empty() {
        return Err(AuthError::IncompleteSignature(
            "Signature must not be empty.".into(),
        ));
    }
    Ok(Signature {
        location,
        access_key_id: access_key_id.to_string(),
        scope: format!("{scope_date}/{region}/{service}/{terminator}"),
        region: region.to_string(),
        amz_date: amz_date.to_string(),
        date,
        signed_headers,
        signature: signature.to_string(),
    })
}

impl Signature {
    /// Presigned only: whether `X-Amz-Date + X-Amz-Expires` is before `now` (the same rule as
    /// strict verification, for callers that enforce a presign's lifetime in every mode).
    pub fn presign_expired(&self, now: SystemTime) -> bool {
        match self.location {
            SignatureLocation::Header => false,
            SignatureLocation::Query { expires } => {
                let window = time::Duration::seconds(i64::try_from(expires).unwrap_or(i64::MAX));
                self.date + window < OffsetDateTime::from(now)
            }
        }
    }
}

fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(s, format)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

fn format_amz_date(t: OffsetDateTime) -> String {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    t.format(format).unwrap_or_default()
}

impl AuthMode {
    /// Step 2: decides whether a parsed signature is good enough for this mode, and whom the
    /// request is from. `body` is the full request body; `now` is the server clock.
    pub fn verify(
        &self,
        parts: &http::request::Parts,
        signature: &Signature,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Caller, AuthError> {
        let caller = Caller {
            access_key_id: signature.access_key_id.clone(),
        };
        let credentials = match self {
            AuthMode::Permissive => return Ok(caller),
            AuthMode::Strict(credentials) => credentials,
        };
        let secret = credentials
            .secret(&signature.access_key_id)
            .ok_or(AuthError::UnrecognizedClient)?;
        check_clock(signature, OffsetDateTime::from(now))?;
        if !signature.scope.starts_with(&signature.amz_date[..8]) {
            return Err(AuthError::InvalidSignature(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
                &signature.scope[..8],
                &signature.amz_date[..8],
                signature.amz_date
            )));
        }
        let explicit_hash = parts
            .headers
            .get("x-amz-content-sha256")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string());
        let payload_hash = explicit_hash.unwrap_or_else(|| hex::encode(Sha256::digest(body)));
        if signature_matches(parts, signature, secret, &payload_hash) {
            return Ok(caller);
        }
        // Presigned URLs are often signed before the body exists; some signers then sign
        // `UNSIGNED-PAYLOAD` instead of the empty-body hash.
        if matches!(signature.location, SignatureLocation::Query { .. })
            && payload_hash != UNSIGNED_PAYLOAD
            && signature_matches(parts, signature, secret, UNSIGNED_PAYLOAD)
        {
            return Ok(caller);
        }
        Err(AuthError::signature_mismatch())
    }
}

/// AWS's clock rules, with AWS's wording.
fn check_clock(signature: &Signature, now: OffsetDateTime) -> Result<(), AuthError> {
    let skew = time::Duration::try_from(MAX_CLOCK_SKEW).unwrap_or(time::Duration::minutes(15));
    let minutes = MAX_CLOCK_SKEW.as_secs() / 60;
    let date = signature.date;
    if date > now + skew {
        return Err(AuthError::InvalidSignature(format!(
            "Signature not yet current: {} is now later than {} ({} + {minutes} min.)",
            signature.amz_date,
            format_amz_date(now + skew),
            format_amz_date(now),
        )));
    }
    match signature.location {
        SignatureLocation::Header => {
            if date < now - skew {
                return Err(AuthError::InvalidSignature(format!(
                    "Signature expired: {} is now earlier than {} ({} - {minutes} min.)",
                    signature.amz_date,
                    format_amz_date(now - skew),
                    format_amz_date(now),
                )));
            }
        }
        SignatureLocation::Query { expires } => {
            let window = time::Duration::seconds(i64::try_from(expires).unwrap_or(i64::MAX));
            if date + window < now {
                return Err(AuthError::InvalidSignature(format!(
                    "Signature expired: {} is now earlier than {} ({} - {expires} sec.)",
                    signature.amz_date,
                    format_amz_date(now - window),
                    format_amz_date(now),
                )));
            }
        }
    }
    Ok(())
}

fn signature_matches(
    parts: &http::request::Parts,
    signature: &Signature,
    secret: &str,
    payload_hash: &str,
) -> bool {
    let canonical = canonical_request(parts, signature, payload_hash);
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{}\n{}",
        signature.amz_date,
        signature.scope,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = aws_sigv4::sign::v4::generate_signing_key(
        secret,
        SystemTime::from(signature.date),
        &signature.region,
        SIGNING_NAME,
    );
    let expected = aws_sigv4::sign::v4::calculate_signature(key, string_to_sign.as_bytes());
    constant_time_eq(
        expected.as_bytes(),
        signature.signature.to_ascii_lowercase().as_bytes(),
    )
}

/// The canonical request (public within the crate for tests).
pub(crate) fn canonical_request(
    parts: &http::request::Parts,
    signature: &Signature,
    payload_hash: &str,
) -> String {
    let mut out = String::with_capacity(512);
    out.push_str(parts.method.as_str());
    out.push('\n');
    out.push_str(&canonical_uri(parts.uri.path()));
    out.push('\n');
    let skip_signature = matches!(signature.location, SignatureLocation::Query { .. });
    out.push_str(&canonical_query(
        parts.uri.query().unwrap_or(""),
        skip_signature,
    ));
    out.push('\n');
    for name in &signature.signed_headers {
        out.push_str(name);
        out.push(':');
        let mut first = true;
        for value in parts.headers.get_all(name.as_str()) {
            if !first {
                out.push(',');
            }
            first = false;
            push_collapsed(&mut out, &String::from_utf8_lossy(value.as_bytes()));
        }
        if first && name == "host" {
            // HTTP/1.1 always has Host; an in-process request may carry it in the URI only.
            if let Some(authority) = parts.uri.authority() {
                out.push_str(authority.as_str());
            }
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signature.signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// Trims and collapses runs of whitespace to one space, as botocore's
/// `' '.join(value.split())`.
fn push_collapsed(out: &mut String, value: &str) {
    let mut first = true;
    for word in value.split_whitespace() {
        if !first {
            out.push(' ');
        }
        first = false;
        out.push_str(word);
    }
}

/// Removes dot segments and empty segments (botocore's `remove_dot_segments`), then
/// URI-encodes the already-encoded path once more.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    let mut stack: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                stack.pop();
            }
            s => stack.push(s),
        }
    }
    let mut normalized = String::with_capacity(path.len() + 2);
    if path.starts_with('/') {
        normalized.push('/');
    }
    normalized.push_str(&stack.join("/"));
    if path.ends_with('/') && !stack.is_empty() {
        normalized.push('/');
    }
    percent_encoding::utf8_percent_encode(&normalized, SIGV4_ENCODE_PATH).to_string()
}

fn canonical_query(query: &str, skip_signature: bool) -> String {
    let mut pairs: Vec<(String, String)> = query_pairs(query)
        .filter(|(k, _)| !(skip_signature && k.as_ref() == "X-Amz-Signature"))
        .map(|(k, v)| (encode(&k), encode(&v)))
        .collect();
    pairs.sort_unstable();
    let mut out = String::with_capacity(query.len() + 16);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SIGV4_ENCODE).to_string()
}

/// Splits a raw query string into percent-decoded pairs. `+` stays a plus (see module docs);
/// a key without `=` has an empty value; empty pieces (`a=1&&b=2`) are skipped.
pub(crate) fn query_pairs(
    query: &str,
) -> impl Iterator<Item = (std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (
            percent_decode_str(k).decode_utf8_lossy(),
            percent_decode_str(v).decode_utf8_lossy(),
        )
    })
}

/// Compares two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
