"""InvokeAgentRuntimeCommand: a command run inside a live session's sandbox, its output streamed
back as the model's event stream (`application/vnd.amazon.eventstream`), read with boto3's own
event-stream parser: `chunk.contentStart`, `chunk.contentDelta` (stdout / stderr as written),
`chunk.contentStop` (exit code, COMPLETED or TIMED_OUT)."""

from __future__ import annotations

import time

import protocol_kit as pk
import session_kit as kit
from support import expect_error


def run(deploy, arn: str, sid: str, command: str, timeout: int | None = None):
    """Runs a command; returns ([(arrival time, chunk)], response)."""
    body = {"command": command}
    if timeout is not None:
        body["timeout"] = timeout
    pk.track(deploy, arn, sid)
    resp = deploy.dp.invoke_agent_runtime_command(agentRuntimeArn=arn, runtimeSessionId=sid, body=body)
    chunks = []
    for event in resp["stream"]:
        assert set(event) == {"chunk"}, event
        chunks.append((time.time(), event["chunk"]))
    return chunks, resp


def outputs(chunks) -> tuple[str, str]:
    deltas = [c["contentDelta"] for _, c in chunks if "contentDelta" in c]
    return "".join(d.get("stdout", "") for d in deltas), "".join(d.get("stderr", "") for d in deltas)


def test_command_output_and_exit_code_arrive_as_events(deploy):
    rt = deploy.create("echo", env={"ECHO_GREETING": "hello"})
    sid = kit.new_session_id("cmd")
    chunks, resp = run(deploy, rt.arn, sid, 'echo out; echo err >&2; echo "$ECHO_GREETING"; pwd; exit 3')
    assert resp["runtimeSessionId"] == sid
    assert resp["contentType"] == "application/vnd.amazon.eventstream"
    assert chunks[0][1] == {"contentStart": {}}, chunks
    assert chunks[-1][1] == {"contentStop": {"exitCode": 3, "status": "COMPLETED"}}, chunks
    stdout, stderr = outputs(chunks)
    # The agent's environment and working directory.
    assert stdout == "out\nhello\n/var/task\n", stdout
    assert stderr == "err\n", stderr


def test_command_runs_beside_the_agent_in_its_session(deploy):
    rt = deploy.create("echo")
    sid = kit.new_session_id("cmdagent")
    agent = deploy.invoke(rt.arn, sid, {"prompt": "pid?"})
    chunks, _ = run(deploy, rt.arn, sid, f"tr '\\0' ' ' < /proc/{agent['pid']}/cmdline; echo; id -u")
    stdout, _ = outputs(chunks)
    cmdline, uid = stdout.strip().split("\n")
    assert "/var/task/main.py" in cmdline, "the command sees the agent's processes"
    assert int(uid) == agent["uid"], "and runs as the session's user"
    # The session goes on serving invocations.
    assert deploy.invoke(rt.arn, sid, {"prompt": "again"})["pid"] == agent["pid"]


def test_command_output_streams_while_it_runs(deploy):
    rt = deploy.create("echo")
    sid = kit.new_session_id("cmdstream")
    chunks, _ = run(deploy, rt.arn, sid, "for i in 1 2 3; do echo $i; sleep 0.5; done")
    stdout_times = [t for t, c in chunks if "contentDelta" in c]
    assert outputs(chunks)[0] == "1\n2\n3\n"
    assert len(stdout_times) >= 3 and stdout_times[-1] - stdout_times[0] >= 0.8, chunks


def test_command_timeout_kills_it(deploy):
    rt = deploy.create("echo")
    sid = kit.new_session_id("cmdtimeout")
    started = time.time()
    chunks, _ = run(deploy, rt.arn, sid, "echo before; sleep 60; echo after", timeout=1)
    assert time.time() - started < 20
    stop = chunks[-1][1]["contentStop"]
    assert stop["status"] == "TIMED_OUT" and stop["exitCode"] != 0, stop
    assert outputs(chunks)[0] == "before\n"


def test_command_errors_are_aws_errors(deploy):
    rt = deploy.create("echo")
    sid = kit.new_session_id("cmderr")
    err = expect_error(
        deploy.dp.invoke_agent_runtime_command,
        "ValidationException",
        400,
        agentRuntimeArn=rt.arn,
        runtimeSessionId=sid,
        body={"command": "true", "timeout": 0},
    )
    assert "timeout" in kit.error_info(err)[2]
    expect_error(
        deploy.dp.invoke_agent_runtime_command,
        "ResourceNotFoundException",
        404,
        agentRuntimeArn=rt.arn.replace(rt.rid, "nosuch-0123456789"),
        runtimeSessionId=sid,
        body={"command": "true"},
    )
    # A command in an MCP session: commands are not tied to the protocol.
    mcp = deploy.create("mcp_stateless", extra={"protocolConfiguration": {"serverProtocol": "MCP"}})
    chunks, _ = run(deploy, mcp.arn, kit.new_session_id("cmdmcp"), "echo fine")
    assert outputs(chunks)[0] == "fine\n" and chunks[-1][1]["contentStop"]["exitCode"] == 0
