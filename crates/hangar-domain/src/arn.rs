//! Identifiers and ARNs, formed exactly as AgentCore forms them.

use rand::distr::{Alphanumeric, SampleString};

use crate::Partition;

/// `{name}-{10 random alphanumerics}`: the id format of runtimes, endpoints, browsers, code
/// interpreters and browser profiles.
pub fn new_resource_id(name: &str) -> String {
    format!(
        "{name}-{}",
        Alphanumeric.sample_string(&mut rand::rng(), 10)
    )
}

pub const SYSTEM_BROWSER_ID: &str = "aws.browser.v1";
pub const SYSTEM_CODE_INTERPRETER_ID: &str = "aws.codeinterpreter.v1";

impl Partition {
    fn prefix(&self, account: &str) -> String {
        format!("arn:aws:bedrock-agentcore:{}:{}", self.region, account)
    }

    pub fn runtime_arn(&self, runtime_id: &str) -> String {
        format!("{}:runtime/{runtime_id}", self.prefix(&self.account_id))
    }

    pub fn endpoint_arn(&self, runtime_id: &str, endpoint: &str) -> String {
        format!(
            "{}/runtime-endpoint/{endpoint}",
            self.runtime_arn(runtime_id)
        )
    }

    /// The workload identity AgentCore creates for every runtime; its name starts with the
    /// runtime name, which the runtime id does.
    pub fn workload_identity_arn(&self, runtime_id: &str) -> String {
        format!(
            "{}:workload-identity-directory/default/workload-identity/{runtime_id}",
            self.prefix(&self.account_id)
        )
    }

    pub fn browser_arn(&self, browser_id: &str) -> String {
        if browser_id == SYSTEM_BROWSER_ID {
            format!("{}:browser/{browser_id}", self.prefix("aws"))
        } else {
            format!(
                "{}:browser-custom/{browser_id}",
                self.prefix(&self.account_id)
            )
        }
    }

    pub fn code_interpreter_arn(&self, id: &str) -> String {
        if id == SYSTEM_CODE_INTERPRETER_ID {
            format!("{}:code-interpreter/{id}", self.prefix("aws"))
        } else {
            format!(
                "{}:code-interpreter-custom/{id}",
                self.prefix(&self.account_id)
            )
        }
    }

    pub fn browser_profile_arn(&self, profile_id: &str) -> String {
        format!(
            "{}:browser-profile/{profile_id}",
            self.prefix(&self.account_id)
        )
    }

    /// What a taggable ARN names, if it is one Hangar could have issued in this partition.
    /// `None` means no such resource can exist here (another account, region or kind).
    pub fn parse_taggable(&self, arn: &str) -> Option<TaggableResource> {
        let rest = arn.strip_prefix(&format!("{}:", self.prefix(&self.account_id)))?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["runtime", id] => Some(TaggableResource::Runtime(id.to_string())),
            ["runtime", id, "runtime-endpoint", name] => Some(TaggableResource::Endpoint {
                runtime_id: id.to_string(),
                name: name.to_string(),
            }),
            ["browser-custom", id] => Some(TaggableResource::Browser(id.to_string())),
            ["code-interpreter-custom", id] => {
                Some(TaggableResource::CodeInterpreter(id.to_string()))
            }
            ["browser-profile", id] => Some(TaggableResource::BrowserProfile(id.to_string())),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaggableResource {
    Runtime(String),
    Endpoint { runtime_id: String, name: String },
    Browser(String),
    CodeInterpreter(String),
    BrowserProfile(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition() -> Partition {
        Partition {
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
        }
    }

    #[test]
    fn ids_have_name_dash_ten_alphanumerics() {
        let id = new_resource_id("my_agent");
        let (name, suffix) = id.rsplit_once('-').unwrap();
        assert_eq!(name, "my_agent");
        assert_eq!(suffix.len(), 10);
        assert!(suffix.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(new_resource_id("a"), new_resource_id("a"));
    }

    #[test]
    fn arns_match_agentcore() {
        let p = partition();
        assert_eq!(
            p.runtime_arn("a-0123456789"),
            "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/a-0123456789"
        );
        assert_eq!(
            p.endpoint_arn("a-0123456789", "DEFAULT"),
            "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/a-0123456789/runtime-endpoint/DEFAULT"
        );
        assert_eq!(
            p.browser_arn(SYSTEM_BROWSER_ID),
            "arn:aws:bedrock-agentcore:us-east-1:aws:browser/aws.browser.v1"
        );
        assert_eq!(
            p.code_interpreter_arn("ci-0123456789"),
            "arn:aws:bedrock-agentcore:us-east-1:123456789012:code-interpreter-custom/ci-0123456789"
        );
    }

    #[test]
    fn taggable_arns_round_trip() {
        let p = partition();
        assert_eq!(
            p.parse_taggable(&p.runtime_arn("r-0123456789")),
            Some(TaggableResource::Runtime("r-0123456789".into()))
        );
        assert_eq!(
            p.parse_taggable(&p.endpoint_arn("r-0123456789", "prod")),
            Some(TaggableResource::Endpoint {
                runtime_id: "r-0123456789".into(),
                name: "prod".into()
            })
        );
        assert_eq!(
            p.parse_taggable(&p.browser_profile_arn("p-0123456789")),
            Some(TaggableResource::BrowserProfile("p-0123456789".into()))
        );
        assert_eq!(
            p.parse_taggable(
                "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/r-0123456789"
            ),
            None
        );
        assert_eq!(
            p.parse_taggable(
                "arn:aws:bedrock-agentcore:us-east-1:123456789012:gateway/g-0123456789"
            ),
            None
        );
    }
}
