"""Fixtures of the session tests: an S3-compatible store (moto's server), the agents' zips, and a
`hangar serve` reading artifacts from that store. The parent conftest (tests/e2e/conftest.py)
still applies: the response audit after every test and the stderr tail on failure."""

from __future__ import annotations

import pytest

import session_kit as kit


@pytest.fixture(scope="session")
def agent_builder(tmp_path_factory, pytestconfig) -> kit.AgentBuilder:
    return kit.AgentBuilder(
        kit.default_cache_root(pytestconfig), tmp_path_factory.mktemp("agent-zips")
    )


@pytest.fixture(scope="session")
def s3(tmp_path_factory) -> kit.MotoS3:
    kit.require_session_support()  # before starting anything
    store = kit.MotoS3(tmp_path_factory.mktemp("moto-logs"))
    store.start()
    yield store
    store.stop()


@pytest.fixture(scope="session")
def artifacts(s3, agent_builder) -> kit.S3Artifacts:
    return kit.S3Artifacts(s3, agent_builder)


@pytest.fixture(scope="session")
def sessions_server(tmp_path_factory, s3) -> kit.SessionHangar:
    """The shared server: default session limits, artifacts from the moto store."""
    data_root = kit.open_data_root("sessions")
    srv = kit.SessionHangar(
        data_root / "data",
        tmp_path_factory.mktemp("sessions-server-logs"),
        extra_args=["--s3-endpoint", s3.url],
        env=kit.s3_env(),
        label="sessions",
    )
    try:
        kit.start_session_server(srv)
        yield srv
    finally:
        srv.stop()
        kit.remove_data_root(data_root)


@pytest.fixture(scope="session")
def deploy(sessions_server, artifacts) -> kit.Deployer:
    return kit.Deployer(sessions_server, artifacts)


@pytest.fixture(autouse=True)
def _stop_sessions_after_test(request):
    """Stops the sessions a test left running on the shared server (after the test's own
    assertions; the parent conftest's response audit still sees these calls)."""
    yield
    deployer = request.node.funcargs.get("deploy")  # only if it was set up for this test
    if deployer is not None:
        deployer.cleanup()


@pytest.fixture
def extra_servers(tmp_path) -> kit.ServerSet:
    """More servers for one test (other flags); stopped by PID at teardown."""
    servers = kit.ServerSet(tmp_path)
    yield servers
    servers.close()


@pytest.fixture(scope="module")
def module_servers(tmp_path_factory, request) -> kit.ServerSet:
    servers = kit.ServerSet(tmp_path_factory.mktemp(request.module.__name__.split(".")[-1]))
    yield servers
    servers.close()
