//! The inputs: a `codeConfiguration` (plain fields or its JSON) and the limits.
//!
//! This crate deliberately does not depend on `hangar-model`: the provisioner
//! hands over either [`CodeConfiguration`] fields or the JSON it stored.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::error::ArtifactError;

/// `codeConfiguration.runtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Runtime {
    Python310,
    Python311,
    Python312,
    Python313,
    Python314,
    Node22,
}

impl Runtime {
    pub const ALL: [Runtime; 6] = [
        Runtime::Python310,
        Runtime::Python311,
        Runtime::Python312,
        Runtime::Python313,
        Runtime::Python314,
        Runtime::Node22,
    ];

    /// The wire name, e.g. `PYTHON_3_12`.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Python310 => "PYTHON_3_10",
            Runtime::Python311 => "PYTHON_3_11",
            Runtime::Python312 => "PYTHON_3_12",
            Runtime::Python313 => "PYTHON_3_13",
            Runtime::Python314 => "PYTHON_3_14",
            Runtime::Node22 => "NODE_22",
        }
    }

    pub fn is_python(self) -> bool {
        self != Runtime::Node22
    }

    /// The binary name looked up on the search path: `python3.12`, `node`.
    pub fn binary_name(self) -> &'static str {
        match self {
            Runtime::Python310 => "python3.10",
            Runtime::Python311 => "python3.11",
            Runtime::Python312 => "python3.12",
            Runtime::Python313 => "python3.13",
            Runtime::Python314 => "python3.14",
            Runtime::Node22 => "node",
        }
    }

    /// The version prefix `--version` must report: `3.12` for Python, `22` for Node.
    pub fn version_prefix(self) -> &'static str {
        match self {
            Runtime::Python310 => "3.10",
            Runtime::Python311 => "3.11",
            Runtime::Python312 => "3.12",
            Runtime::Python313 => "3.13",
            Runtime::Python314 => "3.14",
            Runtime::Node22 => "22",
        }
    }

    /// How the version is called in messages: "Python 3.12", "Node.js 22".
    pub fn display_version(self) -> String {
        if self.is_python() {
            format!("Python {}", self.version_prefix())
        } else {
            format!("Node.js {}", self.version_prefix())
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Runtime {
    type Err = ArtifactError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Runtime::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                ArtifactError::InvalidConfig(format!(
                    "runtime '{s}' is not one of {}",
                    Runtime::ALL.map(|r| r.as_str()).join(", ")
                ))
            })
    }
}

/// The parts of `agentRuntimeArtifact.codeConfiguration` this crate needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeConfiguration {
    /// `code.s3.bucket`
    pub bucket: String,
    /// `code.s3.prefix`: the full object key of the zip (AgentCore's naming).
    pub key: String,
    /// `code.s3.versionId`; `None` means the latest version.
    pub version_id: Option<String>,
    /// `runtime`
    pub runtime: Runtime,
    /// `entryPoint`: `["main.py"]` or `["opentelemetry-instrument", "main.py"]`.
    pub entry_point: Vec<String>,
}

impl CodeConfiguration {
    /// Parse the JSON of `codeConfiguration` (members `code.s3.bucket`,
    /// `code.s3.prefix`, `code.s3.versionId`, `runtime`, `entryPoint`).
    /// A whole `agentRuntimeArtifact` (`{"codeConfiguration": {...}}`) is accepted too.
    pub fn from_json(value: &Value) -> Result<Self, ArtifactError> {
        let value = value.get("codeConfiguration").unwrap_or(value);
        let bad = |m: &str| ArtifactError::InvalidConfig(m.to_string());
        let s3 = value
            .get("code")
            .and_then(|c| c.get("s3"))
            .ok_or_else(|| bad("code.s3 is missing"))?;
        let string = |v: &Value, name: &str| -> Result<Option<String>, ArtifactError> {
            match v.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(bad(&format!("{name} must be a string"))),
            }
        };
        let bucket = string(s3, "bucket")?.ok_or_else(|| bad("code.s3.bucket is missing"))?;
        let key = string(s3, "prefix")?.ok_or_else(|| bad("code.s3.prefix is missing"))?;
        let version_id = string(s3, "versionId")?;
        let runtime: Runtime = string(value, "runtime")?
            .ok_or_else(|| bad("runtime is missing"))?
            .parse()?;
        let entry_point = match value.get("entryPoint") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad("entryPoint items must be strings"))
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(bad("entryPoint must be a list of strings")),
            None => return Err(bad("entryPoint is missing")),
        };
        let config = CodeConfiguration {
            bucket,
            key,
            version_id,
            runtime,
            entry_point,
        };
        config.validate()?;
        Ok(config)
    }

    /// The constraints of the botocore model (see the spec §D / §F.1), checked
    /// again here because this crate may be handed fields from anywhere.
    pub fn validate(&self) -> Result<(), ArtifactError> {
        let bad = |m: String| Err(ArtifactError::InvalidConfig(m));
        if !valid_bucket(&self.bucket) {
            return bad(format!(
                "code.s3.bucket '{}' is not a valid bucket name (3-63 characters: a-z, 0-9, '.', '-', \
                 starting and ending with a letter or digit)",
                self.bucket
            ));
        }
        if self.key.is_empty() || self.key.len() > 1024 {
            return bad(format!(
                "code.s3.prefix must be 1-1024 characters (it is {})",
                self.key.len()
            ));
        }
        if let Some(v) = &self.version_id {
            if v.len() < 3 || v.len() > 1024 {
                return bad(format!(
                    "code.s3.versionId must be 3-1024 characters (it is {})",
                    v.len()
                ));
            }
        }
        if self.entry_point.is_empty() || self.entry_point.len() > 2 {
            return bad(format!(
                "entryPoint must have 1 or 2 items, e.g. [\"main.py\"] or [\"opentelemetry-instrument\", \"main.py\"] (it has {})",
                self.entry_point.len()
            ));
        }
        if let Some(e) = self
            .entry_point
            .iter()
            .find(|e| e.is_empty() || e.len() > 128)
        {
            return bad(format!(
                "entryPoint items must be 1-128 characters ('{e}' is {})",
                e.len()
            ));
        }
        Ok(())
    }

    /// `s3://bucket/key` (plus `?versionId=` when pinned), for messages and logs.
    pub fn url(&self) -> String {
        object_url(&self.bucket, &self.key, self.version_id.as_deref())
    }
}

pub(crate) fn object_url(bucket: &str, key: &str, version_id: Option<&str>) -> String {
    match version_id {
        Some(v) => format!("s3://{bucket}/{key}?versionId={v}"),
        None => format!("s3://{bucket}/{key}"),
    }
}

/// `[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]`, anchored.
fn valid_bucket(b: &str) -> bool {
    let bytes = b.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=63).contains(&bytes.len())
        && edge(&bytes[0])
        && edge(&bytes[bytes.len() - 1])
        && bytes.iter().all(|c| edge(c) || *c == b'.' || *c == b'-')
}

/// Size limits for a code zip. The defaults are AgentCore's quotas; tests
/// shrink them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Size of the zip itself. AgentCore: 250 MB (taken as Lambda's 250 MiB).
    pub max_compressed: u64,
    /// Sum of the unpacked entries. AgentCore: 750 MB (taken as 750 MiB).
    pub max_uncompressed: u64,
    /// Number of entries. Not an AgentCore quota: it bounds the inodes and the
    /// work one zip can cost (a zip of a million empty files is tiny).
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_compressed: 250 * 1024 * 1024,
            max_uncompressed: 750 * 1024 * 1024,
            max_entries: 200_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_code_configuration_json() {
        let c = CodeConfiguration::from_json(&json!({
            "code": {"s3": {"bucket": "my-bucket", "prefix": "agent/deployment.zip", "versionId": "abc"}},
            "runtime": "PYTHON_3_11",
            "entryPoint": ["opentelemetry-instrument", "main.py"]
        }))
        .unwrap();
        assert_eq!(c.bucket, "my-bucket");
        assert_eq!(c.key, "agent/deployment.zip");
        assert_eq!(c.version_id.as_deref(), Some("abc"));
        assert_eq!(c.runtime, Runtime::Python311);
        assert_eq!(c.entry_point, ["opentelemetry-instrument", "main.py"]);
        assert_eq!(c.url(), "s3://my-bucket/agent/deployment.zip?versionId=abc");

        // The whole agentRuntimeArtifact works too.
        let c2 = CodeConfiguration::from_json(&json!({"codeConfiguration": {
            "code": {"s3": {"bucket": "my-bucket", "prefix": "a.zip"}},
            "runtime": "NODE_22", "entryPoint": ["index.js"]
        }}))
        .unwrap();
        assert_eq!(c2.runtime, Runtime::Node22);
        assert_eq!(c2.version_id, None);
    }

    #[test]
    fn rejects_bad_configuration() {
        let base = json!({
            "code": {"s3": {"bucket": "my-bucket", "prefix": "a.zip"}},
            "runtime": "PYTHON_3_11", "entryPoint": ["main.py"]
        });
        let with = |path: &[&str], v: Value| {
            let mut j = base.clone();
            let mut cur = &mut j;
            for p in &path[..path.len() - 1] {
                cur = cur.get_mut(*p).unwrap();
            }
            cur[path[path.len() - 1]] = v;
            CodeConfiguration::from_json(&j).unwrap_err().to_string()
        };
        assert!(with(&["runtime"], json!("PYTHON_2_7")).contains("PYTHON_3_10, PYTHON_3_11"));
        assert!(with(&["code", "s3", "bucket"], json!("A_B")).contains("not a valid bucket"));
        assert!(with(&["code", "s3", "prefix"], json!("")).contains("1-1024"));
        assert!(with(&["entryPoint"], json!([])).contains("1 or 2 items"));
        assert!(with(&["entryPoint"], json!(["a", "b", "c"])).contains("1 or 2 items"));
        assert!(with(&["entryPoint"], json!("main.py")).contains("list of strings"));
        assert!(CodeConfiguration::from_json(&json!({})).is_err());
    }
}
