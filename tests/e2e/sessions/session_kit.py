"""Helpers for the session end-to-end tests (agents that really run, one sandbox per session).

What is here, all of it talking to real processes over loopback:
- `SessionHangar`: `support.HangarServer` plus extra command-line flags and environment
  (`--s3-endpoint`, `--s3-dir`, `--session-memory-mib`, ...). support.HangarServer has no way to
  pass either, so `start` is repeated here with that addition.
- `MotoS3`: a `moto.server` child process on a free loopback port, the S3-compatible store the
  artifacts are uploaded to.
- `AgentBuilder`: the agents' zips. The vendored dependency tree (agents/requirements.txt) is
  installed once by a Python 3.11 and cached, zipped once; each agent's zip is that base zip plus
  the agent's own files, with POSIX permissions.
- `Deployer`: create/update runtimes from an agent name, invoke, stop; `/_hangar/...` routes.
- `BareAgent`: runs an agent's zip on the host without Hangar (contract self-check).

Nothing imitates Hangar.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

_E2E_DIR = str(Path(__file__).resolve().parents[1])
if _E2E_DIR not in sys.path:  # run as a script (see the end of this file)
    sys.path.insert(0, _E2E_DIR)

import support  # noqa: E402
from support import (  # noqa: E402
    ACCOUNT,
    DEFAULT_KEY,
    DEFAULT_SECRET,
    REGION,
    HangarServer,
    ServerStartError,
    free_port,
    hangar_bin,
    strip_meta,
    uniq,
)

HERE = Path(__file__).resolve().parent
AGENTS_DIR = HERE / "agents"
AGENT_REQUIREMENTS = AGENTS_DIR / "requirements.txt"

# The runtime every test agent is deployed with, and the interpreter Hangar serves it with.
RUNTIME = "PYTHON_3_11"
RUNTIME_PYTHON = "/usr/bin/python3.11"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/agent"
PUBLIC_NETWORK = {"networkMode": "PUBLIC"}
BUCKET = "hangar-e2e-agents"

# Credentials Hangar is given (environment) to read the S3-compatible store (see support).
S3_ACCESS_KEY = support.S3_ACCESS_KEY
S3_SECRET_KEY = support.S3_SECRET_KEY
MotoS3 = support.MotoS3
# Put into Hangar's environment; must never show up in a sandbox's environment.
CANARY_VAR = "HANGAR_E2E_CANARY"
CANARY_VALUE = f"canary-{uuid.uuid4().hex}"

READY_TIMEOUT = 90.0  # fetch + unpack of a ~25 MiB zip, on a busy 2-core machine
INVOKE_READ_TIMEOUT = 120.0
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"

# Set to 1 once `hangar serve` is expected to have the session flags: then a binary that
# rejects them fails the tests instead of skipping them.
REQUIRE_ENV = "HANGAR_E2E_REQUIRE_SESSIONS"


def new_session_id(tag: str = "s") -> str:
    """A runtime session id: >= 33 chars, [a-zA-Z0-9][a-zA-Z0-9-_]* (what the API echoes)."""
    tag = re.sub(r"[^a-zA-Z0-9_-]", "-", tag)[:40] or "s"
    if not tag[0].isalnum():
        tag = "s" + tag
    return f"{tag}-{uuid.uuid4()}"


# --------------------------------------------------------------------------------------------
# Hangar with extra flags / environment


class SessionHangar(HangarServer):
    """`hangar serve` with extra flags and environment; still stopped only by its own PID and
    registered in HangarServer.all_started (conftest's atexit and failure-report hooks)."""

    def __init__(
        self,
        data_dir: Path,
        log_dir: Path,
        extra_args: Iterable[str] = (),
        env: Optional[dict] = None,
        label: str = "sessions",
    ) -> None:
        super().__init__(data_dir, log_dir, label=label)
        self.extra_args = [str(a) for a in extra_args]
        self.extra_env = {k: str(v) for k, v in (env or {}).items()}

    def command(self) -> list[str]:
        return [
            str(hangar_bin()), "serve",
            "--listen", f"127.0.0.1:{self.port}",
            "--data-dir", str(self.data_dir),
            "--region", REGION,
            "--account-id", ACCOUNT,
            *self.extra_args,
        ]  # fmt: skip

    def start(self, timeout: float = 30.0) -> "SessionHangar":
        # Same as HangarServer.start, plus extra_args and extra_env.
        assert not self.alive(), "already running"
        binary = hangar_bin()
        if not binary.exists():
            raise ServerStartError(
                f"Hangar binary {binary} does not exist (build it: cargo build --release, "
                "or set HANGAR_BIN)"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        last_error = ""
        cmd: list[str] = []
        for _attempt in range(3):
            self.starts += 1
            self.port = free_port()
            self.stderr_path = self.log_dir / f"{self.label}-{self.starts}.stderr.log"
            stdout_path = self.log_dir / f"{self.label}-{self.starts}.stdout.log"
            cmd = self.command()
            env = dict(os.environ)
            env.pop("HANGAR_CREDENTIALS", None)
            env.setdefault("RUST_BACKTRACE", "1")
            env.update(self.extra_env)
            with open(self.stderr_path, "wb") as err, open(stdout_path, "wb") as out:
                self.proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env
                )
            HangarServer.all_started.append(self)
            ok, last_error = self._wait_healthy(timeout)
            if ok:
                return self
            if self.alive():
                self.kill()
                break
            if "in use" not in self.tail().lower():
                break
        raise ServerStartError(
            f"{self.label}: hangar serve did not become healthy: {last_error}\n"
            f"command: {' '.join(cmd)}\n--- stderr tail ---\n{self.tail()}"
        )


_UNKNOWN_FLAG = re.compile(
    r"unexpected argument|unrecognized (option|argument)|unknown (option|argument|flag)|"
    r"Found argument .* which wasn't expected",
    re.IGNORECASE,
)


SESSION_FLAGS = ("--s3-endpoint", "--s3-dir", "--session-memory-mib", "--session-cpus",
                 "--session-max-processes")  # fmt: skip


def _skip_or_fail(reason: str) -> None:
    """Until the milestone lands the session tests skip; with $HANGAR_E2E_REQUIRE_SESSIONS=1
    the same condition fails them."""
    import pytest

    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(f"{reason}; set {REQUIRE_ENV}=1 to make this a failure")


def require_session_support() -> None:
    """Skips (or fails, see _skip_or_fail) when the binary's `serve --help` lacks a session flag
    or moto[server] (tests/requirements-sessions.txt) is not installed. A missing binary is left
    to the server fixtures, which fail as everywhere else."""
    binary = hangar_bin()
    if binary.exists():
        try:
            out = subprocess.run(
                [str(binary), "serve", "--help"], capture_output=True, text=True, timeout=30
            )
            text = out.stdout + out.stderr
        except (OSError, subprocess.SubprocessError) as e:
            text = repr(e)
        missing = [f for f in SESSION_FLAGS if f not in text]
        if missing:
            _skip_or_fail(f"`{binary.name} serve --help` lacks {' '.join(missing)}")
    try:
        import moto  # noqa: F401
    except ImportError:
        _skip_or_fail(
            "moto[server] is not installed: pip install -r tests/requirements-sessions.txt"
        )


def start_session_server(server: SessionHangar) -> SessionHangar:
    """Starts `server`. A binary that does not know the session flags yet (the milestone has
    not landed) skips the calling test, unless $HANGAR_E2E_REQUIRE_SESSIONS=1."""
    require_session_support()
    try:
        return server.start()
    except ServerStartError:
        found = _UNKNOWN_FLAG.search(server.tail())
        if not found:
            raise
        line = next((ln for ln in server.tail().splitlines() if _UNKNOWN_FLAG.search(ln)), found[0])
        _skip_or_fail(f"hangar serve does not accept the session flags yet ({line.strip()})")
        raise


def open_data_root(tag: str) -> Path:
    """A directory for servers' data dirs that every uid can traverse (0755, in the system temp
    dir). pytest's own temp dirs sit below a 0700 directory, which a sandbox's unprivileged uid
    cannot cross; that case has a test of its own (test_artifacts.py), the other tests should
    not all fail on it. Remove it with remove_data_root()."""
    root = Path(tempfile.mkdtemp(prefix=f"hangar-e2e-{tag}-"))
    os.chmod(root, 0o755)
    return root


def remove_data_root(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)


class ServerSet:
    """Extra SessionHangar servers for one test or module; all stopped by PID on close().
    Data dirs go under an open_data_root(), logs under `base` (pytest's temp dir)."""

    def __init__(self, base: Path) -> None:
        self.base = Path(base)
        self.data_root: Optional[Path] = None
        self.servers: list[SessionHangar] = []

    def start(self, label: str, extra_args: Iterable[str] = (), env: Optional[dict] = None):
        if self.data_root is None:
            self.data_root = open_data_root("servers")
        srv = SessionHangar(
            self.data_root / f"{label}-data", self.base / "logs", extra_args, env, label=label
        )
        self.servers.append(srv)
        return start_session_server(srv)

    def close(self) -> None:
        for s in self.servers:
            s.stop()
        if self.data_root is not None:
            remove_data_root(self.data_root)


def s3_env() -> dict:
    """Environment that lets Hangar read the S3-compatible store, the way AWS tools take it."""
    return {**support.s3_env(), CANARY_VAR: CANARY_VALUE}


# --------------------------------------------------------------------------------------------
# S3-compatible store: moto's server (support.MotoS3, shared with the browser recording tests)


# --------------------------------------------------------------------------------------------
# Agent zips


def python_version(python: str) -> Optional[str]:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(sys.version)"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _has_pip(python: str) -> bool:
    try:
        return (
            subprocess.run(
                [python, "-m", "pip", "--version"], capture_output=True, timeout=60
            ).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


def _pip_python() -> tuple[str, bool]:
    """(interpreter, cross) used to install the agents' dependency tree: the runtime's own
    Python 3.11 when it has pip, else the test interpreter if it is 3.11, else the test
    interpreter's pip told to fetch cp311 manylinux wheels (cross=True)."""
    if _has_pip(RUNTIME_PYTHON):
        return RUNTIME_PYTHON, False
    if sys.version_info[:2] == (3, 11):
        return sys.executable, False
    return sys.executable, True


def _zip_add_tree(zf: zipfile.ZipFile, root: Path, prefix: str = "") -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            arc = prefix + path.relative_to(root).as_posix()
            info = zipfile.ZipInfo.from_file(path, arc)  # keeps st_mode in external_attr
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as f:
                zf.writestr(info, f.read(), compresslevel=1)


class AgentBuilder:
    """Builds agent zips: vendored dependencies + the agent's own files (agents/<name>/)."""

    RECIPE = "3"  # bump when the way the tree is built changes

    def __init__(self, cache_root: Path, work_dir: Path) -> None:
        self.cache_root = Path(cache_root)
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._zips: dict[str, Path] = {}
        self._base: Optional[Path] = None

    def cache_key(self, python: str) -> str:
        h = hashlib.sha256()
        h.update(AGENT_REQUIREMENTS.read_bytes())
        h.update(f"\0{python}\0{python_version(python)}\0{self.RECIPE}".encode())
        return h.hexdigest()[:20]

    def base_zip(self) -> Path:
        """The zip of the dependency tree (built once per requirements/interpreter)."""
        with self._lock:
            if self._base is None:
                self._base = self._build_base()
            return self._base

    def _build_base(self) -> Path:
        python, cross = _pip_python()
        key = self.cache_key(python)
        self.cache_root.mkdir(parents=True, exist_ok=True)
        final = self.cache_root / key
        done = final / ".complete"
        with open(self.cache_root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not done.exists():
                shutil.rmtree(final, ignore_errors=True)
                partial = self.cache_root / f"{key}.partial-{os.getpid()}"
                shutil.rmtree(partial, ignore_errors=True)
                site = partial / "site"
                cmd = [
                    python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-input", "--no-compile", "--only-binary=:all:",
                    "--target", str(site), "-r", str(AGENT_REQUIREMENTS),
                ]  # fmt: skip
                if cross:
                    arch = platform.machine()  # wheels for this host's CPU, as the runtime is
                    cmd += ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]
                    for tag in (
                        "manylinux2014",
                        "manylinux_2_17",
                        "manylinux_2_28",
                        "manylinux_2_34",
                    ):
                        cmd += ["--platform", f"{tag}_{arch}"]
                run = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
                if run.returncode != 0:
                    raise RuntimeError(
                        f"installing the agents' dependencies failed: {' '.join(cmd)}\n"
                        f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
                    )
                # Byte-code that is valid whatever mtimes the unpacked files get: /var/task is
                # read-only, so stale .pyc files would be recompiled at every start.
                if python_version(RUNTIME_PYTHON):
                    subprocess.run(
                        [RUNTIME_PYTHON, "-m", "compileall", "-q", "-j", "0",
                         "--invalidation-mode", "unchecked-hash", str(site)],
                        capture_output=True, timeout=900,
                    )  # fmt: skip
                with zipfile.ZipFile(partial / "deps.zip", "w") as zf:
                    _zip_add_tree(zf, site)
                (partial / ".complete").write_text(" ".join(cmd) + "\n", encoding="utf-8")
                os.replace(partial, final)
        return final / "deps.zip"

    def site_dir(self) -> Path:
        return self.base_zip().parent / "site"

    def zip_path(self, agent: str) -> Path:
        """agents/<agent>/* on top of the dependency tree, as a zip (cached per test run)."""
        base = self.base_zip()
        with self._lock:
            if agent not in self._zips:
                src = AGENTS_DIR / agent
                if not (src / "main.py").is_file():
                    raise FileNotFoundError(f"no agent {agent!r} ({src / 'main.py'})")
                out = self.work_dir / f"{agent}.zip"
                shutil.copyfile(base, out)
                with zipfile.ZipFile(out, "a") as zf:
                    for path in sorted(src.rglob("*")):
                        if path.is_file() and "__pycache__" not in path.parts:
                            info = zipfile.ZipInfo.from_file(path, path.relative_to(src).as_posix())
                            info.compress_type = zipfile.ZIP_DEFLATED
                            zf.writestr(info, path.read_bytes())
                self._zips[agent] = out
            return self._zips[agent]

    def zip_bytes(self, agent: str) -> bytes:
        return self.zip_path(agent).read_bytes()

    def digest(self, agent: str) -> str:
        return hashlib.sha256(self.zip_bytes(agent)).hexdigest()[:12]


def default_cache_root(config: Any) -> Path:
    """Where the dependency tree is cached: pytest's cache dir when the cache plugin is on
    (scripts/test turns it off), else a directory under the system temp dir."""
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("hangar-agent-deps"))
    return Path(tempfile.gettempdir()) / "hangar-e2e-agent-deps"


def extract_zip(zip_path: Path, dest: Path) -> Path:
    """Unzips keeping POSIX permissions (zipfile.extractall drops them)."""
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            out = Path(zf.extract(info, dest))
            mode = (info.external_attr >> 16) & 0o7777
            if mode and not info.is_dir():
                os.chmod(out, mode)
    return dest


class S3Artifacts:
    """Uploads agent zips to the S3-compatible store once per test run."""

    def __init__(self, s3: MotoS3, builder: AgentBuilder, bucket: str = BUCKET) -> None:
        self.s3 = s3
        self.builder = builder
        self.bucket = bucket
        self._keys: dict[str, str] = {}
        self._lock = threading.Lock()
        s3.ensure_bucket(bucket)

    def key_for(self, agent: str) -> str:
        with self._lock:
            if agent not in self._keys:
                key = f"agents/{agent}/{self.builder.digest(agent)}/deployment.zip"
                self.s3.put(self.bucket, key, self.builder.zip_bytes(agent))
                self._keys[agent] = key
            return self._keys[agent]

    def put_raw(self, key: str, data: bytes) -> str:
        self.s3.put(self.bucket, key, data)
        return key


def code_artifact(
    bucket: str, key: str, runtime: str = RUNTIME, entry: Iterable[str] = ("main.py",)
) -> dict:
    return {
        "codeConfiguration": {
            "code": {"s3": {"bucket": bucket, "prefix": key}},
            "runtime": runtime,
            "entryPoint": list(entry),
        }
    }


# --------------------------------------------------------------------------------------------
# Clients


def data_client(url: str, validate: bool = True, read_timeout: float = INVOKE_READ_TIMEOUT):
    """boto3 `bedrock-agentcore` (data plane) client; responses go through the audit."""
    client = boto3.session.Session().client(
        "bedrock-agentcore",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=DEFAULT_KEY,
        aws_secret_access_key=DEFAULT_SECRET,
        config=Config(
            retries={"max_attempts": 1, "mode": "standard"},
            parameter_validation=validate,
            connect_timeout=5,
            read_timeout=read_timeout,
        ),
    )
    client.meta.events.register("after-call.*.*", support._audit_hook)
    return client


def hangar_json(url: str, path: str, timeout: float = 10.0) -> tuple[int, Any]:
    """GET one of Hangar's own routes (no signature); returns (status, parsed JSON or text)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(body)
    except ValueError:
        return resp.status, body.decode("utf-8", "replace")


def live_sessions(url: str) -> list[dict]:
    status, body = hangar_json(url, "/_hangar/sessions")
    assert status == 200, f"GET /_hangar/sessions: HTTP {status}: {body!r}"
    assert isinstance(body, dict) and isinstance(body.get("sessions"), list), body
    return body["sessions"]


def find_session(url: str, rid: str, sid: str) -> Optional[dict]:
    for s in live_sessions(url):
        if s.get("agentRuntimeId") == rid and s.get("runtimeSessionId") == sid:
            return s
    return None


def session_logs(url: str, rid: str, sid: str) -> dict:
    path = (
        f"/_hangar/runtimes/{urllib.parse.quote(rid, safe='')}/sessions/"
        f"{urllib.parse.quote(sid, safe='')}/logs"
    )
    status, body = hangar_json(url, path)
    assert status == 200, f"GET {path}: HTTP {status}: {body!r}"
    assert isinstance(body, dict), body
    assert isinstance(body.get("stdout"), str) and isinstance(body.get("stderr"), str), body
    return body


def wait_session_gone(url: str, rid: str, sid: str, timeout: float) -> float:
    """Polls /_hangar/sessions until the session is not live; returns the time.time() seen."""
    deadline = time.monotonic() + timeout
    while True:
        s = find_session(url, rid, sid)
        if s is None:
            return time.time()
        if time.monotonic() >= deadline:
            raise AssertionError(f"session {sid} still live after {timeout}s: {s}")
        time.sleep(0.5)


def parse_time(value: Any) -> float:
    """A timestamp of Hangar's own routes: epoch seconds (number) or ISO-8601 string."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    assert isinstance(value, str) and value, f"not a timestamp: {value!r}"
    text = value.strip().replace("Z", "+00:00")
    # fromisoformat on 3.9/3.10 accepts at most 6 fractional digits
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    dt = datetime.datetime.fromisoformat(text)
    assert dt.tzinfo is not None, f"timestamp without a zone: {value!r}"
    return dt.timestamp()


# --------------------------------------------------------------------------------------------
# Deploying and invoking


@dataclass
class Runtime:
    name: str
    rid: str
    arn: str
    request: dict
    versions: list = field(default_factory=list)


class Deployer:
    """Creates runtimes from agent names on one server and invokes them."""

    def __init__(self, server: HangarServer, artifacts: Optional[S3Artifacts]) -> None:
        self.server = server
        self.url = server.url
        self.artifacts = artifacts
        self.cp = support.make_client(server.url)
        self.dp = data_client(server.url)
        self.dp_nv = data_client(server.url, validate=False)
        self.touched: dict = {}  # (arn, session id) -> qualifier, for cleanup()
        self._touched_lock = threading.Lock()

    def cleanup(self) -> None:
        """Stops every session invoked through this Deployer (404 = already gone is fine), so
        sandboxes do not pile up on the shared server until their idle timeout."""
        with self._touched_lock:
            touched, self.touched = self.touched, {}
        for (arn, sid), qualifier in touched.items():
            try:
                self.stop(arn, sid, qualifier)
            except ClientError as e:
                if error_info(e)[1] != 404:
                    raise

    # -- control plane

    def request(
        self,
        agent: Optional[str],
        name: Optional[str] = None,
        lifecycle: Optional[dict] = None,
        env: Optional[dict] = None,
        artifact: Optional[dict] = None,
        extra: Optional[dict] = None,
    ) -> dict:
        if artifact is None:
            assert self.artifacts is not None and agent is not None
            artifact = code_artifact(self.artifacts.bucket, self.artifacts.key_for(agent))
        req = {
            "agentRuntimeName": name or uniq(agent or "rt"),
            "agentRuntimeArtifact": artifact,
            "roleArn": ROLE_ARN,
            "networkConfiguration": PUBLIC_NETWORK,
        }
        if lifecycle is not None:
            req["lifecycleConfiguration"] = lifecycle
        if env is not None:
            req["environmentVariables"] = env
        if extra:
            req.update(extra)
        return req

    def create(self, agent: Optional[str], wait: str = "READY", **kw) -> Runtime:
        req = self.request(agent, **kw)
        resp = self.cp.create_agent_runtime(**req)
        assert resp["status"] == "CREATING", strip_meta(resp)
        assert resp["agentRuntimeVersion"] == "1", strip_meta(resp)
        rt = Runtime(req["agentRuntimeName"], resp["agentRuntimeId"], resp["agentRuntimeArn"], req)
        rt.versions.append("1")
        if wait:
            self.wait_runtime(rt.rid, wait)
        return rt

    def update(self, rt: Runtime, agent: Optional[str], wait: str = "READY", **kw) -> str:
        req = self.request(agent, name=rt.name, **kw)
        for keep in ("lifecycleConfiguration", "environmentVariables"):
            if keep not in req and keep in rt.request:
                req[keep] = rt.request[keep]
        body = {k: v for k, v in req.items() if k != "agentRuntimeName"}
        resp = self.cp.update_agent_runtime(agentRuntimeId=rt.rid, **body)
        assert resp["status"] == "UPDATING", strip_meta(resp)
        version = resp["agentRuntimeVersion"]
        rt.versions.append(version)
        if wait:
            self.wait_runtime(rt.rid, wait)
        return version

    def wait_runtime(self, rid: str, status: str = "READY", timeout: float = READY_TIMEOUT):
        """Waits for a settled status; fails at once on a different settled one."""
        settled = {"READY", "CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED"}

        def get():
            return self.cp.get_agent_runtime(agentRuntimeId=rid)

        resp = support.wait_until(
            get, lambda r: r["status"] in settled, timeout=timeout, what=f"{rid} settled"
        )
        assert resp["status"] == status, f"expected {status}: {strip_meta(resp)}"
        return resp

    def wait_endpoint(self, rid: str, name: str, timeout: float = READY_TIMEOUT) -> dict:
        def get():
            return self.cp.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName=name)

        resp = support.wait_until(
            get,
            lambda r: r["status"] in ("READY", "CREATE_FAILED", "UPDATE_FAILED"),
            timeout=timeout,
            what=f"endpoint {name} settled",
        )
        assert resp["status"] == "READY", strip_meta(resp)
        return resp

    # -- data plane

    def invoke_raw(
        self,
        arn: str,
        sid: str,
        payload: Any,
        qualifier: Optional[str] = "DEFAULT",
        accept: Optional[str] = None,
        client=None,
    ) -> dict:
        kw: dict = {
            "agentRuntimeArn": arn,
            "runtimeSessionId": sid,
            "payload": payload if isinstance(payload, bytes) else json.dumps(payload).encode(),
            "contentType": "application/json",
        }
        if qualifier is not None:
            kw["qualifier"] = qualifier
        if accept is not None:
            kw["accept"] = accept
        if len(sid) >= 33:
            with self._touched_lock:
                self.touched[(arn, sid)] = qualifier
        return (client or self.dp).invoke_agent_runtime(**kw)

    def invoke(self, arn: str, sid: str, payload: Any, qualifier: Optional[str] = "DEFAULT"):
        """Invokes and returns the agent's JSON answer, checking the response envelope."""
        resp = self.invoke_raw(arn, sid, payload, qualifier, accept="application/json")
        body = resp["response"].read()
        assert resp.get("statusCode") == 200, f"statusCode {resp.get('statusCode')}: {body[:500]!r}"
        assert resp.get("runtimeSessionId") == sid, (resp.get("runtimeSessionId"), sid)
        assert (resp.get("contentType") or "").split(";")[0].strip() == "application/json", (
            resp.get("contentType"),
            body[:500],
        )
        try:
            return json.loads(body)
        except ValueError as e:
            raise AssertionError(f"agent answer is not JSON: {body[:500]!r}") from e

    def stop(self, arn: str, sid: str, qualifier: Optional[str] = "DEFAULT") -> dict:
        kw = {"agentRuntimeArn": arn, "runtimeSessionId": sid}
        if qualifier is not None:
            kw["qualifier"] = qualifier
        return self.dp.stop_runtime_session(**kw)


def client_error(fn: Callable, *args, **kwargs) -> ClientError:
    """Calls fn and returns the ClientError it must raise."""
    try:
        resp = fn(*args, **kwargs)
    except ClientError as e:
        return e
    if isinstance(resp, dict) and hasattr(resp.get("response"), "read"):
        resp = dict(resp, response=resp["response"].read()[:1000])
    raise AssertionError(f"expected an error, call succeeded: {strip_meta(resp)}")


def error_info(e: ClientError) -> tuple[str, int, str]:
    return (
        e.response.get("Error", {}).get("Code"),
        e.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
        e.response.get("Error", {}).get("Message") or "",
    )


def read_sse(body, on_event: Optional[Callable[[float, dict], None]] = None) -> list:
    """Reads an SSE body as it arrives: [(arrival time.time(), data JSON)]. chunk_size=1 so
    that an event is seen as soon as its last byte arrives (larger reads block for more)."""
    events = []
    for line in body.iter_lines(chunk_size=1):
        text = line.decode("utf-8").strip()
        if not text.startswith("data:"):
            continue
        data = json.loads(text[len("data:") :].strip())
        item = (time.time(), data)
        events.append(item)
        if on_event is not None:
            on_event(*item)
    return events


def run_concurrently(fns: dict[str, Callable[[], Any]], timeout: float) -> dict[str, Any]:
    """Runs named scenarios in threads; raises one AssertionError naming every failure."""
    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}

    def runner(name, fn):
        try:
            results[name] = fn()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors[name] = e

    threads = [
        threading.Thread(target=runner, args=(n, f), name=f"scenario-{n}", daemon=True)
        for n, f in fns.items()
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    if errors or stuck:
        lines = [f"{n}: {type(e).__name__}: {e}" for n, e in errors.items()]
        lines += [f"{n}: still running after {timeout}s" for n in stuck]
        raise AssertionError("scenarios failed:\n" + "\n".join(lines))
    return results


# --------------------------------------------------------------------------------------------
# Loopback HTTP service on the host (the PUBLIC-network check)


class HostService:
    """A tiny HTTP server on 127.0.0.1 in a thread, answering GET /token with `token`."""

    def __init__(self) -> None:
        import http.server

        self.token = f"host-token-{uuid.uuid4().hex}"
        self.hits: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.hits.append(self.path)
                body = outer.token.encode() if self.path == "/token" else b"not found"
                self.send_response(200 if self.path == "/token" else 404)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "HostService":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------------------------
# Running an agent bare on the host (no Hangar): checks the agents speak the contract


class BareAgent:
    """Unpacks an agent zip and runs `python3.11 main.py` in it on a free loopback port."""

    def __init__(self, zip_path: Path, work: Path, env: Optional[dict] = None) -> None:
        self.task = extract_zip(zip_path, Path(work) / "task")
        self.tmp = Path(work) / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.stdout_path = Path(work) / "stdout.log"
        self.stderr_path = Path(work) / "stderr.log"
        self.env = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(self.tmp),
            "TMPDIR": str(self.tmp),
            "AGENT_TMP": str(self.tmp),
            "PORT": str(self.port),
            "PYTHONUNBUFFERED": "1",
        }
        self.env.update(env or {})
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "BareAgent":
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [RUNTIME_PYTHON, "main.py"], cwd=self.task, env=self.env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            )  # fmt: skip
        return self

    def wait_healthy(self, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited with {self.proc.returncode}: {self.stderr()}")
            try:
                status, body, _ = self.request("GET", "/ping", timeout=2)
                if status == 200:
                    return json.loads(body)
                last = status
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise AssertionError(f"agent not healthy after {timeout}s ({last!r}): {self.stderr()}")

    def request(self, method, path, body=None, headers=None, timeout=30.0):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read(), dict(resp.getheaders())
        finally:
            conn.close()

    def ping(self) -> dict:
        status, body, headers = self.request("GET", "/ping")
        assert status == 200, (status, body)
        assert headers.get("content-type", "").startswith("application/json"), headers
        return json.loads(body)

    def invoke(self, payload: Any, sid: Optional[str] = None, accept="application/json"):
        headers = {"Content-Type": "application/json", "Accept": accept}
        if sid:
            headers[SESSION_HEADER] = sid
        return self.request("POST", "/invocations", json.dumps(payload).encode(), headers)

    def invoke_json(self, payload: Any, sid: Optional[str] = None) -> dict:
        status, body, headers = self.invoke(payload, sid)
        assert status == 200, (status, body)
        assert headers.get("content-type", "").startswith("application/json"), headers
        return json.loads(body)

    def stream(self, payload: Any, sid: Optional[str] = None):
        """POST /invocations and read SSE events as they arrive: [(arrival, data)]."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
            if sid:
                headers[SESSION_HEADER] = sid
            conn.request("POST", "/invocations", json.dumps(payload).encode(), headers)
            resp = conn.getresponse()
            ctype = resp.getheader("content-type", "")
            events = []
            buf = b""
            while True:
                chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
                if not chunk:
                    break
                buf += chunk
                while b"\n\n" in buf:
                    raw, buf = buf.split(b"\n\n", 1)
                    for line in raw.decode("utf-8").splitlines():
                        if line.startswith("data:"):
                            events.append((time.time(), json.loads(line[5:].strip())))
            return resp.status, ctype, events
        finally:
            conn.close()

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


# --------------------------------------------------------------------------------------------
# Manual use: build an agent and serve it bare, e.g. to poke at it with curl.
#   python tests/e2e/sessions/session_kit.py echo [--port 8080]

if __name__ == "__main__":  # pragma: no cover - developer tool
    import argparse

    parser = argparse.ArgumentParser(description="Build an agent zip and run it bare on the host")
    parser.add_argument("agent")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix=f"hangar-agent-{args.agent}-"))
    builder = AgentBuilder(Path(tempfile.gettempdir()) / "hangar-e2e-agent-deps", work / "zips")
    agent = BareAgent(builder.zip_path(args.agent), work / "run", env={"PORT": str(args.port)})
    agent.port = args.port
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the agent on the way out
    agent.start()
    print(f"{args.agent}: pid {agent.proc.pid}, http://127.0.0.1:{args.port} (work dir {work})")
    try:
        print("ping:", agent.wait_healthy())
        agent.proc.wait()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        agent.stop()
