//! Per-session host uids.

use std::collections::BTreeSet;
use std::fs::File;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::SandboxError;

/// Uids held by live sandboxes of *every* backend in this process, so two backends with
/// overlapping ranges (tests, or a service with two pools) never hand out the same uid twice.
static IN_USE: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// Hands out uids from a range, round-robin: a uid released by one session is the last to be
/// handed out again, so files a finished session left in some shared place are unlikely to
/// meet the same uid soon (callers should still remove per-session writable directories).
///
/// Several processes may allocate from the same range (two services, or test binaries running
/// side by side): each uid in use is also `flock`ed as `<lock_dir>/<uid>`. The kernel drops the
/// lock when its holder dies, so a crashed process never leaks uids.
#[derive(Debug)]
pub(crate) struct UidAllocator {
    range: Range<u32>,
    next: Mutex<u32>,
    lock_dir: Option<PathBuf>,
}

/// A uid reserved for one sandbox; released on drop.
#[derive(Debug)]
pub(crate) struct UidLease {
    uid: u32,
    tracked: bool,
    _lock: Option<File>,
}

impl UidLease {
    pub(crate) fn uid(&self) -> u32 {
        self.uid
    }
}

impl Drop for UidLease {
    fn drop(&mut self) {
        if self.tracked {
            lock().remove(&self.uid);
        }
    }
}

fn lock() -> std::sync::MutexGuard<'static, BTreeSet<u32>> {
    IN_USE.lock().unwrap_or_else(|e| e.into_inner())
}

impl UidAllocator {
    pub(crate) fn new(
        range: Range<u32>,
        lock_dir: Option<&Path>,
    ) -> Result<Arc<Self>, SandboxError> {
        if range.is_empty() || range.start == 0 {
            return Err(SandboxError::InvalidSpec(format!(
                "uid range {range:?} must be non-empty and not contain 0"
            )));
        }
        if let Some(d) = lock_dir {
            std::fs::create_dir_all(d)
                .map_err(|e| SandboxError::io(format!("create {}", d.display()), e))?;
        }
        Ok(Arc::new(UidAllocator {
            next: Mutex::new(range.start),
            range,
            lock_dir: lock_dir.map(Path::to_path_buf),
        }))
    }

    /// `Ok(None)`: another process holds `uid`.
    fn lock(&self, uid: u32) -> Result<Option<Option<File>>, SandboxError> {
        let Some(dir) = &self.lock_dir else {
            return Ok(Some(None));
        };
        let path = dir.join(uid.to_string());
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| SandboxError::io(format!("open {}", path.display()), e))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Ok(None);
            }
            return Err(SandboxError::io(format!("flock {}", path.display()), e));
        }
        Ok(Some(Some(f)))
    }

    pub(crate) fn allocate(&self) -> Result<UidLease, SandboxError> {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let mut used = lock();
        let len = self.range.end - self.range.start;
        for i in 0..len {
            let uid = self.range.start + (*next - self.range.start + i) % len;
            if used.contains(&uid) {
                continue;
            }
            let Some(lock) = self.lock(uid)? else {
                continue; // another process has it
            };
            used.insert(uid);
            *next = if uid + 1 >= self.range.end {
                self.range.start
            } else {
                uid + 1
            };
            return Ok(UidLease {
                uid,
                tracked: true,
                _lock: lock,
            });
        }
        Err(SandboxError::UidsExhausted {
            start: self.range.start,
            end: self.range.end,
        })
    }

    /// A caller-chosen uid. It is tracked (and refused while in use) only when it lies in a range
    /// this process allocates from; outside, the caller owns the choice.
    pub(crate) fn claim(&self, uid: u32) -> Result<UidLease, SandboxError> {
        if !self.range.contains(&uid) {
            return Ok(UidLease {
                uid,
                tracked: false,
                _lock: None,
            });
        }
        let mut used = lock();
        let in_use =
            || SandboxError::InvalidSpec(format!("uid {uid} is in use by another sandbox"));
        if used.contains(&uid) {
            return Err(in_use());
        }
        let Some(l) = self.lock(uid)? else {
            return Err(in_use());
        };
        used.insert(uid);
        Ok(UidLease {
            uid,
            tracked: true,
            _lock: l,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_and_exhaustion() {
        let dir = tempfile::tempdir().unwrap();
        let a = UidAllocator::new(3_900_000..3_900_003, Some(dir.path())).unwrap();
        let l1 = a.allocate().unwrap();
        let l2 = a.allocate().unwrap();
        assert_eq!((l1.uid(), l2.uid()), (3_900_000, 3_900_001));
        let b = UidAllocator::new(3_900_000..3_900_003, None).unwrap();
        let l3 = b.allocate().unwrap();
        assert_eq!(
            l3.uid(),
            3_900_002,
            "another allocator must skip uids in use"
        );
        assert!(a.allocate().is_err());
        drop(l1);
        assert_eq!(a.allocate().unwrap().uid(), 3_900_000);
        assert!(a.claim(3_900_001).is_err());
        assert!(a.claim(77).is_ok());
    }

    #[test]
    fn other_processes_hold_locks() {
        let dir = tempfile::tempdir().unwrap();
        // A lock held through another open file description (as another process would).
        let f = std::fs::File::create(dir.path().join("3900100")).unwrap();
        // SAFETY: flock on our own descriptor.
        assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
        let a = UidAllocator::new(3_900_100..3_900_102, Some(dir.path())).unwrap();
        assert_eq!(a.allocate().unwrap().uid(), 3_900_101);
        assert!(a.claim(3_900_100).is_err());
        drop(f);
        assert_eq!(a.claim(3_900_100).unwrap().uid(), 3_900_100);
    }
}
