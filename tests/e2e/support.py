"""Shared helpers for the end-to-end tests: the Hangar server process, boto3 clients, signed raw
HTTP requests, polling, unique names and realistic request bodies.

Nothing here imitates Hangar: every helper talks to a real `hangar serve` over loopback.
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
from botocore.config import Config
from botocore.exceptions import ClientError

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
SERVICE = "bedrock-agentcore-control"
SIGNING_NAME = "bedrock-agentcore"
ARN_PREFIX = f"arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}"
DEFAULT_KEY = "AKIDEXAMPLE"
DEFAULT_SECRET = "x"

BROWSER_BUILTIN = "aws.browser.v1"
CODE_INTERPRETER_BUILTIN = "aws.codeinterpreter.v1"
BROWSER_BUILTIN_ARN = f"arn:aws:bedrock-agentcore:{REGION}:aws:browser/{BROWSER_BUILTIN}"
CODE_INTERPRETER_BUILTIN_ARN = (
    f"arn:aws:bedrock-agentcore:{REGION}:aws:code-interpreter/{CODE_INTERPRETER_BUILTIN}"
)

WAIT_SECONDS = 10.0


def hangar_bin() -> Path:
    return Path(os.environ.get("HANGAR_BIN") or REPO / "target" / "release" / "hangar")


# --------------------------------------------------------------------------------------------
# Response audit: every response any client sees must carry x-amzn-RequestId and be < 500.
# conftest checks (and clears) this after every test.


@dataclass
class AuditEntry:
    what: str
    status: int
    request_id: Optional[str]


class Audit:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[AuditEntry] = []

    def record(self, what: str, status: int, headers: Any) -> None:
        rid = None
        if headers is not None:
            rid = headers.get("x-amzn-RequestId") or headers.get("x-amzn-requestid")
        with self._lock:
            self.entries.append(AuditEntry(what, status, rid))

    def take(self) -> list[AuditEntry]:
        with self._lock:
            out, self.entries = self.entries, []
        return out

    @staticmethod
    def problems(entries: list[AuditEntry]) -> list[str]:
        out = []
        for e in entries:
            if e.status >= 500:
                out.append(f"{e.what}: HTTP {e.status} (server error)")
            if not e.request_id:
                out.append(f"{e.what}: HTTP {e.status} without x-amzn-RequestId")
        return out


AUDIT = Audit()


# --------------------------------------------------------------------------------------------
# Server process


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------------------------
# S3-compatible store: moto's server (artifacts of the session tests, browser recordings)

# Credentials Hangar is given (environment) to reach the S3-compatible store. The secret is
# random per test run so a sandbox that inherited Hangar's environment is caught (echo agent).
S3_ACCESS_KEY = "hangar-e2e-s3-key"
S3_SECRET_KEY = f"hangar-e2e-s3-secret-{uuid.uuid4().hex}"


def s3_env() -> dict:
    """Environment that lets Hangar reach the S3-compatible store, the way AWS tools take it."""
    return {
        "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
    }


class MotoS3:
    """`python -m moto.server` on a free loopback port (from tests/requirements-sessions.txt)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.proc: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self._client = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> "MotoS3":
        try:
            import moto  # noqa: F401
        except ImportError as e:
            raise RuntimeError(
                "moto[server] is not installed in the test venv: "
                "pip install -r tests/requirements-sessions.txt"
            ) from e
        self.log_dir.mkdir(parents=True, exist_ok=True)
        last = ""
        for attempt in range(3):
            self.port = free_port()
            log = self.log_dir / f"moto-{attempt}.log"
            env = dict(os.environ)
            env.update({"AWS_ACCESS_KEY_ID": S3_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY})
            with open(log, "wb") as out:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                )  # fmt: skip
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    self.client().list_buckets()
                    return self
                except Exception as e:  # noqa: BLE001 - not up yet
                    last = repr(e)
                    time.sleep(0.1)
            self.stop()
            tail = log.read_text("utf-8", "replace")[-2000:]
            if "in use" not in tail.lower():
                break
        raise RuntimeError(f"moto server did not start: {last}\n{tail}")

    def client(self):
        if self._client is None:
            self._client = boto3.session.Session().client(
                "s3",
                endpoint_url=self.url,
                region_name=REGION,
                aws_access_key_id=S3_ACCESS_KEY,
                aws_secret_access_key=S3_SECRET_KEY,
                config=Config(
                    s3={"addressing_style": "path"},
                    retries={"max_attempts": 1, "mode": "standard"},
                    connect_timeout=2,
                    read_timeout=60,
                ),
            )
        return self._client

    def ensure_bucket(self, bucket: str) -> None:
        try:
            self.client().head_bucket(Bucket=bucket)
        except ClientError:
            self.client().create_bucket(Bucket=bucket)

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=data)

    def delete(self, bucket: str, key: str) -> None:
        self.client().delete_object(Bucket=bucket, Key=key)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


class ServerStartError(RuntimeError):
    pass


class HangarServer:
    """One `hangar serve` child process on a loopback port. Stopped only through its own PID."""

    all_started: list["HangarServer"] = []

    def __init__(
        self,
        data_dir: Path,
        log_dir: Path,
        credentials: Optional[Path] = None,
        credentials_env: Optional[Path] = None,
        label: str = "hangar",
        extra_args: Optional[list] = None,
        extra_env: Optional[dict] = None,
        code_artifacts: bool = True,
        container_images: Optional[str] = "accept",
    ) -> None:
        # Control-plane tests name container images no registry holds: accept them unpulled
        # (`--container-images accept`); the session tests pull real images.
        self.container_images = container_images
        self.extra_args = list(extra_args or [])
        self.extra_env = dict(extra_env or {})
        self.code_artifacts = code_artifacts
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir)
        self.credentials = credentials
        self.credentials_env = credentials_env
        self.label = label
        self.proc: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self.starts = 0
        self.stderr_path: Optional[Path] = None
        self.health: Optional[dict] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 30.0) -> "HangarServer":
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
        for _attempt in range(3):
            self.starts += 1
            self.port = free_port()
            self.stderr_path = self.log_dir / f"{self.label}-{self.starts}.stderr.log"
            stdout_path = self.log_dir / f"{self.label}-{self.starts}.stdout.log"
            cmd = [
                str(binary), "serve",
                "--listen", f"127.0.0.1:{self.port}",
                "--data-dir", str(self.data_dir),
                "--region", REGION,
                "--account-id", ACCOUNT,
            ]  # fmt: skip
            if self.credentials is not None:
                cmd += ["--credentials", str(self.credentials)]
            if self.code_artifacts:
                cmd += code_artifact_args(self.data_dir / "s3")
            if self.container_images is not None:
                cmd += ["--container-images", self.container_images]
            cmd += self.extra_args
            env = dict(os.environ)
            env.pop("HANGAR_CREDENTIALS", None)
            if self.credentials_env is not None:
                env["HANGAR_CREDENTIALS"] = str(self.credentials_env)
            env.update(self.extra_env)
            env.setdefault("RUST_BACKTRACE", "1")
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
                break  # running but never healthy: a real failure, not a port race
            if "in use" not in self.tail().lower():
                break
        raise ServerStartError(
            f"{self.label}: hangar serve did not become healthy: {last_error}\n"
            f"command: {' '.join(cmd)}\n--- stderr tail ---\n{self.tail()}"
        )

    def _wait_healthy(self, timeout: float) -> tuple[bool, str]:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False, f"exited with code {self.proc.returncode}"
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/_hangar/health")
                resp = conn.getresponse()
                body = resp.read()
                conn.close()
                if resp.status == 200:
                    self.health = json.loads(body)
                    return True, ""
                last = f"HTTP {resp.status}: {body[:200]!r}"
            except (OSError, http.client.HTTPException, ValueError) as e:
                last = repr(e)
            time.sleep(0.05)
        return False, f"timeout after {timeout}s ({last})"

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        """kill -9 by PID."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> "HangarServer":
        self.stop()
        return self.start()

    def tail(self, lines: int = 60) -> str:
        if not self.stderr_path or not self.stderr_path.exists():
            return "(no stderr captured)"
        with open(self.stderr_path, "rb") as f:
            data = deque(f, maxlen=lines)
        return b"".join(data).decode("utf-8", "replace") or "(stderr empty)"


# --------------------------------------------------------------------------------------------
# Code artifacts: Hangar provisions `codeConfiguration` runtimes for real (fetch the zip, unpack
# it, find the interpreter) before they are READY. The control-plane tests give every server a
# local directory standing in for S3 (`--s3-dir`, `s3://bucket/key` = `DIR/bucket/key`) seeded
# with the zips their requests name, and map every managed runtime to an interpreter this
# machine has (control-plane behaviour does not depend on the exact Python version).

ARTIFACT_BUCKET = "hangar-e2e-artifacts"
ARTIFACT_KEYS = ("agents/support/v1.zip", "agents/support/v2.zip", "agents/mcp/server.zip",
                 "agents/support.zip")  # fmt: skip

AGENT_MAIN = b"""\
import json
from http.server import BaseHTTPRequestHandler, HTTPServer


class Agent(BaseHTTPRequestHandler):
    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(200 if self.path == "/ping" else 404, {"status": "Healthy"})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self._send(200, {"echo": self.rfile.read(n).decode("utf-8", "replace")})


if __name__ == "__main__":
    HTTPServer(("0.0.0.0", 8080), Agent).serve_forever()
"""

LAUNCHER = b"""\
#!/usr/bin/env python3
import os
import sys

os.execvp(sys.argv[1], sys.argv[1:])
"""


def seed_code_artifacts(s3_dir: Path) -> None:
    import zipfile

    for key in ARTIFACT_KEYS:
        path = Path(s3_dir) / ARTIFACT_BUCKET / key
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("main.py", AGENT_MAIN)
            info = zipfile.ZipInfo("bin/opentelemetry-instrument")
            info.external_attr = 0o755 << 16
            z.writestr(info, LAUNCHER)
        tmp.rename(path)


def local_interpreter() -> str:
    import shutil
    import sys

    # real binaries only (a pyenv shim is refused by Hangar's interpreter lookup)
    for cand in ("/usr/bin/python3.11", "/usr/bin/python3", os.path.realpath(sys.executable),
                 shutil.which("python3.11")):  # fmt: skip
        if cand and os.path.exists(cand) and "/shims/" not in cand:
            return cand
    raise AssertionError("no Python interpreter found for code runtimes")


def code_artifact_args(s3_dir: Path) -> list[str]:
    seed_code_artifacts(s3_dir)
    py = local_interpreter()
    args = ["--s3-dir", str(s3_dir)]
    for v in ("10", "11", "12", "13", "14"):
        args += ["--interpreter", f"PYTHON_3_{v}={py}"]
    return args


def write_credentials(path: Path, key: str, secret: str) -> Path:
    path.write_text(
        f"[default]\naws_access_key_id={key}\naws_secret_access_key={secret}\n", encoding="utf-8"
    )
    return path


# --------------------------------------------------------------------------------------------
# boto3 clients


def _audit_hook(http_response=None, model=None, **_kwargs):
    if http_response is not None:
        name = model.name if model is not None else "?"
        AUDIT.record(f"boto3 {name}", http_response.status_code, http_response.headers)


def make_client(
    url: str,
    key: str = DEFAULT_KEY,
    secret: str = DEFAULT_SECRET,
    validate: bool = True,
    read_timeout: float = 30,
):
    session = boto3.session.Session()
    client = session.client(
        SERVICE,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(
            retries={"max_attempts": 1, "mode": "standard"},
            parameter_validation=validate,
            connect_timeout=5,
            read_timeout=read_timeout,
        ),
    )
    client.meta.events.register("after-call.*.*", _audit_hook)
    return client


def strip_meta(resp: dict) -> dict:
    return {k: v for k, v in resp.items() if k != "ResponseMetadata"}


def status_of(resp: dict) -> int:
    return resp["ResponseMetadata"]["HTTPStatusCode"]


class Expect:
    """Context-free helper: call `fn` and require a ClientError with the given code/status."""

    @staticmethod
    def error(fn: Callable, code: str, status: int, *args, **kwargs) -> ClientError:
        try:
            resp = fn(*args, **kwargs)
        except ClientError as e:
            got = e.response.get("Error", {}).get("Code")
            got_status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            assert (got, got_status) == (code, status), (
                f"expected {code} ({status}), got {got} ({got_status}): {e.response}"
            )
            assert e.response["ResponseMetadata"].get("RequestId"), "no x-amzn-RequestId"
            return e
        raise AssertionError(f"expected {code} ({status}), call succeeded: {strip_meta(resp)}")


expect_error = Expect.error


# --------------------------------------------------------------------------------------------
# Raw signed HTTP (for bad input botocore would not send, and for auth tests)


@dataclass
class RawResponse:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name)

    @property
    def error_type(self) -> Optional[str]:
        v = self.headers.get("x-amzn-ErrorType")
        if v is None:
            return None
        # botocore: strip anything after ':' (and a '#'-qualified namespace)
        return v.split(":")[0].split("#")[-1]

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self) -> str:
        return (
            f"RawResponse({self.status}, ErrorType={self.error_type!r}, "
            f"body={self.body[:600]!r})"
        )


@dataclass
class Prepared:
    method: str
    url: str
    headers: dict
    body: bytes = b""

    @property
    def target(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return parts.path + (("?" + parts.query) if parts.query else "")


class FixedClockSigV4(botocore.auth.SigV4Auth):
    """SigV4Auth signing with a chosen clock (for stale/future X-Amz-Date)."""

    def __init__(self, credentials, service, region, when: datetime.datetime):
        super().__init__(credentials, service, region)
        self._when = when

    def add_auth(self, request):
        request.context["timestamp"] = self._when.strftime(botocore.auth.SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        canonical_request = self.canonical_request(request)
        string_to_sign = self.string_to_sign(request, canonical_request)
        signature = self.signature(string_to_sign, request)
        self._inject_signature_to_request(request, signature)


def encode_path_param(value: str) -> str:
    """Percent-encode a URI label the way botocore does (everything but -_.~)."""
    return urllib.parse.quote(value, safe="-_.~")


def build_query(query: Optional[Any]) -> str:
    if not query:
        return ""
    if isinstance(query, dict):
        items = []
        for k, v in query.items():
            if isinstance(v, (list, tuple)):
                items += [(k, x) for x in v]
            else:
                items.append((k, v))
    else:
        items = list(query)
    return urllib.parse.urlencode([(k, str(v)) for k, v in items], quote_via=urllib.parse.quote)


class RawClient:
    def __init__(self, url: str, key: Optional[str] = DEFAULT_KEY, secret: str = DEFAULT_SECRET):
        self.url = url.rstrip("/")
        parts = urllib.parse.urlsplit(self.url)
        self.host, self.port = parts.hostname, parts.port
        self.key, self.secret = key, secret

    def prepare(
        self,
        method: str,
        path: str,
        query: Any = None,
        body: Any = None,
        headers: Optional[dict] = None,
        sign: bool = True,
        when: Optional[datetime.datetime] = None,
        key: Optional[str] = None,
        secret: Optional[str] = None,
        presign_expires: Optional[int] = None,
    ) -> Prepared:
        """Build a request; `body` may be bytes/str (sent as is) or JSON-able (dumped)."""
        if body is None:
            data = b""
        elif isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode("utf-8")
        else:
            data = json.dumps(body).encode("utf-8")
        hdrs = {}
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        qs = build_query(query)
        url = self.url + path + (("?" + qs) if qs else "")
        req = botocore.awsrequest.AWSRequest(method=method, url=url, data=data, headers=hdrs)
        if sign:
            creds = botocore.credentials.Credentials(key or self.key, secret or self.secret)
            if presign_expires is not None:
                signer = botocore.auth.SigV4QueryAuth(
                    creds, SIGNING_NAME, REGION, expires=presign_expires
                )
            elif when is not None:
                signer = FixedClockSigV4(creds, SIGNING_NAME, REGION, when)
            else:
                signer = botocore.auth.SigV4Auth(creds, SIGNING_NAME, REGION)
            signer.add_auth(req)
        p = req.prepare()
        return Prepared(method, p.url, dict(p.headers.items()), data)

    def send(self, p: Prepared, timeout: float = 30) -> RawResponse:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            headers = dict(p.headers)
            headers.setdefault("Host", f"{self.host}:{self.port}")
            try:
                conn.request(p.method, p.target, body=p.body if p.body else None, headers=headers)
            except (BrokenPipeError, ConnectionResetError):
                # The server may answer and close before reading a large body; read the answer.
                pass
            resp = conn.getresponse()
            data = resp.read()
            out = RawResponse(resp.status, resp.headers, data)
        finally:
            conn.close()
        AUDIT.record(f"raw {p.method} {p.target[:80]}", out.status, out.headers)
        return out

    def request(self, method: str, path: str, **kw) -> RawResponse:
        timeout = kw.pop("timeout", 30)
        return self.send(self.prepare(method, path, **kw), timeout=timeout)


def assert_validation_error(
    resp: RawResponse,
    field: Optional[str] = None,
    reasons: tuple = ("FieldValidationFailed",),
    field_prefix: bool = False,
    alt_fields: tuple = (),
) -> dict:
    """400 + ValidationException (header and body) + reason + fieldList naming `field`."""
    assert resp.status == 400, f"expected 400 ValidationException, got {resp!r}"
    assert resp.error_type == "ValidationException", f"x-amzn-ErrorType: {resp!r}"
    assert resp.header("x-amzn-RequestId"), "no x-amzn-RequestId"
    body = resp.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("message"), str) and body["message"], f"no message: {body}"
    assert body.get("reason") in reasons, f"reason {body.get('reason')!r} not in {reasons}: {body}"
    if field is not None:
        names = [f.get("name") for f in body.get("fieldList") or []]
        wanted = (field,) + tuple(alt_fields)
        if field_prefix:
            ok = any(
                n == w or (n or "").startswith(w + "[") or (n or "").startswith(w + ".")
                for n in names
                for w in wanted
            )
        else:
            ok = any(n in wanted for n in names)
        assert ok, f"fieldList names {names} do not name {wanted!r}: {body}"
        for f in body.get("fieldList") or []:
            assert isinstance(f.get("message"), str) and f["message"], f"fieldList entry {f}"
    return body


def assert_error(resp: RawResponse, code: str, status: int) -> dict:
    assert resp.status == status, f"expected {status} {code}, got {resp!r}"
    assert resp.error_type == code, f"expected x-amzn-ErrorType {code}: {resp!r}"
    assert resp.header("x-amzn-RequestId"), "no x-amzn-RequestId"
    body = resp.json() if resp.body else {}
    msg = body.get("message", body.get("Message"))
    assert isinstance(msg, str) and msg, f"error without message: {resp!r}"
    return body


# --------------------------------------------------------------------------------------------
# Names, ids, ARNs


def uniq(prefix: str = "t") -> str:
    """A unique resource name matching [a-zA-Z][a-zA-Z0-9_]{0,47}."""
    prefix = re.sub(r"[^a-zA-Z0-9_]", "_", prefix)[:30]
    if not prefix or not prefix[0].isalpha():
        prefix = "t" + prefix
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def id_regex(name: str) -> re.Pattern:
    return re.compile(re.escape(name) + r"-[a-zA-Z0-9]{10}")


def assert_id(resource_id: str, name: str) -> None:
    assert id_regex(name).fullmatch(resource_id), f"id {resource_id!r} is not {name}-<10 alnum>"


def runtime_arn(rid: str) -> str:
    return f"{ARN_PREFIX}:runtime/{rid}"


def endpoint_arn(rid: str, name: str) -> str:
    return f"{ARN_PREFIX}:runtime/{rid}/runtime-endpoint/{name}"


def browser_arn(bid: str) -> str:
    return f"{ARN_PREFIX}:browser-custom/{bid}"


def code_interpreter_arn(cid: str) -> str:
    return f"{ARN_PREFIX}:code-interpreter-custom/{cid}"


def profile_arn(pid: str) -> str:
    return f"{ARN_PREFIX}:browser-profile/{pid}"


def workload_identity_arn(rid: str) -> str:
    return (
        f"arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:workload-identity-directory/default/"
        f"workload-identity/{rid}"
    )


def client_token() -> str:
    return str(uuid.uuid4())


# --------------------------------------------------------------------------------------------
# Polling


def wait_until(
    fn: Callable[[], Any],
    cond: Callable[[Any], bool],
    timeout: float = WAIT_SECONDS,
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = fn()
        if cond(last):
            return last
        if time.monotonic() >= deadline:
            shown = strip_meta(last) if isinstance(last, dict) else last
            raise AssertionError(f"{what} not reached within {timeout}s; last: {shown}")
        time.sleep(interval)


def wait_status(get: Callable[[], dict], status: str = "READY", timeout: float = WAIT_SECONDS):
    def cond(r):
        assert not str(r.get("status", "")).endswith("_FAILED"), f"failed: {strip_meta(r)}"
        return r.get("status") == status

    return wait_until(get, cond, timeout=timeout, what=f"status {status}")


def wait_gone(get: Callable[[], Any], timeout: float = WAIT_SECONDS) -> ClientError:
    """Poll until `get` raises ResourceNotFoundException (404)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = get()
        except ClientError as e:
            code = e.response["Error"]["Code"]
            assert code == "ResourceNotFoundException", f"unexpected {code}: {e.response}"
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404
            return e
        if time.monotonic() >= deadline:
            raise AssertionError(f"still there after {timeout}s: {strip_meta(last)}")
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------
# Listing helpers (follow nextToken by hand; paginators are tested separately)


def list_all(client, op: str, key: str, **kw) -> list:
    out: list = []
    token = None
    for _ in range(10000):
        args = dict(kw)
        if token:
            args["nextToken"] = token
        resp = getattr(client, op)(maxResults=100, **args)
        out += resp[key]
        token = resp.get("nextToken")
        if not token:
            return out
    raise AssertionError(f"{op}: pagination did not end")


def runtime_ids(client) -> list[str]:
    return [r["agentRuntimeId"] for r in list_all(client, "list_agent_runtimes", "agentRuntimes")]


def browser_ids(client, type_: str = "CUSTOM") -> list[str]:
    items = list_all(client, "list_browsers", "browserSummaries", type=type_)
    return [b["browserId"] for b in items]


def code_interpreter_ids(client, type_: str = "CUSTOM") -> list[str]:
    items = list_all(client, "list_code_interpreters", "codeInterpreterSummaries", type=type_)
    return [c["codeInterpreterId"] for c in items]


def profile_ids(client) -> list[str]:
    items = list_all(client, "list_browser_profiles", "profileSummaries")
    return [p["profileId"] for p in items]


def version_ids(client, rid: str) -> list[str]:
    items = list_all(client, "list_agent_runtime_versions", "agentRuntimes", agentRuntimeId=rid)
    return [v["agentRuntimeVersion"] for v in items]


def endpoint_names(client, rid: str) -> list[str]:
    items = list_all(
        client, "list_agent_runtime_endpoints", "runtimeEndpoints", agentRuntimeId=rid
    )
    return [e["name"] for e in items]


# --------------------------------------------------------------------------------------------
# Realistic request bodies (JSON member names == boto3 parameter names)

ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/AgentCoreRuntimeRole"
CONTAINER_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/support-agent:v1"


def code_artifact(runtime: str = "PYTHON_3_14", prefix: str = "agents/support/v1.zip") -> dict:
    # No S3 versionId: the local directory standing in for S3 has no object versions.
    return {
        "codeConfiguration": {
            "code": {"s3": {"bucket": ARTIFACT_BUCKET, "prefix": prefix}},
            "runtime": runtime,
            "entryPoint": ["opentelemetry-instrument", "main.py"],
        }
    }


def container_artifact(tag: str = "v1") -> dict:
    return {
        "containerConfiguration": {
            "containerUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/support-agent:{tag}"
        }
    }


def jwt_authorizer() -> dict:
    return {
        "customJWTAuthorizer": {
            "discoveryUrl": (
                "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf123"
                "/.well-known/openid-configuration"
            ),
            "allowedAudience": ["support-api"],
            "allowedClients": ["3example5client7id"],
            "allowedScopes": ["support/read", "support/write"],
            "customClaims": [
                {
                    "inboundTokenClaimName": "department",
                    "inboundTokenClaimValueType": "STRING",
                    "authorizingClaimMatchValue": {
                        "claimMatchValue": {"matchValueString": "support"},
                        "claimMatchOperator": "EQUALS",
                    },
                },
                {
                    "inboundTokenClaimName": "cognito:groups",
                    "inboundTokenClaimValueType": "STRING_ARRAY",
                    "authorizingClaimMatchValue": {
                        "claimMatchValue": {"matchValueStringList": ["agents", "admins"]},
                        "claimMatchOperator": "CONTAINS_ANY",
                    },
                },
            ],
        }
    }


def vpc_network() -> dict:
    return {
        "networkMode": "VPC",
        "networkModeConfig": {
            "securityGroups": ["sg-0123456789abcdef0"],
            "subnets": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
            "requireServiceS3Endpoint": True,
        },
    }


def runtime_request(name: str, variant: str = "code", tags: Optional[dict] = None) -> dict:
    """A CreateAgentRuntime request. Variants cover every member kind the model has."""
    if variant == "minimal":
        return {
            "agentRuntimeName": name,
            "agentRuntimeArtifact": container_artifact(),
            "roleArn": ROLE_ARN,
            "networkConfiguration": {"networkMode": "PUBLIC"},
        }
    if variant == "code":
        req = {
            "agentRuntimeName": name,
            "description": "Customer support agent (Python 3.14, code deploy)",
            "agentRuntimeArtifact": code_artifact(),
            "roleArn": ROLE_ARN,
            "networkConfiguration": {"networkMode": "PUBLIC"},
            "protocolConfiguration": {"serverProtocol": "HTTP"},
            "authorizerConfiguration": jwt_authorizer(),
            "requestHeaderConfiguration": {
                "requestHeaderAllowlist": [
                    "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant",
                    "Authorization",
                ]
            },
            "lifecycleConfiguration": {"idleRuntimeSessionTimeout": 900, "maxLifetime": 28800},
            "environmentVariables": {"LOG_LEVEL": "debug", "MODEL_ID": "anthropic.claude-x"},
            "filesystemConfigurations": [{"sessionStorage": {"mountPath": "/mnt/workspace"}}],
        }
    elif variant == "container":
        req = {
            "agentRuntimeName": name,
            "description": "AG-UI agent in a VPC",
            "agentRuntimeArtifact": container_artifact(),
            "roleArn": ROLE_ARN,
            "networkConfiguration": vpc_network(),
            "protocolConfiguration": {"serverProtocol": "AGUI", "port": 8080, "path": "/agui"},
            "lifecycleConfiguration": {"idleRuntimeSessionTimeout": 60, "maxLifetime": 28800},
            "environmentVariables": {"EMPTY_OK": "", "REGION": "us-east-1"},
            "filesystemConfigurations": [
                {
                    "efsAccessPoint": {
                        "accessPointArn": (
                            "arn:aws:elasticfilesystem:us-east-1:123456789012:"
                            "access-point/fsap-0123456789abcdef0"
                        ),
                        "mountPath": "/mnt/efs",
                    }
                },
                {
                    "s3FilesAccessPoint": {
                        "accessPointArn": (
                            "arn:aws:s3files:us-east-1:123456789012:file-system/"
                            "fs-0123456789abcdef0/access-point/fsap-0123456789abcdef0"
                        ),
                        "mountPath": "/mnt/s3files/",
                    }
                },
            ],
        }
    elif variant == "mcp_extras":
        req = {
            "agentRuntimeName": name,
            "agentRuntimeArtifact": {
                "codeConfiguration": {
                    "code": {"s3": {"bucket": ARTIFACT_BUCKET, "prefix": "agents/mcp/server.zip"}},
                    "runtime": "PYTHON_3_13",
                    "entryPoint": ["main.py"],
                }
            },
            "roleArn": ROLE_ARN,
            "networkConfiguration": {"networkMode": "PUBLIC"},
            "protocolConfiguration": {"serverProtocol": "MCP"},
            "hooksConfiguration": {
                "build": {"warmup": {"action": {"httpPost": {"path": "/warmup", "port": 8080}}}}
            },
            "platformVersion": "2025.10",
            "allowedPorts": [{"port": 9000}, {"portRange": {"from": 10000, "to": 10010}}],
            "resourceConfigurations": [{"minimumMemoryInMiB": 2048}],
        }
    elif variant == "a2a_capacity":
        req = {
            "agentRuntimeName": name,
            "agentRuntimeArtifact": container_artifact("a2a"),
            "roleArn": ROLE_ARN,
            "networkConfiguration": {"networkMode": "PUBLIC"},
            "protocolConfiguration": {"serverProtocol": "A2A"},
            # beyond the 8-hour microVM limit: allowed on a capacity provider only
            "lifecycleConfiguration": {"idleRuntimeSessionTimeout": 3600, "maxLifetime": 1209600},
            "capacityProviderConfiguration": {
                "capacityProviderArn": (
                    f"{ARN_PREFIX}:capacity-provider/gpu_pool-AbCdEfGhIj"
                )
            },
            "filesystemConfigurations": [
                {"capacityProviderVolume": {"volumeName": "scratch-vol", "mountPath": "/mnt/scratch"}}
            ],
        }
    else:
        raise ValueError(variant)
    if tags is not None:
        req["tags"] = tags
    return req


def update_request(create_req: dict) -> dict:
    """The members of a CreateAgentRuntime request that UpdateAgentRuntime accepts."""
    drop = {"agentRuntimeName", "tags", "clientToken"}
    return {k: v for k, v in create_req.items() if k not in drop}


# Members a Get returns that were sent on Create/Update (everything but name/tags/clientToken).
RUNTIME_CONFIG_MEMBERS = (
    "agentRuntimeArtifact", "roleArn", "networkConfiguration", "description",
    "authorizerConfiguration", "requestHeaderConfiguration", "protocolConfiguration",
    "lifecycleConfiguration", "hooksConfiguration", "metadataConfiguration",
    "environmentVariables", "filesystemConfigurations", "capacityProviderConfiguration",
    "platformVersion", "allowedPorts", "resourceConfigurations",
)  # fmt: skip


def assert_runtime_config(got: dict, sent: dict) -> None:
    """Get must return exactly what was sent (full replacement: absent stays absent)."""
    for m in RUNTIME_CONFIG_MEMBERS:
        if m == "lifecycleConfiguration" and m not in sent:
            # required in the output: some value must be there
            assert isinstance(got.get(m), dict), f"lifecycleConfiguration missing: {got}"
            continue
        if m == "networkConfiguration" and m not in sent:
            continue
        assert got.get(m) == sent.get(m), f"{m}: sent {sent.get(m)!r}, got {got.get(m)!r}"


def browser_request(name: str, tags: Optional[dict] = None, full: bool = True) -> dict:
    req: dict = {"name": name, "networkConfiguration": {"networkMode": "PUBLIC"}}
    if full:
        req.update(
            {
                "description": "Browser for checkout flows",
                "executionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/BrowserRecordingRole",
                "recording": {
                    "enabled": True,
                    "s3Location": {"bucket": "hangar-e2e-recordings", "prefix": "browser/"},
                },
                "browserSigning": {"enabled": True},
                "enterprisePolicies": [
                    {
                        "location": {
                            "s3": {"bucket": "hangar-e2e-policies", "prefix": "chrome/policy.json"}
                        },
                        "type": "MANAGED",
                    }
                ],
                "certificates": [
                    {
                        "location": {
                            "secretsManager": {
                                "secretArn": (
                                    "arn:aws:secretsmanager:us-east-1:123456789012:"
                                    "secret:corp-root-ca-AbCdEf"
                                )
                            }
                        }
                    }
                ],
                "filesystemConfigurations": [
                    {
                        "efsConfiguration": {
                            "accessPointArn": (
                                "arn:aws:elasticfilesystem:us-east-1:123456789012:"
                                "access-point/fsap-0123456789abcdef0"
                            ),
                            "mountPath": "/mnt/downloads",
                            "fileSystemArn": (
                                "arn:aws:elasticfilesystem:us-east-1:123456789012:"
                                "file-system/fs-0123456789abcdef0"
                            ),
                        }
                    }
                ],
            }
        )
    if tags is not None:
        req["tags"] = tags
    return req


def code_interpreter_request(
    name: str, tags: Optional[dict] = None, mode: str = "SANDBOX", full: bool = True
) -> dict:
    net: dict = {"networkMode": mode}
    if mode == "VPC":
        net["vpcConfig"] = {
            "securityGroups": ["sg-0123456789abcdef0"],
            "subnets": ["subnet-0123456789abcdef0"],
        }
    req: dict = {"name": name, "networkConfiguration": net}
    if full:
        req.update(
            {
                "description": "Data analysis sandbox",
                "executionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/CodeInterpreterRole",
                "certificates": [
                    {
                        "location": {
                            "secretsManager": {
                                "secretArn": (
                                    "arn:aws:secretsmanager:us-east-1:123456789012:"
                                    "secret:corp-root-ca-AbCdEf"
                                )
                            }
                        }
                    }
                ],
                "filesystemConfigurations": [
                    {
                        "s3FilesConfiguration": {
                            "accessPointArn": (
                                "arn:aws:s3files:us-east-1:123456789012:file-system/"
                                "fs-0123456789abcdef0/access-point/fsap-0123456789abcdef0"
                            ),
                            "mountPath": "/mnt/data",
                            "fileSystemArn": (
                                "arn:aws:s3files:us-east-1:123456789012:file-system/"
                                "fs-0123456789abcdef0"
                            ),
                        }
                    }
                ],
            }
        )
    if tags is not None:
        req["tags"] = tags
    return req


BROWSER_CONFIG_MEMBERS = (
    "name", "description", "executionRoleArn", "networkConfiguration", "recording",
    "browserSigning", "enterprisePolicies", "certificates", "filesystemConfigurations",
)  # fmt: skip
CODE_INTERPRETER_CONFIG_MEMBERS = (
    "name", "description", "executionRoleArn", "networkConfiguration", "certificates",
    "filesystemConfigurations",
)  # fmt: skip


def assert_members_equal(got: dict, sent: dict, members) -> None:
    for m in members:
        assert got.get(m) == sent.get(m), f"{m}: sent {sent.get(m)!r}, got {got.get(m)!r}"


# --------------------------------------------------------------------------------------------
# Create-and-wait helpers (boto3)


def create_runtime(client, name: Optional[str] = None, variant: str = "minimal", **extra):
    name = name or uniq("rt")
    req = runtime_request(name, variant)
    req.update(extra)
    resp = client.create_agent_runtime(**req)
    return req, resp


def create_ready_runtime(client, name: Optional[str] = None, variant: str = "minimal", **extra):
    req, resp = create_runtime(client, name, variant, **extra)
    rid = resp["agentRuntimeId"]
    wait_status(lambda: client.get_agent_runtime(agentRuntimeId=rid))
    return req, resp


def update_runtime_ready(client, rid: str, req: dict) -> dict:
    resp = client.update_agent_runtime(agentRuntimeId=rid, **update_request(req))
    wait_status(lambda: client.get_agent_runtime(agentRuntimeId=rid))
    return resp


# --------------------------------------------------------------------------------------------
# AWS CLI (the venv's `aws`), isolated from the host's AWS configuration


def aws_cli() -> list[str]:
    import shutil
    import sys

    here = Path(sys.executable).parent / "aws"
    if here.exists():
        return [sys.executable, str(here)]
    found = shutil.which("aws")
    if not found:
        raise AssertionError("the AWS CLI (awscli) is not installed in the test environment")
    return [found]


def aws_env(tmp_path: Path, key: str = DEFAULT_KEY, secret: str = DEFAULT_SECRET) -> dict:
    cfg, creds = tmp_path / "aws-config", tmp_path / "aws-credentials"
    cfg.write_text("", encoding="utf-8")
    creds.write_text("", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=key,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(cfg),
        AWS_SHARED_CREDENTIALS_FILE=str(creds),
        AWS_MAX_ATTEMPTS="1",
        AWS_RETRY_MODE="standard",
        AWS_PAGER="",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def run_aws(
    url: str,
    args: list[str],
    tmp_path: Path,
    key: str = DEFAULT_KEY,
    secret: str = DEFAULT_SECRET,
    check: bool = True,
):
    """Run `aws bedrock-agentcore-control ARGS --endpoint-url URL`; return parsed JSON output
    (check=True, exit code 0 required) or the CompletedProcess (check=False)."""
    cmd = aws_cli() + [
        "bedrock-agentcore-control", *args,
        "--endpoint-url", url, "--region", REGION, "--output", "json",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, env=aws_env(tmp_path, key, secret), capture_output=True, text=True, timeout=120
    )
    if not check:
        return proc
    assert proc.returncode == 0, (
        f"aws {' '.join(args)} exited {proc.returncode}\nstdout: {proc.stdout}\n"
        f"stderr: {proc.stderr}"
    )
    return json.loads(proc.stdout) if proc.stdout.strip() else {}
