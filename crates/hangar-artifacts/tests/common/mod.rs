//! Shared test helpers: a real S3 server (moto_server), zip builders, fake
//! interpreters.
#![allow(dead_code)]

use std::io::{Cursor, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use hangar_artifacts::{
    ArtifactsConfig, CredentialsSource, InterpreterConfig, Limits, Runtime, S3Config, S3Source,
    StaticCredentials,
};
use zip::write::SimpleFileOptions;

/// Env var naming the `moto_server` executable (from pip `moto[server]`).
pub const MOTO_ENV: &str = "HANGAR_TEST_MOTO_SERVER";

/// A moto_server on a free loopback port.
///
/// It runs under a tiny `sh` watchdog that kills it when our end of its
/// stdin closes, which happens when this test process exits however it
/// exits (the harness never runs destructors of statics).
pub struct Moto {
    pub endpoint: String,
    _child: Mutex<(Child, ChildStdin)>,
}

impl Moto {
    /// Start a moto_server, or `None` (after saying why) when
    /// `HANGAR_TEST_MOTO_SERVER` is unset.
    pub fn start(extra_env: &[(&str, &str)]) -> Option<Moto> {
        let Some(bin) = std::env::var_os(MOTO_ENV) else {
            eprintln!(
                "SKIPPED: set {MOTO_ENV}=/path/to/moto_server (pip install 'moto[server]') to run the S3 tests"
            );
            return None;
        };
        let port = free_port();
        let log = std::env::temp_dir().join(format!("hangar-artifacts-moto-{port}.log"));
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#""$0" -H 127.0.0.1 -p "$1" >"$2" 2>&1 & pid=$!; read _ignored; kill "$pid"; wait "$pid"; rm -f "$2""#)
            .arg(&bin)
            .arg(port.to_string())
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn moto_server");
        let stdin = child.stdin.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                panic!(
                    "moto_server did not listen on 127.0.0.1:{port} within 60 s; log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            _child: Mutex::new((child, stdin)),
        })
    }

    /// One server shared by all tests of this test binary.
    pub fn shared() -> Option<&'static Moto> {
        static SHARED: OnceLock<Option<Moto>> = OnceLock::new();
        SHARED.get_or_init(|| Moto::start(&[])).as_ref()
    }

    pub fn source(&self) -> S3Source {
        s3_source(&self.endpoint)
    }
}

pub fn s3_source(endpoint: &str) -> S3Source {
    S3Source::new(S3Config {
        endpoint: endpoint.to_string(),
        region: "us-east-1".to_string(),
        credentials: CredentialsSource::Static(StaticCredentials {
            access_key_id: "AKIDHANGARTEST".to_string(),
            secret_access_key: "hangar-test-secret".to_string(),
            session_token: None,
        }),
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(30),
    })
    .unwrap()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A bucket name nobody else in this run uses.
pub fn bucket(tag: &str) -> String {
    format!("hangar-{tag}-{:08x}", rand::random::<u32>())
}

/// Builds zips in memory.
pub struct ZipBuilder {
    w: zip::ZipWriter<Cursor<Vec<u8>>>,
}

impl Default for ZipBuilder {
    fn default() -> Self {
        ZipBuilder {
            w: zip::ZipWriter::new(Cursor::new(Vec::new())),
        }
    }
}

impl ZipBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A deflated file with Unix mode `mode` (e.g. 0o644).
    pub fn file(mut self, name: &str, content: &[u8], mode: u32) -> Self {
        let o = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(mode);
        self.w.start_file(name, o).unwrap();
        self.w.write_all(content).unwrap();
        self
    }

    /// A stored (uncompressed) file.
    pub fn stored(mut self, name: &str, content: &[u8]) -> Self {
        let o = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .unix_permissions(0o644);
        self.w.start_file(name, o).unwrap();
        self.w.write_all(content).unwrap();
        self
    }

    pub fn dir(mut self, name: &str, mode: u32) -> Self {
        self.w
            .add_directory(name, SimpleFileOptions::default().unix_permissions(mode))
            .unwrap();
        self
    }

    pub fn symlink(mut self, name: &str, target: &str) -> Self {
        self.w
            .add_symlink(name, target, SimpleFileOptions::default())
            .unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.w.finish().unwrap().into_inner()
    }
}

/// The simplest agent: `main.py`.
pub fn hello_zip(text: &str) -> Vec<u8> {
    ZipBuilder::new()
        .file("main.py", format!("print({text:?})\n").as_bytes(), 0o644)
        .finish()
}

/// Rewrite the uncompressed size of the first entry in both its local header
/// and the central directory: a zip that lies about its size (a zip bomb).
pub fn lie_about_size(mut zip: Vec<u8>, declared: u32) -> Vec<u8> {
    assert_eq!(&zip[..4], b"PK\x03\x04");
    zip[22..26].copy_from_slice(&declared.to_le_bytes());
    let cd = zip
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .expect("central directory");
    zip[cd + 24..cd + 28].copy_from_slice(&declared.to_le_bytes());
    zip
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Write an executable shell script.
pub fn write_exe(path: &Path, script: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A fake `pythonX.Y` that only answers `--version`.
pub fn fake_python(path: &Path, version: &str) {
    write_exe(path, &format!("#!/bin/sh\necho 'Python {version}'\n"));
}

/// A fake `node` that only answers `--version`.
pub fn fake_node(path: &Path, version: &str) {
    write_exe(path, &format!("#!/bin/sh\necho 'v{version}'\n"));
}

/// Config for a cache under `dir`, with fake interpreters for every runtime
/// (so tests do not depend on what the host has installed).
pub fn test_config(dir: &Path) -> ArtifactsConfig {
    let mut config = ArtifactsConfig::new(dir.join("cache"));
    config.interpreters = fake_interpreters(&dir.join("interp"));
    config
}

pub fn fake_interpreters(dir: &Path) -> InterpreterConfig {
    let mut ic = InterpreterConfig::default();
    for r in Runtime::ALL {
        let path: PathBuf = dir.join(r.as_str()).join("bin").join(r.binary_name());
        if r.is_python() {
            fake_python(&path, &format!("{}.9", r.version_prefix()));
        } else {
            fake_node(&path, "22.3.0");
        }
        ic.overrides.insert(r, path);
    }
    ic.search_path = Some(vec![]);
    ic
}

pub fn small_limits(max_compressed: u64, max_uncompressed: u64, max_entries: u64) -> Limits {
    Limits {
        max_compressed,
        max_uncompressed,
        max_entries,
    }
}

pub fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}
