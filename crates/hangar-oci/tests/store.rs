//! The image store against a minimal in-test registry (static answers over HTTP/1.1): pull,
//! verify, unpack once, pins, digest mismatches, size limits, gc.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use hangar_oci::{ImageStore, ImageStoreConfig, MapRule, OciError};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn gz_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *data).unwrap();
    }
    let raw = b.into_inner().unwrap();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut e, &raw).unwrap();
    e.finish().unwrap()
}

/// path → body. Requests are counted by path.
#[derive(Clone, Default)]
struct Registry {
    routes: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Registry {
    async fn start(&self) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let me = me.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        let n = s.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let line = String::from_utf8_lossy(&buf);
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                    *me.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
                    let body = me.routes.lock().unwrap().get(&path).cloned();
                    let resp = match body {
                        Some(b) => {
                            let mut r = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                b.len()
                            )
                            .into_bytes();
                            r.extend_from_slice(&b);
                            r
                        }
                        None => {
                            let b = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":""}]}"#;
                            format!(
                                "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                                b.len()
                            )
                            .into_bytes()
                        }
                    };
                    let _ = s.write_all(&resp).await;
                });
            }
        });
        addr
    }

    fn put(&self, path: String, body: Vec<u8>) {
        self.routes.lock().unwrap().insert(path, body);
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// An image in `repo:tag` with one layer; returns (manifest digest, layer digest).
    fn image(&self, repo: &str, tag: &str, layer: Vec<u8>, arch: &str) -> (String, String) {
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Entrypoint": ["/bin/agent"], "User": "7:8", "WorkingDir": "/w"}
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": digest(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": digest(&layer), "size": layer.len()}]
        }))
        .unwrap();
        let (md, ld) = (digest(&manifest), digest(&layer));
        self.put(format!("/v2/{repo}/blobs/{}", digest(&config)), config);
        self.put(format!("/v2/{repo}/blobs/{ld}"), layer);
        self.put(format!("/v2/{repo}/manifests/{tag}"), manifest.clone());
        self.put(format!("/v2/{repo}/manifests/{md}"), manifest);
        (md, ld)
    }
}

const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

async fn setup() -> (Registry, ImageStore, tempfile::TempDir) {
    let reg = Registry::default();
    let addr = reg.start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ImageStoreConfig::new(dir.path().join("images"));
    cfg.map
        .rules
        .push(MapRule::parse(&format!("ecr=http://{addr}")).unwrap());
    cfg.binfmt_dir = dir.path().join("no-binfmt");
    cfg.gc_grace = std::time::Duration::ZERO;
    (reg, ImageStore::new(cfg).unwrap(), dir)
}

fn host_arch() -> &'static str {
    hangar_oci::host_arch()
}

#[tokio::test]
async fn pull_unpack_once_pins_and_gc() {
    let (reg, store, _dir) = setup().await;
    let layer = gz_tar(&[("bin/agent", b"#!/bin/true\n")]);
    let (md, ld) = reg.image("a/b", "v1", layer, host_arch());
    let uri = format!("{ECR}/a/b:v1");
    let img = store.prepare(&uri, Some("rt/1")).await.unwrap();
    assert_eq!(img.digest, md);
    assert_eq!(
        std::fs::read(img.root.join("bin/agent")).unwrap(),
        b"#!/bin/true\n"
    );
    assert!(img.root.join("w").is_dir(), "WorkingDir created");
    assert_eq!(
        (img.config.user.as_str(), img.emulation.as_ref()),
        ("7:8", None)
    );
    // Same image for another version and by digest: no new blob download, no new unpack.
    let again = store
        .prepare(&format!("{ECR}/a/b@{md}"), Some("rt/2"))
        .await
        .unwrap();
    assert_eq!(again.root, img.root);
    assert_eq!(store.stats().unpacks, 1);
    assert_eq!(store.stats().blob_downloads, 2);
    assert_eq!(reg.hits(&format!("/v2/a/b/blobs/{ld}")), 1);
    // A pinned version does not ask the registry again, even if the tag moved.
    let moved = gz_tar(&[("bin/agent", b"other")]);
    let (md2, _) = reg.image("a/b", "v1", moved, host_arch());
    let before = reg.hits("/v2/a/b/manifests/v1");
    assert_eq!(store.prepare(&uri, Some("rt/1")).await.unwrap().digest, md);
    assert_eq!(reg.hits("/v2/a/b/manifests/v1"), before);
    assert_eq!(store.prepare(&uri, Some("rt/3")).await.unwrap().digest, md2);
    // gc: only rt/3 lives on.
    let keep = store.live_pins(|k| k == "rt/3");
    assert_eq!(keep, HashSet::from([md2.clone()]));
    let report = store.gc(&keep).unwrap();
    assert_eq!(report.images_removed, vec![md.clone()]);
    assert!(!img.root.exists());
    assert!(report.blobs_removed >= 1);
    assert!(store.prepare(&uri, Some("rt/3")).await.is_ok());
}

#[tokio::test]
async fn digest_mismatches_are_refused() {
    let (reg, store, dir) = setup().await;
    let layer = gz_tar(&[("x", b"1")]);
    let (_, ld) = reg.image("c/d", "v1", layer, host_arch());
    // The registry serves other bytes for the layer.
    reg.put(format!("/v2/c/d/blobs/{ld}"), gz_tar(&[("x", b"2")]));
    let err = store
        .prepare(&format!("{ECR}/c/d:v1"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, OciError::DigestMismatch(_)), "{err}");
    assert!(err.to_string().contains(&ld), "{err}");
    let blobs = std::fs::read_dir(dir.path().join("images/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 1, "only the (good) config blob is stored");
    // A reference pinning a digest its manifest does not have.
    let wrong = format!("sha256:{}", "1".repeat(64));
    let m = reg.routes.lock().unwrap()["/v2/c/d/manifests/v1"].clone();
    reg.put(format!("/v2/c/d/manifests/{wrong}"), m);
    let err = store
        .prepare(&format!("{ECR}/c/d@{wrong}"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, OciError::DigestMismatch(_)), "{err}");
}

#[tokio::test]
async fn not_found_too_large_and_foreign_arch() {
    let (reg, store, dir) = setup().await;
    let err = store
        .prepare(&format!("{ECR}/none:v1"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, OciError::NotFound(_)), "{err}");
    assert!(err.to_string().contains("MANIFEST_UNKNOWN"), "{err}");

    let foreign = if host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    reg.image("e/f", "v1", gz_tar(&[("x", b"1")]), foreign);
    let err = store
        .prepare(&format!("{ECR}/e/f:v1"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, OciError::Architecture(_)), "{err}");
    assert!(
        err.to_string().contains(&format!("linux/{foreign}")),
        "{err}"
    );

    let mut cfg = ImageStoreConfig::new(dir.path().join("small"));
    cfg.map = store.config().map.clone();
    cfg.max_image_bytes = 10;
    let small = ImageStore::new(cfg).unwrap();
    reg.image("g/h", "v1", gz_tar(&[("x", b"1")]), host_arch());
    let err = small
        .prepare(&format!("{ECR}/g/h:v1"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, OciError::TooLarge(_)), "{err}");
    assert!(err.to_string().contains("2 GB"), "{err}");
}

/// A Docker manifest list (no `platform` on attestation-like entries, Docker media types) is
/// parsed as an index and the host's platform chosen.
#[tokio::test]
async fn docker_manifest_list_picks_the_host_platform() {
    let (reg, store, _dir) = setup().await;
    let foreign = if host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let (native_md, _) = reg.image("m/l", "native", gz_tar(&[("n", b"1")]), host_arch());
    let (foreign_md, _) = reg.image("m/l", "foreign", gz_tar(&[("f", b"1")]), foreign);
    let entry = |d: &str, arch: &str| {
        serde_json::json!({
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "digest": d, "size": 1,
            "platform": {"architecture": arch, "os": "linux"}
        })
    };
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [
            entry(&foreign_md, foreign),
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": foreign_md,
             "size": 1, "platform": {"architecture": "unknown", "os": "unknown"}},
            entry(&native_md, host_arch()),
        ]
    }))
    .unwrap();
    reg.put("/v2/m/l/manifests/multi".into(), list);
    let image = store
        .prepare(&format!("{ECR}/m/l:multi"), None)
        .await
        .unwrap();
    assert_eq!(image.digest, native_md);
    assert!(image.root.join("n").exists());
    assert!(!image.root.join("f").exists());
}

/// An `https://` target is spoken to with TLS (the listener sees a TLS handshake record, not an
/// HTTP request line), and the failure names the https origin; a loopback registry without a
/// mapping is spoken to over plain HTTP.
#[tokio::test]
async fn https_targets_speak_tls_and_loopback_plain_http() {
    async fn first_bytes() -> (String, tokio::sync::oneshot::Receiver<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 16];
            let n = s.read(&mut buf).await.unwrap_or(0);
            buf.truncate(n);
            let _ = tx.send(buf);
            // Dropping the socket ends the exchange: the pull fails.
        });
        (addr, rx)
    }

    let dir = tempfile::tempdir().unwrap();
    let (addr, seen) = first_bytes().await;
    let mut cfg = ImageStoreConfig::new(dir.path().join("images"));
    cfg.map
        .rules
        .push(MapRule::parse(&format!("ecr=https://{addr}")).unwrap());
    let store = ImageStore::new(cfg).unwrap();
    let err = store
        .prepare(&format!("{ECR}/a/b:v1"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, OciError::Unreachable(_)), "{err}");
    assert!(
        err.to_string().contains(&format!("https://{addr}")),
        "{err}"
    );
    assert!(!err.to_string().contains("--registry-map"), "{err}");
    let hello = seen.await.unwrap();
    // A TLS record: content type 22 (handshake), protocol version 3.x.
    assert_eq!(&hello[..2], &[0x16, 0x03], "{hello:?}");

    let (addr, seen) = first_bytes().await;
    let port = addr.rsplit_once(':').unwrap().1;
    let store = ImageStore::new(ImageStoreConfig::new(dir.path().join("plain"))).unwrap();
    let err = store
        .prepare(&format!("127.0.0.1:{port}/a/b:v1"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, OciError::Unreachable(_)), "{err}");
    // Not mapped: the reason says how to map it to a mirror.
    assert!(err.to_string().contains("--registry-map"), "{err}");
    let request = seen.await.unwrap();
    assert!(request.starts_with(b"GET /v2/a/b/"), "{request:?}");
}
