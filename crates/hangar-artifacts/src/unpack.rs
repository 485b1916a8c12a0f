//! Verify a code zip and unpack it into a directory (blocking; run it on a
//! blocking thread).
//!
//! The zip is untrusted input from whoever can create an AgentRuntime, and it
//! is unpacked on the host, so:
//! - the entry count and the *declared* total size are checked before
//!   anything is written, and the *actual* bytes are counted while inflating
//!   (per entry against its declared size, and in total against the limit):
//!   a zip bomb that lies in its headers is stopped at the lie;
//! - entry names that are absolute or contain `..` are refused (zip-slip),
//!   and nothing is ever written through a symlink: files and directories are
//!   created first, symlinks last, and every existing path component is
//!   checked to be a real directory;
//! - every symlink is resolved inside the tree (following chains) and refused
//!   if it ends up outside it;
//! - permissions come from the zip (executables stay executable) but the tree
//!   is made readable (and traversable) by everyone and writable by no one but
//!   the owner: sessions run under other, unprivileged uids and must be able
//!   to read the code but never change the shared cached copy. setuid,
//!   setgid and sticky bits are dropped.

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use zip::result::ZipError;
use zip::ZipArchive;

use crate::config::Limits;
use crate::error::ArtifactError;

/// What an unpack produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnpackStats {
    pub entries: u64,
    pub bytes: u64,
}

/// Longest symlink target we accept; also the most we read of one.
const MAX_LINK_TARGET: u64 = 4096;
/// Like the kernel's MAXSYMLINKS.
const MAX_SYMLINK_HOPS: usize = 40;

/// Unpack `zip_path` into the existing, empty directory `dest`.
/// `url` names the artifact in error messages.
pub(crate) fn unpack_zip(
    zip_path: &Path,
    dest: &Path,
    limits: &Limits,
    url: &str,
) -> Result<UnpackStats, ArtifactError> {
    let file = fs::File::open(zip_path)
        .map_err(|e| ArtifactError::io(format!("cannot open {}", zip_path.display()), e))?;
    let size = file
        .metadata()
        .map_err(|e| ArtifactError::io(format!("cannot stat {}", zip_path.display()), e))?
        .len();
    if size > limits.max_compressed {
        return Err(ArtifactError::TooLarge {
            url: url.to_string(),
            size,
            limit: limits.max_compressed,
        });
    }
    let mut archive = ZipArchive::new(std::io::BufReader::with_capacity(256 * 1024, file))
        .map_err(|e| ArtifactError::NotAZip {
            url: url.to_string(),
            detail: not_a_zip_detail(zip_path, size, &e),
        })?;

    let count = archive.len() as u64;
    if count > limits.max_entries {
        return Err(ArtifactError::TooManyEntries {
            url: url.to_string(),
            count,
            limit: limits.max_entries,
        });
    }

    // Pass 1: names, kinds and declared sizes, before anything touches the disk.
    let mut plan = Vec::with_capacity(archive.len());
    let mut declared_total: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_data(i)
            .map_err(|e| bad_zip(url, &format!("#{i}"), &e))?;
        let raw_name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let name = entry.name().map(|n| n.into_owned()).unwrap_or(raw_name);
        if entry.encrypted() {
            return Err(ArtifactError::BadZip {
                url: url.to_string(),
                entry: name,
                detail: "it is encrypted".to_string(),
            });
        }
        let components = safe_components(&name).map_err(|reason| ArtifactError::UnsafeEntry {
            url: url.to_string(),
            entry: name.clone(),
            reason,
        })?;
        declared_total = declared_total.saturating_add(entry.size());
        let kind = if entry.is_symlink() {
            Kind::Symlink
        } else if entry.is_dir() {
            Kind::Dir
        } else {
            Kind::File
        };
        plan.push(Planned {
            index: i,
            name,
            components,
            kind,
            mode: entry.unix_mode(),
            declared: entry.size(),
        });
    }
    if declared_total > limits.max_uncompressed {
        return Err(ArtifactError::UncompressedTooLarge {
            url: url.to_string(),
            size: declared_total,
            limit: limits.max_uncompressed,
            at_least: false,
        });
    }

    // Pass 2: directories and files. Symlinks wait until the end so nothing
    // is ever written through one.
    let mut tree = Tree {
        root: dest,
        url,
        dirs: HashSet::new(),
        seen: HashSet::new(),
    };
    let mut written: u64 = 0;
    let mut links: Vec<(&Planned, String)> = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    for p in &plan {
        if p.components.is_empty() {
            continue; // "./" and the like: the root itself
        }
        let rel: PathBuf = p.components.iter().collect();
        if !tree.seen.insert(rel.clone()) && p.kind != Kind::Dir {
            return Err(tree.unsafe_entry(&p.name, "the archive has this name twice"));
        }
        match p.kind {
            Kind::Dir => tree.ensure_dir(&p.components, &p.name)?,
            Kind::Symlink => {
                let mut entry = archive
                    .by_index(p.index)
                    .map_err(|e| bad_zip(url, &p.name, &e))?;
                let mut target = Vec::new();
                (&mut entry)
                    .take(MAX_LINK_TARGET + 1)
                    .read_to_end(&mut target)
                    .map_err(|e| bad_zip_io(url, &p.name, &e))?;
                if target.len() as u64 > MAX_LINK_TARGET {
                    return Err(tree.unsafe_entry(&p.name, "its symlink target is too long"));
                }
                written += target.len() as u64;
                let target = String::from_utf8(target)
                    .map_err(|_| tree.unsafe_entry(&p.name, "its symlink target is not UTF-8"))?;
                links.push((p, target));
            }
            Kind::File => {
                let parent = &p.components[..p.components.len() - 1];
                tree.ensure_dir(parent, &p.name)?;
                let path = dest.join(&rel);
                if fs::symlink_metadata(&path).is_ok() {
                    return Err(tree.unsafe_entry(
                        &p.name,
                        "the archive has this name twice (or as both a directory and a file)",
                    ));
                }
                let mut entry = archive
                    .by_index(p.index)
                    .map_err(|e| bad_zip(url, &p.name, &e))?;
                let mut out = fs::File::create(&path).map_err(|e| {
                    ArtifactError::io(format!("cannot create {}", path.display()), e)
                })?;
                let mut entry_bytes: u64 = 0;
                loop {
                    let n = entry.read(&mut buf).map_err(|e| {
                        // The zip crate counts too and stops at the declared
                        // size with this InvalidData error; report it as what it is.
                        if e.to_string().contains("larger than its declared") {
                            ArtifactError::SizeMismatch {
                                url: url.to_string(),
                                entry: p.name.clone(),
                                declared: p.declared,
                            }
                        } else {
                            bad_zip_io(url, &p.name, &e)
                        }
                    })?;
                    if n == 0 {
                        break;
                    }
                    entry_bytes += n as u64;
                    written += n as u64;
                    if entry_bytes > p.declared {
                        return Err(ArtifactError::SizeMismatch {
                            url: url.to_string(),
                            entry: p.name.clone(),
                            declared: p.declared,
                        });
                    }
                    if written > limits.max_uncompressed {
                        return Err(ArtifactError::UncompressedTooLarge {
                            url: url.to_string(),
                            size: written,
                            limit: limits.max_uncompressed,
                            at_least: true,
                        });
                    }
                    out.write_all(&buf[..n]).map_err(|e| {
                        ArtifactError::io(format!("cannot write {}", path.display()), e)
                    })?;
                }
                drop(out);
                fs::set_permissions(&path, fs::Permissions::from_mode(file_mode(p.mode))).map_err(
                    |e| ArtifactError::io(format!("cannot chmod {}", path.display()), e),
                )?;
            }
        }
    }

    // Pass 3: symlinks, each checked lexically first, then all of them
    // resolved for real (a chain of individually harmless links can escape).
    for (p, target) in &links {
        if target.is_empty() || target.contains('\0') {
            return Err(tree.unsafe_entry(&p.name, "its symlink target is empty or has a NUL byte"));
        }
        if target.starts_with('/') {
            return Err(tree.unsafe_entry(
                &p.name,
                &format!("it is a symlink to the absolute path '{target}'"),
            ));
        }
        let parent = &p.components[..p.components.len() - 1];
        let mut lexical: Vec<&str> = parent.iter().map(String::as_str).collect();
        for c in target.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    if lexical.pop().is_none() {
                        return Err(tree.unsafe_entry(
                            &p.name,
                            &format!("it is a symlink to '{target}', outside the code directory"),
                        ));
                    }
                }
                other => lexical.push(other),
            }
        }
        tree.ensure_dir(parent, &p.name)?;
        let path = dest.join(p.components.iter().collect::<PathBuf>());
        std::os::unix::fs::symlink(target, &path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                tree.unsafe_entry(&p.name, "the archive has this name twice")
            } else {
                ArtifactError::io(format!("cannot create the symlink {}", path.display()), e)
            }
        })?;
    }
    for (p, target) in &links {
        let rel: PathBuf = p.components.iter().collect();
        match resolve_in_tree(dest, &rel) {
            Resolved::Inside(_) => {}
            Resolved::Escapes => {
                return Err(tree.unsafe_entry(
                    &p.name,
                    &format!(
                        "it is a symlink to '{target}', which resolves outside the code directory"
                    ),
                ))
            }
            Resolved::TooManyHops => {
                return Err(tree.unsafe_entry(&p.name, "it is part of a symlink loop"))
            }
        }
    }

    // Directories: everyone may list and traverse, only the owner may write.
    for d in tree.dirs.iter().chain(std::iter::once(&PathBuf::new())) {
        let path = dest.join(d);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .map_err(|e| ArtifactError::io(format!("cannot chmod {}", path.display()), e))?;
    }
    Ok(UnpackStats {
        entries: count,
        bytes: written,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
}

struct Planned {
    index: usize,
    name: String,
    components: Vec<String>,
    kind: Kind,
    mode: Option<u32>,
    declared: u64,
}

struct Tree<'a> {
    root: &'a Path,
    url: &'a str,
    /// Directories (relative) known to be real directories we created or checked.
    dirs: HashSet<PathBuf>,
    /// Every entry path seen, to refuse duplicates.
    seen: HashSet<PathBuf>,
}

impl Tree<'_> {
    fn unsafe_entry(&self, entry: &str, reason: &str) -> ArtifactError {
        ArtifactError::UnsafeEntry {
            url: self.url.to_string(),
            entry: entry.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Make sure every prefix of `components` is a real directory (creating
    /// the missing ones), refusing to go through a symlink or a file.
    fn ensure_dir(&mut self, components: &[String], entry: &str) -> Result<(), ArtifactError> {
        let mut rel = PathBuf::new();
        for c in components {
            rel.push(c);
            if self.dirs.contains(&rel) {
                continue;
            }
            let path = self.root.join(&rel);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.unsafe_entry(
                        entry,
                        &format!(
                            "it would be written through the symlink '{}'",
                            rel.display()
                        ),
                    ))
                }
                Ok(_) => {
                    return Err(self.unsafe_entry(
                        entry,
                        &format!(
                            "'{}' is a file in the archive, not a directory",
                            rel.display()
                        ),
                    ))
                }
                Err(_) => fs::create_dir(&path).map_err(|e| {
                    ArtifactError::io(format!("cannot create {}", path.display()), e)
                })?,
            }
            self.dirs.insert(rel.clone());
        }
        Ok(())
    }
}

/// Split an entry name into plain components, or say why it is unsafe.
/// Empty and `.` components are dropped; `..`, absolute paths (including
/// Windows drive letters and backslash roots) and NUL bytes are refused.
fn safe_components(name: &str) -> Result<Vec<String>, String> {
    if name.contains('\0') {
        return Err("its name contains a NUL byte".to_string());
    }
    let b = name.as_bytes();
    if name.starts_with('/')
        || name.starts_with('\\')
        || (b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic())
    {
        return Err("it is an absolute path".to_string());
    }
    let mut out = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err("it contains '..' and would land outside the code directory".to_string())
            }
            // A Windows-made zip may use backslashes; "..\\x" is the same attack.
            c if c.split('\\').any(|p| p == "..") => {
                return Err("it contains '..' and would land outside the code directory".to_string())
            }
            c => out.push(c.to_string()),
        }
    }
    Ok(out)
}

/// The permission bits a regular file gets: the zip's rwx bits, plus read for
/// everyone, minus write for group and others; if anyone may execute it,
/// everyone may (sessions run under other uids). No setuid/setgid/sticky.
/// Entries without Unix attributes (zips made on Windows) become 0644.
pub(crate) fn file_mode(zip_mode: Option<u32>) -> u32 {
    let mut m = zip_mode.map(|m| m & 0o777).unwrap_or(0o644);
    m = (m | 0o444) & !0o022;
    if m & 0o111 != 0 {
        m |= 0o111;
    }
    m
}

/// Where a path inside the tree ends up once its symlinks are followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// Relative path (below the root) it resolves to; it may not exist.
    Inside(PathBuf),
    /// A symlink leads out of the root (or to an absolute path).
    Escapes,
    /// Too many symlinks (a loop, or a chain too long to trust).
    TooManyHops,
}

/// Resolve `rel` (relative to `root`) component by component, following
/// symlinks within the tree as the kernel would, with `..` never allowed
/// above `root`. Components that do not exist are taken literally.
pub(crate) fn resolve_in_tree(root: &Path, rel: &Path) -> Resolved {
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending: VecDeque<OsString> = rel.iter().map(|c| c.to_os_string()).collect();
    let mut hops = 0;
    while let Some(c) = pending.pop_front() {
        if c.is_empty() || c == "." {
            continue;
        }
        if c == ".." {
            if resolved.pop().is_none() {
                return Resolved::Escapes;
            }
            continue;
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&resolved);
        candidate.push(&c);
        match fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Resolved::TooManyHops;
                }
                let Ok(target) = fs::read_link(&candidate) else {
                    return Resolved::Escapes;
                };
                if target.is_absolute() {
                    return Resolved::Escapes;
                }
                // The target is relative to the link's directory, i.e. to
                // `resolved` as it is now: queue its components first.
                for t in target.iter().rev() {
                    pending.push_front(t.to_os_string());
                }
            }
            _ => resolved.push(c),
        }
    }
    Resolved::Inside(resolved.iter().collect())
}

fn bad_zip(url: &str, entry: &str, e: &ZipError) -> ArtifactError {
    let detail = match e {
        ZipError::UnsupportedArchive(m) => format!("unsupported: {m} (use deflate or stored)"),
        ZipError::CompressionMethodNotSupported(m) => {
            format!("compression method {m} is not supported (use deflate or stored)")
        }
        other => other.to_string(),
    };
    ArtifactError::BadZip {
        url: url.to_string(),
        entry: entry.to_string(),
        detail,
    }
}

fn bad_zip_io(url: &str, entry: &str, e: &std::io::Error) -> ArtifactError {
    ArtifactError::BadZip {
        url: url.to_string(),
        entry: entry.to_string(),
        detail: e.to_string(),
    }
}

/// A hint at what the object is when it is not a zip.
fn not_a_zip_detail(path: &Path, size: u64, e: &ZipError) -> String {
    let mut head = [0u8; 8];
    let n = fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let head = &head[..n];
    let what = if size == 0 {
        "the object is empty".to_string()
    } else if head.starts_with(&[0x1f, 0x8b]) {
        "it is gzip data, e.g. a .tar.gz; AgentCore needs a .zip".to_string()
    } else if head.len() >= 6 && &head[..6] == b"\xfd7zXZ\0" {
        "it is xz data; AgentCore needs a .zip".to_string()
    } else if head.starts_with(b"<") {
        "it looks like an HTML or XML document".to_string()
    } else if head.starts_with(b"\x7fELF") {
        "it is an ELF executable".to_string()
    } else {
        format!(
            "{} bytes starting with {}",
            size,
            head.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        )
    };
    format!("{what}; {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names() {
        assert_eq!(safe_components("a/b/c.py").unwrap(), ["a", "b", "c.py"]);
        assert_eq!(safe_components("./a//b/").unwrap(), ["a", "b"]);
        assert!(safe_components("./").unwrap().is_empty());
        assert!(safe_components("../x").unwrap_err().contains(".."));
        assert!(safe_components("a/../../x").unwrap_err().contains(".."));
        assert!(safe_components("a/..\\..\\x").unwrap_err().contains(".."));
        assert!(safe_components("/etc/passwd")
            .unwrap_err()
            .contains("absolute"));
        assert!(safe_components("C:/x").unwrap_err().contains("absolute"));
        assert!(safe_components("\\x").unwrap_err().contains("absolute"));
        // `..` inside a name is just a name.
        assert_eq!(safe_components("a..b/..c").unwrap(), ["a..b", "..c"]);
    }

    #[test]
    fn modes() {
        assert_eq!(file_mode(Some(0o100644)), 0o644);
        assert_eq!(file_mode(Some(0o100600)), 0o644);
        assert_eq!(file_mode(Some(0o100700)), 0o755);
        assert_eq!(file_mode(Some(0o100777)), 0o755);
        assert_eq!(file_mode(Some(0o104755)), 0o755); // setuid dropped
        assert_eq!(file_mode(Some(0o100400)), 0o444);
        assert_eq!(file_mode(None), 0o644);
    }

    #[test]
    fn resolves_symlink_chains() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("a/b")).unwrap();
        std::os::unix::fs::symlink(".", root.join("dot")).unwrap();
        std::os::unix::fs::symlink("a/b", root.join("ab")).unwrap();
        std::os::unix::fs::symlink("dot/../x", root.join("sneaky")).unwrap();
        std::os::unix::fs::symlink("ab/../../a", root.join("fine")).unwrap();
        std::os::unix::fs::symlink("loop2", root.join("loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", root.join("loop2")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("abs")).unwrap();
        assert_eq!(
            resolve_in_tree(root, Path::new("ab/c")),
            Resolved::Inside("a/b/c".into())
        );
        assert_eq!(
            resolve_in_tree(root, Path::new("fine")),
            Resolved::Inside("a".into())
        );
        // Lexically "dot/../x" is "x", but dot is the root itself: escapes.
        assert_eq!(
            resolve_in_tree(root, Path::new("sneaky")),
            Resolved::Escapes
        );
        assert_eq!(resolve_in_tree(root, Path::new("abs")), Resolved::Escapes);
        assert_eq!(
            resolve_in_tree(root, Path::new("loop1")),
            Resolved::TooManyHops
        );
        assert_eq!(resolve_in_tree(root, Path::new("../x")), Resolved::Escapes);
    }
}
