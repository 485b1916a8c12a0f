"""Agent runtime endpoints: DEFAULT follows the latest version, custom endpoints pin one."""

from __future__ import annotations

import datetime
import re

from support import (
    container_artifact,
    create_ready_runtime,
    endpoint_arn,
    endpoint_names,
    expect_error,
    runtime_arn,
    status_of,
    uniq,
    wait_gone,
    wait_status,
    wait_until,
)

ENDPOINT_ID = re.compile(r"[a-zA-Z][a-zA-Z0-9_]{0,99}-[a-zA-Z0-9]{10}")


def new_version(client, rid: str, tag: str) -> str:
    resp = client.update_agent_runtime(
        agentRuntimeId=rid,
        agentRuntimeArtifact=container_artifact(tag),
        roleArn="arn:aws:iam::123456789012:role/AgentCoreRuntimeRole",
        networkConfiguration={"networkMode": "PUBLIC"},
    )
    wait_status(lambda: client.get_agent_runtime(agentRuntimeId=rid))
    return resp["agentRuntimeVersion"]


def get_ep(client, rid, name):
    return client.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName=name)


def ready_ep(client, rid, name):
    return wait_status(lambda: get_ep(client, rid, name))


def test_default_endpoint_exists_and_follows_latest(client):
    _req, resp = create_ready_runtime(client)
    rid = resp["agentRuntimeId"]
    ep = ready_ep(client, rid, "DEFAULT")
    assert ep["name"] == "DEFAULT"
    assert ep["agentRuntimeEndpointArn"] == endpoint_arn(rid, "DEFAULT")
    assert ep["agentRuntimeArn"] == runtime_arn(rid)
    assert ENDPOINT_ID.fullmatch(ep["id"]), ep["id"]
    assert ep["liveVersion"] == "1"
    assert ep.get("targetVersion", "1") == "1"
    assert isinstance(ep["createdAt"], datetime.datetime)
    assert ep["lastUpdatedAt"] >= ep["createdAt"]
    assert endpoint_names(client, rid) == ["DEFAULT"]

    for expected in ("2", "3"):
        v = new_version(client, rid, f"v{expected}")
        assert v == expected
        ep = wait_until(
            lambda: get_ep(client, rid, "DEFAULT"),
            lambda r: r["status"] == "READY" and r.get("liveVersion") == expected,
            what=f"DEFAULT live on {expected}",
        )
        assert ep["targetVersion"] == expected


def test_custom_endpoint_pins_version(client):
    _req, resp = create_ready_runtime(client)
    rid = resp["agentRuntimeId"]
    new_version(client, rid, "v2")  # latest is 2

    # omitted version -> the latest at creation time
    c = client.create_agent_runtime_endpoint(
        agentRuntimeId=rid, name="prod", description="Production", tags={"stage": "prod"}
    )
    assert status_of(c) == 202
    assert c["status"] == "CREATING"
    assert c["targetVersion"] == "2"
    assert c["agentRuntimeEndpointArn"] == endpoint_arn(rid, "prod")
    assert c["agentRuntimeArn"] == runtime_arn(rid)
    assert c.get("agentRuntimeId", rid) == rid
    assert c.get("endpointName", "prod") == "prod"
    assert isinstance(c["createdAt"], datetime.datetime)
    prod = ready_ep(client, rid, "prod")
    assert (prod["liveVersion"], prod["targetVersion"]) == ("2", "2")
    assert prod["description"] == "Production"
    assert prod["name"] == "prod"
    assert ENDPOINT_ID.fullmatch(prod["id"]), prod["id"]
    assert prod["id"] != get_ep(client, rid, "DEFAULT")["id"]

    # explicit old version
    c1 = client.create_agent_runtime_endpoint(agentRuntimeId=rid, name="legacy", agentRuntimeVersion="1")
    assert c1["targetVersion"] == "1"
    legacy = ready_ep(client, rid, "legacy")
    assert legacy["liveVersion"] == "1"

    # runtime update: DEFAULT moves, custom endpoints stay
    new_version(client, rid, "v3")
    wait_until(
        lambda: get_ep(client, rid, "DEFAULT"),
        lambda r: r["status"] == "READY" and r.get("liveVersion") == "3",
        what="DEFAULT live on 3",
    )
    prod = get_ep(client, rid, "prod")
    legacy = get_ep(client, rid, "legacy")
    assert (prod["liveVersion"], prod["targetVersion"]) == ("2", "2")
    assert (legacy["liveVersion"], legacy["targetVersion"]) == ("1", "1")

    listed = client.list_agent_runtime_endpoints(agentRuntimeId=rid)["runtimeEndpoints"]
    by_name = {e["name"]: e for e in listed}
    assert sorted(by_name) == ["DEFAULT", "legacy", "prod"]
    assert by_name["prod"]["agentRuntimeEndpointArn"] == endpoint_arn(rid, "prod")
    assert by_name["prod"]["liveVersion"] == "2"
    assert by_name["legacy"]["liveVersion"] == "1"
    assert by_name["DEFAULT"]["liveVersion"] == "3"
    for e in listed:
        assert e["agentRuntimeArn"] == runtime_arn(rid)
        assert ENDPOINT_ID.fullmatch(e["id"])
        assert e["status"] == "READY"


def test_update_endpoint_moves_version(client):
    _req, resp = create_ready_runtime(client)
    rid = resp["agentRuntimeId"]
    new_version(client, rid, "v2")
    client.create_agent_runtime_endpoint(agentRuntimeId=rid, name="canary", agentRuntimeVersion="1")
    ready_ep(client, rid, "canary")

    u = client.update_agent_runtime_endpoint(
        agentRuntimeId=rid, endpointName="canary", agentRuntimeVersion="2", description="moved"
    )
    assert status_of(u) == 202
    assert u["status"] == "UPDATING"
    assert u["targetVersion"] == "2"
    assert u["agentRuntimeEndpointArn"] == endpoint_arn(rid, "canary")
    assert u["agentRuntimeArn"] == runtime_arn(rid)
    assert u.get("liveVersion", "1") == "1"
    ep = wait_until(
        lambda: get_ep(client, rid, "canary"),
        lambda r: r["status"] == "READY",
        what="canary READY",
    )
    assert (ep["liveVersion"], ep["targetVersion"]) == ("2", "2")
    assert ep["description"] == "moved"
    assert ep["lastUpdatedAt"] >= ep["createdAt"]

    # and back to 1
    client.update_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="canary", agentRuntimeVersion="1")
    ep = wait_until(
        lambda: get_ep(client, rid, "canary"),
        lambda r: r["status"] == "READY" and r.get("liveVersion") == "1",
        what="canary back on 1",
    )
    assert ep["targetVersion"] == "1"


def test_unknown_version_on_endpoint_create_and_update(client):
    _req, resp = create_ready_runtime(client)
    rid = resp["agentRuntimeId"]
    expect_error(
        client.create_agent_runtime_endpoint, "ResourceNotFoundException", 404,
        agentRuntimeId=rid, name="future", agentRuntimeVersion="7",
    )  # fmt: skip
    assert endpoint_names(client, rid) == ["DEFAULT"]
    client.create_agent_runtime_endpoint(agentRuntimeId=rid, name="live")
    ready_ep(client, rid, "live")
    expect_error(
        client.update_agent_runtime_endpoint, "ResourceNotFoundException", 404,
        agentRuntimeId=rid, endpointName="live", agentRuntimeVersion="7",
    )  # fmt: skip
    ep = get_ep(client, rid, "live")
    assert (ep["liveVersion"], ep["targetVersion"]) == ("1", "1")


def test_duplicate_endpoint_name_conflict(client):
    _req, a = create_ready_runtime(client)
    _req, b = create_ready_runtime(client)
    ra, rb = a["agentRuntimeId"], b["agentRuntimeId"]
    client.create_agent_runtime_endpoint(agentRuntimeId=ra, name="shared")
    expect_error(
        client.create_agent_runtime_endpoint, "ConflictException", 409,
        agentRuntimeId=ra, name="shared",
    )  # fmt: skip
    expect_error(
        client.create_agent_runtime_endpoint, "ConflictException", 409,
        agentRuntimeId=ra, name="DEFAULT",
    )  # fmt: skip
    # the same name on another runtime is fine
    other = client.create_agent_runtime_endpoint(agentRuntimeId=rb, name="shared")
    assert other["agentRuntimeEndpointArn"] == endpoint_arn(rb, "shared")
    assert sorted(endpoint_names(client, ra)) == ["DEFAULT", "shared"]


def test_default_endpoint_cannot_be_deleted(client):
    _req, resp = create_ready_runtime(client)
    rid = resp["agentRuntimeId"]
    expect_error(
        client.delete_agent_runtime_endpoint, "ConflictException", 409,
        agentRuntimeId=rid, endpointName="DEFAULT",
    )  # fmt: skip
    assert ready_ep(client, rid, "DEFAULT")["liveVersion"] == "1"


def test_delete_custom_endpoint(client):
    _req, resp = create_ready_runtime(client)
    rid = resp["agentRuntimeId"]
    client.create_agent_runtime_endpoint(agentRuntimeId=rid, name="temp", tags={"x": "y"})
    ready_ep(client, rid, "temp")
    d = client.delete_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="temp")
    assert status_of(d) == 202
    assert d["status"] == "DELETING"
    assert d.get("agentRuntimeId", rid) == rid
    assert d.get("endpointName", "temp") == "temp"
    wait_gone(lambda: get_ep(client, rid, "temp"))
    assert endpoint_names(client, rid) == ["DEFAULT"]
    expect_error(
        client.list_tags_for_resource, "ResourceNotFoundException", 404,
        resourceArn=endpoint_arn(rid, "temp"),
    )  # fmt: skip
    expect_error(
        client.delete_agent_runtime_endpoint, "ResourceNotFoundException", 404,
        agentRuntimeId=rid, endpointName="temp",
    )  # fmt: skip
    # the name can be used again
    again = client.create_agent_runtime_endpoint(agentRuntimeId=rid, name="temp")
    assert again["targetVersion"] == "1"


def test_version_in_use_cannot_be_deleted(client):
    _req, resp = create_ready_runtime(client)
    rid = resp["agentRuntimeId"]
    new_version(client, rid, "v2")
    new_version(client, rid, "v3")
    client.create_agent_runtime_endpoint(agentRuntimeId=rid, name="old", agentRuntimeVersion="1")
    ready_ep(client, rid, "old")
    # 1 is live on "old", 3 on DEFAULT
    for v in ("1", "3"):
        expect_error(
            client.delete_agent_runtime, "ConflictException", 409,
            agentRuntimeId=rid, agentRuntimeVersion=v,
        )  # fmt: skip
    # move "old" to 2: now 2 is in use (target/live) and 1 is free
    client.update_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="old", agentRuntimeVersion="2")
    wait_until(
        lambda: get_ep(client, rid, "old"),
        lambda r: r["status"] == "READY" and r.get("liveVersion") == "2",
        what="old on 2",
    )
    expect_error(
        client.delete_agent_runtime, "ConflictException", 409,
        agentRuntimeId=rid, agentRuntimeVersion="2",
    )  # fmt: skip
    d = client.delete_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="1")
    assert d["status"] == "DELETING"
    wait_gone(lambda: client.get_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="1"))
    # an endpoint can no longer be pointed at the deleted version
    expect_error(
        client.update_agent_runtime_endpoint, "ResourceNotFoundException", 404,
        agentRuntimeId=rid, endpointName="old", agentRuntimeVersion="1",
    )  # fmt: skip


def test_target_version_in_use_while_updating(client):
    """A version an endpoint is moving to (targetVersion) counts as used."""
    _req, resp = create_ready_runtime(client)
    rid = resp["agentRuntimeId"]
    new_version(client, rid, "v2")
    new_version(client, rid, "v3")
    client.create_agent_runtime_endpoint(agentRuntimeId=rid, name="mover", agentRuntimeVersion="1")
    ready_ep(client, rid, "mover")
    u = client.update_agent_runtime_endpoint(
        agentRuntimeId=rid, endpointName="mover", agentRuntimeVersion="2"
    )
    assert u["targetVersion"] == "2"
    # immediately: 2 is the target (perhaps not live yet) -> in use
    expect_error(
        client.delete_agent_runtime, "ConflictException", 409,
        agentRuntimeId=rid, agentRuntimeVersion="2",
    )  # fmt: skip


def test_endpoints_of_unknown_runtime(client):
    ghost = "ghost_runtime-AAAAAAAAAA"
    expect_error(
        client.get_agent_runtime_endpoint, "ResourceNotFoundException", 404,
        agentRuntimeId=ghost, endpointName="DEFAULT",
    )  # fmt: skip
    expect_error(
        client.create_agent_runtime_endpoint, "ResourceNotFoundException", 404,
        agentRuntimeId=ghost, name="x",
    )  # fmt: skip
    expect_error(
        client.update_agent_runtime_endpoint, "ResourceNotFoundException", 404,
        agentRuntimeId=ghost, endpointName="x", agentRuntimeVersion="1",
    )  # fmt: skip
    expect_error(
        client.delete_agent_runtime_endpoint, "ResourceNotFoundException", 404,
        agentRuntimeId=ghost, endpointName="x",
    )  # fmt: skip
    _req, resp = create_ready_runtime(client)
    expect_error(
        client.get_agent_runtime_endpoint, "ResourceNotFoundException", 404,
        agentRuntimeId=resp["agentRuntimeId"], endpointName=uniq("nothere"),
    )  # fmt: skip
