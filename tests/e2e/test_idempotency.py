"""clientToken idempotency for Create*, Update* and Delete*."""

from __future__ import annotations

import pytest

from support import (
    browser_ids,
    browser_request,
    client_token,
    code_interpreter_ids,
    code_interpreter_request,
    container_artifact,
    create_ready_runtime,
    endpoint_names,
    expect_error,
    profile_ids,
    runtime_ids,
    runtime_request,
    strip_meta,
    uniq,
    update_request,
    version_ids,
    wait_gone,
    wait_status,
)


def mismatch(fn, **kw):
    e = expect_error(fn, "ValidationException", 400, **kw)
    assert e.response.get("reason") == "IdempotentParameterMismatchException", e.response
    return e


def test_create_runtime_same_token_same_answer(client):
    token = client_token()
    req = runtime_request(uniq("idem"), "code", tags={"a": "b"})
    first = client.create_agent_runtime(clientToken=token, **req)
    second = client.create_agent_runtime(clientToken=token, **req)
    assert strip_meta(second) == strip_meta(first)
    rid = first["agentRuntimeId"]
    assert [r for r in runtime_ids(client) if r.startswith(req["agentRuntimeName"] + "-")] == [rid]
    wait_status(lambda: client.get_agent_runtime(agentRuntimeId=rid))
    # replay after it became READY: still the original answer, still one runtime, one version
    third = client.create_agent_runtime(clientToken=token, **req)
    assert strip_meta(third) == strip_meta(first)
    assert version_ids(client, rid) == ["1"]

    changed = dict(req, description="something else")
    mismatch(client.create_agent_runtime, clientToken=token, **changed)
    assert [r for r in runtime_ids(client) if r.startswith(req["agentRuntimeName"] + "-")] == [rid]


def test_same_token_different_name_is_mismatch(client):
    token = client_token()
    first = runtime_request(uniq("idem"), "minimal")
    client.create_agent_runtime(clientToken=token, **first)
    other = runtime_request(uniq("idem"), "minimal")
    mismatch(client.create_agent_runtime, clientToken=token, **other)
    assert not [r for r in runtime_ids(client) if r.startswith(other["agentRuntimeName"] + "-")]
    b = browser_request(uniq("idem"), full=False)
    client.create_browser(clientToken=token, **b)  # another operation: its own token space
    mismatch(client.create_browser, clientToken=token, **browser_request(uniq("idem"), full=False))


def test_create_runtime_without_token_twice_conflicts(client):
    """botocore fills a fresh clientToken each time: the second create is a new request."""
    req = runtime_request(uniq("idem"), "minimal")
    client.create_agent_runtime(**req)
    expect_error(client.create_agent_runtime, "ConflictException", 409, **req)


def test_update_runtime_idempotent(client):
    req, resp = create_ready_runtime(client)
    rid = resp["agentRuntimeId"]
    token = client_token()
    upd = update_request(runtime_request(req["agentRuntimeName"], "container"))
    a = client.update_agent_runtime(agentRuntimeId=rid, clientToken=token, **upd)
    b = client.update_agent_runtime(agentRuntimeId=rid, clientToken=token, **upd)
    assert strip_meta(b) == strip_meta(a)
    assert a["agentRuntimeVersion"] == "2"
    wait_status(lambda: client.get_agent_runtime(agentRuntimeId=rid))
    assert sorted(version_ids(client, rid)) == ["1", "2"]
    mismatch(
        client.update_agent_runtime, agentRuntimeId=rid, clientToken=token,
        **dict(upd, agentRuntimeArtifact=container_artifact("other")),
    )  # fmt: skip
    assert sorted(version_ids(client, rid)) == ["1", "2"]
    # a new token makes a new version
    c = client.update_agent_runtime(agentRuntimeId=rid, clientToken=client_token(), **upd)
    assert c["agentRuntimeVersion"] == "3"


def test_delete_runtime_idempotent(client):
    _req, resp = create_ready_runtime(client)
    rid = resp["agentRuntimeId"]
    token = client_token()
    a = client.delete_agent_runtime(agentRuntimeId=rid, clientToken=token)
    b = client.delete_agent_runtime(agentRuntimeId=rid, clientToken=token)
    assert strip_meta(b) == strip_meta(a)
    assert a["status"] == "DELETING"
    wait_gone(lambda: client.get_agent_runtime(agentRuntimeId=rid))
    c = client.delete_agent_runtime(agentRuntimeId=rid, clientToken=token)
    assert strip_meta(c) == strip_meta(a)
    # without the token it is simply gone
    expect_error(client.delete_agent_runtime, "ResourceNotFoundException", 404, agentRuntimeId=rid)


def test_endpoint_create_update_delete_idempotent(client):
    _req, resp = create_ready_runtime(client)
    rid = resp["agentRuntimeId"]
    client.update_agent_runtime(
        agentRuntimeId=rid, agentRuntimeArtifact=container_artifact("v2"),
        roleArn="arn:aws:iam::123456789012:role/AgentCoreRuntimeRole",
    )  # fmt: skip
    wait_status(lambda: client.get_agent_runtime(agentRuntimeId=rid))

    token = client_token()
    kw = dict(agentRuntimeId=rid, name="blue", agentRuntimeVersion="1", description="blue")
    a = client.create_agent_runtime_endpoint(clientToken=token, **kw)
    b = client.create_agent_runtime_endpoint(clientToken=token, **kw)
    assert strip_meta(b) == strip_meta(a)
    assert sorted(endpoint_names(client, rid)) == ["DEFAULT", "blue"]
    mismatch(client.create_agent_runtime_endpoint, clientToken=token, **dict(kw, description="x"))
    wait_status(lambda: client.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="blue"))

    token = client_token()
    ukw = dict(agentRuntimeId=rid, endpointName="blue", agentRuntimeVersion="2")
    ua = client.update_agent_runtime_endpoint(clientToken=token, **ukw)
    ub = client.update_agent_runtime_endpoint(clientToken=token, **ukw)
    assert strip_meta(ub) == strip_meta(ua)
    mismatch(
        client.update_agent_runtime_endpoint, clientToken=token, **dict(ukw, agentRuntimeVersion="1")
    )
    ep = wait_status(
        lambda: client.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="blue")
    )
    assert ep["targetVersion"] == "2"

    token = client_token()
    da = client.delete_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="blue", clientToken=token)
    db = client.delete_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="blue", clientToken=token)
    assert strip_meta(db) == strip_meta(da)
    assert da["status"] == "DELETING"
    wait_gone(lambda: client.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="blue"))


@pytest.mark.parametrize("kind", ["browser", "code_interpreter", "profile"])
def test_tool_create_delete_idempotent(client, kind):
    name = uniq(f"idem_{kind}")
    token = client_token()
    if kind == "browser":
        create, delete, ids, key = client.create_browser, client.delete_browser, browser_ids, "browserId"
        req = browser_request(name)
        changed = dict(req, description="changed")
    elif kind == "code_interpreter":
        create, delete = client.create_code_interpreter, client.delete_code_interpreter
        ids, key = code_interpreter_ids, "codeInterpreterId"
        req = code_interpreter_request(name)
        changed = dict(req, networkConfiguration={"networkMode": "PUBLIC"})
    else:
        create, delete, ids, key = (
            client.create_browser_profile, client.delete_browser_profile, profile_ids, "profileId",
        )  # fmt: skip
        req = {"name": name, "description": "first"}
        changed = dict(req, description="second")
    a = create(clientToken=token, **req)
    b = create(clientToken=token, **req)
    assert strip_meta(b) == strip_meta(a)
    rid = a[key]
    assert [i for i in ids(client) if i.startswith(name + "-")] == [rid]
    mismatch(create, clientToken=token, **changed)
    assert [i for i in ids(client) if i.startswith(name + "-")] == [rid]

    dtoken = client_token()
    da = delete(clientToken=dtoken, **{key: rid})
    db = delete(clientToken=dtoken, **{key: rid})
    assert strip_meta(db) == strip_meta(da)
    # profiles: DeleteBrowserProfile is modeled 200 (synchronous); DELETED is in its status enum
    assert da["status"] == "DELETING" or (kind == "profile" and da["status"] == "DELETED")
    assert [i for i in ids(client) if i.startswith(name + "-")] in ([], [rid])
