//! Provisioning runtime versions: a code artifact must be fetched, verified and unpacked (a
//! container image pulled, verified and unpacked) before its version may become READY.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hangar_artifacts::{Artifacts, PreparedCode};
use hangar_domain::records::{RuntimeVersionRecord, ToolKind, ToolRecord};
use hangar_domain::{FailureReason, Provisioner};
use hangar_oci::{ImageStore, PreparedImage};
use serde_json::Value;

/// What a version runs.
#[derive(Debug, Clone)]
pub(crate) enum Artifact {
    Code(PreparedCode),
    /// `containerConfiguration`: the image, pulled and unpacked.
    Container(PreparedImage),
}

pub struct AgentProvisioner {
    artifacts: Arc<Artifacts>,
    /// Prepared artifacts by (runtime id, version). Not persisted: after a restart the first
    /// session of a version prepares it again, which the artifact cache answers without a fetch.
    prepared: Mutex<HashMap<(String, u32), PreparedCode>>,
    /// Container images; `None`: container artifacts fail with a reason saying so.
    images: Option<Arc<ImageStore>>,
    /// Prepared images by (runtime id, version), as for code. The store pins each version's
    /// image on disk, so after a restart the same image comes back without a registry request.
    prepared_images: Mutex<HashMap<(String, u32), PreparedImage>>,
    /// `false`: container artifacts are recorded and go READY without being pulled (a
    /// control-plane-only server, e.g. for testing deployment tooling without a registry);
    /// invoking them answers 424 saying so.
    pull_images: bool,
}

impl AgentProvisioner {
    pub fn new(artifacts: Arc<Artifacts>) -> Self {
        AgentProvisioner {
            artifacts,
            prepared: Mutex::new(HashMap::new()),
            images: None,
            prepared_images: Mutex::new(HashMap::new()),
            pull_images: true,
        }
    }

    /// Accept container artifacts without pulling them (see `pull_images`).
    pub fn without_image_pulls(mut self) -> Self {
        self.pull_images = false;
        self
    }

    fn is_unpulled_container(&self, version: &RuntimeVersionRecord) -> bool {
        !self.pull_images
            && version
                .config
                .get("agentRuntimeArtifact")
                .is_some_and(|a| a.get("containerConfiguration").is_some())
    }

    /// Runs container artifacts from this image store.
    pub fn with_images(mut self, images: Arc<ImageStore>) -> Self {
        self.images = Some(images);
        self
    }

    async fn image(
        &self,
        version: &RuntimeVersionRecord,
        uri: &str,
    ) -> Result<PreparedImage, FailureReason> {
        let key = (version.runtime_id.clone(), version.version);
        if let Some(prepared) = self.prepared_images.lock().expect("poisoned").get(&key) {
            return Ok(prepared.clone());
        }
        if !self.pull_images {
            return Err(FailureReason(format!(
                "Container image {uri} was not pulled: this server accepts container artifacts \
                 without pulling them (--container-images accept); restart it with \
                 --container-images pull to run container agents"
            )));
        }
        let images = self.images.as_ref().ok_or_else(|| {
            FailureReason(format!(
                "Container image {uri} cannot be run: this server has no image store"
            ))
        })?;
        let pin = format!("{}/{}", version.runtime_id, version.version);
        let image = images
            .prepare(uri, Some(&pin))
            .await
            .map_err(|e| FailureReason(e.to_string()))?;
        // An image that cannot start (no program, unknown user) fails its version now rather
        // than every invocation later.
        hangar_oci::plan_run(&image).map_err(|e| FailureReason(e.to_string()))?;
        self.prepared_images
            .lock()
            .expect("poisoned")
            .insert(key, image.clone());
        Ok(image)
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
            return self.image(version, uri).await.map(Artifact::Container);
        }
        Err(FailureReason(
            "agentRuntimeArtifact names no artifact".into(),
        ))
    }
}

impl AgentProvisioner {
    /// Garbage-collects container images no runtime version references any more: a pin whose
    /// version is gone (deleted, or its runtime deleted) is dropped, then every image and blob
    /// no remaining pin holds (past the store's grace period) is removed. A version whose record
    /// cannot be read for another reason keeps its image.
    pub async fn collect_images(
        &self,
        control: &hangar_domain::ControlPlane,
    ) -> Result<hangar_oci::ImageGcReport, hangar_oci::OciError> {
        let Some(images) = self.images.clone() else {
            return Ok(hangar_oci::ImageGcReport::default());
        };
        let mut dead = std::collections::HashSet::new();
        for (key, _) in images.pins() {
            let Some((rid, v)) = key
                .rsplit_once('/')
                .and_then(|(r, v)| Some((r.to_owned(), v.parse::<u32>().ok()?)))
            else {
                dead.insert(key);
                continue;
            };
            if let Err(hangar_domain::Error::NotFound(_)) =
                control.runtime_version(&rid, Some(v)).await
            {
                self.prepared_images
                    .lock()
                    .expect("poisoned")
                    .remove(&(rid, v));
                dead.insert(key);
            }
        }
        tokio::task::spawn_blocking(move || {
            let keep = images.live_pins(|k| !dead.contains(k));
            images.gc(&keep)
        })
        .await
        .map_err(|e| hangar_oci::OciError::InvalidConfig(format!("image gc: {e}")))?
    }
}

#[async_trait]
impl Provisioner for AgentProvisioner {
    /// An artifact prepared before (same runtime and version) is ready; anything else is
    /// fetched in the background.
    fn immediate_outcome(
        &self,
        version: &RuntimeVersionRecord,
    ) -> Option<Result<(), FailureReason>> {
        let artifact = version.config.get("agentRuntimeArtifact")?;
        let key = (version.runtime_id.clone(), version.version);
        if self.is_unpulled_container(version) {
            return Some(Ok(()));
        }
        if artifact.get("containerConfiguration").is_some() {
            return self
                .prepared_images
                .lock()
                .expect("poisoned")
                .contains_key(&key)
                .then_some(Ok(()));
        }
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
        if self.is_unpulled_container(version) {
            return Ok(());
        }
        self.artifact(version).await.map(|_| ())
    }

    async fn prepare_tool(&self, _: ToolKind, _: &ToolRecord) -> Result<(), FailureReason> {
        Ok(())
    }
}
