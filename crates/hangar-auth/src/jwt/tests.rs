//! The validation matrix, with keys made in the test (EC and Ed25519 generated per run; RSA
//! from a test-only fixture, since ring cannot generate RSA keys), and the JWKS cache against
//! a real HTTP server on loopback.

use super::*;
use crate::oidc::{key_from_jwk, Key};
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING,
};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};

mod rsa_fixture;

const ISSUER: &str = "https://idp.example.test";
const DISCOVERY: &str = "https://idp.example.test/.well-known/openid-configuration";

/// A signing key and its public JWK.
struct TestKey {
    alg: Algorithm,
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

fn rsa_key(kid: &str, jwk_alg: Option<&str>) -> TestKey {
    let der = STANDARD.decode(rsa_fixture::RSA_PKCS1_DER_B64).unwrap();
    let mut jwk = json!({"kty": "RSA", "kid": kid, "use": "sig", "n": rsa_fixture::RSA_N, "e": rsa_fixture::RSA_E});
    if let Some(a) = jwk_alg {
        jwk["alg"] = json!(a);
    }
    TestKey {
        alg: Algorithm::RS256,
        kid: kid.into(),
        encoding: EncodingKey::from_rsa_der(&der),
        jwk,
    }
}

fn ec_key(kid: &str, p384: bool) -> TestKey {
    let (alg, curve, signing) = if p384 {
        (Algorithm::ES384, "P-384", &ECDSA_P384_SHA384_FIXED_SIGNING)
    } else {
        (Algorithm::ES256, "P-256", &ECDSA_P256_SHA256_FIXED_SIGNING)
    };
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    let half = (point.len() - 1) / 2;
    TestKey {
        alg,
        kid: kid.into(),
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({"kty": "EC", "kid": kid, "crv": curve,
            "x": URL_SAFE_NO_PAD.encode(&point[1..1 + half]),
            "y": URL_SAFE_NO_PAD.encode(&point[1 + half..])}),
    }
}

fn ed_key(kid: &str) -> TestKey {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    TestKey {
        alg: Algorithm::EdDSA,
        kid: kid.into(),
        encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
        jwk: json!({"kty": "OKP", "kid": kid, "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())}),
    }
}

impl TestKey {
    fn sign(&self, claims: &Value) -> String {
        self.sign_as(self.alg, claims)
    }
    fn sign_as(&self, alg: Algorithm, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
    fn key(&self) -> Key {
        key_from_jwk(&self.jwk).expect("usable JWK")
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn good_claims() -> Value {
    let now = now();
    json!({
        "iss": ISSUER, "sub": "user-1", "aud": "hangar-runtime", "client_id": "client-a",
        "scope": "openid agent:invoke", "iat": now, "nbf": now - 1, "exp": now + 300,
        "department": "eng", "groups": ["staff", "admins"],
    })
}

fn claim_rule(name: &str, ty: &str, op: &str, value: Value) -> CustomClaimValidationType {
    serde_json::from_value(json!({
        "inboundTokenClaimName": name,
        "inboundTokenClaimValueType": ty,
        "authorizingClaimMatchValue": {"claimMatchOperator": op, "claimMatchValue": value},
    }))
    .unwrap()
}

fn rules() -> JwtRules {
    JwtRules {
        discovery_url: DISCOVERY.into(),
        allowed_audience: Some(vec!["other".into(), "hangar-runtime".into()]),
        allowed_clients: Some(vec!["client-a".into()]),
        allowed_scopes: Some(vec!["agent:invoke".into()]),
        custom_claims: vec![
            claim_rule(
                "department",
                "STRING",
                "EQUALS",
                json!({"matchValueString": "eng"}),
            ),
            claim_rule(
                "groups",
                "STRING_ARRAY",
                "CONTAINS",
                json!({"matchValueString": "staff"}),
            ),
        ],
    }
}

fn authorizers(keys: &[&TestKey]) -> JwtAuthorizers {
    let a = JwtAuthorizers::default();
    a.providers()
        .insert_keys(DISCOVERY, ISSUER, keys.iter().map(|k| k.key()).collect());
    a
}

async fn check(a: &JwtAuthorizers, rules: &JwtRules, token: &str) -> Result<VerifiedToken, Error> {
    a.authorize(rules, token).await
}

fn rejection(result: Result<VerifiedToken, Error>) -> Rejection {
    match result {
        Err(Error::Rejected(r)) => r,
        Err(e) => panic!("expected a rejection, got {e}"),
        Ok(t) => panic!("expected a rejection, token accepted: {t:?}"),
    }
}

#[tokio::test]
async fn accepts_every_supported_algorithm() {
    let rsa = rsa_key("rsa", None);
    let (es256, es384, ed) = (ec_key("es256", false), ec_key("es384", true), ed_key("ed"));
    let a = authorizers(&[&rsa, &es256, &es384, &ed]);
    let claims = good_claims();
    for alg in [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ] {
        let token = rsa.sign_as(alg, &claims);
        let verified = check(&a, &rules(), &token).await.unwrap();
        assert_eq!(verified.subject.as_deref(), Some("user-1"), "{alg:?}");
        assert_eq!(verified.client_id.as_deref(), Some("client-a"));
    }
    for key in [&es256, &es384, &ed] {
        check(&a, &rules(), &key.sign(&claims)).await.unwrap();
    }
}

#[tokio::test]
async fn refuses_none_and_hmac_even_with_the_public_key_as_secret() {
    let rsa = rsa_key("rsa", None);
    let a = authorizers(&[&rsa]);
    let claims = good_claims();
    // alg none, no signature (and a dummy one).
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"rsa"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}.AAAA"),
    ] {
        let r = rejection(check(&a, &rules(), &token).await);
        assert!(
            matches!(r, Rejection::Malformed | Rejection::UnsupportedAlgorithm(_)),
            "{r}"
        );
    }
    // HS256 "signed" with the public key, in the forms an attacker would try.
    for secret in [
        rsa_fixture::RSA_PUBLIC_PEM.as_bytes().to_vec(),
        URL_SAFE_NO_PAD.decode(rsa_fixture::RSA_N).unwrap(),
        rsa.jwk.to_string().into_bytes(),
    ] {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("rsa".into());
        let token = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(&secret)).unwrap();
        assert_eq!(
            rejection(check(&a, &rules(), &token).await),
            Rejection::UnsupportedAlgorithm("HS256".into())
        );
    }
}

#[tokio::test]
async fn the_key_decides_the_algorithm() {
    let rs_only = rsa_key("rs-only", Some("RS256"));
    let ec = ec_key("ec", false);
    let a = authorizers(&[&rs_only, &ec]);
    let claims = good_claims();
    // The JWK says RS256: a PS256 signature by the same key is refused.
    let ps = rs_only.sign_as(Algorithm::PS256, &claims);
    assert!(matches!(
        rejection(check(&a, &rules(), &ps).await),
        Rejection::KeyAlgorithmMismatch { .. }
    ));
    // An RSA-signed token naming the EC key's kid.
    let mut confused = rsa_key("ec", None);
    confused.alg = Algorithm::RS256;
    assert!(matches!(
        rejection(check(&a, &rules(), &confused.sign(&claims)).await),
        Rejection::KeyAlgorithmMismatch { .. }
    ));
    // Symmetric and encryption keys never become verification keys.
    assert!(key_from_jwk(&json!({"kty": "oct", "kid": "s", "k": "c2VjcmV0"})).is_none());
    let mut enc = rs_only.jwk.clone();
    enc["use"] = json!("enc");
    assert!(key_from_jwk(&enc).is_none());
    let mut hs = rs_only.jwk.clone();
    hs["alg"] = json!("HS256");
    assert!(key_from_jwk(&hs).is_none());
}

#[tokio::test]
async fn structure_kid_and_tampering() {
    let rsa = rsa_key("rsa", None);
    let a = authorizers(&[&rsa]);
    let token = rsa.sign(&good_claims());
    let parts: Vec<&str> = token.split('.').collect();

    // Unknown kid (the cache has just been filled and no provider answers: no refetch).
    let other = rsa_key("other-kid", None);
    assert!(matches!(
        check(&a, &rules(), &other.sign(&good_claims())).await,
        Err(Error::ProviderUnavailable(_)) | Err(Error::Rejected(Rejection::UnknownKey(_)))
    ));
    // No kid.
    let no_kid = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &good_claims(),
        &rsa.encoding,
    )
    .unwrap();
    assert_eq!(
        rejection(check(&a, &rules(), &no_kid).await),
        Rejection::MissingKeyId
    );
    // Tampered payload: another subject, same signature.
    let mut claims = good_claims();
    claims["sub"] = json!("admin");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    assert_eq!(
        rejection(check(&a, &rules(), &forged).await),
        Rejection::BadSignature
    );
    // Tampered signature: one bit flipped.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[10] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(
        rejection(check(&a, &rules(), &flipped).await),
        Rejection::BadSignature
    );
    // Malformed.
    for bad in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        &format!("{}.{}.", parts[0], parts[1]),
        "!!.!!.!!",
    ] {
        assert_eq!(
            rejection(check(&a, &rules(), bad).await),
            Rejection::Malformed,
            "{bad}"
        );
    }
    // A critical header extension.
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rsa".into());
    let header = json!({"alg": "RS256", "kid": "rsa", "crit": ["b64"], "b64": false});
    let header = URL_SAFE_NO_PAD.encode(header.to_string());
    let token = format!("{header}.{}.{}", parts[1], parts[2]);
    assert!(matches!(
        rejection(check(&a, &rules(), &token).await),
        Rejection::CriticalHeader(_)
    ));
}

#[tokio::test]
async fn time_claims_with_leeway() {
    let ec = ec_key("ec", false);
    let a = authorizers(&[&ec]);
    let now = now();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good_claims();
        f(&mut c);
        ec.sign(&c)
    };
    let cases: Vec<(String, Option<Rejection>)> = vec![
        (
            with(&|c| c["exp"] = json!(now - 120)),
            Some(Rejection::Expired),
        ),
        (with(&|c| c["exp"] = json!(now - 5)), None), // within the 30 s leeway
        (
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            Some(Rejection::MissingExpiry),
        ),
        (
            with(&|c| c["exp"] = json!("tomorrow")),
            Some(Rejection::MissingExpiry),
        ),
        (
            with(&|c| c["nbf"] = json!(now + 600)),
            Some(Rejection::NotYetValid),
        ),
        (with(&|c| c["nbf"] = json!(now + 10)), None),
        (
            with(&|c| c["iat"] = json!(now + 600)),
            Some(Rejection::IssuedInFuture),
        ),
    ];
    for (token, want) in cases {
        match want {
            None => {
                check(&a, &rules(), &token).await.unwrap();
            }
            Some(r) => assert_eq!(rejection(check(&a, &rules(), &token).await), r),
        }
    }
}

#[tokio::test]
async fn issuer_audience_client_scope() {
    let ec = ec_key("ec", false);
    let a = authorizers(&[&ec]);
    let set = |k: &str, v: Value| {
        let mut c = good_claims();
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v;
        }
        ec.sign(&c)
    };
    let r = rules();
    let reject = [
        (
            set("iss", json!("https://evil.example")),
            Rejection::WrongIssuer(Some("https://evil.example".into())),
        ),
        (
            set("iss", json!(format!("{ISSUER}/"))),
            Rejection::WrongIssuer(Some(format!("{ISSUER}/"))),
        ),
        (set("iss", Value::Null), Rejection::WrongIssuer(None)),
        (
            set("aud", json!("another-runtime")),
            Rejection::AudienceNotAllowed,
        ),
        (set("aud", json!(["x", "y"])), Rejection::AudienceNotAllowed),
        (set("aud", Value::Null), Rejection::AudienceNotAllowed),
        (
            set("client_id", json!("client-b")),
            Rejection::ClientNotAllowed(Some("client-b".into())),
        ),
        (
            set("client_id", Value::Null),
            Rejection::ClientNotAllowed(None),
        ),
        (
            set("scope", json!("openid profile")),
            Rejection::ScopeNotAllowed,
        ),
        // A scope that merely contains an allowed one as a substring.
        (
            set("scope", json!("agent:invoke-all")),
            Rejection::ScopeNotAllowed,
        ),
        (set("scope", Value::Null), Rejection::ScopeNotAllowed),
    ];
    for (token, want) in reject {
        assert_eq!(rejection(check(&a, &r, &token).await), want);
    }
    // Any-of lists: an array audience with one allowed value, scopes from `scp`.
    check(&a, &r, &set("aud", json!(["x", "hangar-runtime"])))
        .await
        .unwrap();
    let mut c = good_claims();
    c.as_object_mut().unwrap().remove("scope");
    c["scp"] = json!(["agent:invoke"]);
    check(&a, &r, &ec.sign(&c)).await.unwrap();
    // Without lists, nothing is required of aud/client_id/scope.
    let open = JwtRules {
        allowed_audience: None,
        allowed_clients: None,
        allowed_scopes: None,
        custom_claims: vec![],
        ..rules()
    };
    let mut bare = good_claims();
    for k in ["aud", "client_id", "scope"] {
        bare.as_object_mut().unwrap().remove(k);
    }
    check(&a, &open, &ec.sign(&bare)).await.unwrap();
}

#[test]
fn custom_claim_operators() {
    let s = |v: &str| json!({ "matchValueString": v });
    let l = |v: &[&str]| json!({ "matchValueStringList": v });
    let cases: Vec<(CustomClaimValidationType, Value, bool)> = vec![
        (
            claim_rule("c", "STRING", "EQUALS", s("eng")),
            json!("eng"),
            true,
        ),
        (
            claim_rule("c", "STRING", "EQUALS", s("eng")),
            json!("Eng"),
            false,
        ),
        (
            claim_rule("c", "STRING", "EQUALS", s("eng")),
            json!(["eng"]),
            false,
        ),
        (
            claim_rule("c", "STRING", "CONTAINS_ANY", l(&["a", "eng"])),
            json!("eng"),
            true,
        ),
        (
            claim_rule("c", "STRING", "CONTAINS_ANY", l(&["a", "b"])),
            json!("eng"),
            false,
        ),
        (
            claim_rule("c", "STRING", "CONTAINS_ANY", l(&["a", "b"])),
            json!("xaby"),
            false,
        ),
        (
            claim_rule("c", "STRING_ARRAY", "CONTAINS", s("staff")),
            json!(["x", "staff"]),
            true,
        ),
        (
            claim_rule("c", "STRING_ARRAY", "CONTAINS", s("staff")),
            json!(["x"]),
            false,
        ),
        (
            claim_rule("c", "STRING_ARRAY", "CONTAINS", s("staff")),
            json!("staff"),
            false,
        ),
        (
            claim_rule("c", "STRING_ARRAY", "CONTAINS", s("staff")),
            json!(["staff", 1]),
            false,
        ),
        (
            claim_rule("c", "STRING_ARRAY", "CONTAINS_ANY", l(&["a", "b"])),
            json!(["b", "z"]),
            true,
        ),
        (
            claim_rule("c", "STRING_ARRAY", "CONTAINS_ANY", l(&["a", "b"])),
            json!(["z"]),
            false,
        ),
        (
            claim_rule("c", "STRING_ARRAY", "CONTAINS_ANY", l(&["a", "b"])),
            json!([]),
            false,
        ),
        (
            claim_rule("c", "STRING_ARRAY", "EQUALS", l(&["a", "b"])),
            json!(["b", "a"]),
            true,
        ),
        (
            claim_rule("c", "STRING_ARRAY", "EQUALS", l(&["a", "b"])),
            json!(["a"]),
            false,
        ),
        (
            claim_rule("c", "STRING_ARRAY", "EQUALS", l(&["a", "b"])),
            json!(["a", "b", "c"]),
            false,
        ),
        // Combinations without a documented meaning never match.
        (
            claim_rule("c", "STRING", "CONTAINS", s("eng")),
            json!("eng"),
            false,
        ),
        (
            claim_rule("c", "STRING", "EQUALS", l(&["eng"])),
            json!("eng"),
            false,
        ),
        (
            claim_rule("c", "STRING_ARRAY", "EQUALS", s("a")),
            json!(["a"]),
            false,
        ),
        (claim_rule("c", "STRING", "EQUALS", s("1")), json!(1), false),
    ];
    for (i, (rule, claim, want)) in cases.iter().enumerate() {
        assert_eq!(claim_matches(rule, Some(claim)), *want, "case {i}: {claim}");
    }
    assert!(!claim_matches(&cases[0].0, None));
}

#[tokio::test]
async fn custom_claims_are_all_required() {
    let ec = ec_key("ec", false);
    let a = authorizers(&[&ec]);
    let mut c = good_claims();
    c["department"] = json!("sales");
    assert_eq!(
        rejection(check(&a, &rules(), &ec.sign(&c)).await),
        Rejection::ClaimRule("department".into())
    );
    let mut c = good_claims();
    c["groups"] = json!(["admins"]);
    assert_eq!(
        rejection(check(&a, &rules(), &ec.sign(&c)).await),
        Rejection::ClaimRule("groups".into())
    );
}

#[test]
fn rules_from_the_stored_configuration() {
    let a = JwtAuthorizers::default();
    let config = json!({"customJWTAuthorizer": {
        "discoveryUrl": DISCOVERY,
        "allowedAudience": ["aud-1"],
        "customClaims": [{
            "inboundTokenClaimName": "dept", "inboundTokenClaimValueType": "STRING",
            "authorizingClaimMatchValue": {"claimMatchOperator": "EQUALS",
                "claimMatchValue": {"matchValueString": "eng"}}}],
    }});
    let rules = a.rules_for("rt-1", 1, Some(&config)).unwrap().unwrap();
    assert_eq!(rules.discovery_url, DISCOVERY);
    assert_eq!(rules.allowed_audience, Some(vec!["aud-1".to_string()]));
    assert_eq!(rules.custom_claims.len(), 1);
    assert!(a.rules_for("rt-2", 1, None).unwrap().is_none());
    assert!(a.rules_for("rt-3", 1, Some(&json!({"x": 1}))).is_err());
}

// ------------------------------------------------------------------------------------------
// The JWKS cache against a real HTTP server on loopback.

/// A tiny OpenID provider: serves the discovery document and whatever JWKS it holds, counts
/// JWKS requests, and can be taken down.
struct Idp {
    url: String,
    jwks: Arc<std::sync::Mutex<Value>>,
    jwks_hits: Arc<AtomicUsize>,
    up: Arc<std::sync::atomic::AtomicBool>,
}

async fn idp() -> Idp {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let jwks = Arc::new(std::sync::Mutex::new(json!({"keys": []})));
    let hits = Arc::new(AtomicUsize::new(0));
    let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (j, h, u, base) = (jwks.clone(), hits.clone(), up.clone(), url.clone());
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let (j, h, u, base) = (j.clone(), h.clone(), u.clone(), base.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
                let (status, body) = if !u.load(Ordering::SeqCst) {
                    ("503 Service Unavailable", "{}".to_string())
                } else if path == "/.well-known/openid-configuration" {
                    let doc = json!({"issuer": base, "jwks_uri": format!("{base}/jwks")});
                    ("200 OK", doc.to_string())
                } else if path == "/jwks" {
                    h.fetch_add(1, Ordering::SeqCst);
                    ("200 OK", j.lock().unwrap().to_string())
                } else {
                    ("404 Not Found", "{}".to_string())
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(response.as_bytes()).await;
            });
        }
    });
    Idp {
        url,
        jwks,
        jwks_hits: hits,
        up,
    }
}

fn fast_settings() -> Settings {
    Settings {
        min_refetch_interval: Duration::from_millis(300),
        ..Settings::default()
    }
}

#[tokio::test]
async fn discovery_rotation_rate_limit_and_outage() {
    let idp = idp().await;
    let (k1, k2, k3) = (
        ec_key("k1", false),
        ec_key("k2", false),
        ec_key("k3", false),
    );
    *idp.jwks.lock().unwrap() = json!({"keys": [k1.jwk]});
    let a = JwtAuthorizers::new(fast_settings());
    let r = JwtRules {
        discovery_url: format!("{}/.well-known/openid-configuration", idp.url),
        ..rules()
    };
    let claims = || {
        let mut c = good_claims();
        c["iss"] = json!(idp.url);
        c
    };

    // First use fetches; later ones are served from the cache (the same token string too,
    // whose verified signature is remembered).
    let repeated = k1.sign(&claims());
    a.authorize(&r, &k1.sign(&claims())).await.unwrap();
    for _ in 0..20 {
        a.authorize(&r, &k1.sign(&claims())).await.unwrap();
        a.authorize(&r, &repeated).await.unwrap();
    }
    assert_eq!(idp.jwks_hits.load(Ordering::SeqCst), 1);

    // Rotation: k2 appears at the provider; a k2 token triggers one refetch.
    *idp.jwks.lock().unwrap() = json!({"keys": [k1.jwk, k2.jwk]});
    tokio::time::sleep(Duration::from_millis(350)).await;
    a.authorize(&r, &k2.sign(&claims())).await.unwrap();
    assert_eq!(idp.jwks_hits.load(Ordering::SeqCst), 2);

    // Unknown kids right after: rate limited, no fetch, a clean rejection.
    for _ in 0..10 {
        assert_eq!(
            rejection(a.authorize(&r, &k3.sign(&claims())).await),
            Rejection::UnknownKey("k3".into())
        );
    }
    assert_eq!(idp.jwks_hits.load(Ordering::SeqCst), 2);

    // Outage: known keys keep working from the cache; a new kid fails closed...
    idp.up.store(false, Ordering::SeqCst);
    *idp.jwks.lock().unwrap() = json!({"keys": [k3.jwk]});
    tokio::time::sleep(Duration::from_millis(350)).await;
    a.authorize(&r, &k1.sign(&claims())).await.unwrap();
    match a.authorize(&r, &k3.sign(&claims())).await {
        Err(Error::ProviderUnavailable(m)) => assert!(m.contains("503"), "{m}"),
        other => panic!("{other:?}"),
    }
    // ... and a server that never reached the provider cannot validate anything.
    let cold = JwtAuthorizers::new(fast_settings());
    match cold.authorize(&r, &k1.sign(&claims())).await {
        Err(Error::ProviderUnavailable(m)) => assert!(m.contains("503"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Recovery without a restart, once the refetch interval has passed.
    idp.up.store(true, Ordering::SeqCst);
    assert!(matches!(
        cold.authorize(&r, &k3.sign(&claims())).await,
        Err(Error::ProviderUnavailable(_))
    ));
    tokio::time::sleep(Duration::from_millis(350)).await;
    cold.authorize(&r, &k3.sign(&claims())).await.unwrap();
    a.authorize(&r, &k3.sign(&claims())).await.unwrap();
    // The rotated-out key is gone after the refetch, also for a token verified before.
    assert_eq!(
        rejection(a.authorize(&r, &k1.sign(&claims())).await),
        Rejection::UnknownKey("k1".into())
    );
    assert_eq!(
        rejection(a.authorize(&r, &repeated).await),
        Rejection::UnknownKey("k1".into())
    );
}

#[tokio::test]
async fn keys_past_their_maximum_age_fail_closed() {
    let idp = idp().await;
    let k1 = ec_key("k1", false);
    *idp.jwks.lock().unwrap() = json!({"keys": [k1.jwk]});
    let a = JwtAuthorizers::new(Settings {
        min_refetch_interval: Duration::from_millis(50),
        max_key_age: Duration::from_millis(200),
        refresh_after: Duration::from_millis(100),
        ..Settings::default()
    });
    let r = JwtRules {
        discovery_url: format!("{}/.well-known/openid-configuration", idp.url),
        ..rules()
    };
    let mut c = good_claims();
    c["iss"] = json!(idp.url);
    a.authorize(&r, &k1.sign(&c)).await.unwrap();
    idp.up.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(matches!(
        a.authorize(&r, &k1.sign(&c)).await,
        Err(Error::ProviderUnavailable(_))
    ));
}

#[test]
fn workload_tokens_verify_against_the_published_key() {
    let dir = std::env::temp_dir().join(format!("hangar-auth-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("workload-key.der");
    let issuer = crate::WorkloadTokenIssuer::load_or_create("http://hangar.test", &path).unwrap();
    let token = issuer
        .issue(&crate::WorkloadClaims {
            workload_identity_arn: "arn:aws:bedrock-agentcore:us-east-1:123456789012:workload-identity-directory/default/workload-identity/rt-1",
            agent_runtime_arn: "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/rt-1",
            user_id: "user-1",
            caller: "iam:AKID",
        })
        .unwrap();
    // The same key after a restart.
    let again = crate::WorkloadTokenIssuer::load_or_create("http://hangar.test", &path).unwrap();
    assert_eq!(issuer.jwks(), again.jwks());
    let key = key_from_jwk(&again.jwks()["keys"][0]).unwrap();
    let mut v = jsonwebtoken::Validation::new(Algorithm::ES256);
    v.set_audience(&["arn:aws:bedrock-agentcore:us-east-1:123456789012:workload-identity-directory/default/workload-identity/rt-1"]);
    v.set_issuer(&["http://hangar.test"]);
    let data = jsonwebtoken::decode::<Value>(&token, &key.decoding, &v).unwrap();
    assert_eq!(data.claims["sub"], "user-1");
    assert_eq!(data.claims["caller"], "iam:AKID");
    // Reused for the same binding, not across bindings.
    let again_token = issuer
        .issue(&crate::WorkloadClaims {
            workload_identity_arn: "arn:aws:bedrock-agentcore:us-east-1:123456789012:workload-identity-directory/default/workload-identity/rt-1",
            agent_runtime_arn: "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/rt-1",
            user_id: "user-1",
            caller: "iam:AKID",
        })
        .unwrap();
    assert_eq!(token, again_token);
    let other_user = issuer
        .issue(&crate::WorkloadClaims {
            workload_identity_arn: "arn:aws:bedrock-agentcore:us-east-1:123456789012:workload-identity-directory/default/workload-identity/rt-1",
            agent_runtime_arn: "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/rt-1",
            user_id: "user-2",
            caller: "iam:AKID",
        })
        .unwrap();
    assert_ne!(token, other_user);
    // Another server's key does not verify it.
    let other = crate::WorkloadTokenIssuer::generate("http://hangar.test").unwrap();
    let other_key = key_from_jwk(&other.jwks()["keys"][0]).unwrap();
    assert!(jsonwebtoken::decode::<Value>(&token, &other_key.decoding, &v).is_err());
    std::fs::remove_dir_all(dir).ok();
}
