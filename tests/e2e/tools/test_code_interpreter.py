"""Code Interpreter data plane, end to end: the bedrock-agentcore SDK's CodeInterpreter and
boto3's `bedrock-agentcore` client against a real `hangar serve` whose sessions run in
bubblewrap sandboxes. Nothing of Hangar is imitated here."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError, EventStreamError

import support
from conftest import CALL_TIMEOUT, MEMORY_MIB

BUILTIN = support.CODE_INTERPRETER_BUILTIN


def first_result(response) -> dict:
    """The one `result` event of an InvokeCodeInterpreter stream."""
    events = list(response["stream"])
    assert len(events) == 1, events
    assert "result" in events[0], events
    return events[0]["result"]


def invoke(dp, session_id: str, tool: str, ci: str = BUILTIN, **arguments) -> dict:
    response = dp.invoke_code_interpreter(
        codeInterpreterIdentifier=ci, sessionId=session_id, name=tool, arguments=arguments
    )
    assert response["sessionId"] == session_id
    return first_result(response)


def start(dp, ci: str = BUILTIN, **kw) -> str:
    return dp.start_code_interpreter_session(codeInterpreterIdentifier=ci, **kw)["sessionId"]


def py(dp, session_id: str, code: str, ci: str = BUILTIN, **kw) -> dict:
    return invoke(dp, session_id, "executeCode", ci=ci, code=code, language="python", **kw)


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


# ----------------------------------------------------------------------------------------------
# The SDK's CodeInterpreter client


def test_sdk_session_state_clear_context_and_stop(sdk, dp):
    ci = sdk()
    session_id = ci.start()
    assert len(session_id) == 26 and session_id.isalnum()

    r = first_result(ci.execute_code("x = 6 * 7\nprint(x)"))
    assert r["structuredContent"]["stdout"] == "42\n"
    assert r["structuredContent"]["exitCode"] == 0
    assert r["isError"] is False
    assert r["content"] == [{"type": "text", "text": "42\n"}]
    assert isinstance(r["structuredContent"]["executionTime"], float)

    # State persists across calls, like a notebook; the last expression is shown.
    r = first_result(ci.execute_code("def f(n):\n    return n * x\nf(2)"))
    assert r["structuredContent"]["stdout"] == "84\n"

    # Exceptions come back as tracebacks with isError.
    r = first_result(ci.execute_code("def g():\n    raise ValueError('boom')\ng()"))
    assert r["isError"] is True and r["structuredContent"]["exitCode"] == 1
    tb = r["structuredContent"]["stderr"]
    assert "Traceback" in tb and "ValueError: boom" in tb and "Cell In[" in tb, tb
    assert "driver" not in tb, tb  # Hangar's own frames are not shown

    first_result(ci.clear_context())
    r = first_result(ci.execute_code("print(x)"))
    assert r["isError"] is True and "NameError" in r["structuredContent"]["stderr"]
    r = first_result(ci.execute_code("y = 1", clear_context=True))
    assert r["isError"] is False

    info = ci.get_session()
    assert info["status"] == "READY" and info["sessionTimeoutSeconds"] == 900
    assert info["name"].startswith("code-session-")
    listed = ci.list_sessions(status="READY")["items"]
    assert session_id in [s["sessionId"] for s in listed]

    ci.stop()
    got = dp.get_code_interpreter_session(codeInterpreterIdentifier=BUILTIN, sessionId=session_id)
    assert got["status"] == "TERMINATED"
    ended = dp.list_code_interpreter_sessions(codeInterpreterIdentifier=BUILTIN, status="TERMINATED")
    assert session_id in [s["sessionId"] for s in ended["items"]]
    live = dp.list_code_interpreter_sessions(codeInterpreterIdentifier=BUILTIN, status="READY")
    assert session_id not in [s["sessionId"] for s in live["items"]]


def test_sdk_files_text_and_binary_round_trip(sdk):
    ci = sdk()
    ci.start()
    binary = bytes(range(256)) * 4
    text = "zeile 1 – ünïcödé\nline 2\n"
    r = first_result(ci.upload_file("data/notes.txt", text))
    assert r["isError"] is False and "Successfully wrote all 1 files" in r["content"][0]["text"]
    first_result(ci.upload_files([
        {"path": "blob.bin", "content": binary},
        {"path": "data/table.csv", "content": "a,b\n1,2\n"},
    ]))  # fmt: skip

    assert ci.download_file("data/notes.txt") == text
    assert ci.download_file("blob.bin") == binary
    files = ci.download_files(["data/table.csv", "blob.bin"])
    assert files == {"/data/table.csv": "a,b\n1,2\n", "/blob.bin": binary}

    # Files written by the tools are the ones the code sees (same working directory).
    r = first_result(ci.execute_code("print(open('data/notes.txt', encoding='utf-8').read(), end='')"))
    assert r["structuredContent"]["stdout"] == text
    r = first_result(ci.execute_code("open('made.txt', 'w').write('by code')"))
    assert ci.download_file("made.txt") == "by code"

    listing = first_result(ci.invoke("listFiles", {"directoryPath": ""}))["content"]
    by_name = {b["name"]: b for b in listing}
    assert by_name["data"]["description"] == "Directory" and by_name["data"]["uri"] == "file:///data"
    assert by_name["blob.bin"]["description"] == "File" and by_name["blob.bin"]["size"] == 1024
    assert by_name["data"]["type"] == "resource_link"
    sub = first_result(ci.invoke("listFiles", {"path": "data"}))["content"]
    assert sorted(b["uri"] for b in sub) == ["file:///data/notes.txt", "file:///data/table.csv"]
    assert {b["name"]: b.get("mimeType") for b in sub}["table.csv"] == "text/csv"

    r = first_result(ci.invoke("removeFiles", {"paths": ["blob.bin", "data"]}))
    assert r["isError"] is False
    names = [b["name"] for b in first_result(ci.invoke("listFiles", {"path": ""}))["content"]]
    assert "blob.bin" not in names and "data" not in names and "made.txt" in names
    r = first_result(ci.invoke("readFiles", {"paths": ["blob.bin"]}))
    assert r["isError"] is True


def test_sdk_commands_and_other_languages(sdk):
    ci = sdk()
    ci.start()
    r = first_result(ci.execute_command("echo out; echo err >&2; exit 3"))
    sc = r["structuredContent"]
    assert (sc["stdout"], sc["stderr"], sc["exitCode"], r["isError"]) == ("out\n", "err\n", 3, True)
    r = first_result(ci.execute_command("pwd && id -un"))
    assert r["structuredContent"]["stdout"] == "/workspace\nsandbox\n"

    r = first_result(ci.execute_code("console.log([1, 2, 3].map(n => n * 2).join(','))", language="javascript"))
    assert r["structuredContent"]["stdout"] == "2,4,6\n" and not r["isError"]
    r = first_result(ci.execute_code("throw new Error('js boom')", language="javascript"))
    assert r["isError"] is True and "js boom" in r["structuredContent"]["stderr"]


TYPESCRIPT_CELL = """
interface Point { x: number; y: number; label?: string }
function largest<T>(items: T[], key: (item: T) => number): T {
  return items.reduce((best, item) => (key(item) > key(best) ? item : best));
}
const points: Point[] = [{ x: 1, y: 2 }, { x: 3, y: 4, label: "far" }];
const p = largest<Point>(points, (q: Point): number => q.x * q.x + q.y * q.y);
console.log(`${p.label} ${p.x + p.y} ${process.cwd()}`);
"""


def test_sdk_typescript_transpiled_and_run_on_node(sdk, dp):
    """TypeScript runs on Node.js through the TypeScript compiler module when deno is absent
    (the test host has node-typescript and no deno), with javascript's result shape."""
    ci = sdk()
    ci.start()
    r = first_result(ci.execute_code(TYPESCRIPT_CELL, language="typescript"))
    sc = r["structuredContent"]
    assert (sc["stdout"], sc["stderr"], sc["exitCode"], r["isError"]) == ("far 7 /workspace\n", "", 0, False), r
    assert sc["executionTime"] > 0
    # A syntax error is reported by the compiler, nothing runs.
    r = first_result(ci.execute_code("const n: number = ;\nconsole.log('ran')", language="typescript"))
    sc = r["structuredContent"]
    assert r["isError"] is True and sc["exitCode"] != 0 and sc["stdout"] == "", r
    assert "error TS" in sc["stderr"] and "expected" in sc["stderr"], sc["stderr"]
    # A runtime error is javascript's: isError, the message on stderr, located in the cell.
    r = first_result(ci.execute_code("function fail(why: string): never { throw new Error(why) }\nfail('ts boom')",
                                     language="typescript"))
    assert r["isError"] is True and "ts boom" in r["structuredContent"]["stderr"], r

    s = start(dp)
    r = invoke(dp, s, "executeCode", code="enum Color { Red = 4 }\nconst n: number = Color.Red * 10;\nconsole.log(n + 2)",
               language="typescript", runtime="nodejs")
    sc = r["structuredContent"]
    assert (sc["stdout"], sc["exitCode"], r["isError"]) == ("42\n", 0, False), r
    # Cells share the working directory (as javascript), not variables.
    r = invoke(dp, s, "executeCode", code="import * as fs from 'fs';\nfs.writeFileSync('from-ts.txt', 'hi');",
               language="typescript", runtime="nodejs")
    assert r["isError"] is False, r
    r = invoke(dp, s, "readFiles", paths=["from-ts.txt"])
    assert r["content"][0]["resource"]["text"] == "hi", r
    # runtime deno without deno stays a clear error.
    r = invoke(dp, s, "executeCode", code="const n: number = 1", language="typescript", runtime="deno")
    assert r["isError"] is True and "deno" in r["content"][0]["text"], r
    # The per-call limit applies to the whole cell.
    r = invoke(dp, s, "executeCode", code="while (true) {}", language="typescript", runtime="nodejs")
    assert r["isError"] is True and "limit" in r["structuredContent"]["stderr"], r
    assert r["structuredContent"]["executionTime"] < CALL_TIMEOUT + 2


def test_background_task_started_polled_and_stopped(dp):
    s = start(dp)
    r = invoke(dp, s, "startCommandExecution", command="echo begin; sleep 1; echo end")
    task = r["structuredContent"]["taskId"]
    assert r["structuredContent"]["taskStatus"] in ("submitted", "working")
    deadline = time.monotonic() + 20
    while True:
        r = invoke(dp, s, "getTask", taskId=task)
        if r["structuredContent"]["taskStatus"] != "working" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    sc = r["structuredContent"]
    assert (sc["taskStatus"], sc["exitCode"], sc["stdout"]) == ("completed", 0, "begin\nend\n")

    r = invoke(dp, s, "startCommandExecution", command="sleep 300")
    task = r["structuredContent"]["taskId"]
    assert invoke(dp, s, "getTask", taskId=task)["structuredContent"]["taskStatus"] == "working"
    r = invoke(dp, s, "stopTask", taskId=task)
    assert r["structuredContent"]["taskStatus"] == "canceled"
    assert invoke(dp, s, "getTask", taskId=task)["structuredContent"]["taskStatus"] == "canceled"
    # The command really is gone (a busy host may take a moment to reap it).
    deadline = time.monotonic() + 10
    while True:
        ps = invoke(dp, s, "executeCommand", command="ps -eo args")["structuredContent"]["stdout"]
        if "sleep 300" not in ps or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "sleep 300" not in ps, ps
    dp.stop_code_interpreter_session(codeInterpreterIdentifier=BUILTIN, sessionId=s)


# ----------------------------------------------------------------------------------------------
# Errors


def test_errors_are_aws_shaped(dp, dp_nv):
    with pytest.raises(ClientError) as e:
        invoke(dp, "01NOSUCHSESSION0000000000", "executeCode", code="1")
    assert error_code(e) == "ResourceNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    with pytest.raises(ClientError) as e:
        start(dp, ci="nosuch-0123456789")
    assert error_code(e) == "ResourceNotFoundException"

    for bad in (0, 28801):
        with pytest.raises(ClientError) as e:
            start(dp_nv, sessionTimeoutSeconds=bad)
        assert error_code(e) == "ValidationException"

    s = start(dp)
    # Missing arguments: a validationException frame inside the 200 event stream.
    for tool, args in [
        ("executeCode", {}),
        ("executeCommand", {}),
        ("readFiles", {}),
        ("writeFiles", {"content": []}),
        ("getTask", {"taskId": "nope"}),
    ]:
        with pytest.raises(EventStreamError) as e:
            invoke(dp, s, tool, **args)
        assert error_code(e) == "validationException", (tool, e.value)
    with pytest.raises(EventStreamError) as e:
        invoke(dp, s, "executeCode", code="1", language="python", runtime="nodejs")
    assert error_code(e) == "validationException"
    # Unknown tool names and wrong types never reach the session: 400 from the model.
    with pytest.raises(ClientError) as e:
        invoke(dp_nv, s, "formatDisk")
    assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        invoke(dp_nv, s, "executeCode", code=42)
    assert error_code(e) == "ValidationException"
    # Paths cannot leave the working directory.
    for path in ("../../etc/passwd", "/etc/passwd", "a/../../x"):
        r = invoke(dp, s, "readFiles", paths=[path])
        assert r["isError"] is True, (path, r)
    r = invoke(dp, s, "writeFiles", content=[{"path": "../escape.txt", "text": "x"}])
    assert r["isError"] is True
    invoke(dp, s, "executeCommand", command="ln -s / rootlink")
    r = invoke(dp, s, "readFiles", paths=["rootlink/etc/hostname"])
    assert r["isError"] is True and "outside" in r["content"][0]["text"]
    # A session of one code interpreter is unknown to another.
    with pytest.raises(ClientError) as e:
        dp.get_code_interpreter_session(codeInterpreterIdentifier="other-0123456789", sessionId=s)
    assert error_code(e) == "ResourceNotFoundException"

    dp.stop_code_interpreter_session(codeInterpreterIdentifier=BUILTIN, sessionId=s)
    with pytest.raises(ClientError) as e:
        invoke(dp, s, "executeCode", code="1")
    assert error_code(e) == "ResourceNotFoundException"
    assert "TERMINATED" in e.value.response["Error"]["Message"]
    # Stop is idempotent.
    dp.stop_code_interpreter_session(codeInterpreterIdentifier=BUILTIN, sessionId=s)


def test_start_is_idempotent_per_client_token(dp):
    token = "tok-" + "a" * 40
    a = dp.start_code_interpreter_session(codeInterpreterIdentifier=BUILTIN, name="n", clientToken=token)
    b = dp.start_code_interpreter_session(codeInterpreterIdentifier=BUILTIN, name="n", clientToken=token)
    assert a["sessionId"] == b["sessionId"]
    with pytest.raises(ClientError) as e:
        dp.start_code_interpreter_session(codeInterpreterIdentifier=BUILTIN, name="other", clientToken=token)
    assert error_code(e) == "ValidationException"
    dp.stop_code_interpreter_session(codeInterpreterIdentifier=BUILTIN, sessionId=a["sessionId"])


def test_listing_pages_newest_first(dp):
    ids = [start(dp, name=f"page-{i}") for i in range(3)]
    seen, token = [], None
    while True:
        kw = {"nextToken": token} if token else {}
        page = dp.list_code_interpreter_sessions(codeInterpreterIdentifier=BUILTIN, maxResults=2, **kw)
        assert len(page["items"]) <= 2
        seen += [i["sessionId"] for i in page["items"]]
        token = page.get("nextToken")
        if not token:
            break
    positions = [seen.index(i) for i in ids]
    assert positions == sorted(positions, reverse=True)
    assert len(seen) == len(set(seen))
    for i in ids:
        dp.stop_code_interpreter_session(codeInterpreterIdentifier=BUILTIN, sessionId=i)


# ----------------------------------------------------------------------------------------------
# Sandboxing: network, isolation, timeouts, crashes, bad input


PROBE = """
import socket, os
host = os.environ.get('HANGAR_HOST_LOOPBACK', '10.0.2.2')
try:
    socket.create_connection((host, {port}), timeout=3).close()
    print('reached')
except OSError as e:
    print('unreachable', type(e).__name__)
"""


def test_sandbox_mode_has_no_network_public_reaches_host_loopback(dp, cp, ci_server):
    port = ci_server.port
    s = start(dp)  # the built-in interpreter's network mode is SANDBOX
    out = py(dp, s, PROBE.format(port=port))["structuredContent"]["stdout"]
    assert out.startswith("unreachable"), out
    ifaces = invoke(dp, s, "executeCommand", command="cat /proc/net/dev")["structuredContent"]["stdout"]
    assert "eth0" not in ifaces and "lo:" in ifaces
    dp.stop_code_interpreter_session(codeInterpreterIdentifier=BUILTIN, sessionId=s)

    created = {}
    for mode in ("PUBLIC", "SANDBOX", "VPC"):
        kw = {}
        if mode == "VPC":
            kw["vpcConfig"] = {"securityGroups": ["sg-0123456789abcdef0"], "subnets": ["subnet-0123456789abcdef0"]}
        r = cp.create_code_interpreter(
            name=support.uniq(f"ci_{mode.lower()}"),
            networkConfiguration={"networkMode": mode, **kw},
        )
        created[mode] = r["codeInterpreterId"]
    for mode, ci in created.items():
        deadline = time.monotonic() + 20
        while cp.get_code_interpreter(codeInterpreterId=ci)["status"] != "READY":
            assert time.monotonic() < deadline, f"{mode} interpreter never READY"
            time.sleep(0.1)
        s = start(dp, ci=ci)
        out = py(dp, s, PROBE.format(port=port), ci=ci)["structuredContent"]["stdout"]
        # VPC behaves like PUBLIC on a single host.
        want = "unreachable" if mode == "SANDBOX" else "reached"
        assert out.startswith(want), (mode, out)
        if mode == "PUBLIC":
            # PUBLIC reaches the host's loopback services (here: Hangar itself).
            code = (
                "import urllib.request, os\n"
                f"print(urllib.request.urlopen('http://' + os.environ['HANGAR_HOST_LOOPBACK'] + ':{port}/_hangar/health', timeout=5).status)"
            )
            assert py(dp, s, code, ci=ci)["structuredContent"]["stdout"] == "200\n"
        dp.stop_code_interpreter_session(codeInterpreterIdentifier=ci, sessionId=s)
        cp.delete_code_interpreter(codeInterpreterId=ci)


def test_two_sessions_are_isolated(dp):
    a, b = start(dp), start(dp)
    py(dp, a, "secret = 'a-only'\nopen('mine.txt', 'w').write('a')")
    r = py(dp, b, "print(secret)")
    assert r["isError"] and "NameError" in r["structuredContent"]["stderr"]
    names = [x["name"] for x in invoke(dp, b, "listFiles", path="")["content"]]
    assert "mine.txt" not in names
    assert invoke(dp, b, "readFiles", paths=["mine.txt"])["isError"] is True
    # Separate users, and neither sees the other's processes.
    uid = lambda s: invoke(dp, s, "executeCommand", command="id -u")["structuredContent"]["stdout"]  # noqa: E731
    assert uid(a) != uid(b)
    invoke(dp, a, "startCommandExecution", command="sleep 123")
    ps_b = invoke(dp, b, "executeCommand", command="ps -eo args")["structuredContent"]["stdout"]
    assert "sleep 123" not in ps_b
    # The host's files are read-only, the working directory is writable.
    r = invoke(dp, a, "executeCommand", command="touch /usr/hangar-escape")
    assert r["isError"] is True
    for s in (a, b):
        dp.stop_code_interpreter_session(codeInterpreterIdentifier=BUILTIN, sessionId=s)


def test_session_timeout_ends_the_session_even_mid_call(dp):
    s = start(dp, sessionTimeoutSeconds=2)
    assert py(dp, s, "print(1)")["structuredContent"]["stdout"] == "1\n"
    time.sleep(2.5)
    got = dp.get_code_interpreter_session(codeInterpreterIdentifier=BUILTIN, sessionId=s)
    assert got["status"] == "TERMINATED" and got["sessionTimeoutSeconds"] == 2
    with pytest.raises(ClientError) as e:
        py(dp, s, "print(1)")
    assert error_code(e) == "ResourceNotFoundException"

    # A call still running when the session's time is up returns, reporting the end.
    s = start(dp, sessionTimeoutSeconds=1)
    t0 = time.monotonic()
    r = py(dp, s, "import time\ntime.sleep(30)")
    assert time.monotonic() - t0 < CALL_TIMEOUT + 1
    assert r["isError"] is True
    if "TERMINATED" in r["content"][0]["text"]:
        got = dp.get_code_interpreter_session(codeInterpreterIdentifier=BUILTIN, sessionId=s)
        assert got["status"] == "TERMINATED"


def test_crashes_and_endless_loops_leave_the_session_usable(dp):
    s = start(dp)
    py(dp, s, "kept = 'still here'")
    r = py(dp, s, "import os\nos._exit(3)")
    assert r["isError"] is True and "kernel died" in r["content"][0]["text"]
    assert py(dp, s, "print('after exit')")["structuredContent"]["stdout"] == "after exit\n"
    r = py(dp, s, "import ctypes\nctypes.string_at(0)")  # segfault
    assert r["isError"] is True and "signal 11" in r["content"][0]["text"]
    assert py(dp, s, "print(2 + 2)")["structuredContent"]["stdout"] == "4\n"

    # An endless loop ends at the per-call limit; the interrupt keeps the context.
    py(dp, s, "kept = 'still here'")
    t0 = time.monotonic()
    r = py(dp, s, "while True:\n    pass")
    assert CALL_TIMEOUT - 0.5 <= time.monotonic() - t0 < CALL_TIMEOUT + 5
    assert r["isError"] is True and "per-call limit" in r["content"][0]["text"]
    assert py(dp, s, "print(kept)")["structuredContent"]["stdout"] == "still here\n"
    # Same for a command.
    r = invoke(dp, s, "executeCommand", command="while :; do :; done")
    assert r["isError"] is True and "per-call limit" in r["content"][0]["text"]
    assert invoke(dp, s, "executeCommand", command="echo ok")["structuredContent"]["stdout"] == "ok\n"
    dp.stop_code_interpreter_session(codeInterpreterIdentifier=BUILTIN, sessionId=s)


def test_huge_output_is_truncated_with_a_marker(dp):
    s = start(dp)
    r = py(dp, s, "print('x' * 5_000_000)\nprint('done')")
    out = r["structuredContent"]["stdout"]
    assert len(out) < 1_100_000 and "output truncated" in out and r["isError"] is False
    r = invoke(dp, s, "executeCommand", command="head -c 4000000 /dev/zero | tr '\\0' y; echo")
    out = r["structuredContent"]["stdout"]
    assert len(out) < 1_100_000 and "output truncated" in out
    dp.stop_code_interpreter_session(codeInterpreterIdentifier=BUILTIN, sessionId=s)


def test_fork_bombs_and_memory_hogs_are_contained(dp):
    victim, neighbour = start(dp), start(dp)
    py(dp, neighbour, "n = 41")

    r = py(dp, victim, "big = []\nwhile True:\n    big.append(bytearray(16 << 20))")
    assert r["isError"] is True, r
    text = r["content"][0]["text"]
    assert "MemoryError" in text or "kernel died" in text, text
    assert py(dp, victim, "print('victim alive')")["structuredContent"]["stdout"] == "victim alive\n"
    assert py(dp, neighbour, "print(n + 1)")["structuredContent"]["stdout"] == "42\n"

    r = py(dp, victim, "import os\nwhile True:\n    os.fork()")
    assert r["isError"] is True, r
    r = invoke(dp, victim, "executeCommand", command=":(){ :|:& };:")  # the shell classic
    assert py(dp, neighbour, "print(n)")["structuredContent"]["stdout"] == "41\n"
    assert r["isError"] is False or "limit" in r["content"][0]["text"], r
    # The bombs' processes are gone (a command's leftovers end with it; forked kernels exit
    # when fork fails), so the victim is usable again, its context intact.
    deadline = time.monotonic() + 10
    while True:
        r = py(dp, victim, "print('victim alive')")
        if not r["isError"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r["structuredContent"]["stdout"] == "victim alive\n", r
    for s in (victim, neighbour):
        dp.stop_code_interpreter_session(codeInterpreterIdentifier=BUILTIN, sessionId=s)
    # The server keeps working.
    s = start(dp)
    assert py(dp, s, "print('fresh')")["structuredContent"]["stdout"] == "fresh\n"
    dp.stop_code_interpreter_session(codeInterpreterIdentifier=BUILTIN, sessionId=s)


def test_raw_event_stream_frame(ci_server, dp):
    """The wire form botocore decodes: one event-stream frame with the documented headers."""
    s = start(dp)
    raw = support.RawClient(ci_server.url)
    body = json.dumps({"name": "executeCode", "arguments": {"code": "print(7)", "language": "python"}})
    resp = raw.request(
        "POST",
        f"/code-interpreters/{BUILTIN}/tools/invoke",
        body=body.encode(),
        headers={"x-amzn-code-interpreter-session-id": s, "Content-Type": "application/json"},
    )
    assert resp.status == 200, resp.body
    assert resp.headers.get("content-type") == "application/vnd.amazon.eventstream"
    assert resp.headers.get("x-amzn-code-interpreter-session-id") == s
    frame = resp.body
    total = int.from_bytes(frame[0:4], "big")
    headers_len = int.from_bytes(frame[4:8], "big")
    assert total == len(frame)
    headers = frame[12 : 12 + headers_len]
    assert b":event-type" in headers and b"result" in headers and b":message-type" in headers
    payload = json.loads(frame[12 + headers_len : total - 4])
    assert payload["structuredContent"]["stdout"] == "7\n"
    dp.stop_code_interpreter_session(codeInterpreterIdentifier=BUILTIN, sessionId=s)


def test_malformed_requests_are_400s(ci_server, dp):
    raw = support.RawClient(ci_server.url)
    s = start(dp)
    path = f"/code-interpreters/{BUILTIN}/tools/invoke"
    hdrs = {"x-amzn-code-interpreter-session-id": s, "Content-Type": "application/json"}
    for body in (b"{not json", b'{"name": "executeCode", "arguments": []}', b"[]"):
        resp = raw.request("POST", path, body=body, headers=hdrs)
        assert (resp.status, resp.error_type) == (400, "ValidationException"), (body, resp.body)
    # No session header: nothing to run the tool in.
    resp = raw.request("POST", path, body=b'{"name": "executeCode", "arguments": {"code": "1"}}',
                       headers={"Content-Type": "application/json"})
    assert (resp.status, resp.error_type) == (400, "ValidationException"), resp.body
    # A session id breaking the model's pattern.
    resp = raw.request("POST", path, body=b'{"name": "listFiles"}',
                       headers={**hdrs, "x-amzn-code-interpreter-session-id": "bad/id"})
    assert (resp.status, resp.error_type) == (400, "ValidationException"), resp.body
    # The session is unharmed by all of it.
    assert py(dp, s, "print('fine')")["structuredContent"]["stdout"] == "fine\n"
    dp.stop_code_interpreter_session(codeInterpreterIdentifier=BUILTIN, sessionId=s)
