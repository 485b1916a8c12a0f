//! Session sandboxes for Hangar.
//!
//! Every agent session (and later code-interpreter and browser session) runs in its own sandbox:
//! own namespaces (mount, pid, network, ipc, uts, cgroup, user), own cgroup with memory / CPU /
//! process limits, own unprivileged host uid. Everything above this crate talks to the
//! [`SandboxBackend`] / [`Sandbox`] traits; [`BwrapBackend`] implements them with bubblewrap
//! (later backends: microVMs, Kubernetes).
//!
//! ```no_run
//! # async fn demo() -> Result<(), hangar_sandbox::SandboxError> {
//! use hangar_sandbox::*;
//! let backend = BwrapBackend::new(BwrapConfig::default())?;
//! backend.reap_orphans().await?; // leftovers of a crashed predecessor
//! let mut spec = SandboxSpec::new("session-1", "/usr/bin/python3");
//! spec.args = vec!["-m".into(), "http.server".into(), "8080".into()];
//! let sb = backend.spawn(spec).await?;
//! let conn = sb.connect(8080).await?; // 127.0.0.1:8080 of *this* sandbox
//! # drop(conn);
//! sb.kill().await?;
//! # Ok(()) }
//! ```
//!
//! Host requirements of the bubblewrap backend: root, Debian packages `bubblewrap` (0.8+) and,
//! for [`NetworkMode::Public`], `slirp4netns` (default helper) or `passt` (pasta); cgroup v1
//! (incl. hybrid) or v2 with the memory and pids controllers; unprivileged user namespaces.
//!
//! # Decisions (bubblewrap backend)
//!
//! - **Identity.** Each sandbox runs as its own host uid (= gid), allocated round-robin from
//!   `2_000_000..2_100_000` ([`BwrapConfig::uid_range`]; keep it clear of real users and
//!   `/etc/subuid` ranges), never shared by two live sandboxes of this process. bwrap itself runs
//!   as that uid (`pre_exec`: cgroup join, `setgroups([])`, `setresgid`, `setresuid`,
//!   `no_new_privs`), with `--unshare-all --unshare-user --disable-userns --cap-drop ALL`: no
//!   capabilities, no nested user namespaces, no mounts inside. Host paths given to mounts must
//!   be readable by that uid (code directories world-readable; writable directories `chown`ed
//!   to [`Sandbox::host_uid`] by the caller, who also removes them afterwards).
//! - **File system.** `/` is read-only: bwrap's tmpfs holding only the mounts, or the image
//!   root. `/tmp` and `/dev/shm` are private tmpfs of [`Limits::tmp_bytes`]; `/proc` is the
//!   sandbox's own; `/etc/hosts`, `/etc/hostname` (and `/etc/passwd`, `/etc/group` with
//!   [`Mount::HostSystem`] and no image root, `/etc/resolv.conf` in public mode) are generated.
//! - **Cgroups.** `<hierarchy>/<parent>/<sanitized id>-u<uid>`, parent `hangar` by default
//!   ([`BwrapConfig::cgroup_parent`]); v1 (memory, pids, cpu, freezer hierarchies) or v2 (one
//!   directory), detected at start. Limits: memory (no swap), `pids.max`, CPU quota per 100 ms.
//!   Every process of the sandbox (bwrap, program, exec'd commands, network helper) is in it;
//!   kill = freeze (v1) / `cgroup.kill` (v2) + SIGKILL until empty, then `rmdir`.
//! - **Network.** Always a private network namespace; [`Sandbox::connect`] creates its socket in
//!   that namespace (no port forwarding). Public mode: `eth0` 10.0.2.100/24, gateway and host
//!   loopback at **10.0.2.2** (also in `$HANGAR_HOST_LOOPBACK`), DNS 10.0.2.3, IPv4 only.
//! - **Defaults** ([`Limits::default`]): 1 GiB memory, 1000 millicpu, 512 processes, 256 MiB
//!   `/tmp`.

mod bwrap;
mod cgroup;
mod error;
mod nethelper;
mod netns;
mod process;
mod ring;
mod spec;
mod sys;
mod uid;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

pub use bwrap::{BwrapBackend, BwrapConfig, BwrapSandbox};
pub use error::SandboxError;
pub use nethelper::NetHelper;
pub use spec::{
    ExecRequest, Limits, Mount, NetworkMode, SandboxExit, SandboxSpec, HOST_LOOPBACK_ADDR,
    HOST_LOOPBACK_ENV, SANDBOX_ADDR, SANDBOX_DNS_ADDR, SANDBOX_HOSTNAME,
};

/// Creates sandboxes. One instance per host (or per pool) for the life of the service.
#[async_trait]
pub trait SandboxBackend: Send + Sync {
    /// Start `spec.program` in a new sandbox. Returns once the program has been started (its
    /// own start-up, e.g. until it listens, is the caller's to wait for, via [`Sandbox::connect`]
    /// retries). On error nothing is left behind.
    async fn spawn(&self, spec: SandboxSpec) -> Result<Box<dyn Sandbox>, SandboxError>;

    /// Kill and remove every sandbox a previous instance of the service left behind (crash,
    /// `kill -9`). Call once at start-up. Returns how many were removed. Sandboxes of this
    /// instance are not touched.
    async fn reap_orphans(&self) -> Result<usize, SandboxError>;
}

/// One live sandbox.
#[async_trait]
pub trait Sandbox: Send + Sync {
    /// The session id it was created with.
    fn id(&self) -> &str;

    /// A TCP connection to `port` on the sandbox's own loopback, from the host side. Every
    /// sandbox has its own network namespace, so all of them can listen on the same port and
    /// the program need not be told a port; works without any network.
    async fn connect(&self, port: u16) -> Result<TcpStream, SandboxError>;

    /// Run a command inside the same sandbox (same namespaces, root, cgroup and uid), with piped
    /// stdout/stderr (and stdin if asked). Dropping the returned process kills it.
    async fn exec(&self, req: ExecRequest) -> Result<ExecProcess, SandboxError>;

    /// The main program's exit status, once it has exited (or the sandbox was killed).
    fn exited(&self) -> Option<SandboxExit>;

    /// Wait for the main program to exit.
    async fn wait(&self) -> Result<SandboxExit, SandboxError>;

    /// The last `max` bytes of the main program's stdout (kept: a bounded tail per sandbox).
    fn stdout_tail(&self, max: usize) -> String;

    /// The last `max` bytes of the main program's stderr (bwrap's own errors included).
    fn stderr_tail(&self, max: usize) -> String;

    /// Memory charged to the sandbox (all its processes, page cache and tmpfs), if known.
    fn memory_usage_bytes(&self) -> Option<u64>;

    /// How many processes the kernel OOM-killed in this sandbox so far, if known.
    fn oom_kills(&self) -> Option<u64> {
        None
    }

    /// The host uid the sandbox's processes run as, where that means something.
    fn host_uid(&self) -> Option<u32> {
        None
    }

    /// Kill everything in the sandbox, wait until it is gone and release its resources (cgroup,
    /// namespaces, uid). Idempotent. Dropping the sandbox does the same, best effort.
    async fn kill(&self) -> Result<(), SandboxError>;
}

/// Control half of an [`ExecProcess`], implemented per backend.
#[async_trait]
pub trait ExecControl: Send {
    async fn wait(&mut self) -> Result<SandboxExit, SandboxError>;
    /// Send the kill (SIGKILL for local processes); `wait` to reap.
    fn start_kill(&mut self) -> Result<(), SandboxError>;
    /// Host pid, where there is one.
    fn id(&self) -> Option<u32>;
}

/// A command started with [`Sandbox::exec`].
pub struct ExecProcess {
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    pub stdout: Option<Box<dyn AsyncRead + Send + Unpin>>,
    pub stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    control: Box<dyn ExecControl>,
}

/// Everything an exec'd command printed, and how it ended.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub status: SandboxExit,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecProcess {
    pub fn new(
        stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
        stdout: Option<Box<dyn AsyncRead + Send + Unpin>>,
        stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
        control: Box<dyn ExecControl>,
    ) -> Self {
        ExecProcess {
            stdin,
            stdout,
            stderr,
            control,
        }
    }

    pub async fn wait(&mut self) -> Result<SandboxExit, SandboxError> {
        self.stdin.take();
        self.control.wait().await
    }

    pub fn start_kill(&mut self) -> Result<(), SandboxError> {
        self.control.start_kill()
    }

    pub fn id(&self) -> Option<u32> {
        self.control.id()
    }

    /// Close stdin, read stdout and stderr to the end (unbounded: for commands with modest
    /// output) and wait.
    pub async fn wait_with_output(mut self) -> Result<ExecOutput, SandboxError> {
        self.stdin.take();
        async fn read_all(r: Option<Box<dyn AsyncRead + Send + Unpin>>) -> Vec<u8> {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v).await;
            }
            v
        }
        let (stdout, stderr) =
            tokio::join!(read_all(self.stdout.take()), read_all(self.stderr.take()));
        let status = self.control.wait().await?;
        Ok(ExecOutput {
            status,
            stdout,
            stderr,
        })
    }
}
