//! Provisioning runtime versions: a code artifact must be fetched, verified and unpacked before
//! its version may become READY.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hangar_artifacts::{Artifacts, PreparedCode};
use hangar_domain::records::{RuntimeVersionRecord, ToolKind, ToolRecord};
use hangar_domain::{FailureReason, Provisioner};
use serde_json::Value;

/// What a version runs.
#[derive(Debug, Clone)]
pub(crate) enum Artifact {
    Code(PreparedCode),
    /// `containerConfiguration`: accepted by the control plane; running images needs an image
    /// store this server does not have yet, which invocations report.
    Container {
        uri: String,
    },
}

pub struct AgentProvisioner {
    artifacts: Arc<Artifacts>,
    /// Prepared artifacts by (runtime id, version). Not persisted: after a restart the first
    /// session of a version prepares it again, which the artifact cache answers without a fetch.
    prepared: Mutex<HashMap<(String, u32), PreparedCode>>,
}

impl AgentProvisioner {
    pub fn new(artifacts: Arc<Artifacts>) -> Self {
        AgentProvisioner {
            artifacts,
            prepared: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) async fn artifact(
        &self,
        version: &RuntimeVersionRecord,
    ) -> Result<Artifact, FailureReason> {
        let artifact = version.config.get("agentRuntimeArtifact");
        if let Some(code) = artifact.and_then(|a| a.get("codeConfiguration")) {
            let key = (version.runtime_id.clone(), version.version);
            if let Some(prepared) = self.prepared.lock().expect("poisoned").get(&key) {
                return Ok(Artifact::Code(prepared.clone()));
            }
            let prepared = self
                .artifacts
                .prepare_code_json(code)
                .await
                .map_err(|e| FailureReason(e.to_string()))?;
            self.prepared
                .lock()
                .expect("poisoned")
                .insert(key, prepared.clone());
            return Ok(Artifact::Code(prepared));
        }
        if let Some(uri) = artifact
            .and_then(|a| a.get("containerConfiguration"))
            .and_then(|c| c.get("containerUri"))
            .and_then(Value::as_str)
        {
            return Ok(Artifact::Container {
                uri: uri.to_owned(),
            });
        }
        Err(FailureReason(
            "agentRuntimeArtifact names no artifact".into(),
        ))
    }
}

#[async_trait]
impl Provisioner for AgentProvisioner {
    /// Container artifacts need no preparation here yet, and a code artifact prepared before
    /// (same runtime and version) is ready; anything else is fetched in the background.
    fn immediate_outcome(
        &self,
        version: &RuntimeVersionRecord,
    ) -> Option<Result<(), FailureReason>> {
        let artifact = version.config.get("agentRuntimeArtifact")?;
        if artifact.get("containerConfiguration").is_some() {
            return Some(Ok(()));
        }
        let key = (version.runtime_id.clone(), version.version);
        self.prepared
            .lock()
            .expect("poisoned")
            .contains_key(&key)
            .then_some(Ok(()))
    }

    async fn prepare_runtime_version(
        &self,
        version: &RuntimeVersionRecord,
    ) -> Result<(), FailureReason> {
        self.artifact(version).await.map(|_| ())
    }

    async fn prepare_tool(&self, _: ToolKind, _: &ToolRecord) -> Result<(), FailureReason> {
        Ok(())
    }
}
