//! Against a real S3 server (moto_server started by the tests; set
//! HANGAR_TEST_MOTO_SERVER=/path/to/moto_server, else these tests skip).

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use hangar_artifacts::{
    ArtifactError, Artifacts, CodeConfiguration, CredentialsSource, Runtime, S3Config, S3Source,
};
use serde_json::json;

macro_rules! moto_or_skip {
    () => {
        match Moto::shared() {
            Some(m) => m,
            None => return,
        }
    };
}

fn code(bucket: &str, key: &str, version: Option<&str>) -> CodeConfiguration {
    CodeConfiguration {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id: version.map(str::to_string),
        runtime: Runtime::Python311,
        entry_point: vec!["main.py".to_string()],
    }
}

fn artifacts(dir: &std::path::Path, source: S3Source) -> Arc<Artifacts> {
    Arc::new(Artifacts::new(test_config(dir), Arc::new(source)).unwrap())
}

#[tokio::test]
async fn fetches_unpacks_and_addresses_by_digest() {
    let moto = moto_or_skip!();
    let s3 = moto.source();
    let b = bucket("basic");
    s3.create_bucket(&b).await.unwrap();
    let zip = ZipBuilder::new()
        .file("main.py", b"print('hi')\n", 0o644)
        .file("bin/tool", b"#!/bin/sh\necho tool\n", 0o755)
        .file("lib/secret.py", b"x = 1\n", 0o600)
        .finish();
    s3.put_object(&b, "agents/one/deployment.zip", Bytes::from(zip.clone()))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let a = artifacts(dir.path(), moto.source());
    let prepared = a
        .prepare_code_json(&json!({
            "code": {"s3": {"bucket": b, "prefix": "agents/one/deployment.zip"}},
            "runtime": "PYTHON_3_11",
            "entryPoint": ["main.py"]
        }))
        .await
        .unwrap();

    assert_eq!(prepared.digest, sha256_hex(&zip));
    assert_eq!(
        prepared.code_dir,
        dir.path().join("cache/code").join(&prepared.digest)
    );
    assert_eq!(
        std::fs::read(prepared.code_dir.join("main.py")).unwrap(),
        b"print('hi')\n"
    );
    assert_eq!(mode(&prepared.code_dir.join("bin/tool")), 0o755);
    assert_eq!(mode(&prepared.code_dir.join("lib/secret.py")), 0o644);
    assert_eq!(mode(&prepared.code_dir.join("lib")), 0o755);
    let interp = dir.path().join("interp/PYTHON_3_11/bin/python3.11");
    assert_eq!(prepared.interpreter, interp);
    assert_eq!(
        prepared.interpreter_mounts,
        vec![dir.path().join("interp/PYTHON_3_11")]
    );
    assert_eq!(
        prepared.argv,
        vec![
            interp.to_string_lossy().into_owned(),
            "/var/task/main.py".to_string()
        ]
    );
    assert_eq!(
        prepared.env,
        vec![("PYTHONPATH".to_string(), "/var/task".to_string())]
    );
    let s = a.stats();
    assert_eq!((s.fetches, s.unpacks), (1, 1));
    // No download left behind.
    assert_eq!(
        std::fs::read_dir(dir.path().join("cache/downloads"))
            .unwrap()
            .count(),
        0
    );

    // Again: a conditional GET answers 304, nothing is downloaded or unpacked.
    let again = a
        .prepare_code(&code(&b, "agents/one/deployment.zip", None))
        .await
        .unwrap();
    assert_eq!(again, prepared);
    let s = a.stats();
    assert_eq!((s.fetches, s.not_modified, s.unpacks), (1, 1, 1));

    // A new process with the same cache: the index file avoids the download.
    drop(a);
    let a2 = artifacts(dir.path(), moto.source());
    let third = a2
        .prepare_code(&code(&b, "agents/one/deployment.zip", None))
        .await
        .unwrap();
    assert_eq!(third.digest, prepared.digest);
    assert_eq!((a2.stats().fetches, a2.stats().not_modified), (0, 1));

    // The object changes: the new zip is fetched and unpacked.
    let zip2 = hello_zip("v2");
    s3.put_object(&b, "agents/one/deployment.zip", Bytes::from(zip2.clone()))
        .await
        .unwrap();
    let fourth = a2
        .prepare_code(&code(&b, "agents/one/deployment.zip", None))
        .await
        .unwrap();
    assert_eq!(fourth.digest, sha256_hex(&zip2));
    assert_eq!((a2.stats().fetches, a2.stats().unpacks), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_fetch_and_unpack_once() {
    let moto = moto_or_skip!();
    let s3 = moto.source();
    let b = bucket("conc");
    s3.create_bucket(&b).await.unwrap();
    let zip = hello_zip("concurrent");
    s3.put_object(&b, "a.zip", Bytes::from(zip.clone()))
        .await
        .unwrap();
    s3.put_object(&b, "same-content.zip", Bytes::from(zip.clone()))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let a = artifacts(dir.path(), moto.source());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let a = a.clone();
        let c = code(&b, "a.zip", None);
        tasks.spawn(async move { a.prepare_code(&c).await.map(|p| p.digest) });
    }
    let mut digests = HashSet::new();
    while let Some(r) = tasks.join_next().await {
        digests.insert(r.unwrap().unwrap());
    }
    assert_eq!(digests, HashSet::from([sha256_hex(&zip)]));
    let s = a.stats();
    assert_eq!(s.fetches, 1, "{s:?}");
    assert_eq!(s.unpacks, 1, "{s:?}");
    // The other seven reused that result: as waiters of the single flight
    // (index hits), or, if they started after it ended, through a 304.
    assert_eq!(s.index_hits + s.not_modified, 7, "{s:?}");

    // Another key with the same bytes: fetched (it is another object) but
    // not unpacked again (same digest).
    let other = a
        .prepare_code(&code(&b, "same-content.zip", None))
        .await
        .unwrap();
    assert_eq!(other.digest, sha256_hex(&zip));
    let s = a.stats();
    assert_eq!((s.fetches, s.unpacks), (2, 1), "{s:?}");
}

#[tokio::test]
async fn version_ids_pin_the_object() {
    let moto = moto_or_skip!();
    let s3 = moto.source();
    let b = bucket("vers");
    s3.create_bucket(&b).await.unwrap();
    s3.put_bucket_versioning(&b, true).await.unwrap();
    let (z1, z2) = (hello_zip("one"), hello_zip("two"));
    let v1 = s3
        .put_object(&b, "agent.zip", Bytes::from(z1.clone()))
        .await
        .unwrap()
        .version_id
        .expect("versioned bucket returns a version id");
    let v2 = s3
        .put_object(&b, "agent.zip", Bytes::from(z2.clone()))
        .await
        .unwrap()
        .version_id
        .unwrap();
    assert_ne!(v1, v2);

    let dir = tempfile::tempdir().unwrap();
    let a = artifacts(dir.path(), moto.source());
    let p1 = a
        .prepare_code(&code(&b, "agent.zip", Some(&v1)))
        .await
        .unwrap();
    let p2 = a
        .prepare_code(&code(&b, "agent.zip", Some(&v2)))
        .await
        .unwrap();
    let latest = a.prepare_code(&code(&b, "agent.zip", None)).await.unwrap();
    assert_eq!(p1.digest, sha256_hex(&z1));
    assert_eq!(p2.digest, sha256_hex(&z2));
    assert_eq!(latest.digest, sha256_hex(&z2));
    assert_eq!(
        std::fs::read_to_string(p1.code_dir.join("main.py")).unwrap(),
        "print(\"one\")\n"
    );
    let s = a.stats();
    assert_eq!((s.fetches, s.unpacks, s.index_hits), (3, 2, 0), "{s:?}");

    // A pinned version is immutable: served from the index, no request.
    let again = a
        .prepare_code(&code(&b, "agent.zip", Some(&v1)))
        .await
        .unwrap();
    assert_eq!(again.digest, p1.digest);
    let s = a.stats();
    assert_eq!((s.fetches, s.index_hits), (3, 1), "{s:?}");

    let err = a
        .prepare_code(&code(&b, "agent.zip", Some("no-such-version-id")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ArtifactError::VersionNotFound { .. }),
        "{err:?}: {err}"
    );
    assert!(err.to_string().contains("no-such-version-id"), "{err}");
}

#[tokio::test]
async fn missing_bucket_and_key_are_named() {
    let moto = moto_or_skip!();
    let s3 = moto.source();
    let b = bucket("missing");
    s3.create_bucket(&b).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = artifacts(dir.path(), moto.source());

    let err = a
        .prepare_code(&code(&b, "nope/deployment.zip", None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ArtifactError::ObjectNotFound { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "s3://{b}/nope/deployment.zip not found at {}; upload the zip there or fix code.s3.prefix \
             (it must be the full key of the .zip)",
            moto.endpoint
        )
    );

    let nb = bucket("nobucket");
    let err = a.prepare_code(&code(&nb, "a.zip", None)).await.unwrap_err();
    assert!(
        matches!(err, ArtifactError::BucketNotFound { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "bucket '{nb}' does not exist at {}",
            moto.endpoint
        )),
        "{err}"
    );
    assert_eq!(a.stats().fetches, 0);
}

#[tokio::test]
async fn unreachable_endpoint_and_access_denied() {
    let moto = moto_or_skip!();
    let dir = tempfile::tempdir().unwrap();

    // Nothing listens on this port.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let a = artifacts(dir.path(), s3_source(&dead));
    let err = a
        .prepare_code(&code("some-bucket", "a.zip", None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ArtifactError::EndpointUnreachable { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("connection refused"), "{err}");
    assert!(err.to_string().contains(&dead), "{err}");

    // Unsigned requests for a private object: 403.
    let s3 = moto.source();
    let b = bucket("private");
    s3.create_bucket(&b).await.unwrap();
    s3.put_object(&b, "a.zip", Bytes::from(hello_zip("x")))
        .await
        .unwrap();
    let anonymous = S3Source::new(S3Config {
        credentials: CredentialsSource::Anonymous,
        ..S3Config::from_env(moto.endpoint.clone())
    })
    .unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let a = artifacts(dir2.path(), anonymous);
    let err = a.prepare_code(&code(&b, "a.zip", None)).await.unwrap_err();
    assert!(matches!(err, ArtifactError::AccessDenied { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "access denied to s3://{b}/a.zip at {}",
            moto.endpoint
        )),
        "{err}"
    );
}

#[tokio::test]
async fn not_a_zip_and_oversize() {
    let moto = moto_or_skip!();
    let s3 = moto.source();
    let b = bucket("bad");
    s3.create_bucket(&b).await.unwrap();
    s3.put_object(
        &b,
        "text.zip",
        Bytes::from_static(b"this is not a zip at all"),
    )
    .await
    .unwrap();
    s3.put_object(
        &b,
        "tarball.zip",
        Bytes::from_static(b"\x1f\x8b\x08\x00rest-of-gzip"),
    )
    .await
    .unwrap();
    let big = ZipBuilder::new()
        .stored("main.py", &vec![b'#'; 5000])
        .finish();
    s3.put_object(&b, "big.zip", Bytes::from(big.clone()))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.limits = small_limits(4000, 1_000_000, 100);
    let a = Artifacts::new(config, Arc::new(moto.source())).unwrap();

    let err = a
        .prepare_code(&code(&b, "text.zip", None))
        .await
        .unwrap_err();
    assert!(matches!(err, ArtifactError::NotAZip { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("s3://{b}/text.zip is not a zip archive")),
        "{err}"
    );
    let err = a
        .prepare_code(&code(&b, "tarball.zip", None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("gzip"), "{err}");

    let err = a
        .prepare_code(&code(&b, "big.zip", None))
        .await
        .unwrap_err();
    assert!(matches!(err, ArtifactError::TooLarge { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "s3://{b}/big.zip is 5 KiB ({} bytes), over the 3.9 KiB (4000 bytes) limit for a code zip; \
             trim the vendored dependencies or use a container image",
            big.len()
        )
    );
    // Refused from Content-Length: nothing kept on disk.
    assert_eq!(
        std::fs::read_dir(dir.path().join("cache/downloads"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("cache/code"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn s3_source_streams_large_objects() {
    // A few MiB through the sink: written in chunks, hashed on the way.
    let moto = moto_or_skip!();
    let s3 = moto.source();
    let b = bucket("large");
    s3.create_bucket(&b).await.unwrap();
    let payload: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let zip = ZipBuilder::new()
        .file("main.py", b"print(1)\n", 0o644)
        .stored("data.bin", &payload)
        .finish();
    s3.put_object(&b, "large.zip", Bytes::from(zip.clone()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = artifacts(dir.path(), moto.source());
    let p = a.prepare_code(&code(&b, "large.zip", None)).await.unwrap();
    assert_eq!(p.digest, sha256_hex(&zip));
    assert_eq!(std::fs::read(p.code_dir.join("data.bin")).unwrap(), payload);
    assert!(a.source().endpoint().starts_with("http://127.0.0.1:"));
}

/// An unauthenticated IAM query call to moto (allowed while moto's
/// INITIAL_NO_AUTH_ACTION_COUNT lasts); returns the response body.
fn iam_call(endpoint: &str, params: &str) -> String {
    use std::io::{Read, Write};
    let host = endpoint.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    // moto routes by the service in the credential scope; the signature is
    // not checked for these first calls.
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/iam/aws4_request, \
         SignedHeaders=host, Signature=00\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{params}",
        params.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{params}: {out}");
    out
}

fn xml_text(body: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = body
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in {body}"))
        + open.len();
    let end = start + body[start..].find(&format!("</{tag}>")).unwrap();
    body[start..end].to_string()
}

/// moto with authentication on: it recomputes every SigV4 signature the way
/// botocore does, so this proves our requests are signed correctly (and that
/// a wrong secret is reported as access denied).
#[tokio::test]
async fn signatures_are_verified_by_a_strict_server() {
    if std::env::var_os(MOTO_ENV).is_none() {
        eprintln!("SKIPPED: set {MOTO_ENV} to run the S3 tests");
        return;
    }
    let strict = Moto::start(&[("INITIAL_NO_AUTH_ACTION_COUNT", "3")]).unwrap();
    iam_call(
        &strict.endpoint,
        "Action=CreateUser&Version=2010-05-08&UserName=hangar",
    );
    let key = iam_call(
        &strict.endpoint,
        "Action=CreateAccessKey&Version=2010-05-08&UserName=hangar",
    );
    iam_call(
        &strict.endpoint,
        // {"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}
        "Action=PutUserPolicy&Version=2010-05-08&UserName=hangar&PolicyName=s3\
         &PolicyDocument=%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22\
         %3A%22Allow%22%2C%22Action%22%3A%22s3%3A%2A%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D",
    );
    let creds = hangar_artifacts::StaticCredentials {
        access_key_id: xml_text(&key, "AccessKeyId"),
        secret_access_key: xml_text(&key, "SecretAccessKey"),
        session_token: None,
    };
    let source = |creds: hangar_artifacts::StaticCredentials| {
        S3Source::new(S3Config {
            region: "us-east-1".to_string(),
            credentials: CredentialsSource::Static(creds),
            ..S3Config::from_env(strict.endpoint.clone())
        })
        .unwrap()
    };
    let s3 = source(creds.clone());
    let b = bucket("signed");
    s3.create_bucket(&b).await.unwrap();
    s3.put_bucket_versioning(&b, true).await.unwrap();
    // Keys with characters SigV4 must encode exactly like botocore.
    let key_name = "agents/my agent+v1/dépl=oy~ment.zip";
    let zip = hello_zip("signed");
    let v = s3
        .put_object(&b, key_name, Bytes::from(zip.clone()))
        .await
        .unwrap()
        .version_id
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = artifacts(dir.path(), source(creds.clone()));
    let p = a.prepare_code(&code(&b, key_name, Some(&v))).await.unwrap();
    assert_eq!(p.digest, sha256_hex(&zip));
    let p = a.prepare_code(&code(&b, key_name, None)).await.unwrap();
    assert_eq!(p.digest, sha256_hex(&zip));

    let wrong = hangar_artifacts::StaticCredentials {
        secret_access_key: "not-the-secret".to_string(),
        ..creds
    };
    let dir2 = tempfile::tempdir().unwrap();
    let err = artifacts(dir2.path(), source(wrong))
        .prepare_code(&code(&b, key_name, None))
        .await
        .unwrap_err();
    assert!(matches!(err, ArtifactError::AccessDenied { .. }), "{err:?}");
    assert!(err.to_string().contains("SignatureDoesNotMatch"), "{err}");
}
