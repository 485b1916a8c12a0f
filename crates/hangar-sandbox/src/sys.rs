//! Thin wrappers over the few Linux calls std does not offer.
//!
//! Functions marked "async-signal-safe" are used between `fork` and `exec` (in `pre_exec`
//! closures of a multi-threaded process), where only such calls are allowed: no allocation, no
//! locks, no `std::io` machinery beyond `io::Error::last_os_error`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// `ioctl(NS_GET_USERNS)`: the user namespace that owns a namespace (`_IO(0xb7, 0x1)`).
const NS_GET_USERNS: libc::c_ulong = 0xb701;

pub(crate) fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub(crate) fn geteuid() -> u32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::geteuid() }
}

/// Open a file with `O_CLOEXEC`; `flags` adds e.g. `O_WRONLY` or `O_DIRECTORY`.
pub(crate) fn open(path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let mut buf = path.as_os_str().as_bytes().to_vec();
    buf.push(0);
    let c = CStr::from_bytes_with_nul(&buf)
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: valid NUL-terminated path; we own the returned descriptor.
    let fd = cvt(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: fd was just returned by open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setns(2)`. Async-signal-safe.
pub(crate) fn setns(fd: RawFd, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall on a descriptor number.
    cvt(unsafe { libc::setns(fd, nstype) }).map(drop)
}

/// The user namespace owning the namespace `fd` refers to.
pub(crate) fn owning_userns(fd: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: NS_GET_USERNS takes no argument and returns a new descriptor.
    let r = cvt(unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_USERNS as _) })?;
    // SAFETY: new descriptor owned by us. NS_GET_USERNS sets O_CLOEXEC.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// A pidfd for a child we have not reaped yet, so signals never hit a recycled pid.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; returns a new descriptor (O_CLOEXEC is implied for pidfds).
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: new descriptor owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

pub(crate) fn pidfd_kill(fd: &OwnedFd, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall on a pidfd.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        // ESRCH: already exited (not yet reaped counts as exited for this purpose).
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
}

pub(crate) fn kill(pid: i32, sig: libc::c_int) {
    // SAFETY: plain syscall; errors (ESRCH for a process that is gone) are irrelevant here.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// An anonymous in-memory file holding `contents`, positioned at 0: the source of bwrap's
/// `--ro-bind-data`, which copies it into the sandbox.
pub(crate) fn memfd_with(contents: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: constant name, valid flags; we own the descriptor.
    let fd = cvt(unsafe { libc::memfd_create(c"hangar-sandbox".as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: fresh descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut off = 0;
    while off < contents.len() {
        // SAFETY: pointer/length inside `contents`.
        let n = unsafe {
            libc::write(
                fd.as_raw_fd(),
                contents[off..].as_ptr().cast(),
                contents.len() - off,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        off += n as usize;
    }
    // SAFETY: plain lseek.
    if unsafe { libc::lseek(fd.as_raw_fd(), 0, libc::SEEK_SET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// A pipe, both ends `O_CLOEXEC` (ends meant for a child get the flag cleared after fork).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both are new descriptors owned by us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

// ---- async-signal-safe helpers for pre_exec ------------------------------------------------

/// Write all of `data` to `fd`. Async-signal-safe.
pub(crate) fn write_all_raw(fd: RawFd, data: &[u8]) -> io::Result<()> {
    let mut off = 0;
    while off < data.len() {
        // SAFETY: pointer/length inside `data`.
        let n = unsafe { libc::write(fd, data[off..].as_ptr().cast(), data.len() - off) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        off += n as usize;
    }
    Ok(())
}

/// Let `fd` survive `exec`. Async-signal-safe.
pub(crate) fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor number.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }).map(drop)
}

/// Drop every supplementary group and become `uid`/`gid` (real, effective, saved).
/// Async-signal-safe. Groups first: after the uid change we could no longer drop them, and a
/// leftover group 0 would open root-group-readable host files.
pub(crate) fn drop_to(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain syscalls.
    unsafe {
        cvt(libc::setgroups(0, std::ptr::null()))?;
        cvt(libc::setresgid(gid, gid, gid))?;
        cvt(libc::setresuid(uid, uid, uid))?;
    }
    Ok(())
}

/// `prctl(PR_SET_NO_NEW_PRIVS)`: no setuid/file-capability gains through exec. Async-signal-safe.
pub(crate) fn no_new_privs() -> io::Result<()> {
    // SAFETY: plain prctl.
    cvt(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).map(drop)
}

/// Kill this process with `sig` when its parent (thread) dies. Async-signal-safe.
pub(crate) fn parent_death_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: plain prctl.
    cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) }).map(drop)
}
