"""Sandboxes: what a session's program can and cannot see or do.

One sandbox per session, run as a non-root uid without capabilities, code read-only at /var/task,
private writable /tmp, own PID and network namespaces, no view of the host's home, of Hangar's
data dir or of other sessions; PUBLIC network reaches the host's loopback services through the
mapped address; memory, CPU and process limits (--session-*) hold and a session that breaks
them takes nobody else down.
"""

from __future__ import annotations

import os
import uuid

import pytest

import session_kit as kit

CONTAINED = ("ENOENT", "EACCES", "EPERM")


def probe(deploy, rt, sid, *ops, qualifier="DEFAULT"):
    got = deploy.invoke(rt.arn, sid, {"ops": list(ops)}, qualifier=qualifier)
    assert got["agent"] == "probe" and len(got["results"]) == len(ops), got
    return got["results"]


def host_entries(path: str) -> set:
    try:
        return set(os.listdir(path))
    except OSError:
        return set()


def assert_not_visible(result: dict, host_path: str) -> None:
    """listdir of a host directory from inside: refused, missing, or at least none of the
    host's entries (an empty stand-in mounted there is fine)."""
    if result["ok"]:
        leaked = set(result["entries"]) & host_entries(host_path)
        assert not leaked, f"{host_path}: the sandbox sees host entries {sorted(leaked)[:10]}"
    else:
        assert result["errno"] in CONTAINED, result


def agent_processes(procs: dict) -> list:
    """The agent programs among a /proc listing: `python… main.py` (not a wrapper such as a
    sandbox's init, whose command line may contain main.py too)."""
    out = []
    for p in procs["procs"]:
        argv = p["cmdline"].split()
        is_python = argv and os.path.basename(argv[0]).startswith("python")
        if is_python and any(a == "main.py" or a.endswith("/main.py") for a in argv[1:]):
            out.append(p["cmdline"])
    return out


def test_filesystem_identity_and_processes(deploy, sessions_server, tmp_path):
    rt = deploy.create("probe")
    a, b = kit.new_session_id("iso-a"), kit.new_session_id("iso-b")
    secret_name = f"hangar-probe-{uuid.uuid4().hex}.txt"
    secret_path = f"/tmp/{secret_name}"
    host_file = tmp_path / "host-only.txt"
    host_file.write_text("host secret", encoding="utf-8")
    data_dir = str(sessions_server.data_dir)

    ra = probe(
        deploy, rt, a,
        {"op": "whoami"},
        {"op": "write", "path": secret_path, "data": "session A was here"},
        {"op": "read", "path": secret_path},
        {"op": "write", "path": "/var/task/injected.py", "data": "x = 1"},
        {"op": "listdir", "path": "/var/task"},
        {"op": "listdir", "path": "/root"},
        {"op": "listdir", "path": data_dir},
        {"op": "read", "path": str(host_file)},
        {"op": "read", "path": "/etc/shadow"},
        {"op": "procs"},
    )  # fmt: skip
    who, wrote, read_back, ro_write, task, root, data, host, shadow, procs_a = ra

    # Identity: non-root, no capabilities, code at /var/task.
    assert who["uid"] != 0 and who["euid"] != 0, who
    assert int(who["status"].get("CapEff", "0"), 16) == 0, f"capabilities left: {who['status']}"
    assert who["cwd"] == "/var/task" and who["script"] == "/var/task/main.py", who
    assert who["session_id"] == a

    # /tmp is writable, /var/task is not.
    assert wrote == {"ok": True}, wrote
    assert read_back == {"ok": True, "data": "session A was here"}, read_back
    assert ro_write["ok"] is False and ro_write["errno"] in ("EROFS", "EACCES", "EPERM"), ro_write
    assert "main.py" in task["entries"] and "bedrock_agentcore" in task["entries"], task

    # The host's home, Hangar's data dir and the test's own files are out of sight.
    assert_not_visible(root, "/root")
    assert data["ok"] is False and data["errno"] in CONTAINED, f"Hangar's data dir: {data}"
    assert host["ok"] is False and host["errno"] in CONTAINED, f"a host file was readable: {host}"
    assert shadow["ok"] is False, "/etc/shadow is readable"

    # Own PID namespace: only this sandbox's processes.
    cmdlines = [p["cmdline"] for p in procs_a["procs"]]
    assert len(agent_processes(procs_a)) == 1, cmdlines
    assert len(cmdlines) <= 10, f"{len(cmdlines)} processes visible: {cmdlines[:20]}"
    for foreign in ("pytest", "moto.server", "hangar serve"):
        assert not any(foreign in c for c in cmdlines), f"host process visible: {cmdlines}"

    # Session B: its own /tmp, its own processes.
    rb = probe(
        deploy, rt, b,
        {"op": "whoami"},
        {"op": "read", "path": secret_path},
        {"op": "listdir", "path": "/tmp"},
        {"op": "procs"},
    )  # fmt: skip
    who_b, steal, tmp_b, procs_b = rb
    assert who_b["boot_id"] != who["boot_id"]
    assert steal["ok"] is False and steal["errno"] in CONTAINED, f"B read A's /tmp file: {steal}"
    assert tmp_b["ok"] and secret_name not in tmp_b["entries"], tmp_b
    assert len(agent_processes(procs_b)) == 1, f"B sees A's process: {procs_b['procs']}"

    for sid in (a, b):
        deploy.stop(rt.arn, sid)


def test_public_network_reaches_host_loopback_through_mapped_address(deploy):
    rt = deploy.create("probe")
    sid = kit.new_session_id("net")
    with kit.HostService() as svc:
        env, via_mapped, via_own_lo = probe(
            deploy, rt, sid,
            {"op": "env", "names": ["HANGAR_HOST_LOOPBACK"]},
            {"op": "http_get", "host": "$LOOPBACK", "port": svc.port, "path": "/token"},
            {"op": "connect", "host": "127.0.0.1", "port": svc.port, "timeout": 3},
        )  # fmt: skip
    mapped = env["values"]["HANGAR_HOST_LOOPBACK"]
    # TODO(contract): HANGAR_HOST_LOOPBACK is the agreed way for the sandbox to find the host's
    # loopback (an address such as 10.0.2.2). If the server settles on another mechanism,
    # change the probe's "$LOOPBACK" resolution, not this test's expectations.
    assert mapped, "HANGAR_HOST_LOOPBACK is not set in the sandbox"
    assert via_mapped["ok"] and via_mapped["status"] == 200, via_mapped
    assert via_mapped["body"] == svc.token
    assert svc.hits == ["/token"], svc.hits
    # 127.0.0.1 inside is the sandbox's own loopback (own network namespace).
    assert via_own_lo["ok"] is False, "the sandbox shares the host's network namespace"
    deploy.stop(rt.arn, sid)


def test_default_process_limit_allows_a_normal_amount(deploy):
    rt = deploy.create("probe")
    sid = kit.new_session_id("forks")
    (forks,) = probe(deploy, rt, sid, {"op": "fork", "count": 100})
    assert forks["forked"] == 100, f"the default --session-max-processes must allow 100: {forks}"
    deploy.stop(rt.arn, sid)


# --------------------------------------------------------------------------------------------
# A server with tight limits


MEMORY_MIB = 128
CPUS = 0.5
MAX_PROCESSES = 32


@pytest.fixture(scope="module")
def limited(module_servers, s3, artifacts) -> kit.Deployer:
    srv = module_servers.start(
        "limited",
        [
            "--s3-endpoint", s3.url,
            "--session-memory-mib", str(MEMORY_MIB),
            "--session-cpus", str(CPUS),
            "--session-max-processes", str(MAX_PROCESSES),
        ],
        env=kit.s3_env(),
    )  # fmt: skip
    return kit.Deployer(srv, artifacts)


def test_memory_limit_kills_only_the_offending_session(limited):
    d = limited
    bystander_rt = d.create("counter")
    bystander = kit.new_session_id("bystander")
    boot = d.invoke(bystander_rt.arn, bystander, {})["boot_id"]

    hog_rt = d.create("memhog")
    hog = kit.new_session_id("hog")
    base = d.invoke(hog_rt.arn, hog, {"action": "small"})
    assert base["rss_mib"] < MEMORY_MIB - 24, f"the agent alone nearly fills the limit: {base}"

    e = kit.client_error(
        d.invoke_raw, hog_rt.arn, hog, {"action": "hog", "step_mib": 8, "max_mib": 512}
    )
    code, status, message = kit.error_info(e)
    assert status < 500, e.response
    assert (code, status) == ("RuntimeClientError", 424), e.response

    logs = kit.session_logs(d.url, hog_rt.rid, hog)
    steps = [line for line in logs["stderr"].splitlines() if line.startswith("memhog allocated")]
    assert steps, f"the hog never allocated: {logs['stderr'][-1000:]}"
    anon = [int(line.split(" anon ")[1].split()[0]) for line in steps]
    assert max(anon) <= MEMORY_MIB, f"memory went past the {MEMORY_MIB} MiB limit: {steps[-3:]}"
    kit.wait_session_gone(d.url, hog_rt.rid, hog, timeout=15)

    # Everybody else carries on: the bystander's sandbox, the hog's runtime, the control plane.
    after = d.invoke(bystander_rt.arn, bystander, {})
    assert (after["count"], after["boot_id"]) == (2, boot), "the bystander session was disturbed"
    assert d.invoke(hog_rt.arn, hog, {"action": "small"})["action"] == "small"
    assert d.invoke(hog_rt.arn, kit.new_session_id("hog2"), {"action": "small"})["rss_mib"] > 0
    assert d.cp.get_agent_runtime(agentRuntimeId=hog_rt.rid)["status"] == "READY"
    for rt, sid in ((bystander_rt, bystander), (hog_rt, hog)):
        d.stop(rt.arn, sid)


def test_process_limit(limited):
    rt = limited.create("probe")
    sid = kit.new_session_id("pids")
    (forks,) = probe(limited, rt, sid, {"op": "fork", "count": 64})
    assert 0 < forks["forked"] < MAX_PROCESSES, f"--session-max-processes {MAX_PROCESSES}: {forks}"
    assert forks["fork_error"] and forks["fork_error"]["errno"] == "EAGAIN", forks
    # The agent still answers after hitting the limit.
    (again,) = probe(limited, rt, sid, {"op": "fork", "count": 3})
    assert again["forked"] == 3, again
    limited.stop(rt.arn, sid)


def test_cpu_limit(limited):
    rt = limited.create("probe")
    sid = kit.new_session_id("cpu")
    (burn,) = probe(limited, rt, sid, {"op": "burn", "procs": 2, "seconds": 2.0})
    # Two spinning processes get ~2 CPUs unlimited on an idle 2-core host; with --session-cpus 0.5
    # they share half a CPU. Only the upper bound is asserted, so a loaded host cannot fail this
    # test (it can make a missing limit go unnoticed, though).
    budget = CPUS * burn["wall"] * 1.25 + 0.25
    assert burn["cpu"] <= budget, (
        f"{burn['cpu']:.2f} s CPU in {burn['wall']:.2f} s wall (limit {CPUS})"
    )
    assert burn["cpu"] >= 0.2, burn  # it did run
    limited.stop(rt.arn, sid)
