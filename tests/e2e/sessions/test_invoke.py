"""InvokeAgentRuntime / StopRuntimeSession against agents that really run in per-session sandboxes.

Covers: the request mapping (payload verbatim, session id, environment variables), response
envelope, session stickiness and separation, concurrent sessions, SSE streaming as it is
produced, stop (also mid-stream) and fresh state afterwards, data-plane errors, start-up
failure (424 with the agent's stderr), and Hangar's /_hangar/sessions and logs routes.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid


import session_kit as kit
import support
from support import expect_error


def test_echo_request_mapping_and_environment(deploy):
    env = {"ECHO_GREETING": "hello", "ECHO_EMPTY": "", "ECHO_UNICODE": "grüße ✓"}
    rt = deploy.create("echo", env=env)
    sid = kit.new_session_id("echo")
    payload = {"prompt": "What is 2+2?", "nested": {"list": [1, 2.5, None, True], "s": "ü"}}
    got = deploy.invoke(rt.arn, sid, payload)

    assert got["agent"] == "echo"
    assert got["payload"] == payload
    assert got["session_id"] == sid, "the agent's RequestContext.session_id"
    assert got["session_header"] == sid, f"{kit.SESSION_HEADER} at the container"
    assert (got["content_type"] or "").startswith("application/json"), got["content_type"]
    assert got["env"] == env, "environmentVariables, exactly (empty and non-ASCII values too)"

    # Code deploy layout: unpacked at /var/task, run from there by the runtime's interpreter.
    assert got["cwd"] == "/var/task"
    assert got["script"] == "/var/task/main.py"
    assert got["python"][:2] == [3, 11], got["python"]

    # Nothing of Hangar's own environment reaches the sandbox.
    assert kit.CANARY_VAR not in got["env_names"], "Hangar's environment leaked into the sandbox"
    assert got["aws_secret_sha256"] != hashlib.sha256(kit.S3_SECRET_KEY.encode()).hexdigest(), (
        "the sandbox got Hangar's own S3 secret key"
    )


def test_payload_bytes_reach_the_agent_verbatim(deploy):
    """The body is passed through as bytes: whitespace and key order are the caller's."""
    rt = deploy.create("echo")
    raw = b'{ "z": 1,\n  "a": [ "x" ,"y"],  "u": "\\u00fc" }'
    resp = deploy.invoke_raw(rt.arn, kit.new_session_id("raw"), raw)
    got = json.loads(resp["response"].read())
    assert list(got["payload"]) == ["z", "a", "u"] and got["payload"]["u"] == "ü"


def test_session_is_sticky_and_sessions_are_separate(deploy):
    rt = deploy.create("counter")
    a, b = kit.new_session_id("ctr-a"), kit.new_session_id("ctr-b")

    first = [deploy.invoke(rt.arn, a, {}) for _ in range(3)]
    assert [r["count"] for r in first] == [1, 2, 3]
    assert len({r["boot_id"] for r in first}) == 1, "one session must stay in one process"
    assert first[-1]["file_counts"] == [1, 2, 3], "/tmp must persist within a session"

    other = deploy.invoke(rt.arn, b, {})
    assert other["count"] == 1, "a new session starts from a fresh process"
    assert other["boot_id"] != first[0]["boot_id"]
    assert other["file_counts"] == [1] and other["file_sessions"] == [b], (
        "a session sees another session's /tmp file"
    )

    again = deploy.invoke(rt.arn, a, {})
    assert again["count"] == 4 and again["boot_id"] == first[0]["boot_id"]
    assert again["file_sessions"] == [a]


def test_concurrent_sessions_and_sessions_route(deploy):
    rt = deploy.create("counter")
    sids = [kit.new_session_id(f"par{i}") for i in range(4)]
    t0 = time.time()
    results: dict = {}

    def one(sid):
        results[sid] = deploy.invoke(rt.arn, sid, {})

    threads = [threading.Thread(target=one, args=(s,)) for s in sids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(results) == sorted(sids), "every concurrent first invocation must succeed"
    assert all(r["count"] == 1 for r in results.values())
    assert len({r["boot_id"] for r in results.values()}) == 4, "one sandbox per session"

    listed = {s["runtimeSessionId"]: s for s in kit.live_sessions(deploy.url)}
    for sid in sids:
        s = listed.get(sid)
        assert s is not None, f"{sid} missing from /_hangar/sessions: {sorted(listed)}"
        assert s["agentRuntimeId"] == rt.rid
        assert str(s["version"]) == "1", s
        assert isinstance(s["status"], str) and s["status"], s
        started, last = kit.parse_time(s["startedAt"]), kit.parse_time(s["lastActivityAt"])
        assert t0 - 5 <= started <= last <= time.time() + 5, s

    # lastActivityAt moves with a new invocation
    before = kit.parse_time(listed[sids[0]]["lastActivityAt"])
    time.sleep(1.1)
    deploy.invoke(rt.arn, sids[0], {})
    after = kit.parse_time(kit.find_session(deploy.url, rt.rid, sids[0])["lastActivityAt"])
    assert after > before, (before, after)


def test_sse_events_arrive_as_they_are_produced(deploy):
    rt = deploy.create("streaming")
    sid = kit.new_session_id("sse")
    warm = deploy.invoke_raw(rt.arn, sid, {"events": 1, "delay": 0})  # start the sandbox first
    assert len(kit.read_sse(warm["response"])) == 1
    n, delay = 6, 0.6
    resp = deploy.invoke_raw(
        rt.arn, sid, {"events": n, "delay": delay}, accept="text/event-stream, application/json"
    )
    headers_at = time.time()
    assert resp["statusCode"] == 200
    assert resp["runtimeSessionId"] == sid
    assert resp["contentType"].split(";")[0].strip() == "text/event-stream", resp["contentType"]
    events = kit.read_sse(resp["response"])

    assert [e["index"] for _, e in events] == list(range(n)), events
    assert all(e["session_id"] == sid for _, e in events)
    produced = [e["produced_at"] for _, e in events]
    arrived = [t for t, _ in events]
    span = produced[-1] - produced[0]
    assert span >= (n - 1) * delay * 0.9, produced
    # The response starts, and the first event arrives, long before the last one exists.
    assert headers_at < produced[-1] - 1.0, "InvokeAgentRuntime returned only after the stream"
    assert arrived[0] < produced[-1] - 1.0, "events were buffered until the end"
    # Arrival keeps pace with production (same host clock for agent and test).
    assert arrived[-1] - arrived[0] >= span * 0.7, (arrived, produced)
    for t, e in events:
        assert t - e["produced_at"] < 1.5, (
            f"event {e['index']} relayed {t - e['produced_at']:.2f}s late"
        )


def test_stop_session_ends_it_and_resets_state(deploy):
    rt = deploy.create("counter")
    sid = kit.new_session_id("stop")
    assert deploy.invoke(rt.arn, sid, {})["count"] == 1
    boot = deploy.invoke(rt.arn, sid, {})["boot_id"]
    assert kit.find_session(deploy.url, rt.rid, sid) is not None

    resp = deploy.stop(rt.arn, sid)
    assert support.status_of(resp) == 200
    assert resp["runtimeSessionId"] == sid
    kit.wait_session_gone(deploy.url, rt.rid, sid, timeout=15)

    expect_error(
        deploy.dp.stop_runtime_session,
        "ResourceNotFoundException",
        404,
        agentRuntimeArn=rt.arn,
        runtimeSessionId=sid,
        qualifier="DEFAULT",
    )

    fresh = deploy.invoke(rt.arn, sid, {})
    assert fresh["count"] == 1 and fresh["boot_id"] != boot, "same id after stop: fresh sandbox"
    assert fresh["file_counts"] == [1], "/tmp of the stopped session survived"


def test_stop_ends_an_ongoing_stream(deploy):
    rt = deploy.create("streaming")
    sid = kit.new_session_id("stopstream")
    n = 40
    resp = deploy.invoke_raw(rt.arn, sid, {"events": n, "delay": 0.5}, accept="text/event-stream")
    assert resp["statusCode"] == 200
    seen: list = []
    outcome: dict = {}
    two = threading.Event()

    def count_events(t, e):
        seen.append(e)
        if len(seen) >= 2:
            two.set()

    def reader():
        try:
            kit.read_sse(resp["response"], on_event=count_events)
        except Exception as e:  # noqa: BLE001 - a cut stream may end with an error
            outcome["error"] = repr(e)
        outcome["ended_at"] = time.time()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    assert two.wait(30), f"no events before the stop: {seen}"
    stopped_at = time.time()
    assert support.status_of(deploy.stop(rt.arn, sid)) == 200
    t.join(15)
    assert not t.is_alive(), "the stream went on after StopRuntimeSession"
    assert outcome["ended_at"] - stopped_at < 10, outcome
    assert len(seen) < n, f"all {n} events arrived although the session was stopped"
    kit.wait_session_gone(deploy.url, rt.rid, sid, timeout=15)


def test_data_plane_errors(deploy):
    rt = deploy.create("echo")
    sid = kit.new_session_id("err")
    ghost = support.runtime_arn(f"ghost_{uuid.uuid4().hex[:8]}-AAAAAAAAAA")

    expect_error(
        deploy.dp.invoke_agent_runtime, "ResourceNotFoundException", 404,
        agentRuntimeArn=ghost, runtimeSessionId=sid, payload=b"{}",
    )  # fmt: skip
    expect_error(
        deploy.dp.invoke_agent_runtime, "ResourceNotFoundException", 404,
        agentRuntimeArn=rt.arn, runtimeSessionId=sid, payload=b"{}", qualifier="no_such_ep",
    )  # fmt: skip
    # 32 characters: one short of the model's minimum (boto3's own check is off here)
    e = expect_error(
        deploy.dp_nv.invoke_agent_runtime, "ValidationException", 400,
        agentRuntimeArn=rt.arn, runtimeSessionId="s" * 32, payload=b"{}",
    )  # fmt: skip
    assert "runtimeSessionId" in kit.error_info(e)[2] or "ession" in kit.error_info(e)[2]
    expect_error(
        deploy.dp_nv.stop_runtime_session, "ValidationException", 400,
        agentRuntimeArn=rt.arn, runtimeSessionId="short-id",
    )  # fmt: skip
    expect_error(
        deploy.dp.stop_runtime_session, "ResourceNotFoundException", 404,
        agentRuntimeArn=rt.arn, runtimeSessionId=kit.new_session_id("never-started"),
    )  # fmt: skip
    expect_error(
        deploy.dp.stop_runtime_session, "ResourceNotFoundException", 404,
        agentRuntimeArn=ghost, runtimeSessionId=sid,
    )  # fmt: skip
    # None of this started a sandbox.
    assert kit.find_session(deploy.url, rt.rid, sid) is None


def test_agent_that_dies_at_import_gives_424_with_its_stderr(deploy):
    rt = deploy.create("crash")  # the artifact is fine: READY
    sid = kit.new_session_id("crash")
    t0 = time.monotonic()
    e = kit.client_error(deploy.invoke_raw, rt.arn, sid, {"prompt": "hi"})
    elapsed = time.monotonic() - t0
    code, status, message = kit.error_info(e)
    assert (code, status) == ("RuntimeClientError", 424), e.response
    assert "nonexistent_module_xyz" in message, f"stderr tail missing from: {message!r}"
    assert "ModuleNotFoundError" in message or "No module named" in message, message
    # The process exits within a second; waiting out the 30 s initialization limit instead of
    # noticing the exit is a bug.
    assert elapsed < 20, f"a program that exited took {elapsed:.1f}s to be reported"

    logs = kit.session_logs(deploy.url, rt.rid, sid)
    assert "No module named 'nonexistent_module_xyz'" in logs["stderr"], logs
    assert "crash agent: importing" in logs["stderr"]
    assert kit.find_session(deploy.url, rt.rid, sid) is None, "a dead session is still listed"

    # Same again: every attempt starts (and reports) afresh, nothing hangs.
    e2 = kit.client_error(deploy.invoke_raw, rt.arn, sid, {})
    assert kit.error_info(e2)[:2] == ("RuntimeClientError", 424)


def test_logs_route_keeps_stdout_and_stderr_after_the_session_ends(deploy):
    rt = deploy.create("echo")
    sid = kit.new_session_id("logs")
    marker = uuid.uuid4().hex
    deploy.invoke(rt.arn, sid, {"log_marker": marker})
    logs = kit.session_logs(deploy.url, rt.rid, sid)
    assert f"echo-stdout {marker}" in logs["stdout"], logs
    assert f"echo-stderr {marker}" in logs["stderr"], logs
    assert f"echo-stderr {marker}" not in logs["stdout"]

    deploy.stop(rt.arn, sid)
    kit.wait_session_gone(deploy.url, rt.rid, sid, timeout=15)
    after = kit.session_logs(deploy.url, rt.rid, sid)
    assert f"echo-stdout {marker}" in after["stdout"], after
    assert f"echo-stderr {marker}" in after["stderr"], after
