//! What makes a resource READY.
//!
//! Create and Update commit the resource as CREATING / UPDATING and return at once, as
//! AgentCore does; a [`Provisioner`] then prepares it (for runtimes: fetch and unpack the
//! artifact) and the domain moves it to READY or *_FAILED with the provisioner's reason.
//! Until the execution layer exists, [`AcceptingProvisioner`] accepts every configuration.

use async_trait::async_trait;

use crate::records::{RuntimeVersionRecord, ToolKind, ToolRecord};

/// Why preparing a resource failed, in words a user can act on (becomes `failureReason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureReason(pub String);

#[async_trait]
pub trait Provisioner: Send + Sync + 'static {
    /// Prepares one runtime version to run sessions. Called once per version, and again after
    /// a restart for versions a crash left CREATING or UPDATING.
    async fn prepare_runtime_version(
        &self,
        version: &RuntimeVersionRecord,
    ) -> Result<(), FailureReason>;

    /// The outcome of preparing `version` when it is known without any work (nothing to fetch,
    /// or already prepared): the domain then records it in the same commit as the change,
    /// instead of a second commit from a background task. `None`: prepare in the background.
    fn immediate_outcome(
        &self,
        _version: &RuntimeVersionRecord,
    ) -> Option<Result<(), FailureReason>> {
        None
    }

    /// Prepares a custom browser or code interpreter.
    async fn prepare_tool(&self, kind: ToolKind, tool: &ToolRecord) -> Result<(), FailureReason>;
}

/// Accepts every configuration that passed validation.
pub struct AcceptingProvisioner;

#[async_trait]
impl Provisioner for AcceptingProvisioner {
    fn immediate_outcome(&self, _: &RuntimeVersionRecord) -> Option<Result<(), FailureReason>> {
        Some(Ok(()))
    }

    async fn prepare_runtime_version(&self, _: &RuntimeVersionRecord) -> Result<(), FailureReason> {
        Ok(())
    }

    async fn prepare_tool(&self, _: ToolKind, _: &ToolRecord) -> Result<(), FailureReason> {
        Ok(())
    }
}
