//! A small S3 REST client: path-style requests to an S3-compatible endpoint
//! (`http://127.0.0.1:9000/bucket/key`), signed with SigV4.
//!
//! Why not `aws-sdk-s3`: it is a large build for a 2-core CI and we need four
//! calls. Why `aws-sigv4` rather than `rusty-s3`: `aws-sigv4` is already in the
//! workspace (hangar-wire verifies signatures with it, hangar-loadgen signs
//! with it), so signing S3 requests costs no new crate, and it is the signer
//! the AWS SDKs use.
//!
//! `http://` endpoints (a local MinIO, moto, …) and `https://` ones (AWS S3 itself), the
//! latter over rustls with Mozilla's roots compiled in — the TLS stack the binary already
//! links for JWKS and registry fetches.

use std::error::Error as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::error::ArtifactError;
use crate::source::{FetchOutcome, ObjectMeta, ObjectRequest, ObjectSource, Sink};

/// RFC 3986 unreserved characters stay as they are; everything else is
/// percent-encoded, as SigV4 canonicalisation for S3 expects (single encoding).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// Object keys keep their `/` separators in the path.
const KEY_PATH: &AsciiSet = &QUERY_VALUE.remove(b'/');

/// Access key, secret key and optional session token.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for StaticCredentials {
    // Never print secrets into logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Where request-signing credentials come from.
#[derive(Debug, Clone)]
pub enum CredentialsSource {
    /// The way AWS tools take them, looked up again for every request (so
    /// rotated credentials are picked up): `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, else the shared
    /// credentials file (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`)
    /// at profile `AWS_PROFILE` (or `default`).
    Environment,
    /// Fixed credentials.
    Static(StaticCredentials),
    /// Unsigned requests (the CLI's `--no-sign-request`), for public buckets.
    Anonymous,
}

/// Resolve credentials from the environment as the AWS CLI does, with `env`
/// standing in for `std::env::var` (so tests need not touch the process
/// environment). `Ok(None)` means none were found; the `String` says where
/// they came from (for logs).
pub fn resolve_credentials_with(
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<(StaticCredentials, String)>, ArtifactError> {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    if let (Some(id), Some(secret)) = (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Some((
            StaticCredentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: get("AWS_SESSION_TOKEN"),
            },
            "environment variables".to_string(),
        )));
    }
    let (file, profile, explicit_profile) = credentials_file_and_profile(&env);
    let Some(file) = file else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ArtifactError::BadCredentialsFile {
                file: file.display().to_string(),
                problem: format!("cannot read it: {e}"),
            })
        }
    };
    let Some(section) = ini_section(&text, &profile) else {
        if explicit_profile {
            return Err(ArtifactError::BadCredentialsFile {
                file: file.display().to_string(),
                problem: format!("profile '{profile}' (from AWS_PROFILE) is not in it"),
            });
        }
        return Ok(None);
    };
    let find = |k: &str| {
        section
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    match (find("aws_access_key_id"), find("aws_secret_access_key")) {
        (Some(id), Some(secret)) => Ok(Some((
            StaticCredentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: find("aws_session_token"),
            },
            format!("{} [{}]", file.display(), profile),
        ))),
        _ => Err(ArtifactError::BadCredentialsFile {
            file: file.display().to_string(),
            problem: format!(
                "profile '{profile}' lacks aws_access_key_id or aws_secret_access_key"
            ),
        }),
    }
}

fn credentials_file_and_profile(
    env: &impl Fn(&str) -> Option<String>,
) -> (Option<PathBuf>, String, bool) {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    let file = get("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| get("HOME").map(|h| PathBuf::from(h).join(".aws").join("credentials")));
    let explicit = get("AWS_PROFILE");
    let profile = explicit.clone().unwrap_or_else(|| "default".to_string());
    (file, profile, explicit.is_some())
}

/// The `key = value` pairs of `[name]` in an INI file (the credentials file
/// format: `#`/`;` comments, keys case-insensitive).
fn ini_section(text: &str, name: &str) -> Option<Vec<(String, String)>> {
    let mut found = None;
    let mut current: Option<&str> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(rest.trim());
            if current == Some(name) && found.is_none() {
                found = Some(Vec::new());
            }
            continue;
        }
        if current == Some(name) {
            if let (Some(pairs), Some((k, v))) = (found.as_mut(), line.split_once('=')) {
                pairs.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    found
}

/// How to reach and sign requests for an S3-compatible endpoint.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// `http://HOST:PORT` (optionally with a path prefix); path-style addressing.
    pub endpoint: String,
    /// SigV4 region, e.g. `us-east-1`.
    pub region: String,
    pub credentials: CredentialsSource,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Longest wait for response headers, and for each chunk of a body.
    pub idle_timeout: Duration,
}

impl S3Config {
    /// Endpoint as given; region from `AWS_REGION` / `AWS_DEFAULT_REGION`
    /// (else `us-east-1`); credentials from the environment.
    pub fn from_env(endpoint: impl Into<String>) -> Self {
        let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| "us-east-1".to_string());
        S3Config {
            endpoint: endpoint.into(),
            region,
            credentials: CredentialsSource::Environment,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// An [`ObjectSource`] backed by an S3-compatible endpoint. Also has the few
/// write calls (create bucket, versioning, put object) tests and tooling need.
#[derive(Clone)]
pub struct S3Source {
    endpoint: String,
    scheme_authority: String,
    authority: String,
    base_path: String,
    config: S3Config,
    http: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for S3Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Source")
            .field("endpoint", &self.endpoint)
            .field("region", &self.config.region)
            .finish()
    }
}

struct S3ErrorBody {
    code: String,
    message: String,
}

impl S3Source {
    pub fn new(config: S3Config) -> Result<Self, ArtifactError> {
        let endpoint = config.endpoint.trim_end_matches('/').to_string();
        let uri: http::Uri = endpoint.parse().map_err(|e| {
            ArtifactError::InvalidConfig(format!("S3 endpoint '{endpoint}' is not a URL: {e}"))
        })?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_owned(),
            _ => {
                return Err(ArtifactError::InvalidConfig(format!(
                    "S3 endpoint '{endpoint}' must look like http[s]://HOST[:PORT]"
                )))
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| {
                ArtifactError::InvalidConfig(format!("S3 endpoint '{endpoint}' has no host"))
            })?
            .to_string();
        let base_path = uri.path().trim_end_matches('/').to_string();
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = Client::builder(TokioExecutor::new()).build(https);
        Ok(S3Source {
            scheme_authority: format!("{scheme}://{authority}"),
            authority,
            base_path,
            endpoint,
            config,
            http,
        })
    }

    /// Shorthand for `S3Source::new(S3Config::from_env(endpoint))`.
    pub fn from_env(endpoint: impl Into<String>) -> Result<Self, ArtifactError> {
        S3Source::new(S3Config::from_env(endpoint))
    }

    /// `PUT /bucket` (CreateBucket). A bucket that already exists and is ours
    /// is not an error.
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), ArtifactError> {
        let url = format!("s3://{bucket}");
        let body = if self.config.region == "us-east-1" {
            Bytes::new()
        } else {
            Bytes::from(format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.config.region
            ))
        };
        let resp = self
            .send(Method::PUT, bucket, None, &[], &[], body, &url)
            .await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let err = self.read_error(resp).await;
        if err.code == "BucketAlreadyOwnedByYou" {
            return Ok(());
        }
        Err(self.map_error(status, err, bucket, &url, None))
    }

    /// `PUT /bucket?versioning` (PutBucketVersioning).
    pub async fn put_bucket_versioning(
        &self,
        bucket: &str,
        enabled: bool,
    ) -> Result<(), ArtifactError> {
        let url = format!("s3://{bucket}");
        let body = Bytes::from(format!(
            "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Status>{}</Status></VersioningConfiguration>",
            if enabled { "Enabled" } else { "Suspended" }
        ));
        let resp = self
            .send(
                Method::PUT,
                bucket,
                None,
                &[("versioning", "")],
                &[],
                body,
                &url,
            )
            .await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let err = self.read_error(resp).await;
        Err(self.map_error(status, err, bucket, &url, None))
    }

    /// `PUT /bucket/key` (PutObject) from memory; returns the new ETag and
    /// version id (when the bucket is versioned).
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
    ) -> Result<ObjectMeta, ArtifactError> {
        let url = format!("s3://{bucket}/{key}");
        let resp = self
            .send(Method::PUT, bucket, Some(key), &[], &[], body, &url)
            .await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(object_meta(resp.headers()));
        }
        let err = self.read_error(resp).await;
        Err(self.map_error(status, err, bucket, &url, None))
    }

    fn credentials(&self, url: &str) -> Result<Option<StaticCredentials>, ArtifactError> {
        match &self.config.credentials {
            CredentialsSource::Anonymous => Ok(None),
            CredentialsSource::Static(c) => Ok(Some(c.clone())),
            CredentialsSource::Environment => {
                match resolve_credentials_with(|k| std::env::var(k).ok())? {
                    Some((c, origin)) => {
                        tracing::trace!(%origin, "S3 credentials");
                        Ok(Some(c))
                    }
                    None => {
                        let (file, profile, _) =
                            credentials_file_and_profile(&|k: &str| std::env::var(k).ok());
                        Err(ArtifactError::NoCredentials {
                            url: url.to_string(),
                            file: file
                                .map(|f| f.display().to_string())
                                .unwrap_or_else(|| "~/.aws/credentials".to_string()),
                            profile,
                        })
                    }
                }
            }
        }
    }

    /// Build, sign and send one request; connection failures become
    /// [`ArtifactError::EndpointUnreachable`].
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        method: Method,
        bucket: &str,
        key: Option<&str>,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Bytes,
        url: &str,
    ) -> Result<http::Response<hyper::body::Incoming>, ArtifactError> {
        let mut path = format!("{}/{}", self.base_path, bucket);
        if let Some(key) = key {
            path.push('/');
            path.push_str(&utf8_percent_encode(key, KEY_PATH).to_string());
        }
        let mut query: Vec<(&str, &str)> = query.to_vec();
        query.sort();
        let query_string = query
            .iter()
            .map(|(k, v)| {
                // Sub-resources such as `?versioning` have no value.
                if v.is_empty() {
                    k.to_string()
                } else {
                    format!(
                        "{}={}",
                        utf8_percent_encode(k, QUERY_VALUE),
                        utf8_percent_encode(v, QUERY_VALUE)
                    )
                }
            })
            .collect::<Vec<_>>()
            .join("&");
        let path_and_query = if query_string.is_empty() {
            path
        } else {
            format!("{path}?{query_string}")
        };
        let full_uri = format!("{}{}", self.scheme_authority, path_and_query);

        let mut builder = Request::builder()
            .method(method.clone())
            .uri(&full_uri)
            .header(http::header::HOST, &self.authority)
            .header(http::header::USER_AGENT, "hangar-artifacts/0.1");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        if let Some(creds) = self.credentials(url)? {
            for (name, value) in self.sign(&method, &full_uri, &creds, &body)? {
                builder = builder.header(name, value);
            }
        }
        let request = builder.body(Full::new(body)).map_err(|e| {
            ArtifactError::InvalidConfig(format!("cannot build a request for {url}: {e}"))
        })?;

        let unreachable = |detail: String| ArtifactError::EndpointUnreachable {
            endpoint: self.endpoint.clone(),
            url: url.to_string(),
            detail,
        };
        match tokio::time::timeout(self.config.idle_timeout, self.http.request(request)).await {
            Err(_) => Err(unreachable(format!(
                "no response within {} s",
                self.config.idle_timeout.as_secs()
            ))),
            Ok(Err(e)) => {
                if e.is_connect() {
                    Err(unreachable(describe_connect_error(&e)))
                } else {
                    Err(ArtifactError::Transfer {
                        url: url.to_string(),
                        endpoint: self.endpoint.clone(),
                        detail: error_chain(&e),
                    })
                }
            }
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    fn sign(
        &self,
        method: &Method,
        uri: &str,
        creds: &StaticCredentials,
        body: &[u8],
    ) -> Result<Vec<(&'static str, String)>, ArtifactError> {
        let identity: Identity = Credentials::new(
            &creds.access_key_id,
            &creds.secret_access_key,
            creds.session_token.clone(),
            None,
            "hangar-artifacts",
        )
        .into();
        // S3's SigV4 dialect: the path is encoded once (not twice as for other
        // services), not normalised, and the payload hash travels in
        // x-amz-content-sha256.
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.config.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| ArtifactError::InvalidConfig(format!("SigV4 parameters: {e}")))?
            .into();
        let headers = [("host", self.authority.as_str())];
        let signable = SignableRequest::new(
            method.as_str(),
            uri,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| ArtifactError::InvalidConfig(format!("cannot sign {uri}: {e}")))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| ArtifactError::InvalidConfig(format!("cannot sign {uri}: {e}")))?
            .into_parts();
        let (signed, _query) = instructions.into_parts();
        Ok(signed
            .into_iter()
            .map(|h| (h.name(), h.value().to_string()))
            .collect())
    }

    /// Read (at most 64 KiB of) an error body and pick out `<Code>` and `<Message>`.
    async fn read_error(&self, resp: http::Response<hyper::body::Incoming>) -> S3ErrorBody {
        let status = resp.status();
        let limited = http_body_util::Limited::new(resp.into_body(), 64 * 1024);
        let text = match tokio::time::timeout(self.config.idle_timeout, limited.collect()).await {
            Ok(Ok(c)) => String::from_utf8_lossy(&c.to_bytes()).into_owned(),
            _ => String::new(),
        };
        let code = xml_element(&text, "Code").unwrap_or_else(|| {
            // HEAD-style and some proxies' errors have no body.
            match status {
                StatusCode::NOT_FOUND => "NotFound".to_string(),
                StatusCode::FORBIDDEN => "AccessDenied".to_string(),
                s => s.canonical_reason().unwrap_or("Error").replace(' ', ""),
            }
        });
        let message = xml_element(&text, "Message")
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_string());
        S3ErrorBody { code, message }
    }

    fn map_error(
        &self,
        status: StatusCode,
        err: S3ErrorBody,
        bucket: &str,
        url: &str,
        version_id: Option<&str>,
    ) -> ArtifactError {
        let endpoint = self.endpoint.clone();
        let url = url.to_string();
        match err.code.as_str() {
            "NoSuchBucket" => ArtifactError::BucketNotFound {
                bucket: bucket.to_string(),
                url,
                endpoint,
            },
            "NoSuchVersion" => ArtifactError::VersionNotFound {
                url,
                version_id: version_id.unwrap_or_default().to_string(),
                endpoint,
            },
            // S3 answers a malformed version id with 400 InvalidArgument.
            "InvalidArgument"
                if version_id.is_some() && err.message.to_ascii_lowercase().contains("version") =>
            {
                ArtifactError::VersionNotFound {
                    url,
                    version_id: version_id.unwrap_or_default().to_string(),
                    endpoint,
                }
            }
            "NoSuchKey" | "NotFound" => ArtifactError::ObjectNotFound { url, endpoint },
            _ if status == StatusCode::FORBIDDEN => ArtifactError::AccessDenied {
                url,
                endpoint,
                code: err.code,
                message: err.message,
            },
            _ => ArtifactError::S3 {
                url,
                endpoint,
                status: status.as_u16(),
                code: err.code,
                message: err.message,
            },
        }
    }
}

#[async_trait]
impl ObjectSource for S3Source {
    fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(url = %request.url(), endpoint = %self.endpoint))]
    async fn fetch(
        &self,
        request: &ObjectRequest<'_>,
        sink: &mut Sink,
    ) -> Result<FetchOutcome, ArtifactError> {
        let url = request.url();
        let mut query = Vec::new();
        if let Some(v) = request.version_id {
            query.push(("versionId", v));
        }
        let mut headers = Vec::new();
        if let Some(etag) = request.if_none_match {
            headers.push(("if-none-match", etag));
        }
        let resp = self
            .send(
                Method::GET,
                request.bucket,
                Some(request.key),
                &query,
                &headers,
                Bytes::new(),
                &url,
            )
            .await?;
        let status = resp.status();
        if status == StatusCode::NOT_MODIFIED {
            tracing::debug!("not modified");
            return Ok(FetchOutcome::NotModified);
        }
        if status != StatusCode::OK {
            let err = self.read_error(resp).await;
            return Err(self.map_error(status, err, request.bucket, &url, request.version_id));
        }
        let meta = object_meta(resp.headers());
        let declared = resp
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(len) = declared {
            sink.check_declared_len(len)?;
        }
        let transfer = |detail: String| ArtifactError::Transfer {
            url: url.clone(),
            endpoint: self.endpoint.clone(),
            detail,
        };
        let mut body = resp.into_body();
        loop {
            let frame = match tokio::time::timeout(self.config.idle_timeout, body.frame()).await {
                Err(_) => {
                    return Err(transfer(format!(
                        "no data for {} s after {} bytes",
                        self.config.idle_timeout.as_secs(),
                        sink.written()
                    )))
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(transfer(error_chain(&e))),
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                sink.write(&data).await?;
            }
        }
        if let Some(len) = declared {
            if sink.written() != len {
                return Err(transfer(format!(
                    "the body ended after {} of {len} bytes",
                    sink.written()
                )));
            }
        }
        tracing::debug!(bytes = sink.written(), etag = ?meta.etag, "fetched");
        Ok(FetchOutcome::Fetched(meta))
    }
}

fn object_meta(headers: &http::HeaderMap) -> ObjectMeta {
    let text = |v: &HeaderValue| v.to_str().ok().map(str::to_string);
    ObjectMeta {
        etag: headers.get(http::header::ETAG).and_then(text),
        version_id: headers
            .get("x-amz-version-id")
            .and_then(text)
            .filter(|v| v != "null"),
    }
}

/// The text of the first `<name>…</name>` (S3 error bodies are flat and small;
/// no XML parser needed). Undoes the five predefined entities.
fn xml_element(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&close)?;
    Some(
        text[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

fn describe_connect_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut cur = e.source();
    while let Some(s) = cur {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                std::io::ErrorKind::TimedOut => "connect timed out".to_string(),
                _ => io.to_string(),
            };
        }
        cur = s.source();
    }
    error_chain(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn credentials_from_env_vars_win() {
        let (c, origin) = resolve_credentials_with(env(&[
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "tok"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.access_key_id, "AKIDENV");
        assert_eq!(c.session_token.as_deref(), Some("tok"));
        assert_eq!(origin, "environment variables");
    }

    #[test]
    fn credentials_from_shared_file_and_profile() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            "# comment\n[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key=s1\n\n\
             [dev]\nAWS_ACCESS_KEY_ID = AKIDDEV\naws_secret_access_key = s2\naws_session_token = t2\n\
             [broken]\naws_access_key_id = X\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let (c, _) = resolve_credentials_with(env(&[("AWS_SHARED_CREDENTIALS_FILE", f)]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token),
            ("AKIDDEF", None)
        );
        let (c, _) = resolve_credentials_with(env(&[
            ("AWS_SHARED_CREDENTIALS_FILE", f),
            ("AWS_PROFILE", "dev"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.access_key_id, "AKIDDEV");
        assert_eq!(c.secret_access_key, "s2");
        assert_eq!(c.session_token.as_deref(), Some("t2"));
        // A half-set env pair falls through to the file, as the CLI does.
        let (c, _) = resolve_credentials_with(env(&[
            ("AWS_SHARED_CREDENTIALS_FILE", f),
            ("AWS_ACCESS_KEY_ID", "only-id"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.access_key_id, "AKIDDEF");
        let err = resolve_credentials_with(env(&[
            ("AWS_SHARED_CREDENTIALS_FILE", f),
            ("AWS_PROFILE", "nope"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("profile 'nope'"), "{err}");
        let err = resolve_credentials_with(env(&[
            ("AWS_SHARED_CREDENTIALS_FILE", f),
            ("AWS_PROFILE", "broken"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("lacks"), "{err}");
    }

    #[test]
    fn credentials_default_file_under_home() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/credentials"),
            "[default]\naws_access_key_id=AKIDHOME\naws_secret_access_key=x\n",
        )
        .unwrap();
        let h = home.path().to_str().unwrap();
        let (c, _) = resolve_credentials_with(env(&[("HOME", h)]))
            .unwrap()
            .unwrap();
        assert_eq!(c.access_key_id, "AKIDHOME");
        assert!(resolve_credentials_with(env(&[("HOME", "/nonexistent")]))
            .unwrap()
            .is_none());
    }

    #[test]
    fn xml_error_fields() {
        let body = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code>\
                    <Message>The key &amp; more</Message></Error>";
        assert_eq!(xml_element(body, "Code").as_deref(), Some("NoSuchKey"));
        assert_eq!(
            xml_element(body, "Message").as_deref(),
            Some("The key & more")
        );
        assert_eq!(xml_element(body, "Nope"), None);
    }

    #[test]
    fn accepts_http_and_https_refuses_garbage_endpoints() {
        let s3 = S3Source::from_env("https://s3.us-west-2.amazonaws.com").unwrap();
        assert_eq!(s3.scheme_authority, "https://s3.us-west-2.amazonaws.com");
        assert!(S3Source::from_env("not a url").is_err());
        assert!(S3Source::from_env("ftp://h/").is_err());
        assert!(S3Source::from_env("http://127.0.0.1:9000/").is_ok());
    }

    #[test]
    fn key_encoding_keeps_slashes() {
        assert_eq!(
            utf8_percent_encode("a b/c+d/é.zip", KEY_PATH).to_string(),
            "a%20b/c%2Bd/%C3%A9.zip"
        );
    }
}
