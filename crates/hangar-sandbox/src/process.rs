//! Starting processes: the long-lived spawner thread, and entering a live sandbox for `exec`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::process::Stdio;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::sys::{self, cvt};
use crate::ExecRequest;

type Job = Box<dyn FnOnce() + Send>;

/// Number of spawner threads. `Command::spawn` blocks its thread until the child has exec'd,
/// which includes the child's cgroup migration (one RCU grace period on cgroup v1, ~10 ms on a
/// busy host); a few threads let concurrent session starts overlap.
const SPAWNERS: usize = 4;

static SPAWNER: Mutex<Option<mpsc::Sender<Job>>> = Mutex::new(None);

fn start_spawners() -> io::Result<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..SPAWNERS {
        let rx = rx.clone();
        std::thread::Builder::new()
            .name(format!("hangar-spawner-{i}"))
            .spawn(move || loop {
                let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                    Ok(job) => job,
                    Err(_) => return,
                };
                job();
            })?;
    }
    Ok(tx)
}

/// Spawn `cmd` from one of a few dedicated threads that live as long as the process.
///
/// bwrap's `--die-with-parent` (and our own `PR_SET_PDEATHSIG` for the network helper) fire when
/// the *thread* that forked the child exits, not the process. Forking from a tokio blocking-pool
/// thread (which exits after 10 s idle) or a worker that later ends would silently kill the
/// sandbox; permanent spawner threads tie the sandbox's life to the process's instead. The
/// runtime handle is entered there so the child is registered with the caller's runtime.
pub(crate) async fn spawn_from_spawner(cmd: Command) -> io::Result<Child> {
    let handle = tokio::runtime::Handle::current();
    let (tx, rx) = oneshot::channel();
    let mut cmd = cmd;
    let job: Job = Box::new(move || {
        let _guard = handle.enter();
        let _ = tx.send(cmd.spawn());
    });
    {
        let mut s = SPAWNER.lock().unwrap_or_else(|e| e.into_inner());
        if s.is_none() {
            *s = Some(start_spawners()?);
        }
        s.as_ref()
            .expect("spawner")
            .send(job)
            .map_err(|_| io::Error::other("spawner threads unavailable"))?;
    }
    rx.await
        .map_err(|_| io::Error::other("spawner thread dropped the request"))?
}

/// Namespace descriptors of a running sandbox (opened from its pid 1), kept for its lifetime so
/// `exec` and `connect` never race with pid reuse.
#[derive(Debug)]
pub(crate) struct NsFds {
    pub(crate) user: OwnedFd,
    pub(crate) mnt: OwnedFd,
    pub(crate) pid: OwnedFd,
    pub(crate) ipc: OwnedFd,
    pub(crate) uts: OwnedFd,
    pub(crate) cgroup: OwnedFd,
    pub(crate) net: Arc<OwnedFd>,
    /// The sandbox's root directory (`/proc/PID/root`), for `chroot` after joining its mount
    /// namespace (joining alone leaves us at the namespace's original root, under bwrap's
    /// pivot).
    pub(crate) root: OwnedFd,
}

/// Grandchild pid for the signal-forwarding handler of the intermediate process.
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drop every capability (effective, permitted, inheritable). Async-signal-safe.
fn clear_caps() -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut h = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let d = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and two data words as capset(2) v3 expects.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A command that runs `req` inside the sandbox described by `ns`, as `uid`/`gid`, in the
/// session cgroup (`procs`: its `cgroup.procs` files, open for writing).
///
/// Between fork and exec the child: joins the cgroup; drops supplementary groups and sets the
/// gid (still privileged); joins the ipc, uts, net, cgroup, pid and mount namespaces; `chroot`s
/// to the sandbox root and `chdir`s to `req.cwd`; joins the sandbox's user namespace last (after
/// that, host privileges are gone); empties the capability bounding set (so file capabilities of
/// binaries like `ping` give nothing), sets the uid, `no_new_privs`, clears all capabilities.
/// Joining a pid namespace only applies to children, so it then forks: the grandchild (inside the
/// sandbox's pid namespace, killed by `PR_SET_PDEATHSIG` if the intermediate dies) execs the
/// command; the intermediate closes every inherited descriptor (so `spawn` returns as soon as
/// the grandchild execs), forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2, and exits with
/// the grandchild's status. Killing the returned child therefore kills the command.
pub(crate) fn exec_command(
    req: &ExecRequest,
    ns: Arc<NsFds>,
    procs: Vec<OwnedFd>,
    uid: u32,
    gid: u32,
) -> io::Result<Command> {
    let cwd = CString::new(req.cwd.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let last_cap = last_cap();
    let mut cmd = Command::new(&req.program);
    cmd.args(&req.args)
        .env_clear()
        .envs(req.env.iter().map(|(k, v)| (k, v)))
        .stdin(if req.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let enter = move || -> io::Result<()> {
        for fd in &procs {
            sys::write_all_raw(fd.as_raw_fd(), b"0")?;
        }
        // SAFETY (whole block): plain syscalls on descriptors and buffers prepared before fork;
        // nothing here allocates or takes a lock.
        unsafe {
            cvt(libc::setgroups(0, std::ptr::null()))?;
            cvt(libc::setresgid(gid, gid, gid))?;
            for (fd, kind) in [
                (ns.ipc.as_raw_fd(), libc::CLONE_NEWIPC),
                (ns.uts.as_raw_fd(), libc::CLONE_NEWUTS),
                (ns.net.as_raw_fd(), libc::CLONE_NEWNET),
                (ns.cgroup.as_raw_fd(), libc::CLONE_NEWCGROUP),
                (ns.pid.as_raw_fd(), libc::CLONE_NEWPID),
                (ns.mnt.as_raw_fd(), libc::CLONE_NEWNS),
            ] {
                sys::setns(fd, kind)?;
            }
            cvt(libc::fchdir(ns.root.as_raw_fd()))?;
            cvt(libc::chroot(c".".as_ptr()))?;
            cvt(libc::chdir(cwd.as_ptr()))?;
            sys::setns(ns.user.as_raw_fd(), libc::CLONE_NEWUSER)?;
            for cap in 0..=last_cap {
                libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
            }
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            );
            cvt(libc::setresuid(uid, uid, uid))?;
            sys::no_new_privs()?;
            clear_caps()?;

            let child = libc::fork();
            if child < 0 {
                return Err(io::Error::last_os_error());
            }
            if child == 0 {
                sys::parent_death_signal(libc::SIGKILL)?;
                // Our parent is outside our pid namespace, so getppid() reads 0 while it lives;
                // anything else means it died before PDEATHSIG was armed.
                if libc::getppid() != 0 {
                    libc::_exit(126);
                }
                return Ok(());
            }
            // Intermediate: hold no descriptor (std's exec-error pipe included), wait, mirror.
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            FORWARD_TO.store(child, Ordering::Relaxed);
            for sig in [
                libc::SIGTERM,
                libc::SIGINT,
                libc::SIGHUP,
                libc::SIGQUIT,
                libc::SIGUSR1,
                libc::SIGUSR2,
            ] {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = forward_signal as *const () as usize;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
            let mut status = 0;
            loop {
                let r = libc::waitpid(child, &mut status, 0);
                if r == child {
                    break;
                }
                if r < 0 && *libc::__errno_location() != libc::EINTR {
                    libc::_exit(125);
                }
            }
            if libc::WIFEXITED(status) {
                libc::_exit(libc::WEXITSTATUS(status));
            }
            if libc::WIFSIGNALED(status) {
                let sig = libc::WTERMSIG(status);
                libc::signal(sig, libc::SIG_DFL);
                libc::kill(libc::getpid(), sig);
                libc::_exit(128 + sig);
            }
            libc::_exit(125);
        }
    };
    // SAFETY: the closure only makes async-signal-safe calls (see above).
    unsafe {
        cmd.pre_exec(enter);
    }
    Ok(cmd)
}
