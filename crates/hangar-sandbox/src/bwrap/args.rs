//! The bwrap command line for a [`SandboxSpec`]: namespaces, the file system plan, environment.
//!
//! File system plan. The sandbox's `/` is either bwrap's own tmpfs (remounted read-only at the
//! end) or the caller's image root bound read-only. Read-only *layers* (the image root, host
//! system directories) cannot receive new mount points, and we never write into them on the
//! host. When a mount target (`/proc`, `/tmp`, `/etc/hosts`, a code mount...) is missing in a
//! layer, the layer is *expanded* along that path: the directory becomes a tmpfs and each of
//! its entries is bound (or symlinked) individually, recursively down to the target's parent,
//! so bwrap can create the missing mount point on a tmpfs. Expanded directories are remounted
//! read-only after all mounts are in place.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::spec::{HOST_LOOPBACK_ADDR, HOST_LOOPBACK_ENV, SANDBOX_DNS_ADDR, SANDBOX_HOSTNAME};
use crate::{sys, Mount, NetworkMode, SandboxError, SandboxSpec};

/// Directories bound from the host by [`Mount::HostSystem`] (when they exist).
const HOST_SYSTEM_DIRS: &[&str] = &["/usr"];
/// Top-level entries that are symlinks into `/usr` on merged-usr hosts, directories elsewhere.
const HOST_SYSTEM_TOP: &[&str] = &["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];
/// What an interpreter and TLS need from `/etc` (each only if present on the host).
const HOST_SYSTEM_ETC: &[&str] = &[
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/protocols",
    "/etc/services",
    "/etc/mime.types",
    "/etc/gai.conf",
];

/// Everything needed to exec bwrap: its arguments and the descriptors they mention (which must
/// stay open, and be inherited, until bwrap has read them).
pub(crate) struct BwrapCommand {
    pub(crate) args: Vec<OsString>,
    pub(crate) fds: Vec<OwnedFd>,
}

#[derive(Debug)]
enum Op {
    RoBind(PathBuf, PathBuf),
    Bind(PathBuf, PathBuf),
    Tmpfs(PathBuf, Option<u64>, u32),
    Symlink(PathBuf, PathBuf),
    Data(usize, PathBuf, u32),
    Proc(PathBuf),
    Dev(PathBuf),
}

/// A read-only host directory shown at `inside`.
#[derive(Debug)]
struct Layer {
    inside: PathBuf,
    host: PathBuf,
}

pub(crate) struct Identity {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

pub(crate) fn build(
    spec: &SandboxSpec,
    id: &Identity,
    info_fd: i32,
    block_fd: i32,
) -> Result<BwrapCommand, SandboxError> {
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut layers: Vec<Layer> = Vec::new();
    let mut symlinks: Vec<Op> = Vec::new();
    let mut data: Vec<(PathBuf, Vec<u8>, u32)> = Vec::new();
    let mut later: Vec<Op> = Vec::new();

    if let Some(root) = &spec.root {
        if !root.is_dir() {
            return Err(SandboxError::InvalidSpec(format!(
                "root {} is not a directory",
                root.display()
            )));
        }
        layers.push(Layer {
            inside: "/".into(),
            host: root.clone(),
        });
    }

    let host_system = spec.mounts.iter().any(|m| matches!(m, Mount::HostSystem));
    if host_system {
        for d in HOST_SYSTEM_DIRS.iter().chain(HOST_SYSTEM_ETC) {
            let p = Path::new(d);
            if p.exists() {
                layers.push(Layer {
                    inside: p.into(),
                    host: p.into(),
                });
            }
        }
        for d in HOST_SYSTEM_TOP {
            let p = Path::new(d);
            match fs::symlink_metadata(p) {
                Ok(m) if m.file_type().is_symlink() => {
                    let target = fs::read_link(p)
                        .map_err(|e| SandboxError::io(format!("readlink {d}"), e))?;
                    symlinks.push(Op::Symlink(target, p.into()));
                }
                Ok(m) if m.is_dir() => layers.push(Layer {
                    inside: p.into(),
                    host: p.into(),
                }),
                _ => {}
            }
        }
        if let Ok(rd) = fs::read_dir("/etc") {
            // Debian's python reads /etc/python3.X (sitecustomize); harmless elsewhere.
            let mut py: Vec<PathBuf> = rd
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
                .map(|e| e.path())
                .collect();
            py.sort();
            for p in py {
                layers.push(Layer {
                    inside: p.clone(),
                    host: p,
                });
            }
        }
        if spec.root.is_none() {
            data.push((
                "/etc/passwd".into(),
                format!(
                    "root:x:0:0:root:/root:/usr/sbin/nologin\n\
                     sandbox:x:{}:{}:sandbox:/tmp:/bin/sh\n\
                     nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                    id.uid, id.gid
                )
                .into_bytes(),
                0o444,
            ));
            data.push((
                "/etc/group".into(),
                format!("root:x:0:\nsandbox:x:{}:\nnogroup:x:65534:\n", id.gid).into_bytes(),
                0o444,
            ));
        }
    }

    // Name resolution for "localhost" and our own host name even without any network.
    data.push((
        "/etc/hosts".into(),
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{SANDBOX_HOSTNAME}\n"
        )
        .into_bytes(),
        0o444,
    ));
    data.push((
        "/etc/hostname".into(),
        format!("{SANDBOX_HOSTNAME}\n").into_bytes(),
        0o444,
    ));
    if matches!(spec.network, NetworkMode::Public { .. }) {
        data.push((
            "/etc/resolv.conf".into(),
            format!("nameserver {SANDBOX_DNS_ADDR}\n").into_bytes(),
            0o444,
        ));
    }

    later.push(Op::Proc("/proc".into()));
    later.push(Op::Dev("/dev".into()));
    later.push(Op::Tmpfs(
        "/tmp".into(),
        Some(spec.limits.tmp_bytes),
        0o1777,
    ));
    later.push(Op::Tmpfs(
        "/dev/shm".into(),
        Some(spec.limits.tmp_bytes),
        0o1777,
    ));

    // Caller mounts, shallow before deep (stable), so none hides a later one.
    let mut user: Vec<&Mount> = spec
        .mounts
        .iter()
        .filter(|m| !matches!(m, Mount::HostSystem))
        .collect();
    user.sort_by_key(|m| match m {
        Mount::ReadOnly { inside, .. }
        | Mount::ReadWrite { inside, .. }
        | Mount::Tmpfs { inside, .. }
        | Mount::File { inside, .. }
        | Mount::Symlink { inside, .. } => inside.components().count(),
        Mount::HostSystem => 0,
    });
    for (path, contents, mode) in data {
        let idx = fds.len();
        fds.push(sys::memfd_with(&contents).map_err(|e| SandboxError::io("memfd", e))?);
        later.push(Op::Data(idx, path, mode));
    }
    for m in user {
        match m {
            Mount::HostSystem => {}
            Mount::ReadOnly { host, inside } => {
                later.push(Op::RoBind(host.clone(), inside.clone()))
            }
            Mount::ReadWrite { host, inside } => later.push(Op::Bind(host.clone(), inside.clone())),
            Mount::Tmpfs { inside, size_bytes } => {
                later.push(Op::Tmpfs(inside.clone(), Some(*size_bytes), 0o755))
            }
            Mount::File {
                inside,
                contents,
                mode,
            } => {
                let idx = fds.len();
                fds.push(sys::memfd_with(contents).map_err(|e| SandboxError::io("memfd", e))?);
                later.push(Op::Data(idx, inside.clone(), *mode & 0o7777));
            }
            Mount::Symlink { target, inside } => {
                later.push(Op::Symlink(target.clone(), inside.clone()))
            }
        }
    }

    // Which layer directories must be expanded to host the mount points.
    let mut targets: Vec<PathBuf> = layers
        .iter()
        .map(|l| l.inside.clone())
        .filter(|p| p != Path::new("/"))
        .collect();
    for op in symlinks.iter().chain(&later) {
        targets.push(op_target(op).to_path_buf());
    }
    // Fresh mounts that can hold mount points of their own (a target under one of them is
    // created there by bwrap, not in a layer).
    let fresh: Vec<PathBuf> = later
        .iter()
        .filter(|op| !matches!(op, Op::Data(..) | Op::Symlink(..)))
        .map(|op| op_target(op).to_path_buf())
        .collect();
    let mut expand: BTreeSet<PathBuf> = BTreeSet::new();
    for t in &targets {
        mark_expansion(&layers, &fresh, t, &mut expand)?;
    }

    // Emit.
    let mut ops: Vec<Op> = Vec::new();
    let mut remount_ro: Vec<PathBuf> = Vec::new();
    let root_is_layer = layers.first().map(|l| l.inside == Path::new("/")) == Some(true);
    for l in &layers {
        emit_layer(&l.inside, &l.host, &expand, &mut ops, &mut remount_ro)?;
    }
    ops.extend(symlinks);
    ops.extend(later);
    if !root_is_layer || expand.contains(Path::new("/")) {
        remount_ro.push("/".into());
    }

    let mut a: Vec<OsString> = Vec::new();
    let mut push = |s: &str| a.push(s.into());
    for f in [
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--cap-drop",
        "ALL",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--hostname",
        SANDBOX_HOSTNAME,
    ] {
        push(f);
    }
    if let Some((uid, gid)) = spec.inside_ids {
        a.push("--uid".into());
        a.push(uid.to_string().into());
        a.push("--gid".into());
        a.push(gid.to_string().into());
    }
    for op in &ops {
        match op {
            Op::RoBind(h, i) => pushv(&mut a, &["--ro-bind"], &[h, i]),
            Op::Bind(h, i) => pushv(&mut a, &["--bind"], &[h, i]),
            Op::Tmpfs(i, size, mode) => {
                a.push("--perms".into());
                a.push(format!("{mode:o}").into());
                if let Some(s) = size {
                    a.push("--size".into());
                    a.push(s.to_string().into());
                }
                pushv(&mut a, &["--tmpfs"], &[i]);
            }
            Op::Symlink(t, i) => pushv(&mut a, &["--symlink"], &[t, i]),
            Op::Data(idx, i, mode) => {
                a.push("--perms".into());
                a.push(format!("{mode:o}").into());
                a.push("--ro-bind-data".into());
                a.push(fds[*idx].as_raw_fd().to_string().into());
                a.push(i.into());
            }
            Op::Proc(i) => pushv(&mut a, &["--proc"], &[i]),
            Op::Dev(i) => pushv(&mut a, &["--dev"], &[i]),
        }
    }
    // Deepest first, "/" last: a read-only parent does not stop remounting its children.
    remount_ro.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in &remount_ro {
        pushv(&mut a, &["--remount-ro"], &[p]);
    }

    let mut env: Vec<(String, String)> = spec.env.clone();
    if spec.network
        == (NetworkMode::Public {
            host_loopback: true,
        })
        && !env.iter().any(|(k, _)| k == HOST_LOOPBACK_ENV)
    {
        env.push((HOST_LOOPBACK_ENV.into(), HOST_LOOPBACK_ADDR.to_string()));
    }
    for (k, v) in &env {
        a.push("--setenv".into());
        a.push(k.into());
        a.push(v.into());
    }
    a.push("--chdir".into());
    a.push(spec.cwd.clone().into());
    a.push("--info-fd".into());
    a.push(info_fd.to_string().into());
    a.push("--block-fd".into());
    a.push(block_fd.to_string().into());
    a.push("--".into());
    a.push(spec.program.clone().into());
    for x in &spec.args {
        a.push(x.into());
    }
    Ok(BwrapCommand { args: a, fds })
}

fn pushv(a: &mut Vec<OsString>, flags: &[&str], paths: &[&PathBuf]) {
    for f in flags {
        a.push((*f).into());
    }
    for p in paths {
        a.push(p.as_os_str().to_owned());
    }
}

fn op_target(op: &Op) -> &Path {
    match op {
        Op::RoBind(_, i)
        | Op::Bind(_, i)
        | Op::Tmpfs(i, ..)
        | Op::Symlink(_, i)
        | Op::Data(_, i, _)
        | Op::Proc(i)
        | Op::Dev(i) => i,
    }
}

/// If `target` lies under a read-only layer and does not exist there, mark the layer's
/// directories from its top down to the target's parent for expansion.
fn mark_expansion(
    layers: &[Layer],
    fresh: &[PathBuf],
    target: &Path,
    expand: &mut BTreeSet<PathBuf>,
) -> Result<(), SandboxError> {
    let covers = |p: &Path| target != p && target.starts_with(p);
    let Some(layer) = layers
        .iter()
        .filter(|l| covers(&l.inside))
        .max_by_key(|l| l.inside.components().count())
    else {
        return Ok(()); // on bwrap's tmpfs root
    };
    let depth = layer.inside.components().count();
    if fresh
        .iter()
        .any(|m| covers(m) && m.components().count() >= depth)
    {
        return Ok(()); // inside a fresh mount (e.g. /dev/shm in /dev): bwrap creates it there
    }
    let rel = target.strip_prefix(&layer.inside).expect("prefix");
    if fs::symlink_metadata(layer.host.join(rel)).is_ok() {
        return Ok(()); // the mount point exists in the layer
    }
    let mut inside = layer.inside.clone();
    let mut host = layer.host.clone();
    expand.insert(inside.clone());
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            inside.push(c);
            host.push(c);
            match fs::symlink_metadata(&host) {
                Ok(m) if m.is_dir() => {
                    expand.insert(inside.clone());
                }
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(SandboxError::InvalidSpec(format!(
                        "mount target {} goes through the symlink {} of a read-only layer",
                        target.display(),
                        inside.display()
                    )));
                }
                Ok(_) => {
                    return Err(SandboxError::InvalidSpec(format!(
                        "mount target {}: {} is not a directory",
                        target.display(),
                        inside.display()
                    )));
                }
                // Missing from here on: bwrap creates the rest on the tmpfs above.
                Err(_) => break,
            }
        }
    }
    Ok(())
}

fn emit_layer(
    inside: &Path,
    host: &Path,
    expand: &BTreeSet<PathBuf>,
    ops: &mut Vec<Op>,
    remount_ro: &mut Vec<PathBuf>,
) -> Result<(), SandboxError> {
    if !expand.contains(inside) {
        ops.push(Op::RoBind(host.into(), inside.into()));
        return Ok(());
    }
    if inside != Path::new("/") {
        let mode = fs::metadata(host)
            .map(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.permissions().mode() & 0o7777
            })
            .unwrap_or(0o755);
        ops.push(Op::Tmpfs(inside.into(), Some(1 << 20), mode));
        remount_ro.push(inside.into());
    }
    let mut entries: Vec<_> = fs::read_dir(host)
        .map_err(|e| SandboxError::io(format!("read {}", host.display()), e))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let ci = inside.join(e.file_name());
        let ch = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if expand.contains(&ci) {
                emit_layer(&ci, &ch, expand, ops, remount_ro)?;
            } else {
                ops.push(Op::RoBind(ch, ci));
            }
        } else if ft.is_symlink() {
            if let Ok(t) = fs::read_link(&ch) {
                ops.push(Op::Symlink(t, ci));
            }
        } else if ft.is_file() {
            ops.push(Op::RoBind(ch, ci));
        }
        // Sockets, fifos and device nodes of an image are not carried over.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_of(spec: &SandboxSpec) -> Vec<String> {
        let c = build(
            spec,
            &Identity {
                uid: 2_000_000,
                gid: 2_000_000,
            },
            100,
            101,
        )
        .unwrap();
        c.args
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn host_system_layout() {
        let spec = SandboxSpec::new("t", "/usr/bin/true");
        let a = args_of(&spec);
        let s = a.join(" ");
        assert!(s.contains("--ro-bind /usr /usr"), "{s}");
        assert!(s.contains("--disable-userns --cap-drop ALL"), "{s}");
        assert!(s.contains("--remount-ro /"), "{s}");
        assert!(s.ends_with("--block-fd 101 -- /usr/bin/true"), "{s}");
    }

    #[test]
    fn image_root_expansion() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("etc/sub")).unwrap();
        fs::write(root.join("etc/os-release"), "x").unwrap();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        let mut spec = SandboxSpec::new("t", "/bin/sh");
        spec.mounts = vec![Mount::ReadOnly {
            host: "/tmp".into(),
            inside: "/app/code".into(),
        }];
        spec.root = Some(root.to_path_buf());
        let s = args_of(&spec).join(" ");
        // "/" is expanded (no /proc, /tmp, /app in the image), /etc too (no /etc/hosts).
        assert!(
            !s.contains(&format!("--ro-bind {} /", root.display())),
            "{s}"
        );
        assert!(s.contains("--tmpfs /etc"), "{s}");
        assert!(
            s.contains(&format!("--ro-bind {}/etc/sub /etc/sub", root.display())),
            "{s}"
        );
        assert!(s.contains("--symlink usr/bin /bin"), "{s}");
        assert!(s.contains("--remount-ro /etc --remount-ro /"), "{s}");

        // With every mount point present, the root is bound as is.
        for d in ["proc", "dev", "tmp", "app/code"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("etc/hosts"), "").unwrap();
        fs::write(root.join("etc/hostname"), "").unwrap();
        let s = args_of(&spec).join(" ");
        assert!(
            s.contains(&format!("--ro-bind {} /", root.display())),
            "{s}"
        );
        assert!(!s.contains("--remount-ro"), "{s}");
    }
}
