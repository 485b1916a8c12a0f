//! The one error type of the crate.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while creating, using or tearing down a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The [`SandboxSpec`](crate::SandboxSpec) (or an [`ExecRequest`](crate::ExecRequest)) is not
    /// usable: relative inside paths, `..`, a NUL byte, uid 0, a mount target that cannot be created...
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),

    /// The backend cannot work on this host (not root, `bwrap`/`pasta` missing, no usable cgroup
    /// controllers...). The message says what to install or change.
    #[error("sandbox backend unavailable: {0}")]
    Unavailable(String),

    /// Every uid of the configured range is held by a live sandbox.
    #[error("no free sandbox uid in {start}..{end}")]
    UidsExhausted { start: u32, end: u32 },

    /// A cgroup file or directory operation failed.
    #[error("cgroup {op} {path}: {source}")]
    Cgroup {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The sandbox did not come up: bwrap (or the network helper) exited or timed out during
    /// start-up. `stderr` holds the tail of what it printed (bwrap's own error lines, e.g. a
    /// missing mount source, end up there).
    #[error("sandbox {id} failed to start: {reason}{}", if stderr.is_empty() { String::new() } else { format!("; stderr: {stderr}") })]
    StartFailed {
        id: String,
        reason: String,
        stderr: String,
    },

    /// The user-mode network helper failed.
    #[error("sandbox network: {0}")]
    Network(String),

    /// The sandbox's main process has exited (or it was killed): no new connections or commands.
    #[error("sandbox {0} is not running")]
    NotRunning(String),

    /// Any other system call failure, with what was being done.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl SandboxError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        SandboxError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn cgroup(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        SandboxError::Cgroup {
            op,
            path: path.into(),
            source,
        }
    }
}
