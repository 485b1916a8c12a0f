//! The bubblewrap backend: one bwrap process tree per session, in its own cgroup, as its own
//! unprivileged uid.
//!
//! Start-up of one sandbox:
//! 1. allocate a uid, create the session cgroup with its limits;
//! 2. build bwrap's arguments (see [`args`]); spawn bwrap from the spawner thread with a
//!    `pre_exec` that writes itself into the cgroup, clears `FD_CLOEXEC` on the descriptors
//!    bwrap must read, drops supplementary groups, sets gid/uid, `no_new_privs` — bwrap never
//!    runs as root (as root, its sandbox could remount read-only binds writable);
//! 3. read the sandbox's pid 1 from `--info-fd`; open its network namespace;
//! 4. public network: start the network helper (see [`crate::nethelper`]) on that namespace
//!    and wait for its default route;
//! 5. release bwrap's `--block-fd` (the program starts only now, with its network ready), wait
//!    for pid 1 to fork the program (the mount setup is then complete), open the namespaces and
//!    root used by `exec`.
//!
//! Teardown ([`BwrapSandbox::kill`], also on drop): SIGKILL bwrap through a pidfd, kill and wait
//! out every process of the cgroup (freezer first on v1), reap, remove the cgroup directories,
//! close the namespace descriptors, release the uid.

mod args;

use std::collections::HashSet;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tracing::Instrument;

use crate::cgroup::{Cgroups, SessionCgroup};
use crate::nethelper::{self, NetHelper};
use crate::process::{self, NsFds};
use crate::ring::OutputRing;
use crate::spec::sanitize_id;
use crate::uid::{UidAllocator, UidLease};
use crate::{
    netns, sys, ExecProcess, ExecRequest, NetworkMode, Sandbox, SandboxBackend, SandboxError,
    SandboxExit, SandboxSpec,
};

/// Configuration of a [`BwrapBackend`].
#[derive(Debug, Clone)]
pub struct BwrapConfig {
    /// `bwrap` executable; a bare name is looked up in `PATH`. Default `bwrap` (Debian package
    /// `bubblewrap`, 0.8 or later).
    pub bwrap: PathBuf,
    /// User-mode network helper for [`NetworkMode::Public`]. Default slirp4netns.
    pub net_helper: NetHelper,
    /// `slirp4netns` executable (Debian package `slirp4netns`); looked up at first use.
    pub slirp4netns: PathBuf,
    /// `pasta` executable (Debian package `passt`); looked up at first use.
    pub pasta: PathBuf,
    /// The parent cgroup, relative to each hierarchy's root (may contain `/`). Default `hangar`.
    /// This backend owns it: [`SandboxBackend::reap_orphans`] kills every session group under it
    /// that is not one of its live sandboxes.
    pub cgroup_parent: String,
    /// Host uids handed to sessions that do not ask for one. Must be reserved for Hangar (no
    /// host user, no `/etc/subuid` range). Default `2_000_000..2_100_000`.
    pub uid_range: std::ops::Range<u32>,
    /// Directory of per-uid lock files, so several processes can share `uid_range` without
    /// ever running two sandboxes as the same uid. `None` = coordinate within this process
    /// only. Default `/run/hangar-sandbox/uids`.
    pub uid_lock_dir: Option<PathBuf>,
    /// Bytes of stdout and of stderr kept per sandbox. Default 256 KiB each.
    pub output_tail_bytes: usize,
    /// Limit for bwrap + network to come up (not the program's own start-up). Default 10 s.
    pub startup_timeout: Duration,
    /// Limit for a cgroup to become empty on kill. Default 10 s.
    pub kill_timeout: Duration,
}

impl Default for BwrapConfig {
    fn default() -> Self {
        BwrapConfig {
            bwrap: "bwrap".into(),
            net_helper: NetHelper::default(),
            slirp4netns: "slirp4netns".into(),
            pasta: "pasta".into(),
            cgroup_parent: "hangar".into(),
            uid_range: 2_000_000..2_100_000,
            uid_lock_dir: Some("/run/hangar-sandbox/uids".into()),
            output_tail_bytes: 256 * 1024,
            startup_timeout: Duration::from_secs(10),
            kill_timeout: Duration::from_secs(10),
        }
    }
}

/// Sandboxes made of bubblewrap namespaces + a cgroup per session + a per-session uid.
///
/// Requires root (to create cgroups and switch uids; the sandboxes themselves never run as root),
/// `bwrap` 0.8+, unprivileged user namespaces, cgroup v1 or v2 with the memory and pids
/// controllers, and for public networking `pasta` (Debian `passt`).
pub struct BwrapBackend {
    cfg: BwrapConfig,
    bwrap: PathBuf,
    cgroups: Cgroups,
    uids: Arc<UidAllocator>,
    /// Cgroup names of live sandboxes (reaping must not touch them).
    live: Arc<Mutex<HashSet<String>>>,
}

fn find_in_path(p: &Path) -> Option<PathBuf> {
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(p))
            .find(|c| c.is_file())
    })
}

impl BwrapBackend {
    /// Check the host and prepare the parent cgroup.
    pub fn new(cfg: BwrapConfig) -> Result<Self, SandboxError> {
        if sys::geteuid() != 0 {
            return Err(SandboxError::Unavailable(
                "the bubblewrap backend must run as root (it creates cgroups and switches to per-session uids)".into(),
            ));
        }
        let bwrap = find_in_path(&cfg.bwrap).ok_or_else(|| {
            SandboxError::Unavailable(format!(
                "{} not found (install the Debian package bubblewrap)",
                cfg.bwrap.display()
            ))
        })?;
        let cgroups = Cgroups::detect(&cfg.cgroup_parent)?;
        cgroups.ensure_parent()?;
        let uids = UidAllocator::new(cfg.uid_range.clone(), cfg.uid_lock_dir.as_deref())?;
        tracing::info!(bwrap = %bwrap.display(), cgroups = %cgroups.describe(), "bubblewrap sandbox backend ready");
        Ok(BwrapBackend {
            cfg,
            bwrap,
            cgroups,
            uids,
            live: Arc::new(Mutex::new(HashSet::new())),
        })
    }

    pub fn config(&self) -> &BwrapConfig {
        &self.cfg
    }

    /// Remove the (empty) parent cgroup directories, e.g. at service shutdown after every
    /// sandbox was killed. Fails if a session group is still there.
    pub fn remove_parent_cgroup(&self) -> Result<(), SandboxError> {
        self.cgroups.remove_parent()
    }

    /// `true` when the configured network helper (needed for [`NetworkMode::Public`]) is
    /// installed.
    pub fn public_network_available(&self) -> bool {
        self.net_helper_path().is_ok()
    }

    fn net_helper_path(&self) -> Result<PathBuf, SandboxError> {
        let (bin, package) = match self.cfg.net_helper {
            NetHelper::Slirp4netns => (&self.cfg.slirp4netns, "slirp4netns"),
            NetHelper::Pasta => (&self.cfg.pasta, "passt"),
        };
        find_in_path(bin).ok_or_else(|| {
            SandboxError::Unavailable(format!(
                "{} not found (install the Debian package {package})",
                bin.display()
            ))
        })
    }

    /// Spawn, with the concrete type (tests and benchmarks want the extra accessors).
    pub async fn spawn_bwrap(&self, spec: SandboxSpec) -> Result<BwrapSandbox, SandboxError> {
        spec.validate()?;
        let span = tracing::info_span!("sandbox", session = %spec.id);
        self.spawn_inner(spec).instrument(span).await
    }

    async fn spawn_inner(&self, spec: SandboxSpec) -> Result<BwrapSandbox, SandboxError> {
        let t0 = Instant::now();
        let lease = match spec.uid {
            Some(u) => self.uids.claim(u)?,
            None => self.uids.allocate()?,
        };
        let uid = lease.uid();
        let gid = uid;
        let name = format!("{}-u{uid}", sanitize_id(&spec.id));
        let cg = self.cgroups.create_session(&name, &spec.limits)?;
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone());

        // From here on, `guard` undoes everything if start-up fails.
        let mut guard = StartGuard {
            cg: Some(cg.clone()),
            live: self.live.clone(),
            name: name.clone(),
            kill_timeout: self.cfg.kill_timeout,
            bwrap: None,
        };

        let (info_r, info_w) = sys::pipe().map_err(|e| SandboxError::io("pipe", e))?;
        let (block_r, block_w) = sys::pipe().map_err(|e| SandboxError::io("pipe", e))?;
        let built = args::build(
            &spec,
            &args::Identity { uid, gid },
            info_w.as_raw_fd(),
            block_r.as_raw_fd(),
        )?;
        let mut pass: Vec<RawFd> = built.fds.iter().map(|f| f.as_raw_fd()).collect();
        pass.push(info_w.as_raw_fd());
        pass.push(block_r.as_raw_fd());
        let procs = cg.open_procs()?;

        let mut cmd = Command::new(&self.bwrap);
        cmd.args(&built.args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let procs_raw: Vec<RawFd> = procs.iter().map(|f| f.as_raw_fd()).collect();
        // SAFETY: only async-signal-safe calls on descriptors/values prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                for fd in &procs_raw {
                    sys::write_all_raw(*fd, b"0")?;
                }
                for fd in &pass {
                    sys::clear_cloexec(*fd)?;
                }
                // bwrap as the session uid cannot read a root-only cwd; it gets --chdir anyway.
                sys::cvt(libc::chdir(c"/".as_ptr()))?;
                sys::drop_to(uid, gid)?;
                sys::no_new_privs()
            });
        }
        let mut child = process::spawn_from_spawner(cmd)
            .await
            .map_err(|e| SandboxError::io(format!("spawn {}", self.bwrap.display()), e))?;
        // Our copies of the child's ends, and the fds bwrap reads, are no longer needed here
        // (bwrap has its own); closing the write end of info lets us see EOF if bwrap dies.
        drop(info_w);
        drop(block_r);
        drop(procs);
        let bwrap_pid = child.id().unwrap_or(0);
        guard.bwrap = sys::pidfd_open(bwrap_pid).ok();

        let stdout_ring = Arc::new(OutputRing::new(self.cfg.output_tail_bytes));
        let stderr_ring = Arc::new(OutputRing::new(self.cfg.output_tail_bytes));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(pump(out, stdout_ring.clone())));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(pump(err, stderr_ring.clone())));
        }
        let (exit_tx, exit_rx) = watch::channel(None);
        tokio::spawn(
            async move {
                let st = match child.wait().await {
                    Ok(s) => SandboxExit::from_std(s),
                    Err(e) => {
                        tracing::error!(error = %e, "waiting for bwrap failed");
                        SandboxExit {
                            code: None,
                            signal: None,
                        }
                    }
                };
                // Output after exit: let the pumps drain what the pipes still hold.
                for r in readers {
                    let _ = r.await;
                }
                tracing::info!(status = %st, "sandbox main process exited");
                let _ = exit_tx.send(Some(st));
            }
            .in_current_span(),
        );

        let fail = |reason: String| {
            let stderr = stderr_ring.clone();
            let id = spec.id.clone();
            let exit_rx = exit_rx.clone();
            async move {
                // bwrap's own error line arrives on stderr just before it exits.
                let mut rx = exit_rx;
                let _ =
                    tokio::time::timeout(Duration::from_millis(500), rx.wait_for(|s| s.is_some()))
                        .await;
                SandboxError::StartFailed {
                    id,
                    reason,
                    stderr: stderr.tail(4096),
                }
            }
        };

        // 3. pid 1 of the sandbox.
        let deadline = t0 + self.cfg.startup_timeout;
        let info = match tokio::time::timeout_at(deadline.into(), read_info(info_r)).await {
            Ok(Ok(pid)) => pid,
            Ok(Err(e)) => return Err(fail(format!("no pid from bwrap: {e}")).await),
            Err(_) => return Err(fail("timed out waiting for bwrap".into()).await),
        };
        let net = match sys::open(Path::new(&format!("/proc/{info}/ns/net")), libc::O_RDONLY) {
            Ok(fd) => Arc::new(fd),
            // pid 1 is gone already: bwrap's set-up failed (its message is on stderr).
            Err(e) => return Err(fail(format!("sandbox ended during set-up ({e})")).await),
        };

        // 4. network.
        let mut helper = None;
        if let NetworkMode::Public { host_loopback } = spec.network {
            let bin = self.net_helper_path()?;
            let h = match nethelper::start(
                self.cfg.net_helper,
                &bin,
                &net,
                &cg,
                info,
                uid,
                gid,
                host_loopback,
                deadline,
            )
            .await
            {
                Ok(h) => h,
                Err(e) => return Err(fail(e.to_string()).await),
            };
            helper = Some(h);
        }

        // 5. let the program start; wait until pid 1 has forked it.
        sys::write_all_raw(block_w.as_raw_fd(), b"1")
            .map_err(|e| SandboxError::io("release bwrap", e))?;
        drop(block_w);
        // Running means: pid 1 forked the program *and* the fork has exec'd it (its executable
        // is no longer bwrap's). Until then a failing exec (missing program) is still possible,
        // and it is reported as a start failure, deterministically.
        let bwrap_exe = exe_id(info);
        let main_pid = loop {
            if let Some(p) = first_child(info) {
                if exe_id(p).is_some() && exe_id(p) != bwrap_exe {
                    break Some(p);
                }
            }
            if exit_rx.borrow().is_some() || !Path::new(&format!("/proc/{info}")).exists() {
                // The program already ended (or never started): no namespaces to enter later.
                break None;
            }
            if Instant::now() >= deadline {
                return Err(fail("timed out waiting for the program to start".into()).await);
            }
            tokio::time::sleep(Duration::from_micros(250)).await;
        };
        if main_pid.is_none() {
            // Nothing running: either bwrap's set-up failed (a mount source missing, a bad
            // cwd...) or the program ended at once. A failure is reported as a start failure
            // with bwrap's message; a quick clean exit is a normal, already-exited sandbox.
            let mut rx = exit_rx.clone();
            let _ =
                tokio::time::timeout(Duration::from_secs(2), rx.wait_for(|s| s.is_some())).await;
            let st = *exit_rx.borrow();
            if let Some(st) = st.filter(|s| !s.success()) {
                return Err(fail(format!("exited during start-up ({st})")).await);
            }
        }
        let ns = match open_ns(info, net.clone()) {
            Ok(ns) => Some(Arc::new(ns)),
            Err(e) if main_pid.is_none() => {
                tracing::debug!(error = %e, "sandbox ended during start-up");
                None
            }
            Err(e) => return Err(SandboxError::io("open the sandbox namespaces", e)),
        };

        let pidfd = guard.disarm();
        tracing::info!(
            uid,
            cgroup = %name,
            pid = main_pid.unwrap_or(0),
            elapsed_us = t0.elapsed().as_micros() as u64,
            "sandbox started"
        );
        Ok(BwrapSandbox {
            inner: Arc::new(Inner {
                id: spec.id,
                span: tracing::Span::current(),
                uid,
                gid,
                cg,
                name,
                live: self.live.clone(),
                bwrap_pidfd: pidfd,
                main_pid,
                ns: Mutex::new(ns),
                net,
                helper: Mutex::new(helper),
                stdout: stdout_ring,
                stderr: stderr_ring,
                exit: exit_rx,
                killed: AtomicBool::new(false),
                kill_timeout: self.cfg.kill_timeout,
                lease: Mutex::new(Some(lease)),
            }),
        })
    }
}

#[async_trait]
impl SandboxBackend for BwrapBackend {
    async fn spawn(&self, spec: SandboxSpec) -> Result<Box<dyn Sandbox>, SandboxError> {
        Ok(Box::new(self.spawn_bwrap(spec).await?))
    }

    async fn reap_orphans(&self) -> Result<usize, SandboxError> {
        let cgroups = self.cgroups.clone();
        let live = self.live.clone();
        let timeout = self.cfg.kill_timeout;
        tokio::task::spawn_blocking(move || {
            let mut n = 0;
            for name in cgroups.list_sessions() {
                if live
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(&name)
                {
                    continue;
                }
                let cg = cgroups.session(&name);
                let procs = cg.pids().len();
                cg.destroy(timeout)?;
                tracing::warn!(cgroup = %name, processes = procs, "reaped orphaned sandbox");
                n += 1;
            }
            Ok(n)
        })
        .await
        .map_err(|e| SandboxError::io("reap task", std::io::Error::other(e.to_string())))?
    }
}

/// Undo a half-started sandbox.
struct StartGuard {
    cg: Option<SessionCgroup>,
    live: Arc<Mutex<HashSet<String>>>,
    name: String,
    kill_timeout: Duration,
    /// pidfd of bwrap, owned here until start-up succeeded.
    bwrap: Option<OwnedFd>,
}

impl StartGuard {
    /// Start-up succeeded: keep everything; hand over bwrap's pidfd.
    fn disarm(&mut self) -> Option<OwnedFd> {
        self.cg = None;
        self.bwrap.take()
    }
}

impl Drop for StartGuard {
    fn drop(&mut self) {
        let Some(cg) = self.cg.take() else { return };
        if let Some(fd) = &self.bwrap {
            let _ = sys::pidfd_kill(fd, libc::SIGKILL);
        }
        if let Err(e) = cg.destroy(self.kill_timeout) {
            tracing::error!(error = %e, "cleanup after failed start");
        }
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.name);
    }
}

async fn pump<R: tokio::io::AsyncRead + Unpin>(mut r: R, ring: Arc<OutputRing>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => ring.push(&buf[..n]),
        }
    }
}

/// bwrap writes `{"child-pid": N, ...}` to `--info-fd` once the sandbox's pid 1 exists.
async fn read_info(fd: OwnedFd) -> std::io::Result<u32> {
    let mut rx = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = rx.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "bwrap exited before reporting its child",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        match serde_json::from_slice::<serde_json::Value>(&buf) {
            Ok(v) => {
                return v
                    .get("child-pid")
                    .and_then(|p| p.as_u64())
                    .map(|p| p as u32)
                    .ok_or_else(|| std::io::Error::other(format!("bad bwrap info: {v}")));
            }
            Err(e) if e.is_eof() => continue,
            Err(e) => return Err(std::io::Error::other(e)),
        }
    }
}

fn first_child(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// (device, inode) of a process's executable.
fn exe_id(pid: u32) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/exe"))
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

fn open_ns(pid: u32, net: Arc<OwnedFd>) -> std::io::Result<NsFds> {
    let ns = |n: &str| sys::open(Path::new(&format!("/proc/{pid}/ns/{n}")), libc::O_RDONLY);
    Ok(NsFds {
        user: ns("user")?,
        mnt: ns("mnt")?,
        pid: ns("pid")?,
        ipc: ns("ipc")?,
        uts: ns("uts")?,
        cgroup: ns("cgroup")?,
        net,
        root: sys::open(
            Path::new(&format!("/proc/{pid}/root")),
            libc::O_RDONLY | libc::O_DIRECTORY,
        )?,
    })
}

struct Inner {
    id: String,
    span: tracing::Span,
    uid: u32,
    gid: u32,
    cg: SessionCgroup,
    name: String,
    live: Arc<Mutex<HashSet<String>>>,
    bwrap_pidfd: Option<OwnedFd>,
    main_pid: Option<u32>,
    ns: Mutex<Option<Arc<NsFds>>>,
    net: Arc<OwnedFd>,
    helper: Mutex<Option<Child>>,
    stdout: Arc<OutputRing>,
    stderr: Arc<OutputRing>,
    exit: watch::Receiver<Option<SandboxExit>>,
    killed: AtomicBool,
    kill_timeout: Duration,
    lease: Mutex<Option<UidLease>>,
}

impl Inner {
    /// Synchronous teardown, shared by `kill` (on a blocking thread) and `Drop`.
    fn teardown(&self) -> Result<(), SandboxError> {
        if self.killed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let _e = self.span.enter();
        if let Some(fd) = &self.bwrap_pidfd {
            if let Err(e) = sys::pidfd_kill(fd, libc::SIGKILL) {
                tracing::warn!(error = %e, "signal bwrap");
            }
        }
        let result = self.cg.destroy(self.kill_timeout);
        if let Some(mut h) = self.helper.lock().unwrap_or_else(|e| e.into_inner()).take() {
            // Already dead with the cgroup; reap it so no zombie stays behind.
            let _ = h.start_kill();
            match h.try_wait() {
                Ok(Some(_)) => {}
                _ => {
                    if let Ok(handle) = tokio::runtime::Handle::try_current() {
                        handle.spawn(async move {
                            let _ = h.wait().await;
                        });
                    }
                }
            }
        }
        *self.ns.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.name);
        match &result {
            Ok(()) => {
                // Only now nothing runs as this uid any more.
                self.lease.lock().unwrap_or_else(|e| e.into_inner()).take();
                tracing::info!("sandbox removed");
            }
            Err(e) => tracing::error!(error = %e, "sandbox teardown incomplete"),
        }
        result
    }
}

/// A live bubblewrap sandbox. Dropping it kills it (synchronously, best effort).
pub struct BwrapSandbox {
    inner: Arc<Inner>,
}

impl BwrapSandbox {
    /// The host uid (= gid) the sandbox runs as.
    pub fn uid(&self) -> u32 {
        self.inner.uid
    }

    /// Host pid of the sandboxed program (not of bwrap), if it was still running at start-up.
    pub fn main_pid(&self) -> Option<u32> {
        self.inner.main_pid
    }

    /// The cgroup directory name of this session (same under every hierarchy).
    pub fn cgroup_name(&self) -> &str {
        &self.inner.name
    }

    /// Pids of every process in the session cgroup (bwrap, the program, exec'd commands, pasta).
    pub fn pids(&self) -> Vec<i32> {
        self.inner.cg.pids()
    }

    /// Whether any of the session's cgroup directories still exists.
    pub fn cgroup_exists(&self) -> bool {
        self.inner.cg.exists()
    }
}

impl Drop for BwrapSandbox {
    fn drop(&mut self) {
        if let Err(e) = self.inner.teardown() {
            tracing::error!(session = %self.inner.id, error = %e, "teardown on drop");
        }
    }
}

struct ChildControl(Child);

#[async_trait]
impl crate::ExecControl for ChildControl {
    async fn wait(&mut self) -> Result<SandboxExit, SandboxError> {
        self.0
            .wait()
            .await
            .map(SandboxExit::from_std)
            .map_err(|e| SandboxError::io("wait for command", e))
    }

    fn start_kill(&mut self) -> Result<(), SandboxError> {
        self.0
            .start_kill()
            .map_err(|e| SandboxError::io("kill command", e))
    }

    fn id(&self) -> Option<u32> {
        self.0.id()
    }
}

#[async_trait]
impl Sandbox for BwrapSandbox {
    fn id(&self) -> &str {
        &self.inner.id
    }

    async fn connect(&self, port: u16) -> Result<TcpStream, SandboxError> {
        if self.inner.killed.load(Ordering::SeqCst) {
            return Err(SandboxError::NotRunning(self.inner.id.clone()));
        }
        netns::connect_loopback(&self.inner.net, port)
            .await
            .map_err(|e| SandboxError::io(format!("connect to sandbox port {port}"), e))
    }

    async fn exec(&self, req: ExecRequest) -> Result<ExecProcess, SandboxError> {
        req.validate()?;
        let ns = self
            .inner
            .ns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let ns = match ns {
            Some(ns) if self.exited().is_none() && !self.inner.killed.load(Ordering::SeqCst) => ns,
            _ => return Err(SandboxError::NotRunning(self.inner.id.clone())),
        };
        let procs = self.inner.cg.open_procs()?;
        let mut cmd = process::exec_command(&req, ns, procs, self.inner.uid, self.inner.gid)
            .map_err(|e| SandboxError::InvalidSpec(format!("exec request: {e}")))?;
        let mut child = cmd.spawn().map_err(|e| {
            SandboxError::io(format!("exec {} in the sandbox", req.program.display()), e)
        })?;
        let stdin = child
            .stdin
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>);
        let stdout = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>);
        let stderr = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>);
        Ok(ExecProcess::new(
            stdin,
            stdout,
            stderr,
            Box::new(ChildControl(child)),
        ))
    }

    fn exited(&self) -> Option<SandboxExit> {
        *self.inner.exit.borrow()
    }

    async fn wait(&self) -> Result<SandboxExit, SandboxError> {
        let mut rx = self.inner.exit.clone();
        let r = rx
            .wait_for(|s| s.is_some())
            .await
            .map_err(|_| SandboxError::NotRunning(self.inner.id.clone()))?;
        Ok(r.expect("some"))
    }

    fn stdout_tail(&self, max: usize) -> String {
        self.inner.stdout.tail(max)
    }

    fn stderr_tail(&self, max: usize) -> String {
        self.inner.stderr.tail(max)
    }

    fn memory_usage_bytes(&self) -> Option<u64> {
        self.inner.cg.memory_usage()
    }

    fn oom_kills(&self) -> Option<u64> {
        self.inner.cg.oom_kills()
    }

    fn host_uid(&self) -> Option<u32> {
        Some(self.inner.uid)
    }

    async fn kill(&self) -> Result<(), SandboxError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.teardown())
            .await
            .map_err(|e| SandboxError::io("kill task", std::io::Error::other(e.to_string())))??;
        // Wait for the reaper to publish the exit, so `exited()` is set after kill.
        let mut rx = self.inner.exit.clone();
        let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| s.is_some())).await;
        Ok(())
    }
}
