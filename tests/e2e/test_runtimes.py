"""Agent runtimes: create/get/update/delete/list, versions, status transitions, ids and ARNs."""

from __future__ import annotations

import datetime

import pytest

from support import (
    RUNTIME_CONFIG_MEMBERS,
    assert_id,
    assert_runtime_config,
    container_artifact,
    create_ready_runtime,
    create_runtime,
    endpoint_names,
    expect_error,
    runtime_arn,
    runtime_ids,
    runtime_request,
    status_of,
    uniq,
    update_request,
    update_runtime_ready,
    version_ids,
    wait_gone,
    wait_status,
    workload_identity_arn,
)

GHOST = "ghost_runtime-AAAAAAAAAA"


@pytest.mark.parametrize("variant", ["code", "container", "mcp_extras", "a2a_capacity", "minimal"])
def test_create_get_roundtrip(client, variant):
    name = uniq(f"rt_{variant}")
    req = runtime_request(name, variant, tags={"team": "e2e"})
    resp = client.create_agent_runtime(**req)
    assert status_of(resp) == 202
    assert resp["status"] == "CREATING"
    rid = resp["agentRuntimeId"]
    assert_id(rid, name)
    assert resp["agentRuntimeArn"] == runtime_arn(rid)
    assert resp["agentRuntimeVersion"] == "1"
    assert resp["workloadIdentityDetails"]["workloadIdentityArn"] == workload_identity_arn(rid)
    assert isinstance(resp["createdAt"], datetime.datetime)
    assert resp["createdAt"].tzinfo is not None
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - resp["createdAt"]).total_seconds()) < 120

    got = wait_status(lambda: client.get_agent_runtime(agentRuntimeId=rid))
    assert status_of(got) == 200
    assert got["agentRuntimeId"] == rid
    assert got["agentRuntimeName"] == name
    assert got["agentRuntimeArn"] == runtime_arn(rid)
    assert got["agentRuntimeVersion"] == "1"
    assert got["workloadIdentityDetails"]["workloadIdentityArn"] == workload_identity_arn(rid)
    assert got["createdAt"] == resp["createdAt"]
    assert got["lastUpdatedAt"] >= got["createdAt"]
    assert "failureReason" not in got
    assert "tags" not in got
    assert_runtime_config(got, req)


def test_minimal_runtime_has_lifecycle_defaults(client):
    _req, resp = create_ready_runtime(client)
    got = client.get_agent_runtime(agentRuntimeId=resp["agentRuntimeId"])
    lc = got["lifecycleConfiguration"]
    assert isinstance(lc, dict)
    for k in ("idleRuntimeSessionTimeout", "maxLifetime"):
        if k in lc:
            assert 60 <= lc[k] <= 1209600


def test_get_status_creating_then_ready(client):
    """The Create answer says CREATING and the resource reaches READY (it never fails)."""
    _req, resp = create_runtime(client, variant="code")
    assert resp["status"] == "CREATING"
    seen = set()

    def get():
        r = client.get_agent_runtime(agentRuntimeId=resp["agentRuntimeId"])
        seen.add(r["status"])
        return r

    wait_status(get)
    assert seen <= {"CREATING", "READY"}, seen


def test_duplicate_name_conflict(client):
    req, resp = create_runtime(client)
    e = expect_error(
        client.create_agent_runtime,
        "ConflictException",
        409,
        **runtime_request(req["agentRuntimeName"], "code"),
    )
    assert e.response["Error"]["Message"]
    named = [r for r in runtime_ids(client) if r.startswith(req["agentRuntimeName"] + "-")]
    assert named == [resp["agentRuntimeId"]]


def test_update_creates_new_version_with_full_replacement(client):
    name = uniq("rt_upd")
    req1 = runtime_request(name, "code", tags={"team": "e2e"})
    rid = client.create_agent_runtime(**req1)["agentRuntimeId"]
    wait_status(lambda: client.get_agent_runtime(agentRuntimeId=rid))
    before = client.get_agent_runtime(agentRuntimeId=rid)

    req2 = runtime_request(name, "container")
    req2["metadataConfiguration"] = {"requireMMDSV2": True}
    upd = client.update_agent_runtime(agentRuntimeId=rid, **update_request(req2))
    assert status_of(upd) == 202
    assert upd["status"] == "UPDATING"
    assert upd["agentRuntimeId"] == rid
    assert upd["agentRuntimeArn"] == runtime_arn(rid)
    assert upd["agentRuntimeVersion"] == "2"
    assert upd["workloadIdentityDetails"]["workloadIdentityArn"] == workload_identity_arn(rid)
    assert upd["createdAt"] == before["createdAt"]
    assert upd["lastUpdatedAt"] >= before["lastUpdatedAt"]

    got = wait_status(lambda: client.get_agent_runtime(agentRuntimeId=rid))
    assert got["agentRuntimeVersion"] == "2"
    assert got["agentRuntimeName"] == name
    # full replacement: members only version 1 had are gone, version 2's are there
    assert "authorizerConfiguration" not in got
    assert "requestHeaderConfiguration" not in got
    assert got["environmentVariables"] == {"EMPTY_OK": "", "REGION": "us-east-1"}
    assert got["metadataConfiguration"] == {"requireMMDSV2": True}
    assert_runtime_config(got, req2)

    # version 1 is immutable and still readable
    v1 = client.get_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="1")
    assert v1["agentRuntimeVersion"] == "1"
    assert_runtime_config(v1, req1)
    v2 = client.get_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="2")
    assert_runtime_config(v2, req2)

    # third update with the minimal config
    req3 = runtime_request(name, "minimal")
    upd3 = client.update_agent_runtime(agentRuntimeId=rid, **update_request(req3))
    assert upd3["agentRuntimeVersion"] == "3"
    got3 = wait_status(lambda: client.get_agent_runtime(agentRuntimeId=rid))
    assert got3["agentRuntimeVersion"] == "3"
    for m in ("description", "environmentVariables", "metadataConfiguration",
              "filesystemConfigurations", "protocolConfiguration"):  # fmt: skip
        assert m not in got3, f"{m} survived a full replacement: {got3.get(m)!r}"
    assert_runtime_config(client.get_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="1"), req1)
    assert_runtime_config(client.get_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="2"), req2)

    versions = client.list_agent_runtime_versions(agentRuntimeId=rid)["agentRuntimes"]
    assert sorted(v["agentRuntimeVersion"] for v in versions) == ["1", "2", "3"]
    for v in versions:
        assert v["agentRuntimeId"] == rid
        assert v["agentRuntimeArn"] == runtime_arn(rid)
        assert v["agentRuntimeName"] == name
        assert v["status"] in ("READY", "UPDATING", "CREATING")
        assert isinstance(v["lastUpdatedAt"], datetime.datetime)


def test_get_version_unknown_is_404(client):
    _req, resp = create_ready_runtime(client)
    rid = resp["agentRuntimeId"]
    for v in ("2", "99", "99999"):
        expect_error(
            client.get_agent_runtime,
            "ResourceNotFoundException",
            404,
            agentRuntimeId=rid,
            agentRuntimeVersion=v,
        )


def test_list_runtimes_shows_latest_version(client):
    req, resp = create_ready_runtime(client, variant="code")
    rid = resp["agentRuntimeId"]
    update_runtime_ready(client, rid, runtime_request(req["agentRuntimeName"], "container"))
    items = []
    token = None
    while True:
        page = client.list_agent_runtimes(maxResults=100, **({"nextToken": token} if token else {}))
        items += page["agentRuntimes"]
        token = page.get("nextToken")
        if not token:
            break
    mine = [r for r in items if r["agentRuntimeId"] == rid]
    assert len(mine) == 1
    r = mine[0]
    assert r["agentRuntimeArn"] == runtime_arn(rid)
    assert r["agentRuntimeName"] == req["agentRuntimeName"]
    assert r["agentRuntimeVersion"] == "2"
    assert r["status"] == "READY"
    assert r["description"] == "AG-UI agent in a VPC"
    assert isinstance(r["lastUpdatedAt"], datetime.datetime)


def test_delete_runtime(client):
    req, resp = create_ready_runtime(client, variant="code", tags={"a": "b"})
    rid = resp["agentRuntimeId"]
    update_runtime_ready(client, rid, runtime_request(req["agentRuntimeName"], "minimal"))
    client.create_agent_runtime_endpoint(agentRuntimeId=rid, name="pinned", agentRuntimeVersion="1")
    wait_status(lambda: client.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="pinned"))

    d = client.delete_agent_runtime(agentRuntimeId=rid)
    assert status_of(d) == 202
    assert d["status"] == "DELETING"
    assert d.get("agentRuntimeId", rid) == rid
    wait_gone(lambda: client.get_agent_runtime(agentRuntimeId=rid))
    assert rid not in runtime_ids(client)
    # its versions, endpoints and tags went with it
    for v in ("1", "2"):
        expect_error(
            client.get_agent_runtime, "ResourceNotFoundException", 404,
            agentRuntimeId=rid, agentRuntimeVersion=v,
        )  # fmt: skip
    for ep in ("DEFAULT", "pinned"):
        expect_error(
            client.get_agent_runtime_endpoint, "ResourceNotFoundException", 404,
            agentRuntimeId=rid, endpointName=ep,
        )  # fmt: skip
    expect_error(
        client.list_agent_runtime_versions, "ResourceNotFoundException", 404, agentRuntimeId=rid
    )
    expect_error(
        client.list_tags_for_resource, "ResourceNotFoundException", 404,
        resourceArn=runtime_arn(rid),
    )  # fmt: skip
    # and a second delete is a 404
    expect_error(client.delete_agent_runtime, "ResourceNotFoundException", 404, agentRuntimeId=rid)


def test_name_reusable_after_delete(client):
    req, resp = create_ready_runtime(client)
    rid = resp["agentRuntimeId"]
    client.delete_agent_runtime(agentRuntimeId=rid)
    wait_gone(lambda: client.get_agent_runtime(agentRuntimeId=rid))
    again = client.create_agent_runtime(**runtime_request(req["agentRuntimeName"], "minimal"))
    assert again["agentRuntimeId"] != rid
    assert_id(again["agentRuntimeId"], req["agentRuntimeName"])
    assert again["agentRuntimeVersion"] == "1"


def test_delete_single_version(client):
    req, resp = create_ready_runtime(client, variant="code")
    rid = resp["agentRuntimeId"]
    name = req["agentRuntimeName"]
    update_runtime_ready(client, rid, runtime_request(name, "container"))  # v2
    update_runtime_ready(client, rid, runtime_request(name, "minimal"))  # v3
    assert sorted(version_ids(client, rid)) == ["1", "2", "3"]

    # version 2 is pinned by a custom endpoint; version 3 is DEFAULT's
    client.create_agent_runtime_endpoint(agentRuntimeId=rid, name="pin2", agentRuntimeVersion="2")
    wait_status(lambda: client.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="pin2"))
    for v in ("2", "3"):
        expect_error(
            client.delete_agent_runtime, "ConflictException", 409,
            agentRuntimeId=rid, agentRuntimeVersion=v,
        )  # fmt: skip

    d = client.delete_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="1")
    assert status_of(d) == 202
    assert d["status"] == "DELETING"
    assert d.get("agentRuntimeVersion") == "1"
    wait_gone(lambda: client.get_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="1"))
    assert sorted(version_ids(client, rid)) == ["2", "3"]
    # the runtime itself is untouched
    got = client.get_agent_runtime(agentRuntimeId=rid)
    assert got["agentRuntimeVersion"] == "3"
    assert got["status"] == "READY"
    assert sorted(endpoint_names(client, rid)) == ["DEFAULT", "pin2"]
    expect_error(
        client.delete_agent_runtime, "ResourceNotFoundException", 404,
        agentRuntimeId=rid, agentRuntimeVersion="1",
    )  # fmt: skip
    # next update still makes version 4 (numbers are not reused)
    upd = client.update_agent_runtime(
        agentRuntimeId=rid, agentRuntimeArtifact=container_artifact("v4"), roleArn=req["roleArn"]
    )
    assert upd["agentRuntimeVersion"] == "4"


def test_unknown_runtime_is_404(client):
    expect_error(client.get_agent_runtime, "ResourceNotFoundException", 404, agentRuntimeId=GHOST)
    expect_error(
        client.update_agent_runtime, "ResourceNotFoundException", 404, agentRuntimeId=GHOST,
        **update_request(runtime_request("x", "minimal")),
    )  # fmt: skip
    expect_error(client.delete_agent_runtime, "ResourceNotFoundException", 404, agentRuntimeId=GHOST)
    expect_error(
        client.list_agent_runtime_versions, "ResourceNotFoundException", 404, agentRuntimeId=GHOST
    )


def test_config_members_constant_matches_model():
    """RUNTIME_CONFIG_MEMBERS covers every configuration member of UpdateAgentRuntime."""
    import model_cases as mc

    members = set(mc.shape("UpdateAgentRuntimeRequest")["members"])
    assert members - {"agentRuntimeId", "clientToken"} == set(RUNTIME_CONFIG_MEMBERS)


def test_unpulled_container_is_ready_but_invoking_it_says_why(server, client):
    """The control-plane tests' server runs with `--container-images accept`: a container
    artifact goes READY without a pull, and an invocation answers 424 naming the flag."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    _, resp = create_ready_runtime(client, variant="container")
    dp = boto3.session.Session().client(
        "bedrock-agentcore",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as err:
        dp.invoke_agent_runtime(
            agentRuntimeArn=resp["agentRuntimeArn"],
            runtimeSessionId="s" * 40,
            payload=b"{}",
        )
    e = err.value.response
    assert e["ResponseMetadata"]["HTTPStatusCode"] == 424, e
    assert e["Error"]["Code"] == "RuntimeClientError", e
    assert "--container-images" in e["Error"]["Message"], e
