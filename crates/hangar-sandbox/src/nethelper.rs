//! User-mode networking for [`NetworkMode::Public`](crate::NetworkMode::Public): a helper process
//! (slirp4netns or pasta) gives the sandbox's network namespace an `eth0` whose traffic it
//! relays through ordinary host sockets.
//!
//! The helper parses untrusted packets, so it gets as little as possible. It runs as the
//! session's own uid (never root), joins the user namespace that owns the sandbox's network
//! namespace (that is where it needs its network capabilities — and the only place it has any),
//! and sees a jail instead of the host file system: between fork and exec we (still root)
//! unshare a private mount namespace, mount a tmpfs over `/tmp` as the jail root, bind into it
//! read-only what the helper binary needs (`/usr`, the `/lib*` links, `ld.so.cache`,
//! `resolv.conf`) plus the two namespace files, create a private `/dev/net/tun` node (mode 0666
//! in the jail only: on hosts where the real one is 0600 an unprivileged helper could not open
//! it), `chroot` there, and drop to the session uid with `no_new_privs`. It lives in the session
//! cgroup (memory counted, killed with the sandbox) and dies with this process (PDEATHSIG).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tracing::Instrument;

use crate::cgroup::SessionCgroup;
use crate::spec::{HOST_LOOPBACK_ADDR, SANDBOX_ADDR, SANDBOX_DNS_ADDR};
use crate::sys::{self, cvt};
use crate::{process, SandboxError, SandboxExit};

/// Which user-mode network helper provides [`NetworkMode::Public`](crate::NetworkMode::Public).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetHelper {
    /// slirp4netns (Debian `slirp4netns`): ~1.4 MiB per session, ready in ~15 ms here. Its
    /// libslirp packet code has a CVE history, hence the jail and `--enable-seccomp`.
    #[default]
    Slirp4netns,
    /// pasta (Debian `passt`): hardened by design (it also isolates itself), but ~20–29 MiB per
    /// session here, ready in ~25 ms.
    Pasta,
}

/// Where the jail is built inside the helper's private mount namespace (hidden from the host).
const JAIL: &str = "/tmp";

enum JailOp {
    Mkdir(CString),
    Touch(CString),
    /// Bind `src` on `dst`, then remount it read-only.
    BindRo(CString, CString),
    Symlink(CString, CString),
    CharDev(CString, u32, u32),
}

fn c(p: impl AsRef<Path>) -> io::Result<CString> {
    CString::new(p.as_ref().as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn jail_path(inside: &str) -> PathBuf {
    Path::new(JAIL).join(inside.trim_start_matches('/'))
}

/// The jail's contents. `netns`/`userns` are descriptors open in this process; they are bound
/// at `/netns` and `/userns` inside.
fn jail_ops(netns: RawFd, userns: RawFd, with_proc: bool) -> io::Result<Vec<JailOp>> {
    let mut ops = vec![
        JailOp::Mkdir(c(jail_path("/usr"))?),
        JailOp::BindRo(c("/usr")?, c(jail_path("/usr"))?),
    ];
    for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        match std::fs::symlink_metadata(top) {
            Ok(m) if m.file_type().is_symlink() => ops.push(JailOp::Symlink(
                c(std::fs::read_link(top)?)?,
                c(jail_path(top))?,
            )),
            Ok(m) if m.is_dir() => {
                ops.push(JailOp::Mkdir(c(jail_path(top))?));
                ops.push(JailOp::BindRo(c(top)?, c(jail_path(top))?));
            }
            _ => {}
        }
    }
    ops.push(JailOp::Mkdir(c(jail_path("/etc"))?));
    for f in ["/etc/ld.so.cache", "/etc/resolv.conf", "/etc/hosts"] {
        if Path::new(f).exists() {
            ops.push(JailOp::Touch(c(jail_path(f))?));
            ops.push(JailOp::BindRo(c(f)?, c(jail_path(f))?));
        }
    }
    ops.push(JailOp::Mkdir(c(jail_path("/dev"))?));
    ops.push(JailOp::Mkdir(c(jail_path("/dev/net"))?));
    ops.push(JailOp::CharDev(c(jail_path("/dev/net/tun"))?, 10, 200));
    ops.push(JailOp::CharDev(c(jail_path("/dev/null"))?, 1, 3));
    ops.push(JailOp::CharDev(c(jail_path("/dev/urandom"))?, 1, 9));
    if with_proc {
        // pasta re-reads /proc/self/exe and friends during set-up, then isolates itself by
        // pivoting into an empty tmpfs it mounts on /tmp.
        ops.push(JailOp::Mkdir(c(jail_path("/tmp"))?));
        ops.push(JailOp::Mkdir(c(jail_path("/proc"))?));
        ops.push(JailOp::BindRo(c("/proc")?, c(jail_path("/proc"))?));
    }
    for (name, fd) in [("/netns", netns), ("/userns", userns)] {
        ops.push(JailOp::Touch(c(jail_path(name))?));
        // The nsfs file behind the descriptor, bound like `ip netns` pins namespaces.
        ops.push(JailOp::BindRo(
            c(format!("/proc/self/fd/{fd}"))?,
            c(jail_path(name))?,
        ));
    }
    Ok(ops)
}

/// Build the jail and enter it. Runs between fork and exec: async-signal-safe calls only.
fn enter_jail(ops: &[JailOp], root: &CString) -> io::Result<()> {
    // SAFETY: plain syscalls with NUL-terminated paths prepared before the fork.
    unsafe {
        cvt(libc::unshare(libc::CLONE_NEWNS))?;
        cvt(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        cvt(libc::mount(
            c"tmpfs".as_ptr(),
            root.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID,
            c"mode=0755,size=65536".as_ptr().cast(),
        ))?;
        for op in ops {
            match op {
                JailOp::Mkdir(p) => {
                    cvt(libc::mkdir(p.as_ptr(), 0o755))?;
                }
                JailOp::Touch(p) => {
                    let fd = cvt(libc::open(
                        p.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o644,
                    ))?;
                    libc::close(fd);
                }
                JailOp::BindRo(src, dst) => {
                    cvt(libc::mount(
                        src.as_ptr(),
                        dst.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND | libc::MS_REC,
                        std::ptr::null(),
                    ))?;
                    cvt(libc::mount(
                        std::ptr::null(),
                        dst.as_ptr(),
                        std::ptr::null(),
                        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID,
                        std::ptr::null(),
                    ))?;
                }
                JailOp::Symlink(target, at) => {
                    cvt(libc::symlink(target.as_ptr(), at.as_ptr()))?;
                }
                JailOp::CharDev(p, major, minor) => {
                    cvt(libc::mknod(
                        p.as_ptr(),
                        libc::S_IFCHR | 0o666,
                        libc::makedev(*major, *minor),
                    ))?;
                    // mknod applies the umask.
                    cvt(libc::chmod(p.as_ptr(), 0o666))?;
                }
            }
        }
        cvt(libc::chroot(root.as_ptr()))?;
        cvt(libc::chdir(c"/".as_ptr()))?;
    }
    Ok(())
}

/// Start the helper on the sandbox's network namespace `net` and wait until the namespace has
/// a default route.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn start(
    helper: NetHelper,
    binary: &Path,
    net: &Arc<OwnedFd>,
    cg: &SessionCgroup,
    sandbox_pid: u32,
    uid: u32,
    gid: u32,
    host_loopback: bool,
    deadline: Instant,
) -> Result<Child, SandboxError> {
    let userns = sys::owning_userns(net).map_err(|e| SandboxError::io("NS_GET_USERNS", e))?;
    let ops = jail_ops(
        net.as_raw_fd(),
        userns.as_raw_fd(),
        helper == NetHelper::Pasta,
    )
    .map_err(|e| SandboxError::io("prepare the network helper jail", e))?;
    let root = c(JAIL).expect("static path");
    let procs = cg.open_procs()?;

    let mut cmd = Command::new(binary);
    match helper {
        NetHelper::Slirp4netns => {
            cmd.args(["--configure", "--mtu=65520", "--enable-seccomp"]);
            if !host_loopback {
                cmd.arg("--disable-host-loopback");
            }
            // Defaults: 10.0.2.100/24, gateway (= host loopback) 10.0.2.2, DNS 10.0.2.3.
            cmd.args([
                "--userns-path=/userns",
                "--netns-type=path",
                "/netns",
                "eth0",
            ]);
        }
        NetHelper::Pasta => {
            cmd.args([
                "--foreground",
                "--quiet",
                "--ipv4-only",
                "--config-net",
                "--ns-ifname",
                "eth0",
                "--address",
                &SANDBOX_ADDR.to_string(),
                "--netmask",
                "24",
                "--gateway",
                &HOST_LOOPBACK_ADDR.to_string(),
                "--dns-forward",
                &SANDBOX_DNS_ADDR.to_string(),
                "--no-dhcp",
                // No port forwarding either way: "auto" would publish the sandbox's listening
                // ports on the host, and the host's on the sandbox's loopback.
                "--tcp-ports",
                "none",
                "--udp-ports",
                "none",
                "--tcp-ns",
                "none",
                "--udp-ns",
                "none",
            ]);
            if !host_loopback {
                cmd.arg("--no-map-gw");
            }
            cmd.args(["--userns", "/userns", "--netns", "/netns"]);
        }
    }
    cmd.env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let procs_raw: Vec<RawFd> = procs.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: async-signal-safe calls only, on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &procs_raw {
                sys::write_all_raw(*fd, b"0")?;
            }
            enter_jail(&ops, &root)?;
            sys::drop_to(uid, gid)?;
            sys::no_new_privs()?;
            sys::parent_death_signal(libc::SIGKILL)
        });
    }
    let mut child = process::spawn_from_spawner(cmd)
        .await
        .map_err(|e| SandboxError::Network(format!("spawn {}: {e}", binary.display())))?;
    drop(userns);
    drop(procs);

    let route = format!("/proc/{sandbox_pid}/net/route");
    loop {
        let ready = std::fs::read_to_string(&route)
            .map(|s| {
                s.lines()
                    .skip(1)
                    .any(|l| l.split_whitespace().nth(1) == Some("00000000"))
            })
            .unwrap_or(false);
        if ready {
            break;
        }
        if let Ok(Some(st)) = child.try_wait() {
            let mut out = String::new();
            for mut r in [
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            ]
            .into_iter()
            .flatten()
            {
                let _ = r.read_to_string(&mut out).await;
            }
            let out: Vec<&str> = out.lines().filter(|l| !l.contains("syslog")).collect();
            return Err(SandboxError::Network(format!(
                "{} exited ({}) during set-up: {}",
                binary.display(),
                SandboxExit::from_std(st),
                out.join("; ")
            )));
        }
        if Instant::now() >= deadline {
            return Err(SandboxError::Network(format!(
                "timed out waiting for {}",
                binary.display()
            )));
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    // A helper that configured the interface and then failed its own hardening exits right
    // after; its interface goes with it.
    if let Ok(Some(st)) = child.try_wait() {
        return Err(SandboxError::Network(format!(
            "{} exited ({}) right after set-up",
            binary.display(),
            SandboxExit::from_std(st)
        )));
    }
    // Keep draining its output (a full pipe would block it) into debug logs.
    for r in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
    ]
    .into_iter()
    .flatten()
    {
        tokio::spawn(
            async move {
                let mut r = tokio::io::BufReader::new(r);
                let mut line = String::new();
                use tokio::io::AsyncBufReadExt;
                while matches!(r.read_line(&mut line).await, Ok(n) if n > 0) {
                    tracing::debug!(line = line.trim_end(), "network helper");
                    line.clear();
                }
            }
            .in_current_span(),
        );
    }
    Ok(child)
}
