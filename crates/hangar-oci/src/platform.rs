//! Which image of a multi-platform index runs here, and whether a foreign-architecture image can
//! run through a qemu-user binfmt_misc registration.

use std::path::{Path, PathBuf};

pub use oci_spec::image::Platform;
use oci_spec::image::{Arch, Os};

use crate::reference::Reference;
use crate::OciError;

/// `os/architecture[/variant]`.
fn display(p: &Platform) -> String {
    match p.variant() {
        Some(v) => format!("{}/{}/{v}", p.os(), p.architecture()),
        None => format!("{}/{}", p.os(), p.architecture()),
    }
}

/// The host's architecture in OCI's (GOARCH) names.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// qemu's name for an OCI architecture.
fn qemu_arch(arch: &str) -> &str {
    match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "386" => "i386",
        "ppc64le" => "ppc64le",
        other => other,
    }
}

/// A qemu-user binfmt_misc registration that runs binaries of an image's architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emulation {
    pub architecture: String,
    /// The emulator's host path.
    pub interpreter: PathBuf,
    /// Without binfmt's `F` (fix-binary) flag the kernel opens the interpreter by path at each
    /// exec, inside the sandbox's mount namespace: it must be bound there at the same path.
    pub needs_mount: bool,
}

impl Emulation {
    pub fn find(binfmt_dir: &Path, arch: &str) -> Option<Emulation> {
        let q = qemu_arch(arch);
        let text = std::fs::read_to_string(binfmt_dir.join(format!("qemu-{q}"))).ok()?;
        let mut lines = text.lines();
        if lines.next()? != "enabled" {
            return None;
        }
        let mut interpreter = None;
        let mut flags = "";
        for l in text.lines() {
            if let Some(i) = l.strip_prefix("interpreter ") {
                interpreter = Some(PathBuf::from(i.trim()));
            } else if let Some(f) = l.strip_prefix("flags: ") {
                flags = f.trim();
            }
        }
        Some(Emulation {
            architecture: arch.to_owned(),
            interpreter: interpreter?,
            needs_mount: !flags.contains('F'),
        })
    }
}

/// Index of the entry to run: linux on the host's architecture, else linux on an architecture
/// with a registered emulator (arm64 first: AgentCore images are arm64). Attestation entries
/// (`unknown/unknown`) never qualify. Err: the platforms the index offers.
pub(crate) fn choose<'a>(
    entries: impl Iterator<Item = (Option<Platform>, &'a str)>,
    binfmt_dir: &Path,
) -> Result<usize, Vec<String>> {
    let entries: Vec<Option<Platform>> = entries.map(|(p, _)| p).collect();
    let linux = |p: &Option<Platform>| p.as_ref().filter(|p| *p.os() == Os::Linux).cloned();
    let host = Arch::from(host_arch());
    if let Some(i) = entries
        .iter()
        .position(|p| linux(p).is_some_and(|p| *p.architecture() == host))
    {
        return Ok(i);
    }
    let mut candidates: Vec<(usize, Platform)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, p)| linux(p).map(|p| (i, p)))
        .collect();
    candidates.sort_by_key(|(_, p)| *p.architecture() != Arch::ARM64);
    for (i, p) in &candidates {
        if Emulation::find(binfmt_dir, &p.architecture().to_string()).is_some() {
            return Ok(*i);
        }
    }
    Err(entries
        .iter()
        .flatten()
        .filter(|p| p.os().to_string() != "unknown")
        .map(display)
        .collect())
}

fn fix_hint(arch: &str) -> String {
    format!(
        "To run it here, register a qemu-user emulator for {arch} with binfmt_misc (Debian: \
         apt-get install qemu-user-static binfmt-support), or build the image for \
         linux/{host} too (docker buildx build --platform linux/{host},linux/arm64).",
        host = host_arch()
    )
}

pub(crate) fn arch_error(r: &Reference, platform: &str, _binfmt_dir: &Path) -> OciError {
    let arch = platform.split('/').nth(1).unwrap_or(platform);
    OciError::Architecture(format!(
        "Container image {r} is built for {platform} only and this host is linux/{}: no \
         qemu-user emulator for {arch} is registered with binfmt_misc. {}",
        host_arch(),
        fix_hint(arch)
    ))
}

pub(crate) fn arch_error_multi(r: &Reference, offered: &[String], _binfmt_dir: &Path) -> OciError {
    OciError::Architecture(format!(
        "Container image {r} offers {} and this host is linux/{}, with no qemu-user emulator \
         registered with binfmt_misc for those. {}",
        if offered.is_empty() {
            "no linux platform".to_owned()
        } else {
            offered.join(", ")
        },
        host_arch(),
        fix_hint("arm64")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(arch: &str, os: &str) -> Option<Platform> {
        Some(serde_json::from_value(serde_json::json!({"architecture": arch, "os": os})).unwrap())
    }

    #[test]
    fn choosing() {
        let dir = tempfile::tempdir().unwrap();
        let foreign = if host_arch() == "arm64" {
            "amd64"
        } else {
            "arm64"
        };
        let entries = [
            p("unknown", "unknown"),
            p(foreign, "linux"),
            p(host_arch(), "linux"),
        ];
        assert_eq!(
            choose(entries.iter().map(|e| (e.clone(), "")), dir.path()),
            Ok(2)
        );
        let only_foreign = [p(foreign, "linux"), p("unknown", "unknown")];
        let err = choose(only_foreign.iter().map(|e| (e.clone(), "")), dir.path()).unwrap_err();
        assert_eq!(err, vec![format!("linux/{foreign}")]);
        // With an emulator registered (fix-binary flag), the foreign image is chosen.
        std::fs::write(
            dir.path().join(format!("qemu-{}", qemu_arch(foreign))),
            "enabled\ninterpreter /usr/libexec/qemu-binfmt/x-binfmt-P\nflags: POCF\noffset 0\n",
        )
        .unwrap();
        assert_eq!(
            choose(only_foreign.iter().map(|e| (e.clone(), "")), dir.path()),
            Ok(0)
        );
        let e = Emulation::find(dir.path(), foreign).unwrap();
        assert!(!e.needs_mount);
        let r = Reference::parse("127.0.0.1:1/a:b").unwrap();
        let msg = arch_error(&r, "linux/arm64", dir.path()).to_string();
        assert!(msg.contains("qemu-user-static"), "{msg}");
    }
}
