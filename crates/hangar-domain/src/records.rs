//! What the domain keeps in the store: one serde document per record, in named collections.

use hangar_model::Timestamp;
use serde::{Deserialize, Serialize};

/// Store collection names. Keys and parents are noted beside each.
pub mod collection {
    /// key: runtime id; name: runtime name.
    pub const RUNTIME: &str = "runtime";
    /// key: `{runtime id}/{version}`; parent: runtime id.
    pub const RUNTIME_VERSION: &str = "runtime_version";
    /// key: `{runtime id}/{endpoint name}`; parent: runtime id.
    pub const ENDPOINT: &str = "runtime_endpoint";
    /// key: browser id; name: browser name (custom browsers only).
    pub const BROWSER: &str = "browser";
    /// key: code interpreter id; name: its name (custom ones only).
    pub const CODE_INTERPRETER: &str = "code_interpreter";
    /// key: profile id; name: profile name.
    pub const BROWSER_PROFILE: &str = "browser_profile";
    /// key: resource ARN; parent: the id whose deletion removes these tags.
    pub const TAGS: &str = "tags";
    /// key: `{operation}:{scope}:{clientToken}`.
    pub const IDEMPOTENCY: &str = "idempotency";
}

/// The status machine shared by runtimes, runtime versions and endpoints
/// (`AgentRuntimeStatus` / `AgentRuntimeEndpointStatus` in the model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Creating,
    CreateFailed,
    Updating,
    UpdateFailed,
    Ready,
    Deleting,
    DeleteFailed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "CREATING",
            Status::CreateFailed => "CREATE_FAILED",
            Status::Updating => "UPDATING",
            Status::UpdateFailed => "UPDATE_FAILED",
            Status::Ready => "READY",
            Status::Deleting => "DELETING",
            Status::DeleteFailed => "DELETE_FAILED",
        }
    }

    /// Still being prepared: a provisioner has not reported yet.
    pub fn is_pending(self) -> bool {
        matches!(self, Status::Creating | Status::Updating)
    }

    /// The status a pending resource moves to once its provisioner reports.
    pub fn settled(self, ok: bool) -> Status {
        match (self, ok) {
            (_, true) => Status::Ready,
            (Status::Creating, false) => Status::CreateFailed,
            (_, false) => Status::UpdateFailed,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeRecord {
    pub id: String,
    pub name: String,
    pub arn: String,
    pub workload_identity_arn: String,
    /// The newest version; the DEFAULT endpoint targets it.
    pub latest_version: u32,
    /// The status of the latest version.
    pub status: Status,
    pub failure_reason: Option<String>,
    /// The latest version's description, for listings.
    pub description: Option<String>,
    pub created_at: Timestamp,
    pub last_updated_at: Timestamp,
}

/// One immutable version of a runtime's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeVersionRecord {
    pub runtime_id: String,
    pub runtime_name: String,
    pub runtime_arn: String,
    pub version: u32,
    pub status: Status,
    pub failure_reason: Option<String>,
    pub created_at: Timestamp,
    pub last_updated_at: Timestamp,
    /// The configuration members of the Create/Update request, as sent (camelCase JSON): the
    /// artifact, role, network, protocol, lifecycle, authorizer, headers, environment, ….
    pub config: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub runtime_id: String,
    pub name: String,
    pub id: String,
    pub arn: String,
    pub runtime_arn: String,
    pub status: Status,
    /// The version serving invocations; None until the first target becomes READY.
    pub live_version: Option<u32>,
    /// The version the endpoint is moving to (equal to `live_version` when settled).
    pub target_version: u32,
    pub description: Option<String>,
    pub failure_reason: Option<String>,
    pub created_at: Timestamp,
    pub last_updated_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToolKind {
    Browser,
    CodeInterpreter,
}

impl ToolKind {
    pub fn collection(self) -> &'static str {
        match self {
            ToolKind::Browser => collection::BROWSER,
            ToolKind::CodeInterpreter => collection::CODE_INTERPRETER,
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            ToolKind::Browser => "browser",
            ToolKind::CodeInterpreter => "code interpreter",
        }
    }
}

/// `BrowserStatus` / `CodeInterpreterStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ToolStatus {
    Creating,
    CreateFailed,
    Ready,
    Deleting,
    DeleteFailed,
    Deleted,
}

/// A browser or code interpreter, custom or built in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolRecord {
    pub kind: ToolKind,
    pub id: String,
    pub name: String,
    pub arn: String,
    /// Built in (`aws.browser.v1`, `aws.codeinterpreter.v1`): AWS-owned, cannot be deleted.
    pub system: bool,
    pub status: ToolStatus,
    pub failure_reason: Option<String>,
    pub created_at: Timestamp,
    pub last_updated_at: Timestamp,
    /// The configuration members of the Create request as sent (camelCase JSON), including
    /// `description`.
    pub config: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrowserProfileRecord {
    pub id: String,
    pub name: String,
    pub arn: String,
    pub description: Option<String>,
    pub created_at: Timestamp,
    pub last_updated_at: Timestamp,
    pub last_saved_at: Option<Timestamp>,
    pub last_saved_browser_id: Option<String>,
    pub last_saved_browser_session_id: Option<String>,
    /// What the last SaveBrowserSessionProfile captured (the browser's cookies, as CDP
    /// `Storage.getCookies` gives them); applied to sessions started with the profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_state: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TagsRecord {
    pub tags: std::collections::BTreeMap<String, String>,
}

/// The answer given to the first request with a client token, replayed to its retries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// SHA-256 of the request without its client token.
    pub fingerprint: String,
    pub response: serde_json::Value,
    /// When the token was first answered; records older than the token lifetime are removed
    /// (absent in records written before tokens expired: those count as expired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_machine() {
        assert_eq!(Status::Creating.settled(true), Status::Ready);
        assert_eq!(Status::Creating.settled(false), Status::CreateFailed);
        assert_eq!(Status::Updating.settled(false), Status::UpdateFailed);
        assert!(Status::Updating.is_pending());
        assert!(!Status::Ready.is_pending());
        assert_eq!(
            serde_json::to_value(Status::CreateFailed).unwrap(),
            serde_json::json!("CREATE_FAILED")
        );
    }
}
