//! One HTTP/1.1 keep-alive connection that sends SigV4-signed requests the way
//! botocore does.
//!
//! What botocore 1.44 puts on the wire for `bedrock-agentcore-control` (checked
//! with a `before-send` hook):
//! - requests with a JSON body (Create, Update): `Content-Type: application/json`,
//!   `SignedHeaders=content-type;host;x-amz-date`;
//! - requests without one (Get, List, Delete): no `Content-Type`,
//!   `SignedHeaders=host;x-amz-date`; List (POST) and Delete send `Content-Length: 0`;
//! - the payload hash is the SHA-256 of the body, with no `x-amz-content-sha256`
//!   header; `User-Agent`, `amz-sdk-invocation-id` and `amz-sdk-request` are
//!   sent unsigned.
//!
//! If the server answers `Connection: close` (moto_server's Werkzeug does, on
//! every response) or drops the connection, the next request opens a new one,
//! as urllib3 would; that connect time is part of the request's latency and
//! the reconnects are counted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const USER_AGENT: &str = "hangar-loadgen/0.1 (botocore-compatible SigV4)";

/// Where to send requests and how to sign them; shared by all connections.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// Value of the Host header (signed), e.g. `127.0.0.1:8080`.
    pub host: String,
    pub region: String,
    pub service: String,
    pub identity: Identity,
}

impl Target {
    pub fn new(
        endpoint: &str,
        host_header: Option<&str>,
        region: &str,
        service: &str,
        access_key: &str,
        secret_key: &str,
    ) -> Result<Self> {
        let uri: http::Uri = endpoint.parse().context("parsing --endpoint")?;
        if uri.scheme_str() != Some("http") {
            return Err(anyhow!("--endpoint must be http://HOST:PORT (no TLS)"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow!("--endpoint has no host"))?
            .as_str()
            .to_string();
        let port = uri.port_u16().unwrap_or(80);
        let host = uri.host().unwrap_or_default();
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .context("resolving --endpoint")?
            .next()
            .ok_or_else(|| anyhow!("--endpoint resolves to no address"))?;
        if !addr.ip().is_loopback() {
            return Err(anyhow!(
                "refusing to load a non-loopback address ({addr}): benchmarks run on this machine only"
            ));
        }
        let identity: Identity =
            Credentials::new(access_key, secret_key, None, None, "hangar-loadgen").into();
        Ok(Self {
            addr,
            host: host_header.map(str::to_string).unwrap_or(authority),
            region: region.to_string(),
            service: service.to_string(),
            identity,
        })
    }

    /// The headers botocore would add for this request: Host, Content-Type
    /// (only with a body), X-Amz-Date and Authorization.
    pub fn sign(
        &self,
        method: &Method,
        path_and_query: &str,
        body: Option<&[u8]>,
        time: SystemTime,
    ) -> Result<Vec<(&'static str, String)>> {
        let uri = format!("http://{}{}", self.host, path_and_query);
        let mut headers: Vec<(&str, &str)> = vec![("host", self.host.as_str())];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(&self.service)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| anyhow!("signing params: {e}"))?
            .into();
        let signable = SignableRequest::new(
            method.as_str(),
            uri,
            headers.iter().copied(),
            SignableBody::Bytes(body.unwrap_or_default()),
        )
        .map_err(|e| anyhow!("signable request: {e}"))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| anyhow!("signing: {e}"))?
            .into_parts();
        let (signed, _query) = instructions.into_parts();
        let mut out: Vec<(&'static str, String)> = Vec::with_capacity(4);
        out.push(("host", self.host.clone()));
        if body.is_some() {
            out.push(("content-type", "application/json".to_string()));
        }
        for h in signed {
            out.push((h.name(), h.value().to_string()));
        }
        Ok(out)
    }
}

pub struct Response {
    pub status: u16,
    pub body: Bytes,
}

/// One client's connection; reconnects when the server closes it.
pub struct Conn {
    target: Target,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// Connections opened after the first one.
    pub reconnects: u64,
    opened: u64,
    sign_cache: Option<SignCache>,
}

/// Signed headers of body-less GET/POST requests, valid within one
/// `X-Amz-Date` second. botocore would produce byte-identical headers for the
/// same request in the same second, so reusing them changes nothing on the
/// wire; it only keeps aws-sigv4 (about 10 µs a request) off the load
/// generator's hot path for the many repeated Get and List calls.
#[derive(Default)]
struct SignCache {
    second: u64,
    entries: HashMap<(Method, String), SignedHeaders>,
}

type SignedHeaders = Vec<(HeaderName, HeaderValue)>;

impl Conn {
    pub fn new(target: Target, sign_cache: bool) -> Self {
        Self {
            target,
            sender: None,
            reconnects: 0,
            opened: 0,
            sign_cache: sign_cache.then(SignCache::default),
        }
    }

    fn signed_headers(
        &mut self,
        method: &Method,
        path_and_query: &str,
        body: Option<&[u8]>,
    ) -> Result<SignedHeaders> {
        let now = SystemTime::now();
        let sign = |t: &Target| -> Result<SignedHeaders> {
            t.sign(method, path_and_query, body, now)?
                .into_iter()
                .map(|(k, v)| Ok((HeaderName::from_static(k), HeaderValue::try_from(v)?)))
                .collect()
        };
        let cacheable = body.is_none() && (method == Method::GET || method == Method::POST);
        let Some(cache) = self.sign_cache.as_mut().filter(|_| cacheable) else {
            return sign(&self.target);
        };
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if cache.second != second {
            cache.entries.clear();
            cache.second = second;
        }
        let key = (method.clone(), path_and_query.to_string());
        if let Some(h) = cache.entries.get(&key) {
            return Ok(h.clone());
        }
        let h = sign(&self.target)?;
        cache.entries.insert(key, h.clone());
        Ok(h)
    }

    async fn connect(&mut self) -> Result<SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(self.target.addr)
            .await
            .with_context(|| format!("connecting to {}", self.target.addr))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        if self.opened > 0 {
            self.reconnects += 1;
        }
        self.opened += 1;
        Ok(sender)
    }

    async fn ready_sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        if let Some(s) = self.sender.as_mut() {
            // A kept-alive connection the server has since closed: reconnect,
            // as urllib3 does for a stale pooled connection.
            if s.is_closed() || s.ready().await.is_err() {
                self.sender = None;
            }
        }
        if self.sender.is_none() {
            let mut s = self.connect().await?;
            s.ready().await?;
            self.sender = Some(s);
        }
        Ok(self.sender.as_mut().expect("set above"))
    }

    /// Send one signed request and read the whole response.
    pub async fn call(
        &mut self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> Result<Response> {
        let signed = self.signed_headers(&method, path_and_query, body.as_deref())?;
        let needs_length = body.is_some() || method == Method::POST || method == Method::DELETE;
        let body_len = body.as_ref().map_or(0, |b| b.len());
        let mut req = Request::builder()
            .method(method)
            .uri(path_and_query)
            .body(Full::new(body.unwrap_or_default()))?;
        let h = req.headers_mut();
        for (name, value) in signed {
            h.insert(name, value);
        }
        h.insert("user-agent", HeaderValue::from_static(USER_AGENT));
        h.insert(
            "amz-sdk-invocation-id",
            HeaderValue::try_from(uuid::Uuid::new_v4().to_string())?,
        );
        h.insert(
            "amz-sdk-request",
            HeaderValue::from_static("attempt=1; max=1"),
        );
        if needs_length {
            h.insert("content-length", HeaderValue::from(body_len));
        }

        let sender = self.ready_sender().await?;
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(e.into());
            }
        };
        let status = resp.status().as_u16();
        let close = resp
            .headers()
            .get(http::header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
            || resp.version() == http::Version::HTTP_10;
        let body = match resp.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                self.sender = None;
                return Err(e.into());
            }
        };
        if close {
            self.sender = None;
        }
        Ok(Response { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Signatures computed with botocore 1.44.5's `SigV4Auth` (service
    /// `bedrock-agentcore`, us-east-1, keys testing/testing, host
    /// `127.0.0.1:5055`, 2026-11-22T01:14:01Z).
    #[test]
    fn signs_like_botocore() {
        let t = Target::new(
            "http://127.0.0.1:5055",
            None,
            "us-east-1",
            "bedrock-agentcore",
            "testing",
            "testing",
        )
        .unwrap();
        let time = UNIX_EPOCH + Duration::from_secs(1_795_310_041);
        let auth = |m: Method, pq: &str, body: Option<&[u8]>| {
            let h = t.sign(&m, pq, body, time).unwrap();
            assert!(h
                .iter()
                .any(|(k, v)| *k == "x-amz-date" && v == "20261122T011401Z"));
            h.into_iter()
                .find(|(k, _)| *k == "authorization")
                .unwrap()
                .1
        };
        let create = br#"{"agentRuntimeName": "bench_h1"}"#;
        assert_eq!(
            auth(Method::PUT, "/runtimes/", Some(create)),
            "AWS4-HMAC-SHA256 Credential=testing/20261122/us-east-1/bedrock-agentcore/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=1ee77573119a1d152039f618a401a19d91a15eb8342dc89db7f26b562ff5b471"
        );
        assert_eq!(
            auth(Method::GET, "/runtimes/abc-123/", None),
            "AWS4-HMAC-SHA256 Credential=testing/20261122/us-east-1/bedrock-agentcore/aws4_request, SignedHeaders=host;x-amz-date, Signature=1e82d7b2dd5a96589dd41f70a6b066e43e1e4e0cf341aeffaee7239af37506d8"
        );
        assert_eq!(
            auth(Method::POST, "/runtimes/?maxResults=20", None),
            "AWS4-HMAC-SHA256 Credential=testing/20261122/us-east-1/bedrock-agentcore/aws4_request, SignedHeaders=host;x-amz-date, Signature=3fa9009897277428e1271370e28c5b9286a8c9275dd9286e99ed91030d3068f3"
        );
        assert_eq!(
            auth(Method::DELETE, "/runtimes/abc-123/?clientToken=tok-1", None),
            "AWS4-HMAC-SHA256 Credential=testing/20261122/us-east-1/bedrock-agentcore/aws4_request, SignedHeaders=host;x-amz-date, Signature=d7e1a9a235c2c6f917ea4503024f152200513d69c38cd47b757474de56c42944"
        );
    }
}
