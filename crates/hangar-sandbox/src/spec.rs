//! What a caller asks for: [`SandboxSpec`] and its parts, plus [`ExecRequest`] and [`SandboxExit`].

use std::net::Ipv4Addr;
use std::path::{Component, Path, PathBuf};

use crate::SandboxError;

/// Address that, inside a sandbox with [`NetworkMode::Public`] and `host_loopback: true`, reaches
/// the host's `127.0.0.1` (the network helper maps its gateway address to the host loopback).
/// The slirp4netns/podman convention, so agent code that knows `10.0.2.2` keeps working.
pub const HOST_LOOPBACK_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The sandbox's own address on its `eth0` in [`NetworkMode::Public`] (a /24 with the gateway
/// [`HOST_LOOPBACK_ADDR`]).
pub const SANDBOX_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
/// DNS address written to the sandbox's `/etc/resolv.conf` in public mode; the network helper
/// forwards queries to it to the host's resolver.
pub const SANDBOX_DNS_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
/// Environment variable set (unless the caller sets it) in public mode with host loopback
/// enabled: the address to use for services on the host's loopback (`10.0.2.2`).
pub const HOST_LOOPBACK_ENV: &str = "HANGAR_HOST_LOOPBACK";
/// Host name inside every sandbox (own UTS namespace).
pub const SANDBOX_HOSTNAME: &str = "sandbox";

/// One session sandbox to start.
///
/// Paths called "inside" are as seen by the sandboxed program; "host" paths are on the host and
/// must be readable (directories: searchable) by the sandbox's unprivileged uid — the caller
/// prepares them (world- or group-readable code directories, a per-session writable directory
/// `chown`ed to the session uid for `ReadWrite` mounts, or just use `Tmpfs`).
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// Session id; used in cgroup names (sanitized), logs and tracing spans.
    pub id: String,
    /// Absolute path of the program, inside the sandbox.
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The complete environment: nothing of the host's environment leaks in (bwrap `--clearenv`).
    /// In public mode with host loopback, [`HOST_LOOPBACK_ENV`] is added unless present.
    pub env: Vec<(String, String)>,
    /// Working directory, inside. Must exist in the sandbox's file system.
    pub cwd: PathBuf,
    /// File system layout, applied in this order after `root` (deeper inside paths after
    /// shallower ones, so a mount never hides a later one).
    pub mounts: Vec<Mount>,
    /// When `Some`, this host directory (an unpacked OCI image root) is the sandbox's `/`,
    /// read-only. When `None`, `/` is an empty read-only tmpfs that only holds the mounts.
    /// Either way `/proc`, `/dev` (with a private `/dev/shm`), `/tmp` and `/etc/hosts` are
    /// provided; missing mount points in a read-only root are handled without writing to it.
    pub root: Option<PathBuf>,
    pub limits: Limits,
    pub network: NetworkMode,
    /// Host uid (and gid) to run as. `None` allocates a per-session uid from the backend's range,
    /// never shared with another live sandbox. 0 is refused.
    pub uid: Option<u32>,
    /// The uid and gid the program sees inside its user namespace (an image's `User`), mapped
    /// to the host uid above; it gains nothing on the host (no capabilities, host files it does
    /// not own still look foreign). `None`: the host uid.
    pub inside_ids: Option<(u32, u32)>,
}

impl SandboxSpec {
    /// A spec with the host's system directories, cwd `/tmp`, `PATH` set, default limits and no
    /// network. Callers usually add a code mount and more environment.
    pub fn new(id: impl Into<String>, program: impl Into<PathBuf>) -> Self {
        SandboxSpec {
            id: id.into(),
            program: program.into(),
            args: Vec::new(),
            env: vec![
                ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
                ("HOME".into(), "/tmp".into()),
                ("LANG".into(), "C.UTF-8".into()),
            ],
            cwd: PathBuf::from("/tmp"),
            mounts: vec![Mount::HostSystem],
            root: None,
            limits: Limits::default(),
            network: NetworkMode::None,
            uid: None,
            inside_ids: None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), SandboxError> {
        inside_path("program", &self.program)?;
        inside_path("cwd", &self.cwd)?;
        no_nul("id", &self.id)?;
        for a in &self.args {
            no_nul("argument", a)?;
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') {
                return Err(SandboxError::InvalidSpec(format!(
                    "environment variable name {k:?}"
                )));
            }
            no_nul("environment variable", k)?;
            no_nul("environment value", v)?;
        }
        if let Some(root) = &self.root {
            host_path("root", root)?;
        }
        for m in &self.mounts {
            match m {
                Mount::HostSystem => {}
                Mount::ReadOnly { host, inside } | Mount::ReadWrite { host, inside } => {
                    host_path("mount source", host)?;
                    inside_path("mount target", inside)?;
                }
                Mount::Tmpfs { inside, .. } | Mount::File { inside, .. } => {
                    inside_path("mount target", inside)?;
                }
                Mount::Symlink { target, inside } => {
                    inside_path("symlink", inside)?;
                    no_nul("symlink target", &target.to_string_lossy())?;
                }
            }
        }
        if self.uid == Some(0) {
            return Err(SandboxError::InvalidSpec(
                "uid 0: sandboxes never run as root".into(),
            ));
        }
        Ok(())
    }
}

/// One element of the sandbox's file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// The host's system directories an interpreter needs, read-only, at the same paths: `/usr`,
    /// `/bin`, `/sbin`, `/lib*` (as symlinks when the host has merged `/usr`), and from `/etc`:
    /// `ssl`, `ca-certificates`, `alternatives`, `ld.so.*`, `localtime`, `nsswitch.conf`,
    /// `protocols`, `services`, `mime.types`, `python3*`. Generated `/etc/passwd` and
    /// `/etc/group` (with the session uid as user `sandbox`) come with it when `root` is `None`.
    HostSystem,
    /// A host file or directory, read-only.
    ReadOnly { host: PathBuf, inside: PathBuf },
    /// A host file or directory, writable (as far as host permissions let the session uid write).
    ReadWrite { host: PathBuf, inside: PathBuf },
    /// A private tmpfs of at most `size_bytes` (its pages count against the memory limit).
    Tmpfs { inside: PathBuf, size_bytes: u64 },
    /// A read-only file with these contents and permission bits (e.g. `0o444`).
    File {
        inside: PathBuf,
        contents: Vec<u8>,
        mode: u32,
    },
    /// A symbolic link `inside -> target`.
    Symlink { target: PathBuf, inside: PathBuf },
}

/// Resource limits of one sandbox, enforced by its own cgroup (and the `/tmp` tmpfs size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory (anonymous + page cache + tmpfs) of everything in the sandbox; swap is not allowed
    /// where the kernel accounts it. Exceeding it OOM-kills inside this sandbox only.
    /// `None` = unlimited. Default 1 GiB.
    pub memory_bytes: Option<u64>,
    /// CPU quota in thousandths of a CPU per 100 ms period (1000 = one full CPU). `None` =
    /// unlimited. Default 1000.
    pub cpu_millis: Option<u32>,
    /// Maximum number of processes + threads (`pids.max`), including the two bwrap processes and
    /// the network helper. `None` = unlimited. Default 512.
    pub max_processes: Option<u32>,
    /// Size of the private `/tmp` and `/dev/shm` tmpfs each. Default 256 MiB.
    pub tmp_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: Some(1 << 30),
            cpu_millis: Some(1000),
            max_processes: Some(512),
            tmp_bytes: 256 << 20,
        }
    }
}

/// Network of a sandbox. Every sandbox has its own network namespace, so each can listen on the
/// same port (8080); the host reaches it with [`Sandbox::connect`](crate::Sandbox::connect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// Only `lo`. Nothing outside the sandbox is reachable, not even the host's loopback.
    #[default]
    None,
    /// User-mode networking (slirp4netns or pasta, see [`NetHelper`](crate::NetHelper)) on an
    /// `eth0` with [`SANDBOX_ADDR`]/24: outbound TCP/UDP (IPv4) through the host's sockets. With `host_loopback`, [`HOST_LOOPBACK_ADDR`] reaches services
    /// on the host's `127.0.0.1` (mind: that includes every loopback service of the host).
    Public { host_loopback: bool },
}

/// A command to run inside a live sandbox (same namespaces, cgroup, uid, root and limits).
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// Absolute path inside the sandbox.
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The complete environment of the command.
    pub env: Vec<(String, String)>,
    /// Working directory inside.
    pub cwd: PathBuf,
    /// Give the command a stdin pipe (else `/dev/null`).
    pub stdin: bool,
}

impl ExecRequest {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        ExecRequest {
            program: program.into(),
            args: Vec::new(),
            env: vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())],
            cwd: PathBuf::from("/"),
            stdin: false,
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    pub(crate) fn validate(&self) -> Result<(), SandboxError> {
        inside_path("program", &self.program)?;
        inside_path("cwd", &self.cwd)?;
        for a in &self.args {
            no_nul("argument", a)?;
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') {
                return Err(SandboxError::InvalidSpec(format!(
                    "environment variable name {k:?}"
                )));
            }
            no_nul("environment variable", k)?;
            no_nul("environment value", v)?;
        }
        Ok(())
    }
}

/// How a sandbox's main process (or an exec'd command) ended.
///
/// For the bubblewrap backend the main process's death by a signal is reported by bwrap as exit
/// code 128 + signal (an OOM kill is `code: Some(137)`); `signal` is set when the sandbox itself
/// was killed ([`Sandbox::kill`](crate::Sandbox::kill)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxExit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl SandboxExit {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// True when the process was killed by SIGKILL, directly or as reported by bwrap (137) —
    /// what an OOM kill looks like.
    pub fn killed(&self) -> bool {
        self.signal == Some(libc::SIGKILL) || self.code == Some(128 + libc::SIGKILL)
    }

    pub(crate) fn from_std(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        SandboxExit {
            code: status.code(),
            signal: status.signal(),
        }
    }
}

impl std::fmt::Display for SandboxExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "killed by signal {s}"),
            (None, None) => write!(f, "unknown exit"),
        }
    }
}

fn no_nul(what: &str, s: &str) -> Result<(), SandboxError> {
    if s.contains('\0') {
        return Err(SandboxError::InvalidSpec(format!("{what} contains NUL")));
    }
    Ok(())
}

/// Inside paths must be absolute and normal: bwrap resolves them inside the new root, and a `..`
/// would make our own mount planning (which walks the host side of read-only layers) disagree
/// with what bwrap does.
pub(crate) fn inside_path(what: &str, p: &Path) -> Result<(), SandboxError> {
    no_nul(what, &p.to_string_lossy())?;
    if !p.is_absolute() {
        return Err(SandboxError::InvalidSpec(format!(
            "{what} {} is not absolute",
            p.display()
        )));
    }
    if p.components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(SandboxError::InvalidSpec(format!(
            "{what} {} contains . or ..",
            p.display()
        )));
    }
    Ok(())
}

fn host_path(what: &str, p: &Path) -> Result<(), SandboxError> {
    no_nul(what, &p.to_string_lossy())?;
    if !p.is_absolute() {
        return Err(SandboxError::InvalidSpec(format!(
            "{what} {} is not absolute",
            p.display()
        )));
    }
    Ok(())
}

/// A file-system-safe form of a session id for cgroup directory names: `[A-Za-z0-9_.-]`, at most
/// 48 characters, never starting with `.`.
pub(crate) fn sanitize_id(id: &str) -> String {
    let mut s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    if s.is_empty() || s.starts_with('.') {
        s.insert(0, 's');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize() {
        assert_eq!(sanitize_id("abc-DEF_1.2"), "abc-DEF_1.2");
        assert_eq!(sanitize_id("../x/y z"), "s.._x_y_z");
        assert_eq!(sanitize_id(""), "s");
        assert_eq!(sanitize_id(&"a".repeat(100)).len(), 48);
    }

    #[test]
    fn validation() {
        let mut s = SandboxSpec::new("x", "/usr/bin/true");
        assert!(s.validate().is_ok());
        s.cwd = "tmp".into();
        assert!(s.validate().is_err());
        s.cwd = "/tmp/../etc".into();
        assert!(s.validate().is_err());
        s.cwd = "/tmp".into();
        s.uid = Some(0);
        assert!(s.validate().is_err());
        s.uid = None;
        s.env.push(("A=B".into(), "c".into()));
        assert!(s.validate().is_err());
    }
}
