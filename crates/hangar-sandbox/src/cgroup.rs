//! Per-session cgroups, on cgroup v1 (also "hybrid") and v2 hosts.
//!
//! Layout: `<hierarchy>/<parent>/<session>` where `<parent>` is the backend's configured group
//! (default `hangar`, relative to the hierarchy root) and `<session>` is `<sanitized id>-u<uid>`.
//! On v1 that directory exists once per used controller hierarchy (memory, pids, cpu, freezer);
//! on v2 once in the unified tree. Only this module writes there; one backend instance owns the
//! parent (reaping kills every session group it does not know).

use std::fs;
use std::io::{self, ErrorKind};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{sys, Limits, SandboxError};

/// CFS period used for CPU quotas (the kernel default): quota = millis * 100 µs.
const CPU_PERIOD_US: u64 = 100_000;

#[derive(Debug, Clone)]
enum Driver {
    /// One directory per controller hierarchy. `memory` and `pids` are required; `cpu` and
    /// `freezer` are used when mounted.
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        cpu: Option<PathBuf>,
        freezer: Option<PathBuf>,
    },
    /// The unified hierarchy's mount point.
    V2 { root: PathBuf, cpu: bool },
}

/// The cgroup driver of a backend: where its parent group lives.
#[derive(Debug, Clone)]
pub(crate) struct Cgroups {
    driver: Driver,
    parent: PathBuf,
}

/// The cgroup directories of one session.
#[derive(Debug, Clone)]
pub(crate) struct SessionCgroup {
    pub(crate) name: String,
    /// Every directory the session's processes must be in (v1: one per hierarchy).
    dirs: Vec<PathBuf>,
    memory: PathBuf,
    freezer: Option<PathBuf>,
    v2: bool,
}

fn read_trim(path: &Path) -> io::Result<String> {
    Ok(fs::read_to_string(path)?.trim().to_string())
}

fn write_file(path: &Path, value: &str) -> Result<(), SandboxError> {
    fs::write(path, value).map_err(|e| SandboxError::cgroup("write", path, e))
}

impl Cgroups {
    /// Find the cgroup controllers of this host. v2 is used when its unified hierarchy has the
    /// memory and pids controllers; else v1 (a "hybrid" host like the CI machine has a cgroup2
    /// mount with no such controllers).
    pub(crate) fn detect(parent: &str) -> Result<Self, SandboxError> {
        let parent_rel = PathBuf::from(parent.trim_matches('/'));
        if parent_rel.as_os_str().is_empty()
            || parent_rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(SandboxError::InvalidSpec(format!(
                "cgroup parent {parent:?} must be a relative path of plain names"
            )));
        }
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| SandboxError::io("read /proc/self/mountinfo", e))?;
        let mut v2_root = None;
        let (mut memory, mut pids, mut cpu, mut freezer) = (None, None, None, None);
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let mountpoint = match pre.split(' ').nth(4) {
                Some(m) => PathBuf::from(m.replace("\\040", " ")),
                None => continue,
            };
            let mut post = post.split(' ');
            let fstype = post.next().unwrap_or("");
            let superopts = post.nth(1).unwrap_or("");
            match fstype {
                "cgroup2" => {
                    let ctrl = fs::read_to_string(mountpoint.join("cgroup.controllers"))
                        .unwrap_or_default();
                    let has = |c: &str| ctrl.split_whitespace().any(|x| x == c);
                    if has("memory") && has("pids") && v2_root.is_none() {
                        v2_root = Some((mountpoint, has("cpu")));
                    }
                }
                "cgroup" => {
                    for opt in superopts.split(',') {
                        let slot = match opt {
                            "memory" => &mut memory,
                            "pids" => &mut pids,
                            "cpu" => &mut cpu,
                            "freezer" => &mut freezer,
                            _ => continue,
                        };
                        if slot.is_none() {
                            *slot = Some(mountpoint.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        let driver = if let Some((root, cpu)) = v2_root {
            Driver::V2 { root, cpu }
        } else if let (Some(memory), Some(pids)) = (memory, pids) {
            Driver::V1 {
                memory,
                pids,
                cpu,
                freezer,
            }
        } else {
            return Err(SandboxError::Unavailable(
                "no cgroup hierarchy with the memory and pids controllers is mounted".into(),
            ));
        };
        Ok(Cgroups {
            driver,
            parent: parent_rel,
        })
    }

    pub(crate) fn describe(&self) -> String {
        match &self.driver {
            Driver::V1 { .. } => format!("cgroup v1, parent {}", self.parent.display()),
            Driver::V2 { root, .. } => format!(
                "cgroup v2 at {}, parent {}",
                root.display(),
                self.parent.display()
            ),
        }
    }

    fn hierarchy_roots(&self) -> Vec<PathBuf> {
        match &self.driver {
            Driver::V1 {
                memory,
                pids,
                cpu,
                freezer,
            } => {
                let mut v = vec![memory.clone(), pids.clone()];
                v.extend(cpu.iter().cloned());
                v.extend(freezer.iter().cloned());
                // cpu may share a hierarchy with cpuacct (or anything else): one dir per mount.
                let mut out: Vec<PathBuf> = Vec::new();
                for p in v {
                    if !out.contains(&p) {
                        out.push(p);
                    }
                }
                out
            }
            Driver::V2 { root, .. } => vec![root.clone()],
        }
    }

    /// Create the parent group(s); on v2 also enable the controllers down to it.
    pub(crate) fn ensure_parent(&self) -> Result<(), SandboxError> {
        for root in self.hierarchy_roots() {
            let dir = root.join(&self.parent);
            fs::create_dir_all(&dir).map_err(|e| SandboxError::cgroup("mkdir", &dir, e))?;
        }
        if let Driver::V2 { root, cpu } = &self.driver {
            // Every level from the root down to the parent must delegate the controllers to its
            // children. (The no-internal-processes rule means none of the non-root levels may
            // hold processes; with systemd use a delegated subtree.)
            let mut wanted = vec!["memory", "pids"];
            if *cpu {
                wanted.push("cpu");
            }
            let mut dir = root.clone();
            let levels: Vec<_> = self.parent.components().collect();
            for i in 0..=levels.len() {
                let enabled = read_trim(&dir.join("cgroup.subtree_control")).unwrap_or_default();
                for c in &wanted {
                    if enabled.split_whitespace().any(|x| x == *c) {
                        continue;
                    }
                    let f = dir.join("cgroup.subtree_control");
                    if let Err(e) = fs::write(&f, format!("+{c}")) {
                        if *c == "cpu" {
                            tracing::warn!(path = %f.display(), error = %e, "cannot enable the cpu controller; CPU quotas will not apply");
                        } else {
                            return Err(SandboxError::cgroup("enable controller in", f, e));
                        }
                    }
                }
                if i < levels.len() {
                    dir.push(levels[i]);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn remove_parent(&self) -> Result<(), SandboxError> {
        for root in self.hierarchy_roots() {
            let dir = root.join(&self.parent);
            match fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(SandboxError::cgroup("rmdir", dir, e)),
            }
        }
        Ok(())
    }

    /// Handle for the session group `name` (which may or may not exist).
    pub(crate) fn session(&self, name: &str) -> SessionCgroup {
        let at = |root: &Path| root.join(&self.parent).join(name);
        match &self.driver {
            Driver::V1 {
                memory, freezer, ..
            } => SessionCgroup {
                name: name.to_string(),
                dirs: self.hierarchy_roots().iter().map(|r| at(r)).collect(),
                memory: at(memory),
                freezer: freezer.as_deref().map(at),
                v2: false,
            },
            Driver::V2 { root, .. } => SessionCgroup {
                name: name.to_string(),
                dirs: vec![at(root)],
                memory: at(root),
                freezer: None,
                v2: true,
            },
        }
    }

    /// Create the session group with `limits`. A stale group of the same name (a crashed
    /// predecessor's, same id and uid) is killed and replaced.
    pub(crate) fn create_session(
        &self,
        name: &str,
        limits: &Limits,
    ) -> Result<SessionCgroup, SandboxError> {
        let cg = self.session(name);
        if cg.dirs.iter().any(|d| d.exists()) {
            tracing::warn!(cgroup = name, "replacing a stale session cgroup");
            cg.destroy(Duration::from_secs(5))?;
        }
        for d in &cg.dirs {
            if let Err(e) = fs::create_dir(d) {
                let err = SandboxError::cgroup("mkdir", d, e);
                let _ = cg.remove_dirs();
                return Err(err);
            }
        }
        if let Err(e) = self.apply_limits(&cg, limits) {
            let _ = cg.remove_dirs();
            return Err(e);
        }
        Ok(cg)
    }

    fn apply_limits(&self, cg: &SessionCgroup, limits: &Limits) -> Result<(), SandboxError> {
        match &self.driver {
            Driver::V1 { pids, cpu, .. } => {
                let at = |root: &Path| root.join(&self.parent).join(&cg.name);
                if let Some(mem) = limits.memory_bytes {
                    write_file(&cg.memory.join("memory.limit_in_bytes"), &mem.to_string())?;
                    // memsw = memory + swap: equal means no swap. Only present with swap
                    // accounting; must be written after (and be >=) memory.limit_in_bytes.
                    let memsw = cg.memory.join("memory.memsw.limit_in_bytes");
                    if memsw.exists() {
                        write_file(&memsw, &mem.to_string())?;
                    }
                }
                if let Some(n) = limits.max_processes {
                    write_file(&at(pids).join("pids.max"), &n.to_string())?;
                }
                if let (Some(millis), Some(cpu)) = (limits.cpu_millis, cpu) {
                    let d = at(cpu);
                    write_file(&d.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                    let quota = (u64::from(millis) * CPU_PERIOD_US / 1000).max(1000);
                    write_file(&d.join("cpu.cfs_quota_us"), &quota.to_string())?;
                } else if limits.cpu_millis.is_some() {
                    tracing::warn!("no cpu controller mounted; CPU quota not applied");
                }
            }
            Driver::V2 { cpu, .. } => {
                let d = &cg.memory;
                if let Some(mem) = limits.memory_bytes {
                    write_file(&d.join("memory.max"), &mem.to_string())?;
                    let swap = d.join("memory.swap.max");
                    if swap.exists() {
                        write_file(&swap, "0")?;
                    }
                }
                if let Some(n) = limits.max_processes {
                    write_file(&d.join("pids.max"), &n.to_string())?;
                }
                if let Some(millis) = limits.cpu_millis {
                    if *cpu {
                        let quota = (u64::from(millis) * CPU_PERIOD_US / 1000).max(1000);
                        write_file(&d.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
                    } else {
                        tracing::warn!("no cpu controller enabled; CPU quota not applied");
                    }
                }
            }
        }
        Ok(())
    }

    /// Names of all session groups under the parent, in any hierarchy.
    pub(crate) fn list_sessions(&self) -> Vec<String> {
        let mut names = Vec::new();
        for root in self.hierarchy_roots() {
            let Ok(rd) = fs::read_dir(root.join(&self.parent)) else {
                continue;
            };
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
            }
        }
        names
    }
}

impl SessionCgroup {
    /// `cgroup.procs` of every directory, open for writing. A child writes "0" to each (meaning
    /// "the writing process") between fork and exec, so it starts inside its limits and never
    /// runs a single instruction of the sandboxed program outside them.
    pub(crate) fn open_procs(&self) -> Result<Vec<OwnedFd>, SandboxError> {
        self.dirs
            .iter()
            .map(|d| {
                let p = d.join("cgroup.procs");
                sys::open(&p, libc::O_WRONLY).map_err(|e| SandboxError::cgroup("open", p, e))
            })
            .collect()
    }

    /// Pids currently in the group (union over hierarchies).
    pub(crate) fn pids(&self) -> Vec<i32> {
        let mut out = Vec::new();
        for d in &self.dirs {
            if let Ok(s) = fs::read_to_string(d.join("cgroup.procs")) {
                for p in s.split_whitespace().filter_map(|x| x.parse().ok()) {
                    if !out.contains(&p) {
                        out.push(p);
                    }
                }
            }
        }
        out
    }

    pub(crate) fn memory_usage(&self) -> Option<u64> {
        let f = if self.v2 {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        };
        read_trim(&self.memory.join(f)).ok()?.parse().ok()
    }

    /// How many processes the kernel OOM-killed in this group.
    pub(crate) fn oom_kills(&self) -> Option<u64> {
        let f = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        let s = fs::read_to_string(self.memory.join(f)).ok()?;
        s.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Kill every process in the group and wait until it is empty.
    ///
    /// Freezing first (v1 freezer / v2 `cgroup.freeze`) stops a fork bomb from outrunning the
    /// kill loop; v2's `cgroup.kill` does the same atomically in the kernel.
    pub(crate) fn kill_all(&self, timeout: Duration) -> Result<(), SandboxError> {
        let deadline = Instant::now() + timeout;
        let v2_kill = self.memory.join("cgroup.kill");
        let v2_freeze = self.memory.join("cgroup.freeze");
        let mut first = true;
        loop {
            let pids = self.pids();
            if pids.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(SandboxError::cgroup(
                    "empty",
                    &self.memory,
                    io::Error::new(
                        ErrorKind::TimedOut,
                        format!("{} processes still alive", pids.len()),
                    ),
                ));
            }
            if self.v2 && v2_kill.exists() {
                let _ = fs::write(&v2_kill, "1");
            } else {
                let freezer = if self.v2 {
                    v2_freeze.exists().then(|| v2_freeze.clone())
                } else {
                    self.freezer.as_ref().map(|d| d.join("freezer.state"))
                };
                let (frozen, thawed) = if self.v2 {
                    ("1", "0")
                } else {
                    ("FROZEN", "THAWED")
                };
                if let Some(f) = &freezer {
                    let _ = fs::write(f, frozen);
                    // v1 reports FREEZING until every task stopped; a short bounded wait.
                    if !self.v2 {
                        let until = Instant::now() + Duration::from_millis(100);
                        while Instant::now() < until
                            && read_trim(f).map(|s| s != "FROZEN").unwrap_or(false)
                        {
                            std::thread::sleep(Duration::from_micros(200));
                        }
                    }
                }
                for p in self.pids() {
                    sys::kill(p, libc::SIGKILL);
                }
                if let Some(f) = &freezer {
                    // Frozen tasks die only once thawed.
                    let _ = fs::write(f, thawed);
                }
            }
            std::thread::sleep(if first {
                Duration::from_micros(200)
            } else {
                Duration::from_millis(2)
            });
            first = false;
        }
    }

    /// Remove the directories (the group must be empty).
    pub(crate) fn remove_dirs(&self) -> Result<(), SandboxError> {
        let mut result = Ok(());
        for d in &self.dirs {
            // rmdir can briefly fail with EBUSY while exiting tasks are still being unlinked.
            let mut tries = 0;
            loop {
                match fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 200 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => {
                        result = Err(SandboxError::cgroup("rmdir", d, e));
                        break;
                    }
                }
            }
        }
        result
    }

    /// Kill everything, then remove the group.
    pub(crate) fn destroy(&self, timeout: Duration) -> Result<(), SandboxError> {
        self.kill_all(timeout)?;
        self.remove_dirs()
    }

    pub(crate) fn exists(&self) -> bool {
        self.dirs.iter().any(|d| d.exists())
    }
}
