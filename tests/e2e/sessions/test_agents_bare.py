"""The test agents themselves, run bare on the host (no Hangar, no sandbox).

Each agent's real zip is unpacked and started as `python3.11 main.py` (cwd = the unpacked
tree, as /var/task will be) on a free loopback port (PORT, the toolkit's local-mode convention).
These prove the agents speak the container contract (`GET /ping` with status and
`time_of_last_update`, `POST /invocations`, SSE), so a failure in the Hangar tests is Hangar's.
They need no Hangar binary.
"""

from __future__ import annotations

import time

import pytest

import session_kit as kit

pytestmark = pytest.mark.skipif(
    kit.python_version(kit.RUNTIME_PYTHON) is None,
    reason=f"{kit.RUNTIME_PYTHON} (the PYTHON_3_11 runtime's interpreter) is not installed",
)


@pytest.fixture
def bare(agent_builder, tmp_path):
    started = []

    def run(agent: str, env: dict | None = None, healthy: bool = True) -> kit.BareAgent:
        a = kit.BareAgent(agent_builder.zip_path(agent), tmp_path / agent, env)
        started.append(a)
        a.start()
        if healthy:
            a.wait_healthy()
        return a

    yield run
    for a in started:
        a.stop()


def assert_ping(body: dict, status: str = "Healthy") -> None:
    assert body.get("status") == status, body
    t = body.get("time_of_last_update")
    assert isinstance(t, int) and abs(t - time.time()) < 3600, body


def test_zip_layout_and_permissions(agent_builder, tmp_path):
    import zipfile

    with zipfile.ZipFile(agent_builder.zip_path("echo")) as zf:
        names = set(zf.namelist())
        infos = {i.filename: i for i in zf.infolist()}
    assert "main.py" in names
    assert "bedrock_agentcore/runtime/app.py" in names
    assert any(n.startswith("pydantic_core/_pydantic_core.cpython-311-") for n in names), sorted(
        n for n in names if n.startswith("pydantic_core/")
    )
    assert (infos["main.py"].external_attr >> 16) & 0o777 == 0o644
    executables = [i for i in infos.values() if (i.external_attr >> 16) & 0o111]
    assert executables, "no file kept an executable bit (POSIX permissions lost)"


def test_echo(bare):
    a = bare("echo", env={"ECHO_GREETING": "hello"})
    assert_ping(a.ping())
    sid = kit.new_session_id("bare-echo")
    got = a.invoke_json({"prompt": "hi", "n": [1, 2]}, sid)
    assert got["payload"] == {"prompt": "hi", "n": [1, 2]}
    assert got["session_id"] == sid and got["session_header"] == sid
    assert got["env"] == {"ECHO_GREETING": "hello"}
    assert got["cwd"] == str(a.task) and got["script"] == str(a.task / "main.py")
    assert got["python"][:2] == [3, 11]


def test_counter(bare):
    a = bare("counter")
    sid = kit.new_session_id("bare-counter")
    counts = [a.invoke_json({}, sid)["count"] for _ in range(3)]
    assert counts == [1, 2, 3]
    last = a.invoke_json({}, sid)
    assert last["file_lines"] == 4 and last["file_counts"] == [1, 2, 3, 4]
    assert last["file_sessions"] == [sid]


def test_streaming_is_incremental(bare):
    a = bare("streaming")
    status, ctype, events = a.stream({"events": 5, "delay": 0.4}, kit.new_session_id("bare-sse"))
    assert status == 200 and ctype.startswith("text/event-stream"), (status, ctype)
    assert [e["index"] for _, e in events] == [0, 1, 2, 3, 4]
    first_arrival = events[0][0]
    last_produced = events[-1][1]["produced_at"]
    assert first_arrival < last_produced - 1.0, "events were not sent as produced"


def test_busy_reports_healthy_busy(bare):
    a = bare("busy")
    before = a.ping()
    assert_ping(before, "Healthy")
    time.sleep(1.1)  # time_of_last_update has 1 s resolution
    got = a.invoke_json({"action": "start", "seconds": 2})
    assert got["ping"] == "HealthyBusy" and got["active_tasks"] == 1, got
    busy = a.ping()
    assert_ping(busy, "HealthyBusy")
    assert busy["time_of_last_update"] > before["time_of_last_update"]
    deadline = time.monotonic() + 10
    while a.ping()["status"] != "Healthy":
        assert time.monotonic() < deadline, "still HealthyBusy after its task ended"
        time.sleep(0.2)


def test_crash_exits_with_import_error(bare):
    a = bare("crash", healthy=False)
    rc = a.wait_exit(30)
    assert rc != 0
    assert "No module named 'nonexistent_module_xyz'" in a.stderr(), a.stderr()


def test_memhog_small_cap(bare):
    a = bare("memhog")
    got = a.invoke_json({"action": "hog", "step_mib": 8, "max_mib": 24})
    assert got["survived"] is True and got["allocated_mib"] == 24
    assert "memhog allocated 24 MiB rss " in a.stderr() and " anon " in a.stderr()
    assert a.invoke_json({"action": "small"})["action"] == "small"


def test_probe_ops(bare, tmp_path):
    a = bare("probe")
    path = str(a.tmp / "probe.txt")
    with kit.HostService() as svc:
        got = a.invoke_json(
            {
                "ops": [
                    {"op": "whoami"},
                    {"op": "write", "path": path, "data": "x1"},
                    {"op": "read", "path": path},
                    {"op": "read", "path": str(tmp_path / "nope")},
                    {"op": "listdir", "path": str(a.task)},
                    {"op": "procs"},
                    {"op": "fork", "count": 5},
                    {"op": "burn", "procs": 1, "seconds": 0.3},
                    # bare on the host, HANGAR_HOST_LOOPBACK is unset: 127.0.0.1 is the host
                    {"op": "http_get", "host": "$LOOPBACK", "port": svc.port, "path": "/token"},
                    {"op": "connect", "host": "127.0.0.1", "port": kit.free_port(), "timeout": 2},
                    {"op": "no_such_op"},
                ]
            },
            kit.new_session_id("bare-probe"),
        )
    r = got["results"]
    assert r[0]["ok"] and r[0]["cwd"] == str(a.task)
    assert r[1] == {"ok": True}
    assert r[2] == {"ok": True, "data": "x1"}
    assert r[3]["ok"] is False and r[3]["errno"] == "ENOENT"
    assert "main.py" in r[4]["entries"]
    assert any(p["pid"] == got["pid"] for p in r[5]["procs"])
    assert r[6]["forked"] == 5 and r[6]["fork_error"] is None
    assert r[7]["cpu"] > 0.1 and r[7]["wall"] >= 0.3
    assert r[8]["ok"] and r[8]["status"] == 200 and r[8]["body"] == svc.token, r[8]
    assert r[9]["ok"] is False and r[9]["errno"] == "ECONNREFUSED", r[9]
    assert r[10]["ok"] is False


@pytest.mark.parametrize("agent", ["version_a", "version_b"])
def test_version_agents(bare, agent):
    a = bare(agent)
    assert a.invoke_json({})["agent"] == agent[-1].upper()
    assert a.invoke_json({})["count"] == 2


def test_slowstart_serves_after_its_delay(bare):
    a = bare("slowstart", env={"SLOWSTART_SECONDS": "0.5"})
    assert a.invoke_json({})["agent"] == "slowstart"
    assert "slowstart: sleeping 0.5 s" in a.stderr()
