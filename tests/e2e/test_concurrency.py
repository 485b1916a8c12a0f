"""Races: concurrent writers must never produce duplicate names, versions or idempotent replays."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from botocore.exceptions import ClientError

from support import (
    ROLE_ARN,
    browser_request,
    client_token,
    container_artifact,
    create_ready_runtime,
    endpoint_names,
    make_client,
    runtime_ids,
    runtime_request,
    uniq,
    version_ids,
    wait_gone,
    wait_status,
)

THREADS = 8


def run_parallel(fn, n=THREADS):
    """Run fn(i) in n threads started together; return [(result | None, error code | None)]."""
    barrier = threading.Barrier(n)
    out = [None] * n

    def body(i):
        barrier.wait(10)
        try:
            out[i] = (fn(i), None)
        except ClientError as e:
            out[i] = (None, e.response["Error"]["Code"])

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(o is not None for o in out), "a worker did not finish"
    return out


def test_concurrent_creates_same_name(url):
    clients = [make_client(url) for _ in range(THREADS)]
    name = uniq("race")
    out = run_parallel(
        lambda i: clients[i].create_agent_runtime(**runtime_request(name, "minimal"))["agentRuntimeId"]
    )
    ok = [r for r, err in out if err is None]
    errors = Counter(err for _r, err in out if err is not None)
    assert len(ok) == 1, out
    assert errors == Counter({"ConflictException": THREADS - 1}), errors
    assert [r for r in runtime_ids(clients[0]) if r.startswith(name + "-")] == ok


@pytest.mark.parametrize("kind", ["runtime", "endpoint", "browser", "profile"])
def test_concurrent_creates_same_token(url, client, kind):
    """Retries of one request racing each other all get the first answer (no Conflict)."""
    clients = [make_client(url) for _ in range(THREADS)]
    token = client_token()
    name = uniq("race")
    if kind == "runtime":
        req = runtime_request(name, "code")

        def call(i):
            return clients[i].create_agent_runtime(clientToken=token, **req)["agentRuntimeId"]
    elif kind == "endpoint":
        _req, resp = create_ready_runtime(client)
        rid = resp["agentRuntimeId"]

        def call(i):
            return clients[i].create_agent_runtime_endpoint(
                clientToken=token, agentRuntimeId=rid, name="same"
            )["agentRuntimeEndpointArn"]
    elif kind == "browser":
        req = browser_request(name, full=False)

        def call(i):
            return clients[i].create_browser(clientToken=token, **req)["browserId"]
    else:

        def call(i):
            return clients[i].create_browser_profile(clientToken=token, name=name)["profileId"]

    out = run_parallel(call)
    assert all(err is None for _r, err in out), out
    assert len({r for r, _ in out}) == 1, out
    if kind == "runtime":
        assert [r for r in runtime_ids(client) if r.startswith(name + "-")] == [out[0][0]]


def test_concurrent_updates_make_distinct_versions(url, client):
    req, resp = create_ready_runtime(client)
    rid = resp["agentRuntimeId"]
    clients = [make_client(url) for _ in range(THREADS)]
    out = run_parallel(
        lambda i: clients[i].update_agent_runtime(
            agentRuntimeId=rid, agentRuntimeArtifact=container_artifact(f"t{i}"), roleArn=ROLE_ARN
        )["agentRuntimeVersion"]
    )
    versions = [v for v, err in out if err is None]
    errors = {err for _v, err in out if err is not None}
    assert errors <= {"ConflictException"}, out
    assert versions, out
    assert len(versions) == len(set(versions)), f"duplicate versions handed out: {versions}"
    wait_status(lambda: client.get_agent_runtime(agentRuntimeId=rid))
    listed = sorted(version_ids(client, rid), key=int)
    assert listed == sorted(["1"] + versions, key=int), (listed, versions)
    assert listed == [str(i) for i in range(1, len(listed) + 1)]
    latest = client.get_agent_runtime(agentRuntimeId=rid)
    assert latest["agentRuntimeVersion"] == listed[-1]
    # every version keeps its own artifact
    tags = {
        client.get_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion=v)["agentRuntimeArtifact"][
            "containerConfiguration"
        ]["containerUri"]
        for v in listed[1:]
    }
    assert len(tags) == len(listed) - 1
    default = wait_status(
        lambda: client.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="DEFAULT")
    )
    assert default["liveVersion"] == listed[-1]


def test_concurrent_endpoint_creates_respect_quota(url, client):
    _req, resp = create_ready_runtime(client)
    rid = resp["agentRuntimeId"]
    clients = [make_client(url) for _ in range(12)]
    out = run_parallel(
        lambda i: clients[i].create_agent_runtime_endpoint(agentRuntimeId=rid, name=f"ep{i}")[
            "agentRuntimeEndpointArn"
        ],
        n=12,
    )
    ok = [r for r, err in out if err is None]
    errors = Counter(err for _r, err in out if err is not None)
    assert len(ok) == 10, out
    assert errors == Counter({"ServiceQuotaExceededException": 2}), errors
    assert len(endpoint_names(client, rid)) == 11  # DEFAULT + 10


def test_delete_and_update_race(url, client):
    """A runtime deleted while being updated ends up gone, with nothing left behind."""
    _req, resp = create_ready_runtime(client)
    rid = resp["agentRuntimeId"]
    clients = [make_client(url) for _ in range(THREADS)]

    def work(i):
        if i == 0:
            return clients[i].delete_agent_runtime(agentRuntimeId=rid)["status"]
        return clients[i].update_agent_runtime(
            agentRuntimeId=rid, agentRuntimeArtifact=container_artifact(f"d{i}"), roleArn=ROLE_ARN
        )["agentRuntimeVersion"]

    out = run_parallel(work)
    assert out[0] == ("DELETING", None) or out[0][1] in ("ConflictException",), out
    errors = {err for _r, err in out[1:] if err is not None}
    assert errors <= {"ConflictException", "ResourceNotFoundException"}, out
    if out[0][1] is None:
        wait_gone(lambda: client.get_agent_runtime(agentRuntimeId=rid))
        assert rid not in runtime_ids(client)
