//! Interpreter resolution, on fake binaries laid out in temp directories
//! (plus one check of this host's real /usr/bin/python3.11 when present).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use hangar_artifacts::{ArtifactError, InterpreterConfig, InterpreterResolver, Runtime};

fn resolver(search: &[&Path]) -> InterpreterResolver {
    InterpreterResolver::new(InterpreterConfig {
        search_path: Some(search.iter().map(|p| p.to_path_buf()).collect()),
        ..InterpreterConfig::default()
    })
}

/// A pyenv root with a shim for each name and real builds for each version.
fn pyenv(root: &Path, shims: &[&str], versions: &[&str]) -> PathBuf {
    for name in shims {
        write_exe(
            &root.join("shims").join(name),
            &format!(
                "#!/usr/bin/env bash\nset -e\nprogram=\"${{0##*/}}\"\n\
                 export PYENV_ROOT=\"{}\"\nexec \"{}/libexec/pyenv\" exec \"$program\" \"$@\"\n",
                root.display(),
                root.display()
            ),
        );
    }
    for v in versions {
        let minor = v.rsplit_once('.').unwrap().0;
        fake_python(
            &root
                .join("versions")
                .join(v)
                .join("bin")
                .join(format!("python{minor}")),
            v,
        );
    }
    root.join("shims")
}

fn canon(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap()
}

#[tokio::test]
async fn finds_python_on_the_search_path_in_order() {
    let d = tempfile::tempdir().unwrap();
    let root = canon(d.path());
    let empty = root.join("empty/bin");
    std::fs::create_dir_all(&empty).unwrap();
    fake_python(&root.join("a/bin/python3.12"), "3.12.4");
    fake_python(&root.join("b/bin/python3.12"), "3.12.7");

    let r = resolver(&[&empty, &root.join("a/bin"), &root.join("b/bin")]);
    let i = r.resolve(Runtime::Python312).await.unwrap();
    assert_eq!(i.path, root.join("a/bin/python3.12"));
    assert_eq!(i.version.as_deref(), Some("3.12.4"));
    assert_eq!(i.mounts, vec![root.join("a")]);

    // A symlink (as in /usr/bin → /etc/alternatives) resolves to the real binary.
    std::fs::create_dir_all(root.join("links")).unwrap();
    std::os::unix::fs::symlink(root.join("b/bin/python3.12"), root.join("links/python3.12"))
        .unwrap();
    let i = resolver(&[&root.join("links")])
        .resolve(Runtime::Python312)
        .await
        .unwrap();
    assert_eq!(i.path, root.join("b/bin/python3.12"));
    assert_eq!(i.mounts, vec![root.join("b")]);
}

#[tokio::test]
async fn missing_version_says_how_to_fix_it() {
    let d = tempfile::tempdir().unwrap();
    let dir = canon(d.path());
    fake_python(&dir.join("python3.12"), "3.12.1");
    let err = resolver(&[&dir])
        .resolve(Runtime::Python313)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ArtifactError::InterpreterNotFound { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "runtime PYTHON_3_13 needs python3.13, which is not on this host's PATH (searched {}); \
             install it or pass --interpreter PYTHON_3_13=/path/to/python3.13",
            dir.display()
        )
    );

    // A python3.12 that is really 3.11 does not count.
    let liar = dir.join("liar");
    fake_python(&liar.join("python3.12"), "3.11.2");
    let err = resolver(&[&liar])
        .resolve(Runtime::Python312)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ArtifactError::InterpreterVersionMismatch { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("is Python 3.11.2"), "{err}");
}

#[tokio::test]
async fn pyenv_shims_are_skipped_for_real_binaries() {
    let d = tempfile::tempdir().unwrap();
    let root = canon(d.path()).join("pyenv");
    let shims = pyenv(
        &root,
        &["python3.11", "python3.12", "python3.13"],
        &["3.12.0", "3.12.1", "3.13.0"],
    );

    let r = resolver(&[&shims]);
    let i = r.resolve(Runtime::Python312).await.unwrap();
    // The highest 3.12 build, never the shim.
    assert_eq!(i.path, root.join("versions/3.12.1/bin/python3.12"));
    assert_eq!(i.version.as_deref(), Some("3.12.1"));
    assert_eq!(i.mounts, vec![root.join("versions/3.12.1")]);
    let i = r.resolve(Runtime::Python313).await.unwrap();
    assert_eq!(i.path, root.join("versions/3.13.0/bin/python3.13"));

    // A shim with no build behind it is skipped; a later directory may serve.
    let err = r.resolve(Runtime::Python311).await.unwrap_err();
    assert!(
        matches!(err, ArtifactError::InterpreterNotFound { .. }),
        "{err:?}"
    );
    let later = canon(d.path()).join("later");
    fake_python(&later.join("python3.11"), "3.11.2");
    let i = resolver(&[&shims, &later])
        .resolve(Runtime::Python311)
        .await
        .unwrap();
    assert_eq!(i.path, later.join("python3.11"));

    // An override that is a shim is followed to its binary too.
    let mut config = InterpreterConfig::default();
    config
        .overrides
        .insert(Runtime::Python312, shims.join("python3.12"));
    let i = InterpreterResolver::new(config)
        .resolve(Runtime::Python312)
        .await
        .unwrap();
    assert_eq!(i.path, root.join("versions/3.12.1/bin/python3.12"));
}

#[tokio::test]
async fn node_22_must_be_22_unless_overridden() {
    let d = tempfile::tempdir().unwrap();
    let root = canon(d.path());
    fake_node(&root.join("old/bin/node"), "20.20.2");
    let err = resolver(&[&root.join("old/bin")])
        .resolve(Runtime::Node22)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "runtime NODE_22 needs Node.js 22, but the node found at {} is v20.20.2; \
             install Node.js 22 or pass --interpreter NODE_22=/path/to/node",
            root.join("old/bin/node").display()
        )
    );
    // A later directory with node 22 wins over the mismatch.
    fake_node(&root.join("new/bin/node"), "22.11.0");
    let i = resolver(&[&root.join("old/bin"), &root.join("new/bin")])
        .resolve(Runtime::Node22)
        .await
        .unwrap();
    assert_eq!(i.path, root.join("new/bin/node"));
    assert_eq!(i.version.as_deref(), Some("22.11.0"));

    // An explicit override is trusted (mismatch only logged).
    let mut config = InterpreterConfig::default();
    config
        .overrides
        .insert(Runtime::Node22, root.join("old/bin/node"));
    let i = InterpreterResolver::new(config)
        .resolve(Runtime::Node22)
        .await
        .unwrap();
    assert_eq!(i.path, root.join("old/bin/node"));
    assert_eq!(i.version.as_deref(), Some("20.20.2"));
}

#[tokio::test]
async fn broken_overrides_are_reported() {
    let (rt, path) =
        hangar_artifacts::parse_override("PYTHON_3_12=/nonexistent/bin/python3.12").unwrap();
    let mut config = InterpreterConfig::default();
    config.overrides.insert(rt, path);
    let err = InterpreterResolver::new(config)
        .resolve(Runtime::Python312)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the interpreter configured for PYTHON_3_12 (/nonexistent/bin/python3.12) does not exist \
         or is not an executable file; fix --interpreter PYTHON_3_12=…"
    );
}

#[tokio::test]
async fn this_hosts_python_3_11_is_the_system_one() {
    // The default search: /usr/bin first, then $PATH (which here starts with
    // pyenv shims). Only meaningful where Debian's python3.11 exists.
    if !Path::new("/usr/bin/python3.11").exists() {
        eprintln!("SKIPPED: no /usr/bin/python3.11 on this host");
        return;
    }
    let i = InterpreterResolver::new(InterpreterConfig::default())
        .resolve(Runtime::Python311)
        .await
        .unwrap();
    assert_eq!(i.path, canon(Path::new("/usr/bin/python3.11")));
    assert!(i.version.as_deref().unwrap().starts_with("3.11."));
    assert_eq!(i.mounts, vec![PathBuf::from("/usr")]);
}
