//! Agent runtimes that really run.
//!
//! - [`AgentProvisioner`] is the domain's [`hangar_domain::Provisioner`] for runtime versions: it
//!   fetches and unpacks a version's code artifact (through `hangar-artifacts`) before the
//!   version may become READY, and says exactly why when it cannot.
//! - [`SessionManager`] keeps one sandbox (from `hangar-sandbox`) per runtime session: it starts
//!   it on the first invocation, waits for `GET /ping`, forwards invocations over HTTP, enforces
//!   the idle timeout and maximum lifetime, and stops it.

mod launch;
mod provisioner;
mod proxy;
mod sessions;

pub use provisioner::AgentProvisioner;
pub use proxy::{Invocation, InvocationResponse, WORKLOAD_TOKEN_HEADER};
pub use sessions::{
    ActiveSession, SessionInfo, SessionLogs, SessionManager, SessionStream, SessionsConfig,
};
