//! Bounded buffer of the most recent output bytes of a process.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Keeps the last `cap` bytes written. A long-lived agent can print without bound; start-up
/// error reports and a logs route only need the tail.
#[derive(Debug)]
pub(crate) struct OutputRing {
    cap: usize,
    buf: Mutex<VecDeque<u8>>,
}

impl OutputRing {
    pub(crate) fn new(cap: usize) -> Self {
        OutputRing {
            cap,
            buf: Mutex::new(VecDeque::with_capacity(cap.min(64 * 1024))),
        }
    }

    pub(crate) fn push(&self, data: &[u8]) {
        if self.cap == 0 {
            return;
        }
        let data = if data.len() > self.cap {
            &data[data.len() - self.cap..]
        } else {
            data
        };
        let mut buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        let overflow = (buf.len() + data.len()).saturating_sub(self.cap);
        buf.drain(..overflow);
        buf.extend(data);
    }

    /// The last `max` bytes as text (invalid UTF-8 replaced; a character cut at the start of the
    /// window is dropped rather than shown as garbage).
    pub(crate) fn tail(&self, max: usize) -> String {
        let buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        let n = buf.len().min(max);
        let mut bytes: Vec<u8> = buf.iter().skip(buf.len() - n).copied().collect();
        drop(buf);
        // Valid UTF-8 never starts with a continuation byte: those belong to a character cut by
        // the window (or by the ring), so drop them rather than print replacement garbage.
        let skip = bytes
            .iter()
            .take(3)
            .take_while(|b| (**b & 0xC0) == 0x80)
            .count();
        bytes.drain(..skip);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_tail() {
        let r = OutputRing::new(8);
        r.push(b"hello ");
        r.push(b"world!");
        assert_eq!(r.tail(100), "o world!");
        assert_eq!(r.tail(3), "ld!");
        r.push(b"0123456789abc");
        assert_eq!(r.tail(100), "56789abc");
    }

    #[test]
    fn utf8_cut() {
        let r = OutputRing::new(16);
        r.push("aé".as_bytes());
        assert_eq!(r.tail(1), "");
        assert_eq!(r.tail(2), "é");
        assert_eq!(r.tail(100), "aé");
    }
}
