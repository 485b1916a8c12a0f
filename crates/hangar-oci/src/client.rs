//! A minimal OCI distribution client (pull side only) on the hyper client already in the tree:
//! `GET /v2/<repo>/manifests/<ref>` and `GET /v2/<repo>/blobs/<digest>`, with anonymous, basic
//! and bearer-token (`WWW-Authenticate: Bearer realm=…`) authentication, over HTTPS (rustls on
//! ring with Mozilla's roots, the connector `hangar-auth` already uses) or plain HTTP.
//!
//! Why not `oci-client`: measured against this crate, `oci-client` 0.18 (rustls feature,
//! default features off) adds 95 crates, among them reqwest, the `url`/ICU stack and a second
//! crypto library (aws-lc-rs, a C build; 93 crates and a platform verifier even without a
//! provider), where this client adds hyper-rustls, which the binary already links. The wire
//! types do come from `oci-spec` (see `store.rs`).

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Mutex;

use crate::registry::{Credential, Target};
use crate::OciError;

/// A registry that stops sending for this long fails the pull (instead of leaving the version
/// CREATING forever); a slow but steady transfer of a large layer is fine.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The next frame of a body, or an error when none comes within [`IDLE_TIMEOUT`].
pub(crate) async fn next_frame(
    body: &mut Incoming,
) -> Result<Option<hyper::body::Frame<Bytes>>, OciError> {
    match tokio::time::timeout(IDLE_TIMEOUT, body.frame()).await {
        Ok(Some(Ok(f))) => Ok(Some(f)),
        Ok(Some(Err(e))) => Err(OciError::Unreachable(format!(
            "reading from the registry: {e}"
        ))),
        Ok(None) => Ok(None),
        Err(_) => Err(OciError::Unreachable(format!(
            "the registry stopped sending for {} s",
            IDLE_TIMEOUT.as_secs()
        ))),
    }
}

pub(crate) type Http = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// HTTPS with Mozilla's roots (webpki-roots, compiled in), plain HTTP for `http://` URLs.
pub(crate) fn http_client() -> Http {
    let mut connector = HttpConnector::new();
    connector.enforce_http(false);
    connector.set_connect_timeout(Some(Duration::from_secs(10)));
    connector.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Client::builder(TokioExecutor::new()).build(https)
}

pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// One repository on one registry, with the authorization it has earned so far.
pub(crate) struct RepoClient {
    http: Http,
    target: Target,
    /// The reference as the user wrote it, for messages.
    named: String,
    credential: Option<Credential>,
    authorization: Mutex<Option<String>>,
}

impl RepoClient {
    pub(crate) fn new(
        http: Http,
        target: Target,
        named: String,
        credential: Option<Credential>,
    ) -> Self {
        RepoClient {
            http,
            target,
            named,
            credential,
            authorization: Mutex::new(None),
        }
    }

    /// GET `/v2/<repo>/<kind>/<reference>`, authenticating as the registry asks. Returns only
    /// 2xx responses; 404 is [`OciError::NotFound`], 401/403 [`OciError::Unauthorized`].
    pub(crate) async fn get(
        &self,
        kind: &str,
        reference: &str,
        accept: Option<&str>,
    ) -> Result<Response<Incoming>, OciError> {
        let base = self.target.base_url();
        let mut url = format!("{base}/v2/{}/{kind}/{reference}", self.target.repository);
        let mut authorized_once = false;
        let mut redirects = 0;
        loop {
            // A redirect elsewhere (object storage) carries its own authorization in the URL;
            // the registry's token is not sent there.
            let auth = if same_origin(&url, &base) {
                self.authorization.lock().await.clone()
            } else {
                None
            };
            let resp = self.send(&url, accept, auth.as_deref()).await?;
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            if status.is_redirection() {
                // Registries with object storage redirect blob GETs.
                let loc = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                redirects += 1;
                let absolute = loc.starts_with("http://") || loc.starts_with("https://");
                if redirects > 3 || !absolute && !loc.starts_with('/') {
                    return Err(OciError::Registry(format!(
                        "{}: unusable redirect to {loc:?}",
                        self.named
                    )));
                }
                url = if loc.starts_with('/') {
                    format!("{base}{loc}")
                } else {
                    loc
                };
                continue;
            }
            if status == StatusCode::UNAUTHORIZED && !authorized_once {
                let challenge = resp
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let header = self.authorize(&challenge).await?;
                *self.authorization.lock().await = Some(header);
                authorized_once = true;
                continue;
            }
            let code = error_code(resp).await;
            return Err(match status {
                StatusCode::NOT_FOUND if kind == "manifests" => OciError::NotFound(format!(
                    "{} was not found in its registry: {} (repository {}, {reference})",
                    self.named,
                    code.as_deref().unwrap_or("not found"),
                    self.target.repository,
                )),
                StatusCode::NOT_FOUND => OciError::NotFound(format!(
                    "{} is incomplete in its registry: blob {reference} was not found ({})",
                    self.named,
                    code.as_deref().unwrap_or("not found"),
                )),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => self.denied(),
                s => OciError::Registry(format!(
                    "{}: GET {url} answered {s}{}",
                    self.named,
                    code.map(|c| format!(" ({c})")).unwrap_or_default()
                )),
            });
        }
    }

    fn denied(&self) -> OciError {
        match &self.credential {
            None => OciError::Unauthorized(format!(
                "{} was denied: the registry requires credentials and none are configured for \
                 it (give a docker-style config.json with --registry-config)",
                self.named
            )),
            Some(c) => OciError::Unauthorized(format!(
                "{} was denied: the registry refused the credentials of user {:?} from the \
                 registry config",
                self.named, c.username
            )),
        }
    }

    async fn send(
        &self,
        url: &str,
        accept: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<Response<Incoming>, OciError> {
        let mut req = Request::get(url);
        if let Some(a) = accept {
            req = req.header(header::ACCEPT, a);
        }
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| OciError::Registry(format!("{url}: {e}")))?;
        match tokio::time::timeout(IDLE_TIMEOUT, self.http.request(req)).await {
            Ok(r) => r.map_err(|e| {
                OciError::Unreachable(format!(
                    "{} ({}): {}",
                    origin(url),
                    self.named,
                    error_chain(&e)
                ))
            }),
            Err(_) => Err(OciError::Unreachable(format!(
                "{} ({}): no answer within {} s",
                origin(url),
                self.named,
                IDLE_TIMEOUT.as_secs()
            ))),
        }
    }

    /// The `Authorization` header answering a 401 challenge.
    async fn authorize(&self, challenge: &str) -> Result<String, OciError> {
        let (scheme, params) = parse_challenge(challenge);
        if scheme.eq_ignore_ascii_case("basic") {
            return match &self.credential {
                Some(c) => Ok(basic(c)),
                None => Err(self.denied()),
            };
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(self.denied());
        }
        let realm = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                OciError::Registry(format!("{}: bearer challenge without realm", self.named))
            })?;
        if !realm.starts_with("http://") && !realm.starts_with("https://") {
            return Err(OciError::Registry(format!(
                "{}: bearer challenge with an unusable realm {realm:?}",
                self.named
            )));
        }
        let mut query = Vec::new();
        if let Some((_, s)) = params.iter().find(|(k, _)| k == "service") {
            query.push(format!("service={}", urlencode(s)));
        }
        let scope = params
            .iter()
            .find(|(k, _)| k == "scope")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| format!("repository:{}:pull", self.target.repository));
        query.push(format!("scope={}", urlencode(&scope)));
        let sep = if realm.contains('?') { '&' } else { '?' };
        let url = format!("{realm}{sep}{}", query.join("&"));
        let auth = self.credential.as_ref().map(basic);
        let resp = self.send(&url, None, auth.as_deref()).await?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.denied());
        }
        if !status.is_success() {
            return Err(OciError::Registry(format!(
                "{}: token service {realm} answered {status}",
                self.named
            )));
        }
        let body = read_limited(resp, 1 << 20).await?;
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = serde_json::from_slice(&body).map_err(|e| {
            OciError::Registry(format!("{}: token service answer: {e}", self.named))
        })?;
        let token = t.token.or(t.access_token).ok_or_else(|| {
            OciError::Registry(format!("{}: token service gave no token", self.named))
        })?;
        Ok(format!("Bearer {token}"))
    }
}

/// `scheme://authority` of a URL, for messages.
fn origin(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    url[after..].find('/').map_or(url, |i| &url[..after + i])
}

/// Whether `url` is on the registry `base` (`scheme://authority`) itself.
fn same_origin(url: &str, base: &str) -> bool {
    url.strip_prefix(base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// An error with its causes (hyper's own text is only "client error (Connect)"; the cause says
/// refused, TLS handshake, unknown certificate issuer, …).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn basic(c: &Credential) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password))
    )
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `Bearer realm="…",service="…",scope="…"` → ("Bearer", [(realm, …), …]).
pub(crate) fn parse_challenge(h: &str) -> (String, Vec<(String, String)>) {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = Vec::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let Some((k, v)) = s.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let v = v.trim_start();
        let (value, rest) = if let Some(v) = v.strip_prefix('"') {
            match v.find('"') {
                Some(end) => (v[..end].to_owned(), &v[end + 1..]),
                None => (v.to_owned(), ""),
            }
        } else {
            match v.find(',') {
                Some(end) => (v[..end].trim().to_owned(), &v[end..]),
                None => (v.trim().to_owned(), ""),
            }
        };
        params.push((k, value));
        s = rest.trim_start_matches([',', ' ']);
    }
    (scheme.to_owned(), params)
}

/// The first `errors[].code` of a registry error body, if any.
async fn error_code(resp: Response<Incoming>) -> Option<String> {
    let body = read_limited(resp, 64 << 10).await.ok()?;
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    v.get("errors")?
        .get(0)?
        .get("code")?
        .as_str()
        .map(str::to_owned)
}

/// The whole body, refusing more than `limit` bytes.
pub(crate) async fn read_limited(
    resp: Response<Incoming>,
    limit: usize,
) -> Result<Vec<u8>, OciError> {
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(frame) = next_frame(&mut body).await? {
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(OciError::TooLarge(format!(
                    "registry answer is over {limit} bytes"
                )));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert!(same_origin("https://r.io/v2/a/blobs/x", "https://r.io"));
        assert!(!same_origin("http://r.io/v2/a", "https://r.io"));
        assert!(!same_origin("https://r.io.evil/v2", "https://r.io"));
        assert!(!same_origin("https://r.io:444/v2", "https://r.io"));
        assert_eq!(origin("https://r.io:5000/v2/x"), "https://r.io:5000");
        assert_eq!(origin("http://127.0.0.1:1/token?x=1"), "http://127.0.0.1:1");
    }

    #[test]
    fn challenge() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="http://127.0.0.1:1/token",service="reg",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(
            p,
            vec![
                ("realm".into(), "http://127.0.0.1:1/token".into()),
                ("service".into(), "reg".into()),
                ("scope".into(), "repository:a/b:pull,push".into())
            ]
        );
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!((s.as_str(), p[0].1.as_str()), ("Basic", "Registry Realm"));
    }
}
