//! Per-session host uids.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use crate::SandboxError;

/// Uids held by live sandboxes of *every* backend in this process, so two backends with
/// overlapping ranges (tests, or a service with two pools) never hand out the same uid twice.
static IN_USE: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// Hands out uids from a range, round-robin: a uid released by one session is the last to be
/// handed out again, so files a finished session left in some shared place are unlikely to
/// meet the same uid soon (callers should still remove per-session writable directories).
#[derive(Debug)]
pub(crate) struct UidAllocator {
    range: Range<u32>,
    next: Mutex<u32>,
}

/// A uid reserved for one sandbox; released on drop.
#[derive(Debug)]
pub(crate) struct UidLease {
    uid: u32,
    tracked: bool,
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
    pub(crate) fn new(range: Range<u32>) -> Result<Arc<Self>, SandboxError> {
        if range.is_empty() || range.start == 0 {
            return Err(SandboxError::InvalidSpec(format!(
                "uid range {range:?} must be non-empty and not contain 0"
            )));
        }
        Ok(Arc::new(UidAllocator {
            next: Mutex::new(range.start),
            range,
        }))
    }

    pub(crate) fn allocate(&self) -> Result<UidLease, SandboxError> {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let mut used = lock();
        let len = self.range.end - self.range.start;
        for i in 0..len {
            let uid = self.range.start + (*next - self.range.start + i) % len;
            if used.insert(uid) {
                *next = if uid + 1 >= self.range.end {
                    self.range.start
                } else {
                    uid + 1
                };
                return Ok(UidLease { uid, tracked: true });
            }
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
            });
        }
        if !lock().insert(uid) {
            return Err(SandboxError::InvalidSpec(format!(
                "uid {uid} is in use by another sandbox"
            )));
        }
        Ok(UidLease { uid, tracked: true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_and_exhaustion() {
        let a = UidAllocator::new(3_900_000..3_900_003).unwrap();
        let l1 = a.allocate().unwrap();
        let l2 = a.allocate().unwrap();
        assert_eq!((l1.uid(), l2.uid()), (3_900_000, 3_900_001));
        let b = UidAllocator::new(3_900_000..3_900_003).unwrap();
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
}
