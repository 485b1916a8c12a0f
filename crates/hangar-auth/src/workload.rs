//! The `WorkloadAccessToken` an agent receives.
//!
//! AgentCore mints it per invocation for the runtime's workload identity and the end user —
//! the JWT's `sub` for OAuth callers, `X-Amzn-Bedrock-AgentCore-Runtime-User-Id` for SigV4
//! callers (spec §A.7, INFERRED). Hangar issues an ES256 JWT signed with a P-256 key of this
//! server (generated on first start and kept in the data directory, so tokens survive a
//! restart), published as a JWKS so anyone can verify it:
//!
//! | claim | value |
//! |---|---|
//! | `iss` | the server's issuer (its public URL) |
//! | `aud`, `workload_identity_arn` | the runtime's workload identity ARN |
//! | `sub` | the end user |
//! | `caller` | who authenticated: `jwt:<client_id or sub>@<issuer>` or `iam:<access key id>` |
//! | `agent_runtime_arn` | the invoked runtime |
//! | `iat`, `exp` | issue time, + [`WorkloadTokenIssuer::ttl`] |
//! | `jti` | a fresh uuid |
//!
//! A token is reused for the same (workload, runtime, user, caller) while more than half its
//! lifetime remains: signing is the one asymmetric operation on an invocation's path, and the
//! binding is the same.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Error;

/// Who and what a workload access token is for.
#[derive(Debug, Clone)]
pub struct WorkloadClaims<'a> {
    pub workload_identity_arn: &'a str,
    pub agent_runtime_arn: &'a str,
    pub user_id: &'a str,
    pub caller: &'a str,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    workload_identity_arn: &'a str,
    agent_runtime_arn: &'a str,
    caller: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
}

/// Signs workload access tokens with one P-256 key.
pub struct WorkloadTokenIssuer {
    issuer: String,
    kid: String,
    key: EncodingKey,
    jwk: serde_json::Value,
    ttl: Duration,
    /// Issued tokens by their binding, with their `exp`.
    issued: std::sync::Mutex<IssuedCache>,
}

/// Issued tokens by (workload, runtime, user, caller), with their `exp`.
type IssuedCache = HashMap<[String; 4], (Arc<str>, u64)>;

/// The most issued tokens remembered for reuse; emptied when full.
const MAX_ISSUED: usize = 4096;

impl WorkloadTokenIssuer {
    /// An issuer with a fresh key (not persisted).
    pub fn generate(issuer: impl Into<String>) -> Result<Self, Error> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| Error::Signing("generating a P-256 key".into()))?;
        Self::from_pkcs8(issuer, pkcs8.as_ref())
    }

    /// The key in `path` (PKCS#8 DER), created with mode 0600 when missing.
    pub fn load_or_create(issuer: impl Into<String>, path: &Path) -> Result<Self, Error> {
        let io = |e: std::io::Error| Error::Signing(format!("{}: {e}", path.display()));
        match std::fs::read(path) {
            Ok(der) => Self::from_pkcs8(issuer, &der),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &SystemRandom::new(),
                )
                .map_err(|_| Error::Signing("generating a P-256 key".into()))?;
                let tmp = path.with_extension("tmp");
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(io)?;
                file.write_all(pkcs8.as_ref()).map_err(io)?;
                file.sync_all().map_err(io)?;
                std::fs::rename(&tmp, path).map_err(io)?;
                Self::from_pkcs8(issuer, pkcs8.as_ref())
            }
            Err(e) => Err(io(e)),
        }
    }

    fn from_pkcs8(issuer: impl Into<String>, der: &[u8]) -> Result<Self, Error> {
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &SystemRandom::new())
                .map_err(|e| Error::Signing(format!("not a P-256 PKCS#8 key: {e}")))?;
        // Uncompressed point: 0x04 || x || y.
        let point = pair.public_key().as_ref();
        if point.len() != 65 {
            return Err(Error::Signing("unexpected public key encoding".into()));
        }
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(&point[1..33]),
            URL_SAFE_NO_PAD.encode(&point[33..]),
        );
        // RFC 7638 thumbprint as the kid: stable for the key, different for a new one.
        let thumbprint = Sha256::digest(format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#
        ));
        let kid = URL_SAFE_NO_PAD.encode(thumbprint);
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "kid": kid, "use": "sig", "alg": "ES256",
        });
        Ok(WorkloadTokenIssuer {
            issuer: issuer.into(),
            kid,
            key: EncodingKey::from_ec_der(der),
            jwk,
            ttl: Duration::from_secs(15 * 60),
            issued: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// How long an issued token is valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The public key, as a JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": [self.jwk] })
    }

    /// A token for one invocation (a recent one with the same binding, see the module doc).
    pub fn issue(&self, claims: &WorkloadClaims<'_>) -> Result<Arc<str>, Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let binding = [
            claims.workload_identity_arn.to_owned(),
            claims.agent_runtime_arn.to_owned(),
            claims.user_id.to_owned(),
            claims.caller.to_owned(),
        ];
        if let Some((token, exp)) = self.issued.lock().expect("poisoned").get(&binding) {
            if exp.saturating_sub(now) > self.ttl.as_secs() / 2 {
                return Ok(token.clone());
            }
        }
        let token: Arc<str> = self.sign(claims, now)?.into();
        let mut issued = self.issued.lock().expect("poisoned");
        if issued.len() >= MAX_ISSUED {
            issued.clear();
        }
        issued.insert(binding, (token.clone(), now + self.ttl.as_secs()));
        Ok(token)
    }

    fn sign(&self, claims: &WorkloadClaims<'_>, now: u64) -> Result<String, Error> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let body = Claims {
            iss: &self.issuer,
            sub: claims.user_id,
            aud: claims.workload_identity_arn,
            workload_identity_arn: claims.workload_identity_arn,
            agent_runtime_arn: claims.agent_runtime_arn,
            caller: claims.caller,
            iat: now,
            exp: now + self.ttl.as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        jsonwebtoken::encode(&header, &body, &self.key).map_err(|e| Error::Signing(e.to_string()))
    }
}
