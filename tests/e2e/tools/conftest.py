"""Fixtures of the code-interpreter tests: a `hangar serve` with short per-call limits and
small session limits (so the bad-input tests finish quickly), boto3 data- and control-plane
clients, and the bedrock-agentcore SDK's CodeInterpreter pointed at that server. The parent
conftest (tests/e2e/conftest.py) still applies: the response audit after every test and the
stderr tail on failure."""

from __future__ import annotations

import os
import shutil

import boto3
import pytest
from botocore.config import Config

import support

# Per-call limit of executeCode/executeCommand on the test server, in seconds.
CALL_TIMEOUT = 4
MEMORY_MIB = 256
MAX_PROCESSES = 96


def _skip_or_fail(reason: str) -> None:
    """Skipped on a machine that cannot run sandboxes; with $HANGAR_E2E_REQUIRE_SESSIONS=1 (the
    test command sets it) the same condition fails instead."""
    if os.environ.get("HANGAR_E2E_REQUIRE_SESSIONS") == "1":
        pytest.fail(f"{reason} (HANGAR_E2E_REQUIRE_SESSIONS=1)", pytrace=False)
    pytest.skip(reason)


def _require_sandboxes() -> None:
    if os.geteuid() != 0:
        _skip_or_fail("code-interpreter sessions need root (bubblewrap sandboxes)")
    if shutil.which("bwrap") is None:
        _skip_or_fail("bubblewrap is not installed")


@pytest.fixture(scope="session")
def ci_server(tmp_path_factory) -> support.HangarServer:
    _require_sandboxes()
    base = tmp_path_factory.mktemp("code-interpreter-server")
    srv = support.HangarServer(
        base / "data",
        base / "logs",
        label="code-interpreter",
        code_artifacts=False,
        extra_args=[
            "--code-interpreter-call-timeout", str(CALL_TIMEOUT),
            "--code-interpreter-pool", "2",
            "--session-memory-mib", str(MEMORY_MIB),
            "--session-max-processes", str(MAX_PROCESSES),
        ],  # fmt: skip
    )
    srv.start()
    yield srv
    srv.stop()


def data_client(url: str, validate: bool = True):
    """boto3's `bedrock-agentcore` (data plane) client; responses go through the audit."""
    client = boto3.session.Session().client(
        "bedrock-agentcore",
        endpoint_url=url,
        region_name=support.REGION,
        aws_access_key_id=support.DEFAULT_KEY,
        aws_secret_access_key=support.DEFAULT_SECRET,
        config=Config(
            retries={"max_attempts": 1, "mode": "standard"},
            parameter_validation=validate,
            connect_timeout=5,
            read_timeout=120,
        ),
    )
    client.meta.events.register("after-call.*.*", support._audit_hook)
    return client


@pytest.fixture(scope="session")
def dp(ci_server):
    return data_client(ci_server.url)


@pytest.fixture(scope="session")
def dp_nv(ci_server):
    """Client-side validation off: malformed requests reach the server."""
    return data_client(ci_server.url, validate=False)


@pytest.fixture(scope="session")
def cp(ci_server):
    return support.make_client(ci_server.url)


@pytest.fixture(scope="session")
def sdk(ci_server):
    """The SDK's CodeInterpreter class, its endpoints pointed at the test server. The SDK reads
    BEDROCK_AGENTCORE_DP_ENDPOINT / _CP_ENDPOINT once, at import; they are set before the import
    and, should another test have imported the SDK first, also on the imported module."""
    os.environ["BEDROCK_AGENTCORE_DP_ENDPOINT"] = ci_server.url
    os.environ["BEDROCK_AGENTCORE_CP_ENDPOINT"] = ci_server.url
    os.environ.setdefault("AWS_ACCESS_KEY_ID", support.DEFAULT_KEY)
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", support.DEFAULT_SECRET)
    try:
        from bedrock_agentcore.tools import code_interpreter_client as module
    except ImportError:
        _skip_or_fail("bedrock-agentcore is not installed: pip install -r tests/requirements-tools.txt")

    module.DP_ENDPOINT_OVERRIDE = ci_server.url
    module.CP_ENDPOINT_OVERRIDE = ci_server.url
    started = []

    def make():
        ci = module.CodeInterpreter(support.REGION)
        ci.data_plane_client.meta.events.register("after-call.*.*", support._audit_hook)
        started.append(ci)
        return ci

    yield make
    for ci in started:
        try:
            ci.stop()
        except Exception:  # noqa: BLE001 - best effort; the test may have stopped it
            pass
