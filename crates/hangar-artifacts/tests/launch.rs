//! entryPoint → argv, and (where the host has Python 3.11) running the plan
//! for real with /var/task mapped to the unpacked tree.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use hangar_artifacts::{
    plan_launch, ArtifactError, Artifacts, CodeConfiguration, DirSource, Runtime,
};

const PY: &str = "/usr/bin/python3.11";

fn tree(files: &[(&str, &str, u32)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, content, mode) in files {
        let p = d.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    d
}

fn ep(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn plan(dir: &Path, runtime: Runtime, items: &[&str]) -> Result<Vec<String>, ArtifactError> {
    plan_launch(dir, runtime, Path::new(PY), &ep(items)).map(|p| p.argv)
}

/// A fake `opentelemetry-instrument`: the real one sets up instrumentation,
/// then `execl(which(argv[1]), …)`s its command. pip writes the build
/// machine's interpreter into the shebang, which does not exist here.
const FAKE_OTEL_PKG: &str = concat!(
    "import os, shutil, sys\n",
    "def run():\n",
    "    os.environ['INSTRUMENTED'] = 'yes'\n",
    "    exe = shutil.which(sys.argv[1])\n",
    "    os.execl(exe, exe, *sys.argv[2:])\n",
);
const PIP_WRAPPER: &str = concat!(
    "#!/home/builder/venv/bin/python3\n",
    "import re, sys\n",
    "from fakeotel import run\n",
    "if __name__ == '__main__':\n",
    "    sys.exit(run())\n",
);
const MAIN: &str = "import os, vendored\n\
print(os.environ.get('INSTRUMENTED', 'no'), vendored.VALUE, os.getcwd() == os.path.dirname(os.path.abspath(__file__)))\n";

#[test]
fn single_script_and_script_with_argument() {
    let d = tree(&[("main.py", "", 0o644), ("src/app.py", "", 0o644)]);
    assert_eq!(
        plan(d.path(), Runtime::Python311, &["main.py"]).unwrap(),
        [PY, "/var/task/main.py"]
    );
    assert_eq!(
        plan(d.path(), Runtime::Python311, &["./src/app.py"]).unwrap(),
        [PY, "/var/task/src/app.py"]
    );
    assert_eq!(
        plan(d.path(), Runtime::Python311, &["main.py", "--port"]).unwrap(),
        [PY, "/var/task/main.py", "--port"]
    );
    let p = plan_launch(
        d.path(),
        Runtime::Python311,
        Path::new(PY),
        &ep(&["main.py"]),
    )
    .unwrap();
    assert_eq!(p.env, [("PYTHONPATH".to_string(), "/var/task".to_string())]);
}

#[test]
fn bad_entry_points() {
    let d = tree(&[("main.py", "", 0o644)]);
    for bad in ["/var/task/main.py", "../main.py", "a/../../main.py"] {
        let err = plan(d.path(), Runtime::Python311, &[bad]).unwrap_err();
        assert!(
            matches!(err, ArtifactError::InvalidEntryPoint { .. }),
            "{bad}: {err:?}"
        );
    }
}

#[test]
fn missing_script_lists_the_zip_and_spots_a_nested_folder() {
    let d = tree(&[("myagent/main.py", "", 0o644), ("README.md", "", 0o644)]);
    let err = plan(d.path(), Runtime::Python311, &["main.py"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "entryPoint 'main.py' not found in the artifact; the zip contains: README.md, myagent/; \
         it does have 'myagent/main.py': zip the folder's contents rather than the folder, \
         or set entryPoint to [\"myagent/main.py\"]"
    );

    let names: Vec<String> = (0..14).map(|i| format!("f{i:02}.py")).collect();
    let files: Vec<(&str, &str, u32)> = names.iter().map(|n| (n.as_str(), "", 0o644)).collect();
    let d = tree(&files);
    let err = plan(d.path(), Runtime::Python311, &["main.py"]).unwrap_err();
    assert!(
        err.to_string().ends_with(
            "the zip contains: f00.py, f01.py, f02.py, f03.py, f04.py, f05.py, f06.py, f07.py, \
             f08.py, f09.py, … and 4 more"
        ),
        "{err}"
    );
}

#[test]
fn opentelemetry_launcher_from_bin() {
    let d = tree(&[
        ("main.py", "", 0o644),
        ("bin/opentelemetry-instrument", PIP_WRAPPER, 0o755),
    ]);
    assert_eq!(
        plan(
            d.path(),
            Runtime::Python311,
            &["opentelemetry-instrument", "main.py"]
        )
        .unwrap(),
        [
            PY,
            "/var/task/bin/opentelemetry-instrument",
            PY,
            "/var/task/main.py"
        ]
    );
    // A native launcher is executed directly.
    let d = tree(&[("main.py", "", 0o644), ("bin/native", "\x7fELF...", 0o755)]);
    assert_eq!(
        plan(d.path(), Runtime::Python311, &["native", "main.py"]).unwrap(),
        ["/var/task/bin/native", PY, "/var/task/main.py"]
    );
}

#[test]
fn opentelemetry_launcher_from_dist_info_or_module() {
    let d = tree(&[
        ("main.py", "", 0o644),
        (
            "fakeotel-1.0.dist-info/entry_points.txt",
            "[console_scripts]\nopentelemetry-bootstrap = fakeotel:boot\nopentelemetry-instrument = fakeotel:run\n",
            0o644,
        ),
    ]);
    let argv = plan(
        d.path(),
        Runtime::Python311,
        &["opentelemetry-instrument", "main.py"],
    )
    .unwrap();
    assert_eq!(argv[0], PY);
    assert_eq!(argv[1], "-c");
    assert!(argv[2].contains("import_module('fakeotel')"), "{}", argv[2]);
    assert!(argv[2].contains("'run'.split('.')"), "{}", argv[2]);
    assert_eq!(&argv[3..], [PY, "/var/task/main.py"]);

    let d = tree(&[
        ("main.py", "", 0o644),
        ("my_wrapper/__main__.py", "", 0o644),
    ]);
    assert_eq!(
        plan(d.path(), Runtime::Python311, &["my-wrapper", "main.py"]).unwrap(),
        [PY, "-m", "my_wrapper", PY, "/var/task/main.py"]
    );

    let d = tree(&[("main.py", "", 0o644)]);
    let err = plan(
        d.path(),
        Runtime::Python311,
        &["opentelemetry-instrument", "main.py"],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "entryPoint launcher 'opentelemetry-instrument' is not in the artifact: expected \
         bin/opentelemetry-instrument or a vendored package that declares it \
         (`pip install --target <dir> <package>` puts both in the zip); vendor it into the zip \
         or use entryPoint [\"main.py\"]"
    );
}

#[test]
fn node_entry_points() {
    let d = tree(&[
        ("index.js", "", 0o644),
        ("node_modules/.bin/wrap", "#!/usr/bin/env node\n", 0o755),
    ]);
    let node = Path::new("/usr/bin/node");
    let p = plan_launch(d.path(), Runtime::Node22, node, &ep(&["index.js"])).unwrap();
    assert_eq!(p.argv, ["/usr/bin/node", "/var/task/index.js"]);
    assert!(p.env.is_empty());
    let p = plan_launch(d.path(), Runtime::Node22, node, &ep(&["wrap", "index.js"])).unwrap();
    assert_eq!(
        p.argv,
        [
            "/usr/bin/node",
            "/var/task/node_modules/.bin/wrap",
            "/var/task/index.js"
        ]
    );
}

/// Replace the sandbox path by the host tree and run it.
fn run_mapped(code_dir: &Path, argv: &[String], env: &[(String, String)]) -> String {
    let map = |s: &str| s.replace("/var/task", code_dir.to_str().unwrap());
    let mut cmd = std::process::Command::new(map(&argv[0]));
    cmd.args(argv[1..].iter().map(|a| map(a)))
        .current_dir(code_dir)
        .env_remove("PYTHONPATH")
        .env_remove("INSTRUMENTED");
    for (k, v) in env {
        cmd.env(k, map(v));
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn prepared_plans_really_run() {
    if !Path::new(PY).exists() {
        eprintln!("SKIPPED: no {PY} on this host");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let buckets = d.path().join("buckets/bkt");
    std::fs::create_dir_all(&buckets).unwrap();
    let with_bin = ZipBuilder::new()
        .file("main.py", MAIN.as_bytes(), 0o644)
        .file("vendored.py", b"VALUE = 'vendored-ok'\n", 0o644)
        .file("fakeotel/__init__.py", FAKE_OTEL_PKG.as_bytes(), 0o644)
        .file(
            "bin/opentelemetry-instrument",
            PIP_WRAPPER.as_bytes(),
            0o755,
        )
        .finish();
    let with_dist_info = ZipBuilder::new()
        .file("main.py", MAIN.as_bytes(), 0o644)
        .file("vendored.py", b"VALUE = 'vendored-ok'\n", 0o644)
        .file("fakeotel/__init__.py", FAKE_OTEL_PKG.as_bytes(), 0o644)
        .file(
            "fakeotel-1.0.dist-info/entry_points.txt",
            b"[console_scripts]\nopentelemetry-instrument = fakeotel:run\n",
            0o644,
        )
        .finish();
    std::fs::write(buckets.join("bin.zip"), with_bin).unwrap();
    std::fs::write(buckets.join("dist.zip"), with_dist_info).unwrap();

    let mut config = hangar_artifacts::ArtifactsConfig::new(d.path().join("cache"));
    config
        .interpreters
        .overrides
        .insert(Runtime::Python311, PathBuf::from(PY));
    let a = Artifacts::new(config, Arc::new(DirSource::new(d.path().join("buckets")))).unwrap();
    let conf = |key: &str, entry: &[&str]| CodeConfiguration {
        bucket: "bkt".to_string(),
        key: key.to_string(),
        version_id: None,
        runtime: Runtime::Python311,
        entry_point: ep(entry),
    };

    let plain = a
        .prepare_code(&conf("bin.zip", &["main.py"]))
        .await
        .unwrap();
    assert_eq!(
        run_mapped(&plain.code_dir, &plain.argv, &plain.env),
        "no vendored-ok True\n"
    );
    for key in ["bin.zip", "dist.zip"] {
        let p = a
            .prepare_code(&conf(key, &["opentelemetry-instrument", "main.py"]))
            .await
            .unwrap();
        assert_eq!(
            run_mapped(&p.code_dir, &p.argv, &p.env),
            "yes vendored-ok True\n",
            "{key}"
        );
    }
}
