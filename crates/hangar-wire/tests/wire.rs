//! The wire layer end to end: HTTP requests through `hangar_wire::router` into the real
//! control plane (in-memory SQLite store), checked at the HTTP level as botocore sees it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use axum::body::Body;
use axum::Router;
use hangar_domain::{AcceptingProvisioner, ControlPlane, Partition};
use hangar_store::SqliteStore;
use hangar_wire::{router, AuthMode, Credentials, WireState, MAX_JSON_BODY_BYTES};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const HOST: &str = "localhost:4747";
const AKID: &str = "AKIDHANGARTEST";
const SECRET: &str = "hangar/test+secret";

async fn app(auth: AuthMode) -> Router {
    let store = SqliteStore::open_in_memory().expect("in-memory store");
    let control = ControlPlane::new(
        Arc::new(store),
        Partition {
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
        },
        Arc::new(AcceptingProvisioner),
    );
    control.start().await.expect("start");
    router(WireState::new(control, auth).with_version("9.9.9-test"))
}

fn strict() -> AuthMode {
    AuthMode::Strict(Credentials::from_pairs([(AKID, SECRET)]))
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Asserts an AWS error response: status, `x-amzn-ErrorType`, JSON body with a message.
    fn assert_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            (self.status.as_u16(), self.header("x-amzn-errortype")),
            (status, Some(code)),
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
        let body = self.json();
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        body
    }
}

/// Sends a request and checks what every response must have: a uuid v4 `x-amzn-RequestId`.
async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    let id = headers
        .get("x-amzn-requestid")
        .unwrap_or_else(|| panic!("no x-amzn-RequestId on a {status} response"));
    let id = uuid::Uuid::parse_str(id.to_str().unwrap()).expect("request id is a uuid");
    assert_eq!(id.get_version_num(), 4);
    Reply {
        status,
        headers,
        body,
    }
}

fn amz_date(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A request with a well-formed SigV4 header whose signature is garbage: fine in permissive
/// mode, as an SDK with made-up credentials would send.
fn fake_signed(method: &str, uri: &str, body: Option<&str>) -> Request<Body> {
    let date = amz_date(SystemTime::now());
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", HOST)
        .header("x-amz-date", &date)
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDANYTHING/{}/us-east-1/bedrock-agentcore/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123abcd",
                &date[..8]
            ),
        );
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    b.body(body.map_or_else(Body::empty, |s| Body::from(s.to_string())))
        .unwrap()
}

/// A request signed by the AWS SDK for Rust's signer.
fn sdk_signed(
    method: &str,
    uri: &str,
    body: Option<&str>,
    secret: &str,
    time: SystemTime,
    presign: bool,
) -> Request<Body> {
    let identity = aws_credential_types::Credentials::new(AKID, secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    if presign {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(60));
    }
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("bedrock-agentcore")
        .time(time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let url = format!("http://{HOST}{uri}");
    let mut headers = vec![("host", HOST)];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    let payload = body.unwrap_or("").as_bytes();
    let signable = SignableRequest::new(
        method,
        url.as_str(),
        headers.iter().copied(),
        SignableBody::Bytes(payload),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in &headers {
        b = b.header(*k, *v);
    }
    let mut request = b.body(Body::from(payload.to_vec())).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    request
}

fn runtime_body(name: &str) -> String {
    json!({
        "agentRuntimeName": name,
        "agentRuntimeArtifact": {"containerConfiguration": {
            "containerUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent:v1"}},
        "roleArn": "arn:aws:iam::123456789012:role/agent",
        "networkConfiguration": {"networkMode": "PUBLIC"},
    })
    .to_string()
}

async fn create_runtime(app: &Router, name: &str) -> Value {
    let r = send(
        app,
        fake_signed("PUT", "/runtimes/", Some(&runtime_body(name))),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json()
}

fn encode_label(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn health_needs_no_signature() {
    let app = app(AuthMode::Permissive).await;
    let r = send(
        &app,
        Request::get("/_hangar/health").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"status": "ok", "version": "9.9.9-test"}));

    // Same in strict mode.
    let app = self::app(strict()).await;
    let r = send(
        &app,
        Request::get("/_hangar/health").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    // Other methods and paths under /_hangar/ are unknown, still without a signature.
    let r = send(
        &app,
        Request::post("/_hangar/health")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    r.assert_error(404, "UnknownOperationException");
    let r = send(
        &app,
        Request::get("/_hangar/nope").body(Body::empty()).unwrap(),
    )
    .await;
    r.assert_error(404, "UnknownOperationException");
}

#[tokio::test]
async fn request_ids_are_fresh_per_request() {
    let app = app(AuthMode::Permissive).await;
    let a = send(&app, fake_signed("POST", "/runtimes/", None)).await;
    let b = send(&app, fake_signed("POST", "/runtimes/", None)).await;
    assert_ne!(a.header("x-amzn-requestid"), b.header("x-amzn-requestid"));
}

#[tokio::test]
async fn unsigned_requests_are_refused() {
    let app = app(AuthMode::Permissive).await;
    let r = send(
        &app,
        Request::post("/runtimes/").body(Body::empty()).unwrap(),
    )
    .await;
    let body = r.assert_error(403, "MissingAuthenticationTokenException");
    assert_eq!(body, json!({"message": "Missing Authentication Token"}));
    // Also on paths that do not exist: an unsigned caller learns nothing about routes.
    let r = send(
        &app,
        Request::get("/nothing/here").body(Body::empty()).unwrap(),
    )
    .await;
    r.assert_error(403, "MissingAuthenticationTokenException");
}

#[tokio::test]
async fn malformed_signatures_are_refused_even_when_permissive() {
    let app = app(AuthMode::Permissive).await;
    let mut request = fake_signed("POST", "/runtimes/", None);
    request.headers_mut().insert(
        "authorization",
        "AWS4-HMAC-SHA256 Credential=AK/20200101/us-east-1/bedrock-agentcore, SignedHeaders=host, Signature=00"
            .parse()
            .unwrap(),
    );
    let body = send(&app, request)
        .await
        .assert_error(403, "IncompleteSignatureException");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("5 slash-delimited elements"));

    let mut request = fake_signed("POST", "/runtimes/", None);
    request.headers_mut().insert(
        "authorization",
        "AWS4-HMAC-SHA256 Credential=AK/20200101/us-east-1/bedrock-agentcore-control/aws4_request, SignedHeaders=host, Signature=00"
            .parse()
            .unwrap(),
    );
    let body = send(&app, request)
        .await
        .assert_error(403, "InvalidSignatureException");
    assert_eq!(
        body["message"],
        "Credential should be scoped to correct service: 'bedrock-agentcore'."
    );

    let mut request = fake_signed("POST", "/runtimes/", None);
    request
        .headers_mut()
        .insert("authorization", "Bearer abc.def.ghi".parse().unwrap());
    send(&app, request)
        .await
        .assert_error(403, "IncompleteSignatureException");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_unknown_operations() {
    let app = app(AuthMode::Permissive).await;
    let body = send(&app, fake_signed("GET", "/no/such/thing", None))
        .await
        .assert_error(404, "UnknownOperationException");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("GET /no/such/thing"),
        "{body}"
    );
    // A known path with a method it does not have.
    let body = send(&app, fake_signed("PATCH", "/runtimes/", None))
        .await
        .assert_error(404, "UnknownOperationException");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("PATCH /runtimes/"),
        "{body}"
    );
    // Agent-session operations on a Hangar that runs no sessions (this app has none).
    let arn = encode_label("arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/a-1234567890");
    let body = send(
        &app,
        fake_signed(
            "GET",
            &format!("/runtimes/{arn}/invocations/.well-known/agent-card.json"),
            None,
        ),
    )
    .await
    .assert_error(404, "UnknownOperationException");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("does not run agent sessions"),
        "{body}"
    );
}

#[tokio::test]
async fn runtime_lifecycle_over_the_wire() {
    let app = app(AuthMode::Permissive).await;
    let created = create_runtime(&app, "wire_agent").await;
    assert_eq!(created["status"], "CREATING");
    assert_eq!(created["agentRuntimeVersion"], "1");
    let id = created["agentRuntimeId"].as_str().unwrap().to_string();

    // Trailing slash optional; `version` query binds to agentRuntimeVersion.
    for uri in [
        format!("/runtimes/{id}/"),
        format!("/runtimes/{id}"),
        format!("/runtimes/{id}/?version=1"),
    ] {
        let r = send(&app, fake_signed("GET", &uri, None)).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{uri}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let body = r.json();
        assert_eq!(body["agentRuntimeId"], id);
        assert_eq!(body["agentRuntimeName"], "wire_agent");
        // Timestamps are ISO-8601 strings.
        assert!(body["createdAt"].as_str().unwrap().contains('T'));
        // Absent members are omitted, never null.
        assert!(
            body.as_object().unwrap().values().all(|v| !v.is_null()),
            "{body}"
        );
    }
    let r = send(
        &app,
        fake_signed("GET", &format!("/runtimes/{id}/?version=7"), None),
    )
    .await;
    r.assert_error(404, "ResourceNotFoundException");

    // List: POST, empty body, no content type, query-string paging.
    create_runtime(&app, "wire_agent_two").await;
    let r = send(&app, fake_signed("POST", "/runtimes/?maxResults=1", None)).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = r.json();
    assert_eq!(page["agentRuntimes"].as_array().unwrap().len(), 1);
    let token = page["nextToken"]
        .as_str()
        .expect("a second page")
        .to_string();
    let uri = format!("/runtimes/?maxResults=1&nextToken={}", encode_label(&token));
    let page2 = send(&app, fake_signed("POST", &uri, None)).await.json();
    assert_eq!(page2["agentRuntimes"].as_array().unwrap().len(), 1);
    assert_ne!(
        page["agentRuntimes"][0]["agentRuntimeId"],
        page2["agentRuntimes"][0]["agentRuntimeId"]
    );

    // Same name again: the domain's conflict.
    let r = send(
        &app,
        fake_signed("PUT", "/runtimes/", Some(&runtime_body("wire_agent"))),
    )
    .await;
    r.assert_error(409, "ConflictException");

    // Delete with botocore's query clientToken.
    let r = send(
        &app,
        fake_signed(
            "DELETE",
            &format!("/runtimes/{id}/?clientToken={}", "c".repeat(40)),
            None,
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

#[tokio::test]
async fn tags_with_an_arn_in_the_path() {
    let app = app(AuthMode::Permissive).await;
    let created = create_runtime(&app, "tagged").await;
    let arn = created["agentRuntimeArn"].as_str().unwrap();
    let path = format!("/tags/{}", encode_label(arn));

    let r = send(
        &app,
        fake_signed(
            "POST",
            &path,
            Some(r#"{"tags":{"env":"dev","team":"a b","x":"y"}}"#),
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::NO_CONTENT,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(r.body.is_empty());

    let r = send(&app, fake_signed("GET", &path, None)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"tags": {"env": "dev", "team": "a b", "x": "y"}})
    );

    // Repeated query key → list member.
    let r = send(
        &app,
        fake_signed("DELETE", &format!("{path}?tagKeys=env&tagKeys=team"), None),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::NO_CONTENT,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let r = send(&app, fake_signed("GET", &path, None)).await;
    assert_eq!(r.json(), json!({"tags": {"x": "y"}}));
}

#[tokio::test]
async fn binding_errors_are_validation_exceptions() {
    let app = app(AuthMode::Permissive).await;
    let body = send(&app, fake_signed("POST", "/runtimes/?maxResults=abc", None))
        .await
        .assert_error(400, "ValidationException");
    assert_eq!(body["reason"], "CannotParse");
    assert_eq!(body["fieldList"][0]["name"], "maxResults");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("'abc' at 'maxResults'"),
        "{body}"
    );

    for bad in ["{", "[]", "\"x\"", "{\"agentRuntimeName\": }"] {
        let body = send(&app, fake_signed("PUT", "/runtimes/", Some(bad)))
            .await
            .assert_error(400, "ValidationException");
        assert_eq!(body["reason"], "CannotParse", "{bad}");
    }

    // Wrong JSON type for a body member: caught by the model's validator before the domain.
    let body = send(
        &app,
        fake_signed("PUT", "/browsers", Some(r#"{"name": 5}"#)),
    )
    .await
    .assert_error(400, "ValidationException");
    assert_eq!(body["reason"], "FieldValidationFailed", "{body}");
}

#[tokio::test]
async fn model_validation_reports_every_field() {
    let app = app(AuthMode::Permissive).await;
    let body = send(
        &app,
        fake_signed("PUT", "/runtimes/", Some(&runtime_body("not-a-valid-name"))),
    )
    .await
    .assert_error(400, "ValidationException");
    assert_eq!(body["reason"], "FieldValidationFailed");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("1 validation error detected: Value 'not-a-valid-name' at 'agentRuntimeName' failed to satisfy constraint"));
    assert_eq!(body["fieldList"][0]["name"], "agentRuntimeName");

    // Required members missing from an empty body.
    let body = send(&app, fake_signed("PUT", "/runtimes/", None))
        .await
        .assert_error(400, "ValidationException");
    assert_eq!(body["reason"], "FieldValidationFailed");
    assert!(body["fieldList"].as_array().unwrap().len() >= 2, "{body}");
}

#[tokio::test]
async fn oversize_bodies_are_refused() {
    let app = app(AuthMode::Permissive).await;
    let big = format!(r#"{{"description":"{}"}}"#, "x".repeat(MAX_JSON_BODY_BYTES));
    // With a Content-Length (refused before reading)…
    let mut request = fake_signed("PUT", "/browsers", Some(&big));
    request
        .headers_mut()
        .insert("content-length", big.len().to_string().parse().unwrap());
    let body = send(&app, request)
        .await
        .assert_error(400, "ValidationException");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains(&MAX_JSON_BODY_BYTES.to_string()));
    // …and without one (refused while reading).
    let body = send(&app, fake_signed("PUT", "/browsers", Some(&big)))
        .await
        .assert_error(400, "ValidationException");
    assert!(body["message"].as_str().unwrap().contains("exceeds"));
}

#[tokio::test]
async fn system_tools_and_not_found() {
    let app = app(AuthMode::Permissive).await;
    let r = send(&app, fake_signed("GET", "/browsers/aws.browser.v1", None)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let r = send(
        &app,
        fake_signed("GET", "/runtimes/missing-1234567890/", None),
    )
    .await;
    r.assert_error(404, "ResourceNotFoundException");
}

#[tokio::test]
async fn strict_mode_verifies_signatures() {
    let app = app(strict()).await;
    let now = SystemTime::now();
    let body = runtime_body("strict_agent");

    // Good signature: the request goes through.
    let r = send(
        &app,
        sdk_signed("PUT", "/runtimes/", Some(&body), SECRET, now, false),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let id = r.json()["agentRuntimeId"].as_str().unwrap().to_string();
    let r = send(
        &app,
        sdk_signed("POST", "/runtimes/?maxResults=5", None, SECRET, now, false),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    // Presigned URL (query-string signature), as WebSocket clients send.
    let r = send(
        &app,
        sdk_signed("GET", &format!("/runtimes/{id}/"), None, SECRET, now, true),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    // …which expires.
    let old = now - Duration::from_secs(120);
    let body = send(
        &app,
        sdk_signed("GET", &format!("/runtimes/{id}/"), None, SECRET, old, true),
    )
    .await
    .assert_error(403, "InvalidSignatureException");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("Signature expired"));

    // Wrong secret.
    let body = send(
        &app,
        sdk_signed("POST", "/runtimes/", None, "wrong", now, false),
    )
    .await
    .assert_error(403, "InvalidSignatureException");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("The request signature we calculated does not match"));

    // Tampered body.
    let mut request = sdk_signed(
        "PUT",
        "/runtimes/",
        Some(&runtime_body("a")),
        SECRET,
        now,
        false,
    );
    *request.body_mut() = Body::from(runtime_body("b"));
    send(&app, request)
        .await
        .assert_error(403, "InvalidSignatureException");

    // Clock skew.
    let body = send(
        &app,
        sdk_signed(
            "POST",
            "/runtimes/",
            None,
            SECRET,
            now - Duration::from_secs(20 * 60),
            false,
        ),
    )
    .await
    .assert_error(403, "InvalidSignatureException");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("is now earlier than"));
    let body = send(
        &app,
        sdk_signed(
            "POST",
            "/runtimes/",
            None,
            SECRET,
            now + Duration::from_secs(20 * 60),
            false,
        ),
    )
    .await
    .assert_error(403, "InvalidSignatureException");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("is now later than"));

    // Unknown access key.
    let body = send(&app, fake_signed("POST", "/runtimes/", None))
        .await
        .assert_error(403, "UnrecognizedClientException");
    assert_eq!(
        body["message"],
        "The security token included in the request is invalid."
    );

    // A signed request to an unknown path is a 404, not an auth failure.
    send(&app, sdk_signed("GET", "/nope", None, SECRET, now, false))
        .await
        .assert_error(404, "UnknownOperationException");
}
