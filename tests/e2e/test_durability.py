"""Durability: everything acknowledged survives kill -9 and a clean (SIGTERM) restart."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from support import (
    assert_runtime_config,
    browser_request,
    code_interpreter_request,
    container_artifact,
    endpoint_arn,
    make_client,
    profile_arn,
    runtime_arn,
    runtime_ids,
    runtime_request,
    uniq,
    update_request,
    wait_status,
    browser_arn,
    browser_ids,
)


def populate(c) -> dict:
    """Create one of everything, acknowledged, as fast as possible (no waiting)."""
    name = uniq("dur")
    req1 = runtime_request(name, "code", tags={"dur": "1"})
    rid = c.create_agent_runtime(**req1)["agentRuntimeId"]
    req2 = runtime_request(name, "container")
    c.update_agent_runtime(agentRuntimeId=rid, **update_request(req2))
    c.create_agent_runtime_endpoint(agentRuntimeId=rid, name="pinned", agentRuntimeVersion="1",
                                    tags={"ep": "yes"})  # fmt: skip
    c.tag_resource(resourceArn=runtime_arn(rid), tags={"late": "tag"})
    b = c.create_browser(**browser_request(uniq("durb"), tags={"b": "1"}))["browserId"]
    ci = c.create_code_interpreter(**code_interpreter_request(uniq("durc")))["codeInterpreterId"]
    p = c.create_browser_profile(name=uniq("durp"), description="kept")["profileId"]
    gone = c.create_browser(**browser_request(uniq("durgone"), full=False))["browserId"]
    c.delete_browser(browserId=gone)
    return dict(rid=rid, req1=req1, req2=req2, browser=b, ci=ci, profile=p, gone=gone)


def verify(c, s: dict) -> None:
    rid = s["rid"]
    got = wait_status(lambda: c.get_agent_runtime(agentRuntimeId=rid))
    assert got["agentRuntimeVersion"] == "2"
    assert_runtime_config(got, s["req2"])
    assert_runtime_config(c.get_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="1"), s["req1"])
    versions = c.list_agent_runtime_versions(agentRuntimeId=rid)["agentRuntimes"]
    assert sorted(v["agentRuntimeVersion"] for v in versions) == ["1", "2"]
    ep = wait_status(lambda: c.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="pinned"))
    assert ep["targetVersion"] == "1"
    default = wait_status(
        lambda: c.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="DEFAULT")
    )
    assert default["targetVersion"] == "2"
    assert c.list_tags_for_resource(resourceArn=runtime_arn(rid))["tags"] == {"dur": "1", "late": "tag"}
    assert c.list_tags_for_resource(resourceArn=endpoint_arn(rid, "pinned"))["tags"] == {"ep": "yes"}
    b = wait_status(lambda: c.get_browser(browserId=s["browser"]))
    assert b["description"] == "Browser for checkout flows"
    assert c.list_tags_for_resource(resourceArn=browser_arn(s["browser"]))["tags"] == {"b": "1"}
    wait_status(lambda: c.get_code_interpreter(codeInterpreterId=s["ci"]))
    prof = c.get_browser_profile(profileId=s["profile"])
    assert prof["description"] == "kept"
    assert c.list_tags_for_resource(resourceArn=profile_arn(s["profile"]))["tags"] == {}
    # acknowledged delete stays deleted
    assert s["gone"] not in browser_ids(c)
    with pytest.raises(ClientError) as ei:
        c.get_browser(browserId=s["gone"])
    assert ei.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_kill9_right_after_acknowledged_writes(hangar_factory):
    srv = hangar_factory.start(label="kill9")
    state = populate(make_client(srv.url))
    srv.kill()  # SIGKILL immediately after the last acknowledged response
    srv.start()
    verify(make_client(srv.url), state)


def test_clean_restart_keeps_everything(hangar_factory):
    srv = hangar_factory.start(label="sigterm")
    c = make_client(srv.url)
    state = populate(c)
    wait_status(lambda: c.get_agent_runtime(agentRuntimeId=state["rid"]))
    srv.proc.send_signal(signal.SIGTERM)
    rc = srv.proc.wait(15)
    assert rc == 0, f"hangar exited with {rc} on SIGTERM"
    srv.start()
    verify(make_client(srv.url), state)
    # and once more, a restart of a restarted store
    srv.stop()
    srv.start()
    verify(make_client(srv.url), state)


def _writer(url, kind, acked: list, stop: threading.Event, max_ops=5000, target=None):
    c = make_client(url, read_timeout=10)
    todo = list(target or [])
    for i in range(max_ops):
        if stop.is_set():
            return
        try:
            if kind == "update":
                r = c.update_agent_runtime(
                    agentRuntimeId=target, agentRuntimeArtifact=container_artifact(f"u{i}"),
                    roleArn="arn:aws:iam::123456789012:role/AgentCoreRuntimeRole",
                )  # fmt: skip
                acked.append(r["agentRuntimeVersion"])
            elif kind == "delete":
                if not todo:
                    return
                bid = todo.pop()
                c.delete_browser(browserId=bid)
                acked.append(bid)
            elif kind == "runtime":
                r = c.create_agent_runtime(**runtime_request(uniq("race"), "minimal"))
                acked.append(r["agentRuntimeId"])
            elif kind == "browser":
                r = c.create_browser(**browser_request(uniq("race"), full=False))
                acked.append(r["browserId"])
            else:
                r = c.create_browser_profile(name=uniq("race"))
                acked.append(r["profileId"])
        except (BotoCoreError, ClientError, OSError):
            return  # the server died under us: that request was not acknowledged


@pytest.mark.parametrize("round_", range(3))
def test_kill9_racing_writes(hangar_factory, round_):
    srv = hangar_factory.start(label=f"race{round_}")
    c0 = make_client(srv.url)
    updated = c0.create_agent_runtime(**runtime_request(uniq("upd"), "minimal"))["agentRuntimeId"]
    doomed = [
        c0.create_browser(**browser_request(uniq("doomed"), full=False))["browserId"]
        for _ in range(60)
    ]
    acked = {"runtime": [], "browser": [], "profile": [], "update": [], "delete": []}
    stop = threading.Event()
    targets = {"update": updated, "delete": doomed}
    threads = [
        threading.Thread(
            target=_writer, args=(srv.url, kind, acked[kind], stop), kwargs={"target": targets.get(kind)}
        )
        for kind in acked
    ]
    for t in threads:
        t.start()
    # kill at a different moment each round, while all writers are busy
    deadline = time.monotonic() + 20
    want = 10 + 15 * round_
    while sum(map(len, acked.values())) < want and time.monotonic() < deadline:
        time.sleep(0.005)
    srv.kill()
    stop.set()
    for t in threads:
        t.join(30)
    assert sum(map(len, acked.values())) >= want, "writers made no progress"

    srv.start()
    c = make_client(srv.url)
    missing = []
    listed_runtimes = set(runtime_ids(c))
    for rid in acked["runtime"]:
        if rid not in listed_runtimes:
            missing.append(rid)
        else:
            c.get_agent_runtime(agentRuntimeId=rid)
    for bid in acked["browser"]:
        try:
            c.get_browser(browserId=bid)
        except ClientError:
            missing.append(bid)
    for pid in acked["profile"]:
        try:
            c.get_browser_profile(profileId=pid)
        except ClientError:
            missing.append(pid)
    assert not missing, f"{len(missing)} acknowledged creates lost after kill -9: {missing[:10]}"
    pages = c.get_paginator("list_agent_runtime_versions").paginate(agentRuntimeId=updated)
    versions = {v["agentRuntimeVersion"] for page in pages for v in page["agentRuntimes"]}
    lost_versions = [v for v in acked["update"] if v not in versions]
    assert not lost_versions, f"acknowledged updates lost after kill -9: {lost_versions}"
    if acked["update"]:
        latest = c.get_agent_runtime(agentRuntimeId=updated)["agentRuntimeVersion"]
        assert int(latest) >= max(map(int, acked["update"]))
    resurrected = [b for b in acked["delete"] if b in set(browser_ids(c))]
    assert not resurrected, f"acknowledged deletes undone by kill -9: {resurrected}"
    # the store is usable after recovery
    r = c.create_agent_runtime(**runtime_request(uniq("after"), "minimal"))
    wait_status(lambda: c.get_agent_runtime(agentRuntimeId=r["agentRuntimeId"]))
    c.update_agent_runtime(
        agentRuntimeId=r["agentRuntimeId"], agentRuntimeArtifact=container_artifact("after"),
        roleArn="arn:aws:iam::123456789012:role/AgentCoreRuntimeRole",
    )  # fmt: skip
    # acknowledged runtimes settle to READY after the restart
    for rid in acked["runtime"][-5:]:
        wait_status(lambda: c.get_agent_runtime(agentRuntimeId=rid))
