//! How a runtime version's session is started: the sandbox spec AgentCore's container contract
//! implies.

use std::path::PathBuf;

use hangar_artifacts::{PreparedCode, SANDBOX_CODE_DIR};
use hangar_domain::records::RuntimeVersionRecord;
use hangar_oci::PreparedImage;
use hangar_sandbox::{Limits, Mount, NetworkMode, SandboxSpec};
use serde_json::Value;

use crate::provisioner::Artifact;

/// `protocolConfiguration.serverProtocol`: what the agent speaks on its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Mcp,
    A2a,
    Agui,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Mcp => "MCP",
            Protocol::A2a => "A2A",
            Protocol::Agui => "AGUI",
        }
    }

    /// Only HTTP and AG-UI agents serve `/ws` (contract §A.1).
    pub fn has_websocket(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Agui)
    }
}

/// The port and path the agent serves invocations on, per protocol (contract §A.1), with the
/// runtime's `protocolConfiguration` overrides.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub protocol: Protocol,
    pub port: u16,
    pub path: String,
}

pub(crate) fn endpoint(version: &RuntimeVersionRecord) -> Endpoint {
    let protocol_config = version.config.get("protocolConfiguration");
    let protocol = protocol_config
        .and_then(|p| p.get("serverProtocol"))
        .and_then(Value::as_str)
        .unwrap_or("HTTP");
    let (protocol, default_port, default_path) = match protocol {
        "MCP" => (Protocol::Mcp, 8000, "/mcp"),
        "A2A" => (Protocol::A2a, 9000, "/"),
        "AGUI" => (Protocol::Agui, 8080, "/invocations"),
        _ => (Protocol::Http, 8080, "/invocations"),
    };
    Endpoint {
        protocol,
        port: protocol_config
            .and_then(|p| p.get("port"))
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(default_port),
        path: protocol_config
            .and_then(|p| p.get("path"))
            .and_then(Value::as_str)
            .unwrap_or(default_path)
            .to_owned(),
    }
}

pub(crate) struct LaunchContext<'a> {
    pub session_id: &'a str,
    pub region: &'a str,
    pub endpoint_arn: &'a str,
    pub invocation_url: String,
    pub limits: Limits,
}

/// The sandbox for one session of a code-artifact version: the unpacked code read-only at
/// `/var/task` (the working directory), the interpreter's directories read-only, a private
/// `/tmp`, the runtime's environment plus what AgentCore injects.
pub(crate) fn code_session_spec(
    version: &RuntimeVersionRecord,
    code: &PreparedCode,
    ctx: &LaunchContext<'_>,
) -> SandboxSpec {
    let mut spec = SandboxSpec::new(ctx.session_id, &code.argv[0]);
    spec.args = code.argv[1..].to_vec();
    spec.cwd = PathBuf::from(SANDBOX_CODE_DIR);
    for dir in &code.interpreter_mounts {
        // The host system directories are already there; other prefixes (e.g. /opt/python)
        // are added read-only at the same path.
        if !dir.starts_with("/usr") {
            spec.mounts.push(Mount::ReadOnly {
                host: dir.clone(),
                inside: dir.clone(),
            });
        }
    }
    spec.mounts.push(Mount::ReadOnly {
        host: code.code_dir.clone(),
        inside: PathBuf::from(SANDBOX_CODE_DIR),
    });
    spec.env.extend(code.env.iter().cloned());
    spec.env
        .push(("PYTHONUNBUFFERED".to_owned(), "1".to_owned()));
    runtime_contract(&mut spec, version, ctx);
    spec
}

/// The sandbox of one session, for either kind of artifact. Err: why the image cannot start
/// (the invocation's `RuntimeClientError`).
pub(crate) fn session_spec(
    version: &RuntimeVersionRecord,
    artifact: &Artifact,
    ctx: &LaunchContext<'_>,
) -> Result<SandboxSpec, String> {
    match artifact {
        Artifact::Code(code) => Ok(code_session_spec(version, code, ctx)),
        Artifact::Container(image) => container_session_spec(version, image, ctx),
    }
}

/// The sandbox for one session of a container version: the unpacked image read-only as `/`
/// (nothing of the host's file system), its Entrypoint + Cmd in its WorkingDir as its User
/// (inside the user namespace; on the host the session's own unprivileged uid), its Env, then
/// what AgentCore injects and the runtime's environment variables.
pub(crate) fn container_session_spec(
    version: &RuntimeVersionRecord,
    image: &PreparedImage,
    ctx: &LaunchContext<'_>,
) -> Result<SandboxSpec, String> {
    let plan = hangar_oci::plan_run(image).map_err(|e| e.to_string())?;
    let mut spec = SandboxSpec::new(ctx.session_id, &plan.program);
    spec.mounts.clear();
    spec.root = Some(image.root.clone());
    spec.args = plan.args;
    spec.cwd = PathBuf::from(&plan.cwd);
    spec.env = plan.env;
    spec.inside_ids = Some((plan.uid, plan.gid));
    if let Some(emulation) = image.emulation.as_ref().filter(|e| e.needs_mount) {
        spec.mounts.push(Mount::ReadOnly {
            host: emulation.interpreter.clone(),
            inside: emulation.interpreter.clone(),
        });
    }
    runtime_contract(&mut spec, version, ctx);
    Ok(spec)
}

/// What every session gets whatever its artifact: AgentCore's injected variables, then the
/// runtime's own (which win), the network mode, the limits.
fn runtime_contract(
    spec: &mut SandboxSpec,
    version: &RuntimeVersionRecord,
    ctx: &LaunchContext<'_>,
) {
    let injected = [
        ("AWS_REGION".to_owned(), ctx.region.to_owned()),
        ("AWS_DEFAULT_REGION".to_owned(), ctx.region.to_owned()),
        (
            "OTEL_RESOURCE_ATTRIBUTES".to_owned(),
            format!(
                "cloud.resource_id={},service.name={}",
                ctx.endpoint_arn, version.runtime_name
            ),
        ),
        (
            "AGENTCORE_RUNTIME_URL".to_owned(),
            ctx.invocation_url.clone(),
        ),
    ];
    for (k, v) in injected {
        spec.env.retain(|(name, _)| *name != k);
        spec.env.push((k, v));
    }
    // The runtime's own variables come last so they win, as in AgentCore.
    if let Some(Value::Object(vars)) = version.config.get("environmentVariables") {
        for (k, v) in vars {
            if let Some(v) = v.as_str() {
                spec.env.retain(|(name, _)| name != k);
                spec.env.push((k.clone(), v.to_owned()));
            }
        }
    }
    spec.network = match version
        .config
        .get("networkConfiguration")
        .and_then(|n| n.get("networkMode"))
        .and_then(Value::as_str)
    {
        // VPC on a single host means: the host's network.
        Some("PUBLIC") | Some("VPC") | None => NetworkMode::Public {
            host_loopback: true,
        },
        Some(_) => NetworkMode::None,
    };
    spec.limits = ctx.limits;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(config: Value) -> RuntimeVersionRecord {
        RuntimeVersionRecord {
            runtime_id: "r-0123456789".into(),
            runtime_name: "r".into(),
            runtime_arn: "arn".into(),
            version: 1,
            status: hangar_domain::records::Status::Ready,
            failure_reason: None,
            created_at: hangar_model::Timestamp::now(),
            last_updated_at: hangar_model::Timestamp::now(),
            config: match config {
                Value::Object(map) => map,
                _ => unreachable!(),
            },
        }
    }

    #[test]
    fn each_protocol_has_its_contract_port_and_path_unless_overridden() {
        let cases = [
            (None, Protocol::Http, 8080, "/invocations"),
            (Some("HTTP"), Protocol::Http, 8080, "/invocations"),
            (Some("MCP"), Protocol::Mcp, 8000, "/mcp"),
            (Some("A2A"), Protocol::A2a, 9000, "/"),
            (Some("AGUI"), Protocol::Agui, 8080, "/invocations"),
        ];
        for (name, protocol, port, path) in cases {
            let config = match name {
                Some(n) => serde_json::json!({"protocolConfiguration": {"serverProtocol": n}}),
                None => serde_json::json!({}),
            };
            let e = endpoint(&version(config));
            assert_eq!(
                (e.protocol, e.port, e.path.as_str()),
                (protocol, port, path)
            );
        }
        let e = endpoint(&version(serde_json::json!({"protocolConfiguration": {
            "serverProtocol": "MCP", "port": 9100, "path": "/custom/mcp"}})));
        assert_eq!(
            (e.protocol, e.port, e.path.as_str()),
            (Protocol::Mcp, 9100, "/custom/mcp")
        );
    }
}
