"""pytest fixtures: one `hangar serve` per test session, a factory for extra servers (strict auth,
kill -9 durability, private stores), boto3 clients and a raw signed-request client."""

from __future__ import annotations

import atexit
import os
import tempfile
from pathlib import Path

import pytest

import support
from support import AUDIT, HangarServer, RawClient, make_client

# Keep the host's AWS configuration out of every boto3 client (and the CLI, see test_cli.py).
_EMPTY_DIR = tempfile.mkdtemp(prefix="hangar-e2e-aws-")
for _name in ("config", "credentials"):
    Path(_EMPTY_DIR, _name).write_text("", encoding="utf-8")
os.environ["AWS_CONFIG_FILE"] = str(Path(_EMPTY_DIR, "config"))
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(Path(_EMPTY_DIR, "credentials"))
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
for _var in list(os.environ):
    if _var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_CA_BUNDLE") or (
        _var.startswith("AWS_ENDPOINT_URL")
    ):
        del os.environ[_var]


def _stop_everything() -> None:
    for s in HangarServer.all_started:
        try:
            s.stop(timeout=5)
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


atexit.register(_stop_everything)


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> HangarServer:
    base = tmp_path_factory.mktemp("session-server")
    srv = HangarServer(base / "data", base / "logs", label="session")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def url(server) -> str:
    return server.url


@pytest.fixture(scope="session")
def client(server):
    return make_client(server.url)


@pytest.fixture(scope="session")
def client_nv(server):
    """boto3 client with client-side parameter validation off (bad input reaches the server)."""
    return make_client(server.url, validate=False)


@pytest.fixture(scope="session")
def raw(server) -> RawClient:
    return RawClient(server.url)


class ServerFactory:
    """Starts extra servers; everything it started is stopped (by PID) at teardown."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.servers: list[HangarServer] = []
        self.count = 0

    def start(self, data_dir: Path | None = None, **kw) -> HangarServer:
        self.count += 1
        label = kw.pop("label", f"extra{self.count}")
        data_dir = data_dir or self.base / f"{label}-data"
        srv = HangarServer(data_dir, self.base / "logs", label=label, **kw)
        self.servers.append(srv)
        return srv.start()

    def close(self) -> None:
        for s in self.servers:
            s.stop()


@pytest.fixture
def hangar_factory(tmp_path):
    f = ServerFactory(tmp_path)
    yield f
    f.close()


@pytest.fixture(scope="module")
def module_factory(tmp_path_factory, request):
    f = ServerFactory(tmp_path_factory.mktemp(request.module.__name__.split(".")[-1]))
    yield f
    f.close()


# --------------------------------------------------------------------------------------------
# Every response seen during a test must have x-amzn-RequestId and a status below 500.


@pytest.fixture(autouse=True)
def _audit_responses():
    AUDIT.take()
    yield
    problems = AUDIT.problems(AUDIT.take())
    assert not problems, "responses breaking the wire contract:\n" + "\n".join(problems[:20])


# --------------------------------------------------------------------------------------------
# On failure, attach the tail of each live (or just used) server's stderr to the report.

_started_before: dict[str, int] = {}


def pytest_runtest_setup(item):
    _started_before[item.nodeid] = len(HangarServer.all_started)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    first_new = _started_before.get(item.nodeid, 0)
    shown = set()
    for i, s in enumerate(HangarServer.all_started):
        key = id(s)
        if key in shown:
            continue
        if s.alive() or i >= first_new:
            shown.add(key)
            report.sections.append(
                (f"hangar stderr ({s.label}, pid {s.proc.pid if s.proc else '?'}) tail", s.tail())
            )


def pytest_report_header(config):
    return f"hangar binary: {support.hangar_bin()}"
