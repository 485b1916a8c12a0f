//! OpenID discovery and the JWKS, cached per discovery URL.
//!
//! A [`Provider`] holds the last good key set (issuer + keys by `kid`). Lookups read it under a
//! short `std` lock; the network is touched only when
//! - there is no key set yet, or it is older than [`Settings::max_key_age`] (fail closed
//!   beyond that age: keys the provider may have revoked are not trusted forever);
//! - a token names an unknown `kid` (key rotation): refetched at most once per
//!   [`Settings::min_refetch_interval`], so a stream of tokens with made-up `kid`s cannot turn
//!   Hangar into a load generator against the provider;
//! - the key set is older than [`Settings::refresh_after`]: refreshed in the background while
//!   the cached keys keep serving.
//!
//! A failed fetch is remembered with its time: until the refetch interval has passed, callers
//! get the same error at once (an outage does not multiply into one request per invocation),
//! and after it the next caller tries again, so recovery needs no restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use crate::jwt::Settings;
use crate::Error;

/// The largest discovery document or JWKS accepted.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// One verification key of a JWKS.
pub struct Key {
    pub kid: String,
    /// The algorithms this key may verify: from its `kty` (and curve), narrowed to the JWK's
    /// `alg` when it names one. Never an HMAC algorithm.
    pub algorithms: Vec<Algorithm>,
    pub decoding: DecodingKey,
}

/// The issuer and keys of one provider, as last fetched.
pub struct KeySet {
    pub issuer: String,
    pub keys: HashMap<String, Arc<Key>>,
    pub fetched_at: Instant,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    last_error: Option<String>,
}

/// The cached discovery of one `discoveryUrl`.
pub struct Provider {
    pub discovery_url: String,
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Serializes fetches; holds when the last one happened and how it failed.
    fetch: tokio::sync::Mutex<FetchState>,
    refreshing: std::sync::atomic::AtomicBool,
}

/// HTTP(S) GET of small JSON documents.
#[derive(Clone)]
pub struct Fetcher {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
}

impl Fetcher {
    pub fn new(timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Fetcher {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(https),
            timeout,
        }
    }

    /// GETs `url` and parses its JSON body.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("invalid URL {url}: {e}"))?;
        let request = http::Request::get(uri)
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, "hangar-jwt-authorizer")
            .body(Empty::new())
            .map_err(|e| format!("request for {url}: {e}"))?;
        let fetch = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("GET {url}: HTTP {}", status.as_u16()));
            }
            let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
                .collect()
                .await
                .map_err(|e| format!("GET {url}: reading the body: {e}"))?
                .to_bytes();
            serde_json::from_slice(&body)
                .map_err(|e| format!("GET {url}: not the expected JSON: {e}"))
        };
        match tokio::time::timeout(self.timeout, fetch).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "GET {url}: no answer within {} ms",
                self.timeout.as_millis()
            )),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<serde_json::Value>,
}

/// The fields of a JWK this authorizer reads.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// Turns one JWK into a verification key; `None` for keys that cannot verify signatures here
/// (encryption keys, symmetric keys, unsupported curves, keys without `kid`).
pub fn key_from_jwk(value: &serde_json::Value) -> Option<Key> {
    let jwk: RawJwk = serde_json::from_value(value.clone()).ok()?;
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let kid = jwk.kid?;
    let (mut algorithms, decoding) = match jwk.kty.as_str() {
        "RSA" => {
            let (n, e) = (jwk.n?, jwk.e?);
            // Refuse toy moduli: below 2048 bits RSA signatures are forgeable in practice.
            if URL_SAFE_NO_PAD.decode(n.as_bytes()).ok()?.len() < 256 {
                return None;
            }
            (
                vec![
                    Algorithm::RS256,
                    Algorithm::RS384,
                    Algorithm::RS512,
                    Algorithm::PS256,
                    Algorithm::PS384,
                    Algorithm::PS512,
                ],
                DecodingKey::from_rsa_components(&n, &e).ok()?,
            )
        }
        "EC" => {
            let alg = match jwk.crv.as_deref()? {
                "P-256" => Algorithm::ES256,
                "P-384" => Algorithm::ES384,
                _ => return None,
            };
            (
                vec![alg],
                DecodingKey::from_ec_components(&jwk.x?, &jwk.y?).ok()?,
            )
        }
        "OKP" => {
            if jwk.crv.as_deref()? != "Ed25519" {
                return None;
            }
            (
                vec![Algorithm::EdDSA],
                DecodingKey::from_ed_components(&jwk.x?).ok()?,
            )
        }
        // "oct" (symmetric) keys never verify anything: a published secret is no secret.
        _ => return None,
    };
    if let Some(alg) = &jwk.alg {
        let named: Algorithm = alg.parse().ok()?;
        if !algorithms.contains(&named) {
            return None;
        }
        algorithms = vec![named];
    }
    Some(Key {
        kid,
        algorithms,
        decoding,
    })
}

impl Provider {
    pub fn new(discovery_url: String) -> Self {
        Provider {
            discovery_url,
            keys: RwLock::new(None),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
            refreshing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(crate) fn current(&self) -> Option<Arc<KeySet>> {
        self.keys.read().expect("poisoned").clone()
    }

    /// The key set and the key for `kid`, fetching as the module doc describes. `Ok((set,
    /// None))` means the provider is reachable but does not know `kid`.
    pub async fn key(
        self: &Arc<Self>,
        fetcher: &Fetcher,
        settings: &Settings,
        kid: &str,
    ) -> Result<(Arc<KeySet>, Option<Arc<Key>>), Error> {
        if let Some(set) = self.current() {
            let age = set.fetched_at.elapsed();
            if age < settings.max_key_age {
                if age >= settings.refresh_after {
                    self.refresh_in_background(fetcher, settings);
                }
                if let Some(key) = set.keys.get(kid) {
                    return Ok((set.clone(), Some(key.clone())));
                }
            }
        }
        // No key set, too old, or an unknown kid: fetch (at most once per interval).
        let (set, failure) = self.refetch(fetcher, settings).await?;
        match (set.keys.get(kid).cloned(), failure) {
            (Some(key), _) => Ok((set, Some(key))),
            // The provider could not be asked: an unknown kid may well be a rotated key, so
            // this is an outage, not a bad token.
            (None, Some(failure)) => Err(Error::ProviderUnavailable(failure)),
            (None, None) => Ok((set, None)),
        }
    }

    /// Fetches discovery + JWKS unless another caller just did or the last attempt was less
    /// than `min_refetch_interval` ago; returns the freshest usable key set and, when the
    /// latest attempt failed, why.
    async fn refetch(
        &self,
        fetcher: &Fetcher,
        settings: &Settings,
    ) -> Result<(Arc<KeySet>, Option<String>), Error> {
        let before = self.current().map(|s| s.fetched_at);
        let mut state = self.fetch.lock().await;
        // Someone else fetched while this caller waited for the lock: use theirs.
        if let Some(set) = self.current() {
            if Some(set.fetched_at) != before {
                return Ok((set, None));
            }
        }
        let rate_limited = state
            .last_attempt
            .is_some_and(|t| t.elapsed() < settings.min_refetch_interval);
        if !rate_limited {
            state.last_attempt = Some(Instant::now());
            match self.download(fetcher).await {
                Ok(set) => {
                    let set = Arc::new(set);
                    *self.keys.write().expect("poisoned") = Some(set.clone());
                    if state.last_error.take().is_some() {
                        tracing::info!(discovery_url = %self.discovery_url, "identity provider reachable again");
                    }
                    tracing::debug!(discovery_url = %self.discovery_url, keys = set.keys.len(), "fetched the JWKS");
                    return Ok((set, None));
                }
                Err(e) => {
                    tracing::warn!(discovery_url = %self.discovery_url, error = %e, "fetching the identity provider's keys failed");
                    state.last_error = Some(e);
                }
            }
        }
        // Rate limited or failed: the cached set still serves while it is young enough.
        match self.current() {
            Some(set) if set.fetched_at.elapsed() < settings.max_key_age => {
                Ok((set, state.last_error.clone()))
            }
            _ => Err(Error::ProviderUnavailable(
                state
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "no keys fetched yet".into()),
            )),
        }
    }

    fn refresh_in_background(self: &Arc<Self>, fetcher: &Fetcher, settings: &Settings) {
        use std::sync::atomic::Ordering;
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (provider, fetcher, settings) = (self.clone(), fetcher.clone(), settings.clone());
        tokio::spawn(async move {
            let _ = provider.refetch(&fetcher, &settings).await;
            provider.refreshing.store(false, Ordering::Release);
        });
    }

    async fn download(&self, fetcher: &Fetcher) -> Result<KeySet, String> {
        let discovery: Discovery = fetcher.get_json(&self.discovery_url).await?;
        if discovery.issuer.is_empty() {
            return Err(format!("{}: empty issuer", self.discovery_url));
        }
        let jwks: Jwks = fetcher.get_json(&discovery.jwks_uri).await?;
        let mut keys = HashMap::new();
        for value in &jwks.keys {
            if let Some(key) = key_from_jwk(value) {
                keys.insert(key.kid.clone(), Arc::new(key));
            }
        }
        if keys.is_empty() {
            return Err(format!(
                "{}: no usable signing key among {} keys",
                discovery.jwks_uri,
                jwks.keys.len()
            ));
        }
        Ok(KeySet {
            issuer: discovery.issuer,
            keys,
            fetched_at: Instant::now(),
        })
    }
}

/// Providers by discovery URL, shared by every runtime naming the same URL.
#[derive(Default)]
pub struct Providers {
    map: Mutex<HashMap<String, Arc<Provider>>>,
}

impl Providers {
    pub fn get(&self, discovery_url: &str) -> Arc<Provider> {
        let mut map = self.map.lock().expect("poisoned");
        map.entry(discovery_url.to_owned())
            .or_insert_with(|| Arc::new(Provider::new(discovery_url.to_owned())))
            .clone()
    }

    /// A provider with a key set already in place (tests and warm starts).
    pub fn insert_keys(&self, discovery_url: &str, issuer: &str, keys: Vec<Key>) {
        let provider = self.get(discovery_url);
        let set = KeySet {
            issuer: issuer.to_owned(),
            keys: keys
                .into_iter()
                .map(|k| (k.kid.clone(), Arc::new(k)))
                .collect(),
            fetched_at: Instant::now(),
        };
        *provider.keys.write().expect("poisoned") = Some(Arc::new(set));
    }
}
