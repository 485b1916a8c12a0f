//! What a session's browser is started with beyond the defaults: `extensions` and
//! `enterprisePolicies` from S3 (the session's, and the custom browser's own policies).
//!
//! - An extension is a zip of an unpacked Chrome extension (its `manifest.json` at the top, or
//!   in the zip's single top folder). It is fetched, verified and unpacked by the artifact
//!   cache, as agent code is, mounted read-only into the sandbox and loaded with
//!   `--load-extension`.
//! - A policy file is Chromium policy JSON. Linux Chromium reads every `*.json` in
//!   `/etc/chromium/policies/managed` (mandatory) and `…/recommended` (defaults a user may
//!   change); each file is put there inside the session's sandbox only. A session's policies
//!   default to RECOMMENDED and a browser's (CreateBrowser) to MANAGED, as AWS's SDK documents.
//!
//! An object that cannot be fetched or is not what it should be refuses the start with a
//! `ValidationException` naming the member.

use std::path::{Path, PathBuf};

use hangar_artifacts::{Artifacts, ObjectRef};
use hangar_model::data::{
    BrowserEnterprisePolicy, BrowserEnterprisePolicyType, BrowserExtension, ResourceLocation,
};
use hangar_sandbox::Mount;

use crate::ToolsError;

/// Largest policy file (AWS: "each ≤5 MB").
const MAX_POLICY_BYTES: u64 = 5 << 20;
/// Where extension `i` is mounted inside the sandbox.
const EXTENSIONS_DIR: &str = "/hangar-extensions";
const POLICIES_DIR: &str = "/etc/chromium/policies";

/// Chromium switches and sandbox mounts of a session's customization.
#[derive(Debug, Default)]
pub(crate) struct Customization {
    pub args: Vec<String>,
    pub mounts: Vec<Mount>,
}

impl Customization {
    pub fn is_empty(&self) -> bool {
        self.args.is_empty() && self.mounts.is_empty()
    }
}

/// Fetches what `extensions` and the policies name and says how to start the browser with it.
/// `browser_policies` are the custom browser's own (CreateBrowser), applied before the
/// session's.
pub(crate) async fn prepare(
    artifacts: Option<&Artifacts>,
    extensions: &[BrowserExtension],
    browser_policies: &[BrowserEnterprisePolicy],
    session_policies: &[BrowserEnterprisePolicy],
) -> Result<Customization, ToolsError> {
    let mut out = Customization::default();
    if extensions.is_empty() && browser_policies.is_empty() && session_policies.is_empty() {
        return Ok(out);
    }
    let artifacts = artifacts.ok_or_else(|| {
        ToolsError::Validation(
            "extensions and enterprisePolicies need an object store; this Hangar has none".into(),
        )
    })?;
    let mut loaded = Vec::new();
    for (i, extension) in extensions.iter().enumerate() {
        let field = format!("extensions[{i}].location");
        let tree = artifacts
            .prepare_tree(object(&extension.location))
            .await
            .map_err(|e| ToolsError::Validation(format!("{field}: {e}")))?;
        let root = extension_root(&tree).ok_or_else(|| {
            ToolsError::Validation(format!(
                "{field}: the zip holds no manifest.json (at its top or in its single top folder)"
            ))
        })?;
        let inside = format!("{EXTENSIONS_DIR}/{i}");
        out.mounts.push(Mount::ReadOnly {
            host: root,
            inside: inside.clone().into(),
        });
        loaded.push(inside);
    }
    if !loaded.is_empty() {
        out.args
            .push(format!("--load-extension={}", loaded.join(",")));
    }
    let policies = browser_policies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let field = format!("the browser's enterprisePolicies[{i}]");
            (
                p,
                BrowserEnterprisePolicyType::Managed,
                field,
                format!("browser-{i:03}"),
            )
        })
        .chain(session_policies.iter().enumerate().map(|(i, p)| {
            let field = format!("enterprisePolicies[{i}]");
            (
                p,
                BrowserEnterprisePolicyType::Recommended,
                field,
                format!("session-{i:03}"),
            )
        }));
    for (policy, default_type, field, name) in policies {
        let body = artifacts
            .fetch_bytes(object(&policy.location), MAX_POLICY_BYTES)
            .await
            .map_err(|e| ToolsError::Validation(format!("{field}.location: {e}")))?;
        let parsed: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| ToolsError::Validation(format!("{field}: not a JSON policy file: {e}")))?;
        if !parsed.is_object() {
            return Err(ToolsError::Validation(format!(
                "{field}: a policy file is a JSON object of policy names to values"
            )));
        }
        let dir = match policy.r#type.unwrap_or(default_type) {
            BrowserEnterprisePolicyType::Managed => "managed",
            BrowserEnterprisePolicyType::Recommended => "recommended",
        };
        out.mounts.push(Mount::File {
            inside: format!("{POLICIES_DIR}/{dir}/{name}.json").into(),
            contents: body,
            mode: 0o444,
        });
    }
    Ok(out)
}

fn object(location: &ResourceLocation) -> ObjectRef<'_> {
    let ResourceLocation::S3(s3) = location;
    ObjectRef {
        bucket: &s3.bucket,
        key: &s3.prefix,
        version_id: s3.version_id.as_deref(),
    }
}

/// The directory holding `manifest.json`: the tree itself or its only subdirectory (zips made
/// with `zip -r ext.zip my-extension/`).
fn extension_root(tree: &Path) -> Option<PathBuf> {
    if tree.join("manifest.json").is_file() {
        return Some(tree.to_owned());
    }
    let mut entries = std::fs::read_dir(tree).ok()?.filter_map(Result::ok);
    let only = entries.next()?;
    if entries.next().is_some() {
        return None;
    }
    let dir = only.path();
    dir.join("manifest.json").is_file().then_some(dir)
}

#[cfg(test)]
mod tests {
    #[test]
    fn extension_root_is_the_tree_or_its_single_folder() {
        let top = tempfile::tempdir().unwrap();
        std::fs::write(top.path().join("manifest.json"), "{}").unwrap();
        assert_eq!(super::extension_root(top.path()).unwrap(), top.path());

        let nested = tempfile::tempdir().unwrap();
        std::fs::create_dir(nested.path().join("ext")).unwrap();
        std::fs::write(nested.path().join("ext/manifest.json"), "{}").unwrap();
        assert_eq!(
            super::extension_root(nested.path()).unwrap(),
            nested.path().join("ext")
        );

        let none = tempfile::tempdir().unwrap();
        std::fs::create_dir(none.path().join("a")).unwrap();
        std::fs::create_dir(none.path().join("b")).unwrap();
        assert!(super::extension_root(none.path()).is_none());
    }
}
