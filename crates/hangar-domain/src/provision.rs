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

    /// Prepares a custom browser or code interpreter.
    async fn prepare_tool(&self, kind: ToolKind, tool: &ToolRecord) -> Result<(), FailureReason>;
}

/// Accepts every configuration that passed validation.
pub struct AcceptingProvisioner;

#[async_trait]
impl Provisioner for AcceptingProvisioner {
    async fn prepare_runtime_version(&self, _: &RuntimeVersionRecord) -> Result<(), FailureReason> {
        Ok(())
    }

    async fn prepare_tool(&self, _: ToolKind, _: &ToolRecord) -> Result<(), FailureReason> {
        Ok(())
    }
}
