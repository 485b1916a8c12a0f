//! Applying layer tarballs onto a root, safely.
//!
//! - Every entry's path is relative to the root: absolute paths and `..` components refuse the
//!   whole layer (an image that tries it is broken or hostile; skipping the entry would run a
//!   different program than its author built).
//! - Nothing is written through a symlink: each parent of an entry is checked with `lstat`, so
//!   `a -> /etc` followed by `a/passwd` is refused rather than writing the host's `/etc`.
//! - Whiteouts (`.wh.NAME` removes `NAME` from lower layers, `.wh..wh..opq` hides a directory's
//!   lower contents) are applied, not copied.
//! - Regular files keep their mtime (byte-code caches in images are validated against it).
//! - Ownership is not kept: the tree is owned by the server and made world-readable (execute
//!   bits kept, set-id bits dropped), because each session runs as its own unprivileged host uid
//!   and sees the root read-only. Device nodes and FIFOs are skipped (the sandbox brings `/dev`).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::OciError;

/// Applies one layer (an uncompressed tar stream) to `root`. `budget` is what may still be
/// written, in bytes of file contents, across all layers.
pub(crate) fn apply_layer<R: Read>(
    root: &Path,
    reader: R,
    layer: &str,
    budget: &mut u64,
    limit: u64,
) -> Result<(), OciError> {
    let mut archive = tar::Archive::new(reader);
    let mut written: HashSet<PathBuf> = HashSet::new();
    let io = |e: io::Error| OciError::io(format!("unpacking layer {layer}"), e);
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let raw = entry.path_bytes().into_owned();
        let Some(rel) = clean(&raw).map_err(|why| {
            OciError::UnsafeLayer(format!(
                "layer {layer} was refused: the entry {:?} {why}",
                String::from_utf8_lossy(&raw)
            ))
        })?
        else {
            continue; // the root itself
        };
        let name = rel.file_name().unwrap_or_default().as_bytes().to_vec();
        let parent_rel = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let parent = ensure_dirs(root, &parent_rel, layer)?;
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(OciError::UnsafeLayer(format!(
                    "layer {layer} was refused: the whiteout {:?} names no file",
                    String::from_utf8_lossy(&raw)
                )));
            }
            if hidden == b".wh..opq" {
                for child in fs::read_dir(&parent).map_err(io)? {
                    let child = child.map_err(io)?;
                    if !written.contains(&parent_rel.join(child.file_name())) {
                        remove(&child.path()).map_err(io)?;
                    }
                }
            } else {
                remove(&parent.join(OsStr::from_bytes(hidden))).map_err(io)?;
            }
            continue;
        }
        let path = root.join(&rel);
        let mode = entry.header().mode().unwrap_or(0o644);
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => {
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        remove(&path).map_err(io)?;
                        fs::create_dir(&path).map_err(io)?;
                    }
                    Err(_) => fs::create_dir(&path).map_err(io)?,
                }
                fs::set_permissions(&path, fs::Permissions::from_mode((mode & 0o1777) | 0o555))
                    .map_err(io)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.header().size().unwrap_or(0);
                if size > *budget {
                    return Err(OciError::TooLarge(format!(
                        "is over the unpacked size limit of {limit} bytes (at {})",
                        rel.display()
                    )));
                }
                remove(&path).map_err(io)?;
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc_o_nofollow())
                    .mode(0o600)
                    .open(&path)
                    .map_err(io)?;
                let n = io::copy(&mut (&mut entry).take(size), &mut f).map_err(io)?;
                *budget -= n;
                let mut m = (mode & 0o777) | 0o444;
                if m & 0o111 != 0 {
                    m |= 0o111;
                }
                f.set_permissions(fs::Permissions::from_mode(m))
                    .map_err(io)?;
                // Keep the layer's mtime: Python's timestamp-based byte-code in the image is only
                // valid against its source's recorded mtime (otherwise every module would be
                // recompiled, in memory, at every start of a read-only root).
                if let Ok(mtime) = entry.header().mtime() {
                    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
                    f.set_modified(t).map_err(io)?;
                }
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| b.into_owned())
                    .unwrap_or_default();
                remove(&path).map_err(io)?;
                // The target is resolved inside the sandbox's root, never by this server
                // (see `resolve_in_root`), so it may point anywhere.
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path).map_err(io)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| b.into_owned())
                    .unwrap_or_default();
                let target_rel = clean(&target)
                    .map_err(|why| {
                        OciError::UnsafeLayer(format!(
                            "layer {layer} was refused: the hard link {} -> {:?} {why}",
                            rel.display(),
                            String::from_utf8_lossy(&target)
                        ))
                    })?
                    .ok_or_else(|| {
                        OciError::UnsafeLayer(format!(
                            "layer {layer} was refused: hard link {} to the root",
                            rel.display()
                        ))
                    })?;
                let src_parent = target_rel.parent().unwrap_or(Path::new(""));
                ensure_no_symlink(root, src_parent, layer)?;
                remove(&path).map_err(io)?;
                fs::hard_link(root.join(&target_rel), &path).map_err(io)?;
            }
            _ => continue, // devices, FIFOs, pax/GNU metadata already folded in by `tar`
        }
        written.insert(rel);
    }
    Ok(())
}

/// The entry's path relative to the root, `None` for the root itself, or why it is refused.
pub(crate) fn clean(raw: &[u8]) -> Result<Option<PathBuf>, &'static str> {
    let p = Path::new(OsStr::from_bytes(raw));
    if p.is_absolute() {
        return Err("is an absolute path");
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err("escapes the image root with '..'"),
            Component::RootDir | Component::Prefix(_) => return Err("is an absolute path"),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Makes `root/rel` a directory chain without following any symlink; returns its host path.
fn ensure_dirs(root: &Path, rel: &Path, layer: &str) -> Result<PathBuf, OciError> {
    let mut p = root.to_path_buf();
    for c in rel.components() {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(OciError::UnsafeLayer(format!(
                    "layer {layer} was refused: it writes through the symbolic link {}",
                    p.strip_prefix(root).unwrap_or(&p).display()
                )))
            }
            Ok(_) => {
                fs::remove_file(&p).map_err(|e| OciError::io("unpacking", e))?;
                fs::create_dir(&p).map_err(|e| OciError::io("unpacking", e))?;
            }
            Err(_) => {
                fs::create_dir(&p).map_err(|e| OciError::io("unpacking", e))?;
                fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
                    .map_err(|e| OciError::io("unpacking", e))?;
            }
        }
    }
    Ok(p)
}

fn ensure_no_symlink(root: &Path, rel: &Path, layer: &str) -> Result<(), OciError> {
    let mut p = root.to_path_buf();
    for c in rel.components() {
        p.push(c);
        if fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(OciError::UnsafeLayer(format!(
                "layer {layer} was refused: a hard link goes through the symbolic link {}",
                rel.display()
            )));
        }
    }
    Ok(())
}

/// Removes a file, symlink or directory tree; absent is fine.
fn remove(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn libc_o_nofollow() -> i32 {
    // O_NOFOLLOW on Linux (all architectures Hangar builds for).
    0o400000
}

/// Resolves an absolute path as the sandbox would see it (symlinks followed relative to
/// `root`, never out of it) and returns the host path, if it exists.
pub fn resolve_in_root(root: &Path, inside: &str) -> Option<PathBuf> {
    let mut todo: Vec<Vec<u8>> = inside
        .split('/')
        .rev()
        .filter(|c| !c.is_empty())
        .map(|c| c.as_bytes().to_vec())
        .collect();
    let mut cur: Vec<Vec<u8>> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.as_slice() {
            b"." => continue,
            b".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        let mut host = root.to_path_buf();
        for part in cur.iter().chain(std::iter::once(&c)) {
            host.push(OsStr::from_bytes(part));
        }
        let meta = fs::symlink_metadata(&host).ok()?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return None;
            }
            let target = fs::read_link(&host).ok()?;
            let t = target.as_os_str().as_bytes();
            if t.starts_with(b"/") {
                cur.clear();
            }
            for part in t.split(|&b| b == b'/').rev().filter(|p| !p.is_empty()) {
                todo.push(part.to_vec());
            }
        } else {
            cur.push(c);
        }
    }
    let mut host = root.to_path_buf();
    for part in &cur {
        host.push(OsStr::from_bytes(part));
    }
    Some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8], &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(if *kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_size(data.len() as u64);
            // Bypass the builder's own path checks: hostile archives are the point.
            let name = h.as_old_mut().name.as_mut();
            name[..path.len()].copy_from_slice(path.as_bytes());
            if !link.is_empty() {
                let l = h.as_old_mut().linkname.as_mut();
                l[..link.len()].copy_from_slice(link.as_bytes());
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn apply(root: &Path, t: &[u8]) -> Result<(), OciError> {
        let mut budget = 1 << 20;
        apply_layer(root, t, "sha256:test", &mut budget, 1 << 20)
    }

    use tar::EntryType::{Directory as D, Link as L, Regular as F, Symlink as S};

    #[test]
    fn layers_and_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        apply(
            root,
            &tar_of(&[
                ("etc/", D, b"", ""),
                ("etc/a", F, b"A", ""),
                ("etc/b", F, b"B", ""),
                ("opt/x/1", F, b"1", ""),
                ("opt/x/2", F, b"2", ""),
                ("./bin/sh", F, b"#!", ""),
                ("bin/link", L, b"", "bin/sh"),
                ("lib", S, b"", "/usr/lib"),
            ]),
        )
        .unwrap();
        apply(
            root,
            &tar_of(&[
                ("etc/.wh.a", F, b"", ""),
                ("opt/x/.wh..wh..opq", F, b"", ""),
                ("opt/x/3", F, b"3", ""),
                ("etc/b", F, b"B2", ""),
            ]),
        )
        .unwrap();
        assert!(!root.join("etc/a").exists());
        assert_eq!(fs::read(root.join("etc/b")).unwrap(), b"B2");
        assert!(!root.join("opt/x/1").exists() && !root.join("opt/x/2").exists());
        assert_eq!(fs::read(root.join("opt/x/3")).unwrap(), b"3");
        assert_eq!(fs::read(root.join("bin/link")).unwrap(), b"#!");
        assert_eq!(
            fs::read_link(root.join("lib")).unwrap(),
            PathBuf::from("/usr/lib")
        );
        assert!(!root.join("etc/.wh.a").exists());
    }

    #[test]
    fn escapes_are_refused() {
        for t in [
            tar_of(&[("../evil", F, b"x", "")]),
            tar_of(&[("a/../../evil", F, b"x", "")]),
            tar_of(&[("/etc/evil", F, b"x", "")]),
            tar_of(&[("ln", S, b"", "/tmp"), ("ln/evil", F, b"x", "")]),
            tar_of(&[("h", L, b"", "../../etc/passwd")]),
            tar_of(&[("d", S, b"", "/etc"), ("h", L, b"", "d/passwd")]),
            tar_of(&[("x/.wh...", F, b"", ""), ("../.wh.x", F, b"", "")]),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("root");
            fs::create_dir(&root).unwrap();
            let err = apply(&root, &t).unwrap_err();
            assert!(matches!(err, OciError::UnsafeLayer(_)), "{err}");
            assert!(!dir.path().join("evil").exists());
        }
    }

    #[test]
    fn budget() {
        let dir = tempfile::tempdir().unwrap();
        let mut budget = 3;
        let err = apply_layer(
            dir.path(),
            &tar_of(&[("a", F, b"1234", "")])[..],
            "l",
            &mut budget,
            3,
        )
        .unwrap_err();
        assert!(matches!(err, OciError::TooLarge(_)), "{err}");
    }

    #[test]
    fn resolve() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::write(root.join("usr/bin/py"), b"").unwrap();
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("pw")).unwrap();
        std::os::unix::fs::symlink("../../../../usr/bin/py", root.join("usr/up")).unwrap();
        assert_eq!(
            resolve_in_root(root, "/bin/py").unwrap(),
            root.join("usr/bin/py")
        );
        assert_eq!(
            resolve_in_root(root, "/usr/up").unwrap(),
            root.join("usr/bin/py")
        );
        // An absolute link resolves inside the root, not on the host.
        assert!(resolve_in_root(root, "/pw").is_none());
    }
}
