"""probe: an action dispatcher for the isolation tests.

Payload {"ops": [{"op": NAME, ...args}, ...]} runs each op in order and returns
{"results": [...]} with one entry per op. No op raises: failures come back as
{"ok": false, "error": <exception type>, "errno": <errno name>, "message": ...}.

Ops: whoami, write(path, data), read(path), listdir(path), procs, env(names),
connect(host, port, timeout), http_get(host, port, path, timeout), fork(count),
burn(procs, seconds), cgroup. A host of "$LOOPBACK" means the address the sandbox reaches the
host's loopback through: $HANGAR_HOST_LOOPBACK, else 127.0.0.1.
"""

import errno
import http.client
import os
import socket
import sys
import time
import uuid

from bedrock_agentcore.runtime import BedrockAgentCoreApp

BOOT_ID = uuid.uuid4().hex
app = BedrockAgentCoreApp()


def _err(e):
    code = getattr(e, "errno", None)
    return {
        "ok": False,
        "error": type(e).__name__,
        "errno": errno.errorcode.get(code) if isinstance(code, int) else None,
        "message": str(e),
    }


def _host(h):
    if h == "$LOOPBACK":
        # TODO(contract): HANGAR_HOST_LOOPBACK is how the server tells a PUBLIC-network sandbox
        # where the host's loopback services are (e.g. 10.0.2.2). If the server does not set it,
        # 127.0.0.1 is tried, which inside a private network namespace is the sandbox's own lo.
        return os.environ.get("HANGAR_HOST_LOOPBACK") or "127.0.0.1"
    return h


def op_whoami(context):
    status = {}
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("CapEff", "CapBnd", "NoNewPrivs", "Seccomp", "NSpid"):
                    status[key] = value.strip()
    except OSError as e:
        status["error"] = str(e)
    return {
        "ok": True,
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "cwd": os.getcwd(),
        "script": os.path.abspath(__file__),
        "hostname": socket.gethostname(),
        "session_id": context.session_id,
        "boot_id": BOOT_ID,
        "status": status,
    }


def op_write(path, data=""):
    with open(path, "w", encoding="utf-8") as f:
        f.write(data)
    return {"ok": True}


def op_read(path):
    with open(path, "rb") as f:
        data = f.read(65536)
    return {"ok": True, "data": data.decode("utf-8", "replace")}


def op_listdir(path):
    return {"ok": True, "entries": sorted(os.listdir(path))}


def op_procs():
    procs = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError as e:
            cmd = f"<{type(e).__name__}>"
        procs.append({"pid": int(name), "cmdline": cmd})
    return {"ok": True, "procs": sorted(procs, key=lambda p: p["pid"])}


def op_env(names):
    return {"ok": True, "values": {n: os.environ.get(n) for n in names}}


def op_connect(host, port, timeout=3.0):
    host = _host(host)
    try:
        with socket.create_connection((host, int(port)), timeout=float(timeout)):
            return {"ok": True, "host": host}
    except OSError as e:
        return dict(_err(e), host=host)


def op_http_get(host, port, path="/", timeout=5.0):
    host = _host(host)
    try:
        conn = http.client.HTTPConnection(host, int(port), timeout=float(timeout))
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read(65536).decode("utf-8", "replace")
        conn.close()
        return {"ok": True, "host": host, "status": resp.status, "body": body}
    except (OSError, http.client.HTTPException) as e:
        return dict(_err(e), host=host)


def op_fork(count=50):
    """Forks up to `count` children that wait on a pipe; reports how many forks succeeded."""
    r, w = os.pipe()
    pids = []
    error = None
    try:
        for _ in range(int(count)):
            try:
                pid = os.fork()
            except OSError as e:
                error = _err(e)
                break
            if pid == 0:  # child: wait until every writer is closed, then leave
                try:
                    os.close(w)
                    os.read(r, 1)
                finally:
                    os._exit(0)
            pids.append(pid)
    finally:
        os.close(w)
        os.close(r)
        for pid in pids:
            os.waitpid(pid, 0)
    return {"ok": True, "requested": int(count), "forked": len(pids), "fork_error": error}


def op_burn(procs=2, seconds=2.0):
    """`procs` children spin for `seconds` of wall time; returns the CPU time they got."""
    t0 = time.monotonic()
    pids = []
    for _ in range(int(procs)):
        pid = os.fork()
        if pid == 0:
            end = time.monotonic() + float(seconds)
            n = 0
            while time.monotonic() < end:
                n += 1
            os._exit(0)
        pids.append(pid)
    cpu = 0.0
    for pid in pids:
        _, _, usage = os.wait4(pid, 0)
        cpu += usage.ru_utime + usage.ru_stime
    return {"ok": True, "procs": int(procs), "wall": time.monotonic() - t0, "cpu": cpu}


def op_cgroup():
    out = {"ok": True}
    for path in ("/proc/self/cgroup", "/proc/self/mountinfo"):
        try:
            with open(path, encoding="utf-8") as f:
                out[os.path.basename(path)] = f.read()[:8000]
        except OSError as e:
            out[os.path.basename(path)] = str(e)
    return out


OPS = {
    "whoami": op_whoami,
    "write": op_write,
    "read": op_read,
    "listdir": op_listdir,
    "procs": op_procs,
    "env": op_env,
    "connect": op_connect,
    "http_get": op_http_get,
    "fork": op_fork,
    "burn": op_burn,
    "cgroup": op_cgroup,
}


@app.entrypoint
def invoke(payload, context):
    results = []
    for spec in payload.get("ops", []):
        spec = dict(spec)
        name = spec.pop("op")
        fn = OPS.get(name)
        if fn is None:
            results.append({"ok": False, "error": "UnknownOp", "message": name})
            continue
        try:
            results.append(fn(context, **spec) if name == "whoami" else fn(**spec))
        except Exception as e:  # noqa: BLE001 - reported to the test, never raised
            results.append(_err(e))
    print(f"probe ran {[s.get('op') for s in payload.get('ops', [])]}", file=sys.stderr, flush=True)
    return {"agent": "probe", "boot_id": BOOT_ID, "pid": os.getpid(), "results": results}


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8080")))
