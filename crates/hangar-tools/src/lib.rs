//! Execution of AgentCore's built-in tools.
//!
//! Every tool session (today: code-interpreter sessions; later: browser sessions) is its own
//! sandbox from `hangar-sandbox`: own uid, namespaces, cgroup limits and writable working
//! directory, killed and removed when the session stops or times out.
//!
//! - [`pool`] is the shared core: a small pool of pre-started sandboxes per network mode,
//!   refilled in the background, so starting a session is taking a ready sandbox rather than
//!   paying for bwrap and an interpreter start-up on the request path.
//! - [`browser`] runs browser sessions: a headless Chromium per sandbox, its DevTools
//!   endpoint the target of the session's automation stream; sessions of browsers with
//!   recording enabled are recorded to S3 ([`browser::recording`]).
//! - [`code_interpreter`] runs code-interpreter sessions: the session table
//!   (Start/Get/List/Stop, the timeout reaper) and `InvokeCodeInterpreter`'s nine tools, carried
//!   out by a driver program inside each sandbox.

pub mod browser;
pub mod code_interpreter;
mod error;
pub mod pool;
mod registry;

pub use browser::{BrowserConfig, BrowserStores, Browsers};
pub use code_interpreter::{CodeInterpreterConfig, CodeInterpreters};
pub use error::ToolsError;
pub use pool::{Pool, ToolNetwork};

/// A new tool-session id: 26 characters of Crockford base32 (48-bit millisecond time + 80
/// random bits), the ULID form AgentCore's session ids have, and within the model's
/// `[0-9a-zA-Z]{1,40}`. Sorted by creation time.
pub fn new_session_id() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
        & ((1 << 48) - 1);
    let random = uuid::Uuid::new_v4().as_u128() & ((1u128 << 80) - 1);
    let value: u128 = (u128::from(ms) << 80) | random;
    (0..26)
        .rev()
        .map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_ids_are_ulids() {
        let a = super::new_session_id();
        let b = super::new_session_id();
        assert_eq!(a.len(), 26);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert!(a[..10] <= b[..10], "time prefix is monotonic: {a} {b}");
    }
}
