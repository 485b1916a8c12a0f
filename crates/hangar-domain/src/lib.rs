//! The AgentCore domain: resources, their rules and state machines.
//!
//! The wire layer turns each HTTP request into a typed [`hangar_model::Input`] and hands it
//! to [`ControlPlane::execute`]; everything that decides what a request *means* lives here.
//! State lives behind the [`hangar_store::Store`] trait; what makes a resource READY is a
//! [`Provisioner`] (the execution layer).

/// Replays the answer to a client token used before (returning it from the calling handler),
/// or claims the token for this request. `$request` is the request as a JSON object.
macro_rules! claim_or_replay {
    ($self:expr, $operation:expr, $scope:expr, $request:expr) => {
        match crate::idempotency::check(
            $self.store(),
            $operation,
            $scope,
            crate::json::get_str($request, "clientToken"),
            $request,
        )
        .await?
        {
            crate::idempotency::Check::Replay(answer) => return Ok(answer),
            crate::idempotency::Check::Fresh(claim) => claim,
        }
    };
}

mod arn;
mod error;
mod idempotency;
mod json;
mod lifecycle;
mod pagination;
mod provision;
pub mod records;
mod runtimes;
mod stored;
mod tags;
mod tools;

use std::sync::Arc;

use hangar_model::{Input, Output, Timestamp};
use hangar_store::{Store, StoreError, Write};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use arn::{TaggableResource, SYSTEM_BROWSER_ID, SYSTEM_CODE_INTERPRETER_ID};
pub use error::{Error, ValidationReason};
pub use lifecycle::Lifecycle;
pub use provision::{AcceptingProvisioner, FailureReason, Provisioner};
pub use runtimes::DEFAULT_ENDPOINT;

use idempotency::Claim;

/// Who is asking, and where: the parts of a request the domain needs beyond its input.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The `x-amzn-RequestId` the wire layer assigned.
    pub request_id: String,
    /// The SigV4 access key id of the caller (any key in permissive mode).
    pub access_key_id: Option<String>,
}

/// The region and account every ARN is formed in.
#[derive(Debug, Clone)]
pub struct Partition {
    pub region: String,
    pub account_id: String,
}

/// The control plane: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct ControlPlane {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    partition: Partition,
    provisioner: Arc<dyn Provisioner>,
}

impl ControlPlane {
    pub fn new(
        store: Arc<dyn Store>,
        partition: Partition,
        provisioner: Arc<dyn Provisioner>,
    ) -> Self {
        ControlPlane {
            inner: Arc::new(Inner {
                store,
                partition,
                provisioner,
            }),
        }
    }

    /// Brings the store to a consistent state before serving: the built-in tools exist and
    /// whatever a crashed predecessor left CREATING or UPDATING is provisioned again.
    pub async fn start(&self) -> Result<(), Error> {
        self.ensure_system_tools().await?;
        self.recover_runtimes().await
    }

    /// Forgets client tokens first answered more than `lifetime` ago (see [`idempotency`]);
    /// returns how many.
    pub async fn expire_client_tokens(
        &self,
        lifetime: std::time::Duration,
    ) -> Result<usize, Error> {
        let cutoff = Timestamp::from_unix_millis(
            Timestamp::now().unix_millis() - lifetime.as_millis().min(i64::MAX as u128) as i64,
        );
        idempotency::expire(self.store(), cutoff).await
    }

    pub fn partition(&self) -> &Partition {
        &self.inner.partition
    }

    pub(crate) fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    pub(crate) fn provisioner(&self) -> &dyn Provisioner {
        &*self.inner.provisioner
    }

    /// Carries out one control-plane request.
    pub async fn execute(&self, _ctx: &RequestContext, input: Input) -> Result<Output, Error> {
        Ok(match input {
            Input::CreateAgentRuntime(r) => {
                Output::CreateAgentRuntime(self.create_agent_runtime(r).await?)
            }
            Input::GetAgentRuntime(r) => Output::GetAgentRuntime(self.get_agent_runtime(r).await?),
            Input::UpdateAgentRuntime(r) => {
                Output::UpdateAgentRuntime(self.update_agent_runtime(r).await?)
            }
            Input::DeleteAgentRuntime(r) => {
                Output::DeleteAgentRuntime(self.delete_agent_runtime(r).await?)
            }
            Input::ListAgentRuntimes(r) => {
                Output::ListAgentRuntimes(self.list_agent_runtimes(r).await?)
            }
            Input::ListAgentRuntimeVersions(r) => {
                Output::ListAgentRuntimeVersions(self.list_agent_runtime_versions(r).await?)
            }
            Input::CreateAgentRuntimeEndpoint(r) => {
                Output::CreateAgentRuntimeEndpoint(self.create_agent_runtime_endpoint(r).await?)
            }
            Input::GetAgentRuntimeEndpoint(r) => {
                Output::GetAgentRuntimeEndpoint(self.get_agent_runtime_endpoint(r).await?)
            }
            Input::UpdateAgentRuntimeEndpoint(r) => {
                Output::UpdateAgentRuntimeEndpoint(self.update_agent_runtime_endpoint(r).await?)
            }
            Input::DeleteAgentRuntimeEndpoint(r) => {
                Output::DeleteAgentRuntimeEndpoint(self.delete_agent_runtime_endpoint(r).await?)
            }
            Input::ListAgentRuntimeEndpoints(r) => {
                Output::ListAgentRuntimeEndpoints(self.list_agent_runtime_endpoints(r).await?)
            }
            Input::CreateBrowser(r) => Output::CreateBrowser(self.create_browser(r).await?),
            Input::GetBrowser(r) => Output::GetBrowser(self.get_browser(r).await?),
            Input::ListBrowsers(r) => Output::ListBrowsers(self.list_browsers(r).await?),
            Input::DeleteBrowser(r) => Output::DeleteBrowser(self.delete_browser(r).await?),
            Input::CreateCodeInterpreter(r) => {
                Output::CreateCodeInterpreter(self.create_code_interpreter(r).await?)
            }
            Input::GetCodeInterpreter(r) => {
                Output::GetCodeInterpreter(self.get_code_interpreter(r).await?)
            }
            Input::ListCodeInterpreters(r) => {
                Output::ListCodeInterpreters(self.list_code_interpreters(r).await?)
            }
            Input::DeleteCodeInterpreter(r) => {
                Output::DeleteCodeInterpreter(self.delete_code_interpreter(r).await?)
            }
            Input::CreateBrowserProfile(r) => {
                Output::CreateBrowserProfile(self.create_browser_profile(r).await?)
            }
            Input::GetBrowserProfile(r) => {
                Output::GetBrowserProfile(self.get_browser_profile(r).await?)
            }
            Input::ListBrowserProfiles(r) => {
                Output::ListBrowserProfiles(self.list_browser_profiles(r).await?)
            }
            Input::DeleteBrowserProfile(r) => {
                Output::DeleteBrowserProfile(self.delete_browser_profile(r).await?)
            }
            Input::TagResource(r) => Output::TagResource(self.tag_resource(r).await?),
            Input::UntagResource(r) => Output::UntagResource(self.untag_resource(r).await?),
            Input::ListTagsForResource(r) => {
                Output::ListTagsForResource(self.list_tags_for_resource(r).await?)
            }
            other => {
                return Err(Error::Unsupported(format!(
                    "{} is not supported by this server yet",
                    other.operation().name()
                )))
            }
        })
    }

    /// Whether a concurrent request with the same client token has been answered since this
    /// one checked it (so what looks like a conflict is that request's own work).
    pub(crate) async fn answered_meanwhile<T: DeserializeOwned>(
        &self,
        claim: &Option<Claim>,
    ) -> Result<Option<T>, Error> {
        match claim {
            Some(claim) => claim.answered(self.store()).await,
            None => Ok(None),
        }
    }

    /// Commits a change that creates something new (no retry needed: inserts either fit or
    /// collide). `collision` turns a store conflict into the caller's error.
    pub(crate) async fn commit_once<T: Serialize + DeserializeOwned>(
        &self,
        claim: Option<Claim>,
        mut writes: Vec<Write>,
        response: T,
        collision: impl Fn(&StoreError) -> Option<Error>,
    ) -> Result<T, Error> {
        // The token's record goes first: a concurrent request with the same token then
        // fails on it (and replays the winner's answer) rather than on the resource's name.
        if let Some(claim) = &claim {
            writes.insert(0, claim.write(&response));
        }
        match self.store().commit(writes).await {
            Ok(_) => Ok(response),
            Err(e) if idempotency::lost_race(&e) => {
                claim.expect("claimed").winner(self.store()).await
            }
            Err(e) => match self.answered_meanwhile(&claim).await? {
                Some(answer) => Ok(answer),
                None => Err(collision(&e).unwrap_or_else(|| e.into())),
            },
        }
    }

    /// Commits a read-modify-write. `Ok(None)` means a concurrent writer changed what was
    /// read: read again and retry.
    pub(crate) async fn commit_retryable<T: Serialize + DeserializeOwned>(
        &self,
        claim: &Option<Claim>,
        mut writes: Vec<Write>,
        response: T,
    ) -> Result<Option<T>, Error> {
        if let Some(claim) = claim {
            writes.insert(0, claim.write(&response));
        }
        match self.store().commit(writes).await {
            Ok(_) => Ok(Some(response)),
            Err(e) if idempotency::lost_race(&e) => Ok(Some(
                claim
                    .as_ref()
                    .expect("claimed")
                    .winner(self.store())
                    .await?,
            )),
            Err(e) if stored::is_race(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
