"""The AWS CLI (`aws bedrock-agentcore-control ... --endpoint-url`) against Hangar."""

from __future__ import annotations

import json

from support import (
    BROWSER_BUILTIN,
    CODE_INTERPRETER_BUILTIN,
    ROLE_ARN,
    assert_id,
    container_artifact,
    jwt_authorizer,
    run_aws,
    runtime_arn,
    uniq,
    wait_status,
    wait_until,
    workload_identity_arn,
)


def test_cli_runtime_lifecycle(url, client, tmp_path):
    name = uniq("cli")
    artifact = container_artifact("cli1")
    created = run_aws(url, [
        "create-agent-runtime",
        "--agent-runtime-name", name,
        "--agent-runtime-artifact", json.dumps(artifact),
        "--role-arn", ROLE_ARN,
        "--network-configuration", "networkMode=PUBLIC",
        "--protocol-configuration", "serverProtocol=MCP",
        "--authorizer-configuration", json.dumps(jwt_authorizer()),
        "--environment-variables", "LOG_LEVEL=debug,MODE=cli",
        "--description", "created by the AWS CLI",
        "--tags", "team=cli,env=e2e",
    ], tmp_path)  # fmt: skip
    rid = created["agentRuntimeId"]
    assert_id(rid, name)
    assert created["status"] == "CREATING"
    assert created["agentRuntimeArn"] == runtime_arn(rid)
    assert created["agentRuntimeVersion"] == "1"
    assert created["workloadIdentityDetails"]["workloadIdentityArn"] == workload_identity_arn(rid)

    wait_status(lambda: client.get_agent_runtime(agentRuntimeId=rid))
    got = run_aws(url, ["get-agent-runtime", "--agent-runtime-id", rid], tmp_path)
    assert got["status"] == "READY"
    assert got["agentRuntimeName"] == name
    assert got["agentRuntimeArtifact"] == artifact
    assert got["environmentVariables"] == {"LOG_LEVEL": "debug", "MODE": "cli"}
    assert got["protocolConfiguration"] == {"serverProtocol": "MCP"}
    assert got["authorizerConfiguration"] == jwt_authorizer()
    assert got["description"] == "created by the AWS CLI"

    # the CLI follows nextToken by itself: our runtime appears exactly once
    listed = run_aws(url, ["list-agent-runtimes", "--page-size", "2"], tmp_path)
    ids = [r["agentRuntimeId"] for r in listed["agentRuntimes"]]
    assert ids.count(rid) == 1
    assert len(ids) == len(set(ids))

    updated = run_aws(url, [
        "update-agent-runtime",
        "--agent-runtime-id", rid,
        "--agent-runtime-artifact", json.dumps(container_artifact("cli2")),
        "--role-arn", ROLE_ARN,
        "--network-configuration", "networkMode=PUBLIC",
    ], tmp_path)  # fmt: skip
    assert updated["agentRuntimeVersion"] == "2"
    assert updated["status"] == "UPDATING"
    wait_status(lambda: client.get_agent_runtime(agentRuntimeId=rid))
    v1 = run_aws(
        url, ["get-agent-runtime", "--agent-runtime-id", rid, "--agent-runtime-version", "1"],
        tmp_path,
    )  # fmt: skip
    assert v1["agentRuntimeArtifact"] == artifact
    versions = run_aws(url, ["list-agent-runtime-versions", "--agent-runtime-id", rid], tmp_path)
    assert sorted(v["agentRuntimeVersion"] for v in versions["agentRuntimes"]) == ["1", "2"]
    endpoints = run_aws(url, ["list-agent-runtime-endpoints", "--agent-runtime-id", rid], tmp_path)
    assert [e["name"] for e in endpoints["runtimeEndpoints"]] == ["DEFAULT"]

    # tags
    arn = runtime_arn(rid)
    tags = run_aws(url, ["list-tags-for-resource", "--resource-arn", arn], tmp_path)
    assert tags["tags"] == {"team": "cli", "env": "e2e"}
    run_aws(url, ["tag-resource", "--resource-arn", arn, "--tags", "owner=bob,env=prod"], tmp_path)
    run_aws(url, ["untag-resource", "--resource-arn", arn, "--tag-keys", "team", "owner"], tmp_path)
    tags = run_aws(url, ["list-tags-for-resource", "--resource-arn", arn], tmp_path)
    assert tags["tags"] == {"env": "prod"}

    deleted = run_aws(url, ["delete-agent-runtime", "--agent-runtime-id", rid], tmp_path)
    assert deleted["status"] == "DELETING"
    wait_until(
        lambda: run_aws(url, ["get-agent-runtime", "--agent-runtime-id", rid], tmp_path, check=False),
        lambda p: p.returncode != 0,
        what="runtime gone",
    )
    proc = run_aws(url, ["get-agent-runtime", "--agent-runtime-id", rid], tmp_path, check=False)
    assert proc.returncode in (254, 255), proc  # v1: 255, v2: 254
    assert "ResourceNotFoundException" in proc.stderr


def test_cli_browsers_and_code_interpreters(url, tmp_path):
    system = run_aws(url, ["list-browsers", "--type", "SYSTEM"], tmp_path)
    assert [b["browserId"] for b in system["browserSummaries"]] == [BROWSER_BUILTIN]
    assert system["browserSummaries"][0]["status"] == "READY"
    cis = run_aws(url, ["list-code-interpreters", "--type", "SYSTEM"], tmp_path)
    assert [c["codeInterpreterId"] for c in cis["codeInterpreterSummaries"]] == [
        CODE_INTERPRETER_BUILTIN
    ]

    name = uniq("clib")
    created = run_aws(url, [
        "create-browser", "--name", name,
        "--network-configuration", "networkMode=PUBLIC",
        "--tags", "team=cli",
    ], tmp_path)  # fmt: skip
    bid = created["browserId"]
    assert_id(bid, name)
    custom = run_aws(url, ["list-browsers", "--type", "CUSTOM"], tmp_path)
    assert bid in [b["browserId"] for b in custom["browserSummaries"]]
    got = run_aws(url, ["get-browser", "--browser-id", bid], tmp_path)
    assert got["name"] == name
    deleted = run_aws(url, ["delete-browser", "--browser-id", bid], tmp_path)
    assert deleted["status"] == "DELETING"


def test_cli_validation_error_is_reported(url, tmp_path):
    proc = run_aws(url, [
        "create-agent-runtime",
        "--agent-runtime-name", "not-valid",
        "--agent-runtime-artifact", json.dumps(container_artifact()),
        "--role-arn", ROLE_ARN,
        "--network-configuration", "networkMode=PUBLIC",
    ], tmp_path, check=False)  # fmt: skip
    assert proc.returncode in (254, 255), proc  # v1: 255, v2: 254
    assert "ValidationException" in proc.stderr
    assert "agentRuntimeName" in proc.stderr
