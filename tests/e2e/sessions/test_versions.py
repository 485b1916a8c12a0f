"""Version routing: DEFAULT follows the latest READY version, a custom endpoint stays on the
version it names until it is moved, and a live session keeps the version it started on."""

from __future__ import annotations

import session_kit as kit
from support import uniq, version_ids


def test_versions_endpoints_and_sessions(deploy):
    cp = deploy.cp
    rt = deploy.create("version_a")
    ep = uniq("pinned")
    created = cp.create_agent_runtime_endpoint(
        agentRuntimeId=rt.rid, name=ep, agentRuntimeVersion="1"
    )
    assert created["targetVersion"] == "1"
    assert deploy.wait_endpoint(rt.rid, ep)["liveVersion"] == "1"

    s1 = kit.new_session_id("v-s1")
    first = deploy.invoke(rt.arn, s1, {})
    assert (first["agent"], first["count"]) == ("A", 1)

    assert deploy.update(rt, "version_b") == "2"
    assert sorted(version_ids(cp, rt.rid)) == ["1", "2"]
    default = cp.get_agent_runtime_endpoint(agentRuntimeId=rt.rid, endpointName="DEFAULT")
    assert default["liveVersion"] == "2", kit.strip_meta(default)

    # The live session stays on version 1 (same process: the count goes on).
    again = deploy.invoke(rt.arn, s1, {})
    assert (again["agent"], again["count"], again["boot_id"]) == ("A", 2, first["boot_id"])

    # New sessions: DEFAULT runs B, the pinned endpoint still runs A.
    s2 = kit.new_session_id("v-s2")
    assert deploy.invoke(rt.arn, s2, {})["agent"] == "B"
    s3 = kit.new_session_id("v-s3")
    on_pinned = deploy.invoke(rt.arn, s3, {}, qualifier=ep)
    assert (on_pinned["agent"], on_pinned["count"]) == ("A", 1)

    listed = {s["runtimeSessionId"]: s for s in kit.live_sessions(deploy.url)}
    assert {sid: str(listed[sid]["version"]) for sid in (s1, s2, s3)} == {
        s1: "1",
        s2: "2",
        s3: "1",
    }, {sid: listed.get(sid) for sid in (s1, s2, s3)}

    # Moving the endpoint affects new sessions only.
    cp.update_agent_runtime_endpoint(
        agentRuntimeId=rt.rid, endpointName=ep, agentRuntimeVersion="2"
    )
    assert deploy.wait_endpoint(rt.rid, ep)["liveVersion"] == "2"
    s4 = kit.new_session_id("v-s4")
    assert deploy.invoke(rt.arn, s4, {}, qualifier=ep)["agent"] == "B"
    still = deploy.invoke(rt.arn, s3, {}, qualifier=ep)
    assert (still["agent"], still["count"]) == ("A", 2)

    # An explicit DEFAULT and no qualifier at all are the same endpoint.
    s5 = kit.new_session_id("v-s5")
    assert deploy.invoke(rt.arn, s5, {}, qualifier=None)["agent"] == "B"

    for sid, q in ((s1, "DEFAULT"), (s2, "DEFAULT"), (s3, ep), (s4, ep), (s5, "DEFAULT")):
        deploy.stop(rt.arn, sid, qualifier=q)
