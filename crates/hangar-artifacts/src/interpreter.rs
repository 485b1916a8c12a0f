//! Which host binary runs a runtime: `PYTHON_3_12` → a real `python3.12`,
//! `NODE_22` → a `node` that is v22.
//!
//! Search order, first hit wins:
//! 1. an explicit override (`--interpreter PYTHON_3_12=/opt/py312/bin/python3.12`,
//!    parsed by [`parse_override`]);
//! 2. the search path: by default `/usr/bin` first (the distribution's
//!    interpreter starts fastest and is what a sandbox mounts anyway), then
//!    `$PATH` in order.
//!
//! pyenv shims are never returned: a shim is a bash script that runs
//! `pyenv exec`, costs ~130 ms per start and depends on `PYENV_ROOT` and
//! per-directory version files (platform spec §0, §2.6). When the search
//! meets a shim it looks for the real binary in that pyenv's `versions/`
//! (highest matching version) and otherwise skips it.
//!
//! Versions are checked by running `BINARY --version` once per runtime (the
//! result is cached). A binary found by searching must match (a `node` that is
//! v20 does not satisfy `NODE_22`: that is a failure, not a warning, because
//! code written for 22 may not run on 20). An explicit override is trusted:
//! a mismatch is only logged, so an operator can knowingly run `NODE_22` on
//! another Node.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::config::Runtime;
use crate::error::ArtifactError;

/// How interpreters are found.
#[derive(Debug, Clone)]
pub struct InterpreterConfig {
    /// Runtime → binary, e.g. `PYTHON_3_12` → `/opt/py312/bin/python3.12`.
    pub overrides: BTreeMap<Runtime, PathBuf>,
    /// Directories searched in order. `None`: `/usr/bin`, then `$PATH`.
    pub search_path: Option<Vec<PathBuf>>,
    /// Run `--version` to verify what was found (default true).
    pub check_version: bool,
}

impl Default for InterpreterConfig {
    fn default() -> Self {
        InterpreterConfig {
            overrides: BTreeMap::new(),
            search_path: None,
            check_version: true,
        }
    }
}

/// Parse one `RUNTIME=PATH` override, as given to a repeated
/// `--interpreter PYTHON_3_12=/opt/py312/bin/python3.12` flag.
pub fn parse_override(s: &str) -> Result<(Runtime, PathBuf), ArtifactError> {
    let (runtime, path) = s.split_once('=').ok_or_else(|| {
        ArtifactError::InvalidConfig(format!(
            "interpreter override '{s}' must look like PYTHON_3_12=/path/to/python3.12"
        ))
    })?;
    let runtime: Runtime = runtime.trim().parse()?;
    let path = PathBuf::from(path.trim());
    if !path.is_absolute() {
        return Err(ArtifactError::InvalidConfig(format!(
            "interpreter override '{s}': the path must be absolute"
        )));
    }
    Ok((runtime, path))
}

/// A resolved interpreter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    pub runtime: Runtime,
    /// Absolute path to run (the same path inside the sandbox).
    pub path: PathBuf,
    /// What `--version` said (`3.11.2`, `22.1.0`), if it was checked.
    pub version: Option<String>,
    /// Directories the sandbox must mount (at the same paths) for the binary
    /// and its standard library: its prefix (`/usr`, `/opt/py312`, a pyenv
    /// version dir), and the real binary's prefix too when `path` is a
    /// symlink into another tree (a venv). System libraries (`/lib`, `/lib64`,
    /// `/etc/ld.so.cache`) are the sandbox's business.
    pub mounts: Vec<PathBuf>,
}

/// Resolves runtimes to interpreters and caches the successes (a failure is
/// looked up again next time, so installing the missing version fixes it
/// without a restart).
#[derive(Debug)]
pub struct InterpreterResolver {
    config: InterpreterConfig,
    cache: Mutex<HashMap<Runtime, Interpreter>>,
}

impl InterpreterResolver {
    pub fn new(config: InterpreterConfig) -> Self {
        InterpreterResolver {
            config,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The directories searched, in order.
    pub fn search_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = match &self.config.search_path {
            Some(d) => d.clone(),
            None => {
                let mut d = vec![PathBuf::from("/usr/bin")];
                if let Some(path) = std::env::var_os("PATH") {
                    d.extend(std::env::split_paths(&path));
                }
                d
            }
        };
        let mut seen = std::collections::HashSet::new();
        dirs.retain(|d| d.is_absolute() && seen.insert(d.clone()));
        dirs
    }

    #[tracing::instrument(level = "debug", skip(self), fields(runtime = %runtime))]
    pub async fn resolve(&self, runtime: Runtime) -> Result<Interpreter, ArtifactError> {
        if let Some(hit) = self.cache.lock().expect("poisoned").get(&runtime) {
            return Ok(hit.clone());
        }
        let found = match self.config.overrides.get(&runtime) {
            Some(path) => self.resolve_override(runtime, path).await?,
            None => self.search(runtime).await?,
        };
        tracing::info!(
            runtime = %runtime,
            path = %found.path.display(),
            version = ?found.version,
            mounts = ?found.mounts,
            "interpreter resolved"
        );
        self.cache
            .lock()
            .expect("poisoned")
            .insert(runtime, found.clone());
        Ok(found)
    }

    async fn resolve_override(
        &self,
        runtime: Runtime,
        path: &Path,
    ) -> Result<Interpreter, ArtifactError> {
        let problem = |p: &str| ArtifactError::InterpreterOverride {
            runtime: runtime.to_string(),
            path: path.to_path_buf(),
            problem: p.to_string(),
        };
        if !path.is_absolute() {
            return Err(problem("is not an absolute path"));
        }
        if !is_executable_file(path) {
            return Err(problem("does not exist or is not an executable file"));
        }
        let mut run = path.to_path_buf();
        if let Some(real) = pyenv_shim_target(path, runtime) {
            match real {
                Some(real) => {
                    tracing::warn!(shim = %path.display(), real = %real.display(),
                        "interpreter override is a pyenv shim; using the binary it stands for");
                    run = real;
                }
                None => {
                    return Err(problem(
                        "is a pyenv shim with no matching version installed",
                    ))
                }
            }
        }
        let version = if self.config.check_version {
            match run_version(&run, runtime).await {
                Ok(v) => {
                    if !version_matches(runtime, &v) {
                        tracing::warn!(runtime = %runtime, path = %run.display(), found = %v,
                            "explicitly configured interpreter reports another version; using it anyway");
                    }
                    Some(v)
                }
                Err(e) => return Err(problem(&format!("does not run: {e}"))),
            }
        } else {
            None
        };
        Ok(Interpreter {
            runtime,
            mounts: mounts_for(&run),
            path: run,
            version,
        })
    }

    async fn search(&self, runtime: Runtime) -> Result<Interpreter, ArtifactError> {
        let binary = runtime.binary_name();
        let dirs = self.search_dirs();
        let mut mismatch: Option<ArtifactError> = None;
        for dir in &dirs {
            let candidate = dir.join(binary);
            if !is_executable_file(&candidate) {
                continue;
            }
            let real = match pyenv_shim_target(&candidate, runtime) {
                Some(Some(real)) => real,
                Some(None) => {
                    tracing::debug!(shim = %candidate.display(), "skipping pyenv shim without a matching version");
                    continue;
                }
                // Canonical path: the sandbox mounts real directories, and a
                // chain of /etc/alternatives links would otherwise dangle there.
                None => std::fs::canonicalize(&candidate).unwrap_or(candidate.clone()),
            };
            let version = if self.config.check_version {
                match run_version(&real, runtime).await {
                    Ok(v) if version_matches(runtime, &v) => Some(v),
                    Ok(v) => {
                        // Keep looking (a later directory may have the right
                        // one), but remember the first near miss for the message.
                        mismatch.get_or_insert(ArtifactError::InterpreterVersionMismatch {
                            runtime: runtime.to_string(),
                            binary: binary.to_string(),
                            path: real.clone(),
                            wanted: runtime.display_version(),
                            found: display_found(runtime, &v),
                        });
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(path = %real.display(), error = %e, "interpreter candidate does not run; skipped");
                        continue;
                    }
                }
            } else {
                None
            };
            return Ok(Interpreter {
                runtime,
                mounts: mounts_for(&real),
                path: real,
                version,
            });
        }
        if let Some(m) = mismatch {
            return Err(m);
        }
        Err(ArtifactError::InterpreterNotFound {
            runtime: runtime.to_string(),
            binary: binary.to_string(),
            searched: if self.config.search_path.is_some() {
                format!(
                    " (searched {})",
                    dirs.iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                String::new()
            },
        })
    }
}

fn display_found(runtime: Runtime, v: &str) -> String {
    if runtime.is_python() {
        format!("Python {v}")
    } else {
        format!("v{v}")
    }
}

fn is_executable_file(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `None`: not a pyenv shim. `Some(None)`: a shim, but no installed pyenv
/// version provides the runtime. `Some(Some(path))`: the real binary.
fn pyenv_shim_target(candidate: &Path, runtime: Runtime) -> Option<Option<PathBuf>> {
    let mut head = Vec::with_capacity(1024);
    std::fs::File::open(candidate)
        .ok()?
        .take(1024)
        .read_to_end(&mut head)
        .ok()?;
    let text = String::from_utf8_lossy(&head);
    if !text.starts_with("#!") || !text.contains("pyenv") {
        return None;
    }
    if !runtime.is_python() {
        return Some(None);
    }
    // The shim names its root (`export PYENV_ROOT="/home/me/.pyenv"`); else it
    // lives in ROOT/shims.
    let root = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("export PYENV_ROOT=")
                .map(|v| PathBuf::from(v.trim_matches('"').trim_matches('\'')))
        })
        .or_else(|| candidate.parent()?.parent().map(Path::to_path_buf))?;
    Some(best_pyenv_version(&root.join("versions"), runtime))
}

/// The highest `VERSIONS/3.X.*/bin/python3.X` that exists.
fn best_pyenv_version(versions: &Path, runtime: Runtime) -> Option<PathBuf> {
    let prefix = format!("{}.", runtime.version_prefix());
    let binary = runtime.binary_name();
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(versions).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        // Plain releases only ("3.12.1"), not "3.12-dev" or free-threaded "3.13.0t".
        let Ok(patch) = rest.parse::<u64>() else {
            continue;
        };
        let bin = entry.path().join("bin").join(binary);
        if !is_executable_file(&bin) {
            continue;
        }
        if best.as_ref().is_none_or(|(k, _)| patch > *k) {
            best = Some((patch, bin));
        }
    }
    best.map(|(_, p)| p)
}

/// The directory holding `bin/` (or the binary's own directory otherwise),
/// for the binary and for what it links to if it is a symlink.
fn mounts_for(path: &Path) -> Vec<PathBuf> {
    let prefix = |p: &Path| -> Option<PathBuf> {
        let dir = p.parent()?;
        if dir.file_name().is_some_and(|n| n == "bin") {
            dir.parent().map(Path::to_path_buf)
        } else {
            Some(dir.to_path_buf())
        }
    };
    let mut mounts: Vec<PathBuf> = Vec::new();
    for p in [Some(path.to_path_buf()), std::fs::canonicalize(path).ok()]
        .into_iter()
        .flatten()
    {
        if let Some(m) = prefix(&p).filter(|m| m != Path::new("/")) {
            mounts.push(m);
        }
    }
    mounts.sort();
    mounts.dedup();
    // Drop mounts inside another one.
    let all = mounts.clone();
    mounts.retain(|m| !all.iter().any(|o| o != m && m.starts_with(o)));
    mounts
}

/// `BINARY --version` → "3.11.2" / "22.1.0".
async fn run_version(path: &Path, runtime: Runtime) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new(path);
    cmd.arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        // Adds ~45 ms to every node start on this image (platform spec §0).
        .env_remove("NODE_EXTRA_CA_CERTS")
        .env_remove("PYTHONSTARTUP");
    let out = tokio::time::timeout(Duration::from_secs(10), cmd.output())
        .await
        .map_err(|_| "`--version` did not answer within 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("`--version` exited with {}", out.status));
    }
    // Python 2 printed its version on stderr.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = text.trim();
    let v = if runtime.is_python() {
        text.strip_prefix("Python ")
    } else {
        text.strip_prefix('v')
    };
    v.map(|v| v.split_whitespace().next().unwrap_or("").to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("unexpected `--version` output {text:?}"))
}

fn version_matches(runtime: Runtime, version: &str) -> bool {
    let want = runtime.version_prefix();
    version == want || version.starts_with(&format!("{want}."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse() {
        let (r, p) = parse_override("PYTHON_3_12=/opt/py312/bin/python3.12").unwrap();
        assert_eq!(r, Runtime::Python312);
        assert_eq!(p, PathBuf::from("/opt/py312/bin/python3.12"));
        assert!(parse_override("PYTHON_3_12").is_err());
        assert!(parse_override("PYTHON_3_12=relative/python").is_err());
        assert!(parse_override("RUBY_3=/usr/bin/ruby").is_err());
    }

    #[test]
    fn versions_match_by_prefix() {
        assert!(version_matches(Runtime::Python311, "3.11.2"));
        assert!(!version_matches(Runtime::Python311, "3.1.2"));
        assert!(!version_matches(Runtime::Python310, "3.100.0"));
        assert!(version_matches(Runtime::Node22, "22.11.0"));
        assert!(!version_matches(Runtime::Node22, "20.20.2"));
        assert!(!version_matches(Runtime::Node22, "220.1.0"));
    }

    #[test]
    fn mounts_are_prefixes() {
        let d = tempfile::tempdir().unwrap();
        let venv = d.path().join("venv/bin");
        let base = d.path().join("base/bin");
        std::fs::create_dir_all(&venv).unwrap();
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(base.join("python3.12"), "").unwrap();
        std::os::unix::fs::symlink(base.join("python3.12"), venv.join("python3.12")).unwrap();
        let real_root = std::fs::canonicalize(d.path()).unwrap();
        let m = mounts_for(&real_root.join("venv/bin/python3.12"));
        assert_eq!(m, vec![real_root.join("base"), real_root.join("venv")]);
        assert_eq!(
            mounts_for(Path::new("/usr/bin/python3.11")),
            vec![PathBuf::from("/usr")]
        );
        assert_eq!(
            mounts_for(Path::new("/opt/x/python")),
            vec![PathBuf::from("/opt/x")]
        );
    }
}
