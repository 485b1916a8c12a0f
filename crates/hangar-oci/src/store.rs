//! The image store: resolve a reference, pull what is missing, verify every byte against its
//! digest, unpack once per image, remember which image a runtime version was given.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::client::{http_client, next_frame, read_limited, Http, RepoClient, MANIFEST_ACCEPT};
use crate::platform::{host_arch, Emulation};
use crate::reference::Reference;
use crate::registry::{Credentials, RegistryMap};
use crate::{unpack, OciError};

/// Settings of an [`ImageStore`].
#[derive(Debug, Clone)]
pub struct ImageStoreConfig {
    /// Root of the store, e.g. `<data-dir>/images`. Created if missing.
    pub dir: PathBuf,
    pub map: RegistryMap,
    pub credentials: Credentials,
    /// Largest image accepted, as the sum of its compressed layers and config. AgentCore's
    /// limit: 2 GB.
    pub max_image_bytes: u64,
    /// Largest unpacked root (file contents), a guard against decompression bombs.
    pub max_unpacked_bytes: u64,
    /// [`ImageStore::gc`] keeps images prepared less than this long ago even when unreferenced
    /// (a version may be being created).
    pub gc_grace: Duration,
    /// Where binfmt_misc registrations are read from (`/proc/sys/fs/binfmt_misc`).
    pub binfmt_dir: PathBuf,
}

impl ImageStoreConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ImageStoreConfig {
            dir: dir.into(),
            map: RegistryMap::default(),
            credentials: Credentials::default(),
            max_image_bytes: 2_000_000_000,
            max_unpacked_bytes: 8 << 30,
            gc_grace: Duration::from_secs(3600),
            binfmt_dir: PathBuf::from("/proc/sys/fs/binfmt_misc"),
        }
    }
}

/// What the image's config says about how to run it (`config` of the OCI image config).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    /// `NAME=value` entries.
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub working_dir: String,
    #[serde(default)]
    pub user: String,
}

/// An image present in the store, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedImage {
    /// Digest of the (platform) manifest; the image's identity in the store.
    pub digest: String,
    /// Host directory of the unpacked root; the sandbox's `/`, read-only.
    pub root: PathBuf,
    pub config: RunConfig,
    /// `os/architecture[/variant]` the image was built for.
    pub platform: String,
    /// Set when the image is for another architecture and runs through a qemu-user binfmt
    /// registration: the emulator's host path (mount it at the same path when `needs_mount`).
    pub emulation: Option<Emulation>,
}

/// Counters, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageStats {
    /// Manifests fetched from a registry.
    pub manifest_fetches: u64,
    /// Blobs (configs and layers) downloaded.
    pub blob_downloads: u64,
    /// Images unpacked into a new root.
    pub unpacks: u64,
}

/// What [`ImageStore::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageGcReport {
    pub images_removed: Vec<String>,
    pub blobs_removed: usize,
}

/// Saved next to each unpacked root.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ImageMeta {
    digest: String,
    platform: String,
    architecture: String,
    config: RunConfig,
    /// Every blob the image consists of (config and layers), for gc.
    blobs: Vec<String>,
}

/// A manifest as fetched: an image index (or Docker manifest list), or one image's manifest.
#[derive(Debug)]
enum Parsed {
    Index(Box<ImageIndex>),
    Manifest(Box<ImageManifest>),
}

/// Pulls and keeps images. One per server.
pub struct ImageStore {
    cfg: ImageStoreConfig,
    http: Http,
    /// Single flight per key (manifest digest): an image is pulled and unpacked once even when
    /// many versions ask at the same moment.
    locks: StdMutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// pins.json: version key → manifest digest (what a version was given, kept across restarts
    /// so a moved tag does not change a version's image).
    pins: StdMutex<HashMap<String, String>>,
    manifest_fetches: AtomicU64,
    blob_downloads: AtomicU64,
    unpacks: AtomicU64,
}

const MANIFEST_LIMIT: usize = 4 << 20;

impl ImageStore {
    pub fn new(cfg: ImageStoreConfig) -> Result<Self, OciError> {
        for d in ["blobs/sha256", "images", "tmp"] {
            fs::create_dir_all(cfg.dir.join(d))
                .map_err(|e| OciError::io(format!("creating {}", cfg.dir.join(d).display()), e))?;
        }
        // Leftovers of an interrupted pull or unpack.
        for d in ["tmp", "images"] {
            if let Ok(rd) = fs::read_dir(cfg.dir.join(d)) {
                for e in rd.flatten() {
                    if e.file_name().to_string_lossy().starts_with(".tmp-") || d == "tmp" {
                        let _ = fs::remove_dir_all(e.path()).or_else(|_| fs::remove_file(e.path()));
                    }
                }
            }
        }
        // The store's directories must be searchable by session uids (roots are bound into
        // sandboxes from under them).
        set_mode(&cfg.dir, 0o755);
        set_mode(&cfg.dir.join("images"), 0o755);
        let pins = fs::read(cfg.dir.join("pins.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ok(ImageStore {
            cfg,
            http: http_client(),
            locks: StdMutex::new(HashMap::new()),
            pins: StdMutex::new(pins),
            manifest_fetches: AtomicU64::new(0),
            blob_downloads: AtomicU64::new(0),
            unpacks: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &ImageStoreConfig {
        &self.cfg
    }

    pub fn stats(&self) -> ImageStats {
        ImageStats {
            manifest_fetches: self.manifest_fetches.load(Ordering::Relaxed),
            blob_downloads: self.blob_downloads.load(Ordering::Relaxed),
            unpacks: self.unpacks.load(Ordering::Relaxed),
        }
    }

    fn image_dir(&self, digest: &str) -> PathBuf {
        self.cfg
            .dir
            .join("images")
            .join(digest.trim_start_matches("sha256:"))
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.cfg
            .dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    /// The image `uri` names, pulled and unpacked if it is not in the store yet. `pin` (e.g.
    /// `runtimeId/version`) ties the answer to a caller: a later call with the same pin gets the
    /// same image without asking the registry, even if the tag has moved since.
    pub async fn prepare(&self, uri: &str, pin: Option<&str>) -> Result<PreparedImage, OciError> {
        let reference = Reference::parse(uri)?;
        let pinned = pin.and_then(|p| self.pins.lock().expect("poisoned").get(p).cloned());
        if let Some(digest) = pinned {
            if let Some(image) = self.load(&digest)? {
                return self.finish(&reference, image);
            }
        }
        let image = self.pull(&reference).await?;
        if let Some(p) = pin {
            let mut pins = self.pins.lock().expect("poisoned");
            if pins.get(p) != Some(&image.digest) {
                pins.insert(p.to_owned(), image.digest.clone());
                self.save_pins(&pins);
            }
        }
        self.finish(&reference, image)
    }

    /// Forgets a pin (the version is gone); its image is then garbage unless others use it.
    pub fn unpin(&self, pin: &str) {
        let mut pins = self.pins.lock().expect("poisoned");
        if pins.remove(pin).is_some() {
            self.save_pins(&pins);
        }
    }

    fn save_pins(&self, pins: &HashMap<String, String>) {
        let path = self.cfg.dir.join("pins.json");
        let tmp = self.cfg.dir.join("pins.json.tmp");
        let ok = serde_json::to_vec(pins)
            .ok()
            .and_then(|b| fs::write(&tmp, b).ok())
            .and_then(|_| fs::rename(&tmp, &path).ok());
        if ok.is_none() {
            tracing::warn!(path = %path.display(), "could not save image pins");
        }
    }

    fn finish(&self, reference: &Reference, meta: ImageMeta) -> Result<PreparedImage, OciError> {
        let emulation = if native(&meta.architecture) {
            None
        } else {
            Some(
                Emulation::find(&self.cfg.binfmt_dir, &meta.architecture).ok_or_else(|| {
                    crate::platform::arch_error(reference, &meta.platform, &self.cfg.binfmt_dir)
                })?,
            )
        };
        Ok(PreparedImage {
            root: self.image_dir(&meta.digest).join("rootfs"),
            digest: meta.digest,
            config: meta.config,
            platform: meta.platform,
            emulation,
        })
    }

    fn load(&self, digest: &str) -> Result<Option<ImageMeta>, OciError> {
        match fs::read(self.image_dir(digest).join("image.json")) {
            Ok(b) => Ok(serde_json::from_slice(&b).ok()),
            Err(_) => Ok(None),
        }
    }

    async fn pull(&self, reference: &Reference) -> Result<ImageMeta, OciError> {
        let target = self.cfg.map.resolve(reference)?;
        let credential = self
            .cfg
            .credentials
            .for_hosts(&reference.registry, &target.authority)
            .cloned();
        let named = reference.to_string();
        let repo = RepoClient::new(self.http.clone(), target, named.clone(), credential);

        let (bytes, digest) = match self
            .fetch_manifest(&repo, reference.manifest_ref(), &named)
            .await
        {
            Err(OciError::Unreachable(why)) if !self.cfg.map.maps(&reference.registry) => {
                let example = if reference.is_ecr() {
                    "'ecr=http://127.0.0.1:5000'".to_owned()
                } else {
                    format!("'{}=http://127.0.0.1:5000'", reference.registry)
                };
                return Err(OciError::Unreachable(format!(
                    "{why}; to pull the image from a mirror instead, push it there and map the \
                     registry to it with --registry-map {example}"
                )));
            }
            r => r?,
        };
        if let Some(want) = &reference.digest {
            if &digest != want {
                return Err(OciError::DigestMismatch(format!(
                    "{named}: the registry's manifest hashes to {digest}, not the {want} the \
                     reference names"
                )));
            }
        }
        let mut digest = digest;
        let manifest = match parse_manifest(&bytes, &named)? {
            Parsed::Manifest(m) => *m,
            Parsed::Index(index) => {
                let list = index.manifests();
                let chosen = crate::platform::choose(
                    list.iter().map(|d| (d.platform().clone(), "")),
                    &self.cfg.binfmt_dir,
                )
                .map_err(|available| {
                    crate::platform::arch_error_multi(reference, &available, &self.cfg.binfmt_dir)
                })?;
                let want = list[chosen].digest().to_string();
                let (b, got) = self.fetch_manifest(&repo, &want, &named).await?;
                if got != want {
                    return Err(OciError::DigestMismatch(format!(
                        "{named}: the platform manifest {want} hashes to {got}"
                    )));
                }
                digest = got;
                match parse_manifest(&b, &named)? {
                    Parsed::Manifest(m) => *m,
                    Parsed::Index(_) => {
                        return Err(OciError::Unsupported(format!(
                            "{named}: an index inside an index"
                        )))
                    }
                }
            }
        };
        let config_desc = manifest.config();
        let total: u64 =
            config_desc.size() + manifest.layers().iter().map(|l| l.size()).sum::<u64>();
        if total > self.cfg.max_image_bytes {
            return Err(OciError::TooLarge(format!(
                "{named} is too large: {} in its layers, over the limit of {} (AgentCore \
                 accepts images up to 2 GB)",
                human(total),
                human(self.cfg.max_image_bytes)
            )));
        }

        let lock = {
            let mut locks = self.locks.lock().expect("poisoned");
            locks.entry(digest.clone()).or_default().clone()
        };
        let _guard = lock.lock().await;
        if let Some(meta) = self.load(&digest)? {
            return Ok(meta);
        }

        self.ensure_blob(&repo, config_desc, &named, 1 << 20)
            .await?;
        let config_bytes = fs::read(self.blob_path(config_desc.digest().as_ref()))
            .map_err(|e| OciError::io("reading the image config", e))?;
        let config = parse_config(&config_bytes, &named)?;
        let (os, architecture) = (config.os().to_string(), config.architecture().to_string());
        let platform = match config.variant() {
            Some(v) => format!("{os}/{architecture}/{v}"),
            None => format!("{os}/{architecture}"),
        };
        if os != "linux" && !os.is_empty() {
            return Err(OciError::Unsupported(format!(
                "{named}: built for {platform}; only linux images run here"
            )));
        }
        // Say so before downloading layers that could not run.
        if !native(&architecture) && Emulation::find(&self.cfg.binfmt_dir, &architecture).is_none()
        {
            return Err(crate::platform::arch_error(
                reference,
                &platform,
                &self.cfg.binfmt_dir,
            ));
        }
        for layer in manifest.layers() {
            let media_type = layer.media_type().to_string();
            if media_type.contains("zstd") {
                return Err(OciError::Unsupported(format!(
                    "{named}: layer {} is zstd-compressed ({media_type}); push it with gzip \
                     layers",
                    layer.digest()
                )));
            }
            self.ensure_blob(&repo, layer, &named, self.cfg.max_image_bytes)
                .await?;
        }

        let c = config.config().clone().unwrap_or_default();
        let meta = ImageMeta {
            digest: digest.clone(),
            platform,
            architecture,
            config: RunConfig {
                entrypoint: c.entrypoint().clone().unwrap_or_default(),
                cmd: c.cmd().clone().unwrap_or_default(),
                env: c.env().clone().unwrap_or_default(),
                working_dir: c.working_dir().clone().unwrap_or_default(),
                user: c.user().clone().unwrap_or_default(),
            },
            blobs: std::iter::once(config_desc.digest().to_string())
                .chain(manifest.layers().iter().map(|l| l.digest().to_string()))
                .collect(),
        };
        let layers: Vec<(String, PathBuf, bool)> = manifest
            .layers()
            .iter()
            .map(|l| {
                let digest = l.digest().to_string();
                let path = self.blob_path(&digest);
                (digest, path, l.media_type().to_string().ends_with("gzip"))
            })
            .collect();
        let dest = self.image_dir(&digest);
        let tmp = self.cfg.dir.join("images").join(format!(
            ".tmp-{}-{:08x}",
            digest.trim_start_matches("sha256:"),
            rand::random::<u32>()
        ));
        let limit = self.cfg.max_unpacked_bytes;
        let meta2 = meta.clone();
        let t0 = std::time::Instant::now();
        let res = tokio::task::spawn_blocking(move || {
            unpack_image(&tmp, &dest, &layers, &meta2, limit).inspect_err(|_| {
                let _ = fs::remove_dir_all(&tmp);
            })
        })
        .await
        .map_err(|e| OciError::io("unpacking", std::io::Error::other(e.to_string())))?;
        res?;
        self.unpacks.fetch_add(1, Ordering::Relaxed);
        tracing::info!(image = %named, digest = %digest, ms = t0.elapsed().as_millis() as u64, "image unpacked");
        Ok(meta)
    }

    async fn fetch_manifest(
        &self,
        repo: &RepoClient,
        reference: &str,
        named: &str,
    ) -> Result<(Vec<u8>, String), OciError> {
        let resp = repo
            .get("manifests", reference, Some(MANIFEST_ACCEPT))
            .await?;
        self.manifest_fetches.fetch_add(1, Ordering::Relaxed);
        let bytes = read_limited(resp, MANIFEST_LIMIT)
            .await
            .map_err(|e| match e {
                OciError::TooLarge(_) => {
                    OciError::TooLarge(format!("{named}: manifest over 4 MiB"))
                }
                e => e,
            })?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        Ok((bytes, digest))
    }

    /// Downloads a blob unless the store has it, verifying size and digest before it becomes
    /// visible under its digest.
    async fn ensure_blob(
        &self,
        repo: &RepoClient,
        d: &Descriptor,
        named: &str,
        limit: u64,
    ) -> Result<(), OciError> {
        let digest = d.digest().to_string();
        let size = d.size();
        let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
            OciError::Unsupported(format!("{named}: blob digest {digest} is not sha256"))
        })?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(OciError::Unsupported(format!(
                "{named}: malformed digest {digest}"
            )));
        }
        let path = self.blob_path(&digest);
        if path.exists() {
            return Ok(());
        }
        let resp = repo.get("blobs", &digest, None).await?;
        let tmp = self
            .cfg
            .dir
            .join("tmp")
            .join(format!("{hex}-{:08x}", rand::random::<u32>()));
        let mut file = fs::File::create(&tmp).map_err(|e| OciError::io("creating a blob", e))?;
        let mut hasher = Sha256::new();
        let mut n: u64 = 0;
        let max = if size > 0 { size } else { limit };
        let mut body = resp.into_body();
        let result: Result<(), OciError> = async {
            while let Some(frame) = next_frame(&mut body)
                .await
                .map_err(|e| OciError::Unreachable(format!("{named}: blob {digest}: {e}")))?
            {
                if let Ok(data) = frame.into_data() {
                    n += data.len() as u64;
                    if n > max {
                        return Err(OciError::DigestMismatch(format!(
                            "{named}: blob {digest} is longer than the {max} bytes its \
                             descriptor declares"
                        )));
                    }
                    hasher.update(&data);
                    file.write_all(&data)
                        .map_err(|e| OciError::io("writing a blob", e))?;
                }
            }
            let got = format!("sha256:{}", hex::encode(hasher.finalize_reset()));
            if got != digest {
                return Err(OciError::DigestMismatch(format!(
                    "{named}: blob {digest} ({n} bytes received) hashes to {got}"
                )));
            }
            if size > 0 && n != size {
                return Err(OciError::DigestMismatch(format!(
                    "{named}: blob {digest} is {n} bytes, its descriptor says {size}"
                )));
            }
            Ok(())
        }
        .await;
        drop(file);
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, &path).map_err(|e| OciError::io("storing a blob", e))?;
        self.blob_downloads.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Removes unpacked images whose digest is not in `keep` (and older than the grace period),
    /// then every blob no remaining image consists of. Pins of removed images are dropped.
    pub fn gc(&self, keep: &HashSet<String>) -> Result<ImageGcReport, OciError> {
        let mut report = ImageGcReport::default();
        let now = SystemTime::now();
        let mut live_blobs: HashSet<String> = HashSet::new();
        let images = self.cfg.dir.join("images");
        let rd = fs::read_dir(&images).map_err(|e| OciError::io("listing images", e))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let digest = format!("sha256:{name}");
            let young = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_none_or(|age| age < self.cfg.gc_grace);
            if keep.contains(&digest) || young {
                if let Some(meta) = self.load(&digest)? {
                    live_blobs.extend(meta.blobs);
                }
                continue;
            }
            fs::remove_dir_all(e.path()).map_err(|e| OciError::io("removing an image", e))?;
            report.images_removed.push(digest);
        }
        if !report.images_removed.is_empty() {
            let mut pins = self.pins.lock().expect("poisoned");
            pins.retain(|_, d| !report.images_removed.contains(d));
            self.save_pins(&pins);
        }
        let blobs = self.cfg.dir.join("blobs/sha256");
        for e in fs::read_dir(&blobs)
            .map_err(|e| OciError::io("listing blobs", e))?
            .flatten()
        {
            let digest = format!("sha256:{}", e.file_name().to_string_lossy());
            // A blob downloaded moments ago may belong to a pull that has not unpacked yet.
            let young = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_none_or(|age| age < self.cfg.gc_grace);
            if !live_blobs.contains(&digest) && !young {
                let _ = fs::remove_file(e.path());
                report.blobs_removed += 1;
            }
        }
        Ok(report)
    }

    /// The keys currently pinned (each with the image digest it holds).
    pub fn pins(&self) -> Vec<(String, String)> {
        let pins = self.pins.lock().expect("poisoned");
        pins.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Digests of the images pinned by keys for which `live` says true; what [`gc`](Self::gc)
    /// should keep. Pins of dead keys are dropped.
    pub fn live_pins(&self, live: impl Fn(&str) -> bool) -> HashSet<String> {
        let mut pins = self.pins.lock().expect("poisoned");
        let before = pins.len();
        pins.retain(|k, _| live(k));
        if pins.len() != before {
            self.save_pins(&pins);
        }
        pins.values().cloned().collect()
    }
}

/// An image config without an architecture (some build tools omit it) is taken as native.
fn native(arch: &str) -> bool {
    arch.is_empty() || arch == host_arch()
}

/// An index (OCI, or a Docker manifest list) or an image manifest (OCI, or Docker schema 2; the
/// same shape), told apart by `mediaType` or, when that is absent, by a `manifests` array.
fn parse_manifest(bytes: &[u8], named: &str) -> Result<Parsed, OciError> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        OciError::Unsupported(format!("{named}: the manifest is not valid JSON: {e}"))
    })?;
    if v.get("schemaVersion").and_then(|s| s.as_u64()) == Some(1) {
        return Err(OciError::Unsupported(format!(
            "{named}: Docker schema 1 manifests are obsolete; push the image again"
        )));
    }
    let media_type = v
        .get("mediaType")
        .and_then(|m| m.as_str())
        .map(MediaType::from);
    let index = match &media_type {
        Some(MediaType::ImageIndex) => true,
        Some(MediaType::Other(m)) if m == DOCKER_MANIFEST_LIST => true,
        Some(_) => false,
        None => v.get("manifests").is_some(),
    };
    let described = media_type.map_or_else(String::new, |m| format!(" ({m})"));
    if index {
        serde_json::from_value(v)
            .map(|i| Parsed::Index(Box::new(i)))
            .map_err(|e| {
                OciError::Unsupported(format!("{named}: not a valid image index{described}: {e}"))
            })
    } else {
        serde_json::from_value(v)
            .map(Parsed::Manifest)
            .map_err(|e| {
                OciError::Unsupported(format!(
                    "{named}: not a valid image manifest{described}: {e}"
                ))
            })
    }
}

const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The image config. Some build tools leave out `architecture` (then taken as the host's), `os`
/// or `rootfs` (only the layers the manifest lists are used here); those are filled in empty.
fn parse_config(bytes: &[u8], named: &str) -> Result<ImageConfiguration, OciError> {
    let invalid = |e: serde_json::Error| {
        OciError::Unsupported(format!("{named}: the image config is not valid: {e}"))
    };
    let mut v: serde_json::Value = serde_json::from_slice(bytes).map_err(invalid)?;
    let obj = v.as_object_mut().ok_or_else(|| {
        OciError::Unsupported(format!("{named}: the image config is not a JSON object"))
    })?;
    for key in ["architecture", "os"] {
        obj.entry(key).or_insert_with(|| "".into());
    }
    obj.entry("rootfs")
        .or_insert_with(|| serde_json::json!({"type": "layers", "diff_ids": []}));
    serde_json::from_value(v).map_err(invalid)
}

fn unpack_image(
    tmp: &Path,
    dest: &Path,
    layers: &[(String, PathBuf, bool)],
    meta: &ImageMeta,
    limit: u64,
) -> Result<(), OciError> {
    let rootfs = tmp.join("rootfs");
    fs::create_dir_all(&rootfs).map_err(|e| OciError::io("creating a root", e))?;
    set_mode(tmp, 0o755);
    set_mode(&rootfs, 0o755);
    let mut budget = limit;
    for (digest, path, gzip) in layers {
        let f = fs::File::open(path).map_err(|e| OciError::io(format!("opening {digest}"), e))?;
        let mut r = BufReader::with_capacity(256 << 10, f);
        let mut magic = [0u8; 2];
        let gz = *gzip || {
            // Media types lie sometimes (docker "tar.gzip" vs plain tar): trust the bytes.
            let n = r.get_mut().read(&mut magic).unwrap_or(0);
            let _ = std::io::Seek::rewind(r.get_mut());
            n == 2 && magic == [0x1f, 0x8b]
        };
        if gz {
            unpack::apply_layer(
                &rootfs,
                flate2::read::GzDecoder::new(r),
                digest,
                &mut budget,
                limit,
            )?;
        } else {
            unpack::apply_layer(&rootfs, r, digest, &mut budget, limit)?;
        }
    }
    // The working directory must exist in a root the sandbox sees read-only (Docker creates it
    // at build time; images assembled by other tools may not have).
    let wd = meta.config.working_dir.trim_matches('/');
    if !wd.is_empty() && unpack::resolve_in_root(&rootfs, &meta.config.working_dir).is_none() {
        if let Ok(Some(rel)) = unpack::clean(wd.as_bytes()) {
            let mut p = rootfs.clone();
            for c in rel.components() {
                p.push(c);
                if fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
                    break;
                }
                if fs::create_dir(&p).is_ok() {
                    set_mode(&p, 0o755);
                }
            }
        }
    }
    fs::write(
        tmp.join("image.json"),
        serde_json::to_vec_pretty(meta).expect("serializable"),
    )
    .map_err(|e| OciError::io("writing image.json", e))?;
    match fs::rename(tmp, dest) {
        Ok(()) => Ok(()),
        // Another process sharing the store finished first; its tree is the same bytes.
        Err(_) if dest.join("image.json").exists() => {
            let _ = fs::remove_dir_all(tmp);
            Ok(())
        }
        Err(e) => Err(OciError::io("publishing an unpacked image", e)),
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(p, fs::Permissions::from_mode(mode));
}

fn human(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.2} GB", n as f64 / 1e9)
    } else if n >= 1_000_000 {
        format!("{:.1} MB", n as f64 / 1e6)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    #[test]
    fn manifests_and_indexes() {
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "digest": D, "size": 2},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "digest": D, "size": 2}]
        });
        let b = serde_json::to_vec(&manifest).unwrap();
        let Parsed::Manifest(m) = parse_manifest(&b, "x").unwrap() else {
            panic!("not a manifest")
        };
        assert_eq!(m.layers()[0].digest().to_string(), D);
        assert!(m.layers()[0].media_type().to_string().ends_with("gzip"));

        // An index without mediaType is told apart by its `manifests`.
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": D, "size": 2,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}]});
        let b = serde_json::to_vec(&index).unwrap();
        let Parsed::Index(i) = parse_manifest(&b, "x").unwrap() else {
            panic!("not an index")
        };
        let p = i.manifests()[0].platform().clone().unwrap();
        assert_eq!(p.architecture().to_string(), "arm64");

        let e = parse_manifest(br#"{"schemaVersion": 1, "fsLayers": []}"#, "x").unwrap_err();
        assert!(e.to_string().contains("schema 1"), "{e}");
        let e = parse_manifest(br#"{"schemaVersion": 2, "layers": []}"#, "x").unwrap_err();
        assert!(matches!(e, OciError::Unsupported(_)), "{e}");
        assert!(e.to_string().contains("config"), "{e}");
    }

    #[test]
    fn configs_missing_optional_parts() {
        let c = parse_config(
            br#"{"config": {"Entrypoint": ["/a"], "WorkingDir": "/w"}}"#,
            "x",
        )
        .unwrap();
        assert_eq!(c.architecture().to_string(), "");
        assert!(native(&c.architecture().to_string()));
        let run = c.config().clone().unwrap();
        assert_eq!(run.entrypoint().clone().unwrap(), vec!["/a".to_owned()]);
        assert_eq!(run.working_dir().as_deref(), Some("/w"));
        let c = parse_config(br#"{"architecture": "arm64", "os": "linux"}"#, "x").unwrap();
        assert_eq!(c.os().to_string(), "linux");
        assert!(parse_config(b"[]", "x").is_err());
    }
}
