//! Code artifacts for AgentRuntimes created with
//! `agentRuntimeArtifact.codeConfiguration`: fetch the zip (S3 or a local
//! directory), verify it, unpack it once into a content-addressed cache,
//! find the interpreter, and say how to start it.
//!
//! The provisioner calls one method, [`Artifacts::prepare_code`], and gets a
//! [`PreparedCode`]: a host directory to mount read-only at `/var/task`, the
//! interpreter and the directories it needs mounted, and the argv to run —
//! or an [`ArtifactError`] whose text is the runtime's `failureReason`.
//!
//! # Cache layout (under [`ArtifactsConfig::cache_dir`], e.g. `<data-dir>/artifacts`)
//!
//! ```text
//! code/<sha256 of the zip>/      unpacked trees, read-only by convention
//! code/.tmp-<sha256>-<random>/   an unpack in progress (renamed into place when done)
//! downloads/                     zips being downloaded (deleted once unpacked)
//! index.json                     (endpoint, bucket, key, versionId) → ETag, sha256
//! ```
//!
//! The key of a tree is the SHA-256 of the zip bytes, so two runtimes (or two
//! versions) with the same zip share one tree, and a tree is never changed
//! after the rename that publishes it.
//!
//! # Not fetching the same object twice
//!
//! `index.json` remembers, per object (source endpoint, bucket, key,
//! versionId), the ETag and digest of what was last fetched:
//! - with a `versionId`, S3 object versions are immutable, so a known
//!   version whose tree exists is used without any request;
//! - without one ("latest"), a conditional `GET` with `If-None-Match: <ETag>`
//!   is sent; `304 Not Modified` reuses the tree, `200` brings the new zip.
//!
//! Concurrent calls for the same object are serialised by a per-object async
//! lock, and a caller that waited while another fetched reuses that result
//! without asking again (single flight). Unpacking is serialised per digest.
//! The index is only a cache: if it is lost or corrupt, objects are fetched
//! again and land in the same trees.

mod config;
mod error;
mod interpreter;
mod launch;
mod s3;
mod source;
mod unpack;

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::Instrument;

pub use config::{CodeConfiguration, Limits, Runtime};
pub use error::{ArtifactError, FailureReason};
pub use interpreter::{parse_override, Interpreter, InterpreterConfig, InterpreterResolver};
pub use launch::{plan_launch, LaunchPlan, SANDBOX_CODE_DIR};
pub use s3::{resolve_credentials_with, CredentialsSource, S3Config, S3Source, StaticCredentials};
pub use source::{DirSource, FetchOutcome, ObjectMeta, ObjectRequest, ObjectSource, Sink};

/// Settings for [`Artifacts`].
#[derive(Debug, Clone)]
pub struct ArtifactsConfig {
    /// Root of the cache, e.g. `<data-dir>/artifacts`. Created if missing.
    pub cache_dir: PathBuf,
    pub limits: Limits,
    pub interpreters: InterpreterConfig,
    /// [`Artifacts::gc`] never removes a tree prepared less than this long
    /// ago, even if `keep` does not name it: the provisioner may not have
    /// recorded the new version yet.
    pub gc_grace: Duration,
}

impl ArtifactsConfig {
    /// AgentCore's limits, default interpreter search, one hour of gc grace.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        ArtifactsConfig {
            cache_dir: cache_dir.into(),
            limits: Limits::default(),
            interpreters: InterpreterConfig::default(),
            gc_grace: Duration::from_secs(3600),
        }
    }
}

/// An object of the source by location.
#[derive(Debug, Clone, Copy)]
pub struct ObjectRef<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    /// `None`: the latest version.
    pub version_id: Option<&'a str>,
}

impl ObjectRef<'_> {
    /// `s3://bucket/key` (plus `?versionId=`), for messages and logs.
    pub fn url(&self) -> String {
        config::object_url(self.bucket, self.key, self.version_id)
    }
}

/// Everything the provisioner needs to start a session's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedCode {
    /// Host path of the unpacked tree; mount it read-only at [`SANDBOX_CODE_DIR`].
    pub code_dir: PathBuf,
    /// SHA-256 (lowercase hex) of the zip; what [`Artifacts::gc`]'s `keep` names.
    pub digest: String,
    /// Absolute path of the interpreter (the same inside the sandbox).
    pub interpreter: PathBuf,
    /// Directories to mount read-only at the same paths for the interpreter.
    pub interpreter_mounts: Vec<PathBuf>,
    /// argv inside the sandbox; run it with cwd [`SANDBOX_CODE_DIR`].
    pub argv: Vec<String>,
    /// Environment the launch needs (for Python: `PYTHONPATH=/var/task`).
    pub env: Vec<(String, String)>,
}

/// Counters, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArtifactStats {
    /// Object bodies downloaded.
    pub fetches: u64,
    /// Conditional requests answered "not modified".
    pub not_modified: u64,
    /// Calls served from the index without any request.
    pub index_hits: u64,
    /// Zips unpacked into a new tree.
    pub unpacks: u64,
}

/// What [`Artifacts::gc`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Digests whose trees were removed.
    pub removed: Vec<String>,
    /// Digests still on disk.
    pub kept: Vec<String>,
}

/// The artifact cache and the way in for the provisioner.
pub struct Artifacts {
    config: ArtifactsConfig,
    source: Arc<dyn ObjectSource>,
    resolver: InterpreterResolver,
    index: tokio::sync::Mutex<Index>,
    object_locks: KeyedLocks,
    digest_locks: KeyedLocks,
    /// Read-held by every prepare, write-held by gc: gc never deletes a
    /// download or tree that a prepare is working on.
    gate: tokio::sync::RwLock<()>,
    /// When each digest was last handed out (for gc grace).
    recent: StdMutex<HashMap<String, Instant>>,
    fetches: AtomicU64,
    not_modified: AtomicU64,
    index_hits: AtomicU64,
    unpacks: AtomicU64,
}

impl std::fmt::Debug for Artifacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Artifacts")
            .field("cache_dir", &self.config.cache_dir)
            .field("source", &self.source.endpoint())
            .finish()
    }
}

impl Artifacts {
    /// Open (creating if needed) the cache and clean what an earlier run left
    /// half-done. One process per cache directory.
    pub fn new(
        config: ArtifactsConfig,
        source: Arc<dyn ObjectSource>,
    ) -> Result<Self, ArtifactError> {
        for dir in [
            config.cache_dir.clone(),
            config.cache_dir.join("code"),
            config.cache_dir.join("downloads"),
        ] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| ArtifactError::io(format!("cannot create {}", dir.display()), e))?;
        }
        // Session uids must be able to reach code/<digest> (bind mounts are
        // resolved with the caller's permissions). The data dir above is the
        // operator's choice.
        for dir in [config.cache_dir.clone(), config.cache_dir.join("code")] {
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
        }
        remove_leftovers(&config.cache_dir);
        let index = Index::load(&config.cache_dir.join("index.json"));
        Ok(Artifacts {
            resolver: InterpreterResolver::new(config.interpreters.clone()),
            config,
            source,
            index: tokio::sync::Mutex::new(index),
            object_locks: KeyedLocks::default(),
            digest_locks: KeyedLocks::default(),
            gate: tokio::sync::RwLock::new(()),
            recent: StdMutex::new(HashMap::new()),
            fetches: AtomicU64::new(0),
            not_modified: AtomicU64::new(0),
            index_hits: AtomicU64::new(0),
            unpacks: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &ArtifactsConfig {
        &self.config
    }

    pub fn source(&self) -> &Arc<dyn ObjectSource> {
        &self.source
    }

    pub fn interpreters(&self) -> &InterpreterResolver {
        &self.resolver
    }

    pub fn stats(&self) -> ArtifactStats {
        ArtifactStats {
            fetches: self.fetches.load(Ordering::Relaxed),
            not_modified: self.not_modified.load(Ordering::Relaxed),
            index_hits: self.index_hits.load(Ordering::Relaxed),
            unpacks: self.unpacks.load(Ordering::Relaxed),
        }
    }

    /// Host path of the tree for `digest` (whether or not it exists).
    pub fn code_dir(&self, digest: &str) -> PathBuf {
        self.config.cache_dir.join("code").join(digest)
    }

    /// [`Artifacts::prepare_code`] on the JSON of `codeConfiguration`.
    pub async fn prepare_code_json(
        &self,
        code_configuration: &serde_json::Value,
    ) -> Result<PreparedCode, FailureReason> {
        self.prepare_code(&CodeConfiguration::from_json(code_configuration)?)
            .await
    }

    /// Resolve the interpreter, fetch + verify + unpack the zip (or reuse the
    /// cached tree), and build the argv.
    pub async fn prepare_code(
        &self,
        config: &CodeConfiguration,
    ) -> Result<PreparedCode, FailureReason> {
        let span =
            tracing::info_span!("prepare_code", url = %config.url(), runtime = %config.runtime);
        async move {
            config.validate()?;
            // First, so a missing interpreter fails before a 250 MiB download.
            let interpreter = self.resolver.resolve(config.runtime).await?;
            let _gate = self.gate.read().await;
            let digest = self
                .obtain(ObjectRef {
                    bucket: &config.bucket,
                    key: &config.key,
                    version_id: config.version_id.as_deref(),
                })
                .await?;
            self.recent
                .lock()
                .expect("poisoned")
                .insert(digest.clone(), Instant::now());
            let code_dir = self.code_dir(&digest);
            if config.runtime.is_python() {
                self.precompile(&digest, &interpreter.path).await;
            }
            let plan = {
                let code_dir = code_dir.clone();
                let path = interpreter.path.clone();
                let entry_point = config.entry_point.clone();
                let runtime = config.runtime;
                tokio::task::spawn_blocking(move || {
                    plan_launch(&code_dir, runtime, &path, &entry_point)
                })
                .await
                .map_err(|e| {
                    ArtifactError::io("launch planning panicked", std::io::Error::other(e))
                })??
            };
            tracing::info!(digest = %digest, argv = ?plan.argv, "code prepared");
            Ok(PreparedCode {
                code_dir,
                digest,
                interpreter: interpreter.path,
                interpreter_mounts: interpreter.mounts,
                argv: plan.argv,
                env: plan.env,
            })
        }
        .instrument(span)
        .await
    }

    /// Fetch, verify and unpack a zip that is not agent code (a browser extension): the host
    /// path of its unpacked tree, shared and cached as code trees are.
    pub async fn prepare_tree(&self, object: ObjectRef<'_>) -> Result<PathBuf, ArtifactError> {
        let span = tracing::info_span!("prepare_tree", url = %object.url());
        async move {
            let _gate = self.gate.read().await;
            let digest = self.obtain(object).await?;
            self.recent
                .lock()
                .expect("poisoned")
                .insert(digest.clone(), Instant::now());
            Ok(self.code_dir(&digest))
        }
        .instrument(span)
        .await
    }

    /// Fetch a small object whole (a policy file); larger than `max_bytes` is an error.
    pub async fn fetch_bytes(
        &self,
        object: ObjectRef<'_>,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ArtifactError> {
        let download = tempfile::Builder::new()
            .prefix("dl-")
            .tempfile_in(self.config.cache_dir.join("downloads"))
            .map_err(|e| ArtifactError::io("cannot create a download file", e))?
            .into_temp_path();
        let url = object.url();
        let mut sink = Sink::create(download.to_path_buf(), max_bytes, url.clone()).await?;
        let request = ObjectRequest {
            bucket: object.bucket,
            key: object.key,
            version_id: object.version_id,
            if_none_match: None,
        };
        match self.source.fetch(&request, &mut sink).await? {
            FetchOutcome::NotModified => Err(ArtifactError::Transfer {
                url,
                endpoint: self.source.endpoint(),
                detail: "the server answered 304 Not Modified to an unconditional request".into(),
            }),
            FetchOutcome::Fetched(_) => {
                sink.finish().await?;
                self.fetches.fetch_add(1, Ordering::Relaxed);
                tokio::fs::read(&download)
                    .await
                    .map_err(|e| ArtifactError::io("cannot read the download", e))
            }
        }
    }

    /// Get the digest of the object's zip, fetching and unpacking it if needed.
    async fn obtain(&self, object: ObjectRef<'_>) -> Result<String, ArtifactError> {
        let started = Instant::now();
        let endpoint = self.source.endpoint();
        let key = IndexKey {
            endpoint: endpoint.clone(),
            bucket: object.bucket.to_owned(),
            key: object.key.to_owned(),
            version_id: object.version_id.map(str::to_owned),
        };
        let _object = self.object_locks.lock(&key.lock_name()).await;

        let known = self.index.lock().await.get(&key);
        let known = known.filter(|(e, _)| self.code_dir(&e.digest).is_dir());
        if let Some((entry, checked_at)) = &known {
            // A pinned version never changes; "latest" was just checked by the
            // caller we waited for.
            if object.version_id.is_some() || checked_at.is_some_and(|t| t >= started) {
                self.index_hits.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(digest = %entry.digest, "reusing cached object");
                return Ok(entry.digest.clone());
            }
        }

        let download = tempfile::Builder::new()
            .prefix("dl-")
            .suffix(".zip")
            .tempfile_in(self.config.cache_dir.join("downloads"))
            .map_err(|e| ArtifactError::io("cannot create a download file", e))?
            .into_temp_path();
        let url = object.url();
        let mut sink = Sink::create(
            download.to_path_buf(),
            self.config.limits.max_compressed,
            url.clone(),
        )
        .await?;
        let request = ObjectRequest {
            bucket: object.bucket,
            key: object.key,
            version_id: object.version_id,
            if_none_match: known.as_ref().and_then(|(e, _)| e.etag.as_deref()),
        };
        let t0 = Instant::now();
        match self.source.fetch(&request, &mut sink).await? {
            FetchOutcome::NotModified => {
                let Some((entry, _)) = known else {
                    return Err(ArtifactError::Transfer {
                        url,
                        endpoint,
                        detail: "the server answered 304 Not Modified to an unconditional request"
                            .to_string(),
                    });
                };
                self.not_modified.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(digest = %entry.digest, "object not modified");
                let digest = entry.digest.clone();
                self.index.lock().await.touch(&key);
                Ok(digest)
            }
            FetchOutcome::Fetched(meta) => {
                let (size, digest) = sink.finish().await?;
                self.fetches.fetch_add(1, Ordering::Relaxed);
                tracing::info!(bytes = size, digest = %digest, etag = ?meta.etag,
                    elapsed_ms = t0.elapsed().as_millis() as u64, "object fetched");
                self.unpack(&digest, &download, &url).await?;
                let entry = IndexEntry {
                    endpoint,
                    bucket: object.bucket.to_owned(),
                    key: object.key.to_owned(),
                    version_id: object.version_id.map(str::to_owned),
                    etag: meta.etag,
                    digest: digest.clone(),
                    size,
                };
                let mut index = self.index.lock().await;
                index.insert(key, entry);
                if let Err(e) = index.save(&self.config.cache_dir.join("index.json")) {
                    // Only a cache: losing it costs a refetch, not correctness.
                    tracing::warn!(error = %e, "cannot save the artifact index");
                }
                Ok(digest)
            }
        }
    }

    /// Unpack `zip` into `code/<digest>` unless that tree already exists.
    async fn unpack(&self, digest: &str, zip: &Path, url: &str) -> Result<(), ArtifactError> {
        let _lock = self.digest_locks.lock(digest).await;
        let target = self.code_dir(digest);
        if target.is_dir() {
            tracing::debug!(digest, "tree already unpacked");
            return Ok(());
        }
        let tmp = self
            .config
            .cache_dir
            .join("code")
            .join(format!(".tmp-{digest}-{:016x}", rand::random::<u64>()));
        std::fs::create_dir(&tmp)
            .map_err(|e| ArtifactError::io(format!("cannot create {}", tmp.display()), e))?;
        let (zip, limits, url) = (zip.to_path_buf(), self.config.limits, url.to_string());
        let t0 = Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let r = unpack::unpack_zip(&zip, &tmp, &limits, &url).and_then(|stats| {
                std::fs::rename(&tmp, &target).map_err(|e| {
                    ArtifactError::io(
                        format!("cannot rename {} to {}", tmp.display(), target.display()),
                        e,
                    )
                })?;
                Ok(stats)
            });
            if r.is_err() {
                let _ = std::fs::remove_dir_all(&tmp);
            }
            r
        })
        .await
        .map_err(|e| ArtifactError::io("unpacking panicked", std::io::Error::other(e)))?;
        let stats = result?;
        self.unpacks.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            digest,
            entries = stats.entries,
            bytes = stats.bytes,
            elapsed_ms = t0.elapsed().as_millis() as u64,
            "zip unpacked"
        );
        Ok(())
    }

    /// Compiles the tree's Python modules once, ahead of time. Sessions mount the code
    /// read-only, so without this every session start would compile every vendored module
    /// again (seconds for a typical agent, against ~0.3 s with bytecode present).
    /// Best effort: a module that does not compile fails where it is imported, as it would
    /// on AgentCore.
    async fn precompile(&self, digest: &str, interpreter: &Path) {
        let _lock = self.digest_locks.lock(digest).await;
        let tree = self.code_dir(digest);
        let tag: String = interpreter
            .to_string_lossy()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let marker = self
            .config
            .cache_dir
            .join("code")
            .join(format!(".{digest}.bytecode{tag}"));
        if marker.exists() {
            return;
        }
        let t0 = Instant::now();
        let status = tokio::process::Command::new(interpreter)
            .args(["-m", "compileall", "-q", "-j", "0"])
            .arg(&tree)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await;
        tracing::info!(
            digest,
            ok = status.as_ref().is_ok_and(|s| s.success()),
            elapsed_ms = t0.elapsed().as_millis() as u64,
            "bytecode compiled"
        );
        let _ = std::fs::write(&marker, b"");
    }

    /// Remove every unpacked tree whose digest is not in `keep` (and was not
    /// handed out within [`ArtifactsConfig::gc_grace`]), leftovers of
    /// interrupted work, and index entries pointing at removed trees.
    ///
    /// Waits for in-flight [`Artifacts::prepare_code`] calls to finish and
    /// holds new ones back while it runs.
    #[tracing::instrument(level = "info", skip_all, fields(keep = keep.len()))]
    pub async fn gc(&self, keep: &HashSet<String>) -> Result<GcReport, ArtifactError> {
        let _gate = self.gate.write().await;
        let code = self.config.cache_dir.join("code");
        let recent: HashSet<String> = {
            let mut r = self.recent.lock().expect("poisoned");
            r.retain(|_, t| t.elapsed() < self.config.gc_grace);
            r.keys().cloned().collect()
        };
        let keep = keep.clone();
        let cache_dir = self.config.cache_dir.clone();
        let report = tokio::task::spawn_blocking(move || -> Result<GcReport, ArtifactError> {
            remove_leftovers(&cache_dir);
            let mut report = GcReport::default();
            let rd = std::fs::read_dir(&code)
                .map_err(|e| ArtifactError::io(format!("cannot list {}", code.display()), e))?;
            for entry in rd.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !is_digest(&name) {
                    continue;
                }
                if keep.contains(&name) || recent.contains(&name) {
                    report.kept.push(name);
                    continue;
                }
                let path = entry.path();
                std::fs::remove_dir_all(&path).map_err(|e| {
                    ArtifactError::io(format!("cannot remove {}", path.display()), e)
                })?;
                report.removed.push(name);
            }
            report.removed.sort();
            report.kept.sort();
            Ok(report)
        })
        .await
        .map_err(|e| ArtifactError::io("gc panicked", std::io::Error::other(e)))??;
        let removed: HashSet<&String> = report.removed.iter().collect();
        let mut index = self.index.lock().await;
        if index.retain(|e| !removed.contains(&e.digest)) {
            if let Err(e) = index.save(&self.config.cache_dir.join("index.json")) {
                tracing::warn!(error = %e, "cannot save the artifact index");
            }
        }
        tracing::info!(
            removed = report.removed.len(),
            kept = report.kept.len(),
            "artifact gc done"
        );
        Ok(report)
    }
}

fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Delete half-done downloads and unpacks. Only safe when no prepare runs
/// (at startup, or under gc's write gate).
fn remove_leftovers(cache_dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(cache_dir.join("downloads")) {
        for e in rd.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    if let Ok(rd) = std::fs::read_dir(cache_dir.join("code")) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Identifies one object of one source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct IndexKey {
    endpoint: String,
    bucket: String,
    key: String,
    version_id: Option<String>,
}

impl IndexKey {
    fn lock_name(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}",
            self.endpoint,
            self.bucket,
            self.key,
            self.version_id.as_deref().unwrap_or("")
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct IndexEntry {
    endpoint: String,
    bucket: String,
    key: String,
    /// The version that was asked for (`None`: latest).
    version_id: Option<String>,
    etag: Option<String>,
    digest: String,
    size: u64,
}

impl IndexEntry {
    fn key(&self) -> IndexKey {
        IndexKey {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            version_id: self.version_id.clone(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct IndexFile {
    version: u32,
    objects: Vec<IndexEntry>,
}

/// The object → digest map, with when each entry was last confirmed by the
/// source in this process (never, for entries loaded from disk).
#[derive(Default)]
struct Index {
    entries: HashMap<IndexKey, (IndexEntry, Option<Instant>)>,
}

impl Index {
    fn load(path: &Path) -> Self {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(_) => return Index::default(),
        };
        match serde_json::from_str::<IndexFile>(&text) {
            Ok(f) if f.version == 1 => Index {
                entries: f
                    .objects
                    .into_iter()
                    .map(|e| (e.key(), (e, None)))
                    .collect(),
            },
            _ => {
                tracing::warn!(path = %path.display(), "ignoring an unreadable artifact index");
                Index::default()
            }
        }
    }

    fn get(&self, key: &IndexKey) -> Option<(IndexEntry, Option<Instant>)> {
        self.entries.get(key).cloned()
    }

    fn touch(&mut self, key: &IndexKey) {
        if let Some((_, t)) = self.entries.get_mut(key) {
            *t = Some(Instant::now());
        }
    }

    fn insert(&mut self, key: IndexKey, entry: IndexEntry) {
        self.entries.insert(key, (entry, Some(Instant::now())));
    }

    /// Keep entries for which `f` holds; true if any was dropped.
    fn retain(&mut self, f: impl Fn(&IndexEntry) -> bool) -> bool {
        let before = self.entries.len();
        self.entries.retain(|_, (e, _)| f(e));
        self.entries.len() != before
    }

    /// Write atomically (temp file + rename).
    fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut objects: Vec<IndexEntry> = self.entries.values().map(|(e, _)| e.clone()).collect();
        objects.sort_by_key(|e| e.key().lock_name());
        let text = serde_json::to_string_pretty(&IndexFile {
            version: 1,
            objects,
        })
        .map_err(std::io::Error::other)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, text.as_bytes())?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// One async mutex per key, created on demand and dropped when nobody holds
/// or waits for it.
#[derive(Default)]
struct KeyedLocks {
    map: StdMutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

struct KeyedGuard<'a> {
    locks: &'a KeyedLocks,
    key: String,
    mutex: Arc<tokio::sync::Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    async fn lock(&self, key: &str) -> KeyedGuard<'_> {
        let mutex = self
            .map
            .lock()
            .expect("poisoned")
            .entry(key.to_string())
            .or_default()
            .clone();
        let guard = mutex.clone().lock_owned().await;
        KeyedGuard {
            locks: self,
            key: key.to_string(),
            mutex,
            guard: Some(guard),
        }
    }
}

impl Drop for KeyedGuard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.locks.map.lock().expect("poisoned");
        // The map's reference and ours: nobody else holds or waits.
        if Arc::strong_count(&self.mutex) == 2 {
            map.remove(&self.key);
        }
    }
}
