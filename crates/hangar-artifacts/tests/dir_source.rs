//! The local-directory source, and everything about verifying and unpacking
//! zips (source-independent, so it runs without an S3 server).

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use common::*;
use hangar_artifacts::{ArtifactError, Artifacts, CodeConfiguration, DirSource, Runtime};

struct Env {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    buckets: std::path::PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let buckets = root.join("buckets");
    std::fs::create_dir_all(buckets.join("bkt")).unwrap();
    Env {
        _dir: dir,
        root,
        buckets,
    }
}

impl Env {
    fn put(&self, key: &str, data: &[u8]) {
        let p = self.buckets.join("bkt").join(key);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    fn artifacts(&self) -> Artifacts {
        Artifacts::new(
            test_config(&self.root),
            Arc::new(DirSource::new(&self.buckets)),
        )
        .unwrap()
    }

    fn artifacts_with(&self, f: impl FnOnce(&mut hangar_artifacts::ArtifactsConfig)) -> Artifacts {
        let mut c = test_config(&self.root);
        f(&mut c);
        Artifacts::new(c, Arc::new(DirSource::new(&self.buckets))).unwrap()
    }

    /// Put `zip` at `key` and prepare it; returns the error.
    async fn fail(&self, a: &Artifacts, key: &str, zip: &[u8]) -> ArtifactError {
        self.put(key, zip);
        a.prepare_code(&code(key)).await.unwrap_err()
    }

    /// Nothing half-done may remain after a failure.
    fn assert_clean(&self) {
        let code = self.root.join("cache/code");
        let left: Vec<_> = std::fs::read_dir(&code)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "left in code/: {left:?}");
        assert_eq!(
            std::fs::read_dir(self.root.join("cache/downloads"))
                .unwrap()
                .count(),
            0
        );
    }
}

fn code(key: &str) -> CodeConfiguration {
    CodeConfiguration {
        bucket: "bkt".to_string(),
        key: key.to_string(),
        version_id: None,
        runtime: Runtime::Python312,
        entry_point: vec!["main.py".to_string()],
    }
}

#[tokio::test]
async fn dir_source_fetches_caches_and_notices_changes() {
    let e = env();
    let zip = hello_zip("dir");
    e.put("agents/a.zip", &zip);
    let a = e.artifacts();
    let p = a.prepare_code(&code("agents/a.zip")).await.unwrap();
    assert_eq!(p.digest, sha256_hex(&zip));
    assert!(p.code_dir.join("main.py").is_file());
    assert_eq!(p.argv[1], "/var/task/main.py");

    // Unchanged file: synthetic ETag matches, no copy.
    a.prepare_code(&code("agents/a.zip")).await.unwrap();
    let s = a.stats();
    assert_eq!((s.fetches, s.not_modified, s.unpacks), (1, 1, 1));

    // Changed file: fetched again.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let zip2 = hello_zip("dir2");
    e.put("agents/a.zip", &zip2);
    let p2 = a.prepare_code(&code("agents/a.zip")).await.unwrap();
    assert_eq!(p2.digest, sha256_hex(&zip2));
    assert_eq!(a.stats().fetches, 2);
}

#[tokio::test]
async fn dir_source_errors() {
    let e = env();
    let a = e.artifacts();
    let err = a.prepare_code(&code("missing.zip")).await.unwrap_err();
    assert!(
        matches!(err, ArtifactError::ObjectNotFound { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "s3://bkt/missing.zip not found at directory {}",
            e.buckets.display()
        )),
        "{err}"
    );

    let mut c = code("a.zip");
    c.bucket = "other-bucket".to_string();
    let err = a.prepare_code(&c).await.unwrap_err();
    assert!(
        matches!(err, ArtifactError::BucketNotFound { .. }),
        "{err:?}"
    );

    e.put("a.zip", &hello_zip("x"));
    let mut c = code("a.zip");
    c.version_id = Some("v123".to_string());
    let err = a.prepare_code(&c).await.unwrap_err();
    assert!(
        matches!(err, ArtifactError::VersionIdUnsupported { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("omit versionId"), "{err}");

    // Keys may not walk out of the bucket directory.
    std::fs::write(e.root.join("buckets/outside.zip"), hello_zip("y")).unwrap();
    let err = a.prepare_code(&code("../outside.zip")).await.unwrap_err();
    assert!(matches!(err, ArtifactError::InvalidConfig(_)), "{err:?}");
}

#[tokio::test]
async fn permissions_are_kept_and_opened_to_everyone() {
    let e = env();
    let zip = ZipBuilder::new()
        .dir("private/", 0o700)
        .file("main.py", b"print(1)\n", 0o600)
        .file("run.sh", b"#!/bin/sh\n", 0o700)
        .file("private/tool", b"#!/bin/sh\n", 0o750)
        .file("suid", b"x", 0o4755)
        .file("ro.txt", b"x", 0o400)
        .file("world-writable.txt", b"x", 0o666)
        .finish();
    e.put("perm.zip", &zip);
    let p = e.artifacts().prepare_code(&code("perm.zip")).await.unwrap();
    let d = &p.code_dir;
    assert_eq!(mode(&d.join("main.py")), 0o644);
    assert_eq!(mode(&d.join("run.sh")), 0o755);
    assert_eq!(mode(&d.join("private")), 0o755);
    assert_eq!(mode(&d.join("private/tool")), 0o755);
    assert_eq!(mode(&d.join("suid")), 0o755);
    assert_eq!(mode(&d.join("ro.txt")), 0o444);
    assert_eq!(mode(&d.join("world-writable.txt")), 0o644);
    assert_eq!(mode(d), 0o755);
}

#[tokio::test]
async fn zip_slip_entries_are_refused() {
    let e = env();
    let a = e.artifacts();
    for (name, why) in [
        ("../evil.py", "'..'"),
        ("sub/../../evil.py", "'..'"),
        ("/tmp/evil.py", "absolute path"),
    ] {
        let zip = ZipBuilder::new()
            .file("main.py", b"", 0o644)
            .file(name, b"evil", 0o644)
            .finish();
        let err = e.fail(&a, "slip.zip", &zip).await;
        assert!(
            matches!(err, ArtifactError::UnsafeEntry { .. }),
            "{name}: {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&format!("unsafe entry '{name}'")), "{msg}");
        assert!(msg.contains(why), "{msg}");
        e.assert_clean();
    }
    assert!(!e.root.join("cache/evil.py").exists());
    assert!(!e.root.join("cache/code/evil.py").exists());
    assert_eq!(a.stats().unpacks, 0);
}

#[tokio::test]
async fn escaping_symlinks_are_refused_and_inner_ones_kept() {
    let e = env();
    let a = e.artifacts();
    for (link, target) in [
        ("abs", "/etc/passwd"),
        ("up", "../../x"),
        ("deep", "a/../../x"),
    ] {
        let zip = ZipBuilder::new()
            .file("main.py", b"", 0o644)
            .symlink(link, target)
            .finish();
        let err = e.fail(&a, "link.zip", &zip).await;
        assert!(
            matches!(err, ArtifactError::UnsafeEntry { .. }),
            "{link}: {err:?}"
        );
        assert!(err.to_string().contains("symlink"), "{err}");
        e.assert_clean();
    }
    // Each link looks harmless alone; together "dot/../x" leaves the tree.
    let zip = ZipBuilder::new()
        .file("main.py", b"", 0o644)
        .symlink("dot", ".")
        .symlink("sneaky", "dot/../x")
        .finish();
    let err = e.fail(&a, "chain.zip", &zip).await;
    assert!(err.to_string().contains("resolves outside"), "{err}");
    e.assert_clean();
    // A file written through a symlink that points outside is refused too.
    let zip = ZipBuilder::new()
        .file("main.py", b"", 0o644)
        .symlink("dot", ".")
        .symlink("dot/escape", "x")
        .finish();
    let err = e.fail(&a, "through.zip", &zip).await;
    assert!(matches!(err, ArtifactError::UnsafeEntry { .. }), "{err:?}");
    e.assert_clean();

    // Links inside the tree are fine, and an entryPoint may be one.
    let zip = ZipBuilder::new()
        .file("src/app.py", b"print('app')\n", 0o644)
        .symlink("main.py", "src/app.py")
        .symlink("lib", "src")
        .finish();
    e.put("good.zip", &zip);
    let p = a.prepare_code(&code("good.zip")).await.unwrap();
    assert_eq!(
        std::fs::read_link(p.code_dir.join("main.py")).unwrap(),
        Path::new("src/app.py")
    );
    assert_eq!(
        std::fs::read_to_string(p.code_dir.join("lib/app.py")).unwrap(),
        "print('app')\n"
    );
}

#[tokio::test]
async fn zip_bombs_and_size_limits() {
    let e = env();
    let a = e.artifacts_with(|c| c.limits = small_limits(1_000_000, 100_000, 50));

    // Declares 100 bytes, inflates to 1 MiB.
    let honest = ZipBuilder::new()
        .file("bomb.txt", &vec![0u8; 1024 * 1024], 0o644)
        .file("main.py", b"", 0o644)
        .finish();
    assert!(honest.len() < 10_000);
    let bomb = lie_about_size(honest, 100);
    let err = e.fail(&a, "bomb.zip", &bomb).await;
    assert!(
        matches!(err, ArtifactError::SizeMismatch { .. }),
        "{err:?}: {err}"
    );
    assert!(err.to_string().contains("'bomb.txt'"), "{err}");
    assert!(err.to_string().contains("100 bytes"), "{err}");
    e.assert_clean();

    // Honest headers, but more than the uncompressed limit: refused before
    // anything is written.
    let big = ZipBuilder::new()
        .file("main.py", b"", 0o644)
        .file("a.bin", &vec![1u8; 60_000], 0o644)
        .file("b.bin", &vec![2u8; 60_000], 0o644)
        .finish();
    let err = e.fail(&a, "big.zip", &big).await;
    assert!(
        matches!(
            err,
            ArtifactError::UncompressedTooLarge {
                at_least: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(
            "unpacks to 117.2 KiB (120000 bytes), over the 97.7 KiB (100000 bytes) limit"
        ),
        "{err}"
    );
    e.assert_clean();

    // Too many entries.
    let mut many = ZipBuilder::new().file("main.py", b"", 0o644);
    for i in 0..60 {
        many = many.file(&format!("f{i}.txt"), b"", 0o644);
    }
    let err = e.fail(&a, "many.zip", &many.finish()).await;
    assert!(
        matches!(
            err,
            ArtifactError::TooManyEntries {
                count: 61,
                limit: 50,
                ..
            }
        ),
        "{err:?}"
    );
    e.assert_clean();
}

#[tokio::test]
async fn corrupt_and_duplicate_entries() {
    let e = env();
    let a = e.artifacts();
    let zip = ZipBuilder::new()
        .file("main.py", &vec![b'x'; 10_000], 0o644)
        .finish();
    // Flip bytes in the middle of the compressed data.
    let mut bad = zip.clone();
    let mid = 30 + "main.py".len() + 8;
    for b in &mut bad[mid..mid + 4] {
        *b ^= 0xff;
    }
    let err = e.fail(&a, "corrupt.zip", &bad).await;
    assert!(
        matches!(
            err,
            ArtifactError::BadZip { .. } | ArtifactError::SizeMismatch { .. }
        ),
        "{err:?}"
    );
    e.assert_clean();

    // "a" is a file, then "a/b" needs it to be a directory.
    let clash = ZipBuilder::new()
        .file("main.py", b"1", 0o644)
        .file("a", b"file", 0o644)
        .file("a/b", b"inside", 0o644)
        .finish();
    let err = e.fail(&a, "clash.zip", &clash).await;
    assert!(matches!(err, ArtifactError::UnsafeEntry { .. }), "{err:?}");
    assert!(
        err.to_string().contains("'a' is a file in the archive"),
        "{err}"
    );
    e.assert_clean();

    let empty = ZipBuilder::new().finish();
    let err = e.fail(&a, "empty.zip", &empty).await;
    assert!(
        err.to_string()
            .contains("entryPoint 'main.py' not found in the artifact; the zip contains: nothing"),
        "{err}"
    );
}

#[tokio::test]
async fn gc_removes_unreferenced_trees() {
    let e = env();
    let (z1, z2) = (hello_zip("one"), hello_zip("two"));
    e.put("one.zip", &z1);
    e.put("two.zip", &z2);
    let a = e.artifacts_with(|c| c.gc_grace = std::time::Duration::ZERO);
    let p1 = a.prepare_code(&code("one.zip")).await.unwrap();
    let p2 = a.prepare_code(&code("two.zip")).await.unwrap();
    // Leftovers of a crash.
    std::fs::create_dir(e.root.join("cache/code/.tmp-deadbeef-1")).unwrap();
    std::fs::write(e.root.join("cache/downloads/dl-x.zip"), b"junk").unwrap();

    let report = a.gc(&HashSet::from([p1.digest.clone()])).await.unwrap();
    assert_eq!(report.removed, vec![p2.digest.clone()]);
    assert_eq!(report.kept, vec![p1.digest.clone()]);
    assert!(p1.code_dir.is_dir());
    assert!(!p2.code_dir.exists());
    assert!(!e.root.join("cache/code/.tmp-deadbeef-1").exists());
    assert!(!e.root.join("cache/downloads/dl-x.zip").exists());

    // The removed one comes back on demand (its index entry is gone: a real fetch).
    let before = a.stats();
    let again = a.prepare_code(&code("two.zip")).await.unwrap();
    assert_eq!(again.digest, p2.digest);
    assert!(again.code_dir.join("main.py").is_file());
    assert_eq!(a.stats().fetches, before.fetches + 1);
    assert_eq!(a.stats().unpacks, before.unpacks + 1);

    // With a grace period, freshly prepared trees survive an empty keep set.
    let b = e.artifacts();
    let p = b.prepare_code(&code("one.zip")).await.unwrap();
    let report = b.gc(&HashSet::new()).await.unwrap();
    assert!(!report.removed.contains(&p.digest), "{report:?}");
    assert_eq!(report.kept, vec![p.digest.clone()]);
    assert!(p.code_dir.is_dir());
}
