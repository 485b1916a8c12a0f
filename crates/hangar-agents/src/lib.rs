//! Agent runtimes that really run.
//!
//! - [`AgentProvisioner`] is the domain's [`hangar_domain::Provisioner`] for runtime versions: it
//!   fetches and unpacks a version's code artifact (through `hangar-artifacts`) before the
//!   version may become READY, and says exactly why when it cannot.
//! - [`SessionManager`] keeps one sandbox (from `hangar-sandbox`) per runtime session: it starts
//!   it on the first invocation, waits for `GET /ping`, forwards invocations over HTTP, enforces
//!   the idle timeout and maximum lifetime, and stops it. Per protocol (HTTP, MCP, A2A, AGUI)
//!   it knows the agent's port and path, routes MCP sessions by `Mcp-Session-Id`, fetches A2A
//!   agent cards and runs commands inside a session.

mod launch;
mod provisioner;
mod proxy;
mod sessions;

pub use launch::Protocol;
pub use provisioner::AgentProvisioner;
pub use proxy::{Invocation, InvocationResponse, WORKLOAD_TOKEN_HEADER};
pub use sessions::{
    ActiveSession, AgentCard, CommandEvent, CommandRun, SessionInfo, SessionLogs, SessionManager,
    SessionStream, SessionsConfig,
};
