//! The AgentCore domain: resources, their rules and state machines.
//!
//! The wire layer turns each HTTP request into a typed [`hangar_model::Input`] and hands it
//! to [`ControlPlane::execute`]; everything that decides what a request *means* lives here.

mod error;
pub use error::{Error, ValidationReason};

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

pub struct ControlPlane {
    #[allow(dead_code)]
    partition: Partition,
}

impl ControlPlane {
    pub async fn execute(
        &self,
        _ctx: &RequestContext,
        _input: hangar_model::Input,
    ) -> Result<hangar_model::Output, Error> {
        todo!("domain")
    }
}
